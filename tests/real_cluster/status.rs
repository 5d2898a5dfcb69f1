//! `clear-operator status` and `regenerate --wait` on the real server, run as a user runs
//! them: the built binary with a kubeconfig, and through kubectl as the plugin
//! `kubectl clear` (a symlink named kubectl-clear on PATH).

use std::{path::Path, process::Output};

use clear_operator::resource::ClearApiClient;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::{
    chart_support::{BIN, tool},
    e2e_support::{is_ready_with, with_temp_ns},
};

async fn run(program: &Path, args: &[&str], path_first: Option<&Path>) -> Output {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .env("KUBECONFIG", crate::kubeconfig_path())
        .env(
            "HOME",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-status-home"),
        );
    if let Some(dir) = path_first {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![dir.to_path_buf()];
        paths.extend(std::env::split_paths(&path));
        command.env("PATH", std::env::join_paths(paths).unwrap());
    }
    tokio::time::timeout(std::time::Duration::from_secs(180), command.output())
        .await
        .expect("finished within 180s")
        .expect("runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_summarizes_a_resource_and_regenerate_wait_reports_the_outcome() {
    let _one_at_a_time = crate::exclusive().await;
    with_temp_ns(|env| async move {
        let ns = env.namespace.clone();
        env.put_client_secret("clear-client-secret").await;
        let operator = env.start_operator();
        env.create("billing", env.spec("clear-client-secret")).await;
        let ready = env
            .wait_for_cac("billing", "Ready (Issued)", |c| {
                is_ready_with(c, "True", "Issued")
            })
            .await;
        let status = ready.status.clone().unwrap();
        let fingerprint = status.token_fingerprint.clone().unwrap();
        let cs_fingerprint = status.client_secret_fingerprint.clone().unwrap();
        let token = env.token_in("billing").await;

        // The e2e operator runs without leader election, so it keeps no ledger ConfigMap;
        // one in the format the leader writes stands in for it, named with --ledger.
        let today = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date()
            .to_string();
        let ledgers: Api<ConfigMap> = Api::namespaced(env.client.clone(), &ns);
        ledgers
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "metadata": {"name": "clear-operator-budget"},
                    "data": {"day": today, cs_fingerprint.as_str(): "7"},
                }))
                .unwrap(),
            )
            .await
            .expect("ledger created");
        let ledger = format!("{ns}/clear-operator-budget");

        let out = run(
            Path::new(BIN),
            &["status", "billing", "-n", &ns, "--ledger", &ledger],
            None,
        )
        .await;
        let summary = text(&out);
        assert!(out.status.success(), "{summary}");
        for part in [
            format!("{ns}/billing"),
            "True (Issued)".to_string(),
            format!("fingerprint {fingerprint}, valid till"),
            "renewal at".to_string(),
            "Last failure:".to_string(),
            "7 of 288 for its client secret (all resources), 1 for this resource".to_string(),
            "billing: matches status".to_string(),
        ] {
            assert!(summary.contains(&part), "{part:?} missing from:\n{summary}");
        }
        assert!(!summary.contains(&token), "status printed the token");

        // As a kubectl plugin: a symlink named kubectl-clear on PATH.
        let plugin_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("kubectl-plugin");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        let link = plugin_dir.join("kubectl-clear");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(BIN, &link).unwrap();
        let out = run(
            &tool("kubectl"),
            &["clear", "status", "-A"],
            Some(&plugin_dir),
        )
        .await;
        let table = text(&out);
        assert!(out.status.success(), "{table}");
        assert!(table.starts_with("NAMESPACE"), "{table}");
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("{ns} ")))
            .unwrap_or_else(|| panic!("no row for {ns}:\n{table}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(&cells[1..4], ["billing", "True", "Issued"], "{table}");
        assert!(row.contains(" ok "), "Secret matches status: {row}");

        // regenerate --wait: one new token, reported, exit 0.
        let out = run(
            &tool("kubectl"),
            &[
                "clear",
                "regenerate",
                "billing",
                "-n",
                &ns,
                "--wait",
                "--timeout",
                "120s",
            ],
            Some(&plugin_dir),
        )
        .await;
        let said = text(&out);
        assert!(out.status.success(), "{said}");
        let after = env.cacs.get("billing").await.unwrap();
        let new_fingerprint = after
            .status
            .as_ref()
            .unwrap()
            .token_fingerprint
            .clone()
            .unwrap();
        assert_ne!(new_fingerprint, fingerprint, "a new token");
        assert!(
            said.contains(&format!("new token ready: fingerprint {new_fingerprint}")),
            "{said}"
        );
        assert_eq!(env.calls(), 2, "one call for the regeneration");

        // A second resource on the same client secret is held back (Conflict): status names
        // the holder, and regenerate --wait reports the reason and fails.
        env.create("second", env.spec("clear-client-secret")).await;
        env.wait_for_cac("second", "held back (Conflict)", |c: &ClearApiClient| {
            is_ready_with(c, "False", "Conflict")
        })
        .await;
        let out = run(Path::new(BIN), &["status", "second", "-n", &ns], None).await;
        let summary = text(&out);
        assert!(out.status.success(), "{summary}");
        assert!(
            summary.contains("Client secret held by:") && summary.contains("billing"),
            "{summary}"
        );
        assert!(summary.contains("only when"), "{summary}");
        let out = run(
            Path::new(BIN),
            &[
                "regenerate",
                "second",
                "-n",
                &ns,
                "--wait",
                "--timeout",
                "60s",
            ],
            None,
        )
        .await;
        let said = text(&out);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains("regeneration not done: Conflict"), "{said}");
        assert_eq!(env.calls(), 2, "the held-back resource cost no call");
        operator.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probes_the_hosts_of_the_resources_on_the_real_server_and_mints_nothing() {
    let _one_at_a_time = crate::exclusive().await;
    with_temp_ns(|env| async move {
        let ns = env.namespace.clone();
        env.put_client_secret("clear-client-secret").await;
        // No operator: the resource holds no token; check needs only its base URL.
        env.create("billing", env.spec("clear-client-secret")).await;
        let simulator = env.sandbox.url().to_string();
        let out = run(
            Path::new(BIN),
            &[
                "check",
                "-n",
                &ns,
                "--allowed-base-url",
                &simulator,
                "--allow-http",
            ],
            None,
        )
        .await;
        let shown = text(&out);
        assert!(out.status.success(), "{shown}");
        assert!(shown.contains("reachable: HTTP 401"), "{shown}");
        assert!(shown.contains(&format!("{ns}/billing")), "{shown}");
        assert_eq!(env.calls(), 0, "a preflight mints nothing");
        // A resource whose host is not allowed is reported, not probed: exit 1.
        let refused = run(Path::new(BIN), &["check", "-n", &ns, "--allow-http"], None).await;
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert!(text(&refused).contains("not probed"), "{}", text(&refused));
        assert_eq!(env.calls(), 0);
    })
    .await;
}
