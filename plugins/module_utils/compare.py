# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure comparison of desired manifests with live objects, and what a diff may show.

A no-op run must send no write at all, so whether to apply is decided here, locally:
- a hash of the desired manifest, kept in an annotation, catches fields removed from the desired state
  (server-side apply would remove them; a subset check cannot see that);
- a subset check of desired against live catches drift made by others to fields we set.
"""

from __future__ import annotations

import hashlib
import json
import re
from decimal import Decimal, InvalidOperation

HASH_ANNOTATION = "meshops.io/desired-hash"
HIDDEN = "<hidden>"
# Fields the server maintains; never part of what a diff or a comparison should look at.
_SERVER_METADATA = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")
_LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"

_QUANTITY = re.compile(r"^([+-]?[0-9.]+)([a-zA-Z]{0,2})$")
_SUFFIXES = {
    "": 1, "m": Decimal("0.001"), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


# Manifests are copied only down to what changes (metadata, its labels or annotations): Istio's CRDs are megabytes
# of schema, and copying them whole was most of a no-op run's time. Nothing here or in the engine changes a spec.


def desired_hash(manifest: dict) -> str:
    """Stable hash of a desired manifest, leaving out the hash annotation itself."""
    clean = manifest
    if "metadata" in manifest:
        metadata = {key: value for key, value in manifest["metadata"].items() if key != "annotations"}
        given = manifest["metadata"].get("annotations") or {}
        annotations = {key: value for key, value in given.items() if key != HASH_ANNOTATION}
        if annotations:
            metadata["annotations"] = annotations
        clean = {**manifest, "metadata": metadata}
    return hashlib.sha256(json.dumps(clean, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


def with_hash(manifest: dict) -> dict:
    """A copy of `manifest` carrying its desired_hash in an annotation (the input is left as it was)."""
    metadata = manifest["metadata"]
    annotations = {**(metadata.get("annotations") or {}), HASH_ANNOTATION: desired_hash(manifest)}
    return {**manifest, "metadata": {**metadata, "annotations": annotations}}


def needs_apply(desired: dict, live: dict | None) -> bool:
    """True when applying `desired` (stamped by with_hash) could change `live`."""
    if live is None:
        return True
    live_hash = (live.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION)
    if live_hash != desired["metadata"]["annotations"][HASH_ANNOTATION]:
        return True
    return not is_subset(desired, live)


def _quantity(value: str):
    match = _QUANTITY.match(value)
    if not match or match.group(2) not in _SUFFIXES:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        return None


def _equal_scalars(desired, live) -> bool:
    if desired == live:
        return True
    # The server writes quantities in canonical form: 2048Mi comes back as 2Gi, 0.5 as 500m.
    if isinstance(desired, str) and isinstance(live, str):
        a, b = _quantity(desired), _quantity(live)
        return a is not None and a == b
    return False


def is_subset(desired, live) -> bool:
    """Every value set in `desired` is present and equal in `live` (which may hold more: server defaults,
    other managers' fields). Empty values in `desired` match an absent field."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return not desired
        return all(
            is_subset(value, live.get(key)) if key in live else _is_empty(value) for key, value in desired.items()
        )
    if isinstance(desired, list):
        if not isinstance(live, list):
            return not desired and live is None
        return len(desired) == len(live) and all(is_subset(d, v) for d, v in zip(desired, live, strict=True))
    if desired is None:
        return True
    return _equal_scalars(desired, live)


def _is_empty(value) -> bool:
    # The API server drops empty values (omitempty), e.g. an env var's `value: ""`.
    return value is None or value in ("", {}, [])


def _without_server_fields(obj: dict | None) -> dict:
    """A copy down to its metadata (which is all it changes), without status and the server's bookkeeping."""
    if obj is None:
        return {}
    kept = {key: value for key, value in obj.items() if key != "status"}
    if "metadata" in obj:
        metadata = {key: value for key, value in obj["metadata"].items() if key not in _SERVER_METADATA}
        annotations = metadata.get("annotations") or {}
        if _LAST_APPLIED in annotations:
            metadata["annotations"] = {key: value for key, value in annotations.items() if key != _LAST_APPLIED}
        kept["metadata"] = metadata
    return kept


def for_diff(obj: dict | None) -> dict:
    """An object as a diff may show it: server bookkeeping removed, Secret values hidden."""
    shown = _without_server_fields(obj)
    if shown.get("kind") == "Secret":
        for field in ("data", "stringData"):
            if shown.get(field):
                shown[field] = {key: HIDDEN for key in shown[field]}
    return shown


def same_object(before: dict | None, after: dict | None) -> bool:
    """Whether an apply left the object as it was, status and server bookkeeping aside."""
    return _without_server_fields(before) == _without_server_fields(after)
