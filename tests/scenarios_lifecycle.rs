//! Scenarios of a token's life against the Kubernetes API emulator and the Clear simulator:
//! issue, renewal, regeneration, client-secret rotation, configuration and metadata
//! changes, deletion of the Secret and of the resource. Each counts the exact calls to Clear.

mod scenario_kit;

use std::time::Duration;

use clear_operator::reconcile::decide::Policy;
use clear_operator::{
    reconcile::secret::{self, keys},
    resource::{CLIENT_LABEL, MANAGED_BY_LABEL, REGENERATE_ANNOTATION},
};
use clear_sandbox::ClientConfig;
use jiff::SignedDuration;
use kube::api::DeleteParams;
use scenario_kit::{Kit, KitOptions};
use serde_json::json;

const SECRET: &str = "cs-lifecycle-0001";
/// The usual token lifetime of these scenarios.
const HALF_DAY: Duration = Duration::from_secs(12 * 3600);

fn client(lifetime: Duration) -> ClientConfig {
    ClientConfig::new(SECRET, "ws-1")
        .with_products(["GST", "E_INVOICE"])
        .with_lifetime(lifetime)
}

/// The resource `billing` holding its first token (one call), of tokens living `lifetime`.
async fn kit_with_token(lifetime: Duration) -> Kit {
    let kit = Kit::with_resource(vec![client(lifetime)], SECRET).await;
    kit.reconcile("billing").await;
    kit
}

#[tokio::test]
async fn create_writes_a_secret_with_all_keys_and_is_ready_after_one_call() {
    let kit = kit_with_token(HALF_DAY).await;
    assert_eq!(kit.calls(SECRET), 1);

    let secret = kit.target("billing").await.expect("target Secret written");
    let token = kit.token_in("billing").await;
    assert!(
        kit.sandbox.is_token_valid(&token),
        "the stored token is live"
    );
    assert_eq!(Kit::data(&secret, keys::VALID_TILL), "2026-11-25T22:00:00Z");
    assert_eq!(Kit::data(&secret, keys::BASE_URL), kit.url());
    assert_eq!(Kit::data(&secret, keys::ENVIRONMENT), "sandbox");
    assert_eq!(Kit::data(&secret, keys::WORKSPACE), "ws-1");
    assert_eq!(Kit::data(&secret, keys::PRODUCTS), "GST,E_INVOICE");
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    let labels = secret.metadata.labels.clone().unwrap();
    assert_eq!(labels[MANAGED_BY_LABEL], "clear-operator");
    assert_eq!(labels[CLIENT_LABEL], "billing");
    let owners = secret.metadata.owner_references.clone().unwrap();
    assert_eq!(owners[0].kind, "ClearApiClient");

    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    let status = kit.status("billing").await;
    assert_eq!(status.mints_today, 1);
    assert_eq!(status.mint_started_at, None);
    assert_eq!(status.secret_name.as_deref(), Some("billing"));
    assert_eq!(
        status.valid_till.unwrap().0.to_string(),
        "2026-11-25T22:00:00Z"
    );
    assert_eq!(
        status.renewal_time.unwrap().0.to_string(),
        "2026-11-25T18:00:00Z"
    );
    assert_eq!(kit.event_reasons("billing"), vec!["Issued".to_string()]);

    kit.reconcile_times("billing", 5).await;
    assert_eq!(kit.calls(SECRET), 1, "spurious reconciles mint nothing");
    assert!(
        scenario_kit::captured_logs().contains("new token written"),
        "the leak check reads the operator's real log output"
    );
    kit.finish().await;
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_at_renewal_time_and_no_earlier() {
    // 30 minute tokens: renewal a third of the lifetime before expiry, at +20m.
    let kit = kit_with_token(Duration::from_secs(1800)).await;
    let first = kit.token_in("billing").await;

    kit.advance(SignedDuration::from_secs(20 * 60 - 1));
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1, "no renewal one second early");

    kit.advance(SignedDuration::from_secs(1));
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 2, "renewed exactly at renewal time");
    let second = kit.token_in("billing").await;
    assert_ne!(first, second);
    assert!(kit.sandbox.is_token_valid(&second));
    assert!(
        !kit.sandbox.is_token_valid(&first),
        "minting revoked the old token"
    );
    assert!(
        kit.event_reasons("billing")
            .contains(&"Renewed".to_string())
    );

    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2);
    kit.finish().await;
}

#[tokio::test]
async fn regenerate_annotation_mints_exactly_one_new_token_once() {
    let kit = kit_with_token(HALF_DAY).await;
    let old = kit.token_in("billing").await;

    kit.regenerate("billing", "2026-11-25-a").await;
    kit.reconcile_times("billing", 4).await;
    assert_eq!(kit.calls(SECRET), 2, "one regeneration, honoured once");
    let new = kit.token_in("billing").await;
    assert!(
        !kit.sandbox.is_token_valid(&old),
        "the old token is rejected by Clear"
    );
    assert!(kit.sandbox.is_token_valid(&new));
    let status = kit.status("billing").await;
    assert_eq!(
        status.last_regenerate_request.as_deref(),
        Some("2026-11-25-a")
    );
    assert!(
        kit.event_reasons("billing")
            .contains(&"Regenerated".to_string())
    );

    kit.regenerate("billing", "2026-11-25-b").await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 3, "a new value regenerates again");
    kit.finish().await;
}

#[tokio::test]
async fn regenerate_value_present_at_creation_is_honoured_by_the_first_mint() {
    let kit = Kit::with_client_secret(vec![client(Duration::from_secs(3600))], SECRET).await;
    let meta = json!({"annotations": {REGENERATE_ANNOTATION: "from-the-start"}});
    kit.create_with_meta("billing", meta, kit.spec("clear-secret"))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1);
    kit.finish().await;
}

#[tokio::test]
async fn changed_client_secret_mints_once_with_the_new_secret() {
    let kit = kit_with_token(HALF_DAY).await;
    const ROTATED: &str = "cs-lifecycle-0002";
    kit.sandbox.rotate_client_secret(SECRET, ROTATED).unwrap();
    kit.put_client_secret("clear-secret", "clientSecret", ROTATED)
        .await;

    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1, "the old secret is not used again");
    assert_eq!(kit.calls(ROTATED), 1, "one call with the new secret");
    let token = kit.token_in("billing").await;
    assert!(kit.sandbox.is_token_valid(&token));
    let secret = kit.target("billing").await.unwrap();
    let fingerprint =
        &secret.metadata.annotations.unwrap()[secret::CLIENT_SECRET_FINGERPRINT_ANNOTATION];
    assert_eq!(fingerprint, &clear_operator::clear::fingerprint_of(ROTATED));
    kit.finish().await;
}

#[tokio::test]
async fn never_expiring_tokens_are_never_renewed() {
    let kit = Kit::with_resource(
        vec![ClientConfig::new(SECRET, "ws-1").never_expires()],
        SECRET,
    )
    .await;
    kit.reconcile("billing").await;
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(Kit::data(&secret, keys::VALID_TILL), "");

    kit.advance(SignedDuration::from_hours(24 * 400));
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn environment_change_mints_once() {
    let kit = kit_with_token(HALF_DAY).await;
    kit.patch_spec("billing", json!({"environment": "production"}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2);
    let secret = kit.target("billing").await.unwrap();
    assert_eq!(Kit::data(&secret, keys::ENVIRONMENT), "production");
    kit.finish().await;
}

#[tokio::test]
async fn label_and_product_changes_update_the_secret_without_minting() {
    let kit = kit_with_token(HALF_DAY).await;
    let token = kit.token_in("billing").await;
    kit.patch_spec(
        "billing",
        json!({"products": ["GST"], "target": {"labels": {"team": "payments"}, "annotations": {"note": "x"}}}),
    )
    .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1, "no call for metadata changes");

    let secret = kit.target("billing").await.unwrap();
    assert_eq!(secret.metadata.labels.as_ref().unwrap()["team"], "payments");
    assert_eq!(secret.metadata.annotations.as_ref().unwrap()["note"], "x");
    assert_eq!(Kit::data(&secret, keys::PRODUCTS), "GST");
    assert_eq!(
        Kit::data(&secret, keys::ACCESS_TOKEN),
        token,
        "the token is carried over"
    );
    assert!(kit.sandbox.is_token_valid(&token));

    kit.patch_spec("billing", json!({"target": {"labels": null}}))
        .await;
    kit.reconcile("billing").await;
    let secret = kit.target("billing").await.unwrap();
    assert!(
        !secret
            .metadata
            .labels
            .as_ref()
            .unwrap()
            .contains_key("team"),
        "a removed label goes away"
    );
    assert_eq!(kit.calls(SECRET), 1);
    kit.finish().await;
}

#[tokio::test]
async fn deleted_target_secret_is_recreated_with_one_call_and_an_event() {
    let kit = kit_with_token(HALF_DAY).await;
    kit.token_in("billing").await;
    kit.secrets
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2);
    let token = kit.token_in("billing").await;
    assert!(kit.sandbox.is_token_valid(&token));
    let recreated: Vec<_> = kit
        .events("billing")
        .into_iter()
        .filter(|(_, reason, _)| reason == "SecretRecreated")
        .collect();
    assert_eq!(recreated.len(), 1);
    assert!(
        recreated[0].2.contains("only in that Secret"),
        "{}",
        recreated[0].2
    );
    kit.finish().await;
}

#[tokio::test]
async fn a_removed_operator_annotation_is_repaired_from_status_without_a_call() {
    let kit = kit_with_token(HALF_DAY).await;
    let token = kit.token_in("billing").await;
    let annotations =
        |s: &k8s_openapi::api::core::v1::Secret| s.metadata.annotations.clone().unwrap();
    let mut before = annotations(&kit.target("billing").await.unwrap());
    // NB: the call id marks a token fresh from its call; a re-apply from status drops it.
    before.remove(secret::CALL_ID_ANNOTATION);
    kit.edit_target(
        "billing",
        json!({"metadata": {"annotations": {secret::ISSUED_AT_ANNOTATION: null}}}),
    )
    .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "status knew the token: nothing to mint"
    );
    let repaired = kit.target("billing").await.unwrap();
    assert_eq!(annotations(&repaired), before, "every annotation is back");
    assert_eq!(kit.token_in("billing").await, token, "the same token");
    assert!(kit.sandbox.is_token_valid(&token));
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn a_removed_access_token_key_mints_once_and_the_secret_holds_a_live_token_again() {
    let kit = kit_with_token(HALF_DAY).await;
    let old = kit.token_in("billing").await;
    kit.edit_target("billing", json!({"data": {keys::ACCESS_TOKEN: null}}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(
        kit.calls(SECRET),
        2,
        "the only copy was gone: exactly one mint"
    );
    let token = kit.token_in("billing").await;
    assert_ne!(token, old);
    assert!(kit.sandbox.is_token_valid(&token));
    let notes: Vec<String> = kit
        .events("billing")
        .into_iter()
        .filter(|(_, reason, _)| reason == "SecretRecreated")
        .map(|(_, _, note)| note)
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("accessToken key was removed"),
        "{}",
        notes[0]
    );
    kit.finish().await;
}

#[tokio::test]
async fn a_replaced_access_token_value_mints_once() {
    let kit = kit_with_token(HALF_DAY).await;
    let bogus = serde_json::to_value(k8s_openapi::ByteString(b"not-the-token".to_vec())).unwrap();
    kit.edit_target("billing", json!({"data": {keys::ACCESS_TOKEN: bogus}}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2);
    assert!(kit.sandbox.is_token_valid(&kit.token_in("billing").await));
    kit.finish().await;
}

#[tokio::test]
async fn interrupted_call_is_presumed_to_have_revoked_the_token_and_mints_once() {
    let kit = kit_with_token(HALF_DAY).await;
    // A crash between "counted" and "outcome recorded" leaves the operator's own
    // mintStartedAt behind (written with its field manager, as the operator does).
    kit.advance(SignedDuration::from_mins(1));
    kit.edit_status("billing", |status| {
        status["mintStartedAt"] = json!("2026-11-25T10:01:00Z");
    })
    .await;
    // NB: the call may still be in flight in a replica that lost the Lease: nothing is
    // minted until the Clear timeout plus a margin (30 s by default) has passed.
    kit.reconcile_times("billing", 3).await;
    assert_eq!(
        kit.calls(SECRET),
        1,
        "no call while the other may be in flight"
    );
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "MintInFlight".into())
    );
    kit.advance(SignedDuration::from_secs(29));
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SECRET), 1, "one second before the deadline");
    kit.advance(SignedDuration::from_secs(1));
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "then replaced exactly once");
    let status = kit.status("billing").await;
    assert_eq!(status.mint_started_at, None);
    let token = kit.token_in("billing").await;
    assert!(kit.sandbox.is_token_valid(&token));
    kit.finish().await;
}

#[tokio::test]
async fn lost_status_update_after_a_written_token_mints_nothing() {
    let kit = kit_with_token(HALF_DAY).await;
    // The token reached the Secret (issued 10:00:00, written with the call's id) but the
    // status still says call c-1 started at 09:59:59 and names the token before it: only the
    // status update was lost.
    kit.edit_target(
        "billing",
        json!({"metadata": {"annotations": {secret::CALL_ID_ANNOTATION: "c-1"}}}),
    )
    .await;
    kit.edit_status("billing", |status| {
        status["mintStartedAt"] = json!("2026-11-25T09:59:59Z");
        status["callId"] = json!("c-1");
        status["tokenFingerprint"] = json!("000000000000");
    })
    .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1);
    assert_eq!(kit.status("billing").await.mint_started_at, None);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.token_in("billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn deleting_the_resource_collects_the_secret_with_delete_policy() {
    let kit = kit_with_token(Duration::from_secs(3600)).await;
    kit.cacs
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    for _ in 0..500 {
        if kit.target("billing").await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        kit.target("billing").await.is_none(),
        "owned Secret garbage-collected"
    );
    assert_eq!(kit.calls(SECRET), 1);
    kit.shutdown().await;
}

#[tokio::test]
async fn deleting_the_resource_keeps_the_secret_with_retain_policy() {
    let kit = Kit::with_client_secret(vec![client(Duration::from_secs(3600))], SECRET).await;
    let mut spec = kit.spec("clear-secret");
    spec["target"] = json!({"deletionPolicy": "Retain", "name": "kept-token"});
    kit.create("billing", spec).await;
    kit.reconcile("billing").await;
    assert!(
        kit.target("kept-token")
            .await
            .unwrap()
            .metadata
            .owner_references
            .is_none()
    );
    kit.cacs
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        kit.target("kept-token").await.is_some(),
        "retained Secret outlives the resource"
    );
    kit.token_in("kept-token").await;
    kit.finish().await;
}

#[tokio::test]
async fn new_tokens_restart_listed_workloads_and_a_missing_one_is_a_warning() {
    let kit = Kit::with_client_secret(vec![client(Duration::from_secs(3600))], SECRET).await;
    let deployments = kit.create_consumer_deployment("consumer").await;
    let mut spec = kit.spec("clear-secret");
    spec["rolloutRestartTargets"] = json!([
        {"kind": "Deployment", "name": "consumer"},
        {"kind": "StatefulSet", "name": "absent"}
    ]);
    kit.create("billing", spec).await;
    kit.reconcile("billing").await;

    let restarted = deployments.get("consumer").await.unwrap();
    let annotations = restarted
        .spec
        .unwrap()
        .template
        .metadata
        .unwrap()
        .annotations
        .unwrap();
    assert_eq!(
        annotations["kubectl.kubernetes.io/restartedAt"],
        "2026-11-25T10:00:00Z"
    );
    let events = kit.events("billing");
    assert!(
        events
            .iter()
            .any(|(kind, reason, _)| kind == "Normal" && reason == "Restarted")
    );
    assert!(events.iter().any(|(kind, reason, note)| kind == "Warning"
        && reason == "RestartTargetMissing"
        && note.contains("absent")));
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));

    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SECRET), 1, "no new token, no restart");
    kit.token_in("billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn reconciles_at_sub_second_times_settle_and_then_write_nothing() {
    let kit = Kit::with_resource_and(
        KitOptions {
            clients: vec![client(HALF_DAY)],
            start: "2026-11-25T10:00:00.654321Z".parse().unwrap(),
            ..Default::default()
        },
        SECRET,
    )
    .await;
    kit.reconcile("billing").await;
    kit.advance(SignedDuration::from_millis(1700));
    kit.reconcile("billing").await;
    kit.emulator.requests().reset();
    kit.advance(SignedDuration::from_millis(2300));
    kit.reconcile_times("billing", 3).await;
    let writes = kit.emulator.requests().writes();
    assert!(
        writes.is_empty(),
        "a settled resource is not rewritten: {writes:?}"
    );
    assert_eq!(kit.calls(SECRET), 1);
    kit.token_in("billing").await;
    kit.finish().await;
}

/// The Secret under the old target name holds no key at all (so no token, revoked or
/// live) and says where the token went. NB: emptied, not deleted: the operator has no
/// `delete` right on Secrets.
async fn assert_retired(kit: &Kit, name: &str) {
    let old = kit
        .target(name)
        .await
        .expect("the old Secret is kept, emptied");
    assert!(
        old.data.as_ref().is_none_or(|d| d.is_empty()),
        "a key is left in the old Secret: {:?}",
        old.data.as_ref().map(|d| d.keys().collect::<Vec<_>>())
    );
    let annotations = old.metadata.annotations.unwrap_or_default();
    assert!(
        annotations.contains_key(clear_operator::reconcile::secret::RETIRED_ANNOTATION),
        "{annotations:?}"
    );
}

#[tokio::test]
async fn renaming_the_target_moves_the_live_token_without_a_call_and_empties_the_old_secret() {
    let kit = kit_with_token(HALF_DAY).await;
    let token = kit.token_in("billing").await;
    kit.patch_spec("billing", json!({"target": {"name": "billing-v2"}}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 1, "no call for a rename");
    assert_eq!(
        kit.token_in("billing-v2").await,
        token,
        "the same token moved"
    );
    assert!(kit.sandbox.is_token_valid(&token));
    assert_retired(&kit, "billing").await;
    let status = kit.status("billing").await;
    assert_eq!(status.secret_name.as_deref(), Some("billing-v2"));
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn renaming_the_target_when_renewal_is_due_mints_once_and_leaves_no_revoked_copy() {
    let kit = kit_with_token(HALF_DAY).await;
    let old_token = kit.token_in("billing").await;
    kit.advance(SignedDuration::from_hours(9));
    kit.patch_spec("billing", json!({"target": {"name": "billing-v2"}}))
        .await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SECRET), 2, "one renewal");
    let token = kit.token_in("billing-v2").await;
    assert_ne!(token, old_token);
    assert!(kit.sandbox.is_token_valid(&token));
    assert_retired(&kit, "billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn resources_created_together_renew_apart_each_at_its_own_jittered_time() {
    // The operator's default policy: renewals spread over 5 % of the lifetime.
    let lifetime = Duration::from_secs(24 * 3600);
    let kit = Kit::start_with(KitOptions {
        clients: vec![
            ClientConfig::new("cs-jitter-a", "ws-1").with_lifetime(lifetime),
            ClientConfig::new("cs-jitter-b", "ws-1").with_lifetime(lifetime),
        ],
        policy: Policy::default(),
        ..KitOptions::default()
    })
    .await;
    let names = ["billing-a", "billing-b"];
    for (name, secret) in names.iter().zip(["cs-jitter-a", "cs-jitter-b"]) {
        kit.put_client_secret(&format!("{name}-secret"), "clientSecret", secret)
            .await;
        kit.create(name, kit.spec(&format!("{name}-secret"))).await;
        kit.reconcile(name).await;
    }
    // Without jitter both would renew at 02:00 the next day (issued 10:00, due a third of
    // the lifetime before expiry).
    let unjittered: jiff::Timestamp = "2026-11-26T02:00:00Z".parse().unwrap();
    let mut planned = Vec::new();
    for name in names {
        let status = kit.status(name).await;
        let at = status.renewal_time.unwrap().0;
        let ahead = unjittered.duration_since(at);
        assert!(
            ahead > SignedDuration::ZERO && ahead < SignedDuration::from_mins(72),
            "{name}: {at} is not within 5 % of the lifetime before {unjittered}"
        );
        planned.push(at);
    }
    assert_ne!(planned[0], planned[1], "two resources, two instants");

    // Each renews at its own instant, and not a second before it.
    let (first, second) = if planned[0] < planned[1] {
        ((names[0], planned[0]), (names[1], planned[1]))
    } else {
        ((names[1], planned[1]), (names[0], planned[0]))
    };
    kit.set_time(&(first.1 - SignedDuration::from_secs(1)).to_string());
    for name in names {
        kit.reconcile(name).await;
    }
    assert_eq!(kit.all_calls(), 2, "nothing renews before its instant");
    kit.set_time(&first.1.to_string());
    for name in names {
        kit.reconcile(name).await;
    }
    assert_eq!(kit.all_calls(), 3, "{} renews at {}", first.0, first.1);
    if second.1 > first.1 {
        assert_eq!(kit.status(second.0).await.renewal_time.unwrap().0, second.1);
    }
    kit.set_time(&second.1.to_string());
    kit.reconcile(second.0).await;
    assert_eq!(kit.all_calls(), 4);
    kit.finish().await;
}
