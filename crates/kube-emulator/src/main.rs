//! `kube-emulator --listen 127.0.0.1:PORT --kubeconfig-out PATH`: runs the emulator until
//! interrupted, printing its URL as the first line of stdout.
#![forbid(unsafe_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use kube_emulator::{Emulator, EmulatorOptions};
use tracing_subscriber::EnvFilter;

/// In-memory Kubernetes API server for tests and local development.
#[derive(Parser)]
#[command(name = "kube-emulator", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig for this emulator here.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 10)]
    bookmark_interval_secs: u64,
    /// Watch events kept per resource type; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let opts = EmulatorOptions {
        listen: args.listen,
        bookmark_interval: std::time::Duration::from_secs(args.bookmark_interval_secs.max(1)),
        watch_history: args.watch_history,
    };
    let emulator = Emulator::start(opts).await?;
    if let Some(path) = &args.kubeconfig_out {
        std::fs::write(path, emulator.kubeconfig_yaml())
            .map_err(|e| anyhow::anyhow!("failed to write kubeconfig {}: {e}", path.display()))?;
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", emulator.url())?;
        out.flush()?;
    }
    wait_for_signal().await;
    emulator.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("failed to install the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
