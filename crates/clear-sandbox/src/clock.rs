//! The simulator's time source: the system clock, a frozen manual clock for tests, and a
//! shifted system clock the binary's admin API can move. Expiry and the UTC-day quota
//! read only this clock, so tests cross them in milliseconds.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// Errors of clock manipulation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClockError {
    #[error("failed to change the clock: the system clock cannot be set")]
    NotSettable,
    #[error("failed to change the clock: the duration is out of range")]
    OutOfRange,
}

/// Where the simulator reads "now" from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// Makes `now()` answer `now` from here on (a shifted clock keeps running from it).
    fn set(&self, now: DateTime<Utc>) -> Result<(), ClockError> {
        let _ = now;
        Err(ClockError::NotSettable)
    }

    /// Moves the clock forward.
    fn advance(&self, by: Duration) -> Result<(), ClockError> {
        let _ = by;
        Err(ClockError::NotSettable)
    }
}

/// The real wall clock; cannot be set.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until a test sets or advances it.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    pub fn set_to(&self, now: DateTime<Utc>) {
        *self.now.lock().expect("clock lock poisoned") = now;
    }

    /// Moves the clock forward by `by`; panics only past the year 262143.
    pub fn advance_by(&self, by: Duration) {
        let delta = to_delta(by).expect("duration within chrono's range");
        let mut now = self.now.lock().expect("clock lock poisoned");
        *now += delta;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock lock poisoned")
    }

    fn set(&self, now: DateTime<Utc>) -> Result<(), ClockError> {
        self.set_to(now);
        Ok(())
    }

    fn advance(&self, by: Duration) -> Result<(), ClockError> {
        let delta = to_delta(by)?;
        let mut now = self.now.lock().expect("clock lock poisoned");
        *now = now
            .checked_add_signed(delta)
            .ok_or(ClockError::OutOfRange)?;
        Ok(())
    }
}

/// The system clock plus an adjustable offset: time keeps flowing, but scripts driving
/// the binary can jump to just before midnight or past an expiry.
#[derive(Debug, Default)]
pub struct ShiftedClock {
    offset: Mutex<TimeDelta>,
}

impl ShiftedClock {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now() + *self.offset.lock().expect("clock lock poisoned")
    }

    fn set(&self, now: DateTime<Utc>) -> Result<(), ClockError> {
        *self.offset.lock().expect("clock lock poisoned") = now - Utc::now();
        Ok(())
    }

    fn advance(&self, by: Duration) -> Result<(), ClockError> {
        let delta = to_delta(by)?;
        let mut offset = self.offset.lock().expect("clock lock poisoned");
        *offset = offset.checked_add(&delta).ok_or(ClockError::OutOfRange)?;
        Ok(())
    }
}

fn to_delta(duration: Duration) -> Result<TimeDelta, ClockError> {
    TimeDelta::from_std(duration).map_err(|_| ClockError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn manual_clock_stands_still_until_advanced() {
        let clock = ManualClock::new(at("2026-11-25T23:59:59Z"));
        assert_eq!(clock.now(), at("2026-11-25T23:59:59Z"));
        clock.advance_by(Duration::from_secs(1));
        assert_eq!(clock.now(), at("2026-11-26T00:00:00Z"));
    }

    #[test]
    fn system_clock_refuses_to_be_set() {
        assert_eq!(
            SystemClock.set(at("2026-01-01T00:00:00Z")),
            Err(ClockError::NotSettable)
        );
    }

    #[test]
    fn shifted_clock_jumps_to_the_time_it_is_set_to() {
        let clock = ShiftedClock::new();
        clock.set(at("2030-06-01T12:00:00Z")).unwrap();
        let now = clock.now();
        assert!(now >= at("2030-06-01T12:00:00Z"));
        assert!(now < at("2030-06-01T12:01:00Z"));
        clock.advance(Duration::from_secs(3600)).unwrap();
        assert!(clock.now() >= at("2030-06-01T13:00:00Z"));
    }
}
