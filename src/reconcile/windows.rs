//! Renewal windows (`spec.renewalWindows`): when a due renewal may happen. Minting at Clear
//! revokes the previous token at once, so every renewal is a short outage for consumers;
//! windows move it to hours the user chose, but never so late that the token could expire.
//! All pure: parsing once per reconcile, and [`plan`], a function of the token and the clock.
//!
//! The plan, for a token issued at `issued_at` that expires at `valid_till`:
//! - `due`: [`schedule::renewal_time`] (`renewBefore`); a token that never expires has no
//!   renewal, windows or not.
//! - `deadline`: `valid_till` minus a margin of a tenth of the lifetime, at most 1h: the last
//!   safe moment, leaving room for a failed call's retries and for the kubelet to bring the
//!   new token into mounted Secrets.
//! - from `from = max(due, now)`, the earliest instant inside an occurrence `[start,
//!   start + duration)` of any window (a `start` is a fire time of its cron schedule in its
//!   time zone): `from` itself when it lies inside one, else the next opening.
//! - that instant when it is no later than `deadline`;
//! - else, while `now` is before `due`, the latest window opening between the earliest
//!   early renewal allowed (half the lifetime after issue, or now) and `min(due, deadline)`:
//!   renewing early, inside a window, costs the same one call as renewing late outside one
//!   ([`Planned::EarlyInWindow`]); this is what lets a `renewBefore` shorter than the
//!   windows' period fit at all;
//! - else `max(from, deadline)`, reported as [`Planned::NoWindowFits`].

use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};

use super::schedule;
use crate::resource::RenewalWindow;

/// The margin before expiry is a tenth of the token's lifetime, but never more than this.
pub const MAX_MARGIN: SignedDuration = SignedDuration::from_hours(1);
/// Time zone of a window that names none.
pub const DEFAULT_TIME_ZONE: &str = "UTC";

/// A window of the spec, parsed.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    cron: Cron,
    zone: TimeZone,
    duration: SignedDuration,
}

/// Why a window of the spec cannot be used; the message names the field as users write it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error(
        "renewalWindows[{index}].schedule: {schedule:?} has {fields} fields; expected 5 (minute hour day-of-month month day-of-week)"
    )]
    FieldCount {
        index: usize,
        schedule: String,
        fields: usize,
    },
    #[error(
        "renewalWindows[{index}].schedule: {schedule:?} is not a valid cron expression: {detail}"
    )]
    Schedule {
        index: usize,
        schedule: String,
        detail: String,
    },
    #[error(
        "renewalWindows[{index}].schedule: {schedule:?} never fires (no such date in any year)"
    )]
    NeverFires { index: usize, schedule: String },
    #[error("renewalWindows[{index}].timeZone: unknown time zone {zone:?}")]
    TimeZone { index: usize, zone: String },
    #[error("renewalWindows[{index}].duration: {source}")]
    Duration {
        index: usize,
        source: schedule::DurationError,
    },
    #[error("renewalWindows[{index}].duration: {duration:?} must be positive")]
    NotPositive { index: usize, duration: String },
}

/// Parses the spec's windows (all of them, or the first error).
pub fn parse(windows: &[RenewalWindow]) -> Result<Vec<Window>, WindowError> {
    windows
        .iter()
        .enumerate()
        .map(|(index, window)| parse_one(index, window))
        .collect()
}

fn parse_one(index: usize, window: &RenewalWindow) -> Result<Window, WindowError> {
    let schedule = &window.schedule;
    // NB: croner also takes a seconds and a year field, and `@daily`-style nicknames; the
    // field is documented (and validated by the schema) as five fields, so that is all it
    // accepts here too, whatever the API server let through.
    let fields = schedule.split_whitespace().count();
    if fields != 5 {
        return Err(WindowError::FieldCount {
            index,
            schedule: schedule.clone(),
            fields,
        });
    }
    let cron = CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .build()
        .parse(schedule)
        .map_err(|e| WindowError::Schedule {
            index,
            schedule: schedule.clone(),
            detail: e.to_string(),
        })?;
    if !fires_at_all(&cron) {
        return Err(WindowError::NeverFires {
            index,
            schedule: schedule.clone(),
        });
    }
    let zone_name = window.time_zone.as_deref().unwrap_or(DEFAULT_TIME_ZONE);
    let zone = TimeZone::get(zone_name).map_err(|_| WindowError::TimeZone {
        index,
        zone: zone_name.to_string(),
    })?;
    let duration = schedule::parse_go_duration(&window.duration)
        .map_err(|source| WindowError::Duration { index, source })?;
    if duration <= SignedDuration::ZERO {
        return Err(WindowError::NotPositive {
            index,
            duration: window.duration.clone(),
        });
    }
    Ok(Window {
        cron,
        zone,
        duration,
    })
}

/// Whether the schedule fires on some day of a 28-year span, which holds every combination
/// of weekday, date and leap year the calendar has.
// NB: "0 0 30 2 *" never fires, and croner would search until the year 5000 for it, about a
// second of CPU on every plan; a tenant's spec must not cost that. This costs a few
// milliseconds for a schedule that never fires, and returns within the first months for
// any real one.
fn fires_at_all(cron: &Cron) -> bool {
    let pattern = &cron.pattern;
    let hour = (0..24).find(|h| pattern.hour_match(*h).unwrap_or(false));
    let minute = (0..60).find(|m| pattern.minute_match(*m).unwrap_or(false));
    let (Some(hour), Some(minute)) = (hour, minute) else {
        return false;
    };
    let (Ok(hour), Ok(minute)) = (i8::try_from(hour), i8::try_from(minute)) else {
        return false;
    };
    let end = jiff::civil::date(2052, 1, 1);
    let mut day = jiff::civil::date(2024, 1, 1);
    while day < end {
        if cron
            .is_time_matching(&day.at(hour, minute, 0, 0))
            .unwrap_or(false)
        {
            return true;
        }
        let Ok(next) = day.tomorrow() else {
            return false;
        };
        day = next;
    }
    false
}

impl Window {
    /// The earliest instant at or after `from` inside an occurrence of this window, if one
    /// opens at all.
    fn earliest_from(&self, from: Timestamp) -> Option<Timestamp> {
        // NB: an occurrence [start, start + duration) contains `from` exactly when its start
        // is in (from - duration, from]; the first fire time after `from - duration` is
        // therefore either that start (renew at `from`) or, when none is, the next opening.
        let lookback = from.checked_sub(self.duration).ok()?;
        let start = self
            .cron
            .find_next_occurrence(&lookback.to_zoned(self.zone.clone()), false)
            .ok()?
            .timestamp();
        Some(start.max(from))
    }
}

impl Window {
    /// The latest opening at or before `upper` whose occurrence is open at some instant in
    /// `[floor, upper]`: its start, or `floor` when it opened before `floor` and is still
    /// open then.
    fn latest_until(&self, floor: Timestamp, upper: Timestamp) -> Option<Timestamp> {
        let start = self
            .cron
            .find_previous_occurrence(&upper.to_zoned(self.zone.clone()), true)
            .ok()?
            .timestamp();
        if start >= floor {
            return Some(start);
        }
        let end = start.checked_add(self.duration).ok()?;
        (end > floor).then_some(floor)
    }
}

/// When to renew, and how the windows were honoured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Planned {
    /// No windows: renew when due.
    Unconstrained(Timestamp),
    /// Inside a window, no later than the last safe moment.
    InWindow(Timestamp),
    /// Inside a window that opens before the renewal is due (none opens between then and
    /// the last safe moment).
    EarlyInWindow(Timestamp),
    /// No window opens by the last safe moment: renew at `at` anyway; `why` tells the user.
    NoWindowFits { at: Timestamp, why: String },
}

impl Planned {
    pub fn at(&self) -> Timestamp {
        match self {
            Self::Unconstrained(at)
            | Self::InWindow(at)
            | Self::EarlyInWindow(at)
            | Self::NoWindowFits { at, .. } => *at,
        }
    }
}

/// The last safe moment to renew a token: `valid_till` less a tenth of its lifetime, at
/// most [`MAX_MARGIN`].
pub fn deadline(issued_at: Timestamp, valid_till: Timestamp) -> Timestamp {
    let lifetime = valid_till
        .duration_since(issued_at)
        .max(SignedDuration::ZERO);
    let margin = (lifetime / 10).min(MAX_MARGIN);
    valid_till.saturating_sub(margin).unwrap_or(valid_till)
}

/// When to renew the token (see the module docs); `None` for a token that never expires.
pub fn plan(
    issued_at: Timestamp,
    valid_till: Option<Timestamp>,
    renew_before: Option<SignedDuration>,
    windows: &[Window],
    jitter: f64,
    now: Timestamp,
) -> Option<Planned> {
    let due = schedule::renewal_time(issued_at, valid_till, renew_before, jitter)?;
    let valid_till = valid_till?;
    if windows.is_empty() {
        return Some(Planned::Unconstrained(due));
    }
    let deadline = deadline(issued_at, valid_till);
    let lifetime = valid_till
        .duration_since(issued_at)
        .max(SignedDuration::ZERO);
    if let Some(at) = spread_in_window(
        windows,
        due,
        deadline,
        schedule::jitter_span(lifetime, jitter),
    ) && now <= at
    {
        return Some(Planned::InWindow(at));
    }
    let from = due.max(now);
    // NB: the search is bounded by the deadline: one next-fire-time lookup per window, and
    // none at all once the deadline has passed.
    let earliest = if from <= deadline {
        windows.iter().filter_map(|w| w.earliest_from(from)).min()
    } else {
        None
    };
    if let Some(at) = earliest.filter(|at| *at <= deadline) {
        return Some(Planned::InWindow(at));
    }
    // NB: an early renewal is never before half the lifetime: at most two renewals per
    // lifetime, whatever the windows. A window set that cannot fit the lifetime (a daily
    // window for 24h tokens) then renews outside it about once a lifetime, instead of
    // alternating early and late renewals that would call Clear more often than without
    // windows.
    let floor = issued_at
        .saturating_add(lifetime / 2)
        .unwrap_or(issued_at)
        .max(now);
    let upper = due.min(deadline);
    if floor <= upper
        && let Some(at) = windows
            .iter()
            .filter_map(|w| w.latest_until(floor, upper))
            .max()
    {
        return Some(Planned::EarlyInWindow(at));
    }
    let at = from.max(deadline);
    let why = if due > deadline {
        format!(
            "renewBefore leaves less than the safety margin before the token expires at {valid_till} (the last safe moment is {deadline}): renewing when due, at {at}, outside the renewal windows"
        )
    } else if from > deadline {
        format!(
            "the last safe moment {deadline} to renew inside a window has passed (the token is valid till {valid_till}): renewing now, at {at}"
        )
    } else {
        format!(
            "no renewal window opens between {from} and the last safe moment {deadline} (the token is valid till {valid_till}): renewing at {at}, outside the renewal windows"
        )
    };
    Some(Planned::NoWindowFits { at, why })
}

/// When the renewal falls due outside the windows, every resource due before the next
/// opening would renew at that very instant: the resource's jitter `span` moves it into the
/// window instead, as long as that instant is still inside a window and before `deadline`.
/// A function of `due`, not of the clock, so that the plan does not move as time passes.
fn spread_in_window(
    windows: &[Window],
    due: Timestamp,
    deadline: Timestamp,
    span: SignedDuration,
) -> Option<Timestamp> {
    let opening = windows.iter().filter_map(|w| w.earliest_from(due)).min()?;
    if opening == due || span.is_zero() {
        return None;
    }
    let at = opening.checked_add(span).ok()?.min(deadline);
    let inside = windows.iter().any(|w| w.earliest_from(at) == Some(at));
    (inside && at > opening).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::test_support::ts;

    fn window(schedule: &str, zone: Option<&str>, duration: &str) -> Window {
        let spec = RenewalWindow {
            schedule: schedule.into(),
            time_zone: zone.map(str::to_string),
            duration: duration.into(),
        };
        parse_one(0, &spec).unwrap_or_else(|e| panic!("{e}"))
    }

    fn utc(schedule: &str, duration: &str) -> Window {
        window(schedule, None, duration)
    }

    fn hours(h: i64) -> Option<SignedDuration> {
        Some(SignedDuration::from_hours(h))
    }

    // A 24h token: due at 16:00 (default renewBefore, a third of the lifetime), last safe
    // moment at 23:00 (margin: a tenth of 24h, capped at 1h).
    const ISSUED: &str = "2026-12-01T00:00:00Z";
    const TILL: &str = "2026-12-02T00:00:00Z";
    const DUE: &str = "2026-12-01T16:00:00Z";
    const DEADLINE: &str = "2026-12-01T23:00:00Z";

    fn plan_day(windows: &[Window], now: &str) -> Planned {
        plan(ts(ISSUED), Some(ts(TILL)), None, windows, 0.0, ts(now)).expect("the token expires")
    }

    fn in_window(at: &str) -> Planned {
        Planned::InWindow(ts(at))
    }

    fn no_window_at(planned: &Planned) -> Option<Timestamp> {
        match planned {
            Planned::NoWindowFits { at, .. } => Some(*at),
            _ => None,
        }
    }

    #[test]
    fn the_margin_is_a_tenth_of_the_lifetime_at_most_an_hour() {
        assert_eq!(deadline(ts(ISSUED), ts(TILL)), ts(DEADLINE));
        assert_eq!(
            deadline(ts(ISSUED), ts("2026-12-01T05:00:00Z")),
            ts("2026-12-01T04:30:00Z"),
            "5h lifetime: 30 minutes"
        );
    }

    #[test]
    fn windows_table() {
        let early = "2026-12-01T06:00:00Z";
        let cases: Vec<(&str, Vec<Window>, &str, Planned)> = vec![
            (
                "no windows: renew when due",
                vec![],
                early,
                Planned::Unconstrained(ts(DUE)),
            ),
            (
                "several windows: the earliest opening wins, whatever the order",
                vec![
                    utc("0 20 * * *", "1h"),
                    utc("0 18 * * *", "30m"),
                    utc("0 22 * * *", "1h"),
                ],
                early,
                in_window("2026-12-01T18:00:00Z"),
            ),
            (
                "a window containing the due time: renew when due",
                vec![utc("0 15 * * *", "2h"), utc("0 17 * * *", "1h")],
                early,
                in_window(DUE),
            ),
            (
                "a window is half-open: one that closes at the due time does not contain it",
                vec![utc("0 14 * * *", "2h"), utc("0 21 * * *", "1h")],
                early,
                in_window("2026-12-01T21:00:00Z"),
            ),
            (
                "a window longer than the token's lifetime: always inside",
                vec![utc("0 0 1 * *", "720h")],
                early,
                in_window(DUE),
            ),
            (
                "a window opening exactly at the last safe moment still fits",
                vec![utc("0 23 * * *", "5m")],
                early,
                in_window(DEADLINE),
            ),
            (
                // 02:00 IST is 20:30 UTC the day before: Kolkata is +05:30 all year.
                "Asia/Kolkata, a half-hour offset without DST",
                vec![window("0 2 * * *", Some("Asia/Kolkata"), "1h")],
                early,
                in_window("2026-12-01T20:30:00Z"),
            ),
            (
                "now past due, outside any window: the next opening",
                vec![utc("0 21 * * *", "1h")],
                "2026-12-01T17:00:00Z",
                in_window("2026-12-01T21:00:00Z"),
            ),
            (
                "now past due, inside a window: now",
                vec![utc("0 21 * * *", "1h")],
                "2026-12-01T21:30:00Z",
                in_window("2026-12-01T21:30:00Z"),
            ),
        ];
        for (case, windows, now, expected) in cases {
            assert_eq!(plan_day(&windows, now), expected, "case: {case}");
        }
    }

    #[test]
    fn without_a_window_before_the_last_safe_moment_the_renewal_is_at_that_moment() {
        let cases: Vec<(&str, Vec<Window>, &str, &str)> = vec![
            (
                "a window opening one minute too late",
                vec![utc("1 23 * * *", "1h")],
                "2026-12-01T06:00:00Z",
                DEADLINE,
            ),
            (
                "a tiny window far away",
                vec![utc("0 3 15 6 *", "1s")],
                "2026-12-01T06:00:00Z",
                DEADLINE,
            ),
            (
                "the last safe moment already passed (the operator was down): now",
                vec![utc("0 9 * * *", "1h")],
                "2026-12-01T23:30:00Z",
                "2026-12-01T23:30:00Z",
            ),
        ];
        for (case, windows, now, at) in cases {
            let planned = plan_day(&windows, now);
            assert_eq!(
                no_window_at(&planned),
                Some(ts(at)),
                "case: {case}: {planned:?}"
            );
        }
        let Planned::NoWindowFits { why, .. } = plan_day(&[utc("0 3 15 6 *", "1s")], DUE) else {
            panic!("expected no window to fit");
        };
        assert_eq!(
            why,
            "no renewal window opens between 2026-12-01T16:00:00Z and the last safe moment \
             2026-12-01T23:00:00Z (the token is valid till 2026-12-02T00:00:00Z): renewing at \
             2026-12-01T23:00:00Z, outside the renewal windows"
        );
    }

    #[test]
    fn a_renew_before_shorter_than_the_margin_renews_when_due_and_says_so() {
        // Due at 23:50, ten minutes before expiry: past the last safe moment (23:00), so no
        // window can be waited for, and this one opens (at 23:30) only after it.
        let planned = plan(
            ts(ISSUED),
            Some(ts(TILL)),
            Some(SignedDuration::from_mins(10)),
            &[utc("30 23 * * *", "1h")],
            0.0,
            ts("2026-12-01T06:00:00Z"),
        )
        .unwrap();
        let Planned::NoWindowFits { at, why } = planned else {
            panic!("{planned:?}");
        };
        assert_eq!(at, ts("2026-12-01T23:50:00Z"));
        assert!(
            why.contains("renewBefore leaves less than the safety margin"),
            "{why}"
        );
    }

    #[test]
    fn with_no_window_between_due_and_the_last_safe_moment_the_renewal_is_early_in_a_window() {
        // The 24h token of the table, due at 16:00, last safe moment 23:00, earliest early
        // renewal 12:00 (half the lifetime after issue).
        let cases: Vec<(&str, Vec<Window>, &str, Planned)> = vec![
            (
                "a window before due: renew at its opening, early",
                vec![utc("0 13 * * *", "2h")],
                "2026-12-01T01:00:00Z",
                Planned::EarlyInWindow(ts("2026-12-01T13:00:00Z")),
            ),
            (
                "the latest opening before due wins",
                vec![utc("30 12 * * *", "1h"), utc("0 14 * * *", "1h")],
                "2026-12-01T01:00:00Z",
                Planned::EarlyInWindow(ts("2026-12-01T14:00:00Z")),
            ),
            (
                "a window open at the earliest early renewal: at that moment",
                vec![utc("0 11 * * *", "2h")],
                "2026-12-01T01:00:00Z",
                Planned::EarlyInWindow(ts("2026-12-01T12:00:00Z")),
            ),
            (
                "now inside that early window: now",
                vec![utc("0 13 * * *", "2h")],
                "2026-12-01T14:00:00Z",
                Planned::EarlyInWindow(ts("2026-12-01T14:00:00Z")),
            ),
            (
                "a window between due and the last safe moment is still preferred",
                vec![utc("0 13 * * *", "2h"), utc("0 20 * * *", "1h")],
                "2026-12-01T01:00:00Z",
                in_window("2026-12-01T20:00:00Z"),
            ),
            (
                "a window only before half the lifetime is too early",
                vec![utc("0 3 * * *", "2h")],
                "2026-12-01T01:00:00Z",
                Planned::NoWindowFits {
                    at: ts(DEADLINE),
                    why: String::new(),
                },
            ),
        ];
        for (case, windows, now, expected) in cases {
            let planned = plan_day(&windows, now);
            match expected {
                Planned::NoWindowFits { at, .. } => {
                    assert_eq!(
                        no_window_at(&planned),
                        Some(at),
                        "case: {case}: {planned:?}"
                    )
                }
                expected => assert_eq!(planned, expected, "case: {case}"),
            }
        }
        // Once the early window has closed unused (the operator was down), the renewal waits
        // for no window: there is none left before the last safe moment.
        let missed = plan_day(&[utc("0 13 * * *", "2h")], "2026-12-01T15:30:00Z");
        assert_eq!(no_window_at(&missed), Some(ts(DEADLINE)), "{missed:?}");
    }

    #[test]
    fn renewals_follow_each_other_safely_and_never_more_often_than_twice_a_lifetime() {
        // Renews at each planned time for 60 days and checks every token was replaced before
        // its last safe moment, and no more often than twice per lifetime, for window sets
        // that fit, fit badly, or cannot fit the lifetime at all.
        let configs: Vec<(&str, SignedDuration, Vec<Window>)> = vec![
            (
                "24h tokens, a daily window (cannot fit)",
                SignedDuration::from_hours(24),
                vec![utc("0 3 * * *", "2h")],
            ),
            (
                "30h tokens, a daily window",
                SignedDuration::from_hours(30),
                vec![utc("0 3 * * *", "1h")],
            ),
            (
                "7d tokens, weekend nights in Kolkata",
                SignedDuration::from_hours(168),
                vec![window("0 1 * * 6,0", Some("Asia/Kolkata"), "3h")],
            ),
            (
                "36h tokens, two short windows",
                SignedDuration::from_hours(36),
                vec![utc("0 2 * * *", "15m"), utc("30 13 * * *", "15m")],
            ),
        ];
        for (name, lifetime, windows) in configs {
            let mut issued = ts("2026-03-01T00:00:00Z");
            let end = ts("2026-04-30T00:00:00Z");
            let mut renewals = 0;
            while issued < end {
                let till = issued + lifetime;
                let at = plan(issued, Some(till), None, &windows, 0.0, issued)
                    .unwrap()
                    .at();
                assert!(
                    at <= deadline(issued, till),
                    "{name}: {at} is past the last safe moment of a token issued {issued}"
                );
                assert!(
                    at >= issued + lifetime / 2,
                    "{name}: {at} is less than half a lifetime after {issued}"
                );
                issued = at;
                renewals += 1;
            }
            let lifetimes = end.duration_since(ts("2026-03-01T00:00:00Z")).as_secs_f64()
                / lifetime.as_secs_f64();
            assert!(
                f64::from(renewals) <= 2.0 * lifetimes + 1.0,
                "{name}: {renewals} renewals in {lifetimes:.1} lifetimes"
            );
        }
    }

    #[test]
    fn a_token_that_never_expires_has_no_renewal_windows_or_not() {
        for windows in [vec![], vec![utc("0 1 * * *", "1h")]] {
            assert_eq!(
                plan(
                    ts(ISSUED),
                    None,
                    None,
                    &windows,
                    0.0,
                    ts("2030-01-01T00:00:00Z")
                ),
                None
            );
        }
    }

    #[test]
    fn spring_forward_moves_an_opening_in_the_gap_to_the_end_of_the_gap() {
        // Berlin skips 02:00-03:00 on 2026-03-29 (CET +01:00 to CEST +02:00). A window at
        // 02:30 has no such instant that day; like cron, it opens right after the gap, at
        // 03:00 CEST (01:00 UTC), instead of being skipped for the day.
        let window = window("30 2 * * *", Some("Europe/Berlin"), "1h");
        let planned = plan(
            ts("2026-03-28T12:00:00Z"),
            Some(ts("2026-03-29T12:00:00Z")),
            hours(13), // due 2026-03-28T23:00Z (midnight in Berlin)
            std::slice::from_ref(&window),
            0.0,
            ts("2026-03-28T12:00:00Z"),
        );
        assert_eq!(planned, Some(in_window("2026-03-29T01:00:00Z")));
        // The next day it is 02:30 CEST again (00:30 UTC).
        let planned = plan(
            ts("2026-03-29T12:00:00Z"),
            Some(ts("2026-03-30T12:00:00Z")),
            hours(13),
            &[window],
            0.0,
            ts("2026-03-29T12:00:00Z"),
        );
        assert_eq!(planned, Some(in_window("2026-03-30T00:30:00Z")));
    }

    #[test]
    fn fall_back_keeps_durations_in_elapsed_time_and_opens_once_in_the_repeated_hour() {
        // New York repeats 01:00-02:00 on 2026-11-01 (EDT -04:00, then EST -05:00). A token
        // valid till 2026-11-03T12:00Z; renewBefore picks the due time.
        let plan_ny = |schedule: &str, duration: &str, due: &str| {
            let till = ts("2026-11-03T12:00:00Z");
            let renew_before = till.duration_since(ts(due));
            plan(
                ts("2026-10-31T12:00:00Z"),
                Some(till),
                Some(renew_before),
                &[window(schedule, Some("America/New_York"), duration)],
                0.0,
                ts("2026-10-31T12:00:00Z"),
            )
            .unwrap()
        };
        // Opens at 00:30 EDT (04:30Z) for 2h of real time: until 06:30Z, which is 01:30 EST
        // on the wall clock (not 02:30). 06:00Z (the second 01:00) is inside...
        assert_eq!(
            plan_ny("30 0 * * *", "2h", "2026-11-01T06:00:00Z"),
            in_window("2026-11-01T06:00:00Z")
        );
        // ...06:45Z (01:45 EST) is past it, though the wall clock says less than 2h since
        // 00:30: the next opening is 00:30 EST the next day (05:30Z).
        assert_eq!(
            plan_ny("30 0 * * *", "2h", "2026-11-01T06:45:00Z"),
            in_window("2026-11-02T05:30:00Z")
        );
        // 01:30 happens twice that night; a window at 01:30 opens at the first (05:30Z, EDT)
        // only, like a cron job, not again at the second (06:30Z, EST).
        assert_eq!(
            plan_ny("30 1 * * *", "30m", "2026-11-01T05:00:00Z"),
            in_window("2026-11-01T05:30:00Z")
        );
        assert_eq!(
            plan_ny("30 1 * * *", "30m", "2026-11-01T06:10:00Z"),
            in_window("2026-11-02T06:30:00Z")
        );
    }

    #[test]
    fn a_per_minute_window_over_a_long_lifetime_is_one_lookup() {
        // A year-long token with a one-second window every minute: the plan is the next
        // minute, found without walking the lifetime.
        let planned = plan(
            ts("2026-01-01T00:00:00Z"),
            Some(ts("2027-01-01T00:00:00Z")),
            None,
            &[utc("* * * * *", "1s")],
            0.0,
            ts("2026-12-31T00:00:30Z"),
        );
        assert_eq!(planned, Some(in_window("2026-12-31T00:01:00Z")));
    }

    #[test]
    fn invalid_windows_name_their_index_and_field() {
        let ok = RenewalWindow {
            schedule: "0 1 * * *".into(),
            time_zone: None,
            duration: "1h".into(),
        };
        let with = |change: fn(&mut RenewalWindow)| {
            let mut bad = ok.clone();
            change(&mut bad);
            parse(&[ok.clone(), bad]).unwrap_err().to_string()
        };
        assert_eq!(
            with(|w| w.time_zone = Some("Europe/Pariss".into())),
            r#"renewalWindows[1].timeZone: unknown time zone "Europe/Pariss""#
        );
        assert_eq!(
            with(|w| w.duration = "0s".into()),
            r#"renewalWindows[1].duration: "0s" must be positive"#
        );
        assert!(
            with(|w| w.duration = "1d".into()).starts_with("renewalWindows[1].duration: "),
            "a malformed duration"
        );
        assert_eq!(
            with(|w| w.schedule = "0 0 1 * * *".into()),
            r#"renewalWindows[1].schedule: "0 0 1 * * *" has 6 fields; expected 5 (minute hour day-of-month month day-of-week)"#
        );
        assert!(
            with(|w| w.schedule = "@daily".into()).contains("has 1 fields"),
            "nicknames are not five fields"
        );
        let out_of_range = with(|w| w.schedule = "61 * * * *".into());
        assert!(
            out_of_range.starts_with(
                r#"renewalWindows[1].schedule: "61 * * * *" is not a valid cron expression: "#
            ),
            "{out_of_range}"
        );
        assert_eq!(
            with(|w| w.schedule = "0 0 30 2 *".into()),
            r#"renewalWindows[1].schedule: "0 0 30 2 *" never fires (no such date in any year)"#
        );
        assert_eq!(
            with(|w| w.schedule = "15 3 31 4,6,9,11 *".into()),
            r#"renewalWindows[1].schedule: "15 3 31 4,6,9,11 *" never fires (no such date in any year)"#
        );
        // Rare but real: February 29th, and the last day of February.
        for rare in ["0 0 29 2 *", "30 23 L 2 *"] {
            let window = RenewalWindow {
                schedule: rare.into(),
                ..ok.clone()
            };
            assert_eq!(parse(&[window]).map(|w| w.len()), Ok(1), "{rare}");
        }
        let weekends = RenewalWindow {
            schedule: "0 10 * * SAT,SUN".into(),
            time_zone: Some("Asia/Kolkata".into()),
            duration: "2h".into(),
        };
        assert_eq!(parse(&[ok, weekends]).map(|w| w.len()), Ok(2));
    }

    #[test]
    fn the_example_resource_has_valid_windows() {
        let example: crate::resource::ClearApiClient =
            serde_yaml::from_str(include_str!("../../examples/clearapiclient.yaml")).unwrap();
        assert_eq!(parse(&example.spec.renewal_windows).map(|w| w.len()), Ok(1));
    }

    #[test]
    fn jitter_spreads_renewals_inside_a_window_that_opens_after_they_are_due() {
        // Due at 16:00 (before jitter); the window opens at 18:00 for 3h.
        let windows = [utc("0 18 * * *", "3h")];
        let at = |jitter: f64, now: &str| {
            plan(ts(ISSUED), Some(ts(TILL)), None, &windows, jitter, ts(now)).unwrap()
        };
        assert_eq!(at(0.0, ISSUED), in_window("2026-12-01T18:00:00Z"));
        // 2.5 % of 24h (36 minutes) into the window.
        assert_eq!(at(0.025, ISSUED), in_window("2026-12-01T18:36:00Z"));
        // The plan does not move as time passes: the same instant at the opening, and just
        // before it; at it, the renewal is due.
        assert_eq!(
            at(0.025, "2026-12-01T18:00:00Z"),
            in_window("2026-12-01T18:36:00Z")
        );
        assert_eq!(
            at(0.025, "2026-12-01T18:35:59Z"),
            in_window("2026-12-01T18:36:00Z")
        );
        assert_eq!(
            at(0.025, "2026-12-01T18:36:00Z"),
            in_window("2026-12-01T18:36:00Z")
        );
    }

    #[test]
    fn jitter_never_leaves_the_window_nor_passes_the_last_safe_moment() {
        // A 30-minute window: a 65-minute span would leave it; the opening is kept.
        let short = [utc("0 18 * * *", "30m")];
        let planned = plan(ts(ISSUED), Some(ts(TILL)), None, &short, 0.045, ts(ISSUED)).unwrap();
        assert_eq!(planned, in_window("2026-12-01T18:00:00Z"));
        // A window opening 22:50, ten minutes before the last safe moment (23:00).
        let late = [utc("50 22 * * *", "2h")];
        let planned = plan(ts(ISSUED), Some(ts(TILL)), None, &late, 0.045, ts(ISSUED)).unwrap();
        assert_eq!(planned, in_window(DEADLINE));
    }

    #[test]
    fn jittered_plans_stay_in_windows_and_before_the_deadline_for_any_resource() {
        let sets = [
            vec![utc("0 18 * * *", "3h")],
            vec![utc("0 2 * * 1-5", "1h"), utc("30 20 * * *", "45m")],
            vec![window("0 9 * * *", Some("Asia/Kolkata"), "90m")],
        ];
        for windows in &sets {
            for i in 0..300 {
                let jitter = schedule::renewal_jitter(format!("ns/r-{i}").as_bytes()) * 0.05;
                let planned = plan(
                    ts(ISSUED),
                    Some(ts(TILL)),
                    None,
                    windows,
                    jitter,
                    ts(ISSUED),
                )
                .unwrap();
                let at = planned.at();
                if let Planned::InWindow(_) | Planned::EarlyInWindow(_) = planned {
                    assert!(at <= ts(DEADLINE), "{planned:?}");
                    assert!(
                        windows.iter().any(|w| w.earliest_from(at) == Some(at)),
                        "{planned:?} is outside the windows"
                    );
                }
                let later = plan(ts(ISSUED), Some(ts(TILL)), None, windows, jitter, at).unwrap();
                assert_eq!(later.at(), at, "stable up to its instant");
            }
        }
    }
}
