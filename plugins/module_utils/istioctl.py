# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running istioctl: its version, and offline rendering with `istioctl manifest generate` (never `install`)."""

from __future__ import annotations

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
from .render_cache import RenderCache, binary_digest

# A module first rehearses its whole plan as a dry run, then runs it: both passes render the same input.
_RENDERED: dict = {}
_VERSIONS: dict = {}
_DIGESTS: dict = {}


def istioctl_version(run_command, istioctl: str, cache_dir: str | None = None) -> str:
    """The Istio version an istioctl binary renders, e.g. 1.31.1. `run_command` is AnsibleModule.run_command.
    With `cache_dir`, kept in the render cache under the binary's digest (render_cache.py)."""
    if istioctl not in _VERSIONS:
        _VERSIONS[istioctl] = _cached(cache_dir, istioctl, "version", None, lambda: _run_version(run_command, istioctl))
    return _VERSIONS[istioctl]


class CannotRun(Refusal):
    """istioctl_path cannot be run; `reason` says why (no such file, or what the binary printed)."""

    def __init__(self, istioctl: str, reason: str):
        super().__init__(
            f"istioctl_path {istioctl!r} cannot be run ({reason}); "
            "point istioctl_path at an istioctl binary for the Istio version to install."
        )
        self.reason = reason


def _executable(istioctl: str) -> str:
    found = shutil.which(istioctl)
    if found is None:
        raise CannotRun(istioctl, "no executable file there or on PATH")
    return found


def _cached(cache_dir: str | None, istioctl: str, what: str, render_input, produce):
    """`produce()`, or what the render cache in `cache_dir` holds for this binary, `what` and `render_input`."""
    if cache_dir is None:
        return produce()
    cache = RenderCache(cache_dir, _binary_digest(_executable(istioctl), cache_dir))
    value = cache.load(what, render_input)
    if value is None:
        value = produce()
        cache.store(what, render_input, value)
    return value


def _binary_digest(path: str, cache_dir: str) -> str:
    if path not in _DIGESTS:
        _DIGESTS[path] = binary_digest(path, cache_dir)
    return _DIGESTS[path]


def _run_version(run_command, istioctl: str) -> str:
    _executable(istioctl)
    rc, out, err = run_command([istioctl, "version", "--remote=false", "--short"])
    if rc != 0:
        raise CannotRun(istioctl, (err or out).strip() or f"exit code {rc}")
    return out.strip().splitlines()[-1].removeprefix("client version:").strip()


def render(run_command, istioctl: str, operator_spec: dict, cache_dir: str | None = None) -> list:
    """The manifests `istioctl manifest generate` renders for an IstioOperator spec, offline (once per input in a
    module run; callers get their own copies). With `cache_dir`, once per input and binary on this host
    (render_cache.py)."""
    key = (istioctl, json.dumps(operator_spec, sort_keys=True))
    if key not in _RENDERED:
        rendered = _cached(
            cache_dir, istioctl, "manifest generate", operator_spec,
            lambda: _generate(run_command, istioctl, operator_spec),
        )  # fmt: skip
        # Kept as JSON, which is what the API server is sent anyway: parsing it again is a tenth of a deep copy.
        _RENDERED[key] = json.dumps(rendered)
    return json.loads(_RENDERED[key])


def _generate(run_command, istioctl: str, operator_spec: dict) -> list:
    document = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": operator_spec}
    # JSON, which istioctl reads as YAML: every string quoted, so a value like `y` or `n` (a bool to istioctl's
    # YAML 1.1 parser, a string to PyYAML, which leaves it unquoted) stays a string.
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="meshops-iop-", delete=False) as handle:
        json.dump(document, handle)
    try:
        rc, out, err = run_command([istioctl, "manifest", "generate", "-f", handle.name])
    finally:
        os.unlink(handle.name)
    if rc != 0:
        raise Refusal(failure_sentence(err.strip() or out.strip(), lambda spec: _probe(run_command, istioctl, spec),
                                       operator_spec))  # fmt: skip
    # About 1 MB of YAML (mostly CRD schemas): libyaml's loader parses it in a tenth of the pure-Python one's time.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return [doc for doc in yaml.load_all(out, Loader=loader) if doc]


# The module option each part of the IstioOperator spec comes from.
_OPTIONS = {"values": "values", "meshConfig": "mesh_config"}
# A wrong type in a long values tree costs one quick istioctl run per key tried along the way; stop somewhere.
_MAX_PROBES = 40
_GO_TYPES = (("map[", "a mapping"), ("struct", "a mapping"), ("[]", "a list"), ("string", "a string"),
             ("bool", "true or false"), ("int", "a number"), ("float", "a number"))  # fmt: skip


def _probe(run_command, istioctl: str, operator_spec: dict) -> str | None:
    """istioctl's error for an IstioOperator spec rendered with the empty profile (fast: nothing to render), or
    None when it reads the spec."""
    document = {"apiVersion": "install.istio.io/v1alpha1", "kind": "IstioOperator", "spec": operator_spec}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="meshops-iop-", delete=False) as handle:
        yaml.safe_dump(document, handle)
    try:
        rc, out, err = run_command([istioctl, "manifest", "generate", "-f", handle.name])
    finally:
        os.unlink(handle.name)
    return (err.strip() or out.strip() or "failed") if rc != 0 else None


def failure_sentence(error: str, probe, operator_spec: dict) -> str:
    """One sentence for a failed `istioctl manifest generate`: the key of values or mesh_config with a type
    istioctl cannot read (found by `probe`, which renders a part of the spec), never a Go error or stack trace."""
    if "unmarshal" in error or "looking for beginning of value" in error:
        found = wrong_type(probe, operator_spec)
        if found:
            path, value, detail = found
            return (
                f"{path} is {value!r}, which istioctl cannot read: it expects {_expected(detail)} there; "
                f"fix the type of {path}"
            )
        return (
            "istioctl could not read values or mesh_config: a key holds a value of the wrong type (a string where a "
            "mapping or number is expected, or the reverse); check the types in values and mesh_config"
        )
    first = next((line.strip() for line in error.splitlines() if line.strip()), "no output")
    if first.startswith("panic:") or "goroutine " in error:
        return (
            f"istioctl manifest generate crashed ({first.removeprefix('panic:').strip()}); check that name, "
            "revision_tags, values and mesh_config hold no value YAML reads as a number (inf, nan, 1e3)"
        )
    return f"istioctl manifest generate failed: {first.removeprefix('Error:').strip()}"


def wrong_type(probe, operator_spec: dict) -> tuple | None:
    """(option path, value, istioctl's error) of the first key in values or mesh_config istioctl cannot read,
    descending only into the parts that fail on their own."""
    budget = [_MAX_PROBES]
    for key, option in _OPTIONS.items():
        tree = operator_spec.get(key)
        if isinstance(tree, dict):
            found = _bad_leaf(probe, key, [], tree, budget)
            if found:
                path, value, error = found
                return ".".join([option, *path]), value, error
    return None


def _bad_leaf(probe, key: str, path: list, tree: dict, budget: list) -> tuple | None:
    for name, value in tree.items():
        if budget[0] <= 0:
            return None
        budget[0] -= 1
        nested = value
        for part in reversed([*path, name]):
            nested = {part: nested}
        error = probe({"profile": "empty", key: nested})
        if error is None:
            continue
        if isinstance(value, dict) and value:
            return _bad_leaf(probe, key, [*path, name], value, budget) or ([*path, name], value, error)
        return [*path, name], value, error
    return None


def _expected(error: str) -> str:
    """What a Go JSON decoding error says the field takes, in words."""
    match = re.search(r"into Go (?:value|struct field) of type (\S+)", error)
    if match:
        go_type = match.group(1)
        return next((words for prefix, words in _GO_TYPES if prefix in go_type), "another type")
    if "looking for beginning of value" in error:
        return "a number or true/false, not text"
    return "another type"


def version_key(version: str) -> tuple:
    """Orders Istio versions: 1.30.2 < 1.31-dev < 1.31.0 < 1.31.1 (a pre-release sorts before its release)."""
    release, prerelease = (version.removeprefix("v").split("-", 1) + [""])[:2]
    numbers = tuple(int(n) for n in re.findall(r"\d+", release))[:3]
    return numbers + (0,) * (3 - len(numbers)), 0 if prerelease else 1
