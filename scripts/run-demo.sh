#!/usr/bin/env bash
# Runs an already built exporter (build dir as $1) against the simulator tools/modal-sim.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-demo}
work=$(mktemp -d /tmp/modal-demo.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

args=(--config config/demo.yaml --state.file "$work/state.json")
if [[ -x "$build/tools/modal-sim/modal-sim" ]]; then
  "$build/tools/modal-sim/modal-sim" --dir "$work" --jobs "${DEMO_JOBS:-40}" &
  pids+=($!)
  for _ in $(seq 1 100); do [[ -f "$work/kubeconfig" ]] && break; sleep 0.1; done
  args+=(--kubeconfig "$work/kubeconfig")
  # shellcheck disable=SC1091
  [[ -f "$work/modal.env" ]] && set -a && source "$work/modal.env" && set +a
fi
echo "modal-exporter demo: open http://localhost:8081/metrics (Ctrl-C stops)" >&2
"$build/src/modal-exporter" "${args[@]}" &
pids+=($!)
wait "${pids[-1]}"
