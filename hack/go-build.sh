#!/usr/bin/env bash
# Sourced by hack/build-binaries.sh and hack/build-bench-binaries.sh: the pinned versions (hack/versions.env), the
# cache root and istio_rev, and the steps that build binaries from upstream Go modules, each in a throwaway main
# module, into "$bin_dir.partial". The sourcing script sets bin_dir, binaries (the names it builds, for the progress
# lines) and log (where Go's own output goes: hundreds of "go: downloading" lines; the terminal gets one line per step).
# shellcheck disable=SC2154  # bin_dir, binaries and log are the sourcing script's

# shellcheck disable=SC1091  # beside this file
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/versions.env"
# shellcheck disable=SC2034  # cache_root and istio_rev are for the sourcing scripts
cache_root=${MESHOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshops-istio}
# shellcheck disable=SC2034
istio_rev=${ISTIO_MODULE_VERSION##*-}

export GOFLAGS=-mod=mod GOTOOLCHAIN=${GOTOOLCHAIN:-auto} CGO_ENABLED=0
step=0

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

# kubernetes_wrapper DIR: a wrapper requiring k8s.io/kubernetes at the pinned version.
kubernetes_wrapper() {
  local dir=$1 gomod
  new_wrapper "$dir" k8s.io/kubernetes "v$KUBERNETES_VERSION"
  # k8s.io/kubernetes points its staging modules at ./staging; point them at their published v0.X.Y instead.
  echo "[$((step + 1))/${#binaries[@]}] downloading k8s.io/kubernetes v$KUBERNETES_VERSION ..." >&2
  go_quietly "$dir" mod download "k8s.io/kubernetes@v$KUBERNETES_VERSION"
  gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$KUBERNETES_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod" | sort -u | while read -r m; do
    echo "replace $m => $m v0.${KUBERNETES_VERSION#*.}" >>"$dir/go.mod"
  done
}

# kubernetes_ldflags: the linker flags that make a Kubernetes binary report the pinned version.
kubernetes_ldflags() {
  local minor=${KUBERNETES_VERSION#*.} pkg flags=""
  minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=v$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
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
