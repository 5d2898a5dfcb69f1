//! Leadership as a lease on writes. With leader election, every write the reconciler makes
//! (the token Secret, status, the finalizer, restarts) and every call to Clear first asks
//! the fence whether this replica can still prove it leads: the elector extends the fence
//! after each successful renewal, to the renewal's start plus the renew deadline (shorter
//! than the Lease duration, so the fence closes before any other replica may take over),
//! and closes it when leadership is lost or released. Without leader election the fence is
//! always open.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicI64, Ordering},
};

use jiff::Timestamp;

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
    clock: Arc<dyn Clock>,
    /// False: no leader election, always open.
    leased: AtomicBool,
    /// Milliseconds since the epoch until which writes are allowed (exclusive).
    until_ms: AtomicI64,
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
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                leased: AtomicBool::new(false),
                until_ms: AtomicI64::new(CLOSED),
            }),
        }
    }

    /// From now on writes need a lease granted by [`Fence::extend_until`]; closed until then.
    pub fn require_lease(&self) {
        self.inner.until_ms.store(CLOSED, Ordering::SeqCst);
        self.inner.leased.store(true, Ordering::SeqCst);
    }

    /// Allows writes until `until` (never shortens a later grant from a newer renewal).
    pub fn extend_until(&self, until: Timestamp) {
        self.inner
            .until_ms
            .fetch_max(until.as_millisecond(), Ordering::SeqCst);
    }

    /// No more writes (leadership lost or released).
    pub fn close(&self) {
        self.inner.until_ms.store(CLOSED, Ordering::SeqCst);
    }

    pub fn is_open(&self) -> bool {
        if !self.inner.leased.load(Ordering::SeqCst) {
            return true;
        }
        let until = self.inner.until_ms.load(Ordering::SeqCst);
        until != CLOSED && self.inner.clock.now().as_millisecond() < until
    }

    /// `Ok` when this replica may write now.
    pub fn check(&self) -> Result<(), NotLeader> {
        if self.is_open() {
            Ok(())
        } else {
            Err(NotLeader)
        }
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
        fence.extend_until(clock.now() + SignedDuration::from_secs(10));
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
        fence.extend_until(clock.now() + SignedDuration::from_secs(10));
        fence.close();
        assert_eq!(fence.check(), Err(NotLeader));
    }
}
