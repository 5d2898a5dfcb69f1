//! Logging setup: `tracing` with an `EnvFilter` (RUST_LOG), as text or JSON lines.
//!
//! NB: nothing here redacts. Secrets stay out of logs by construction: client secrets and
//! tokens only ever live in `ClientSecret`/`AccessToken`, whose Debug and Display print
//! `<redacted>`, and the scenario tests scan every captured log line for them.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Default filter when RUST_LOG is unset: our own crates at info, libraries at warn.
const DEFAULT_FILTER: &str = "warn,clear_operator=info,kube_emulator=warn,clear_sandbox=warn";

/// Installs the global subscriber. Safe to call more than once (later calls are no-ops), so
/// tests and `dev` can share it.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
}
