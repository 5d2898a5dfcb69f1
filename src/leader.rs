//! Leader election on a coordination.k8s.io/v1 Lease, so that only one replica reconciles
//! (two would each decide to renew and mint twice, revoking each other's tokens). A replica
//! takes the Lease when it is free or its holder stopped renewing it, renews it every third
//! of its duration, and reports leadership on a watch channel; a standby keeps trying.
//!
//! NB: leadership is also a lease on writes (see [`crate::fence`]): each successful renewal
//! extends the fence to the renewal's start plus the renew deadline (two thirds of the
//! Lease duration); a renewal that fails or hangs past that deadline ends leadership, so a
//! replica cut off from the API server stops writing before anyone else may take over.
//!
//! Expiry follows client-go's rule, on monotonic time only: a Lease held by another replica
//! is expired when it has not *changed* (holder, times, transitions, resourceVersion) for
//! its `leaseDurationSeconds`, as observed by this replica. Its `renewTime` is never
//! compared with a wall clock, so a holder whose clock is ahead (a `renewTime` from the
//! future) or behind, or a step of this node's clock, neither makes a live Lease look
//! expired nor keeps a dead one fresh. The price, as in client-go: a replica that starts
//! while a dead holder's Lease is still there waits one full duration before taking it.

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{PostParams, ResourceExt},
};
use tokio::{sync::watch, time::Instant};
use tracing::{info, warn};

use crate::{clock::Clock, fence::Fence, watchdog::Heartbeat};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (the pod name, made unique).
    pub identity: String,
    /// How long a Lease stays valid without renewal.
    pub lease_duration: Duration,
}

impl LeaseConfig {
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
        }
    }

    /// Renewal period of the leader, and retry period of a standby.
    pub fn renew_interval(&self) -> Duration {
        self.lease_duration / 3
    }

    /// How long after the start of its last successful renewal a leader may still write;
    /// past it, the leader steps down. Shorter than the Lease duration by a third, which
    /// covers clock skew between replicas and the latency of the last write.
    pub fn renew_deadline(&self) -> Duration {
        self.lease_duration * 2 / 3
    }
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    clock: Arc<dyn Clock>,
    fence: Fence,
    heartbeat: Heartbeat,
    /// The other holder's Lease as last seen, and since when (monotonic) it has not changed.
    observed: Mutex<Observed>,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig, clock: Arc<dyn Clock>) -> Self {
        let fence = Fence::new(clock.clone());
        fence.require_lease();
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            clock,
            fence,
            heartbeat: Heartbeat::default(),
            observed: Mutex::default(),
        }
    }

    /// Beats on every round of [`LeaderElector::run`] (the `/healthz` stall check).
    #[must_use]
    pub fn with_heartbeat(mut self, heartbeat: Heartbeat) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// Shares the write fence the reconciler checks (it is made lease-bound here).
    #[must_use]
    pub fn with_fence(mut self, fence: Fence) -> Self {
        fence.require_lease();
        self.fence = fence;
        self
    }

    /// One round: takes the Lease if it is free or expired, renews it if held. Returns
    /// whether this replica holds it afterwards. A write that loses a race (409) is simply
    /// "not leader" this round.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = self.clock.now();
        let Some(lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.held_spec(now, now, 0)),
            };
            return on_conflict_false(self.api.create(&PostParams::default(), &lease).await);
        };
        // NB: read after the answer: the Lease changed at the latest now, so counting its
        // duration from here never takes it early.
        let seen_at = self.clock.instant();
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == Some(self.config.identity.as_str()) {
            let acquired = spec.acquire_time.as_ref().map_or(now, |t| t.0);
            let renewed = changed_from(now, spec.renew_time.as_ref().map(|t| t.0));
            self.held_spec(acquired, renewed, transitions)
        } else if holder.is_none() || self.observe(&lease, seen_at) {
            info!(
                previous = holder.unwrap_or(""),
                "taking over the leader Lease"
            );
            self.held_spec(now, now, transitions.saturating_add(1))
        } else {
            return Ok(false);
        };
        let mut updated = lease;
        updated.spec = Some(next);
        // NB: replace carries the resourceVersion read above, so two replicas racing for an
        // expired Lease cannot both win.
        on_conflict_false(
            self.api
                .replace(&self.config.name, &PostParams::default(), &updated)
                .await,
        )
    }

    /// Records another holder's Lease as seen at `at`; returns whether it has gone
    /// unchanged for its duration.
    fn observe(&self, lease: &Lease, at: Instant) -> bool {
        let record = Record::of(lease);
        let duration = record.duration.unwrap_or(self.config.lease_duration);
        self.observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expired(record, duration, at)
    }

    fn held_spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Gives the Lease up (on shutdown) so a standby takes over without waiting for expiry.
    pub async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        let name = lease.name_any();
        on_conflict_false(
            self.api
                .replace(&name, &PostParams::default(), &lease)
                .await,
        )
        .map(|_| ())
    }

    /// Campaigns until `shutdown` resolves, publishing leadership on `leader` and moving the
    /// write fence. Leadership ends when a renewal has not succeeded within the renew
    /// deadline (a hung request counts as failed). On shutdown the fence closes first, then
    /// the Lease is released: callers resolve `shutdown` only once in-flight work ended.
    pub async fn run(
        self,
        leader: watch::Sender<bool>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let deadline = self.config.renew_deadline();
        let mut valid_until: Option<Instant> = None;
        loop {
            self.heartbeat.beat();
            let started = self.clock.instant();
            let round = tokio::time::timeout(deadline, self.try_acquire_or_renew()).await;
            let held = match round {
                Ok(Ok(true)) => {
                    valid_until = Some(started + deadline);
                    self.fence.extend_until(started + deadline);
                    true
                }
                Ok(Ok(false)) => false,
                Ok(Err(error)) => {
                    warn!(%error, "failed to read or write the leader Lease");
                    valid_until.is_some_and(|until| self.clock.instant() < until)
                }
                Err(_) => {
                    warn!(
                        deadline_ms = deadline.as_millis(),
                        "the leader Lease request did not finish within the renew deadline"
                    );
                    valid_until.is_some_and(|until| self.clock.instant() < until)
                }
            };
            if !held {
                valid_until = None;
                self.fence.close();
            }
            leader.send_if_modified(|current| {
                let changed = *current != held;
                if changed {
                    info!(leader = held, identity = %self.config.identity, "leadership changed");
                }
                *current = held;
                changed
            });
            // NB: the fence itself expires with the grant, so writes stop on time even if
            // this loop is late; the next round then reports the step-down.
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.renew_interval()) => {}
            }
        }
        self.fence.close();
        if *leader.borrow() {
            leader.send_replace(false);
            if let Err(error) = self.release().await {
                warn!(%error, "failed to release the leader Lease");
            }
        }
    }
}

/// What identifies one write of a Lease: any change means its holder is alive.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Record {
    holder: Option<String>,
    acquired: Option<Timestamp>,
    renewed: Option<Timestamp>,
    transitions: Option<i32>,
    resource_version: Option<String>,
    /// Its `leaseDurationSeconds` (not part of the comparison's meaning, but a change of
    /// it is a write too).
    duration: Option<Duration>,
}

impl Record {
    fn of(lease: &Lease) -> Self {
        let spec = lease.spec.clone().unwrap_or_default();
        Self {
            holder: spec.holder_identity,
            acquired: spec.acquire_time.map(|t| t.0),
            renewed: spec.renew_time.map(|t| t.0),
            transitions: spec.lease_transitions,
            resource_version: lease.metadata.resource_version.clone(),
            duration: spec
                .lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0)
                .map(Duration::from_secs),
        }
    }
}

/// client-go's `observedRecord` and `observedTime`: the last record seen, and the monotonic
/// instant it was first seen.
#[derive(Debug, Default)]
struct Observed {
    last: Option<(Record, Instant)>,
}

impl Observed {
    /// Notes `record` as seen at `now`; true when it has not changed for `duration`. A
    /// record seen for the first time (or changed) is fresh: its holder may be alive.
    fn expired(&mut self, record: Record, duration: Duration, now: Instant) -> bool {
        match &self.last {
            Some((seen, since)) if *seen == record => {
                now.saturating_duration_since(*since) >= duration
            }
            _ => {
                self.last = Some((record, now));
                false
            }
        }
    }
}

/// The renew time to write: `now`, unless that is the previous value to the microsecond
/// (a clock that did not move, or moved back onto it), when it would not be a change the
/// others can see: then one microsecond later.
fn changed_from(now: Timestamp, previous: Option<Timestamp>) -> Timestamp {
    match previous {
        Some(previous) if previous.as_microsecond() == now.as_microsecond() => previous
            .checked_add(SignedDuration::from_micros(1))
            .unwrap_or(now),
        _ => now,
    }
}

fn on_conflict_false<T>(result: Result<T, kube::Error>) -> Result<bool, kube::Error> {
    match result {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed: &str, seconds: i32, version: &str) -> Lease {
        Lease {
            metadata: ObjectMeta {
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.into()),
                renew_time: Some(MicroTime(renewed.parse().unwrap())),
                lease_duration_seconds: Some(seconds),
                ..LeaseSpec::default()
            }),
        }
    }

    const SECS_15: Duration = Duration::from_secs(15);

    #[test]
    fn a_lease_expires_one_duration_after_it_was_last_seen_to_change() {
        let mut observed = Observed::default();
        let t0 = Instant::now();
        let l1 = Record::of(&lease("other", "2026-11-25T00:00:00Z", 15, "1"));
        assert!(
            !observed.expired(l1.clone(), SECS_15, t0),
            "first seen: fresh"
        );
        assert!(!observed.expired(l1.clone(), SECS_15, t0 + Duration::from_secs(10)));
        let l2 = Record::of(&lease("other", "2026-11-25T00:00:10Z", 15, "2"));
        assert!(
            !observed.expired(l2.clone(), SECS_15, t0 + Duration::from_secs(14)),
            "renewed: counted again from when the change was seen"
        );
        assert!(!observed.expired(l2.clone(), SECS_15, t0 + Duration::from_secs(28)));
        assert!(observed.expired(l2, SECS_15, t0 + Duration::from_secs(29)));
    }

    #[test]
    fn a_renew_time_from_the_future_is_not_fresh_forever() {
        let mut observed = Observed::default();
        let t0 = Instant::now();
        let ahead = Record::of(&lease("other", "2126-11-25T00:00:00Z", 15, "7"));
        assert!(!observed.expired(ahead.clone(), SECS_15, t0));
        assert!(
            observed.expired(ahead, SECS_15, t0 + SECS_15),
            "unchanged for its duration: expired, whatever time it claims"
        );
    }

    #[test]
    fn a_renew_time_far_in_the_past_that_keeps_changing_is_alive() {
        let mut observed = Observed::default();
        let t0 = Instant::now();
        for (i, renewed) in ["2000-01-01T00:00:00Z", "2000-01-01T00:00:05Z"]
            .into_iter()
            .enumerate()
        {
            let record = Record::of(&lease("other", renewed, 15, &i.to_string()));
            let at = t0 + Duration::from_secs(20) * u32::try_from(i).unwrap();
            assert!(
                !observed.expired(record, SECS_15, at),
                "a holder whose clock is behind but who renews keeps the Lease"
            );
        }
    }

    #[test]
    fn any_write_of_the_lease_counts_as_a_change() {
        let mut observed = Observed::default();
        let t0 = Instant::now();
        let same_time = "2026-11-25T00:00:00Z";
        assert!(!observed.expired(Record::of(&lease("other", same_time, 15, "1")), SECS_15, t0));
        assert!(
            !observed.expired(
                Record::of(&lease("other", same_time, 15, "2")),
                SECS_15,
                t0 + SECS_15
            ),
            "a new resourceVersion is a renewal, even with the same renewTime"
        );
    }

    #[test]
    fn the_holder_renews_with_a_time_the_others_can_see_change() {
        let t: Timestamp = "2026-11-25T00:00:00.000001Z".parse().unwrap();
        assert_eq!(changed_from(t, None), t);
        assert_eq!(
            changed_from(t, Some("2026-11-25T00:00:00Z".parse().unwrap())),
            t
        );
        assert_eq!(
            changed_from(t, Some(t)),
            "2026-11-25T00:00:00.000002Z".parse::<Timestamp>().unwrap(),
            "a clock that did not move still writes a different renewTime"
        );
    }

    #[test]
    fn renew_interval_is_a_third_of_the_lease() {
        let config = LeaseConfig::new("ns", "clear-operator", "pod-a");
        assert_eq!(config.renew_interval(), Duration::from_secs(5));
    }

    #[test]
    fn renew_deadline_ends_before_the_lease_expires_for_the_others() {
        let config = LeaseConfig::new("ns", "clear-operator", "pod-a");
        assert_eq!(config.renew_deadline(), Duration::from_secs(10));
        assert!(config.renew_deadline() < config.lease_duration);
    }
}
