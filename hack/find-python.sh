#!/usr/bin/env bash
# Prints the first Python >= 3.12 that actually runs (pyenv shims may exist for versions that are not active).
for candidate in python3.12 python3.13 python3 /root/.pyenv/versions/3.12*/bin/python3 /root/.pyenv/versions/3.13*/bin/python3; do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
    command -v "$candidate"
    exit 0
  fi
done
echo "No Python 3.12+ found: install one or pass PYTHON=/path/to/python3.12" >&2
exit 1
