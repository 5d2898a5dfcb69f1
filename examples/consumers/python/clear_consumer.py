"""A Clear API client that survives token rotations (Python 3.8+, standard library only).

clear-operator writes the access token into a Secret; mount it as a file (not an env var,
not with subPath). Minting a new token revokes the old one at once, and the kubelet copies
the new value into the mounted file some time later, so for a short while the file holds a
revoked token. The pattern:

* read the token file on every request (it is a small file in memory: cheap);
* on a 401, wait until the file changes (bounded), then retry exactly once.

Configuration: CLEAR_TOKEN_FILE (default /var/run/clear/accessToken) and CLEAR_BASE_URL
(default: the `baseUrl` file next to the token file). The token is never logged.
"""

import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

TOKEN_HEADER = "x-cleartax-auth-token"
DEFAULT_TOKEN_FILE = "/var/run/clear/accessToken"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the token header to another place; answer with the 3xx instead.
    def redirect_request(self, *args, **kwargs):
        return None


class ClearClient:
    def __init__(self, token_file=None, base_url=None, file_lag_wait=120.0, timeout=30.0):
        """file_lag_wait: how long a 401 waits for the kubelet to update the file. The kubelet's
        sync period is 1 minute by default, plus its cache propagation delay."""
        self.token_file = Path(token_file or os.environ.get("CLEAR_TOKEN_FILE") or DEFAULT_TOKEN_FILE)
        base_url = base_url or os.environ.get("CLEAR_BASE_URL")
        if not base_url:
            base_url = (self.token_file.parent / "baseUrl").read_text()
        self.base_url = base_url.strip().rstrip("/")
        self.file_lag_wait = file_lag_wait
        self.timeout = timeout
        self.retries_after_401 = 0  # export it as a metric to see rotations from the app's side
        self._opener = urllib.request.build_opener(_NoRedirects)

    def request(self, method, path, body=None, headers=None):
        """Send one request; returns (status, body bytes). A 401 is retried once, after the
        token file changed or file_lag_wait passed. Safe for any method: Clear refuses a request
        with a revoked token before doing anything with it."""
        token = self._read_token()
        status, answer = self._send(method, path, token, body, headers)
        if status != 401:
            return status, answer
        self.retries_after_401 += 1
        return self._send(method, path, self._wait_for_new_token(token), body, headers)

    def get(self, path):
        return self.request("GET", path)

    def _read_token(self):
        return self.token_file.read_text().strip()

    def _wait_for_new_token(self, revoked):
        deadline = time.monotonic() + self.file_lag_wait
        while True:
            token = self._read_token()
            if token != revoked or time.monotonic() >= deadline:
                return token
            time.sleep(0.1)

    def _send(self, method, path, token, body, headers):
        request = urllib.request.Request(
            self.base_url + path, data=body, method=method, headers={**(headers or {}), TOKEN_HEADER: token}
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:  # 4xx/5xx (and 3xx, as redirects are refused)
            return error.code, error.read()


def main():
    # Against the Clear simulator the default path checks the token; against Clear, pass the
    # path of a business API. `--every SECONDS` repeats the call forever, one line per
    # request (time, status, how long it took, retries so far; never the token or the
    # answer): how the node tests watch a consumer pod through rotations.
    args = sys.argv[1:]
    every = None
    if args[:1] == ["--every"]:
        every, args = float(args[1]), args[2:]
    path = args[0] if args else "/integration/v1/authz/whoami"
    client = ClearClient()
    if every is None:
        status, answer = client.get(path)
        print(status, answer.decode("utf-8", "replace"))
        return 0 if 200 <= status < 300 else 1
    while True:
        started = time.time()
        try:
            status = client.get(path)[0]
        except OSError as error:  # the caller's view of a failure, like a non-200
            status = type(error).__name__
        took = time.time() - started
        print(f"request at={started:.3f} status={status} took_ms={took * 1000:.0f} "
              f"retries_after_401={client.retries_after_401}", flush=True)
        time.sleep(every)


if __name__ == "__main__":
    sys.exit(main())
