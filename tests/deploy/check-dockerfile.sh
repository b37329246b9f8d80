#!/usr/bin/env bash
# dockerfilelint (no Docker engine or hadolint here) plus the properties the image must keep.
#   check-dockerfile.sh DOCKERFILE
set -euo pipefail
. "$(dirname "$0")/tools.sh"
find_tool DOCKERFILELINT dockerfilelint
df="$1"
"$DOCKERFILELINT" "$df"
fail() { echo "FAIL: $df: $*" >&2; exit 1; }
[[ "$(grep -c '^FROM debian:12' "$df")" -ge 2 ]] || fail "both stages must be FROM debian:12(-slim)"
grep -q -- '-DMODAL_EXPORTER_TESTS=OFF' "$df" || fail "build must pass -DMODAL_EXPORTER_TESTS=OFF"
grep -Eq '^USER [0-9]+(:[0-9]+)?$' "$df" || fail "USER must be numeric (runAsNonRoot checks it)"
[[ "$(grep -E '^USER ' "$df" | tail -n1)" != "USER 0"* ]] || fail "must not run as root"
grep -q '^EXPOSE 8081$' "$df" || fail "EXPOSE 8081 missing"
grep -q '^ENTRYPOINT \["/usr/local/bin/modal-exporter"\]$' "$df" || fail "ENTRYPOINT changed"
grep -q '^CMD \[.*"--config=' "$df" || fail "CMD must pass --config"
echo "ok: $df"
