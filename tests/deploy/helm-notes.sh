#!/usr/bin/env bash
# Renders the chart's NOTES.txt (which `helm template` skips) for the given values and checks it
# holds every extended regular expression given with --expect and none given with --reject.
#   helm-notes.sh CHART_DIR [--expect REGEX]... [--reject REGEX]... [-- helm args...]
# A copy of the chart gets a template wrapping NOTES.txt into a ConfigMap; its text is printed.
set -euo pipefail
. "$(dirname "$0")/tools.sh"
find_tool HELM helm

chart="$1"
shift
expect=() reject=()
while (($#)); do
  case "$1" in
    --expect) expect+=("$2"); shift 2 ;;
    --reject) reject+=("$2"); shift 2 ;;
    --) shift; break ;;
    *) echo "FAIL: unknown argument $1" >&2; exit 2 ;;
  esac
done
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$chart" "$work/chart"
{
  echo '{{- define "test.notes" -}}'
  cat "$chart/templates/NOTES.txt"
  echo '{{- end -}}'
} >"$work/chart/templates/_test_notes.tpl"
cat >"$work/chart/templates/test-notes.yaml" <<'T'
kind: RenderedNotes
text: |
{{ include "test.notes" . | indent 2 }}
T
"$HELM" template modal-operator "$work/chart" --namespace modal-system "$@" \
  --show-only templates/test-notes.yaml >"$work/out.yaml"
sed -n '/^text: |/,$p' "$work/out.yaml" | tail -n +2 | sed 's/^  //' >"$work/notes.txt"
cat "$work/notes.txt"
status=0
for re in "${expect[@]}"; do
  grep -Eq -- "$re" "$work/notes.txt" || { echo "FAIL: NOTES.txt lacks /$re/" >&2; status=1; }
done
for re in "${reject[@]}"; do
  ! grep -Eq -- "$re" "$work/notes.txt" || { echo "FAIL: NOTES.txt has /$re/" >&2; status=1; }
done
exit $status
