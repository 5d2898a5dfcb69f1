//! Leader election on a Lease in the emulator: one holder at a time, takeover only after
//! expiry, release on shutdown, and a standby that keeps trying.

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
    clock.advance(SignedDuration::from_secs(14));
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "one second before expiry it is still held"
    );
    clock.advance(SignedDuration::from_secs(1));
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "an expired Lease is taken over"
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
