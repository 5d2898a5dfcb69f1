//! An in-memory Kubernetes API server over plain HTTP on loopback, faithful enough for
//! kube-rs: discovery, CRUD, list/watch, the four patch types, status subresources,
//! finalizers, garbage collection and CRD-served custom resources, with injected faults and
//! a request log for tests. The `kubectl` feature adds what the real kubectl and helm need
//! besides (see `kubectl/mod.rs`). Start it in-process with [`Emulator::start`] or run the
//! `kube-emulator` binary.
#![forbid(unsafe_code)]

mod builtin_schemas;
mod crds;
mod discovery;
mod events;
mod faults;
mod form;
mod gc;
mod kinds;
mod kubeconfig;
#[cfg(feature = "kubectl")]
mod kubectl;
mod list;
mod registry;
mod selectors;
mod server;
mod status;
mod store;
mod verbs;
mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use faults::{FaultAction, Faults, RequestEntry, RequestLog};

use server::Shared;
use store::State;

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("failed to read the bound address: {0}")]
    LocalAddr(std::io::Error),
    #[error("failed to build the kubeconfig: {0}")]
    Kubeconfig(String),
}

/// How to run an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorOptions {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Events kept per resource type for watches that resume; older resourceVersions
    /// get 410 Gone.
    pub watch_history: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
}

impl Default for EmulatorOptions {
    fn default() -> Self {
        EmulatorOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            watch_history: 10_000,
            bookmark_interval: Duration::from_secs(10),
        }
    }
}

/// A running emulator.
pub struct Emulator {
    shared: Arc<Shared>,
    url: String,
    addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

fn seed(state: &mut State) {
    let ns_rt = state
        .registry
        .get("", "namespaces")
        .cloned()
        .expect("namespaces are built in");
    let now = verbs::now();
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let obj = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "uid": verbs::new_uid(),
                "creationTimestamp": now,
                "labels": {"kubernetes.io/metadata.name": name},
            },
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": "Active"},
        });
        state.put(&ns_rt, obj);
    }
}

impl Emulator {
    /// Bind and start serving.
    pub async fn start(opts: EmulatorOptions) -> Result<Emulator, Error> {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|source| Error::Bind {
                addr: opts.listen,
                source,
            })?;
        let addr = listener.local_addr().map_err(Error::LocalAddr)?;
        let mut state = State::new(opts.watch_history);
        seed(&mut state);
        let state = Arc::new(Mutex::new(state));
        let shutdown = CancellationToken::new();
        let shared = Arc::new(Shared {
            faults: Faults::new(state.clone()),
            state,
            log: RequestLog::default(),
            server_address: addr.to_string(),
            bookmark_interval: opts.bookmark_interval,
            shutdown: shutdown.clone(),
        });
        let app_shared = shared.clone();
        let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
            let s = app_shared.clone();
            async move { server::handle(s, req).await }
        });
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                shutdown.cancelled().await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "kube-emulator server stopped");
            }
        });
        let url = format!("http://{addr}");
        tracing::info!(%url, "kube-emulator listening");
        Ok(Emulator {
            shared,
            url,
            addr,
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig (context "kube-emulator") pointing at this emulator, as YAML.
    pub fn kubeconfig_yaml(&self) -> String {
        kubeconfig::yaml(&self.url)
    }

    /// The same kubeconfig, parsed.
    pub fn kubeconfig(&self) -> kube::config::Kubeconfig {
        kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())
            .expect("the generated kubeconfig parses")
    }

    /// A kube-rs client configuration talking to this emulator (namespace "default").
    pub fn client_config(&self) -> kube::Config {
        let uri: http::Uri = self.url.parse().expect("emulator url is a valid uri");
        let mut config = kube::Config::new(uri);
        config.default_namespace = "default".to_string();
        config.read_timeout = Some(Duration::from_secs(295));
        config
    }

    /// A kube-rs client talking to this emulator.
    pub async fn client(&self) -> kube::Client {
        kube::Client::try_from(self.client_config()).expect("a plain-http client builds")
    }

    /// Fault injection controls.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// The request log (a handle; clones share it).
    pub fn requests(&self) -> RequestLog {
        self.shared.log.clone()
    }

    /// Snapshot of every stored object of a resource ("secrets", or "group/resource" such
    /// as "apps/deployments"), optionally in one namespace, in key order.
    pub fn objects(&self, resource: &str, namespace: Option<&str>) -> Vec<Value> {
        let (group, res) = resource.rsplit_once('/').unwrap_or(("", resource));
        let st = self.shared.state.lock().expect("store lock");
        let Some(rt) = st.registry.get(group, res).cloned() else {
            return Vec::new();
        };
        let version = rt.storage_version().to_string();
        st.collection(&rt.key())
            .map(|c| {
                c.range(namespace, None)
                    .map(|(_, o)| verbs::present(&rt, &version, o))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One stored object, if present.
    pub fn object(&self, resource: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let (group, res) = resource.rsplit_once('/').unwrap_or(("", resource));
        let st = self.shared.state.lock().expect("store lock");
        let rt = st.registry.get(group, res).cloned()?;
        st.get(
            &rt.key(),
            &(namespace.unwrap_or("").to_string(), name.to_string()),
        )
        .map(|o| verbs::present(&rt, rt.storage_version(), o))
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.state.lock().expect("store lock").rv
    }

    /// Stop serving and end every watch.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.cancel();
        self.shared
            .state
            .lock()
            .expect("store lock")
            .close_watches();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Emulator {
    /// A test that panics before `shutdown` still stops the server and its watches.
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
        if let Ok(mut st) = self.shared.state.lock() {
            st.close_watches();
        }
    }
}
