//! Scale: N ClearApiClients, each with its own client secret, Clear answering in 100 ms,
//! the release binary of the operator as a separate process against the in-process
//! emulator. For each N: time from the operator's start until every resource is Ready,
//! the Clear calls made (must be N) and the operator's peak RSS (VmHWM). After the largest
//! N, the operator is restarted (SIGTERM, then a new process): Clear calls made by the new
//! process (must be 0) and the time until it has reconciled every resource. Prints figures;
//! asserts nothing about time.
//!
//! The operator runs with its shipped defaults (those of a default install), except for
//! what the environment sets: `cargo bench --bench scale` (env: BENCH_SIZES=1000,5000,10000,
//! BENCH_CONCURRENCY: the operator's `--concurrency`, default the operator's own;
//! BENCH_CLEAR_LATENCY_MS=100).

mod support;

use std::{
    collections::HashSet,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clear_operator::{cli::DEFAULT_CONCURRENCY, dev::install_crd, resource::ClearApiClient};
use clear_sandbox::{ClientConfig, Fault, FaultScope, Sandbox, SandboxConfig};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use kube_emulator::{Emulator, EmulatorOptions};
use support::{bench_client, client_secret, env_usize};

const BIN: &str = env!("CARGO_BIN_EXE_clear-operator");

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,5000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    // NB: unset, the operator is started without the flag, so its own default applies.
    let concurrency = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    let latency = Duration::from_millis(env_usize("BENCH_CLEAR_LATENCY_MS", 100) as u64);
    println!(
        "operator concurrency {}, Clear latency {latency:?}, one client secret per resource",
        concurrency.map_or_else(
            || format!("{DEFAULT_CONCURRENCY} (its default)"),
            |c| c.to_string()
        )
    );
    let last = sizes.last().copied().unwrap_or(0);
    for n in sizes {
        run_size(n, concurrency, latency, n == last).await;
    }
}

async fn run_size(n: usize, concurrency: Option<usize>, latency: Duration, restart: bool) {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let secret_of = |i: usize| format!("scale-secret-{i:05}");
    let sandbox = Sandbox::start(SandboxConfig::new(
        (0..n)
            .map(|i| {
                ClientConfig::new(secret_of(i), "bench-ws")
                    .with_products(["GST"])
                    .with_lifetime(Duration::from_secs(24 * 3600))
            })
            .collect(),
    ))
    .await
    .expect("simulator starts");
    sandbox.inject_fault(FaultScope::Global, Fault::Delay(latency), u32::MAX);
    let client = emulator.client().await;
    install_crd(&client, Duration::from_secs(10))
        .await
        .expect("CRD installs");
    let kubeconfig = std::env::temp_dir().join(format!("clear-operator-scale-{n}.kubeconfig"));
    std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).expect("kubeconfig written");

    let setup = Instant::now();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "default");
    let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), "default");
    let base_url = sandbox.url().to_string();
    stream::iter(0..n)
        .map(|i| {
            let (secrets, cacs, base_url) = (secrets.clone(), cacs.clone(), base_url.clone());
            let value = secret_of(i);
            async move {
                let s = client_secret(format!("client-secret-{i:05}"), value);
                secrets
                    .create(&PostParams::default(), &s)
                    .await
                    .expect("client secret");
                let cac = bench_client(
                    &format!("scale-{i:05}"),
                    format!("client-secret-{i:05}"),
                    base_url,
                );
                cacs.create(&PostParams::default(), &cac)
                    .await
                    .expect("create ClearApiClient");
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let setup = setup.elapsed();

    // Count Ready resources from a watch (names, so relists do not double count).
    let ready: Arc<Mutex<HashSet<String>>> = Arc::default();
    let watch = {
        let ready = ready.clone();
        let cacs = cacs.clone();
        tokio::spawn(async move {
            let mut events = watcher(cacs, watcher::Config::default())
                .applied_objects()
                .boxed();
            while let Ok(Some(cac)) = events.try_next().await {
                let is_ready = cac.status.as_ref().is_some_and(|s| {
                    s.conditions
                        .iter()
                        .any(|c| c.type_ == "Ready" && c.status == "True")
                });
                if is_ready {
                    ready
                        .lock()
                        .unwrap()
                        .insert(cac.metadata.name.unwrap_or_default());
                }
            }
        })
    };

    let started = Instant::now();
    let mut operator = start_operator(&kubeconfig, concurrency, &base_url);
    let deadline = Instant::now() + Duration::from_secs(600);
    while ready.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let to_ready = started.elapsed();
    let ready_count = ready.lock().unwrap().len();
    let peak = peak_rss_kib(operator.id());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = sandbox.total_call_counts().total;
    println!(
        "N={n:>6}  setup {:>6.1}s  all Ready in {:>6.1}s ({ready_count}/{n})  Clear calls {calls}  operator peak RSS {:.1} MiB",
        setup.as_secs_f64(),
        to_ready.as_secs_f64(),
        peak as f64 / 1024.0
    );

    if restart {
        stop(&mut operator);
        emulator.requests().reset();
        let before = sandbox.total_call_counts().total;
        let started = Instant::now();
        let mut operator = start_operator(&kubeconfig, concurrency, &base_url);
        let deadline = Instant::now() + Duration::from_secs(600);
        let mut reconciled = 0;
        while Instant::now() < deadline {
            let seen: HashSet<String> = emulator
                .requests()
                .entries()
                .into_iter()
                .filter(|e| {
                    e.verb == "get" && e.resource == "clearapiclients" && e.subresource.is_none()
                })
                .filter_map(|e| e.name)
                .collect();
            reconciled = seen.len();
            if reconciled >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let settled = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let calls = sandbox.total_call_counts().total - before;
        let peak = peak_rss_kib(operator.id());
        println!(
            "restart over N={n}: every resource reconciled in {:.1}s ({reconciled}/{n}), Clear calls {calls}, peak RSS {:.1} MiB",
            settled.as_secs_f64(),
            peak as f64 / 1024.0
        );
        stop(&mut operator);
    } else {
        stop(&mut operator);
    }
    watch.abort();
    let _ = std::fs::remove_file(&kubeconfig);
    let _ = sandbox.shutdown().await;
    emulator.shutdown().await;
}

/// `allowed`: the simulator's URL, the only base URL this operator may call.
/// `concurrency`: `--concurrency`, or none for the operator's default.
fn start_operator(
    kubeconfig: &std::path::Path,
    concurrency: Option<usize>,
    allowed: &str,
) -> Child {
    let concurrency = concurrency.map(|c| c.to_string());
    Command::new(BIN)
        .args([
            "run",
            "--allow-http",
            "--no-leader-election",
            "--metrics-addr",
            "127.0.0.1:0",
        ])
        .args(
            concurrency
                .iter()
                .flat_map(|c| ["--concurrency", c.as_str()]),
        )
        .env_remove("CLEAR_OPERATOR_CONCURRENCY")
        // BENCH_OPERATOR_ENV_X=V sets X=V for the operator only (allocator settings, a heap
        // profiler's LD_PRELOAD) and not for this process, which runs the emulator.
        .envs(std::env::vars().filter_map(|(key, value)| {
            Some((key.strip_prefix("BENCH_OPERATOR_ENV_")?.to_string(), value))
        }))
        .env("KUBECONFIG", kubeconfig)
        .env("CLEAR_OPERATOR_ALLOWED_BASE_URLS", allowed)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("operator starts")
}

fn stop(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Peak resident set size of a process, in KiB (Linux `VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
