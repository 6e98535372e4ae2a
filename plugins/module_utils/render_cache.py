# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cache of istioctl's renderings on the host that runs istio_revision (the controller), so a re-run renders only
what changed: `istioctl manifest generate` takes about a second per revision, reading a cached rendering a few
milliseconds.

An entry is keyed by the sha256 of the istioctl binary's content (binary_digest) and of the whole render input
(the IstioOperator spec: profile, revision, values, meshConfig), so another binary or any other input is a miss.
Entries are written atomically (a temporary file in the same directory, then a rename), so concurrent runs never
read half an entry; an entry that cannot be read or does not hold what its key says is a miss and is written again.
A rendering that holds a Secret or a private key is never stored. The directory is readable by its owner only."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile

# Bump when what an entry holds changes shape.
_FORMAT = 1
_CHUNK = 1 << 20
# What must never be written to the cache, in any object of a rendering.
_SECRET_MARKERS = ("PRIVATE KEY-----",)


def default_directory() -> str:
    """$XDG_CACHE_HOME/meshops-istio/render, else ~/.cache/meshops-istio/render."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "meshops-istio", "render")


def binary_digest(path: str, directory: str) -> str:
    """The sha256 of a binary's content. Hashing 100 MB of istioctl takes most of a second, so the digest is kept
    in the cache `directory` too, under the file's path and stat (device, inode, size, mtime and ctime: any write
    to the file or replacement of it changes them): computed once per version of the file."""
    path = os.path.realpath(path)
    stat = os.stat(path)
    version = [path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
    digests = RenderCache(directory, "")
    digest = digests.load("binary digest", version)
    if digest is None:
        digest = file_digest(path)
        digests.store("binary digest", version, digest)
    return digest


def file_digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


class RenderCache:
    """The entries of one directory, for one istioctl binary (`binary_digest`)."""

    def __init__(self, directory: str, binary_digest: str):
        self.directory = directory
        self.binary_digest = binary_digest

    def key(self, what: str, render_input) -> str:
        text = json.dumps([_FORMAT, what, self.binary_digest, render_input], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def load(self, what: str, render_input):
        """The cached value for `render_input`, or None (missing, unreadable or not what the key says)."""
        key = self.key(what, render_input)
        try:
            with open(self._path(key), encoding="utf-8") as handle:
                entry = json.load(handle)
        except (OSError, ValueError):
            return None
        if not isinstance(entry, dict) or entry.get("key") != key or "value" not in entry:
            return None
        return entry["value"]

    def store(self, what: str, render_input, value) -> bool:
        """Write the entry unless it would hold a secret; True when written. A cache that cannot be written (a
        read-only home, say) is no error: the next run renders again."""
        if holds_secret(value) or not _survives_json(value):
            return False
        key = self.key(what, render_input)
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed after it is whole
                "w", dir=self.directory, prefix=f".{key}.", suffix=".tmp", delete=False, encoding="utf-8"
            )
        except OSError:
            return False
        try:
            with handle:
                json.dump({"key": key, "value": value}, handle, separators=(",", ":"))
            os.replace(handle.name, self._path(key))
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(handle.name)
            return False
        return True

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.json")


def _survives_json(value) -> bool:
    """Only what reads back equal is stored (YAML may hold dates or non-string keys, which JSON would change)."""
    try:
        return json.loads(json.dumps(value)) == value
    except (TypeError, ValueError):
        return False


def holds_secret(value) -> bool:
    """A rendering with a Secret, or with a private key anywhere in it, is not cached."""
    if isinstance(value, list) and any(isinstance(obj, dict) and obj.get("kind") == "Secret" for obj in value):
        return True
    text = json.dumps(value, default=str)
    return any(marker in text for marker in _SECRET_MARKERS)
