//! The HTTP client for Clear's Generate Access Token API: rustls with the ring provider,
//! connect and total timeouts, proxies from the environment, an optional extra CA bundle,
//! no redirects, a bounded body, and errors that never carry a secret or a token.

use std::error::Error as _;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, DATE, HeaderValue, LOCATION, RETRY_AFTER};

use super::endpoint::BaseUrl;
use super::error::{ClearError, is_refusal, sanitize_error_message};
use super::http_date::{parse_http_date, single_header};
use super::rate_limit::read_429;
use super::response::{
    ErrorDetails, IssuedToken, parse_error_body, parse_error_message, parse_token_body,
};
use super::secret::{ClientSecret, REDACTED};

/// Header carrying the client secret on the token call.
pub const CLIENT_SECRET_HEADER: &str = "x-clear-client-secret";

/// User-Agent sent unless configured otherwise.
pub const DEFAULT_USER_AGENT: &str = concat!("clear-operator/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub struct ClearClientConfig {
    /// Bound on DNS + TCP + TLS set-up.
    pub connect_timeout: Duration,
    /// Bound on the whole call, body included.
    pub request_timeout: Duration,
    /// Largest response body read; larger ones are refused as malformed.
    pub max_body_bytes: usize,
    /// PEM file whose certificates are trusted in addition to the system roots.
    pub ca_bundle: Option<PathBuf>,
    pub user_agent: String,
    /// Where requests go through; by default `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`.
    pub proxy: ProxyConfig,
}

/// How to reach Clear through a proxy.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum ProxyConfig {
    /// `HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` from the environment (the
    /// Kubernetes convention).
    #[default]
    FromEnvironment,
    /// Connect directly, whatever the environment says.
    Disabled,
    /// Every request through this proxy URL (it may carry credentials, so it is never
    /// printed).
    Url(String),
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FromEnvironment => f.write_str("FromEnvironment"),
            Self::Disabled => f.write_str("Disabled"),
            Self::Url(_) => write!(f, "Url({REDACTED})"),
        }
    }
}

impl Default for ClearClientConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            // NB: a token body is a few hundred bytes; error pages from proxies are larger
            // but still far below this.
            max_body_bytes: 64 * 1024,
            ca_bundle: None,
            user_agent: DEFAULT_USER_AGENT.to_string(),
            proxy: ProxyConfig::FromEnvironment,
        }
    }
}

/// Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub struct ClearClient {
    http: reqwest::Client,
    max_body_bytes: usize,
}

impl fmt::Debug for ClearClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClearClient")
            .field("max_body_bytes", &self.max_body_bytes)
            .finish_non_exhaustive()
    }
}

impl ClearClient {
    pub fn new(cfg: ClearClientConfig) -> Result<Self, ClearError> {
        // NB: reqwest is built without a default crypto provider; the first caller
        // installs ring process-wide, later calls find it already there (Err is fine).
        let _ = rustls::crypto::ring::default_provider().install_default();

        let mut builder = reqwest::Client::builder()
            .user_agent(cfg.user_agent)
            .connect_timeout(cfg.connect_timeout)
            .timeout(cfg.request_timeout)
            // NB: a redirect would resend the client secret header to wherever it points;
            // reqwest only strips its own list of sensitive headers on redirects.
            .redirect(reqwest::redirect::Policy::none());
        builder = match &cfg.proxy {
            ProxyConfig::FromEnvironment => builder,
            ProxyConfig::Disabled => builder.no_proxy(),
            ProxyConfig::Url(url) => {
                let proxy = reqwest::Proxy::all(url.as_str()).map_err(|_| ClearError::Config {
                    detail: "failed to parse the proxy URL".to_string(),
                })?;
                builder.proxy(proxy)
            }
        };
        if let Some(path) = &cfg.ca_bundle {
            let pem = std::fs::read(path).map_err(|e| ClearError::Config {
                detail: format!("failed to read CA bundle {}: {e}", path.display()),
            })?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| ClearError::Config {
                    detail: format!(
                        "failed to parse CA bundle {}: not PEM certificates",
                        path.display()
                    ),
                })?;
            if certs.is_empty() {
                return Err(ClearError::Config {
                    detail: format!(
                        "failed to use CA bundle {}: it holds no certificate",
                        path.display()
                    ),
                });
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| ClearError::Config {
            detail: format!("failed to build the HTTP client: {}", describe(&e, None)),
        })?;
        Ok(Self {
            http,
            max_body_bytes: cfg.max_body_bytes,
        })
    }

    /// `GET {base}/integration/v1/authz/token` with the client secret. Every call mints a
    /// new token and revokes the previous one: call only when a mint was decided.
    /// `now`: when the call is made; a 429's `retry_at` counts from it.
    ///
    /// The answer, by status: 200 a token (or `Malformed`); 401 `Unauthorized`; 429
    /// `RateLimited` (see `rate_limit`); any other 3xx or 4xx `Refused`; 5xx `Server`;
    /// anything else `UnexpectedStatus`.
    pub async fn mint(
        &self,
        base: &BaseUrl,
        secret: &ClientSecret,
        now: Timestamp,
    ) -> Result<IssuedToken, ClearError> {
        let header = secret_header(secret)?;
        let response = self
            .http
            .get(base.token_url())
            .header(CLIENT_SECRET_HEADER, header)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| map_request_error(&e, secret))?;
        let received_at = Instant::now();
        let status = response.status();
        let server_date = single_header(response.headers(), &DATE).and_then(parse_http_date);
        let retry_after = single_header(response.headers(), &RETRY_AFTER).map(str::to_owned);
        let body = read_bounded(response, self.max_body_bytes).await;
        match status {
            StatusCode::OK => {
                let body = body.map_err(|e| e.into_clear_error(secret))?;
                let issued = parse_token_body(&body)?;
                Ok(IssuedToken {
                    server_date,
                    received_at,
                    ..issued
                })
            }
            StatusCode::UNAUTHORIZED => {
                let (details, message) = error_details_and_message(body, secret);
                Err(ClearError::Unauthorized {
                    error_id: details.error_id,
                    code: details.code,
                    message,
                })
            }
            StatusCode::TOO_MANY_REQUESTS => {
                let text = body.as_deref().unwrap_or_default();
                let limit = read_429(now, retry_after.as_deref(), server_date, text);
                let details = error_details(body, secret);
                Err(ClearError::RateLimited {
                    retry_at: limit.retry_at,
                    quota: limit.quota,
                    error_id: details.error_id,
                })
            }
            s if is_refusal(s.as_u16()) => {
                let (details, message) = error_details_and_message(body, secret);
                Err(ClearError::Refused {
                    status: s.as_u16(),
                    error_id: details.error_id,
                    code: details.code,
                    message,
                })
            }
            s if s.is_server_error() => {
                let details = error_details(body, secret);
                Err(ClearError::Server {
                    status: s.as_u16(),
                    error_id: details.error_id,
                    code: details.code,
                })
            }
            s => Err(ClearError::UnexpectedStatus { status: s.as_u16() }),
        }
    }
}

impl ClearClient {
    /// `GET {base}/integration/v1/authz/token` **without** the client-secret header: the
    /// documented token path, a request that cannot mint (Clear's documented answer is 401,
    /// "secret missing"). It proves DNS, the proxy, TLS (with the CA bundle) and egress to
    /// `base`, and shows how Clear answers this cluster (an IP allow-list refusal, a
    /// redirect). For `clear-operator check`; the reconciler never calls it.
    pub async fn probe(&self, base: &BaseUrl) -> ProbeOutcome {
        let started = Instant::now();
        let sent = self
            .http
            .get(base.token_url())
            .header(ACCEPT, "application/json")
            .send()
            .await;
        let latency = started.elapsed();
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                return ProbeOutcome {
                    latency,
                    result: probe_failure(&e),
                };
            }
        };
        let local_now = Timestamp::now();
        let status = response.status().as_u16();
        let clock_skew = single_header(response.headers(), &DATE)
            .and_then(parse_http_date)
            .map(|date| local_now.duration_until(date));
        let location = single_header(response.headers(), &LOCATION).map(location_summary);
        let class = AnswerClass::of(status);
        // NB: a 2xx body is never read: it may hold a token.
        let (details, message) = if class == AnswerClass::Success {
            (ErrorDetails::default(), None)
        } else {
            let body = read_bounded(response, self.max_body_bytes).await;
            let message = body
                .as_deref()
                .ok()
                .and_then(parse_error_message)
                .map(|raw| sanitize_error_message(&raw, None))
                .filter(|m| !m.is_empty());
            let details = body.map(|b| parse_error_body(&b)).unwrap_or_default();
            (details, message)
        };
        ProbeOutcome {
            latency,
            result: ProbeResult::Answered(ProbeAnswer {
                status,
                class,
                code: details.code,
                error_id: details.error_id,
                message,
                location: location.filter(|_| class == AnswerClass::Redirect),
                clock_skew,
            }),
        }
    }
}

/// What [`ClearClient::probe`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    pub result: ProbeResult,
    /// From sending the request to the answer's status and headers (or to the failure).
    pub latency: Duration,
}

impl ProbeOutcome {
    /// Whether an HTTP answer came back, whatever its status.
    pub fn reachable(&self) -> bool {
        matches!(self.result, ProbeResult::Answered(_))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// An HTTP answer came back: the host is reachable through the configured path.
    Answered(ProbeAnswer),
    /// No connection: DNS, TCP, TLS or the proxy. `detail` is the error chain (no secret
    /// was involved).
    Unreachable {
        kind: UnreachableKind,
        detail: String,
    },
    /// Connected, but no answer within the request timeout.
    TimedOut,
    /// Connected, then the exchange broke (reset, protocol error).
    Broken { detail: String },
}

/// An HTTP answer to a probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAnswer {
    pub status: u16,
    pub class: AnswerClass,
    /// `error_code` and `error_id` of an `errors` body, as a mint's error keeps them.
    pub code: Option<String>,
    pub error_id: Option<String>,
    /// Clear's `error_message`, through [`sanitize_error_message`].
    pub message: Option<String>,
    /// Where a redirect points (not followed): its origin, and its path (no query) when
    /// nothing in it looks like a token (see [`location_summary`]).
    pub location: Option<String>,
    /// Clear's `Date` minus the local clock when the answer arrived (positive: Clear's
    /// clock is ahead); `None` without a readable `Date`. `Date` has whole seconds.
    pub clock_skew: Option<jiff::SignedDuration>,
}

/// What a probe's status says, the request carrying no client secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerClass {
    /// 401: Clear's documented answer to a missing secret.
    AsDocumented,
    /// Any other 4xx but 429: refused (an IP allow-list, a WAF, a wrong path).
    Refused,
    /// 429: rate limited, though no secret was sent.
    RateLimited,
    /// 3xx, not followed: likely a wrong base URL.
    Redirect,
    /// 5xx: reachable, but failing.
    ServerError,
    /// 2xx without a client secret: not what Clear documents; is this Clear?
    Success,
    /// 1xx, 600 and above.
    Other,
}

impl AnswerClass {
    pub fn of(status: u16) -> Self {
        match status {
            401 => Self::AsDocumented,
            429 => Self::RateLimited,
            200..=299 => Self::Success,
            300..=399 => Self::Redirect,
            400..=499 => Self::Refused,
            500..=599 => Self::ServerError,
            _ => Self::Other,
        }
    }
}

/// Why no connection was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreachableKind {
    /// The host name did not resolve.
    Dns,
    /// The host (or the proxy) refused the TCP connection.
    ConnectionRefused,
    /// No connection within the connect timeout.
    ConnectTimeout,
    /// The TLS handshake failed (an unknown CA: see `--ca-bundle`; a wrong name).
    Tls,
    /// The proxy refused or failed the tunnel.
    Proxy,
    /// Any other connection failure.
    Connect,
}

impl UnreachableKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dns => "DNS",
            Self::ConnectionRefused => "connection refused",
            Self::ConnectTimeout => "connect timeout",
            Self::Tls => "TLS",
            Self::Proxy => "proxy",
            Self::Connect => "connect",
        }
    }
}

/// A redirect's `Location` as it may be shown: `scheme://host[:port]` and the path without
/// query or fragment, the path through [`sanitize_error_message`] (`/[redacted]` when it
/// looks like it carries a token); a relative one is its sanitized path.
pub fn location_summary(raw: &str) -> String {
    let path_of = |path: &str| {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        if path.is_empty() || path == "/" {
            String::new()
        } else {
            let shown = sanitize_error_message(path, None);
            if shown.starts_with('/') {
                shown
            } else {
                format!("/{shown}")
            }
        }
    };
    match reqwest::Url::parse(raw) {
        Ok(url) => {
            let origin = url.origin().ascii_serialization();
            format!("{origin}{}", path_of(url.path()))
        }
        Err(_) => {
            let path = path_of(raw);
            if path.is_empty() {
                "/".to_string()
            } else {
                path
            }
        }
    }
}

fn probe_failure(e: &reqwest::Error) -> ProbeResult {
    let detail = describe(e, None);
    if e.is_connect() {
        let kind = if e.is_timeout() {
            UnreachableKind::ConnectTimeout
        } else {
            unreachable_kind(e)
        };
        ProbeResult::Unreachable { kind, detail }
    } else if e.is_timeout() {
        ProbeResult::TimedOut
    } else {
        match unreachable_kind(e) {
            // NB: a TLS or proxy failure may surface outside the connector.
            kind @ (UnreachableKind::Tls | UnreachableKind::Proxy | UnreachableKind::Dns) => {
                ProbeResult::Unreachable { kind, detail }
            }
            _ => ProbeResult::Broken { detail },
        }
    }
}

/// The kind of a connection failure, from its error chain: a rustls error (inside an
/// `io::Error`, whose own `source` skips it), an `io::ErrorKind`, or the resolver's and
/// the proxy tunnel's words.
pub(crate) fn unreachable_kind(e: &(dyn std::error::Error + 'static)) -> UnreachableKind {
    let mut found = UnreachableKind::Connect;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if err.downcast_ref::<rustls::Error>().is_some() {
            return UnreachableKind::Tls;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
            {
                return UnreachableKind::Tls;
            }
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    found = UnreachableKind::ConnectionRefused;
                }
                std::io::ErrorKind::TimedOut => found = UnreachableKind::ConnectTimeout,
                _ => {}
            }
        }
        let text = err.to_string().to_ascii_lowercase();
        if text.contains("dns error") || text.contains("failed to lookup address") {
            return UnreachableKind::Dns;
        }
        if text.contains("tunnel") || text.contains("proxy") {
            return UnreachableKind::Proxy;
        }
        if text.contains("certificate") || text.contains("handshake") {
            found = UnreachableKind::Tls;
        }
        cause = err.source();
    }
    found
}

/// The header value for the secret. Surrounding whitespace (the trailing newline of a file
/// turned into a Secret) is dropped: HTTP strips it from header values anyway.
/// Why `secret` cannot be sent as the client-secret header, if it cannot (empty, or a
/// character a header value cannot carry, such as a line break inside it).
pub fn header_problem(secret: &ClientSecret) -> Option<&'static str> {
    match secret_header(secret) {
        Ok(_) => None,
        Err(ClearError::InvalidClientSecret { detail }) => Some(detail),
        Err(_) => Some("it is not a valid HTTP header value"),
    }
}

fn secret_header(secret: &ClientSecret) -> Result<HeaderValue, ClearError> {
    let value = secret
        .expose()
        .trim_matches(|c: char| c.is_ascii_whitespace());
    if value.is_empty() {
        return Err(ClearError::InvalidClientSecret {
            detail: "it is empty",
        });
    }
    let mut header = HeaderValue::from_str(value).map_err(|_| ClearError::InvalidClientSecret {
        detail: "it is not a valid HTTP header value",
    })?;
    header.set_sensitive(true);
    Ok(header)
}

fn error_details(body: Result<Vec<u8>, BodyError>, secret: &ClientSecret) -> ErrorDetails {
    let Ok(body) = body else {
        return ErrorDetails::default();
    };
    let mut details = parse_error_body(&body);
    // NB: a server that echoes the secret into an identifier must not get it into a
    // condition message.
    let leaks = |v: &Option<String>| v.as_deref().is_some_and(|v| contains_secret(v, secret));
    if leaks(&details.code) {
        details.code = None;
    }
    if leaks(&details.error_id) {
        details.error_id = None;
    }
    details
}

/// The codes of an `errors` body as [`error_details`] keeps them, and Clear's
/// `error_message` through [`sanitize_error_message`] (`None` when absent or empty).
fn error_details_and_message(
    body: Result<Vec<u8>, BodyError>,
    secret: &ClientSecret,
) -> (ErrorDetails, Option<String>) {
    let message = body
        .as_deref()
        .ok()
        .and_then(parse_error_message)
        .map(|raw| sanitize_error_message(&raw, Some(secret)))
        .filter(|m| !m.is_empty());
    (error_details(body, secret), message)
}

enum BodyError {
    TooLarge(usize),
    Read(reqwest::Error),
}

impl BodyError {
    fn into_clear_error(self, secret: &ClientSecret) -> ClearError {
        match self {
            Self::TooLarge(limit) => ClearError::Malformed {
                detail: format!("body is larger than {limit} bytes"),
            },
            Self::Read(e) if e.is_timeout() => ClearError::Timeout,
            Self::Read(e) => ClearError::Transport {
                detail: format!(
                    "failed to read the response body: {}",
                    describe(&e, Some(secret))
                ),
            },
        }
    }
}

/// Reads the body chunk by chunk and stops as soon as it passes `limit`, so a hostile or
/// broken endpoint cannot make the operator buffer an unbounded answer.
async fn read_bounded(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|len| len > limit as u64)
    {
        return Err(BodyError::TooLarge(limit));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn map_request_error(e: &reqwest::Error, secret: &ClientSecret) -> ClearError {
    // NB: connect comes first: a connect timeout means nothing was sent, which matters to
    // `may_have_minted`.
    if e.is_connect() {
        ClearError::Connect {
            detail: describe(e, Some(secret)),
        }
    } else if e.is_timeout() {
        ClearError::Timeout
    } else {
        ClearError::Transport {
            detail: describe(e, Some(secret)),
        }
    }
}

/// The error and its causes as one line, without the URL (reqwest's own Display adds it)
/// and with any occurrence of the secret scrubbed, belt and braces.
fn describe(e: &reqwest::Error, secret: Option<&ClientSecret>) -> String {
    let head = head_without_url(e);
    let mut parts = vec![head];
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    let line = parts.join(": ");
    match secret {
        Some(secret) => scrub(&line, secret),
        None => line,
    }
}

/// reqwest's kind text ("error sending request", "request or response body error"...)
/// without the " for url (...)" suffix it appends.
fn head_without_url(e: &reqwest::Error) -> String {
    let full = e.to_string();
    match e.url() {
        Some(url) => full
            .replace(&format!(" for url ({url})"), "")
            .replace(url.as_str(), "<url>"),
        None => full,
    }
}

fn contains_secret(text: &str, secret: &ClientSecret) -> bool {
    let value = secret.expose().trim();
    !value.is_empty() && text.contains(value)
}

fn scrub(text: &str, secret: &ClientSecret) -> String {
    let value = secret.expose().trim();
    if value.is_empty() {
        text.to_string()
    } else {
        text.replace(value, REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_sends_a_versioned_user_agent() {
        let cfg = ClearClientConfig::default();
        assert_eq!(
            cfg.user_agent,
            format!("clear-operator/{}", env!("CARGO_PKG_VERSION"))
        );
        assert!(cfg.connect_timeout < cfg.request_timeout);
    }

    #[test]
    fn secret_header_drops_surrounding_whitespace_and_is_sensitive() {
        let header = secret_header(&ClientSecret::new("abc123\n".into())).unwrap();
        assert_eq!(header.to_str().unwrap(), "abc123");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("abc123"));
    }

    #[test]
    fn empty_or_unsendable_secret_is_refused_before_any_call() {
        let err = secret_header(&ClientSecret::new(" \n".into())).unwrap_err();
        assert_eq!(
            err,
            ClearError::InvalidClientSecret {
                detail: "it is empty"
            }
        );
        let err = secret_header(&ClientSecret::new("ab\ncd".into())).unwrap_err();
        assert_eq!(
            err,
            ClearError::InvalidClientSecret {
                detail: "it is not a valid HTTP header value"
            }
        );
        assert!(!format!("{err} {err:?}").contains("ab\ncd"));
    }

    #[test]
    fn scrub_replaces_every_occurrence_of_the_secret() {
        let secret = ClientSecret::new("hunter22\n".into());
        assert_eq!(
            scrub("a hunter22 b hunter22", &secret),
            "a <redacted> b <redacted>"
        );
        assert!(contains_secret("xxhunter22", &secret));
        assert!(!contains_secret("hunter2", &secret));
    }

    #[test]
    fn debug_of_the_client_shows_no_configuration_values() {
        let client = ClearClient::new(ClearClientConfig {
            user_agent: "ua-marker".into(),
            ..ClearClientConfig::default()
        })
        .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("ua-marker"), "{shown}");
        assert!(shown.starts_with("ClearClient"), "{shown}");
    }

    #[test]
    fn proxy_url_is_never_printed() {
        let cfg = ClearClientConfig {
            proxy: ProxyConfig::Url("http://user:pw-123@proxy:3128".into()),
            ..ClearClientConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("pw-123"));
        let err = ClearClient::new(ClearClientConfig {
            proxy: ProxyConfig::Url("::not a url pw-123".into()),
            ..ClearClientConfig::default()
        })
        .unwrap_err();
        assert!(matches!(&err, ClearError::Config { .. }), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("pw-123"));
    }

    #[test]
    fn missing_or_empty_ca_bundle_is_a_config_error() {
        let missing = ClearClient::new(ClearClientConfig {
            ca_bundle: Some("/nonexistent/ca.pem".into()),
            ..ClearClientConfig::default()
        })
        .unwrap_err();
        assert!(
            matches!(&missing, ClearError::Config { detail } if detail.starts_with("failed to read CA bundle")),
            "{missing:?}"
        );

        let dir = std::env::temp_dir().join(format!("clear-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = ClearClient::new(ClearClientConfig {
            ca_bundle: Some(empty),
            ..ClearClientConfig::default()
        })
        .unwrap_err();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(&err, ClearError::Config { .. }), "{err:?}");
    }

    /// An error with a message and an optional cause, to build chains by hand.
    #[derive(Debug)]
    struct Chain(
        &'static str,
        Option<Box<dyn std::error::Error + Send + Sync>>,
    );

    impl fmt::Display for Chain {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Chain {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|e| e as &(dyn std::error::Error + 'static))
        }
    }

    fn chain(head: &'static str, cause: impl std::error::Error + Send + Sync + 'static) -> Chain {
        Chain(head, Some(Box::new(cause)))
    }

    #[test]
    fn probe_statuses_are_classified() {
        use AnswerClass::*;
        for (status, class) in [
            (401, AsDocumented),
            (403, Refused),
            (400, Refused),
            (404, Refused),
            (451, Refused),
            (429, RateLimited),
            (200, Success),
            (204, Success),
            (301, Redirect),
            (302, Redirect),
            (308, Redirect),
            (500, ServerError),
            (503, ServerError),
            (101, Other),
            (600, Other),
        ] {
            assert_eq!(AnswerClass::of(status), class, "{status}");
        }
    }

    #[test]
    fn connection_failures_are_told_apart_by_their_causes() {
        use std::io::{Error as IoError, ErrorKind};
        let refused = chain(
            "client error (Connect)",
            chain(
                "tcp connect error",
                IoError::new(
                    ErrorKind::ConnectionRefused,
                    "Connection refused (os error 111)",
                ),
            ),
        );
        assert_eq!(
            unreachable_kind(&refused),
            UnreachableKind::ConnectionRefused
        );
        let dns = chain(
            "client error (Connect)",
            chain(
                "dns error",
                IoError::other("failed to lookup address information: Name or service not known"),
            ),
        );
        assert_eq!(unreachable_kind(&dns), UnreachableKind::Dns);
        let tls = chain(
            "client error (Connect)",
            IoError::new(
                ErrorKind::InvalidData,
                rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
            ),
        );
        assert_eq!(unreachable_kind(&tls), UnreachableKind::Tls);
        let proxy = chain("client error (Connect)", Chain("unsuccessful tunnel", None));
        assert_eq!(unreachable_kind(&proxy), UnreachableKind::Proxy);
        let timeout = chain(
            "client error (Connect)",
            IoError::new(ErrorKind::TimedOut, "timed out"),
        );
        assert_eq!(unreachable_kind(&timeout), UnreachableKind::ConnectTimeout);
        let other = chain("client error (Connect)", Chain("network unreachable", None));
        assert_eq!(unreachable_kind(&other), UnreachableKind::Connect);
    }

    #[test]
    fn a_location_shows_its_origin_and_a_path_without_tokens() {
        assert_eq!(
            location_summary("https://elsewhere.example/login?state=abc"),
            "https://elsewhere.example/login"
        );
        assert_eq!(
            location_summary("https://sso.example:8443/cb/9f86d081884c7d659a2feaa0c55ad015"),
            "https://sso.example:8443/[redacted]"
        );
        assert_eq!(
            location_summary("https://api.clear.in/"),
            "https://api.clear.in"
        );
        // A path with a long run of token characters is hidden whole, as a message is.
        assert_eq!(
            location_summary("/integration/v1/authz/token"),
            "/[redacted]"
        );
        assert_eq!(location_summary("/login#x"), "/login");
    }
}
