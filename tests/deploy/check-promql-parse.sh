#!/usr/bin/env bash
# Every PromQL expression of the alert rules and the Grafana dashboard must parse: deploy_lint
# wraps each one in a recording rule of a temporary rule file and promtool checks that file
# (promtool 2.42 has no standalone expression parser).
#   check-promql-parse.sh DEPLOY_LINT RULES.yaml DASHBOARD.json WORKDIR
set -euo pipefail
. "$(dirname "$0")/tools.sh"
find_tool PROMTOOL promtool
lint="$1" rules="$2" dashboard="$3" work="$4"
mkdir -p "$work"
"$lint" exprs "$rules" "$dashboard" "$work/all-exprs.rules.yaml"
"$PROMTOOL" check rules "$work/all-exprs.rules.yaml"
