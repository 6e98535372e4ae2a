"""Stand-in for PyPA's get-pip.py, which ansible-test downloads from a host our machines cannot reach.

ansible-test runs it in an empty venv as `python get_pip_X_Y.py [pip install options] pip==X.Y`; this runs
`pip install` with those arguments, importing pip from the pip wheel that hack/sanity.sh put beside it."""

import glob
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, sorted(glob.glob(os.path.join(here, "pip-*.whl")))[-1])

from pip._internal.cli.main import main  # noqa: E402  (importable only once the wheel is on sys.path)

# get-pip.py's own switches, which pip install does not know.
arguments = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", *arguments]))
