# Sourced by the deploy check scripts: finds a check tool or fails the test with a clear message
# (a missing tool is a failure, not a skip: CI installs them with scripts/install-check-tools.sh).
#   find_tool VAR NAME   -> sets $VAR to the tool's path from: the environment variable VAR, the
#                           tools dir ($MX_TOOLS_DIR, default /opt/modal-exporter-tools)/bin,
#                           then $PATH.
find_tool() {
  local var="$1" name="$2" dir="${MX_TOOLS_DIR:-/opt/modal-exporter-tools}" path=""
  if [[ -n "${!var:-}" ]]; then
    path="${!var}"
    if [[ ! -x "$path" ]]; then
      echo "FAIL: $var=$path is not an executable file" >&2
      exit 1
    fi
  elif [[ -x "$dir/bin/$name" ]]; then
    path="$dir/bin/$name"
  elif command -v "$name" >/dev/null 2>&1; then
    path="$(command -v "$name")"
  else
    echo "FAIL: $name not found (looked at \$$var, $dir/bin/$name and PATH)." >&2
    echo "      Install the check tools with: scripts/install-check-tools.sh" >&2
    echo "      (or set $var=/path/to/$name)" >&2
    exit 1
  fi
  printf -v "$var" '%s' "$path"
}
