//! Reading a 429: when the next call may succeed, and whether it is Clear's daily quota
//! (288 calls per client secret per UTC day, reset at 00:00 UTC) or a shorter limit (a
//! burst limiter, a WAF, a per-IP limit) that says when to come back with `Retry-After`.
//!
//! The rule:
//! - `Retry-After` (delta-seconds or an HTTP-date) is honoured, bounded to at least 1 s
//!   and at most the next 00:00 UTC + 1 h; a date is read against Clear's own `Date`
//!   header when there is one, so a skewed local clock does not shift it.
//! - A 429 without a usable `Retry-After` (absent, garbage, several different values),
//!   or whose `errors` body says the quota is spent, is the daily quota: no call before
//!   the next 00:00 UTC (or a later `Retry-After`).
//! - Every resource refused by the quota would wake at 00:00:00 exactly; the caller
//!   spreads them with [`quota_jitter`], a deterministic 0 to 299 s per key and per day.

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::http_date::parse_http_date;
use crate::clock::next_utc_midnight;

/// The earliest retry a `Retry-After` can ask for (`0` and dates in the past included).
pub const MIN_RETRY_AFTER: SignedDuration = SignedDuration::from_secs(1);

/// How far past the next quota reset a `Retry-After` may push the next call: past that, a
/// broken or hostile header would keep a token dead for longer than the quota can.
pub const MAX_RETRY_AFTER_PAST_RESET: SignedDuration = SignedDuration::from_hours(1);

/// Quota retries are spread over `[reset, reset + QUOTA_JITTER_MAX)`.
pub const QUOTA_JITTER_MAX: SignedDuration = SignedDuration::from_secs(300);

/// A `Retry-After` value as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryAfter {
    /// delta-seconds (a value too large for u64 saturates, as RFC 9111 asks of delays).
    Seconds(u64),
    /// An HTTP-date.
    At(Timestamp),
}

/// `Retry-After = HTTP-date / delay-seconds` (RFC 9110 §10.2.3); anything else (signs,
/// fractions, units, empty) is `None`.
pub(crate) fn parse_retry_after(text: &str) -> Option<RetryAfter> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(RetryAfter::Seconds(text.parse().unwrap_or(u64::MAX)));
    }
    parse_http_date(text).map(RetryAfter::At)
}

/// What a 429 means for the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// No call before this (before any jitter).
    pub retry_at: Timestamp,
    /// The daily quota: see [`quota_jitter`].
    pub quota: bool,
}

/// Reads a 429 answered to a call made at `now`: its `Retry-After` header value (if any),
/// Clear's `Date` header (if any) and its body.
pub(crate) fn read_429(
    now: Timestamp,
    retry_after: Option<&str>,
    server_date: Option<Timestamp>,
    body: &[u8],
) -> RateLimit {
    let reset = next_utc_midnight(now);
    let asked = retry_after
        .and_then(parse_retry_after)
        .map(|asked| bounded_retry_at(now, asked, server_date));
    match asked {
        Some(retry_at) if !body_says_quota(body) => RateLimit {
            retry_at,
            quota: false,
        },
        asked => RateLimit {
            retry_at: asked.map_or(reset, |at| at.max(reset)),
            quota: true,
        },
    }
}

/// `now` + what `Retry-After` asks, within `[now + 1 s, next 00:00 UTC + 1 h]`.
fn bounded_retry_at(
    now: Timestamp,
    asked: RetryAfter,
    server_date: Option<Timestamp>,
) -> Timestamp {
    let earliest = now + MIN_RETRY_AFTER;
    let latest = next_utc_midnight(now) + MAX_RETRY_AFTER_PAST_RESET;
    // NB: the offset is clamped to a few days before it is added, so no value can
    // overflow; the bounds are within 25 h of `now` anyway.
    const CAP: i64 = 3 * 86_400;
    let offset_secs = match asked {
        RetryAfter::Seconds(secs) => i64::try_from(secs).unwrap_or(i64::MAX).min(CAP),
        // A date is read on Clear's clock when Clear says what time it is.
        RetryAfter::At(at) => at
            .duration_since(server_date.unwrap_or(now))
            .as_secs()
            .clamp(-CAP, CAP),
    };
    (now + SignedDuration::from_secs(offset_secs)).clamp(earliest, latest)
}

/// Words in an `errors` entry that say the daily quota is spent. Deliberately narrow: "rate
/// limit exceeded" or "too many requests" alone say nothing about how long, and taking a
/// burst limit for the quota can keep a token dead until midnight.
const QUOTA_WORDS: [&str; 6] = ["quota", "daily", "per day", "per_day", "today", "exhausted"];

/// Whether an `{"errors":[{"error_code", "error_message"}]}` body says the quota is spent
/// (case-insensitive). Only the verdict leaves this function, never the text, which may
/// echo what was sent.
pub(crate) fn body_says_quota(body: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return false;
    };
    let Some(errors) = value.get("errors").and_then(Value::as_array) else {
        return false;
    };
    errors
        .iter()
        .flat_map(|error| [error.get("error_code"), error.get("error_message")])
        .filter_map(|field| field.and_then(Value::as_str))
        .any(|text| {
            let text = text.to_ascii_lowercase();
            QUOTA_WORDS.iter().any(|word| text.contains(word))
        })
}

/// The deterministic delay, in whole seconds in `[0, 300)`, that a call refused by the
/// daily quota adds to `reset` (its `retry_at`): derived from `key` and the reset's day, so
/// the same key always gets the same delay for one reset (a re-reconcile does not move
/// it), different keys spread over five minutes, and the order changes from day to day.
///
/// `key`: what should wake apart, e.g. the resource's namespace/name or UID (several
/// resources behind one client secret then do not call together) or the client secret's
/// fingerprint. Never the client secret itself: the delay is visible in status.
pub fn quota_jitter(reset: Timestamp, key: &[u8]) -> SignedDuration {
    let mut hash = Sha256::new();
    hash.update(b"clear-operator quota jitter\0");
    hash.update(reset.as_second().to_be_bytes());
    hash.update(key);
    let digest = hash.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    let spread = QUOTA_JITTER_MAX.as_secs().unsigned_abs();
    SignedDuration::from_secs((u64::from_be_bytes(first) % spread) as i64)
}

/// When a call refused by the daily quota at `now` may be made again: the next 00:00 UTC
/// plus [`quota_jitter`] of `key`.
pub fn quota_reset_with_jitter(now: Timestamp, key: &[u8]) -> Timestamp {
    let reset = next_utc_midnight(now);
    reset + quota_jitter(reset, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn now() -> Timestamp {
        ts("2026-11-25T16:40:00Z")
    }

    const BURST: &[u8] = br#"{"errors":[{"error_code":"RATE_LIMIT_EXCEEDED","error_message":"Too many requests","error_source":"CLEAR"}]}"#;

    #[test]
    fn retry_after_is_delta_seconds_or_an_http_date() {
        assert_eq!(parse_retry_after("120"), Some(RetryAfter::Seconds(120)));
        assert_eq!(parse_retry_after(" 0 "), Some(RetryAfter::Seconds(0)));
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(RetryAfter::Seconds(u64::MAX))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 16:45:00 GMT"),
            Some(RetryAfter::At(ts("2026-11-25T16:45:00Z")))
        );
    }

    #[test]
    fn garbage_retry_after_is_refused() {
        for text in [
            "",
            " ",
            "-5",
            "+5",
            "1.5",
            "5s",
            "120 seconds",
            "0x10",
            "soon",
            "١٢٠",
            "2026-11-25T16:45:00Z",
        ] {
            assert_eq!(parse_retry_after(text), None, "{text:?}");
        }
    }

    #[test]
    fn retry_after_seconds_is_honoured_from_now() {
        let got = read_429(now(), Some("120"), None, BURST);
        assert_eq!(
            got,
            RateLimit {
                retry_at: ts("2026-11-25T16:42:00Z"),
                quota: false
            }
        );
    }

    #[test]
    fn retry_after_date_is_read_on_clears_clock_when_it_sends_one() {
        // Clear's clock is 10 minutes ahead of ours: its "in 5 minutes" is ours too.
        let got = read_429(
            now(),
            Some("Wed, 25 Nov 2026 16:55:00 GMT"),
            Some(ts("2026-11-25T16:50:00Z")),
            b"",
        );
        assert_eq!(got.retry_at, ts("2026-11-25T16:45:00Z"));
        assert!(!got.quota);
        // Without a Date header, the date is taken as it is.
        let got = read_429(now(), Some("Wed, 25 Nov 2026 16:55:00 GMT"), None, b"");
        assert_eq!(got.retry_at, ts("2026-11-25T16:55:00Z"));
    }

    #[test]
    fn retry_after_is_bounded_between_one_second_and_an_hour_past_the_reset() {
        for zero in ["0", "Wed, 25 Nov 2026 10:00:00 GMT"] {
            assert_eq!(
                read_429(now(), Some(zero), None, b"").retry_at,
                ts("2026-11-25T16:40:01Z"),
                "{zero}"
            );
        }
        for far in [
            "86400",
            "18446744073709551615",
            "99999999999999999999999",
            "Fri, 01 Jan 2100 00:00:00 GMT",
        ] {
            let got = read_429(now(), Some(far), None, b"");
            assert_eq!(got.retry_at, ts("2026-11-26T01:00:00Z"), "{far}");
            assert!(!got.quota, "{far}");
        }
        // Just before midnight the bound is still the coming reset + 1 h.
        let late = ts("2026-11-25T23:59:30Z");
        assert_eq!(
            read_429(late, Some("7200"), None, b"").retry_at,
            ts("2026-11-26T01:00:00Z")
        );
    }

    #[test]
    fn no_or_garbage_retry_after_is_the_daily_quota() {
        for header in [None, Some("soon"), Some(""), Some("-1")] {
            let got = read_429(now(), header, None, BURST);
            assert_eq!(
                got,
                RateLimit {
                    retry_at: ts("2026-11-26T00:00:00Z"),
                    quota: true
                },
                "{header:?}"
            );
        }
    }

    #[test]
    fn a_quota_body_wins_over_a_short_retry_after_but_not_over_a_later_one() {
        let body = br#"{"errors":[{"error_code":"RATE_LIMIT_EXCEEDED","error_message":"Daily limit of 288 calls exhausted","error_source":"CLEAR"}]}"#;
        let got = read_429(now(), Some("60"), None, body);
        assert_eq!(
            got,
            RateLimit {
                retry_at: ts("2026-11-26T00:00:00Z"),
                quota: true
            }
        );
        let got = read_429(now(), Some("Thu, 26 Nov 2026 00:30:00 GMT"), None, body);
        assert_eq!(
            got,
            RateLimit {
                retry_at: ts("2026-11-26T00:30:00Z"),
                quota: true
            }
        );
    }

    #[test]
    fn only_explicit_quota_words_make_a_quota_body() {
        for body in [
            br#"{"errors":[{"error_code":"QUOTA_EXCEEDED"}]}"#.as_slice(),
            br#"{"errors":[{"error_code":"X","error_message":"daily limit reached"}]}"#,
            br#"{"errors":[{"error_message":"limit exhausted"}]}"#,
            br#"{"errors":[{"error_message":"more than 288 token requests today"}]}"#,
            br#"{"errors":[{"error_code":"A"},{"error_code":"MAX_CALLS_PER_DAY"}]}"#,
        ] {
            assert!(body_says_quota(body), "{}", String::from_utf8_lossy(body));
        }
        for body in [
            BURST,
            br#"{"errors":[{"error_code":"TOO_MANY_REQUESTS","error_message":"slow down"}]}"#,
            br#"{"message":"daily quota exhausted"}"#,
            br#"{"errors":[{"error_source":"quota"}]}"#,
            b"<html>quota</html>",
            b"",
        ] {
            assert!(!body_says_quota(body), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn quota_jitter_is_deterministic_spread_and_below_five_minutes() {
        let reset = ts("2026-11-26T00:00:00Z");
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..1000 {
            let key = format!("namespace-{}/client-{i}", i % 7);
            let jitter = quota_jitter(reset, key.as_bytes());
            assert_eq!(jitter, quota_jitter(reset, key.as_bytes()));
            assert!(jitter >= SignedDuration::ZERO && jitter < QUOTA_JITTER_MAX);
            assert_eq!(jitter.subsec_nanos(), 0);
            seen.insert(jitter.as_secs());
        }
        // 1000 keys over 300 seconds: a spread, not a handful of instants.
        assert!(seen.len() > 250, "{}", seen.len());
        // Another day, another order (for at least most keys).
        let next = ts("2026-11-27T00:00:00Z");
        let moved = (0..100)
            .filter(|i| {
                let key = format!("k{i}");
                quota_jitter(reset, key.as_bytes()) != quota_jitter(next, key.as_bytes())
            })
            .count();
        assert!(moved > 90, "{moved}");
    }

    #[test]
    fn quota_reset_with_jitter_is_the_next_midnight_plus_the_key_jitter() {
        let key = b"ns/name";
        let reset = ts("2026-11-26T00:00:00Z");
        let want = reset + quota_jitter(reset, key);
        // Any instant of the day gives the same answer, so a re-reconcile keeps it.
        for now in [
            "2026-11-25T00:00:00Z",
            "2026-11-25T16:40:00Z",
            "2026-11-25T23:59:59Z",
        ] {
            assert_eq!(quota_reset_with_jitter(ts(now), key), want, "{now}");
        }
        assert!(want >= reset && want < reset + QUOTA_JITTER_MAX);
    }
}
