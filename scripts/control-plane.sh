#!/usr/bin/env bash
# A real Kubernetes control plane for the tests: etcd, kube-apiserver and
# kube-controller-manager of the release pinned in tools/control-plane, built from Go
# modules and run on 127.0.0.1 as three processes.
#
#   scripts/control-plane.sh build        builds the binary if needed (cached), prints its path
#   scripts/control-plane.sh up DIR       starts the three, waits for /readyz, writes DIR/kubeconfig
#   scripts/control-plane.sh up DIR --node  ...plus kube-scheduler and a node (containerd and a
#                                         kubelet, scripts/node.sh), waits until the Node is Ready
#   scripts/control-plane.sh down DIR     stops exactly what `up DIR` started, removes DIR
#                                         and restores the host (also with pods running)
#   scripts/control-plane.sh kubelet-restart DIR  restarts the node's kubelet alone, with
#                                         NODE_SYNC_FREQUENCY (pods keep running)
#
# `up` turns on RBAC, ServiceAccount token signing (`kubectl create token` works), the
# garbage-collector, namespace and serviceaccount controllers, and an audit log of every
# request not made by the control plane itself (DIR/logs/audit.log: tests read it to check
# RBAC from the server's own record). DIR/kubeconfig is a cluster-admin identity
# (system:masters); DIR/env holds the ports and paths for scripts.
#
# With --node (root, Debian packages containerd runc busybox-static): the Node authorizer
# and NodeRestriction, the controllers pods need, and the node named 127.0.0.1; `down` also
# stops containerd, the kubelet and the pods' containers and undoes the kubelet's host
# changes (see scripts/node.sh).
#
# Environment: CONTROL_PLANE_CACHE (where built binaries are kept; default .tools/control-plane),
# CONTROL_PLANE_START_TIMEOUT (seconds per component, default 180).
set -euo pipefail
export GOTOOLCHAIN=local

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module="$root/tools/control-plane"
cache="${CONTROL_PLANE_CACHE:-$root/.tools/control-plane}"
start_timeout="${CONTROL_PLANE_START_TIMEOUT:-180}"
kube_version="$(cat "$module/KUBERNETES_VERSION")"
with_node=""
# shellcheck source=scripts/node.sh
. "$root/scripts/node.sh"

say() { echo "control-plane: $*" >&2; }
die() { say "$*"; exit 1; }

# The binary is cached under a hash of everything that goes into it, so an edit of the
# module rebuilds and nothing else does.
binary_path() {
	local hash
	hash="$(cat "$module"/go.mod "$module"/go.sum "$module"/*.go "$module/KUBERNETES_VERSION" | sha256sum | cut -c1-16)"
	echo "$cache/$kube_version-$hash/control-plane"
}

build() {
	local out
	out="$(binary_path)"
	if [ -x "$out" ]; then
		echo "$out"
		return
	fi
	# NB: Go is installed in /usr/local/go on our machines; a non-login shell may lack it on PATH.
	command -v go >/dev/null || PATH="$PATH:/usr/local/go/bin"
	command -v go >/dev/null || die "go is not installed; the control plane is built from Go modules"
	mkdir -p "$(dirname "$out")"
	local minor="${kube_version#*.}"
	minor="${minor%%.*}"
	local pkg=k8s.io/component-base/version
	local started=$SECONDS
	say "building Kubernetes v$kube_version (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet) from Go modules; a cold build takes several minutes"
	# NB: without these -X flags the servers report v0.0.0-master, which kubectl and helm
	# read (helm refuses charts whose kubeVersion then does not match).
	(cd "$module" && go build -trimpath -o "$out.tmp" \
		-ldflags "-s -w -X $pkg.gitVersion=v$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z" \
		.) || die "go build of tools/control-plane failed"
	mv "$out.tmp" "$out"
	say "built in $((SECONDS - started)) s: $out"
	echo "$out"
}

free_ports() {
	python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

gen_certs() {
	local d="$1/pki"
	mkdir -p "$d"
	(
		cd "$d"
		openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
			-subj "/CN=clear-operator-test-ca" 2>/dev/null
		sign() { # name subject [extensions]
			openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
			printf '%s\n' "${3:-}" >"$1.ext"
			openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
				-out "$1.crt" -extfile "$1.ext" 2>/dev/null
		}
		sign apiserver "/CN=kube-apiserver" \
			"subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:127.0.0.1,IP:10.0.0.1
extendedKeyUsage=serverAuth"
		sign admin "/O=system:masters/CN=control-plane-admin" "extendedKeyUsage=clientAuth"
		sign controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
		openssl genrsa -out sa.key 2048 2>/dev/null
		openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
	)
}

write_kubeconfig() { # path server user
	local d="$DIR/pki"
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: control-plane
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 <"$d/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(base64 -w0 <"$d/$3.crt")
    client-key-data: $(base64 -w0 <"$d/$3.key")
contexts:
- name: control-plane
  context: {cluster: control-plane, user: $3}
current-context: control-plane
EOF
	chmod 600 "$1"
}

write_audit_policy() {
	cat >"$DIR/audit-policy.yaml" <<'EOF'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
# The control plane's own traffic is noise for the tests that read this log.
- level: None
  users: ["system:apiserver", "system:kube-controller-manager"]
- level: None
  userGroups: ["system:serviceaccounts:kube-system", "system:nodes"]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version"]
- level: Metadata
EOF
}

# Starts one component in its own session (so a signal to the caller's process group
# does not reach it) and records its PID.
start() { # name args...
	local name="$1"
	shift
	setsid "$BIN" "$name" "$@" >"$DIR/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$DIR/pids/$name.pid"
}

alive() { kill -0 "$(cat "$DIR/pids/$1.pid")" 2>/dev/null; }

# Waits until `check` succeeds; fails naming the component and its log when it dies or
# does not get ready in time, after stopping whatever was started.
wait_for() { # name check...
	local name="$1"
	shift
	local deadline=$((SECONDS + start_timeout))
	until "$@" >/dev/null 2>&1; do
		if ! alive "$name"; then
			fail_start "$name" "exited before it was ready"
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			fail_start "$name" "not ready within ${start_timeout}s"
		fi
		sleep 0.5
	done
}

fail_start() { # name why
	say "$1 failed to start: $2. Its log: $DIR/logs/$1.log"
	tail -n 30 "$DIR/logs/$1.log" >&2 || true
	stop_all
	die "startup aborted; logs kept in $DIR/logs"
}

stop_all() {
	local f pid name
	node_down
	for name in kube-scheduler kube-controller-manager kube-apiserver etcd; do
		f="$DIR/pids/$name.pid"
		[ -f "$f" ] || continue
		pid="$(cat "$f")"
		# NB: only a process still running our binary for this DIR is ours; a PID reused
		# by another process since then is left alone.
		if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR"; then
			kill -TERM "$pid" 2>/dev/null || true
			for _ in $(seq 1 100); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			if kill -0 "$pid" 2>/dev/null; then
				say "$name (pid $pid) ignored SIGTERM for 10s; killing it"
				kill -KILL "$pid" 2>/dev/null || true
			fi
		fi
		rm -f "$f"
	done
}

up() {
	[ -z "$with_node" ] || node_check_host
	BIN="$(build)"
	[ -e "$DIR/pids" ] && [ -n "$(ls -A "$DIR/pids" 2>/dev/null)" ] && die "$DIR already holds a running control plane (run: $0 down $DIR)"
	mkdir -p "$DIR/logs" "$DIR/pids" "$DIR/etcd"
	DIR="$(cd "$DIR" && pwd)"
	local started=$SECONDS
	read -r etcd_client etcd_peer apiserver_port kcm_port scheduler_port <<<"$(free_ports 5)"
	gen_certs "$DIR"
	local authorization=(--authorization-mode RBAC) controllers=garbagecollector,namespace,serviceaccount,serviceaccount-token
	if [ -n "$with_node" ]; then
		node_certs
		# shellcheck disable=SC2207 # the flags hold no spaces
		authorization=($(node_apiserver_flags))
		controllers="$controllers,$NODE_CONTROLLERS"
	fi
	write_audit_policy
	local pki="$DIR/pki" server="https://127.0.0.1:$apiserver_port"

	start etcd --data-dir "$DIR/etcd" \
		--listen-client-url "http://127.0.0.1:$etcd_client" --listen-peer-url "http://127.0.0.1:$etcd_peer"
	wait_for etcd curl -sf "http://127.0.0.1:$etcd_client/health"

	start kube-apiserver \
		--etcd-servers "http://127.0.0.1:$etcd_client" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
		--cert-dir "$DIR/apiserver" \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" \
		"${authorization[@]}" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$pki/sa.pub" \
		--service-account-signing-key-file "$pki/sa.key" \
		--service-cluster-ip-range 10.0.0.0/24 \
		--allow-privileged=true \
		--endpoint-reconciler-type none \
		--audit-policy-file "$DIR/audit-policy.yaml" \
		--audit-log-path "$DIR/logs/audit.log" --audit-log-format json --audit-log-maxsize 0
	wait_for kube-apiserver curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$server/readyz"

	write_kubeconfig "$DIR/kubeconfig" "$server" admin
	write_kubeconfig "$DIR/controller-manager.kubeconfig" "$server" controller-manager
	start kube-controller-manager \
		--kubeconfig "$DIR/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$DIR/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$DIR/controller-manager" \
		--leader-elect=false \
		--controllers "$controllers" \
		--use-service-account-credentials \
		--service-account-private-key-file "$pki/sa.key" \
		--root-ca-file "$pki/ca.crt"
	wait_for kube-controller-manager curl -sfk "https://127.0.0.1:$kcm_port/healthz"
	# The serviceaccount controller creating `default` proves the controllers run (and
	# tests that create namespaces get their ServiceAccounts as in a real cluster).
	wait_for kube-controller-manager curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
		"$server/api/v1/namespaces/default/serviceaccounts/default"

	if [ -n "$with_node" ]; then
		write_kubeconfig "$DIR/scheduler.kubeconfig" "$server" scheduler
		start kube-scheduler \
			--kubeconfig "$DIR/scheduler.kubeconfig" \
			--authentication-kubeconfig "$DIR/scheduler.kubeconfig" \
			--authorization-kubeconfig "$DIR/scheduler.kubeconfig" \
			--bind-address 127.0.0.1 --secure-port "$scheduler_port" --leader-elect=false
		wait_for kube-scheduler curl -sfk "https://127.0.0.1:$scheduler_port/healthz"
	fi

	cat >"$DIR/env" <<EOF
KUBERNETES_VERSION=v$kube_version
KUBECONFIG=$DIR/kubeconfig
API_SERVER=$server
ETCD=http://127.0.0.1:$etcd_client
CONTROLLER_MANAGER=https://127.0.0.1:$kcm_port
AUDIT_LOG=$DIR/logs/audit.log
CA_FILE=$pki/ca.crt
EOF
	if [ -n "$with_node" ]; then
		say "starting the node: containerd and a kubelet"
		node_up
	fi
	say "Kubernetes v$kube_version ready at $server in $((SECONDS - started)) s (pids: $(cat "$DIR"/pids/*.pid | tr '\n' ' '))"
	say "export KUBECONFIG=$DIR/kubeconfig"
}

down() {
	[ -d "$DIR" ] || { say "$DIR does not exist; nothing to stop"; return; }
	DIR="$(cd "$DIR" && pwd)"
	[ -d "$DIR/pids" ] || die "$DIR was not made by '$0 up' (no pids/); not removing it"
	stop_all
	rm -rf "$DIR"
	say "stopped and removed $DIR"
}

case "${1:-}" in
build) build ;;
up)
	DIR="${2:?usage: $0 up DIR [--node]}"
	case "${3:-}" in
	"") ;;
	--node) with_node=1 ;;
	*) die "usage: $0 up DIR [--node]" ;;
	esac
	up
	;;
down)
	DIR="${2:?usage: $0 down DIR}"
	down
	;;
kubelet-restart)
	DIR="$(cd "${2:?usage: $0 kubelet-restart DIR}" && pwd)"
	BIN="$(build)"
	node_restart_kubelet
	;;
*)
	echo "usage: $0 build | up DIR [--node] | down DIR | kubelet-restart DIR" >&2
	exit 2
	;;
esac
