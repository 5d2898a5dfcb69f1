//! The real helm 4 against the emulator: install, upgrade, list and uninstall of a small
//! test chart (Deployment, ServiceAccount, ClusterRole and binding, Service, Secret), and an
//! install of the project's own chart, CRD included.
//!
//! helm comes from `.tools/bin` (installed by `scripts/install-tools.sh`). Each test runs
//! helm with KUBECONFIG and its cache/config/data homes in a scratch directory of its own.
//!
//! NB: helm keeps its release records in Secrets and writes them through client-go's typed
//! clientset, which sends `application/vnd.kubernetes.protobuf` bodies (create, update, and
//! DeleteOptions on delete) while accepting JSON answers. The emulator must take those bodies.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use base64::Engine;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube_emulator::{Emulator, EmulatorOptions};
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
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

fn test_chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/helm-test-chart")
}

fn operator_chart() -> PathBuf {
    repo_root().join("charts/clear-operator")
}

/// The operator chart refuses its placeholder image repository.
const OPERATOR_IMAGE: &str = "image.repository=registry.example.com/platform/clear-operator";

/// An emulator plus the scratch directory helm runs in.
struct Cluster {
    emulator: Emulator,
    dir: PathBuf,
}

impl Cluster {
    async fn start(name: &str) -> Cluster {
        Self::start_with(name, EmulatorOptions::default()).await
    }

    async fn start_with(name: &str, options: EmulatorOptions) -> Cluster {
        let emulator = Emulator::start(options).await.expect("emulator starts");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("helm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        std::fs::write(dir.join("kubeconfig"), emulator.kubeconfig_yaml()).expect("kubeconfig");
        Cluster { emulator, dir }
    }

    async fn helm(&self, args: &[&str]) -> Output {
        tokio::process::Command::new(helm_binary())
            .args(args)
            .current_dir(&self.dir)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HELM_CACHE_HOME", self.dir.join("cache"))
            .env("HELM_CONFIG_HOME", self.dir.join("config"))
            .env("HELM_DATA_HOME", self.dir.join("data"))
            .env_remove("HELM_DRIVER")
            .env_remove("HELM_NAMESPACE")
            .kill_on_drop(true)
            .output()
            .await
            .expect("failed to run helm")
    }

    /// Runs helm and returns its stdout, failing the test with helm's own words otherwise.
    async fn helm_ok(&self, args: &[&str]) -> String {
        let output = self.helm(args).await;
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

    fn object(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        self.emulator.object(resource, namespace, name)
    }

    fn must(&self, resource: &str, namespace: Option<&str>, name: &str) -> Value {
        self.object(resource, namespace, name)
            .unwrap_or_else(|| panic!("{resource} {namespace:?}/{name} is not in the emulator"))
    }

    /// helm's release records (Secrets labelled owner=helm) for a release, by name.
    fn release_records(&self, namespace: &str, release: &str) -> Vec<(String, String)> {
        let mut records: Vec<(String, String)> = self
            .emulator
            .objects("secrets", Some(namespace))
            .into_iter()
            .filter(|s| {
                s["metadata"]["labels"]["owner"] == "helm"
                    && s["metadata"]["labels"]["name"] == release
            })
            .map(|s| {
                (
                    s["metadata"]["name"].as_str().unwrap().to_string(),
                    s["metadata"]["labels"]["status"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        records.sort();
        records
    }

    async fn create_namespace(&self, name: &str) {
        let api: Api<k8s_openapi::api::core::v1::Namespace> =
            Api::all(self.emulator.client().await);
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}})).unwrap(),
        )
        .await
        .expect("namespace created");
    }

    async fn stop(self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.emulator.shutdown().await;
    }
}

fn secret_value(secret: &Value, key: &str) -> String {
    let encoded = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("secret has no data key {key}: {secret}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64 data"),
    )
    .expect("UTF-8 data")
}

fn releases(list_json: &str) -> Vec<Value> {
    serde_json::from_str::<Vec<Value>>(list_json).expect("helm list -o json prints a JSON array")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_upgrades_lists_and_uninstalls_a_chart() {
    let cluster = Cluster::start("test-chart").await;
    let chart = test_chart();
    let chart = chart.to_str().unwrap();

    cluster
        .helm_ok(&["install", "demo", chart, "--namespace", "default"])
        .await;
    let deployment = cluster.must("apps/deployments", Some("default"), "demo-app");
    assert_eq!(deployment["spec"]["replicas"], 1);
    assert_eq!(
        deployment["metadata"]["annotations"]["meta.helm.sh/release-name"],
        "demo"
    );
    assert_eq!(
        secret_value(
            &cluster.must("secrets", Some("default"), "demo-app"),
            "greeting"
        ),
        "hello"
    );
    cluster.must("serviceaccounts", Some("default"), "demo-app");
    cluster.must("services", Some("default"), "demo-app");
    cluster.must(
        "rbac.authorization.k8s.io/clusterroles",
        None,
        "demo-app-reader",
    );
    let binding = cluster.must(
        "rbac.authorization.k8s.io/clusterrolebindings",
        None,
        "demo-app-reader",
    );
    assert_eq!(binding["subjects"][0]["name"], "demo-app");
    assert_eq!(
        cluster.release_records("default", "demo"),
        vec![("sh.helm.release.v1.demo.v1".into(), "deployed".into())]
    );

    cluster
        .helm_ok(&[
            "upgrade",
            "demo",
            chart,
            "--namespace",
            "default",
            "--set",
            "replicaCount=3",
            "--set",
            "greeting=bonjour",
        ])
        .await;
    assert_eq!(
        cluster.must("apps/deployments", Some("default"), "demo-app")["spec"]["replicas"],
        3
    );
    assert_eq!(
        secret_value(
            &cluster.must("secrets", Some("default"), "demo-app"),
            "greeting"
        ),
        "bonjour"
    );
    assert_eq!(
        cluster.release_records("default", "demo"),
        vec![
            ("sh.helm.release.v1.demo.v1".into(), "superseded".into()),
            ("sh.helm.release.v1.demo.v2".into(), "deployed".into()),
        ]
    );

    let listed = releases(
        &cluster
            .helm_ok(&["list", "--all-namespaces", "-o", "json"])
            .await,
    );
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["name"], "demo");
    assert_eq!(listed[0]["namespace"], "default");
    assert_eq!(listed[0]["revision"], "2");
    assert_eq!(listed[0]["status"], "deployed");

    cluster
        .helm_ok(&["uninstall", "demo", "--namespace", "default"])
        .await;
    for (resource, namespace, name) in [
        ("apps/deployments", Some("default"), "demo-app"),
        ("secrets", Some("default"), "demo-app"),
        ("serviceaccounts", Some("default"), "demo-app"),
        ("services", Some("default"), "demo-app"),
        (
            "rbac.authorization.k8s.io/clusterroles",
            None,
            "demo-app-reader",
        ),
        (
            "rbac.authorization.k8s.io/clusterrolebindings",
            None,
            "demo-app-reader",
        ),
    ] {
        assert!(
            cluster.object(resource, namespace, name).is_none(),
            "{resource} {name} survived helm uninstall"
        );
    }
    assert!(cluster.release_records("default", "demo").is_empty());
    let listed = releases(
        &cluster
            .helm_ok(&["list", "--all-namespaces", "-o", "json"])
            .await,
    );
    assert!(listed.is_empty(), "{listed:?}");

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_rolls_back_an_upgrade() {
    let cluster = Cluster::start("rollback").await;
    let chart = test_chart();
    let chart = chart.to_str().unwrap();
    cluster
        .helm_ok(&["install", "demo", chart, "--set", "greeting=first"])
        .await;
    cluster
        .helm_ok(&["upgrade", "demo", chart, "--set", "greeting=second"])
        .await;
    cluster.helm_ok(&["rollback", "demo", "1"]).await;
    assert_eq!(
        secret_value(
            &cluster.must("secrets", Some("default"), "demo-app"),
            "greeting"
        ),
        "first"
    );
    let history = cluster.helm_ok(&["history", "demo", "-o", "json"]).await;
    let history: Vec<Value> = serde_json::from_str(&history).expect("history as JSON");
    let statuses: Vec<&str> = history
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["superseded", "superseded", "deployed"]);
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_the_operator_chart_and_its_crd() {
    let cluster = Cluster::start("operator-chart").await;
    cluster.create_namespace("clear-system").await;
    cluster.create_namespace("team-a").await;
    let chart = operator_chart();
    let chart = chart.to_str().unwrap();

    cluster
        .helm_ok(&[
            "install",
            "ops",
            chart,
            "--namespace",
            "clear-system",
            "--set",
            OPERATOR_IMAGE,
            "--set",
            "podDisruptionBudget.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
        ])
        .await;

    let crd = cluster.must(
        "apiextensions.k8s.io/customresourcedefinitions",
        None,
        "clearapiclients.clear-operator.io",
    );
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["cac"]));
    let deployment = cluster.must(
        "apps/deployments",
        Some("clear-system"),
        "ops-clear-operator",
    );
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert_eq!(args[0], "run");
    cluster.must(
        "serviceaccounts",
        Some("clear-system"),
        "ops-clear-operator",
    );
    cluster.must(
        "services",
        Some("clear-system"),
        "ops-clear-operator-metrics",
    );
    cluster.must(
        "rbac.authorization.k8s.io/clusterroles",
        None,
        "ops-clear-operator",
    );
    cluster.must(
        "rbac.authorization.k8s.io/clusterrolebindings",
        None,
        "ops-clear-operator",
    );
    cluster.must(
        "rbac.authorization.k8s.io/roles",
        Some("clear-system"),
        "ops-clear-operator-leader-election",
    );
    cluster.must(
        "policy/poddisruptionbudgets",
        Some("clear-system"),
        "ops-clear-operator",
    );
    cluster.must(
        "networking.k8s.io/networkpolicies",
        Some("clear-system"),
        "ops-clear-operator",
    );

    // The CRD helm installed serves ClearApiClients.
    let gvk = GroupVersionKind::gvk("clear-operator.io", "v1alpha1", "ClearApiClient");
    let api: Api<DynamicObject> = Api::namespaced_with(
        cluster.emulator.client().await,
        "team-a",
        &ApiResource::from_gvk(&gvk),
    );
    let client: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "clear-operator.io/v1alpha1",
        "kind": "ClearApiClient",
        "metadata": {"name": "billing"},
        "spec": {
            "environment": "sandbox",
            "workspace": "ws-1",
            "products": ["GST"],
            "clientSecretRef": {"name": "clear-client-secret"}
        }
    }))
    .unwrap();
    api.create(&PostParams::default(), &client)
        .await
        .expect("a ClearApiClient is accepted once the chart's CRD is installed");

    // Narrowing the scope swaps the cluster-wide rights for a Role in the watched namespace.
    cluster
        .helm_ok(&[
            "upgrade",
            "ops",
            chart,
            "--namespace",
            "clear-system",
            "--set",
            OPERATOR_IMAGE,
            "--set",
            "watchNamespaces={team-a}",
        ])
        .await;
    assert!(
        cluster
            .object(
                "rbac.authorization.k8s.io/clusterroles",
                None,
                "ops-clear-operator"
            )
            .is_none(),
        "the ClusterRole outlived the upgrade to watchNamespaces"
    );
    cluster.must(
        "rbac.authorization.k8s.io/roles",
        Some("team-a"),
        "ops-clear-operator",
    );
    cluster.must(
        "rbac.authorization.k8s.io/rolebindings",
        Some("team-a"),
        "ops-clear-operator",
    );
    let args = cluster.must(
        "apps/deployments",
        Some("clear-system"),
        "ops-clear-operator",
    )["spec"]["template"]["spec"]["containers"][0]["args"]
        .clone();
    assert!(
        args.as_array()
            .unwrap()
            .windows(2)
            .any(|w| w[0] == "--namespace" && w[1] == "team-a"),
        "{args}"
    );

    cluster
        .helm_ok(&["uninstall", "ops", "--namespace", "clear-system"])
        .await;
    assert!(
        cluster
            .object(
                "apps/deployments",
                Some("clear-system"),
                "ops-clear-operator"
            )
            .is_none()
    );
    assert!(
        cluster
            .object(
                "rbac.authorization.k8s.io/roles",
                Some("team-a"),
                "ops-clear-operator"
            )
            .is_none()
    );
    // The chart's CRD carries helm.sh/resource-policy: keep (crds.keep), so ClearApiClients
    // (and the tokens they keep) survive an uninstall.
    cluster.must(
        "apiextensions.k8s.io/customresourcedefinitions",
        None,
        "clearapiclients.clear-operator.io",
    );

    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_wait_returns_once_the_operator_chart_has_rolled_out() {
    let cluster = Cluster::start_with(
        "wait",
        EmulatorOptions {
            ready_workloads: true,
            ..EmulatorOptions::default()
        },
    )
    .await;
    let chart = operator_chart();
    let chart = chart.to_str().unwrap();
    cluster
        .helm_ok(&[
            "install",
            "ops",
            chart,
            "--wait",
            "--timeout",
            "60s",
            "--set",
            OPERATOR_IMAGE,
        ])
        .await;
    cluster
        .helm_ok(&[
            "upgrade",
            "ops",
            chart,
            "--wait",
            "--timeout",
            "60s",
            "--set",
            OPERATOR_IMAGE,
            "--set",
            "replicaCount=2",
            "--set",
            "podDisruptionBudget.enabled=true,podDisruptionBudget.minAvailable=1",
        ])
        .await;
    let deployment = cluster.must("apps/deployments", Some("default"), "ops-clear-operator");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["status"]["readyReplicas"], 2);
    cluster.must(
        "policy/poddisruptionbudgets",
        Some("default"),
        "ops-clear-operator",
    );
    assert_eq!(
        cluster.release_records("default", "ops"),
        vec![
            ("sh.helm.release.v1.ops.v1".into(), "superseded".into()),
            ("sh.helm.release.v1.ops.v2".into(), "deployed".into()),
        ]
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_wait_times_out_while_the_deployment_has_no_ready_pods() {
    // Without ready_workloads nothing plays the kubelet, so the Deployment never becomes
    // available: helm --wait must really wait, and fail, rather than return at once.
    let cluster = Cluster::start("wait-timeout").await;
    let chart = operator_chart();
    let output = cluster
        .helm(&[
            "install",
            "ops",
            chart.to_str().unwrap(),
            "--wait",
            "--timeout",
            "2s",
            "--set",
            OPERATOR_IMAGE,
        ])
        .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "helm --wait returned success");
    assert!(
        stderr.contains("context deadline exceeded") || stderr.contains("timed out"),
        "{stderr}"
    );
    assert_eq!(
        cluster.release_records("default", "ops"),
        vec![("sh.helm.release.v1.ops.v1".into(), "failed".into())]
    );
    cluster.stop().await;
}
