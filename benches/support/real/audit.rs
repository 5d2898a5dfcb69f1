//! kube-apiserver's audit log as the record of the operator's requests: how many of each
//! (verb, resource, dry run or not), how long the server took for each, and how many were
//! in flight at once.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Seek, SeekFrom},
    path::Path,
};

use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    stage: String,
    verb: String,
    #[serde(rename = "requestURI")]
    request_uri: String,
    user: User,
    object_ref: Option<ObjectRef>,
    response_status: Option<Status>,
    request_received_timestamp: DateTime<Utc>,
    stage_timestamp: DateTime<Utc>,
}

#[derive(Deserialize)]
struct User {
    username: String,
}

#[derive(Deserialize)]
struct ObjectRef {
    resource: Option<String>,
    subresource: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    code: Option<u16>,
}

/// One request as the server recorded it.
pub struct Request {
    /// `verb resource[/subresource][ (dry run)]`, e.g. `patch secrets (dry run)`.
    pub kind: String,
    pub code: u16,
    /// Microseconds since the epoch.
    pub received: i64,
    pub completed: i64,
}

/// The size of the log now: requests after this offset are the ones still to come.
pub fn len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The completed requests `username` made after byte `from` (watches: when they started).
pub fn requests_of(path: &Path, from: u64, username: &str) -> Vec<Request> {
    let mut file = std::fs::File::open(path).expect("audit log");
    file.seek(SeekFrom::Start(from)).unwrap();
    let needle = format!("\"username\":\"{username}\"");
    BufReader::with_capacity(1 << 20, file)
        .lines()
        .map_while(Result::ok)
        .filter(|line| line.contains(&needle))
        .filter_map(|line| serde_json::from_str::<Event>(&line).ok())
        .filter(|e| e.user.username == username)
        .filter(|e| {
            e.stage == "ResponseComplete" || (e.stage == "ResponseStarted" && e.verb == "watch")
        })
        .filter_map(|e| {
            let object = e.object_ref?;
            let mut kind = format!("{} {}", e.verb, object.resource?);
            if let Some(sub) = object.subresource {
                kind = format!("{kind}/{sub}");
            }
            if e.request_uri.contains("dryRun=All") {
                kind.push_str(" (dry run)");
            }
            Some(Request {
                kind,
                code: e.response_status.and_then(|s| s.code).unwrap_or(0),
                received: e.request_received_timestamp.timestamp_micros(),
                completed: e.stage_timestamp.timestamp_micros(),
            })
        })
        .collect()
}

/// Prints the requests by kind: count, per `per` (new tokens), and the server's time for
/// each (received to response complete: what APF queueing, the apiserver and etcd took).
pub fn print_breakdown(requests: &[Request], per: usize, per_what: &str) {
    let mut by_kind: BTreeMap<&str, Vec<&Request>> = BTreeMap::new();
    for r in requests {
        by_kind.entry(&r.kind).or_default().push(r);
    }
    let mut rows: Vec<_> = by_kind.into_iter().collect();
    rows.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let per = per.max(1) as f64;
    println!(
        "    {:<40} {:>7} {:>8} {:>9} {:>9} {:>9}  codes",
        "request (audit log)", "count", per_what, "mean ms", "p50 ms", "p99 ms"
    );
    for (kind, list) in &rows {
        let mut ms: Vec<f64> = list
            .iter()
            .map(|r| (r.completed - r.received) as f64 / 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let mean = ms.iter().sum::<f64>() / ms.len() as f64;
        let pick = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
        for r in list {
            *codes.entry(r.code).or_default() += 1;
        }
        let codes = codes
            .iter()
            .map(|(c, n)| format!("{c}x{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let timing = if kind.starts_with("watch") {
            format!("{:>9} {:>9} {:>9}", "-", "-", "-")
        } else {
            format!("{mean:>9.1} {:>9.1} {:>9.1}", pick(0.5), pick(0.99))
        };
        println!(
            "    {kind:<40} {:>7} {:>8.2} {timing}  {codes}",
            list.len(),
            list.len() as f64 / per
        );
    }
    println!(
        "    {:<40} {:>7} {:>8.2}",
        "total",
        requests.len(),
        requests.len() as f64 / per
    );
}

/// Requests of the operator in flight at the server (watches left out): the most at once,
/// and the mean over the span from the first request received to the last completed.
pub fn in_flight(requests: &[Request]) -> (usize, f64, f64) {
    let mut edges: Vec<(i64, i32)> = requests
        .iter()
        .filter(|r| !r.kind.starts_with("watch"))
        .flat_map(|r| [(r.received, 1), (r.completed, -1)])
        .collect();
    if edges.is_empty() {
        return (0, 0.0, 0.0);
    }
    edges.sort();
    let (mut now, mut max) = (0i32, 0i32);
    for (_, delta) in &edges {
        now += delta;
        max = max.max(now);
    }
    let span = (edges.last().unwrap().0 - edges[0].0).max(1) as f64;
    let busy: i64 = requests
        .iter()
        .filter(|r| !r.kind.starts_with("watch"))
        .map(|r| r.completed - r.received)
        .sum();
    (max as usize, busy as f64 / span, span / 1e6)
}
