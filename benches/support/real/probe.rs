//! What the run cost each process and the server: CPU from /proc (utime + stime), the
//! operator's TCP connections to the API server (`ss`), and kube-apiserver's own metrics
//! (API Priority and Fairness queueing and rejections, etcd request latency).

use std::{
    collections::{BTreeMap, HashMap},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::http::Request;
use kube::Client;

/// Clock ticks per second of /proc/PID/stat (USER_HZ, 100 on Linux).
const TICKS: f64 = 100.0;

/// CPU used so far by each named process and by the whole machine.
pub struct CpuMark {
    at: Instant,
    ticks: Vec<(String, u64)>,
    /// (busy, total) jiffies of all CPUs, from /proc/stat.
    machine: (u64, u64),
}

fn proc_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // NB: fields are counted after the command name, which may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let get = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(11) + get(12)
}

fn machine_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

pub fn cpu_mark(processes: &[(&str, u32)]) -> CpuMark {
    CpuMark {
        at: Instant::now(),
        ticks: processes
            .iter()
            .map(|(name, pid)| (name.to_string(), proc_ticks(*pid)))
            .collect(),
        machine: machine_ticks(),
    }
}

/// Cores each process used between two marks, and how busy the machine's CPUs were.
pub fn print_cpu(start: &CpuMark, end: &CpuMark) {
    let wall = end.at.duration_since(start.at).as_secs_f64().max(1e-3);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let parts: Vec<String> = start
        .ticks
        .iter()
        .zip(&end.ticks)
        .map(|((name, a), (_, b))| {
            format!(
                "{name} {:.2} ({:.0} s)",
                b.saturating_sub(*a) as f64 / TICKS / wall,
                b.saturating_sub(*a) as f64 / TICKS
            )
        })
        .collect();
    let busy =
        (end.machine.0 - start.machine.0) as f64 / (end.machine.1 - start.machine.1).max(1) as f64;
    println!(
        "    CPU over {wall:.1} s, in cores: {}; whole machine {:.0} % busy of {cores} cores",
        parts.join(", "),
        busy * 100.0
    );
}

/// ESTABLISHED TCP connections of process `pid` to the API server's `port`.
pub fn tcp_connections(pid: u32, port: &str) -> usize {
    let Ok(out) = Command::new("ss")
        .args(["-tnpH", "state", "established", "dst"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
    else {
        return 0;
    };
    let needle = format!("pid={pid},");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&needle))
        .count()
}

/// kube-apiserver's /metrics (the admin identity may read it).
pub async fn scrape(client: &Client) -> String {
    let request = Request::get("/metrics").body(Vec::new()).unwrap();
    client.request_text(request).await.unwrap_or_default()
}

/// Every sample of a metrics text, keyed by name and labels as written.
pub fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn label<'a>(key: &'a str, name: &str) -> Option<&'a str> {
    let at = key.find(&format!("{name}=\""))? + name.len() + 2;
    let rest = &key[at..];
    Some(&rest[..rest.find('"')?])
}

fn family<'a>(
    metrics: &'a HashMap<String, f64>,
    name: &'a str,
) -> impl Iterator<Item = (&'a String, f64)> + 'a {
    metrics
        .iter()
        .filter(move |(k, _)| k.starts_with(name) && k[name.len()..].starts_with('{'))
        .map(|(k, v)| (k, *v))
}

/// Sums the deltas of family `name` grouped by label `by` (only groups that moved).
fn deltas_by(
    before: &HashMap<String, f64>,
    after: &HashMap<String, f64>,
    name: &str,
    by: &[&str],
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (key, value) in family(after, name) {
        let delta = value - before.get(key).copied().unwrap_or(0.0);
        if delta.abs() < 1e-9 {
            continue;
        }
        let group = by
            .iter()
            .map(|l| label(key, l).unwrap_or("-"))
            .collect::<Vec<_>>()
            .join("/");
        *out.entry(group).or_default() += delta;
    }
    out
}

/// API Priority and Fairness and etcd, as kube-apiserver counted them between two scrapes.
pub fn print_server_metrics(before: &str, after: &str, peaks: &Peaks) {
    let (before, after) = (parse(before), parse(after));
    let dispatched = deltas_by(
        &before,
        &after,
        "apiserver_flowcontrol_dispatched_requests_total",
        &["priority_level", "flow_schema"],
    );
    let line = |m: &BTreeMap<String, f64>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "    APF dispatched (priority level/flow schema): {}",
        line(&dispatched)
    );
    let rejected = deltas_by(
        &before,
        &after,
        "apiserver_flowcontrol_rejected_requests_total",
        &["priority_level", "reason"],
    );
    println!(
        "    APF rejected (429): {}",
        if rejected.is_empty() {
            "none".to_string()
        } else {
            line(&rejected)
        }
    );
    let waits = |suffix: &str| {
        deltas_by(
            &before,
            &after,
            &format!("apiserver_flowcontrol_request_wait_duration_seconds_{suffix}"),
            &["priority_level", "execute"],
        )
    };
    let (sums, counts) = (waits("sum"), waits("count"));
    let mean_waits: Vec<String> = counts
        .iter()
        .map(|(k, n)| {
            format!(
                "{k}: {n:.0} requests, mean {:.2} ms",
                sums.get(k).copied().unwrap_or(0.0) / n * 1000.0
            )
        })
        .collect();
    println!(
        "    APF queue wait (priority level/executed): {}",
        mean_waits.join("; ")
    );
    let seats: Vec<String> = family(&after, "apiserver_flowcontrol_nominal_limit_seats")
        .filter_map(|(k, v)| Some(format!("{} {v:.0}", label(k, "priority_level")?)))
        .filter(|s| s.starts_with("workload-") || s.starts_with("global-default"))
        .collect();
    println!(
        "    APF nominal seats: {}; peak while running: in queue {:.0}, executing {:.0} (workload-low, every {} s)",
        seats.join(", "),
        peaks.inqueue,
        peaks.executing,
        SAMPLE_EVERY.as_secs()
    );
    let etcd = |suffix: &str| {
        deltas_by(
            &before,
            &after,
            &format!("etcd_request_duration_seconds_{suffix}"),
            &["operation"],
        )
    };
    let (sums, counts) = (etcd("sum"), etcd("count"));
    let per_op: Vec<String> = counts
        .iter()
        .filter(|(_, n)| **n >= 1.0)
        .map(|(k, n)| {
            format!(
                "{k} {n:.0} (mean {:.2} ms)",
                sums.get(k).copied().unwrap_or(0.0) / n * 1000.0
            )
        })
        .collect();
    println!(
        "    etcd requests from the apiserver: {}",
        per_op.join(", ")
    );
}

const SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Peaks seen by the sampler.
#[derive(Default, Clone, Copy)]
pub struct Peaks {
    pub inqueue: f64,
    pub executing: f64,
    pub connections: usize,
}

/// Samples the operator's connections and workload-low's queue until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Peaks>,
}

impl Sampler {
    pub fn start(admin: Client, operator_pid: u32, api_port: String) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peaks = Peaks::default();
            while !flag.load(Ordering::Relaxed) {
                let port = api_port.clone();
                let connections =
                    tokio::task::spawn_blocking(move || tcp_connections(operator_pid, &port))
                        .await
                        .unwrap_or(0);
                peaks.connections = peaks.connections.max(connections);
                let metrics = parse(&scrape(&admin).await);
                let sum = |name: &str| -> f64 {
                    family(&metrics, name)
                        .filter(|(k, _)| label(k, "priority_level") == Some("workload-low"))
                        .map(|(_, v)| v)
                        .sum()
                };
                peaks.inqueue = peaks
                    .inqueue
                    .max(sum("apiserver_flowcontrol_current_inqueue_requests"));
                peaks.executing = peaks
                    .executing
                    .max(sum("apiserver_flowcontrol_current_executing_requests"));
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
            peaks
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}
