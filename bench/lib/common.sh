# Pieces shared by the benchmark scripts (bench/run-scrape-bench.sh, bench/real-binary.sh).
# Sourced, not run: it defines functions and sets nothing but CLK_TCK and BENCH_LIB.
# shellcheck shell=bash

# shellcheck disable=SC2034  # both are for the scripts that source this file
BENCH_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLK_TCK=$(getconf CLK_TCK)

# The script's header comment (from its second line to the first line that is not a comment),
# then exit 2.
bench_usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit 2
}

# Exits 2 unless VALUE is a positive integer: bench_positive NAME VALUE.
bench_positive() {
  [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "$(basename "$0"): $1 must be a positive integer" >&2; exit 2; }
}

# Missing tools among nginx wrk curl gzip, installed with apt-get when running as root.
# Sets NGINX_BIN. Returns 1 (after saying what to install) when something is still missing.
bench_require_tools() {
  local name=$1 missing=()
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
  [[ -x $NGINX_BIN ]] || missing+=(nginx)
  local tool
  for tool in wrk curl gzip; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $(id -u) -ne 0 || -n ${BENCH_NO_INSTALL:-} ]]; then
    echo "$name: missing ${missing[*]}; apt-get install ${missing[*]}" >&2
    return 1
  fi
  echo "Installing ${missing[*]} (apt-get) ..." >&2
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
    { apt-get update >/dev/null && apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null; }
  NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
}

# A port below the kernel's ephemeral range: ports bound to 0 and the local ports of outgoing
# connections (tests running beside the benchmark under `ctest -j`) come from that range, so a
# port picked inside it could be taken between this check and the bind.
bench_free_port() {
  local port low
  read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
  ((low > 12000)) || low=32768
  for _ in $(seq 50); do
    port=$((10000 + RANDOM % (low - 10000)))
    if ! ss -Htan "sport = :$port" 2>/dev/null | grep -q .; then echo "$port"; return; fi
  done
  echo "bench: no free port found" >&2
  return 1
}

# Clock ticks (CLK_TCK a second) of user+system CPU of the processes given and of the first
# one's direct children (nginx workers).
bench_cpu_ticks() {
  local total=0 p f
  for p in "$@" $(pgrep -P "$1" 2>/dev/null || true); do
    [[ -r /proc/$p/stat ]] || continue
    # Fields after the ")" of the command name: utime is the 12th, stime the 13th.
    read -r -a f < <(sed 's/^.*) //' "/proc/$p/stat")
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

bench_rss_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

bench_now_ns() { date +%s%N; }

# Median of the numbers on stdin.
bench_median() {
  sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

# WWW/metrics.gz next to WWW/metrics at the exporter's level (6), with the same mtime, which is
# what gzip_static serves.
bench_gzip_copy() {
  gzip -6 -n -c "$1" >"$1.gz"
  touch -r "$1" "$1.gz"
  chmod 644 "$1" "$1.gz"
}

# nginx serving WWW/metrics (and metrics.gz through gzip_static) on 127.0.0.1 with sendfile, as
# a static-file baseline. bench_start_nginx DIR WWW WORKERS; sets NGINX_PID and NGINX_ADDR.
# The caller stops it: kill -QUIT "$NGINX_PID".
bench_start_nginx() {
  local dir=$1 www=$2 workers=$3 attempt
  # A port can still be taken by someone else between the check and nginx's bind: try another.
  for attempt in 1 2 3; do
    bench_start_nginx_once "$dir" "$www" "$workers" && return 0
    [[ -n ${NGINX_BIND_FAILED:-} ]] || return 1
    echo "bench: nginx could not bind $NGINX_ADDR (attempt $attempt); trying another port" >&2
  done
  return 1
}

bench_start_nginx_once() {
  local dir=$1 www=$2 workers=$3 port
  NGINX_BIND_FAILED=
  port=$(bench_free_port) || return 1
  mkdir -p "$dir"
  chmod 755 "$www"  # nginx workers run as an unprivileged user when started by root
  cat >"$dir/nginx.conf" <<EOF
daemon off;
worker_processes $workers;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  keepalive_timeout 60s;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$port;
    root $www;
    location = /metrics {
      default_type "text/plain; version=0.0.4; charset=utf-8";
      gzip_static on;
    }
  }
}
EOF
  "$NGINX_BIN" -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" &
  NGINX_PID=$!
  NGINX_ADDR=127.0.0.1:$port
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://$NGINX_ADDR/metrics" && return 0
    if ! kill -0 "$NGINX_PID" 2>/dev/null; then
      wait "$NGINX_PID" 2>/dev/null || true
      grep -q "Address already in use" "$dir/error.log" && NGINX_BIND_FAILED=1
      cat "$dir/error.log" >&2
      : >"$dir/error.log"
      return 1
    fi
    sleep 0.1
  done
  echo "bench: nginx did not start; see $dir/error.log" >&2
  return 1
}

# Bytes of the body as sent: bench_body_size URL [gzip] (gzip bodies are checked to be gzip).
bench_body_size() {
  local hdr=() out
  out=$(mktemp)
  [[ ${2:-} == gzip ]] && hdr=(-H 'Accept-Encoding: gzip')
  curl -fs "${hdr[@]}" -o "$out" -w '%{size_download}' "$1"
  if [[ ${2:-} == gzip ]] && ! gzip -t "$out" 2>/dev/null; then
    echo "bench: not a gzip body from $1" >&2
    rm -f "$out"
    return 1
  fi
  rm -f "$out"
}
