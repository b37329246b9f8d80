#!/usr/bin/env bash
# Installs everything, builds with ASan+UBSan and runs every test (unit, integration, e2e,
# deployment checks). This is exactly what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh --test
build=${BUILD_DIR:-build-ci}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODAL_EXPORTER_SANITIZE=ON
cmake --build "$build" -j"$(nproc)"
# Leaks in third-party singletons (gRPC, protobuf) are not ours to fix; ASan still checks memory errors.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
ctest --test-dir "$build" --output-on-failure -j"$(nproc)" --timeout 600
