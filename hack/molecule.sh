#!/usr/bin/env bash
# Runs molecule scenarios, each against its own local clusters (stopped whatever happens); every scenario runs and
# the script fails if any failed. Usage: hack/molecule.sh SCENARIO...
# A scenario gets one cluster, or as many as its file molecule/<scenario>/clusters says. The scenario sees their
# kubeconfigs as MESHOPS_KUBECONFIG_1, MESHOPS_KUBECONFIG_2, ..., and the first one also as K8S_AUTH_KUBECONFIG.
# A scenario with a file molecule/<scenario>/real-pods gets real-pods clusters (run the script in hack/pod-network.sh).
set -uo pipefail
molecule_dir="$(cd "$(dirname "$0")/../molecule" && pwd)"
istioctl="$(bash "$(dirname "$0")/build-binaries.sh" | tail -n 1)/istioctl"
failed=()
for scenario in "$@"; do
  state="$(mktemp -d)"
  started=$SECONDS
  clusters="$(cat "$molecule_dir/$scenario/clusters" 2>/dev/null || echo 1)"
  real_pods=()
  if [ -e "$molecule_dir/$scenario/real-pods" ]; then real_pods=(--real-pods); fi
  if (
    trap 'python -m localcluster down --state-dir "$state" >/dev/null; rm -rf "$state"' EXIT
    kubeconfigs="$(python -m localcluster up --state-dir "$state" --clusters "$clusters" "${real_pods[@]}")" || exit 1
    index=0
    while read -r kubeconfig; do
      index=$((index + 1))
      export "MESHOPS_KUBECONFIG_$index=$kubeconfig"
    done <<<"$kubeconfigs"
    # Molecule keeps a scenario's state (e.g. "prepared") across runs of the same checkout; each run has a new cluster.
    molecule reset --scenario-name "$scenario" >/dev/null 2>&1
    K8S_AUTH_KUBECONFIG="$MESHOPS_KUBECONFIG_1" MESHOPS_ISTIOCTL="$istioctl" molecule test --scenario-name "$scenario"
  ); then
    echo "molecule $scenario: passed in $((SECONDS - started)) s"
  else
    echo "molecule $scenario: FAILED after $((SECONDS - started)) s"
    failed+=("$scenario")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed molecule scenarios: ${failed[*]}"
  exit 1
fi
