#!/usr/bin/env bash
# Plots what a user of the demo sees: runs the exporter against the simulator (tools/modal-sim),
# scrapes /metrics every INTERVAL seconds for DURATION seconds and draws four of the key series
# with gnuplot into a PNG (the README's picture, docs/demo.png).
#   scripts/plot-demo.sh [BUILD_DIR] [DURATION_S] [INTERVAL_S] [OUT_PNG]
# Defaults: build-demo (as scripts/demo.sh builds it), 600 s, 10 s, docs/demo.png. The build dir
# needs src/modal-exporter and tools/modal-sim/modal-sim (cmake --build ... --target
# modal-exporter modal-sim). PORT (default 18081) is where the exporter listens; DEMO_JOBS
# (default 40) the simulator's jobs. Needs curl and gnuplot (Debian: gnuplot-nox).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-demo}
duration=${2:-600}
interval=${3:-10}
out=${4:-docs/demo.png}
port=${PORT:-18081}

for tool in curl gnuplot; do
  command -v "$tool" >/dev/null || { echo "plot-demo: $tool is missing (apt-get install curl gnuplot-nox)" >&2; exit 1; }
done
for bin in "$build/src/modal-exporter" "$build/tools/modal-sim/modal-sim"; do
  [[ -x "$bin" ]] || { echo "plot-demo: $bin not built" >&2; exit 1; }
done

work=$(mktemp -d /tmp/modal-plot.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

"$build/tools/modal-sim/modal-sim" --dir "$work" --jobs "${DEMO_JOBS:-40}" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 1 100); do [[ -f "$work/kubeconfig" ]] && break; sleep 0.1; done
[[ -f "$work/kubeconfig" ]] || { echo "plot-demo: the simulator did not start" >&2; cat "$work/sim.log" >&2; exit 1; }
# shellcheck disable=SC1091
[[ -f "$work/modal.env" ]] && set -a && source "$work/modal.env" && set +a
"$build/src/modal-exporter" --config config/demo.yaml --kubeconfig "$work/kubeconfig" \
  --state.file "$work/state.json" --web.listen-address "127.0.0.1:$port" 2>"$work/exporter.log" &
pids+=($!)
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done

# One line per scrape: seconds, active jobs, completed, failed (counters), USD/hour, mean GPU
# utilization (%).
data="$work/series.tsv"
echo "# t active completed failed usd_per_hour gpu_util_pct" >"$data"
start=$SECONDS
while ((SECONDS - start <= duration)); do
  t=$((SECONDS - start))
  curl -fs "http://127.0.0.1:$port/metrics" | awk -v t="$t" '
    /^modal_jobs_active\{/ { active += $NF }
    /^modal_jobs_total\{.*status="completed"/ { completed += $NF }
    /^modal_jobs_total\{.*status="failed"/ { failed += $NF }
    /^modal_cost_estimate_usd\{.*time_period="hourly"/ { usd += $NF }
    /^modal_gpu_utilization\{/ { util += $NF; n++ }
    END { printf "%d %g %g %g %.2f %.1f\n", t, active, completed, failed, usd, n ? 100 * util / n : 0 }
  ' >>"$data"
  sleep "$interval"
done

mkdir -p "$(dirname "$out")"
gnuplot <<EOF
set terminal pngcairo size 1100,640 font ",10" noenhanced
set output "$out"
set multiplot layout 2,2 title "modal-exporter against the simulator: ${DEMO_JOBS:-40} jobs, one scrape every ${interval} s"
set grid
set key top left
set xlabel "minutes"
set xrange [0:$duration/60.0]
set title "Active Modal jobs (sum of modal_jobs_active)"
plot "$data" using (\$1/60):2 with lines lw 2 title "active"
set title "Finished jobs (modal_jobs_total, counters)"
plot "$data" using (\$1/60):3 with lines lw 2 title "completed", "" using (\$1/60):4 with lines lw 2 title "failed"
set title "Estimated cost of running jobs (USD/hour)"
set yrange [0:*]
plot "$data" using (\$1/60):5 with lines lw 2 title "modal_cost_estimate_usd{time_period=\"hourly\"}"
set title "Mean GPU utilization of running jobs (%)"
set yrange [0:100]
plot "$data" using (\$1/60):6 with lines lw 2 title "avg modal_gpu_utilization"
unset multiplot
EOF
echo "plot-demo: wrote $out ($(($(wc -l <"$data") - 1)) scrapes)" >&2
