//! Scale: N ClearApiClients, each with its own client secret, Clear answering in 100 ms,
//! the release binary of the operator as a separate process. For each N: time from the
//! operator's start until every resource is Ready, the Clear calls made (must be N) and the
//! operator's peak RSS (VmHWM). After the largest N, the operator is restarted (SIGTERM,
//! then a new process): Clear calls made by the new process (must be 0) and the time until
//! it has reconciled every resource. Prints figures; asserts nothing about time.
//!
//! Two targets (`BENCH_TARGET`, a comma list, default `emulator`):
//! - `real`: a fresh real control plane per size (`scripts/control-plane.sh up`: etcd,
//!   kube-apiserver, kube-controller-manager), the chart installed with `helm install` and
//!   its defaults, the operator run as the chart's ServiceAccount with the Deployment's own
//!   args and env (so RBAC and API Priority and Fairness apply as in a cluster). Also
//!   printed: the operator's API requests per new token by verb and resource from the audit
//!   log with the server's time for each, the requests in flight at once, the operator's
//!   TCP connections to the API server, CPU of every process, APF queueing and rejections,
//!   etcd latency. `scripts/bench-real-scale.sh` runs it (needs `scripts/install-tools.sh`
//!   for helm and the control plane's binary cache).
//! - `emulator`: the in-process kube-emulator, the operator with `--no-leader-election`.
//!
//! Env: BENCH_SIZES=1000,5000,10000; BENCH_CONCURRENCY (the operator's `--concurrency`,
//! emulator only: the real target runs what the chart passes, plus BENCH_HELM_SET, e.g.
//! `operator.concurrency=128,apiPriority.enabled=true`); BENCH_CLEAR_LATENCY_MS=100;
//! BENCH_DEADLINE_SECS=600 (per wait); BENCH_OPERATOR_BIN (real: the operator binary to run,
//! default the one this bench was built with); BENCH_PROFILE=1 (real: a 20 s CPU profile of
//! kube-apiserver (Go pprof) and of the operator (`perf record`) while tokens are minted,
//! kept under target/tmp with the top of each printed).

#[path = "support/real/mod.rs"]
mod real;
mod support;

use std::{
    collections::HashMap,
    io::{Read, Write},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clear_operator::{cli::DEFAULT_CONCURRENCY, dev::install_crd, resource::ClearApiClient};
use clear_sandbox::{ClientConfig, Fault, FaultScope, Sandbox, SandboxConfig, SandboxHandle};
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::PostParams,
    runtime::{WatchStreamExt, watcher},
};
use kube_emulator::{Emulator, EmulatorOptions};
use real::{audit, plane, probe};
use support::{bench_client, client_secret, env_usize, load, memory_kib, percentile, stop};

const BIN: &str = env!("CARGO_BIN_EXE_clear-operator");
const NAMESPACE: &str = "default";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| "1000,5000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let targets: Vec<String> = std::env::var("BENCH_TARGET")
        .unwrap_or_else(|_| "emulator".into())
        .split(',')
        .map(|t| t.trim().to_string())
        .collect();
    // NB: unset, the operator is started without the flag, so its own default applies.
    let concurrency = std::env::var("BENCH_CONCURRENCY")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    let latency = Duration::from_millis(env_usize("BENCH_CLEAR_LATENCY_MS", 100) as u64);
    println!(
        "Clear latency {latency:?}, one client secret per resource; emulator: operator concurrency {}",
        concurrency.map_or_else(
            || format!("{DEFAULT_CONCURRENCY} (its default)"),
            |c| c.to_string()
        )
    );
    let last = sizes.last().copied().unwrap_or(0);
    for target in &targets {
        for &n in &sizes {
            match target.as_str() {
                "real" => run_real(n, latency, n == last).await,
                "emulator" => run_emulator(n, concurrency, latency, n == last).await,
                other => panic!("BENCH_TARGET: unknown target {other} (real, emulator)"),
            }
        }
    }
}

fn deadline() -> Duration {
    Duration::from_secs(env_usize("BENCH_DEADLINE_SECS", 600) as u64)
}

/// The Clear stand-in: one client per resource, every answer delayed by `latency`.
async fn start_sandbox(n: usize, latency: Duration) -> SandboxHandle {
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
    sandbox
}

fn secret_of(i: usize) -> String {
    format!("scale-secret-{i:05}")
}

/// N client secrets and N ClearApiClients, 32 at a time; returns how long it took.
async fn create_resources(client: &Client, n: usize, base_url: &str) -> Duration {
    let setup = Instant::now();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..n)
        .map(|i| {
            let (secrets, cacs) = (secrets.clone(), cacs.clone());
            let base_url = base_url.to_string();
            async move {
                let s = client_secret(format!("client-secret-{i:05}"), secret_of(i));
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
    setup.elapsed()
}

/// When each resource was first seen Ready (by name, so relists do not double count).
type ReadyAt = Arc<Mutex<HashMap<String, Instant>>>;

fn watch_ready(client: &Client) -> (ReadyAt, tokio::task::JoinHandle<()>) {
    let ready: ReadyAt = Arc::default();
    let cacs: Api<ClearApiClient> = Api::namespaced(client.clone(), NAMESPACE);
    let task = {
        let ready = ready.clone();
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
                        .entry(cac.metadata.name.unwrap_or_default())
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    (ready, task)
}

/// Waits until `n` resources are Ready (or the deadline); returns the time to all Ready
/// and the p50 and p90 of each one's time to Ready, from `started`.
async fn wait_ready(ready: &ReadyAt, n: usize, started: Instant) -> (Duration, usize, String) {
    let deadline = Instant::now() + deadline();
    while ready.lock().unwrap().len() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let to_ready = started.elapsed();
    let mut times: Vec<Duration> = ready
        .lock()
        .unwrap()
        .values()
        .map(|t| t.saturating_duration_since(started))
        .collect();
    times.sort();
    let spread = format!(
        "p50 {:.1}s p90 {:.1}s",
        percentile(&times, 0.5).as_secs_f64(),
        percentile(&times, 0.9).as_secs_f64()
    );
    (to_ready, times.len(), spread)
}

/// The real control plane, the chart's defaults, the operator as its ServiceAccount.
async fn run_real(n: usize, latency: Duration, restart: bool) {
    println!(
        "== real control plane (kube-apiserver + etcd), N={n}; load average before: {}",
        load()
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-real-{n}"));
    let plane = plane::ControlPlane::up(&dir);
    let sandbox = start_sandbox(n, latency).await;
    let admin = plane::client_from(&plane.kubeconfig()).await;
    let deployment = plane::helm_install(&plane, &admin, sandbox.url()).await;
    println!(
        "    operator args (helm install, chart defaults): {}",
        plane::deployed_args(&deployment)
    );
    let (kubeconfig, user) = plane::service_account_kubeconfig(&plane, &admin).await;
    let setup = create_resources(&admin, n, sandbox.url()).await;
    let (ready, watch) = watch_ready(&admin);
    let api_port = plane
        .var("API_SERVER")
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let audit_log = plane.audit_log();
    let server = |pid: Option<u32>| pid.unwrap_or(0);
    let processes = |operator: u32| {
        vec![
            ("kube-apiserver", server(plane.pid("kube-apiserver"))),
            ("etcd", server(plane.pid("etcd"))),
            (
                "kube-controller-manager",
                server(plane.pid("kube-controller-manager")),
            ),
            ("operator", operator),
            ("bench+Clear", std::process::id()),
        ]
    };

    let metrics_before = probe::scrape(&admin).await;
    let audit_from = audit::len(&audit_log);
    let metrics_addr = free_loopback_addr();
    let started = Instant::now();
    let mut operator = plane::start_as_deployed(
        &deployment,
        &kubeconfig,
        &metrics_addr,
        &dir_log(&plane, "operator-1"),
    );
    let cpu_start = probe::cpu_mark(&processes(operator.id()));
    let sampler = probe::Sampler::start(admin.clone(), operator.id(), api_port.clone());
    let profile = if std::env::var("BENCH_PROFILE").as_deref() == Ok("1") {
        tokio::time::sleep(Duration::from_secs(5)).await;
        Some(start_profiles(&plane, operator.id(), n))
    } else {
        None
    };
    let (to_ready, ready_count, spread) = wait_ready(&ready, n, started).await;
    let cpu_end = probe::cpu_mark(&processes(operator.id()));
    let peaks = sampler.finish().await;
    let metrics_after = probe::scrape(&admin).await;
    let peak = memory_kib(operator.id(), "VmHWM:");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = sandbox.total_call_counts().total;
    println!(
        "N={n:>6}  real   setup {:>6.1}s  all Ready in {:>6.1}s ({ready_count}/{n}, {spread})  Clear calls {calls}  operator peak RSS {:.1} MiB  load after: {}",
        setup.as_secs_f64(),
        to_ready.as_secs_f64(),
        peak as f64 / 1024.0,
        load()
    );
    let requests = audit::requests_of(&audit_log, audit_from, &user);
    println!("    API requests of {user} until all Ready, per new token (Clear call):");
    audit::print_breakdown(&requests, calls as usize, "/token");
    let (most, mean, span) = audit::in_flight(&requests);
    println!(
        "    requests in flight at the server: at most {most}, mean {mean:.1} over {span:.1} s ({:.0} requests/s); operator TCP connections to the API server: at most {} (sampled)",
        requests.len() as f64 / span.max(1e-3),
        peaks.connections
    );
    print_operator_view(&metrics_addr).await;
    probe::print_cpu(&cpu_start, &cpu_end);
    probe::print_server_metrics(&metrics_before, &metrics_after, &peaks);
    if let Some(profile) = profile {
        finish_profiles(profile);
    }

    if restart {
        stop(&mut operator);
        let before = sandbox.total_call_counts().total;
        let audit_from = audit::len(&audit_log);
        let metrics_addr = free_loopback_addr();
        let started = Instant::now();
        let mut operator = plane::start_as_deployed(
            &deployment,
            &kubeconfig,
            &metrics_addr,
            &dir_log(&plane, "operator-2"),
        );
        let cpu_start = probe::cpu_mark(&processes(operator.id()));
        let reconciled = wait_reconciled(&metrics_addr, n).await;
        let settled = started.elapsed();
        let cpu_end = probe::cpu_mark(&processes(operator.id()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        let calls = sandbox.total_call_counts().total - before;
        let peak = memory_kib(operator.id(), "VmHWM:");
        println!(
            "restart over N={n} Ready (real): every resource reconciled in {:.1}s ({reconciled}/{n}), Clear calls {calls}, peak RSS {:.1} MiB",
            settled.as_secs_f64(),
            peak as f64 / 1024.0
        );
        let requests = audit::requests_of(&audit_log, audit_from, &user);
        println!("    API requests of the new process until settled (+2 s), per resource:");
        audit::print_breakdown(&requests, n, "/res");
        probe::print_cpu(&cpu_start, &cpu_end);
        stop(&mut operator);
    } else {
        stop(&mut operator);
    }
    watch.abort();
    let _ = sandbox.shutdown().await;
    drop(plane);
}

fn dir_log(plane: &plane::ControlPlane, name: &str) -> std::path::PathBuf {
    plane.dir.join("logs").join(format!("{name}.log"))
}

/// Reconciles the operator counted (`clear_operator_reconcile_total`, every outcome).
fn reconciles(metrics: &HashMap<String, f64>) -> f64 {
    metrics
        .iter()
        .filter(|(k, _)| k.starts_with("clear_operator_reconcile_total"))
        .map(|(_, v)| v)
        .sum()
}

/// Waits until the operator has counted `n` reconciles; returns how many it counted.
async fn wait_reconciled(metrics_addr: &str, n: usize) -> usize {
    let deadline = Instant::now() + deadline();
    loop {
        let count = reconciles(&probe::parse(&operator_metrics(metrics_addr).await)) as usize;
        if count >= n || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The operator's own view: reconciles by outcome and what one took, and Clear's latency.
async fn print_operator_view(metrics_addr: &str) {
    let metrics = probe::parse(&operator_metrics(metrics_addr).await);
    let mean = |name: &str| {
        let total = |suffix: &str| -> f64 {
            metrics
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{name}_{suffix}")))
                .map(|(_, v)| v)
                .sum()
        };
        let count = total("count");
        (count, total("sum") / count.max(1.0) * 1000.0)
    };
    let (count, reconcile_ms) = mean("clear_operator_reconcile_duration_seconds");
    let (calls, clear_ms) = mean("clear_operator_clear_request_duration_seconds");
    println!(
        "    operator's metrics: {count:.0} reconciles ({:.2} per token), mean {reconcile_ms:.0} ms each; {calls:.0} calls to Clear, mean {clear_ms:.0} ms each",
        count / calls.max(1.0)
    );
    let mut saved: Vec<(String, f64)> = metrics
        .iter()
        .filter_map(|(k, v)| {
            let what = k.strip_prefix("clear_operator_kube_requests_saved_total{what=\"")?;
            Some((what.trim_end_matches("\"}").to_string(), *v))
        })
        .collect();
    saved.sort_by(|a, b| a.0.cmp(&b.0));
    let saved: Vec<String> = saved
        .iter()
        .map(|(what, v)| format!("{what} {v:.0}"))
        .collect();
    println!(
        "    Kubernetes API work skipped (already known): {}",
        saved.join(", ")
    );
}

async fn operator_metrics(addr: &str) -> String {
    let addr = addr.to_string();
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: operator\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).ok()?;
        Some(body)
    })
    .await
    .ok()
    .flatten()
    .unwrap_or_default()
}

fn free_loopback_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().to_string()
}

/// Profiles started while tokens are being minted.
struct Profiles {
    apiserver: (Child, std::path::PathBuf),
    operator: Option<(Child, std::path::PathBuf)>,
}

/// 20 s CPU profiles of kube-apiserver (its pprof endpoint) and of the operator (`perf`),
/// started 5 s into the run, kept under target/tmp (the control plane's DIR goes away).
fn start_profiles(plane: &plane::ControlPlane, operator: u32, n: usize) -> Profiles {
    let keep = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let pprof = keep.join(format!("bench-real-{n}-apiserver.pprof"));
    let apiserver = plane
        .apiserver_cpu_profile(20, &pprof)
        .spawn()
        .expect("curl runs");
    let data = keep.join(format!("bench-real-{n}-operator.perf.data"));
    let operator = Command::new("perf")
        .args(["record", "-F", "499", "-g", "-o"])
        .arg(&data)
        .args(["-p", &operator.to_string(), "--", "sleep", "20"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
        .map(|child| (child, data));
    Profiles {
        apiserver: (apiserver, pprof),
        operator,
    }
}

fn finish_profiles(profiles: Profiles) {
    let (mut curl, pprof) = profiles.apiserver;
    let _ = curl.wait();
    println!(
        "    kube-apiserver CPU profile (20 s, pprof -top, cumulative): {}",
        pprof.display()
    );
    print_head(
        Command::new("go")
            .args(["tool", "pprof", "-top", "-cum", "-nodecount=25"])
            .arg(&pprof),
        32,
    );
    if let Some((mut perf, data)) = profiles.operator {
        let _ = perf.wait();
        println!(
            "    operator CPU profile (20 s, perf, self time): {}",
            data.display()
        );
        print_head(
            Command::new("perf")
                .args([
                    "report",
                    "--stdio",
                    "--no-children",
                    "--sort",
                    "dso,symbol",
                    "-g",
                    "none",
                    "-i",
                ])
                .arg(&data),
            40,
        );
    }
}

fn print_head(command: &mut Command, lines: usize) {
    match command.output() {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .take(lines)
            {
                println!("      {line}");
            }
        }
        Err(e) => println!("      (could not run: {e})"),
    }
}

/// The in-process emulator, the operator with `--no-leader-election`.
async fn run_emulator(n: usize, concurrency: Option<usize>, latency: Duration, restart: bool) {
    let emulator = Emulator::start(EmulatorOptions::default())
        .await
        .expect("emulator starts");
    let sandbox = start_sandbox(n, latency).await;
    let client = emulator.client().await;
    install_crd(&client, Duration::from_secs(10))
        .await
        .expect("CRD installs");
    let kubeconfig = std::env::temp_dir().join(format!("clear-operator-scale-{n}.kubeconfig"));
    std::fs::write(&kubeconfig, emulator.kubeconfig_yaml()).expect("kubeconfig written");
    let base_url = sandbox.url().to_string();
    let setup = create_resources(&client, n, &base_url).await;
    let (ready, watch) = watch_ready(&client);

    let started = Instant::now();
    let mut operator = start_operator(&kubeconfig, concurrency, &base_url, "127.0.0.1:0");
    let (to_ready, ready_count, spread) = wait_ready(&ready, n, started).await;
    let peak = memory_kib(operator.id(), "VmHWM:");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls = sandbox.total_call_counts().total;
    println!(
        "N={n:>6}  emulator  setup {:>6.1}s  all Ready in {:>6.1}s ({ready_count}/{n}, {spread})  Clear calls {calls}  operator peak RSS {:.1} MiB  load {}",
        setup.as_secs_f64(),
        to_ready.as_secs_f64(),
        peak as f64 / 1024.0,
        load()
    );

    if restart {
        stop(&mut operator);
        emulator.requests().reset();
        let before = sandbox.total_call_counts().total;
        // NB: counted from the new process's own metrics, as on the real server: a
        // reconcile takes a resource the operator never wrote from its watch cache, so the
        // GETs of ClearApiClients this once counted no longer happen.
        let metrics_addr = free_loopback_addr();
        let started = Instant::now();
        let mut operator = start_operator(&kubeconfig, concurrency, &base_url, &metrics_addr);
        let reconciled = wait_reconciled(&metrics_addr, n).await;
        let settled = started.elapsed();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let calls = sandbox.total_call_counts().total - before;
        let peak = memory_kib(operator.id(), "VmHWM:");
        println!(
            "restart over N={n} Ready (emulator): every resource reconciled in {:.1}s ({reconciled}/{n}), Clear calls {calls}, peak RSS {:.1} MiB",
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

/// `allowed`: the simulator's URL, the only base URL this operator may call; `metrics_addr`:
/// where it serves `/metrics`.
/// `concurrency`: `--concurrency`, or none for the operator's default.
fn start_operator(
    kubeconfig: &std::path::Path,
    concurrency: Option<usize>,
    allowed: &str,
    metrics_addr: &str,
) -> Child {
    let concurrency = concurrency.map(|c| c.to_string());
    Command::new(BIN)
        .args([
            "run",
            "--allow-http",
            "--no-leader-election",
            "--metrics-addr",
            metrics_addr,
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
