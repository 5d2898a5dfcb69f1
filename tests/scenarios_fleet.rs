//! Scenarios of the fleet as a whole (issue 14): an outage of Clear for every resource (the
//! shared circuit, the backoff tied to the token's life), and the budget per client secret
//! across resources. Each counts the exact calls to Clear.

mod scenario_kit;

use std::{collections::BTreeSet, time::Duration};

use futures::StreamExt;

use clear_operator::{
    reconcile::decide::Policy,
    resource::REGENERATE_ANNOTATION,
    services::circuit::{OPEN_AFTER, TRIAL_INTERVAL},
};
use clear_sandbox::{ClientConfig, Fault, FaultScope};
use jiff::SignedDuration;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, api::DeleteParams};
use scenario_kit::{Kit, KitOptions};
use serde_json::json;

const FLEET: usize = 8;

fn secret(i: usize) -> String {
    format!("cs-fleet-{i:04}")
}

fn name(i: usize) -> String {
    format!("billing-{i}")
}

/// `FLEET` resources, one client secret each, holding their first 3-hour token (due for
/// renewal two hours after the kit's start).
async fn fleet() -> Kit {
    let clients = (0..FLEET)
        .map(|i| {
            ClientConfig::new(secret(i).as_str(), "ws-1")
                .with_lifetime(Duration::from_secs(3 * 3600))
        })
        .collect();
    let kit = Kit::start(clients).await;
    for i in 0..FLEET {
        let secret_name = format!("clear-secret-{i}");
        kit.put_client_secret(&secret_name, "clientSecret", &secret(i))
            .await;
        kit.create(&name(i), kit.spec(&secret_name)).await;
        kit.reconcile(&name(i)).await;
    }
    assert_eq!(kit.all_calls(), FLEET as u64);
    kit
}

async fn reconcile_all(kit: &Kit) {
    for i in 0..FLEET {
        kit.reconcile(&name(i)).await;
    }
}

async fn ready_count(kit: &Kit) -> usize {
    let mut ready = 0;
    for i in 0..FLEET {
        if kit.ready(&name(i)).await.0 == "True" {
            ready += 1;
        }
    }
    ready
}

#[tokio::test]
async fn an_outage_of_clear_costs_a_few_trial_calls_and_its_end_serves_everyone_at_once() {
    let kit = fleet().await;
    let first = FLEET as u64;
    kit.sandbox
        .inject_fault(FaultScope::Global, Fault::ServerError, 10_000);
    // Every token expired during the outage: every resource needs one.
    kit.advance(SignedDuration::from_hours(3));
    reconcile_all(&kit).await;
    assert_eq!(
        kit.all_calls(),
        first + u64::from(OPEN_AFTER),
        "five failures in a row open the circuit; the other three do not call"
    );
    let held = name(FLEET - 1);
    // NB: its token expired: the reason says so, the message why no new one came.
    assert_eq!(
        kit.ready(&held).await,
        ("False".into(), "TokenExpired".into())
    );
    let message = scenario_kit::ready_message(&kit.get(&held).await);
    assert!(
        message.contains("Clear failed for every resource"),
        "{message}"
    );
    let status = kit.status(&held).await;
    assert_eq!(
        status.mint_started_at, None,
        "nothing was marked: no call was made"
    );
    assert_eq!(status.failed_attempts, 0);
    kit.reconcile(&held).await;
    assert_eq!(
        kit.all_calls(),
        first + u64::from(OPEN_AFTER),
        "still held back"
    );

    // Ten minutes of outage: one trial per 30 s, whoever asks.
    let mut calls = first + u64::from(OPEN_AFTER);
    for _ in 0..20 {
        kit.advance(TRIAL_INTERVAL);
        reconcile_all(&kit).await;
        calls += 1;
        assert_eq!(kit.all_calls(), calls, "one trial per interval");
    }
    assert_eq!(ready_count(&kit).await, 0);

    // Clear is back: the next trial succeeds; every resource that waited or failed during
    // the outage is released (the controller reconciles them at 50 a second), and is served
    // on that reconcile, whatever backoff its own failures asked for.
    let releases = kit.ctx.services.circuits.releases();
    kit.sandbox.clear_faults();
    kit.advance(TRIAL_INTERVAL);
    reconcile_all(&kit).await;
    let released: BTreeSet<String> = tokio::time::timeout(
        Duration::from_secs(30),
        releases
            .take(FLEET)
            .map(|(_, name)| name)
            .collect::<BTreeSet<_>>(),
    )
    .await
    .expect("every resource is released");
    assert_eq!(released, (0..FLEET).map(name).collect());
    for name in &released {
        kit.reconcile(name).await;
    }
    assert_eq!(
        kit.all_calls(),
        calls + FLEET as u64,
        "one call each, no more"
    );
    assert_eq!(ready_count(&kit).await, FLEET);
    reconcile_all(&kit).await;
    assert_eq!(kit.all_calls(), calls + FLEET as u64);
    kit.finish().await;
}

#[tokio::test]
async fn resources_held_back_keep_their_token_while_clear_is_down() {
    let kit = fleet().await;
    let mut tokens = Vec::new();
    for i in 0..FLEET {
        tokens.push(kit.token_in(&name(i)).await);
    }
    kit.sandbox
        .inject_fault(FaultScope::Global, Fault::ServerError, 10_000);
    // Due for renewal (two hours in), an hour of life left. A 500 may have minted (and so
    // revoked the stored token): the five that called are not Ready. The three the circuit
    // held back made no call: their token still works and they stay Ready until it expires.
    kit.advance(SignedDuration::from_hours(2));
    reconcile_all(&kit).await;
    assert_eq!(kit.all_calls(), (FLEET + OPEN_AFTER as usize) as u64);
    let mut held = 0;
    for (i, token) in tokens.iter().enumerate() {
        let status = kit.get(&name(i)).await.status.unwrap();
        if status.failed_attempts == 0 {
            held += 1;
            assert_eq!(
                kit.ready(&name(i)).await,
                ("True".into(), "ClearUnavailable".into())
            );
            assert!(kit.sandbox.is_token_valid(token));
        } else {
            assert_eq!(kit.ready(&name(i)).await.0, "False");
        }
    }
    assert_eq!(held, FLEET - OPEN_AFTER as usize);
    kit.finish().await;
}

const SHARED: &str = "cs-fleet-shared";
const BUDGET: u32 = 3;

/// A kit whose budget is 3 calls per client secret per day, with the client secret `SHARED`
/// in Secret `clear-secret`.
async fn small_budget(instance: Option<&str>) -> Kit {
    let kit = Kit::start_with(KitOptions {
        clients: vec![
            ClientConfig::new(SHARED, "ws-1").with_lifetime(Duration::from_secs(12 * 3600)),
        ],
        policy: Policy {
            mint_budget: BUDGET,
            renewal_jitter_percent: 0,
            ..Policy::default()
        },
        instance: instance.map(str::to_string),
        ..KitOptions::default()
    })
    .await;
    kit.put_client_secret("clear-secret", "clientSecret", SHARED)
        .await;
    kit
}

/// Spends the whole budget of `SHARED` on resource `name`: the first token and two
/// regenerations.
async fn spend_budget(kit: &Kit, name: &str, spec: serde_json::Value) {
    kit.create(name, spec).await;
    kit.reconcile_times(name, 2).await;
    for value in ["again-1", "again-2"] {
        kit.annotate(name, REGENERATE_ANNOTATION, value).await;
        kit.reconcile(name).await;
    }
    assert_eq!(kit.calls(SHARED), u64::from(BUDGET));
    assert_eq!(kit.ready(name).await, ("True".into(), "Issued".into()));
}

async fn delete(kit: &Kit, name: &str) {
    kit.cacs
        .delete(name, &DeleteParams::default())
        .await
        .expect("deleted");
}

#[tokio::test]
async fn the_budget_is_per_client_secret_across_delete_and_recreate() {
    let kit = small_budget(None).await;
    spend_budget(&kit, "billing", kit.spec("clear-secret")).await;
    delete(&kit, "billing").await;
    // The same name again: a new object, no status, no mintsToday; the client secret's
    // calls today are still 3.
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile_times("billing", 3).await;
    assert_eq!(kit.calls(SHARED), u64::from(BUDGET), "no fourth call today");
    assert_eq!(
        kit.ready("billing").await,
        ("False".into(), "BudgetExhausted".into())
    );
    // A new UTC day: the budget is back.
    kit.set_time("2026-11-26T00:00:00Z");
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SHARED), u64::from(BUDGET) + 1);
    assert_eq!(kit.ready("billing").await, ("True".into(), "Issued".into()));
    kit.finish().await;
}

#[tokio::test]
async fn the_budget_follows_the_client_secret_when_the_holder_role_passes_on() {
    let kit = small_budget(None).await;
    spend_budget(&kit, "billing", kit.spec("clear-secret")).await;
    // A second resource with the same secret yields to the holder (Conflict)...
    kit.create("invoices", kit.spec("clear-secret")).await;
    kit.reconcile("invoices").await;
    assert_eq!(kit.ready("invoices").await.1, "Conflict");
    // ...and becomes the holder when it is gone (once the watch told the index), with the
    // secret's budget already spent.
    delete(&kit, "billing").await;
    for _ in 0..200 {
        kit.reconcile("invoices").await;
        if kit.ready("invoices").await.1 != "Conflict" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    kit.reconcile_times("invoices", 2).await;
    assert_eq!(kit.calls(SHARED), u64::from(BUDGET));
    assert_eq!(
        kit.ready("invoices").await,
        ("False".into(), "BudgetExhausted".into())
    );
    kit.finish().await;
}

#[tokio::test]
async fn a_revoke_on_delete_counts_against_the_client_secret() {
    let kit = small_budget(None).await;
    let mut spec = kit.spec("clear-secret");
    spec["revokeOnDelete"] = json!(true);
    kit.create("billing", spec.clone()).await;
    kit.reconcile_times("billing", 2).await;
    kit.regenerate("billing", "again-1").await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SHARED), 2);
    delete(&kit, "billing").await;
    kit.reconcile("billing").await;
    assert_eq!(kit.calls(SHARED), 3, "the revoke is a call");
    assert!(kit.cacs.get_opt("billing").await.unwrap().is_none());

    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile_times("billing", 2).await;
    assert_eq!(kit.calls(SHARED), 3);
    assert_eq!(kit.ready("billing").await.1, "BudgetExhausted");
    kit.shutdown().await;
}

#[tokio::test]
async fn a_new_leader_reads_the_ledger_and_keeps_to_the_budget() {
    const INSTANCE: &str = "default/clear-operator";
    let kit = small_budget(Some(INSTANCE)).await;
    spend_budget(&kit, "billing", kit.spec("clear-secret")).await;
    delete(&kit, "billing").await;
    kit.ctx
        .services
        .ledger
        .flush(&kit.ctx.client, &kit.ctx.fence, kit.now())
        .await;
    let stored: Api<ConfigMap> = Api::namespaced(kit.ctx.client.clone(), "default");
    let ledger = stored
        .get("clear-operator-budget")
        .await
        .expect("the ledger");
    let data = ledger.data.unwrap();
    assert_eq!(data["day"], "2026-11-25");
    assert_eq!(data.values().filter(|v| *v == "3").count(), 1, "{data:?}");

    // Another process (the next leader) reads it before its first reconcile.
    let next = kit.new_context_of(
        Policy {
            mint_budget: BUDGET,
            ..Policy::default()
        },
        Some(INSTANCE),
    );
    next.services
        .ledger
        .load(&next.client, kit.now(), &next.metrics)
        .await;
    kit.create("billing", kit.spec("clear-secret")).await;
    kit.reconcile_in(&next, "billing")
        .await
        .expect("reconcile succeeds");
    assert_eq!(kit.calls(SHARED), u64::from(BUDGET));
    assert_eq!(kit.ready("billing").await.1, "BudgetExhausted");
    kit.shutdown().await;
}
