//! Emulator figures: can the Kubernetes API emulator carry the operator's benchmarks?
//! Loads N Secrets (default 10,000), times full lists, fans watch events out to W watchers
//! (default 50) and reports resident memory. Prints figures; asserts nothing.
//!
//! `cargo bench --bench emulator` (env: EMU_SECRETS, EMU_WATCHERS, EMU_EVENTS).

mod support;

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, TryStreamExt, future::join_all};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api,
    api::{ListParams, ObjectMeta, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use kube_emulator::{Emulator, EmulatorOptions};
use support::{env_usize, percentile};
use tokio::sync::Barrier;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn secret(name: String, i: usize) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([(
                "bench/group".to_string(),
                (i % 10).to_string(),
            )])),
            ..ObjectMeta::default()
        },
        // A token-sized payload, like the operator's Secrets.
        data: Some(BTreeMap::from([(
            "accessToken".to_string(),
            ByteString(vec![b'x'; 200]),
        )])),
        ..Secret::default()
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_usize("EMU_SECRETS", 10_000);
    let watchers = env_usize("EMU_WATCHERS", 50);
    let events = env_usize("EMU_EVENTS", 200);
    let rss_start = rss_mib();

    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let client = emulator.client().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), "default");

    // Load: 8 writers in parallel.
    let started = Instant::now();
    let per = n.div_ceil(8);
    join_all((0..8).map(|w| {
        let api = api.clone();
        async move {
            for i in (w * per)..((w + 1) * per).min(n) {
                api.create(&PostParams::default(), &secret(format!("s-{i:05}"), i))
                    .await
                    .expect("create");
            }
        }
    }))
    .await;
    let load = started.elapsed();
    println!(
        "create  {n} Secrets: {:.2}s ({:.0}/s)",
        load.as_secs_f64(),
        n as f64 / load.as_secs_f64()
    );
    let rss_loaded = rss_mib();

    // Full list, repeated.
    let mut lists = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let list = api.list(&ListParams::default()).await.expect("list");
        assert_eq!(list.items.len(), n);
        lists.push(t.elapsed());
    }
    lists.sort();
    println!(
        "list    {n} Secrets (typed, kube-rs, full objects): min {:?}  median {:?}  max {:?}",
        lists[0],
        lists[lists.len() / 2],
        lists[lists.len() - 1]
    );
    let t = Instant::now();
    let meta = api
        .list_metadata(&ListParams::default())
        .await
        .expect("list metadata");
    println!(
        "list    {} Secrets metadata-only: {:?}",
        meta.items.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let selected = api
        .list(&ListParams::default().labels("bench/group=3"))
        .await
        .expect("list by label");
    println!(
        "list    by label selector ({} of {n}): {:?}",
        selected.items.len(),
        t.elapsed()
    );
    let t = Instant::now();
    let mut pages = 0;
    let mut seen = 0;
    let mut params = ListParams::default().limit(500);
    loop {
        let page = api.list(&params).await.expect("paged list");
        pages += 1;
        seen += page.items.len();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    println!(
        "list    paged (limit 500): {seen} objects in {pages} pages, {:?}",
        t.elapsed()
    );

    // Watch fan-out: W watchers on Secrets from "now"; time from each write until every
    // watcher has seen it.
    let barrier = Arc::new(Barrier::new(watchers + 1));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
    let mut tasks = Vec::new();
    for _ in 0..watchers {
        let api = api.clone();
        let tx = tx.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = watcher(api, watcher::Config::default().labels("bench/fanout=yes"))
                .applied_objects()
                .boxed();
            barrier.wait().await;
            while let Ok(Some(obj)) = stream.try_next().await {
                if tx
                    .send((obj.metadata.name.unwrap_or_default(), Instant::now()))
                    .is_err()
                {
                    break;
                }
            }
        }));
    }
    barrier.wait().await;
    // Let every watcher finish its initial (empty) list and open its watch.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_watching = rss_mib();
    let mut sent = BTreeMap::new();
    let started = Instant::now();
    for i in 0..events {
        let mut s = secret(format!("fanout-{i:04}"), i);
        s.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert("bench/fanout".into(), "yes".into());
        sent.insert(format!("fanout-{i:04}"), Instant::now());
        api.create(&PostParams::default(), &s)
            .await
            .expect("create");
    }
    let mut seen: BTreeMap<String, (usize, Instant)> = BTreeMap::new();
    let expected = events * watchers;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut received = 0;
    while received < expected && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some((name, at))) => {
                received += 1;
                let e = seen.entry(name).or_insert((0, at));
                e.0 += 1;
                e.1 = e.1.max(at);
            }
            _ => break,
        }
    }
    let total = started.elapsed();
    let mut latencies: Vec<Duration> = seen
        .iter()
        .filter(|(_, (count, _))| *count == watchers)
        .map(|(name, (_, last))| last.duration_since(sent[name]))
        .collect();
    latencies.sort();
    println!(
        "watch   fan-out to {watchers} watchers: {received}/{expected} deliveries in {:.2}s ({:.0} events/s delivered)",
        total.as_secs_f64(),
        received as f64 / total.as_secs_f64()
    );
    println!(
        "watch   write → seen by all {watchers}: p50 {:?}  p99 {:?}  max {:?}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or_default()
    );
    println!(
        "memory  RSS of this process (emulator + clients): start {rss_start:.0} MiB, after {n} Secrets {rss_loaded:.0} MiB, with {watchers} watchers {rss_watching:.0} MiB"
    );
    for t in tasks {
        t.abort();
    }
    emulator.shutdown().await;
}
