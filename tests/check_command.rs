//! `clear-operator check`, the built binary, against the Clear simulator on 127.0.0.1: a
//! reachable host answers the documented 401 and nothing is minted, a closed port is
//! unreachable, a host off the allow-list is not probed, the proxy from the environment is
//! used, and with a cluster (the Kubernetes API emulator) the distinct base URLs of the
//! ClearApiClients are checked, all or one. And Clear's message on a refusal, kept when it
//! is safe, in the resource's condition and Event.

mod scenario_kit;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use clear_operator::resource::ClearApiClient;
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig, SandboxHandle};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use scenario_kit::common;
use serde_json::json;
use tokio::net::TcpListener;

const SECRETS: [&str; 2] = ["cs-CHECK-SECRETVALUE-1", "cs-CHECK-SECRETVALUE-2"];

async fn sandbox() -> SandboxHandle {
    Sandbox::start(SandboxConfig::new(vec![
        ClientConfig::new(SECRETS[0], "ws-1").with_products(["GST"]),
        ClientConfig::new(SECRETS[1], "ws-2").with_products(["GST"]),
    ]))
    .await
    .expect("simulator starts")
}

/// A loopback URL on which nothing listens.
async fn closed_port_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("check-command-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary with `args`, a clean environment (no proxy, no operator flags from the
/// runner) and `kubeconfig` (a missing file: no cluster).
async fn check(args: &[&str], kubeconfig: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_clear-operator"));
    command.arg("check").args(args);
    for (name, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        let upper = name.to_ascii_uppercase();
        if upper.ends_with("_PROXY") || upper.starts_with("CLEAR_OPERATOR_") {
            command.env_remove(&name);
        }
    }
    command
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap())
        .env("RUST_LOG", "warn");
    for (name, value) in env {
        command.env(name, value);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().await.expect("the binary runs");
    let stdout = String::from_utf8(stdout).unwrap();
    let stderr = String::from_utf8(stderr).unwrap();
    (status.code().expect("exited"), stdout, stderr)
}

/// Runs the binary with no cluster (a kubeconfig that does not exist), its HOME the
/// scratch directory `name`.
async fn check_without_a_cluster(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (i32, String, String) {
    let dir = scratch(name);
    check(args, &dir.join("no-kubeconfig"), env).await
}

/// The flags that check `url` alone, allowed, over plain http.
fn one_allowed_host(url: &str) -> [&str; 5] {
    ["--base-url", url, "--allowed-base-url", url, "--allow-http"]
}

/// The table row of `url`.
fn row<'a>(stdout: &'a str, url: &str) -> &'a str {
    stdout
        .lines()
        .find(|line| line.starts_with(&format!("{url} ")))
        .unwrap_or_else(|| panic!("no row for {url} in:\n{stdout}"))
}

/// Nothing was minted: no call carried a client secret, no token exists.
fn assert_nothing_minted(sandbox: &SandboxHandle) {
    for secret in SECRETS {
        assert_eq!(sandbox.call_counts(secret).total, 0, "a call with {secret}");
        assert!(sandbox.current_token(secret).is_none());
    }
    assert_eq!(sandbox.total_call_counts().with_status(200), 0);
}

fn assert_no_secret_shown(texts: &[&str]) {
    for text in texts {
        assert!(
            !text.contains("SECRETVALUE"),
            "a client secret shown: {text}"
        );
    }
}

#[tokio::test]
async fn a_reachable_host_answers_the_documented_401_and_nothing_is_minted() {
    let sandbox = sandbox().await;
    let url = sandbox.url().to_string();
    let (code, stdout, stderr) =
        check_without_a_cluster("reachable", &one_allowed_host(&url), &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("no cluster reachable"), "{stderr}");
    let line = row(&stdout, &url);
    assert!(line.contains("reachable: HTTP 401 as documented"), "{line}");
    assert!(line.contains(" yes "), "{line}");
    assert!(line.contains("--base-url"), "{line}");
    assert!(
        line.contains(r#"Clear said: "x-clear-client-secret header is missing or empty""#),
        "{line}"
    );
    assert!(line.contains("clock skew"), "{line}");
    assert!(stdout.starts_with("checking 1 base URL "), "{stdout}");
    assert!(stdout.contains("proxy: none"), "{stdout}");
    assert_eq!(sandbox.anonymous_call_counts().with_status(401), 1);
    assert_nothing_minted(&sandbox);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_closed_port_is_unreachable_and_fails_the_check() {
    let sandbox = sandbox().await;
    let closed = closed_port_url().await;
    let url = sandbox.url().to_string();
    let (code, stdout, stderr) = check_without_a_cluster(
        "closed",
        &[
            "--base-url",
            &url,
            "--base-url",
            &closed,
            "--allowed-base-url",
            &format!("{url},{closed}"),
            "--allow-http",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        row(&stdout, &closed).contains("UNREACHABLE: connection refused"),
        "{stdout}"
    );
    assert!(row(&stdout, &url).contains("as documented"), "{stdout}");
    assert_nothing_minted(&sandbox);
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_host_off_the_allow_list_is_reported_and_not_probed() {
    let sandbox = sandbox().await;
    let url = sandbox.url().to_string();
    let (code, stdout, stderr) =
        check_without_a_cluster("not-allowed", &["--base-url", &url, "--allow-http"], &[]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let line = row(&stdout, &url);
    assert!(line.contains(" no "), "{line}");
    assert!(line.contains("not probed"), "{line}");
    assert!(
        line.contains(&format!("--allowed-base-url {url}")),
        "names the flag: {line}"
    );
    // Plain http needs --allow-http, as for `run`.
    let only_allowed = ["--base-url", &url, "--allowed-base-url", &url];
    let (code, stdout, _) = check_without_a_cluster("not-allowed", &only_allowed, &[]).await;
    assert_eq!(code, 1, "{stdout}");
    assert!(row(&stdout, &url).contains("--allow-http"), "{stdout}");
    assert_eq!(sandbox.total_call_counts().total, 0, "nothing was called");
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_a_cluster_or_a_base_url_there_is_nothing_to_check() {
    let (code, stdout, stderr) = check_without_a_cluster("nothing", &[], &[]).await;
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stdout.contains("nothing to check"), "{stdout}");
    assert!(stdout.contains("--base-url"), "{stdout}");
}

type Seen = Arc<Mutex<Vec<String>>>;

/// A forward proxy stand-in on 127.0.0.1 that records each request's absolute URI and
/// answers as an IP allow-list would.
async fn refusing_proxy() -> (String, Seen, tokio::task::JoinHandle<()>) {
    let seen: Seen = Arc::default();
    let log = seen.clone();
    let app = Router::new().fallback(move |uri: Uri| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(uri.to_string());
            (
                StatusCode::FORBIDDEN,
                [("content-type", "application/json")],
                r#"{"errors":[{"error_code":"IP_NOT_ALLOWED","error_message":"IP 10.1.2.3 is not in the allow list of this API client","error_source":"CLEAR"}]}"#,
            )
                .into_response()
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), seen, task)
}

#[tokio::test]
async fn the_proxy_from_the_environment_is_used_and_a_refusal_explains_itself() {
    let sandbox = sandbox().await;
    let (proxy, seen, task) = refusing_proxy().await;
    let url = sandbox.url().to_string();
    let env = [("HTTP_PROXY", proxy.as_str())];
    let (code, stdout, stderr) =
        check_without_a_cluster("proxy", &one_allowed_host(&url), &env).await;
    task.abort();
    // Any answer proves the path: exit 0, the refusal and Clear's words in the row.
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("proxy: from the environment (HTTP_PROXY)"),
        "{stdout}"
    );
    assert!(
        !stdout.contains(&proxy),
        "the proxy URL is not printed: {stdout}"
    );
    let line = row(&stdout, &url);
    assert!(line.contains("reachable, refused: HTTP 403"), "{line}");
    assert!(
        line.contains(r#"Clear said: "IP 10.1.2.3 is not in the allow list of this API client""#),
        "{line}"
    );
    assert!(line.contains("error_code IP_NOT_ALLOWED"), "{line}");
    assert_eq!(
        seen.lock().unwrap().clone(),
        [format!("{url}/integration/v1/authz/token")]
    );
    assert_eq!(
        sandbox.total_call_counts().total,
        0,
        "only the proxy answered"
    );
    sandbox.shutdown().await.unwrap();
}

/// A cluster with four ClearApiClients: two on the simulator (one URL written with a
/// trailing slash), one on a closed port, one on Clear's documented production host.
#[tokio::test]
async fn with_a_cluster_the_distinct_base_urls_of_the_resources_are_checked() {
    let sandbox = sandbox().await;
    let closed = closed_port_url().await;
    let (emulator, client) = scenario_kit::emulator_with_crd().await;
    for ns in ["team-a", "team-b"] {
        scenario_kit::create_namespace(&client, ns).await;
    }
    let url = sandbox.url().to_string();
    let with_slash = format!("{url}/");
    let resources = [
        ("team-a", "billing", Some(url.as_str()), SECRETS[0]),
        ("team-a", "payroll", Some(with_slash.as_str()), SECRETS[1]),
        ("team-b", "gst", Some(closed.as_str()), SECRETS[0]),
        ("team-b", "einvoice", None, SECRETS[1]),
    ];
    for (ns, name, base_url, secret) in resources {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
        let credentials = format!("{name}-credentials");
        let credentials_secret = common::client_secret(&credentials, None, "clientSecret", secret);
        secrets
            .create(&PostParams::default(), &credentials_secret)
            .await
            .unwrap();
        let mut spec = json!({
            "environment": if base_url.is_some() { "sandbox" } else { "production" },
            "workspace": "ws-1",
            "products": ["GST"],
            "clientSecretRef": {"name": credentials, "key": "clientSecret"},
        });
        if let Some(base_url) = base_url {
            spec["baseUrl"] = json!(base_url);
        }
        let cac = common::resource(name, Some(ns), json!({}), spec);
        Api::<ClearApiClient>::namespaced(client.clone(), ns)
            .create(&PostParams::default(), &cac)
            .await
            .unwrap();
    }
    let dir = scratch("cluster");
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).unwrap();
    let allowed = format!("{url},{closed}");
    let flags = [
        "--allowed-base-url",
        allowed.as_str(),
        "--no-documented-base-urls",
        "--allow-http",
    ];

    // Every namespace: three distinct URLs, the documented host off the allow-list.
    let (code, stdout, stderr) = check(&flags, &kubeconfig, &[]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with("checking 3 base URLs (4 ClearApiClients in all namespaces)"),
        "{stdout}"
    );
    let line = row(&stdout, &url);
    assert!(line.contains("as documented"), "{line}");
    assert!(line.contains("team-a/billing +1"), "{line}");
    let line = row(&stdout, &closed);
    assert!(line.contains("UNREACHABLE: connection refused"), "{line}");
    assert!(line.contains("team-b/gst"), "{line}");
    let line = row(&stdout, "https://api.clear.in");
    assert!(
        line.contains("not probed") && line.contains("team-b/einvoice"),
        "{line}"
    );
    assert_eq!(
        stdout.lines().count(),
        5,
        "a line, the header, 3 rows: {stdout}"
    );

    // One namespace: only the simulator, which answers.
    let mut in_team_a = flags.to_vec();
    in_team_a.extend(["-n", "team-a"]);
    let (code, stdout, stderr) = check(&in_team_a, &kubeconfig, &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("(2 ClearApiClients in namespace team-a)"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().count(), 3, "{stdout}");

    // One resource.
    let mut gst = flags.to_vec();
    gst.extend(["gst", "-n", "team-b"]);
    let (code, stdout, stderr) = check(&gst, &kubeconfig, &[]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("(ClearApiClient team-b/gst)"), "{stdout}");
    assert!(row(&stdout, &closed).contains("UNREACHABLE"), "{stdout}");
    let mut billing = flags.to_vec();
    billing.extend(["billing", "-n", "team-a"]);
    let (code, stdout, stderr) = check(&billing, &kubeconfig, &[]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(row(&stdout, &url).contains("team-a/billing"), "{stdout}");
    // A resource that does not exist is an error.
    let mut missing = flags.to_vec();
    missing.extend(["nope", "-n", "team-a"]);
    let (code, _, stderr) = check(&missing, &kubeconfig, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("team-a/nope"), "{stderr}");

    // Three probes of the simulator, none with a client secret, although the Secrets
    // holding both were there to read.
    assert_eq!(sandbox.anonymous_call_counts().with_status(401), 3);
    assert_nothing_minted(&sandbox);
    assert_no_secret_shown(&[&stdout, &stderr]);
    emulator.shutdown().await;
    sandbox.shutdown().await.unwrap();
}

/// Clear's words on a refusal reach the Ready condition and the Warning Event (the
/// simulator's messages are plain sentences), and no client secret or token leaks.
#[tokio::test]
async fn a_refusal_explains_itself_in_the_condition_and_the_event() {
    use clear_operator::resource::REGENERATE_ANNOTATION;
    use clear_sandbox::{Fault, FaultScope};
    use scenario_kit::{Kit, ready_message};

    const KIT_SECRET: &str = "cs-check-SECRETVALUE-kit";
    let kit = Kit::with_first_token(KIT_SECRET).await;
    kit.sandbox
        .inject_fault(FaultScope::Global, Fault::Status(StatusCode::FORBIDDEN), 1);
    kit.annotate("billing", REGENERATE_ANNOTATION, "r1").await;
    kit.reconcile("billing").await;
    let said = r#"Clear said: "unhandled error on the Clear side (injected by clear-sandbox)""#;
    let message = ready_message(&kit.get("billing").await);
    assert!(
        message.contains("HTTP 403") && message.contains(said),
        "{message}"
    );
    let events = kit.events("billing");
    assert!(
        events.iter().any(|(_, _, note)| note.contains(said)),
        "{events:?}"
    );

    // The secret is rotated at Clear: the old one gets 401 and Clear's reason.
    kit.remember("cs-check-SECRETVALUE-new");
    kit.sandbox
        .rotate_client_secret(KIT_SECRET, "cs-check-SECRETVALUE-new")
        .unwrap();
    kit.annotate("billing", REGENERATE_ANNOTATION, "r2").await;
    // Past the backoff of the refusal.
    kit.advance(jiff::SignedDuration::from_hours(1));
    kit.reconcile("billing").await;
    assert_eq!(
        kit.sandbox.call_counts(KIT_SECRET).with_status(401),
        1,
        "one call with the old secret"
    );
    let (_, reason) = kit.ready("billing").await;
    assert_eq!(reason, "ClientSecretRejected");
    let message = ready_message(&kit.get("billing").await);
    assert!(
        message.contains(r#"Clear said: "client secret is invalid or revoked""#),
        "{message}"
    );
    kit.assert_no_leaks();
    kit.shutdown().await;
}
