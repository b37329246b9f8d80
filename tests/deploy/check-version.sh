#!/usr/bin/env bash
# One version, in CMakeLists.txt's project(VERSION): everything else follows it.
#   check-version.sh VERSION ROOT [BINARY]
# VERSION is CMake's PROJECT_VERSION. Checks: the chart's appVersion; the Dockerfile's OCI
# version label comes from the VERSION build argument, which its build stage compares with the
# binary's --version; scripts/build-image.sh passes that argument from CMakeLists.txt; the
# CHANGELOG has a section for the version; and the built binary's --version reports it.
set -euo pipefail
version="$1" root="$2" binary="${3:-}"
status=0
fail() {
  echo "FAIL: $*" >&2
  status=1
}
[[ -n "$version" ]] || fail "empty project VERSION"

app=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$root/charts/modal-operator/Chart.yaml")
[[ "$app" == "$version" ]] || fail "charts/modal-operator/Chart.yaml appVersion is '$app', not $version"

grep -q '^ARG VERSION$' "$root/Dockerfile" || fail "Dockerfile declares no ARG VERSION"
grep -q 'org.opencontainers.image.version="${VERSION}"' "$root/Dockerfile" ||
  fail 'Dockerfile: no LABEL org.opencontainers.image.version="${VERSION}"'
grep -q 'modal-exporter --version | grep -q "^modal-exporter ${VERSION} "' "$root/Dockerfile" ||
  fail "Dockerfile: the build stage does not compare VERSION with the binary's --version"

from_cmake=$(cd "$root" && sed -n 's/^project(modal-exporter VERSION \([^ ]*\).*/\1/p' CMakeLists.txt)
[[ "$from_cmake" == "$version" ]] || fail "CMakeLists.txt's project(VERSION) reads '$from_cmake'"
grep -q -- '--build-arg VERSION="$project_version"' "$root/scripts/build-image.sh" ||
  fail "scripts/build-image.sh does not pass --build-arg VERSION"

grep -q "^## \[$version\]" "$root/CHANGELOG.md" || fail "CHANGELOG.md has no section ## [$version]"

if [[ -n "$binary" ]]; then
  out=$("$binary" --version)
  [[ "$out" == "modal-exporter $version "* ]] || fail "$binary --version says: $out"
fi
((status == 0)) && echo "ok: version $version everywhere"
exit $status
