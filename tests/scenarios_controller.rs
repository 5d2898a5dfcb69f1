//! Scenarios with the real controller running against the emulator: watches wake it, a
//! restarted operator mints nothing for resources that are Ready, the revoke-on-delete
//! finalizer revokes once, and a deleted Secret is noticed and recreated.

mod scenario_kit;

use std::time::Duration;

use clear_operator::{reconcile::decide::Policy, resource::REVOKE_FINALIZER};
use clear_sandbox::ClientConfig;
use kube::{ResourceExt, api::DeleteParams};
use scenario_kit::{Kit, is_ready};

fn client(secret: &str) -> ClientConfig {
    ClientConfig::new(secret, "ws-1").with_lifetime(Duration::from_secs(12 * 3600))
}

#[tokio::test]
async fn controller_issues_a_token_and_recovers_when_the_client_secret_appears() {
    const SECRET: &str = "cs-controller-0001";
    let kit = Kit::start(vec![client(SECRET)]).await;
    let controller = kit.start_controller();
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.wait_for("billing", "ClientSecretMissing", |c| {
        c.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.reason == "ClientSecretMissing")
        })
    })
    .await;
    assert_eq!(kit.all_calls(), 0);

    // Only the metadata watch on Secrets can wake the controller here.
    kit.put_client_secret("clear-secret", "clientSecret", SECRET)
        .await;
    kit.wait_ready("billing").await;
    assert_eq!(kit.calls(SECRET), 1);
    kit.token_in("billing").await;

    // The target Secret's deletion is seen through the watch on the operator's Secrets.
    kit.secrets
        .delete("billing", &DeleteParams::default())
        .await
        .unwrap();
    kit.eventually(|| async { kit.target("billing").await.is_some() && kit.calls(SECRET) == 2 })
        .await;
    assert!(
        kit.target("billing").await.is_some(),
        "the Secret was recreated"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kit.calls(SECRET), 2, "recreated with exactly one call");
    kit.token_in("billing").await;

    controller.stop().await;
    kit.finish().await;
}

#[tokio::test]
async fn restarted_operator_over_ready_resources_makes_no_call() {
    const N: usize = 5;
    let secrets: Vec<String> = (0..N).map(|i| format!("cs-restart-{i:04}")).collect();
    let kit = Kit::start(secrets.iter().map(|s| client(s)).collect()).await;
    for (i, secret) in secrets.iter().enumerate() {
        kit.put_client_secret(&format!("secret-{i}"), "clientSecret", secret)
            .await;
        kit.create(&format!("client-{i}"), kit.spec(&format!("secret-{i}")))
            .await;
    }
    let controller = kit.start_controller();
    for i in 0..N {
        kit.wait_for(&format!("client-{i}"), "Ready", |c| is_ready(c, "True"))
            .await;
    }
    controller.stop().await;
    assert_eq!(kit.all_calls(), N as u64);

    // A brand-new operator process: nothing in memory, everything from the cluster.
    kit.emulator.requests().reset();
    let controller = kit.start_controller();
    kit.eventually(|| async {
        (0..N).all(|i| {
            // NB: the token Secret is read whole by every reconcile of a resource holding a
            // token (the resource itself may come from the watch cache).
            kit.emulator.requests().entries().iter().any(|e| {
                e.verb == "get"
                    && e.resource == "secrets"
                    && e.name.as_deref() == Some(&format!("client-{i}"))
            })
        })
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    controller.stop().await;
    assert_eq!(
        kit.all_calls(),
        N as u64,
        "the restart made no call to Clear"
    );
    for i in 0..N {
        assert!(is_ready(&kit.get(&format!("client-{i}")).await, "True"));
        kit.token_in(&format!("client-{i}")).await;
    }
    kit.finish().await;
}

/// A kit whose resource `billing` reads client secret `secret` and has revokeOnDelete.
async fn revocable_billing(secret: &str) -> Kit {
    let kit = Kit::start(vec![client(secret)]).await;
    kit.put_client_secret("clear-secret", "clientSecret", secret)
        .await;
    let mut spec = kit.spec("clear-secret");
    spec["revokeOnDelete"] = serde_json::json!(true);
    kit.create("billing", spec).await;
    kit
}

#[tokio::test]
async fn revoke_on_delete_mints_once_discards_it_and_lets_the_resource_go() {
    const SECRET: &str = "cs-revoke-0001";
    let kit = revocable_billing(SECRET).await;
    let controller = kit.start_controller();
    kit.wait_for("billing", "Ready with the finalizer", |c| {
        is_ready(c, "True") && c.finalizers().iter().any(|f| f == REVOKE_FINALIZER)
    })
    .await;
    let handed_out = kit.token_in("billing").await;
    assert_eq!(kit.calls(SECRET), 1);

    kit.delete("billing").await;
    kit.eventually(|| async { kit.cacs.get_opt("billing").await.unwrap().is_none() })
        .await;
    assert!(
        kit.cacs.get_opt("billing").await.unwrap().is_none(),
        "the finalizer was released"
    );
    assert_eq!(kit.calls(SECRET), 2, "exactly one revoking call");
    assert!(
        !kit.sandbox.is_token_valid(&handed_out),
        "the handed-out token is revoked"
    );
    assert!(
        kit.event_reasons("billing")
            .contains(&"Revoked".to_string())
    );

    controller.stop().await;
    kit.finish().await;
}

#[tokio::test]
async fn turning_revoke_on_delete_off_removes_the_finalizer() {
    const SECRET: &str = "cs-revoke-0002";
    let kit = revocable_billing(SECRET).await;
    let controller = kit.start_controller();
    kit.wait_for("billing", "the finalizer", |c| {
        c.finalizers().iter().any(|f| f == REVOKE_FINALIZER)
    })
    .await;
    kit.patch_spec("billing", serde_json::json!({"revokeOnDelete": false}))
        .await;
    kit.wait_for("billing", "no finalizer", |c| c.finalizers().is_empty())
        .await;
    kit.wait_ready("billing").await;
    kit.delete("billing").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(kit.cacs.get_opt("billing").await.unwrap().is_none());
    assert_eq!(
        kit.calls(SECRET),
        1,
        "no revoking call without revokeOnDelete"
    );
    controller.stop().await;
    kit.finish().await;
}

#[tokio::test]
async fn two_replicas_with_leader_election_mint_once_and_hand_over_without_minting() {
    const SECRET: &str = "cs-replicas-0001";
    let kit = Kit::with_client_secret(vec![client(SECRET)], SECRET).await;
    let (stop_a, run_a) = kit.run_replica(kit.new_context(Policy::default()), "pod-a");
    let (stop_b, run_b) = kit.run_replica(kit.new_context(Policy::default()), "pod-b");
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.wait_ready("billing").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kit.calls(SECRET), 1, "only the leader minted");
    kit.token_in("billing").await;

    let leases: kube::Api<k8s_openapi::api::coordination::v1::Lease> =
        kube::Api::namespaced(kit.client.clone(), "default");
    let holder = |lease: k8s_openapi::api::coordination::v1::Lease| {
        lease.spec.and_then(|s| s.holder_identity)
    };
    let first =
        holder(leases.get("clear-operator").await.unwrap()).expect("a leader holds the Lease");
    let (stop_leader, run_leader, stop_standby, run_standby) = if first == "pod-a" {
        (stop_a, run_a, stop_b, run_b)
    } else {
        (stop_b, run_b, stop_a, run_a)
    };
    stop_leader.send(()).unwrap();
    run_leader.await.unwrap();
    let taken_over = |now: Option<String>| now.is_some() && now.as_deref() != Some(first.as_str());
    kit.eventually(|| async { taken_over(holder(leases.get("clear-operator").await.unwrap())) })
        .await;
    let second = holder(leases.get("clear-operator").await.unwrap());
    assert!(taken_over(second), "the standby took over");

    // The new leader reconciles (a regeneration proves it) and the handover itself minted nothing.
    assert_eq!(kit.calls(SECRET), 1);
    kit.regenerate("billing", "after-handover").await;
    kit.wait_for("billing", "regenerated", |c| {
        c.status
            .as_ref()
            .and_then(|s| s.last_regenerate_request.as_deref())
            == Some("after-handover")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kit.calls(SECRET), 2);
    kit.token_in("billing").await;
    stop_standby.send(()).unwrap();
    run_standby.await.unwrap();
    kit.finish().await;
}

#[tokio::test]
async fn dropped_watches_and_a_full_relist_make_no_call() {
    const SECRET: &str = "cs-relist-0001";
    let kit = Kit::with_client_secret(vec![client(SECRET)], SECRET).await;
    let controller = kit.start_controller();
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.wait_ready("billing").await;
    assert_eq!(kit.calls(SECRET), 1);

    // Watches end and their resourceVersions are too old to resume: every watcher relists,
    // and every object shows up again as if new.
    kit.emulator.requests().reset();
    kit.emulator.faults().compact_history();
    kit.emulator.faults().close_watches();
    let relisted = || {
        kit.emulator
            .requests()
            .entries()
            .iter()
            .any(|e| e.verb == "list" && e.resource == "clearapiclients")
    };
    kit.eventually(|| async { relisted() }).await;
    assert!(relisted(), "the controller relisted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(kit.calls(SECRET), 1, "the relist made no call to Clear");
    assert!(is_ready(&kit.get("billing").await, "True"));
    controller.stop().await;
    kit.token_in("billing").await;
    kit.finish().await;
}

#[tokio::test]
async fn revoke_on_delete_calls_clear_once_even_when_the_finalizer_removal_conflicts() {
    const SECRET: &str = "cs-revoke-0002";
    let kit = revocable_billing(SECRET).await;
    kit.reconcile_times("billing", 2).await;
    let handed_out = kit.token_in("billing").await;
    assert_eq!(kit.calls(SECRET), 1);

    kit.delete("billing").await;
    // The finalizer removal after the revoke hits a conflict once.
    kit.emulator
        .faults()
        .fail_next("patch", "clearapiclients", 1, 409);
    let first = kit.reconcile_in(&kit.ctx, "billing").await;
    assert!(first.is_err(), "the finalizer patch failed");
    assert_eq!(kit.calls(SECRET), 2, "the revoking call");
    // The retry only removes the finalizer.
    kit.reconcile("billing").await;
    kit.eventually(|| async { kit.cacs.get_opt("billing").await.unwrap().is_none() })
        .await;
    assert!(kit.cacs.get_opt("billing").await.unwrap().is_none());
    assert_eq!(kit.calls(SECRET), 2, "exactly one revoking call");
    assert!(!kit.sandbox.is_token_valid(&handed_out));
    let failures: Vec<String> = kit
        .notes("billing", "ReconcileFailed")
        .into_iter()
        .filter(|note| note.contains("finalizer"))
        .collect();
    assert_eq!(
        failures.len(),
        1,
        "only the injected conflict failed: {failures:?}"
    );
    kit.finish().await;
}
