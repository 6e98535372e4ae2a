"""Benchmarks of meshops.istio's playbooks against what users would run instead: `python -m bench` (see run.py).
Figures only: nothing here is part of the test suite."""
