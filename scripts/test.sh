#!/usr/bin/env bash
# The project's test command (README "Quick start", and what .ci/run calls): installs the
# tools the tests need, then format check, clippy, the whole test suite on the in-process
# kube-emulator, and then the suites that need a real Kubernetes control plane (built from
# Go modules by scripts/control-plane.sh, started for this run and stopped after it).
#   scripts/test.sh             everything
#   SKIP_REAL_CLUSTER=1 scripts/test.sh    only the fast part (no Go build, no control plane)
#   SKIP_REAL_NODE=1 scripts/test.sh       everything but the real node subset
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local

tools_bin="$(./scripts/install-tools.sh | tail -n1)"
export PATH="$tools_bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
# NB: --all-targets leaves out test targets marked `test = false` (tests/real_cluster).
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p clear-operator --test real_cluster --test real_node --locked -- -D warnings
echo "== cargo clippy, operator without the dev kit (as the container image builds it)"
cargo clippy -p clear-operator --no-default-features --locked -- -D warnings
echo "== cargo test (kube-emulator)"
cargo test --workspace --locked "$@"

# ---- Alerts: the chart's PrometheusRule checked by promtool ----------------------------
# promtool is built from the Go modules pinned in tools/promtool (go.mod + go.sum) with
# the machine's Go (GOTOOLCHAIN=local), once, then cached in .tools/promtool.
echo "== promtool check rules + test rules (chart PrometheusRule)"
HELM="$tools_bin/helm" GOTOOLCHAIN=local ./scripts/promtool.sh
echo "== helm package: the chart as released, into target/chart/"
rm -rf target/chart
"$tools_bin/helm" package charts/clear-operator --destination target/chart
# The real-cluster suite upgrades to this very archive (tests/real_cluster/upgrade.rs).
CLEAR_OPERATOR_E2E_CHART_PACKAGE="$(ls "$PWD"/target/chart/clear-operator-*.tgz)"
export CLEAR_OPERATOR_E2E_CHART_PACKAGE
echo "== consumer examples: rotation tests (Python, Java) against the Clear simulator"
examples/consumers/test.sh

if [ -n "${SKIP_REAL_CLUSTER:-}" ]; then
	echo "== real control plane: skipped (SKIP_REAL_CLUSTER is set)"
	exit 0
fi

echo "== real control plane: etcd + kube-apiserver + kube-controller-manager"
cp_dir="$PWD/target/control-plane"
scripts/control-plane.sh down "$cp_dir" >/dev/null 2>&1 || true
on_exit() {
	status=$?
	if [ "$status" -ne 0 ] && [ -d "$cp_dir/logs" ]; then
		for log in "$cp_dir"/logs/kube-*.log "$cp_dir"/logs/etcd.log; do
			echo "---- last lines of $log" >&2
			tail -n 20 "$log" >&2 || true
		done
	fi
	scripts/control-plane.sh down "$cp_dir" || true
	exit "$status"
}
trap on_exit EXIT
scripts/control-plane.sh up "$cp_dir"
export CLEAR_OPERATOR_E2E_KUBECONFIG="$cp_dir/kubeconfig"
export CLEAR_OPERATOR_E2E_AUDIT_LOG="$cp_dir/logs/audit.log"
# For the outage test (tests/real_cluster/outage.rs: scripts/apiserver-outage.sh DIR).
export CLEAR_OPERATOR_E2E_CONTROL_PLANE_DIR="$cp_dir"
kubectl --kubeconfig "$cp_dir/kubeconfig" version

echo "== e2e suite and real-cluster suite on the real control plane"
cargo test --locked -p clear-operator --test e2e --test real_cluster "$@"

echo "== differential conformance: the emulator's kubectl and kube-rs suites on the real server"
# NB: `--features kubectl`: the kubectl suite needs the emulator's kubectl feature.
KUBE_EMULATOR_CONFORMANCE_KUBECONFIG="$cp_dir/kubeconfig" cargo test --locked -p kube-emulator --features kubectl \
	--test kubectl --test kube_rs_crud --test kube_rs_watch --test kube_rs_custom --test api_semantics \
	"$@" -- --test-threads=2

# ---- A real node: the subset that fits CI's time ----------------------------------------
# The full real-pod suite (operator image built with buildah, the operator as the chart's
# pod, failover on pods, consumer pods through rotations) takes about 30 minutes on two
# cores: `sudo scripts/node-suite.sh` runs it. Here: a node up (containerd and a kubelet,
# root needed), the Secret-to-file propagation test on it, and the node's teardown.
if [ -n "${SKIP_REAL_NODE:-}" ] || [ "$(id -u)" -ne 0 ]; then
	echo "== real node: skipped (SKIP_REAL_NODE is set, or not root)"
else
	echo "== real node subset: scripts/node-suite.sh with NODE_SUITE_QUICK=1"
	NODE_SUITE_QUICK=1 scripts/node-suite.sh
fi
