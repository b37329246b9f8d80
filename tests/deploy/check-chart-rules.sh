#!/usr/bin/env bash
# The chart's PrometheusRule, rendered with the given values, is a valid rule file for promtool:
# thresholds and the job selector are templated into PromQL, so a value must not break it.
#   check-chart-rules.sh CHART_DIR [helm args...]
set -euo pipefail
. "$(dirname "$0")/tools.sh"
find_tool HELM helm
find_tool PROMTOOL promtool
chart="$1"
shift
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$HELM" template modal-operator "$chart" --namespace modal-system \
  --api-versions monitoring.coreos.com/v1 --show-only templates/prometheusrule.yaml "$@" \
  >"$work/rule.yaml"
# The PrometheusRule's spec is a Prometheus rule file indented under `spec:`.
sed -n '/^spec:/,$p' "$work/rule.yaml" | tail -n +2 | sed 's/^  //' >"$work/rules.yaml"
grep -q '^groups:' "$work/rules.yaml" || { echo "FAIL: no groups in the rendered spec" >&2; exit 1; }
"$PROMTOOL" check rules "$work/rules.yaml"
