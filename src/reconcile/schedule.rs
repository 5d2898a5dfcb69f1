//! Time arithmetic behind the decisions: when a token is due for renewal, how long to back
//! off after a failure, which UTC day a mint counts against, and the Go-style durations
//! users write in `spec.renewBefore`. All pure.

use jiff::{SignedDuration, Timestamp};

use crate::resource::ClearApiClientStatus;

/// Default `renewBefore` is a third of the token's lifetime, but never more than this.
pub const MAX_DEFAULT_RENEW_BEFORE: SignedDuration = SignedDuration::from_hours(24);
/// First transient-failure backoff; doubles with each consecutive failure.
pub const BACKOFF_BASE: SignedDuration = SignedDuration::from_secs(30);
/// Longest transient-failure backoff, for a token with long to live.
pub const BACKOFF_CAP: SignedDuration = SignedDuration::from_hours(1);
/// Longest transient-failure backoff of a resource without a usable token (and the shortest
/// cap of any): once Clear is back, it is served within this (plus jitter) even by a process
/// that did not see the outage end. NB: not shorter: a client secret for which Clear keeps
/// failing alone would spend 6 calls an hour of its budget (144 a day, of 250), and the
/// release of the shared circuit is what serves a fleet at once after an outage.
pub const BACKOFF_CAP_WITHOUT_TOKEN: SignedDuration = SignedDuration::from_mins(10);
/// Relative spread applied to each backoff so that resources failing together do not retry
/// together.
pub const BACKOFF_JITTER: f64 = 0.2;
/// After Clear rejected a client secret, how often the operator re-reads it (the watch on
/// Secrets normally notices a change first).
pub const REJECTED_RECHECK: SignedDuration = SignedDuration::from_mins(10);

/// Lifetime assumed for a token whose `valid_till` is at or before its issue time (clock
/// skew between Clear and the cluster): renewing "in the past" would mint about once a
/// second until the budget is gone; this bounds it to one call per hour.
pub const CLAMPED_LIFETIME: SignedDuration = SignedDuration::from_hours(1);

/// Lifetime assumed for a token whose answer gave no readable `valid_till` (absent, or not
/// a date with a UTC offset). Short on purpose: a token that truly lived less would die
/// unrenewed; one that lives longer is renewed early, at most 36 times a day.
pub const ASSUMED_LIFETIME: SignedDuration = SignedDuration::from_hours(1);

/// `valid_till` as recorded: a non-positive lifetime becomes [`CLAMPED_LIFETIME`]. Returns
/// whether it was clamped.
pub fn clamp_valid_till(
    issued_at: Timestamp,
    valid_till: Option<Timestamp>,
) -> (Option<Timestamp>, bool) {
    match valid_till {
        Some(till) if till <= issued_at => (
            Some(issued_at.saturating_add(CLAMPED_LIFETIME).unwrap_or(till)),
            true,
        ),
        other => (other, false),
    }
}

/// Default share of a token's lifetime over which renewals are spread, in percent
/// (`--renewal-jitter-percent`; see [`renewal_jitter`]).
pub const DEFAULT_RENEWAL_JITTER_PERCENT: u8 = 5;
/// Largest share of the lifetime a renewal may be brought forward by.
pub const MAX_RENEWAL_JITTER_SHARE: f64 = 0.10;

/// A resource's renewal jitter: a fraction in `[0, 1)`, fixed by `key` (the resource's
/// namespace/name), of the share of the lifetime renewals are spread over. Resources created together
/// (a Helm release, a restore) otherwise renew together every cycle: a burst of calls to
/// Clear, and a burst of revocations their consumers feel at once. Deterministic, so that
/// every replica and every restart plans the same instant.
pub fn renewal_jitter(key: &[u8]) -> f64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::new()
        .chain_update(b"clear-operator renewal jitter\0")
        .chain_update(key)
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // NB: 53 bits, the precision of an f64 fraction.
    (u64::from_be_bytes(first) >> 11) as f64 / (1u64 << 53) as f64
}

/// The span a resource's jitter moves its renewal by: `share` (its [`renewal_jitter`] times
/// the configured share) of the lifetime, to the second.
pub fn jitter_span(lifetime: SignedDuration, share: f64) -> SignedDuration {
    let seconds = lifetime.as_secs_f64() * share.clamp(0.0, MAX_RENEWAL_JITTER_SHARE);
    SignedDuration::from_secs(seconds.floor() as i64)
}

/// When the token should be replaced, or `None` for a token that never expires: `renewBefore`
/// before expiry, brought forward by the resource's jitter share of the lifetime
/// ([`jitter_span`]).
///
/// NB: the jitter only ever brings a renewal forward, so it can never pass the last safe
/// moment; it costs at most its share more calls over time. A `renewBefore` as
/// long as the token's lifetime would make every fresh token due at once and mint in a loop;
/// the renewal is therefore never earlier than a tenth of the lifetime after issue.
pub fn renewal_time(
    issued_at: Timestamp,
    valid_till: Option<Timestamp>,
    renew_before: Option<SignedDuration>,
    jitter: f64,
) -> Option<Timestamp> {
    let valid_till = valid_till?;
    let lifetime = valid_till.duration_since(issued_at);
    if lifetime <= SignedDuration::ZERO {
        return Some(valid_till);
    }
    let renew_before = renew_before.unwrap_or_else(|| (lifetime / 3).min(MAX_DEFAULT_RENEW_BEFORE));
    let wanted = valid_till
        .saturating_sub(renew_before)
        .unwrap_or(issued_at)
        .saturating_sub(jitter_span(lifetime, jitter))
        .unwrap_or(issued_at);
    let earliest = issued_at
        .saturating_add(lifetime / 10)
        .unwrap_or(valid_till);
    Some(wanted.max(earliest))
}

/// The cap of a transient backoff, from how long the stored token still lives (`None`: no
/// usable token): a tenth of it, between [`BACKOFF_CAP_WITHOUT_TOKEN`] and [`BACKOFF_CAP`].
/// A token with a day to live can wait out an hour; a missing or expired one is retried
/// every ten minutes, so an outage of Clear is never followed by an hour without a token.
pub fn backoff_cap(life_left: Option<SignedDuration>) -> SignedDuration {
    match life_left {
        None => BACKOFF_CAP_WITHOUT_TOKEN,
        Some(left) => (left / 10).clamp(BACKOFF_CAP_WITHOUT_TOKEN, BACKOFF_CAP),
    }
}

/// Delay before retry number `attempt` (1 for the first failure) after a transient failure:
/// 30s·2^(attempt-1), spread by `jitter` (a factor in [-0.2, 0.2] the caller draws at
/// random), at most `cap` (see [`backoff_cap`]).
pub fn transient_backoff(attempt: i32, jitter: f64, cap: SignedDuration) -> SignedDuration {
    let exponent = attempt.saturating_sub(1).clamp(0, 16);
    let base = BACKOFF_BASE.as_secs_f64() * f64::from(1u32 << exponent);
    let jitter = jitter.clamp(-BACKOFF_JITTER, BACKOFF_JITTER);
    let cap = cap.as_secs_f64();
    let secs = (base.min(cap) * (1.0 + jitter)).min(cap);
    SignedDuration::from_secs_f64(secs)
}

/// A fresh jitter factor for [`transient_backoff`].
pub fn random_jitter() -> f64 {
    use rand::Rng;
    rand::thread_rng().gen_range(-BACKOFF_JITTER..=BACKOFF_JITTER)
}

/// The longest wait a failure can legitimately ask for: until the next 00:00 UTC (429, the
/// budget), plus room for jitter. A `nextRetryTime` further ahead was written under a
/// wrong clock.
pub const LONGEST_RETRY_WAIT: SignedDuration = SignedDuration::from_hours(25);

/// Bounds the times in status that say "not before" (`mintStartedAt`, `lastFailureTime`,
/// `nextRetryTime`) to what `now` makes possible, so that a value written under a clock
/// that was ahead (this node's, or another replica's) cannot block progress or failover:
/// a call cannot have started or failed in the future, and no retry waits longer than
/// [`LONGEST_RETRY_WAIT`] (it is cut to the cap of a transient backoff). The next status
/// write keeps the bounded values, so the bound is applied once, not moved on every
/// reconcile.
pub fn bound_future_times(status: &mut ClearApiClientStatus, now: Timestamp) {
    for time in [&mut status.mint_started_at, &mut status.last_failure_time]
        .into_iter()
        .flatten()
    {
        if time.0 > now {
            time.0 = now;
        }
    }
    if let Some(retry) = &mut status.next_retry_time
        && retry.0.duration_since(now) > LONGEST_RETRY_WAIT
    {
        retry.0 = now.saturating_add(BACKOFF_CAP).unwrap_or(now);
    }
}

pub use crate::clock::{next_utc_midnight, utc_day};

/// The earlier of two optional times.
pub fn earliest(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse duration {input:?}: expected a Go duration such as 90m, 1h30m or 2.5h")]
pub struct DurationError {
    input: String,
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`), the notation of `spec.renewBefore`.
pub fn parse_go_duration(input: &str) -> Result<SignedDuration, DurationError> {
    let fail = || DurationError {
        input: input.to_string(),
    };
    if input.is_empty() {
        return Err(fail());
    }
    let mut rest = input;
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(fail)?;
        if number_len == 0 {
            return Err(fail());
        }
        let value: f64 = rest[..number_len].parse().map_err(|_| fail())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(fail()),
        };
        total_nanos += value * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if !total_nanos.is_finite() || total_nanos > i64::MAX as f64 {
        return Err(fail());
    }
    Ok(SignedDuration::from_nanos(total_nanos.round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_till_at_or_before_issue_is_clamped_to_an_hour() {
        let issued: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let hour_later: Timestamp = "2026-11-25T11:00:00Z".parse().unwrap();
        assert_eq!(
            clamp_valid_till(issued, Some(issued)),
            (Some(hour_later), true)
        );
        let before: Timestamp = "2026-11-25T09:00:00Z".parse().unwrap();
        assert_eq!(
            clamp_valid_till(issued, Some(before)),
            (Some(hour_later), true)
        );
        let later: Timestamp = "2026-11-25T10:00:01Z".parse().unwrap();
        assert_eq!(clamp_valid_till(issued, Some(later)), (Some(later), false));
        assert_eq!(clamp_valid_till(issued, None), (None, false));
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn default_renewal_is_a_third_of_the_lifetime_before_expiry() {
        let renewal = renewal_time(
            ts("2026-11-25T00:00:00Z"),
            Some(ts("2026-11-25T03:00:00Z")),
            None,
            0.0,
        );
        assert_eq!(renewal, Some(ts("2026-11-25T02:00:00Z")));
    }

    #[test]
    fn default_renew_before_is_capped_at_a_day_for_long_lived_tokens() {
        let renewal = renewal_time(
            ts("2026-11-01T00:00:00Z"),
            Some(ts("2026-11-30T00:00:00Z")),
            None,
            0.0,
        );
        assert_eq!(renewal, Some(ts("2026-11-29T00:00:00Z")));
    }

    #[test]
    fn explicit_renew_before_is_used_as_given() {
        let renewal = renewal_time(
            ts("2026-11-25T00:00:00Z"),
            Some(ts("2026-11-25T10:00:00Z")),
            Some(SignedDuration::from_hours(1)),
            0.0,
        );
        assert_eq!(renewal, Some(ts("2026-11-25T09:00:00Z")));
    }

    #[test]
    fn renew_before_longer_than_the_lifetime_cannot_make_a_fresh_token_due() {
        let renewal = renewal_time(
            ts("2026-11-25T00:00:00Z"),
            Some(ts("2026-11-25T01:40:00Z")),
            Some(SignedDuration::from_hours(5)),
            0.0,
        );
        assert_eq!(renewal, Some(ts("2026-11-25T00:10:00Z")));
    }

    #[test]
    fn renewal_jitter_brings_renewals_forward_by_at_most_five_percent_of_the_lifetime() {
        let (issued, till) = (ts("2026-11-25T00:00:00Z"), Some(ts("2026-11-26T00:00:00Z")));
        let plain = renewal_time(issued, till, None, 0.0).unwrap();
        assert_eq!(plain, ts("2026-11-25T16:00:00Z"));
        // 2.5 % of 24h is 36 minutes.
        assert_eq!(
            renewal_time(issued, till, None, 0.025),
            Some(ts("2026-11-25T15:24:00Z"))
        );
        // Never more than 10 %, whatever is asked.
        assert_eq!(
            renewal_time(issued, till, None, 0.5),
            renewal_time(issued, till, None, 0.1)
        );
        let mut spread = std::collections::BTreeSet::new();
        for i in 0..2000 {
            let key = format!("tenant-{}/client-{i}", i % 13);
            let jitter = renewal_jitter(key.as_bytes());
            assert_eq!(jitter, renewal_jitter(key.as_bytes()), "deterministic");
            assert!((0.0..1.0).contains(&jitter));
            let at = renewal_time(issued, till, None, jitter * 0.05).unwrap();
            assert!(at <= plain, "never later than without jitter");
            assert!(plain.duration_since(at) < SignedDuration::from_mins(72));
            spread.insert(at.as_second() / 60);
        }
        // 2,000 resources created together renew over the 72 minutes, not in one second.
        assert!(spread.len() >= 70, "{}", spread.len());
    }

    #[test]
    fn renewal_jitter_never_makes_a_fresh_token_due() {
        // renewBefore of the whole lifetime: due at a tenth of it, jitter or not.
        let (issued, till) = (ts("2026-11-25T00:00:00Z"), Some(ts("2026-11-25T10:00:00Z")));
        for jitter in [0.0, 0.05, 0.1] {
            assert_eq!(
                renewal_time(issued, till, Some(SignedDuration::from_hours(10)), jitter),
                Some(ts("2026-11-25T01:00:00Z"))
            );
        }
    }

    #[test]
    fn never_expiring_tokens_have_no_renewal_time() {
        assert_eq!(
            renewal_time(ts("2026-11-25T00:00:00Z"), None, None, 0.0),
            None
        );
    }

    #[test]
    fn transient_backoff_doubles_from_thirty_seconds_and_caps_at_an_hour() {
        let cap = BACKOFF_CAP;
        assert_eq!(
            transient_backoff(1, 0.0, cap),
            SignedDuration::from_secs(30)
        );
        assert_eq!(
            transient_backoff(2, 0.0, cap),
            SignedDuration::from_secs(60)
        );
        assert_eq!(
            transient_backoff(4, 0.0, cap),
            SignedDuration::from_secs(240)
        );
        assert_eq!(
            transient_backoff(8, 0.0, cap),
            SignedDuration::from_secs(3600)
        );
        assert_eq!(
            transient_backoff(500, 0.2, cap),
            SignedDuration::from_secs(3600)
        );
    }

    #[test]
    fn the_backoff_cap_follows_the_life_the_stored_token_has_left() {
        let mins = SignedDuration::from_mins;
        assert_eq!(backoff_cap(None), mins(10), "no usable token");
        assert_eq!(backoff_cap(Some(mins(20))), mins(10));
        assert_eq!(backoff_cap(Some(mins(300))), mins(30));
        assert_eq!(backoff_cap(Some(SignedDuration::from_hours(24))), mins(60));
        assert_eq!(
            backoff_cap(Some(SignedDuration::MAX)),
            mins(60),
            "never expires"
        );
        // Without a token, the ninth failure in a row waits ten minutes, not an hour.
        assert_eq!(transient_backoff(9, 0.0, backoff_cap(None)), mins(10));
        assert_eq!(transient_backoff(9, 0.2, backoff_cap(None)), mins(10));
    }

    #[test]
    fn transient_backoff_jitter_stays_within_twenty_percent() {
        let cap = BACKOFF_CAP;
        assert_eq!(
            transient_backoff(1, 0.2, cap),
            SignedDuration::from_secs(36)
        );
        assert_eq!(
            transient_backoff(1, -0.2, cap),
            SignedDuration::from_secs(24)
        );
        assert_eq!(
            transient_backoff(1, 5.0, cap),
            SignedDuration::from_secs(36)
        );
        for _ in 0..100 {
            let d = transient_backoff(3, random_jitter(), cap);
            assert!(d >= SignedDuration::from_secs(96) && d <= SignedDuration::from_secs(144));
        }
    }

    #[test]
    fn utc_day_and_next_midnight_follow_utc() {
        assert_eq!(utc_day(ts("2026-11-25T23:59:59Z")), "2026-11-25");
        assert_eq!(utc_day(ts("2026-11-26T00:00:00Z")), "2026-11-26");
        assert_eq!(
            next_utc_midnight(ts("2026-11-25T23:59:59Z")),
            ts("2026-11-26T00:00:00Z")
        );
        assert_eq!(
            next_utc_midnight(ts("2026-11-26T00:00:00Z")),
            ts("2026-11-27T00:00:00Z")
        );
    }

    #[test]
    fn go_durations_parse_like_kubernetes_users_write_them() {
        assert_eq!(
            parse_go_duration("90m").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            SignedDuration::from_mins(90)
        );
        assert_eq!(
            parse_go_duration("2.5h").unwrap(),
            SignedDuration::from_mins(150)
        );
        assert_eq!(
            parse_go_duration("300ms").unwrap(),
            SignedDuration::from_millis(300)
        );
        assert_eq!(
            parse_go_duration("1µs").unwrap(),
            SignedDuration::from_micros(1)
        );
    }

    #[test]
    fn malformed_durations_are_rejected() {
        for bad in ["", "h", "10", "10x", "1h-5m", "1d"] {
            assert!(parse_go_duration(bad).is_err(), "{bad} should be rejected");
        }
    }
}
