"""The lookup meshops.istio.istioctl_version (the istioctl role's version check): istioctl runs once per binary on a
host, a rewritten binary is asked again, and a binary that cannot be run is a problem named, never an exception."""

from pathlib import Path

from ansible_collections.meshops.istio.plugins.lookup.istioctl_version import answer
from ansible_collections.meshops.istio.plugins.module_utils import istioctl


def fake_istioctl(path: Path, version: str, exit_code: int = 0) -> Path:
    """An executable that logs each run next to itself and answers like `istioctl version --short`."""
    path.write_text(
        f"#!/bin/sh\necho run >> {path}.runs\n"
        + (f"echo 'client version: {version}'\n" if exit_code == 0 else f"echo '{version}' >&2\n")
        + f"exit {exit_code}\n"
    )
    path.chmod(0o755)
    return path


def runs(binary: Path) -> int:
    log = Path(f"{binary}.runs")
    return len(log.read_text().splitlines()) if log.exists() else 0


def ask(binary, cache_dir):
    """One playbook run's answer: a new process remembers nothing but the cache on disk."""
    for memo in (istioctl._VERSIONS, istioctl._DIGESTS):
        memo.clear()
    return answer(str(binary), cache_dir and str(cache_dir))


def test_the_version_is_read_once_per_binary(tmp_path):
    binary = fake_istioctl(tmp_path / "istioctl", "1.31.0")
    cache = tmp_path / "cache"
    assert ask(binary, cache) == {"version": "1.31.0", "problem": ""}
    assert ask(binary, cache) == {"version": "1.31.0", "problem": ""}
    assert runs(binary) == 1


def test_a_rewritten_binary_is_asked_again(tmp_path):
    binary = fake_istioctl(tmp_path / "istioctl", "1.31.0")
    cache = tmp_path / "cache"
    ask(binary, cache)
    fake_istioctl(binary, "1.32.0")
    assert ask(binary, cache)["version"] == "1.32.0"
    assert runs(binary) == 2


def test_without_the_cache_istioctl_runs_every_time(tmp_path):
    binary = fake_istioctl(tmp_path / "istioctl", "1.31.0")
    for _run in range(2):
        assert ask(binary, None)["version"] == "1.31.0"
    assert runs(binary) == 2


def test_a_missing_binary_is_a_problem_named(tmp_path):
    answer = ask(tmp_path / "nowhere" / "istioctl", tmp_path / "cache")
    assert answer == {"version": "", "problem": "no executable file there or on PATH"}


def test_a_failing_binary_says_what_it_printed_and_is_not_cached(tmp_path):
    binary = fake_istioctl(tmp_path / "istioctl", "cannot start", exit_code=3)
    cache = tmp_path / "cache"
    for _run in range(2):
        assert ask(binary, cache) == {"version": "", "problem": "cannot start"}
    assert runs(binary) == 2
