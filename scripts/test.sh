#!/usr/bin/env bash
# The project's test command (README "Quick start", and what .ci/run calls):
# installs the tools the tests need, then format check, clippy, and the whole test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tools_bin="$(./scripts/install-tools.sh | tail -n1)"
export PATH="$tools_bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo clippy, operator without the dev kit (as the container image builds it)"
cargo clippy -p clear-operator --no-default-features --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked "$@"

# ---- Alerts: the chart's PrometheusRule checked by promtool ----------------------------
# promtool is built from the Go modules pinned in tools/promtool (go.mod + go.sum) with
# the machine's Go (GOTOOLCHAIN=local), once, then cached in .tools/promtool.
echo "== promtool check rules + test rules (chart PrometheusRule)"
HELM="$tools_bin/helm" GOTOOLCHAIN=local ./scripts/promtool.sh
