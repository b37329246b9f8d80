#!/usr/bin/env bash
# The real modal-exporter against a fake Kubernetes API server holding N running ModalJobs
# (bench_kube_load, over the fake of tests/fakes) and, by default, a fake Modal server holding
# each job's app with a running task, its function's stats, billing rows and the rates
# (bench/real-binary-modal.yaml), and a telemetry endpoint for one job in ten (a DCGM page and
# network counters, scraped every 10 s by the telemetry source, on by default); with --modal off,
# Kubernetes only (bench/real-binary.yaml). For each N it reports, in one run:
#   - start-up sync: the exporter's CPU (utime+stime) and wall time from its start until the
#     first /metrics that lists all N jobs; RSS then, and peak RSS (VmHWM) over the whole run;
#   - change-to-visible latency: one ModalJob changed, /metrics polled until it shows the new
#     value, as plain text and as gzip; median and max over --changes changes, no churn (each
#     poll reads the body only up to the changed job's line, so polling costs next to nothing);
#   - CPU with no change, and under a churn of --churn object changes a second, each over
#     --idle seconds with one gzip scrape every 15 s (as a Prometheus would make);
#   - with Modal on: the exporter's calls to Modal and its telemetry scrapes per minute over the
#     two CPU windows (modal_exporter_modal_calls_total; the telemetry server's count);
#   - the RSS split into anonymous and file-backed pages;
#   - scrapes/s and p50/p99 latency, plain and gzip, 1 and 8 connections (wrk), WHILE the churn
#     runs, beside nginx serving the very same bytes (sendfile, gzip_static, one worker); in
#     --rounds rounds that alternate the two (exporter first, then nginx first, ...), so that a
#     slow spell of the machine falls on both: scrapes/s over all rounds, p50/p99 the median of
#     the rounds'.
# Then a table of every figure across the Ns, the command line and the machine.
#
#   bench/real-binary.sh [--build-dir DIR] [--jobs N[,N...]] [--quick] [--duration S]
#                        [--rounds R] [--idle S] [--changes K] [--churn R] [--nginx-workers W]
#                        [--modal on|off] [--keep]
#
#   --build-dir DIR   a Release build holding src/modal-exporter and bench/bench_kube_load
#                     (default build-rel); this script builds nothing:
#                       cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release \
#                         -DMODAL_EXPORTER_TESTS=OFF -DMODAL_EXPORTER_BENCH=ON
#                       cmake --build build-rel --target modal-exporter bench_kube_load
#   --jobs LIST       comma-separated Ns (default 100,10000,50000; about 4-6 min each)
#   --quick           a smoke run: N=100 unless --jobs, one round of 1 s wrk runs, 3 s CPU
#                     windows, 5 changes (about 30 s; the figures mean little)
#   --duration S      seconds of each wrk run (default 5)
#   --rounds R        wrk runs of each of the 8 kinds (exporter/nginx, plain/gzip, 1/8
#                     connections) per N, alternating exporter and nginx (default 3)
#   --idle S          seconds of each CPU window (default 30)
#   --changes K       timed changes for the latency (default 20)
#   --churn R         object changes a second during the churn phases (default 20)
#   --modal on|off    Modal's side served and polled (default on), or Kubernetes only
#   --keep            keep the work directory (logs, bodies) and print its path
#
# Everything listens on 127.0.0.1, every process started is stopped on exit, and every wait is
# bounded. Exit status 77 when nginx, wrk, curl or gzip is missing and cannot be installed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$ROOT/bench/lib/common.sh"


BUILD_DIR=build-rel
JOBS_LIST=
QUICK=
DURATION=5
ROUNDS=3
IDLE=30
CHANGES=20
CHURN=20
NGINX_WORKERS=1
KEEP=
MODAL=on
ARGS=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    --jobs) JOBS_LIST=$2; shift 2 ;;
    --quick) QUICK=1; DURATION=1; ROUNDS=1; IDLE=3; CHANGES=5; shift ;;
    --duration) DURATION=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --idle) IDLE=$2; shift 2 ;;
    --changes) CHANGES=$2; shift 2 ;;
    --churn) CHURN=$2; shift 2 ;;
    --nginx-workers) NGINX_WORKERS=$2; shift 2 ;;
    --modal) MODAL=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) bench_usage ;;
    *) echo "real-binary.sh: unknown argument: $1" >&2; bench_usage ;;
  esac
done
[[ -n $JOBS_LIST ]] || JOBS_LIST=$([[ -n $QUICK ]] && echo 100 || echo 100,10000,50000)
IFS=, read -r -a NS <<<"$JOBS_LIST"
for v in DURATION ROUNDS IDLE CHANGES CHURN NGINX_WORKERS; do bench_positive "--${v,,}" "${!v}"; done
for n in "${NS[@]}"; do bench_positive --jobs "$n"; done
[[ $MODAL == on || $MODAL == off ]] || { echo "real-binary.sh: --modal must be on or off" >&2; exit 2; }
if [[ $MODAL == on ]]; then
  CONFIG=$ROOT/bench/real-binary-modal.yaml
  LOAD_MODAL=(--modal --telemetry-every 10)
else
  CONFIG=$ROOT/bench/real-binary.yaml
  LOAD_MODAL=()
fi
# One scrape every 15 s, as a Prometheus would; a short window gets one at its start and middle.
SCRAPE_EVERY=$((IDLE < 30 ? (IDLE + 1) / 2 : 15))
# Bound on each start-up wait: bench_kube_load's "ready" and the exporter's sync. A smoke run's
# 100 jobs sync in well under a second, and its CTest timeout is 300 s: a stuck start must fail
# here, with the exporter's log, rather than be killed with nothing said.
SYNC_TIMEOUT=$([[ -n $QUICK ]] && echo 90 || echo 890)

EXPORTER_BIN=$BUILD_DIR/src/modal-exporter
LOAD_BIN=$BUILD_DIR/bench/bench_kube_load
for bin in "$EXPORTER_BIN" "$LOAD_BIN"; do
  [[ -x $bin ]] || {
    echo "real-binary.sh: $bin not found; build the targets modal-exporter and bench_kube_load" \
      "(see --help)" >&2
    exit 1
  }
done
EXPORTER_BIN=$(realpath "$EXPORTER_BIN")
LOAD_BIN=$(realpath "$LOAD_BIN")
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
SANITIZE=$(sed -n 's/^MODAL_EXPORTER_SANITIZE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
if [[ $BUILD_TYPE != Release || ${SANITIZE:-OFF} != OFF ]]; then
  echo "real-binary.sh: warning: $BUILD_DIR is a ${BUILD_TYPE:-?} build (sanitizers ${SANITIZE:-OFF});" \
    "figures are meaningful in a Release build only" >&2
fi
bench_require_tools real-binary.sh || exit 77

WORK=$(mktemp -d /tmp/real-binary-bench.XXXXXX)
chmod 755 "$WORK"  # nginx workers run as an unprivileged user when started by root
EXPORTER_PID=
LOAD_PID=
NGINX_PID=
CTL_W=
CTL_R=

# Stops what one N started; also the EXIT path, so it must cope with anything half started.
stop_all() {
  if [[ -n $EXPORTER_PID ]]; then
    kill "$EXPORTER_PID" 2>/dev/null && { wait "$EXPORTER_PID" 2>/dev/null || true; }
    EXPORTER_PID=
  fi
  if [[ -n $NGINX_PID ]]; then
    kill -QUIT "$NGINX_PID" 2>/dev/null && { wait "$NGINX_PID" 2>/dev/null || true; }
    NGINX_PID=
  fi
  if [[ -n $CTL_W ]]; then
    send_ctl quit || true
    exec {CTL_W}>&-
    CTL_W=
  fi
  [[ -n $CTL_R ]] && { exec {CTL_R}<&-; CTL_R=; }
  if [[ -n $LOAD_PID ]]; then
    # It leaves on "quit" or end of input; a stuck one is stopped after a second.
    for _ in $(seq 10); do kill -0 "$LOAD_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
    LOAD_PID=
  fi
  return 0
}
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  stop_all
  if [[ -n $KEEP ]]; then echo "Work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() {
  echo "real-binary.sh: $*" >&2
  [[ -n ${D:-} && -f $D/exporter.log ]] && { echo "--- exporter log (tail):" >&2; tail -40 "$D/exporter.log" >&2; }
  [[ -n ${D:-} && -f $D/load.err ]] && { echo "--- bench_kube_load stderr (tail):" >&2; tail -20 "$D/load.err" >&2; }
  exit 1
}

# A line to bench_kube_load; fails rather than killing this shell (SIGPIPE) when it is gone.
send_ctl() { (trap '' PIPE; echo "$*" 1>&"$CTL_W") 2>/dev/null; }
# One command to bench_kube_load, its one-line answer in ANSWER. ctl TIMEOUT_S COMMAND...
ctl() {
  local timeout=$1
  shift
  send_ctl "$@" || die "bench_kube_load is gone (before '$*')"
  IFS= read -r -t "$timeout" -u "$CTL_R" ANSWER || die "bench_kube_load did not answer '$*' within $timeout s"
  [[ $ANSWER != error* ]] || die "bench_kube_load: '$*': $ANSWER"
}
# The value of key=value in a line: kv KEY LINE
kv() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<" $2"; }
sleep_until_ns() {
  local now
  now=$(bench_now_ns)
  (($1 > now)) && sleep "$(awk -v ns="$(($1 - now))" 'BEGIN { printf "%.3f", ns / 1e9 }')"
  return 0
}

exporter_alive() { kill -0 "$EXPORTER_PID" 2>/dev/null || die "the exporter exited"; }

# Calls the exporter made to Modal so far (modal_exporter_modal_calls_total, every method and
# code); 0 with Modal off.
modal_calls() {
  curl -fs "http://$EXPORTER_ADDR/metrics" |
    awk '/^modal_exporter_modal_calls_total[{ ]/ { s += $NF } END { printf "%.0f", s }' ||
    die "scrape failed while counting Modal calls"
}

# Exporter CPU over SECONDS with one gzip scrape every SCRAPE_EVERY s, in % of one core.
cpu_window() {
  local seconds=$1 t0 c0 t1 c1 next
  c0=$(bench_cpu_ticks "$EXPORTER_PID")
  t0=$(bench_now_ns)
  for ((next = 0; next < seconds; next += SCRAPE_EVERY)); do
    sleep_until_ns $((t0 + next * 1000000000))
    curl -fs -H 'Accept-Encoding: gzip' -o /dev/null "http://$EXPORTER_ADDR/metrics" ||
      die "scrape failed during a CPU window"
  done
  sleep_until_ns $((t0 + seconds * 1000000000))
  c1=$(bench_cpu_ticks "$EXPORTER_PID")
  t1=$(bench_now_ns)
  awk -v t="$((c1 - c0))" -v hz="$CLK_TCK" -v us="$(((t1 - t0) / 1000))" \
    'BEGIN { printf "%.2f", t / hz / (us / 1e6) * 100 }'
}

# One wrk run; sets REQUESTS, DURATION_US, P50, P99 (ms), ERRS and TICKS (the server's CPU).
# run_wrk PID URL CONNECTIONS plain|gzip
run_wrk() {
  local pid=$1 url=$2 conns=$3 enc=$4 hdr=() before after out
  [[ $enc == gzip ]] && hdr=(-H 'Accept-Encoding: gzip')
  local cmd=(wrk -t"$((conns < 2 ? 1 : 2))" -c"$conns" -d"${DURATION}s" --timeout 10s
    -s "$BENCH_LIB/wrk-report.lua" "${hdr[@]}" "$url")
  before=$(bench_cpu_ticks "$pid")
  out=$("${cmd[@]}" | grep '^wrk_result') || die "wrk failed: ${cmd[*]}"
  after=$(bench_cpu_ticks "$pid")
  REQUESTS=$(kv requests "$out")
  DURATION_US=$(kv duration_us "$out")
  P50=$(awk -v v="$(kv p50_us "$out")" 'BEGIN { printf "%.1f", v / 1000 }')
  P99=$(awk -v v="$(kv p99_us "$out")" 'BEGIN { printf "%.1f", v / 1000 }')
  ERRS=$(kv errors "$out")
  TICKS=$((after - before))
}

# The median of its arguments (the mean of the middle two when even).
median_of() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { printf "%.1f", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else printf "—" }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

declare -A R  # every figure, by "N:name", for the table across the Ns
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START_TIME=$(date -u '+%Y-%m-%d %H:%M UTC')
REPORT=$WORK/report.md
: >"$REPORT"
out() { echo "$*" >>"$REPORT"; echo "$*"; }

run_one() {
  local n=$1
  D=$WORK/n$n
  mkdir -p "$D/www"
  say "N=$n: starting bench_kube_load"
  mkfifo "$D/ctl.in" "$D/ctl.out"
  "$LOAD_BIN" --dir "$D" --jobs "$n" "${LOAD_MODAL[@]}" <"$D/ctl.in" >"$D/ctl.out" 2>"$D/load.err" &
  LOAD_PID=$!
  # Opened in the order the child opens them, or both sides would wait for each other.
  exec {CTL_W}>"$D/ctl.in"
  exec {CTL_R}<"$D/ctl.out"
  IFS= read -r -t "$((SYNC_TIMEOUT + 10))" -u "$CTL_R" ANSWER || die "bench_kube_load did not start"
  [[ $ANSWER == ready* ]] || die "bench_kube_load: $ANSWER"
  local modal_env=()
  if [[ $MODAL == on ]]; then
    local modal_url
    modal_url=$(kv modal "$ANSWER")
    [[ -n $modal_url ]] || die "bench_kube_load serves no Modal (built without the Modal source?)"
    # The fake Modal server's default token (tests/fakes/modal/fake_modal_server.h).
    modal_env=(MODAL_SERVER_URL="$modal_url" MODAL_TOKEN_ID=ak-fake-token-id
      MODAL_TOKEN_SECRET=as-fake-token-secret)
  fi

  # --- start-up sync
  local port
  port=$(bench_free_port)
  EXPORTER_ADDR=127.0.0.1:$port
  say "N=$n: starting the exporter on $EXPORTER_ADDR"
  local start_ns
  start_ns=$(bench_now_ns)
  # env execs the exporter, so $! is the exporter itself. The operator Pod poll and Modal need
  # variables that must not leak in from the caller's environment.
  env -u POD_NAME -u POD_NAMESPACE -u KUBECONFIG -u MODAL_SERVER_URL -u MODAL_TOKEN_ID \
    -u MODAL_TOKEN_SECRET "${modal_env[@]}" "$EXPORTER_BIN" --config "$CONFIG" \
    --kubeconfig "$D/kubeconfig" --web.listen-address "$EXPORTER_ADDR" >"$D/exporter.log" 2>&1 &
  EXPORTER_PID=$!
  ctl $((SYNC_TIMEOUT + 10)) sync "$EXPORTER_PID" "$EXPORTER_ADDR" "$SYNC_TIMEOUT"
  local seen_ns=${ANSWER#* seen_unix=}
  seen_ns=${seen_ns%% *}
  seen_ns=${seen_ns/./}
  R[$n:sync_cpu]=$(awk -v t="$(kv cpu_ticks "$ANSWER")" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }')
  R[$n:sync_wall]=$(awk -v ns="$((seen_ns - start_ns))" 'BEGIN { printf "%.2f", ns / 1e9 }')
  R[$n:rss_sync]=$(mib "$(kv rss_kb "$ANSWER")")
  R[$n:sync_polls]=$(kv polls "$ANSWER")
  say "N=$n: synced in ${R[$n:sync_wall]} s, ${R[$n:sync_cpu]} s CPU"

  # --- the body nginx will serve, taken once the exporter has settled (with Modal on, once the
  # telemetry source's second round has given the jobs their network bandwidth, which takes two
  # scrapes of an endpoint 10 s apart: the body has every telemetry series)
  if [[ -n $QUICK ]]; then
    sleep 0.5
  elif [[ $MODAL == on ]]; then
    # Polled until the number of bandwidth series is above zero and stays put for a second:
    # the second round is over.
    local waited=0 count=0 previous=-1
    while :; do
      count=$(curl -s "http://$EXPORTER_ADDR/metrics" | grep -c '^modal_network_bandwidth_mbps{' || true)
      ((count > 0 && count == previous)) && break
      previous=$count
      exporter_alive
      ((waited++ < 60)) || die "N=$n: no telemetry series in /metrics 60 s after sync"
      sleep 1
    done
  else
    sleep 2
  fi
  exporter_alive
  curl -fs -o "$D/www/metrics" "http://$EXPORTER_ADDR/metrics" || die "cannot fetch /metrics"
  bench_gzip_copy "$D/www/metrics"
  R[$n:series]=$(grep -vc '^#' "$D/www/metrics")
  R[$n:plain_mb]=$(awk -v b="$(stat -c %s "$D/www/metrics")" 'BEGIN { printf "%.2f", b / 1e6 }')
  R[$n:gzip_mb]=$(awk -v b="$(bench_body_size "http://$EXPORTER_ADDR/metrics" gzip)" \
    'BEGIN { printf "%.2f", b / 1e6 }')
  R[$n:nginx_gzip_mb]=$(awk -v b="$(stat -c %s "$D/www/metrics.gz")" 'BEGIN { printf "%.2f", b / 1e6 }')
  R[$n:rss_settled]=$(mib "$(bench_rss_kb "$EXPORTER_PID" VmRSS)")

  # --- change-to-visible latency, nothing else changing
  say "N=$n: $CHANGES timed changes"
  ctl $((CHANGES * 12 + 30)) latency "$EXPORTER_ADDR" "$CHANGES"
  R[$n:lat_median]=$(kv median_ms "$ANSWER")
  R[$n:lat_max]=$(kv max_ms "$ANSWER")
  R[$n:lat_gzip_median]=$(kv gzip_median_ms "$ANSWER")
  R[$n:lat_gzip_max]=$(kv gzip_max_ms "$ANSWER")
  R[$n:lat_gzip_samples]=$(kv gzip_samples "$ANSWER")
  R[$n:lat_poll]=$(kv poll_median_ms "$ANSWER")
  R[$n:lat_failed]=$(kv failed "$ANSWER")
  R[$n:lat_samples]=$(kv samples "$ANSWER")

  # --- CPU with no change
  say "N=$n: CPU with no change (${IDLE} s)"
  sleep 1  # the last timed change's publish is not part of the idle window
  exporter_alive
  local calls0 calls_t0 telemetry0
  calls0=$(modal_calls)
  calls_t0=$(bench_now_ns)
  ctl 10 stats
  telemetry0=$(kv telemetry_requests "$ANSWER")
  R[$n:cpu_idle]=$(cpu_window "$IDLE")

  # --- CPU under churn
  say "N=$n: CPU under a churn of $CHURN changes/s (${IDLE} s)"
  ctl 10 churn "$CHURN"
  sleep 2
  ctl 10 stats
  local changes0 t0
  changes0=$(kv changes "$ANSWER")
  t0=$(bench_now_ns)
  R[$n:cpu_churn]=$(cpu_window "$IDLE")
  ctl 10 stats
  R[$n:churn_rate]=$(awk -v c="$(($(kv changes "$ANSWER") - changes0))" \
    -v ns="$(($(bench_now_ns) - t0))" 'BEGIN { printf "%.1f", c / (ns / 1e9) }')
  R[$n:telemetry_rpm]=$(awk -v c="$(($(kv telemetry_requests "$ANSWER") - telemetry0))" \
    -v ns="$(($(bench_now_ns) - calls_t0))" 'BEGIN { printf "%.0f", c / (ns / 60e9) }')
  R[$n:modal_calls]=$(awk -v c="$(($(modal_calls) - calls0))" \
    -v ns="$(($(bench_now_ns) - calls_t0))" 'BEGIN { printf "%.0f", c / (ns / 60e9) }')

  # --- scrapes while the churn runs, beside nginx
  bench_start_nginx "$D/nginx" "$D/www" "$NGINX_WORKERS" || die "nginx did not start"
  local gz
  gz=$(bench_body_size "http://$NGINX_ADDR/metrics" gzip) || die "nginx gzip check failed"
  [[ $gz -lt $(stat -c %s "$D/www/metrics") ]] || die "nginx did not serve metrics.gz (gzip_static)"
  local conns enc target round
  for conns in 1 8; do
    for enc in plain gzip; do
      local -A requests=() us=() ticks=() errors=() p50s=() p99s=() each=()
      for ((round = 1; round <= ROUNDS; round++)); do
        local order=(exporter nginx)
        ((round % 2)) || order=(nginx exporter)
        for target in "${order[@]}"; do
          exporter_alive
          say "N=$n: wrk $target $enc, $conns connection(s), ${DURATION} s (round $round of $ROUNDS)"
          if [[ $target == exporter ]]; then
            run_wrk "$EXPORTER_PID" "http://$EXPORTER_ADDR/metrics" "$conns" "$enc"
          else
            run_wrk "$NGINX_PID" "http://$NGINX_ADDR/metrics" "$conns" "$enc"
          fi
          requests[$target]=$((${requests[$target]:-0} + REQUESTS))
          us[$target]=$((${us[$target]:-0} + DURATION_US))
          ticks[$target]=$((${ticks[$target]:-0} + TICKS))
          errors[$target]=$((${errors[$target]:-0} + ERRS))
          p50s[$target]+=" $P50"
          p99s[$target]+=" $P99"
          each[$target]+="${each[$target]:+ / }$(awk -v n="$REQUESTS" -v us="$DURATION_US" \
            'BEGIN { printf "%.0f", (us > 0 ? n / (us / 1e6) : 0) }')"
        done
      done
      for target in exporter nginx; do
        local key=$n:$target:$enc:$conns
        # shellcheck disable=SC2086  # the lists are words
        {
          R[$key:rps]=$(awk -v n="${requests[$target]}" -v us="${us[$target]}" \
            'BEGIN { printf "%.1f", (us > 0 ? n / (us / 1e6) : 0) }')
          R[$key:p50]=$(median_of ${p50s[$target]})
          R[$key:p99]=$(median_of ${p99s[$target]})
        }
        R[$key:errors]=${errors[$target]}
        R[$key:each]=${each[$target]}
        R[$key:cpu_ms]=$(awk -v t="${ticks[$target]}" -v hz="$CLK_TCK" -v n="${requests[$target]}" \
          'BEGIN { printf "%.2f", (n > 0 ? t * 1000 / hz / n : 0) }')
      done
    done
  done
  ctl 10 stats
  R[$n:churn_total]=$(kv changes "$ANSWER")
  # Telemetry on, yet no endpoint scraped: the figures would not be the ones users get.
  [[ $MODAL == off || $(kv telemetry_requests "$ANSWER") -gt 0 ]] ||
    die "the exporter scraped no telemetry endpoint (see $D/exporter.log)"
  ctl 10 churn 0
  exporter_alive
  R[$n:rss_end]=$(mib "$(bench_rss_kb "$EXPORTER_PID" VmRSS)")
  R[$n:hwm]=$(mib "$(bench_rss_kb "$EXPORTER_PID" VmHWM)")
  R[$n:rss_anon]=$(mib "$(bench_rss_kb "$EXPORTER_PID" RssAnon)")
  R[$n:rss_file]=$(mib "$(bench_rss_kb "$EXPORTER_PID" RssFile)")
  R[$n:fake_cpu]=$(awk -v t="$(bench_cpu_ticks "$LOAD_PID")" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz }')
  stop_all

  report_one "$n"
}

report_one() {
  local n=$1
  out ""
  out "### $n ModalJobs, Modal $MODAL: ${R[$n:series]} series, ${R[$n:plain_mb]} MB plain, ${R[$n:gzip_mb]} MB gzip"
  out ""
  out "| figure | value |"
  out "|---|---:|"
  out "| start-up sync: CPU / wall (until /metrics lists all $n jobs) | ${R[$n:sync_cpu]} s / ${R[$n:sync_wall]} s |"
  out "| RSS after sync / when the body was taken / at the end | ${R[$n:rss_sync]} / ${R[$n:rss_settled]} / ${R[$n:rss_end]} MiB |"
  out "| peak RSS (VmHWM, whole run) | ${R[$n:hwm]} MiB |"
  out "| RSS at the end: anonymous / file-backed | ${R[$n:rss_anon]} / ${R[$n:rss_file]} MiB |"
  out "| change visible in /metrics, plain: median / max ($CHANGES changes, no churn) | ${R[$n:lat_median]} / ${R[$n:lat_max]} ms |"
  out "| change visible in /metrics, gzip: median / max | ${R[$n:lat_gzip_median]} / ${R[$n:lat_gzip_max]} ms |"
  out "| CPU with no change (${IDLE} s, a gzip scrape every ${SCRAPE_EVERY} s) | ${R[$n:cpu_idle]} % of a core |"
  out "| CPU under churn ($CHURN changes/s asked, ${R[$n:churn_rate]}/s made) | ${R[$n:cpu_churn]} % of a core |"
  [[ $MODAL == off ]] ||
    out "| Modal calls per minute (both CPU windows; modal_exporter_modal_calls_total) | ${R[$n:modal_calls]} |"
    out "| telemetry scrapes per minute (both CPU windows) | ${R[$n:telemetry_rpm]} |"
  out ""
  out "Scrapes under the churn ($CHURN changes/s): $ROUNDS round(s) of wrk ${DURATION} s each, exporter and nginx" \
    "alternating; scrapes/s over all rounds, p50/p99 the median of the rounds':"
  out ""
  out "| scrape | exporter scrapes/s | nginx scrapes/s | ratio | exporter p50 / p99 ms | nginx p50 / p99 ms | p99 ratio | exporter CPU ms/scrape |"
  out "|---|---:|---:|---:|---:|---:|---:|---:|"
  local conns enc e g
  for conns in 1 8; do
    for enc in plain gzip; do
      e=$n:exporter:$enc:$conns
      g=$n:nginx:$enc:$conns
      out "| $enc, $conns conn. | ${R[$e:rps]} | ${R[$g:rps]} | $(ratio "${R[$e:rps]}" "${R[$g:rps]}") |" \
        "${R[$e:p50]} / ${R[$e:p99]} | ${R[$g:p50]} / ${R[$g:p99]} | $(ratio "${R[$e:p99]}" "${R[$g:p99]}") |" \
        "${R[$e:cpu_ms]} |"
      [[ ${R[$e:errors]} == 0 && ${R[$g:errors]} == 0 ]] ||
        echo "Warning: wrk errors at $enc, $conns conn.: exporter ${R[$e:errors]}, nginx ${R[$g:errors]}" >>"$WORK/warnings"
    done
  done
  out ""
  local rounds="Scrapes/s of each round, exporter; nginx:"
  for conns in 1 8; do
    for enc in plain gzip; do
      rounds+=" $enc c$conns ${R[$n:exporter:$enc:$conns:each]}; ${R[$n:nginx:$enc:$conns:each]}."
    done
  done
  out "$rounds"
  out "Change latency samples (ms), plain: ${R[$n:lat_samples]}; gzip: ${R[$n:lat_gzip_samples]}."
  out "Polls alternate plain and gzip, each read only up to the changed line, 0.5 ms apart; their" \
    "median round trip was ${R[$n:lat_poll]} ms (it includes any wait for a busy exporter).$([[ ${R[$n:lat_failed]} == 0 ]] ||
      echo " Changes not seen within 10 s: ${R[$n:lat_failed]}.")"
  out "Start-up: ${R[$n:sync_polls]} polls of the modal_jobs_active family (not the whole body) until it" \
    "added up to $n, then one full /metrics read to check that it lists every job."
  out "wrk: \`wrk -t{1,2} -c{1,8} -d${DURATION}s --timeout 10s -s bench/lib/wrk-report.lua" \
    "[-H 'Accept-Encoding: gzip'] http://127.0.0.1:PORT/metrics\`."
  out "The fake API server$([[ $MODAL == off ]] || echo " and the fake Modal server (one process)") used ${R[$n:fake_cpu]} s of CPU in all (it shares the cores)."
}

report_all() {
  local n row
  out ""
  out "### Across N (Modal $MODAL)"
  out ""
  row="| figure |"
  for n in "${NS[@]}"; do row+=" $n jobs |"; done
  out "$row"
  row="|---|"
  for _ in "${NS[@]}"; do row+="---:|"; done
  out "$row"
  across() {  # label printf-template with %s for each N's value(s)
    local fmt=$2 r="| $1 |"
    shift 2
    for n in "${NS[@]}"; do
      local vals=() k
      for k in "$@"; do vals+=("${R[$n:$k]:-—}"); done
      # shellcheck disable=SC2059  # the template is ours
      r+=" $(printf "$fmt" "${vals[@]}") |"
    done
    out "$r"
  }
  across "series / plain MB" "%s / %s" series plain_mb
  across "start-up sync CPU / wall (s)" "%s / %s" sync_cpu sync_wall
  across "RSS after sync (MiB)" "%s" rss_sync
  across "peak RSS, VmHWM (MiB)" "%s" hwm
  across "RSS at the end: anonymous / file-backed (MiB)" "%s / %s" rss_anon rss_file
  across "change visible, plain: median / max (ms)" "%s / %s" lat_median lat_max
  across "change visible, gzip: median / max (ms)" "%s / %s" lat_gzip_median lat_gzip_max
  across "CPU, no change (% of a core)" "%s" cpu_idle
  across "CPU, churn $CHURN/s (% of a core)" "%s" cpu_churn
  [[ $MODAL == off ]] || across "Modal calls per minute" "%s" modal_calls
  [[ $MODAL == off ]] || across "telemetry scrapes per minute" "%s" telemetry_rpm
  local conns enc
  for conns in 1 8; do
    for enc in plain gzip; do
      across "scrapes/s $enc c$conns: exporter / nginx" "%s / %s" \
        "exporter:$enc:$conns:rps" "nginx:$enc:$conns:rps"
      across "p99 ms $enc c$conns: exporter / nginx" "%s / %s" \
        "exporter:$enc:$conns:p99" "nginx:$enc:$conns:p99"
    done
  done
  out ""
  out "Command: \`bench/real-binary.sh${ARGS[*]:+ ${ARGS[*]}}\` ($(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo '?')," \
    "${BUILD_TYPE:-?} build)."
  out "Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1))," \
    "$(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); $START_TIME;" \
    "load average $LOAD_BEFORE before / $(cut -d' ' -f1-3 /proc/loadavg) after. wrk, the fake API" \
    "server and the exporter share the cores; nginx: $NGINX_WORKERS worker(s), sendfile, gzip_static" \
    "of gzip -6."
  [[ -f $WORK/warnings ]] && while IFS= read -r line; do out "$line"; done <"$WORK/warnings"
  return 0
}

for n in "${NS[@]}"; do run_one "$n"; done
report_all
