//! "The status is the truth": what happens when something other than the operator touches
//! its state — a stale token written back into the Secret, annotations edited, the API server
//! failing right after Clear answered, a status write lost, a late write from a replica that
//! lost the Lease, times from the future, a regenerate value reverted. Each counts the exact
//! calls to Clear and checks that a Ready resource serves a live token.

mod scenario_kit;

use std::{sync::Arc, time::Duration};

use clear_operator::reconcile::{self, secret};
use clear_sandbox::{Fault, FaultScope};
use jiff::SignedDuration;
use kube::api::PostParams;
use scenario_kit::{Kit, common};
use serde_json::json;

const SECRET: &str = "cs-truth-00001";

async fn kit_with_token() -> Kit {
    Kit::with_first_token(SECRET).await
}

/// Every Ready=True check of these tests: the token in the Secret is the live one.
async fn assert_ready_on_a_live_token(kit: &Kit) {
    assert_eq!(kit.ready("billing").await.0, "True");
    let token = kit.token_in("billing").await;
    assert!(
        kit.sandbox.is_token_valid(&token),
        "a Ready resource serves a live token"
    );
}

/// Asks for a new token (`r1`) and starts one reconcile in the background with Clear
/// answering slowly; returns once the operator has marked the call in status (so the next
/// writes are the ones after the call).
async fn regenerate_during_a_slow_call(kit: &Kit) -> tokio::task::JoinHandle<bool> {
    kit.regenerate("billing", "r1").await;
    kit.sandbox.inject_fault(
        FaultScope::Global,
        Fault::Delay(Duration::from_millis(1500)),
        1,
    );
    let obj = kit.get("billing").await;
    let ctx = kit.ctx.clone();
    let handle =
        tokio::spawn(async move { reconcile::reconcile(Arc::new(obj), ctx).await.is_ok() });
    kit.wait_for("billing", "the call marked in status", |cac| {
        cac.status
            .as_ref()
            .is_some_and(|s| s.mint_started_at.is_some())
    })
    .await;
    handle
}

/// One reconcile that may fail (an injected API error), as the controller would run it.
async fn try_reconcile(kit: &Kit) -> bool {
    kit.reconcile_in(&kit.ctx, "billing").await.is_ok()
}

#[tokio::test]
async fn a_stale_token_written_back_is_never_ready_and_is_replaced_with_one_call_and_a_warning() {
    let kit = kit_with_token().await;
    let before = kit.target("billing").await.unwrap();
    kit.remember(&kit.token_in("billing").await);
    kit.regenerate("billing", "r1").await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2);
    // A backup restore (or a second install, or a sync tool) puts the previous token back,
    // with the annotations that described it then.
    let mut restored = before.clone();
    restored.metadata.resource_version = None;
    restored.metadata.managed_fields = None;
    kit.secrets
        .replace("billing", &PostParams::default(), &{
            let mut current = kit.target("billing").await.unwrap();
            current.data = restored.data.clone();
            current.metadata.annotations = restored.metadata.annotations.clone();
            current
        })
        .await
        .unwrap();
    let stale = kit.token_in("billing").await;
    assert!(
        !kit.sandbox.is_token_valid(&stale),
        "the restored token is revoked"
    );

    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 3, "exactly one call replaces it");
    assert_ready_on_a_live_token(&kit).await;
    let warnings = kit.warnings("billing", "TokenReplaced");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("had not written"), "{}", warnings[0]);
    kit.finish().await;
}

#[tokio::test]
async fn a_stale_token_is_not_ready_while_its_replacement_waits() {
    let kit = kit_with_token().await;
    let before = kit.target("billing").await.unwrap();
    kit.regenerate("billing", "r1").await;
    kit.reconcile("billing").await;
    // Clear fails the replacement: the resource must say so, not claim the stale token.
    kit.edit_target(
        "billing",
        json!({"data": before.data, "metadata": {"annotations": before.metadata.annotations}}),
    )
    .await;
    kit.sandbox
        .inject_fault(FaultScope::Global, Fault::ServerError, 1);
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 3);
    let (status, _) = kit.ready("billing").await;
    assert_eq!(
        status, "False",
        "never Ready on a token status does not name"
    );
    kit.advance(SignedDuration::from_mins(2));
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 4);
    assert_ready_on_a_live_token(&kit).await;
    kit.finish().await;
}

#[tokio::test]
async fn edited_validity_and_fingerprint_annotations_are_put_back_from_status_without_a_call() {
    let kit = kit_with_token().await;
    let token = kit.token_in("billing").await;
    let mut original = kit
        .target("billing")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap();
    // NB: the call id marks a token fresh from its call; a re-apply from status drops it.
    original.remove(secret::CALL_ID_ANNOTATION);
    for (key, value) in [
        (secret::VALID_TILL_ANNOTATION, "2030-01-01T00:00:00Z"),
        (secret::TOKEN_FINGERPRINT_ANNOTATION, "000000000000"),
        (secret::ISSUED_AT_ANNOTATION, "2030-01-01T00:00:00Z"),
    ] {
        kit.edit_target(
            "billing",
            json!({"metadata": {"annotations": {key: value}}}),
        )
        .await;
        kit.reconcile_times("billing", 2).await;
        assert_eq!(kit.calls(SECRET), 1, "{key}: status knew the token");
        let annotations = kit
            .target("billing")
            .await
            .unwrap()
            .metadata
            .annotations
            .unwrap();
        assert_eq!(annotations, original, "{key} is back as status says");
        let status = kit.status("billing").await;
        assert_eq!(
            status.valid_till.map(|t| t.0.to_string()).as_deref(),
            Some("2026-11-25T22:00:00Z"),
            "{key}: status never follows the Secret"
        );
    }
    assert_eq!(kit.token_in("billing").await, token);
    assert_ready_on_a_live_token(&kit).await;
    kit.finish().await;
}

#[tokio::test]
async fn a_failed_secret_write_after_a_mint_keeps_the_token_and_writes_it_without_a_second_call() {
    let kit = kit_with_token().await;
    let call = regenerate_during_a_slow_call(&kit).await;
    // The API server fails the write of the new token (500 twice, then a restart's 503).
    kit.emulator.faults().fail_next("patch", "secrets", 2, 500);
    kit.emulator.faults().fail_next("patch", "secrets", 1, 503);
    assert!(call.await.unwrap(), "the reconcile itself ends cleanly");
    assert_eq!(kit.calls(SECRET), 2);
    let live = kit.live_token(SECRET);
    assert_ne!(kit.token_in("billing").await, live);
    assert_eq!(
        kit.ready("billing").await.0,
        "False",
        "the stored token was revoked"
    );

    for _ in 0..4 {
        let _ = try_reconcile(&kit).await;
    }
    assert_eq!(
        kit.calls(SECRET),
        2,
        "the kept token is written, not minted again"
    );
    assert_eq!(kit.token_in("billing").await, live);
    assert_ready_on_a_live_token(&kit).await;
    let status = kit.status("billing").await;
    assert_eq!(status.mint_started_at, None);
    assert_eq!(status.call_id, None);
    assert_eq!(status.last_regenerate_request.as_deref(), Some("r1"));
    kit.finish().await;
}

#[tokio::test]
async fn a_write_refused_once_is_not_resent_behind_the_operators_back() {
    let kit = kit_with_token().await;
    let call = regenerate_during_a_slow_call(&kit).await;
    let writes_before = kit.emulator.requests().count("patch", "secrets");
    kit.emulator.faults().fail_next("patch", "secrets", 1, 503);
    assert!(call.await.unwrap());
    assert_eq!(
        kit.emulator.requests().count("patch", "secrets") - writes_before,
        1,
        "one attempt: kube-client's retry layer would have re-sent it"
    );
    let _ = try_reconcile(&kit).await;
    assert_eq!(kit.calls(SECRET), 2);
    assert_ready_on_a_live_token(&kit).await;
    kit.shutdown().await;
}

#[tokio::test]
async fn a_lost_status_write_after_the_secret_is_told_apart_by_call_id_and_costs_nothing() {
    let kit = kit_with_token().await;
    let call = regenerate_during_a_slow_call(&kit).await;
    kit.emulator
        .faults()
        .fail_next("patch", "clearapiclients/status", 1, 500);
    assert!(
        !call.await.unwrap(),
        "the status write after the Secret failed"
    );
    assert_eq!(kit.calls(SECRET), 2);
    let status = kit.status("billing").await;
    assert!(
        status.mint_started_at.is_some(),
        "status still marks the call"
    );
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "the Secret holds that call's answer");
    assert_ready_on_a_live_token(&kit).await;
    let status = kit.status("billing").await;
    assert_eq!(status.mint_started_at, None);
    assert_eq!(
        status.token_fingerprint.as_deref(),
        Some(clear_operator::clear::fingerprint_of(&kit.token_in("billing").await).as_str())
    );
    kit.finish().await;
}

#[tokio::test]
async fn a_replica_that_lost_the_lease_mid_call_never_writes_and_its_token_is_superseded() {
    let kit = kit_with_token().await;
    let call = regenerate_during_a_slow_call(&kit).await;
    // Replica A loses the Lease while Clear is answering it.
    kit.ctx.fence.require_lease();
    call.await.unwrap();
    assert_eq!(kit.calls(SECRET), 2);
    let a_token = kit.live_token(SECRET);
    assert_ne!(kit.token_in("billing").await, a_token, "A wrote nothing");

    // Replica B waits for A's call deadline, then replaces the token once.
    let b = kit.new_context(Default::default());
    kit.reconcile_in(&b, "billing").await.unwrap();
    assert_eq!(
        kit.calls(SECRET),
        2,
        "B waits while A's call may be in flight"
    );
    assert_eq!(kit.ready("billing").await.1, "MintInFlight");
    kit.advance(SignedDuration::from_secs(31));
    kit.reconcile_in(&b, "billing").await.unwrap();
    kit.reconcile_in(&b, "billing").await.unwrap();
    assert_eq!(kit.calls(SECRET), 3);
    let b_token = kit.token_in("billing").await;

    // A gets the Lease back: its kept token belongs to a call status no longer names.
    kit.ctx
        .fence
        .extend_until(tokio::time::Instant::now() + Duration::from_secs(3600));
    let _ = try_reconcile(&kit).await;
    assert_eq!(
        kit.token_in("billing").await,
        b_token,
        "A's token is dropped unwritten"
    );
    assert_eq!(kit.calls(SECRET), 3);
    assert_ready_on_a_live_token(&kit).await;
    kit.finish().await;
}

#[tokio::test]
async fn a_secret_changed_during_the_call_fails_the_write_on_its_precondition_then_it_lands() {
    let kit = kit_with_token().await;
    let call = regenerate_during_a_slow_call(&kit).await;
    // Someone else writes the Secret while the call is in flight (a label, here).
    kit.edit_target(
        "billing",
        json!({"metadata": {"labels": {"team": "billing"}}}),
    )
    .await;
    assert!(call.await.unwrap());
    let live = kit.live_token(SECRET);
    assert_ne!(
        kit.token_in("billing").await,
        live,
        "the write carried the resourceVersion it read: refused"
    );
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 2);
    assert_eq!(kit.token_in("billing").await, live);
    assert_ready_on_a_live_token(&kit).await;
    kit.shutdown().await;
}

#[tokio::test]
async fn times_from_the_future_in_status_are_bounded_not_obeyed() {
    let kit = kit_with_token().await;
    // Written by a replica whose clock was a month ahead: a call "started" and a retry
    // "scheduled" far in the future.
    kit.edit_status("billing", |status| {
        status["mintStartedAt"] = json!("2026-12-25T10:00:00Z");
        status["callId"] = json!("from-the-future");
    })
    .await;
    kit.reconcile("billing").await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "the call may still be in flight: wait"
    );
    let bounded = kit.status("billing").await;
    assert_eq!(
        bounded.mint_started_at.map(|t| t.0),
        Some(kit.now()),
        "the future start is written back as now"
    );
    kit.advance(SignedDuration::from_secs(31));
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 2, "replaced once, a month early");
    assert_ready_on_a_live_token(&kit).await;

    kit.edit_status("billing", |status| {
        status["lastFailureReason"] = json!("ClearUnavailable");
        status["failedAttempts"] = json!(1);
        status["lastFailureTime"] = json!("2027-06-01T00:00:00Z");
        status["nextRetryTime"] = json!("2027-06-01T00:00:00Z");
    })
    .await;
    kit.regenerate("billing", "r1").await;
    kit.reconcile("billing").await;
    let bounded = kit.status("billing").await;
    let retry = bounded.next_retry_time.unwrap().0;
    assert!(
        retry <= kit.now() + SignedDuration::from_hours(1),
        "a retry next June is cut to the longest backoff: {retry}"
    );
    kit.advance(SignedDuration::from_mins(61));
    kit.reconcile_times("billing", 2).await;
    assert_eq!(
        kit.calls(SECRET),
        3,
        "the regenerate request is served within the hour"
    );
    assert_ready_on_a_live_token(&kit).await;
    kit.finish().await;
}

#[tokio::test]
async fn a_gitops_revert_to_an_earlier_regenerate_value_mints_nothing() {
    let kit = kit_with_token().await;
    for value in ["v1", "v2"] {
        kit.regenerate("billing", value).await;
        kit.reconcile_times("billing", 2).await;
    }
    assert_eq!(kit.calls(SECRET), 3);
    kit.regenerate("billing", "v1").await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 3, "v1 was honoured already");
    kit.regenerate("billing", "v3").await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 4, "a new value still regenerates");
    let history = kit.status("billing").await.regenerate_history;
    assert_eq!(history, ["v1", "v2", "v3"]);
    assert_ready_on_a_live_token(&kit).await;
    kit.shutdown().await;
}

#[tokio::test]
async fn a_resource_replaced_under_the_same_name_never_takes_a_status_write_meant_for_the_old_one()
{
    let kit = kit_with_token().await;
    let call = regenerate_during_a_slow_call(&kit).await;
    // `kubectl replace --force`: the resource is deleted and created again mid-call.
    let old = kit.get("billing").await;
    kit.cacs
        .delete("billing", &Default::default())
        .await
        .unwrap();
    let again = common::resource(
        "billing",
        old.metadata.namespace.as_deref(),
        json!({}),
        serde_json::to_value(&old.spec).unwrap(),
    );
    kit.cacs
        .create(&PostParams::default(), &again)
        .await
        .unwrap();
    let _ = call.await.unwrap();
    let fresh = kit.get("billing").await;
    assert!(
        fresh
            .status
            .as_ref()
            .is_none_or(|s| s.mint_started_at.is_none() && s.token_fingerprint.is_none()),
        "the old object's status writes did not land on the new one: {:?}",
        fresh.status
    );
    kit.shutdown().await;
}

#[tokio::test]
async fn a_second_install_yields_loudly_and_takes_over_only_once_the_first_stopped() {
    let kit = kit_with_token().await;
    let first = kit.new_context_of(Default::default(), Some("ops-a/clear-operator"));
    let second = kit.new_context_of(Default::default(), Some("ops-b/clear-operator"));
    let run = |ctx: &Arc<reconcile::Context>| {
        let ctx = ctx.clone();
        let kit = &kit;
        async move {
            kit.reconcile_in(&ctx, "billing").await.unwrap();
        }
    };
    run(&first).await;
    let status = kit.status("billing").await;
    assert_eq!(
        status.operator_instance.as_deref(),
        Some("ops-a/clear-operator")
    );

    // The second install is asked for a new token too, but the first manages the resource.
    kit.regenerate("billing", "r1").await;
    for _ in 0..3 {
        run(&second).await;
    }
    assert_eq!(kit.calls(SECRET), 1, "the second install never calls");
    let warnings = kit.warnings("billing", "DuplicateOperator");
    assert_eq!(warnings.len(), 1, "said once: {warnings:?}");
    assert!(
        warnings[0].contains("ops-a/clear-operator"),
        "{}",
        warnings[0]
    );
    run(&first).await;
    assert_eq!(kit.calls(SECRET), 2, "the owner serves the request");

    // The first install is gone: once its renewal is 10 minutes overdue, the second takes
    // the resource over and renews it once.
    let renewal = kit.status("billing").await.renewal_time.unwrap().0;
    kit.set_time(&(renewal + SignedDuration::from_mins(5)).to_string());
    run(&second).await;
    assert_eq!(kit.calls(SECRET), 2, "5 minutes overdue: still the first's");
    kit.advance(SignedDuration::from_mins(6));
    run(&second).await;
    run(&second).await;
    assert_eq!(kit.calls(SECRET), 3);
    let status = kit.status("billing").await;
    assert_eq!(
        status.operator_instance.as_deref(),
        Some("ops-b/clear-operator")
    );
    assert_ready_on_a_live_token(&kit).await;
    kit.finish().await;
}
