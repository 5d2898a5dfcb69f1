//! The operator's Kubernetes client: kube-rs's, without its retry layer, with a bound on
//! the requests in flight and API Priority and Fairness's `Retry-After` honoured.
//!
//! NB: kube-client re-sends a request on 429, 503 and 504 for minutes (honouring
//! Retry-After), behind the caller's back. For a reader that is harmless; for this operator
//! it is not: a token Secret write re-sent after the replica lost the Lease lands over the
//! new leader's token (issue 13: measured landing 8 s after the fence closed). Every write
//! is therefore one request, sent after the fence check, and retries are the reconciler's
//! own (the per-resource requeue, the kept token of a failed write): bounded, fenced at
//! every attempt, and visible in logs and status.
//!
//! What this client adds (issue 17, a good citizen of a shared API server):
//! - at most `api_concurrency` requests in flight (watches, the leader Lease and `/version`
//!   excepted, see [`is_exempt`]), apart from how many resources are reconciled at once
//!   (`--concurrency`, which bounds calls to Clear);
//! - a 429 (API Priority and Fairness, or max-in-flight) to a **read** is retried after the
//!   server's `Retry-After` (bounded, at most [`READ_RETRIES`] times): a read changes
//!   nothing, so re-sending it cannot land over anyone;
//! - the writes that follow a call to Clear that may have revoked the stored token (the new
//!   token's Secret, then status) run under [`with_priority`]: they take no permit, so a
//!   rotation never queues behind other resources' reads and keeps (they are at most one
//!   per reconcile, so `--concurrency` bounds them);
//! - a 429 to a **write** is never re-sent here: it comes back to the reconcile as an error
//!   whose `Status` carries the server's `Retry-After` (`details.retryAfterSeconds`, which
//!   APF's plain-text answer lacks), and the resource is requeued after it (see
//!   [`crate::reconcile::error::Error::throttled_for`]), so the retry is a new reconcile
//!   that checks the fence again.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use kube::{Client, Config, client::Body};
use tokio::sync::Semaphore;
use tower::{BoxError, Layer, Service, ServiceExt, buffer::BufferLayer};

/// The one field manager for everything the operator writes.
pub const FIELD_MANAGER: &str = "clear-operator";

/// Default of `--kube-api-concurrency`: Kubernetes requests in flight at once.
pub const DEFAULT_API_CONCURRENCY: u16 = 64;
/// How often a read refused with 429 is sent again, at most.
pub const READ_RETRIES: u32 = 3;
/// Longest `Retry-After` a read waits for; a longer one is cut to this.
pub const MAX_READ_WAIT: Duration = Duration::from_secs(10);

/// Limits of the client.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests in flight at once (watches excepted).
    pub api_concurrency: u16,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            api_concurrency: DEFAULT_API_CONCURRENCY,
        }
    }
}

tokio::task_local! {
    /// Set while the current task writes what follows a call to Clear (see [`with_priority`]).
    static PRIORITY: ();
}

/// Runs `work` with its Kubernetes requests ahead of every other request of the operator:
/// they take no permit of the in-flight bound. For the writes between a call to Clear that
/// may have revoked the stored token and the new token reaching its Secret and status: the
/// window in which consumers hold a revoked token must not grow with the operator's own
/// queue.
pub async fn with_priority<F: Future>(work: F) -> F::Output {
    PRIORITY.scope((), work).await
}

fn is_priority() -> bool {
    PRIORITY.try_with(|()| ()).is_ok()
}

/// A client for `config`, with no hidden retries of writes.
pub fn build(config: Config) -> Result<Client, kube::Error> {
    build_with(config, Limits::default())
}

/// A client for `config` with `limits`, with no hidden retries of writes.
pub fn build_with(mut config: Config, limits: Limits) -> Result<Client, kube::Error> {
    config.default_retry = false;
    let builder = kube::client::ClientBuilder::try_from(config)?;
    Ok(builder
        .with_layer(&BufferLayer::new(1024))
        .with_layer(&ApiLimitLayer {
            permits: Arc::new(Semaphore::new(usize::from(limits.api_concurrency.max(1)))),
        })
        .build())
}

/// A client from the environment (kubeconfig, or in-cluster), with no hidden retries.
pub async fn infer() -> Result<Client, kube::Error> {
    infer_with(Limits::default()).await
}

/// A client from the environment with `limits`.
pub async fn infer_with(limits: Limits) -> Result<Client, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    build_with(config, limits)
}

/// See the module documentation.
#[derive(Clone)]
struct ApiLimitLayer {
    permits: Arc<Semaphore>,
}

impl<S> Layer<S> for ApiLimitLayer {
    type Service = ApiLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiLimit {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Clone)]
struct ApiLimit<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

type LimitBody = UnsyncBoxBody<Bytes, BoxError>;

impl<S, B> Service<Request<Body>> for ApiLimit<S>
where
    S: Service<Request<Body>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<LimitBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    // NB: readiness is awaited in `call`, on a clone, once a permit is held.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        // NB: read in the caller's task: `call` runs there (the buffer is the inner layer).
        let permits = (!is_exempt(&request) && !is_priority()).then(|| self.permits.clone());
        Box::pin(async move {
            let _permit = match permits {
                Some(permits) => Some(permits.acquire_owned().await.map_err(Box::new)?),
                None => None,
            };
            send(inner, request).await
        })
    }
}

/// Sends `request`; a read refused with 429 is sent again after `Retry-After`.
async fn send<S, B>(mut inner: S, request: Request<Body>) -> Result<Response<LimitBody>, BoxError>
where
    S: Service<Request<Body>, Response = Response<B>> + Send,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let read = request.method() == http::Method::GET;
    let mut retries = 0;
    let mut request = request;
    loop {
        let again = if read && retries < READ_RETRIES {
            copy(&request)
        } else {
            None
        };
        let response = inner
            .ready()
            .await
            .map_err(Into::into)?
            .call(request)
            .await
            .map_err(Into::into)?;
        if response.status() != StatusCode::TOO_MANY_REQUESTS {
            return Ok(response.map(|body| body.map_err(Into::into).boxed_unsync()));
        }
        let wait = retry_after(&response);
        match again {
            Some(next) => {
                tracing::debug!(
                    wait_secs = wait.as_secs(),
                    "the API server asked to retry a read later (429)"
                );
                tokio::time::sleep(wait.min(MAX_READ_WAIT)).await;
                retries += 1;
                request = next;
            }
            None => return Ok(throttled(response, wait)),
        }
    }
}

/// A copy of a request whose body can be copied (a read's is empty).
fn copy(request: &Request<Body>) -> Option<Request<Body>> {
    let mut copy = Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version())
        .body(request.body().try_clone()?)
        .ok()?;
    *copy.headers_mut() = request.headers().clone();
    Some(copy)
}

/// Whether the request goes around the bound: a watch (it stays open), the leader Lease
/// (a renewal queued behind the operator's own bulk requests could miss its deadline and
/// end leadership) and `/version` (the clock's samples time their round trip).
fn is_exempt(request: &Request<Body>) -> bool {
    let watch = request.uri().query().is_some_and(|query| {
        query
            .split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    });
    let path = request.uri().path();
    watch || path == "/version" || path.starts_with("/apis/coordination.k8s.io/")
}

/// The server's `Retry-After` in seconds (APF sends one), else one second.
fn retry_after(response: &Response<impl http_body::Body>) -> Duration {
    response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), |secs| {
            Duration::from_secs(secs.clamp(1, 600))
        })
}

/// A 429 answered as a `Status` that carries the server's `Retry-After`
/// (`details.retryAfterSeconds`): APF answers in plain text, and the header does not reach
/// the caller's error otherwise.
fn throttled<B>(response: Response<B>, wait: Duration) -> Response<LimitBody> {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 429,
        "reason": "TooManyRequests",
        "message": format!("the API server is throttling requests (HTTP 429); retry after {} s", wait.as_secs()),
        "details": { "retryAfterSeconds": wait.as_secs() },
    });
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    let body = Full::new(Bytes::from(status.to_string()))
        .map_err(|never| match never {})
        .boxed_unsync();
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_the_lease_and_the_clock_go_around_the_bound_and_nothing_else() {
        let request = |uri: &str| Request::get(uri).body(Body::empty()).unwrap();
        assert!(is_exempt(&request(
            "/api/v1/secrets?watch=true&resourceVersion=5"
        )));
        assert!(is_exempt(&request(
            "/apis/coordination.k8s.io/v1/namespaces/ops/leases/clear-operator"
        )));
        assert!(is_exempt(&request("/version")));
        assert!(!is_exempt(&request("/api/v1/secrets?limit=500")));
        assert!(!is_exempt(&request("/api/v1/namespaces/a/secrets/watch")));
        assert!(!is_exempt(&request(
            "/apis/clear-operator.io/v1alpha1/namespaces/a/clearapiclients/x/status"
        )));
    }

    /// A stand-in API server: answers after 20 ms with `status` (and `Retry-After: 3`),
    /// counting the requests in flight.
    fn server(
        status: u16,
        in_flight: Arc<std::sync::atomic::AtomicUsize>,
        most: Arc<std::sync::atomic::AtomicUsize>,
    ) -> impl Service<
        Request<Body>,
        Response = Response<Full<Bytes>>,
        Error = BoxError,
        Future = impl Send,
    > + Clone
    + Send
    + 'static {
        use std::sync::atomic::Ordering::SeqCst;
        tower::service_fn(move |_request: Request<Body>| {
            let (in_flight, most) = (in_flight.clone(), most.clone());
            async move {
                let now = in_flight.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_flight.fetch_sub(1, SeqCst);
                Ok::<_, BoxError>(
                    Response::builder()
                        .status(status)
                        .header("Retry-After", "3")
                        .body(Full::new(Bytes::from_static(b"Too many requests")))
                        .unwrap(),
                )
            }
        })
    }

    #[tokio::test]
    async fn writes_after_a_call_to_clear_go_ahead_of_a_full_bound() {
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let layer = ApiLimitLayer {
            permits: Arc::new(Semaphore::new(1)),
        };
        let limited = layer.layer(server(200, in_flight, most));
        let patch = || {
            Request::patch("/api/v1/namespaces/a/secrets/token")
                .body(Body::empty())
                .unwrap()
        };
        let _hold = layer.permits.clone().acquire_owned().await.unwrap();
        let mut queued = limited.clone();
        let waiting = tokio::time::timeout(Duration::from_millis(200), queued.call(patch())).await;
        assert!(waiting.is_err(), "an ordinary write waits for a permit");
        let mut first = limited.clone();
        let answered = tokio::time::timeout(
            Duration::from_secs(5),
            with_priority(async move { first.call(patch()).await }),
        )
        .await
        .expect("a priority write takes no permit");
        assert_eq!(answered.unwrap().status(), 200);
    }

    #[tokio::test]
    async fn requests_in_flight_stay_within_the_bound_and_watches_go_around_it() {
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let layer = ApiLimitLayer {
            permits: Arc::new(Semaphore::new(2)),
        };
        let limited = layer.layer(server(200, in_flight.clone(), most.clone()));
        let calls = (0..8).map(|_| {
            let mut service = limited.clone();
            async move {
                service
                    .call(Request::get("/api/v1/secrets").body(Body::empty()).unwrap())
                    .await
                    .unwrap()
            }
        });
        futures::future::join_all(calls).await;
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 2);

        // Watches (which stay open) take no permit: two of them and a read, all at once.
        let hold = layer.permits.clone().acquire_many_owned(2).await.unwrap();
        let mut service = limited.clone();
        let watch = Request::get("/api/v1/secrets?watch=true")
            .body(Body::empty())
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), service.call(watch))
            .await
            .expect("a watch does not wait for a permit")
            .unwrap();
        drop(hold);
    }

    #[tokio::test]
    async fn a_write_refused_with_429_is_not_resent_and_carries_the_retry_after() {
        let in_flight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counting = {
            let inner = server(429, in_flight, Arc::default());
            let sent = sent.clone();
            tower::ServiceBuilder::new()
                .map_request(move |r: Request<Body>| {
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    r
                })
                .service(inner)
        };
        let mut limited = ApiLimitLayer {
            permits: Arc::new(Semaphore::new(4)),
        }
        .layer(counting);
        let patch = Request::patch("/api/v1/namespaces/a/secrets/t")
            .body(Body::from(b"{}".to_vec()))
            .unwrap();
        let response = limited.call(patch).await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            sent.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "sent once"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let status: kube::core::Status = serde_json::from_slice(&body).unwrap();
        assert_eq!(status.code, 429);
        assert_eq!(status.details.unwrap().retry_after_seconds, 3);
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_bounded() {
        let with = |v: &str| {
            Response::builder()
                .header("Retry-After", v)
                .body(Full::new(Bytes::new()))
                .unwrap()
        };
        assert_eq!(retry_after(&with("7")), Duration::from_secs(7));
        assert_eq!(retry_after(&with("0")), Duration::from_secs(1));
        assert_eq!(retry_after(&with("soon")), Duration::from_secs(1));
        assert_eq!(retry_after(&with("100000")), Duration::from_secs(600));
    }
}
