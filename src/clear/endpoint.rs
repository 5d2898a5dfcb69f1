//! Where the token endpoint lives: the documented Clear hosts per region and environment,
//! and the checks an explicit base URL override must pass.

use std::fmt;

use reqwest::Url;

use crate::resource::{Environment, Region};

/// Path of the Generate Access Token API, appended to the base URL.
pub const TOKEN_PATH: &str = "/integration/v1/authz/token";

/// A base URL that passed [`resolve_base_url`]: http(s), with a host, no trailing slash,
/// no query or fragment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The full URL of the token endpoint under this base.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.0)
    }

    /// One of the documented hosts, already in normal form.
    pub(crate) fn documented(url: &'static str) -> Self {
        Self(url.to_string())
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BaseUrlError {
    #[error(
        "failed to pick a Clear base URL: Clear documents no host for region {region} and environment {environment}; set spec.baseUrl"
    )]
    NoDocumentedHost {
        region: &'static str,
        environment: &'static str,
    },
    #[error("failed to parse baseUrl: {reason}")]
    Invalid { reason: String },
    #[error("failed to accept baseUrl: scheme {scheme} is not supported (use https)")]
    UnsupportedScheme { scheme: String },
    #[error(
        "failed to accept baseUrl: plain http is only allowed when the operator runs with --allow-http"
    )]
    PlainHttpNotAllowed,
}

/// The documented host for a region and environment, if Clear publishes one.
///
/// NB: Clear's KSA docs point to a separate host pair but the pages we could read do not
/// spell it out, and the EU docs only give production; guessing a host would send client
/// secrets to the wrong place, so those pairs require an explicit `baseUrl`.
pub fn documented_base_url(region: Region, environment: Environment) -> Option<&'static str> {
    match (region, environment) {
        (Region::India, Environment::Sandbox) => Some("https://api-sandbox.clear.in"),
        (Region::India, Environment::Production) => Some("https://api.clear.in"),
        (Region::Eu, Environment::Production) => Some("https://api.eu.cleartax.com"),
        (Region::Eu, Environment::Sandbox) | (Region::Ksa, _) => None,
    }
}

/// Picks the base URL: the override when given (validated), else the documented host.
pub fn resolve_base_url(
    region: Region,
    environment: Environment,
    override_url: Option<&str>,
    allow_http: bool,
) -> Result<BaseUrl, BaseUrlError> {
    match override_url {
        Some(raw) => validate_override(raw, allow_http),
        None => documented_base_url(region, environment)
            .map(|url| BaseUrl(url.to_string()))
            .ok_or(BaseUrlError::NoDocumentedHost {
                region: region_name(region),
                environment: environment_name(environment),
            }),
    }
}

/// Parses a base URL given by whoever runs the operator (the allow-list): the same checks
/// and normal form as an override, plain http accepted.
pub fn parse_base_url(raw: &str) -> Result<BaseUrl, BaseUrlError> {
    validate_override(raw, true)
}

fn validate_override(raw: &str, allow_http: bool) -> Result<BaseUrl, BaseUrlError> {
    let trimmed = raw.trim();
    let url = Url::parse(trimmed).map_err(|e| BaseUrlError::Invalid {
        reason: e.to_string(),
    })?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => return Err(BaseUrlError::PlainHttpNotAllowed),
        other => {
            return Err(BaseUrlError::UnsupportedScheme {
                scheme: other.to_string(),
            });
        }
    }
    // NB: URL parsing forgives `https:///host` and backslashes; the CRD pattern does not,
    // and neither do we, so that what the user wrote is what gets called.
    let after_scheme = trimmed.get(url.scheme().len()..).unwrap_or_default();
    if !after_scheme.starts_with("://")
        || after_scheme[3..].starts_with(['/', '\\'])
        || trimmed.contains('\\')
    {
        return Err(invalid("it must look like scheme://host[:port][/path]"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    // NB: credentials in the URL would end up in Status, Secrets and logs, and a query or
    // fragment cannot be combined with the token path sensibly.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("it must not carry user info"));
    }
    if url.query().is_some() {
        return Err(invalid("it must not carry a query"));
    }
    if url.fragment().is_some() {
        return Err(invalid("it must not carry a fragment"));
    }
    let serialized = url.as_str().trim_end_matches('/').to_string();
    Ok(BaseUrl(serialized))
}

fn invalid(reason: &str) -> BaseUrlError {
    BaseUrlError::Invalid {
        reason: reason.to_string(),
    }
}

fn region_name(region: Region) -> &'static str {
    match region {
        Region::India => "india",
        Region::Eu => "eu",
        Region::Ksa => "ksa",
    }
}

fn environment_name(environment: Environment) -> &'static str {
    match environment {
        Environment::Sandbox => "sandbox",
        Environment::Production => "production",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(
        region: Region,
        environment: Environment,
        override_url: Option<&str>,
        allow_http: bool,
    ) -> Result<String, BaseUrlError> {
        resolve_base_url(region, environment, override_url, allow_http)
            .map(|b| b.as_str().to_string())
    }

    #[test]
    fn documented_hosts_are_used_without_an_override() {
        use Environment::*;
        assert_eq!(
            resolve(Region::India, Sandbox, None, false).unwrap(),
            "https://api-sandbox.clear.in"
        );
        assert_eq!(
            resolve(Region::India, Production, None, false).unwrap(),
            "https://api.clear.in"
        );
        assert_eq!(
            resolve(Region::Eu, Production, None, false).unwrap(),
            "https://api.eu.cleartax.com"
        );
    }

    #[test]
    fn undocumented_pairs_need_an_override() {
        for (region, environment) in [
            (Region::Eu, Environment::Sandbox),
            (Region::Ksa, Environment::Sandbox),
            (Region::Ksa, Environment::Production),
        ] {
            let err = resolve(region, environment, None, true).unwrap_err();
            assert!(
                matches!(err, BaseUrlError::NoDocumentedHost { .. }),
                "{err:?}"
            );
            assert!(err.to_string().contains("baseUrl"), "{err}");
        }
        assert_eq!(
            resolve(
                Region::Ksa,
                Environment::Production,
                Some("https://clear.example.sa"),
                false
            )
            .unwrap(),
            "https://clear.example.sa"
        );
    }

    #[test]
    fn override_wins_over_the_documented_host_and_loses_its_trailing_slash() {
        let got = resolve(
            Region::India,
            Environment::Production,
            Some("https://proxy.internal:8443/clear/"),
            false,
        );
        assert_eq!(got.unwrap(), "https://proxy.internal:8443/clear");
        let bare = resolve(
            Region::India,
            Environment::Production,
            Some("https://proxy.internal"),
            false,
        );
        assert_eq!(bare.unwrap(), "https://proxy.internal");
    }

    #[test]
    fn token_url_appends_the_documented_path() {
        let base = resolve_base_url(Region::India, Environment::Sandbox, None, false).unwrap();
        assert_eq!(
            base.token_url(),
            "https://api-sandbox.clear.in/integration/v1/authz/token"
        );
    }

    #[test]
    fn plain_http_override_needs_allow_http() {
        let err = resolve(
            Region::India,
            Environment::Sandbox,
            Some("http://127.0.0.1:8080"),
            false,
        )
        .unwrap_err();
        assert_eq!(err, BaseUrlError::PlainHttpNotAllowed);
        let ok = resolve(
            Region::India,
            Environment::Sandbox,
            Some("http://127.0.0.1:8080"),
            true,
        );
        assert_eq!(ok.unwrap(), "http://127.0.0.1:8080");
    }

    #[test]
    fn override_without_scheme_or_host_is_invalid() {
        for bad in [
            "api.clear.in",
            "https://",
            "",
            "not a url",
            "https:///path",
            "https:/host",
            "https:\\\\host",
        ] {
            let err = resolve(Region::India, Environment::Sandbox, Some(bad), true).unwrap_err();
            assert!(
                matches!(err, BaseUrlError::Invalid { .. }),
                "{bad:?}: {err:?}"
            );
        }
    }

    #[test]
    fn override_with_other_scheme_is_rejected() {
        let err = resolve(
            Region::India,
            Environment::Sandbox,
            Some("ftp://files.example"),
            true,
        )
        .unwrap_err();
        assert_eq!(
            err,
            BaseUrlError::UnsupportedScheme {
                scheme: "ftp".into()
            }
        );
    }

    #[test]
    fn override_with_user_info_query_or_fragment_is_rejected() {
        for bad in [
            "https://user:pw@clear.example",
            "https://clear.example/?a=b",
            "https://clear.example/#frag",
        ] {
            let err = resolve(Region::India, Environment::Sandbox, Some(bad), false).unwrap_err();
            assert!(
                matches!(err, BaseUrlError::Invalid { .. }),
                "{bad}: {err:?}"
            );
            assert!(!err.to_string().contains("pw"), "{err}");
        }
    }
}
