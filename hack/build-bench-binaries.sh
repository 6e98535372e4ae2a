#!/usr/bin/env bash
# Builds the benchmark's baseline tools, kubectl (of the pinned Kubernetes) and helm, from their Go modules into a
# versioned cache directory of their own, only when missing. Only bench/ needs them: the tests never build them.
# Prints the directory holding the binaries on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091  # sourced at run time from beside this script
source "$here/versions.env"
# shellcheck disable=SC1091  # the shared build steps, beside this script
source "$here/go-build.sh"

bin_dir="$cache_root/bench-bin/k8s-$KUBERNETES_VERSION.helm-$HELM_VERSION.r$BUILD_RECIPE"
binaries=(kubectl helm)

all_present() {
  local b
  for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done
}

if all_present; then
  echo "$bin_dir"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin_dir.partial"
: >"$log"
echo "Building the benchmark's kubectl and helm into $bin_dir (first time: minutes; Go's output in $log)" >&2

kubernetes_wrapper "$work/kubernetes"
build "$work/kubernetes" kubectl k8s.io/kubernetes/cmd/kubectl "$kubernetes_ldflags"
new_wrapper "$work/helm" helm.sh/helm/v4 "v$HELM_VERSION"
build "$work/helm" helm helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION"
rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
echo "$bin_dir"
