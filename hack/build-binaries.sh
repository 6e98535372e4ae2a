#!/usr/bin/env bash
# Builds the local cluster's binaries from upstream Go modules into a versioned cache directory, only when missing.
# Prints the directory holding the binaries on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC1091  # sourced at run time from beside this script
source "$here/versions.env"

cache_root=${MESHOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshops-istio}
istio_rev=${ISTIO_MODULE_VERSION##*-}
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

export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-auto} CGO_ENABLED=0
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin_dir.partial"
# Binaries a previous recipe of the same versions already built are kept; only the missing ones are built.
if [ -d "$bin_dir" ]; then cp -an "$bin_dir/." "$bin_dir.partial/"; fi
# Go's own output (hundreds of "go: downloading" lines) goes to a log; the terminal gets one line per step.
log=$cache_root/build.log
: >"$log"
step=0
echo "Building ${#binaries[@]} binaries of the local cluster into $bin_dir (first time: minutes of Go builds;" \
  "Go's output in $log)" >&2

# go_quietly DIR ARGS...: run go in DIR with its output in the log; on failure show the log's end.
go_quietly() {
  local dir=$1
  shift
  if ! (cd "$dir" && go "$@") >>"$log" 2>&1; then
    echo "go $1 failed in $dir; the end of $log:" >&2
    tail -n 40 "$log" >&2
    return 1
  fi
}

# new_wrapper DIR REQUIRED_MODULE VERSION: a throwaway main module that requires one upstream module.
new_wrapper() {
  mkdir -p "$1"
  printf 'module meshops.local/build\n\ngo 1.26\n\nrequire %s %s\n' "$2" "$3" >"$1/go.mod"
}

build() {  # build DIR OUTPUT PACKAGE [LDFLAGS]; a binary left by an interrupted run is kept
  local start=$SECONDS
  step=$((step + 1))
  if [ -x "$bin_dir.partial/$2" ]; then
    echo "[$step/${#binaries[@]}] $2: kept from an interrupted build" >&2
    return 0
  fi
  echo "[$step/${#binaries[@]}] $2: building $3 ..." >&2
  go_quietly "$1" build -trimpath -ldflags "-s -w ${4:-}" -o "$bin_dir.partial/$2" "$3"
  echo "[$step/${#binaries[@]}] $2: built in $((SECONDS - start)) s" >&2
}

build_etcd() {
  new_wrapper "$work/etcd" go.etcd.io/etcd/server/v3 "v$ETCD_VERSION"
  build "$work/etcd" etcd go.etcd.io/etcd/server/v3
}

build_kubernetes() {
  local dir=$work/kubernetes minor=${KUBERNETES_VERSION#*.}
  minor=${minor%%.*}
  new_wrapper "$dir" k8s.io/kubernetes "v$KUBERNETES_VERSION"
  # k8s.io/kubernetes points its staging modules at ./staging; point them at their published v0.X.Y instead.
  echo "[$((step + 1))/${#binaries[@]}] downloading k8s.io/kubernetes v$KUBERNETES_VERSION ..." >&2
  go_quietly "$dir" mod download "k8s.io/kubernetes@v$KUBERNETES_VERSION"
  local gomod
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod" | sort -u | while read -r m; do
    echo "replace $m => $m v0.${KUBERNETES_VERSION#*.}" >>"$dir/go.mod"
  done
  local ldflags="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for b in kube-apiserver kube-controller-manager kube-scheduler; do
    build "$dir" "$b" "k8s.io/kubernetes/cmd/$b" "$ldflags"
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
