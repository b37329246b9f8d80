#!/usr/bin/env bash
# Builds the modal-exporter container image from the Dockerfile, then checks the built image:
#   1. its configuration: USER 65532:65532 and the exporter as ENTRYPOINT;
#   2. `modal-exporter --version` inside the image, as UID 65532;
#   3. the exporter inside the image, as UID 65532, with the image's root file system mounted
#      read-only (only /var/lib/modal-exporter, the state volume, is writable; the config dir is
#      a read-only bind mount), fed by tools/modal-sim (a simulated Kubernetes API and Modal
#      server) started on the host; the host fetches /readyz and /metrics, lints the scrape with
#      `promtool check metrics` and looks for modal_jobs_total and the build revision; after
#      SIGTERM the exporter must exit 0 and leave its state file in the state volume.
# Any failed step exits non-zero. Idempotent: re-running reuses the cached base image and the
# build's layer and compiler caches.
#
# Engines: a Docker engine when one answers (`docker build`, `docker run --read-only`), else
# offline with buildah (no daemon, no registry): `mmdebstrap --variant=minbase bookworm` makes
# a Debian 12 root file system from the apt repositories this machine reaches, `podman import`
# makes it docker.io/library/debian:12 (and :12-slim), and
# `buildah bud --isolation chroot --pull=never --layers` builds the Dockerfile as written.
# `podman run` is not used: on some machines its runtime's rlimit changes are refused.
# buildah's storage is overlay when the kernel mounts overlayfs here (a store of its own,
# /var/lib/containers/storage-overlay, so that it never meets an older vfs store), else vfs
# (the default store), which copies the whole root file system for every step and layer.
#
# Compiler cache: IMAGE_CCACHE_DIR names a host ccache directory that the build stage uses
# instead of its own cache mount (buildah only; `buildah bud -v DIR:... --build-arg CCACHE_DIR`).
# scripts/test.sh passes the one its Release build filled, with CCACHE_BASEDIR=<repo> and the
# build dir <repo>/build-ci-release: the image compiles with the same compiler, flags and
# relative paths (CCACHE_BASEDIR=/src, build dir /src/build), so every translation unit is a
# cache hit as long as the host's build packages are the versions the image's apt installs
# (scripts/install-deps.sh --upgrade). The hits and misses are logged.
#
# Needs root for the buildah path (mmdebstrap --mode=root, buildah's storage, the read-only
# bind mount). Installs mmdebstrap/buildah/podman, promtool and curl with apt when missing.
#
# Environment:
#   IMAGE             image to build (default localhost/modal-exporter:dev)
#   IMAGE_ENGINE      auto (default), docker or buildah
#   IMAGE_STORAGE     buildah storage driver: auto (default: overlay when it mounts, else vfs),
#                     overlay or vfs
#   IMAGE_CCACHE_DIR  host ccache directory for the build stage (buildah path; see above)
#   IMAGE_CACHE_DIR   keeps the base root file system tarball
#                     (default ${XDG_CACHE_HOME:-$HOME/.cache}/modal-exporter-image)
#   IMAGE_REFRESH=1   rebuild the base root file system and build without the layer cache
#                     (picks up Debian security updates)
#   IMAGE_SLIM_BASE=1 (buildah path) make debian:12-slim a slim root file system of its own
#                     (merged /usr without perl; no man pages, locales or docs), close to the
#                     registry's, instead of the minbase debian:12 re-tagged
#   MODAL_SIM         a built modal-sim binary (e.g. build-ci/tools/modal-sim/modal-sim);
#                     default: built here into build-image-sim/ (target modal-sim only)
#   SKIP_BUILD=1      only check an already built $IMAGE
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

IMAGE=${IMAGE:-localhost/modal-exporter:dev}
engine=${IMAGE_ENGINE:-auto}
cache=${IMAGE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/modal-exporter-image}
refresh=${IMAGE_REFRESH:-0}
slim_base=${IMAGE_SLIM_BASE:-0}
storage=${IMAGE_STORAGE:-auto}
ccache_dir=${IMAGE_CCACHE_DIR:-}
BASE=docker.io/library/debian:12
BASE_SLIM=docker.io/library/debian:12-slim

log() { printf '[build-image %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
fail() {
  log "FAIL: $*"
  exit 1
}

# ---- engine and packages --------------------------------------------------------------------
if [[ "$engine" == auto ]]; then
  engine=buildah
  if command -v docker >/dev/null 2>&1 &&
    timeout 10 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
    engine=docker
  fi
fi
case "$engine" in docker | buildah) ;; *) fail "IMAGE_ENGINE must be auto, docker or buildah" ;; esac
log "engine: $engine"

SUDO=""
[[ $(id -u) -eq 0 ]] || SUDO=sudo
[[ "$engine" == docker || -z "$SUDO" ]] ||
  fail "the buildah path needs root (mmdebstrap --mode=root, vfs storage): run it with sudo"

packages=(curl prometheus)
[[ "$engine" == buildah ]] && packages+=(mmdebstrap buildah podman)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

# overlay when this kernel mounts it on this file system (a throw-away probe), else vfs.
overlay_works() {
  local d rc=0
  d=$(mktemp -d /var/tmp/mx-overlay-probe.XXXXXX)
  mkdir "$d/lower" "$d/upper" "$d/work" "$d/merged"
  mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" \
    "$d/merged" 2>/dev/null || rc=1
  ((rc)) || umount "$d/merged"
  rm -rf "$d"
  return $rc
}
store=()
if [[ "$engine" == buildah ]]; then
  if [[ "$storage" == auto ]]; then
    storage=vfs
    overlay_works && storage=overlay
  fi
  case "$storage" in
    overlay) store=(--storage-driver overlay --root /var/lib/containers/storage-overlay
      --runroot /run/containers/storage-overlay) ;;
    vfs) store=(--storage-driver vfs) ;;
    *) fail "IMAGE_STORAGE must be auto, overlay or vfs" ;;
  esac
  log "storage: buildah ${store[*]}"
fi
B=(buildah "${store[@]}")
P=(podman "${store[@]}")
revision=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# The one version (CMakeLists.txt project(VERSION)); the image labels and the build check it.
project_version=$(sed -n 's/^project(modal-exporter VERSION \([^ ]*\).*/\1/p' CMakeLists.txt)

# ---- base image -----------------------------------------------------------------------------
# The buildah path has no registry: Debian 12 minbase from mmdebstrap stands in for both
# debian:12 (build stage) and debian:12-slim (runtime stage). The tarball is cached; the
# imported images stay in buildah's store, so a second run skips both steps.
# The root file system gets the apt/dpkg configuration the registry's debian images carry
# (debuerreotype's "minimizing config"): policy-rc.d refuses to start services, dpkg does not
# fsync every file (force-unsafe-io), apt deletes downloaded packages after installing them
# and keeps no binary caches (docker-clean), keeps package lists compressed and fetches no
# translations. The Dockerfile's `apt-get install` steps then behave (and cost) as they do on
# the registry's images.
# Bump when the recipe of the root file systems changes: cached tarballs and imports are redone.
recipe=r3
write_hooks() {
  mkdir -p "$cache"
  cat >"$cache/hook-essential.sh" <<'EOF'
#!/bin/sh
set -e
printf '#!/bin/sh\nexit 101\n' >"$1/usr/sbin/policy-rc.d"
chmod 0755 "$1/usr/sbin/policy-rc.d"
echo force-unsafe-io >"$1/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
EOF
  cat >"$cache/hook-customize.sh" <<'EOF'
#!/bin/sh
set -e
# mmdebstrap's own apt clean-up, done here: its apt-get runs on the host with the chroot's
# apt.conf.d, where the Post-Invoke commands below would clean the host's apt cache.
rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin "$1"/var/cache/apt/archives/*.deb
mkdir -p "$1/var/lib/apt/lists/partial"
d=$1/etc/apt/apt.conf.d
echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$d/docker-autoremove-suggests"
clean='"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true";'
printf 'DPkg::Post-Invoke { %s };\nAPT::Update::Post-Invoke { %s };\n' "$clean" "$clean" >"$d/docker-clean"
printf 'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n' >>"$d/docker-clean"
echo 'Acquire::GzipIndexes "true";' >"$d/docker-gzip-indexes"
echo 'Acquire::Languages "none";' >"$d/docker-no-languages"
EOF
}
# Makes $cache/rootfs-bookworm-NAME-$recipe.tar (kept: the next run reuses it) with mmdebstrap
# OPTIONS.
make_rootfs() {
  local name=$1 tar="$cache/rootfs-bookworm-$1-$recipe.tar" t0=$SECONDS
  shift
  if [[ "$refresh" != 1 && -s "$tar" ]]; then return; fi
  write_hooks
  log "mmdebstrap --variant=minbase bookworm $* -> $tar"
  # The name must end in .tar: mmdebstrap picks the output format from it.
  rm -f "$cache/rootfs.partial.tar"
  # mmdebstrap would remove its own policy-rc.d at the end: the essential hook writes the one
  # the image keeps. The apt configuration comes last (customize hook), after every install,
  # and replaces mmdebstrap's apt clean-up (see the hook).
  mmdebstrap --variant=minbase --mode=root --skip=chroot/policy-rc.d --skip=cleanup/apt \
    --essential-hook="sh '$cache/hook-essential.sh' \"\$1\"" \
    --customize-hook="sh '$cache/hook-customize.sh' \"\$1\"" \
    "$@" bookworm "$cache/rootfs.partial.tar" </dev/null
  mv "$cache/rootfs.partial.tar" "$tar"
  # Tarballs of earlier recipes are of no further use.
  find "$cache" -maxdepth 1 -name "rootfs-bookworm-$name*.tar" ! -name "${tar##*/}" -delete
  log "root file system $name made in $((SECONDS - t0)) s"
}

image_id() { "${B[@]}" inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true; }

# Imports (and first makes, unless cached) the base images, unless this store already holds
# the ones this recipe and IMAGE_SLIM_BASE ask for ($stamp remembers what was imported).
ensure_base_buildah() {
  local stamp="$cache/imported-$storage" flavour=minbase
  [[ "$slim_base" == 1 ]] && flavour=slim
  if [[ "$refresh" == 1 || ! -s "$stamp" ||
    "$(cat "$stamp")" != "$recipe $flavour $(image_id "$BASE") $(image_id "$BASE_SLIM")" ]]; then
    make_rootfs minbase
    "${P[@]}" import "$cache/rootfs-bookworm-minbase-$recipe.tar" "$BASE" >/dev/null
    log "imported rootfs-bookworm-minbase-$recipe.tar as $BASE"
    if [[ "$slim_base" == 1 ]]; then
      # Like the registry's slim image: merged /usr without the usrmerge package (and so
      # without perl), and dpkg drops man pages, locales and documentation (also of later apt
      # installs).
      make_rootfs slim --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-include=/usr/share/locale/locale.alias' \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/info/*'
      "${P[@]}" import "$cache/rootfs-bookworm-slim-$recipe.tar" "$BASE_SLIM" >/dev/null
      log "imported rootfs-bookworm-slim-$recipe.tar as $BASE_SLIM"
    else
      "${P[@]}" tag "$BASE" "$BASE_SLIM"
      log "tagged $BASE as $BASE_SLIM"
    fi
    echo "$recipe $flavour $(image_id "$BASE") $(image_id "$BASE_SLIM")" >"$stamp"
  fi
  log "base images: $BASE $("${B[@]}" images --format '{{.Size}}' "$BASE" | sed -n 1p)," \
    "$BASE_SLIM $("${B[@]}" images --format '{{.Size}}' "$BASE_SLIM" | sed -n 1p)"
}

ensure_base_docker() {
  local img
  for img in debian:12 debian:12-slim; do
    docker image inspect "$img" >/dev/null 2>&1 && continue
    docker pull "$img" >/dev/null 2>&1 && continue
    fail "$img is neither present nor pullable; import a root file system as $img first"
  done
}

# ---- build ----------------------------------------------------------------------------------
# ccache's counters of a cache directory: "hits misses" (direct + preprocessed hits).
ccache_counts() {
  CCACHE_DIR=$1 ccache --print-stats 2>/dev/null | awk '
    $1 == "direct_cache_hit" || $1 == "preprocessed_cache_hit" { h += $2 }
    $1 == "cache_miss" { m += $2 }
    END { print h + 0, m + 0 }'
}
if [[ "${SKIP_BUILD:-0}" != 1 ]]; then
  t0=$SECONDS
  if [[ "$engine" == buildah ]]; then
    ensure_base_buildah
    cache_args=(--layers)
    [[ "$refresh" == 1 ]] && cache_args+=(--no-cache)
    build_args=(--build-arg REVISION="$revision" --build-arg VERSION="$project_version")
    if [[ -n "$ccache_dir" ]]; then
      [[ "$ccache_dir" == /* ]] || ccache_dir=$root/$ccache_dir
      mkdir -p "$ccache_dir"
      # The build stage's RUN sees the host's cache at /var/cache/ccache-host (ARG CCACHE_DIR);
      # the apt steps see it too and leave it alone.
      build_args+=(-v "$ccache_dir:/var/cache/ccache-host"
        --build-arg CCACHE_DIR=/var/cache/ccache-host)
      command -v ccache >/dev/null 2>&1 && read -r hits0 misses0 < <(ccache_counts "$ccache_dir")
      log "compiler cache: $ccache_dir (host)"
    fi
    log "buildah bud -t $IMAGE (revision $revision)"
    nice "${B[@]}" bud --isolation chroot --pull=never "${cache_args[@]}" "${build_args[@]}" \
      -t "$IMAGE" .
    if [[ -n "${hits0:-}" ]]; then
      read -r hits1 misses1 < <(ccache_counts "$ccache_dir")
      if ((hits1 + misses1 == hits0 + misses0)); then
        log "compiler cache: no compiles (the build step's layer was cached)"
      else
        log "compiler cache in the image build: $((hits1 - hits0)) hits," \
          "$((misses1 - misses0)) misses (a miss: a compile command or header that differs" \
          "from the host's build)"
      fi
    fi
    # Every commit leaves a source layer and a build layer behind (tens of MB): tag the build
    # stage (all cached: seconds) so that its layers, the apt one above all, stay cached, then
    # remove the untagged images of earlier builds. Only in the overlay store, which is this
    # script's own; the default (vfs) store may hold other people's images.
    if [[ "$storage" == overlay ]]; then
      "${B[@]}" bud --isolation chroot --pull=never --layers --target build --quiet \
        "${build_args[@]}" -t "$IMAGE-build-stage" . >/dev/null
      t1=$SECONDS
      "${B[@]}" rmi --prune >/dev/null
      log "kept the build stage as $IMAGE-build-stage; untagged images removed in" \
        "$((SECONDS - t1)) s"
    fi
  else
    [[ -z "$ccache_dir" ]] ||
      log "IMAGE_CCACHE_DIR is for the buildah path: docker build uses its own cache mount"
    ensure_base_docker
    cache_args=()
    [[ "$refresh" == 1 ]] && cache_args+=(--no-cache --pull)
    log "docker build -t $IMAGE (revision $revision)"
    DOCKER_BUILDKIT=1 docker build "${cache_args[@]}" --build-arg REVISION="$revision" \
      --build-arg VERSION="$project_version" \
      -t "$IMAGE" .
  fi
  log "image built in $((SECONDS - t0)) s"
fi

# ---- image facts ----------------------------------------------------------------------------
if [[ "$engine" == buildah ]]; then
  "${B[@]}" inspect --type image "$IMAGE" >/dev/null 2>&1 || fail "no image $IMAGE"
  size=$("${B[@]}" images --format '{{.Size}}' "$IMAGE" | sed -n 1p)
  user=$("${B[@]}" inspect --type image --format '{{.OCIv1.Config.User}}' "$IMAGE")
  entrypoint=$("${B[@]}" inspect --type image --format '{{range .OCIv1.Config.Entrypoint}}{{.}} {{end}}' "$IMAGE")
  label_version=$("${B[@]}" inspect --type image \
    --format '{{index .OCIv1.Config.Labels "org.opencontainers.image.version"}}' "$IMAGE")
  base_size=$("${B[@]}" images --format '{{.Size}}' "$BASE_SLIM" | sed -n 1p)
else
  docker image inspect "$IMAGE" >/dev/null 2>&1 || fail "no image $IMAGE"
  size="$(($(docker image inspect -f '{{.Size}}' "$IMAGE") / 1000000)) MB"
  user=$(docker image inspect -f '{{.Config.User}}' "$IMAGE")
  entrypoint=$(docker image inspect -f '{{range .Config.Entrypoint}}{{.}} {{end}}' "$IMAGE")
  label_version=$(docker image inspect \
    -f '{{index .Config.Labels "org.opencontainers.image.version"}}' "$IMAGE")
  base_size="$(($(docker image inspect -f '{{.Size}}' debian:12-slim) / 1000000)) MB"
fi
log "image $IMAGE: $size (base debian:12-slim here: $base_size)"
[[ "$user" == 65532:65532 ]] || fail "image USER is '$user', expected 65532:65532"
[[ "$entrypoint" == "/usr/local/bin/modal-exporter " ]] ||
  fail "image ENTRYPOINT is $entrypoint"
[[ "$label_version" == "$project_version" ]] ||
  fail "image label org.opencontainers.image.version is '$label_version', CMakeLists.txt says $project_version"
log "ok: USER $user, ENTRYPOINT $entrypoint, version label $label_version"

# ---- run inside the image -------------------------------------------------------------------
work=$(mktemp -d /tmp/build-image.XXXXXX)
chmod 0755 "$work"
container="" ro_mount="" run_tmpfs="" sim_pid="" run_pid=""
# The modal-exporter process under `buildah run` ($run_pid): searched in the process tree this
# script started, by PID.
exporter_pid() {
  local pids=("$run_pid") next p
  while ((${#pids[@]})); do
    next=()
    for p in "${pids[@]}"; do
      if [[ "$(cat "/proc/$p/comm" 2>/dev/null)" == modal-exporter ]]; then
        echo "$p"
        return
      fi
      mapfile -t -O "${#next[@]}" next < <(pgrep -P "$p" || true)
    done
    pids=("${next[@]}")
  done
}
cleanup() {
  set +e
  if [[ -n "$run_pid" ]]; then
    [[ "$engine" == buildah ]] && kill "$(exporter_pid)" 2>/dev/null
    kill "$run_pid" 2>/dev/null
    wait "$run_pid" 2>/dev/null
  fi
  [[ -n "$sim_pid" ]] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null
  if [[ "$engine" == docker ]]; then
    docker rm -f "mx-image-check-$$" >/dev/null 2>&1
  fi
  [[ -n "$run_tmpfs" ]] && umount "$run_tmpfs"
  [[ -n "$ro_mount" ]] && umount "$ro_mount"
  if [[ -n "$container" ]]; then
    "${B[@]}" umount "$container" >/dev/null 2>&1
    "${B[@]}" rm "$container" >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a command in the image as UID 65532 (extra engine options before "--").
in_image() {
  local opts=()
  while [[ "$1" != -- ]]; do
    opts+=("$1")
    shift
  done
  shift
  if [[ "$engine" == buildah ]]; then
    "${B[@]}" run --isolation chroot --network host --user 65532:65532 "${opts[@]}" \
      "$container" -- "$@"
  else
    docker run --rm --read-only --network host --user 65532:65532 "${opts[@]}" \
      --entrypoint "$1" "$IMAGE" "${@:2}"
  fi
}

if [[ "$engine" == buildah ]]; then
  container=$("${B[@]}" from --pull=never --quiet "$IMAGE")
  # The image's VOLUME would get an anonymous buildah volume at the same path as the state
  # dir mounted below, and which of the two wins differs from run to run: drop it from this
  # check container's configuration (the image keeps it).
  "${B[@]}" config --volume /var/lib/modal-exporter- "$container"
  mnt=$("${B[@]}" mount "$container")
  # The container's root file system, read-only for everyone (root included) while the checks
  # run: a read-only bind mount of the directory buildah runs the container from. buildah
  # bind-mounts /etc/hosts, /etc/hostname, /etc/resolv.conf and /run/.containerenv into every
  # run: the first three mount points are created beforehand (as any engine does), and /run is
  # a small root-owned tmpfs because buildah 1.28 creates and deletes /run/.containerenv on each
  # run (on a read-only /run its clean-up panics and loses the command's exit status).
  for f in etc/hosts etc/hostname etc/resolv.conf; do [[ -e "$mnt/$f" ]] || : >"$mnt/$f"; done
  mount --bind "$mnt" "$mnt"
  ro_mount=$mnt
  mount -o remount,bind,ro "$mnt"
  mount -t tmpfs -o mode=0755,size=1m,nosuid,nodev,noexec tmpfs "$mnt/run"
  run_tmpfs=$mnt/run
  if out=$("${B[@]}" run --isolation chroot --user 0:0 "$container" -- \
    /bin/sh -c 'echo x >/ro-probe' 2>&1); then
    fail "the image's root file system is writable (as root) during the checks"
  fi
  grep -qi "read-only" <<<"$out" || fail "writing / failed, but not as read-only: $out"
  log "ok: root file system read-only (as root in the container: $(grep -i -m1 read-only <<<"$out"))"
fi

version=$(in_image -- /usr/local/bin/modal-exporter --version) ||
  fail "modal-exporter --version failed in the image"
log "in image: $version"
[[ "$version" == "modal-exporter "*"(revision "* ]] || fail "unexpected --version output: $version"
if [[ "${SKIP_BUILD:-0}" == 1 ]]; then
  revision=$(sed -n 's/.*(revision \([^,)]*\).*/\1/p' <<<"$version")
elif [[ "$version" != *"(revision $revision,"* ]]; then
  fail "the image was not built from this checkout (want revision $revision): $version"
fi

# The simulator on the host: Kubernetes API, Modal gRPC API and job telemetry on 127.0.0.1.
sim=${MODAL_SIM:-}
if [[ -z "$sim" ]]; then
  bash scripts/install-deps.sh
  launcher=()
  command -v ccache >/dev/null 2>&1 && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S . -B build-image-sim -DCMAKE_BUILD_TYPE=Debug -DMODAL_EXPORTER_TESTS=OFF \
    "${launcher[@]}" >/dev/null
  log "building modal-sim for the host (build-image-sim/)"
  nice cmake --build build-image-sim --target modal-sim -j"$(nproc)" >/dev/null
  sim=$root/build-image-sim/tools/modal-sim/modal-sim
fi
[[ -x "$sim" ]] || fail "modal-sim not found at $sim"
mkdir -p "$work/sim"
"$sim" --dir "$work/sim" --jobs 20 --seed 16 --tick-ms 200 2>"$work/sim.log" &
sim_pid=$!
for _ in $(seq 1 100); do [[ -f "$work/sim/sim.json" ]] && break; sleep 0.1; done
[[ -f "$work/sim/sim.json" ]] || fail "modal-sim did not start: $(cat "$work/sim.log")"

# What a Kubernetes pod would mount: the config dir read-only (ConfigMap + Secret) at
# /etc/modal-exporter, the state dir writable at /var/lib/modal-exporter. Both paths exist in
# the image, so nothing is created in its root file system. The Modal token goes in files, not
# on a command line.
etc=$work/etc state=$work/state
mkdir -p "$etc" "$state"
env_value() { sed -n "s/^$1=//p" "$work/sim/modal.env"; }
env_value MODAL_TOKEN_ID >"$etc/token-id"
env_value MODAL_TOKEN_SECRET >"$etc/token-secret"
cp "$work/sim/kubeconfig" "$etc/kubeconfig"
cat >"$etc/modal-exporter.yaml" <<EOF
sources:
  kubernetes:
    kubeconfig: /etc/modal-exporter/kubeconfig
  modal:
    server_url: $(env_value MODAL_SERVER_URL)
    token_id_file: /etc/modal-exporter/token-id
    token_secret_file: /etc/modal-exporter/token-secret
    apps_interval: 2s
    tasks_interval: 2s
    stats_interval: 2s
    billing_interval: 10s
  telemetry:
    interval: 2s
EOF
chown -R 65532:65532 "$etc" "$state"
chmod 0500 "$etc" && chmod 0400 "$etc"/*
chmod 0700 "$state"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log "exporter in the image on 127.0.0.1:$port, as 65532, against modal-sim"
if [[ "$engine" == buildah ]]; then
  in_image -v "$etc:/etc/modal-exporter:ro" -v "$state:/var/lib/modal-exporter:rw" \
    -e "POD_NAME=$(env_value POD_NAME)" -e "POD_NAMESPACE=$(env_value POD_NAMESPACE)" -- \
    /usr/local/bin/modal-exporter --config=/etc/modal-exporter/modal-exporter.yaml \
    --web.listen-address="127.0.0.1:$port" \
    --state.file=/var/lib/modal-exporter/state.json >"$work/exporter.log" 2>&1 &
else
  in_image --name "mx-image-check-$$" -v "$etc:/etc/modal-exporter:ro" \
    -v "$state:/var/lib/modal-exporter:rw" \
    -e "POD_NAME=$(env_value POD_NAME)" -e "POD_NAMESPACE=$(env_value POD_NAMESPACE)" -- \
    /usr/local/bin/modal-exporter --config=/etc/modal-exporter/modal-exporter.yaml \
    --web.listen-address="127.0.0.1:$port" \
    --state.file=/var/lib/modal-exporter/state.json >"$work/exporter.log" 2>&1 &
fi
run_pid=$!

exporter_log() { sed 's/^/  exporter: /' "$work/exporter.log" | tail -n 30 >&2; }
url=http://127.0.0.1:$port
ready=""
for _ in $(seq 1 120); do
  kill -0 "$run_pid" 2>/dev/null || {
    exporter_log
    fail "the exporter in the image exited early"
  }
  if curl -fsS -o /dev/null "$url/readyz" 2>/dev/null &&
    curl -fsS -o "$work/metrics.txt" "$url/metrics" &&
    grep -q '^modal_jobs_total{' "$work/metrics.txt"; then
    ready=1
    break
  fi
  sleep 1
done
[[ -n "$ready" ]] || {
  exporter_log
  fail "no ready exporter with modal_jobs_total at $url within 120 s"
}
log "ok: /readyz 200, /metrics has $(grep -c '^modal_' "$work/metrics.txt") modal_* samples"
promtool check metrics <"$work/metrics.txt" || fail "promtool check metrics found problems"
log "ok: promtool check metrics"
grep -q "^modal_exporter_build_info{.*revision=\"$revision\"" "$work/metrics.txt" ||
  fail "modal_exporter_build_info does not carry revision $revision"
for m in modal_jobs_active modal_app_running_tasks; do
  grep -q "^$m{" "$work/metrics.txt" || fail "$m missing from /metrics"
done
log "ok: modal_jobs_total, modal_jobs_active, modal_app_running_tasks, build_info"

# Graceful stop: SIGTERM to the exporter process (found in the process tree this script
# started), exit code 0, state file written into the only writable volume.
if [[ "$engine" == buildah ]]; then
  exporter_pid=$(exporter_pid)
  [[ -n "$exporter_pid" ]] || fail "exporter process not found under buildah run ($run_pid)"
  [[ "$(stat -c %u "/proc/$exporter_pid")" == 65532 ]] || fail "the exporter does not run as 65532"
  kill -TERM "$exporter_pid"
else
  docker kill --signal TERM "mx-image-check-$$" >/dev/null
fi
rc=0
wait "$run_pid" || rc=$?
run_pid=""
((rc == 0)) || {
  exporter_log
  fail "the exporter exited with $rc after SIGTERM"
}
[[ -s "$state/state.json" ]] || {
  exporter_log
  ls -la "$state" >&2
  fail "no state file in the state volume after shutdown"
}
[[ "$(stat -c %u "$state/state.json")" == 65532 ]] || fail "state file not written by UID 65532"
log "ok: SIGTERM -> exit 0, state.json written by UID 65532 into the state volume"
log "PASS: $IMAGE ($size) builds and runs as 65532 read-only ($SECONDS s in all)"
