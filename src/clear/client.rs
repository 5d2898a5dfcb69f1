//! The HTTP client for Clear's Generate Access Token API: rustls with the ring provider,
//! connect and total timeouts, proxies from the environment, an optional extra CA bundle,
//! no redirects, a bounded body, and errors that never carry a secret or a token.

use std::error::Error as _;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, DATE, HeaderValue, RETRY_AFTER};

use super::endpoint::BaseUrl;
use super::error::{ClearError, is_refusal};
use super::http_date::{parse_http_date, single_header};
use super::rate_limit::read_429;
use super::response::{ErrorDetails, IssuedToken, parse_error_body, parse_token_body};
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
                let details = error_details(body, secret);
                Err(ClearError::Unauthorized {
                    error_id: details.error_id,
                    code: details.code,
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
                let details = error_details(body, secret);
                Err(ClearError::Refused {
                    status: s.as_u16(),
                    error_id: details.error_id,
                    code: details.code,
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
}
