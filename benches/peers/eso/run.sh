#!/usr/bin/env bash
# Side by side with External Secrets Operator (ESO) v0.16.2: the same job (one Clear access
# token per client secret, kept in a Secret) on the same real control plane, one after the
# other, then one table. See docs/comparison-external-secrets.md and bench.py for what is measured.
#
#   benches/peers/eso/run.sh N
#
# Builds what it needs (ESO from Go modules, cached in .tools/eso; the control plane, cached
# as scripts/control-plane.sh does; clear-operator and the Clear simulator with cargo, release
# profile), starts a control plane of its own under target/eso-bench, and stops everything it
# started. Logs of the run stay in target/eso-bench/logs.
#
# Environment: ESO_BENCH_PROFILE (cargo profile, default release), CLEAR_OPERATOR_BIN and
# CLEAR_SANDBOX_BIN (use these binaries, no cargo build), ESO_BENCH_SYSTEMS (eso,ours),
# ESO_BENCH_WINDOW_SAMPLE (forced renewals timed, default 20), ESO_BENCH_WORKDIR (default
# target/eso-bench), ESO_CACHE, CONTROL_PLANE_CACHE.
set -euo pipefail
export GOTOOLCHAIN=local

n="${1:?usage: $0 N (resources per system)}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"

say() { echo "eso-bench: $*" >&2; }

tools_bin="$(scripts/install-tools.sh | tail -n1)"
eso_bin="$("$here/build.sh")"
eso_src="$(go mod download -json github.com/external-secrets/external-secrets@"${ESO_VERSION:-v0.16.2}" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"

if [ -n "${CLEAR_OPERATOR_BIN:-}" ] && [ -n "${CLEAR_SANDBOX_BIN:-}" ]; then
	operator_bin="$CLEAR_OPERATOR_BIN"
	sandbox_bin="$CLEAR_SANDBOX_BIN"
else
	profile="${ESO_BENCH_PROFILE:-release}"
	cargo build --locked --profile "$profile" -p clear-operator --bin clear-operator -p clear-sandbox --bin clear-sandbox >&2
	dir="$profile"
	[ "$profile" = dev ] && dir=debug
	operator_bin="$root/target/$dir/clear-operator"
	sandbox_bin="$root/target/$dir/clear-sandbox"
fi

work="${ESO_BENCH_WORKDIR:-$root/target/eso-bench}"
cp_dir="$work/control-plane"
scripts/control-plane.sh down "$cp_dir" >/dev/null 2>&1 || true
rm -rf "$work/logs"
mkdir -p "$work/logs"
cleanup() {
	local status=$?
	scripts/control-plane.sh down "$cp_dir" >/dev/null || true
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
scripts/control-plane.sh up "$cp_dir"

python3 "$here/bench.py" --n "$n" --cp-dir "$cp_dir" \
	--eso-bin "$eso_bin" --eso-crds "$eso_src/deploy/crds/bundle.yaml" \
	--operator-bin "$operator_bin" --sandbox-bin "$sandbox_bin" \
	--kubectl "$tools_bin/kubectl" --workdir "$work/logs" \
	--systems "${ESO_BENCH_SYSTEMS:-eso,ours}" --window-sample "${ESO_BENCH_WINDOW_SAMPLE:-20}"
