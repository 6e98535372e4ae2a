# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared namespaces: the one overlap of discoverySelectors the guards allow.

Two control planes may both select a namespace only when they share a root (the `cacerts` Secrets of their system
namespaces hold the same roots in root-cert.pem, so each side's workloads trust the other's certificates) and one of
them injects the namespace (its `istio.io/rev` names a revision of one of the two). Each istiod then publishes its own
root ConfigMap there (own_trust_bundle), and the namespace's pods mount their injector's.

A root is known by the SHA-256 fingerprints of root-cert.pem's certificates: never a key. In check mode the `cacerts`
Secrets of the run are only dry-run, so a revision the run's plan carries with a `ca_root` is known by that name
instead (planned.py): revisions planned with the same ca_root share a root."""

from __future__ import annotations

from . import pki
from .cacerts import FILES, SECRET_NAME, secret_files
from .vocabulary import NAME_LABEL, REV_LABEL

SHARE_HINT = (
    "or, for a namespace that both may discover, give both control planes cacerts of one root (tenancy_plan: ca: true "
    f"and the same ca_root) and label the namespace {REV_LABEL} with a revision of one of them"
)


def with_name_label(name: str, labels: dict) -> dict:
    """A namespace's labels as the API server leaves them: with its name label, even before it exists."""
    return {**labels, NAME_LABEL: name}


def root_id(files: dict) -> str | None:
    """The roots of a `cacerts` Secret's files, by fingerprint (None without a readable root bundle)."""
    for _cert, _key, bundle in FILES.values():
        if bundle in files:
            try:
                return ",".join(sorted(pki.fingerprint(c) for c in pki.load_certificates(files[bundle])))
            except pki.PemError:
                return None
    return None


def planned_roots(planned_revisions) -> dict:
    """{system namespace: root} of the run's planned revisions that carry a ca_root (check mode only)."""
    return {
        entry["namespace"]: f"ca_root {entry['ca_root']}" for entry in planned_revisions or () if entry.get("ca_root")
    }


class Roots:
    """The root of each system namespace, read when first asked: one GET of its `cacerts` Secret. Only the root's
    fingerprints leave this object. `planned` ({namespace: root}, check mode) answers first."""

    def __init__(self, cluster, planned: dict | None = None):
        self.cluster = cluster
        self.known = dict(planned or {})

    def get(self, namespace: str) -> str | None:
        if namespace not in self.known:
            secret = self.cluster.get("Secret", SECRET_NAME, namespace)
            self.known[namespace] = root_id(secret_files(secret)) if secret is not None else None
        return self.known[namespace]


def injector_namespace(revisions: dict, labels: dict) -> str | None:
    """The system namespace of the revision a namespace's `istio.io/rev` names (None when none is installed)."""
    return (revisions.get(labels.get(REV_LABEL)) or {}).get("namespace")


def sharing_problem(revisions: dict, first: str, second: str, labels: dict, roots) -> str | None:
    """Why revisions `first` and `second` may not both select a namespace with `labels` (None when they may).
    `revisions` maps name -> {namespace, selectors}; `roots` answers get(system namespace) -> root or None."""
    spaces = (revisions[first]["namespace"], revisions[second]["namespace"])
    first_root, second_root = roots.get(spaces[0]), roots.get(spaces[1])
    if first_root is None or second_root is None:
        pairs = zip((first, second), spaces, strict=True)
        without = ", ".join(f"{r} ({ns})" for r, ns in pairs if roots.get(ns) is None)
        return f"no {SECRET_NAME} root in the system namespace of {without}, so they do not share a root"
    if first_root != second_root:
        return f"the {SECRET_NAME} of {spaces[0]} and {spaces[1]} hold different roots"
    if injector_namespace(revisions, labels) not in spaces:
        return f"its {REV_LABEL}={labels.get(REV_LABEL)} names a revision of neither"
    return None
