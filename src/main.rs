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
        Command::Crd => print!("{}", crd_yaml()),
        Command::Regenerate(args) => {
            let client = kube::Client::try_default().await?;
            let namespace = args.namespace.unwrap_or_else(|| client.default_namespace().to_string());
            let value = request_regeneration(client, &namespace, &args.name, args.value).await?;
            println!("regeneration of {namespace}/{} requested ({}={value})", args.name, clear_operator::resource::REGENERATE_ANNOTATION);
        }
    }
    Ok(())
}
