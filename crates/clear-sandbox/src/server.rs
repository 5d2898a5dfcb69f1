//! Starting and stopping the simulator, and the handle tests use to inspect and steer it
//! (call counts, current tokens, clients, faults, clock).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::NaiveDate;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::clock::{Clock, SystemClock};
use crate::config::ClientConfig;
use crate::counts::CallCounts;
use crate::faults::{Fault, FaultScope};
use crate::registry::{AdminError, ClientView, IssuedToken, Registry, TokenIdentity};
use crate::secret::ClientSecret;
use crate::{admin, api};

/// How to start a simulator.
#[derive(Clone)]
pub struct SandboxConfig {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    pub clients: Vec<ClientConfig>,
    pub clock: Arc<dyn Clock>,
    /// Serve the `/_sandbox/...` admin API.
    pub admin_api: bool,
}

impl SandboxConfig {
    /// Loopback on a free port, the system clock, admin API on.
    pub fn new(clients: Vec<ClientConfig>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            clients,
            clock: Arc::new(SystemClock),
            admin_api: true,
        }
    }

    pub fn with_listen(mut self, listen: SocketAddr) -> Self {
        self.listen = listen;
        self
    }

    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn without_admin_api(mut self) -> Self {
        self.admin_api = false;
        self
    }
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("listen", &self.listen)
            .field("clients", &self.clients)
            .field("admin_api", &self.admin_api)
            .finish_non_exhaustive()
    }
}

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("failed to listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to register client #{index}")]
    Client {
        index: usize,
        #[source]
        source: AdminError,
    },
}

/// State shared by the HTTP handlers and the handle.
pub(crate) struct Shared {
    registry: Mutex<Registry>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cancel: CancellationToken,
}

impl Shared {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        // NB: no code path panics while holding the lock, so poisoning would be a bug
        // of ours; recover the data rather than take the whole simulator down.
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Entry point of the library.
pub struct Sandbox;

impl Sandbox {
    /// Registers the clients, binds, and serves until the handle is shut down or dropped.
    pub async fn start(config: SandboxConfig) -> Result<SandboxHandle, StartError> {
        let mut registry = Registry::default();
        let client_count = config.clients.len();
        for (index, client) in config.clients.into_iter().enumerate() {
            registry
                .add_client(client)
                .map_err(|source| StartError::Client {
                    index: index + 1,
                    source,
                })?;
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| StartError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
        let shared = Arc::new(Shared {
            registry: Mutex::new(registry),
            clock: config.clock,
            cancel: CancellationToken::new(),
        });
        let mut router = api::routes();
        if config.admin_api {
            router = router.merge(admin::routes());
        }
        let app = router.with_state(Arc::clone(&shared));
        let cancel = shared.cancel.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(cancel.cancelled_owned())
                .await
        });
        let url = format!("http://{addr}");
        info!(%url, clients = client_count, admin_api = config.admin_api, "clear-sandbox listening");
        Ok(SandboxHandle {
            url,
            addr,
            shared,
            task: Some(task),
        })
    }
}

/// A running simulator. Dropping it stops the server; [`SandboxHandle::shutdown`] also
/// waits until it has stopped.
pub struct SandboxHandle {
    url: String,
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for SandboxHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHandle")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl SandboxHandle {
    /// Base URL, e.g. `http://127.0.0.1:40123`, to use in place of Clear's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::clone(&self.shared.clock)
    }

    /// Token-endpoint calls made with `secret` (known, rotated away or never known).
    pub fn call_counts(&self, secret: &str) -> CallCounts {
        self.shared.registry().call_counts(secret)
    }

    /// Token-endpoint calls made without a secret or with an empty one.
    pub fn anonymous_call_counts(&self) -> CallCounts {
        self.shared.registry().anonymous_counts()
    }

    /// Every token-endpoint call.
    pub fn total_call_counts(&self) -> CallCounts {
        self.shared.registry().total_counts()
    }

    /// Calls of `secret` that reached the quota check on the UTC day `day`.
    pub fn quota_used(&self, secret: &str, day: NaiveDate) -> u64 {
        self.shared.registry().quota_used(secret, day)
    }

    /// The token currently issued for `secret` (expired or not). For tests only.
    pub fn current_token(&self, secret: &str) -> Option<IssuedToken> {
        self.shared.registry().current_token(secret)
    }

    /// Whether `token` is the current, unexpired token of some client.
    pub fn is_token_valid(&self, token: &str) -> bool {
        self.identify_token(token).is_some()
    }

    /// The scope of `token` if it is live (what the whoami endpoint reports).
    pub fn identify_token(&self, token: &str) -> Option<TokenIdentity> {
        let now = self.shared.clock.now();
        self.shared.registry().identify(Some(token), now).ok()
    }

    /// Adds an API client; returns its name (given or generated).
    pub fn add_client(&self, client: ClientConfig) -> Result<String, AdminError> {
        self.shared.registry().add_client(client)
    }

    /// Deletes the API client of `secret`; its token is revoked at once.
    pub fn remove_client(&self, secret: &str) -> Result<(), AdminError> {
        self.shared.registry().remove_client(secret).map(drop)
    }

    /// Replaces the client secret: the old one gets 401 from now on, the issued token
    /// stays valid, the new secret has a fresh daily quota.
    pub fn rotate_client_secret(
        &self,
        old: &str,
        new: impl Into<ClientSecret>,
    ) -> Result<(), AdminError> {
        self.shared
            .registry()
            .rotate_secret(old, new.into())
            .map(drop)
    }

    /// Makes the next `times` token calls in `scope` misbehave.
    pub fn inject_fault(&self, scope: FaultScope, fault: Fault, times: u32) {
        self.shared.registry().inject_fault(scope, fault, times);
    }

    pub fn clear_faults(&self) {
        self.shared.registry().clear_faults();
    }

    /// Faulty answers still to come.
    pub fn pending_faults(&self) -> u64 {
        self.shared.registry().pending_faults()
    }

    /// All clients, without secrets or tokens.
    pub fn clients(&self) -> Vec<ClientView> {
        let now = self.shared.clock.now();
        self.shared.registry().client_views(now)
    }

    /// Stops accepting calls, cuts injected delays short, and waits for the server.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.shared.cancel.cancel();
        match self.task.take() {
            Some(task) => task
                .await
                .unwrap_or_else(|err| Err(std::io::Error::other(err))),
            None => Ok(()),
        }
    }
}

impl Drop for SandboxHandle {
    fn drop(&mut self) {
        self.shared.cancel.cancel();
    }
}
