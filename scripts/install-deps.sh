#!/usr/bin/env bash
# Installs what modal-exporter needs on Debian 12, from Debian's packages only.
#   install-deps.sh            build dependencies
#   install-deps.sh --test     plus what the test suite runs (Prometheus/promtool, helm, linters)
#   install-deps.sh --upgrade  (with or without --test) also upgrades what a compile reads -- the
#                              build packages, the -dev packages they depend on (headers), the
#                              compiler and protoc -- to the current Debian 12 versions, i.e. the
#                              ones a fresh `apt-get install` gets, as the Dockerfile's build
#                              stage does: the container image build then finds the host's
#                              compiles in the shared compiler cache (scripts/build-image.sh)
set -euo pipefail

build_packages=(
  cmake make g++ git pkg-config ca-certificates
  libboost1.81-dev libboost-system1.81-dev     # Asio + Beast: event loop, HTTP server/client
  prometheus-cpp-dev                           # self-metrics registry
  libyaml-cpp-dev                              # config file, kubeconfig
  nlohmann-json3-dev                           # Kubernetes API payloads, state file
  libsimdjson-dev                              # Kubernetes LIST pages (read without lexing what no parser reads)
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
  ccache                                       # compiler cache, shared with the image build
  tinyproxy                                    # a real CONNECT proxy for the kubeconfig proxy-url test
)
# nodejs/npm are not listed: a machine may carry a non-Debian nodejs (e.g. nodesource) that
# bundles npm, and Debian's npm conflicts with it. install-check-tools.sh installs them only
# when the commands are missing.

test=0 upgrade=0
for arg in "$@"; do
  case "$arg" in
    --test) test=1 ;;
    --upgrade) upgrade=1 ;;
    *) echo "usage: install-deps.sh [--test] [--upgrade]" >&2; exit 2 ;;
  esac
done
packages=("${build_packages[@]}")
if ((test)); then packages+=("${test_packages[@]}"); fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
updated=0
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  $SUDO apt-get update
  updated=1
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

if ((upgrade)); then
  ((updated)) || $SUDO apt-get update
  # The dependency closure of the build packages, narrowed to what a compile reads.
  mapfile -t compile_inputs < <(
    apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances "${build_packages[@]}" 2>/dev/null |
      sed -n 's/:any$//; /^[a-z0-9]/p' | sort -u |
      grep -E -e '-dev$' -e '^(cpp|gcc|g\+\+)-[0-9]+$' -e '^(libprotoc|protobuf-compiler)'
  )
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends \
    --only-upgrade "${build_packages[@]}" "${compile_inputs[@]}"
fi

if ((test)) && [[ -x "$(dirname "$0")/install-check-tools.sh" ]]; then
  "$(dirname "$0")/install-check-tools.sh"
fi
