"""Rotation test for clear_consumer.ClearClient, against the Clear simulator (clear-sandbox).

The test plays clear-operator and the kubelet: it mints tokens (each mint revokes the
previous token at once) and copies each new token into the token file only after a lag, the
way the kubelet's atomic writer updates a mounted Secret (a new timestamped directory, then
an atomic rename of the `..data` symlink). Three consumers call the simulator's whoami
endpoint in a loop meanwhile:

* robust: ClearClient (re-reads the file per request, retries once on a 401): no failures;
* reread-only: re-reads the file per request but never retries: fails in the lag windows;
* naive: reads the token once: fails on every request after the first rotation.

Needs CLEAR_SANDBOX_URL (the simulator, admin API on); examples/consumers/test.sh sets it.
Tokens and client secrets are never printed.
"""

import json
from collections import Counter
import os
import random
import secrets
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clear_consumer import TOKEN_HEADER, ClearClient  # noqa: E402

WHOAMI = "/integration/v1/authz/whoami"
ROTATIONS = int(os.environ.get("ROTATIONS", "4"))
REQUEST_PAUSE = 0.02  # seconds between a consumer's requests
LAG = (0.3, 0.8)  # seconds between a mint and the new token in the file (kubelet sync lag)
GAP = (0.8, 1.2)  # seconds between a file update and the next mint


def http(method, url, headers=None, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Sandbox:
    """The simulator, driven the way the operator uses it, plus its admin API."""

    def __init__(self, url):
        self.url = url.rstrip("/")

    def add_client(self, name):
        secret = secrets.token_urlsafe(24)
        client = {"name": name, "clientSecret": secret, "workspace": "consumer-test",
                  "environment": "sandbox", "products": ["GST"], "tokenLifetime": "1h"}
        status, _ = http("POST", self.url + "/_sandbox/clients", body=client)
        assert status == 201, f"adding sandbox client {name}: HTTP {status}"
        return secret

    def mint(self, secret):
        status, body = http("GET", self.url + "/integration/v1/authz/token", {"x-clear-client-secret": secret})
        assert status == 200, f"minting a token: HTTP {status}"
        answer = json.loads(body)
        return answer.get("access_token") or answer["access-token"]

    def token_calls(self, name):
        status, body = http("GET", self.url + "/_sandbox/counts")
        assert status == 200, f"reading counts: HTTP {status}"
        counts = json.loads(body)["clients"][name]
        return counts["total"], counts["byStatus"].get("200", 0)

    def delete_client(self, name):
        status, _ = http("DELETE", self.url + "/_sandbox/clients/" + name)
        assert status == 204, f"deleting sandbox client {name}: HTTP {status}"


class KubeletVolume:
    """A Secret volume as the kubelet's atomic writer lays it out: KEY -> ..data/KEY, and
    ..data -> ..<timestamp>, swapped by one rename, so a reader sees all old or all new."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.generations = []

    def write(self, data):
        new = self.dir / f"..{time.strftime('%Y_%m_%d_%H_%M_%S')}.{len(self.generations)}"
        new.mkdir()
        for key, value in data.items():
            (new / key).write_text(value)
        tmp_link = self.dir / "..data_tmp"
        tmp_link.symlink_to(new.name)
        os.replace(tmp_link, self.dir / "..data")
        for key in data:
            if not (self.dir / key).is_symlink():
                (self.dir / key).symlink_to(Path("..data") / key)
        self.generations.append(new)
        if len(self.generations) > 2:  # keep one old generation: a reader may be inside it
            old = self.generations.pop(0)
            for file in old.iterdir():
                file.unlink()
            old.rmdir()


class Consumer(threading.Thread):
    """Calls `call()` in a loop until stopped; records (start time, status or error)."""

    def __init__(self, name, call, stop):
        super().__init__(name=name, daemon=True)
        self.call, self.stop, self.results = call, stop, []

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                outcome = self.call()
            except Exception as error:  # a failure seen by the caller, like a non-200
                outcome = type(error).__name__
            self.results.append((started, outcome))
            time.sleep(REQUEST_PAUSE)

    def failures(self, after=float("-inf")):
        return [o for t, o in self.results if o != 200 and t >= after]

    def successes(self, before=float("inf"), after=float("-inf")):
        return [o for t, o in self.results if o == 200 and after <= t < before]


class RotationTest(unittest.TestCase):
    def setUp(self):
        self.sandbox = Sandbox(os.environ["CLEAR_SANDBOX_URL"])
        os.environ.pop("CLEAR_BASE_URL", None)  # the clients read the baseUrl file
        self.tmp = tempfile.TemporaryDirectory(prefix="clear-consumer-")
        self.volume = KubeletVolume(self.tmp.name)
        self.token_file = Path(self.tmp.name) / "accessToken"

    def tearDown(self):
        self.tmp.cleanup()

    def test_rotations_without_failed_requests(self):
        name = f"python-rotation-{secrets.token_hex(4)}"
        secret = self.sandbox.add_client(name)
        self.volume.write({"accessToken": self.sandbox.mint(secret), "baseUrl": self.sandbox.url})

        robust = ClearClient(token_file=self.token_file, file_lag_wait=10.0, timeout=10.0)
        naive_token = self.token_file.read_text().strip()  # read once, at start-up

        def naive():
            return http("GET", self.sandbox.url + WHOAMI, {TOKEN_HEADER: naive_token})[0]

        def reread_only():
            return http("GET", self.sandbox.url + WHOAMI, {TOKEN_HEADER: self.token_file.read_text().strip()})[0]

        stop = threading.Event()
        consumers = {
            "robust": Consumer("robust", lambda: robust.get(WHOAMI)[0], stop),
            "reread-only": Consumer("reread-only", reread_only, stop),
            "naive": Consumer("naive", naive, stop),
        }
        for consumer in consumers.values():
            consumer.start()

        mint_times = []
        try:
            for _ in range(ROTATIONS):
                time.sleep(random.uniform(*GAP))
                token = self.sandbox.mint(secret)  # the old token is revoked now
                # NB: the instant after the mint is answered, not before it is sent: a
                # request that starts in between may still be served with the old token.
                mint_times.append(time.monotonic())
                time.sleep(random.uniform(*LAG))  # ...and the file still holds it
                self.volume.write({"accessToken": token, "baseUrl": self.sandbox.url})
            time.sleep(1.0)
        finally:
            stop.set()
            for consumer in consumers.values():
                consumer.join(timeout=30)
        self.assertFalse(any(c.is_alive() for c in consumers.values()), "a consumer did not stop")

        for label, consumer in consumers.items():
            print(f"  python {label:<11}: {len(consumer.results)} requests, {len(consumer.failures())} failed"
                  + (f", {robust.retries_after_401} retried after a 401" if label == "robust" else ""))
        total, ok = self.sandbox.token_calls(name)
        print(f"  python simulator  : {ok} tokens minted (1 + {ROTATIONS} rotations), {total} token calls")

        # Every rotation happened: exactly one mint each, all of them answered 200.
        self.assertEqual((total, ok), (1 + ROTATIONS, 1 + ROTATIONS))
        first_mint = mint_times[0]
        r, rr, n = consumers["robust"], consumers["reread-only"], consumers["naive"]
        # The robust consumer: no failed request, through every rotation, and the gap was real
        # (it did meet a revoked token and retried).
        self.assertEqual(Counter(r.failures()), Counter(), "robust consumer: failed requests by outcome")
        self.assertGreater(len(r.successes(after=mint_times[-1])), 0)
        self.assertGreater(robust.retries_after_401, 0)
        # Re-reading without the retry is not enough: the file lags the mint.
        self.assertGreater(len(rr.failures()), 0)
        self.assertEqual(set(rr.failures()), {401}, "reread-only consumer: failures other than 401")
        # The naive consumer works until the first rotation, and never after it.
        self.assertGreater(len(n.successes(before=first_mint)), 0)
        self.assertGreater(len(n.failures(after=first_mint)), 0)
        self.assertEqual(n.successes(after=first_mint), [])

    def test_gives_up_after_one_retry_when_no_new_token_comes(self):
        # Deleting the API client revokes its token with no replacement: the client waits for
        # the file (bounded), retries once, and hands the 401 to its caller.
        name = f"python-revoked-{secrets.token_hex(4)}"
        secret = self.sandbox.add_client(name)
        self.volume.write({"accessToken": self.sandbox.mint(secret), "baseUrl": self.sandbox.url})
        client = ClearClient(token_file=self.token_file, file_lag_wait=1.0, timeout=10.0)
        self.assertEqual(client.get(WHOAMI)[0], 200)
        self.sandbox.delete_client(name)
        started = time.monotonic()
        status, _ = client.get(WHOAMI)
        waited = time.monotonic() - started
        self.assertEqual(status, 401)
        self.assertEqual(client.retries_after_401, 1)
        self.assertGreaterEqual(waited, 1.0)
        self.assertLess(waited, 5.0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
