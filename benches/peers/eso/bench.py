#!/usr/bin/env python3
"""Side by side with External Secrets Operator: the same job on the same control plane.

Run by run.sh, which builds the binaries and starts the control plane. For each system in
turn (ESO, then clear-operator), on a fresh namespace and a fresh Clear simulator whose
every answer comes 100 ms after the mint:

  1. N client secrets and N resources are created before the controller starts;
  2. the controller starts: time until all N target Secrets hold a token (seen by a watch);
  3. settle: Clear calls per client secret once calls stop;
  4. restart (SIGTERM, a new process, wait until it has reconciled every resource): calls;
  5. touch every client-secret Secret (an annotation): calls;
  6. K forced renewals one after another: the revoke window of each, from the mint (the
     simulator's log) to the moment the target Secret holds the new token (the watch);
  7. steady state from what the objects say (ESO: its refreshInterval; ours: renewalTime
     minus issuedAt in status): calls per resource per day, and the seconds per day a
     consumer holds a revoked token (calls per day x the mean window).

Only the Python standard library: it talks to kube-apiserver over HTTPS with the control
plane's admin certificate. Tokens and client secrets are never printed.
"""

import argparse
import base64
import concurrent.futures
import datetime
import hashlib
import http.client
import json
import os
import re
import secrets as pysecrets
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

ESO_NS = "eso-bench"
OURS_NS = "clear-bench"
OURS_SYSTEM_NS = "clear-system"
TOKEN_LIFETIME_S = 24 * 3600
# ESO refreshes blindly every refreshInterval; it must be shorter than the token lifetime.
# 16h renews when a third of the life is left, the same point as clear-operator's default
# renewBefore (a third of the lifetime), so both do the same number of calls per day.
ESO_REFRESH = "16h"
ESO_REFRESH_S = 16 * 3600
CLEAR_LATENCY = "100ms"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_avg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


class Api:
    """A tiny kube-apiserver client: one HTTPS connection per thread."""

    def __init__(self, server, ca, cert, key):
        url = urllib.parse.urlparse(server)
        self.host, self.port = url.hostname, url.port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.ctx.load_cert_chain(cert, key)
        self.local = threading.local()

    def connect(self, timeout=60):
        return http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=timeout)

    def request(self, method, path, body=None, content_type="application/json", ok=(200, 201)):
        for attempt in range(5):
            conn = getattr(self.local, "conn", None)
            if conn is None:
                conn = self.local.conn = self.connect()
            try:
                data = None if body is None else json.dumps(body).encode()
                headers = {"Accept": "application/json"}
                if data is not None:
                    headers["Content-Type"] = content_type
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (OSError, http.client.HTTPException):
                self.local.conn = None
                time.sleep(0.5 * (attempt + 1))
                continue
            if resp.status == 429 or resp.status >= 500:
                time.sleep(0.5 * (attempt + 1))
                continue
            parsed = json.loads(payload) if payload else None
            if ok and resp.status not in ok:
                msg = parsed.get("message") if isinstance(parsed, dict) else payload[:200]
                raise RuntimeError(f"{method} {path}: {resp.status} {msg}")
            return resp.status, parsed
        raise RuntimeError(f"{method} {path}: no answer after retries")

    def create(self, path, obj):
        status, _ = self.request("POST", path, obj, ok=(201, 409))
        return status

    def merge_patch(self, path, patch):
        self.request("PATCH", path, patch, content_type="application/merge-patch+json", ok=(200,))


def parallel(fn, items, workers=8):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(fn, items):
            pass


class SecretWatch(threading.Thread):
    """Watches the Secrets of a namespace and records when each target Secret's token
    changes (a hash of it, never the value), timestamped on receipt."""

    def __init__(self, api, ns, token_key, names):
        super().__init__(daemon=True)
        self.api, self.ns, self.token_key, self.names = api, ns, token_key, set(names)
        self.lock = threading.Condition()
        self.tokens = {}  # name -> (hash, time seen)
        self.stopping = False
        self.error = None

    def _apply(self, obj, now):
        name = obj["metadata"]["name"]
        if name not in self.names:
            return
        value = (obj.get("data") or {}).get(self.token_key)
        digest = hashlib.sha256(value.encode()).hexdigest() if value else None
        with self.lock:
            old = self.tokens.get(name)
            if digest is None:
                self.tokens.pop(name, None)
            elif old is None or old[0] != digest:
                self.tokens[name] = (digest, now)
            self.lock.notify_all()

    def run(self):
        base = f"/api/v1/namespaces/{self.ns}/secrets"
        rv = None
        while not self.stopping:
            try:
                if rv is None:
                    _, lst = self.api.request("GET", base)
                    now = time.time()
                    for obj in lst["items"]:
                        self._apply(obj, now)
                    rv = lst["metadata"]["resourceVersion"]
                conn = self.api.connect(timeout=120)
                conn.request("GET", f"{base}?watch=1&allowWatchBookmarks=true&timeoutSeconds=60&resourceVersion={rv}",
                             headers={"Accept": "application/json"})
                resp = conn.getresponse()
                if resp.status != 200:
                    resp.read()
                    rv = None
                    time.sleep(1)
                    continue
                while not self.stopping:
                    line = resp.readline()
                    if not line:
                        break
                    now = time.time()
                    event = json.loads(line)
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        rv = None  # 410 Gone: list again
                        break
                    rv = obj["metadata"]["resourceVersion"]
                    if event["type"] in ("ADDED", "MODIFIED"):
                        self._apply(obj, now)
                    elif event["type"] == "DELETED":
                        with self.lock:
                            self.tokens.pop(obj["metadata"]["name"], None)
                conn.close()
            except Exception as err:  # noqa: BLE001 - reported by wait_* and retried
                self.error = err
                rv = None
                time.sleep(1)

    def count(self):
        with self.lock:
            return len(self.tokens)

    def wait_all(self, n, timeout):
        deadline = time.time() + timeout
        with self.lock:
            while len(self.tokens) < n:
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.lock.wait(min(left, 1))
            return max(t for _, t in self.tokens.values())

    def wait_change(self, name, old_digest, timeout):
        deadline = time.time() + timeout
        with self.lock:
            while True:
                cur = self.tokens.get(name)
                if cur and cur[0] != old_digest:
                    return cur[1]
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.lock.wait(min(left, 1))

    def digest(self, name):
        with self.lock:
            cur = self.tokens.get(name)
            return cur[0] if cur else None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_json(url, timeout=10):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    conn.request("GET", u.path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return json.loads(body)


def http_post_json(url, obj):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("POST", u.path, body=json.dumps(obj).encode(), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    if resp.status >= 300:
        raise RuntimeError(f"POST {url}: {resp.status}")


def metric_sum(url, name, label_filter=""):
    """Sum of the samples of a counter in a Prometheus text page (None if unreachable)."""
    try:
        u = urllib.parse.urlparse(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
        conn.request("GET", u.path)
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return None
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (line[len(name)] in "{ ") and label_filter in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


class Proc:
    """A process we started, stopped by its PID only."""

    def __init__(self, args, log_path, env=None, stdout=None):
        self.log_path = log_path
        self.logf = open(log_path, "ab")
        self.p = subprocess.Popen(args, stdout=stdout or self.logf, stderr=self.logf, stdin=subprocess.DEVNULL,
                                  env=env, start_new_session=True)

    def peak_rss_mib(self):
        try:
            with open(f"/proc/{self.p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def alive(self):
        return self.p.poll() is None

    def stop(self, grace=60):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"pid {self.p.pid} ignored SIGTERM for {grace}s; killing it")
                self.p.kill()
                self.p.wait()
        self.logf.close()


class Sandbox:
    """The Clear simulator (crates/clear-sandbox) with N clients and a 100 ms answer."""

    def __init__(self, binary, workdir, n, tag):
        self.secrets = [f"bench-{tag}-{i}-{pysecrets.token_hex(8)}" for i in range(n)]
        clients = [{"name": f"c{i}", "clientSecret": s, "workspace": "bench", "environment": "sandbox",
                    "products": ["GST"], "tokenLifetime": TOKEN_LIFETIME_S} for i, s in enumerate(self.secrets)]
        path = os.path.join(workdir, f"clients-{tag}.json")
        with open(path, "w") as f:
            json.dump(clients, f)
        os.chmod(path, 0o600)
        self.log_path = os.path.join(workdir, f"clear-sandbox-{tag}.log")
        env = dict(os.environ, RUST_LOG="info", NO_COLOR="1")
        self.proc = Proc([binary, "--listen", "127.0.0.1:0", "--clients", path], self.log_path, env=env,
                         stdout=subprocess.PIPE)
        self.url = self.proc.p.stdout.readline().decode().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"clear-sandbox did not start; see {self.log_path}")
        # Every answer 100 ms after the mint (the mint, and so the revocation, comes first).
        http_post_json(f"{self.url}/_sandbox/faults", {"fault": "delay", "delay": CLEAR_LATENCY, "times": 2**32 - 1})

    def calls(self):
        counts = http_get_json(f"{self.url}/_sandbox/counts")
        per_client = [c["total"] for c in counts["clients"].values()]
        return counts["total"]["total"], per_client

    def mint_times(self, client):
        """Times at which the simulator minted for this client, from its log."""
        pat = re.compile(r"^(\S+)\s+INFO\b.*minted access token.*\bclient=" + re.escape(client) + r"(\s|$)")
        out = []
        with open(self.log_path, errors="replace") as f:
            for line in f:
                line = re.sub(r"\x1b\[[0-9;]*m", "", line)
                m = pat.match(line)
                if m:
                    out.append(datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00")).timestamp())
        return out

    def stop(self):
        self.proc.stop()


def wait_quiet(probes, quiet=10, timeout=600, minimum=5):
    """Waits until every probe's value has stayed the same for `quiet` seconds."""
    start = time.time()
    last = [p() for p in probes]
    since = time.time()
    while time.time() - start < timeout:
        time.sleep(1)
        cur = [p() for p in probes]
        if cur != last:
            last, since = cur, time.time()
        elif time.time() - since >= quiet and time.time() - start >= minimum:
            return True
    return False


def delete_namespace(api, ns, timeout=900):
    status, _ = api.request("DELETE", f"/api/v1/namespaces/{ns}", ok=(200, 202, 404))
    deadline = time.time() + timeout
    while time.time() < deadline:
        status, _ = api.request("GET", f"/api/v1/namespaces/{ns}", ok=(200, 404))
        if status == 404:
            return
        time.sleep(2)
    raise RuntimeError(f"namespace {ns} not gone after {timeout}s")


def b64(s):
    return base64.b64encode(s.encode()).decode()


class System:
    name = ""
    ns = ""
    token_key = ""

    def __init__(self, args, api, workdir):
        self.args, self.api, self.workdir = args, api, workdir
        self.n = args.n
        self.metrics_port = None
        self.starts = 0

    def target(self, i):
        return f"clear-token-{i}"

    def kubeconfig_env(self):
        return dict(os.environ, KUBECONFIG=self.args.kubeconfig)

    def metrics_url(self):
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


class Eso(System):
    name = "ESO v0.16.2"
    ns = ESO_NS
    token_key = "access_token"
    config = (f"core controller only, the chart's default args (--concurrent=1, --loglevel=info, "
              f"--zap-time-encoding=epoch; metrics on 127.0.0.1); per client secret: a Secret labelled "
              f"external-secrets.io/type=webhook, a Webhook generator (GET {{base}}/integration/v1/authz/token, "
              f"header x-clear-client-secret from that Secret, result.jsonPath $), an ExternalSecret "
              f"(dataFrom generatorRef, refreshInterval {ESO_REFRESH}, target Secret owned)")

    def create_objects(self, sandbox):
        api, ns = self.api, self.ns
        api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        gen = "/apis/generators.external-secrets.io/v1alpha1"
        es = "/apis/external-secrets.io/v1"

        def one(i):
            api.create(f"/api/v1/namespaces/{ns}/secrets", {
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": f"clear-client-{i}", "labels": {"external-secrets.io/type": "webhook"}},
                "data": {"clientSecret": b64(sandbox.secrets[i])}})
            api.create(f"{gen}/namespaces/{ns}/webhooks", {
                "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Webhook",
                "metadata": {"name": self.target(i)},
                "spec": {"url": f"{sandbox.url}/integration/v1/authz/token", "method": "GET",
                         "headers": {"x-clear-client-secret": "{{ .clear.clientSecret }}"},
                         "result": {"jsonPath": "$"},
                         "secrets": [{"name": "clear", "secretRef": {"name": f"clear-client-{i}", "key": "clientSecret"}}]}})
            api.create(f"{es}/namespaces/{ns}/externalsecrets", {
                "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": {"name": self.target(i)},
                "spec": {"refreshInterval": ESO_REFRESH,
                         "target": {"name": self.target(i), "creationPolicy": "Owner"},
                         "dataFrom": [{"sourceRef": {"generatorRef": {
                             "apiVersion": "generators.external-secrets.io/v1alpha1", "kind": "Webhook",
                             "name": self.target(i)}}}]}})

        parallel(one, range(self.n))

    def start(self, sandbox):
        self.metrics_port = free_port()
        self.starts += 1
        args = [self.args.eso_bin, "--concurrent=1", f"--metrics-addr=127.0.0.1:{self.metrics_port}",
                "--loglevel=info", "--zap-time-encoding=epoch"]
        return Proc(args, os.path.join(self.workdir, f"eso-{self.starts}.log"), env=self.kubeconfig_env())

    def reconciles(self):
        return metric_sum(self.metrics_url(), "controller_runtime_reconcile_total", 'controller="externalsecret"')

    def force_renewal(self, i, value):
        self.api.merge_patch(f"/apis/external-secrets.io/v1/namespaces/{self.ns}/externalsecrets/{self.target(i)}",
                             {"metadata": {"annotations": {"force-sync": value}}})

    def renewal_interval_s(self):
        _, es = self.api.request("GET", f"/apis/external-secrets.io/v1/namespaces/{self.ns}/externalsecrets/{self.target(0)}")
        return parse_go_duration(es["spec"]["refreshInterval"])

    def setup_cluster(self):
        subprocess.run([self.args.kubectl, "--kubeconfig", self.args.kubeconfig, "apply", "--server-side",
                        "-f", self.args.eso_crds], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([self.args.kubectl, "--kubeconfig", self.args.kubeconfig, "wait", "--for=condition=Established",
                        "--timeout=120s", "-f", self.args.eso_crds], check=True, stdout=subprocess.DEVNULL)


class Ours(System):
    name = "clear-operator"
    ns = OURS_NS
    token_key = "accessToken"
    config = ("release binary, the chart's default args (run --concurrency 64 --mint-budget 250 --clear-timeout-secs 20 "
              "--log-format json, leader election on a Lease; metrics on 127.0.0.1) plus --allow-http and "
              "--allowed-base-url for the simulator; per client secret: a Secret and a ClearApiClient "
              "(baseUrl = the simulator; renewBefore defaults to a third of the token lifetime)")

    def create_objects(self, sandbox):
        api, ns = self.api, self.ns
        for n in (ns, OURS_SYSTEM_NS):
            api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}})

        def one(i):
            api.create(f"/api/v1/namespaces/{ns}/secrets", {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"clear-client-{i}"},
                "data": {"clientSecret": b64(sandbox.secrets[i])}})
            api.create(f"/apis/clear-operator.io/v1alpha1/namespaces/{ns}/clearapiclients", {
                "apiVersion": "clear-operator.io/v1alpha1", "kind": "ClearApiClient",
                "metadata": {"name": self.target(i)},
                "spec": {"environment": "sandbox", "workspace": "bench", "products": ["GST"],
                         "baseUrl": sandbox.url, "clientSecretRef": {"name": f"clear-client-{i}"}}})

        parallel(one, range(self.n))

    def start(self, sandbox):
        self.metrics_port = free_port()
        self.starts += 1
        args = [self.args.operator_bin, "run", "--metrics-addr", f"127.0.0.1:{self.metrics_port}",
                "--leader-election-namespace", OURS_SYSTEM_NS, "--lease-name", "clear-operator",
                "--mint-budget", "250", "--concurrency", "64", "--clear-timeout-secs", "20", "--log-format", "json",
                "--allow-http", "--allowed-base-url", sandbox.url]
        env = self.kubeconfig_env()
        env.update(POD_NAMESPACE=OURS_SYSTEM_NS, POD_NAME=f"clear-operator-bench-{self.starts}", RUST_LOG="info")
        for k in ("CLEAR_OPERATOR_CONCURRENCY", "CLEAR_OPERATOR_ALLOWED_BASE_URLS"):
            env.pop(k, None)
        return Proc(args, os.path.join(self.workdir, f"clear-operator-{self.starts}.log"), env=env)

    def reconciles(self):
        return metric_sum(self.metrics_url(), "clear_operator_reconcile_total")

    def force_renewal(self, i, value):
        self.api.merge_patch(f"/apis/clear-operator.io/v1alpha1/namespaces/{self.ns}/clearapiclients/{self.target(i)}",
                             {"metadata": {"annotations": {"clear-operator.io/regenerate": value}}})

    def renewal_interval_s(self):
        # The last resource was not regenerated by the window sample; its renewal is the plain one.
        _, cac = self.api.request("GET", f"/apis/clear-operator.io/v1alpha1/namespaces/{self.ns}/clearapiclients/{self.target(self.n - 1)}")
        st = cac["status"]
        ts = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()  # noqa: E731
        return ts(st["renewalTime"]) - ts(st["issuedAt"])

    def setup_cluster(self):
        crd = subprocess.run([self.args.operator_bin, "crd"], check=True, capture_output=True).stdout
        subprocess.run([self.args.kubectl, "--kubeconfig", self.args.kubeconfig, "apply", "--server-side", "-f", "-"],
                       input=crd, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([self.args.kubectl, "--kubeconfig", self.args.kubeconfig, "wait", "--for=condition=Established",
                        "--timeout=120s", "crd/clearapiclients.clear-operator.io"], check=True, stdout=subprocess.DEVNULL)


def parse_go_duration(s):
    total = 0.0
    for num, unit in re.findall(r"([0-9.]+)(h|ms|m|s)", s):
        total += float(num) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[unit]
    return total


def measure(system, args, workdir):
    n = system.n
    row = {"load_start": load_avg()}
    log(f"{system.name}: N={n}, load {row['load_start']}")
    system.setup_cluster()
    sandbox = Sandbox(args.sandbox_bin, workdir, n, system.ns)
    procs = []
    try:
        t = time.time()
        system.create_objects(sandbox)
        log(f"{system.name}: {n} client secrets and resources created in {time.time() - t:.1f}s")
        watch = SecretWatch(system.api, system.ns, system.token_key, [system.target(i) for i in range(n)])
        watch.start()
        time.sleep(2)

        # 1. First start: time until every target Secret holds a token.
        t0 = time.time()
        proc = system.start(sandbox)
        procs.append(proc)
        ready_timeout = args.ready_timeout or (120 + n * 1.0)
        t_all = watch.wait_all(n, ready_timeout)
        if t_all is None:
            raise RuntimeError(f"{system.name}: only {watch.count()} of {n} target Secrets hold a token after "
                               f"{ready_timeout:.0f}s (alive: {proc.alive()}; log {proc.log_path})")
        row["ready_s"] = t_all - t0
        log(f"{system.name}: all {n} target Secrets hold a token after {row['ready_s']:.1f}s")

        # 2. Settle: calls per client secret.
        wait_quiet([lambda: sandbox.calls()[0], system.reconciles], quiet=15)
        total, per_client = sandbox.calls()
        row["calls_total"], row["calls_max"] = total, max(per_client)
        row["rss_first"] = proc.peak_rss_mib()

        # 3. Restart: SIGTERM, a new process, wait until it has reconciled every resource.
        proc.stop()
        before = sandbox.calls()[0]
        t0 = time.time()
        proc = system.start(sandbox)
        procs.append(proc)
        deadline = time.time() + max(300, n * 0.5)
        while (system.reconciles() or 0) < n:
            if time.time() > deadline or not proc.alive():
                raise RuntimeError(f"{system.name}: restarted controller did not reconcile {n} resources")
            time.sleep(0.5)
        row["restart_reconciled_s"] = time.time() - t0
        wait_quiet([lambda: sandbox.calls()[0], system.reconciles], quiet=15)
        row["restart_calls"] = sandbox.calls()[0] - before

        # 4. Touch every client-secret Secret (an annotation; the value is unchanged).
        before = sandbox.calls()[0]
        stamp = str(int(time.time()))
        parallel(lambda i: system.api.merge_patch(f"/api/v1/namespaces/{system.ns}/secrets/clear-client-{i}",
                                                  {"metadata": {"annotations": {"bench.clear-operator.io/touched": stamp}}}),
                 range(n))
        wait_quiet([lambda: sandbox.calls()[0], system.reconciles], quiet=15, minimum=20)
        row["touch_calls"] = sandbox.calls()[0] - before
        row["rss_second"] = proc.peak_rss_mib()

        # 5. Revoke window: K renewals forced one after another, idle controller.
        windows = []
        k = min(args.window_sample, n - 1) if n > 1 else 1
        for i in range(k):
            old = watch.digest(system.target(i))
            t_trigger = time.time()
            system.force_renewal(i, f"bench-{t_trigger:.3f}")
            t_secret = watch.wait_change(system.target(i), old, 120)
            if t_secret is None:
                raise RuntimeError(f"{system.name}: forced renewal of {system.target(i)} not seen in 120s")
            time.sleep(0.3)  # let the simulator's log line reach the file
            mints = [m for m in sandbox.mint_times(f"c{i}") if m >= t_trigger - 0.01]
            if not mints:
                raise RuntimeError(f"{system.name}: no mint for c{i} in the simulator log")
            windows.append(t_secret - mints[0])
        row["window_ms_mean"] = statistics.mean(windows) * 1000
        row["window_ms_max"] = max(windows) * 1000
        row["k"] = k

        # 6. Steady state, from what the objects say.
        interval = system.renewal_interval_s()
        row["renew_interval_h"] = interval / 3600
        row["calls_per_day"] = 86400 / interval
        row["revoked_s_per_day"] = row["calls_per_day"] * statistics.mean(windows)
        row["load_end"] = load_avg()
        proc.stop()
        watch.stopping = True
    finally:
        for p in procs:
            p.stop()
        sandbox.stop()
    log(f"{system.name}: done; deleting namespace {system.ns}")
    delete_namespace(system.api, system.ns)
    return row


def fmt_table(n, rows, systems):
    def cell(key, f):
        return [f(rows[s.name]) if rows.get(s.name) else "n/a" for s in systems]

    lines = [f"| N = {n:,} | " + " | ".join(s.name for s in systems) + " |",
             "| --- | " + " | ".join("---" for _ in systems) + " |"]

    def add(label, key, f):
        lines.append(f"| {label} | " + " | ".join(cell(key, f)) + " |")

    add("time until all N target Secrets hold a token", "ready_s", lambda r: f"{r['ready_s']:.1f} s")
    add("peak RSS of the controller", "rss", lambda r: f"{max(r['rss_first'] or 0, r['rss_second'] or 0):.0f} MiB")
    add("Clear calls per client secret after settling", "calls",
        lambda r: f"{r['calls_total'] / n:.2f} (max {r['calls_max']})")
    add("calls caused by a controller restart", "restart", lambda r: f"{r['restart_calls']}")
    add("restart: time until every resource is reconciled again", "restart_s",
        lambda r: f"{r['restart_reconciled_s']:.1f} s")
    add("calls caused by touching every client-secret Secret", "touch", lambda r: f"{r['touch_calls']}")
    add("steady state: renewal every / calls per resource per day", "cpd",
        lambda r: f"{r['renew_interval_h']:.1f} h / {r['calls_per_day']:.2f}")
    add("revoke window per renewal (mint to Secret updated; mean, max of K)", "win",
        lambda r: f"{r['window_ms_mean']:.0f} ms, {r['window_ms_max']:.0f} ms (K={r['k']})")
    add("seconds per day a consumer holds a revoked token", "rev", lambda r: f"{r['revoked_s_per_day']:.2f} s")
    add("load average (1, 5, 15 min) at start / end", "load", lambda r: f"{r['load_start']} / {r['load_end']}")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--cp-dir", required=True)
    ap.add_argument("--eso-bin", required=True)
    ap.add_argument("--eso-crds", required=True)
    ap.add_argument("--operator-bin", required=True)
    ap.add_argument("--sandbox-bin", required=True)
    ap.add_argument("--kubectl", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--window-sample", type=int, default=20)
    ap.add_argument("--ready-timeout", type=float, default=0)
    ap.add_argument("--systems", default="eso,ours")
    args = ap.parse_args()
    args.kubeconfig = os.path.join(args.cp_dir, "kubeconfig")
    env = {}
    with open(os.path.join(args.cp_dir, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            env[k] = v
    pki = os.path.join(args.cp_dir, "pki")
    api = Api(env["API_SERVER"], env["CA_FILE"], os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
    wanted = args.systems.split(",")
    systems = [s(args, api, args.workdir) for key, s in (("eso", Eso), ("ours", Ours)) if key in wanted]
    rows = {}
    failed = False
    for s in systems:
        try:
            rows[s.name] = measure(s, args, args.workdir)
        except Exception as err:  # noqa: BLE001 - reported, the other system still runs
            log(f"{s.name}: FAILED: {err}")
            failed = True
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    print(f"\nSide by side, N = {args.n:,} (Clear simulator answering each mint after {CLEAR_LATENCY}, "
          f"tokens valid {TOKEN_LIFETIME_S // 3600} h; {os.cpu_count()} CPUs, {cpu}; Kubernetes {env.get('KUBERNETES_VERSION')})\n")
    print(fmt_table(args.n, rows, systems))
    print()
    for s in systems:
        print(f"- {s.name}: {s.config}")
    sys.stdout.flush()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
