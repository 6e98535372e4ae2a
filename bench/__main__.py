"""python -m bench, from the repository root."""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# The local cluster tooling (tests/localcluster) and the collection, importable as ansible_collections.meshops.istio
# through the link `make venv` creates; both come from this checkout.
sys.path[:0] = [str(REPO_ROOT / "tests"), str(REPO_ROOT / ".collections")]

from bench.run import main  # noqa: E402

sys.exit(main())
