//! Leader election on a Lease in the emulator: one holder at a time, takeover only after
//! expiry (the Lease unchanged for its duration on the standby's monotonic clock, whatever
//! the times written in it), release on shutdown, and a standby that keeps trying.

use std::{sync::Arc, time::Duration};

use clear_operator::{
    clock::{Clock, ManualClock},
    leader::{LeaderElector, LeaseConfig},
};
use jiff::SignedDuration;
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use kube_emulator::{Emulator, EmulatorOptions};
use tokio::sync::{oneshot, watch};

fn elector(client: &kube::Client, identity: &str, clock: &ManualClock) -> LeaderElector {
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    LeaderElector::new(
        client.clone(),
        LeaseConfig::new("default", "clear-operator", identity),
        clock,
    )
}

#[tokio::test]
async fn only_one_replica_holds_the_lease_until_it_expires() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let client = emulator.client().await;
    let clock = ManualClock::new("2026-11-25T10:00:00Z".parse().unwrap());
    let a = elector(&client, "pod-a", &clock);
    let b = elector(&client, "pod-b", &clock);

    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a free Lease is taken"
    );
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "a held Lease is not"
    );
    clock.advance(SignedDuration::from_secs(10));
    assert!(a.try_acquire_or_renew().await.unwrap(), "the holder renews");
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "the standby sees the renewal"
    );
    clock.advance(SignedDuration::from_secs(14));
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "one second before expiry it is still held"
    );
    clock.advance(SignedDuration::from_secs(1));
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "a Lease unchanged for its duration is taken over"
    );
    assert!(
        !a.try_acquire_or_renew().await.unwrap(),
        "the old holder lost it"
    );

    let lease = Api::<Lease>::namespaced(client, "default")
        .get("clear-operator")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("pod-b"));
    assert_eq!(spec.lease_transitions, Some(1));
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_lease_renewed_from_the_future_is_taken_once_it_stops_changing() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let client = emulator.client().await;
    let leases = Api::<Lease>::namespaced(client.clone(), "default");
    let ghost: Lease = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "clear-operator", "namespace": "default"},
        "spec": {
            "holderIdentity": "ghost", "leaseDurationSeconds": 15,
            "acquireTime": "2026-11-26T10:00:00.000000Z",
            "renewTime": "2026-11-26T10:00:00.000000Z",
        },
    }))
    .unwrap();
    leases
        .create(&kube::api::PostParams::default(), &ghost)
        .await
        .unwrap();
    let clock = ManualClock::new("2026-11-25T10:00:00Z".parse().unwrap());
    let b = elector(&client, "pod-b", &clock);
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "first seen: its holder may be alive"
    );
    clock.advance(SignedDuration::from_secs(14));
    assert!(!b.try_acquire_or_renew().await.unwrap());
    clock.advance(SignedDuration::from_secs(1));
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "a renewTime a day ahead does not keep a dead holder's Lease"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn a_holder_whose_clock_is_behind_keeps_the_lease_while_it_renews() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let client = emulator.client().await;
    let behind = ManualClock::new("2026-11-24T10:00:00Z".parse().unwrap());
    let right = ManualClock::new("2026-11-25T10:00:00Z".parse().unwrap());
    let a = elector(&client, "pod-a", &behind);
    let b = elector(&client, "pod-b", &right);
    assert!(a.try_acquire_or_renew().await.unwrap());
    for _ in 0..6 {
        assert!(
            !b.try_acquire_or_renew().await.unwrap(),
            "a renewTime a day old that keeps changing is a live holder"
        );
        behind.advance(SignedDuration::from_secs(5));
        right.advance(SignedDuration::from_secs(5));
        assert!(a.try_acquire_or_renew().await.unwrap());
    }
    right.set("2026-11-27T10:00:00Z".parse().unwrap());
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "nor does a step of the standby's wall clock expire it"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn released_lease_is_taken_by_the_standby_at_once() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let client = emulator.client().await;
    let clock = ManualClock::new("2026-11-25T10:00:00Z".parse().unwrap());
    let a = elector(&client, "pod-a", &clock);
    let b = elector(&client, "pod-b", &clock);
    assert!(a.try_acquire_or_renew().await.unwrap());
    a.release().await.unwrap();
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "no need to wait for expiry"
    );
    emulator.shutdown().await;
}

#[tokio::test]
async fn campaign_reports_leadership_and_gives_it_up_on_shutdown() {
    let emulator = Emulator::start(EmulatorOptions::default()).await.unwrap();
    let client = emulator.client().await;
    let clock = ManualClock::new("2026-11-25T10:00:00Z".parse().unwrap());
    let (leader_tx, mut leader_rx) = watch::channel(false);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let campaign = tokio::spawn(
        elector(&client, "pod-a", &clock).run(leader_tx, async move {
            let _ = stop_rx.await;
        }),
    );
    tokio::time::timeout(Duration::from_secs(10), leader_rx.wait_for(|l| *l))
        .await
        .expect("leadership is reported")
        .unwrap();
    stop_tx.send(()).unwrap();
    campaign.await.unwrap();
    assert!(!*leader_rx.borrow(), "leadership ends with the campaign");
    let standby = elector(&client, "pod-b", &clock);
    assert!(
        standby.try_acquire_or_renew().await.unwrap(),
        "the Lease was released"
    );
    emulator.shutdown().await;
}
