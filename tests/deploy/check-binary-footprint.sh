#!/usr/bin/env bash
# What the build does to keep the binary's resident memory small (docs/performance.md, "Where
# the memory goes") must show in the binary it produced:
#   check-binary-footprint.sh BINARY STATIC_ARCHIVES PACKED_RELOCS WITH_MODAL  (each 1 or 0)
# - relative relocations packed (DT_RELR) when the linker can;
# - with the static archives, yaml-cpp is not a shared library of the binary, gRPC's optional
#   plugins (xDS, ALTS) are not linked in (src/sources/modal/rpc.cpp), and of protobuf only the
#   lite runtime is (proto/modal_api.proto: no descriptors, reflection or text format).
set -euo pipefail
bin="$1" static="$2" relr="$3" modal="$4"
on() { [[ "$1" =~ ^(ON|on|1|TRUE|true|YES|yes)$ ]]; }
for t in readelf nm ldd; do
  command -v "$t" >/dev/null || { echo "FAIL: $t not found (binutils)" >&2; exit 1; }
done
[[ -x "$bin" ]] || { echo "FAIL: $bin is not built" >&2; exit 1; }
bad=0
if on "$relr"; then
  if readelf -d "$bin" | grep -q '(RELR)'; then
    echo "ok: relative relocations packed (DT_RELR)"
  else
    echo "FAIL: the linker packs relative relocations, but $bin has no DT_RELR" >&2
    bad=1
  fi
fi
if on "$static"; then
  if ldd "$bin" | grep -q 'libyaml-cpp'; then
    echo "FAIL: $bin links yaml-cpp as a shared library; its static archive was asked for" >&2
    bad=1
  else
    echo "ok: yaml-cpp linked from its static archive"
  fi
  if on "$modal"; then
    symbols="$(nm -C "$bin")"
    [[ -n "$symbols" ]] || { echo "FAIL: $bin has no symbol table to check" >&2; exit 1; }
    if ! grep -q 'grpc_core::CoreConfiguration' <<<"$symbols"; then
      echo "FAIL: no gRPC core in $bin's symbols: the check below would prove nothing" >&2
      bad=1
    fi
    xds="$(grep -cE 'grpc_core::(XdsClient|.*XdsResolver|.*RbacFilter|.*Alts)' <<<"$symbols" || true)"
    if [[ "$xds" -ne 0 ]]; then
      echo "FAIL: $xds symbols of gRPC's xDS, RBAC or ALTS plugins are linked into $bin" >&2
      bad=1
    else
      echo "ok: gRPC's optional plugins (xDS, RBAC, ALTS) are not linked"
    fi
    if ! grep -q 'google::protobuf::MessageLite::' <<<"$symbols"; then
      echo "FAIL: no protobuf runtime in $bin's symbols: the check below would prove nothing" >&2
      bad=1
    fi
    full="$(grep -cE 'google::protobuf::(DescriptorBuilder|DescriptorPool|Reflection|TextFormat)::' \
      <<<"$symbols" || true)"
    if [[ "$full" -ne 0 ]]; then
      echo "FAIL: $full symbols of protobuf's full runtime (descriptors, reflection, text format)" \
        "are linked into $bin; the project's protos are compiled for the lite runtime" >&2
      bad=1
    else
      echo "ok: of protobuf only the lite runtime is linked"
    fi
  fi
fi
exit $bad
