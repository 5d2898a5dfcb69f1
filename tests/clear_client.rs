//! The Clear token client against small local HTTP servers, one behaviour each: what is
//! sent (path, secret header, User-Agent), how each status maps to a typed error, time and
//! size bounds, and that no error ever shows the client secret or a token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use clear_operator::clear::{
    BaseUrl, ClearClient, ClearClientConfig, ClearError, ClientSecret, DEFAULT_USER_AGENT,
    FailureClass, ProxyConfig, QUOTA_JITTER_MAX, quota_reset_with_jitter, resolve_base_url,
};
use clear_operator::resource::{Environment, Region};
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

const SECRET: &str = "cs-SECRETVALUE-4242";
const TOKEN: &str = "tok-TOKENVALUE-9191";

/// What the server saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    /// Set when the request came in absolute form, as through a proxy.
    host: Option<String>,
    path: String,
    headers: HeaderMap,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A canned answer the test server gives to every request.
#[derive(Clone)]
struct Canned {
    status: StatusCode,
    headers: Vec<(header::HeaderName, String)>,
    body: CannedBody,
    delay: Duration,
}

#[derive(Clone)]
enum CannedBody {
    Text(String),
    /// Streamed in chunks, without a Content-Length, so the client cannot refuse it up front.
    Chunked {
        chunk: usize,
        chunks: usize,
    },
    /// Sends the start of a body, then nothing more.
    Stalled,
}

impl Canned {
    fn json(status: u16, body: &str) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap(),
            headers: vec![(header::CONTENT_TYPE, "application/json".into())],
            body: CannedBody::Text(body.to_string()),
            delay: Duration::ZERO,
        }
    }
}

struct TestServer {
    base: BaseUrl,
    log: Log,
    task: JoinHandle<()>,
}

impl TestServer {
    async fn start(canned: Canned) -> Self {
        Self::start_under("", canned).await
    }

    /// Serves `canned` on every path; `prefix` becomes part of the base URL.
    async fn start_under(prefix: &str, canned: Canned) -> Self {
        let log: Log = Arc::default();
        let app = Router::new()
            .fallback(answer)
            .with_state((log.clone(), canned));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let base = sandbox_base_url(&format!("http://{addr}{prefix}"));
        Self { base, log, task }
    }

    fn requests(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(
    State((log, canned)): State<(Log, Canned)>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    log.lock().unwrap().push(Seen {
        host: uri.host().map(str::to_string),
        path: uri.path().to_string(),
        headers,
    });
    tokio::time::sleep(canned.delay).await;
    let body = match canned.body {
        CannedBody::Text(text) => Body::from(text),
        CannedBody::Chunked { chunk, chunks } => {
            let stream =
                futures::stream::iter((0..chunks).map(move |_| {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![b'x'; chunk]))
                }));
            Body::from_stream(stream)
        }
        CannedBody::Stalled => {
            let start = futures::stream::iter([Ok::<_, std::io::Error>(
                axum::body::Bytes::from_static(b"{\"access_token\":"),
            )]);
            Body::from_stream(futures::StreamExt::chain(start, futures::stream::pending()))
        }
    };
    let mut response = (canned.status, body).into_response();
    for (name, value) in canned.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// NB: the proxy is off so that a proxy set in the test runner's environment cannot
/// intercept calls to 127.0.0.1; the proxy path has its own test.
fn client() -> ClearClient {
    ClearClient::new(config()).unwrap()
}

fn config() -> ClearClientConfig {
    ClearClientConfig {
        proxy: ProxyConfig::Disabled,
        ..ClearClientConfig::default()
    }
}

/// A client that calls through `proxy`.
fn client_through(proxy: &TestServer) -> ClearClient {
    ClearClient::new(ClearClientConfig {
        proxy: ProxyConfig::Url(proxy.base.as_str().to_string()),
        ..config()
    })
    .unwrap()
}

/// A client whose calls give up after 300 ms.
fn client_with_a_300ms_timeout() -> ClearClient {
    ClearClient::new(ClearClientConfig {
        request_timeout: Duration::from_millis(300),
        ..config()
    })
    .unwrap()
}

/// `url` as the base URL of a sandbox resource (plain http allowed).
fn sandbox_base_url(url: &str) -> BaseUrl {
    resolve_base_url(Region::India, Environment::Sandbox, Some(url), true).unwrap()
}

/// The base URL of a local port nothing listens on.
async fn closed_port() -> BaseUrl {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    sandbox_base_url(&format!("http://{addr}"))
}

fn secret() -> ClientSecret {
    ClientSecret::new(SECRET.to_string())
}

fn now() -> Timestamp {
    "2026-11-25T16:40:00Z".parse().unwrap()
}

/// The rule every failure must keep.
fn assert_no_leak(err: &ClearError) {
    for shown in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
        assert!(!shown.contains(SECRET), "secret leaked: {shown}");
        assert!(!shown.contains(TOKEN), "token leaked: {shown}");
        assert!(!shown.contains("SECRETVALUE"), "secret leaked: {shown}");
        assert!(!shown.contains("TOKENVALUE"), "token leaked: {shown}");
    }
}

/// The error of a mint against `server`, checked for leaks.
async fn mint_err(server: &TestServer) -> ClearError {
    mint_err_at(&client(), &server.base).await
}

/// The error of a mint by `client` at `base`, checked for leaks.
async fn mint_err_at(client: &ClearClient, base: &BaseUrl) -> ClearError {
    let err = client.mint(base, &secret(), now()).await.unwrap_err();
    assert_no_leak(&err);
    err
}

#[tokio::test]
async fn ok_response_yields_the_token_and_its_expiry() {
    let body = format!(r#"{{"access_token":"{TOKEN}","valid_till":"2026-11-25T18:30:00+00:00"}}"#);
    let server = TestServer::start(Canned::json(200, &body)).await;
    let issued = client().mint(&server.base, &secret(), now()).await.unwrap();
    assert_eq!(issued.token.expose(), TOKEN);
    assert_eq!(
        issued.valid_till,
        Some("2026-11-25T18:30:00Z".parse().unwrap())
    );
    assert!(!format!("{issued:?}").contains(TOKEN));
}

#[tokio::test]
async fn request_goes_to_the_token_path_with_secret_header_and_user_agent() {
    let body = format!(r#"{{"access_token":"{TOKEN}","valid_till":null}}"#);
    let server = TestServer::start(Canned::json(200, &body)).await;
    client().mint(&server.base, &secret(), now()).await.unwrap();
    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/integration/v1/authz/token");
    assert_eq!(seen[0].headers["x-clear-client-secret"], SECRET);
    assert_eq!(seen[0].headers[header::USER_AGENT], DEFAULT_USER_AGENT);
    assert!(DEFAULT_USER_AGENT.starts_with("clear-operator/"));
}

#[tokio::test]
async fn base_url_path_prefix_is_kept_in_front_of_the_token_path() {
    let body = format!(r#"{{"access_token":"{TOKEN}"}}"#);
    let server = TestServer::start_under("/clear/proxy/", Canned::json(200, &body)).await;
    client().mint(&server.base, &secret(), now()).await.unwrap();
    assert_eq!(
        server.requests()[0].path,
        "/clear/proxy/integration/v1/authz/token"
    );
}

#[tokio::test]
async fn hyphenated_spelling_and_null_valid_till_mean_a_never_expiring_token() {
    let body = format!(r#"{{"access-token":"{TOKEN}","valid_till":null}}"#);
    let server = TestServer::start(Canned::json(200, &body)).await;
    let issued = client().mint(&server.base, &secret(), now()).await.unwrap();
    assert_eq!(issued.token.expose(), TOKEN);
    assert_eq!(issued.valid_till, None);
}

#[tokio::test]
async fn trailing_newline_of_a_secret_file_is_not_sent() {
    let body = format!(r#"{{"access_token":"{TOKEN}"}}"#);
    let server = TestServer::start(Canned::json(200, &body)).await;
    let with_newline = ClientSecret::new(format!("{SECRET}\n"));
    client()
        .mint(&server.base, &with_newline, now())
        .await
        .unwrap();
    assert_eq!(
        server.requests()[0].headers["x-clear-client-secret"],
        SECRET
    );
}

#[tokio::test]
async fn empty_secret_is_refused_without_calling_clear() {
    let server = TestServer::start(Canned::json(200, r#"{"access_token":"x"}"#)).await;
    let err = client()
        .mint(&server.base, &ClientSecret::new(String::new()), now())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClearError::InvalidClientSecret { .. }),
        "{err:?}"
    );
    assert_eq!(err.class(), FailureClass::Rejected);
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn unauthorized_keeps_code_and_id_and_redacts_a_message_that_echoes_the_secret() {
    let body = format!(
        r#"{{"errors":[{{"error_code":"INVALID_SECRET","error_message":"secret {SECRET} is not valid","error_source":"CLEAR","error_id":"err-401-abc"}}]}}"#
    );
    let server = TestServer::start(Canned::json(401, &body)).await;
    let err = mint_err(&server).await;
    assert_eq!(
        err,
        ClearError::Unauthorized {
            error_id: Some("err-401-abc".into()),
            code: Some("INVALID_SECRET".into()),
            message: Some("[redacted]".into()),
        }
    );
    assert_eq!(err.reason().as_str(), "ClientSecretRejected");
    assert_eq!(err.class(), FailureClass::Rejected);
    assert!(!err.to_string().contains("is not valid"), "{err}");
    assert!(
        err.to_string().ends_with(r#"; Clear said: "[redacted]""#),
        "{err}"
    );
}

#[tokio::test]
async fn a_plain_refusal_message_is_kept_so_an_ip_allow_list_explains_itself() {
    let message = "IP 10.1.2.3 is not in the allow list of this API client";
    let body = format!(
        r#"{{"errors":[{{"error_code":"IP_NOT_ALLOWED","error_message":"{message}","error_source":"CLEAR","error_id":"ip-1"}}]}}"#
    );
    for status in [401, 403] {
        let server = TestServer::start(Canned::json(status, &body)).await;
        let err = mint_err(&server).await;
        let shown = err.to_string();
        assert!(
            shown.ends_with(&format!(r#"; Clear said: "{message}""#)),
            "{status}: {shown}"
        );
        assert!(
            shown.contains("error_code IP_NOT_ALLOWED, error_id ip-1"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_refusal_message_with_a_token_or_control_characters_is_redacted_or_cleaned() {
    // A token-like run (here a JWT-shaped one, not the test token) is redacted.
    let body = r#"{"errors":[{"error_code":"E","error_message":"token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0 revoked"}]}"#;
    let server = TestServer::start(Canned::json(403, body)).await;
    let err = mint_err(&server).await;
    assert!(
        matches!(&err, ClearError::Refused { message: Some(m), .. } if m == "[redacted]"),
        "{err:?}"
    );
    assert!(!err.to_string().contains("eyJ"), "{err}");
    // Line breaks and control characters go: no forged lines in a log or a message.
    let body = r#"{"errors":[{"error_message":"denied\r\nX-Injected: 1\u0007"}]}"#;
    let server = TestServer::start(Canned::json(401, body)).await;
    let err = mint_err(&server).await;
    assert_eq!(
        err,
        ClearError::Unauthorized {
            error_id: None,
            code: None,
            message: Some("denied X-Injected: 1".into()),
        }
    );
}

#[tokio::test]
async fn error_id_that_echoes_the_secret_is_dropped() {
    let body = format!(r#"{{"errors":[{{"error_code":"E1","error_id":"{SECRET}"}}]}}"#);
    let server = TestServer::start(Canned::json(401, &body)).await;
    let err = mint_err(&server).await;
    assert_eq!(
        err,
        ClearError::Unauthorized {
            error_id: None,
            code: Some("E1".into()),
            message: None,
        }
    );
}

#[tokio::test]
async fn rate_limited_without_retry_after_is_the_quota_until_the_next_utc_midnight() {
    let body = r#"{"errors":[{"error_code":"RATE_LIMIT","error_message":"Too many requests","error_source":"CLEAR","error_id":"rl-1"}]}"#;
    let server = TestServer::start(Canned::json(429, body)).await;
    let err = mint_err(&server).await;
    let retry_at: Timestamp = "2026-11-26T00:00:00Z".parse().unwrap();
    assert_eq!(
        err,
        ClearError::RateLimited {
            retry_at,
            quota: true,
            error_id: Some("rl-1".into()),
        }
    );
    assert_eq!(
        err.class(),
        FailureClass::RateLimited {
            retry_at,
            quota: true
        }
    );
    assert_eq!(err.reason().as_str(), "RateLimited");
    assert!(!err.may_have_minted());
    // The caller spreads the quota's wake-up over five minutes, per key.
    let jittered = err.class().jittered_retry_at(b"ns/a").unwrap();
    assert_eq!(jittered, quota_reset_with_jitter(now(), b"ns/a"));
    assert!(jittered >= retry_at && jittered < retry_at + QUOTA_JITTER_MAX);
}

#[tokio::test]
async fn internal_server_error_carries_the_error_id() {
    let body = r#"{"errors":[{"error_code":"INTERNAL_ERROR","error_message":"boom","error_source":"CLEAR","error_id":"5e0-777"}]}"#;
    let server = TestServer::start(Canned::json(500, body)).await;
    let err = mint_err(&server).await;
    assert_eq!(
        err,
        ClearError::Server {
            status: 500,
            error_id: Some("5e0-777".into()),
            code: Some("INTERNAL_ERROR".into()),
        }
    );
    assert!(err.to_string().contains("error_id 5e0-777"), "{err}");
    assert_eq!(err.reason().as_str(), "ClearUnavailable");
    assert_eq!(err.class(), FailureClass::Transient);
}

#[tokio::test]
async fn service_unavailable_with_an_html_page_is_a_server_error_without_ids() {
    let mut canned = Canned::json(503, "<html><body>upstream down</body></html>");
    canned.headers = vec![(header::CONTENT_TYPE, "text/html".into())];
    let server = TestServer::start(canned).await;
    let err = mint_err(&server).await;
    assert_eq!(
        err,
        ClearError::Server {
            status: 503,
            error_id: None,
            code: None,
        }
    );
}

#[tokio::test]
async fn teapot_is_a_refusal() {
    let server = TestServer::start(Canned::json(418, "{}")).await;
    let err = mint_err(&server).await;
    assert_eq!(
        err,
        ClearError::Refused {
            status: 418,
            error_id: None,
            code: None,
            message: None,
        }
    );
    assert_eq!(err.reason().as_str(), "ClearRefused");
    assert!(!err.may_have_minted());
}

#[tokio::test]
async fn redirect_is_not_followed_so_the_secret_stays_put() {
    let elsewhere = TestServer::start(Canned::json(
        200,
        &format!(r#"{{"access_token":"{TOKEN}"}}"#),
    ))
    .await;
    let mut canned = Canned::json(302, "");
    canned.headers = vec![(header::LOCATION, elsewhere.base.token_url())];
    let server = TestServer::start(canned).await;
    let err = mint_err(&server).await;
    assert_eq!(err.class(), FailureClass::Refused { status: 302 });
    assert!(!err.may_have_minted());
    assert_eq!(server.requests().len(), 1);
    assert!(elsewhere.requests().is_empty());
}

#[tokio::test]
async fn slow_server_times_out() {
    let mut canned = Canned::json(200, &format!(r#"{{"access_token":"{TOKEN}"}}"#));
    canned.delay = Duration::from_secs(30);
    let server = TestServer::start(canned).await;
    let client = ClearClient::new(ClearClientConfig {
        connect_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(300),
        ..config()
    })
    .unwrap();
    let err = mint_err_at(&client, &server.base).await;
    assert_eq!(err, ClearError::Timeout);
    assert!(err.may_have_minted());
}

#[tokio::test]
async fn body_that_stalls_after_the_headers_times_out() {
    let mut canned = Canned::json(200, "");
    canned.body = CannedBody::Stalled;
    let server = TestServer::start(canned).await;
    let client = client_with_a_300ms_timeout();
    let err = mint_err_at(&client, &server.base).await;
    assert_eq!(err, ClearError::Timeout);
}

#[tokio::test]
async fn oversized_body_with_content_length_is_malformed() {
    let huge = format!(
        r#"{{"access_token":"{TOKEN}","pad":"{}"}}"#,
        "x".repeat(200_000)
    );
    let server = TestServer::start(Canned::json(200, &huge)).await;
    let err = mint_err(&server).await;
    assert_eq!(
        err,
        ClearError::Malformed {
            detail: "body is larger than 65536 bytes".into()
        }
    );
}

#[tokio::test]
async fn oversized_streamed_body_is_cut_off_and_malformed() {
    let mut canned = Canned::json(200, "");
    canned.body = CannedBody::Chunked {
        chunk: 4096,
        chunks: 1024,
    };
    let server = TestServer::start(canned).await;
    let client = ClearClient::new(ClearClientConfig {
        max_body_bytes: 10_000,
        ..config()
    })
    .unwrap();
    let err = client
        .mint(&server.base, &secret(), now())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ClearError::Malformed {
            detail: "body is larger than 10000 bytes".into()
        }
    );
}

#[tokio::test]
async fn ok_with_an_empty_token_is_malformed() {
    let server = TestServer::start(Canned::json(
        200,
        r#"{"access_token":"","valid_till":null}"#,
    ))
    .await;
    let err = mint_err(&server).await;
    assert_eq!(
        err,
        ClearError::Malformed {
            detail: "access_token is empty".into()
        }
    );
    assert_eq!(err.reason().as_str(), "ClearResponseInvalid");
}

#[tokio::test]
async fn ok_with_a_bad_date_keeps_the_token_with_an_unknown_expiry_and_does_not_show_it() {
    // NB: Clear minted (and revoked the previous token): the token is kept, the expiry is
    // said to be unknown, and the caller assumes a short one.
    let body = format!(r#"{{"access_token":"{TOKEN}","valid_till":"next tuesday"}}"#);
    let server = TestServer::start(Canned::json(200, &body)).await;
    let issued = client().mint(&server.base, &secret(), now()).await.unwrap();
    assert_eq!(issued.token.expose(), TOKEN);
    assert_eq!(issued.valid_till, None);
    assert_eq!(
        issued.expiry_unknown,
        Some("valid_till is not a date with a UTC offset")
    );
    assert!(!format!("{issued:?}").contains(TOKEN));
}

#[tokio::test]
async fn ok_with_broken_json_is_malformed() {
    let body = format!(r#"{{"access_token":"{TOKEN}""#);
    let server = TestServer::start(Canned::json(200, &body)).await;
    let err = mint_err(&server).await;
    assert!(
        matches!(&err, ClearError::Malformed { detail } if detail.starts_with("body is not JSON")),
        "{err:?}"
    );
}

#[tokio::test]
async fn proxy_url_routes_the_call_through_the_proxy() {
    let body = format!(r#"{{"access_token":"{TOKEN}"}}"#);
    let proxy = TestServer::start(Canned::json(200, &body)).await;
    let client = client_through(&proxy);
    // NB: `.invalid` never resolves, so only the proxy can have answered.
    let base = sandbox_base_url("http://clear.invalid");
    let issued = client.mint(&base, &secret(), now()).await.unwrap();
    assert_eq!(issued.token.expose(), TOKEN);
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].host.as_deref(), Some("clear.invalid"));
    assert_eq!(seen[0].path, "/integration/v1/authz/token");
}

#[tokio::test]
async fn refused_connection_is_a_connect_error_that_cannot_have_minted() {
    let base = closed_port().await;
    let err = client().mint(&base, &secret(), now()).await.unwrap_err();
    assert_no_leak(&err);
    assert!(matches!(&err, ClearError::Connect { .. }), "{err:?}");
    assert!(
        !err.to_string().contains("authz/token"),
        "the URL is left out: {err}"
    );
    assert!(!err.may_have_minted());
    assert_eq!(err.reason().as_str(), "ClearUnavailable");
}

/// Every status that proves nothing was minted: any 3xx (not followed) and any 4xx but
/// 401 and 429.
const REFUSALS: [u16; 22] = [
    300, 301, 302, 303, 307, 308, 400, 403, 404, 405, 406, 408, 409, 410, 411, 412, 413, 414, 415,
    422, 431, 451,
];

#[tokio::test]
async fn every_refusal_is_its_own_class_that_cannot_have_minted() {
    // A body that echoes the secret (in the message, and as a would-be code) must not get
    // it into the error.
    let body = format!(
        r#"{{"errors":[{{"error_code":"{SECRET}","error_message":"denied for {SECRET}","error_source":"CLEAR","error_id":"ref-1"}}]}}"#
    );
    for status in REFUSALS {
        let server = TestServer::start(Canned::json(status, &body)).await;
        let err = mint_err(&server).await;
        assert_eq!(
            err,
            ClearError::Refused {
                status,
                error_id: Some("ref-1".into()),
                code: None,
                message: Some("[redacted]".into()),
            },
            "{status}"
        );
        assert_eq!(err.class(), FailureClass::Refused { status });
        assert!(!err.may_have_minted(), "{status}");
        assert_eq!(err.reason().as_str(), "ClearRefused");
        assert_eq!(err.metric_label(), "refused");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!(
                "failed to mint a Clear access token: Clear refused the request: HTTP {status}"
            )),
            "{message}"
        );
        assert!(message.contains("error_id ref-1"), "{message}");
        assert_eq!(message.contains("redirect"), status < 400, "{message}");
        assert_eq!(server.requests().len(), 1, "{status}: called exactly once");
    }
}

#[tokio::test]
async fn a_2xx_other_than_200_may_have_minted() {
    for status in [201, 202, 204] {
        let server = TestServer::start(Canned::json(
            status,
            &format!(r#"{{"access_token":"{TOKEN}"}}"#),
        ))
        .await;
        let err = mint_err(&server).await;
        assert_eq!(err, ClearError::UnexpectedStatus { status });
        assert!(err.may_have_minted());
        assert_eq!(err.class(), FailureClass::Transient);
    }
}

/// A 429 with the given extra headers and body.
async fn rate_limited(headers: &[(header::HeaderName, &str)], body: &str) -> ClearError {
    let mut canned = Canned::json(429, body);
    for (name, value) in headers {
        canned.headers.push((name.clone(), value.to_string()));
    }
    let server = TestServer::start(canned).await;
    let err = mint_err(&server).await;
    assert!(!err.may_have_minted());
    assert_eq!(err.reason().as_str(), "RateLimited");
    err
}

fn ts(text: &str) -> Timestamp {
    text.parse().unwrap()
}

const BURST_BODY: &str = r#"{"errors":[{"error_code":"RATE_LIMIT_EXCEEDED","error_message":"Too many requests","error_source":"CLEAR"}]}"#;

#[tokio::test]
async fn rate_limited_with_retry_after_seconds_retries_then() {
    let err = rate_limited(&[(header::RETRY_AFTER, "120")], BURST_BODY).await;
    let retry_at = ts("2026-11-25T16:42:00Z");
    assert_eq!(
        err.class(),
        FailureClass::RateLimited {
            retry_at,
            quota: false
        }
    );
    assert_eq!(err.class().jittered_retry_at(b"ns/a"), Some(retry_at));
    assert!(
        err.to_string()
            .contains("no call before 2026-11-25T16:42:00Z"),
        "{err}"
    );
}

#[tokio::test]
async fn rate_limited_with_an_http_date_is_read_on_clears_clock() {
    // Clear's clock is 2 minutes behind ours (16:40): "5 minutes from now" there.
    let err = rate_limited(
        &[
            (header::RETRY_AFTER, "Wed, 25 Nov 2026 16:43:00 GMT"),
            (header::DATE, "Wed, 25 Nov 2026 16:38:00 GMT"),
        ],
        BURST_BODY,
    )
    .await;
    assert_eq!(
        err.class(),
        FailureClass::RateLimited {
            retry_at: ts("2026-11-25T16:45:00Z"),
            quota: false
        }
    );
}

#[tokio::test]
async fn rate_limited_with_a_quota_body_waits_for_midnight_despite_retry_after() {
    let body = r#"{"errors":[{"error_code":"QUOTA_EXHAUSTED","error_message":"daily quota exhausted","error_source":"CLEAR"}]}"#;
    let err = rate_limited(&[(header::RETRY_AFTER, "60")], body).await;
    assert_eq!(
        err.class(),
        FailureClass::RateLimited {
            retry_at: ts("2026-11-26T00:00:00Z"),
            quota: true
        }
    );
    assert!(
        err.to_string()
            .contains("the daily rate limit is exhausted (HTTP 429)"),
        "{err}"
    );
}

#[tokio::test]
async fn rate_limited_with_garbage_retry_after_is_the_quota() {
    for garbage in ["soon", "-5", "1.5", "Wed, 25 Nov 2026 99:00:00 GMT"] {
        let err = rate_limited(&[(header::RETRY_AFTER, garbage)], BURST_BODY).await;
        assert_eq!(
            err.class(),
            FailureClass::RateLimited {
                retry_at: ts("2026-11-26T00:00:00Z"),
                quota: true
            },
            "{garbage}"
        );
    }
}

#[tokio::test]
async fn rate_limited_retry_after_is_bounded() {
    let err = rate_limited(&[(header::RETRY_AFTER, "31536000")], BURST_BODY).await;
    assert_eq!(
        err.class(),
        FailureClass::RateLimited {
            retry_at: ts("2026-11-26T01:00:00Z"),
            quota: false
        }
    );
    let err = rate_limited(&[(header::RETRY_AFTER, "0")], BURST_BODY).await;
    assert_eq!(
        err.class(),
        FailureClass::RateLimited {
            retry_at: ts("2026-11-25T16:40:01Z"),
            quota: false
        }
    );
}

#[tokio::test]
async fn ok_response_carries_clears_date_and_when_it_arrived() {
    let mut canned = Canned::json(
        200,
        &format!(r#"{{"access_token":"{TOKEN}","valid_till":"2026-11-25T17:40:05+00:00"}}"#),
    );
    canned
        .headers
        .push((header::DATE, "Wed, 25 Nov 2026 16:40:05 GMT".into()));
    let server = TestServer::start(canned).await;
    let before = std::time::Instant::now();
    let issued = client().mint(&server.base, &secret(), now()).await.unwrap();
    let after = std::time::Instant::now();
    assert_eq!(issued.server_date, Some(ts("2026-11-25T16:40:05Z")));
    assert!(before <= issued.received_at && issued.received_at <= after);
    // The lifetime as Clear counts it: one hour.
    assert_eq!(
        issued
            .valid_till
            .unwrap()
            .duration_since(issued.server_date.unwrap()),
        jiff::SignedDuration::from_hours(1)
    );
}

#[tokio::test]
async fn ok_response_with_an_unreadable_date_has_none() {
    let mut canned = Canned::json(200, &format!(r#"{{"access_token":"{TOKEN}"}}"#));
    canned.headers.push((header::DATE, "yesterday-ish".into()));
    let server = TestServer::start(canned).await;
    let issued = client().mint(&server.base, &secret(), now()).await.unwrap();
    assert_eq!(issued.server_date, None);
    assert_eq!(issued.token.expose(), TOKEN);
}

/// The same classes against the Clear simulator, with its own faults and clock.
/// The probe of `clear-operator check`: the documented token path without a client secret.
mod probe {
    use clear_operator::clear::{
        AnswerClass, ProbeAnswer, ProbeOutcome, ProbeResult, UnreachableKind,
    };

    use super::*;

    fn answer(outcome: &ProbeOutcome) -> &ProbeAnswer {
        match &outcome.result {
            ProbeResult::Answered(answer) => answer,
            other => panic!("no answer: {other:?}"),
        }
    }

    #[tokio::test]
    async fn sends_no_client_secret_to_the_token_path() {
        let body = r#"{"errors":[{"error_code":"UNAUTHORIZED","error_message":"x-clear-client-secret header is missing or empty","error_source":"CLEAR"}]}"#;
        let mut canned = Canned::json(401, body);
        canned
            .headers
            .push((header::DATE, "Wed, 25 Nov 2026 16:40:00 GMT".into()));
        let server = TestServer::start_under("/clear", canned).await;
        let outcome = client().probe(&server.base).await;
        assert!(outcome.reachable());
        let got = answer(&outcome);
        assert_eq!((got.status, got.class), (401, AnswerClass::AsDocumented));
        assert_eq!(got.code.as_deref(), Some("UNAUTHORIZED"));
        assert_eq!(
            got.message.as_deref(),
            Some("x-clear-client-secret header is missing or empty")
        );
        // Any readable `Date` gives a skew against the local clock.
        assert!(got.clock_skew.is_some());
        let seen = server.requests();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].path, "/clear/integration/v1/authz/token");
        assert!(!seen[0].headers.contains_key("x-clear-client-secret"));
        assert_eq!(seen[0].headers[header::USER_AGENT], DEFAULT_USER_AGENT);
    }

    #[tokio::test]
    async fn a_refusal_keeps_clears_explanation_and_a_redirect_is_not_followed() {
        let message = "IP 10.1.2.3 is not in the allow list of this API client";
        let body = format!(
            r#"{{"errors":[{{"error_code":"FORBIDDEN","error_message":"{message}","error_id":"ip-9"}}]}}"#
        );
        let server = TestServer::start(Canned::json(403, &body)).await;
        let outcome = client().probe(&server.base).await;
        let got = answer(&outcome);
        assert_eq!((got.status, got.class), (403, AnswerClass::Refused));
        assert_eq!(got.message.as_deref(), Some(message));
        assert_eq!(got.error_id.as_deref(), Some("ip-9"));

        let mut canned = Canned::json(302, "{}");
        canned
            .headers
            .push((header::LOCATION, "https://elsewhere.example/login".into()));
        let server = TestServer::start(canned).await;
        let outcome = client().probe(&server.base).await;
        let got = answer(&outcome);
        assert_eq!(got.class, AnswerClass::Redirect);
        assert_eq!(
            got.location.as_deref(),
            Some("https://elsewhere.example/login")
        );
        assert_eq!(server.requests().len(), 1, "not followed");
    }

    #[tokio::test]
    async fn a_success_without_a_secret_is_reported_and_its_body_never_read() {
        let body = format!(r#"{{"access_token":"{TOKEN}","valid_till":null}}"#);
        let server = TestServer::start(Canned::json(200, &body)).await;
        let outcome = client().probe(&server.base).await;
        let got = answer(&outcome);
        assert_eq!(got.class, AnswerClass::Success);
        assert_eq!((got.message.as_ref(), got.code.as_ref()), (None, None));
        assert!(!format!("{outcome:?}").contains("TOKENVALUE"));
    }

    #[tokio::test]
    async fn a_closed_port_is_unreachable_and_a_silent_server_times_out() {
        let base = closed_port().await;
        let outcome = client().probe(&base).await;
        assert!(!outcome.reachable());
        assert!(
            matches!(
                outcome.result,
                ProbeResult::Unreachable {
                    kind: UnreachableKind::ConnectionRefused,
                    ..
                }
            ),
            "{outcome:?}"
        );

        let mut canned = Canned::json(401, "{}");
        canned.delay = Duration::from_secs(5);
        let server = TestServer::start(canned).await;
        let client = client_with_a_300ms_timeout();
        let outcome = client.probe(&server.base).await;
        assert_eq!(outcome.result, ProbeResult::TimedOut);
        assert!(!outcome.reachable());
    }

    #[tokio::test]
    async fn goes_through_the_configured_proxy() {
        let proxy = TestServer::start(Canned::json(401, "{}")).await;
        let client = client_through(&proxy);
        let base = sandbox_base_url("http://clear.invalid");
        let outcome = client.probe(&base).await;
        assert_eq!(answer(&outcome).class, AnswerClass::AsDocumented);
        let seen = proxy.requests();
        assert_eq!(seen[0].host.as_deref(), Some("clear.invalid"));
        assert!(!seen[0].headers.contains_key("x-clear-client-secret"));
    }
}

mod against_the_simulator {
    use std::sync::Arc;

    use clear_operator::clear::{AnswerClass, ProbeResult};
    use clear_sandbox::{
        ClientConfig, Fault, FaultScope, ManualClock, Sandbox, SandboxConfig, SandboxHandle,
    };

    use super::*;

    const SIM_SECRET: &str = "sim-SECRETVALUE-77";

    async fn simulator(quota: u32) -> (SandboxHandle, BaseUrl) {
        let clock = Arc::new(ManualClock::new("2026-11-25T16:40:00Z".parse().unwrap()));
        let sandbox = Sandbox::start(
            SandboxConfig::new(vec![
                ClientConfig::new(SIM_SECRET, "acme")
                    .with_lifetime(Duration::from_secs(3600))
                    .with_daily_quota(quota),
            ])
            .with_clock(clock),
        )
        .await
        .unwrap();
        let base = sandbox_base_url(sandbox.url());
        (sandbox, base)
    }

    fn sim_secret() -> ClientSecret {
        ClientSecret::new(SIM_SECRET.to_string())
    }

    /// The error of a mint with the simulator's client secret, checked for leaks.
    async fn sim_mint_err(base: &BaseUrl) -> ClearError {
        let err = client().mint(base, &sim_secret(), now()).await.unwrap_err();
        no_leak(&err);
        err
    }

    fn no_leak(err: &ClearError) {
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains("SECRETVALUE"), "secret leaked: {shown}");
        }
    }

    #[tokio::test]
    async fn a_probe_gets_the_documented_401_and_mints_nothing() {
        let (sandbox, base) = simulator(288).await;
        let outcome = client().probe(&base).await;
        let ProbeResult::Answered(answer) = &outcome.result else {
            panic!("{outcome:?}");
        };
        assert_eq!(answer.class, AnswerClass::AsDocumented);
        // The simulator's clock is fixed at 2026-11-25T16:40:00Z.
        let skew = answer.clock_skew.unwrap();
        let expected = jiff::Timestamp::now().duration_until(ts("2026-11-25T16:40:00Z"));
        assert!(
            (skew - expected).abs() < jiff::SignedDuration::from_secs(5),
            "{skew:?}"
        );
        assert_eq!(sandbox.anonymous_call_counts().with_status(401), 1);
        assert_eq!(sandbox.call_counts(SIM_SECRET).total, 0);
        assert!(sandbox.current_token(SIM_SECRET).is_none());
        sandbox.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_mint_reports_the_simulator_clock_as_clears_date() {
        let (sandbox, base) = simulator(288).await;
        let issued = client().mint(&base, &sim_secret(), now()).await.unwrap();
        assert_eq!(issued.server_date, Some(ts("2026-11-25T16:40:00Z")));
        assert_eq!(issued.valid_till, Some(ts("2026-11-25T17:40:00Z")));
        sandbox.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn refusals_leave_the_stored_token_live_and_are_not_followed() {
        let (sandbox, base) = simulator(288).await;
        let stored = client().mint(&base, &sim_secret(), now()).await.unwrap();
        for status in [302, 307, 403, 404, 405] {
            sandbox.inject_fault(
                FaultScope::Global,
                Fault::Status(StatusCode::from_u16(status).unwrap()),
                1,
            );
            let err = sim_mint_err(&base).await;
            assert_eq!(err.class(), FailureClass::Refused { status });
            assert!(!err.may_have_minted());
        }
        assert!(sandbox.is_token_valid(stored.token.expose()));
        // One mint and five refusals: no redirect was followed.
        let counts = sandbox.call_counts(SIM_SECRET);
        assert_eq!((counts.total, counts.with_status(200)), (6, 1));
        sandbox.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn injected_429s_are_read_by_retry_after_and_body() {
        let (sandbox, base) = simulator(288).await;
        let cases = [
            (Some("90"), false, ts("2026-11-25T16:41:30Z"), false),
            (
                Some("Wed, 25 Nov 2026 16:50:00 GMT"),
                false,
                ts("2026-11-25T16:50:00Z"),
                false,
            ),
            (None, false, ts("2026-11-26T00:00:00Z"), true),
            (Some("90"), true, ts("2026-11-26T00:00:00Z"), true),
            (Some("whenever"), false, ts("2026-11-26T00:00:00Z"), true),
        ];
        for (retry_after, quota_body, retry_at, quota) in cases {
            sandbox.inject_fault(
                FaultScope::Global,
                Fault::TooManyRequests {
                    retry_after: retry_after.map(str::to_string),
                    quota_body,
                },
                1,
            );
            let err = sim_mint_err(&base).await;
            assert_eq!(
                err.class(),
                FailureClass::RateLimited { retry_at, quota },
                "{retry_after:?} {quota_body}"
            );
            assert!(!err.may_have_minted());
        }
        sandbox.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn the_simulators_own_quota_answer_is_the_quota() {
        let (sandbox, base) = simulator(0).await;
        let err = sim_mint_err(&base).await;
        assert_eq!(
            err.class(),
            FailureClass::RateLimited {
                retry_at: ts("2026-11-26T00:00:00Z"),
                quota: true
            }
        );
        sandbox.shutdown().await.unwrap();
    }
}

/// HTTPS with a private CA: the CA bundle option is what makes it trusted.
mod tls {
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::Arc;

    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio::net::TcpStream;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::server::TlsStream;

    use super::*;

    struct TlsListener {
        tcp: TcpListener,
        acceptor: TlsAcceptor,
    }

    impl axum::serve::Listener for TlsListener {
        type Io = TlsStream<TcpStream>;
        type Addr = SocketAddr;

        async fn accept(&mut self) -> (Self::Io, Self::Addr) {
            loop {
                let Ok((stream, addr)) = self.tcp.accept().await else {
                    continue;
                };
                // NB: a client that refuses our certificate just ends this handshake.
                if let Ok(tls) = self.acceptor.accept(stream).await {
                    return (tls, addr);
                }
            }
        }

        fn local_addr(&self) -> std::io::Result<SocketAddr> {
            self.tcp.local_addr()
        }
    }

    struct TlsServer {
        base: BaseUrl,
        ca_pem_path: PathBuf,
        log: Log,
        task: JoinHandle<()>,
    }

    impl Drop for TlsServer {
        fn drop(&mut self) {
            self.task.abort();
            let _ = std::fs::remove_file(&self.ca_pem_path);
        }
    }

    /// A private CA, a certificate for 127.0.0.1 signed by it, and a server using it.
    async fn start_tls(canned: Canned) -> TlsServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &ca)
            .unwrap();

        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];

        let log: Log = Arc::default();
        let app = Router::new()
            .fallback(answer)
            .with_state((log.clone(), canned));
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        };
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });

        let ca_pem_path = std::env::temp_dir().join(format!(
            "clear-client-test-ca-{}-{}.pem",
            std::process::id(),
            addr.port()
        ));
        std::fs::write(&ca_pem_path, ca.pem()).unwrap();
        let base = resolve_base_url(
            Region::India,
            Environment::Production,
            Some(&format!("https://{addr}")),
            false,
        )
        .unwrap();
        TlsServer {
            base,
            ca_pem_path,
            log,
            task,
        }
    }

    #[tokio::test]
    async fn ca_bundle_makes_a_private_ca_trusted() {
        let body = format!(r#"{{"access_token":"{TOKEN}","valid_till":null}}"#);
        let server = start_tls(Canned::json(200, &body)).await;
        let client = ClearClient::new(ClearClientConfig {
            ca_bundle: Some(server.ca_pem_path.clone()),
            ..config()
        })
        .unwrap();
        let issued = client.mint(&server.base, &secret(), now()).await.unwrap();
        assert_eq!(issued.token.expose(), TOKEN);
        assert_eq!(
            server.log.lock().unwrap()[0].headers["x-clear-client-secret"],
            SECRET
        );
    }

    #[tokio::test]
    async fn unknown_ca_is_refused_before_the_secret_is_sent() {
        let body = format!(r#"{{"access_token":"{TOKEN}","valid_till":null}}"#);
        let server = start_tls(Canned::json(200, &body)).await;
        let err = mint_err_at(&client(), &server.base).await;
        assert!(
            matches!(&err, ClearError::Connect { detail } if detail.contains("certificate")),
            "{err:?}"
        );
        assert!(!err.may_have_minted());
        assert!(server.log.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_probe_needs_the_ca_bundle_for_a_private_ca() {
        let server = start_tls(Canned::json(401, "{}")).await;
        let outcome = client().probe(&server.base).await;
        assert!(
            matches!(
                outcome.result,
                clear_operator::clear::ProbeResult::Unreachable {
                    kind: clear_operator::clear::UnreachableKind::Tls,
                    ..
                }
            ),
            "{outcome:?}"
        );
        let trusting = ClearClient::new(ClearClientConfig {
            ca_bundle: Some(server.ca_pem_path.clone()),
            ..config()
        })
        .unwrap();
        assert!(trusting.probe(&server.base).await.reachable());
        assert_eq!(server.log.lock().unwrap().len(), 1);
    }
}
