//! clear-sandbox: an in-process or stand-alone simulator of Clear's (ClearTax)
//! access-token API for tests and local development. See the crate README for the
//! HTTP surface, the clients file and what is and is not simulated.
#![forbid(unsafe_code)]

mod admin;
mod api;
mod clock;
mod config;
mod counts;
mod duration;
mod faults;
mod registry;
mod secret;
mod server;

pub use api::{AUTH_TOKEN_HEADER, CLIENT_SECRET_HEADER, TOKEN_PATH, WHOAMI_PATH};
pub use clock::{Clock, ClockError, ManualClock, ShiftedClock, SystemClock};
pub use config::{
    ClientConfig, ConfigError, DEFAULT_DAILY_QUOTA, DEFAULT_TOKEN_LENGTH, DEFAULT_TOKEN_LIFETIME,
    EntryError, Environment, InvalidClient, TokenExpiry, TokenField, load_clients_file,
};
pub use counts::CallCounts;
pub use duration::{DurationError, parse_duration};
pub use faults::{Fault, FaultScope, OddBody};
pub use registry::{AdminError, ClientView, IssuedToken, TokenIdentity};
pub use secret::{AccessToken, ClientSecret, MAX_TOKEN_LENGTH};
pub use server::{Sandbox, SandboxConfig, SandboxHandle, StartError};

/// Formats an error with its chain of causes, `a: b: c`.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    config::error_chain(err)
}
