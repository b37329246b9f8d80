#!/usr/bin/env bash
# Chaos soak: the real modal-exporter, Kubernetes and Modal on (bench/chaos-soak.yaml), served
# over TLS (--web.config.file) with a state file, against the fake Kubernetes API server and the
# fake Modal server of bench_chaos, while jobs live and die at a steady rate and faults hit it at
# random (seeded), alone and overlapping. It scrapes /metrics every second (plain and gzip in
# turn) and checks, as it goes and at the end:
#   - counters: modal_jobs_total by status never above the truth bench_chaos kept (nothing
#     counted twice), never going down, and catching up with the truth within --lag-bound
#     seconds once no fault is in effect (nothing lost); exactly equal to it after every SIGKILL
#     and restart on the state file, and at the end, where modal_job_info (live jobs) and
#     modal_jobs_active (jobs not finished) must match too;
#   - every scrape answered (200, a valid gzip body when asked for one); scrapes between a
#     deliberate SIGKILL and the restarted exporter's /readyz are counted apart, not as failures;
#   - after each fault: /readyz answering 200 and every modal_exporter_source_up at 1 within
#     --recovery-bound seconds (the maximum per fault kind is reported); after a certificate
#     rotation, the new certificate served within that bound;
#   - no warn or error line in the exporter's log unless a fault that explains it was in effect
#     shortly before (the table EXPLAINED below: fault kind -> patterns of the lines it may cause);
#   - RSS, anonymous RSS, open fds and threads sampled from /proc every --sample seconds; their
#     slope after --warmup (linear regression within each exporter lifetime, pooled) reported.
# It writes, AS IT GOES, OUT/samples.csv (time, rss, anon, fds, threads, cpu, scrape latency p50
# and max of the interval, fault marks) and OUT/faults.tsv, and at the end OUT/summary.txt and
# OUT/soak.png (gnuplot; left out with a note when gnuplot is missing). Exit status: 0 when every
# check held, 1 with the failed checks named (also in the summary), 2 for a usage error, 77 when
# curl, openssl or gzip is missing.
#
#   bench/chaos-soak.sh [--build-dir DIR] [--duration D] [--jobs N] [--churn R]
#                       [--fault-every S] [--fault-length S] [--faults LIST] [--seed S]
#                       [--out DIR] [--sample S] [--warmup D] [--recovery-bound S]
#                       [--lag-bound S] [--min-age S] [--scrape-timeout S] [--kill-every D]
#                       [--every-kind]
#
#   --build-dir DIR     holds src/modal-exporter and bench/bench_chaos (default build-rel):
#                         cmake --build build-rel --target modal-exporter bench_chaos
#   --duration D        how long faults and churn run: 90s, 30m, 2h or seconds (default 2h)
#   --jobs N            jobs that exist at any time (default 200)
#   --churn R           ceiling of object changes a second: creations, status changes,
#                       finishes, deletions (default 10; a job's life is about 4N/R seconds)
#   --fault-every S     mean seconds between the starts of two faults (default 60; the gap is
#                       uniform in [S/2, 3S/2], so faults overlap when they last longer)
#   --fault-length S    longest fault, in seconds (default 20; each lasts between S/4 and S)
#   --faults LIST       comma-separated kinds, or "all" (default), or "none":
#                         api-restart        the API server stops (every connection cut) and
#                                            comes back on the same port
#                         watch-410          410 Expired on every watch, those re-opened too
#                         http-errors        429 (Retry-After) then 503 and 500 on LIST/WATCH
#                         stall-watch        every watch goes silent without closing
#                         split-chunks       watch events cut into chunks of 7-97 bytes
#                         modal-unavailable  every Modal method answers UNAVAILABLE
#                         modal-exhausted    RESOURCE_EXHAUSTED with a retry-after of 2 s
#                         modal-auth         the Modal token revoked, AuthTokenGet UNAVAILABLE
#                         modal-slow         Modal answers 1.5-4 s late
#                         sighup             SIGHUP: config reload, the sources restarted
#                         cert-rotate        new TLS certificate and key written over the old
#                         sigkill            SIGKILL, then a restart on the state file
#                       Faults are drawn from a shuffled round of the kinds, so each kind comes
#                       once per round. The telemetry endpoints are not in the mix: the bench
#                       configuration has no telemetry source (bench/chaos-soak.yaml).
#   --seed S            seed of the faults' order and timing and of the jobs (default 1)
#   --out DIR           where everything goes (default: a new /tmp/chaos-soak.XXXXXX)
#   --sample S          seconds between /proc samples, one CSV row each (default 5)
#   --warmup D          left out of the slopes, at the start and after each restart (default
#                       15m, at most a quarter of --duration)
#   --recovery-bound S  /readyz and the sources back after a fault (default 90)
#   --lag-bound S       counters caught up with the truth after the last fault (default 90)
#   --min-age S         no job deleted younger, no finished job deleted sooner, and no job
#                       deleted while a fault on the Kubernetes side is in effect or ended less
#                       than S ago (default 45): S must cover the exporter's back-off after a
#                       fault, or a job that finished and went away unseen is rightly counted
#                       as cancelled, and the check fails
#   --scrape-timeout S  a scrape not answered in S seconds failed (default 10)
#   --kill-every D      SIGKILL on a clock of its own, every D (30m, 1h), and no longer in the
#                       shuffled round: lifetimes long enough for the slopes after --warmup
#                       (default: sigkill comes once per round, like every other kind)
#   --every-kind        a check more: every kind of the mix happened and recovered at least once
#   --plot-only DIR     only draw DIR/soak.png again from DIR/samples.csv (of a run, or one
#                       still running)
#
# Everything listens on 127.0.0.1; every process started is stopped on exit.

# One compound command: bash reads all of it before running any, so a run of hours is not
# disturbed when the file is edited meanwhile.
{
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib/common.sh
source "$ROOT/bench/lib/common.sh"


# DIR/soak.png from DIR/samples.csv: RSS, CPU and scrape latency over time, a line where each
# fault started (red SIGKILL, blue SIGHUP and certificate rotation, orange Modal, grey
# Kubernetes); minutes on the x axis beyond 20 minutes.
plot_soak() {
  local dir=$1 csv=$1/samples.csv marks div=1 unit=seconds
  command -v gnuplot >/dev/null || { echo "gnuplot is not installed (apt-get install gnuplot-nox)" >&2; return 1; }
  [[ -s $csv ]] || { echo "no $csv" >&2; return 1; }
  if awk -F, 'END { exit !($1 > 1200) }' "$csv"; then div=60 unit=minutes; fi
  marks=$(mktemp)
  awk -F, -v div="$div" 'NR > 1 && $14 != "" {
      n = split($14, k, ";")
      for (i = 1; i <= n; i++) {
        c = k[i] == "sigkill" ? "#d62728" : (k[i] == "sighup" || k[i] == "cert-rotate") ? "#1f77b4" : k[i] ~ /^modal-/ ? "#ff9f40" : "#aaaaaa"
        printf "set arrow from %.4f, graph 0 to %.4f, graph 1 nohead lc rgb \"%s\" lw 0.7 back\n", $1 / div, $1 / div, c
      } }' "$csv" >"$marks"
  gnuplot <<EOF
set terminal pngcairo size 1200,900 font ",10"
set output "$dir/soak.png"
set datafile separator ","
set multiplot layout 3,1 title "Chaos soak. Faults started: red SIGKILL, blue SIGHUP or certificate rotation, orange Modal, grey Kubernetes"
set xlabel "$unit"
set key top right opaque
set grid
load "$marks"
set ylabel "MiB"
set yrange [0:*]
set key bottom right opaque
plot "$csv" every ::1 using (\$1/$div):(\$4/1024) with lines lw 1.5 title "RSS", \
     "" every ::1 using (\$1/$div):(\$5/1024) with lines title "anonymous RSS"
set key top right opaque
set ylabel "% of a core"
plot "$csv" every ::1 using (\$1/$div):8 with lines title "CPU (exporter)"
set ylabel "ms"
set logscale y
set yrange [*:*]
plot "$csv" every ::1 using (\$1/$div):10 with lines title "scrape latency, median of the interval", \
     "" every ::1 using (\$1/$div):11 with lines title "scrape latency, max of the interval"
unset multiplot
EOF
  local rc=$?
  rm -f "$marks"
  return $rc
}

ALL_FAULTS=(api-restart watch-410 http-errors stall-watch split-chunks modal-unavailable
  modal-exhausted modal-auth modal-slow sighup cert-rotate sigkill)

# Fault kind -> extended regular expression of the warn/error lines it may cause while in effect
# and for --recovery-bound seconds after ("^$" matches no log line: the fault explains none).
# The Kubernetes faults explain failed LISTs and WATCHes of their kind of failure, the Modal
# faults failed calls with their status code, a certificate rotation a reload that caught the
# certificate and the key half replaced. A SIGKILL explains nothing: the restarted exporter must
# find its state file whole.
K8S_FAILED='msg="Kubernetes API (list|watch) on [^"]* failed" .*'
MODAL_FAILED='msg="modal (call budget paused|poll failed)" .*error_type='
declare -A EXPLAINED=(
  [any]='^$'
  [api-restart]="${K8S_FAILED}error_type=connection"
  [watch-410]="${K8S_FAILED}status=410"
  [http-errors]="${K8S_FAILED}status=(429|500|503)"
  [stall-watch]="${K8S_FAILED}error_type=timeout"
  [split-chunks]='^$'
  [modal-unavailable]="${MODAL_FAILED}grpc_unavailable"
  [modal-exhausted]="${MODAL_FAILED}grpc_resource_exhausted"
  [modal-auth]="${MODAL_FAILED}(grpc_unavailable|grpc_unauthenticated)"
  [modal-slow]="${MODAL_FAILED}grpc_deadline_exceeded"
  [sighup]="${MODAL_FAILED}grpc_cancelled"
  [cert-rotate]='msg="Web config reload (failed|turns TLS)'
  [sigkill]='^$'
)

BUILD_DIR=build-rel
DURATION=2h
JOBS=200
CHURN=10
FAULT_EVERY=60
FAULT_LENGTH=20
FAULTS=all
SEED=1
OUT=
SAMPLE=5
WARMUP=
RECOVERY_BOUND=90
LAG_BOUND=90
MIN_AGE=45
SCRAPE_TIMEOUT=10
KILL_EVERY=
EVERY_KIND=
ARGS=("$@")
while [[ $# -gt 0 ]]; do
  [[ $1 == -h || $1 == --help ]] && bench_usage
  if [[ $1 == --every-kind ]]; then EVERY_KIND=1; shift; continue; fi
  if [[ $1 == --plot-only ]]; then
    [[ $# -ge 2 ]] || bench_usage
    plot_soak "$2"
    exit
  fi
  [[ $# -ge 2 ]] || { echo "chaos-soak.sh: $1 needs a value" >&2; bench_usage; }
  case $1 in
    --build-dir) BUILD_DIR=$2 ;;
    --duration) DURATION=$2 ;;
    --jobs) JOBS=$2 ;;
    --churn) CHURN=$2 ;;
    --fault-every) FAULT_EVERY=$2 ;;
    --fault-length) FAULT_LENGTH=$2 ;;
    --faults) FAULTS=$2 ;;
    --seed) SEED=$2 ;;
    --out) OUT=$2 ;;
    --sample) SAMPLE=$2 ;;
    --warmup) WARMUP=$2 ;;
    --recovery-bound) RECOVERY_BOUND=$2 ;;
    --lag-bound) LAG_BOUND=$2 ;;
    --min-age) MIN_AGE=$2 ;;
    --scrape-timeout) SCRAPE_TIMEOUT=$2 ;;
    --kill-every) KILL_EVERY=$2 ;;
    *) echo "chaos-soak.sh: unknown argument: $1" >&2; bench_usage ;;
  esac
  shift 2
done

# Seconds of "90s", "30m", "2h", "1h30m" or "600".
seconds_of() {
  local v=$1 total=0 n unit
  [[ $v =~ ^[0-9]+$ ]] && { echo "$v"; return; }
  [[ $v =~ ^([0-9]+[hms])+$ ]] || { echo "chaos-soak.sh: not a duration: $v" >&2; exit 2; }
  while [[ $v =~ ^([0-9]+)([hms])(.*)$ ]]; do
    n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} v=${BASH_REMATCH[3]}
    case $unit in h) total=$((total + n * 3600)) ;; m) total=$((total + n * 60)) ;; s) total=$((total + n)) ;; esac
  done
  echo "$total"
}
DURATION_S=$(seconds_of "$DURATION")
for v in JOBS CHURN FAULT_EVERY FAULT_LENGTH SAMPLE RECOVERY_BOUND LAG_BOUND SCRAPE_TIMEOUT DURATION_S; do
  bench_positive "--${v,,}" "${!v}"
done
[[ $SEED =~ ^[0-9]+$ && $MIN_AGE =~ ^[0-9]+$ ]] || { echo "chaos-soak.sh: --seed and --min-age must be integers" >&2; exit 2; }
if [[ -n $WARMUP ]]; then
  WARMUP_S=$(seconds_of "$WARMUP")
else
  WARMUP_S=$((DURATION_S / 4 < 900 ? DURATION_S / 4 : 900))
fi
case $FAULTS in
  all) KINDS=("${ALL_FAULTS[@]}") ;;
  none) KINDS=() ;;
  *)
    IFS=, read -r -a KINDS <<<"$FAULTS"
    for k in "${KINDS[@]}"; do
      [[ " ${ALL_FAULTS[*]} " == *" $k "* ]] || { echo "chaos-soak.sh: unknown fault kind: $k" >&2; exit 2; }
    done
    ;;
esac

EXPORTER_BIN=$BUILD_DIR/src/modal-exporter
DRIVER_BIN=$BUILD_DIR/bench/bench_chaos
for bin in "$EXPORTER_BIN" "$DRIVER_BIN"; do
  [[ -x $bin ]] || { echo "chaos-soak.sh: $bin not found; build the targets modal-exporter and bench_chaos" >&2; exit 1; }
done
EXPORTER_BIN=$(realpath "$EXPORTER_BIN")
DRIVER_BIN=$(realpath "$DRIVER_BIN")
for tool in curl openssl gzip; do
  command -v "$tool" >/dev/null || { echo "chaos-soak.sh: $tool is missing (apt-get install $tool)" >&2; exit 77; }
done
BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
SANITIZE=$(sed -n 's/^MODAL_EXPORTER_SANITIZE:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
WITH_MODAL=$(sed -n 's/^MODAL_EXPORTER_WITH_MODAL:[A-Z]*=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null || true)
# SIGKILL on its own clock: out of the round.
KILL_EVERY_S=0
if [[ -n $KILL_EVERY ]]; then
  KILL_EVERY_S=$(seconds_of "$KILL_EVERY")
  bench_positive --kill-every "$KILL_EVERY_S"
  for i in "${!KINDS[@]}"; do [[ ${KINDS[$i]} == sigkill ]] && unset "KINDS[$i]"; done
  KINDS=("${KINDS[@]}")
fi
if [[ ${WITH_MODAL:-ON} == OFF ]]; then
  # A build without the Modal source: Kubernetes only, and no Modal faults.
  MODAL=off
  for i in "${!KINDS[@]}"; do [[ ${KINDS[$i]} == modal-* ]] && unset "KINDS[$i]"; done
  KINDS=("${KINDS[@]}")
else
  MODAL=on
fi

if [[ -z $OUT ]]; then OUT=$(mktemp -d /tmp/chaos-soak.XXXXXX); fi
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
W=$OUT/work
rm -rf "$W"
mkdir -p "$W/tls"
RANDOM=$SEED

DRIVER_PID=
EXPORTER_PID=
CTL_W=
CTL_R=
# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  if [[ -n $EXPORTER_PID ]]; then
    kill "$EXPORTER_PID" 2>/dev/null && { wait "$EXPORTER_PID" 2>/dev/null || true; }
  fi
  if [[ -n $CTL_W ]]; then (trap '' PIPE; echo quit 1>&"$CTL_W") 2>/dev/null || true; exec {CTL_W}>&-; fi
  if [[ -n $DRIVER_PID ]]; then
    for _ in $(seq 20); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$DRIVER_PID" 2>/dev/null || true
    wait "$DRIVER_PID" 2>/dev/null || true
  fi
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- clocks, logging, failures -------------------------------------------------------------------
NOW_MS=0
tick_now() { NOW_MS=$((${EPOCHREALTIME/./} / 1000)); }
iso_of_ms() { date -u -d "@$(($1 / 1000)).$(printf '%03d' $(($1 % 1000)))" +%Y-%m-%dT%H:%M:%S.%3NZ; }
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/soak.log" >&2; }
FAILURES=()
fail() {
  FAILURES+=("$*")
  say "CHECK FAILED: $*"
}
die() {
  say "chaos-soak.sh: $*"
  [[ -f $OUT/exporter.log ]] && { echo "--- exporter log (tail):" >&2; tail -30 "$OUT/exporter.log" >&2; }
  [[ -f $OUT/driver.err ]] && { echo "--- bench_chaos stderr (tail):" >&2; tail -20 "$OUT/driver.err" >&2; }
  exit 1
}

# --- the driver ----------------------------------------------------------------------------------
send_ctl() { (trap '' PIPE; echo "$*" 1>&"$CTL_W") 2>/dev/null; }
ctl() {
  send_ctl "$@" || die "bench_chaos is gone (before '$*')"
  IFS= read -r -t 30 -u "$CTL_R" ANSWER || die "bench_chaos did not answer '$*' within 30 s"
  [[ $ANSWER != error* ]] || die "bench_chaos: '$*': $ANSWER"
}
kv() { local re=" $1=([^ ]*)"; [[ " $2" =~ $re ]] && echo "${BASH_REMATCH[1]}"; }
declare -A TRUTH=()
# The counters checked against the truth, and the series each one is the sum of.
COUNTERS=(created completed failed cancelled i6pn observed_completed observed_failed)
declare -A SERIES=(
  [created]='modal_jobs_total{status="created"}' [completed]='modal_jobs_total{status="completed"}'
  [failed]='modal_jobs_total{status="failed"}' [cancelled]='modal_jobs_total{status="cancelled"}'
  [i6pn]='modal_i6pn_jobs_total' [observed_completed]='modal_job_duration_seconds_count{status="completed"}'
  [observed_failed]='modal_job_duration_seconds_count{status="failed"}'
)
read_truth() {
  ctl truth
  local k
  for k in created completed failed cancelled i6pn live active changes; do TRUTH[$k]=$(kv "$k" "$ANSWER"); done
  # Each finished job's duration is observed once: the histograms' counts follow the statuses.
  TRUTH[observed_completed]=${TRUTH[completed]}
  TRUTH[observed_failed]=${TRUTH[failed]}
}

# --- TLS: a CA, and server certificates signed by it (rotated by cert-rotate) --------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=chaos-soak CA" \
  -keyout "$W/tls/ca.key" -out "$W/tls/ca.crt" 2>/dev/null || die "openssl could not make a CA"
CERT_SERIAL=
# Writes a new key and certificate over the served ones, each by rename (what a Secret volume
# or cert-manager does); sets CERT_SERIAL to the new certificate's serial.
new_certificate() {
  local d=$W/tls/next
  mkdir -p "$d"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null || return 1
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/ext"
  openssl x509 -req -in "$d/server.csr" -CA "$W/tls/ca.crt" -CAkey "$W/tls/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days 30 -extfile "$d/ext" -out "$d/server.crt" 2>/dev/null || return 1
  CERT_SERIAL=$(openssl x509 -in "$d/server.crt" -noout -serial | sed 's/.*=//')
  mv -f "$d/server.crt" "$W/tls/server.crt"
  mv -f "$d/server.key" "$W/tls/server.key"
}
new_certificate || die "openssl could not make a server certificate"
cat >"$W/web-config.yml" <<EOF
tls_server_config:
  cert_file: tls/server.crt
  key_file: tls/server.key
EOF
# The serial of the certificate the exporter serves now ("" when it cannot be read).
served_serial() {
  openssl s_client -connect "$ADDR" -servername localhost </dev/null 2>/dev/null |
    openssl x509 -noout -serial 2>/dev/null | sed 's/.*=//'
}

# --- start -------------------------------------------------------------------------------------------
START_ISO=$(date -u '+%Y-%m-%d %H:%M UTC')
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$OUT/soak.log"
say "out: $OUT; ${DURATION_S} s, $JOBS jobs, churn $CHURN/s, a fault every ~${FAULT_EVERY} s of ${KINDS[*]:-none}${KILL_EVERY:+, SIGKILL every $KILL_EVERY}; seed $SEED; Modal $MODAL"
mkfifo "$W/ctl.in" "$W/ctl.out"
# The API server's port is below the ephemeral range, so that no outgoing connection can take it
# while an api-restart has it closed (bench_free_port).
DRIVER_ARGS=(--dir "$W" --jobs "$JOBS" --churn "$CHURN" --seed "$SEED" --min-age "$MIN_AGE"
  --api-port "$(bench_free_port)")
[[ $MODAL == on ]] && DRIVER_ARGS+=(--modal)
"$DRIVER_BIN" "${DRIVER_ARGS[@]}" <"$W/ctl.in" >"$W/ctl.out" 2>"$OUT/driver.err" &
DRIVER_PID=$!
exec {CTL_W}>"$W/ctl.in"
exec {CTL_R}<"$W/ctl.out"
IFS= read -r -t 60 -u "$CTL_R" ANSWER || die "bench_chaos did not start"
[[ $ANSWER == ready* ]] || die "bench_chaos: $ANSWER"
MODAL_ENV=()
if [[ $MODAL == on ]]; then
  MODAL_URL=$(kv modal "$ANSWER")
  # The fake Modal server's default token (tests/fakes/modal/fake_modal_server.h).
  MODAL_ENV=(MODAL_SERVER_URL="$MODAL_URL" MODAL_TOKEN_ID=ak-fake-token-id MODAL_TOKEN_SECRET=as-fake-token-secret)
fi
PORT=$(bench_free_port)
ADDR=127.0.0.1:$PORT
URL=https://$ADDR
CURL=(curl -s --cacert "$W/tls/ca.crt" --max-time "$SCRAPE_TIMEOUT")
STATE=$W/state.json
CONFIG=$ROOT/bench/chaos-soak.yaml
if [[ $MODAL == off ]]; then
  # The same with the Modal source off, or the exporter would wait for it to be ready.
  CONFIG=$W/chaos-soak.yaml
  awk '{ print } /^sources:/ { print "  modal:"; print "    enabled: false" }' "$ROOT/bench/chaos-soak.yaml" >"$CONFIG"
fi
: >"$OUT/exporter.log"
LIVES=0
start_exporter() {
  echo "--- chaos-soak: exporter started $(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" >>"$OUT/exporter.log"
  env -u POD_NAME -u POD_NAMESPACE -u KUBECONFIG -u MODAL_SERVER_URL -u MODAL_TOKEN_ID \
    -u MODAL_TOKEN_SECRET "${MODAL_ENV[@]}" "$EXPORTER_BIN" --config "$CONFIG" \
    --kubeconfig "$W/kubeconfig" --web.listen-address "$ADDR" --web.config.file "$W/web-config.yml" \
    --state.file "$STATE" >>"$OUT/exporter.log" 2>&1 &
  EXPORTER_PID=$!
  LIVES=$((LIVES + 1))
  CPU_PREV=
}
ready() { [[ $("${CURL[@]}" -o /dev/null -w '%{http_code}' "$URL/readyz" 2>/dev/null) == 200 ]]; }
start_exporter
for _ in $(seq $((RECOVERY_BOUND * 5))); do
  ready && break
  kill -0 "$EXPORTER_PID" 2>/dev/null || die "the exporter exited at start"
  sleep 0.2
done
ready || die "the exporter was not ready within $RECOVERY_BOUND s"
say "exporter ready on $URL (pid $EXPORTER_PID)"
ctl hold off

# --- scrapes and their checks --------------------------------------------------------------------------
declare -A SEEN=() PREV=()
SCRAPES=0
SCRAPE_FAILED=0
SCRAPES_DOWN=0       # during a deliberate SIGKILL -> restart window
SCRAPES_DOWN_FAILED=0
GZIP_NEXT=0
DOWN=0               # 1 from a deliberate SIGKILL to the restarted exporter's /readyz
SOURCES_UP=0         # every modal_exporter_source_up at 1 in the last good scrape
LAT_MS=()            # scrape latencies of the current sample interval
INFO=0
ACTIVE_SUM=0
# One scrape, alternating plain and gzip; fills SEEN[counter] (COUNTERS), SOURCES_UP, INFO (the
# jobs listed) and ACTIVE_SUM.
scrape() {
  local gz=$GZIP_NEXT hdr=() code t body=$W/body
  GZIP_NEXT=$((1 - GZIP_NEXT))
  ((gz)) && hdr=(-H 'Accept-Encoding: gzip')
  SCRAPES=$((SCRAPES + 1))
  local out
  out=$("${CURL[@]}" "${hdr[@]}" -o "$body.raw" -w '%{http_code} %{time_total}' "$URL/metrics" 2>/dev/null) || true
  code=${out%% *}
  t=${out#* }
  if ((DOWN)); then
    SCRAPES_DOWN=$((SCRAPES_DOWN + 1))
    [[ $code == 200 ]] || { SCRAPES_DOWN_FAILED=$((SCRAPES_DOWN_FAILED + 1)); return 1; }
  elif [[ $code != 200 ]]; then
    SCRAPE_FAILED=$((SCRAPE_FAILED + 1))
    fail "scrape $SCRAPES ($([[ $gz == 1 ]] && echo gzip || echo plain)) not answered: HTTP ${code:-none} after ${t:-?} s"
    return 1
  fi
  if ((gz)); then
    if ! gzip -dc <"$body.raw" >"$body" 2>/dev/null; then
      SCRAPE_FAILED=$((SCRAPE_FAILED + 1))
      fail "scrape $SCRAPES: the gzip body does not decompress"
      return 1
    fi
  else
    mv -f "$body.raw" "$body"
  fi
  LAT_MS+=("$(awk -v t="$t" 'BEGIN { printf "%.1f", t * 1000 }')")
  local line
  line=$(awk '
    /^modal_jobs_total\{/ { if (match($0, /status="[a-z]*"/)) s[substr($0, RSTART + 8, RLENGTH - 9)] += $NF }
    /^modal_i6pn_jobs_total[{ ]/ { i6pn += $NF }
    /^modal_job_duration_seconds_count\{/ { if (match($0, /status="[a-z]*"/)) d[substr($0, RSTART + 8, RLENGTH - 9)] += $NF }
    /^modal_exporter_source_up\{/ { n++; if ($NF + 0 != 1) down++ }
    /^modal_job_info\{/ { info++ }
    /^modal_jobs_active\{/ { active += $NF }
    END { printf "%d %d %d %d %d %d %d %d %d %d\n", s["created"], s["completed"], s["failed"], s["cancelled"],
      i6pn, d["completed"], d["failed"], (n > 0 && down == 0), info, active }' "$body")
  read -r "SEEN[created]" "SEEN[completed]" "SEEN[failed]" "SEEN[cancelled]" "SEEN[i6pn]" \
    "SEEN[observed_completed]" "SEEN[observed_failed]" SOURCES_UP INFO ACTIVE_SUM <<<"$line"
  return 0
}

# After a scrape: the counters against the truth read just after it (it only grows), and against
# the previous scrape (counters do not go down, also not across a restart on the state file).
check_counters() {
  local k
  for k in "${COUNTERS[@]}"; do
    if ((SEEN[$k] > TRUTH[$k])); then
      fail "${SERIES[$k]} is ${SEEN[$k]}, above the truth ${TRUTH[$k]}: counted twice"
    fi
    if [[ -n ${PREV[$k]:-} ]] && ((SEEN[$k] < PREV[$k])); then
      fail "${SERIES[$k]} went down from ${PREV[$k]} to ${SEEN[$k]}"
    fi
    PREV[$k]=${SEEN[$k]}
  done
}
counters_equal_truth() {
  local k
  for k in "${COUNTERS[@]}"; do ((SEEN[$k] == TRUTH[$k])) || return 1; done
}
counters_text() {  # "name seen/truth ..." of every counter
  local k out=
  for k in "${COUNTERS[@]}"; do out+="${out:+, }$k ${SEEN[$k]}/${TRUTH[$k]}"; done
  echo "$out"
}

# Nothing lost: the truth is noted every 5 s; each note must be reached by the counters within
# --lag-bound seconds of the later of the note and the end of the last fault (and its recovery).
LAG_T=()
LAG_V=()
LAST_QUIET_MS=0      # when the last fault ended or recovered
MAX_LAG_MS=0
note_truth() {
  LAG_T+=("$NOW_MS")
  local k v=
  for k in "${COUNTERS[@]}"; do v+="${v:+ }${TRUTH[$k]}"; done
  LAG_V+=("$v")
}
# True when every counter reached the values of the note "v1 v2 ..." (in COUNTERS' order).
reached() {
  local -a v
  local i
  read -r -a v <<<"$1"
  for i in "${!COUNTERS[@]}"; do ((SEEN[${COUNTERS[i]}] >= v[i])) || return 1; done
}
check_lag() {
  local since
  while ((${#LAG_T[@]} > 0)); do
    if reached "${LAG_V[0]}"; then
      ((NOW_MS - LAG_T[0] > MAX_LAG_MS)) && MAX_LAG_MS=$((NOW_MS - LAG_T[0]))
      LAG_T=("${LAG_T[@]:1}")
      LAG_V=("${LAG_V[@]:1}")
      continue
    fi
    since=$((LAG_T[0] > LAST_QUIET_MS ? LAG_T[0] : LAST_QUIET_MS))
    if ((ACTIVE_FAULTS == 0 && PENDING_RECOVERIES == 0 && NOW_MS - since > LAG_BOUND * 1000)); then
      fail "counters behind the truth of $(((NOW_MS - LAG_T[0]) / 1000)) s ago (${LAG_V[0]}) for more than $LAG_BOUND s after the last fault: $(counters_text)"
      LAG_T=("${LAG_T[@]:1}")
      LAG_V=("${LAG_V[@]:1}")
      continue
    fi
    break
  done
}

# --- faults ----------------------------------------------------------------------------------------
# faults.tsv: kind, start and end (ISO, UTC), recovery seconds; one line per fault once over.
printf 'kind\tstart\tend\trecovery_s\tnote\n' >"$OUT/faults.tsv"
BAG=()
NEXT_FAULT_MS=0
FAULT_N=0
declare -A F_KIND=() F_START=() F_END=() F_SCRIPT=() F_OVL=()  # per fault id until recovered
declare -A REC_MAX=() REC_N=() REC_ALONE_MAX=() REC_ALONE_N=()
LAST_END_MS=0
ACTIVE_FAULTS=0
PENDING_RECOVERIES=0
MARKS=""             # faults started during the current sample interval
DRIVER_ACTIVE="-"
SK_STATE=            # the SIGKILL fault's steps: match, persist, kill, down, verify
SK_ID=
SK_T=0
CR_ID=               # a certificate rotation waiting to be served
CR_T=0

draw_kind() {
  if ((${#BAG[@]} == 0)); then
    BAG=("${KINDS[@]}")
    local i j tmp
    for ((i = ${#BAG[@]} - 1; i > 0; i--)); do
      j=$((RANDOM % (i + 1)))
      tmp=${BAG[i]} BAG[i]=${BAG[j]} BAG[j]=$tmp
    done
  fi
  KIND=${BAG[0]}
  BAG=("${BAG[@]:1}")
}
schedule_next_fault() {
  local lo=$((FAULT_EVERY * 500)) hi=$((FAULT_EVERY * 1500))
  NEXT_FAULT_MS=$((NOW_MS + lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
}
# fault_over ID [END_MS]: the fault's cause is gone (since END_MS, default now); its recovery is
# timed from then.
fault_over() {
  local id=$1
  F_END[$id]=${2:-$NOW_MS}
  LAST_QUIET_MS=$NOW_MS
  LAST_END_MS=$NOW_MS
}
start_fault() {
  local kind=$1 len_s id
  len_s=$(((FAULT_LENGTH * 250 + (RANDOM * 32768 + RANDOM) % (FAULT_LENGTH * 750 + 1)) / 1000))
  ((len_s >= 1)) || len_s=1
  FAULT_N=$((FAULT_N + 1))
  id=$FAULT_N
  F_KIND[$id]=$kind
  F_START[$id]=$NOW_MS
  F_END[$id]=
  F_SCRIPT[$id]=
  PENDING_RECOVERIES=$((PENDING_RECOVERIES + 1))
  MARKS+="${MARKS:+;}$kind"
  case $kind in
    sighup)
      say "fault $id: SIGHUP"
      kill -HUP "$EXPORTER_PID"
      F_SCRIPT[$id]=1
      HEALTHY=0  # recovered once a scrape after the reload says so
      fault_over "$id"
      ;;
    cert-rotate)
      say "fault $id: certificate rotation"
      if [[ -n $CR_ID ]]; then fault_over "$id"; return; fi  # one at a time
      new_certificate || die "openssl could not make a server certificate"
      F_SCRIPT[$id]=1
      CR_ID=$id
      CR_T=$NOW_MS
      ;;
    sigkill)
      if [[ -n $SK_STATE ]]; then fault_over "$id"; return; fi
      say "fault $id: SIGKILL once the state file holds the truth (changes held)"
      F_SCRIPT[$id]=1
      SK_ID=$id
      SK_STATE=match
      SK_T=$NOW_MS
      ctl hold on
      ;;
    *)
      say "fault $id: $kind for $len_s s"
      ctl fault "$kind" "$len_s"
      ctl active
      DRIVER_ACTIVE=${ANSWER#active }
      ;;
  esac
}

# modal_jobs_total in the state file, by status: "created completed failed cancelled".
state_totals() {
  grep -o '\["[a-z]*","[^"]*",[0-9]*,[0-9]*\]' "$STATE" 2>/dev/null | tr -d '[]"' |
    awk -F, '{ s[$1] += $4 } END { printf "%d %d %d %d\n", s["created"], s["completed"], s["failed"], s["cancelled"] }'
}

# The SIGKILL fault, one step per tick: wait for the counters to equal the truth (changes are
# held), then for the state file to hold them too, kill at a random moment within 2 s,
# restart at once, and once ready check that the counters are exactly the truth.
SK_MATCH_MS=0
SK_KILL_AT=0
sigkill_step() {
  case $SK_STATE in
    match)
      if counters_equal_truth && ((SCRAPED_THIS_TICK)); then
        SK_MATCH_MS=$NOW_MS
        SK_STATE=persist
      elif ((NOW_MS - SK_T > (LAG_BOUND + RECOVERY_BOUND) * 1000)); then
        fail "SIGKILL fault: the counters did not reach the truth with changes held: $(counters_text)"
        SK_STATE=persist
        SK_MATCH_MS=$NOW_MS
      fi
      ;;
    persist)
      if [[ $(state_totals) == "${TRUTH[created]} ${TRUTH[completed]} ${TRUTH[failed]} ${TRUTH[cancelled]}" ]]; then
        SK_KILL_AT=$((NOW_MS + RANDOM % 2000))
        SK_STATE=killing
      elif ((NOW_MS - SK_MATCH_MS > 30000)); then
        fail "SIGKILL fault: the state file's totals ($(state_totals)) are not the truth 30 s after the counters were"
        SK_KILL_AT=$NOW_MS
        SK_STATE=killing
      fi
      ;;
    killing)
      ((NOW_MS >= SK_KILL_AT)) || return 0
      say "SIGKILL exporter pid $EXPORTER_PID"
      kill -KILL "$EXPORTER_PID"
      wait "$EXPORTER_PID" 2>/dev/null || true
      DOWN=1
      HEALTHY=0
      CPU_PREV=
      start_exporter
      SK_T=$NOW_MS
      SK_STATE=down
      ;;
    down)
      if ready; then
        DOWN=0
        tick_now
        say "restarted exporter ready after $(((NOW_MS - SK_T) / 1000)).$(printf '%03d' $(((NOW_MS - SK_T) % 1000))) s (pid $EXPORTER_PID)"
        fault_over "$SK_ID" "$SK_T"  # its recovery: from the kill
        SK_STATE=verify
        SK_T=$NOW_MS
      elif ! kill -0 "$EXPORTER_PID" 2>/dev/null; then
        die "the restarted exporter exited"
      fi
      ;;
    verify)
      ((SCRAPED_THIS_TICK)) || return 0
      if counters_equal_truth; then
        SK_STATE=
        ctl hold off
      elif ((NOW_MS - SK_T > RECOVERY_BOUND * 1000)); then
        fail "after SIGKILL and a restart on the state file the counters are not the truth: $(counters_text)"
        SK_STATE=
        ctl hold off
      fi
      ;;
  esac
}

cert_step() {
  [[ -n $CR_ID ]] || return 0
  local s
  s=$(served_serial)
  if [[ -n $s && ${s^^} == "${CERT_SERIAL^^}" ]]; then
    fault_over "$CR_ID" "$CR_T"  # its recovery: from the rotation to the new certificate served
    CR_ID=
  elif ((NOW_MS - CR_T > RECOVERY_BOUND * 1000)); then
    fail "the rotated certificate (serial $CERT_SERIAL) was not served within $RECOVERY_BOUND s (serving ${s:-nothing})"
    fault_over "$CR_ID"
    CR_ID=
  fi
}

# Faults whose cause is gone and whose recovery is being timed: recovered once /readyz is 200
# and every source is up in this tick's scrape. A fault is "overlapped" when another one was in
# effect or recovering at some point between its start and its recovery: its recovery time then
# includes the other's. The bound is counted from the later of its end and the last fault's end.
recovery_step() {
  local id kind
  ACTIVE_FAULTS=0
  for id in "${!F_KIND[@]}"; do
    kind=${F_KIND[$id]}
    if [[ -z ${F_END[$id]:-} && -z ${F_SCRIPT[$id]:-} && ",$DRIVER_ACTIVE," != *",$kind,"* ]]; then
      fault_over "$id"
    fi
    [[ -n ${F_END[$id]:-} ]] || ACTIVE_FAULTS=$((ACTIVE_FAULTS + 1))
  done
  if ((${#F_KIND[@]} > 1)); then
    for id in "${!F_KIND[@]}"; do F_OVL[$id]=1; done
  fi
  for id in "${!F_KIND[@]}"; do
    [[ -n ${F_END[$id]:-} ]] || continue
    kind=${F_KIND[$id]}
    if ((HEALTHY)); then
      finish_fault "$id" "$((NOW_MS - F_END[$id]))"
    elif ((ACTIVE_FAULTS == 0 && NOW_MS - F_END[$id] > RECOVERY_BOUND * 1000 &&
      NOW_MS - LAST_END_MS > RECOVERY_BOUND * 1000)); then
      fail "no recovery within $RECOVERY_BOUND s after fault $id ($kind): /readyz 200 and every source up not seen"
      finish_fault "$id" "$((NOW_MS - F_END[$id]))" unrecovered
    fi
  done
}
finish_fault() {
  local id=$1 rec=$2 note=${3:-}
  local kind=${F_KIND[$id]}
  [[ -n ${F_OVL[$id]:-} ]] && note+="${note:+,}overlapped"
  printf '%s\t%s\t%s\t%s\t%s\n' "$kind" "$(iso_of_ms "${F_START[$id]}")" "$(iso_of_ms "${F_END[$id]}")" \
    "$(awk -v r="$rec" 'BEGIN { printf "%.1f", r / 1000 }')" "$note" >>"$OUT/faults.tsv"
  ((rec > ${REC_MAX[$kind]:--1})) && REC_MAX[$kind]=$rec
  REC_N[$kind]=$((${REC_N[$kind]:-0} + 1))
  if [[ -z ${F_OVL[$id]:-} ]]; then
    ((rec > ${REC_ALONE_MAX[$kind]:--1})) && REC_ALONE_MAX[$kind]=$rec
    REC_ALONE_N[$kind]=$((${REC_ALONE_N[$kind]:-0} + 1))
  fi
  unset "F_KIND[$id]" "F_START[$id]" "F_END[$id]" "F_SCRIPT[$id]" "F_OVL[$id]"
  PENDING_RECOVERIES=$((PENDING_RECOVERIES - 1))
  LAST_QUIET_MS=$NOW_MS
}

# --- the log check -----------------------------------------------------------------------------------
# Warn and error lines of the exporter's log not explained by a fault in effect at their time
# (from its start to --recovery-bound seconds after its end); printed, one a line.
unexplained_log_lines() {
  local windows=$W/windows
  : >"$windows"
  local kind start end
  while IFS=$'\t' read -r kind start end _; do
    [[ $kind == kind ]] && continue
    printf '%s\t%s\t%s\t%s\n' "$kind" "$start" \
      "$(date -u -d "$end + $RECOVERY_BOUND seconds" +%Y-%m-%dT%H:%M:%S.%3NZ)" "${EXPLAINED[$kind]}"
  done <"$OUT/faults.tsv" >>"$windows"
  for id in "${!F_KIND[@]}"; do  # still in effect or recovering
    printf '%s\t%s\t%s\t%s\n' "${F_KIND[$id]}" "$(iso_of_ms "${F_START[$id]}")" "9999" "${EXPLAINED[${F_KIND[$id]}]}" >>"$windows"
  done
  # A SIGKILL's window starts at the kill, which the restart's own marker line names.
  awk -F'\t' -v any="${EXPLAINED[any]}" '
    NR == FNR { k[NR] = $1; s[NR] = $2; e[NR] = $3; p[NR] = $4; n = NR; next }
    !/ level=(warn|error) / { next }
    $0 ~ any { next }
    {
      if (!match($0, /ts=[0-9T:.Z-]*/)) { print; next }
      ts = substr($0, RSTART + 3, RLENGTH - 3)
      ok = 0
      for (i = 1; i <= n && !ok; i++) if (ts >= s[i] && ts <= e[i] && $0 ~ p[i]) ok = 1
      if (!ok) print
    }' "$windows" "$OUT/exporter.log"
}
LOG_CHECKED_LINES=0
check_log() {
  local lines
  lines=$(unexplained_log_lines | awk -v from="$LOG_CHECKED_LINES" 'NR > from')
  [[ -n $lines ]] || return 0
  while IFS= read -r l; do
    LOG_CHECKED_LINES=$((LOG_CHECKED_LINES + 1))
    fail "log line without a fault to explain it: $l"
  done <<<"$lines"
}

# --- samples -------------------------------------------------------------------------------------------
echo "time_s,unix_time,pid,rss_kib,anon_kib,fds,threads,cpu_pct,scrapes,scrape_p50_ms,scrape_max_ms,failed_scrapes,down_scrapes,faults_started,faults_active" >"$OUT/samples.csv"
CPU_PREV=
CPU_PREV_MS=0
T0_MS=0
sample() {
  local p=$EXPORTER_PID rss anon threads fds cpu=
  [[ -r /proc/$p/status ]] || return 0
  read -r rss anon threads < <(awk '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 } $1 == "Threads:" { t = $2 }
    END { print r + 0, a + 0, t + 0 }' "/proc/$p/status")
  fds=$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  local ticks
  ticks=$(bench_cpu_ticks "$p" | head -1)
  if [[ -n $CPU_PREV ]] && ((NOW_MS > CPU_PREV_MS)); then
    cpu=$(awk -v t="$((ticks - CPU_PREV))" -v hz="$CLK_TCK" -v ms="$((NOW_MS - CPU_PREV_MS))" 'BEGIN { printf "%.1f", t / hz / (ms / 1000) * 100 }')
  fi
  CPU_PREV=$ticks
  CPU_PREV_MS=$NOW_MS
  local p50='' max=''
  if ((${#LAT_MS[@]} > 0)); then
    p50=$(printf '%s\n' "${LAT_MS[@]}" | bench_median)
    max=$(printf '%s\n' "${LAT_MS[@]}" | sort -g | tail -1)
  fi
  local n=${#LAT_MS[@]}
  LAT_MS=()
  local active=${DRIVER_ACTIVE//,/;}
  [[ -n $SK_STATE ]] && active+=";sigkill"
  [[ -n $CR_ID ]] && active+=";cert-rotate"
  [[ $active == "-" ]] && active=
  echo "$(awk -v ms="$((NOW_MS - T0_MS))" 'BEGIN { printf "%.1f", ms / 1000 }'),$((NOW_MS / 1000)),$p,$rss,$anon,$fds,$threads,$cpu,$n,$p50,$max,$SCRAPE_FAILED,$SCRAPES_DOWN,$MARKS,${active#-;}" >>"$OUT/samples.csv"
  MARKS=""
}

# --- the run -------------------------------------------------------------------------------------------
tick_now
T0_MS=$NOW_MS
END_MS=$((T0_MS + DURATION_S * 1000))
schedule_next_fault
NEXT_KILL_MS=$((KILL_EVERY_S > 0 ? T0_MS + KILL_EVERY_S * 1000 : 0))
NEXT_SCRAPE_MS=$NOW_MS
NEXT_SAMPLE_MS=$NOW_MS
NEXT_NOTE_MS=$NOW_MS
NEXT_LOG_MS=$((NOW_MS + 60000))
HEALTHY=1
SCRAPED_THIS_TICK=0
TICK_MS=250
run_tick() {
  tick_now
  SCRAPED_THIS_TICK=0
  if ((NOW_MS >= NEXT_SCRAPE_MS)); then
    NEXT_SCRAPE_MS=$((NEXT_SCRAPE_MS + 1000))
    ((NEXT_SCRAPE_MS > NOW_MS)) || NEXT_SCRAPE_MS=$((NOW_MS + 1000))
    if scrape; then
      read_truth
      tick_now
      SCRAPED_THIS_TICK=1
      # Not ready yet after a restart: what it serves before its first sync is not checked.
      if ! ((DOWN)); then
        check_counters
        check_lag
      fi
      if ((NOW_MS >= NEXT_NOTE_MS)); then note_truth; NEXT_NOTE_MS=$((NOW_MS + 5000)); fi
      HEALTHY=0
      if ((SOURCES_UP)) && ready; then HEALTHY=1; fi
    else
      HEALTHY=0
    fi
    ctl active
    DRIVER_ACTIVE=${ANSWER#active }
  fi
  [[ -n $SK_STATE ]] && sigkill_step
  cert_step
  recovery_step
  if ((NOW_MS >= NEXT_SAMPLE_MS)); then
    sample
    NEXT_SAMPLE_MS=$((NEXT_SAMPLE_MS + SAMPLE * 1000))
  fi
  if ((NOW_MS >= NEXT_LOG_MS)); then
    check_log
    NEXT_LOG_MS=$((NOW_MS + 60000))
  fi
  if ! ((DOWN)) && ! kill -0 "$EXPORTER_PID" 2>/dev/null; then die "the exporter exited"; fi
}
sleep_to_next_tick() {
  tick_now
  local left=$((TICK_MS - (NOW_MS - T0_MS) % TICK_MS))
  sleep "0.$(printf '%03d' "$left")"
}

while :; do
  run_tick
  ((NOW_MS < END_MS)) || break
  if ((${#KINDS[@]} > 0 && NOW_MS >= NEXT_FAULT_MS)); then
    draw_kind
    start_fault "$KIND"
    schedule_next_fault
  fi
  if ((NEXT_KILL_MS > 0 && NOW_MS >= NEXT_KILL_MS)); then
    start_fault sigkill
    NEXT_KILL_MS=$((NEXT_KILL_MS + KILL_EVERY_S * 1000))
  fi
  sleep_to_next_tick
done

# --- the end: faults over, changes held, the counters must reach the truth exactly ----------------------
say "duration reached; waiting for the faults in effect to end and recover"
FINAL_BOUND=$((LAG_BOUND + RECOVERY_BOUND + FAULT_LENGTH))
until [[ -z $SK_STATE && -z $CR_ID ]] && ((${#F_KIND[@]} == 0)); do
  run_tick
  tick_now
  if ((NOW_MS - END_MS > (FINAL_BOUND + 60) * 1000)); then
    fail "faults still in effect or unrecovered $((FINAL_BOUND + 60)) s after the end: ${F_KIND[*]}"
    break
  fi
  sleep_to_next_tick
done
ctl hold on
HOLD_MS=$NOW_MS
say "changes held; waiting for the counters to equal the truth"
EXACT=0
while :; do
  run_tick
  if ((SCRAPED_THIS_TICK)) && counters_equal_truth && ((INFO == TRUTH[live] && ACTIVE_SUM == TRUTH[active])); then
    EXACT=1
    break
  fi
  ((NOW_MS - HOLD_MS < FINAL_BOUND * 1000)) || break
  sleep_to_next_tick
done
if ((EXACT)); then
  say "counters equal the truth: $(counters_text); live jobs $INFO, active $ACTIVE_SUM"
else
  fail "at the end, $FINAL_BOUND s after changes were held: $(counters_text); modal_job_info $INFO/${TRUTH[live]}, modal_jobs_active $ACTIVE_SUM/${TRUTH[active]}"
  # Which jobs differ: the exporter's job_name/phase against the fake's.
  ctl dump "$OUT/jobs-truth.txt"
  awk '/^modal_job_status_phase\{/ && $NF == 1 { match($0, /job_name="[^"]*"/); n = substr($0, RSTART + 10, RLENGTH - 11)
    match($0, /phase="[^"]*"/); print n, substr($0, RSTART + 7, RLENGTH - 8) }' "$W/body" | sort >"$OUT/jobs-exporter.txt"
  diff "$OUT/jobs-truth.txt" "$OUT/jobs-exporter.txt" >"$OUT/jobs-diff.txt" || true
  say "jobs that differ (< the fake, > the exporter): $(head -c 2000 "$OUT/jobs-diff.txt" | grep '^[<>]' | tr '\n' ' ')"
fi
sample
check_log
HWM=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$EXPORTER_PID/status" 2>/dev/null || echo 0)
# A clean stop: SIGTERM, exit status 0 within 30 s.
kill -TERM "$EXPORTER_PID"
STOP_CODE=timeout
for _ in $(seq 300); do
  if ! kill -0 "$EXPORTER_PID" 2>/dev/null; then
    STOP_CODE=0
    wait "$EXPORTER_PID" || STOP_CODE=$?
    break
  fi
  sleep 0.1
done
[[ $STOP_CODE == timeout ]] && kill -KILL "$EXPORTER_PID" 2>/dev/null
EXPORTER_PID=
[[ $STOP_CODE == 0 ]] || fail "the exporter did not stop cleanly on SIGTERM: exit status $STOP_CODE"
# What a sanitizer build reports (the exporter keeps running after some of them).
if grep -qE 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$OUT/exporter.log"; then
  fail "a sanitizer report in the exporter's log: $(grep -m1 -E 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|UndefinedBehaviorSanitizer|runtime error:' "$OUT/exporter.log")"
fi
if [[ -n $EVERY_KIND ]]; then
  for k in "${KINDS[@]}"; do
    [[ -n ${REC_N[$k]:-} ]] || fail "--every-kind: no $k fault happened and recovered; a longer --duration or a shorter --fault-every"
  done
fi

# --- summary -------------------------------------------------------------------------------------------
# Slope per hour of a CSV column after the warm-up: least squares within each exporter lifetime
# (pid), pooled (each lifetime its own intercept), leaving out the run's and each restart's
# first --warmup: a restarted exporter warms up again.
slope() {
  awk -F, -v col="$1" -v warm="$WARMUP_S" -v scale="$2" '
    NR == 1 || $col == "" { next }
    BEGIN { born = -1e9 }
    $3 != pid { if (pid != "") born = $1; pid = $3 }
    $1 < warm || $1 - born < warm { next }
    { n[pid]++; st[pid] += $1; sy[pid] += $col / scale; stt[pid] += $1 * $1; sty[pid] += $1 * $col / scale }
    END {
      for (p in n) { if (n[p] < 3) continue; m = n[p]
        num += sty[p] - st[p] * sy[p] / m; den += stt[p] - st[p] * st[p] / m; used += m }
      if (den > 0) printf "%+.3f/h (%d samples)", num / den * 3600, used; else printf "n/a (too few samples)" }' "$OUT/samples.csv"
}
ELAPSED_S=$(((NOW_MS - T0_MS) / 1000))
{
  echo "Chaos soak summary"
  echo
  echo "Command: bench/chaos-soak.sh${ARGS[*]:+ ${ARGS[*]}}"
  echo "Revision: $(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo '?'), ${BUILD_TYPE:-?} build (sanitizers ${SANITIZE:-OFF}), Modal $MODAL"
  echo "Started: $START_ISO; ran ${ELAPSED_S} s (faults and churn for ${DURATION_S} s)"
  echo "Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), load average $LOAD_BEFORE before / $(cut -d' ' -f1-3 /proc/loadavg) after"
  echo
  echo "Jobs: $JOBS at a time, churn ceiling $CHURN changes/s; truth at the end: created ${TRUTH[created]}, completed ${TRUTH[completed]}, failed ${TRUTH[failed]}, cancelled ${TRUTH[cancelled]} (${TRUTH[changes]} object changes)"
  echo "Counters at the end, seen/truth: $(counters_text): $([[ $EXACT == 1 ]] && echo "equal to the truth" || echo "NOT equal to the truth")"
  echo "  (${SERIES[i6pn]}; observed_*: ${SERIES[observed_completed]%%\{*} by status)"
  echo "Stop: SIGTERM, exit status $STOP_CODE"
  echo "Scrapes: $SCRAPES, failed $SCRAPE_FAILED; during the $((LIVES - 1)) SIGKILL-to-ready windows $SCRAPES_DOWN (not answered: $SCRAPES_DOWN_FAILED)"
  echo "Counters caught up with the truth at most $(awk -v m="$MAX_LAG_MS" 'BEGIN { printf "%.0f", m / 1000 }') s after it (5 s notes)"
  echo
  echo "Faults: $(($(wc -l <"$OUT/faults.tsv") - 1)). Recovery: /readyz 200 and every source up in a scrape, from the"
  echo "fault's end (a SIGKILL's: the kill; a certificate rotation's: the rotation, until the new one is served)"
  printf '  %-18s %6s %22s %8s %22s\n' kind count "max recovery s, alone" alone "max recovery s, all"
  for k in "${ALL_FAULTS[@]}"; do
    [[ -n ${REC_N[$k]:-} ]] || continue
    printf '  %-18s %6s %22s %8s %22s\n' "$k" "${REC_N[$k]}" \
      "$([[ -n ${REC_ALONE_N[$k]:-} ]] && awk -v r="${REC_ALONE_MAX[$k]}" 'BEGIN { printf "%.1f", r / 1000 }' || echo -)" \
      "${REC_ALONE_N[$k]:-0}" "$(awk -v r="${REC_MAX[$k]}" 'BEGIN { printf "%.1f", r / 1000 }')"
  done
  echo
  echo "Resources after a ${WARMUP_S} s warm-up (slope within each of the $LIVES exporter lifetimes, pooled):"
  echo "  RSS $(slope 4 1024) MiB, anonymous $(slope 5 1024) MiB, fds $(slope 6 1), threads $(slope 7 1)"
  awk -F, -v warm="$WARMUP_S" 'NR > 1 && $1 >= warm { if (!n++ || $4 < lo) lo = $4; if ($4 > hi) hi = $4; if ($6 > fh) fh = $6; if (!fl || $6 < fl) fl = $6; if ($7 > th) th = $7; if (!tl || $7 < tl) tl = $7; c += $8; cn += ($8 != "") }
    END { if (n) printf "  RSS %.1f-%.1f MiB, fds %d-%d, threads %d-%d, mean CPU %.1f %% of a core\n", lo / 1024, hi / 1024, fl, fh, tl, th, (cn ? c / cn : 0) }' "$OUT/samples.csv"
  echo "  peak RSS of the last lifetime (VmHWM): $(awk -v k="$HWM" 'BEGIN { printf "%.1f", k / 1024 }') MiB"
  awk -F, 'NR > 1 && $10 != "" { n++; p[n] = $10; if ($11 > m) m = $11 } END { if (n) { asort_n = n; for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (p[j] < p[i]) { t = p[i]; p[i] = p[j]; p[j] = t }
    printf "  scrape latency: median of the interval medians %.1f ms, max %.1f ms\n", p[int((n + 1) / 2)], m } }' "$OUT/samples.csv"
  echo
  if ((${#FAILURES[@]} == 0)); then
    echo "Checks: all held"
  else
    echo "Checks: ${#FAILURES[@]} failed"
    printf '  %s\n' "${FAILURES[@]:0:50}"
  fi
} >"$OUT/summary.txt"

# --- plot ----------------------------------------------------------------------------------------------
plot_soak "$OUT" 2>"$W/plot.err" || echo "Plot: none ($(head -1 "$W/plot.err"))" >>"$OUT/summary.txt"

cat "$OUT/summary.txt"
if ((${#FAILURES[@]} > 0)); then
  echo "chaos-soak.sh: ${#FAILURES[@]} check(s) failed; see $OUT/summary.txt and $OUT/soak.log" >&2
  exit 1
fi
exit 0
}
