//! The operator on a real Kubernetes control plane: the etcd, kube-apiserver and
//! kube-controller-manager that `scripts/control-plane.sh up DIR` builds from Go modules.
//! Here kube-apiserver enforces RBAC, validates the CRD with its own CEL, and the real
//! garbage collector deletes owned Secrets; nothing is taken on the emulator's word.
//!
//! Not part of a plain `cargo test` (Cargo.toml: `test = false`), since it needs that
//! control plane; `scripts/test.sh` runs it after `control-plane.sh up`:
//!
//! ```sh
//! CLEAR_OPERATOR_E2E_KUBECONFIG=DIR/kubeconfig CLEAR_OPERATOR_E2E_AUDIT_LOG=DIR/logs/audit.log \
//!   cargo test --test real_cluster
//! ```

#[path = "../chart_support/mod.rs"]
mod chart_support;
#[path = "../e2e_support/mod.rs"]
mod e2e_support;

mod audit;
mod chart;
mod finalizers;
mod kubectl;
mod metrics_auth;
mod outage;
mod status;
mod upgrade;

use std::path::PathBuf;

use tokio::sync::{Mutex, MutexGuard};

/// The admin kubeconfig of the control plane (the same variable the e2e suite reads).
pub const KUBECONFIG_ENV: &str = e2e_support::KUBECONFIG_ENV;
/// kube-apiserver's audit log (`DIR/logs/audit.log`): the server's own record of requests.
pub const AUDIT_LOG_ENV: &str = "CLEAR_OPERATOR_E2E_AUDIT_LOG";

pub fn kubeconfig_path() -> PathBuf {
    std::env::var_os(KUBECONFIG_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "{KUBECONFIG_ENV} is not set: these tests need a real control plane \
                 (scripts/control-plane.sh up DIR, then {KUBECONFIG_ENV}=DIR/kubeconfig)"
            )
        })
}

pub fn audit_log_path() -> PathBuf {
    std::env::var_os(AUDIT_LOG_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("{AUDIT_LOG_ENV} is not set (DIR/logs/audit.log)"))
}

/// One test at a time: an operator installed cluster-wide would otherwise also reconcile
/// the other tests' resources, and their requests would mix in the audit log.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}
