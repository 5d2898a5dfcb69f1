//! The allow-list of Clear base URLs: the hosts to which the operator may send a client
//! secret.
//!
//! NB: this is the control against a confused deputy. Whoever may create a ClearApiClient
//! chooses both `clientSecretRef` (any Secret in the namespace) and `baseUrl` (any host); the
//! operator, which may read every such Secret, would then send the Secret's value in a header
//! to that host. The allow-list is set by whoever runs the operator, not by tenants, and is
//! checked before the client secret is read, so a refused resource costs no Secret read and
//! no request anywhere.

use std::fmt;

use super::endpoint::{BaseUrl, documented_base_url};
use crate::resource::{Environment, Region};

/// The command-line flag that extends or replaces the allow-list (named in refusals, so
/// that whoever reads the condition knows what an administrator would change).
pub const ALLOWED_BASE_URL_FLAG: &str = "--allowed-base-url";

/// The base URLs the operator may call, compared after the normalisation that
/// [`resolve_base_url`](super::resolve_base_url) applies (lower-case host, no default port,
/// no trailing slash). A match is exact: a path or port that differs is another endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedBaseUrls {
    urls: Vec<BaseUrl>,
}

impl Default for AllowedBaseUrls {
    /// Only the hosts Clear documents.
    fn default() -> Self {
        Self::documented()
    }
}

impl AllowedBaseUrls {
    /// The hosts Clear documents, for every region and environment that has one.
    pub fn documented() -> Self {
        let mut urls = Vec::new();
        for region in [Region::India, Region::Eu, Region::Ksa] {
            for environment in [Environment::Sandbox, Environment::Production] {
                if let Some(url) = documented_base_url(region, environment) {
                    urls.push(BaseUrl::documented(url));
                }
            }
        }
        Self { urls }
    }

    /// The allow-list from `--allowed-base-url` values: the documented hosts and those.
    /// Plain http entries are kept (a simulator); calling them still needs `--allow-http`.
    // NB: adds, never replaces: an administrator adding a proxy must not cut off every
    // resource on the documented hosts (`--no-documented-base-urls` drops them on purpose).
    pub fn from_urls(values: &[BaseUrl]) -> Self {
        let mut allowed = Self::documented();
        for url in values {
            if !allowed.urls.contains(url) {
                allowed.urls.push(url.clone());
            }
        }
        allowed
    }

    /// The allow-list `--allowed-base-url` and `--no-documented-base-urls` ask for: `values`
    /// added to the documented hosts, or (`only`) exactly `values`. One place for `run` and
    /// `check`, so that a preflight allows what the operator allows.
    pub fn configured(values: &[BaseUrl], only: bool) -> Self {
        if only {
            Self::only(values)
        } else {
            Self::from_urls(values)
        }
    }

    /// Exactly `values`, without the documented hosts (`--no-documented-base-urls`: a
    /// cluster that must reach Clear only through a proxy, a simulator in `dev`).
    pub fn only(values: &[BaseUrl]) -> Self {
        let mut urls: Vec<BaseUrl> = Vec::with_capacity(values.len());
        for url in values {
            if !urls.contains(url) {
                urls.push(url.clone());
            }
        }
        Self { urls }
    }

    /// Whether the operator may send a client secret to `url`.
    pub fn check(&self, url: &BaseUrl) -> Result<(), BaseUrlNotAllowed> {
        if self.urls.contains(url) {
            return Ok(());
        }
        Err(BaseUrlNotAllowed { url: url.clone() })
    }

    pub fn urls(&self) -> impl Iterator<Item = &BaseUrl> {
        self.urls.iter()
    }
}

impl fmt::Display for AllowedBaseUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for url in &self.urls {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            f.write_str(url.as_str())?;
        }
        Ok(())
    }
}

/// A base URL that is not on the allow-list. Its message names the flag that would allow it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to accept baseUrl {url}: the operator only sends client secrets to allowed Clear hosts, and this one is not allowed (an administrator can allow it with `clear-operator run {ALLOWED_BASE_URL_FLAG} {url}`, chart value operator.allowedBaseUrls); the client secret was not read and nothing was sent"
)]
pub struct BaseUrlNotAllowed {
    pub url: BaseUrl,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clear::{parse_base_url, resolve_base_url};

    fn resolved(raw: &str) -> BaseUrl {
        resolve_base_url(Region::India, Environment::Sandbox, Some(raw), true).unwrap()
    }

    #[test]
    fn by_default_only_the_documented_hosts_are_allowed() {
        let allowed = AllowedBaseUrls::from_urls(&[]);
        assert_eq!(allowed, AllowedBaseUrls::default());
        for url in [
            "https://api-sandbox.clear.in",
            "https://api.clear.in",
            "https://api.eu.cleartax.com",
        ] {
            assert_eq!(allowed.check(&resolved(url)), Ok(()), "{url}");
        }
        for url in [
            "https://attacker.example",
            "https://api.clear.in.attacker.example",
            "https://api.clear.in:8443",
            "https://api.clear.in/other",
            "http://api.clear.in",
        ] {
            assert!(allowed.check(&resolved(url)).is_err(), "{url}");
        }
    }

    #[test]
    fn every_documented_pair_resolves_to_an_allowed_url() {
        let allowed = AllowedBaseUrls::default();
        for region in [Region::India, Region::Eu, Region::Ksa] {
            for environment in [Environment::Sandbox, Environment::Production] {
                if let Ok(url) = resolve_base_url(region, environment, None, false) {
                    assert_eq!(allowed.check(&url), Ok(()), "{url}");
                }
            }
        }
    }

    #[test]
    fn flags_add_to_the_documented_hosts() {
        let flags = [parse_base_url("https://proxy.internal/clear").unwrap()];
        let allowed = AllowedBaseUrls::from_urls(&flags);
        assert_eq!(
            allowed.check(&resolved("https://proxy.internal/clear")),
            Ok(())
        );
        assert_eq!(allowed.check(&resolved("https://api.clear.in")), Ok(()));
        assert_eq!(
            allowed.check(&resolved("https://api-sandbox.clear.in")),
            Ok(())
        );
        assert!(
            allowed
                .check(&resolved("https://proxy.internal/other"))
                .is_err()
        );
        let repeated = AllowedBaseUrls::from_urls(&[resolved("https://api.clear.in")]);
        assert_eq!(repeated, AllowedBaseUrls::documented(), "no duplicates");
    }

    #[test]
    fn only_drops_the_documented_hosts_and_matches_after_normalisation() {
        let flags = ["https://Proxy.Internal:443/clear/", "http://127.0.0.1:9000"]
            .map(|raw| parse_base_url(raw).unwrap());
        let allowed = AllowedBaseUrls::only(&flags);
        assert_eq!(
            allowed.to_string(),
            "https://proxy.internal/clear, http://127.0.0.1:9000"
        );
        assert_eq!(
            allowed.check(&resolved("https://proxy.internal/clear")),
            Ok(())
        );
        assert_eq!(allowed.check(&resolved("http://127.0.0.1:9000/")), Ok(()));
        assert!(allowed.check(&resolved("https://api.clear.in")).is_err());
        assert!(allowed.check(&resolved("http://127.0.0.1:9001")).is_err());
    }

    #[test]
    fn a_malformed_flag_value_is_an_error() {
        for bad in ["api.clear.in", "ftp://x.example", "https://u:p@x.example"] {
            assert!(parse_base_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_refusal_names_the_url_and_the_flag() {
        let err = AllowedBaseUrls::default()
            .check(&resolved("https://attacker.example"))
            .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("https://attacker.example"), "{message}");
        assert!(message.contains("--allowed-base-url"), "{message}");
        assert!(message.contains("operator.allowedBaseUrls"), "{message}");
    }
}
