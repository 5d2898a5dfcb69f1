//! The `clear-operator` binary: parses the command line and hands over to the library.

use clap::Parser;
use clear_operator::{
    cli::{Cli, Command},
    commands::regenerate::request_regeneration,
    resource::crd_yaml,
    telemetry,
};

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
