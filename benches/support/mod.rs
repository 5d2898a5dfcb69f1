//! Helpers shared by the benchmark binaries.

use std::time::Duration;

/// A numeric setting from the environment, or the default.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The p-th percentile (0.0..=1.0) of an ascending slice; zero when empty.
#[allow(dead_code)] // not every bench binary reports percentiles
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}
