#!/usr/bin/env bash
# An API server outage for the tests: kills the kube-apiserver that `control-plane.sh up DIR`
# started, keeps it down for SECONDS, then starts it again with the same command line and
# waits until it is ready. etcd (and so every object) stays up, as when an API server is
# restarted or crashes in a real cluster.
#
#   scripts/apiserver-outage.sh DIR SECONDS
#
# Exits 0 once the API server answers /readyz again (its new PID replaces the old one in
# DIR/pids, so `control-plane.sh down DIR` still stops it).
set -euo pipefail

DIR="${1:?usage: $0 DIR SECONDS}"
SECONDS_DOWN="${2:?usage: $0 DIR SECONDS}"
DIR="$(cd "$DIR" && pwd)"
pidfile="$DIR/pids/kube-apiserver.pid"
say() { echo "apiserver-outage: $*" >&2; }

pid="$(cat "$pidfile")"
# NB: only a process still running the control plane's binary for this DIR is ours.
[ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$DIR" ||
	{ say "pid $pid is not the kube-apiserver of $DIR"; exit 1; }
mapfile -d '' argv <"/proc/$pid/cmdline"

# NB: SIGKILL, a crash: a graceful shutdown keeps serving for seconds, and the outage must
# begin at once (the test times it against a call to Clear in flight).
kill -KILL "$pid"
for _ in $(seq 1 100); do
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
say "kube-apiserver (pid $pid) stopped; down for ${SECONDS_DOWN}s"
sleep "$SECONDS_DOWN"

setsid "${argv[@]}" >>"$DIR/logs/kube-apiserver.log" 2>&1 </dev/null &
echo $! >"$pidfile"
# shellcheck disable=SC1091
source "$DIR/env"
pki="$DIR/pki"
for _ in $(seq 1 600); do
	if curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
		"$API_SERVER/readyz" >/dev/null 2>&1; then
		say "kube-apiserver back (pid $(cat "$pidfile"))"
		exit 0
	fi
	sleep 0.5
done
say "kube-apiserver did not get ready again within 300s; its log: $DIR/logs/kube-apiserver.log"
exit 1
