# modal-exporter container image: built and run from Debian 12 (bookworm) packages only.
# VERSION is CMakeLists.txt's project(VERSION), the one place the version is written; the build
# fails when it differs from what the binary reports (docs/container-image.md: tags and labels).
#   VERSION=$(sed -n 's/^project(modal-exporter VERSION \([^ ]*\).*/\1/p' CMakeLists.txt)
#   docker build --build-arg VERSION="$VERSION" --build-arg REVISION="$(git rev-parse --short=12 HEAD)" \
#     -t modal-exporter:"$VERSION" .
#   docker run --rm -p 8081:8081 -e MODAL_TOKEN_ID -e MODAL_TOKEN_SECRET \
#     -v ~/.kube/config:/etc/modal-exporter/kubeconfig:ro \
#     modal-exporter:"$VERSION" --config=/etc/modal-exporter/modal-exporter.yaml \
#     --kubeconfig=/etc/modal-exporter/kubeconfig --state.file=/var/lib/modal-exporter/state.json
# The image runs as UID 65532 and works with a read-only root filesystem: the only writable
# path it needs is the state file's directory (a volume / emptyDir at /var/lib/modal-exporter).

# ---- build stage -----------------------------------------------------------------------------
FROM debian:12 AS build

# hadolint/dockerfilelint: versions are pinned by the Debian 12 release itself.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates cmake g++ make git ccache \
      libboost1.81-dev libboost-system1.81-dev prometheus-cpp-dev libyaml-cpp-dev \
      nlohmann-json3-dev libsimdjson-dev libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev \
      protobuf-compiler libssl-dev zlib1g-dev libcrypt-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src

# .git is not in the build context: pass the revision for modal_exporter_build_info, e.g.
#   docker build --build-arg REVISION="$(git rev-parse --short=12 HEAD)" .
ARG REVISION=unknown
ARG VERSION
# Tests are built and run in CI, not in the image build. The compiler cache lives in a build
# cache mount (BuildKit and buildah both keep it between builds): a rebuild after a source
# change recompiles only what changed. CCACHE_DIR may name another directory instead:
# scripts/build-image.sh (buildah) bind-mounts the host's compiler cache there, so the image
# reuses what the host's Release build compiled. ccache hits need the same compile command
# (relative to CCACHE_BASEDIR): the build dir is a child of the source dir, like the host's
# <repo>/build-ci-release.
ARG CCACHE_DIR=/root/.cache/ccache
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S /src -B /src/build -DCMAKE_BUILD_TYPE=Release -DMODAL_EXPORTER_TESTS=OFF \
      -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DMODAL_EXPORTER_REVISION="${REVISION}" \
 && CCACHE_DIR="${CCACHE_DIR}" CCACHE_BASEDIR=/src \
    cmake --build /src/build --target modal-exporter -j"$(nproc)" \
 && cmake --install /src/build --prefix /usr/local \
 && strip /usr/local/bin/modal-exporter \
 && /usr/local/bin/modal-exporter --version \
 && { /usr/local/bin/modal-exporter --version | grep -q "^modal-exporter ${VERSION} " \
      || { echo "--build-arg VERSION=${VERSION} is not the version built (CMakeLists.txt)" >&2; exit 1; }; }

# ---- runtime stage ---------------------------------------------------------------------------
FROM debian:12-slim

ARG VERSION
ARG REVISION=unknown
LABEL org.opencontainers.image.title="modal-exporter" \
      org.opencontainers.image.description="Prometheus exporter of the Modal operator's metrics" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/debian:12-slim"

# Only the shared libraries the binary links (the runtime packages of the -dev packages above;
# gRPC, protobuf, Abseil and yaml-cpp are linked from their static archives,
# cmake/StaticArchives.cmake)
# + CA roots for the TLS connections to the Kubernetes and Modal APIs.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates \
      libboost-system1.81.0 \
      libprometheus-cpp-core1.0 \
      libsimdjson14 \
      libssl3 \
      libcrypt1 \
      zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /etc/modal-exporter /var/lib/modal-exporter \
 && chown 65532:65532 /var/lib/modal-exporter

COPY --from=build /usr/local/bin/modal-exporter /usr/local/bin/modal-exporter
COPY config/modal-exporter.yaml /etc/modal-exporter/modal-exporter.yaml
# Fails the build when a shared library the binary needs is missing from the runtime stage.
RUN ["/usr/local/bin/modal-exporter", "--version"]

# Numeric UID/GID (no passwd entry needed), so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8081
VOLUME ["/var/lib/modal-exporter"]

ENTRYPOINT ["/usr/local/bin/modal-exporter"]
CMD ["--config=/etc/modal-exporter/modal-exporter.yaml", "--state.file=/var/lib/modal-exporter/state.json"]
