#!/usr/bin/env bash
# Soak: runs the real exporter against the simulator with fast job churn and samples its memory
# and state file while jobs are created, finished and deleted. Both must follow the live set,
# not the number of jobs ever seen.
#   bench/soak.sh [BUILD_DIR] [SECONDS] [JOBS] [TICK_MS]
# Defaults: build, 600 s, 300 live jobs, 20 ms steps (~800 new jobs a minute). Prints one CSV
# line per sample (seconds, RSS KiB, state file bytes, jobs created so far, live jobs) and a
# summary; set SOAK_CSV=file to keep the samples.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
seconds=${2:-600}
jobs=${3:-300}
tick=${4:-20}
interval=${SOAK_INTERVAL:-10}
work=$(mktemp -d /tmp/modal-soak.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

"$build/tools/modal-sim/modal-sim" --dir "$work" --jobs "$jobs" --tick-ms "$tick" --seed 7 \
  >"$work/sim.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [[ -f "$work/kubeconfig" ]] && break; sleep 0.1; done
set -a
# shellcheck disable=SC1091
source "$work/modal.env"
set +a
"$build/src/modal-exporter" --config config/demo.yaml --kubeconfig "$work/kubeconfig" \
  --state.file "$work/state.json" --web.listen-address 127.0.0.1:0 >"$work/exporter.log" 2>&1 &
exporter=$!
pids+=("$exporter")
port=""
for _ in $(seq 1 100); do
  port=$(grep -o 'address=[^ ]*:[0-9]*' "$work/exporter.log" | head -1 | sed 's/.*://') || true
  [[ -n "$port" ]] && break
  sleep 0.1
done
[[ -n "$port" ]] || { echo "exporter did not start" >&2; cat "$work/exporter.log" >&2; exit 1; }

csv=${SOAK_CSV:-$work/soak.csv}
echo "seconds,rss_kib,state_bytes,jobs_created,jobs_live" | tee "$csv"
start=$(date +%s)
while :; do
  now=$(($(date +%s) - start))
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$exporter/status")
  state=$(stat -c %s "$work/state.json" 2>/dev/null || echo 0)
  body=$(curl -sf "http://127.0.0.1:$port/metrics" || true)
  created=$(awk '/^modal_jobs_total\{status="created"/ {s += $NF} END {printf "%d", s}' <<<"$body")
  live=$(awk '/^modal_job_info\{/ {n++} END {printf "%d", n}' <<<"$body")
  echo "$now,$rss,$state,$created,$live" | tee -a "$csv"
  ((now >= seconds)) && break
  sleep "$interval"
done
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$exporter/status")
echo "peak RSS (VmHWM): ${hwm} KiB"
awk -F, 'NR == 2 {r0 = $2; s0 = $3; c0 = $4} NR > 1 {r = $2; s = $3; c = $4}
  END {printf "RSS %d -> %d KiB, state file %d -> %d bytes, while %d jobs were created\n",
       r0, r, s0, s, c - c0}' "$csv"
