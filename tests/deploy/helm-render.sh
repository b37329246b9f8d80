#!/usr/bin/env bash
# helm lint + helm template of the chart with the given values; the rendered manifests go to
# OUT for the manifest tests.
#   helm-render.sh CHART_DIR OUT [helm --set/--values args...]
#   helm-render.sh --expect-fail REGEX CHART_DIR [helm args...]   (lint or template must fail
#                                                                    with a message matching REGEX)
set -euo pipefail
. "$(dirname "$0")/tools.sh"
find_tool HELM helm

if [[ "${1:-}" == "--expect-fail" ]]; then
  regex="$2" chart="$3"
  shift 3
  if out="$("$HELM" template modal-operator "$chart" --namespace modal-system "$@" 2>&1)"; then
    echo "FAIL: helm template $* succeeded but should have been rejected" >&2
    exit 1
  fi
  if ! grep -Eq -- "$regex" <<<"$out"; then
    echo "FAIL: helm template $* failed, but not with /$regex/:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "ok: rejected as expected: $(grep -E -- "$regex" <<<"$out" | head -n1)"
  exit 0
fi

chart="$1" out="$2"
shift 2
# helm lint has no --api-versions (the cluster's APIs, which decide whether ServiceMonitor and
# PrometheusRule are rendered): lint gets the other arguments.
args=("$@") lint_args=()
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ "${args[i]}" == --api-versions ]]; then
    ((++i))
    continue
  fi
  lint_args+=("${args[i]}")
done
# --strict: warnings (e.g. a value the templates never read) fail too.
"$HELM" lint --strict "$chart" --namespace modal-system "${lint_args[@]}"
mkdir -p "$(dirname "$out")"
"$HELM" template modal-operator "$chart" --namespace modal-system "$@" >"$out.tmp"
mv "$out.tmp" "$out"
echo "rendered $(grep -c '^kind:' "$out") objects to $out"
