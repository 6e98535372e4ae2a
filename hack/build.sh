#!/usr/bin/env bash
# Builds the collection tarball into DIR (default: the repository root) and, beside it, the galaxy requirements file
# execution-environment.yml installs it with. ansible-builder create stops when that file is missing, so a build
# context is never made without the tarball. Prints the tarball's path.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(cd "${1:-$root}" && pwd)
version=$(sed -n 's/^version: *//p' "$root/galaxy.yml")
tarball=meshops-istio-$version.tar.gz
ansible-galaxy collection build --force --output-path "$out" "$root" >&2
cat >"$out/meshops-istio-$version.requirements.yml" <<YAML
---
# Written by hack/build.sh beside $tarball: execution-environment.yml installs the collection from it.
collections:
  - name: /build/collections/$tarball
    type: file
YAML
echo "$out/$tarball"
