//! Outage of Clear at scale (issue 14): N ClearApiClients Ready, then Clear answers 500 to
//! every call for a while, then recovers. The release binary of the operator runs as its own
//! process (defaults: `--concurrency 64`), against the in-process kube-emulator and Clear
//! simulator, in real time. Tokens live a few minutes, so that every resource needs a new
//! one during the outage (renewal due, then expiry). Prints, per minute of the outage: the
//! operator's resident memory (VmRSS) and calls to Clear; then: peak RSS during the outage
//! and its growth after the first minute, calls during the outage, the time from Clear's
//! return until every resource is Ready again, and the call rate at release (per second:
//! peak and mean). Asserts nothing about time.
//!
//! Env: BENCH_OUTAGE_N=10000, BENCH_OUTAGE_SECS=600 (the outage), BENCH_OUTAGE_LIFETIME_SECS=
//! 300 (tokens' life), BENCH_CLEAR_LATENCY_MS=100, BENCH_DEADLINE_SECS=900 (per wait).
//!
//!   cargo bench --bench outage
//!   BENCH_OUTAGE_N=1000 BENCH_OUTAGE_SECS=120 cargo bench --bench outage   # a quick look

mod support;

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clear_operator::{dev::install_crd, resource::ClearApiClient};
use clear_sandbox::{ClientConfig, Fault, FaultScope, Sandbox, SandboxConfig, SandboxHandle};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use kube_emulator::{Emulator, EmulatorOptions};
use support::{bench_client, client_secret, env_usize, load, memory_kib, stop};

const BIN: &str = env!("CARGO_BIN_EXE_clear-operator");
const NAMESPACE: &str = "default";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n = env_usize("BENCH_OUTAGE_N", 10_000);
    let outage = Duration::from_secs(env_usize("BENCH_OUTAGE_SECS", 600) as u64);
    let lifetime = Duration::from_secs(env_usize("BENCH_OUTAGE_LIFETIME_SECS", 300) as u64);
    let latency = Duration::from_millis(env_usize("BENCH_CLEAR_LATENCY_MS", 100) as u64);
    let deadline = Duration::from_secs(env_usize("BENCH_DEADLINE_SECS", 900) as u64);
    println!(
        "outage bench: N={n}, Clear down {}s, tokens live {}s, Clear latency {latency:?}; {} cores, load {}",
        outage.as_secs(),
        lifetime.as_secs(),
        std::thread::available_parallelism().map_or(0, |p| p.get()),
        load()
    );

    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let sandbox = start_sandbox(n, lifetime).await;
    sandbox.inject_fault(FaultScope::Global, Fault::Delay(latency), u32::MAX);
    let client = emulator.client().await;
    install_crd(&client, Duration::from_secs(10))
        .await
        .expect("CRD installs");
    let kubeconfig = std::env::temp_dir().join(format!("clear-operator-outage-{n}.kubeconfig"));
    std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).expect("kubeconfig written");
    let base_url = sandbox.url().to_string();
    create_resources(&client, n, &base_url).await;
    let ready = ReadyNow::watch(&client);

    let started = Instant::now();
    let mut operator = start_operator(&kubeconfig, &base_url);
    let pid = operator.id();
    wait_until(deadline, || ready.count() >= n).await;
    println!(
        "before: {}/{n} Ready in {:.1}s, {} calls, RSS {:.1} MiB (peak {:.1})",
        ready.count(),
        started.elapsed().as_secs_f64(),
        sandbox.total_call_counts().total,
        mib(memory_kib(pid, "VmRSS:")),
        mib(memory_kib(pid, "VmHWM:"))
    );

    // The outage: every call answered 500 (nothing minted).
    sandbox.clear_faults();
    sandbox.inject_fault(FaultScope::Global, Fault::ServerError, u32::MAX);
    let calls_before = sandbox.total_call_counts().total;
    let down = Instant::now();
    let (mut peak, mut at_first_minute, mut peak_after_first) = (0u64, 0u64, 0u64);
    let mut second = 0u64;
    while down.elapsed() < outage {
        tokio::time::sleep(Duration::from_secs(1)).await;
        second += 1;
        let rss = memory_kib(pid, "VmRSS:");
        peak = peak.max(rss);
        if second == 60 {
            at_first_minute = rss;
        } else if second > 60 {
            peak_after_first = peak_after_first.max(rss);
        }
        if second.is_multiple_of(60) {
            println!(
                "  outage +{:>3}s: RSS {:>6.1} MiB, calls during the outage {:>5}, Ready {:>6}/{n}",
                second,
                mib(rss),
                sandbox.total_call_counts().total - calls_before,
                ready.count()
            );
        }
    }
    let during = sandbox.total_call_counts().total - calls_before;

    // Clear is back.
    sandbox.clear_faults();
    sandbox.inject_fault(FaultScope::Global, Fault::Delay(latency), u32::MAX);
    let back = Instant::now();
    let calls_at_return = sandbox.total_call_counts().total;
    let mut per_second = Vec::new();
    let mut last = calls_at_return;
    while ready.count() < n && back.elapsed() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = sandbox.total_call_counts().total;
        per_second.push(now - last);
        last = now;
    }
    let recovered = back.elapsed();
    let released_calls = sandbox.total_call_counts().total - calls_at_return;
    let busiest = per_second.iter().copied().max().unwrap_or(0);
    println!(
        "outage of {}s: peak RSS {:.1} MiB (at +60s {:.1} MiB, highest after the first minute {:.1} MiB); calls during the outage {during}",
        outage.as_secs(),
        mib(peak),
        mib(at_first_minute),
        mib(peak_after_first)
    );
    println!(
        "after Clear's return: {}/{n} Ready in {:.1}s; {released_calls} calls, at most {busiest}/s, mean {:.1}/s; operator peak RSS overall {:.1} MiB; load {}",
        ready.count(),
        recovered.as_secs_f64(),
        released_calls as f64 / recovered.as_secs_f64().max(1.0),
        mib(memory_kib(pid, "VmHWM:")),
        load()
    );

    stop(&mut operator);
    let _ = std::fs::remove_file(&kubeconfig);
    let _ = sandbox.shutdown().await;
    emulator.shutdown().await;
}

/// The Clear stand-in: one client per resource, tokens living `lifetime`.
async fn start_sandbox(n: usize, lifetime: Duration) -> SandboxHandle {
    Sandbox::start(SandboxConfig::new(
        (0..n)
            .map(|i| {
                ClientConfig::new(secret_of(i), "bench-ws")
                    .with_products(["GST"])
                    .with_lifetime(lifetime)
            })
            .collect(),
    ))
    .await
    .expect("simulator starts")
}

fn secret_of(i: usize) -> String {
    format!("outage-secret-{i:05}")
}

async fn create_resources(client: &Client, n: usize, base_url: &str) {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..n)
        .map(|i| {
            let (secrets, cacs) = (secrets.clone(), cacs.clone());
            let cac = bench_client(
                &format!("outage-{i:05}"),
                format!("outage-client-secret-{i:05}"),
                base_url.to_string(),
            );
            async move {
                let s = client_secret(format!("outage-client-secret-{i:05}"), secret_of(i));
                secrets
                    .create(&PostParams::default(), &s)
                    .await
                    .expect("secret");
                cacs.create(&PostParams::default(), &cac)
                    .await
                    .expect("resource");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

/// Which resources are Ready now (the last state the watch delivered for each).
#[derive(Clone)]
struct ReadyNow(Arc<Mutex<HashMap<String, bool>>>);

impl ReadyNow {
    fn watch(client: &Client) -> Self {
        let state = Self(Arc::default());
        let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), NAMESPACE);
        let writer = state.clone();
        tokio::spawn(async move {
            let mut events = watcher(cacs, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Ok(Some(cac)) = events.try_next().await {
                let ready = cac.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                writer
                    .0
                    .lock()
                    .unwrap()
                    .insert(cac.metadata.name.unwrap_or_default(), ready);
            }
        });
        state
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap().values().filter(|r| **r).count()
    }
}

async fn wait_until(deadline: Duration, done: impl Fn() -> bool) {
    let until = Instant::now() + deadline;
    while !done() && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn start_operator(kubeconfig: &std::path::Path, allowed: &str) -> Child {
    Command::new(BIN)
        .args([
            "run",
            "--allow-http",
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .env_remove("CLEAR_OPERATOR_CONCURRENCY")
        .env("KUBECONFIG", kubeconfig)
        .env("CLEAR_OPERATOR_ALLOWED_BASE_URLS", allowed)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("operator starts")
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
