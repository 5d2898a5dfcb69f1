//! The user's three moves, with the real helm and the real binary: `helm install` of
//! charts/clear-operator into the Kubernetes API emulator (CRD, RBAC, Deployment), then the
//! operator binary started exactly as the installed Deployment says (its args and env, read
//! back from the emulator), then a ClearApiClient whose token comes from the Clear simulator.
//! Proves the chart's arguments, environment, Lease name and metric names match the binary,
//! and that every API request the operator made is allowed by the RBAC the chart installed
//! (the emulator does not enforce RBAC, so the test checks its request log against the
//! installed Roles and bindings the way the API server's authorizer would).
//!
//! There are no pods here, so the test plays the kubelet: only `--metrics-addr` changes, from
//! the pod's 0.0.0.0:8080 to a free loopback port.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube_emulator::RequestEntry;
use kube_emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_clear-operator");
const RELEASE: &str = "ops";
const RELEASE_NAMESPACE: &str = "clear-system";
const FULLNAME: &str = "ops-clear-operator";
const POD_NAME: &str = "ops-clear-operator-7d4b9c-x2x9q";
/// A made-up client secret, known only to the simulator and this test.
const CLIENT_SECRET: &str = "helm-e2e-client-secret-0f3a9c";

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn helm_binary() -> PathBuf {
    let path = repo_root().join(".tools/bin/helm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-tools.sh first (it installs helm into .tools/bin)",
        path.display()
    );
    path
}

async fn helm(dir: &Path, args: &[&str]) -> String {
    let output = tokio::process::Command::new(helm_binary())
        .args(args)
        .current_dir(dir)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("HELM_CACHE_HOME", dir.join("cache"))
        .env("HELM_CONFIG_HOME", dir.join("config"))
        .env("HELM_DATA_HOME", dir.join("data"))
        .env_remove("HELM_DRIVER")
        .env_remove("HELM_NAMESPACE")
        .kill_on_drop(true)
        .output()
        .await
        .expect("failed to run helm");
    assert!(
        output.status.success(),
        "helm {} failed ({}):\n{}\n{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("helm prints UTF-8")
}

/// The operator process; killed on drop so a failed assertion never leaks it.
struct Operator {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Operator {
    fn logs(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary as the kubelet would start the Deployment's only container.
fn start_as_deployed(deployment: &Value, kubeconfig: &Path, metrics_addr: &str) -> Operator {
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let mut args: Vec<String> = container["args"]
        .as_array()
        .expect("container args")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let at = args
        .iter()
        .position(|a| a == "--metrics-addr")
        .expect("the chart passes --metrics-addr");
    args[at + 1] = metrics_addr.to_string();

    let mut command = Command::new(BIN);
    command
        .args(&args)
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in container["env"].as_array().expect("container env") {
        let name = var["name"].as_str().unwrap();
        let value = match (
            &var["value"],
            var["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Value::String(v), _) => v.clone(),
            (_, Some("metadata.namespace")) => RELEASE_NAMESPACE.to_string(),
            (_, Some("metadata.name")) => POD_NAME.to_string(),
            other => panic!("env {name} has a source this test cannot play: {other:?}"),
        };
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the operator starts");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&stderr);
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(line);
        }
    });
    Operator { child, stderr }
}

fn free_loopback_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().to_string()
}

/// A plain HTTP/1.0 GET: status code and body (none when nothing listens yet).
fn http_get(addr: &str, path: &str, header: Option<(&str, &str)>) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let extra = header
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{extra}\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// Polls `check` until it yields a value; the bound only keeps a broken build from hanging.
async fn eventually<T>(
    what: &str,
    operator: &Operator,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}; operator log:\n{}",
            operator.logs().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One rule of a Role or ClusterRole bound to the operator's ServiceAccount, and where it
/// applies (`None`: every namespace and cluster-scoped resources).
#[derive(Debug)]
struct Grant {
    namespace: Option<String>,
    groups: Vec<String>,
    resources: Vec<String>,
    verbs: Vec<String>,
    names: Vec<String>,
}

impl Grant {
    fn allows(&self, request: &RequestEntry) -> bool {
        let scoped = match &self.namespace {
            None => true,
            Some(ns) => request.namespace.as_deref() == Some(ns.as_str()),
        };
        // As in Kubernetes, a rule limited to names never allows create, list or watch.
        let named = self.names.is_empty()
            || request
                .name
                .as_ref()
                .is_some_and(|n| self.names.contains(n) && request.verb != "create");
        scoped
            && named
            && self.groups.contains(&request.group)
            && self.resources.contains(&request.resource_path())
            && self.verbs.contains(&request.verb)
    }
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The rules the installed bindings give the operator's ServiceAccount.
fn grants_of_the_operator(emulator: &Emulator) -> Vec<Grant> {
    let binds_operator = |binding: &Value| {
        binding["subjects"].as_array().is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s["kind"] == "ServiceAccount"
                    && s["name"] == FULLNAME
                    && s["namespace"] == RELEASE_NAMESPACE
            })
        })
    };
    let mut grants = Vec::new();
    let mut add = |role: Option<Value>, namespace: Option<String>| {
        let role = role.expect("a binding refers to a role helm installed");
        for rule in role["rules"].as_array().into_iter().flatten() {
            grants.push(Grant {
                namespace: namespace.clone(),
                groups: strings(&rule["apiGroups"]),
                resources: strings(&rule["resources"]),
                verbs: strings(&rule["verbs"]),
                names: strings(&rule["resourceNames"]),
            });
        }
    };
    for binding in emulator.objects("rbac.authorization.k8s.io/clusterrolebindings", None) {
        if binds_operator(&binding) {
            let name = binding["roleRef"]["name"].as_str().unwrap();
            add(
                emulator.object("rbac.authorization.k8s.io/clusterroles", None, name),
                None,
            );
        }
    }
    for binding in emulator.objects("rbac.authorization.k8s.io/rolebindings", None) {
        if binds_operator(&binding) {
            let namespace = binding["metadata"]["namespace"].as_str().unwrap();
            let name = binding["roleRef"]["name"].as_str().unwrap();
            let role = if binding["roleRef"]["kind"] == "ClusterRole" {
                emulator.object("rbac.authorization.k8s.io/clusterroles", None, name)
            } else {
                emulator.object("rbac.authorization.k8s.io/roles", Some(namespace), name)
            };
            add(role, Some(namespace.to_string()));
        }
    }
    grants
}

fn assert_rbac_allows_every_request(emulator: &Emulator, requests: &[RequestEntry]) {
    let grants = grants_of_the_operator(emulator);
    let denied: Vec<&RequestEntry> = requests
        .iter()
        .filter(|r| !grants.iter().any(|g| g.allows(r)))
        .collect();
    assert!(
        denied.is_empty(),
        "the chart's RBAC would forbid these requests of the operator:\n{denied:#?}\ngrants:\n{grants:#?}"
    );
    // Not vacuous: the operator did watch, elect itself and write its Secret.
    for (verb, resource) in [
        ("watch", "clearapiclients"),
        ("create", "leases"),
        ("patch", "secrets"),
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.verb == verb && r.resource == resource),
            "the operator made no {verb} on {resource}: {requests:#?}"
        );
    }
}

/// Installs the chart with `sets`, runs the operator as deployed, and follows one
/// ClearApiClient in `default` from creation to a live token.
async fn install_and_run_the_operator(sets: &[&str]) {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().await;
    let sandbox = Sandbox::start(SandboxConfig::new(vec![
        ClientConfig::new(CLIENT_SECRET, "ws-1").with_products(["GST"]),
    ]))
    .await
    .expect("simulator starts");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "helm-operator-{}-{}",
        std::process::id(),
        sets.len()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).unwrap();

    // Moves 1 and 2: the chart installs the CRD and the operator.
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": RELEASE_NAMESPACE}})).unwrap(),
        )
        .await
        .unwrap();
    let chart = repo_root().join("charts/clear-operator");
    let allowed = format!("operator.allowedBaseUrls={{{}}}", sandbox.url());
    let mut install = vec![
        "install",
        RELEASE,
        chart.to_str().unwrap(),
        "--namespace",
        RELEASE_NAMESPACE,
        "--set",
        "operator.allowHttp=true",
        "--set",
        &allowed,
        "--set",
        "image.repository=registry.example.com/platform/clear-operator",
    ];
    install.extend_from_slice(sets);
    helm(&dir, &install).await;

    // Move 3, before the operator starts so that every request logged from here on is its own.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "clear-client-secret"},
                "stringData": {"clientSecret": CLIENT_SECRET},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let gvk = GroupVersionKind::gvk("clear-operator.io", "v1alpha1", "ClearApiClient");
    let cacs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &ApiResource::from_gvk(&gvk));
    cacs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "clear-operator.io/v1alpha1",
            "kind": "ClearApiClient",
            "metadata": {"name": "billing"},
            "spec": {
                "environment": "sandbox",
                "baseUrl": sandbox.url(),
                "workspace": "ws-1",
                "products": ["GST"],
                "clientSecretRef": {"name": "clear-client-secret"},
            },
        }))
        .unwrap(),
    )
    .await
    .unwrap();

    let deployment = emulator
        .object("apps/deployments", Some(RELEASE_NAMESPACE), FULLNAME)
        .expect("helm created the Deployment");
    emulator.requests().reset();
    let metrics_addr = free_loopback_addr();
    let operator = start_as_deployed(&deployment, &kubeconfig, &metrics_addr);

    eventually("/readyz to answer 200", &operator, async || {
        (http_get(&metrics_addr, "/readyz", None)?.0 == 200).then_some(())
    })
    .await;
    assert_eq!(
        http_get(&metrics_addr, "/healthz", None).map(|r| r.0),
        Some(200)
    );

    // The chart's Lease name and namespace are the ones the binary elects itself on.
    let lease = eventually("the leader Lease", &operator, async || {
        emulator.object(
            "coordination.k8s.io/leases",
            Some(RELEASE_NAMESPACE),
            FULLNAME,
        )
    })
    .await;
    let holder = lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(holder.starts_with(POD_NAME), "lease held by {holder:?}");

    // Read in process, not over HTTP, so the request log holds the operator's requests only.
    let token = eventually("the token Secret", &operator, async || {
        let secret: Secret =
            serde_json::from_value(emulator.object("secrets", Some("default"), "billing")?).ok()?;
        let bytes = secret.data?.remove("accessToken")?.0;
        String::from_utf8(bytes).ok().filter(|t| !t.is_empty())
    })
    .await;
    let whoami = http_get(
        &sandbox.addr().to_string(),
        clear_sandbox::WHOAMI_PATH,
        Some((clear_sandbox::AUTH_TOKEN_HEADER, &token)),
    );
    assert_eq!(
        whoami.map(|r| r.0),
        Some(200),
        "the stored token is not live"
    );

    // The series the chart's PrometheusRule alerts on exist under those names.
    let metrics = eventually("the client's Ready gauge", &operator, async || {
        let (_, body) = http_get(&metrics_addr, "/metrics", None)?;
        body.contains(r#"clear_operator_client_ready{namespace="default",name="billing"} 1"#)
            .then_some(body)
    })
    .await;
    for series in [
        "clear_operator_leader 1",
        r#"clear_operator_token_expiry_timestamp_seconds{namespace="default",name="billing"}"#,
        r#"clear_operator_mints_total{result="issued"} 1"#,
    ] {
        assert!(metrics.contains(series), "no {series} in:\n{metrics}");
    }
    assert_eq!(
        sandbox.call_counts(CLIENT_SECRET).total,
        1,
        "exactly one call to Clear"
    );

    let requests = emulator.requests().entries();
    let logs = operator.logs();
    drop(operator);
    assert_rbac_allows_every_request(&emulator, &requests);

    // --log-format json from the chart: every line is a JSON object, none carries a secret.
    assert!(!logs.is_empty(), "the operator logged nothing");
    for line in &logs {
        let parsed: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(parsed.is_object(), "{line}");
        assert!(
            !line.contains(CLIENT_SECRET) && !line.contains(&token),
            "a log line carries a secret"
        );
    }

    helm(
        &dir,
        &["uninstall", RELEASE, "--namespace", RELEASE_NAMESPACE],
    )
    .await;
    assert!(
        emulator
            .object("apps/deployments", Some(RELEASE_NAMESPACE), FULLNAME)
            .is_none()
    );
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await.expect("simulator stops");
    emulator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_installed_cluster_wide_issues_a_token_within_its_rbac() {
    install_and_run_the_operator(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_installed_for_one_namespace_issues_a_token_within_its_rbac() {
    install_and_run_the_operator(&["--set", "watchNamespaces={default}"]).await;
}
