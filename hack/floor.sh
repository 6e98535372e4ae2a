#!/usr/bin/env bash
# The oldest supported pair, ansible-core 2.17 on Python 3.10 (meta/runtime.yml, tests/config.yml): the unit tests
# under that Python, then the AWX-credential integration path (multitenant, verify, upgrade and uninstall on a local
# cluster) with that pair's ansible-playbook. The venv is .venv-floor, from requirements-floor.txt.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.venv-floor
python=${FLOOR_PYTHON:-}
for candidate in python3.10 /root/.pyenv/versions/3.10*/bin/python3.10; do
  [ -n "$python" ] && break
  if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
    python=$(command -v "$candidate")
  fi
done
if [ -z "$python" ]; then
  echo "No Python 3.10 found: install one or pass FLOOR_PYTHON=/path/to/python3.10" >&2
  exit 1
fi
if [ ! -f "$venv/.installed" ] || [ "$root/requirements-floor.txt" -nt "$venv/.installed" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet -r "$root/requirements-floor.txt"
  touch "$venv/.installed"
fi

# The collections the floor runs with: this clone, and kubernetes.core and ansible.posix (the json callback) from
# the dev venv's ansible package; they are YAML and pure Python, the same for every Python.
collections=$venv/collections/ansible_collections
mkdir -p "$collections/meshops" "$collections/kubernetes" "$collections/ansible"
ln -sfn "$root" "$collections/meshops/istio"
for name in kubernetes.core ansible.posix; do
  path=$(python -c "import ansible_collections.$name as m; print(list(m.__path__)[0])")
  ln -sfn "$path" "$collections/${name%%.*}/${name#*.}"
done

cd "$root"
echo "floor: unit tests on $("$venv/bin/python" --version), ansible-core $("$venv/bin/python" -c \
  'from ansible.release import __version__; print(__version__)')"
PYTHONPATH="$root/tests:$venv/collections" "$venv/bin/python" -m pytest tests/unit -q -p no:cacheprovider \
  -o pythonpath= -o addopts=-ra
echo "floor: the AWX-credential playbook path with $venv/bin/ansible-playbook"
MESHOPS_ANSIBLE_BIN=$venv/bin MESHOPS_COLLECTIONS_PATH=$venv/collections \
  pytest tests/integration/test_awx_credential.py "$@"
