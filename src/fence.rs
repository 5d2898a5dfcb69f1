//! Leadership as a lease on writes. With leader election, every write the reconciler makes
//! (the token Secret, status, the finalizer, restarts) and every call to Clear first asks
//! the fence whether this replica can still prove it leads: the elector extends the fence
//! after each successful renewal, to the renewal's start plus the renew deadline (shorter
//! than the Lease duration, so the fence closes before any other replica may take over),
//! and closes it when leadership is lost or released. Without leader election the fence is
//! always open.
//!
//! NB: grants are instants of the monotonic clock ([`Clock::instant`]), like the standby's
//! observation of the Lease (see [`crate::leader`]): a step of the wall clock can neither
//! keep the fence open past its grant nor close it early.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicI64, Ordering},
    },
    time::Duration,
};

use tokio::time::Instant;

use crate::clock::Clock;

/// Value of `until` meaning "closed".
const CLOSED: i64 = i64::MIN;

/// Shared by the reconciler (which checks it) and the elector (which moves it). Cheap to
/// clone; clones share the state. Lock-free: it is checked before every write.
#[derive(Clone)]
pub struct Fence {
    inner: Arc<Inner>,
}

struct Inner {
    /// Its monotonic time is the one grants are measured on.
    clock: Arc<dyn Clock>,
    /// Grants are stored as nanoseconds after this instant (so they fit an atomic).
    origin: Instant,
    /// False: no leader election, always open.
    leased: AtomicBool,
    /// Nanoseconds after `origin` until which writes are allowed (exclusive).
    until_nanos: AtomicI64,
}

impl std::fmt::Debug for Fence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fence")
            .field("leased", &self.inner.leased.load(Ordering::Relaxed))
            .field("open", &self.is_open())
            .finish()
    }
}

/// A write or call refused because this replica cannot prove it leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "failed to write: this replica does not hold the leader Lease (or cannot prove it still does)"
)]
pub struct NotLeader;

impl Fence {
    /// Open until [`Fence::require_lease`] is called (a single replica without election).
    /// Grants are measured on `clock`'s monotonic time.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: clock.instant(),
                clock,
                leased: AtomicBool::new(false),
                until_nanos: AtomicI64::new(CLOSED),
            }),
        }
    }

    /// From now on writes need a lease granted by [`Fence::extend_until`]; closed until then.
    pub fn require_lease(&self) {
        self.inner.until_nanos.store(CLOSED, Ordering::SeqCst);
        self.inner.leased.store(true, Ordering::SeqCst);
    }

    /// Allows writes until `until` (never shortens a later grant from a newer renewal).
    pub fn extend_until(&self, until: Instant) {
        self.inner
            .until_nanos
            .fetch_max(self.since_origin(until), Ordering::SeqCst);
    }

    /// No more writes (leadership lost or released).
    pub fn close(&self) {
        self.inner.until_nanos.store(CLOSED, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        if !self.inner.leased.load(Ordering::SeqCst) {
            return true;
        }
        let until = self.inner.until_nanos.load(Ordering::SeqCst);
        until != CLOSED && self.since_origin(self.inner.clock.instant()) < until
    }

    /// `Ok` when this replica may write now.
    pub fn check(&self) -> Result<(), NotLeader> {
        if self.is_open() {
            Ok(())
        } else {
            Err(NotLeader)
        }
    }

    fn since_origin(&self, at: Instant) -> i64 {
        let elapsed: Duration = at.saturating_duration_since(self.inner.origin);
        i64::try_from(elapsed.as_nanos()).unwrap_or(i64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use jiff::SignedDuration;

    use super::*;
    use crate::clock::ManualClock;

    fn fence() -> (Fence, ManualClock) {
        let clock = ManualClock::new("2026-11-25T10:00:00Z".parse().unwrap());
        (Fence::new(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn without_leader_election_the_fence_is_always_open() {
        let (fence, clock) = fence();
        assert!(fence.check().is_ok());
        clock.advance(SignedDuration::from_hours(100));
        assert!(fence.check().is_ok());
    }

    #[test]
    fn with_a_lease_writes_are_allowed_only_until_the_granted_deadline() {
        let (fence, clock) = fence();
        fence.require_lease();
        assert_eq!(fence.check(), Err(NotLeader), "closed until granted");
        fence.extend_until(clock.instant() + Duration::from_secs(10));
        assert!(fence.check().is_ok());
        clock.advance(SignedDuration::from_millis(9_999));
        assert!(fence.check().is_ok());
        clock.advance(SignedDuration::from_millis(1));
        assert_eq!(fence.check(), Err(NotLeader), "the deadline passed");
    }

    #[test]
    fn closing_the_fence_stops_writes_at_once_even_inside_a_grant() {
        let (fence, clock) = fence();
        fence.require_lease();
        fence.extend_until(clock.instant() + Duration::from_secs(10));
        fence.close();
        assert_eq!(fence.check(), Err(NotLeader));
    }

    #[test]
    fn a_later_grant_is_never_shortened_by_an_earlier_one() {
        let (fence, clock) = fence();
        fence.require_lease();
        let start = clock.instant();
        fence.extend_until(start + Duration::from_secs(10));
        fence.extend_until(start + Duration::from_secs(5));
        clock.advance(SignedDuration::from_secs(7));
        assert!(fence.check().is_ok());
    }

    #[test]
    fn a_wall_clock_step_forward_does_not_close_the_fence() {
        let (fence, clock) = fence();
        fence.require_lease();
        fence.extend_until(clock.instant() + Duration::from_secs(10));
        clock.set("2026-11-26T10:00:00Z".parse().unwrap());
        assert!(fence.check().is_ok(), "a day ahead, still inside the grant");
    }

    #[test]
    fn a_wall_clock_step_back_does_not_reopen_an_expired_grant() {
        let (fence, clock) = fence();
        fence.require_lease();
        fence.extend_until(clock.instant() + Duration::from_secs(10));
        clock.advance(SignedDuration::from_secs(11));
        assert_eq!(fence.check(), Err(NotLeader));
        clock.set("2026-11-24T10:00:00Z".parse().unwrap());
        assert_eq!(
            fence.check(),
            Err(NotLeader),
            "a day back, the grant stays expired"
        );
    }
}
