//! The operator's small HTTP server: `/metrics` (OpenMetrics text), `/healthz` (the
//! process is alive) and `/readyz` (the controller, or a standby replica, is running).
//! Plain HTTP, or with [`Security`] TLS on every path and `/metrics` only for authorized
//! scrapers (see [`crate::secure_metrics`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::metrics::render_chunks;
use crate::secure_metrics::{HANDSHAKE_TIMEOUT, MetricsAuth, Verdict, bearer_token};

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Liveness and readiness flags shared between the controller and the server. Starts
/// live and not ready. Cheap to clone: clones share the flags.
#[derive(Clone, Debug)]
pub struct Health {
    live: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    pub fn new() -> Self {
        Self {
            live: Arc::new(AtomicBool::new(true)),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Ready once the controller started: as leader reconciling, or as a healthy standby
    /// waiting for the Lease (a standby must count as ready or rollouts would stall).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// Not live: something is wedged and a restart is the cure.
    pub fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
struct AppState {
    registry: Arc<Registry>,
    health: Health,
    /// `Some`: `/metrics` asks the API server about each scraper's token.
    auth: Option<Arc<MetricsAuth>>,
}

/// How the server is protected: TLS on every path, TokenReview and SubjectAccessReview on
/// `/metrics`.
#[derive(Clone, Debug)]
pub struct Security {
    pub tls: Arc<rustls::ServerConfig>,
    pub auth: Arc<MetricsAuth>,
}

/// The routes, for embedding or testing.
pub fn router(registry: Arc<Registry>, health: Health) -> Router {
    router_with_auth(registry, health, None)
}

/// The routes, `/metrics` behind `auth` when given.
pub fn router_with_auth(
    registry: Arc<Registry>,
    health: Health,
    auth: Option<Arc<MetricsAuth>>,
) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState {
            registry,
            health,
            auth,
        })
}

/// Binds `addr` and serves until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    serve_on(listener, registry, health, shutdown).await
}

/// Serves on an already bound listener (tests bind port 0 and read the address first).
pub async fn serve_on(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Health,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(registry, health))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves on `listener`, over TLS with `/metrics` authorized when `security` is given.
pub async fn serve_secured_on(
    listener: TcpListener,
    registry: Arc<Registry>,
    health: Health,
    security: Option<Security>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let Some(security) = security else {
        return serve_on(listener, registry, health, shutdown).await;
    };
    let router = router_with_auth(registry, health, Some(security.auth));
    let acceptor = tokio_rustls::TlsAcceptor::from(security.tls);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // NB: per-connection errors (the peer reset it, too many open files for a
                // moment) must not stop the server; axum::serve does the same.
                Err(error) => {
                    tracing::debug!(%error, "metrics server: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        // NB: the handshake in its own task, so a client that stalls it delays nobody else.
        tokio::spawn(async move {
            let Ok(Ok(tls)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await
            else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(auth) = &state.auth
        && let Some(refused) = authorize(auth, &headers).await
    {
        return refused;
    }
    match render_chunks(&state.registry) {
        Ok(chunks) => {
            let body = axum::body::Body::from_stream(futures::stream::iter(
                chunks.into_iter().map(Ok::<_, std::convert::Infallible>),
            ));
            ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "failed to encode metrics\n",
        )
            .into_response(),
    }
}

/// `None` when the scraper may read `/metrics`, else the answer to give it (401, 403, or
/// 500 when the API server could not be asked). Never logs the token.
async fn authorize(auth: &MetricsAuth, headers: &HeaderMap) -> Option<Response> {
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(token) = bearer_token(header) else {
        return Some(unauthorized());
    };
    match auth.verdict(token).await {
        Ok(Verdict::Allowed) => None,
        Ok(Verdict::Unauthenticated) => Some(unauthorized()),
        Ok(Verdict::Forbidden { user }) => {
            tracing::debug!(%user, "metrics scrape refused: not allowed to get /metrics");
            Some((StatusCode::FORBIDDEN, "forbidden\n").into_response())
        }
        Err(error) => {
            tracing::warn!(error = %crate::secure_metrics::ErrorChain(&error), "metrics scrape: could not review the token");
            Some(
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "failed to review the token\n",
                )
                    .into_response(),
            )
        }
    }
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "unauthorized\n",
    )
        .into_response()
}

async fn healthz(State(state): State<AppState>) -> Response {
    flag_response(state.health.is_live(), "ok\n", "not live\n")
}

async fn readyz(State(state): State<AppState>) -> Response {
    flag_response(state.health.is_ready(), "ready\n", "not ready\n")
}

fn flag_response(up: bool, yes: &'static str, no: &'static str) -> Response {
    if up {
        (StatusCode::OK, yes).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, no).into_response()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::metrics::Metrics;

    struct Running {
        base: String,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<io::Result<()>>,
    }

    async fn start(health: Health) -> (Running, Metrics) {
        let mut registry = Registry::default();
        let metrics = Metrics::register(&mut registry);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_on(listener, Arc::new(registry), health, async {
            let _ = stopped.await;
        }));
        let running = Running {
            base,
            stop: Some(stop),
            task,
        };
        (running, metrics)
    }

    impl Running {
        async fn get(&self, path: &str) -> (u16, Option<String>, String) {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let response = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string());
            (status, content_type, response.text().await.unwrap())
        }

        async fn stop(mut self) -> io::Result<()> {
            self.stop.take().unwrap().send(()).unwrap();
            self.task.await.unwrap()
        }
    }

    #[tokio::test]
    async fn readyz_follows_the_ready_flag_and_healthz_the_live_flag() {
        let health = Health::new();
        let (server, _metrics) = start(health.clone()).await;
        assert_eq!(server.get("/healthz").await.0, 200);
        assert_eq!(server.get("/readyz").await.0, 503);
        health.set_ready(true);
        assert_eq!(server.get("/readyz").await.0, 200);
        health.set_live(false);
        assert_eq!(server.get("/healthz").await.0, 503);
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn metrics_are_served_as_openmetrics_text() {
        let (server, metrics) = start(Health::new()).await;
        metrics.observe_clear_call("issued", Duration::from_millis(10));
        metrics.set_ready("ns", "demo", true);
        let (status, content_type, body) = server.get("/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type.as_deref(), Some(OPENMETRICS_CONTENT_TYPE));
        assert!(
            body.contains(r#"clear_operator_mints_total{result="issued"} 1"#),
            "{body}"
        );
        assert!(
            body.contains(r#"clear_operator_client_ready{namespace="ns",name="demo"} 1"#),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"));
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn secured_server_speaks_tls_and_asks_about_each_scrapers_token() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut registry = Registry::default();
        let _metrics = Metrics::register(&mut registry);
        let auth = MetricsAuth::with_reviewer(Arc::new(|token| {
            Box::pin(async move {
                Ok(match token.as_str() {
                    "reader" => Verdict::Allowed,
                    "stranger" => Verdict::Forbidden {
                        user: "system:serviceaccount:x:y".into(),
                    },
                    _ => Verdict::Unauthenticated,
                })
            })
        }));
        let security = Security {
            tls: crate::secure_metrics::tls_config(None).unwrap(),
            auth: Arc::new(auth),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let health = Health::new();
        health.set_ready(true);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_secured_on(
            listener,
            Arc::new(registry),
            health,
            Some(security),
            async {
                let _ = stopped.await;
            },
        ));
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let get = |path: &str, token: Option<&str>| {
            let mut request = client.get(format!("{base}{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            async move { request.send().await.unwrap().status().as_u16() }
        };
        assert_eq!(get("/metrics", None).await, 401);
        assert_eq!(get("/metrics", Some("nobody")).await, 401);
        assert_eq!(get("/metrics", Some("stranger")).await, 403);
        assert_eq!(get("/metrics", Some("reader")).await, 200);
        assert_eq!(get("/healthz", None).await, 200, "probes need no token");
        assert_eq!(get("/readyz", None).await, 200, "probes need no token");
        let plain = reqwest::get(base.replace("https", "http") + "/healthz").await;
        assert!(plain.is_err(), "no plain HTTP on a secured server");
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn unknown_paths_are_not_found() {
        let (server, _metrics) = start(Health::new()).await;
        assert_eq!(server.get("/nope").await.0, 404);
        server.stop().await.unwrap();
    }

    #[tokio::test]
    async fn serve_stops_when_shutdown_completes() {
        let registry = Arc::new(Registry::default());
        let result = serve(
            "127.0.0.1:0".parse().unwrap(),
            registry,
            Health::new(),
            async {},
        )
        .await;
        assert!(result.is_ok());
    }
}
