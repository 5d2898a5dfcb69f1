//! The conformance tests' backend switch, shared by every test file.
//!
//! Without `KUBE_EMULATOR_CONFORMANCE_KUBECONFIG` a [`Cluster`] is an in-process emulator.
//! With it set to a kubeconfig, a [`Cluster`] talks to that (real) server instead: each test
//! gets its own namespace `conf-<random>` and its own CRD group `<random>.clear-operator.io`,
//! both deleted when the `Cluster` is dropped, also when the test panics. Nothing else on
//! the real server is written. The same test code runs on both backends; where the two
//! servers legitimately differ a test asks [`Cluster::is_real`].
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_emulator::{Emulator, EmulatorOptions};
use serde_json::Value;

pub type Crd =
    k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

pub const ENV: &str = "KUBE_EMULATOR_CONFORMANCE_KUBECONFIG";

/// The real server's kubeconfig, when the tests are to run against one.
pub fn real_kubeconfig() -> Option<PathBuf> {
    std::env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// For a test that needs the emulator's internals: on a real server it prints
/// `NOT ON REAL SERVER: <test> (<why>)` and answers true (the test then returns).
pub fn not_on_real_server(test: &str, why: &str) -> bool {
    if real_kubeconfig().is_none() {
        return false;
    }
    println!("NOT ON REAL SERVER: {test} ({why})");
    true
}

fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// The group the CRD fixtures use; tests see it through [`Cluster::sub`].
pub const FIXTURE_GROUP: &str = "clear-operator.io";

pub struct Cluster {
    /// The emulator, on the emulator backend only.
    pub emu: Option<Emulator>,
    /// Default namespace: [`Cluster::ns`].
    pub client: kube::Client,
    /// The test's namespace (created on both backends).
    pub ns: String,
    /// The test's CRD group, in place of the fixtures' `clear-operator.io`.
    pub group: String,
    /// A directory of the test's own (kubeconfig, kubectl cache, files).
    pub dir: PathBuf,
    /// A kubeconfig whose context namespace is [`Cluster::ns`].
    pub kubeconfig: PathBuf,
    config: kube::Config,
    /// Cluster-scoped objects to delete at the end (API paths).
    cluster_scoped: Mutex<Vec<String>>,
    /// Lists whose objects' finalizers are cleared at the end, so that a test that failed
    /// while an object held a finalizer does not leave its namespace terminating forever.
    finalized: Mutex<Vec<String>>,
}

impl Cluster {
    pub fn is_real(&self) -> bool {
        self.emu.is_none()
    }

    /// The emulator; panics on a real server (guard with [`not_on_real_server`]).
    pub fn emu(&self) -> &Emulator {
        self.emu
            .as_ref()
            .expect("emulator internals are not available on a real server")
    }

    pub async fn start() -> Cluster {
        Self::start_with(EmulatorOptions::default()).await
    }

    /// `opts` apply to the emulator backend only.
    pub async fn start_with(opts: EmulatorOptions) -> Cluster {
        let id = suffix();
        let dir = std::env::temp_dir().join(format!(
            "kube-emulator-conformance-{}-{id}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (emu, kubeconfig_yaml, mut config) = match real_kubeconfig() {
            None => {
                let emu = Emulator::start(opts).await.expect("emulator starts");
                let config = emu.client_config();
                let yaml = emu.kubeconfig_yaml();
                (Some(emu), yaml, config)
            }
            Some(path) => {
                let yaml = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{ENV}={}: {e}", path.display()));
                let kc = Kubeconfig::from_yaml(&yaml).expect("the real kubeconfig parses");
                let config =
                    kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                        .await
                        .expect("a client configuration from the real kubeconfig");
                (None, yaml, config)
            }
        };
        let ns = format!("conf-{id}");
        config.default_namespace = ns.clone();
        let client = kube::Client::try_from(config.clone()).expect("a client builds");
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, with_namespace(&kubeconfig_yaml, &ns)).unwrap();
        let group = if emu.is_some() {
            FIXTURE_GROUP.to_string()
        } else {
            format!("c{id}.{FIXTURE_GROUP}")
        };
        let c = Cluster {
            emu,
            client,
            ns,
            group,
            dir,
            kubeconfig,
            config,
            cluster_scoped: Mutex::new(Vec::new()),
            finalized: Mutex::new(Vec::new()),
        };
        c.create_namespace(&c.ns.clone()).await;
        c
    }

    /// Creates a namespace (deleted at the end on a real server); `name` should come
    /// from [`Cluster::unique`] when it is not the test's own.
    pub async fn create_namespace(&self, name: &str) {
        for list in [
            "/api/v1/namespaces/{}/secrets",
            "/api/v1/namespaces/{}/configmaps",
        ] {
            self.clear_finalizers_later(&list.replace("{}", name));
        }
        let body = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        self.cleanup_later(&format!("/api/v1/namespaces/{name}"));
        let req = http::Request::post("/api/v1/namespaces")
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&body).unwrap())
            .unwrap();
        self.client
            .request::<Value>(req)
            .await
            .unwrap_or_else(|e| panic!("namespace {name} is created: {e}"));
    }

    /// A name for a cluster-scoped object of this test: `base` on the emulator,
    /// `base-<random>` on a real server.
    pub fn unique(&self, base: &str) -> String {
        if self.is_real() {
            format!("{base}-{}", &self.ns["conf-".len()..])
        } else {
            base.to_string()
        }
    }

    /// Rewrites the fixtures' CRD group to this test's.
    pub fn sub(&self, text: &str) -> String {
        text.replace(FIXTURE_GROUP, &self.group)
    }

    /// Deletes the object at this API path at the end (real server only; the emulator goes
    /// away with everything in it).
    pub fn cleanup_later(&self, path: &str) {
        if self.is_real() {
            self.cluster_scoped.lock().unwrap().push(path.to_string());
        }
    }

    /// Clears the finalizers of every object in this list at the end (real server only).
    pub fn clear_finalizers_later(&self, list_path: &str) {
        if self.is_real() {
            self.finalized.lock().unwrap().push(list_path.to_string());
        }
    }

    /// A CRD from YAML (the fixture group rewritten), registered for deletion at the end.
    pub fn crd(&self, yaml: &str) -> Crd {
        let crd: Crd = serde_yaml::from_str(&self.sub(yaml)).expect("CRD YAML parses");
        self.cleanup_later(&format!(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{}",
            crd.metadata.name.as_deref().unwrap()
        ));
        for v in &crd.spec.versions {
            self.clear_finalizers_later(&format!(
                "/apis/{}/{}/{}",
                crd.spec.group, v.name, crd.spec.names.plural
            ));
        }
        crd
    }

    /// Creates a CRD (from [`Cluster::crd`]) and waits until it is Established: the emulator
    /// establishes it before it answers, apiserver's CRD controllers a moment later.
    pub async fn install_crd(&self, crd: &Crd) -> Crd {
        let crds: kube::Api<Crd> = kube::Api::all(self.client.clone());
        crds.create(&kube::api::PostParams::default(), crd)
            .await
            .expect("the CRD is created");
        let name = crd.metadata.name.as_deref().unwrap();
        let tries = if self.is_real() { 600 } else { 1 };
        for _ in 0..tries {
            let got = crds.get(name).await.unwrap();
            let established = got
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("CRD {name} never became Established");
    }

    /// GET of an API path as JSON; None on 404.
    pub async fn get_json(&self, path: &str) -> Option<Value> {
        let req = http::Request::get(path).body(Vec::new()).unwrap();
        match self.client.request::<Value>(req).await {
            Ok(v) => Some(v),
            Err(kube::Error::Api(s)) if s.code == 404 => None,
            Err(e) => panic!("GET {path}: {e}"),
        }
    }

    /// An object of the test namespace: `resource` is "configmaps" (core) or
    /// "apps/v1/deployments" (group/version/resource).
    pub async fn object(&self, resource: &str, name: &str) -> Option<Value> {
        let ns = self.ns.clone();
        self.get_json(&self.ns_path(resource, &ns, name)).await
    }

    /// Every object of a resource in the test namespace.
    pub async fn objects(&self, resource: &str) -> Vec<Value> {
        let ns = self.ns.clone();
        let path = self.ns_path(resource, &ns, "");
        let list = self.get_json(path.trim_end_matches('/')).await;
        list.and_then(|l| l["items"].as_array().cloned())
            .unwrap_or_default()
    }

    fn ns_path(&self, resource: &str, ns: &str, name: &str) -> String {
        match resource.rsplit_once('/') {
            None => format!("/api/v1/namespaces/{ns}/{resource}/{name}"),
            Some((gv, res)) => format!("/apis/{gv}/namespaces/{ns}/{res}/{name}"),
        }
    }

    /// Waits until `cond` holds: on the emulator it must already hold (its deletions and
    /// garbage collection are synchronous), a real server's controllers get up to 60 s.
    pub async fn eventually<F, Fut>(&self, what: &str, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let tries = if self.is_real() { 600 } else { 1 };
        for _ in 0..tries {
            if cond().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what} never held");
    }

    /// Stops the emulator (the real server's namespace and CRDs go in `Drop`; nothing is
    /// registered for cleanup on the emulator).
    pub async fn stop(mut self) {
        if let Some(emu) = self.emu.take() {
            emu.shutdown().await;
        }
    }
}

impl Drop for Cluster {
    /// Deletes what the test made on a real server, also when the test panicked: on a
    /// thread of its own with its own runtime, as the test's runtime may be unwinding.
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let mut paths = std::mem::take(&mut *self.cluster_scoped.lock().unwrap());
        let finalized = std::mem::take(&mut *self.finalized.lock().unwrap());
        if paths.is_empty() {
            return;
        }
        // the namespaces last but one: CRDs first so their objects go with them
        paths.reverse();
        paths.sort_by_key(|p| p.starts_with("/api/v1/namespaces/"));
        let config = self.config.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let client = kube::Client::try_from(config).expect("a client builds");
                for list in finalized {
                    let req = http::Request::get(&list).body(Vec::new()).unwrap();
                    let Ok(items) = client.request::<Value>(req).await else {
                        continue;
                    };
                    for item in items["items"].as_array().into_iter().flatten() {
                        if item["metadata"]["finalizers"].is_null() {
                            continue;
                        }
                        let md = &item["metadata"];
                        let path = match md["namespace"].as_str() {
                            Some(ns) => {
                                let (base, res) = list.rsplit_once('/').unwrap();
                                let base = base.split("/namespaces/").next().unwrap();
                                format!(
                                    "{base}/namespaces/{ns}/{res}/{}",
                                    md["name"].as_str().unwrap()
                                )
                            }
                            None => format!("{list}/{}", md["name"].as_str().unwrap()),
                        };
                        let req = http::Request::patch(&path)
                            .header("content-type", "application/merge-patch+json")
                            .body(br#"{"metadata":{"finalizers":null}}"#.to_vec())
                            .unwrap();
                        if let Err(e) = client.request_text(req).await {
                            eprintln!("cleanup: PATCH {path}: {e}");
                        }
                    }
                }
                for path in paths {
                    let req = http::Request::delete(&path)
                        .header("content-type", "application/json")
                        .body(br#"{"propagationPolicy":"Background"}"#.to_vec())
                        .unwrap();
                    match client.request_text(req).await {
                        Ok(_) => {}
                        Err(kube::Error::Api(s)) if s.code == 404 => {}
                        Err(e) => eprintln!("cleanup: DELETE {path}: {e}"),
                    }
                }
            })
        });
        let _ = done.join();
    }
}

/// The kubeconfig with every context's namespace set to `ns`.
fn with_namespace(yaml: &str, ns: &str) -> String {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(yaml).expect("kubeconfig is YAML");
    if let Some(contexts) = doc
        .get_mut("contexts")
        .and_then(serde_yaml::Value::as_sequence_mut)
    {
        for c in contexts {
            if let Some(ctx) = c
                .get_mut("context")
                .and_then(serde_yaml::Value::as_mapping_mut)
            {
                ctx.insert("namespace".into(), ns.into());
            }
        }
    }
    serde_yaml::to_string(&doc).unwrap()
}

/// The kubectl to run: `KUBECTL`, else `<repo>/.tools/bin/kubectl`, else `kubectl` on PATH.
/// Fails (never skips) when none of them runs.
pub fn kubectl() -> PathBuf {
    static FOUND: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let candidate = match std::env::var_os("KUBECTL").filter(|v| !v.is_empty()) {
                Some(k) => PathBuf::from(k),
                None => {
                    let tools = repo.join(".tools/bin/kubectl");
                    if tools.exists() {
                        tools
                    } else {
                        PathBuf::from("kubectl")
                    }
                }
            };
            let runs = std::process::Command::new(&candidate)
                .args(["version", "--client"])
                .stdin(std::process::Stdio::null())
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                runs,
                "kubectl ({}) does not run: run scripts/install-tools.sh (it installs kubectl into .tools/bin), or set KUBECTL",
                candidate.display()
            );
            candidate
        })
        .clone()
}
