#!/usr/bin/env bash
# Builds the local cluster's binaries from upstream Go modules into a versioned cache directory, only when missing.
# Prints the directory holding the binaries on its last line.
set -euo pipefail
# shellcheck disable=SC1091  # the pinned versions, cache_root and the shared build steps, beside this script
source "$(cd "$(dirname "$0")" && pwd)/go-build.sh"
# shellcheck disable=SC2154  # cache_root and istio_rev come from go-build.sh
bin_dir="$cache_root/bin/k8s-$KUBERNETES_VERSION.istio-$istio_rev.kwok-$KWOK_VERSION.etcd-$ETCD_VERSION.r$BUILD_RECIPE"
# pilot-agent and Istio's echo server and client are the data plane of the real-pods tier (proxyless gRPC).
binaries=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok istioctl pilot-discovery pilot-agent
  echo-server echo-client)

# kwok's Exec and PortForward CRDs, from its module: the real-pods tier's kubelet serves exec and port-forward
# through kwok (tests/localcluster/kubelet.py).
kwok_crds=(kwok.x-k8s.io_execs.yaml kwok.x-k8s.io_portforwards.yaml)
# The Gateway API's standard CRDs, from the version of its module that the pinned Istio requires: the tests install
# them with istio_gateway's gateway_api_crds (the collection ships none). Its ValidatingAdmissionPolicy file is left.
gateway_api_marker=gateway-api-crds/gateway.networking.k8s.io_gateways.yaml

all_present() {
  local b
  for b in "${binaries[@]}"; do [ -x "$bin_dir/$b" ] || return 1; done
  for b in "${kwok_crds[@]}"; do [ -f "$bin_dir/kwok-crds/$b" ] || return 1; done
  [ -f "$bin_dir/$gateway_api_marker" ]
}

if all_present; then
  echo "$bin_dir"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin_dir.partial"
# Binaries a previous recipe of the same versions already built are kept; only the missing ones are built.
if [ -d "$bin_dir" ]; then cp -an "$bin_dir/." "$bin_dir.partial/"; fi
# Go's own output goes to a log (see hack/go-build.sh).
log=$cache_root/build.log
: >"$log"
echo "Building ${#binaries[@]} binaries of the local cluster into $bin_dir (first time: minutes of Go builds;" \
  "Go's output in $log)" >&2

build_etcd() {
  new_wrapper "$work/etcd" go.etcd.io/etcd/server/v3 "v$ETCD_VERSION"
  build "$work/etcd" etcd go.etcd.io/etcd/server/v3
}

build_kubernetes() {
  local dir=$work/kubernetes b
  kubernetes_wrapper "$dir"
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    build "$dir" "$b" "k8s.io/kubernetes/cmd/$b" "$(kubernetes_ldflags)"
  done
}

build_kwok() {
  new_wrapper "$work/kwok" sigs.k8s.io/kwok "v$KWOK_VERSION"
  build "$work/kwok" kwok sigs.k8s.io/kwok/cmd/kwok "-X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION"
  local module crd
  module=$(cd "$work/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  mkdir -p "$bin_dir.partial/kwok-crds"
  for crd in "${kwok_crds[@]}"; do cp "$module/kustomize/crd/bases/$crd" "$bin_dir.partial/kwok-crds/"; done
}

build_istio() {
  new_wrapper "$work/istio" istio.io/istio "$ISTIO_MODULE_VERSION"
  local pair
  for pair in $ISTIO_REPLACE; do
    echo "replace ${pair%%=*} => ${pair%%=*} ${pair#*=}" >>"$work/istio/go.mod"
  done
  local v=istio.io/istio/pkg/version
  local ldflags="-X $v.buildVersion=$ISTIO_VERSION -X $v.buildGitRevision=$istio_rev -X $v.buildStatus=Clean"
  ldflags+=" -X $v.buildTag=$ISTIO_VERSION -X $v.buildHub=registry.istio.io/release"
  build "$work/istio" istioctl istio.io/istio/istioctl/cmd/istioctl "$ldflags"
  build "$work/istio" pilot-discovery istio.io/istio/pilot/cmd/pilot-discovery "$ldflags"
  build "$work/istio" pilot-agent istio.io/istio/pilot/cmd/pilot-agent "$ldflags"
  build "$work/istio" echo-server istio.io/istio/pkg/test/echo/cmd/server "$ldflags"
  build "$work/istio" echo-client istio.io/istio/pkg/test/echo/cmd/client "$ldflags"
  copy_gateway_api_crds "$work/istio"
}

# copy_gateway_api_crds DIR: the standard CRDs of the sigs.k8s.io/gateway-api version the module in DIR requires.
copy_gateway_api_crds() {
  local module crd
  module=$(cd "$1" && go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)
  mkdir -p "$bin_dir.partial/gateway-api-crds"
  for crd in "$module"/config/crd/standard/gateway.networking.k8s.io_*.yaml; do
    case $crd in *_vap_*) continue ;; esac
    cp "$crd" "$bin_dir.partial/gateway-api-crds/"
  done
}

build_etcd
build_kwok
build_kubernetes
build_istio
rm -rf "$bin_dir"
mv "$bin_dir.partial" "$bin_dir"
echo "$bin_dir"
