//! The controller: a kube-runtime `Controller` over ClearApiClients (all namespaces, or the
//! configured ones), woken by the operator's own Secrets and by the client-secret Secrets the
//! resources reference. Secrets are watched as metadata only, so no token or client secret
//! sits in any cache. With leader election, only the Lease holder runs it.

use std::{future::Future, sync::Arc, time::Duration};

use futures::{FutureExt, StreamExt, future::join_all};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    core::PartialObjectMeta,
    runtime::{
        Controller, WatchStreamExt,
        controller::Config as RunConfig,
        reflector::{self, ObjectRef, reflector},
        watcher::{self, watcher},
    },
};
use tokio::sync::{oneshot, watch};
use tracing::{info, warn};

use crate::{
    leader::{LeaderElector, LeaseConfig},
    reconcile::{Context, error_policy, reconcile},
    resource::{CLIENT_LABEL, ClearApiClient, MANAGED_BY_LABEL, MANAGED_BY_VALUE},
    services::{
        conflict::ResourceIndex,
        versions::{EventOrigin, Object},
    },
};

/// Written by `kubectl apply`: the whole object again, as JSON.
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Longest wait for the budget ledger at the start of a leadership term.
const LEDGER_LOAD_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Resources reconciled at once.
    pub concurrency: u16,
    /// `None` runs without leader election (a single replica).
    pub leader_election: Option<LeaseConfig>,
    /// On shutdown, how long in-flight reconciles may take to end before they are dropped
    /// and the Lease released. Shorter than the pod's termination grace period (30 s).
    pub shutdown_grace: Duration,
}

/// Default of `--concurrency`: high enough that the API server's CPU, not the operator, bounds
/// a first start on the real 2-core control plane (docs/performance.md, "Real control plane").
pub const DEFAULT_CONCURRENCY: u16 = 64;

/// Default of [`ControllerConfig::shutdown_grace`]: room for one call to Clear (20 s by
/// default) and the writes after it, inside Kubernetes' 30 s termination grace period.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            concurrency: DEFAULT_CONCURRENCY,
            leader_election: None,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
        }
    }
}

/// Runs the controller until `shutdown` resolves. With leader election it campaigns for the
/// Lease, runs while leading, stops when leadership is lost, and campaigns again.
pub async fn run(
    ctx: Arc<Context>,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let Some(lease) = config.leader_election.clone() else {
        ctx.metrics.set_leader(true);
        run_term(&ctx, &config, wait_true(stop_rx)).await;
        return;
    };

    let (leader_tx, mut leader_rx) = watch::channel(false);
    // NB: from here on every write needs the Lease (see `fence`).
    let elector = LeaderElector::new(ctx.client.clone(), lease, ctx.clock.clone())
        .with_fence(ctx.fence.clone())
        .with_heartbeat(ctx.services.lease_heartbeat.clone());
    // NB: the elector keeps renewing until the work of the last term has ended, and only
    // then releases the Lease: a standby taking over while a call to Clear is in flight
    // here would mint again and our answer would then overwrite its token with a revoked one.
    let (drained_tx, drained_rx) = oneshot::channel::<()>();
    let campaign = tokio::spawn(elector.run(leader_tx, async move {
        let _ = drained_rx.await;
    }));
    loop {
        tokio::select! {
            changed = leader_rx.wait_for(|leading| *leading) => if changed.is_err() { break },
            () = wait_true(stop_rx.clone()) => break,
        }
        ctx.metrics.set_leader(true);
        info!("leading: starting the controller");
        let mut lost = leader_rx.clone();
        let term_end = {
            let stop = stop_rx.clone();
            async move {
                tokio::select! {
                    _ = lost.wait_for(|leading| !*leading) => {}
                    () = wait_true(stop) => {}
                }
            }
        };
        drain_within(
            run_term(&ctx, &config, term_end),
            stop_rx.clone(),
            config.shutdown_grace,
        )
        .await;
        ctx.metrics.set_leader(false);
        // NB: a replica that does not lead exports no per-resource series: the new leader
        // does, and two replicas exporting stale values would make alerts lie.
        ctx.forget_all();
        info!("controller stopped");
        if *stop_rx.borrow() {
            break;
        }
    }
    ctx.fence.close();
    let _ = drained_tx.send(());
    let _ = campaign.await;
}

/// Runs `term` to its end; once `stop` fires, gives it at most `grace` more, then drops it
/// (cancelling whatever it still awaits; the fence is closed by then or about to be).
async fn drain_within(
    term: impl Future<Output = ()>,
    stop: watch::Receiver<bool>,
    grace: Duration,
) {
    tokio::pin!(term);
    tokio::select! {
        () = &mut term => return,
        () = wait_true(stop) => {}
    }
    if tokio::time::timeout(grace, term).await.is_err() {
        warn!(
            grace_secs = grace.as_secs(),
            "in-flight reconciles did not end within the shutdown grace period; dropping them"
        );
    }
}

async fn wait_true(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// One leadership term: a controller per watched scope, all stopped together when `end`
/// resolves (in-flight reconciles finish first, so no call to Clear is cut off midway).
async fn run_term(
    ctx: &Arc<Context>,
    config: &ControllerConfig,
    end: impl Future<Output = ()> + Send + 'static,
) {
    let scopes = scopes_of(config);
    ctx.services.index.expect_scopes(scopes.len());
    ctx.services.versions.secrets.new_term(scopes.len());
    // NB: before the first reconcile of the term: calls another leader counted today (with
    // any client secret) count here too. Bounded: an unreadable ledger is logged, and each
    // resource's own count in status still holds.
    let _ = tokio::time::timeout(
        LEDGER_LOAD_TIMEOUT,
        ctx.services
            .ledger
            .load(&ctx.client, ctx.clock.now(), &ctx.metrics),
    )
    .await;
    let mut stoppers = Vec::new();
    let mut runs = Vec::new();
    for (id, scope) in (0u64..).zip(scopes) {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        stoppers.push(stop_tx);
        let controller =
            build(ctx, config, scope.as_deref(), id).graceful_shutdown_on(stop_rx.map(|_| ()));
        let run = controller
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|result| async move {
                if let Err(error) = result {
                    warn!(%error, "controller event");
                }
            });
        runs.push(run);
    }
    // NB: with --nudge-pods, one pod watch per scope feeds the pod index (names only); it
    // ends with the term.
    let pod_watches: Vec<AbortOnDrop> = if ctx.settings.nudge_pods {
        scopes_of(config)
            .into_iter()
            .zip(0u64..)
            .map(|(scope, id)| AbortOnDrop(tokio::spawn(watch_pods(ctx.clone(), scope, id))))
            .collect()
    } else {
        Vec::new()
    };
    // NB: one task keeps the process-wide services for the term (circuit trials, ledger
    // writes, sweeps of deleted resources); it ends with the term.
    let maintenance = AbortOnDrop({
        let ctx = ctx.clone();
        tokio::spawn(async move { ctx.maintain().await })
    });
    tokio::spawn(async move {
        end.await;
        for stop in stoppers {
            let _ = stop.send(());
        }
    });
    join_all(runs).await;
    drop(maintenance);
    drop(pod_watches);
    // NB: the calls of the term's last seconds, for the next leader (fenced: nothing is
    // written once the Lease is lost).
    ctx.services
        .ledger
        .flush(&ctx.client, &ctx.fence, ctx.clock.now())
        .await;
}

/// The watched scopes: every namespace (`None`), or each configured one.
fn scopes_of(config: &ControllerConfig) -> Vec<Option<String>> {
    if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    }
}

/// Feeds the pod index from a watch of the pods of `namespace` (all when `None`).
async fn watch_pods(ctx: Arc<Context>, namespace: Option<String>, scope: u64) {
    use k8s_openapi::api::core::v1::Pod;
    let pods: Api<Pod> = match &namespace {
        Some(ns) => Api::namespaced(ctx.client.clone(), ns),
        None => Api::all(ctx.client.clone()),
    };
    // NB: the index keeps names only; what the watch delivers is dropped at once.
    watcher(pods, watcher::Config::default())
        .for_each(|event| {
            match event {
                Ok(event) => ctx.services.pods.apply_event(scope, &event),
                Err(error) => warn!(%error, "pod watch"),
            }
            std::future::ready(())
        })
        .await;
}

/// Aborts the task when dropped (also when the term is dropped midway).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn build(
    ctx: &Arc<Context>,
    config: &ControllerConfig,
    namespace: Option<&str>,
    scope: u64,
) -> Controller<ClearApiClient> {
    let client = ctx.client.clone();
    let (clients, secrets): (Api<ClearApiClient>, Api<PartialObjectMeta<Secret>>) = match namespace
    {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    // NB: the index is fed from the same watch as the controller's store, before the
    // controller sees the event, so a reconcile never looks at an index older than its
    // trigger.
    let (reader, writer) = reflector::store();
    let index = ctx.services.index.clone();
    // NB: managedFields and kubectl's copy of the last applied object are never read here
    // and are most of each cached object (the store holds every ClearApiClient).
    let objects = watcher(clients, watcher::Config::default()).modify(|cac| {
        cac.metadata.managed_fields = None;
        cac.annotations_mut().remove(LAST_APPLIED_ANNOTATION);
    });
    let own = ctx.clone();
    let trigger = reflector(writer, objects)
        .inspect(move |event| {
            if let Ok(event) = event {
                index.apply_event(scope, event);
            }
        })
        .filter(move |event| std::future::ready(!is_own_status_write(&own, event)))
        .applied_objects();
    // NB: events held while a write of ours was in flight and found not to be its own
    // come back through this channel (see `versions::EventOrigin::Held`).
    let (held_tx, held_rx) = futures::channel::mpsc::unbounded();
    ctx.services
        .versions
        .own
        .set_trigger(namespace.map(str::to_string), held_tx);
    // NB: resources held back while Clear failed for everyone come back when it answers
    // again, paced by the circuit (see `services::circuit`); only this scope's.
    let scope_namespace = namespace.map(str::to_string);
    let released = ctx
        .services
        .circuits
        .releases()
        .filter(move |(ns, _)| {
            futures::future::ready(scope_namespace.as_ref().is_none_or(|scope| scope == ns))
        })
        .map(|(ns, name)| ObjectRef::new(&name).within(&ns));
    let controller = Controller::for_stream(trigger, reader)
        .with_config(RunConfig::default().concurrency(config.concurrency))
        .reconcile_on(held_rx)
        .reconcile_on(released);
    let mapping = ctx.clone();
    let seen = ctx.clone();
    // NB: one watch of all Secrets (metadata only) serves both mappings: a second one for the
    // operator's own Secrets would list and deliver each of them twice. It also keeps the
    // resourceVersion of every Secret (no data) for the reads a reconcile may skip.
    let secret_events = watcher(secrets, watcher::Config::default())
        .inspect(move |event| {
            if let Ok(event) = event {
                seen.services.versions.secrets.apply_event(scope, event);
            }
        })
        .filter(move |event| std::future::ready(!is_own_secret_write(&mapping, event)))
        .touched_objects();
    let index = ctx.services.index.clone();
    controller.watches_stream(secret_events, move |secret| map_secret(&index, secret))
}

/// Whether a watch event of a ClearApiClient only shows this process's own status write
/// (or is held until the write in flight answers, see [`EventOrigin::Held`]).
/// NB: a live update only: a (re)list delivers every object (`InitApply`) and is never
/// skipped, so a new leadership term reconciles everything. An update at a version this
/// process wrote shows nothing its reconcile did not act on: each status write carries the
/// resourceVersion that reconcile read or last wrote as a precondition, so no change by
/// anyone else can lie between; the reconcile's own requeue is the scheduler's, not this
/// event's.
fn is_own_status_write(
    ctx: &Context,
    event: &Result<watcher::Event<ClearApiClient>, watcher::Error>,
) -> bool {
    let Ok(watcher::Event::Apply(cac)) = event else {
        return false;
    };
    let (Some(namespace), Some(rv)) = (cac.namespace(), cac.resource_version()) else {
        return false;
    };
    let target = ObjectRef::from_obj(cac);
    let origin =
        ctx.services
            .versions
            .own
            .origin(Object::Status, &namespace, &cac.name_any(), &rv, target);
    saved(ctx, origin, "own_status_event")
}

/// Whether a Secret watch event only shows this process's own token Secret write (or is
/// held until the write in flight answers) and concerns no other resource than the one
/// whose reconcile wrote it (see [`is_own_status_write`]; the token Secret write is
/// conditional on the version read). A resource that reads the Secret (as its client
/// secret) still hears of it.
fn is_own_secret_write(
    ctx: &Context,
    event: &Result<watcher::Event<PartialObjectMeta<Secret>>, watcher::Error>,
) -> bool {
    let Ok(watcher::Event::Apply(secret)) = event else {
        return false;
    };
    let (Some(namespace), Some(rv), Some(owner)) = (
        secret.namespace(),
        secret.resource_version(),
        map_own_secret(secret.clone()),
    ) else {
        return false;
    };
    let only_owner = map_secret(&ctx.services.index, secret.clone())
        .iter()
        .all(|r| *r == owner);
    if !only_owner {
        return false;
    }
    let origin = ctx.services.versions.own.origin(
        Object::Secret,
        &namespace,
        &secret.name_any(),
        &rv,
        owner,
    );
    saved(ctx, origin, "own_secret_event")
}

/// Counts a skipped event; whether the event is skipped (own, or held).
fn saved(ctx: &Context, origin: EventOrigin, what: &str) -> bool {
    match origin {
        EventOrigin::Own => {
            ctx.metrics.observe_request_saved(what);
            true
        }
        EventOrigin::Held => true,
        EventOrigin::Other => false,
    }
}

/// A Secret → the ClearApiClients it concerns: those the index links it to (see
/// [`map_referenced_secret`]) and, for a token Secret of ours, the one named by its label.
fn map_secret(
    index: &ResourceIndex,
    secret: PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<ClearApiClient>> {
    let mut resources = map_referenced_secret(index, &secret);
    let ours = secret
        .labels()
        .get(MANAGED_BY_LABEL)
        .is_some_and(|value| value == MANAGED_BY_VALUE);
    if ours
        && let Some(owner) = map_own_secret(secret)
        && !resources.contains(&owner)
    {
        resources.push(owner);
    }
    resources
}

/// The operator's own Secret → the ClearApiClient named by its client label.
fn map_own_secret(secret: PartialObjectMeta<Secret>) -> Option<ObjectRef<ClearApiClient>> {
    let owner = secret.labels().get(CLIENT_LABEL)?;
    Some(ObjectRef::new(owner).within(&secret.namespace()?))
}

/// Any Secret → the ClearApiClients in its namespace that read it as their client secret or
/// write it as their target (a foreign target Secret going away ends a TargetConflict): a
/// lookup in the index, not a scan of all resources.
pub fn map_referenced_secret(
    index: &ResourceIndex,
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<ClearApiClient>> {
    let Some(namespace) = secret.namespace() else {
        return Vec::new();
    };
    index.resources_for_secret(&namespace, &secret.name_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret_meta(
        namespace: &str,
        name: &str,
        labels: &[(&str, &str)],
    ) -> PartialObjectMeta<Secret> {
        let mut meta: PartialObjectMeta<Secret> = serde_json::from_value(serde_json::json!({
            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
            "metadata": {"name": name, "namespace": namespace}
        }))
        .unwrap();
        meta.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        meta
    }

    #[test]
    fn a_secret_maps_to_its_owner_only_when_the_operator_manages_it() {
        let index = ResourceIndex::default();
        let ours = secret_meta(
            "default",
            "token",
            &[
                (CLIENT_LABEL, "billing"),
                (MANAGED_BY_LABEL, MANAGED_BY_VALUE),
            ],
        );
        let mapped = map_secret(&index, ours);
        assert_eq!(mapped.len(), 1);
        assert_eq!(mapped[0].name, "billing");
        let foreign = secret_meta("default", "token", &[(CLIENT_LABEL, "billing")]);
        assert!(map_secret(&index, foreign).is_empty());
    }

    #[test]
    fn own_secrets_map_back_by_their_client_label() {
        let labelled = secret_meta("default", "token", &[(CLIENT_LABEL, "billing")]);
        let reference = map_own_secret(labelled).unwrap();
        assert_eq!(reference.name, "billing");
        assert_eq!(reference.namespace.as_deref(), Some("default"));
        assert!(map_own_secret(secret_meta("default", "token", &[])).is_none());
    }
}
