# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tenant: namespaces served by one control plane revision, and the policies that isolate them.

The spec and its validation are in tenant_spec.py, the namespaces and policies in tenant_policies.py; here are the
guards, then `ensure_tenant_present` / `ensure_tenant_absent` (one tenant) and `ensure_tenants` (option `tenants`:
many in one run), which istio_tenant calls.
Membership is the namespace label `meshops.io/tenant=<name>` (next to `istio.io/rev` and the discovery label);
policies carry the owner labels and are pruned by them."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from functools import cached_property

from .batch import SetAsideRun, failure_sentence
from .cluster import Cluster
from .engine import ABSENT, MAX_IN_FLIGHT, Engine, Owner, Report, identity, in_parallel, read_existing
from .errors import EngineError, FieldConflict, ForeignObjects, Refusal, refuse
from .guard import GuardSpec, ensure_guard, remove_guard
from .planned import NOTHING_PLANNED, RunPlan, with_planned_revisions
from .selectors import any_matches
from .shared_root import SHARE_HINT, Roots, planned_roots, sharing_problem, with_name_label
from .tenant_policies import namespace_manifest, policies, root_policy_name
from .tenant_spec import OWNER_KIND, TENANT_LABEL, TenantSpec, validate, validate_tenants
from .vocabulary import FIELD_MANAGER, INJECTION_LABEL, MANAGED_BY_LABEL, REV_LABEL, installed_revisions

TENANT_KINDS = ("PeerAuthentication", "AuthorizationPolicy", "Sidecar", "NetworkPolicy", "RoleBinding")
# Pods and claims show workloads or data; the config maps Kubernetes and istiod put everywhere do not count.
CONTENT_KINDS = ("Pod", "PersistentVolumeClaim", "Service", "ConfigMap", "Secret")
SYSTEM_CONFIG_MAPS = {"kube-root-ca.crt", "istio-ca-root-cert"}
# What istiod's namespace controller writes, under whatever name its revision publishes (trust_bundle.py).
ISTIOD_CONFIG_MAP_LABEL = ("istio.io/config", "true")
ISTIOD_CONFIG_MAP_KEYS = {"root-cert.pem", "ca-crl.pem"}


# Pure: guards


def _missing_for(selectors: list, labels: dict) -> str:
    """The labels a namespace lacks for the first matchLabels selector, as `k=v` text."""
    for selector in selectors:
        missing = {k: v for k, v in (selector.get("matchLabels") or {}).items() if labels.get(k) != v}
        if missing:
            return ", ".join(f"{k}={v}" for k, v in missing.items())
    return "a label the revision's matchExpressions require"


def refusals(
    spec: TenantSpec, revisions: dict, namespaces: dict, kept: dict | None = None, at: str = "", roots=None
) -> list:
    """Why onboarding would break isolation or the tenant itself (empty when it is safe).
    `namespaces` maps every existing namespace to its labels; `kept` maps it to the labels a run leaves as they are
    (those the collection did not write; by default all). `at` prefixes parameter names (`tenants[3].`). `roots`
    answers get(system namespace) -> its root, for shared namespaces (shared_root.py)."""
    name, revision = spec.name, spec.revision
    if revision not in revisions:
        installed = ", ".join(sorted(revisions)) or "none"
        return [
            f"{at}revision {revision} is not installed (installed: {installed}); install it with istio_revision first"
        ]
    kept = namespaces if kept is None else kept
    problems = []
    system_namespaces = {info["namespace"]: rev for rev, info in revisions.items()}
    for index, entry in enumerate(spec.namespaces):
        namespace, labels = entry.name, namespaces.get(entry.name)
        where = f"{at}namespaces[{index}] {namespace}"
        if namespace in system_namespaces:
            owner_revision = system_namespaces[namespace]
            problems.append(
                f"namespace {namespace} is the system namespace of revision {owner_revision}; "
                "tenants get namespaces of their own"
            )
            continue
        if labels is None and not spec.create_namespaces:
            problems.append(f"namespace {namespace} does not exist; create it or set create_namespaces: true")
            continue
        labels = labels or {}
        owner = labels.get(TENANT_LABEL)
        if owner and owner != name and not spec.takeover:
            problems.append(f"namespace {namespace} belongs to tenant {owner}; set takeover: true to move it")
        elif owner != name and labels.get(REV_LABEL) not in (None, revision) and not spec.takeover:
            problems.append(
                f"namespace {namespace} carries {REV_LABEL}={labels[REV_LABEL]} (another mesh); set takeover: true "
                "to move it to this tenant"
            )
        final = namespace_manifest(spec, entry)["metadata"]["labels"]
        selectors = revisions[revision]["selectors"]
        if not any_matches(selectors, final):
            problems.append(
                f"revision {revision}'s discoverySelectors would not select namespace {namespace}: it lacks "
                f"{_missing_for(selectors, final)}; set discovery_label (or the namespace's labels) to match"
            )
        after = with_name_label(namespace, {**(kept.get(namespace) or {}), **final})
        after.pop(INJECTION_LABEL, None)  # onboarding removes it
        problems += [f"{where}: {problem}" for problem in other_selections(revision, revisions, after, roots)]
    problems += _allowed_system_namespace_problems(spec, revisions, at)
    return problems


def other_selections(revision: str, revisions: dict, labels: dict, roots=None) -> list:
    """Sentences for every installed revision other than `revision` (and its canaries, which share its system
    namespace) whose discoverySelectors would select a namespace with `labels`: two control planes would
    configure its workloads. A shared namespace (shared_root.py) is allowed."""
    problems = []
    own_namespace = revisions[revision]["namespace"]
    for other, info in sorted(revisions.items()):
        if other == revision or info["namespace"] == own_namespace or not any_matches(info["selectors"], labels):
            continue
        not_shared = sharing_problem(revisions, revision, other, labels, roots or {})
        if not not_shared:
            continue
        if info["selectors"]:
            shown = ", ".join(f"{key}={value}" for key, value in sorted(labels.items()))
            why = f"its discoverySelectors match the namespace's labels {shown}"
        else:
            why = "it has no discoverySelectors and selects every namespace"
        problems.append(
            f"revision {other} would select it too ({why}), and not as a shared namespace ({not_shared}); remove the "
            f"labels that match revision {other}'s discoverySelectors from the namespace and its labels, or narrow "
            f"revision {other}'s discovery_selectors, {SHARE_HINT}"
        )
    return problems


def _allowed_system_namespace_problems(spec: TenantSpec, revisions: dict, at: str) -> list:
    """Another control plane's system namespace in allow_namespaces would let its istiod and gateways in."""
    own_namespace = revisions[spec.revision]["namespace"]
    others = {info["namespace"]: rev for rev, info in revisions.items() if info["namespace"] != own_namespace}
    return [
        f"{at}isolation.allow_namespaces[{index}] {name} is the system namespace of revision {others[name]}, another "
        "control plane; remove it (the tenant's own control plane's namespace is always allowed)"
        for index, name in enumerate(spec.isolation.allow_namespaces)
        if name in others
    ]


def root_policy_problems(specs: list, revisions: dict, root_policies: dict, indexed: bool = False) -> list:
    """Why a tenant's mesh-wide PeerAuthentication (root_namespace_mtls) would compete with another: Istio applies one
    mesh-wide policy per root namespace (the oldest), so the root namespace must hold none but the tenant's own, and
    no two tenants of the run may ask for one in the same root namespace. `root_policies` maps a root namespace to its
    live PeerAuthentications; `indexed` names entries of `tenants`."""
    problems, claimed = [], {}
    for index, spec in enumerate(specs):
        if not spec.root_namespace_mtls or spec.revision not in revisions:
            continue
        at = f"tenants[{index}]." if indexed else ""
        root = revisions[spec.revision]["namespace"]
        if root in claimed:
            problems.append(
                f"{at}root_namespace_mtls: tenants {claimed[root]} and {spec.name} both ask for the mesh-wide "
                f"PeerAuthentication of root namespace {root} (revision {spec.revision}); a control plane serving "
                "several tenants gets at most one, so set root_namespace_mtls: true on one tenant only"
            )
        claimed.setdefault(root, spec.name)
        for live in root_policies.get(root, []):
            name = live["metadata"]["name"]
            if name != root_policy_name(spec.name) and not (live.get("spec") or {}).get("selector"):
                problems.append(
                    f"{at}root_namespace_mtls: root namespace {root} of revision {spec.revision} already holds "
                    f"PeerAuthentication {name}, which applies mesh-wide too, and Istio applies only one mesh-wide "
                    "policy (the oldest); remove it, or set root_namespace_mtls: false"
                )
    return problems


def labels_kept(namespace: dict | None) -> dict:
    """The labels of a live namespace that the collection did not write: a run's apply leaves them as they are."""
    if namespace is None:
        return {}
    ours = set()
    for entry in namespace["metadata"].get("managedFields") or []:
        if entry.get("manager") == FIELD_MANAGER:
            fields = ((entry.get("fieldsV1") or {}).get("f:metadata") or {}).get("f:labels") or {}
            ours |= {key.removeprefix("f:") for key in fields}
    return {key: value for key, value in (namespace["metadata"].get("labels") or {}).items() if key not in ours}


def taken_over(spec: TenantSpec, namespaces: dict) -> list:
    """Namespaces this run moves away from another tenant."""
    return sorted(
        entry.name
        for entry in spec.namespaces
        if (namespaces.get(entry.name) or {}).get(TENANT_LABEL) not in (None, spec.name)
    )


def content_not_ours(objects: list) -> list:
    """Objects in a namespace that the collection did not write (blocking namespace deletion)."""
    return [
        o for o in objects
        if (o["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) != "meshops.istio"
        and not (o["kind"] == "ConfigMap" and (o["metadata"]["name"] in SYSTEM_CONFIG_MAPS or _istiods(o)))
    ]  # fmt: skip


def _istiods(config_map: dict) -> bool:
    """A root or CRL ConfigMap istiod publishes, whatever the name (own_trust_bundle renames it per control plane)."""
    key, value = ISTIOD_CONFIG_MAP_LABEL
    labelled = (config_map["metadata"].get("labels") or {}).get(key) == value
    return labelled and set(config_map.get("data") or {}) <= ISTIOD_CONFIG_MAP_KEYS


# Cluster: what the module calls


@dataclass(frozen=True)
class _ClusterView:
    """What onboarding reads, once per run however many tenants: the installed revisions, every namespace (and its
    labels), and the tenant objects the collection owns, by tenant."""

    revisions: dict
    namespaces: dict  # name -> Namespace
    labels: dict  # name -> its labels
    owned: dict  # tenant -> {identity: object}
    root_policies: dict = field(default_factory=dict)  # root namespace -> its PeerAuthentications
    roots: object = field(default_factory=dict)  # system namespace -> its root (shared_root.Roots)
    others: dict = field(default_factory=dict)  # identity -> object or None: where policies go, not the run's

    def members(self, tenant: str) -> set:
        return set(self._members_by_tenant.get(tenant, ()))

    @cached_property
    def _members_by_tenant(self) -> dict:
        """{tenant: its namespaces}, built once: asking every namespace for every tenant grows with their product."""
        members = {}
        for name, labels in self.labels.items():
            members.setdefault(labels.get(TENANT_LABEL), set()).add(name)
        return members


def _read_view(cluster: Cluster, tenants: list) -> _ClusterView:
    """One LIST of revisions, one of namespaces, and one per tenant kind: of one tenant's objects, or of every
    tenant's when there are several. Reads grow with the kinds, not with the tenants."""
    selector = f"{MANAGED_BY_LABEL}={FIELD_MANAGER},{TENANT_LABEL}" + (f"={tenants[0]}" if len(tenants) == 1 else "")
    owned = {tenant: {} for tenant in tenants}
    for kind in TENANT_KINDS:
        for obj in cluster.list_objects(kind, label_selector=selector):
            owned.setdefault(obj["metadata"]["labels"][TENANT_LABEL], {})[identity(obj)] = obj
    namespaces = {ns["metadata"]["name"]: ns for ns in cluster.list_objects("Namespace")}
    return _ClusterView(
        revisions=installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL)),
        namespaces=namespaces,
        labels={name: ns["metadata"].get("labels") or {} for name, ns in namespaces.items()},
        owned=owned,
    )


def _engine(cluster: Cluster, spec: TenantSpec, check_mode: bool, in_flight: int = MAX_IN_FLIGHT) -> Engine:
    force = spec.force_conflicts or spec.takeover  # a takeover takes the namespace's labels over
    return Engine(cluster, Owner(OWNER_KIND, spec.name), check_mode, force, in_flight)


def _result(objects: list, namespaces: dict, released: list) -> dict:
    return {
        "namespaces": [{"name": n, "labels": labels} for n, labels in sorted(namespaces.items())],
        "policies": [o for o in objects if o["kind"] in TENANT_KINDS and o["action"] != "deleted"],
        "released": released,
        "objects": objects,
    }


def _onboard(engine: Engine, spec: TenantSpec, view: _ClusterView, claimed: set) -> tuple:
    """Label the tenant's namespaces, isolate them, release those it no longer lists (and no tenant of this run
    `claimed`). Returns (result, warnings).

    The order keeps isolation at every step: a namespace gets the label that makes it injected (istio.io/rev) only
    after its STRICT mTLS and policies exist, and a namespace leaving the tenant loses its labels before its
    policies go; a run failing half-way leaves no injected namespace without them."""
    warnings, manifests = [], {entry.name: namespace_manifest(spec, entry) for entry in spec.namespaces}
    lives = {}  # each namespace as it stands before its last write
    for entry in spec.namespaces:
        live = view.namespaces.get(entry.name, ABSENT)  # the view holds every namespace
        if live is not ABSENT and INJECTION_LABEL in (live["metadata"].get("labels") or {}):
            warnings.append(f"namespace {entry.name}: removed label {INJECTION_LABEL} (revision label is used)")
            engine.remove_labels(live, [INJECTION_LABEL])
        if _not_yet_injected(view, entry.name, spec) and not engine.check_mode:
            live = engine.ensure_shared(_without_injection(manifests[entry.name]), live, _force(view, entry.name, spec))
        lives[entry.name] = live
    cluster = engine.cluster
    taken = [obj for ns in taken_over(spec, view.labels) for obj in _other_tenants_objects(cluster, ns, spec.name)]
    engine.delete_objects(taken)
    deleted = {identity(obj) for obj in taken}  # read again when written
    others = {key: live for key, live in view.others.items() if key not in deleted}
    # A revision's system namespace carries its discovery label, which is the tenant label by default: never a member.
    system_namespaces = {info["namespace"] for info in view.revisions.values()}
    released = sorted(view.members(spec.name) - claimed - system_namespaces)
    for namespace in released:
        engine.release("Namespace", namespace)
    system_namespace = view.revisions[spec.revision]["namespace"]
    engine.ensure_present(policies(spec, system_namespace), TENANT_KINDS, view.owned.get(spec.name, {}), others=others)
    for entry in spec.namespaces:
        engine.ensure_shared(manifests[entry.name], lives[entry.name], _force(view, entry.name, spec))
    final_labels = {name: manifest["metadata"]["labels"] for name, manifest in manifests.items()}
    return _result(engine.report.objects, final_labels, released), warnings


def _not_yet_injected(view: _ClusterView, namespace: str, spec: TenantSpec) -> bool:
    return view.labels.get(namespace, {}).get(REV_LABEL) != spec.revision


def _without_injection(manifest: dict) -> dict:
    labels = {k: v for k, v in manifest["metadata"]["labels"].items() if k != REV_LABEL}
    return {**manifest, "metadata": {**manifest["metadata"], "labels": labels}}


def _force(view: _ClusterView, namespace: str, spec: TenantSpec) -> bool | None:
    """A namespace already ours whose labels were changed by hand is drift: take the labels back."""
    return True if view.labels.get(namespace, {}).get(TENANT_LABEL) == spec.name else None


def _other_tenants_objects(cluster: Cluster, namespace: str, name: str) -> list:
    selector = f"{MANAGED_BY_LABEL}={FIELD_MANAGER},{TENANT_LABEL},{TENANT_LABEL}!={name}"
    return [obj for kind in TENANT_KINDS for obj in cluster.list_objects(kind, selector, namespace)]


def _offboard(engine: Engine, spec: TenantSpec) -> dict:
    """Remove what the tenant owns; release its namespaces, or delete them when asked and safe."""
    members = _members(engine.cluster, spec.name)
    if spec.delete_namespaces and not spec.force:
        blocked = {
            namespace: content_not_ours(
                [o for kind in CONTENT_KINDS for o in engine.cluster.list_objects(kind, None, namespace)]
            )
            for namespace in members
        }
        blocked = {ns: objs for ns, objs in blocked.items() if objs}
        if blocked:
            detail = "; ".join(
                f"{ns}: {', '.join(sorted({o['kind'] + ' ' + o['metadata']['name'] for o in objs})[:5])}"
                for ns, objs in sorted(blocked.items())
            )
            raise Refusal(
                f"delete_namespaces would delete objects meshops.istio does not own ({detail}); "
                "move them out first, or set force: true"
            )
    if spec.delete_namespaces:
        engine.ensure_absent(TENANT_KINDS)
        engine.delete_objects(members.values())
        released = []
    else:  # labels first, policies after: never an injected namespace without its policies
        released = sorted(members)
        for namespace in released:
            engine.release("Namespace", namespace)
        engine.ensure_absent(TENANT_KINDS)
    return _result(engine.report.objects, {}, released)


def _members(cluster: Cluster, name: str) -> dict:
    return {
        ns["metadata"]["name"]: ns for ns in cluster.list_objects("Namespace", label_selector=f"{TENANT_LABEL}={name}")
    }


def _refuse(specs: list, view: _ClusterView) -> None:
    problems = []
    kept = {name: labels_kept(namespace) for name, namespace in view.namespaces.items()}
    for index, spec in enumerate(specs):
        prefix, at = (f"tenant {spec.name}: ", f"tenants[{index}].") if len(specs) > 1 else ("", "")
        problems += [prefix + problem for problem in refusals(spec, view.revisions, view.labels, kept, at, view.roots)]
    problems += root_policy_problems(specs, view.revisions, view.root_policies, len(specs) > 1)
    refuse(problems)


def _with_root_policies(cluster: Cluster, view: _ClusterView, specs: list) -> _ClusterView:
    """The view with the PeerAuthentications of each root namespace a tenant puts mesh-wide mTLS in: one LIST per
    such namespace, none when no tenant asks for it."""
    roots = {
        view.revisions[s.revision]["namespace"] for s in specs if s.root_namespace_mtls and s.revision in view.revisions
    }
    found = {root: cluster.list_objects("PeerAuthentication", None, root) for root in sorted(roots)}
    return replace(view, root_policies=found)


def _with_others(cluster: Cluster, view: _ClusterView, specs: list) -> _ClusterView:
    """The view with what stands where the tenants' policies go (engine.read_existing): a LIST per policy name
    instead of a GET per namespace. Objects another tenant of the run owns are left out, to be read when written:
    that tenant may delete them first (a takeover)."""
    owned_by_the_run = set().union(*(view.owned.get(spec.name, {}) for spec in specs))
    wanted = {
        identity(manifest) for spec in specs for manifest in policies(spec, view.revisions[spec.revision]["namespace"])
    } - owned_by_the_run
    return replace(view, others={**dict.fromkeys(wanted), **read_existing(cluster, wanted)})


def _with_plan(cluster: Cluster, view: _ClusterView, plan: RunPlan, check_mode: bool) -> tuple:
    """(the view with the revisions the run's plan installs and the roots their cacerts hold, notes): the plan
    counts in check mode only, see planned.py."""
    revisions, note = with_planned_revisions(view.revisions, plan.revisions, check_mode)
    roots = Roots(cluster, planned_roots(plan.revisions) if check_mode else None)
    return replace(view, revisions=revisions, roots=roots), [note] if note else []


def ensure_tenant_present(
    cluster: Cluster,
    spec: TenantSpec,
    check_mode: bool,
    guard: GuardSpec | None = None,
    plan: RunPlan = NOTHING_PLANNED,
) -> tuple:
    """Onboard the tenant's namespaces and isolate them. Returns (result, warnings, diff). In check mode, `plan`
    holds the revisions earlier steps of the same run install (planned.py); a warning says when it was used."""
    validate(spec)
    view, notes = _with_plan(cluster, _read_view(cluster, [spec.name]), plan, check_mode)
    view = _with_root_policies(cluster, view, [spec])
    _refuse([spec], view)
    view = _with_others(cluster, view, [spec])
    guarded = _guard(cluster, guard, _discovery_keys([spec]), check_mode)
    engine = _engine(cluster, spec, check_mode)
    result, warnings = _onboard(engine, spec, view, spec.namespace_names)
    report = Report.combined([guarded, engine.report])
    return {"changed": report.changed, **result, "objects": report.objects}, notes + warnings, report.diff


def ensure_tenant_absent(cluster: Cluster, spec: TenantSpec, check_mode: bool, guard: GuardSpec | None = None) -> tuple:
    """Remove what this tenant owns; release its namespaces, or delete them when asked and safe."""
    validate(spec)
    guarded = _guard(cluster, guard, (), check_mode)
    engine = _engine(cluster, spec, check_mode)
    result = _offboard(engine, spec)
    removed = _remove_guard_when_no_tenant_left(cluster, [spec], guard, check_mode)
    report = Report.combined([guarded, engine.report, *removed])
    return {"changed": report.changed, **result, "objects": report.objects}, [], report.diff


def ensure_tenants(
    cluster: Cluster,
    specs: list,
    check_mode: bool,
    guard: GuardSpec | None = None,
    plan: RunPlan = NOTHING_PLANNED,
    skip=None,
) -> tuple:
    """Many tenants in one run (option `tenants`: a TenantSpec per entry). Onboarding reads the cluster once and
    checks every tenant before anything is written; then the tenants converge side by side, each in the order it
    would alone. A tenant that fails does not stop the others: its error is kept in the result's `failed`
    ({name: error}) and the caller decides (TenantsRun). Tenants named in `skip` ({name: error}) are not written at
    all.
    Returns (result, warnings, diff)."""
    validate_tenants(specs)
    skip = skip or {}
    tenants, warnings, failed = [], [], {}
    present = bool(specs) and specs[0].state == "present"
    if present:
        view, warnings = _with_plan(cluster, _read_view(cluster, [spec.name for spec in specs]), plan, check_mode)
        view = _with_root_policies(cluster, view, specs)
        _refuse(specs, view)
        view = _with_others(cluster, view, specs)
        claimed = set().union(*(spec.namespace_names for spec in specs))
    guarded = _guard(cluster, guard, _discovery_keys(specs) if present else (), check_mode)
    todo = [index for index, spec in enumerate(specs) if spec.name not in skip]
    # Tenants converge side by side and share the engine's budget of requests in flight; each keeps its own order.
    in_flight = max(1, MAX_IN_FLIGHT // max(1, len(todo)))
    engines = [_engine(cluster, spec, check_mode, in_flight) for spec in specs]

    def converge(index: int):
        """(result, warnings) of one tenant, or the error that sets it aside."""
        try:
            with _naming_entry(index, specs[index]):
                if present:
                    return _onboard(engines[index], specs[index], view, claimed)
                return _offboard(engines[index], specs[index]), []
        except (Refusal, EngineError) as error:
            return error

    converged, error = in_parallel(todo, converge, MAX_IN_FLIGHT)
    if error is not None:
        raise error
    outcomes = dict(converged)
    for index, spec in enumerate(specs):
        outcome = skip[spec.name] if spec.name in skip else outcomes[index]
        if isinstance(outcome, Exception):
            failed[spec.name] = outcome
            continue
        result, more = outcome
        tenants.append(_tenant_summary(spec, result))
        warnings += more
    removed = [] if present or failed else _remove_guard_when_no_tenant_left(cluster, specs, guard, check_mode)
    report = Report.combined([guarded, *(e.report for e in engines if e.owner.name not in failed), *removed])
    result = {"changed": report.changed, "tenants": tenants, "objects": report.objects, "failed": failed}
    return result, warnings, report.diff


# What sets one tenant aside instead of failing the whole run: state of its namespaces, not a fault of the plan.
IN_THE_WAY = (ForeignObjects, FieldConflict)


class TenantsRun(SetAsideRun):
    """The action of an istio_tenant run with `tenants` (batch.SetAsideRun): a tenant whose own namespaces hold
    something in the way (IN_THE_WAY: an object the collection does not own, or fields another manager owns on one)
    is set aside while the others converge."""

    in_the_way = IN_THE_WAY

    def __init__(self, specs: list, guard: GuardSpec, plan: RunPlan = NOTHING_PLANNED):
        super().__init__(specs)
        self.guard = guard
        self.plan = plan

    def ensure(self, cluster: Cluster, check_mode: bool, skip: dict) -> tuple:
        return ensure_tenants(cluster, self.specs, check_mode, self.guard, self.plan, skip)

    def failure(self, failed: dict, written: bool) -> Exception:
        return EngineError(failure_sentence(failed, [spec.name for spec in self.specs], written, "tenants"))


def _guard(cluster: Cluster, guard: GuardSpec | None, discovery_keys, check_mode: bool) -> Report:
    """The guard's report after installing, updating or removing it as `guard` asks; None leaves it alone."""
    return Report() if guard is None else ensure_guard(cluster, guard, discovery_keys, check_mode).report


def _discovery_keys(specs: list) -> set:
    return {key for spec in specs for key in spec.discovery_label}


def _remove_guard_when_no_tenant_left(cluster: Cluster, specs: list, guard: GuardSpec | None, check_mode: bool) -> list:
    """After offboarding: the guard goes with the last tenant namespace (the reports of what it did)."""
    leaving = {spec.name for spec in specs}
    remaining = [
        ns for ns in cluster.list_objects("Namespace", label_selector=TENANT_LABEL)
        if ns["metadata"]["labels"][TENANT_LABEL] not in leaving
    ]  # fmt: skip
    if remaining or guard is None or not guard.enabled:
        return []
    return [remove_guard(cluster, check_mode).report]


@contextlib.contextmanager
def _naming_entry(index: int, spec: TenantSpec):
    """An API server's refusal of one tenant's object names the `tenants` entry it came from."""
    try:
        yield
    except (Refusal, EngineError) as error:
        raise type(error)(f"tenants[{index}] ({spec.name}): {error}") from error


def _tenant_summary(spec: TenantSpec, result: dict) -> dict:
    """One tenant's part of a many-tenant result (the run returns every object once, at the top)."""
    return {"name": spec.name, **{key: value for key, value in result.items() if key != "objects"}}
