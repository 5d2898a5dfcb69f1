//! kubectl against the real server, as a user meets the operator: apply of `crds/`,
//! `explain`, `get` with the printer columns, `wait` for Ready, and the CRD's own schema
//! and CEL rules rejecting bad specs at apply time.

use std::{path::Path, process::Stdio};

use crate::{
    chart_support::{repo_root, tool},
    e2e_support::{WORKSPACE, with_temp_ns},
};

struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

async fn kubectl(args: &[&str], stdin: Option<&str>) -> Out {
    use tokio::io::AsyncWriteExt;
    let home = Path::new(env!("CARGO_TARGET_TMPDIR")).join("real-kubectl-home");
    std::fs::create_dir_all(&home).unwrap();
    let mut child = tokio::process::Command::new(tool("kubectl"))
        .args(args)
        .env("KUBECONFIG", crate::kubeconfig_path())
        .env("HOME", &home)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input.as_bytes()).await.unwrap();
    }
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(180),
        child.wait_with_output(),
    )
    .await
    .expect("kubectl finished within 180s")
    .expect("kubectl output");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

async fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = kubectl(args, stdin).await;
    assert!(
        out.ok,
        "kubectl {} failed:\n{}\n{}",
        args.join(" "),
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn manifest(namespace: &str, name: &str, spec: &str) -> String {
    format!(
        "apiVersion: clear-operator.io/v1alpha1\nkind: ClearApiClient\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n{spec}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_the_crd_explains_lists_waits_and_rejects_bad_specs() {
    let _one_at_a_time = crate::exclusive().await;
    let crds = repo_root().join("crds");
    ok(
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            crds.to_str().unwrap(),
        ],
        None,
    )
    .await;
    ok(
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/clearapiclients.clear-operator.io",
        ],
        None,
    )
    .await;

    let explained = ok(&["explain", "clearapiclient.spec"], None).await;
    for field in [
        "environment",
        "workspace",
        "products",
        "clientSecretRef",
        "renewBefore",
        "renewalWindows",
    ] {
        assert!(
            explained.contains(field),
            "explain lacks {field}:\n{explained}"
        );
    }

    with_temp_ns(|env| async move {
        let ns = env.namespace.clone();
        env.put_client_secret("clear-client-secret").await;
        let operator = env.start_operator();
        let spec = format!(
            "  environment: sandbox\n  baseUrl: {}\n  workspace: {WORKSPACE}\n  products: [GST, E_INVOICE]\n  clientSecretRef: {{name: clear-client-secret}}\n",
            env.sandbox.url()
        );
        ok(&["apply", "-f", "-"], Some(&manifest(&ns, "billing", &spec))).await;
        ok(
            &["wait", "--for=condition=Ready", "--timeout=120s", "-n", &ns, "clearapiclient/billing"],
            None,
        )
        .await;

        let table = ok(&["get", "cac", "-n", &ns], None).await;
        let mut lines = table.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(
            header,
            ["NAME", "READY", "ENVIRONMENT", "WORKSPACE", "VALID", "TILL", "RENEWAL", "AGE"],
            "printer columns:\n{table}"
        );
        let row: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
        assert_eq!(&row[..4], ["billing", "True", "sandbox", WORKSPACE], "row:\n{table}");
        assert!(
            row[4].starts_with("20") && row[4].ends_with('Z'),
            "Valid Till is an RFC 3339 time: {table}"
        );
        assert!(
            row[5].starts_with("20") && row[5].ends_with('Z') && row[5] < row[4],
            "Renewal is an RFC 3339 time before Valid Till: {table}"
        );
        let wide = ok(&["get", "cac", "-n", &ns, "-o", "wide"], None).await;
        assert!(wide.contains("REASON") && wide.contains("Issued"), "wide:\n{wide}");
        assert_eq!(env.calls(), 1, "one call to Clear for one applied resource");

        // The schema and its CEL rule answer at apply time, on the real server.
        let bad_env = kubectl(
            &["apply", "-f", "-"],
            Some(&manifest(&ns, "bad-env", &spec.replace("sandbox", "staging"))),
        )
        .await;
        assert!(!bad_env.ok, "an unknown environment was accepted");
        assert!(
            bad_env.stderr.contains("Unsupported value: \"staging\""),
            "{}",
            bad_env.stderr
        );
        let no_host = format!(
            "  environment: sandbox\n  region: eu\n  workspace: {WORKSPACE}\n  products: [GST]\n  clientSecretRef: {{name: clear-client-secret}}\n"
        );
        let cel = kubectl(&["apply", "-f", "-"], Some(&manifest(&ns, "no-host", &no_host))).await;
        assert!(!cel.ok, "EU sandbox without baseUrl was accepted");
        assert!(
            cel.stderr.contains("spec.baseUrl: Required value: baseUrl is required"),
            "{}",
            cel.stderr
        );
        let duplicate = spec.replace("[GST, E_INVOICE]", "[GST, GST]");
        let dup = kubectl(&["apply", "-f", "-"], Some(&manifest(&ns, "dup", &duplicate))).await;
        assert!(!dup.ok, "duplicate products were accepted");
        assert!(dup.stderr.contains("Duplicate value"), "{}", dup.stderr);
        assert_eq!(env.calls(), 1, "rejected specs cost no call");

        let yaml = ok(&["get", "cac", "billing", "-n", &ns, "-o", "yaml"], None).await;
        let token = env.token_in("billing").await;
        assert!(!yaml.contains(&token), "the token shows in the resource");
        operator.stop().await;
    })
    .await;
}
