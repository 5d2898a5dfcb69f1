//! The stand-alone simulator: reads a clients file, serves on loopback, prints its URL as
//! the first line of stdout, logs to stderr, stops on Ctrl-C or SIGTERM.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use clear_sandbox::{Sandbox, SandboxConfig, ShiftedClock, error_chain, load_clients_file};
use tracing::{error, warn};
use tracing_subscriber::EnvFilter;

/// Simulator of the Clear (ClearTax) access-token API.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Clients file (YAML, or JSON when it ends in .json).
    #[arg(long)]
    clients: PathBuf,
    /// Do not serve the /_sandbox/ admin API.
    #[arg(long)]
    no_admin_api: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let clients = load_clients_file(&args.clients).map_err(|err| error_chain(&err))?;
    if !args.listen.ip().is_loopback() {
        warn!(listen = %args.listen, "listening beyond loopback; the simulator has no authentication for its admin API");
    }
    let mut config = SandboxConfig::new(clients)
        .with_listen(args.listen)
        .with_clock(Arc::new(ShiftedClock::new()));
    if args.no_admin_api {
        config = config.without_admin_api();
    }
    let handle = Sandbox::start(config)
        .await
        .map_err(|err| error_chain(&err))?;
    println!("{}", handle.url());
    wait_for_stop_signal().await;
    handle
        .shutdown()
        .await
        .map_err(|err| format!("failed to shut down cleanly: {err}"))
}

async fn wait_for_stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
