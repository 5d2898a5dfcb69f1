#!/usr/bin/env bash
# Does patching a running pod make its kubelet refresh the Secret it mounts now, instead of
# at the kubelet's next periodic sync of the pod (syncFrequency, 1m by default, plus up to
# 50% jitter)? Measured on a real node of scripts/control-plane.sh (`up DIR --node`), with
# the kubelet at Kubernetes' DEFAULT sync settings (NODE_SYNC_FREQUENCY=default: no
# syncFrequency in its configuration, so 1m; Watch change detection for Secrets).
#
#   sudo scripts/nudge-experiment.sh
#
# Root is needed (containerd and a kubelet). Uses the cached control-plane binary
# (CONTROL_PLANE_CACHE) and Debian's containerd, runc and busybox-static; starts its own
# cluster in NUDGE_DIR (default target/nudge-cluster) on 127.0.0.1 and removes it at exit
# (`control-plane.sh down`, which restores the host).
#
# What runs: a Secret `tok` (key `token`), and hostNetwork busybox pods that read their
# mounted files every 0.2 s and print each new value (the container runtime's log
# timestamp says when it was read):
#   - `nudged`: `tok` as a `secret` volume (/s), as a `projected` volume source (/p), and
#     its key through a `subPath` mount (/sub/token);
#   - `plain-1`..`plain-K` (NUDGE_PLAIN_PODS, default 6): /s and /p, never patched.
# Mode (b), nudge (NUDGE_UPDATES rounds, default 20): update the Secret's data, then at once
# patch an annotation on `nudged` (a JSON merge patch of metadata.annotations
# clear-operator.io/token-nudge=<round>, the request `kubectl annotate pod nudged
# clear-operator.io/token-nudge=<round> --overwrite` sends), and wait until /s and /p show
# the new value. Mode (a), no nudge (NUDGE_PLAIN_ROUNDS rounds, default 2, each giving one
# sample per plain pod): wait until every plain pod shows the current value and a further
# random 0-60 s (so the update does not follow the slowest pod's sync), update the Secret,
# wait until every plain pod shows the new one. Every update also starts after a random
# 0-2 s pause, so it is not in step with the kubelet's loops. Takes about 6 minutes.
#
# Printed: per mode and volume type, the time from the Secret update (the API server's
# response to the PATCH) to the new value read in the pod, as n, p50, p99, min and max
# (percentiles interpolated linearly between ranks, so p99 of a small n is about the max),
# and the value the subPath mount shows at the end (it is never updated). The raw samples
# go to NUDGE_DIR/../nudge-samples.tsv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GOTOOLCHAIN=local

[ "$(id -u)" -eq 0 ] || { echo "nudge-experiment: needs root (a kubelet node)" >&2; exit 1; }
dir="${NUDGE_DIR:-$PWD/target/nudge-cluster}"
samples="$(dirname "$dir")/nudge-samples.tsv"
export NODE_SYNC_FREQUENCY="${NODE_SYNC_FREQUENCY:-default}"

scripts/control-plane.sh down "$dir" >/dev/null 2>&1 || true
trap 'scripts/control-plane.sh down "$dir" || true' EXIT
scripts/control-plane.sh up "$dir" --node

NUDGE_ENV="$dir/env" NUDGE_SAMPLES="$samples" python3 - <<'PY'
import http.client, json, os, random, ssl, statistics, sys, time
from datetime import datetime

env = dict(l.split("=", 1) for l in open(os.environ["NUDGE_ENV"]).read().splitlines() if "=" in l)
pki = os.path.join(os.path.dirname(env["KUBECONFIG"]), "pki")
host, port = env["API_SERVER"].removeprefix("https://").split(":")
ctx = ssl.create_default_context(cafile=f"{pki}/ca.crt")
ctx.load_cert_chain(f"{pki}/admin.crt", f"{pki}/admin.key")
conn = http.client.HTTPSConnection(host, int(port), context=ctx)
NS = "nudge"
UPDATES = int(os.environ.get("NUDGE_UPDATES", "20"))
PLAIN = int(os.environ.get("NUDGE_PLAIN_PODS", "6"))
ROUNDS = int(os.environ.get("NUDGE_PLAIN_ROUNDS", "2"))


def api(method, path, body=None, ctype="application/json"):
    global conn
    for attempt in (1, 2):
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body),
                         headers={"Content-Type": ctype})
            resp = conn.getresponse()
            data = resp.read()
            break
        except (OSError, http.client.HTTPException):
            # The server closes a keep-alive connection left idle (the no-nudge rounds wait
            # minutes): a new one.
            conn.close()
            conn = http.client.HTTPSConnection(host, int(port), context=ctx)
            if attempt == 2:
                raise
    if resp.status >= 300 and not (method == "POST" and resp.status == 409):
        sys.exit(f"{method} {path}: {resp.status} {data[:300]!r}")
    return json.loads(data) if data else None


def merge(path, body):
    return api("PATCH", path, body, "application/merge-patch+json")


READER = r"""
B=/bin/busybox; s=; p=; u=
while :; do
  v=; read -r v </s/token; [ "$v" != "$s" ] && { echo "seen s $v"; s=$v; }
  v=; read -r v </p/token; [ "$v" != "$p" ] && { echo "seen p $v"; p=$v; }
  if [ -e /sub/token ]; then v=; read -r v </sub/token; [ "$v" != "$u" ] && { echo "seen sub $v"; u=$v; }; fi
  $B sleep 0.2
done
"""


def pod(name, subpath):
    mounts = [{"name": "s", "mountPath": "/s"}, {"name": "p", "mountPath": "/p"}]
    if subpath:
        mounts.append({"name": "s", "mountPath": "/sub/token", "subPath": "token"})
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {
            "nodeName": env["NODE_NAME"], "hostNetwork": True, "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            "volumes": [{"name": "s", "secret": {"secretName": "tok"}},
                        {"name": "p", "projected": {"sources": [{"secret": {"name": "tok"}}]}}],
            "containers": [{"name": "c", "image": "localhost/clear-node-pause:1", "imagePullPolicy": "Never",
                            "command": ["/bin/busybox", "sh", "-c", READER], "volumeMounts": mounts}],
        },
    }


api("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
while api("GET", f"/api/v1/namespaces/{NS}/serviceaccounts")["items"] == []:
    time.sleep(0.2)
api("POST", f"/api/v1/namespaces/{NS}/secrets", {"metadata": {"name": "tok"}, "stringData": {"token": "v0"}})
names = ["nudged"] + [f"plain-{i}" for i in range(1, PLAIN + 1)]
for name in names:
    api("POST", f"/api/v1/namespaces/{NS}/pods", pod(name, name == "nudged"))
    time.sleep(random.uniform(0.5, 3))  # pods not in step with each other
logfile = {}
for name in names:
    deadline = time.time() + 180
    while True:
        p = api("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
        if p.get("status", {}).get("phase") == "Running":
            break
        if time.time() > deadline:
            sys.exit(f"pod {name} not running: {json.dumps(p.get('status'))[:500]}")
        time.sleep(0.5)
    logfile[name] = f"{env['POD_LOGS']}/{NS}_{name}_{p['metadata']['uid']}/c/0.log"


def stamp(ts):  # RFC 3339 with nanoseconds
    head, frac = ts.split(".")
    digits = "".join(c for c in frac if c.isdigit())
    zone = frac[len(digits):].replace("Z", "+00:00")
    return datetime.fromisoformat(f"{head}.{digits[:6]}{zone}").timestamp()


def first_seen(name, volume, value):
    """When `name` first read `value` in `volume` (s, p or sub), or None."""
    try:
        lines = open(logfile[name]).read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[3] == f"seen {volume} {value}":
            return stamp(parts[0])
    return None


def wait_seen(pairs, value, limit):
    """Waits until every (pod, volume) read `value`; returns {pair: time}."""
    deadline, seen = time.time() + limit, {}
    while len(seen) < len(pairs):
        for pair in pairs:
            if pair not in seen and (t := first_seen(*pair, value)) is not None:
                seen[pair] = t
        if time.time() > deadline:
            sys.exit(f"gave up after {limit} s waiting for {value} in {sorted(set(pairs) - set(seen))}")
        time.sleep(0.05)
    return seen


def update(value):
    time.sleep(random.uniform(0, 2))
    sent = time.time()
    merge(f"/api/v1/namespaces/{NS}/secrets/tok", {"stringData": {"token": value}})
    return sent, time.time()


plain_pairs = [(n, v) for n in names[1:] for v in ("s", "p")]
wait_seen([("nudged", "s"), ("nudged", "p"), ("nudged", "sub")] + plain_pairs, "v0", 120)
time.sleep(10)  # past the syncs that follow a pod's start (container start events)
rows = []  # (mode, volume, pod, round, delay)

print(f"nudge: {UPDATES} updates, each followed at once by a merge patch of an annotation on pod nudged", flush=True)
for i in range(1, UPDATES + 1):
    value = f"n{i}"
    sent, acked = update(value)
    merge(f"/api/v1/namespaces/{NS}/pods/nudged",
          {"metadata": {"annotations": {"clear-operator.io/token-nudge": str(i)}}})
    patched = time.time()
    seen = wait_seen([("nudged", "s"), ("nudged", "p")], value, 150)
    for vol in ("s", "p"):
        rows.append(("nudge", vol, "nudged", i, seen[("nudged", vol)] - acked))
    print(f"  {value}: secret {seen[('nudged', 's')] - acked:6.2f} s, projected {seen[('nudged', 'p')] - acked:6.2f} s"
          f" (Secret PATCH took {acked - sent:.3f} s, pod PATCH {patched - acked:.3f} s)", flush=True)

print(f"no nudge: {ROUNDS} rounds of one update, {PLAIN} pods never patched", flush=True)
last = f"n{UPDATES}"
for r in range(1, ROUNDS + 1):
    wait_seen(plain_pairs, last, 200)  # every plain pod up to date before the update
    time.sleep(random.uniform(0, 60))
    value = f"a{r}"
    sent, acked = update(value)
    seen = wait_seen(plain_pairs, value, 200)
    for (name, vol), t in sorted(seen.items()):
        rows.append(("plain", vol, name, r, t - acked))
    print(f"  {value}: " + ", ".join(f"{n}/{v} {t - acked:.1f} s" for (n, v), t in sorted(seen.items())), flush=True)
    last = value


def pct(xs, q):
    xs = sorted(xs)
    k = (len(xs) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


with open(os.environ["NUDGE_SAMPLES"], "w") as out:
    out.write("mode\tvolume\tpod\tround\tdelay_s\n")
    for row in rows:
        out.write("\t".join(str(x) for x in row[:4]) + f"\t{row[4]:.3f}\n")
print(f"\nSecret update to new value read in the pod (kubelet syncFrequency {env['NODE_SYNC_FREQUENCY']}, "
      f"read every 0.2 s; samples: {os.environ['NUDGE_SAMPLES']}):")
for mode, label in (("plain", "no nudge"), ("nudge", "nudge   ")):
    for vol, vlabel in (("s", "secret   "), ("p", "projected")):
        xs = [r[4] for r in rows if r[0] == mode and r[1] == vol]
        print(f"  {label} {vlabel}: n={len(xs):3d}  p50 {pct(xs, 50):6.2f} s  p99 {pct(xs, 99):6.2f} s"
              f"  min {min(xs):6.2f} s  max {max(xs):6.2f} s")
sub = [l.split(" ", 3)[3] for l in open(logfile["nudged"]).read().splitlines() if " seen sub " in l]
print(f"  subPath mount of pod nudged: values read {[s.split()[-1] for s in sub]} after "
      f"{UPDATES + ROUNDS} updates and {UPDATES} nudges")
PY
