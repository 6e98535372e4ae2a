# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running istioctl: its version, and offline rendering with `istioctl manifest generate` (never `install`)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import tempfile

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core; the import sanity test runs without it
    yaml = None

from .errors import Refusal

# A module first rehearses its whole plan as a dry run, then runs it: both passes render the same input.
_RENDERED: dict = {}
_VERSIONS: dict = {}


def istioctl_version(run_command, istioctl: str) -> str:
    """The Istio version an istioctl binary renders, e.g. 1.31.1. `run_command` is AnsibleModule.run_command."""
    if istioctl not in _VERSIONS:
        _VERSIONS[istioctl] = _run_version(run_command, istioctl)
    return _VERSIONS[istioctl]


def _run_version(run_command, istioctl: str) -> str:
    if shutil.which(istioctl) is None:
        raise Refusal(
            f"istioctl_path {istioctl!r} cannot be run: no executable file there or on PATH; "
            "point istioctl_path at an istioctl binary for the Istio version to install."
        )
    rc, out, err = run_command([istioctl, "version", "--remote=false", "--short"])
    if rc != 0:
        raise Refusal(
            f"istioctl_path {istioctl!r} cannot be run ({(err or out).strip() or f'exit code {rc}'}); "
            "point istioctl_path at an istioctl binary for the Istio version to install."
        )
    return out.strip().splitlines()[-1].removeprefix("client version:").strip()


def render(run_command, istioctl: str, operator_spec: dict) -> list:
    """The manifests `istioctl manifest generate` renders for an IstioOperator spec, offline (once per input in a
    module run; callers get their own copies)."""
    key = (istioctl, json.dumps(operator_spec, sort_keys=True))
    if key not in _RENDERED:
        _RENDERED[key] = _generate(run_command, istioctl, operator_spec)
    return copy.deepcopy(_RENDERED[key])


def _generate(run_command, istioctl: str, operator_spec: dict) -> list:
    document = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": operator_spec}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="meshops-iop-", delete=False) as handle:
        yaml.safe_dump(document, handle)
    try:
        rc, out, err = run_command([istioctl, "manifest", "generate", "-f", handle.name])
    finally:
        os.unlink(handle.name)
    if rc != 0:
        raise Refusal(f"istioctl manifest generate failed: {err.strip() or out.strip()}")
    # About 1 MB of YAML (mostly CRD schemas): libyaml's loader parses it in a tenth of the pure-Python one's time.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(out, Loader=loader) if doc]


def version_key(version: str) -> tuple:
    """Orders Istio versions: 1.30.2 < 1.31-dev < 1.31.0 < 1.31.1 (a pre-release sorts before its release)."""
    release, prerelease = (version.removeprefix("v").split("-", 1) + [""])[:2]
    numbers = tuple(int(n) for n in re.findall(r"\d+", release))[:3]
    return numbers + (0,) * (3 - len(numbers)), 0 if prerelease else 1
