#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang + ASan + UBSan and runs each for a bounded
# time. CI runs it briefly (scripts/test.sh); a long run takes a larger number:
#   bash scripts/fuzz.sh 30                     # every target, 30 s each
#   bash scripts/fuzz.sh 3600 http_request      # one target for an hour
# Environment: FUZZ_BUILD_DIR (default build-fuzz), CXX_FUZZ (default clang++-14 or clang++),
# MX_FUZZ_NICE (default 19: the machine is shared), MX_FUZZ_TIMEOUT (seconds per input, default
# 60: generous, a starved nice-19 process must not look hung), MX_FUZZ_FLAGS (extra libFuzzer flags, e.g.
# "-max_len=65536 -jobs=2").
# Each target mutates a working copy of its seeds (<build>/fuzz-corpus/<name>, kept between runs)
# and writes a crash input to <build>/fuzz-artifacts/<name>/. Add such an input to
# tests/fuzz/regressions/<name>/ with the fix: CTest replays it in every build (fuzz.<name>).
# The summary (target, executions, seconds, result) goes to stdout and <build>/fuzz-summary.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
build=${FUZZ_BUILD_DIR:-build-fuzz}
cxx=${CXX_FUZZ:-$(command -v clang++-14 || command -v clang++ || true)}
[[ -n "$cxx" ]] || { echo "fuzz.sh: clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)

mkdir -p "$build"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
  -DMODAL_EXPORTER_FUZZ=ON "${launcher[@]}" > "$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; exit 1; }
if [[ $# -gt 0 ]]; then
  targets=()
  for t in "$@"; do targets+=("fuzz_$t"); done
else
  targets=(mx_fuzzers)
fi
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for bin in "$build"/fuzz/fuzz_*; do names+=("$(basename "$bin" | sed 's/^fuzz_//')"); done
fi

# No allocation stack traces and a 16 MiB quarantine: the YAML targets allocate on every token,
# and with ASan's defaults (30-frame malloc stacks, 256 MiB quarantine) they ran ~1/3 slower and
# held ~850 MiB (measured: config_yaml 2.1k vs 3.1k executions/s over 150 s). A crash input is
# replayed with the defaults (build-fuzz/fuzz/fuzz_<name> <file>) for the full report.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:malloc_context_size=0:quarantine_size_mb=16}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary="$build/fuzz-summary.txt"
: > "$summary"
failed=0
printf '%-18s %14s %8s %s\n' target executions seconds result | tee -a "$summary"
for name in "${names[@]}"; do
  bin="$build/fuzz/fuzz_$name"
  [[ -x "$bin" ]] || { echo "fuzz.sh: no target $name" >&2; exit 1; }
  work="$build/fuzz-corpus/$name"
  artifacts="$build/fuzz-artifacts/$name"
  mkdir -p "$work" "$artifacts"
  inputs=("$work" "tests/fuzz/corpus/$name")
  [[ -d "tests/fuzz/regressions/$name" ]] && inputs+=("tests/fuzz/regressions/$name")
  dict=()
  [[ -f "tests/fuzz/dict/$name.dict" ]] && dict=(-dict="tests/fuzz/dict/$name.dict")
  log="$build/fuzz-$name.log"
  start=$(date +%s)
  rc=0
  # shellcheck disable=SC2086
  nice -n "${MX_FUZZ_NICE:-19}" "$bin" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout="${MX_FUZZ_TIMEOUT:-60}" -rss_limit_mb=2048 -artifact_prefix="$artifacts/" "${dict[@]}" \
    ${MX_FUZZ_FLAGS:-} "${inputs[@]}" > "$log" 2>&1 || rc=$?
  took=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  result=ok
  if [[ $rc -ne 0 ]]; then
    result="FAILED (rc $rc, log $log, input in $artifacts/)"
    failed=1
    grep -E 'ERROR|SUMMARY|invariant|==[0-9]+==' "$log" | head -20 >&2 || true
  fi
  printf '%-18s %14s %8s %s\n' "$name" "${execs:-?}" "$took" "$result" | tee -a "$summary"
done
exit $failed
