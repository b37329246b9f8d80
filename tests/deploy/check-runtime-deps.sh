#!/usr/bin/env bash
# The runtime stage of the Dockerfile must install every shared library the binary needs.
# Every library `ldd BINARY` resolves is mapped to its Debian package (dpkg -S); each such
# package must be one the runtime stage installs, or a dependency of those (apt-cache depends
# --recurse), or part of the base image (Priority: required, e.g. libc6, libstdc++6, libgcc-s1).
#   check-runtime-deps.sh DOCKERFILE BINARY
set -euo pipefail
df="$1" bin="$2"
for t in ldd dpkg dpkg-query apt-cache awk; do
  command -v "$t" >/dev/null || { echo "FAIL: $t not found" >&2; exit 1; }
done
[[ -x "$bin" ]] || { echo "FAIL: $bin is not built (build the modal-exporter target first)" >&2; exit 1; }
# Packages named in the apt-get install of the last stage (after the last FROM).
runtime_pkgs="$(awk '/^FROM /{buf=""} {buf=buf"\n"$0} END{print buf}' "$df" |
  tr -d '\\' | tr ' ' '\n' | grep -E '^(lib[a-z0-9.+-]+|zlib1g|ca-certificates)$' | sort -u)"
[[ -n "$runtime_pkgs" ]] || { echo "FAIL: no runtime packages found in $df" >&2; exit 1; }
# shellcheck disable=SC2086
closure="$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances $runtime_pkgs 2>/dev/null |
  sed -nE 's/^ *(Pre)?Depends: <?([^ >]+)>?.*/\2/p; s/^([a-z0-9][^ ]*)$/\1/p' | sed 's/:.*//' | sort -u)"
bad=0
while read -r lib; do
  [[ -z "$lib" ]] && continue
  # A -DMODAL_EXPORTER_SANITIZE=ON build links the sanitizer runtimes; the image is built
  # without sanitizers, so they are not runtime dependencies of the image.
  case "$(basename "$lib")" in
    libasan.so* | libubsan.so* | liblsan.so* | libtsan.so*)
      echo "skip: $lib (sanitizer runtime, not in a release build)"
      continue
      ;;
  esac
  real="$(readlink -f "$lib")"
  pkg="$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || true)"
  pkg="${pkg%%:*}"
  if [[ -z "$pkg" ]]; then
    echo "FAIL: $lib belongs to no Debian package" >&2
    bad=1
    continue
  fi
  prio="$(dpkg-query -W -f='${Priority}' "$pkg" 2>/dev/null || true)"
  if printf '%s\n%s\n' "$runtime_pkgs" "$closure" | grep -qxF "$pkg" || [[ "$prio" == "required" ]]; then
    echo "ok: $lib <- $pkg"
  else
    echo "FAIL: $lib comes from $pkg, which the runtime stage of $df does not install" >&2
    bad=1
  fi
done < <(ldd "$bin" | awk '/=> \//{print $3} /^[ \t]*\/.*ld-linux/{print $1}')
exit $bad
