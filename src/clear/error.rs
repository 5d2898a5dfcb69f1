//! Everything that can go wrong when asking Clear for a token, as a typed enum whose
//! variants map to a condition reason, a backoff class and a metric label. No variant
//! carries a client secret, a token or a header value. Clear's `error_message` is kept on a
//! refusal (401, 3xx, other 4xx), so that an IP allow-list refusal explains itself, but
//! only after [`sanitize_error_message`]: it may echo input.

use jiff::Timestamp;

use super::rate_limit::quota_jitter;
use super::secret::ClientSecret;
pub use crate::clock::next_utc_midnight;
use crate::reason::Reason;

/// How the reconciler should back off after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Clear refused the client secret: retrying with the same secret cannot help; wait
    /// until it changes.
    Rejected,
    /// HTTP 429: no call may succeed before `retry_at` (before any jitter).
    /// `quota: false`: Clear's `Retry-After` (bounded to 1 s ..= next 00:00 UTC + 1 h);
    /// retry at `retry_at`. `quota: true`: the daily quota (no usable `Retry-After`, or the
    /// body says so): `retry_at` is the next 00:00 UTC (or a later `Retry-After`), and the
    /// caller adds [`quota_jitter`](super::quota_jitter) so that every refused resource
    /// does not call at 00:00:00 exactly: see [`FailureClass::jittered_retry_at`].
    RateLimited { retry_at: Timestamp, quota: bool },
    /// Clear (or something in front of it) answered and refused the request: any 3xx
    /// (redirects are not followed) or 4xx other than 401 and 429. Nothing was minted, so
    /// the stored token is intact; the cause (an IP allow-list, a WAF, a wrong path) may
    /// or may not go away: back off as for `Transient`.
    Refused { status: u16 },
    /// Worth retrying with exponential backoff.
    Transient,
}

impl FailureClass {
    /// For `RateLimited`, when to call again: `retry_at`, plus for the quota the
    /// deterministic [`quota_jitter`](super::quota_jitter) of `key` (a per-resource key,
    /// e.g. namespace/name; see there). `None` for every other class.
    pub fn jittered_retry_at(self, key: &[u8]) -> Option<Timestamp> {
        match self {
            Self::RateLimited {
                retry_at,
                quota: true,
            } => Some(retry_at + quota_jitter(retry_at, key)),
            Self::RateLimited {
                retry_at,
                quota: false,
            } => Some(retry_at),
            Self::Rejected | Self::Refused { .. } | Self::Transient => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClearError {
    /// `message`: Clear's `error_message`, sanitized (see [`sanitize_error_message`]).
    #[error("failed to mint a Clear access token: the client secret was rejected (HTTP 401{}){}", ids(code.as_deref(), error_id.as_deref()), said(message.as_deref()))]
    Unauthorized {
        error_id: Option<String>,
        code: Option<String>,
        message: Option<String>,
    },
    /// HTTP 429; see [`FailureClass::RateLimited`] for `retry_at` and `quota`.
    #[error("failed to mint a Clear access token: {} (HTTP 429{}); no call before {retry_at}", if *quota { "the daily rate limit is exhausted" } else { "Clear is limiting the call rate" }, ids(None, error_id.as_deref()))]
    RateLimited {
        retry_at: Timestamp,
        quota: bool,
        error_id: Option<String>,
    },
    /// Any 3xx or 4xx other than 401 and 429: an answer that proves nothing was minted.
    /// `message`: Clear's `error_message`, sanitized (see [`sanitize_error_message`]).
    #[error("failed to mint a Clear access token: Clear refused the request: HTTP {status}{}{}{}", redirect_note(*status), ids(code.as_deref(), error_id.as_deref()), said(message.as_deref()))]
    Refused {
        status: u16,
        error_id: Option<String>,
        code: Option<String>,
        message: Option<String>,
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
    /// A status that is neither a success, a refusal nor a server error (1xx, a 2xx other
    /// than 200, 600 and above): what it did is unknown, so it may have minted.
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

/// `; Clear said: "..."` for a kept (already sanitized) `error_message`, or nothing.
fn said(message: Option<&str>) -> String {
    match message {
        Some(message) if !message.is_empty() => format!("; Clear said: \"{message}\""),
        _ => String::new(),
    }
}

/// What replaces an `error_message` that may carry a secret or a token.
pub const REDACTED_MESSAGE: &str = "[redacted]";

/// Longest `error_message` kept, in characters.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 200;

/// Shortest run of token alphabet characters (`A-Z a-z 0-9 _ - . = + /`) taken for a token
/// (a JWT, hex, base64, a UUID).
pub const TOKEN_LIKE_RUN: usize = 20;

/// Clear's `error_message` as it may be shown in a condition, an Event, a log line or the
/// output of `clear-operator check`:
/// - `[redacted]` when it contains the client secret that was sent (`secret`, trimmed; also
///   in another case) or anything token-like: a run of [`TOKEN_LIKE_RUN`] or more
///   characters of `A-Z a-z 0-9 _ - . = + /`. The one exception is a run of lower-case
///   words joined by `-` (a header name such as `x-clear-client-secret`): random token
///   characters come out that way about once in 10^7 for 20 characters, less for longer;
/// - otherwise the text with control and invisible formatting characters removed (line
///   breaks and tabs become spaces), spaces collapsed, cut to [`MAX_ERROR_MESSAGE_CHARS`]
///   characters (ending in `...` when cut).
///
/// The checks run on the text as received and as cleaned, before the cut, so that neither
/// a removed character nor the cut can hide a secret or a token. An empty result means
/// there is nothing to show.
pub fn sanitize_error_message(message: &str, secret: Option<&ClientSecret>) -> String {
    let cleaned = clean(message);
    let secret = secret.map(|s| s.expose().trim()).filter(|s| !s.is_empty());
    let leaks = |text: &str| {
        secret.is_some_and(|s| text.contains(s) || text.to_lowercase().contains(&s.to_lowercase()))
            || has_token_like_run(text)
    };
    let squeezed: String = message.chars().filter(|c| !is_hidden(*c)).collect();
    if leaks(message) || leaks(&cleaned) || leaks(&squeezed) {
        return REDACTED_MESSAGE.to_string();
    }
    if cleaned.chars().count() <= MAX_ERROR_MESSAGE_CHARS {
        return cleaned;
    }
    let mut cut: String = cleaned.chars().take(MAX_ERROR_MESSAGE_CHARS - 3).collect();
    cut.truncate(cut.trim_end().len());
    cut.push_str("...");
    cut
}

/// Control characters and the invisible formatting ones (zero-width, bidi overrides, BOM).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
}

/// Hidden characters out (whitespace among them becomes a space), runs of spaces squeezed.
fn clean(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for c in message.chars() {
        let c = if c.is_whitespace() { ' ' } else { c };
        if is_hidden(c) || (c == ' ' && (out.is_empty() || out.ends_with(' '))) {
            continue;
        }
        out.push(c);
    }
    out.truncate(out.trim_end().len());
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '=' | '+' | '/')
}

fn has_token_like_run(text: &str) -> bool {
    text.split(|c: char| !is_token_char(c))
        .any(|run| run.len() >= TOKEN_LIKE_RUN && !is_hyphenated_words(run))
}

/// `x-clear-client-secret`: lower-case ASCII words joined by single hyphens.
fn is_hyphenated_words(run: &str) -> bool {
    run.contains('-')
        && run
            .split('-')
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase()))
}

/// ` (a redirect, not followed)` for a 3xx: the likely cause is a wrong base URL.
fn redirect_note(status: u16) -> &'static str {
    if (300..400).contains(&status) {
        " (a redirect, not followed)"
    } else {
        ""
    }
}

/// Whether `status` proves that Clear minted nothing: any 3xx (redirects are not followed)
/// and any 4xx except 401 (its own variant) and 429 (rate limited).
pub(crate) fn is_refusal(status: u16) -> bool {
    (300..500).contains(&status) && status != 401 && status != 429
}

impl ClearError {
    /// Condition/Event reason: ClientSecretRejected | RateLimited | ClearRefused |
    /// ClearUnavailable | ClearResponseInvalid.
    pub fn reason(&self) -> Reason {
        match self {
            Self::Unauthorized { .. } | Self::InvalidClientSecret { .. } => {
                Reason::ClientSecretRejected
            }
            Self::RateLimited { .. } => Reason::RateLimited,
            Self::Refused { .. } => Reason::ClearRefused,
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
            Self::RateLimited {
                retry_at, quota, ..
            } => FailureClass::RateLimited {
                retry_at: *retry_at,
                quota: *quota,
            },
            Self::Refused { status, .. } => FailureClass::Refused { status: *status },
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
            Self::Refused { .. } => "refused",
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
    /// failed: true only when the request may have reached Clear and no answer proves
    /// otherwise (a timeout, a failure after sending, a 5xx, a 2xx that is not a readable
    /// token, an unknown status); false for every refusal (401, 429, any 3xx and other
    /// 4xx) and when the request was never sent (connection failures, unusable secret,
    /// set-up errors). The reconciler uses it to presume the stored token revoked.
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
                    message: None,
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
                    quota: true,
                    error_id: None,
                },
                "RateLimited",
                FailureClass::RateLimited {
                    retry_at,
                    quota: true,
                },
            ),
            (
                ClearError::Refused {
                    status: 403,
                    error_id: None,
                    code: None,
                    message: None,
                },
                "ClearRefused",
                FailureClass::Refused { status: 403 },
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
        assert!(ClearError::UnexpectedStatus { status: 204 }.may_have_minted());
        assert!(!ClearError::Connect { detail: "x".into() }.may_have_minted());
        assert!(
            !ClearError::Refused {
                status: 404,
                error_id: None,
                code: None,
                message: None,
            }
            .may_have_minted()
        );
        assert!(
            !ClearError::RateLimited {
                retry_at: ts("2026-11-26T00:00:00Z"),
                quota: false,
                error_id: None
            }
            .may_have_minted()
        );
        assert!(
            !ClearError::Unauthorized {
                error_id: None,
                code: None,
                message: None,
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
            message: None,
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: the client secret was rejected (HTTP 401)"
        );
        let err = ClearError::RateLimited {
            retry_at: ts("2026-11-26T00:00:00Z"),
            quota: true,
            error_id: Some("q1".into()),
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: the daily rate limit is exhausted (HTTP 429, error_id q1); no call before 2026-11-26T00:00:00Z"
        );
        let err = ClearError::RateLimited {
            retry_at: ts("2026-11-25T16:42:00Z"),
            quota: false,
            error_id: None,
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: Clear is limiting the call rate (HTTP 429); no call before 2026-11-25T16:42:00Z"
        );
    }

    #[test]
    fn refusals_name_the_status_and_redirects_say_so() {
        let err = ClearError::Refused {
            status: 403,
            error_id: Some("e-1".into()),
            code: Some("FORBIDDEN".into()),
            message: None,
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: Clear refused the request: HTTP 403, error_code FORBIDDEN, error_id e-1"
        );
        let err = ClearError::Refused {
            status: 308,
            error_id: None,
            code: None,
            message: None,
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: Clear refused the request: HTTP 308 (a redirect, not followed)"
        );
    }

    #[test]
    fn every_3xx_and_4xx_but_401_and_429_is_a_refusal() {
        for status in [
            300, 301, 302, 303, 304, 307, 308, 399, 400, 403, 404, 405, 406, 408, 409, 410, 411,
            413, 414, 415, 418, 422, 431, 451, 499,
        ] {
            assert!(is_refusal(status), "{status}");
        }
        for status in [
            100, 101, 200, 201, 204, 299, 401, 429, 500, 502, 503, 504, 599, 600, 999,
        ] {
            assert!(!is_refusal(status), "{status}");
        }
    }

    #[test]
    fn only_a_quota_rate_limit_is_jittered() {
        let retry_at = ts("2026-11-26T00:00:00Z");
        let quota = FailureClass::RateLimited {
            retry_at,
            quota: true,
        };
        let jittered = quota.jittered_retry_at(b"ns/a").unwrap();
        assert_eq!(jittered, retry_at + quota_jitter(retry_at, b"ns/a"));
        assert_eq!(quota.jittered_retry_at(b"ns/a"), Some(jittered));
        // Some pair of keys differs (a single pair could collide by chance).
        assert!(
            (0..10)
                .any(|i| quota.jittered_retry_at(format!("ns/{i}").as_bytes()) != Some(jittered))
        );
        let asked = FailureClass::RateLimited {
            retry_at,
            quota: false,
        };
        assert_eq!(asked.jittered_retry_at(b"ns/a"), Some(retry_at));
        assert_eq!(FailureClass::Transient.jittered_retry_at(b"k"), None);
        assert_eq!(FailureClass::Rejected.jittered_retry_at(b"k"), None);
        assert_eq!(
            FailureClass::Refused { status: 403 }.jittered_retry_at(b"k"),
            None
        );
    }

    fn sanitize(message: &str, secret: Option<&str>) -> String {
        let secret = secret.map(|s| ClientSecret::new(s.to_string()));
        sanitize_error_message(message, secret.as_ref())
    }

    #[test]
    fn a_plain_sentence_is_kept_short_ip_looking_runs_included() {
        let message = "IP 10.1.2.3 is not in the allow list of this API client";
        assert_eq!(sanitize(message, Some("cs-SECRETVALUE-4242")), message);
        assert_eq!(sanitize(message, None), message);
        // A header name is lower-case words joined by hyphens, not a token.
        let missing = "x-clear-client-secret header is missing or empty";
        assert_eq!(sanitize(missing, None), missing);
    }

    #[test]
    fn a_message_with_the_secret_inside_is_redacted() {
        for message in [
            "secret cs-SECRETVALUE-4242 is not valid",
            "denied for CS-SECRETVALUE-4242",
            "secret 'cs-SECRETVALUE-4242'",
        ] {
            assert_eq!(
                sanitize(message, Some("cs-SECRETVALUE-4242\n")),
                REDACTED_MESSAGE,
                "{message}"
            );
        }
        // Even short, and even split by a control character that cleaning removes.
        assert_eq!(
            sanitize("bad key ab12 given", Some("ab12")),
            REDACTED_MESSAGE
        );
        assert_eq!(
            sanitize("bad key ab\u{0}12", Some("ab12")),
            REDACTED_MESSAGE
        );
        // A blank secret redacts nothing by itself.
        assert_eq!(sanitize("nope", Some("  ")), "nope");
    }

    #[test]
    fn anything_token_like_is_redacted() {
        for message in [
            // A JWT.
            "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl was revoked",
            // Hex, base64, a UUID.
            "old token 9f86d081884c7d659a2feaa0c55ad015 is revoked",
            "key=QUJDREVGR0hJSktMTU5PUFFSU1RVVldY",
            "id 123e4567-e89b-12d3-a456-426614174000",
            // Exactly 20 token characters, and a run hidden by a zero-width space.
            "abcdefghij0123456789",
            "abcdefghij\u{200b}0123456789",
            // Upper-case words joined by hyphens could be a token.
            "X-CLEAR-CLIENT-SECRET-ABC",
        ] {
            assert_eq!(sanitize(message, None), REDACTED_MESSAGE, "{message}");
        }
        // 19 characters are not a token.
        assert_eq!(sanitize("abcdefghij012345678", None), "abcdefghij012345678");
    }

    #[test]
    fn control_characters_go_and_a_long_message_is_cut() {
        assert_eq!(
            sanitize("line one\r\nline\ttwo\u{7}\u{1b}[31m red\u{202e}", None),
            "line one line two[31m red"
        );
        assert_eq!(sanitize(" \n\t ", None), "");
        let long = "word ".repeat(100);
        let cut = sanitize(&long, None);
        assert_eq!(cut.chars().count(), MAX_ERROR_MESSAGE_CHARS);
        assert!(
            cut.starts_with("word word") && cut.ends_with(" wo..."),
            "{cut}"
        );
        // Cut after the check: a token past the 200th character still redacts.
        let tail = format!(
            "{}{}",
            "word ".repeat(50),
            "9f86d081884c7d659a2feaa0c55ad015"
        );
        assert_eq!(sanitize(&tail, None), REDACTED_MESSAGE);
        // Multi-byte characters are counted as characters.
        let accents = "é".repeat(300);
        assert_eq!(
            sanitize(&accents, None).chars().count(),
            MAX_ERROR_MESSAGE_CHARS
        );
    }

    #[test]
    fn a_kept_message_is_quoted_after_the_ids() {
        let err = ClearError::Refused {
            status: 403,
            error_id: Some("e-1".into()),
            code: Some("FORBIDDEN".into()),
            message: Some("IP 10.1.2.3 is not in the allow list of this API client".into()),
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: Clear refused the request: HTTP 403, error_code FORBIDDEN, error_id e-1; Clear said: \"IP 10.1.2.3 is not in the allow list of this API client\""
        );
        let err = ClearError::Unauthorized {
            error_id: None,
            code: None,
            message: Some(REDACTED_MESSAGE.into()),
        };
        assert_eq!(
            err.to_string(),
            "failed to mint a Clear access token: the client secret was rejected (HTTP 401); Clear said: \"[redacted]\""
        );
    }
}
