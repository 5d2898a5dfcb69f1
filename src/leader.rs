//! Leader election on a coordination.k8s.io/v1 Lease, so that only one replica reconciles
//! (two would each decide to renew and mint twice, revoking each other's tokens). A replica
//! takes the Lease when it is free or its holder stopped renewing it, renews it every third
//! of its duration, and reports leadership on a watch channel; a standby keeps trying.
//!
//! NB: leadership is also a lease on writes (see [`crate::fence`]): each successful renewal
//! extends the fence to the renewal's start plus the renew deadline (two thirds of the
//! Lease duration); a renewal that fails or hangs past that deadline ends leadership, so a
//! replica cut off from the API server stops writing before anyone else may take over.

use std::{sync::Arc, time::Duration};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{
    Api, Client,
    api::{PostParams, ResourceExt},
};
use tokio::sync::watch;
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
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
        let transitions = spec.lease_transitions.unwrap_or(0);
        let next = if holder == Some(self.config.identity.as_str()) {
            let acquired = spec.acquire_time.map_or(now, |t| t.0);
            self.held_spec(acquired, now, transitions)
        } else if holder.is_none() || expired(&spec, now) {
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
        let grant = SignedDuration::try_from(deadline).unwrap_or_default();
        let mut valid_until: Option<Timestamp> = None;
        loop {
            self.heartbeat.beat();
            let started = self.clock.now();
            let round = tokio::time::timeout(deadline, self.try_acquire_or_renew()).await;
            let held = match round {
                Ok(Ok(true)) => {
                    valid_until = Some(started + grant);
                    self.fence.extend_until(started + grant);
                    true
                }
                Ok(Ok(false)) => false,
                Ok(Err(error)) => {
                    warn!(%error, "failed to read or write the leader Lease");
                    valid_until.is_some_and(|until| self.clock.now() < until)
                }
                Err(_) => {
                    warn!(
                        deadline_ms = deadline.as_millis(),
                        "the leader Lease request did not finish within the renew deadline"
                    );
                    valid_until.is_some_and(|until| self.clock.now() < until)
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

fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().map(|t| t.0) else {
        return true;
    };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    renewed + duration <= now
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

    fn spec(holder: &str, renewed: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(renewed.parse().unwrap())),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn lease_expires_exactly_one_duration_after_its_last_renewal() {
        let s = spec("other", "2026-11-25T00:00:00Z", 15);
        assert!(!expired(&s, "2026-11-25T00:00:14Z".parse().unwrap()));
        assert!(expired(&s, "2026-11-25T00:00:15Z".parse().unwrap()));
    }

    #[test]
    fn lease_never_renewed_counts_as_expired() {
        assert!(expired(
            &LeaseSpec::default(),
            "2026-11-25T00:00:00Z".parse().unwrap()
        ));
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
