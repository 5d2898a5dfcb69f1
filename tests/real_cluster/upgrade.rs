//! Release hygiene on the real server: the PACKAGED chart (`helm package`, as
//! scripts/test.sh builds it) installs, and `helm upgrade` from the previous chart version's
//! objects keeps every resource Ready with no call to Clear. The previous version is the
//! chart as committed at [`PREVIOUS_CHART_COMMIT`], taken with `git archive`.
//!
//! The operator runs as in chart.rs: the binary started with the args and env of the
//! installed Deployment, as the chart's ServiceAccount. The CRD is the suite's (`crds/`,
//! unchanged since that commit): the chart's templated CRD is the only migration there is.

use std::{path::Path, time::Duration};

use clear_operator::resource::ClearApiClient;
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig};
use futures::FutureExt;
use k8s_openapi::api::{
    apps::v1::Deployment,
    coordination::v1::Lease,
    core::v1::{ConfigMap, Secret},
};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::chart::{
    admin_client, create_namespace, create_token, delete_namespace, kubeconfig_with_token,
    random_suffix,
};
use crate::chart_support::{
    Pod, eventually, free_loopback_addr, helm, helm_output, http_get, https_get, repo_root,
    start_as_deployed,
};

/// main's HEAD before secure metrics: the chart users have installed.
pub const PREVIOUS_CHART_COMMIT: &str = "de1efe7";
/// The packaged chart scripts/test.sh built (`helm package` into target/chart/).
pub const CHART_PACKAGE_ENV: &str = "CLEAR_OPERATOR_E2E_CHART_PACKAGE";
const RESOURCES: usize = 3;
const WORKSPACE: &str = "ws-upgrade";
const WAIT: Duration = Duration::from_secs(120);

fn run(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ready_token(cac: &ClearApiClient) -> Option<String> {
    let status = cac.status.as_ref()?;
    status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
        .then(|| status.token_fingerprint.clone())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_upgrade_from_the_previous_chart_to_the_packaged_one_keeps_every_token_and_calls_nothing()
 {
    let _one_at_a_time = crate::exclusive().await;
    let (admin, admin_kubeconfig) = admin_client().await;
    let suffix = random_suffix();
    let release = format!("up{suffix}");
    let fullname = format!("{release}-clear-operator");
    let release_ns = format!("clear-up-{suffix}");
    let tenant_ns = format!("tenant-up-{suffix}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("real-upgrade-{suffix}"));
    std::fs::create_dir_all(dir.join("previous")).unwrap();
    std::fs::create_dir_all(dir.join("packaged")).unwrap();
    std::fs::copy(crate::kubeconfig_path(), dir.join("kubeconfig")).unwrap();

    // The previous chart from git, the current one packaged.
    let root = repo_root();
    let archive = dir.join("previous.tar");
    run(
        root,
        "git",
        &[
            "archive",
            "--output",
            archive.to_str().unwrap(),
            PREVIOUS_CHART_COMMIT,
            "charts/clear-operator",
        ],
    );
    run(
        &dir,
        "tar",
        &["-xf", archive.to_str().unwrap(), "-C", "previous"],
    );
    let previous_chart = dir.join("previous/charts/clear-operator");
    // NB: scripts/test.sh packages the chart once (target/chart/) and names the archive; a
    // run without it packages the chart here the same way.
    let tgz = match std::env::var(CHART_PACKAGE_ENV) {
        Ok(path) => path,
        Err(_) => {
            let packaged = helm(
                &dir,
                &[
                    "package",
                    root.join("charts/clear-operator").to_str().unwrap(),
                    "--destination",
                    dir.join("packaged").to_str().unwrap(),
                ],
            )
            .await;
            packaged
                .split_whitespace()
                .last()
                .expect("helm package names the archive")
                .to_string()
        }
    };
    assert!(tgz.ends_with(".tgz") && Path::new(&tgz).is_file(), "{tgz}");

    create_namespace(&admin, &release_ns).await;
    create_namespace(&admin, &tenant_ns).await;
    let client_secrets: Vec<String> = (0..RESOURCES)
        .map(|i| format!("cs-up-{suffix}-{i}-7d0e2a"))
        .collect();
    let sandbox = Sandbox::start(SandboxConfig::new(
        client_secrets
            .iter()
            .map(|cs| ClientConfig::new(cs.clone(), WORKSPACE).with_products(["GST"]))
            .collect(),
    ))
    .await
    .expect("simulator starts");
    let total_calls = || -> u64 {
        client_secrets
            .iter()
            .map(|cs| sandbox.call_counts(cs).total)
            .sum()
    };

    let outcome = std::panic::AssertUnwindSafe(async {
        let allowed = format!("operator.allowedBaseUrls={{{}}}", sandbox.url());
        let sets = [
            "--namespace",
            &release_ns,
            "--set",
            "operator.allowHttp=true",
            "--set",
            &allowed,
            "--set",
            "image.repository=registry.example.com/platform/clear-operator",
            "--set",
            "crds.enabled=false",
            "--wait=false",
        ];
        let mut install = vec!["install", &release, previous_chart.to_str().unwrap()];
        install.extend(sets);
        helm(&dir, &install).await;

        let secrets: Api<Secret> = Api::namespaced(admin.clone(), &tenant_ns);
        let cacs: Api<ClearApiClient> = Api::namespaced(admin.clone(), &tenant_ns);
        for (i, cs) in client_secrets.iter().enumerate() {
            secrets
                .create(
                    &PostParams::default(),
                    &serde_json::from_value(json!({
                        "metadata": {"name": format!("cs-{i}")},
                        "stringData": {"clientSecret": cs},
                    }))
                    .unwrap(),
                )
                .await
                .expect("client secret created");
            cacs.create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                    "apiVersion": "clear-operator.io/v1alpha1",
                    "kind": "ClearApiClient",
                    "metadata": {"name": format!("client-{i}")},
                    "spec": {
                        "environment": "sandbox",
                        "baseUrl": sandbox.url(),
                        "workspace": WORKSPACE,
                        "products": ["GST"],
                        "clientSecretRef": {"name": format!("cs-{i}")},
                    },
                }))
                .unwrap(),
            )
            .await
            .expect("ClearApiClient created");
        }

        let token = create_token(&release_ns, &fullname).await;
        let operator_kubeconfig = dir.join("operator.kubeconfig");
        kubeconfig_with_token(&admin_kubeconfig, &token, &operator_kubeconfig);
        let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &release_ns);
        let deployed = || async {
            serde_json::to_value(deployments.get(&fullname).await.expect("the Deployment")).unwrap()
        };

        // The previous chart's operator issues every token.
        let metrics_addr = free_loopback_addr();
        let previous_pod = format!("{fullname}-6b9f8d-prev1");
        let operator = start_as_deployed(
            &deployed().await,
            &Pod {
                namespace: &release_ns,
                name: &previous_pod,
                kubeconfig: &operator_kubeconfig,
                metrics_addr: &metrics_addr,
            },
        );
        eventually(
            "the previous operator's /readyz",
            &operator,
            WAIT,
            async || (http_get(&metrics_addr, "/readyz", None)?.0 == 200).then_some(()),
        )
        .await;
        let before = eventually("every resource Ready", &operator, WAIT, async || {
            let mut tokens = Vec::new();
            for i in 0..RESOURCES {
                tokens.push(ready_token(&cacs.get(&format!("client-{i}")).await.ok()?)?);
            }
            Some(tokens)
        })
        .await;
        assert_eq!(total_calls(), RESOURCES as u64, "one call per resource");
        // NB: the leader writes the budget ledger every few seconds; `status` reads it below.
        let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &release_ns);
        let ledger_name = format!("{fullname}-budget");
        eventually("the budget ledger written", &operator, WAIT, async || {
            config_maps.get_opt(&ledger_name).await.ok()?.map(|_| ())
        })
        .await;
        operator.stop();

        // The upgrade: the packaged chart over the previous one's objects.
        let mut upgrade = vec!["upgrade", &release, &tgz];
        upgrade.extend(sets);
        helm(&dir, &upgrade).await;
        let upgraded = deployed().await;
        let args = upgraded["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(
            args.contains("--metrics-secure"),
            "the upgraded Deployment: {args}"
        );

        let next_pod = format!("{fullname}-7c4e1a-next1");
        let operator = start_as_deployed(
            &upgraded,
            &Pod {
                namespace: &release_ns,
                name: &next_pod,
                kubeconfig: &operator_kubeconfig,
                metrics_addr: &metrics_addr,
            },
        );
        eventually(
            "the upgraded operator's /readyz (HTTPS)",
            &operator,
            WAIT,
            async || (https_get(&metrics_addr, "/readyz", None).await?.0 == 200).then_some(()),
        )
        .await;
        // NB: the killed previous replica's Lease runs out first; the new one then leads
        // and reconciles every resource once on start.
        let leases: Api<Lease> = Api::namespaced(admin.clone(), &release_ns);
        eventually(
            "the upgraded operator to lead",
            &operator,
            WAIT,
            async || {
                let lease = leases.get(&fullname).await.ok()?;
                let holder = lease.spec?.holder_identity?;
                holder.starts_with(&next_pod).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_secs(10)).await;
        for (i, fingerprint) in before.iter().enumerate() {
            let cac = cacs.get(&format!("client-{i}")).await.unwrap();
            assert_eq!(
                ready_token(&cac).as_ref(),
                Some(fingerprint),
                "client-{i} stays Ready with the same token: {:?}",
                cac.status
            );
        }
        assert_eq!(
            total_calls(),
            RESOURCES as u64,
            "the upgrade cost no call to Clear"
        );
        // `status` finds the budget ledger by itself, beside the Lease status names.
        let out = std::process::Command::new(crate::chart_support::BIN)
            .args(["status", "client-0", "-n", &tenant_ns])
            .env("KUBECONFIG", crate::kubeconfig_path())
            .output()
            .expect("clear-operator status runs");
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{summary}");
        let ledger = format!("ledger {release_ns}/{fullname}-budget");
        assert!(
            summary.contains(&format!(
                "1 of 288 for its client secret (all resources), 1 for this resource; {ledger}"
            )),
            "{summary}"
        );
        operator.stop();
    })
    .catch_unwind()
    .await;

    let _ = helm_output(&dir, &["uninstall", &release, "--namespace", &release_ns]).await;
    delete_namespace(&admin, &tenant_ns).await;
    delete_namespace(&admin, &release_ns).await;
    let _ = sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
