#!/usr/bin/env bash
# Scrape benchmark: the exporter's real serving path against nginx serving the very same bytes as
# a static file (plain, and gzip precomputed with gzip_static so that neither side compresses
# per request). Prints a markdown table and the command lines used.
#
#   bench/run-scrape-bench.sh BUILD_DIR [--jobs N] [--duration SECONDS] [--threads T]
#                             [--connections C] [--rounds R] [--nginx-workers W|auto]
#                             [--server-arg ARG]...
#
# Each round runs wrk once per target (exporter plain, exporter gzip, nginx plain, nginx gzip);
# the table shows the median scrapes/s over the rounds and the server's CPU time per scrape
# (from /proc/PID/stat), which the load generator sharing the cores does not distort as much.
#
# BUILD_DIR must already contain bench/bench_scrape_server (this script builds nothing), e.g.
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-bench --target bench_scrape_server
#   bench/run-scrape-bench.sh build-bench
#
# Needs the Debian packages nginx, wrk, curl and gzip; nginx and wrk are installed with apt-get
# when missing and the script runs as root. Everything listens on 127.0.0.1 only, every process
# it starts is stopped on exit, and wrk runs for a bounded time.
set -euo pipefail
# shellcheck source=bench/lib/common.sh
source "$(dirname "$0")/lib/common.sh"

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

[[ $# -ge 1 ]] || usage
BUILD_DIR=$1
shift
JOBS=10000
DURATION=10
THREADS=2
CONNECTIONS=8
ROUNDS=1
# One nginx worker by default: the exporter serves from its one io_context thread (docs/design.md),
# so both servers get one thread; "--nginx-workers auto" shows nginx with one per core.
NGINX_WORKERS=1
SERVER_ARGS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --jobs) JOBS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --connections) CONNECTIONS=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --nginx-workers) NGINX_WORKERS=$2; shift 2 ;;
    --server-arg) SERVER_ARGS+=("$2"); shift 2 ;;
    -h|--help) usage ;;
    *) echo "run-scrape-bench.sh: unknown argument: $1" >&2; usage ;;
  esac
done
for v in JOBS DURATION THREADS CONNECTIONS ROUNDS; do
  [[ ${!v} =~ ^[0-9]+$ && ${!v} -gt 0 ]] || { echo "run-scrape-bench.sh: $v must be a positive integer" >&2; exit 2; }
done
[[ $NGINX_WORKERS == auto || $NGINX_WORKERS =~ ^[1-9][0-9]*$ ]] || {
  echo "run-scrape-bench.sh: --nginx-workers must be a positive integer or auto" >&2; exit 2; }

SERVER_BIN=$BUILD_DIR/bench/bench_scrape_server
[[ -x $SERVER_BIN ]] || {
  echo "run-scrape-bench.sh: $SERVER_BIN not found; build the target bench_scrape_server first" >&2
  exit 1
}

bench_require_tools run-scrape-bench.sh || exit 1

WORK=$(mktemp -d /tmp/scrape-bench.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as an unprivileged user when started by root
SERVER_PID=
NGINX_PID=
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  [[ -n $NGINX_PID ]] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. the exporter over a synthetic model; it writes the plain body for nginx.
mkdir -p "$WORK/www"
SERVER_CMD=("$SERVER_BIN" --jobs "$JOBS" --port 0 --dump "$WORK/www/metrics" "${SERVER_ARGS[@]}")
echo "Starting: ${SERVER_CMD[*]}" >&2
"${SERVER_CMD[@]}" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
for _ in $(seq 1800); do  # populating 10k jobs takes a while on a busy 2-core machine
  grep -q '^listening=' "$WORK/server.out" && break
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
  sleep 0.5
done
grep -q '^listening=' "$WORK/server.out" || { echo "bench_scrape_server did not start" >&2; exit 1; }
EXPORTER=$(sed -n 's/^listening=//p' "$WORK/server.out")
kv() { sed -n "s/^$1=//p" "$WORK/server.out"; }
RSS_START=$(bench_rss_kb "$SERVER_PID" VmRSS)

# --- 2. nginx serving the same bytes; gzip -6 (the exporter's level) precomputed for gzip_static.
bench_gzip_copy "$WORK/www/metrics"
bench_start_nginx "$WORK/nginx" "$WORK/www" "$NGINX_WORKERS" || exit 1
NGINX=$NGINX_ADDR

# --- 3. check that both serve what they should (this also warms the exporter's deflate).
declare -A SIZE
SIZE[exporter_plain]=$(bench_body_size "http://$EXPORTER/metrics")
SIZE[exporter_gzip]=$(bench_body_size "http://$EXPORTER/metrics" gzip)
SIZE[nginx_plain]=$(bench_body_size "http://$NGINX/metrics")
SIZE[nginx_gzip]=$(bench_body_size "http://$NGINX/metrics" gzip)
if [[ ${SIZE[nginx_gzip]} -ge ${SIZE[nginx_plain]} ]]; then
  echo "nginx did not serve metrics.gz (gzip_static); see $WORK/nginx/error.log" >&2
  exit 1
fi

# --- 4. wrk against each, one after the other, ROUNDS times.
declare -A RPS_LIST TICKS REQUESTS ERRORS
# A generous timeout: 8 connections each waiting for a multi-megabyte body on 2 busy cores.
WRK_BASE=(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s)
run_wrk() {  # name pid url [gzip]
  local name=$1 pid=$2 url=$3 hdr=() before after out=$WORK/wrk-$1.txt
  [[ ${4:-} == gzip ]] && hdr=(-H 'Accept-Encoding: gzip')
  echo "Running ${WRK_BASE[*]}${hdr[*]:+ -H 'Accept-Encoding: gzip'} $url" >&2
  before=$(bench_cpu_ticks "$pid")
  "${WRK_BASE[@]}" "${hdr[@]}" "$url" >"$out"
  after=$(bench_cpu_ticks "$pid")
  RPS_LIST[$name]+="$(awk '/^Requests\/sec:/ {print $2}' "$out") "
  TICKS[$name]=$((${TICKS[$name]:-0} + after - before))
  REQUESTS[$name]=$((${REQUESTS[$name]:-0} + $(awk '/requests in/ {print $1}' "$out")))
  local err
  err=$(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | paste -sd';' || true)
  [[ -n $err ]] && ERRORS[$name]+="$err "
  return 0
}
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((round = 1; round <= ROUNDS; round++)); do
  run_wrk exporter_plain "$SERVER_PID" "http://$EXPORTER/metrics"
  run_wrk exporter_gzip "$SERVER_PID" "http://$EXPORTER/metrics" gzip
  run_wrk nginx_plain "$NGINX_PID" "http://$NGINX/metrics"
  run_wrk nginx_gzip "$NGINX_PID" "http://$NGINX/metrics" gzip
done
declare -A RPS CPU_MS
for name in exporter_plain exporter_gzip nginx_plain nginx_gzip; do
  RPS[$name]=$(tr ' ' '\n' <<<"${RPS_LIST[$name]}" | grep . | bench_median)
  CPU_MS[$name]=$(awk -v t="${TICKS[$name]}" -v hz="$CLK_TCK" -v n="${REQUESTS[$name]}" \
    'BEGIN { printf "%.2f", (n > 0 ? t * 1000 / hz / n : 0) }')
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
RSS_END=$(bench_rss_kb "$SERVER_PID" VmRSS)
HWM=$(bench_rss_kb "$SERVER_PID" VmHWM)

# --- 5. the report.
mb() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1e6 }'; }
row() {  # label name baseline
  local label=$1 name=$2 base=$3
  awk -v l="$label" -v r="${RPS[$name]}" -v s="${SIZE[$name]}" -v b="${RPS[$base]}" \
    -v c="${CPU_MS[$name]}" -v bc="${CPU_MS[$base]}" \
    'BEGIN { printf "| %s | %.1f | %.0f | %.2f× | %.2f | %.0f | %.2f× |\n", l, r, r * s / 1e6,
             (b > 0 ? r / b : 0), c, (c > 0 ? 1000 / c : 0), (c > 0 ? bc / c : 0) }'
}
echo
echo "### Scrape benchmark: $(kv jobs) jobs, $(kv series) series"
echo
echo "Body: $(mb "${SIZE[exporter_plain]}") MB plain, $(mb "${SIZE[exporter_gzip]}") MB gzip" \
  "(exporter) / $(mb "${SIZE[nginx_gzip]}") MB (nginx gzip_static, gzip -6)."
echo
echo "| target | scrapes/s | MB/s (body) | ratio to nginx | server CPU ms/scrape |" \
  "CPU-bound scrapes/s (1 core) | CPU ratio to nginx |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row "exporter, plain" exporter_plain nginx_plain
row "exporter, gzip" exporter_gzip nginx_gzip
row "nginx $("$NGINX_BIN" -v 2>&1 | sed 's|.*nginx/||'), plain (sendfile)" nginx_plain nginx_plain
row "nginx, gzip_static" nginx_gzip nginx_gzip
echo
echo "Exporter RSS at $(kv jobs) jobs: $((RSS_START / 1024)) MiB after start," \
  "$((RSS_END / 1024)) MiB after the runs (peak $((HWM / 1024)) MiB)."
echo "Exporter startup: populate $(kv populate_seconds) s, derive $(kv derive_seconds) s," \
  "publish $(kv publish_seconds) s."
echo
echo "scrapes/s: median of $ROUNDS round(s) of wrk. CPU-bound scrapes/s = 1000 / server CPU ms" \
  "per scrape: what one core would serve if the load generator cost nothing."
echo
COMMAND="bench/run-scrape-bench.sh $BUILD_DIR --jobs $JOBS --duration $DURATION --threads $THREADS"
COMMAND+=" --connections $CONNECTIONS --rounds $ROUNDS --nginx-workers $NGINX_WORKERS"
for arg in "${SERVER_ARGS[@]}"; do COMMAND+=" --server-arg $arg"; done
echo "Command: \`$COMMAND\`"
echo "(each row: \`${WRK_BASE[*]} [-H 'Accept-Encoding: gzip'] http://127.0.0.1:PORT/metrics\`;" \
  "nginx: $NGINX_WORKERS worker(s), sendfile, gzip_static)."
echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)," \
  "load average $LOAD_BEFORE before / $LOAD_AFTER after. wrk runs on the same cores and" \
  "competes with the server for CPU, equally for both servers."
for name in exporter_plain exporter_gzip nginx_plain nginx_gzip; do
  [[ -n ${ERRORS[$name]:-} ]] && echo "Warning: $name: ${ERRORS[$name]}"
done
exit 0
