//! The operator's notion of "now", injected so that decisions about renewal, backoff and
//! the UTC-day budget can be tested by setting the time instead of waiting for it.

use std::sync::{Arc, Mutex};

use jiff::{SignedDuration, Timestamp};

/// Source of the current time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to (tests, simulations). Clones share the same time.
#[derive(Clone, Debug)]
pub struct ManualClock {
    now: Arc<Mutex<Timestamp>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn set(&self, to: Timestamp) {
        *self.lock() = to;
    }

    pub fn advance(&self, by: SignedDuration) {
        let mut now = self.lock();
        *now = now
            .saturating_add(by)
            .expect("a signed duration never overflows a timestamp add");
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // NB: a poisoned lock still holds a valid timestamp; keep the clock usable.
        self.now
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.lock()
    }
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
}
