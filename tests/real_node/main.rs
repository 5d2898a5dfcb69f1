//! Real pods: the operator as the chart's pod, and consumer pods that mount its Secret, on a
//! real node (containerd and a kubelet) of the control plane `scripts/control-plane.sh up
//! DIR --node` starts. The kubelet, the projected ServiceAccount token, in-cluster
//! configuration, the probes, the chart's security context and read-only root, the
//! kubelet's Secret volume sync and real rollouts are all the real thing here.
//!
//! Not part of a plain `cargo test` (Cargo.toml: `test = false`); `scripts/node-suite.sh`
//! builds the images, starts the cluster and runs it:
//!
//! ```sh
//! CLEAR_OPERATOR_NODE_ENV=DIR/env \
//! CLEAR_OPERATOR_NODE_IMAGES=localhost/clear-operator:node-a,localhost/clear-operator:node-b \
//! CLEAR_OPERATOR_NODE_CONSUMER_IMAGE=localhost/clear-consumers:1 \
//!   cargo test --test real_node
//! ```
//!
//! Every pod runs with `hostNetwork` on the node named 127.0.0.1 (scripts/node.sh), so all
//! traffic stays on loopback; the Clear simulator runs in the test process on 127.0.0.1.
//! Tests print the figures they measure (propagation delay, revoke gap); none is asserted
//! against a time limit.

#[path = "../chart_support/mod.rs"]
mod chart_support;

mod consumers;
mod kit;
mod nudge;
mod operator_pod;
mod propagation;

use tokio::sync::{Mutex, MutexGuard};

/// One test at a time: they share the node, and timing figures are measured alone.
pub async fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::const_new(());
    LOCK.lock().await
}
