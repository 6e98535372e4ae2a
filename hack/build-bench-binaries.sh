#!/usr/bin/env bash
# Builds the benchmark's baseline tools, kubectl (of the pinned Kubernetes) and helm, from their Go modules into a
# versioned cache directory of their own, with Istio's base and istiod charts copied from the pinned Istio module,
# only when missing. Only bench/ needs them: the tests never build them. Prints the directory on its last line.
set -euo pipefail
# shellcheck disable=SC1091  # the pinned versions, cache_root and the shared build steps, beside this script
source "$(cd "$(dirname "$0")" && pwd)/go-build.sh"
# shellcheck disable=SC2154  # cache_root and istio_rev come from go-build.sh
bin_dir="$cache_root/bench-bin/k8s-$KUBERNETES_VERSION.helm-$HELM_VERSION.istio-$istio_rev.r$BUILD_RECIPE"
binaries=(kubectl helm)
log=$cache_root/bench-build.log
# Baseline D's charts: (name in the cache, path under the Istio module's manifests/charts).
charts=(base:base istiod:istio-control/istio-discovery)

all_present() {
  local b c
  for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done
  for c in "${charts[@]}"; do [ -f "$bin_dir/istio-charts/${c%%:*}/Chart.yaml" ] || return 1; done
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

if [ ! -x "$bin_dir.partial/kubectl" ]; then kubernetes_wrapper "$work/kubernetes"; fi
build "$work/kubernetes" kubectl k8s.io/kubernetes/cmd/kubectl "$(kubernetes_ldflags)"
new_wrapper "$work/helm" helm.sh/helm/v4 "v$HELM_VERSION"
build "$work/helm" helm helm.sh/helm/v4/cmd/helm "-X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION"

istio=$(cd "$work" && go mod download -json "istio.io/istio@$ISTIO_MODULE_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
rm -rf "$bin_dir.partial/istio-charts"
mkdir -p "$bin_dir.partial/istio-charts"
for chart in "${charts[@]}"; do cp -r "$istio/manifests/charts/${chart#*:}" "$bin_dir.partial/istio-charts/${chart%%:*}"; done
chmod -R u+w "$bin_dir.partial/istio-charts"  # the module cache's files are read-only
rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
echo "$bin_dir"
