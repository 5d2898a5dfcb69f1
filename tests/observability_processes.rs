//! What an operator process exports about itself, scraped from its own HTTP server as
//! Prometheus and the kubelet would: per-resource series only while it leads, and `/healthz`
//! failing when a loop is wedged, not merely when the API server is slow. The binary runs as
//! a real process against the emulator and the Clear simulator.

mod process_kit;

use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{PostParams, ResourceExt};
use process_kit::{LEASE, Replica, World};

/// The per-resource series (see `src/metrics.rs`); all carry `name="billing"` here.
const PER_RESOURCE: [&str; 3] = [
    "clear_operator_client_ready{",
    "clear_operator_token_expiry_timestamp_seconds{",
    "clear_operator_token_never_expires{",
];

/// Status code and body of a GET on the replica's server.
async fn get(base: &str, path: &str) -> (u16, String) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
        .get(format!("{base}{path}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

fn per_resource_lines(metrics: &str) -> Vec<&str> {
    metrics
        .lines()
        .filter(|l| PER_RESOURCE.iter().any(|p| l.starts_with(p)))
        .collect()
}

/// Writes the Lease as held by `holder` (renewed now, for an hour), or as free; retries
/// when the replica's own renewal wins a race.
async fn set_lease_holder(world: &World, holder: Option<&str>) {
    let leases = &world.leases;
    for _ in 0..50 {
        let mut lease = leases.get(LEASE).await.expect("the Lease exists");
        let spec = lease.spec.get_or_insert_with(Default::default);
        let now = MicroTime(jiff::Timestamp::now());
        spec.holder_identity = holder.map(str::to_string);
        spec.renew_time = holder.map(|_| now.clone());
        spec.acquire_time = holder.map(|_| now);
        spec.lease_duration_seconds = Some(3600);
        match leases
            .replace(&lease.name_any(), &PostParams::default(), &lease)
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => panic!("Lease write failed: {e}"),
        }
    }
    panic!("the Lease could not be written");
}

/// The leader exports the series, then loses the Lease to another holder: the series are
/// gone from its `/metrics` (the new leader exports them), it stays live and a standby, and
/// when the Lease is free again it leads again and exports them, minting nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_resource_series_leave_the_metrics_when_another_replica_takes_the_lease() {
    let world = World::start("cs-observe-lease-0001").await;
    let replica = Replica::start(&world, "replica-a", &["--lease-duration-secs", "3"]);
    let base = replica.base().await;
    world.wait_until(
        "the leader exports the resource's series",
        Duration::from_secs(60),
        &[&replica],
        || async {
            let (_, metrics) = get(&base, "/metrics").await;
            metrics.contains("clear_operator_leader 1")
                && metrics.contains(r#"clear_operator_client_ready{namespace="default",name="billing"} 1"#)
                && metrics.contains(
                    r#"clear_operator_token_expiry_timestamp_seconds{namespace="default",name="billing"}"#,
                )
        },
    )
    .await;
    assert_eq!(world.calls(), 1);

    set_lease_holder(&world, Some("another-replica")).await;
    world
        .wait_until(
            "the replica notices it no longer leads",
            Duration::from_secs(30),
            &[&replica],
            || async {
                get(&base, "/metrics")
                    .await
                    .1
                    .contains("clear_operator_leader 0")
            },
        )
        .await;
    let (_, metrics) = get(&base, "/metrics").await;
    assert_eq!(
        per_resource_lines(&metrics),
        Vec::<&str>::new(),
        "a replica that does not lead exports no per-resource series"
    );
    assert!(
        metrics.contains(r#"clear_operator_mints_total{result="issued"} 1"#),
        "process-wide counters stay: {metrics}"
    );
    assert_eq!(get(&base, "/healthz").await.0, 200, "a standby is live");
    assert_eq!(get(&base, "/readyz").await.0, 200, "a standby is ready");
    assert_eq!(
        world.holder().await.as_deref(),
        Some("another-replica"),
        "a Lease held by someone else is not taken back before it expires"
    );

    set_lease_holder(&world, None).await;
    world
        .wait_until(
            "leading again, the replica exports the series again",
            Duration::from_secs(30),
            &[&replica],
            || async {
                let (_, metrics) = get(&base, "/metrics").await;
                metrics.contains("clear_operator_leader 1")
                    && metrics.contains(
                        r#"clear_operator_client_ready{namespace="default",name="billing"} 1"#,
                    )
            },
        )
        .await;
    assert_eq!(world.calls(), 1, "a new term mints nothing");
    drop(replica);
    world.shutdown().await;
}

/// A reconcile stuck on a Kubernetes request that never answers in time (here: held 10 s,
/// past a 2 s stall deadline) fails `/healthz`, so the kubelet would restart the pod; once
/// the request answers and the reconcile ends, `/healthz` is 200 again and stays so while
/// the controller is idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_a_reconcile_is_stalled_and_recovers_when_it_ends() {
    let world = World::start("cs-observe-stall-0001").await;
    // NB: the reconcile reads the client secret with a GET (Secrets are watched as metadata
    // only); nothing else GETs a Secret.
    world
        .emulator
        .faults()
        .delay_next("get", "secrets", 1, Duration::from_secs(10));
    let replica = Replica::start(
        &world,
        "replica-a",
        &["--no-leader-election", "--reconcile-stall-secs", "2"],
    );
    let base = replica.base().await;
    let started = Instant::now();
    world
        .wait_until(
            "/healthz fails while the reconcile is stalled",
            Duration::from_secs(9),
            &[&replica],
            || async { get(&base, "/healthz").await.0 == 503 },
        )
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the stall was seen before the held request answered"
    );
    assert!(!world.ready().await, "the stalled reconcile wrote nothing");
    assert_eq!(world.calls(), 0);

    world
        .wait_until(
            "the reconcile ends and /healthz is 200 again",
            Duration::from_secs(30),
            &[&replica],
            || async { get(&base, "/healthz").await.0 == 200 && world.ready().await },
        )
        .await;
    assert_eq!(world.calls(), 1);
    // Idle from here on: an idle controller is never stalled, however long it waits.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(get(&base, "/healthz").await.0, 200, "{}", replica.output());
    }
    drop(replica);
    world.shutdown().await;
}

/// Lease requests that hang are not a stall of the lease loop: each round gives up at the
/// renew deadline, so the leader steps down (and drops its per-resource series) while
/// `/healthz` stays 200 throughout, past the loop's stall deadline (3 × the Lease duration);
/// when the API server answers again it leads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_its_lease_steps_down_but_stays_live() {
    let world = World::start("cs-observe-cutoff-0001").await;
    let replica = Replica::start(&world, "replica-a", &["--lease-duration-secs", "3"]);
    let base = replica.base().await;
    world
        .wait_until(
            "the leader exports the resource's series",
            Duration::from_secs(60),
            &[&replica],
            || async {
                get(&base, "/metrics").await.1.contains(
                    r#"clear_operator_client_ready{namespace="default",name="billing"} 1"#,
                )
            },
        )
        .await;

    world
        .emulator
        .faults()
        .delay_next("*", "leases", 1000, Duration::from_secs(3600));
    let cut_off = Instant::now();
    let mut stepped_down = None;
    // The lease loop's stall deadline is 9 s (3 × 3 s): watch for longer than that.
    while cut_off.elapsed() < Duration::from_secs(12) {
        let (live, _) = get(&base, "/healthz").await;
        assert_eq!(
            live,
            200,
            "hanging Lease requests are no stall; output:\n{}",
            replica.output()
        );
        let (_, metrics) = get(&base, "/metrics").await;
        if stepped_down.is_none() && metrics.contains("clear_operator_leader 0") {
            assert_eq!(per_resource_lines(&metrics), Vec::<&str>::new());
            stepped_down = Some(cut_off.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        stepped_down.is_some(),
        "the leader stepped down once it could not renew; output:\n{}",
        replica.output()
    );

    world.emulator.faults().clear();
    world
        .wait_until(
            "leading again once the Lease answers",
            Duration::from_secs(30),
            &[&replica],
            || async {
                get(&base, "/metrics").await.1.contains(
                    r#"clear_operator_client_ready{namespace="default",name="billing"} 1"#,
                )
            },
        )
        .await;
    assert_eq!(world.calls(), 1);
    drop(replica);
    world.shutdown().await;
}
