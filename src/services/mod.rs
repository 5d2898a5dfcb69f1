//! What the whole process shares, apart from any one reconcile: the index of the resources
//! it knows (the shared-secret rule), what it wrote and saw by resourceVersion, the budget
//! ledger, Clear's circuit per host, the Event recorders, the bound on Secrets read at once,
//! and the health beats. They live as long as the process (or the leadership term, for what
//! [`Services::new_term`] resets), and one maintenance task keeps them
//! ([`Services::maintain`]).

pub mod circuit;
pub mod conflict;
pub mod ledger;
pub mod pods;
pub mod recorder;
pub mod versions;

use std::time::Duration;

use kube::{Client, runtime::events::Reporter};

use crate::{
    clock::Clock,
    fence::Fence,
    metrics::Metrics,
    watchdog::{Heartbeat, Progress},
};

/// Secrets read whole at once, at most: 8 Secrets of 1 MiB, decoded, stay far under the
/// chart's memory limit, and a read takes milliseconds, so this does not slow a fleet.
pub const SECRET_READS_AT_ONCE: usize = 8;

/// How often the maintenance task drops what belongs to deleted resources.
pub const FORGET_SWEEP: Duration = Duration::from_secs(30);

/// Where an install keeps its budget ledger: next to its Lease (`namespace/name` in
/// `instance`), as `<lease>-budget`.
pub fn ledger_location(instance: Option<&str>) -> Option<ledger::LedgerLocation> {
    let (namespace, lease) = instance?.split_once('/')?;
    Some(ledger::LedgerLocation {
        namespace: namespace.to_string(),
        name: format!("{lease}-budget"),
    })
}

/// See the module documentation.
pub struct Services {
    /// The ClearApiClients the controller knows (fed by its watch events): the conflict
    /// check and the Secret-to-resources mapping.
    pub index: conflict::ResourceIndex,
    /// What this process wrote and what its watches saw, by resourceVersion: the reads and
    /// watch events it may skip (see [`versions`]).
    pub versions: versions::Versions,
    /// Which pods mount which Secret (see [`pods`]); fed only with `--nudge-pods`.
    pub pods: pods::PodIndex,
    /// Calls per client secret today (see [`ledger`]).
    pub ledger: ledger::Ledger,
    /// Clear's availability, per host, as this process saw it (see [`circuit`]).
    pub circuits: circuit::Circuits,
    /// Events: see [`recorder::Recorders`] for why each gets a recorder of its own.
    pub recorder: recorder::Recorders,
    /// Permits to read a Secret whole: a Secret may be up to 1 MiB, and tenants choose which
    /// one a resource reads, so the number decoded at once is bounded (see
    /// [`SECRET_READS_AT_ONCE`]) rather than following the reconcile concurrency.
    pub secret_reads: tokio::sync::Semaphore,
    /// Reconciles in flight, for the `/healthz` stall check.
    pub progress: Progress,
    /// Beats on every round of the leader-election loop, for the `/healthz` stall check.
    pub lease_heartbeat: Heartbeat,
}

impl Services {
    pub fn new(client: Client, reporter: Reporter, instance: Option<&str>) -> Self {
        Self {
            index: conflict::ResourceIndex::default(),
            versions: versions::Versions::default(),
            ledger: ledger::Ledger::new(ledger_location(instance)),
            pods: pods::PodIndex::default(),
            circuits: circuit::Circuits::default(),
            recorder: recorder::Recorders::new(client, reporter),
            secret_reads: tokio::sync::Semaphore::new(SECRET_READS_AT_ONCE),
            progress: Progress::default(),
            lease_heartbeat: Heartbeat::default(),
        }
    }

    /// The one maintenance task of a leadership term, until dropped: every second the
    /// circuits' due trials are woken; every [`ledger::FLUSH_EVERY`] the ledger is written;
    /// every [`FORGET_SWEEP`] `sweep` drops what belongs to deleted resources (and, once every
    /// watched scope is listed, the version records of resources that are gone).
    pub async fn maintain(
        &self,
        client: &Client,
        fence: &Fence,
        clock: &dyn Clock,
        sweep: impl Fn(),
    ) {
        let mut every = tokio::time::interval(circuit::TRIAL_WAKE_EVERY);
        let (mut flushed, mut swept) = (std::time::Instant::now(), std::time::Instant::now());
        loop {
            every.tick().await;
            self.circuits.wake_for_trial(clock.now());
            if flushed.elapsed() >= ledger::FLUSH_EVERY {
                flushed = std::time::Instant::now();
                self.ledger.flush(client, fence, clock.now()).await;
            }
            if swept.elapsed() >= FORGET_SWEEP {
                swept = std::time::Instant::now();
                sweep();
                // NB: only once every resource is listed: a record dropped for a resource
                // still there would make its cache look never written.
                if self.index.all_scopes_synced() {
                    let present = self
                        .index
                        .keys()
                        .iter()
                        .map(|(namespace, name)| versions::key(namespace, name))
                        .collect();
                    self.versions.sweep(&present);
                }
            }
        }
    }

    /// Forgets one resource's claims (it is gone, or this replica lost the right to speak
    /// for it).
    pub fn forget(&self, namespace: &str, name: &str) {
        self.index.forget(namespace, name);
    }

    /// Forgets every claim and the ledger's series (leadership lost).
    pub fn forget_all(&self, metrics: &Metrics) {
        self.ledger.forget_series(metrics);
        self.index.forget_all_claims();
    }
}
