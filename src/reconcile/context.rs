//! What every reconcile shares: the clients, the operator-wide settings, the resource index,
//! the fence, and the per-resource bookkeeping kept in memory (exported series, failure
//! streaks) with the code that forgets it.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use kube::{Client, runtime::events::Reporter};

use k8s_openapi::api::core::v1::ObjectReference;

use super::{
    conflict::ResourceIndex,
    decide::Policy,
    events::{self, Notice},
};
use crate::{
    clear::{AllowedBaseUrls, ClearClient},
    clock::Clock,
    fence::Fence,
    metrics::Metrics,
    watchdog::{Heartbeat, Progress},
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
}

/// Secrets read whole at once, at most: 8 Secrets of 1 MiB, decoded, stay far under the
/// chart's memory limit, and a read takes milliseconds, so this does not slow a fleet.
pub const SECRET_READS_AT_ONCE: usize = 8;

/// Where an install keeps its budget ledger: next to its Lease (`namespace/name` in
/// `instance`), as `<lease>-budget`.
pub fn ledger_location(instance: Option<&str>) -> Option<super::ledger::LedgerLocation> {
    let (namespace, lease) = instance?.split_once('/')?;
    Some(super::ledger::LedgerLocation {
        namespace: namespace.to_string(),
        name: format!("{lease}-budget"),
    })
}

/// A resource, by namespace and name.
type Key = (String, String);

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub clear: ClearClient,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
    /// Events: see [`super::events::Recorders`] for why each gets a recorder of its own.
    pub recorder: super::events::Recorders,
    pub settings: Settings,
    /// The ClearApiClients the controller knows (fed by its watch events): the conflict
    /// check and the Secret-to-resources mapping.
    pub index: ResourceIndex,
    /// Whether this replica may still write (leader election); checked before each write
    /// and before each call to Clear.
    pub fence: Fence,
    /// Reconciles in flight, for the `/healthz` stall check.
    pub progress: Progress,
    /// Beats on every round of the leader-election loop, for the `/healthz` stall check.
    pub lease_heartbeat: Heartbeat,
    /// Calls per client secret today (see [`super::ledger`]).
    pub ledger: super::ledger::Ledger,
    /// Clear's availability, per host, as this process saw it (see [`super::circuit`]).
    pub circuits: super::circuit::Circuits,
    /// Permits to read a Secret whole: a Secret may be up to 1 MiB, and tenants choose which
    /// one a resource reads, so the number decoded at once is bounded (see
    /// [`SECRET_READS_AT_ONCE`]) rather than following the reconcile concurrency.
    pub secret_reads: tokio::sync::Semaphore,
    /// What this process wrote and what its watches saw, by resourceVersion: the reads and
    /// watch events it may skip (see [`super::versions`]).
    pub versions: super::versions::Versions,
    /// Resources this process exported per-resource metrics for.
    exported: Mutex<BTreeSet<Key>>,
    /// Consecutive failed reconciles per resource. NB: this paces retries of Kubernetes API
    /// errors only; it never feeds the mint decision, which stays a function of the cluster.
    failures: Mutex<BTreeMap<Key, u32>>,
    /// Tokens minted by this process whose Secret write has not landed yet (see
    /// [`PendingToken`]).
    pending: Mutex<BTreeMap<Key, PendingToken>>,
    /// Resources another install manages that this process already warned about.
    yielded: Mutex<BTreeSet<Key>>,
}

/// A token this process minted and could not write yet (the API server failed, timed out,
/// restarted, or this replica could not prove it leads at that moment). It is written on
/// the next reconciles, never minted again, for as long as status still marks its call as
/// the one in flight: a minted token is never thrown away while it can still be served.
// NB: in memory only, on purpose: a token is never written anywhere but its Secret. A
// process that dies holding one costs one replacement (the next leader sees the call in
// flight, waits for its deadline, and mints).
pub struct PendingToken {
    /// The `status.callId` of the call that minted it.
    pub call_id: String,
    /// When Clear's answer arrived: the rotation window (consumers hold a revoked token)
    /// runs from here to the Secret write.
    pub answered_at: std::time::Instant,
    pub token: crate::clear::AccessToken,
    pub record: super::secret::TokenRecord,
    pub reason: super::decide::MintReason,
    /// Why the token's expiry was assumed (Clear's answer had no readable `valid_till`).
    pub expiry_assumed: Option<&'static str>,
    /// Failed writes so far (paces the next one).
    pub attempts: u32,
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
            recorder: super::events::Recorders::new(client.clone(), reporter),
            fence: Fence::new(clock.clone()),
            secret_reads: tokio::sync::Semaphore::new(SECRET_READS_AT_ONCE),
            circuits: super::circuit::Circuits::default(),
            ledger: super::ledger::Ledger::new(ledger_location(settings.instance.as_deref())),
            versions: super::versions::Versions::default(),
            progress: Progress::default(),
            lease_heartbeat: Heartbeat::default(),
            client,
            clear,
            clock,
            metrics,
            settings,
            index: ResourceIndex::default(),
            exported: Mutex::default(),
            failures: Mutex::default(),
            pending: Mutex::default(),
            yielded: Mutex::default(),
        }
    }

    /// Notes that this process yields the resource to another install; true the first time
    /// (when the Warning is due).
    pub(super) fn first_yield(&self, namespace: &str, name: &str) -> bool {
        self.yielded
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((namespace.to_string(), name.to_string()))
    }

    /// Keeps a minted token whose Secret write failed, to be written by a later reconcile.
    pub(super) fn keep_pending(&self, namespace: &str, name: &str, token: PendingToken) {
        self.pending_lock()
            .insert((namespace.to_string(), name.to_string()), token);
    }

    /// Takes the token kept for this resource, if any.
    pub(super) fn take_pending(&self, namespace: &str, name: &str) -> Option<PendingToken> {
        self.pending_lock()
            .remove(&(namespace.to_string(), name.to_string()))
    }

    /// Publishes an Event about `reference`, if this replica still leads.
    // NB: fenced like every other write: a replica that lost the Lease must not tell the
    // owner about tokens or failures the new leader may already have superseded.
    pub async fn publish(&self, reference: &ObjectReference, notice: Notice) {
        if !self.fence.is_open() {
            tracing::debug!("not leading any more; an Event is not published");
            return;
        }
        events::publish(&self.recorder, &self.metrics, reference, notice).await;
    }

    /// Notes that this process exports per-resource series for the resource.
    pub(super) fn exported(&self, namespace: String, name: String) {
        self.exported_lock().insert((namespace, name));
    }

    /// Records the outcome of a reconcile; returns the failure streak (0 after a success).
    pub(super) fn record_outcome(&self, namespace: String, name: String, ok: bool) -> u32 {
        let mut failures = self.failures_lock();
        let key = (namespace, name);
        if ok {
            failures.remove(&key);
            return 0;
        }
        let streak = failures.entry(key).or_insert(0);
        *streak = streak.saturating_add(1);
        *streak
    }

    /// Forgets one resource: its series, its claims, its failure streak (it is gone, or
    /// this replica lost the right to speak for it).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.metrics.forget(namespace, name);
        self.index.forget(namespace, name);
        let key = (namespace.to_string(), name.to_string());
        self.exported_lock().remove(&key);
        self.failures_lock().remove(&key);
        self.pending_lock().remove(&key);
    }

    /// Forgets every per-resource series, claim and failure streak (leadership lost).
    // NB: not the pending tokens: leadership that flickered (one late Lease renewal) comes
    // back with the Lease still ours, and the token minted meanwhile is still the live one.
    // A new leader's call replaces `status.callId`, and a pending token whose call is no
    // longer the one in flight is dropped unwritten.
    pub fn forget_all(&self) {
        let exported = std::mem::take(&mut *self.exported_lock());
        let pending = std::mem::take(&mut *self.pending_lock());
        for (namespace, name) in exported {
            self.forget(&namespace, &name);
        }
        *self.pending_lock() = pending;
        self.metrics.forget_all();
        self.ledger.forget_series(&self.metrics);
        self.index.forget_all_claims();
    }

    /// Consecutive failed reconciles of this resource (0 after a success).
    pub fn failure_streak(&self, namespace: &str, name: &str) -> u32 {
        self.failures_lock()
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Drops the metrics and claims of resources that are gone from the controller's view.
    /// NB: kube-runtime does not reconcile a deleted object that has no finalizer, so this
    /// sweep (run periodically by the controller) is where their series disappear.
    pub fn forget_deleted(&self) {
        let present: BTreeSet<Key> = self.index.keys().into_iter().collect();
        let gone: Vec<Key> = self.exported_lock().difference(&present).cloned().collect();
        for (namespace, name) in gone {
            self.forget(&namespace, &name);
        }
    }

    // NB: std mutexes, held for a map operation only and never across an await.
    fn failures_lock(&self) -> MutexGuard<'_, BTreeMap<Key, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending_lock(&self) -> MutexGuard<'_, BTreeMap<Key, PendingToken>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn exported_lock(&self) -> MutexGuard<'_, BTreeSet<Key>> {
        self.exported.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
