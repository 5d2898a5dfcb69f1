//! The operator's notion of time, injected so that decisions about renewal, backoff and
//! the UTC-day budget can be tested by setting the time instead of waiting for it.
//!
//! Two kinds of time, kept apart on purpose:
//! - **wall time** ([`Clock::now`]): what the operator writes (status, the Lease) and
//!   compares with times from other machines (Clear's `valid_till`). In the running
//!   operator it is an [`AnchoredClock`]: the node's monotonic clock projected from an
//!   anchor taken from the API server's clock, so a step of the node's wall clock does not
//!   move it (see [`anchored`]).
//! - **monotonic time** ([`Clock::instant`]): durations observed locally, which must not
//!   depend on any wall clock: whether another replica's Lease has stopped changing for
//!   its duration, and until when this replica may write (the fence).

pub mod anchored;
pub mod reference;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

pub use anchored::AnchoredClock;

/// Source of the current time.
pub trait Clock: Send + Sync {
    /// Wall time.
    fn now(&self) -> Timestamp;

    /// Monotonic time: never steps, only moves forward. Tokio's, so tests with paused time
    /// control it too.
    fn instant(&self) -> Instant {
        Instant::now()
    }

    /// How far [`Clock::now`] is ahead of the node's wall clock (negative: behind). Zero for
    /// clocks that are not corrected against a reference.
    fn offset(&self) -> SignedDuration {
        SignedDuration::ZERO
    }
}

/// The node's wall clock, uncorrected.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (tests, simulations). Clones share the same time.
///
/// [`ManualClock::advance`] is time passing: wall and monotonic time move together (a
/// negative advance is a backward step of the wall clock: monotonic time stays).
/// [`ManualClock::set`] is a step of the wall clock: monotonic time does not move.
#[derive(Clone, Debug)]
pub struct ManualClock {
    state: Arc<Mutex<Manual>>,
}

#[derive(Debug)]
struct Manual {
    now: Timestamp,
    /// Monotonic time is `started + elapsed`.
    started: Instant,
    elapsed: Duration,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            state: Arc::new(Mutex::new(Manual {
                now: start,
                started: Instant::now(),
                elapsed: Duration::ZERO,
            })),
        }
    }

    /// Steps the wall clock to `to` (monotonic time does not move).
    pub fn set(&self, to: Timestamp) {
        self.lock().now = to;
    }

    /// Lets `by` pass (a negative `by` only steps the wall clock back).
    pub fn advance(&self, by: SignedDuration) {
        let mut state = self.lock();
        state.now = state
            .now
            .saturating_add(by)
            .expect("a signed duration never overflows a timestamp add");
        if let Ok(forward) = Duration::try_from(by) {
            state.elapsed = state.elapsed.saturating_add(forward);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Manual> {
        // NB: a poisoned lock still holds a valid time; keep the clock usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.lock().now
    }

    fn instant(&self) -> Instant {
        let state = self.lock();
        state.started + state.elapsed
    }
}

/// Start of the next UTC day strictly after `now`: when Clear's daily quota resets.
pub fn next_utc_midnight(now: Timestamp) -> Timestamp {
    const DAY: i64 = 86_400;
    let next = (now.as_second().div_euclid(DAY) + 1) * DAY;
    // NB: the clamp only matters at the very end of jiff's range, never in practice.
    Timestamp::from_second(next).unwrap_or(Timestamp::MAX)
}

/// The UTC day (`YYYY-MM-DD`) a call made at `now` counts against in Clear's quota.
pub fn utc_day(now: Timestamp) -> String {
    now.strftime("%Y-%m-%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told_and_clones_share_time() {
        let start: Timestamp = "2026-11-25T12:00:00Z".parse().unwrap();
        let clock = ManualClock::new(start);
        let other = clock.clone();
        assert_eq!(clock.now(), start);
        clock.advance(SignedDuration::from_secs(90));
        assert_eq!(
            other.now(),
            "2026-11-25T12:01:30Z".parse::<Timestamp>().unwrap()
        );
        other.set(start);
        assert_eq!(clock.now(), start);
    }

    #[test]
    fn manual_monotonic_time_follows_advances_but_not_steps() {
        let clock = ManualClock::new("2026-11-25T12:00:00Z".parse().unwrap());
        let t0 = clock.instant();
        clock.advance(SignedDuration::from_secs(90));
        assert_eq!(clock.instant() - t0, Duration::from_secs(90));
        clock.set("2026-12-25T12:00:00Z".parse().unwrap());
        clock.advance(SignedDuration::from_secs(-3600));
        assert_eq!(
            clock.instant() - t0,
            Duration::from_secs(90),
            "steps in either direction leave monotonic time alone"
        );
    }
}
