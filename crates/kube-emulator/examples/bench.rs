//! Emulator figures with 10,000 Secrets: create throughput, list time, watch fan-out to
//! 50 watchers, resident memory. Prints figures; asserts nothing about time.
//!
//! `cargo run -p kube-emulator --release --example bench`

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube_emulator::{Emulator, EmulatorOptions};
use serde_json::json;

const SECRETS: usize = 10_000;
const WATCHERS: usize = 50;
const FANOUT_WRITES: usize = 1_000;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let emu = Emulator::start(EmulatorOptions::default()).await?;
    let client = emu.client().await;
    let api: Api<Secret> = Api::namespaced(client.clone(), "default");
    println!("rss at start: {:.1} MiB", rss_mib());

    let started = Instant::now();
    stream::iter(0..SECRETS)
        .map(|i| {
            let api = api.clone();
            async move {
                let s: Secret = serde_json::from_value(json!({
                    "metadata": {"name": format!("s-{i:05}"), "labels": {"app": "bench", "shard": (i % 10).to_string()}},
                    "stringData": {"accessToken": format!("token-{i:05}-0123456789abcdef0123456789abcdef")},
                }))?;
                api.create(&PostParams::default(), &s).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let created = started.elapsed();
    println!(
        "created {SECRETS} secrets in {:.2}s ({:.0}/s, 32 in flight)",
        created.as_secs_f64(),
        SECRETS as f64 / created.as_secs_f64()
    );
    println!("rss with {SECRETS} secrets: {:.1} MiB", rss_mib());

    for round in 0..3 {
        let t = Instant::now();
        let list = api.list(&ListParams::default()).await?;
        println!(
            "list all {} secrets (kube-rs, typed decode) round {round}: {:.1} ms",
            list.items.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
    }
    let http = reqwest_free_get(&emu.url(), "/api/v1/namespaces/default/secrets").await?;
    println!(
        "list all secrets (raw HTTP, {} KiB): {:.1} ms",
        http.0 / 1024,
        http.1.as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let shard = api.list(&ListParams::default().labels("shard=3")).await?;
    println!(
        "list with labelSelector shard=3 ({} items): {:.1} ms",
        shard.items.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );

    let rv = api
        .list(&ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut handles = Vec::new();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(WATCHERS);
    for _ in 0..WATCHERS {
        let api = api.clone();
        let rv = rv.clone();
        let ready = ready_tx.clone();
        handles.push(tokio::spawn(async move {
            let mut s = api
                .watch(&WatchParams::default().disable_bookmarks(), &rv)
                .await?
                .boxed();
            ready.send(()).await.ok();
            let mut n = 0usize;
            let mut last = Instant::now();
            while n < FANOUT_WRITES {
                match s.try_next().await? {
                    Some(WatchEvent::Modified(_)) => {
                        n += 1;
                        last = Instant::now();
                    }
                    Some(_) => {}
                    None => break,
                }
            }
            anyhow::Ok((n, last))
        }));
    }
    for _ in 0..WATCHERS {
        ready_rx.recv().await;
    }
    println!("open watches: {}", emu.faults().open_watches());
    let t = Instant::now();
    stream::iter(0..FANOUT_WRITES)
        .map(|i| {
            let api = api.clone();
            async move {
                api.patch(
                    &format!("s-{i:05}"),
                    &PatchParams::default(),
                    &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
                )
                .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await?;
    let writes_done = t.elapsed();
    let mut latest = Duration::ZERO;
    let mut delivered = 0;
    for h in handles {
        let (n, last) = h.await??;
        delivered += n;
        latest = latest.max(last.duration_since(t));
    }
    println!(
        "fan-out: {FANOUT_WRITES} updates to {WATCHERS} watchers = {delivered} events delivered; writes took {:.2}s, last watcher done after {:.2}s ({:.0} events/s)",
        writes_done.as_secs_f64(),
        latest.as_secs_f64(),
        delivered as f64 / latest.as_secs_f64()
    );
    println!(
        "rss at end: {:.1} MiB (emulator and clients share this process)",
        rss_mib()
    );
    emu.shutdown().await;
    Ok(())
}

/// A plain HTTP/1.1 GET over a TCP socket, so the figure is the server's, not a client's decode.
async fn reqwest_free_get(url: &str, path: &str) -> anyhow::Result<(usize, Duration)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = url.trim_start_matches("http://");
    let t = Instant::now();
    let mut sock = tokio::net::TcpStream::connect(host).await?;
    sock.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    sock.read_to_end(&mut buf).await?;
    Ok((buf.len(), t.elapsed()))
}
