#!/usr/bin/env bash
# systemd unit checks.
#   check-systemd.sh verify   UNIT [EXEC_BINARY]
#   check-systemd.sh security UNIT MAX_EXPOSURE
#   check-systemd.sh credentials UNIT ENV_FILE
# `verify` checks that ExecStart's binary exists, and /usr/local/bin/modal-exporter is not
# installed on a build machine: the unit is verified as a copy (same file name, in a temp dir)
# whose ExecStart path is replaced by EXEC_BINARY — the freshly built modal-exporter when CMake
# knows the target, else /bin/true. Everything else in the unit is verified as shipped.
set -euo pipefail
. "$(dirname "$0")/tools.sh"
find_tool SYSTEMD_ANALYZE systemd-analyze
mode="$1" unit="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
case "$mode" in
  verify)
    exe="${3:-/bin/true}"
    [[ -x "$exe" ]] || { echo "FAIL: $exe is not executable (build the modal-exporter target first)" >&2; exit 1; }
    grep -q '^ExecStart=/usr/local/bin/modal-exporter' "$unit" ||
      { echo "FAIL: $unit: ExecStart is not /usr/local/bin/modal-exporter" >&2; exit 1; }
    sed "s#^ExecStart=/usr/local/bin/modal-exporter#ExecStart=$exe#" "$unit" >"$work/$(basename "$unit")"
    # verify prints problems on stderr but may still exit 0 for some of them: fail on any output.
    if ! out="$("$SYSTEMD_ANALYZE" verify "$work/$(basename "$unit")" 2>&1)"; then
      echo "FAIL: systemd-analyze verify:" >&2
      echo "$out" >&2
      exit 1
    fi
    if [[ -n "$out" ]]; then
      echo "FAIL: systemd-analyze verify reported:" >&2
      echo "$out" >&2
      exit 1
    fi
    echo "ok: systemd-analyze verify $(basename "$unit") (ExecStart=$exe)"
    ;;
  security)
    max="$3"
    out="$("$SYSTEMD_ANALYZE" security --offline=yes "$unit" 2>&1)" || true
    line="$(grep -E 'Overall exposure level' <<<"$out" || true)"
    score="$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9]+(\.[0-9]+)?).*/\1/p' <<<"$line")"
    if [[ -z "$score" ]]; then
      echo "FAIL: no exposure score in systemd-analyze security output:" >&2
      echo "$out" >&2
      exit 1
    fi
    grep -E '^✗' <<<"$out" || true
    if awk -v s="$score" -v m="$max" 'BEGIN { exit !(s > m) }'; then
      echo "FAIL: exposure $score is above $max" >&2
      exit 1
    fi
    echo "ok: $line (max $max)"
    ;;
  credentials)
    # kubeconfig, Modal token and TLS key reach the dynamic user through LoadCredential=, and
    # nothing tells an admin to make a credential readable by other users.
    env_file="$3"
    status=0
    for id in kubeconfig modal-token-id modal-token-secret web.key; do
      grep -Eq "^#?LoadCredential=$id:/etc/modal-exporter/credentials/$id\$" "$unit" ||
        { echo "FAIL: $unit: no LoadCredential=$id:/etc/modal-exporter/credentials/$id" >&2; status=1; }
    done
    grep -q -- '--kubeconfig=%d/kubeconfig' "$unit" ||
      { echo "FAIL: $unit: ExecStart does not read the kubeconfig credential (%d/kubeconfig)" >&2; status=1; }
    if grep -En '^(MODAL_TOKEN_ID|MODAL_TOKEN_SECRET|KUBECONFIG)=' "$env_file"; then
      echo "FAIL: $env_file sets a credential (use LoadCredential=)" >&2
      status=1
    fi
    if grep -EniH '0644|0444|world-readable|group-readable|readable by (all|everyone|other)' \
      "$unit" "$env_file" | grep -Ei 'kubeconfig|token|key|credential|secret'; then
      echo "FAIL: advice to open a credential's mode (above)" >&2
      status=1
    fi
    ((status == 0)) && echo "ok: credentials through LoadCredential= only"
    exit $status
    ;;
  *)
    echo "usage: check-systemd.sh verify UNIT [EXE] | security UNIT MAX | credentials UNIT ENV" >&2
    exit 2
    ;;
esac
