#!/usr/bin/env bash
# Rotation tests of the consumer examples (docs/consumers.md: "The revoke gap").
# Builds the Clear simulator (clear-sandbox) with cargo, starts it on 127.0.0.1, compiles the
# Java example with javac, and runs the Python and Java tests against it: each test plays the
# operator (mints, which revokes the previous token) and the kubelet (writes the new token to
# the file after a lag), and checks that the example client never fails while a naive one does.
# Needs cargo, python3 (3.8+, standard library only) and a JDK 17+; nothing is downloaded.
#   examples/consumers/test.sh          ROTATIONS=N (default 4) per test
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

for tool in cargo python3 javac java; do
	command -v "$tool" >/dev/null || { echo "consumer tests need $tool on PATH" >&2; exit 1; }
done

work="$(mktemp -d "${TMPDIR:-/tmp}/clear-consumers.XXXXXX")"
sandbox_pid=""
cleanup() {
	if [ -n "$sandbox_pid" ]; then
		kill "$sandbox_pid" 2>/dev/null || true
		wait "$sandbox_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

echo "== building the Clear simulator"
sandbox_bin="$(cd "$repo" && cargo build -q --locked -p clear-sandbox --bin clear-sandbox \
	--message-format=json-render-diagnostics | python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        print(message["executable"])')"
[ -x "$sandbox_bin" ] || { echo "clear-sandbox was not built" >&2; exit 1; }
cp "$sandbox_bin" "$work/clear-sandbox" # a concurrent build may replace the original mid-run

# The tests add their own clients (random secrets) through the admin API; the simulator
# wants at least one in its file.
umask 077
cat >"$work/clients.yaml" <<YAML
- name: placeholder
  clientSecret: placeholder-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  workspace: unused
  environment: sandbox
  tokenLifetime: 1h
YAML

echo "== starting the Clear simulator on 127.0.0.1"
"$work/clear-sandbox" --listen 127.0.0.1:0 --clients "$work/clients.yaml" \
	>"$work/sandbox.out" 2>"$work/sandbox.log" &
sandbox_pid=$!
url=""
for _ in $(seq 1 300); do # up to 30 s
	url="$(head -n1 "$work/sandbox.out" 2>/dev/null || true)"
	[ -n "$url" ] && break
	kill -0 "$sandbox_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -z "$url" ]; then
	echo "the simulator did not start; its log:" >&2
	tail -n 20 "$work/sandbox.log" >&2
	exit 1
fi
echo "simulator at $url (pid $sandbox_pid)"

export CLEAR_SANDBOX_URL="$url"
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}" no_proxy="127.0.0.1,localhost${no_proxy:+,$no_proxy}"
export PYTHONDONTWRITEBYTECODE=1
unset CLEAR_BASE_URL CLEAR_TOKEN_FILE

python_test() {
	python3 "$here/python/test_rotation.py"
}
java_test() {
	javac -Xlint:all -Werror -d "$work/java" "$here"/java/*.java &&
		java -cp "$work/java" RotationTest
}

passed=0
failed=0
for suite in python java; do
	echo "== $suite consumer: rotation tests"
	if "${suite}_test"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "!! $suite consumer: rotation tests failed" >&2
	fi
done

if ! kill -0 "$sandbox_pid" 2>/dev/null; then
	echo "the simulator died during the tests; its log:" >&2
	tail -n 20 "$work/sandbox.log" >&2
	failed=$((failed + 1))
fi
echo "consumer rotation tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
