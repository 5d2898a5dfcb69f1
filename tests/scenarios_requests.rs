//! The Kubernetes API requests a token costs (issue 17), counted on the emulator's request
//! log: a new token is one reconcile, with no read the watch caches already answer and no
//! wake-up by the operator's own writes; a change by anyone else still wakes it and is read
//! fresh; a cache that lags this process's own write is never acted on; a 429 from the API
//! server is waited out, a read retried, a write never re-sent by the client.

mod scenario_kit;

use std::{sync::Arc, time::Duration};

use clear_operator::reconcile::{self, Context, decide::Policy};
use clear_operator::resource::ClearApiClient;
use clear_sandbox::ClientConfig;
use scenario_kit::{Kit, RunningController, is_ready};
use serde_json::{Value, json};

const SECRET: &str = "cs-requests-0001";

fn client() -> ClientConfig {
    ClientConfig::new(SECRET, "ws-1").with_lifetime(Duration::from_secs(12 * 3600))
}

/// Requests of the operator with this verb on this resource path (and name, when given)
/// since the log was last reset.
fn count(kit: &Kit, verb: &str, resource: &str, name: Option<&str>) -> usize {
    kit.emulator
        .requests()
        .entries()
        .iter()
        .filter(|e| e.verb == verb && e.resource_path() == resource)
        .filter(|e| name.is_none_or(|n| e.name.as_deref() == Some(n)))
        .count()
}

/// Polls `check` (no API request of its own) until it holds; panics with `what` otherwise.
async fn eventually(what: &str, check: impl Fn() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// Someone else labels Secret `name`; returns once a reconcile followed, with the request
/// log holding only what came after the edit.
async fn label_secret_and_wait(kit: &Kit, ctx: &Context, name: &str, labels: Value) {
    let reconciles = ctx.metrics.reconciles("ok");
    kit.emulator.requests().reset();
    kit.edit_target(name, json!({"metadata": {"labels": labels}}))
        .await;
    eventually(&format!("a reconcile after Secret {name} changed"), || {
        ctx.metrics.reconciles("ok") > reconciles
    })
    .await;
}

/// A kit with the controller running and its watches listed, the request log empty.
async fn running() -> (Kit, Arc<Context>, RunningController) {
    let kit = kit_with_client_secret().await;
    let ctx = kit.new_context(Policy::default());
    let controller = kit.start_controller_with(ctx.clone());
    eventually("the Secret watch listed", || {
        ctx.services.versions.secrets.is_synced()
    })
    .await;
    kit.emulator.requests().reset();
    (kit, ctx, controller)
}

/// A kit with the client-secret Secret `clear-secret` holding [`SECRET`], no resource yet.
async fn kit_with_client_secret() -> Kit {
    Kit::with_client_secret(vec![client()], SECRET).await
}

/// A kit whose resource `billing` holds its first token (one call), and the resource as it
/// was created: what a watch cache that lags the status writes still shows.
async fn kit_with_token_and_the_created_resource() -> (Kit, ClearApiClient) {
    let kit = kit_with_client_secret().await;
    let created = kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 1);
    (kit, created)
}

#[tokio::test]
async fn a_new_token_is_one_reconcile_that_reads_only_the_client_secret() {
    let (kit, ctx, controller) = running().await;
    kit.create("billing", kit.spec("clear-secret")).await;
    eventually("one call to Clear", || kit.calls(SECRET) == 1).await;
    // The watch events of the two status writes and of the token Secret's creation arrive,
    // and are recognised as this process's own.
    eventually("the own writes' events seen", || {
        ctx.metrics.requests_saved("own_status_event") >= 2
            && ctx.metrics.requests_saved("own_secret_event") >= 1
    })
    .await;
    eventually("the reconcile ended", || ctx.metrics.reconciles("ok") >= 1).await;

    assert_eq!(
        ctx.metrics.reconciles("ok"),
        1,
        "no second reconcile woken by the operator's own writes"
    );
    assert_eq!(
        count(&kit, "get", "clearapiclients", None),
        0,
        "the resource came from the watch cache (this process never wrote it before)"
    );
    assert_eq!(
        count(&kit, "get", "secrets", Some("clear-secret")),
        1,
        "the client secret is read once, to mint"
    );
    assert_eq!(
        count(&kit, "get", "secrets", Some("billing")),
        0,
        "no read of a token Secret the watch shows absent and status does not name"
    );
    assert_eq!(ctx.metrics.requests_saved("absent_target"), 1);
    // What remains: the dry run and the write of the Secret, the call's mark and its record
    // in status, the Event.
    assert_eq!(count(&kit, "patch", "secrets", Some("billing")), 2);
    assert_eq!(count(&kit, "patch", "clearapiclients/status", None), 2);
    assert_eq!(count(&kit, "create", "events", None), 1);
    let cac = kit.get("billing").await;
    assert!(is_ready(&cac, "True"));
    controller.stop().await;
    kit.finish().await;
}

#[tokio::test]
async fn a_change_by_anyone_else_still_wakes_the_resource_and_is_read_fresh() {
    let (kit, ctx, controller) = running().await;
    kit.create("billing", kit.spec("clear-secret")).await;
    eventually("the first token recorded", || {
        ctx.metrics.reconciles("ok") == 1 && ctx.metrics.requests_saved("own_status_event") >= 2
    })
    .await;

    // Someone else edits the resource: a reconcile, which reads it fresh (the cache is not
    // at this process's last write) and keeps the token without reading the client secret
    // (its Secret is at the version its fingerprint was taken at).
    kit.emulator.requests().reset();
    kit.annotate("billing", "team", "payments").await;
    eventually("a reconcile after the edit", || {
        ctx.metrics.reconciles("ok") >= 2
    })
    .await;
    assert_eq!(count(&kit, "get", "clearapiclients", Some("billing")), 1);
    assert_eq!(count(&kit, "get", "secrets", Some("clear-secret")), 0);
    assert!(ctx.metrics.requests_saved("client_secret_fingerprint") >= 1);
    assert_eq!(
        count(&kit, "get", "secrets", Some("billing")),
        1,
        "the token Secret is read whole to check it still holds the token"
    );

    // Someone else touches the client secret's Secret (same value): its version moved, so
    // the fingerprint is taken again from a read; nothing is minted.
    label_secret_and_wait(&kit, &ctx, "clear-secret", json!({"rotated": "no"})).await;
    assert_eq!(count(&kit, "get", "secrets", Some("clear-secret")), 1);

    // Someone else edits the token Secret: woken, and the Secret read again.
    label_secret_and_wait(&kit, &ctx, "billing", json!({"edited": "yes"})).await;
    assert!(count(&kit, "get", "secrets", Some("billing")) >= 1);
    assert_eq!(kit.calls(SECRET), 1, "nothing of this called Clear");
    controller.stop().await;
    kit.shutdown().await;
}

#[tokio::test]
async fn a_cached_resource_older_than_this_process_last_write_is_read_fresh() {
    let (kit, stale) = kit_with_token_and_the_created_resource().await;

    // A watch cache still at the creation, behind the status this process wrote since:
    // acting on it would see no token and mint again. It is read fresh instead.
    kit.emulator.requests().reset();
    reconcile::reconcile(Arc::new(stale), kit.ctx.clone())
        .await
        .expect("reconcile succeeds");
    assert_eq!(count(&kit, "get", "clearapiclients", Some("billing")), 1);
    assert_eq!(kit.calls(SECRET), 1, "no second call");
    kit.shutdown().await;
}

#[tokio::test]
async fn a_replica_whose_cache_lags_another_replicas_write_calls_nothing() {
    let (kit, stale) = kit_with_token_and_the_created_resource().await;

    // Another process (which never wrote the resource) trusts its cache, still at the
    // creation: the status write that precedes any call carries that version, so it fails
    // before Clear is called.
    let other = kit.new_context(Policy::default());
    let result = reconcile::reconcile(Arc::new(stale), other).await;
    assert!(result.is_err(), "the stale mark is refused: {result:?}");
    assert_eq!(kit.calls(SECRET), 1, "no call made on the stale cache");
    kit.reconcile("billing").await;
    assert!(is_ready(&kit.get("billing").await, "True"));
    assert_eq!(kit.calls(SECRET), 1);
    kit.shutdown().await;
}

#[tokio::test]
async fn a_429_to_a_read_is_retried_and_to_a_write_requeues_after_retry_after() {
    let kit = Kit::with_resource(vec![client()], SECRET).await;

    // A read refused once: the client waits and sends it again; the reconcile succeeds.
    kit.emulator.requests().reset();
    kit.emulator.faults().fail_next("get", "secrets", 1, 429);
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(count(&kit, "get", "secrets", Some("clear-secret")), 2);

    // A write refused: not re-sent by the client; the reconcile fails as throttled, and the
    // requeue waits at least the Retry-After (1 s when the server gives none).
    kit.regenerate("billing", "r1").await;
    kit.emulator.requests().reset();
    kit.emulator
        .faults()
        .fail_next("patch", "clearapiclients/status", 1, 429);
    let obj = kit.cacs.get("billing").await.unwrap();
    let error = reconcile::reconcile(Arc::new(obj.clone()), kit.ctx.clone())
        .await
        .expect_err("the status write was refused");
    assert_eq!(error.throttled_for(), Some(Duration::from_secs(1)));
    assert_eq!(count(&kit, "patch", "clearapiclients/status", None), 1);
    assert_eq!(kit.calls(SECRET), 1, "no call after a refused mark");
    let action = reconcile::error_policy(Arc::new(obj), &error, kit.ctx.clone());
    let wait = format!("{action:?}");
    assert!(
        !wait.contains("requeue_after: None"),
        "a throttled reconcile is requeued: {wait}"
    );
    assert!(
        kit.warnings("billing", "ReconcileFailed").is_empty(),
        "no Warning Event while the API server asks for fewer requests"
    );
    kit.reconcile("billing").await;
    assert_eq!(
        kit.calls(SECRET),
        2,
        "the regeneration goes ahead afterwards"
    );
    kit.shutdown().await;
}

#[tokio::test]
async fn with_one_api_request_at_a_time_the_watches_still_run_and_a_token_is_issued() {
    let kit = kit_with_client_secret().await;
    // NB: a watch holding the only permit would block every other request.
    let client = clear_operator::kube_client::build_with(
        kit.emulator.client_config(),
        clear_operator::kube_client::Limits { api_concurrency: 1 },
    )
    .unwrap();
    let ctx = kit.new_context_with_client(client, Policy::default());
    let controller = kit.start_controller_with(ctx);
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.wait_ready("billing").await;
    assert_eq!(kit.calls(SECRET), 1);
    controller.stop().await;
    kit.shutdown().await;
}
