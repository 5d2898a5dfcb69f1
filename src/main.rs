//! The `clear-operator` binary: parses the command line and hands over to the library.

use clear_operator::{
    cli::{Cli, Command},
    commands::{self, regenerate::Progress},
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
    // NB: also run as `kubectl-clear` (a kubectl plugin); see `Cli::parse_args`.
    let cli = Cli::parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit());
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
            let failure_before = if args.wait {
                commands::regenerate::last_failure_time(client.clone(), &namespace, &args.name)
                    .await?
            } else {
                None
            };
            let value = commands::regenerate::request_regeneration(
                client.clone(),
                &namespace,
                &args.name,
                args.value,
            )
            .await?;
            println!(
                "regeneration of {namespace}/{} requested ({}={value})",
                args.name,
                clear_operator::resource::REGENERATE_ANNOTATION
            );
            if args.wait {
                let progress = commands::regenerate::wait_for(
                    client,
                    &namespace,
                    &args.name,
                    &value,
                    failure_before,
                    args.timeout,
                )
                .await?;
                match progress {
                    Progress::Done {
                        valid_till,
                        token_fingerprint,
                    } => println!(
                        "new token ready: fingerprint {}, {}",
                        token_fingerprint.as_deref().unwrap_or("?"),
                        valid_till
                            .map(|t| format!("valid till {t}"))
                            .unwrap_or_else(|| "never expires".into())
                    ),
                    Progress::Failed { reason, message } => {
                        eprintln!("regeneration not done: {reason}: {message}");
                        std::process::exit(1);
                    }
                    Progress::Waiting => {
                        eprintln!(
                            "regeneration not done within {}s (see `clear-operator status {} -n {namespace}`)",
                            args.timeout.as_secs(),
                            args.name
                        );
                        std::process::exit(2);
                    }
                }
            }
        }
        Command::Check(args) => {
            let status = commands::check::run(args).await?;
            if status != commands::check::EXIT_OK {
                std::process::exit(status);
            }
        }
        Command::Status(args) => {
            let client = kube::Client::try_default().await?;
            let now = jiff::Timestamp::now();
            if args.all_namespaces {
                let summaries = commands::status::gather_all(&client, args.ledger, now).await?;
                print!("{}", commands::status::render_table(&summaries, now));
            } else {
                let namespace = args
                    .namespace
                    .unwrap_or_else(|| client.default_namespace().to_string());
                let name = args.name.unwrap_or_default();
                let summary =
                    commands::status::gather(&client, &namespace, &name, args.ledger, now).await?;
                print!("{}", commands::status::render(&summary, now));
            }
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
