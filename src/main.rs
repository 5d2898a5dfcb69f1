//! The `clear-operator` binary: parses the command line and hands over to the library.

use clap::Parser;
use clear_operator::{
    cli::{Cli, Command},
    commands::regenerate::request_regeneration,
    resource::crd_yaml,
    telemetry,
};

/// NB: mimalloc, not the system's malloc. With glibc's, the operator at 10,000 resources on
/// the real API server peaked at 122 to 151 MiB of RSS for a live heap of at most 81 MiB
/// (heaptrack): the per-thread arenas keep what the watch lists, the reconciles and each
/// scrape of `/metrics` (megabytes of text) freed. The same binary with mimalloc peaked at
/// 92 MiB (jemalloc, tried the same way: 90 MiB); mimalloc builds from one C file with the
/// C compiler the TLS library already needs. `MALLOC_ARENA_MAX` and glibc's other tunables
/// changed little (119 MiB).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    match cli.command {
        Command::Run(args) => {
            let limits = clear_operator::kube_client::Limits {
                api_concurrency: args.kube_api_concurrency,
            };
            let client = clear_operator::kube_client::infer_with(limits).await?;
            let shutdown = tokio_util::sync::CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            clear_operator::operator::run(client, args, shutdown).await?;
        }
        #[cfg(feature = "dev")]
        Command::Dev(args) => clear_operator::dev::run(args).await?,
        Command::Crd => print!("{}", crd_yaml()),
        Command::Regenerate(args) => {
            let client = kube::Client::try_default().await?;
            let namespace = args
                .namespace
                .unwrap_or_else(|| client.default_namespace().to_string());
            let value = request_regeneration(client, &namespace, &args.name, args.value).await?;
            println!(
                "regeneration of {namespace}/{} requested ({}={value})",
                args.name,
                clear_operator::resource::REGENERATE_ANNOTATION
            );
        }
    }
    Ok(())
}

/// SIGTERM (Kubernetes) or Ctrl-C: stop taking work, let in-flight reconciles finish.
async fn cancel_on_signal(shutdown: tokio_util::sync::CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
