#!/usr/bin/env bash
# Runs molecule scenarios, each against its own local cluster (stopped whatever happens); every scenario runs and
# the script fails if any failed. Usage: hack/molecule.sh SCENARIO...
set -uo pipefail
istioctl="$(bash "$(dirname "$0")/build-binaries.sh" | tail -n 1)/istioctl"
failed=()
for scenario in "$@"; do
  state="$(mktemp -d)"
  started=$SECONDS
  if (
    trap 'python -m localcluster down --state-dir "$state" >/dev/null; rm -rf "$state"' EXIT
    kubeconfig="$(python -m localcluster up --state-dir "$state")" || exit 1
    K8S_AUTH_KUBECONFIG="$kubeconfig" MESHOPS_ISTIOCTL="$istioctl" molecule test --scenario-name "$scenario"
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
