//! What every reconcile shares: the clients, the clock, the metrics, the operator-wide
//! settings, the fence, the process-wide services, and what this process remembers per
//! resource (see [`Memory`]).

use std::{collections::BTreeSet, sync::Arc};

use kube::{Client, runtime::events::Reporter};

use k8s_openapi::api::core::v1::ObjectReference;

pub use super::memory::{Memory, PendingToken};
use super::{
    decide::Policy,
    events::{self, Notice},
};
use crate::{
    clear::{AllowedBaseUrls, ClearClient},
    clock::Clock,
    fence::Fence,
    metrics::Metrics,
    services::Services,
};

/// Operator-wide settings the reconciler follows.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Accept `http://` base URLs (simulators and tests only).
    pub allow_http: bool,
    /// Where client secrets may be sent (`--allowed-base-url`; default: Clear's hosts).
    pub allowed_base_urls: AllowedBaseUrls,
    pub policy: Policy,
    /// This install (its leader Lease, `namespace/name`), recorded in the status it writes
    /// so that a second install watching the same resources yields instead of fighting;
    /// `None` (no leader election) neither records nor yields.
    pub instance: Option<String>,
    /// Standby (`--standby`): no call to Clear for any resource, as if every one were
    /// suspended; for a disaster-recovery cluster that holds the active one's resources.
    pub standby: bool,
    /// After each new token, nudge the kubelets of the pods that mount its Secret (see
    /// [`super::nudge`]); the pods are watched only then.
    pub nudge_pods: bool,
}

/// A resource, by namespace and name.
type Key = (String, String);

/// What every reconcile shares: what a step needs, and nothing a step does not.
pub struct Context {
    pub client: Client,
    pub clear: ClearClient,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    pub settings: Settings,
    /// Whether this replica may still write (leader election); checked before each write
    /// and before each call to Clear.
    pub fence: Fence,
    /// What the whole process shares (see [`crate::services`]).
    pub services: Services,
    /// What this process remembers per resource (see [`Memory`]).
    pub memory: Memory,
}

impl Context {
    pub fn new(
        client: Client,
        clear: ClearClient,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        settings: Settings,
        reporter: Reporter,
    ) -> Self {
        Self {
            services: Services::new(client.clone(), reporter, settings.instance.as_deref()),
            fence: Fence::new(clock.clone()),
            memory: Memory::default(),
            client,
            clear,
            clock,
            metrics,
            settings,
        }
    }

    /// The clock, to the second: what status and annotations can hold, so that what the
    /// operator computes equals what it reads back.
    pub fn now_seconds(&self) -> jiff::Timestamp {
        let now = self.clock.now();
        jiff::Timestamp::from_second(now.as_second()).unwrap_or(now)
    }

    /// Publishes an Event about `reference`, if this replica still leads.
    // NB: fenced like every other write: a replica that lost the Lease must not tell the
    // owner about tokens or failures the new leader may already have superseded.
    pub async fn publish(&self, reference: &ObjectReference, notice: Notice) {
        if !self.fence.is_open() {
            tracing::debug!("not leading any more; an Event is not published");
            return;
        }
        events::publish(&self.services.recorder, &self.metrics, reference, notice).await;
    }

    /// Forgets one resource: its series, its claims, what this process remembers of it
    /// (it is gone, or this replica lost the right to speak for it).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.metrics.forget(namespace, name);
        self.services.forget(namespace, name);
        self.memory.forget(namespace, name);
    }

    /// Forgets every per-resource series, claim and failure streak (leadership lost).
    // NB: not the pending tokens (see [`Memory::forget_all`]).
    pub fn forget_all(&self) {
        for (namespace, name) in self.memory.forget_all() {
            self.metrics.forget(&namespace, &name);
            self.services.forget(&namespace, &name);
        }
        self.metrics.forget_all();
        self.services.forget_all(&self.metrics);
    }

    /// Drops the metrics and claims of resources that are gone from the controller's view.
    /// NB: kube-runtime does not reconcile a deleted object that has no finalizer, so this
    /// sweep (run by the maintenance task) is where their series disappear.
    pub fn forget_deleted(&self) {
        let present: BTreeSet<Key> = self.services.index.keys().into_iter().collect();
        for (namespace, name) in self.memory.exported_not_in(&present) {
            self.forget(&namespace, &name);
        }
    }

    /// Keeps the process-wide services for the rest of the term (see
    /// [`Services::maintain`]).
    pub async fn maintain(&self) {
        self.services
            .maintain(&self.client, &self.fence, self.clock.as_ref(), || {
                self.forget_deleted()
            })
            .await;
    }
}
