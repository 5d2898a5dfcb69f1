# shellcheck shell=bash
# A real node for the control plane of scripts/control-plane.sh: containerd and a kubelet
# of the pinned Kubernetes release, registered as a Node with its own identity. Sourced by
# scripts/control-plane.sh (`up DIR --node`, `down DIR`), whose helpers and variables
# (DIR, BIN, start, wait_for, say, die) it uses; not run on its own.
#
# What the node is, and why:
# - containerd started by hand (no systemd here) with everything under DIR/node: its root,
#   state, socket, CNI config. The one setting this machine needs is
#   `restrict_oom_score_adj = true` (root lacks CAP_SYS_RESOURCE; without it runc fails to
#   create any sandbox). Images come from local OCI archives (`ctr images import`), never
#   from a registry: a pause image is made here from Debian's busybox-static.
# - The kubelet's identity is a client certificate for system:node:NAME in system:nodes;
#   the API server runs the Node authorizer and NodeRestriction (as kubeadm sets them), so
#   the node reads only its own pods' Secrets. Its serving port is on 127.0.0.1 and it
#   authorizes the API server's client certificate by webhook.
# - The node is named 127.0.0.1: the kubelet takes an IP-literal name as the node's
#   InternalIP (it refuses a loopback --node-ip), so hostNetwork pods get 127.0.0.1 as
#   their IP and probes, logs and exec all stay on loopback.
# - Only hostNetwork pods are expected: the CNI config is loopback-only.
# - Host changes, all undone by `down`, also with pods still running (scripts/node-suite.sh
#   asserts it with scripts/node-host-state.sh): the kubelet's sysctls (saved first,
#   restored), the mounts under DIR (its root dir, Secret tmpfs volumes, container rootfs),
#   the cgroups under a cgroup root of its own, and what the kubelet and containerd put at
#   fixed host paths whatever their configuration says: the pods' log symlinks in
#   /var/log/containers (only those pointing into DIR are removed), the device-plugin
#   socket in /var/lib/kubelet/device-plugins, the shim sockets in /run/containerd/s, the
#   network namespaces in /run/netns of pods without hostNetwork (made before their
#   sandbox fails), and every such directory that did not exist before `up` (removed only
#   when empty). runc's state and the flexvolume plugin directory are kept under DIR.
#   iptables are left alone (makeIPTablesUtilChains: false): hostNetwork pods need no
#   rules, and the chains are shared by every kubelet on a machine.
#
# Needs root and the Debian packages containerd, runc, busybox-static.
# Environment: NODE_SYNC_FREQUENCY (kubelet syncFrequency, default 10s: how often it
# re-reads a pod's Secret volumes; `default` leaves it unset, i.e. Kubernetes' default 1m).

NODE_NAME=127.0.0.1
PAUSE_IMAGE=localhost/clear-node-pause:1
# The kubelet's sysctls (pkg/kubelet/cm setupKernelTunables), saved before it starts.
NODE_SYSCTLS="vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes"
# Fixed host paths the kubelet, containerd and mount(8) create whatever DIR is (deepest
# last); `up` records those that do not exist yet and `down` removes them again if empty.
NODE_HOST_DIRS="/var/log/containers /var/log/pods /var/lib/kubelet /var/lib/kubelet/device-plugins /run/containerd /run/containerd/s /run/containerd/runc /run/netns /run/mount /var/lib/cni /var/lib/cni/results"

node_check_host() {
	[ "$(id -u)" -eq 0 ] || die "--node needs root (containerd, the kubelet's mounts and cgroups)"
	local tool
	for tool in containerd ctr runc busybox; do
		command -v "$tool" >/dev/null || die "--node needs $tool (apt-get install containerd runc busybox-static)"
	done
}

node_certs() {
	(
		cd "$DIR/pki"
		sign() { # name subject extensions
			openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
			printf '%s\n' "$3" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
				-out "$1.crt" -extfile "$1.ext" 2>/dev/null
		}
		sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
		sign scheduler "/CN=system:kube-scheduler" "extendedKeyUsage=clientAuth"
		# The API server's identity towards kubelets (logs, exec), as kubeadm makes it.
		sign apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "extendedKeyUsage=clientAuth"
	)
}

# Extra kube-apiserver flags of a cluster with a node.
node_apiserver_flags() {
	echo --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--kubelet-client-certificate "$DIR/pki/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$DIR/pki/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP
}

# Controllers a node's pods need beyond the base set: Deployments make ReplicaSets make
# pods; node lifecycle lifts the not-ready taint; the root CA publisher writes the
# kube-root-ca.crt ConfigMap every projected ServiceAccount token volume mounts.
NODE_CONTROLLERS=deployment,replicaset,nodelifecycle,root-ca-cert-publisher

# Writes an OCI image layout archive that `ctr images import` loads: ROOTFS as one layer.
oci_archive() { # name rootfs-dir out.tar entrypoint-json
	python3 "$root/scripts/oci-archive.py" "$@"
}

node_ctr() { ctr --address "$DIR/node/containerd.sock" -n k8s.io "$@"; }

# Loads an image archive (OCI layout or docker-archive) into the node's containerd.
node_import() { # archive
	node_ctr images import --all-platforms "$1" >/dev/null
}

node_write_containerd_config() {
	local n="$DIR/node"
	mkdir -p "$n/cni" "$n/containerd"
	# NB: the kubelet reports the node NotReady ("cni plugin not initialized") until the
	# runtime has a network config, even if every pod uses hostNetwork. A loopback-only
	# config satisfies it and creates nothing on the host; a pod without hostNetwork fails
	# to start on it ("failed to find network info"), which is what we want here.
	echo '{"cniVersion": "0.4.0", "name": "loopback-only", "plugins": [{"type": "loopback"}]}' \
		>"$n/cni/10-loopback.conflist"
	cat >"$n/containerd.toml" <<EOF
version = 2
root = "$n/containerd/root"
state = "$n/containerd/state"
[grpc]
  address = "$n/containerd.sock"
[ttrpc]
  address = "$n/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$n/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state, by default in /run/containerd/runc.
        Root = "$n/runc"
EOF
}

node_write_kubelet_config() { # kubelet-port healthz-port
	local n="$DIR/node"
	cat >"$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: $1
healthzBindAddress: 127.0.0.1
healthzPort: $2
readOnlyPort: 0
containerRuntimeEndpoint: unix://$n/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$(node_cgroup_root)
failCgroupV1: false
failSwapOn: false
rotateCertificates: false
serverTLSBootstrap: false
makeIPTablesUtilChains: false
$(node_sync_frequency_line)
podLogsDir: $n/pod-logs
# By default /usr/libexec/kubernetes/kubelet-plugins/volume/exec, made at start.
volumePluginDir: $n/volume-plugins
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization:
  mode: Webhook
# Locally imported images only: never garbage-collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
EOF
}

node_sync_frequency_line() {
	if [ "${NODE_SYNC_FREQUENCY:-}" = default ]; then
		echo "# syncFrequency: unset, Kubernetes' default (1m)"
	else
		echo "syncFrequency: $(node_sync_frequency)"
	fi
}

# The kubelet's effective syncFrequency.
node_sync_frequency() {
	case "${NODE_SYNC_FREQUENCY:-10s}" in
	default) echo 1m ;;
	*) echo "${NODE_SYNC_FREQUENCY:-10s}" ;;
	esac
}

# The kubelet's cgroups live under a root named for DIR, so `down` removes exactly them.
node_cgroup_root() { echo "clear-node-$(echo "$DIR" | sha256sum | cut -c1-8)"; }

node_up() {
	local n="$DIR/node"
	mkdir -p "$n/logs" "$n/kubelet" "$n/pod-logs"
	local path
	for path in $NODE_HOST_DIRS; do
		[ -e "$path" ] || echo "$path"
	done >"$n/host-dirs.absent"
	node_write_containerd_config
	setsid containerd --config "$n/containerd.toml" >"$DIR/logs/containerd.log" 2>&1 </dev/null &
	echo $! >"$DIR/pids/containerd.pid"
	wait_for containerd node_ctr version

	say "importing the pause image (busybox-static, sleeps)"
	local rootfs="$n/pause-rootfs"
	mkdir -p "$rootfs/bin"
	cp "$(command -v busybox)" "$rootfs/bin/busybox"
	oci_archive "$PAUSE_IMAGE" "$rootfs" "$n/pause.tar" '["/bin/busybox", "sleep", "2147483647"]'
	node_import "$n/pause.tar"
	rm -rf "$rootfs" "$n/pause.tar"

	# Saved before the kubelet changes them; `down` writes them back.
	local key
	for key in $NODE_SYSCTLS; do
		echo "$key=$(sysctl -n "$key")"
	done >"$n/sysctls.saved"

	# The kubelet requires its cgroup root to exist in every hierarchy; a new cpuset cgroup
	# has no CPUs or memory nodes until given its parent's.
	local cgroot hierarchy
	cgroot="$(node_cgroup_root)"
	for hierarchy in /sys/fs/cgroup/*/; do
		[ "$hierarchy" = /sys/fs/cgroup/unified/ ] && continue
		mkdir -p "$hierarchy$cgroot"
	done
	if [ -d /sys/fs/cgroup/cpuset ]; then
		cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset/$cgroot/cpuset.cpus"
		cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset/$cgroot/cpuset.mems"
	fi

	read -r kubelet_port healthz_port <<<"$(free_ports 2)"
	node_write_kubelet_config "$kubelet_port" "$healthz_port"
	write_kubeconfig "$n/kubelet.kubeconfig" "$server" kubelet
	node_start_kubelet
	wait_for kubelet node_ready
	cat >>"$DIR/env" <<EOF
NODE_NAME=$NODE_NAME
CONTAINERD_ADDRESS=$n/containerd.sock
KUBELET_HEALTHZ=http://127.0.0.1:$healthz_port/healthz
KUBELET_URL=https://127.0.0.1:$kubelet_port
BUSYBOX_IMAGE=$PAUSE_IMAGE
POD_LOGS=$n/pod-logs
NODE_SYNC_FREQUENCY=$(node_sync_frequency)
EOF
}

node_start_kubelet() {
	local n="$DIR/node"
	start kubelet --config "$n/kubelet.yaml" --kubeconfig "$n/kubelet.kubeconfig" \
		--root-dir "$n/kubelet" --cert-dir "$n/kubelet-pki" --hostname-override "$NODE_NAME" \
		--v 1
}

# Restarts the kubelet alone with NODE_SYNC_FREQUENCY (containerd and the pods keep
# running; the kubelet adopts them): a test that needs another sync period than the rest
# of the suite gets it in seconds, without a second node.
node_restart_kubelet() {
	local n="$DIR/node" port healthz
	[ -f "$n/kubelet.yaml" ] || die "$DIR has no node (up DIR --node)"
	port="$(awk '$1 == "port:" {print $2}' "$n/kubelet.yaml")"
	healthz="$(awk '$1 == "healthzPort:" {print $2}' "$n/kubelet.yaml")"
	node_stop_pid kubelet
	node_write_kubelet_config "$port" "$healthz"
	node_start_kubelet
	wait_for kubelet curl -sf "http://127.0.0.1:$healthz/healthz"
	# The kubelet's config as it runs it, read back from its /configz (served a moment
	# after /healthz).
	wait_for kubelet node_configz "$port"
	local effective
	effective="$(node_configz "$port" | python3 -c 'import json,sys; print(json.load(sys.stdin)["kubeletconfig"]["syncFrequency"])')"
	sed -i "s/^NODE_SYNC_FREQUENCY=.*/NODE_SYNC_FREQUENCY=$(node_sync_frequency)/" "$DIR/env"
	say "kubelet restarted (pid $(cat "$DIR/pids/kubelet.pid")), syncFrequency $effective"
}

# NB: -k: the kubelet serves a self-signed certificate of its own (no serving certificate
# from the cluster CA is set up); the request is on loopback and carries our client
# certificate, which the kubelet checks.
node_configz() { # kubelet-port
	curl -sfk --cert "$DIR/pki/admin.crt" --key "$DIR/pki/admin.key" "https://127.0.0.1:$1/configz"
}

node_ready() {
	curl -sf --cacert "$DIR/pki/ca.crt" --cert "$DIR/pki/admin.crt" --key "$DIR/pki/admin.key" \
		"$server/api/v1/nodes/$NODE_NAME" |
		python3 -c 'import json,sys; n=json.load(sys.stdin); sys.exit(0 if any(c["type"]=="Ready" and c["status"]=="True" for c in n["status"]["conditions"]) else 1)'
}

# Stops a process we started, by the PID recorded in DIR/pids, if it still runs our DIR.
node_stop_pid() { # name
	local f="$DIR/pids/$1.pid" pid
	[ -f "$f" ] || return 0
	pid="$(cat "$f")"
	if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR"; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$f"
}

# The network namespace files (/run/netns/cni-*) of this node's sandboxes, from containerd's
# record of each container's OCI spec; hostNetwork pods have none.
node_netns_paths() {
	local id
	for id in $(node_ctr containers ls -q 2>/dev/null); do
		node_ctr containers info "$id" 2>/dev/null | python3 -c '
import json, sys
spec = json.load(sys.stdin).get("Spec") or {}
for ns in (spec.get("linux") or {}).get("namespaces") or []:
    if ns.get("type") == "network" and ns.get("path"):
        print(ns["path"])'
	done | sort -u
}

# The shim sockets containerd 1.6 makes for this node's containers: /run/containerd/s/ and
# sha256 of "ADDRESS/NAMESPACE/ID" (runtime/v2/shim SocketAddress), whatever its state dir.
node_shim_sockets() {
	local id
	for id in $(node_ctr containers ls -q 2>/dev/null); do
		echo "/run/containerd/s/$(printf '%s' "$DIR/node/containerd.sock/k8s.io/$id" | sha256sum | cut -c1-64)"
	done
}

# libcni's cache of a successful CNI ADD (/var/lib/cni/results/NETWORK-SANDBOXID-IFNAME),
# removed by a CNI DEL that a sandbox killed with the node never gets. None is written
# while no CNI plugin is installed (only hostNetwork pods run then).
node_cni_results() {
	local id
	for id in $(node_ctr containers ls -q 2>/dev/null); do
		ls -d /var/lib/cni/results/*-"$id"-* 2>/dev/null || true
	done
}

node_down() {
	local n="$DIR/node"
	[ -d "$n" ] || return 0
	node_stop_pid kubelet
	# The pods' containers outlive the kubelet (each has its own shim): kill and delete
	# them through containerd while it still runs, noting first what they hold on the host.
	local netns=() sockets=() cni_results=()
	if [ -f "$DIR/pids/containerd.pid" ] && node_ctr version >/dev/null 2>&1; then
		local id
		mapfile -t netns < <(node_netns_paths)
		mapfile -t sockets < <(node_shim_sockets)
		mapfile -t cni_results < <(node_cni_results)
		for id in $(node_ctr tasks ls -q 2>/dev/null); do
			node_ctr tasks kill -a -s SIGKILL "$id" >/dev/null 2>&1 || true
		done
		for id in $(node_ctr tasks ls -q 2>/dev/null); do
			for _ in $(seq 1 50); do
				node_ctr tasks delete "$id" >/dev/null 2>&1 && break
				sleep 0.1
			done
		done
		for id in $(node_ctr containers ls -q 2>/dev/null); do
			node_ctr containers delete "$id" >/dev/null 2>&1 || true
		done
	fi
	node_stop_pid containerd
	# Shims whose containerd was ours and that still run (their cmdline names our socket).
	local pid
	for pid in $(ls /proc | grep -E '^[0-9]+$'); do
		[ -r "/proc/$pid/cmdline" ] || continue
		if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-address $n/containerd.sock "; then
			say "stopping a leftover shim (pid $pid)"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	# Mounts under DIR, deepest first: the kubelet's bind mount of its root dir on itself,
	# Secret and token tmpfs volumes, container rootfs overlays, sandbox shm.
	local mnt
	while read -r mnt; do
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || say "could not unmount $mnt"
	done < <(awk -v d="$DIR/" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r)
	# Network namespaces of our sandboxes (bind mounts of nsfs), and shim sockets left by a
	# shim that was killed.
	local path
	for path in "${netns[@]}"; do
		case "$path" in /run/netns/cni-* | /var/run/netns/cni-*) ;; *) continue ;; esac
		[ -e "$path" ] || continue
		umount "$path" 2>/dev/null || umount -l "$path" 2>/dev/null || true
		rm -f "$path" || say "could not remove $path"
	done
	for path in "${sockets[@]}"; do
		if [ -S "$path" ]; then rm -f "$path"; fi
	done
	for path in "${cni_results[@]}"; do
		rm -f "$path"
	done
	# The kubelet writes a log symlink per container into the fixed /var/log/containers and
	# removes it only when it removes the container: those of pods still running at `down`
	# stay. Ours are exactly those pointing into our pod log directory.
	local link target
	for link in /var/log/containers/*.log; do
		[ -L "$link" ] || continue
		target="$(readlink "$link")"
		case "$target" in "$n/pod-logs/"*) rm -f "$link" ;; esac
	done
	# The device manager's registration socket (pluginapi.KubeletSocket, a fixed path) and
	# its checkpoint, when /var/lib/kubelet/device-plugins was not there before `up`.
	if grep -qxF /var/lib/kubelet/device-plugins "$n/host-dirs.absent" 2>/dev/null; then
		rm -f /var/lib/kubelet/device-plugins/kubelet.sock /var/lib/kubelet/device-plugins/kubelet_internal_checkpoint
	fi
	# The fixed directories that did not exist before `up`, deepest first, if empty.
	if [ -f "$n/host-dirs.absent" ]; then
		while read -r path; do
			[ -d "$path" ] || continue
			rmdir "$path" 2>/dev/null || say "left $path: not empty ($(ls -A "$path" | head -n 3 | tr '\n' ' '))"
		done < <(sort -r "$n/host-dirs.absent")
	fi
	# Cgroups of the kubelet's root, deepest first, in every hierarchy.
	local root
	root="$(node_cgroup_root)"
	find /sys/fs/cgroup/*/"$root" -depth -type d -exec rmdir {} + 2>/dev/null || true
	if ls -d /sys/fs/cgroup/*/"$root" >/dev/null 2>&1; then
		say "cgroups left under /sys/fs/cgroup/*/$root"
	fi
	if [ -f "$n/sysctls.saved" ]; then
		local line
		while read -r line; do
			sysctl -q -w "$line" >/dev/null || say "could not restore sysctl $line"
		done <"$n/sysctls.saved"
	fi
}
