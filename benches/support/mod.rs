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

/// The client-secret Secret `name` holding `value` under the default key.
#[allow(dead_code)] // not every bench binary creates resources
pub fn client_secret(name: String, value: String) -> k8s_openapi::api::core::v1::Secret {
    k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name),
            ..Default::default()
        },
        data: Some(std::collections::BTreeMap::from([(
            clear_operator::resource::DEFAULT_CLIENT_SECRET_KEY.to_string(),
            k8s_openapi::ByteString(value.into_bytes()),
        )])),
        ..Default::default()
    }
}

/// A sandbox ClearApiClient `name` of workspace `bench-ws` (GST) reading the client secret
/// from the Secret `client_secret_name`, calling `base_url`.
#[allow(dead_code)] // not every bench binary creates resources
pub fn bench_client(
    name: &str,
    client_secret_name: String,
    base_url: String,
) -> clear_operator::resource::ClearApiClient {
    use clear_operator::resource::{
        ClearApiClient, ClearApiClientSpec, ClientSecretRef, DEFAULT_CLIENT_SECRET_KEY,
        Environment, Product, Region,
    };
    ClearApiClient::new(
        name,
        ClearApiClientSpec {
            environment: Environment::Sandbox,
            region: Region::India,
            base_url: Some(base_url),
            workspace: "bench-ws".into(),
            products: vec![Product("GST".into())],
            client_secret_ref: ClientSecretRef {
                name: client_secret_name,
                key: DEFAULT_CLIENT_SECRET_KEY.into(),
            },
            target: None,
            renew_before: None,
            renewal_windows: Vec::new(),
            adopt_from: None,
            suspend: false,
            revoke_on_delete: false,
            rollout_restart_targets: Vec::new(),
        },
    )
}

/// Stops an operator process like Kubernetes does: SIGTERM, then SIGKILL after 30 s.
#[allow(dead_code)] // not every bench binary runs the operator
pub fn stop(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A memory figure of a process from `/proc/PID/status`, in KiB: `VmRSS:` (resident now)
/// or `VmHWM:` (its peak); 0 when the process is gone.
#[allow(dead_code)] // not every bench binary runs the operator
pub fn memory_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The machine's load averages (/proc/loadavg), to state with every figure.
#[allow(dead_code)] // not every bench binary reports it
pub fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
