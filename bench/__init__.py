"""Benchmarks of meshops.istio's playbooks against what users would run instead: `python -m bench` (see run.py) and
`python -m bench.profile` (profile.py). Figures only: nothing here is part of the test suite."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The local cluster tooling (tests/localcluster) and the collection, importable as ansible_collections.meshops.istio
# through the link `make venv` creates; both come from this checkout.
for _path in (str(REPO_ROOT / "tests"), str(REPO_ROOT / ".collections")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
