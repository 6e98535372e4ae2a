# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The engine every module writes through: server-side apply under one field manager, dependency order,
ownership labels, prune by those labels, check mode by server-side dry-run, diffs, rollout waits.

Reads are cheap and bounded: one LIST per kind (label-selected by owner) finds what we own; what stands where a
desired object we do not own yet goes is what the caller read (read_existing: one LIST per name shared by many
namespaces), else one GET per object. Writes are sent only for objects whose desired state differs, a phase at a time
(kinds.phase_of: CRDs, namespaces, RBAC-config-services, workloads and policies, webhooks; deletes in reverse), up to
`max_in_flight` of a phase at once: the client's connection pool is thread-safe (urllib3), and every request builds
its own headers and parameters. Results are recorded, and a phase's first error raised, in the manifests' order,
whatever order the answers came in. An Engine writes for one owner and records what it did in its own Report; a run
of several operations combines their reports."""

from __future__ import annotations

import itertools
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .client import ApiError, NotFoundError
from .cluster import Cluster, api_message, as_dict, resource
from .compare import for_diff, needs_apply, same_object, with_hash
from .errors import EngineError, FieldConflict, ForeignObjects, refuse
from .kinds import KINDS, apply_order, kind_key, kind_of, phase_of
from .vocabulary import FIELD_MANAGER, MANAGED_BY_LABEL, MIN_REPLICAS_ANNOTATION, owner_label, owners_of

# Writes of one phase in flight at once. The kubernetes client keeps cpu_count * 5 connections per host (urllib3
# opens more when asked and closes them after use), so this many reuse theirs on any machine of two CPUs or more.
MAX_IN_FLIGHT = 8


# ensure_shared's `live` for an object the caller read as missing (None: not read yet).
ABSENT = object()


@dataclass(frozen=True)
class Owner:
    """The module instance that owns objects: label `meshops.io/<kind>=<name>` next to managed-by."""

    kind: str  # revision, tenant, gateway, ...
    name: str

    @property
    def labels(self) -> dict:
        return {MANAGED_BY_LABEL: FIELD_MANAGER, owner_label(self.kind): self.name}

    @property
    def selector(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels.items())


def identity(obj: dict) -> tuple:
    metadata = obj["metadata"]
    return kind_key(obj), metadata.get("namespace") or "", metadata["name"]


def read_existing(cluster: Cluster, wanted) -> dict:
    """{identity: object} of the `wanted` identities that exist. An identity alone of its kind and name is read with
    a GET; those sharing one (a policy named alike in many namespaces) with one LIST (field selector metadata.name,
    every namespace), so reads grow with the names, not with the namespaces."""
    by_name = {}
    for key in wanted:
        by_name.setdefault((key[0], key[2]), set()).add(key)
    found = {}
    for (kind, name), keys in sorted(by_name.items()):
        if len(keys) == 1:
            (key,) = keys
            live = cluster.get(*_get_args(key))
            listed = [live] if live is not None else []
        else:
            listed = cluster.list_objects(kind, field_selector=f"metadata.name={name}")
        found.update({identity(obj): obj for obj in listed if identity(obj) in keys})
    return found


def describe(obj: dict) -> str:
    kind, namespace, name = identity(obj)
    return f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"


def with_labels(manifest: dict, labels: dict) -> dict:
    """A copy of `manifest` with `labels` added (copied down to its labels only, see compare.py)."""
    metadata = manifest["metadata"]
    return {**manifest, "metadata": {**metadata, "labels": {**(metadata.get("labels") or {}), **labels}}}


@dataclass
class Report:
    """What one operation did, in the shape modules return: changed, objects (kind, namespace, name, action),
    diff."""

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

    def tagged(self, cluster: str) -> Report:
        """This report with each object and diff header naming `cluster`, for modules that write on two."""
        return Report(
            self.changed,
            [{**obj, "cluster": cluster} for obj in self.objects],
            [
                {
                    **d,
                    "before_header": f"{cluster}: {d['before_header']}",
                    "after_header": f"{cluster}: {d['after_header']}",
                }
                for d in self.diff
            ],
        )

    @classmethod
    def combined(cls, reports) -> Report:
        """One report of several operations, in the order they ran."""
        total = cls()
        for report in reports:
            total.changed = total.changed or report.changed
            total.objects += report.objects
            total.diff += report.diff
        return total


@dataclass(frozen=True)
class _Apply:
    """One object to converge: the stamped manifest, the object as read (None when missing), and `force` (None for
    the engine's force_conflicts)."""

    manifest: dict
    live: dict | None
    force: bool | None = None


@dataclass(frozen=True)
class _Sent:
    """What one request of a phase came back with: its result, or the error it raised."""

    result: object = None
    error: Exception | None = None


class Engine:
    """Writes for one `owner` on one `cluster`, at most `max_in_flight` requests at once; `report` holds what this
    engine did."""

    def __init__(
        self,
        cluster: Cluster,
        owner: Owner,
        check_mode: bool = False,
        force_conflicts: bool = False,
        max_in_flight: int = MAX_IN_FLIGHT,
    ):
        self.cluster = cluster
        self.owner = owner
        self.check_mode = check_mode
        self.force_conflicts = force_conflicts
        self.max_in_flight = max_in_flight
        self.report = Report()
        cluster.reports.append(self.report)

    def list_owned(self, kinds) -> dict:
        return {
            identity(obj): obj
            for kind in sorted(kinds, key=lambda k: k.key)
            for obj in self.cluster.list_objects(kind.key, label_selector=self.owner.selector)
        }

    # Writes

    def _dry_run(self) -> str | None:
        return "All" if self.check_mode else None

    def _apply(self, manifest: dict, force: bool | None = None) -> dict:
        if self.cluster.planning:
            return manifest
        kind = kind_of(manifest)
        metadata = manifest["metadata"]
        try:
            with self.cluster.reaching():
                result = self.cluster.client.server_side_apply(
                    resource(kind),
                    body=manifest,
                    name=metadata["name"],
                    namespace=metadata.get("namespace"),
                    field_manager=FIELD_MANAGER,
                    force_conflicts=self.force_conflicts if force is None else force,
                    dry_run=self._dry_run(),
                    serializer=as_dict,
                )
        except ApiError as error:
            if error.status == 409:
                raise FieldConflict(
                    f"{describe(manifest)}{self.cluster.where}: {api_message(error)}. Another field manager owns "
                    "these fields; set force_conflicts: true to take them over."
                ) from error
            if self.check_mode and error.status == 404:
                # Its CRD or namespace is only being created in this dry run: it would be created.
                return manifest
            # Server-side apply is authorized as patch, and as create too when the object is new.
            message = api_message(error, "create or patch", kind, metadata.get("namespace"))
            raise EngineError(f"Cannot apply {describe(manifest)}{self.cluster.where}: {message}") from error
        return result

    def _delete(self, live: dict):
        if self.cluster.planning:
            return
        kind = kind_of(live)
        metadata = live["metadata"]
        try:
            with self.cluster.reaching():
                self.cluster.client.delete(
                    resource(kind),
                    name=metadata["name"],
                    namespace=metadata.get("namespace"),
                    dry_run=self._dry_run(),
                    propagation_policy="Background",
                )
        except NotFoundError:
            pass
        except ApiError as error:
            message = api_message(error, "delete", kind, metadata.get("namespace"))
            raise EngineError(f"Cannot delete {describe(live)}{self.cluster.where}: {message}") from error

    def _converge(self, applies: list) -> list:
        """Apply each stamped manifest of `applies` (in apply_order) that differs from live, a phase at a time;
        record what changed. A CRD is Established before the next phase starts. Returns [(apply, object after)]
        of the applies sent."""
        needed = [each for each in applies if needs_apply(each.manifest, each.live)]
        sent = []
        for phase in _phases(needed, lambda each: each.manifest):
            applied, error = self._send_phase(phase, lambda each: self._apply(each.manifest, each.force))
            sent += applied
            changed = [each for each, after in applied if self._record_applied(each, after)]
            if error is not None:
                raise error
            for each in changed:
                if each.manifest["kind"] == "CustomResourceDefinition" and not self.check_mode:
                    self._wait_established(each.manifest["metadata"]["name"])
        return sent

    def _record_applied(self, applied: _Apply, after: dict) -> bool:
        """Record an apply that changed the object; False when the API server kept it as it was. A planning pass
        counts every apply it would send."""
        if applied.live is not None and not self.cluster.planning and same_object(applied.live, after):
            return False
        self.report.record(applied.manifest, "created" if applied.live is None else "updated", applied.live, after)
        return True

    def _send_phase(self, items: list, send) -> tuple:
        return in_parallel(items, send, self.max_in_flight)

    # What modules call

    def ensure_present(
        self,
        manifests: list,
        prunable_kinds=(),
        owned: dict | None = None,
        keep_live=None,
        adoptable=(),
        others: dict | None = None,
    ) -> Report:
        """Converge this owner's objects to `manifests`; delete its objects of `prunable_kinds` (and of the
        desired kinds) that are no longer desired. Nothing without this owner's labels is ever deleted.
        `owned` ({identity: object}, every kind of those) is what the caller already listed for this owner.
        Applies to objects that already carry this owner's labels are forced; conflicts on others stay an error.
        `keep_live(desired, live)` returns `desired` with the fields a controller manages after creation copied
        from `live`, so that a re-run neither reverts them nor conflicts with that controller.
        Refuses before its first write when a desired object exists without this owner's labels (ownership_problems);
        `adoptable` holds identities the caller lets this owner take over (e.g. a tag it was told to move).
        `others` ({identity: object, or None when missing}) holds what the caller read of desired objects this owner
        does not own (read_existing); any other desired object missing from `owned` is read with a GET."""
        desired = [with_hash(with_labels(m, self.owner.labels)) for m in apply_order(manifests)]
        if owned is None:
            owned = self.list_owned({kind_of(m) for m in desired} | {KINDS[k] for k in prunable_kinds})
        owned = dict(owned)
        lives = [owned.pop(identity(m)) if identity(m) in owned else self._read(identity(m), others) for m in desired]
        refuse(self.ownership_problems(lives, adoptable), ForeignObjects)
        applies = []
        for manifest, live in zip(desired, lives, strict=True):
            if keep_live is not None and live is not None:
                manifest = keep_live(manifest, live)
            # An object carrying this owner's labels is ours: a re-run takes back fields another manager changed.
            applies.append(_Apply(manifest, live, True if live is not None and self.owns(live) else None))
        self._converge(applies)
        self._delete_all(owned.values())
        return self.report

    def _read(self, key: tuple, others: dict | None) -> dict | None:
        return others[key] if others is not None and key in others else self.cluster.get(*_get_args(key))

    def ownership_problems(self, lives, adoptable=()) -> list:
        """Why the objects read as `lives` (None where missing) are not this owner's to write: each exists without
        this owner's labels (hand-made, another tool's, another owner's of ours). Adopting one would let a later
        `state: absent` delete it, so it needs force_conflicts (or an identity in `adoptable`)."""
        if self.force_conflicts:
            return []
        return [
            foreign_object_problem(live)
            for live in lives
            if live is not None and not self.owns(live) and identity(live) not in set(adoptable)
        ]

    def owns(self, live: dict) -> bool:
        labels = live["metadata"].get("labels") or {}
        return all(labels.get(key) == value for key, value in self.owner.labels.items())

    def ensure_absent(self, kinds) -> Report:
        """Delete every object of `kinds` that carries this owner's labels, dependents last-created first."""
        self._delete_all(self.list_owned({KINDS[k] for k in kinds}).values())
        return self.report

    def ensure_shared(self, manifest: dict, live=None, force: bool | None = None) -> dict | None:
        """Apply an object several owners rely on (a CRD, a namespace): our fields, no owner labels, never
        pruned. Pass `live` when already read (ABSENT when read as missing); `force` overrides force_conflicts for
        this object. Returns the object as it now stands (in check mode, as the dry run left it)."""
        stamped = with_hash(with_labels(manifest, {MANAGED_BY_LABEL: FIELD_MANAGER}))
        if live is None:
            live = self.cluster.get(*_get_args(identity(stamped)))
        elif live is ABSENT:
            live = None
        sent = self._converge([_Apply(stamped, live, force)])
        return sent[0][1] if sent else live

    def ensure_owned(self, manifest: dict, live: dict | None) -> Report:
        """Converge one object of this owner without pruning its others (e.g. a new token before the old one is
        revoked). `live` is the object as read, None when it does not exist."""
        self._converge([_Apply(with_hash(with_labels(manifest, self.owner.labels)), live)])
        return self.report

    def release(self, kind_name: str, name: str, namespace: str | None = None) -> Report:
        """Give up every field this field manager set on an object that stays (e.g. a namespace's labels)."""
        live = self.cluster.get(kind_name, name, namespace)
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
        patch = {"metadata": {"labels": dict.fromkeys(present)}}
        if self.cluster.planning:
            self.report.record(live, "updated", live, live)
            return self.report
        try:
            with self.cluster.reaching():
                after = self.cluster.client.patch(
                    resource(kind_of(live)),
                    body=patch,
                    name=live["metadata"]["name"],
                    namespace=live["metadata"].get("namespace"),
                    content_type="application/merge-patch+json",
                    dry_run=self._dry_run(),
                ).to_dict()
        except ApiError as error:
            raise EngineError(
                f"Cannot remove labels {present} from {describe(live)}{self.cluster.where}: "
                f"{api_message(error, 'patch', kind_of(live), live['metadata'].get('namespace'))}"
            ) from error
        self.report.record(live, "updated", live, after)
        return self.report

    def delete_objects(self, objects) -> Report:
        """Delete objects found by the caller (e.g. another owner's, on takeover), dependents first."""
        self._delete_all(objects)
        return self.report

    def _delete_all(self, objects):
        """Delete `objects`, dependents first: the phases in reverse, each phase's deletes together."""
        for phase in _phases(list(reversed(apply_order(list(objects)))), lambda live: live):
            deleted, error = self._send_phase(phase, self._delete)
            for live, _answer in deleted:
                self.report.record(live, "deleted", live, None)
            if error is not None:
                raise error

    # Waits

    def _wait_established(self, crd_name: str, timeout: float = 60.0):
        def established():
            crd = self.cluster.get("CustomResourceDefinition", crd_name) or {}
            conditions = (crd.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        if not self.cluster.poll(established, timeout):
            raise EngineError(
                f"CustomResourceDefinition {crd_name}{self.cluster.where} not Established after {timeout:.0f} s"
            )

    def wait_for(self, kind_name: str, name: str, namespace: str | None, ready, timeout: float, what: str) -> dict:
        """Read an object until `ready(object)` holds, e.g. until a controller has filled it in; `what` names what
        is awaited, for the error."""
        seen = {}

        def is_ready():
            seen["live"] = self.cluster.get(kind_name, name, namespace)
            return seen["live"] is not None and ready(seen["live"])

        if not self.cluster.poll(is_ready, timeout):
            where = f"{namespace}/{name}" if namespace else name
            raise EngineError(
                f"{kind_name} {where}{self.cluster.where}: {what} within {timeout:.0f} s. Raise wait_timeout."
            )
        return seen["live"]

    def wait_for_rollout(self, manifests: list, timeout: float):
        """Wait until every Deployment among `manifests` has all replicas updated and available. A rehearsal that
        changes nothing waits too: the Deployments it would wait for are the live ones."""
        if self.check_mode and not (self.cluster.rehearsing and not any(r.changed for r in self.cluster.reports)):
            return
        deadline = time.monotonic() + timeout
        for manifest in manifests:
            if manifest["kind"] == "Deployment":
                self._wait_for_deployment(manifest["metadata"]["namespace"], manifest["metadata"]["name"], deadline)

    def _wait_for_deployment(self, namespace: str, name: str, deadline: float):
        seen = {}

        def rolled_out():
            live = self.cluster.get("Deployment", name, namespace)
            seen["problem"] = rollout_problem(live) if live else "it does not exist"
            return seen["problem"] is None

        if not self.cluster.poll(rolled_out, max(deadline - time.monotonic(), 0)):
            warnings = self.cluster.latest_warnings(namespace, f"{name}-")
            events = f" Latest warning events: {'; '.join(warnings)}." if warnings else " No warning events."
            raise EngineError(
                f"Deployment {namespace}/{name}{self.cluster.where} is not ready: {seen['problem']}.{events} "
                "Raise wait_timeout if it is only slow."
            )


def in_parallel(items: list, send, max_in_flight: int) -> tuple:
    """`send(item)` for each of `items`, up to `max_in_flight` at once; none starts once one has failed.
    Returns, when every call started has returned, ([(item, result)] of those that succeeded, the first error
    or None), both in the items' order, not the order the answers came in."""
    failed = threading.Event()

    def attempt(item) -> _Sent | None:
        if failed.is_set():
            return None
        try:
            return _Sent(send(item))
        except Exception as error:  # noqa: BLE001 - raised again, in the items' order, by the caller
            failed.set()
            return _Sent(error=error)

    if len(items) <= 1:
        sent = [attempt(item) for item in items]
    else:
        with ThreadPoolExecutor(max_workers=min(max_in_flight, len(items))) as pool:
            sent = list(pool.map(attempt, items))
    done = [(item, each) for item, each in zip(items, sent, strict=True) if each is not None]
    succeeded = [(item, each.result) for item, each in done if each.error is None]
    return succeeded, next((each.error for each in sent if each is not None and each.error is not None), None)


def foreign_object_problem(live: dict) -> str:
    """The refusal for an object someone else owns: who holds it, and the ways out."""
    labels = live["metadata"].get("labels") or {}
    owners = owners_of(labels)
    if owners:
        held_by = f"belongs to meshops.istio's {' and '.join(owners)}"
    elif labels.get(MANAGED_BY_LABEL) == FIELD_MANAGER:
        held_by = "lost its meshops.istio owner label (meshops.io/<owner kind>), so no run of the collection owns it"
    else:
        held_by = f"was not created by meshops.istio (it lacks the label {MANAGED_BY_LABEL}={FIELD_MANAGER})"
    return (
        f"{describe(live)} already exists and {held_by}; remove it or choose another name, or set "
        "force_conflicts: true to adopt it (a later state: absent then deletes it)"
    )


def rollout_problem(deployment: dict) -> str | None:
    """Why a Deployment is not rolled out yet, or None when it is."""
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    annotations = deployment["metadata"].get("annotations") or {}
    wanted = max(spec.get("replicas", 1), int(annotations.get(MIN_REPLICAS_ANNOTATION, 0)))
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


def _phases(items: list, manifest_of) -> list:
    """`items` (in apply_order or its reverse) cut where the phase of `manifest_of(item)` changes."""
    return [list(phase) for _number, phase in itertools.groupby(items, key=lambda item: phase_of(manifest_of(item)))]


def _get_args(key: tuple) -> tuple:
    kind, namespace, name = key
    return kind, name, namespace or None
