//! The metrics endpoint protected the way kubebuilder's secure metrics are: served over TLS
//! (a certificate from files, or a self-signed one generated at start), and `/metrics`
//! only for a bearer token that the API server authenticates (TokenReview) and authorizes
//! for `get` on the non-resource URL `/metrics` (SubjectAccessReview). `/healthz` and
//! `/readyz` stay open: the kubelet probes them without credentials.
//!
//! Verdicts are cached per token (by its SHA-256, never the token itself) for
//! [`ALLOWED_TTL`], so a scraper every 15 s costs two API requests a minute at most.

use std::{
    collections::HashMap,
    future::Future,
    path::PathBuf,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use k8s_openapi::api::{
    authentication::v1::{TokenReview, TokenReviewSpec},
    authorization::v1::{NonResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec},
};
use kube::{Api, Client, api::PostParams};
use sha2::{Digest, Sha256};

/// The non-resource URL and verb a scraper must be allowed (the chart's `metrics-reader`
/// ClusterRole grants exactly these).
pub const METRICS_PATH: &str = "/metrics";
pub const METRICS_VERB: &str = "get";
/// How long an allowed or forbidden verdict is reused.
pub const ALLOWED_TTL: Duration = Duration::from_secs(60);
/// How long an unauthenticated verdict is reused. NB: shorter: a token just issued may not
/// be known yet to every API server.
pub const UNAUTHENTICATED_TTL: Duration = Duration::from_secs(10);
/// Tokens remembered at most; NB: a bound, so that random bearer tokens cannot grow memory.
pub const CACHE_CAPACITY: usize = 1024;
/// Longest TLS handshake: a client that stalls it holds a task, not the server.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the API server said about a bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// TokenReview: not authenticated (401).
    Unauthenticated,
    /// SubjectAccessReview: authenticated as `user`, not allowed (403).
    Forbidden {
        user: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("failed to create a TokenReview")]
    TokenReview(#[source] kube::Error),
    #[error("failed to create a SubjectAccessReview")]
    SubjectAccessReview(#[source] kube::Error),
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("failed to read the metrics certificate {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("failed to generate a self-signed metrics certificate")]
    Generate(#[source] rcgen::Error),
    #[error("failed to build the metrics TLS configuration")]
    Config(#[source] rustls::Error),
}

type ReviewFuture = Pin<Box<dyn Future<Output = Result<Verdict, AuthError>> + Send>>;
/// Asks for the verdict on a token (the API server; tests stand in for it).
pub type Reviewer = Arc<dyn Fn(String) -> ReviewFuture + Send + Sync>;

/// Authenticates and authorizes scrapers, with a bounded cache of verdicts.
pub struct MetricsAuth {
    review: Reviewer,
    cache: Mutex<HashMap<[u8; 32], (Instant, Verdict)>>,
}

impl std::fmt::Debug for MetricsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsAuth").finish_non_exhaustive()
    }
}

impl MetricsAuth {
    /// Reviews tokens with the API server `client` talks to.
    pub fn with_api_server(client: Client) -> Self {
        Self::with_reviewer(Arc::new(move |token| {
            let client = client.clone();
            Box::pin(review_with_api_server(client, token))
        }))
    }

    pub fn with_reviewer(review: Reviewer) -> Self {
        Self {
            review,
            cache: Mutex::default(),
        }
    }

    /// The verdict on `token`, from the cache when fresh.
    pub async fn verdict(&self, token: &str) -> Result<Verdict, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((until, verdict)) = self.lock().get(&key)
            && *until > now
        {
            return Ok(verdict.clone());
        }
        let verdict = (self.review)(token.to_string()).await?;
        let ttl = match verdict {
            Verdict::Unauthenticated => UNAUTHENTICATED_TTL,
            _ => ALLOWED_TTL,
        };
        let mut cache = self.lock();
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, (until, _)| *until > now);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, (now + ttl, verdict.clone()));
        Ok(verdict)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Instant, Verdict)>> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// TokenReview, then SubjectAccessReview for `get` on `/metrics` as the token's user.
async fn review_with_api_server(client: Client, token: String) -> Result<Verdict, AuthError> {
    let reviews: Api<TokenReview> = Api::all(client.clone());
    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token),
            audiences: None,
        },
        ..Default::default()
    };
    let reviewed = reviews
        .create(&PostParams::default(), &review)
        .await
        .map_err(AuthError::TokenReview)?;
    let Some(status) = reviewed.status.filter(|s| s.authenticated == Some(true)) else {
        return Ok(Verdict::Unauthenticated);
    };
    let user = status.user.unwrap_or_default();
    let username = user.username.unwrap_or_default();
    let access: Api<SubjectAccessReview> = Api::all(client);
    let request = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(username.clone()),
            groups: user.groups,
            uid: user.uid,
            extra: user.extra,
            non_resource_attributes: Some(NonResourceAttributes {
                path: Some(METRICS_PATH.to_string()),
                verb: Some(METRICS_VERB.to_string()),
            }),
            resource_attributes: None,
        },
        ..Default::default()
    };
    let answered = access
        .create(&PostParams::default(), &request)
        .await
        .map_err(AuthError::SubjectAccessReview)?;
    if answered.status.is_some_and(|s| s.allowed) {
        Ok(Verdict::Allowed)
    } else {
        Ok(Verdict::Forbidden { user: username })
    }
}

/// An error with its sources, for a log line (the API server's answers name no token).
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer_token(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// TLS for the metrics server: the PEM certificate chain and key from files, or a
/// self-signed certificate for `localhost` generated now (scrapers then skip verification,
/// as kubebuilder's default ServiceMonitor does).
pub fn tls_config(
    files: Option<(PathBuf, PathBuf)>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let (chain, key) = match files {
        Some((cert_path, key_path)) => {
            let chain = CertificateDer::pem_file_iter(&cert_path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|source| TlsError::Read {
                    path: cert_path.clone(),
                    source,
                })?;
            let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|source| TlsError::Read {
                path: key_path.clone(),
                source,
            })?;
            (chain, key)
        }
        None => {
            let generated =
                rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
                    .map_err(TlsError::Generate)?;
            let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())
                .map_err(|e| TlsError::Config(rustls::Error::General(e.to_string())))?;
            (vec![generated.cert.der().clone()], key)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn only_bearer_tokens_are_taken_from_the_header() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[tokio::test]
    async fn verdicts_are_cached_per_token() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let auth = MetricsAuth::with_reviewer(Arc::new(move |token| {
            counted.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                Ok(match token.as_str() {
                    "good" => Verdict::Allowed,
                    "other" => Verdict::Forbidden { user: "x".into() },
                    _ => Verdict::Unauthenticated,
                })
            })
        }));
        for _ in 0..3 {
            assert_eq!(auth.verdict("good").await.unwrap(), Verdict::Allowed);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            1,
            "one review for repeated scrapes"
        );
        assert!(matches!(
            auth.verdict("other").await.unwrap(),
            Verdict::Forbidden { .. }
        ));
        assert_eq!(auth.verdict("bad").await.unwrap(), Verdict::Unauthenticated);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_self_signed_certificate_is_generated_without_files() {
        assert!(tls_config(None).is_ok());
        let missing = tls_config(Some(("/nonexistent.pem".into(), "/nonexistent.key".into())));
        assert!(matches!(missing, Err(TlsError::Read { .. })));
    }
}
