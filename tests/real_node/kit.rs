//! What the node tests share: the cluster's environment (DIR/env of `control-plane.sh up
//! --node`), the images, namespaces deleted after a failure too, the operator installed
//! with helm as a hostNetwork pod, and waits that report what they waited for.

use std::{
    collections::BTreeMap,
    future::Future,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use clear_operator::resource::ClearApiClient;
use clear_sandbox::SandboxHandle;
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{Namespace, Pod, Secret},
};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, LogParams, PostParams},
    config::{KubeConfigOptions, Kubeconfig},
};
use serde_json::json;

use crate::chart_support::{helm, helm_output, repo_root, tool};

pub const NODE_ENV: &str = "CLEAR_OPERATOR_NODE_ENV";
pub const IMAGES_ENV: &str = "CLEAR_OPERATOR_NODE_IMAGES";
pub const CONSUMER_IMAGE_ENV: &str = "CLEAR_OPERATOR_NODE_CONSUMER_IMAGE";
/// Generous: pods start, probes pass and the kubelet syncs volumes in their own time on a
/// loaded two-core machine.
pub const WAIT: Duration = Duration::from_secs(180);
pub const CLIENT_SECRET_NAME: &str = "clear-client-secret";
pub const WORKSPACE: &str = "ws-node";

/// DIR/env of the running cluster, as KEY=VALUE pairs.
pub fn cluster_env() -> BTreeMap<String, String> {
    let path = std::env::var_os(NODE_ENV).unwrap_or_else(|| {
        panic!(
            "{NODE_ENV} is not set: these tests need a node \
             (scripts/control-plane.sh up DIR --node, then {NODE_ENV}=DIR/env); \
             scripts/node-suite.sh does it all"
        )
    });
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", PathBuf::from(&path).display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn kubeconfig_path() -> PathBuf {
    PathBuf::from(&cluster_env()["KUBECONFIG"])
}

/// (host, port) of the API server, for the pods' KUBERNETES_SERVICE_HOST/PORT.
pub fn api_server() -> (String, String) {
    let url = cluster_env()["API_SERVER"].clone();
    let rest = url.trim_start_matches("https://");
    let (host, port) = rest
        .split_once(':')
        .expect("API_SERVER is https://HOST:PORT");
    (host.to_string(), port.to_string())
}

/// The operator image under two tags (`helm upgrade` moves from the first to the second).
pub fn operator_images() -> (String, String) {
    let images = std::env::var(IMAGES_ENV)
        .unwrap_or_else(|_| panic!("{IMAGES_ENV} is not set (two tags of the operator image)"));
    let (a, b) = images
        .split_once(',')
        .unwrap_or_else(|| panic!("{IMAGES_ENV} holds two images, comma-separated"));
    (a.to_string(), b.to_string())
}

pub fn consumer_image() -> String {
    std::env::var(CONSUMER_IMAGE_ENV)
        .unwrap_or_else(|_| panic!("{CONSUMER_IMAGE_ENV} is not set (examples/consumers/image.sh)"))
}

pub async fn admin_client() -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig_path()).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load kubeconfig");
    Client::try_from(config).expect("client")
}

pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..6)
        .map(|_| (b'a' + rng.gen_range(0..26)) as char)
        .collect()
}

/// A free TCP port on 127.0.0.1: hostNetwork pods listen on the node's ports.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 250 ms until it yields a value; panics after `limit`, naming what
/// it waited for and what `context` says about the state (pod phases, logs).
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A namespace per test, deleted by [`Scope::finish`] whether the test passed or not.
pub struct Scope {
    pub client: Client,
    pub namespaces: Vec<String>,
    pub releases: Vec<(String, String)>,
    pub dir: PathBuf,
}

impl Scope {
    pub async fn new(prefix: &str) -> Scope {
        let client = admin_client().await;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("real-node-{prefix}-{}", random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(kubeconfig_path(), dir.join("kubeconfig")).unwrap();
        Scope {
            client,
            namespaces: Vec::new(),
            releases: Vec::new(),
            dir,
        }
    }

    pub async fn namespace(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}-{}", random_suffix());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("namespace created");
        // The ServiceAccount controller makes `default`; pods cannot be created before it.
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.client.clone(), &name);
        wait_for("the default ServiceAccount", WAIT, || async {
            accounts.get_opt("default").await.ok().flatten()
        })
        .await;
        self.namespaces.push(name.clone());
        name
    }

    /// Uninstalls the releases and deletes the namespaces; waits until their pods are gone,
    /// so the next test starts on an idle node.
    pub async fn finish(self) {
        for (release, namespace) in &self.releases {
            let _ = helm_output(
                &self.dir,
                &["uninstall", release, "--namespace", namespace, "--wait"],
            )
            .await;
        }
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        for ns in &self.namespaces {
            let _ = namespaces.delete(ns, &DeleteParams::default()).await;
        }
        let pods: Api<Pod> = Api::all(self.client.clone());
        let mine = |p: &Pod| {
            self.namespaces
                .iter()
                .any(|ns| p.metadata.namespace.as_deref() == Some(ns.as_str()))
        };
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            match pods.list(&ListParams::default()).await {
                Ok(list) if !list.items.iter().any(mine) => break,
                _ => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The client secret Secret a ClearApiClient names.
pub async fn put_client_secret(client: &Client, namespace: &str, value: &str) {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": CLIENT_SECRET_NAME},
                "stringData": {"clientSecret": value},
            }))
            .unwrap(),
        )
        .await
        .expect("client secret created");
}

/// A ClearApiClient on the simulator, with `extra` merged into its spec.
pub fn cac(name: &str, sandbox: &SandboxHandle, extra: serde_json::Value) -> ClearApiClient {
    let mut spec = json!({
        "environment": "sandbox",
        "baseUrl": sandbox.url(),
        "workspace": WORKSPACE,
        "products": ["GST"],
        "clientSecretRef": {"name": CLIENT_SECRET_NAME},
    });
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// Ready=True with reason Issued.
pub fn issued(cac: &ClearApiClient) -> bool {
    cac.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Issued")
    })
}

/// One operator release of the chart, its pod on the node with hostNetwork.
pub struct Release {
    pub name: String,
    pub namespace: String,
    pub port: u16,
}

impl Release {
    pub fn fullname(&self) -> String {
        format!("{}-clear-operator", self.name)
    }

    pub fn selector(&self) -> String {
        format!("app.kubernetes.io/instance={}", self.name)
    }
}

/// `helm install` of the chart with `image` as a hostNetwork pod on the node: the API server
/// and the metrics port on 127.0.0.1, watching `tenant`, the simulator allowed.
pub async fn install_operator(
    scope: &mut Scope,
    name: &str,
    namespace: &str,
    image: &str,
    tenant: &str,
    sandbox: &SandboxHandle,
    extra: &[&str],
) -> Release {
    let release = Release {
        name: name.to_string(),
        namespace: namespace.to_string(),
        port: free_port(),
    };
    let (host, port) = api_server();
    let (repository, tag) = image.rsplit_once(':').expect("image is REPOSITORY:TAG");
    let chart = repo_root().join("charts/clear-operator");
    let sets = [
        format!("image.repository={repository}"),
        format!("image.tag={tag}"),
        "image.pullPolicy=Never".to_string(),
        "hostNetwork=true".to_string(),
        "metrics.bindAddress=127.0.0.1".to_string(),
        format!("metrics.port={}", release.port),
        "extraEnv[0].name=KUBERNETES_SERVICE_HOST".to_string(),
        format!("extraEnv[0].value={host}"),
        "extraEnv[1].name=KUBERNETES_SERVICE_PORT".to_string(),
        format!("watchNamespaces={{{tenant}}}"),
        "operator.allowHttp=true".to_string(),
        format!("operator.allowedBaseUrls={{{}}}", sandbox.url()),
        // The suite's CRD comes from `kubectl apply -f crds/` (scripts/node-suite.sh).
        "crds.enabled=false".to_string(),
    ];
    let port_value = format!("extraEnv[1].value={port}");
    let mut args = vec![
        "install",
        name,
        chart.to_str().unwrap(),
        "--namespace",
        namespace,
        "--set-string",
        &port_value,
    ];
    for set in &sets {
        args.extend(["--set", set.as_str()]);
    }
    args.extend(extra.iter().copied());
    helm(&scope.dir, &args).await;
    scope
        .releases
        .push((name.to_string(), namespace.to_string()));
    release
}

/// The release's pods that are Running, Ready, not being deleted, with `image`.
pub async fn ready_pods(client: &Client, release: &Release, image: &str) -> Vec<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &release.namespace);
    let Ok(list) = pods
        .list(&ListParams::default().labels(&release.selector()))
        .await
    else {
        return Vec::new();
    };
    list.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .all(|c| c.image.as_deref() == Some(image))
            })
        })
        .filter(pod_ready)
        .collect()
}

pub fn pod_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| {
        s.phase.as_deref() == Some("Running")
            && s.conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True")
    })
}

pub fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|c| c.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// The holder identity of the Lease, if held (see [`held_by`]).
pub async fn lease_holder(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// Whether a Lease holder identity is this pod's: the operator takes its pod name plus a
/// random suffix (a restarted process in the same pod is another candidate).
pub fn held_by(identity: &str, pod: &str) -> bool {
    identity == pod
        || identity
            .strip_prefix(pod)
            .is_some_and(|rest| rest.starts_with('-'))
}

/// The pod name in a Lease holder identity (`POD-SUFFIX`).
pub fn pod_of(identity: &str) -> &str {
    identity.rsplit_once('-').map_or(identity, |(pod, _)| pod)
}

/// A pod's log, through the API server and the kubelet (`kubectl logs`).
pub async fn logs(client: &Client, namespace: &str, pod: &str) -> String {
    Api::<Pod>::namespaced(client.clone(), namespace)
        .logs(pod, &LogParams::default())
        .await
        .unwrap_or_else(|e| format!("<no log: {e}>"))
}

/// Names of the pods of `namespace` and their phases, for failure messages.
pub async fn pod_summary(client: &Client, namespace: &str) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.list(&ListParams::default()).await {
        Ok(list) => list
            .items
            .iter()
            .map(|p| {
                let status = p.status.clone().unwrap_or_default();
                let waiting: Vec<String> = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
                    .collect();
                format!(
                    "{} {} ready={} restarts={} {}",
                    p.metadata.name.clone().unwrap_or_default(),
                    status.phase.unwrap_or_default(),
                    pod_ready(p),
                    restarts(p),
                    waiting.join(",")
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("<pods not listed: {e}>"),
    }
}

/// `kubectl apply -f crds/` is how the suite installs the CRD (idempotent).
pub async fn apply_crds() {
    let out = tokio::process::Command::new(tool("kubectl"))
        .args(["apply", "--server-side", "-f"])
        .arg(repo_root().join("crds"))
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .await
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl apply -f crds/ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}
