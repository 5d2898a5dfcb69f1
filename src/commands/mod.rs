//! The `clear-operator` subcommands other than the controller itself.

pub mod check;
pub mod regenerate;
pub mod status;
