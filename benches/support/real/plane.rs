//! The real control plane (`scripts/control-plane.sh`) and the chart installed on it the
//! way a platform team does: `helm install` with the defaults, then the operator binary run
//! as the chart's ServiceAccount with the args and env the Deployment holds (there is no
//! kubelet: the bench plays it).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use k8s_openapi::{
    api::{
        apps::v1::Deployment,
        authentication::v1::{TokenRequest, TokenRequestSpec},
        core::v1::ServiceAccount,
    },
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client,
    api::PostParams,
    config::{KubeConfigOptions, Kubeconfig},
    runtime::{conditions, wait::await_condition},
};
use serde_json::{Value, json};

/// Release name and namespace of the bench's `helm install`.
pub const RELEASE: &str = "clear-operator";
pub const RELEASE_NS: &str = "clear-system";
const CRD: &str = "clearapiclients.clear-operator.io";

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One `control-plane.sh up DIR`; `down` on drop, so a panic never leaks the processes.
pub struct ControlPlane {
    pub dir: PathBuf,
    env: HashMap<String, String>,
}

impl ControlPlane {
    pub fn up(dir: &Path) -> Self {
        if dir.join("pids").exists() {
            script(&["down", &dir.to_string_lossy()]);
        }
        let _ = std::fs::remove_dir_all(dir);
        script(&["up", &dir.to_string_lossy()]);
        let dir = dir.canonicalize().expect("control plane dir");
        let env = std::fs::read_to_string(dir.join("env"))
            .expect("DIR/env")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self { dir, env }
    }

    pub fn var(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} missing from DIR/env"))
    }

    pub fn kubeconfig(&self) -> PathBuf {
        PathBuf::from(self.var("KUBECONFIG"))
    }

    pub fn audit_log(&self) -> PathBuf {
        PathBuf::from(self.var("AUDIT_LOG"))
    }

    /// PID of `etcd`, `kube-apiserver` or `kube-controller-manager`.
    pub fn pid(&self, component: &str) -> Option<u32> {
        std::fs::read_to_string(self.dir.join("pids").join(format!("{component}.pid")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The server's own CPU profile (Go pprof, `seconds` long), written to `out`.
    pub fn apiserver_cpu_profile(&self, seconds: u32, out: &Path) -> Command {
        let pki = self.dir.join("pki");
        let mut curl = Command::new("curl");
        curl.arg("-sf")
            .arg("--cacert")
            .arg(pki.join("ca.crt"))
            .arg("--cert")
            .arg(pki.join("admin.crt"))
            .arg("--key")
            .arg(pki.join("admin.key"))
            .arg("-o")
            .arg(out)
            .arg(format!(
                "{}/debug/pprof/profile?seconds={seconds}",
                self.var("API_SERVER")
            ));
        curl
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // NB: `down` removes DIR with the audit log: the run reads it before.
        script(&["down", &self.dir.to_string_lossy()]);
    }
}

fn script(args: &[&str]) {
    let status = Command::new(repo_root().join("scripts/control-plane.sh"))
        .args(args)
        .status()
        .expect("control-plane.sh runs");
    assert!(
        status.success(),
        "control-plane.sh {} failed",
        args.join(" ")
    );
}

pub async fn client_from(path: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load kubeconfig");
    Client::try_from(config).expect("client")
}

/// A tool of `scripts/install-tools.sh` (`.tools/bin`), or `BENCH_TOOLS_BIN`.
fn tool(name: &str) -> PathBuf {
    let bin = std::env::var_os("BENCH_TOOLS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".tools/bin"));
    let path = bin.join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/install-tools.sh first",
        path.display()
    );
    path
}

/// `helm install` of the chart with its defaults, plus only what a simulator needs (plain
/// http to `clear_url`, allowed). Returns the Deployment it created.
pub async fn helm_install(plane: &ControlPlane, admin: &Client, clear_url: &str) -> Value {
    let state = plane.dir.join("helm");
    let chart = repo_root().join("charts/clear-operator");
    let allowed = format!("operator.allowedBaseUrls={{{clear_url}}}");
    let out = Command::new(tool("helm"))
        .args(["install", RELEASE])
        .arg(&chart)
        .args([
            "--namespace",
            RELEASE_NS,
            "--create-namespace",
            "--set",
            "image.repository=bench.invalid/clear-operator",
            "--set",
            "operator.allowHttp=true",
            "--set",
            &allowed,
            "--wait=false",
        ])
        // NB: BENCH_HELM_SET="a=1,b=2" adds chart values (a concurrency to compare, the
        // opt-in FlowSchemas); the defaults are what the figures are quoted for.
        .args(
            std::env::var("BENCH_HELM_SET")
                .ok()
                .filter(|v| !v.is_empty())
                .map(|v| vec!["--set".to_string(), v])
                .unwrap_or_default(),
        )
        .env("KUBECONFIG", plane.kubeconfig())
        .env("HELM_CACHE_HOME", state.join("cache"))
        .env("HELM_CONFIG_HOME", state.join("config"))
        .env("HELM_DATA_HOME", state.join("data"))
        .env_remove("HELM_NAMESPACE")
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm install failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    tokio::time::timeout(
        Duration::from_secs(60),
        await_condition(crds, CRD, conditions::is_crd_established()),
    )
    .await
    .expect("CRD established within 60 s")
    .expect("CRD watch");
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), RELEASE_NS);
    serde_json::to_value(
        deployments
            .get(RELEASE)
            .await
            .expect("the chart's Deployment"),
    )
    .unwrap()
}

/// A kubeconfig for the chart's ServiceAccount (a TokenRequest token, as a pod gets), so
/// RBAC and API Priority and Fairness treat the operator as in a cluster. Returns the
/// path and the user name the audit log records.
pub async fn service_account_kubeconfig(plane: &ControlPlane, admin: &Client) -> (PathBuf, String) {
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), RELEASE_NS);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(4 * 3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request(RELEASE, &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token status")
        .token;
    let admin_config = Kubeconfig::read_from(plane.kubeconfig()).expect("admin kubeconfig");
    let mut config = serde_yaml::to_value(&admin_config).expect("kubeconfig serializes");
    config["users"] =
        serde_yaml::to_value(json!([{"name": "operator", "user": {"token": token}}])).unwrap();
    for context in config["contexts"].as_sequence_mut().expect("contexts") {
        context["context"]["user"] = serde_yaml::Value::from("operator");
    }
    let path = plane.dir.join("operator.kubeconfig");
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).expect("write kubeconfig");
    (
        path,
        format!("system:serviceaccount:{RELEASE_NS}:{RELEASE}"),
    )
}

/// Starts the operator as the Deployment's container would run: its args (the metrics
/// address moved to loopback) and env, nothing else; stderr (its log) to `log`.
pub fn start_as_deployed(
    deployment: &Value,
    kubeconfig: &Path,
    metrics_addr: &str,
    log: &Path,
) -> Child {
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
    // NB: BENCH_OPERATOR_BIN runs another build of the binary: with a target directory
    // shared by several worktrees, target/release/clear-operator is whichever was built last.
    let bin = std::env::var_os("BENCH_OPERATOR_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_clear-operator").into());
    let mut command = Command::new(bin);
    command
        .args(&args)
        .env_clear()
        .env("KUBECONFIG", kubeconfig)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("operator log"));
    for var in container["env"].as_array().expect("container env") {
        let name = var["name"].as_str().unwrap();
        let value = match (
            &var["value"],
            var["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        ) {
            (Value::String(v), _) => v.clone(),
            (_, Some("metadata.namespace")) => RELEASE_NS.to_string(),
            (_, Some("metadata.name")) => format!("{RELEASE}-5d8c7b-bench"),
            other => panic!("env {name} has a source the bench cannot play: {other:?}"),
        };
        command.env(name, value);
    }
    // BENCH_OPERATOR_ENV_X=V sets X=V for the operator only (a heap profiler's LD_PRELOAD).
    command.envs(std::env::vars().filter_map(|(key, value)| {
        Some((key.strip_prefix("BENCH_OPERATOR_ENV_")?.to_string(), value))
    }));
    command.spawn().expect("operator starts")
}

/// `args` of the Deployment's container, for the record.
pub fn deployed_args(deployment: &Value) -> String {
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}
