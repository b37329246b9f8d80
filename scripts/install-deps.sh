#!/usr/bin/env bash
# Installs what modal-exporter needs on Debian 12, from Debian's packages only.
#   install-deps.sh          build dependencies
#   install-deps.sh --test   plus what the test suite runs (Prometheus/promtool, helm, linters)
set -euo pipefail

build_packages=(
  cmake make g++ git pkg-config ca-certificates
  libboost1.81-dev libboost-system1.81-dev     # Asio + Beast: event loop, HTTP server/client
  prometheus-cpp-dev                           # self-metrics registry
  libyaml-cpp-dev                              # config file, kubeconfig
  nlohmann-json3-dev                           # Kubernetes API payloads, state file
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler  # Modal's gRPC API
  libssl-dev                                   # TLS to the Kubernetes API and telemetry, TLS on /metrics
  libcrypt-dev                                 # crypt_r: bcrypt for basic_auth_users
  zlib1g-dev                                   # gzip responses
)
test_packages=(
  libgtest-dev libgmock-dev libbenchmark-dev   # unit/integration tests, bench/
  prometheus                                   # promtool + a real Prometheus for e2e tests
  curl unzip systemd clang-format              # check tools (helm, dockerfilelint, systemd-analyze, style)
  apache2-utils openssl                        # htpasswd -B and certificates for the web config tests
  clang libclang-rt-14-dev                     # libFuzzer targets (scripts/fuzz.sh)
)
# nodejs/npm are not listed: a machine may carry a non-Debian nodejs (e.g. nodesource) that
# bundles npm, and Debian's npm conflicts with it. install-check-tools.sh installs them only
# when the commands are missing.

packages=("${build_packages[@]}")
if [[ "${1:-}" == "--test" ]]; then packages+=("${test_packages[@]}"); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [[ "${1:-}" == "--test" && -x "$(dirname "$0")/install-check-tools.sh" ]]; then
  "$(dirname "$0")/install-check-tools.sh"
fi
