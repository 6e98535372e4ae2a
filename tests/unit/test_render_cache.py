"""The render cache of istio_revision (render_cache.py through istioctl.render and istioctl_version): one rendering per
binary and input on a host, a miss for another binary, another input or a damaged entry, never a secret stored."""

import concurrent.futures
import json
import os
import stat

import pytest
from ansible_collections.meshops.istio.plugins.module_utils import istioctl, render_cache
from ansible_collections.meshops.istio.plugins.module_utils.render_cache import RenderCache, default_directory

RENDERED = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio-x, namespace: x}\ndata: {mesh: 'a: 1'}\n"


class CountingIstioctl:
    """run_command of an istioctl that answers `version` and `manifest generate`, counting its runs."""

    def __init__(self, rendered=RENDERED):
        self.runs = []
        self.rendered = rendered

    def __call__(self, command):
        self.runs.append(command[1])
        return (0, "1.31.0\n", "") if command[1] == "version" else (0, self.rendered, "")


@pytest.fixture
def binary(tmp_path):
    path = tmp_path / "bin" / "istioctl"
    path.parent.mkdir()
    path.write_bytes(b"istioctl build 1")
    path.chmod(0o755)
    return path


def forget_this_process():
    """What the next module run, a new process, would not remember."""
    for memo in (istioctl._RENDERED, istioctl._VERSIONS, istioctl._DIGESTS):
        memo.clear()


@pytest.fixture(autouse=True)
def new_process():
    yield
    forget_this_process()


def render(run_command, binary, cache_dir, spec=None) -> list:
    """One module run's version and rendering, in a new process."""
    forget_this_process()
    version = istioctl.istioctl_version(run_command, str(binary), str(cache_dir))
    assert version == "1.31.0"
    return istioctl.render(run_command, str(binary), spec or {"revision": "a", "values": {}}, str(cache_dir))


def test_a_second_run_with_the_same_input_starts_no_istioctl(binary, tmp_path):
    run_command = CountingIstioctl()
    first = render(run_command, binary, tmp_path / "cache")
    assert run_command.runs == ["version", "manifest"]
    second = render(run_command, binary, tmp_path / "cache")
    assert run_command.runs == ["version", "manifest"]
    assert second == first and second[0]["metadata"]["name"] == "istio-x"


def test_another_input_renders_again(binary, tmp_path):
    run_command = CountingIstioctl()
    render(run_command, binary, tmp_path / "cache", {"revision": "a", "values": {"pilot": {"env": {"A": "1"}}}})
    render(run_command, binary, tmp_path / "cache", {"revision": "a", "values": {"pilot": {"env": {"A": "2"}}}})
    assert run_command.runs.count("manifest") == 2


def test_another_istioctl_binary_renders_again_and_asks_its_version(binary, tmp_path):
    run_command = CountingIstioctl()
    render(run_command, binary, tmp_path / "cache")
    binary.write_bytes(b"istioctl build 2")  # same path, same size, other content
    render(run_command, binary, tmp_path / "cache")
    assert run_command.runs == ["version", "manifest", "version", "manifest"]


def test_a_damaged_entry_is_a_miss_and_is_written_again(binary, tmp_path):
    run_command = CountingIstioctl()
    cache_dir = tmp_path / "cache"
    render(run_command, binary, cache_dir)
    entries = sorted(cache_dir.glob("*.json"))
    assert len(entries) == 3  # the binary's digest, its version and the rendering
    for entry in entries:
        entry.write_text(entry.read_text()[:20])
    again = render(run_command, binary, cache_dir)
    assert run_command.runs == ["version", "manifest"] * 2
    assert again[0]["kind"] == "ConfigMap"
    assert all(json.loads(entry.read_text())["value"] for entry in entries)


def test_the_binary_is_hashed_once_per_version_of_the_file(binary, tmp_path, monkeypatch):
    hashed = []
    real = render_cache.file_digest
    monkeypatch.setattr(render_cache, "file_digest", lambda path: hashed.append(path) or real(path))
    render(CountingIstioctl(), binary, tmp_path / "cache")
    render(CountingIstioctl(), binary, tmp_path / "cache")
    assert hashed == [str(binary)]
    binary.write_bytes(b"istioctl build 2")
    render(CountingIstioctl(), binary, tmp_path / "cache")
    assert hashed == [str(binary)] * 2


def test_an_entry_under_another_key_is_a_miss(binary, tmp_path):
    cache = RenderCache(str(tmp_path / "cache"), "digest")
    assert cache.store("manifest generate", {"revision": "a"}, [{"kind": "ConfigMap"}])
    (entry,) = (tmp_path / "cache").glob("*.json")
    other = cache.key("manifest generate", {"revision": "b"})
    entry.rename(entry.with_name(f"{other}.json"))
    assert cache.load("manifest generate", {"revision": "b"}) is None


@pytest.mark.parametrize(
    "rendered",
    [
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {key: c2VjcmV0}\n",
        # A PEM header alone, assembled so that no file here looks like it holds a key.
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {key: '-----BEGIN " + "PRIVATE KEY-----'}\n",
    ],
)
def test_a_rendering_with_a_secret_is_never_stored(binary, tmp_path, rendered):
    run_command = CountingIstioctl(rendered)
    render(run_command, binary, tmp_path / "cache")
    render(run_command, binary, tmp_path / "cache")
    assert run_command.runs.count("manifest") == 2
    stored = {json.loads(entry.read_text())["value"] for entry in (tmp_path / "cache").glob("*.json")}
    assert stored == {"1.31.0", render_cache.file_digest(str(binary))}  # the version and the binary's digest


def test_the_directory_is_private_and_no_temporary_file_stays(binary, tmp_path):
    render(CountingIstioctl(), binary, tmp_path / "cache")
    assert stat.S_IMODE(os.stat(tmp_path / "cache").st_mode) == 0o700
    assert sorted(p.suffix for p in (tmp_path / "cache").iterdir()) == [".json"] * 3


def test_concurrent_writers_of_one_entry_leave_a_whole_entry(tmp_path):
    cache = RenderCache(str(tmp_path / "cache"), "digest")
    value = [{"kind": "ConfigMap", "metadata": {"name": f"cm-{index}"}} for index in range(2000)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(lambda index: cache.store("manifest generate", {"r": 1}, value), range(16)))
        loaded = list(pool.map(lambda index: cache.load("manifest generate", {"r": 1}), range(16)))
    assert all(stored)
    assert all(entry in (None, value) for entry in loaded) and loaded[-1] == value
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")] == []


def test_the_default_directory_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_directory() == str(tmp_path / "meshops-istio" / "render")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_directory() == os.path.expanduser("~/.cache/meshops-istio/render")


def test_without_a_cache_directory_every_run_renders(binary):
    run_command = CountingIstioctl()
    istioctl.render(run_command, str(binary), {"revision": "a"})
    forget_this_process()
    istioctl.render(run_command, str(binary), {"revision": "a"})
    assert run_command.runs == ["manifest", "manifest"]
