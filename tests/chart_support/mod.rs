//! What the chart tests share, whichever API server they run on: the real helm, the
//! operator binary started exactly as the installed Deployment says, a plain HTTP probe of
//! its metrics port, and the RBAC the chart grants its ServiceAccount, read back through
//! the Kubernetes API and compared with the requests the operator made, in both directions.
#![allow(dead_code)]

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::{Api, Client, api::ListParams};
use kube_emulator::RequestEntry;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_clear-operator");

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A tool that `scripts/install-tools.sh` puts into `.tools/bin`.
pub fn tool(name: &str) -> PathBuf {
    let path = repo_root().join(".tools/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-tools.sh first (it installs helm and kubectl into .tools/bin)",
        path.display()
    );
    path
}

/// Runs helm with `dir/kubeconfig` and helm's own state kept under `dir`.
pub async fn helm_output(dir: &Path, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(tool("helm"))
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
        .expect("failed to run helm")
}

/// [`helm_output`], panicking with helm's output when it fails.
pub async fn helm(dir: &Path, args: &[&str]) -> String {
    let output = helm_output(dir, args).await;
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
pub struct Operator {
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Operator {
    pub fn logs(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// SIGKILL and reap; the log lines captured so far.
    pub fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the test plays the kubelet for the Deployment's only container.
pub struct Pod<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub kubeconfig: &'a Path,
    /// Replaces the pod's `0.0.0.0:8080`: there is no pod network here.
    pub metrics_addr: &'a str,
}

/// Starts the binary as the kubelet would start the Deployment's only container: its args
/// and env (downward-API fields filled in), nothing else from the test's environment.
pub fn start_as_deployed(deployment: &Value, pod: &Pod<'_>) -> Operator {
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
    args[at + 1] = pod.metrics_addr.to_string();

    let mut command = Command::new(BIN);
    command
        .args(&args)
        .env_clear()
        .env("KUBECONFIG", pod.kubeconfig)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in container["env"].as_array().expect("container env") {
        let name = var["name"].as_str().unwrap();
        let value = match (
            &var["value"],
            var["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Value::String(v), _) => v.clone(),
            (_, Some("metadata.namespace")) => pod.namespace.to_string(),
            (_, Some("metadata.name")) => pod.name.to_string(),
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

pub fn free_loopback_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().to_string()
}

/// A plain HTTP/1.0 GET: status code and body (none when nothing listens yet).
pub fn http_get(addr: &str, path: &str, header: Option<(&str, &str)>) -> Option<(u16, String)> {
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

/// GET over HTTPS (the chart's default, secure metrics), the certificate not verified (it
/// is self-signed, as the kubelet's probes and the default ServiceMonitor accept), with
/// `bearer` as the Authorization token when given.
pub async fn https_get(addr: &str, path: &str, bearer: Option<&str>) -> Option<(u16, String)> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let mut request = client.get(format!("https://{addr}{path}"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.ok()?))
}

/// Polls `check` until it yields a value; panics after `limit` with the operator's log.
pub async fn eventually<T>(
    what: &str,
    operator: &Operator,
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
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
pub struct Grant {
    pub namespace: Option<String>,
    pub groups: Vec<String>,
    pub resources: Vec<String>,
    pub verbs: Vec<String>,
    pub names: Vec<String>,
}

impl Grant {
    fn in_scope(&self, request: &RequestEntry) -> bool {
        match &self.namespace {
            None => true,
            Some(ns) => request.namespace.as_deref() == Some(ns.as_str()),
        }
    }

    /// Whether Kubernetes' RBAC authorizer would allow `request` by this rule.
    pub fn allows(&self, request: &RequestEntry) -> bool {
        // As in Kubernetes, a rule limited to names never allows create, list or watch.
        let named = self.names.is_empty()
            || request
                .name
                .as_ref()
                .is_some_and(|n| self.names.contains(n) && request.verb != "create");
        self.in_scope(request)
            && named
            && self.groups.contains(&request.group)
            && self.resources.contains(&request.resource_path())
            && self.verbs.contains(&request.verb)
    }
}

/// A (group, resource, verb) that a grant allows and no request used, with where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unused {
    pub group: String,
    pub resource: String,
    pub verb: String,
    pub namespace: Option<String>,
}

/// The rules the installed bindings give ServiceAccount `namespace/name`, read through the
/// API (so the same code reads the emulator and a real cluster).
pub async fn grants_of_service_account(client: &Client, namespace: &str, name: &str) -> Vec<Grant> {
    let binds = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == name
                && s.namespace.as_deref() == Some(namespace)
        })
    };
    let lp = ListParams::default();
    let cluster_roles: Api<ClusterRole> = Api::all(client.clone());
    let mut grants = Vec::new();
    let mut add = |rules: Option<Vec<k8s_openapi::api::rbac::v1::PolicyRule>>,
                   scope: Option<String>| {
        for rule in rules.unwrap_or_default() {
            grants.push(Grant {
                namespace: scope.clone(),
                groups: rule.api_groups.unwrap_or_default(),
                resources: rule.resources.unwrap_or_default(),
                verbs: rule.verbs,
                names: rule.resource_names.unwrap_or_default(),
            });
        }
    };
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for binding in bindings.list(&lp).await.expect("list ClusterRoleBindings") {
        if binds(&binding.subjects) {
            let role = cluster_roles
                .get(&binding.role_ref.name)
                .await
                .expect("a ClusterRoleBinding refers to an installed ClusterRole");
            add(role.rules, None);
        }
    }
    let bindings: Api<RoleBinding> = Api::all(client.clone());
    for binding in bindings.list(&lp).await.expect("list RoleBindings") {
        if binds(&binding.subjects) {
            let ns = binding.metadata.namespace.clone().expect("namespaced");
            let rules = if binding.role_ref.kind == "ClusterRole" {
                cluster_roles
                    .get(&binding.role_ref.name)
                    .await
                    .expect("a RoleBinding refers to an installed ClusterRole")
                    .rules
            } else {
                let roles: Api<Role> = Api::namespaced(client.clone(), &ns);
                roles
                    .get(&binding.role_ref.name)
                    .await
                    .expect("a RoleBinding refers to an installed Role")
                    .rules
            };
            add(rules, Some(ns));
        }
    }
    grants
}

/// The requests no grant allows.
pub fn denied<'a>(grants: &[Grant], requests: &'a [RequestEntry]) -> Vec<&'a RequestEntry> {
    requests
        .iter()
        .filter(|r| !grants.iter().any(|g| g.allows(r)))
        .collect()
}

/// Every (group, resource, verb, scope) some grant allows that no request used, less those
/// in `justified` (`(resource, verb)` pairs the operator needs but that a request log cannot
/// show, each with its reason at the call site).
pub fn unused(
    grants: &[Grant],
    requests: &[RequestEntry],
    justified: &[(&str, &str)],
) -> BTreeSet<Unused> {
    let mut out = BTreeSet::new();
    for grant in grants {
        for group in &grant.groups {
            for resource in &grant.resources {
                for verb in &grant.verbs {
                    if justified.contains(&(resource.as_str(), verb.as_str())) {
                        continue;
                    }
                    let used = requests.iter().any(|r| {
                        grant.in_scope(r)
                            && &r.group == group
                            && &r.resource_path() == resource
                            && &r.verb == verb
                    });
                    if !used {
                        out.insert(Unused {
                            group: group.clone(),
                            resource: resource.clone(),
                            verb: verb.clone(),
                            namespace: grant.namespace.clone(),
                        });
                    }
                }
            }
        }
    }
    out
}
