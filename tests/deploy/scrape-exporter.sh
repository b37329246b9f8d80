#!/usr/bin/env bash
# Produces the metrics dump the PromQL name check compares against: starts modal-exporter,
# waits until /readyz answers 200 (every enabled source succeeded once), saves one /metrics
# scrape to OUT and stops the exporter it started.
#   scrape-exporter.sh EXPORTER_BINARY OUT [exporter flags, e.g. --config=... --kubeconfig=...]
# The caller points the exporter at the simulator (kubeconfig/MODAL_SERVER_URL in the flags or
# the environment); MX_SCRAPE_TIMEOUT (seconds, default 60) bounds the wait for readiness.
set -euo pipefail
bin="$1" out="$2"
shift 2
command -v curl >/dev/null || { echo "FAIL: curl not found" >&2; exit 1; }
port="$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
log="$(mktemp)"
"$bin" "$@" --web.listen-address="127.0.0.1:$port" >"$log" 2>&1 &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"; }
trap cleanup EXIT
deadline=$((SECONDS + ${MX_SCRAPE_TIMEOUT:-60}))
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: modal-exporter exited:" >&2; cat "$log" >&2; exit 1
  fi
  if ((SECONDS > deadline)); then
    echo "FAIL: modal-exporter not ready within ${MX_SCRAPE_TIMEOUT:-60}s:" >&2
    curl -sS "http://127.0.0.1:$port/readyz" >&2 || true
    tail -n 50 "$log" >&2; exit 1
  fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$port/metrics" -o "$out.tmp"
mv "$out.tmp" "$out"
echo "saved $(grep -vc '^#' "$out") samples to $out"
