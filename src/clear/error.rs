//! Everything that can go wrong when asking Clear for a token, as a typed enum whose
//! variants map to a condition reason, a backoff class and a metric label. No variant
//! carries a client secret, a token, a header value or a Clear `error_message` (which may
//! echo input).

use jiff::Timestamp;

use crate::reason::Reason;

/// How the reconciler should back off after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Clear refused the client secret: retrying with the same secret cannot help; wait
    /// until it changes.
    Rejected,
    /// The daily quota is spent: no call may succeed before `retry_at` (next 00:00 UTC).
    RateLimited { retry_at: Timestamp },
    /// Worth retrying with exponential backoff.
    Transient,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClearError {
    #[error("failed to mint a Clear access token: the client secret was rejected (HTTP 401{})", ids(code.as_deref(), error_id.as_deref()))]
    Unauthorized {
        error_id: Option<String>,
        code: Option<String>,
    },
    #[error("failed to mint a Clear access token: the daily rate limit is exhausted (HTTP 429{}); retry at {retry_at}", ids(None, error_id.as_deref()))]
    RateLimited {
        retry_at: Timestamp,
        error_id: Option<String>,
    },
    #[error("failed to mint a Clear access token: Clear answered HTTP {status}{}", ids(code.as_deref(), error_id.as_deref()))]
    Server {
        status: u16,
        error_id: Option<String>,
        code: Option<String>,
    },
    #[error("failed to mint a Clear access token: the request timed out")]
    Timeout,
    /// No connection could be set up (DNS, TCP, TLS handshake, proxy): the request was
    /// never sent, so Clear cannot have minted.
    #[error("failed to connect to Clear: {detail}")]
    Connect { detail: String },
    /// The request failed after the connection was made (reset, protocol error, body read).
    #[error("failed to mint a Clear access token: {detail}")]
    Transport { detail: String },
    #[error("failed to mint a Clear access token: the response is invalid: {detail}")]
    Malformed { detail: String },
    #[error("failed to mint a Clear access token: unexpected HTTP status {status}")]
    UnexpectedStatus { status: u16 },
    /// The client secret cannot be sent at all (empty, or not a valid header value), so no
    /// request was made.
    #[error("failed to mint a Clear access token: the client secret is unusable: {detail}")]
    InvalidClientSecret { detail: &'static str },
    #[error("failed to set up the Clear client: {detail}")]
    Config { detail: String },
}

/// ` (error_code X, error_id Y)` for quoting to Clear support, or nothing.
fn ids(code: Option<&str>, error_id: Option<&str>) -> String {
    let parts: Vec<String> = [("error_code", code), ("error_id", error_id)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k} {v}")))
        .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(", {}", parts.join(", "))
    }
}

impl ClearError {
    /// Condition/Event reason: ClientSecretRejected | RateLimited | ClearUnavailable |
    /// ClearResponseInvalid.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Unauthorized { .. } | Self::InvalidClientSecret { .. } => {
                Reason::ClientSecretRejected
            }
            Self::RateLimited { .. } => Reason::RateLimited,
            Self::Server { .. }
            | Self::Timeout
            | Self::Connect { .. }
            | Self::Transport { .. }
            | Self::Config { .. } => Reason::ClearUnavailable,
            Self::Malformed { .. } | Self::UnexpectedStatus { .. } => Reason::ClearResponseInvalid,
        }
    }

    /// For the backoff policy.
    pub fn class(&self) -> FailureClass {
        match self {
            Self::Unauthorized { .. } | Self::InvalidClientSecret { .. } => FailureClass::Rejected,
            Self::RateLimited { retry_at, .. } => FailureClass::RateLimited {
                retry_at: *retry_at,
            },
            Self::Server { .. }
            | Self::Timeout
            | Self::Connect { .. }
            | Self::Transport { .. }
            | Self::Malformed { .. }
            | Self::UnexpectedStatus { .. }
            | Self::Config { .. } => FailureClass::Transient,
        }
    }

    /// Label value for `clear_operator_mints_total{result}` (successes use `issued`).
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Unauthorized { .. } => "unauthorized",
            Self::RateLimited { .. } => "rate_limited",
            Self::Server { .. } => "server_error",
            Self::Timeout => "timeout",
            Self::Connect { .. } => "connect_error",
            Self::Transport { .. } => "transport_error",
            Self::Malformed { .. } => "malformed",
            Self::UnexpectedStatus { .. } => "unexpected_status",
            Self::InvalidClientSecret { .. } => "invalid_client_secret",
            Self::Config { .. } => "config_error",
        }
    }

    /// Whether Clear may have minted (and so revoked the previous token) although this call
    /// failed: conservatively true whenever the request may have reached Clear and the
    /// answer was not a clean refusal (401, 429); false when the request was never sent
    /// (connection failures, unusable secret, set-up errors). The reconciler
    /// can use it to presume the stored token revoked.
    pub fn may_have_minted(&self) -> bool {
        matches!(
            self,
            Self::Server { .. }
                | Self::Timeout
                | Self::Transport { .. }
                | Self::Malformed { .. }
                | Self::UnexpectedStatus { .. }
        )
    }
}

/// Start of the next UTC day strictly after `now`: when Clear's daily quota resets.
pub fn next_utc_midnight(now: Timestamp) -> Timestamp {
    const DAY: i64 = 86_400;
    let next = (now.as_second().div_euclid(DAY) + 1) * DAY;
    // NB: the clamp only matters at the very end of jiff's range, never in practice.
    Timestamp::from_second(next).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn next_utc_midnight_is_the_following_day_start() {
        assert_eq!(
            next_utc_midnight(ts("2026-11-25T16:37:00Z")),
            ts("2026-11-26T00:00:00Z")
        );
        assert_eq!(
            next_utc_midnight(ts("2026-11-25T23:59:59.999Z")),
            ts("2026-11-26T00:00:00Z")
        );
        assert_eq!(
            next_utc_midnight(ts("2026-12-31T12:00:00+05:30")),
            ts("2027-01-01T00:00:00Z")
        );
    }

    #[test]
    fn next_utc_midnight_at_exactly_midnight_is_a_day_later() {
        assert_eq!(
            next_utc_midnight(ts("2026-11-26T00:00:00Z")),
            ts("2026-11-27T00:00:00Z")
        );
    }

    #[test]
    fn reasons_classes_and_labels_follow_the_failure() {
        let retry_at = ts("2026-11-26T00:00:00Z");
        let cases = [
            (
                ClearError::Unauthorized {
                    error_id: None,
                    code: None,
                },
                "ClientSecretRejected",
                FailureClass::Rejected,
            ),
            (
                ClearError::InvalidClientSecret {
                    detail: "it is empty",
                },
                "ClientSecretRejected",
                FailureClass::Rejected,
            ),
            (
                ClearError::RateLimited {
                    retry_at,
                    error_id: None,
                },
                "RateLimited",
                FailureClass::RateLimited { retry_at },
            ),
            (
                ClearError::Server {
                    status: 503,
                    error_id: None,
                    code: None,
                },
                "ClearUnavailable",
                FailureClass::Transient,
            ),
            (
                ClearError::Timeout,
                "ClearUnavailable",
                FailureClass::Transient,
            ),
            (
                ClearError::Connect { detail: "x".into() },
                "ClearUnavailable",
                FailureClass::Transient,
            ),
            (
                ClearError::Transport { detail: "x".into() },
                "ClearUnavailable",
                FailureClass::Transient,
            ),
            (
                ClearError::Malformed { detail: "x".into() },
                "ClearResponseInvalid",
                FailureClass::Transient,
            ),
            (
                ClearError::UnexpectedStatus { status: 418 },
                "ClearResponseInvalid",
                FailureClass::Transient,
            ),
        ];
        let mut labels = std::collections::BTreeSet::new();
        for (err, reason, class) in cases {
            assert_eq!(err.reason().as_str(), reason, "{err:?}");
            assert_eq!(err.class(), class, "{err:?}");
            assert!(
                labels.insert(err.metric_label()),
                "duplicate label for {err:?}"
            );
        }
    }

    #[test]
    fn only_calls_that_may_have_reached_clear_may_have_minted() {
        assert!(ClearError::Timeout.may_have_minted());
        assert!(
            ClearError::Server {
                status: 500,
                error_id: None,
                code: None
            }
            .may_have_minted()
        );
        assert!(ClearError::Malformed { detail: "x".into() }.may_have_minted());
        assert!(!ClearError::Connect { detail: "x".into() }.may_have_minted());
        assert!(
            !ClearError::Unauthorized {
                error_id: None,
                code: None
            }
            .may_have_minted()
        );
        assert!(
            !ClearError::InvalidClientSecret {
                detail: "it is empty"
            }
            .may_have_minted()
        );
    }

    #[test]
    fn messages_start_with_failed_to_and_quote_ids_for_support() {
        let err = ClearError::Server {
            status: 500,
            error_id: Some("abc-123".into()),
            code: Some("INTERNAL".into()),
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: Clear answered HTTP 500, error_code INTERNAL, error_id abc-123"
        );
        let err = ClearError::Unauthorized {
            error_id: None,
            code: None,
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: the client secret was rejected (HTTP 401)"
        );
        let err = ClearError::RateLimited {
            retry_at: ts("2026-11-26T00:00:00Z"),
            error_id: Some("q1".into()),
        };
        assert!(
            err.to_string().contains("retry at 2026-11-26T00:00:00Z"),
            "{err}"
        );
        assert!(err.to_string().contains("error_id q1"), "{err}");
    }
}
