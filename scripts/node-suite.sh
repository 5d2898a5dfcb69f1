#!/usr/bin/env bash
# The real-pod suite, in one command (docs/development.md, "Real pods on a real node"): builds the operator
# image from the Dockerfile (scripts/build-image.sh, with buildah) and the consumer examples'
# image (examples/consumers/image.sh), starts the control plane with a node
# (scripts/control-plane.sh up DIR --node), loads both images into the node's containerd,
# runs `cargo test --test real_node` (tests/real_node), and stops everything it started.
#
#   scripts/node-suite.sh [cargo test args...]
#   NODE_SUITE_QUICK=1 scripts/node-suite.sh    the subset CI runs (scripts/test.sh): no
#       operator image build; the node up and down, the propagation test (5 updates), the
#       nudge test and the teardown check
#
# After the tests: the kubelet restarted with syncFrequency 10m (scripts/control-plane.sh
# kubelet-restart) for the nudge test (tests/real_node/nudge.rs), which must rule out a
# periodic sync; then the teardown check: pods left running (one with a Secret volume and
# hostNetwork, one without hostNetwork, whose sandbox holds a network namespace), `down`,
# and the host compared with its state before `up` (scripts/node-host-state.sh: log
# symlinks, mounts, cgroups, sysctls, iptables, network namespaces, CNI and containerd
# state). That comparison assumes no other node runs on the machine meanwhile.
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
host_before="$dir.host-before"
scripts/node-host-state.sh >"$host_before"
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

real_node() { # cargo-test-args... -- test-binary-args...
	CLEAR_OPERATOR_NODE_ENV="$dir/env" \
		CLEAR_OPERATOR_NODE_IMAGES="${operator_image}-a,${operator_image}-b" \
		CLEAR_OPERATOR_NODE_CONSUMER_IMAGE="$consumer_image" \
		cargo test --locked -p clear-operator --test real_node "$@"
}
echo "== real pods: the operator as the chart's pod, consumer pods (tests/real_node)"
real_node "$@" -- --test-threads=1 --nocapture --skip nudge::

if [ -n "$quick" ] || [ "$#" -eq 0 ] || [[ "$*" == *nudge* ]]; then
	echo "== the nudge, with the kubelet at syncFrequency 10m (tests/real_node/nudge.rs)"
	phase=$SECONDS
	NODE_SYNC_FREQUENCY=10m scripts/control-plane.sh kubelet-restart "$dir"
	real_node nudge:: -- --test-threads=1 --nocapture
	echo "== nudge test in $((SECONDS - phase)) s"
fi

echo "== down with pods running restores the host"
phase=$SECONDS
kc() { kubectl --kubeconfig "$KUBECONFIG" -n teardown "$@"; }
kubectl --kubeconfig "$KUBECONFIG" create namespace teardown >/dev/null
until kc get serviceaccount default >/dev/null 2>&1; do sleep 0.2; done
kc create secret generic tok --from-literal=token=v0 >/dev/null
kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: hostnet}
spec:
  nodeName: "$NODE_NAME"
  hostNetwork: true
  terminationGracePeriodSeconds: 30
  volumes: [{name: tok, secret: {secretName: tok}}]
  containers:
  - {name: c, image: "$BUSYBOX_IMAGE", imagePullPolicy: Never, volumeMounts: [{name: tok, mountPath: /tok}]}
---
apiVersion: v1
kind: Pod
metadata: {name: podnet}
spec:
  nodeName: "$NODE_NAME"
  terminationGracePeriodSeconds: 30
  containers:
  - {name: c, image: "$BUSYBOX_IMAGE", imagePullPolicy: Never}
EOF
kc wait --for=condition=Ready pod/hostnet --timeout=180s >/dev/null
# What `down` must clean up is there: the running pod's log symlink, into DIR.
ours() { find /var/log/containers -maxdepth 1 -type l -lname "$dir/*" 2>/dev/null; }
until [ -n "$(ours)" ]; do sleep 0.2; done
echo "left running: $(kc get pods --no-headers | awk '{print $1 " " $3}' | paste -sd, -);" \
	"symlinks into $dir: $(ours | wc -l); network namespaces: $(ls /run/netns 2>/dev/null | wc -l)"
scripts/control-plane.sh down "$dir"
if ! scripts/node-host-state.sh | diff -u "$host_before" - >&2; then
	echo "FAIL: the host differs from its state before up (- before, + after down)" >&2
	exit 1
fi
dangling="$(find /var/log/containers -maxdepth 1 -xtype l 2>/dev/null || true)"
[ -z "$dangling" ] || { echo "FAIL: dangling symlinks: $dangling" >&2; exit 1; }
rm -f "$host_before"
echo "== host restored exactly; teardown check in $((SECONDS - phase)) s"
echo "== node suite done in $((SECONDS - started)) s"
