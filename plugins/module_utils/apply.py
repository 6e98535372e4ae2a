# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The apply engine every module shares: server-side apply under one field manager, dependency order,
ownership labels, prune by those labels, check mode by server-side dry-run, diffs, rollout waits.

Reads are cheap and bounded: one LIST per kind (label-selected by owner) finds what we own, plus one GET per
desired object we do not own yet. Writes are sent only for objects whose desired state differs."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

from .client import ApiError, NotFoundError, Resource
from .compare import for_diff, needs_apply, same_object, with_hash
from .kinds import KINDS, Kind, apply_order, kind_of

FIELD_MANAGER = "meshops.istio"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
# Waits poll quickly at first (a new CRD is Established within milliseconds, a Deployment within seconds), then
# once a second.
POLL_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)


class EngineError(Exception):
    """A failure the user can act on; the message says what and how."""


@dataclass(frozen=True)
class Owner:
    """The module instance that owns objects: label `meshops.io/<kind>=<name>` next to managed-by."""

    kind: str  # revision, tenant, gateway, ...
    name: str

    @property
    def labels(self) -> dict:
        return {MANAGED_BY_LABEL: FIELD_MANAGER, f"meshops.io/{self.kind}": self.name}

    @property
    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels.items())


def identity(obj: dict) -> tuple:
    metadata = obj["metadata"]
    return obj["kind"], metadata.get("namespace") or "", metadata["name"]


def describe(obj: dict) -> str:
    kind, namespace, name = identity(obj)
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def with_labels(manifest: dict, labels: dict) -> dict:
    labelled = copy.deepcopy(manifest)
    labelled["metadata"].setdefault("labels", {}).update(labels)
    return labelled


def _resource(kind: Kind):
    return Resource(
        prefix="apis" if kind.group else "api",
        group=kind.group,
        api_version=kind.version,
        kind=kind.kind,
        namespaced=kind.namespaced,
        name=kind.plural,
    )


def _api_message(error) -> str:
    return getattr(error, "summary", lambda: str(error))()


@dataclass
class Report:
    """What a run did, in the shape modules return: changed, objects (kind, namespace, name, action), diff."""

    changed: bool = False
    objects: list = field(default_factory=list)
    diff: list = field(default_factory=list)

    def record(self, obj: dict, action: str, before: dict | None, after: dict | None):
        kind, namespace, name = identity(obj)
        self.changed = True
        self.objects.append({"kind": kind, "namespace": namespace, "name": name, "action": action})
        self.diff.append(
            {
                "before_header": describe(obj),
                "after_header": describe(obj),
                "before": for_diff(before),
                "after": for_diff(after),
            }
        )


class Engine:
    def __init__(
        self, client, owner: Owner, check_mode: bool = False, force_conflicts: bool = False, report: Report = None
    ):
        self.client = client
        self.owner = owner
        self.check_mode = check_mode
        self.force_conflicts = force_conflicts
        self.report = report or Report()  # engines of one module run may share one report

    # Reads

    def get(self, kind_name: str, name: str, namespace: str | None = None) -> dict | None:
        kind = KINDS[kind_name]
        try:
            return self.client.get(_resource(kind), name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        except ApiError as error:
            raise EngineError(f"Cannot read {kind_name} {name}: {_api_message(error)}") from error

    def list_objects(self, kind_name: str, label_selector: str | None = None, namespace: str | None = None) -> list:
        kind = KINDS[kind_name]
        try:
            result = self.client.get(_resource(kind), namespace=namespace, label_selector=label_selector)
        except ApiError as error:
            raise EngineError(f"Cannot list {kind.plural}: {_api_message(error)}") from error
        return [dict(item.to_dict(), kind=kind.kind, apiVersion=kind.api_version) for item in result.items]

    def list_owned(self, kinds) -> dict:
        return {
            identity(obj): obj
            for kind in sorted(kinds, key=lambda k: k.kind)
            for obj in self.list_objects(kind.kind, label_selector=self.owner.selector)
        }

    # Writes

    def _apply(self, manifest: dict, force: bool | None = None) -> dict:
        kind = kind_of(manifest)
        metadata = manifest["metadata"]
        try:
            result = self.client.server_side_apply(
                _resource(kind),
                body=manifest,
                name=metadata["name"],
                namespace=metadata.get("namespace"),
                field_manager=FIELD_MANAGER,
                force_conflicts=self.force_conflicts if force is None else force,
                dry_run="All" if self.check_mode else None,
            )
        except ApiError as error:
            if error.status == 409:
                raise EngineError(
                    f"{describe(manifest)}: {_api_message(error)}. Another field manager owns these fields; "
                    "set force_conflicts: true to take them over."
                ) from error
            if self.check_mode and error.status == 404:
                # Its CRD or namespace is only being created in this dry run: it would be created.
                return manifest
            raise EngineError(f"Cannot apply {describe(manifest)}: {_api_message(error)}") from error
        return result.to_dict()

    def _delete(self, live: dict):
        kind = kind_of(live)
        metadata = live["metadata"]
        try:
            self.client.delete(
                _resource(kind),
                name=metadata["name"],
                namespace=metadata.get("namespace"),
                dry_run="All" if self.check_mode else None,
                propagation_policy="Background",
            )
        except NotFoundError:
            pass
        except ApiError as error:
            raise EngineError(f"Cannot delete {describe(live)}: {_api_message(error)}") from error

    def _converge(self, manifest: dict, live: dict | None, force: bool | None = None):
        """Apply one stamped manifest if it differs from live; record what changed."""
        if not needs_apply(manifest, live):
            return
        after = self._apply(manifest, force)
        if live is not None and same_object(live, after):
            return
        self.report.record(manifest, "created" if live is None else "updated", live, after)
        if manifest["kind"] == "CustomResourceDefinition" and not self.check_mode:
            self._wait_established(manifest["metadata"]["name"])

    # What modules call

    def ensure_present(self, manifests: list, prunable_kinds=(), owned: dict | None = None) -> Report:
        """Converge this owner's objects to `manifests`; delete its objects of `prunable_kinds` (and of the
        desired kinds) that are no longer desired. Nothing without this owner's labels is ever deleted.
        `owned` ({identity: object}, every kind of those) is what the caller already listed for this owner."""
        desired = [with_hash(with_labels(m, self.owner.labels)) for m in apply_order(manifests)]
        if owned is None:
            owned = self.list_owned({kind_of(m) for m in desired} | {KINDS[k] for k in prunable_kinds})
        owned = dict(owned)
        for manifest in desired:
            key = identity(manifest)
            live = owned.pop(key) if key in owned else self.get(*_get_args(key))
            self._converge(manifest, live)
        self._delete_all(owned.values())
        return self.report

    def ensure_absent(self, kinds) -> Report:
        """Delete every object of `kinds` that carries this owner's labels, dependents last-created first."""
        self._delete_all(self.list_owned({KINDS[k] for k in kinds}).values())
        return self.report

    def ensure_shared(self, manifest: dict, live: dict | None = None, force: bool | None = None) -> Report:
        """Apply an object several owners rely on (a CRD, a namespace): our fields, no owner labels, never
        pruned. Pass `live` when already read; `force` overrides force_conflicts for this object."""
        stamped = with_hash(with_labels(manifest, {MANAGED_BY_LABEL: FIELD_MANAGER}))
        if live is None:
            live = self.get(*_get_args(identity(stamped)))
        self._converge(stamped, live, force)
        return self.report

    def ensure_owned(self, manifest: dict, live: dict | None) -> Report:
        """Converge one object of this owner without pruning its others (e.g. a new token before the old one is
        revoked). `live` is the object as read, None when it does not exist."""
        self._converge(with_hash(with_labels(manifest, self.owner.labels)), live)
        return self.report

    def release(self, kind_name: str, name: str, namespace: str | None = None) -> Report:
        """Give up every field this field manager set on an object that stays (e.g. a namespace's labels)."""
        live = self.get(kind_name, name, namespace)
        if live is None or not any(
            entry.get("manager") == FIELD_MANAGER for entry in live["metadata"].get("managedFields") or []
        ):
            return self.report
        kind = KINDS[kind_name]
        empty = {"apiVersion": kind.api_version, "kind": kind_name, "metadata": {"name": name}}
        if namespace:
            empty["metadata"]["namespace"] = namespace
        after = self._apply(empty)
        if not same_object(live, after):
            self.report.record(live, "released", live, after)
        return self.report

    def remove_labels(self, live: dict, keys: list) -> Report:
        """Remove labels another field manager set (apply cannot remove fields it does not own): one merge patch."""
        present = [key for key in keys if key in (live["metadata"].get("labels") or {})]
        if not present:
            return self.report
        kind = kind_of(live)
        patch = {"metadata": {"labels": dict.fromkeys(present)}}
        try:
            after = self.client.patch(
                _resource(kind),
                body=patch,
                name=live["metadata"]["name"],
                namespace=live["metadata"].get("namespace"),
                content_type="application/merge-patch+json",
                dry_run="All" if self.check_mode else None,
            ).to_dict()
        except ApiError as error:
            raise EngineError(f"Cannot remove labels {present} from {describe(live)}: {_api_message(error)}") from error
        self.report.record(live, "updated", live, after)
        return self.report

    def delete_objects(self, objects) -> Report:
        """Delete objects found by the caller (e.g. another owner's, on takeover), dependents first."""
        self._delete_all(objects)
        return self.report

    def _delete_all(self, objects):
        for live in reversed(apply_order(list(objects))):
            self._delete(live)
            self.report.record(live, "deleted", live, None)

    def request_token(self, namespace: str, service_account: str, lifetime: int, bound_to: dict) -> dict:
        """A TokenRequest for a ServiceAccount, bound to an object in its namespace (deleting that object revokes
        the token). Returns the TokenRequest's status: token and expirationTimestamp. Never call in check mode:
        the server would issue a real token."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": lifetime, "boundObjectRef": bound_to},
        }
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        try:
            return self.client.request("post", path, body=body).to_dict()["status"]
        except ApiError as error:
            raise EngineError(
                f"Cannot request a token for ServiceAccount {namespace}/{service_account}: {_api_message(error)}"
            ) from error

    # Waits

    def _wait_established(self, crd_name: str, timeout: float = 60.0):
        def established():
            crd = self.get("CustomResourceDefinition", crd_name) or {}
            conditions = (crd.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        if not _poll(established, timeout):
            raise EngineError(f"CustomResourceDefinition {crd_name} not Established after {timeout:.0f} s")

    def wait_for(self, kind_name: str, name: str, namespace: str | None, ready, timeout: float, what: str) -> dict:
        """Read an object until `ready(object)` holds, e.g. until a controller has filled it in; `what` names what
        is awaited, for the error."""
        deadline, delays = time.monotonic() + timeout, _delays()
        while True:
            live = self.get(kind_name, name, namespace)
            if live is not None and ready(live):
                return live
            if time.monotonic() >= deadline:
                where = f"{namespace}/{name}" if namespace else name
                raise EngineError(f"{kind_name} {where}: {what} within {timeout:.0f} s. Raise wait_timeout.")
            time.sleep(next(delays))

    def wait_for_rollout(self, manifests: list, timeout: float):
        """Wait until every Deployment among `manifests` has all replicas updated and available."""
        if self.check_mode:
            return
        deadline = time.monotonic() + timeout
        for manifest in manifests:
            if manifest["kind"] == "Deployment":
                self._wait_for_deployment(manifest["metadata"]["namespace"], manifest["metadata"]["name"], deadline)

    def _wait_for_deployment(self, namespace: str, name: str, deadline: float):
        delays = _delays()
        while True:
            live = self.get("Deployment", name, namespace)
            problem = rollout_problem(live) if live else "it does not exist"
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise EngineError(
                    f"Deployment {namespace}/{name} is not ready: {problem}. "
                    "Raise wait_timeout or inspect the Deployment's events."
                )
            time.sleep(next(delays))


def rollout_problem(deployment: dict) -> str | None:
    """Why a Deployment is not rolled out yet, or None when it is."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    if (status.get("observedGeneration") or 0) < deployment["metadata"].get("generation", 0):
        return "the controller has not observed the latest spec yet"
    updated, available = status.get("updatedReplicas") or 0, status.get("availableReplicas") or 0
    if updated >= wanted and available >= wanted and (status.get("replicas") or 0) <= updated:
        return None
    reasons = "; ".join(
        f"{c['type']}={c['status']} ({c.get('reason', '')}: {c.get('message', '')})"
        for c in status.get("conditions") or []
        if c["status"] != "True" or c.get("reason") in ("ProgressDeadlineExceeded", "FailedCreate")
    )
    summary = f"{available}/{wanted} replicas available, {updated} updated"
    return f"{summary}; {reasons}" if reasons else summary


def _get_args(key: tuple) -> tuple:
    kind, namespace, name = key
    return kind, name, namespace or None


def _delays():
    """Seconds to sleep between polls: POLL_SECONDS, then its last value for good."""
    yield from POLL_SECONDS
    while True:
        yield POLL_SECONDS[-1]


def _poll(predicate, timeout: float) -> bool:
    deadline, delays = time.monotonic() + timeout, _delays()
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(next(delays))
