#!/usr/bin/env bash
# Builds hack/xdsclient (the conformance tests' sidecar stand-in: CSR and xDS client) into a cache directory named
# after a hash of its sources, only when missing. Prints the binary's path on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$here/xdsclient
cache_root=${MESHOPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshops-istio}
digest=$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -c1-12)
bin_dir=$cache_root/bin/xdsclient-$digest

if [ ! -x "$bin_dir/xdsclient" ]; then
  export GOTOOLCHAIN=${GOTOOLCHAIN:-auto} CGO_ENABLED=0
  mkdir -p "$bin_dir"
  start=$SECONDS
  # -mod=readonly: go.sum is complete, so the build never rewrites files in the repository.
  (cd "$src" && go build -mod=readonly -trimpath -ldflags "-s -w" -o "$bin_dir/xdsclient.partial" .)
  mv "$bin_dir/xdsclient.partial" "$bin_dir/xdsclient"
  echo "built xdsclient in $((SECONDS - start)) s" >&2
fi
echo "$bin_dir/xdsclient"
