//! The simulated Clear account: API clients, their current tokens, quota counters, call
//! counts and pending faults, with the rules of the token and whoami endpoints. No I/O:
//! callers pass "now", so every rule is testable without a server or a real clock.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, NaiveDate, SubsecRound, TimeDelta, Utc};
use serde::Serialize;

use crate::config::{ClientConfig, Environment, InvalidClient, TokenExpiry, TokenField};
use crate::counts::CallCounts;
use crate::faults::{Fault, FaultBook, FaultScope, OddBody};
use crate::secret::{AccessToken, ClientSecret};

/// The token currently issued to a client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: AccessToken,
    /// `None` when the client's tokens never expire.
    pub valid_till: Option<DateTime<Utc>>,
}

/// What the token endpoint answers a call (before any delay is served).
#[derive(Debug)]
pub(crate) enum TokenAnswer {
    Minted {
        client: String,
        issued: IssuedToken,
        field: TokenField,
        revoked_previous: bool,
        delay: Option<Duration>,
        /// The answer departs from the documented body (see [`OddBody`]).
        odd: Option<OddBody>,
    },
    MissingSecret,
    UnknownSecret,
    QuotaExceeded {
        client: String,
        quota: u32,
    },
    Faulted {
        client: String,
        fault: Fault,
    },
}

impl TokenAnswer {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Minted { .. } => StatusCode::OK,
            Self::MissingSecret | Self::UnknownSecret => StatusCode::UNAUTHORIZED,
            Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Faulted { fault, .. } => match fault {
                Fault::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
                Fault::Status(status) => *status,
                Fault::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
                Fault::MalformedBody | Fault::Delay(_) | Fault::OddBody(_) => StatusCode::OK,
            },
        }
    }
}

/// What a live token is allowed to do, as the whoami endpoint reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TokenIdentity {
    #[serde(skip)]
    pub client: String,
    pub workspace: String,
    pub products: Vec<String>,
    pub environment: Environment,
    pub valid_till: Option<DateTime<Utc>>,
}

/// Why the whoami endpoint refuses a token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenRefusal {
    Missing,
    UnknownOrRevoked,
    Expired,
}

/// Errors of the runtime administration of clients.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AdminError {
    #[error("failed to find the client: no client has this secret or name")]
    UnknownClient,
    #[error("failed to add the client: another client already has this secret")]
    DuplicateSecret,
    #[error("failed to add the client: another client is already named {0:?}")]
    DuplicateName(String),
    #[error(transparent)]
    Invalid(#[from] InvalidClient),
}

/// A client as the admin API shows it: everything but the secret and the token.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientView {
    pub name: String,
    pub workspace: String,
    pub products: Vec<String>,
    pub environment: Environment,
    pub token_lifetime_seconds: Option<u64>,
    pub daily_quota: u32,
    pub token_field: TokenField,
    pub has_token: bool,
    pub token_live: bool,
    pub valid_till: Option<DateTime<Utc>>,
    pub quota_used_today: u64,
    pub counts: CallCounts,
}

struct ClientState {
    name: String,
    config: ClientConfig,
    current: Option<IssuedToken>,
}

#[derive(Default)]
pub(crate) struct Registry {
    /// Keyed by client secret.
    clients: HashMap<String, ClientState>,
    /// Current token value to its client's secret; revoked tokens are removed at once.
    tokens: HashMap<String, String>,
    /// Keyed by the presented secret, known or not.
    counts: HashMap<String, CallCounts>,
    /// Calls that reached the quota check, per secret and UTC day.
    quota_used: HashMap<String, BTreeMap<NaiveDate, u64>>,
    /// Calls without a (non-empty) secret.
    anonymous: CallCounts,
    faults: FaultBook,
    names_generated: u64,
}

impl Registry {
    pub(crate) fn add_client(&mut self, mut config: ClientConfig) -> Result<String, AdminError> {
        config.validate()?;
        let secret = config.client_secret.expose().to_owned();
        if self.clients.contains_key(&secret) {
            return Err(AdminError::DuplicateSecret);
        }
        let name = match config.name.take() {
            Some(name) => name,
            None => self.generate_name(),
        };
        if self.clients.values().any(|c| c.name == name) {
            return Err(AdminError::DuplicateName(name));
        }
        config.name = Some(name.clone());
        self.clients.insert(
            secret,
            ClientState {
                name: name.clone(),
                config,
                current: None,
            },
        );
        Ok(name)
    }

    fn generate_name(&mut self) -> String {
        loop {
            self.names_generated += 1;
            let name = format!("client-{}", self.names_generated);
            if !self.clients.values().any(|c| c.name == name) {
                return name;
            }
        }
    }

    /// Deletes the API client; its token stops working at once, as in Clear.
    pub(crate) fn remove_client(&mut self, secret: &str) -> Result<String, AdminError> {
        let state = self
            .clients
            .remove(secret)
            .ok_or(AdminError::UnknownClient)?;
        if let Some(issued) = state.current {
            self.tokens.remove(issued.token.expose());
        }
        Ok(state.name)
    }

    /// Replaces a client's secret. The old secret gets 401 from now on; the token already
    /// issued keeps working (Clear documents no link between the two); the quota counts
    /// per secret, so the new secret starts afresh.
    pub(crate) fn rotate_secret(
        &mut self,
        old: &str,
        new: ClientSecret,
    ) -> Result<String, AdminError> {
        if new.expose().trim().is_empty() {
            return Err(AdminError::Invalid(InvalidClient::EmptySecret));
        }
        if self.clients.contains_key(new.expose()) {
            return Err(AdminError::DuplicateSecret);
        }
        let mut state = self.clients.remove(old).ok_or(AdminError::UnknownClient)?;
        let new_key = new.expose().to_owned();
        state.config.client_secret = new;
        if let Some(issued) = &state.current {
            self.tokens
                .insert(issued.token.expose().to_owned(), new_key.clone());
        }
        let name = state.name.clone();
        self.clients.insert(new_key, state);
        Ok(name)
    }

    pub(crate) fn secret_of(&self, name: &str) -> Option<ClientSecret> {
        self.clients
            .values()
            .find(|c| c.name == name)
            .map(|c| c.config.client_secret.clone())
    }

    /// Answers a token call and records it in the counters.
    pub(crate) fn request_token(
        &mut self,
        secret: Option<&str>,
        now: DateTime<Utc>,
    ) -> TokenAnswer {
        let secret = secret.filter(|s| !s.trim().is_empty());
        let answer = self.decide_token(secret, now);
        let day = now.date_naive();
        let status = answer.status().as_u16();
        match secret {
            Some(secret) => self
                .counts
                .entry(secret.to_owned())
                .or_default()
                .record(day, status),
            None => self.anonymous.record(day, status),
        }
        answer
    }

    fn decide_token(&mut self, secret: Option<&str>, now: DateTime<Utc>) -> TokenAnswer {
        let Some(secret) = secret else {
            return TokenAnswer::MissingSecret;
        };
        let Some(client) = self.clients.get_mut(secret) else {
            return TokenAnswer::UnknownSecret;
        };
        // NB: every call of a known secret reaches the quota check and counts, the
        // refused ones too; the 289th call of a day is the first to get 429.
        let used = self
            .quota_used
            .entry(secret.to_owned())
            .or_default()
            .entry(now.date_naive())
            .or_default();
        *used += 1;
        if *used > u64::from(client.config.daily_quota) {
            return TokenAnswer::QuotaExceeded {
                client: client.name.clone(),
                quota: client.config.daily_quota,
            };
        }
        let (delay, odd) = match self.faults.take(secret) {
            Some(Fault::Delay(delay)) => (Some(delay), None),
            Some(Fault::OddBody(odd)) => (None, Some(odd)),
            Some(fault) => {
                return TokenAnswer::Faulted {
                    client: client.name.clone(),
                    fault,
                };
            }
            None => (None, None),
        };
        let length = match odd {
            Some(OddBody::LongToken) => 302,
            _ => client.config.token_length,
        };
        let issued = IssuedToken {
            token: AccessToken::generate(length),
            valid_till: compute_valid_till(client.config.expiry, now),
        };
        let previous = client.current.replace(issued.clone());
        let revoked_previous = match previous {
            Some(previous) => {
                self.tokens.remove(previous.token.expose());
                true
            }
            None => false,
        };
        self.tokens
            .insert(issued.token.expose().to_owned(), secret.to_owned());
        TokenAnswer::Minted {
            client: client.name.clone(),
            issued,
            field: client.config.token_field,
            revoked_previous,
            delay,
            odd,
        }
    }

    /// The scope of `token` if it is the current, unexpired token of some client.
    pub(crate) fn identify(
        &self,
        token: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<TokenIdentity, TokenRefusal> {
        let token = token
            .filter(|t| !t.trim().is_empty())
            .ok_or(TokenRefusal::Missing)?;
        let client = self
            .tokens
            .get(token)
            .and_then(|secret| self.clients.get(secret))
            .ok_or(TokenRefusal::UnknownOrRevoked)?;
        let issued = client
            .current
            .as_ref()
            .ok_or(TokenRefusal::UnknownOrRevoked)?;
        if is_expired(issued, now) {
            return Err(TokenRefusal::Expired);
        }
        Ok(TokenIdentity {
            client: client.name.clone(),
            workspace: client.config.workspace.clone(),
            products: client.config.products.clone(),
            environment: client.config.environment,
            valid_till: issued.valid_till,
        })
    }

    pub(crate) fn current_token(&self, secret: &str) -> Option<IssuedToken> {
        self.clients.get(secret)?.current.clone()
    }

    pub(crate) fn call_counts(&self, secret: &str) -> CallCounts {
        self.counts.get(secret).cloned().unwrap_or_default()
    }

    pub(crate) fn anonymous_counts(&self) -> CallCounts {
        self.anonymous.clone()
    }

    pub(crate) fn total_counts(&self) -> CallCounts {
        let mut total = self.anonymous.clone();
        for counts in self.counts.values() {
            total.merge(counts);
        }
        total
    }

    /// Calls of presented secrets that belong to no current client.
    pub(crate) fn unknown_secret_counts(&self) -> CallCounts {
        let mut total = CallCounts::default();
        for (secret, counts) in &self.counts {
            if !self.clients.contains_key(secret) {
                total.merge(counts);
            }
        }
        total
    }

    pub(crate) fn quota_used(&self, secret: &str, day: NaiveDate) -> u64 {
        self.quota_used
            .get(secret)
            .and_then(|days| days.get(&day))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn inject_fault(&mut self, scope: FaultScope, fault: Fault, times: u32) {
        self.faults.inject(scope, fault, times);
    }

    pub(crate) fn clear_faults(&mut self) {
        self.faults.clear();
    }

    pub(crate) fn pending_faults(&self) -> u64 {
        self.faults.pending()
    }

    pub(crate) fn client_views(&self, now: DateTime<Utc>) -> Vec<ClientView> {
        let mut views: Vec<ClientView> = self
            .clients
            .iter()
            .map(|(secret, client)| ClientView {
                name: client.name.clone(),
                workspace: client.config.workspace.clone(),
                products: client.config.products.clone(),
                environment: client.config.environment,
                token_lifetime_seconds: match client.config.expiry {
                    TokenExpiry::After(lifetime) => Some(lifetime.as_secs()),
                    TokenExpiry::Never => None,
                },
                daily_quota: client.config.daily_quota,
                token_field: client.config.token_field,
                has_token: client.current.is_some(),
                token_live: client
                    .current
                    .as_ref()
                    .is_some_and(|issued| !is_expired(issued, now)),
                valid_till: client.current.as_ref().and_then(|i| i.valid_till),
                quota_used_today: self.quota_used(secret, now.date_naive()),
                counts: self.call_counts(secret),
            })
            .collect();
        views.sort_by(|a, b| a.name.cmp(&b.name));
        views
    }
}

/// Clear reports `valid_till` to the second; the simulator expires the token at exactly
/// the reported instant so clients and server agree.
fn compute_valid_till(expiry: TokenExpiry, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match expiry {
        TokenExpiry::Never => None,
        TokenExpiry::After(lifetime) => {
            let lifetime = TimeDelta::from_std(lifetime).unwrap_or(TimeDelta::MAX);
            Some(
                now.trunc_subsecs(0)
                    .checked_add_signed(lifetime)
                    .unwrap_or(DateTime::<Utc>::MAX_UTC),
            )
        }
    }
}

fn is_expired(issued: &IssuedToken, now: DateTime<Utc>) -> bool {
    issued.valid_till.is_some_and(|till| now >= till)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn minted(answer: TokenAnswer) -> IssuedToken {
        match answer {
            TokenAnswer::Minted { issued, .. } => issued,
            other => panic!("expected a mint, got {other:?}"),
        }
    }

    #[test]
    fn valid_till_is_truncated_to_the_second_and_expires_exactly_then() {
        let mut registry = Registry::default();
        registry
            .add_client(ClientConfig::new("s", "w").with_lifetime(Duration::from_secs(600)))
            .unwrap();
        let issued = minted(registry.request_token(Some("s"), at("2026-11-25T10:00:00.900Z")));
        assert_eq!(issued.valid_till, Some(at("2026-11-25T10:10:00Z")));
        let token = Some(issued.token.expose());
        assert!(
            registry
                .identify(token, at("2026-11-25T10:09:59.999Z"))
                .is_ok()
        );
        assert_eq!(
            registry.identify(token, at("2026-11-25T10:10:00Z")),
            Err(TokenRefusal::Expired)
        );
    }

    #[test]
    fn refused_calls_count_against_the_quota_of_the_day() {
        let mut registry = Registry::default();
        registry
            .add_client(ClientConfig::new("s", "w").with_daily_quota(1))
            .unwrap();
        let now = at("2026-11-25T10:00:00Z");
        minted(registry.request_token(Some("s"), now));
        for _ in 0..3 {
            assert!(matches!(
                registry.request_token(Some("s"), now),
                TokenAnswer::QuotaExceeded { quota: 1, .. }
            ));
        }
        assert_eq!(registry.quota_used("s", now.date_naive()), 4);
        assert_eq!(registry.call_counts("s").with_status(429), 3);
    }

    #[test]
    fn rotation_keeps_the_issued_token_and_refuses_the_old_secret() {
        let mut registry = Registry::default();
        registry.add_client(ClientConfig::new("old", "w")).unwrap();
        let now = at("2026-11-25T10:00:00Z");
        let issued = minted(registry.request_token(Some("old"), now));
        registry
            .rotate_secret("old", ClientSecret::new("new"))
            .unwrap();
        assert!(matches!(
            registry.request_token(Some("old"), now),
            TokenAnswer::UnknownSecret
        ));
        assert!(registry.identify(Some(issued.token.expose()), now).is_ok());
        let next = minted(registry.request_token(Some("new"), now));
        assert_eq!(
            registry.identify(Some(issued.token.expose()), now),
            Err(TokenRefusal::UnknownOrRevoked)
        );
        assert!(registry.identify(Some(next.token.expose()), now).is_ok());
    }

    #[test]
    fn duplicate_secrets_and_names_are_refused() {
        let mut registry = Registry::default();
        registry
            .add_client(ClientConfig::new("s", "w").with_name("a"))
            .unwrap();
        assert_eq!(
            registry.add_client(ClientConfig::new("s", "w")),
            Err(AdminError::DuplicateSecret)
        );
        assert_eq!(
            registry.add_client(ClientConfig::new("t", "w").with_name("a")),
            Err(AdminError::DuplicateName("a".into()))
        );
        assert_eq!(
            registry.add_client(ClientConfig::new("t", "w")),
            Ok("client-1".into())
        );
    }
}
