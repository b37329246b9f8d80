#!/usr/bin/env bash
# The fake Kubernetes API server must speak the real protocol, not one the exporter's own client
# happens to agree with. kubectl, the reference client, talks to it through the simulator's
# kubeconfig: discovery, TLS verification against the generated CA, bearer token, chunked LIST
# (limit/continue) and WATCH from the list's resourceVersion.
#   kubectl_conformance.sh MODAL_SIM_BINARY
set -euo pipefail
sim_binary=$1
if ! command -v kubectl >/dev/null 2>&1; then
  echo "kubectl is not installed: the conformance check of the fake API server cannot run"
  exit 77 # CTest reports this as skipped, not passed
fi
work=$(mktemp -d /tmp/kubectl-conformance.XXXXXX)
"$sim_binary" --dir "$work" --jobs 8 --tick-ms 200 --seed 3 >"$work/sim.log" 2>&1 &
sim_pid=$!
trap 'kill $sim_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [[ -f "$work/sim.json" ]] && break; sleep 0.1; done
[[ -f "$work/sim.json" ]] || { cat "$work/sim.log"; exit 1; }
k() { kubectl --kubeconfig "$work/kubeconfig" --request-timeout=10s "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

# Discovery and TLS: resource names resolve, the server certificate verifies.
pods=$(k get pods --all-namespaces -o name)
grep -qx "pod/modal-operator-0" <<<"$pods" || fail "kubectl does not see the operator Pod: $pods"

# Chunked LIST: one object per page gives the same set as one page.
k get modaljobs.modal-operator.io -A -o name --chunk-size=0 | sort >"$work/one-page"
k get modaljobs.modal-operator.io -A -o name --chunk-size=1 -v=6 2>"$work/chunked.log" |
  sort >"$work/chunked"
[[ -s "$work/one-page" ]] || fail "no ModalJobs listed"
grep -q "continue=" "$work/chunked.log" || fail "kubectl did not follow a continue token"
# Jobs come and go while kubectl pages, so compare the names present in both.
[[ $(comm -12 "$work/one-page" "$work/chunked" | wc -l) -ge 1 ]] || fail "chunked list differs"

# WATCH: the first line is the existing objects, then events arrive as the world moves.
# (the listed objects print as ADDED; jobs changing phase can only show up as MODIFIED.)
timeout 8 kubectl --kubeconfig "$work/kubeconfig" get modaljobs.modal-operator.io -A -w \
  --output-watch-events -o json -v=6 >"$work/watch" 2>"$work/watch.log" || true
grep -q "watch=true" "$work/watch.log" || fail "kubectl did not open a watch: $(cat "$work/watch.log")"
grep -q "resourceVersion=" "$work/watch.log" || fail "watch did not resume from the list"
events=$(grep -cE '"type": ?"(MODIFIED|DELETED)"' "$work/watch" || true)
[[ $events -gt 0 ]] ||
  fail "no watch events beyond the initial list: $(head -c 2000 "$work/watch")"
echo "kubectl lists (chunked) and watches the fake API server: $events events"
