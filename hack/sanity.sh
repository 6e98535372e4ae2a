#!/usr/bin/env bash
# ansible-test wants the collection at .../ansible_collections/<namespace>/<name>: copy the tracked and
# not-ignored files there and run sanity. ansible-test keeps its own pinned tool venvs under ~/.ansible/test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree=$work/ansible_collections/meshops/istio
mkdir -p "$tree"
(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} find {} -maxdepth 0 -type f -print0 \
  | tar --null -T - -cf -) | tar -xf - -C "$tree"
cd "$tree"
python_version=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --color no --python "$python_version" --requirements "$@"
