#!/usr/bin/env bash
# Checks the chart's PrometheusRule with promtool, built from the Go modules pinned in
# tools/promtool (go.mod + go.sum; GOTOOLCHAIN=local, no downloaded toolchain):
#   1. builds promtool once into .tools/promtool (rebuilt when go.mod or go.sum change);
#   2. renders the chart with prometheusRule.enabled=true and extracts the rule groups
#      (the PrometheusRule's `spec`, which is a Prometheus rule file);
#   3. `promtool check rules` on them (and on the Grafana dashboard's queries, turned into
#      recording rules), then `promtool test rules` with the unit tests in
#      tools/promtool/rules_test.yaml (series in, alerts out).
# Usage: scripts/promtool.sh [--build-only]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module="$root/tools/promtool"
out="$root/.tools/promtool"
bin="$out/promtool"
export GOTOOLCHAIN=local
export GOFLAGS="-mod=readonly -buildvcs=false"

# NB: promtool's rule checks need none of Prometheus' service-discovery plugins, which pull
# in every cloud SDK and client-go; upstream's remove_all_sd tag leaves them out and cuts
# the cold build to a fraction.
tags="remove_all_sd"
stamp="$( (cat "$module/go.mod" "$module/go.sum"; echo "$tags") | sha256sum | cut -c1-64)"
if ! [ -x "$bin" ] || [ "$(cat "$out/stamp" 2>/dev/null)" != "$stamp" ]; then
  mkdir -p "$out"
  echo "building promtool from $(grep -m1 'github.com/prometheus/prometheus ' "$module/go.mod" | xargs) (once; cached in .tools/promtool)" >&2
  (cd "$module" && go build -trimpath -tags "$tags" -ldflags='-s -w' -o "$bin" github.com/prometheus/prometheus/cmd/promtool)
  echo "$stamp" > "$out/stamp"
fi
"$bin" --version 2>&1 | head -n1 >&2
if [ "${1:-}" = "--build-only" ]; then exit 0; fi

helm="${HELM:-$root/.tools/bin/helm}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$helm" template ops "$root/charts/clear-operator" --namespace clear-system \
  --set image.repository=registry.example/clear-operator \
  --set prometheusRule.enabled=true \
  --show-only templates/prometheusrule.yaml > "$work/prometheusrule.yaml"
# NB: our own template: `spec:` is a top-level key and everything under it is indented by
# two spaces; the rule file is that block, de-indented.
awk '/^spec:/ {inside = 1; next} /^[^ ]/ {inside = 0} inside {sub(/^  /, ""); print}' \
  "$work/prometheusrule.yaml" > "$work/rules.yaml"
if ! grep -q '^groups:' "$work/rules.yaml"; then
  echo "no rule groups found in the rendered PrometheusRule" >&2
  cat "$work/prometheusrule.yaml" >&2
  exit 1
fi
cp "$module/rules_test.yaml" "$work/rules_test.yaml"

# The dashboard's queries, as recording rules, so promtool parses every one of them too
# ($__rate_interval is Grafana's; any range stands in for it).
python3 - "$root/charts/clear-operator/files/dashboards/clear-operator.json" "$work/dashboard.yaml" <<'PY'
import json, sys
dashboard = json.load(open(sys.argv[1]))
lines = ["groups:", "  - name: clear-operator-dashboard", "    rules:"]
for panel in dashboard["panels"]:
    for target in panel.get("targets", []):
        expr = target["expr"].replace("$__rate_interval", "5m")
        lines.append(f"      - record: dashboard:panel_{panel['id']}_{target['refId']}")
        lines.append(f"        expr: {json.dumps(expr)}")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY

echo "== promtool check rules (the chart's PrometheusRule, the dashboard's queries)"
"$bin" check rules "$work/rules.yaml" "$work/dashboard.yaml"
echo "== promtool test rules (tools/promtool/rules_test.yaml)"
"$bin" test rules "$work/rules_test.yaml"
