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
# Our dependency, beside us in the same collection root, as ansible-test's import and docs tests need it.
kubernetes_core=$(python -c 'import ansible_collections.kubernetes.core as m; print(list(m.__path__)[0])')
mkdir -p "$work/ansible_collections/kubernetes"
cp -r "$kubernetes_core" "$work/ansible_collections/kubernetes/core"

# ansible-test bootstraps pip into its venvs with a script it downloads from a host we cannot reach: give it
# our stand-in and the pip wheel (from the package index) it installs from.
pip_version=$(python -c 'import inspect, re, ansible_test._internal.python_requirements as m
print(re.search(r"pip=.([0-9.]+)", inspect.getsource(m.get_venv_packages)).group(1))')
cache=$HOME/.ansible/test/cache
mkdir -p "$cache"
if [ ! -f "$cache/get_pip_${pip_version//./_}.py" ]; then
  python -m pip download --quiet --no-deps --only-binary :all: -d "$cache" "pip==$pip_version"
  cp "$root/hack/get_pip_standin.py" "$cache/get_pip_${pip_version//./_}.py"
fi

cd "$tree"
python_version=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
ansible-test sanity --color no --python "$python_version" --requirements "$@"
