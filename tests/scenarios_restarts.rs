//! Rollout restarts of `rolloutRestartTargets` are retried until done: a failed, forbidden or
//! never-made restart stays in `status.pendingRestarts` and is made on a later reconcile,
//! onto the same token (same `restartedAt`), without another call to Clear.

mod scenario_kit;

use std::time::Duration;

use clear_sandbox::ClientConfig;
use jiff::SignedDuration;
use k8s_openapi::api::apps::v1::Deployment;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use scenario_kit::Kit;
use serde_json::json;

const SECRET: &str = "cs-restarts-0001";
const RESTARTED_AT: &str = "kubectl.kubernetes.io/restartedAt";

async fn kit_with_consumer() -> (Kit, Api<Deployment>) {
    let kit = Kit::with_client_secret(
        vec![
            ClientConfig::new(SECRET, "ws-1")
                .with_products(["GST"])
                .with_lifetime(Duration::from_secs(3600)),
        ],
        SECRET,
    )
    .await;
    let deployments = kit.create_consumer_deployment("consumer").await;
    let mut spec = kit.spec("clear-secret");
    spec["rolloutRestartTargets"] = json!([{"kind": "Deployment", "name": "consumer"}]);
    kit.create("billing", spec).await;
    (kit, deployments)
}

async fn restarted_at(deployments: &Api<Deployment>) -> Option<String> {
    deployments
        .get("consumer")
        .await
        .unwrap()
        .spec?
        .template
        .metadata?
        .annotations?
        .get(RESTARTED_AT)
        .cloned()
}

async fn pending(kit: &Kit) -> Vec<String> {
    kit.get("billing")
        .await
        .status
        .unwrap_or_default()
        .pending_restarts
        .iter()
        .map(|t| format!("{:?}/{}", t.kind, t.name))
        .collect()
}

fn warnings(kit: &Kit, reason: &str) -> usize {
    kit.warnings("billing", reason).len()
}

#[tokio::test]
async fn a_failed_restart_stays_pending_and_is_retried_onto_the_same_token_without_a_call() {
    let (kit, deployments) = kit_with_consumer().await;
    // The restart after the mint fails, and so does the retry of the next reconcile.
    kit.emulator
        .faults()
        .fail_next("patch", "deployments", 2, 500);
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(restarted_at(&deployments).await, None, "the patch failed");
    assert_eq!(pending(&kit).await, vec!["Deployment/consumer"]);
    assert_eq!(warnings(&kit, "RestartFailed"), 1);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    let issued_at = kit.status("billing").await.issued_at.unwrap();

    // The next retry comes a minute later, not at the renewal in 40 minutes.
    let action = kit.reconcile("billing").await;
    assert_eq!(
        restarted_at(&deployments).await,
        None,
        "the retry failed too"
    );
    assert!(
        format!("{action:?}").contains("60s"),
        "requeued for the retry: {action:?}"
    );
    kit.advance(SignedDuration::from_mins(1));
    kit.reconcile("billing").await;
    assert_eq!(
        restarted_at(&deployments).await.as_deref(),
        Some(issued_at.0.to_string().as_str()),
        "restarted onto the token it was pending for"
    );
    assert!(pending(&kit).await.is_empty());
    assert_eq!(kit.calls(SECRET), 1, "a retried restart never calls Clear");
    kit.finish().await;
}

#[tokio::test]
async fn a_forbidden_restart_is_reported_as_forbidden_and_retried_once_granted() {
    let (kit, deployments) = kit_with_consumer().await;
    kit.emulator
        .faults()
        .fail_next("patch", "deployments", 1, 403);
    kit.reconcile("billing").await;
    assert_eq!(warnings(&kit, "RestartForbidden"), 1);
    assert_eq!(
        warnings(&kit, "RestartTargetMissing"),
        0,
        "a 403 is not a missing target"
    );
    let note = kit.notes("billing", "RestartForbidden").remove(0);
    assert!(note.contains("rbac.rolloutRestart.enabled"), "{note}");
    assert_eq!(pending(&kit).await, vec!["Deployment/consumer"]);

    kit.advance(SignedDuration::from_mins(10));
    kit.reconcile("billing").await;
    assert!(restarted_at(&deployments).await.is_some());
    assert!(pending(&kit).await.is_empty());
    assert_eq!(kit.calls(SECRET), 1);
    kit.shutdown().await;
}

#[tokio::test]
async fn restarts_left_pending_by_a_stopped_operator_are_made_on_the_next_reconcile() {
    let (kit, deployments) = kit_with_consumer().await;
    kit.reconcile("billing").await;
    let first = restarted_at(&deployments)
        .await
        .expect("restarted after the mint");
    // As a process that wrote the token and its status, then stopped before its patches:
    // the restart is pending and the workload still carries an older restartedAt.
    let status = kit.status("billing").await;
    deployments
        .patch(
            "consumer",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2026-01-01T00:00:00Z"}}}}})),
        )
        .await
        .unwrap();
    // NB: written as the operator writes status (server-side apply, its field manager), so
    // that the operator's next apply owns the field and can clear it.
    kit.edit_status("billing", |stopped| {
        stopped["pendingRestarts"] = json!([{"kind": "Deployment", "name": "consumer"}]);
    })
    .await;
    assert_eq!(pending(&kit).await, vec!["Deployment/consumer"]);
    kit.reconcile("billing").await;
    assert_eq!(restarted_at(&deployments).await, Some(first.clone()));
    assert_eq!(first, status.issued_at.unwrap().0.to_string());
    assert!(pending(&kit).await.is_empty());
    assert_eq!(kit.calls(SECRET), 1);
    kit.shutdown().await;
}

#[tokio::test]
async fn a_pending_restart_of_a_target_removed_from_the_spec_is_dropped() {
    let (kit, deployments) = kit_with_consumer().await;
    kit.emulator
        .faults()
        .fail_next("patch", "deployments", 1, 500);
    kit.reconcile("billing").await;
    assert_eq!(pending(&kit).await, vec!["Deployment/consumer"]);
    let mut spec = kit.spec("clear-secret");
    spec["rolloutRestartTargets"] = json!([]);
    kit.patch_spec("billing", spec).await;
    kit.advance(SignedDuration::from_mins(1));
    kit.reconcile("billing").await;
    assert!(pending(&kit).await.is_empty());
    assert_eq!(
        restarted_at(&deployments).await,
        None,
        "no longer asked for"
    );
    assert_eq!(kit.calls(SECRET), 1);
    kit.shutdown().await;
}
