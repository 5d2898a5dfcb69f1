//! Liveness of the two loops that matter: the reconcile loop (a reconcile that does not end
//! within a deadline means something is wedged) and the leader-election loop (a loop that
//! stopped beating can neither renew nor step down). `/healthz` fails when either stalled,
//! so the kubelet restarts the pod. Real (monotonic) time: stalls are about the process.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// Shared origin of the millisecond counters below.
fn origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

fn millis(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(origin()).as_millis()).unwrap_or(u64::MAX)
}

/// The last time a loop went round.
#[derive(Clone, Debug, Default)]
pub struct Heartbeat {
    last: Arc<AtomicU64>,
}

impl Heartbeat {
    pub fn beat(&self) {
        self.beat_at(Instant::now());
    }

    pub fn beat_at(&self, at: Instant) {
        self.last.store(millis(at), Ordering::Relaxed);
    }

    /// Whether it beat within `deadline` of `now` (a heartbeat never started counts as
    /// fresh from the process start).
    pub fn is_fresh_at(&self, now: Instant, deadline: Duration) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        millis(now).saturating_sub(last) <= u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Reconciles in flight, and the last time one started from idle or ended.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    in_flight: Arc<AtomicU64>,
    last: Heartbeat,
}

/// Marks one reconcile as in flight until dropped.
pub struct InFlight {
    progress: Progress,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.progress.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.progress.last.beat();
    }
}

impl Progress {
    pub fn start(&self) -> InFlight {
        self.start_at(Instant::now())
    }

    fn start_at(&self, at: Instant) -> InFlight {
        if self.in_flight.fetch_add(1, Ordering::SeqCst) == 0 {
            self.last.beat_at(at);
        }
        InFlight {
            progress: self.clone(),
        }
    }

    /// Stalled: reconciles are in flight and none started from idle or ended within
    /// `deadline`. An idle controller never counts as stalled.
    pub fn is_stalled_at(&self, now: Instant, deadline: Duration) -> bool {
        self.in_flight.load(Ordering::SeqCst) > 0 && !self.last.is_fresh_at(now, deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_reconcile_loop_is_never_stalled() {
        let progress = Progress::default();
        let later = Instant::now() + Duration::from_secs(3600);
        assert!(!progress.is_stalled_at(later, Duration::from_secs(60)));
    }

    #[test]
    fn a_reconcile_running_past_the_deadline_with_no_other_progress_is_a_stall() {
        let progress = Progress::default();
        let start = Instant::now();
        let guard = progress.start_at(start);
        assert!(!progress.is_stalled_at(start + Duration::from_secs(60), Duration::from_secs(60)));
        assert!(progress.is_stalled_at(start + Duration::from_secs(61), Duration::from_secs(60)));
        drop(guard);
        assert!(
            !progress.is_stalled_at(start + Duration::from_secs(3600), Duration::from_secs(60))
        );
    }

    #[test]
    fn a_heartbeat_older_than_the_deadline_is_stale() {
        let beat = Heartbeat::default();
        let at = Instant::now();
        beat.beat_at(at);
        assert!(beat.is_fresh_at(at + Duration::from_secs(45), Duration::from_secs(45)));
        assert!(!beat.is_fresh_at(at + Duration::from_secs(46), Duration::from_secs(45)));
    }
}
