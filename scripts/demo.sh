#!/usr/bin/env bash
# Installs, builds and runs modal-exporter against the built-in simulator, so the metrics move
# without a cluster or a Modal account. Metrics: http://localhost:8081/metrics  (Ctrl-C stops).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release -DMODAL_EXPORTER_TESTS=OFF
cmake --build build-demo -j"$(nproc)"
exec bash scripts/run-demo.sh build-demo
