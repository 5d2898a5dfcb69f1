//! The operator's trusted wall time: the node's monotonic clock projected from an anchor,
//! `now = anchor.wall + (monotonic now - anchor.at)`.
//!
//! The anchor is first the node's wall clock at start, then the API server's clock whenever
//! a sample of it (its HTTP `Date` header, see [`super::reference`]) disagrees with the
//! projection by more than [`TOLERANCE`]. So:
//! - a step of the node's wall clock, in either direction, does not move the operator's
//!   time at all (the projection never reads the wall clock again; a warning says the node
//!   is off);
//! - a wrong start (the node's clock a day ahead when the process starts) is corrected by
//!   the first sample, which the operator takes before it reconciles anything;
//! - if the API server's clock itself steps, the operator follows it at the next sample:
//!   the cluster's time is the API server's (Lease, Event and certificate times are read
//!   against it too).
//!
//! Failure modes: with no sample ever answered, the operator runs on the node's wall clock
//! as it was at start, moved by monotonic time (right if the node was right then); samples
//! that stop answering leave the last anchor in place, which drifts only as fast as the
//! monotonic clock does (NTP slews it, so parts per million). A sample whose round trip is
//! longer than the tolerance is too vague to judge by and is dropped.

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicBool, Ordering},
};

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Clock, SystemClock};

/// Disagreement with the reference below which the anchor is left alone. The `Date` header
/// has a resolution of one second and the sample's round trip adds its own uncertainty; a
/// node kept by NTP is within milliseconds of the API server, so anything past this is a
/// wrong or stepped clock, not noise.
pub const TOLERANCE: SignedDuration = SignedDuration::from_secs(3);

/// The reference's time, and when (on the node's monotonic clock) the request that read it
/// was sent and its answer received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub time: Timestamp,
    pub sent: Instant,
    pub received: Instant,
}

/// What a sample did to the clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Within the tolerance: the anchor stays.
    Agreed,
    /// Re-anchored to the reference; the operator's time moved by this much.
    Corrected(SignedDuration),
    /// The round trip was too long to tell; the sample is ignored.
    TooVague,
}

/// See the module documentation.
pub struct AnchoredClock {
    /// The node's clocks (wall and monotonic); [`SystemClock`] outside tests.
    node: Arc<dyn Clock>,
    anchor: Mutex<Anchor>,
    /// Whether the node's wall clock was off by more than the tolerance at the last sample
    /// (so the warning is logged once per step, not once per sample).
    node_off: AtomicBool,
}

#[derive(Clone, Copy, Debug)]
struct Anchor {
    wall: Timestamp,
    at: Instant,
}

impl std::fmt::Debug for AnchoredClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnchoredClock")
            .field("anchor", &*self.anchor())
            .finish_non_exhaustive()
    }
}

impl AnchoredClock {
    /// Anchored to the node's clocks as they are now.
    pub fn system() -> Self {
        Self::on(Arc::new(SystemClock))
    }

    /// Anchored to `node` as it is now (tests pass a manual clock for the node).
    pub fn on(node: Arc<dyn Clock>) -> Self {
        let anchor = Anchor {
            wall: node.now(),
            at: node.instant(),
        };
        Self {
            node,
            anchor: Mutex::new(anchor),
            node_off: AtomicBool::new(false),
        }
    }

    /// Compares the projection with a sample of the reference, re-anchors when they
    /// disagree by more than [`TOLERANCE`], and reports (once) a node wall clock that is off.
    pub fn observe(&self, sample: Sample) -> Outcome {
        let round_trip = sample.received.saturating_duration_since(sample.sent);
        let outcome =
            if SignedDuration::try_from(round_trip).unwrap_or(SignedDuration::MAX) > TOLERANCE {
                debug!(
                    round_trip_ms = round_trip.as_millis(),
                    "clock sample ignored: its round trip was too long to tell the time by"
                );
                Outcome::TooVague
            } else {
                // NB: the reference read its clock somewhere during the round trip: take the middle.
                let at = sample.sent + round_trip / 2;
                let mut anchor = self.anchor();
                let projected = project(&anchor, at);
                let gap = sample.time.duration_since(projected);
                if gap.abs() > TOLERANCE {
                    *anchor = Anchor {
                        wall: sample.time,
                        at,
                    };
                    drop(anchor);
                    warn!(
                        correction_ms = gap.as_millis(),
                        "the operator's time disagreed with the API server's clock by more than \
                     the tolerance; it now follows the API server's"
                    );
                    Outcome::Corrected(gap)
                } else {
                    Outcome::Agreed
                }
            };
        self.check_node();
        outcome
    }

    /// Logs when the node's wall clock goes off the operator's time, and when it is back.
    fn check_node(&self) {
        let offset = self.offset();
        let off = offset.abs() > TOLERANCE;
        if self.node_off.swap(off, Ordering::Relaxed) == off {
            return;
        }
        if off {
            warn!(
                node_behind_ms = offset.as_millis(),
                "the node's wall clock is off the API server's time; the operator keeps to \
                 the API server's and ignores the node's"
            );
        } else {
            info!("the node's wall clock agrees with the API server's time again");
        }
    }

    fn anchor(&self) -> std::sync::MutexGuard<'_, Anchor> {
        // NB: a poisoned lock still holds a valid anchor.
        self.anchor.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn project(anchor: &Anchor, at: Instant) -> Timestamp {
    let elapsed = if at >= anchor.at {
        SignedDuration::try_from(at - anchor.at)
    } else {
        SignedDuration::try_from(anchor.at - at).map(|d| -d)
    }
    .unwrap_or_default();
    anchor.wall.saturating_add(elapsed).unwrap_or(anchor.wall)
}

impl Clock for AnchoredClock {
    fn now(&self) -> Timestamp {
        project(&self.anchor(), self.node.instant())
    }

    fn instant(&self) -> Instant {
        self.node.instant()
    }

    /// The operator's time minus the node's wall clock.
    fn offset(&self) -> SignedDuration {
        let at = self.node.instant();
        let wall = self.node.now();
        project(&self.anchor(), at).duration_since(wall)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    const START: &str = "2026-11-25T12:00:00Z";

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// A clock on a manual node: `set` on the node is a wall-clock step, `advance` is time.
    fn clock() -> (AnchoredClock, ManualClock) {
        let node = ManualClock::new(at(START));
        (AnchoredClock::on(Arc::new(node.clone())), node)
    }

    /// A sample taken with a round trip of `rtt_ms`, answered `time`, ending now.
    fn sample(node: &ManualClock, time: &str, rtt_ms: u64) -> Sample {
        let received = node.instant();
        Sample {
            time: at(time),
            sent: received - Duration::from_millis(rtt_ms),
            received,
        }
    }

    #[test]
    fn without_a_reference_it_follows_the_node_as_it_was_at_start() {
        let (clock, node) = clock();
        assert_eq!(clock.now(), at(START));
        node.advance(SignedDuration::from_secs(90));
        assert_eq!(clock.now(), at("2026-11-25T12:01:30Z"));
        assert_eq!(clock.offset(), SignedDuration::ZERO);
    }

    #[test]
    fn a_step_of_the_node_wall_clock_in_either_direction_does_not_move_it() {
        let (clock, node) = clock();
        node.advance(SignedDuration::from_secs(10));
        node.set(at("2026-11-26T12:00:10Z"));
        assert_eq!(
            clock.now(),
            at("2026-11-25T12:00:10Z"),
            "a day ahead: ignored"
        );
        assert_eq!(clock.offset(), SignedDuration::from_hours(-24));
        node.set(at("2026-11-24T12:00:10Z"));
        node.advance(SignedDuration::from_secs(5));
        assert_eq!(
            clock.now(),
            at("2026-11-25T12:00:15Z"),
            "a day behind: ignored"
        );
        assert_eq!(clock.offset(), SignedDuration::from_hours(24));
    }

    #[test]
    fn a_wrong_start_is_corrected_by_the_first_sample_and_steps_are_then_ignored() {
        let node = ManualClock::new(at("2026-11-26T12:00:00Z"));
        let clock = AnchoredClock::on(Arc::new(node.clone()));
        node.advance(SignedDuration::from_millis(200));
        assert_eq!(
            clock.observe(sample(&node, START, 200)),
            Outcome::Corrected(SignedDuration::from_millis(-86_400_100)),
            "the middle of the round trip is the reference's moment"
        );
        assert_eq!(clock.now(), at("2026-11-25T12:00:00.1Z"));
        node.advance(SignedDuration::from_secs(60));
        node.set(at(START));
        assert_eq!(clock.now(), at("2026-11-25T12:01:00.1Z"));
    }

    #[test]
    fn disagreement_within_the_tolerance_leaves_the_anchor_alone() {
        let (clock, node) = clock();
        node.advance(SignedDuration::from_secs(60));
        assert_eq!(
            clock.observe(sample(&node, "2026-11-25T12:01:02.9Z", 0)),
            Outcome::Agreed
        );
        assert_eq!(
            clock.observe(sample(&node, "2026-11-25T12:00:57.1Z", 0)),
            Outcome::Agreed
        );
        assert_eq!(clock.now(), at("2026-11-25T12:01:00Z"));
    }

    #[test]
    fn a_reference_that_steps_is_followed_at_the_next_sample() {
        let (clock, node) = clock();
        node.advance(SignedDuration::from_secs(60));
        assert_eq!(
            clock.observe(sample(&node, "2026-11-25T12:00:50Z", 0)),
            Outcome::Corrected(SignedDuration::from_secs(-10))
        );
        assert_eq!(clock.now(), at("2026-11-25T12:00:50Z"));
        node.advance(SignedDuration::from_secs(1));
        assert_eq!(clock.now(), at("2026-11-25T12:00:51Z"));
    }

    #[test]
    fn a_sample_with_a_long_round_trip_is_ignored() {
        let (clock, node) = clock();
        node.advance(SignedDuration::from_secs(60));
        assert_eq!(
            clock.observe(sample(&node, "2026-11-26T12:00:00Z", 3_001)),
            Outcome::TooVague
        );
        assert_eq!(clock.now(), at("2026-11-25T12:01:00Z"));
    }

    #[test]
    fn offset_reports_how_far_the_node_is_from_the_operator_time() {
        let (clock, node) = clock();
        node.set(at("2026-11-25T11:59:58Z"));
        assert_eq!(clock.offset(), SignedDuration::from_secs(2));
        assert_eq!(
            clock.instant(),
            node.instant(),
            "monotonic time is the node's"
        );
    }
}
