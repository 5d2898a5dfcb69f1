#!/usr/bin/env bash
# The real-pod suite, in one command (docs/development.md, "Real pods on a real node"): builds the operator
# image from the Dockerfile (scripts/build-image.sh, with buildah) and the consumer examples'
# image (examples/consumers/image.sh), starts the control plane with a node
# (scripts/control-plane.sh up DIR --node), loads both images into the node's containerd,
# runs `cargo test --test real_node` (tests/real_node), and stops everything it started.
#
#   scripts/node-suite.sh [cargo test args...]
#   NODE_SUITE_QUICK=1 scripts/node-suite.sh    the subset CI runs (scripts/test.sh): no
#       operator image build; the node up and down, and the propagation test (5 updates)
#
# Needs root and the Debian packages buildah, containerd, runc, busybox-static, python3.11,
# openjdk-17-jre-headless (and a JDK's javac). Prints the figures the tests measure.
# Environment: NODE_SUITE_DIR (default target/node-cluster), NODE_SYNC_FREQUENCY (kubelet,
# default 10s), NODE_PROPAGATION_UPDATES (default 20), CONTROL_PLANE_CACHE.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local

# The Debian packages the node and the image builds use, installed when missing (root).
needed=()
for pair in buildah:buildah containerd:containerd runc:runc busybox:busybox-static; do
	[ -n "${NODE_SUITE_QUICK:-}" ] && [ "${pair%%:*}" = buildah ] && continue
	command -v "${pair%%:*}" >/dev/null || needed+=("${pair#*:}")
done
if [ "${#needed[@]}" -gt 0 ]; then
	echo "== apt-get install ${needed[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
fi

tools_bin="$(./scripts/install-tools.sh | tail -n1)"
export PATH="$tools_bin:$PATH"
dir="${NODE_SUITE_DIR:-$PWD/target/node-cluster}"
images="$PWD/target/node-images"
mkdir -p "$images"
started=$SECONDS

quick="${NODE_SUITE_QUICK:-}"
if [ -z "$quick" ]; then
	echo "== operator image (Dockerfile, buildah)"
	operator_image="$(scripts/build-image.sh node --archive "$images/operator.tar" | tail -n1)"
fi
echo "== consumer image (examples/consumers)"
consumer_image="$(examples/consumers/image.sh "$images/consumers.tar" | tail -n1)"

echo "== control plane with a node"
scripts/control-plane.sh down "$dir" >/dev/null 2>&1 || true
on_exit() {
	status=$?
	if [ "$status" -ne 0 ] && [ -d "$dir/logs" ]; then
		for log in "$dir"/logs/kubelet.log "$dir"/logs/containerd.log; do
			echo "---- last lines of $log" >&2
			tail -n 30 "$log" >&2 || true
		done
	fi
	scripts/control-plane.sh down "$dir" || true
	exit "$status"
}
trap on_exit EXIT
scripts/control-plane.sh up "$dir" --node

# shellcheck disable=SC1091 # written by control-plane.sh up
. "$dir/env"
ctr_node() { ctr --address "$CONTAINERD_ADDRESS" -n k8s.io "$@"; }
ctr_node images import "$images/consumers.tar" >/dev/null
if [ -z "$quick" ]; then
	ctr_node images import "$images/operator.tar" >/dev/null
	# Two tags of one image: `helm upgrade` moves the release from one to the other.
	ctr_node images tag --force "$operator_image" "${operator_image}-a" >/dev/null
	ctr_node images tag --force "$operator_image" "${operator_image}-b" >/dev/null
else
	operator_image=none
	set -- "$@" propagation
	export NODE_PROPAGATION_UPDATES="${NODE_PROPAGATION_UPDATES:-5}"
fi
echo "node images:"
ctr_node images ls -q | grep -v '^sha256:' | sed 's/^/  /'
echo "== images and node ready in $((SECONDS - started)) s"

echo "== real pods: the operator as the chart's pod, consumer pods (tests/real_node)"
CLEAR_OPERATOR_NODE_ENV="$dir/env" \
	CLEAR_OPERATOR_NODE_IMAGES="${operator_image}-a,${operator_image}-b" \
	CLEAR_OPERATOR_NODE_CONSUMER_IMAGE="$consumer_image" \
	cargo test --locked -p clear-operator --test real_node "$@" -- --test-threads=1 --nocapture
echo "== node suite done in $((SECONDS - started)) s"
