//! The operator's small HTTP server: `/metrics` (OpenMetrics text), `/healthz` (the
//! process is alive) and `/readyz` (the controller, or a standby replica, is running).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::metrics::render_chunks;

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
}

/// The routes, for embedding or testing.
pub fn router(registry: Arc<Registry>, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, health })
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

async fn metrics(State(state): State<AppState>) -> Response {
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
