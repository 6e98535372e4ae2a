"""What a result was measured with: pinned versions, the collection, the tools, and the machine."""

import json
import os
import platform
import subprocess
from pathlib import Path

import yaml
from ansible.release import __version__ as ansible_core_version
from ansible_collections.kubernetes import core as kubernetes_core
from localcluster.cluster import REPO_ROOT

VERSIONS_FILE = REPO_ROOT / "hack" / "versions.env"


def pinned_versions(text: str) -> dict:
    """KEY=value lines of hack/versions.env that name a version (comments and build settings left out)."""
    versions = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#") and key.endswith("_VERSION"):
            versions[key] = value.strip().strip('"')
    return versions


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def _collection_version(path: Path) -> str:
    return yaml.safe_load(path.read_text())["version"]


def _kubernetes_core_version() -> str:
    manifest = Path(list(kubernetes_core.__path__)[0]) / "MANIFEST.json"
    return json.loads(manifest.read_text())["collection_info"]["version"]


def _output(argv: list) -> str:
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.strip()


def _git_commit() -> str:
    try:
        commit, dirty = _output(["git", "rev-parse", "--short", "HEAD"]), _output(["git", "status", "--porcelain"])
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        return "unknown"
    return commit + (" (uncommitted changes)" if dirty else "")


def _istioctl_version(istioctl: Path) -> str:
    return _output([str(istioctl), "version", "--remote=false", "--short"]).removeprefix("client version:").strip()


def collect(istioctl: Path) -> dict:
    return {
        "versions": {
            **pinned_versions(VERSIONS_FILE.read_text()),
            "istioctl": _istioctl_version(istioctl),
            "meshops.istio": _collection_version(REPO_ROOT / "galaxy.yml"),
            "kubernetes.core": _kubernetes_core_version(),
            "ansible-core": ansible_core_version,
            "python": platform.python_version(),
            "commit": _git_commit(),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "memory_gib": _memory_gib(),
            "kernel": platform.release(),
        },
    }


def load_average() -> list:
    return [round(value, 2) for value in os.getloadavg()]
