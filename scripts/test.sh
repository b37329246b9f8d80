#!/usr/bin/env bash
# Everything CI runs (.ci/run), in stages:
#   deps     scripts/install-deps.sh --test; with --upgrade when the image stage runs, so that
#            the host compiles against the Debian 12 package versions the image's build stage
#            installs (else the image misses the compiler cache wherever a header differs)
#   asan     ASan+UBSan RelWithDebInfo build with -Werror, every test (unit, integration, e2e,
#            deployment checks, fuzz seed/regression replays)
#   tsan     ThreadSanitizer build of what crosses threads, run clean: the Modal source tests
#            (gRPC calls on the source's call thread, results posted to the io_context), the
#            Kubernetes source tests (exec credential plugins run on a thread of their own), the
#            integration tests (HTTP server: accept thread, bcrypt pool, slow clients; the real
#            binary) and the e2e scenarios (simulator, exporter with its publisher thread, a real
#            Prometheus). tests/tsan.supp suppresses reports inside Debian's gRPC/Abseil/protobuf
#            (not built with TSan) and says why that cannot hide a race in our code.
#   release  the packager's build: Release, tests on, no -Werror, everything built; runs the
#            unit, integration and source tests (not e2e/deploy/style: the asan stage has them)
#   fuzz     the libFuzzer targets, MX_CI_FUZZ_SECONDS (default 20) each (scripts/fuzz.sh)
#   image    the container image: scripts/build-image.sh builds the Dockerfile (offline with
#            buildah here) and checks the image (runs as 65532 on a read-only root against
#            modal-sim, /metrics linted). Its build stage compiles with the release stage's
#            compiler cache (IMAGE_CCACHE_DIR; same compiler, flags and relative paths), so it
#            compiles nothing the release stage compiled: ~5 min on a fresh machine (Debian
#            base root file system and the Dockerfile's apt steps), under a minute when those
#            layers are cached; ~12 min with a cold compiler cache (measured, README "Container
#            image"). Needs root (sudo when not root).
# MX_CI_STAGES picks stages for local use, e.g. MX_CI_STAGES="tsan fuzz" bash scripts/test.sh;
# default: "deps asan tsan release fuzz image". Measured here in a fresh clone with a cold
# compiler cache (packages installed): asan 1,177 s, tsan 615 s (build ~7 min, runs ~3.5 min);
# the previous full run gave release 662 s, fuzz 349 s, image 208 s: ~50 min in all, plus the
# package installation on a fresh machine; well within CI's 90.
# Build directories: BUILD_DIR (default build-ci) and BUILD_DIR-tsan, -release, -fuzz next to
# it; the compiler cache in BUILD_DIR-ccache unless CCACHE_DIR names one.
set -euo pipefail
cd "$(dirname "$0")/.."
stages=" ${MX_CI_STAGES:-deps asan tsan release fuzz image} "
build=${BUILD_DIR:-build-ci}
jobs=$(nproc)
# ccache (installed by the deps stage): its directory is in the build area unless CCACHE_DIR
# names one, and paths are taken relative to the checkout, so that the image build
# (scripts/build-image.sh, CCACHE_BASEDIR=/src there) finds the release stage's compiles.
if [[ "$build" == /* ]]; then ccache_default=$build-ccache; else ccache_default=$PWD/$build-ccache; fi
export CCACHE_DIR=${CCACHE_DIR:-$ccache_default}
export CCACHE_BASEDIR=$PWD
launcher=()
timings=()

want() { [[ "$stages" == *" $1 "* ]]; }
run_stage() {
  local name=$1 start
  shift
  want "$name" || return 0
  echo "=== stage $name ($(date -u +%H:%M:%S) UTC)"
  start=$(date +%s)
  "$@"
  timings+=("$(printf '%-8s %5d s' "$name" $(($(date +%s) - start)))")
}

stage_deps() {
  # The image stage builds against the current Debian 12 packages: --upgrade makes the host's
  # compiles (release stage) read the same headers, or the image's build misses the cache.
  if want image; then
    bash scripts/install-deps.sh --test --upgrade
  else
    bash scripts/install-deps.sh --test
  fi
}

stage_asan() {
  # -O1 and line tables only (-g1): sanitizer reports keep function, file and line, and the
  # build compiles ~20 % faster than RelWithDebInfo's -O2 -g (measured on http_client.cpp).
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODAL_EXPORTER_SANITIZE=address \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DMODAL_EXPORTER_WERROR=ON "${launcher[@]}"
  cmake --build "$build" -j"$jobs"
  # Leaks in third-party singletons (gRPC, protobuf) are not ours to fix; ASan still checks
  # memory errors.
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --test-dir "$build" --output-on-failure -j"$jobs" --timeout 600
}

stage_tsan() {
  local dir="$build-tsan"
  local reports="$dir/tsan-reports"
  local tests=(tests/modal/modal_source_test tests/kubernetes/mx_kubernetes_test
    tests/integration/integration_tests
    tests/integration/web_security_tests tests/integration/slow_clients_tests
    tests/e2e/e2e_test tests/e2e/e2e_tls_test tests/e2e/e2e_shard_test)
  local targets=(modal-exporter modal-sim)
  for t in "${tests[@]}"; do targets+=("$(basename "$t")"); done
  # gRPC as shared libraries here: tests/tsan.supp names them by library (libgrpc, libabsl_...),
  # which a statically linked copy would not match.
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODAL_EXPORTER_SANITIZE=thread \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DMODAL_EXPORTER_WERROR=ON \
    -DMODAL_EXPORTER_STATIC_GRPC=OFF "${launcher[@]}"
  cmake --build "$dir" -j"$jobs" --target "${targets[@]}"
  # Reports go to files (log_path), one per process: the exporter and simulator processes the
  # tests start are TSan builds too and inherit these options, and a race in a child whose exit
  # code no test looks at must still fail the stage. halt_on_error ends a racing process (exit
  # code 66), which fails the test that started it.
  rm -rf "$reports" && mkdir -p "$reports"
  export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1} suppressions=$PWD/tests/tsan.supp log_path=$PWD/$reports/report"
  local t
  for t in "${tests[@]}"; do
    echo "--- tsan: $t"
    (cd "$dir/$(dirname "$t")" && timeout 900 "./$(basename "$t")")
  done
  unset TSAN_OPTIONS
  if compgen -G "$reports/report*" > /dev/null; then
    cat "$reports"/report* >&2
    echo "tsan: ThreadSanitizer reports above (also in $reports)" >&2
    return 1
  fi
}

stage_release() {
  local dir="$build-release"
  # Exactly a packager's commands (no -Werror), plus ccache when present.
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release "${launcher[@]}"
  # ccache hashes the locale variables (they change the compiler's messages): this build runs
  # without them, as the image's build stage does, so that the image stage reuses its compiles.
  env -u LANG -u LC_ALL -u LC_CTYPE -u LC_MESSAGES cmake --build "$dir" -j"$jobs" 2>&1 |
    tee "$dir/build.log"
  echo "release build: $(grep -c "warning:" "$dir/build.log" || true) compiler warnings"
  # Left out: what does not depend on the build type, and the chaos soak (2.5 min), which the
  # asan stage runs with sanitizers on.
  ctest --test-dir "$dir" --output-on-failure -j"$jobs" --timeout 600 \
    -E '^(e2e(_.*)?$|deploy\.|style\.|kubernetes\.kubectl_conformance$|bench\.chaos_quick$)'
}

stage_fuzz() {
  FUZZ_BUILD_DIR="$build-fuzz" bash scripts/fuzz.sh "${MX_CI_FUZZ_SECONDS:-20}"
}

stage_image() {
  # --- container image: scripts/build-image.sh (added with the image work) goes here ---
  if [[ -f scripts/build-image.sh ]]; then
    # The simulator the image check runs against comes from the asan stage when it ran.
    if [[ -x "$build/tools/modal-sim/modal-sim" ]]; then
      export MODAL_SIM="$PWD/$build/tools/modal-sim/modal-sim"
    fi
    # The build stage compiles with the release stage's compiler cache: what the release stage
    # compiled, the image does not compile again.
    if ((${#launcher[@]})); then export IMAGE_CCACHE_DIR=$CCACHE_DIR; fi
    local as_root=()
    if [[ $(id -u) -ne 0 ]]; then as_root=(sudo "--preserve-env=IMAGE_CCACHE_DIR,MODAL_SIM"); fi
    "${as_root[@]}" bash scripts/build-image.sh
  else
    echo "scripts/build-image.sh not present: no image built"
  fi
}

run_stage deps stage_deps
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
run_stage asan stage_asan
run_stage tsan stage_tsan
run_stage release stage_release
run_stage fuzz stage_fuzz
run_stage image stage_image
echo "=== stage times (this machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%s\n' "${timings[@]}"
