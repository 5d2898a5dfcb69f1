#!/usr/bin/env bash
# The scale benchmark on the real control plane (issue 17): for each size a fresh etcd +
# kube-apiserver + kube-controller-manager (scripts/control-plane.sh), the chart installed
# with `helm install` and its defaults, the release binary run as the chart's
# ServiceAccount, Clear (the simulator, in the bench process) answering each mint after
# 100 ms. Prints, per size: time to all Ready, Clear calls, the operator's peak RSS, its API
# requests per new token by verb and resource (from the audit log), CPU per process, API
# Priority and Fairness and etcd figures; after the largest size, a restart over every
# Ready resource. Then the same sizes on the emulator, as a second line.
#
#   scripts/bench-real-scale.sh                 # sizes 1000,5000,10000
#   BENCH_SIZES=1000 scripts/bench-real-scale.sh
#   BENCH_TARGET=real BENCH_PROFILE=1 BENCH_SIZES=1000 scripts/bench-real-scale.sh
#
# Environment: BENCH_SIZES, BENCH_TARGET (default real,emulator), BENCH_PROFILE=1 (a CPU
# profile of kube-apiserver and of the operator during the run), BENCH_CLEAR_LATENCY_MS,
# CONTROL_PLANE_CACHE (as for scripts/control-plane.sh). Each control plane lives under
# target/tmp/bench-real-N and is stopped (`down`) by the bench when the size is done.
set -euo pipefail
export GOTOOLCHAIN=local
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# helm (for `helm install`) and kubectl; prints the bin dir on its last line.
BENCH_TOOLS_BIN="$(scripts/install-tools.sh | tail -n1)"
export BENCH_TOOLS_BIN
# Builds the control plane's binary now (cached), so no size pays for it.
scripts/control-plane.sh build >/dev/null

export BENCH_TARGET="${BENCH_TARGET:-real,emulator}"
export BENCH_SIZES="${BENCH_SIZES:-1000,5000,10000}"
echo "bench-real-scale: sizes $BENCH_SIZES, targets $BENCH_TARGET; $(nproc) cores; load: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo bench --locked --bench scale
echo "bench-real-scale: done; load: $(cut -d' ' -f1-3 /proc/loadavg)"
