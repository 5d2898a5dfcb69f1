//! Apply-to-Secret latency: from `create ClearApiClient` answered by the API server to the
//! operator's token Secret appearing in a watch, over N resources (default 200), on the
//! emulator + simulator with the real operator in-process. Also counts Clear calls (must
//! equal N) and reports the total. Prints figures; asserts nothing about time.
//!
//! Then BENCH_PACED more, one at a time, for the latency of a lone apply.
//!
//! `cargo bench --bench apply_to_secret` (env: BENCH_RESOURCES, BENCH_PACED, BENCH_CONCURRENCY).

mod support;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use clear_operator::{
    cli::RunArgs,
    dev::install_crd,
    operator,
    resource::{ClearApiClient, MANAGED_BY_LABEL, MANAGED_BY_VALUE},
};
use clear_sandbox::{ClientConfig, Sandbox, SandboxConfig};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use kube_emulator::{Emulator, EmulatorOptions};
use support::{bench_client, client_secret, env_usize, percentile};
use tokio_util::sync::CancellationToken;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_usize("BENCH_RESOURCES", 200);
    // Then this many more, one at a time: the latency of a lone apply, without a queue.
    let paced = env_usize("BENCH_PACED", 50);
    let total_clients = n + paced;
    let concurrency = env_usize(
        "BENCH_CONCURRENCY",
        usize::from(clear_operator::cli::DEFAULT_CONCURRENCY),
    ) as u16;
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let secrets_of = |i: usize| format!("bench-secret-{i:04}");
    let sandbox = Sandbox::start(SandboxConfig::new(
        (0..total_clients)
            .map(|i| {
                ClientConfig::new(secrets_of(i), "bench-ws")
                    .with_products(["GST"])
                    .with_lifetime(Duration::from_secs(3600))
            })
            .collect(),
    ))
    .await
    .expect("simulator starts");
    let client = emulator.client().await;
    install_crd(&client, Duration::from_secs(10))
        .await
        .expect("CRD installs");

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    for i in 0..total_clients {
        let s = client_secret(format!("client-secret-{i:04}"), secrets_of(i));
        secrets
            .create(&PostParams::default(), &s)
            .await
            .expect("client secret");
    }

    let shutdown = CancellationToken::new();
    let operator = tokio::spawn(operator::run(
        client.clone(),
        RunArgs {
            namespaces: Vec::new(),
            clear: clear_operator::cli::ClearAccessArgs {
                allowed_base_urls: vec![
                    clear_operator::clear::parse_base_url(sandbox.url()).expect("simulator URL"),
                ],
                no_documented_base_urls: true,
                allow_http: true,
                clear_timeout_secs: 10,
                ..Default::default()
            },
            concurrency,
            metrics_addr: "127.0.0.1:0".parse().unwrap(),
            no_leader_election: true,
            ..RunArgs::default()
        },
        shutdown.clone(),
    ));

    // Record when each token Secret first appears.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let watch_api = secrets.clone();
    let watch_task = tokio::spawn(async move {
        let cfg =
            watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
        let mut stream = watcher(watch_api, cfg).applied_objects().boxed();
        while let Ok(Some(s)) = stream.try_next().await {
            if tx
                .send((s.metadata.name.unwrap_or_default(), Instant::now()))
                .is_err()
            {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), "default");
    let base_url = sandbox.url().to_string();
    let resource = |i: usize| {
        bench_client(
            &format!("bench-{i:04}"),
            format!("client-secret-{i:04}"),
            base_url.clone(),
        )
    };
    let mut created = BTreeMap::new();
    let started = Instant::now();
    for i in 0..n {
        let cac = resource(i);
        cacs.create(&PostParams::default(), &cac)
            .await
            .expect("create ClearApiClient");
        created.insert(cac.metadata.name.unwrap(), Instant::now());
    }
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < n && Instant::now() < deadline {
        if let Ok(Some((name, at))) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await
        {
            seen.entry(name).or_insert(at);
        } else {
            break;
        }
    }
    let total = started.elapsed();
    let mut latencies: Vec<Duration> = seen
        .iter()
        .filter_map(|(name, at)| created.get(name).map(|c| at.saturating_duration_since(*c)))
        .collect();
    latencies.sort();

    let mut lone = Vec::new();
    for i in n..total_clients {
        let cac = resource(i);
        let name = cac.metadata.name.clone().unwrap();
        cacs.create(&PostParams::default(), &cac)
            .await
            .expect("create ClearApiClient");
        let at_create = Instant::now();
        while let Ok(Some((seen_name, at))) =
            tokio::time::timeout(Duration::from_secs(10), rx.recv()).await
        {
            if seen_name == name {
                lone.push(at.saturating_duration_since(at_create));
                break;
            }
        }
    }
    lone.sort();
    // Let the operator settle, then count calls: a second look must have minted nothing more.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let calls = sandbox.total_call_counts().total;
    println!("resources            {n} (operator concurrency {concurrency})");
    println!(
        "secrets written      {}/{n} in {:.2}s",
        seen.len(),
        total.as_secs_f64()
    );
    if !latencies.is_empty() {
        println!(
            "apply → Secret       p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.9),
            percentile(&latencies, 0.99),
            latencies.last().unwrap()
        );
    }
    if !lone.is_empty() {
        println!(
            "lone apply → Secret  p50 {:?}  p99 {:?}  max {:?}  ({} resources, one at a time)",
            percentile(&lone, 0.5),
            percentile(&lone, 0.99),
            lone.last().unwrap(),
            lone.len()
        );
    }
    println!("Clear calls          {calls} (expected {total_clients})");
    shutdown.cancel();
    let _ = operator.await;
    watch_task.abort();
    sandbox.shutdown().await.ok();
    emulator.shutdown().await;
}
