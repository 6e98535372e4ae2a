# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tenant: namespaces served by one control plane revision, and the policies that isolate them.

Pure builders and guards first; `ensure_tenant_present` / `ensure_tenant_absent` (one tenant) and `ensure_tenants`
(option `tenants`: many in one run) are what istio_tenant calls.
Membership is the namespace label `meshops.io/tenant=<name>` (next to `istio.io/rev` and the discovery label);
policies carry the owner labels and are pruned by them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from .apply import MANAGED_BY_LABEL, Engine, Owner, Report, identity
from .names import DNS_LABEL, is_label_key, is_label_value
from .planned import with_planned_revisions
from .revision import INJECTION_LABEL, REV_LABEL, installed_revisions
from .selectors import any_matches

OWNER_KIND = "tenant"
TENANT_LABEL = f"meshops.io/{OWNER_KIND}"
ISOLATION_NAME = "meshops-tenant-isolation"
ADMINS_NAME = "meshops-tenant-admins"
TENANT_KINDS = ("PeerAuthentication", "AuthorizationPolicy", "Sidecar", "NetworkPolicy", "RoleBinding")
# Pods and claims show workloads or data; the config maps Kubernetes and istiod put everywhere do not count.
CONTENT_KINDS = ("Pod", "PersistentVolumeClaim", "Service", "ConfigMap", "Secret")
SYSTEM_CONFIG_MAPS = {"kube-root-ca.crt", "istio-ca-root-cert"}


class TenantError(Exception):
    """Refusal before anything is written; the message names the parameter and the fix."""


# Pure: parameters


def tenant_namespaces(params: dict) -> list:
    """`namespaces` entries as dicts: a bare name or {name, labels, annotations}."""
    entries = []
    for entry in params["namespaces"] or []:
        entry = {"name": entry} if isinstance(entry, str) else dict(entry)
        entry.setdefault("labels", {})
        entry.setdefault("annotations", {})
        entries.append(entry)
    return entries


def discovery_label(params: dict) -> dict:
    return dict(params["discovery_label"] or {TENANT_LABEL: params["name"]})


def validate(params: dict) -> None:
    errors = []
    if not DNS_LABEL.match(params["name"] or ""):
        errors.append(f"name {params['name']!r} must be a DNS-1123 label: lower-case letters, digits and '-'")
    if params["state"] == "present" and not params["revision"]:
        errors.append("revision is required with state=present; name the control plane that serves the tenant")
    names = []
    for index, entry in enumerate(params["namespaces"] or []):
        name = entry if isinstance(entry, str) else (entry or {}).get("name")
        if not isinstance(name, str) or not DNS_LABEL.match(name):
            errors.append(f"namespaces[{index}] {name!r} must be a DNS-1123 label (a namespace name)")
        names.append(name)
    duplicates = sorted({n for n in names if names.count(n) > 1 and isinstance(n, str)})
    if duplicates:
        errors.append(f"namespaces lists {', '.join(duplicates)} more than once")
    labels = dict(discovery_label(params))
    for entry in tenant_namespaces(params):
        labels.update(entry["labels"])
    for key, value in labels.items():
        if not is_label_key(key) or not is_label_value(value):
            errors.append(f"label {key}={value!r} is not a valid Kubernetes label (quote values, <= 63 characters)")
    if errors:
        raise TenantError("; ".join(errors))


# Pure: what the tenant looks like


def namespace_manifest(params: dict, entry: dict) -> dict:
    labels = {
        **entry["labels"],
        **discovery_label(params),
        REV_LABEL: params["revision"],
        TENANT_LABEL: params["name"],
    }
    metadata = {"name": entry["name"], "labels": labels}
    if entry["annotations"]:
        metadata["annotations"] = dict(entry["annotations"])
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def _allowed_namespaces(params: dict, system_namespace: str) -> list:
    isolation = params["isolation"] or {}
    names = [e["name"] for e in tenant_namespaces(params)]
    return sorted(set(names) | {system_namespace} | set(isolation.get("allow_namespaces") or []))


def policies(params: dict, system_namespace: str) -> list:
    """Per tenant namespace: mTLS, authorization, sidecar scope, network policy and admin binding, as asked."""
    isolation = params["isolation"] or {}
    allowed = _allowed_namespaces(params, system_namespace)
    manifests = []
    for entry in tenant_namespaces(params):
        namespace = entry["name"]
        if params["mtls"] != "none":
            manifests.append(_istio("security.istio.io/v1", "PeerAuthentication", "default", namespace,
                                    {"mtls": {"mode": params["mtls"]}}))  # fmt: skip
        if isolation.get("authorization", True):
            rules = [{"from": [{"source": {"namespaces": allowed}}]}]
            manifests.append(_istio("security.istio.io/v1", "AuthorizationPolicy", ISOLATION_NAME, namespace,
                                    {"action": "ALLOW", "rules": rules}))  # fmt: skip
        if isolation.get("sidecar_scope", True):
            hosts = [f"{name}/*" for name in allowed]
            manifests.append(_istio("networking.istio.io/v1", "Sidecar", "default", namespace,
                                    {"egress": [{"hosts": hosts}]}))  # fmt: skip
        if isolation.get("network_policy", True):
            manifests.append(_network_policy(namespace, allowed))
        subjects = _admin_subjects(isolation.get("admins") or {})
        if subjects:
            manifests.append(_admin_binding(namespace, subjects))
    return manifests


def _istio(api_version, kind, name, namespace, spec):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _network_policy(namespace: str, allowed: list) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": ISOLATION_NAME, "namespace": namespace},
        "spec": {
            # Gateway pods (label `istio`) stay reachable from outside; every other pod only from allowed namespaces.
            "podSelector": {"matchExpressions": [{"key": "istio", "operator": "DoesNotExist"}]},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": allowed}
                                ]
                            }
                        }
                    ]
                }
            ],
        },
    }


def _admin_subjects(admins: dict) -> list:
    group = "rbac.authorization.k8s.io"
    return [{"apiGroup": group, "kind": "User", "name": u} for u in admins.get("users") or []] + [
        {"apiGroup": group, "kind": "Group", "name": g} for g in admins.get("groups") or []
    ]


def _admin_binding(namespace: str, subjects: list) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ADMINS_NAME, "namespace": namespace},
        # The built-in `admin` ClusterRole, bound in the namespace: full control there, nothing elsewhere.
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": subjects,
    }


# Pure: guards


def _missing_for(selectors: list, labels: dict) -> str:
    """The labels a namespace lacks for the first matchLabels selector, as `k=v` text."""
    for selector in selectors:
        missing = {k: v for k, v in (selector.get("matchLabels") or {}).items() if labels.get(k) != v}
        if missing:
            return ", ".join(f"{k}={v}" for k, v in missing.items())
    return "a label the revision's matchExpressions require"


def refusals(params: dict, revisions: dict, namespaces: dict) -> list:
    """Why onboarding would break isolation or the tenant itself (empty when it is safe).
    `namespaces` maps every existing namespace to its labels."""
    name, revision = params["name"], params["revision"]
    if revision not in revisions:
        installed = ", ".join(sorted(revisions)) or "none"
        return [f"revision {revision} is not installed (installed: {installed}); install it with istio_revision first"]
    problems = []
    system_namespaces = {info["namespace"]: rev for rev, info in revisions.items()}
    for entry in tenant_namespaces(params):
        namespace, labels = entry["name"], namespaces.get(entry["name"])
        if namespace in system_namespaces:
            owner_revision = system_namespaces[namespace]
            problems.append(
                f"namespace {namespace} is the system namespace of revision {owner_revision}; "
                "tenants get namespaces of their own"
            )
            continue
        if labels is None and not params["create_namespaces"]:
            problems.append(f"namespace {namespace} does not exist; create it or set create_namespaces: true")
            continue
        labels = labels or {}
        owner = labels.get(TENANT_LABEL)
        if owner and owner != name and not params["takeover"]:
            problems.append(f"namespace {namespace} belongs to tenant {owner}; set takeover: true to move it")
        elif owner != name and labels.get(REV_LABEL) not in (None, revision) and not params["takeover"]:
            problems.append(
                f"namespace {namespace} carries {REV_LABEL}={labels[REV_LABEL]} (another mesh); set takeover: true "
                "to move it to this tenant"
            )
        final = namespace_manifest(params, entry)["metadata"]["labels"]
        selectors = revisions[revision]["selectors"]
        if not any_matches(selectors, final):
            problems.append(
                f"revision {revision}'s discoverySelectors would not select namespace {namespace}: it lacks "
                f"{_missing_for(selectors, final)}; set discovery_label (or the namespace's labels) to match"
            )
    return problems


def taken_over(params: dict, namespaces: dict) -> list:
    """Namespaces this run moves away from another tenant."""
    return sorted(
        entry["name"]
        for entry in tenant_namespaces(params)
        if (namespaces.get(entry["name"]) or {}).get(TENANT_LABEL) not in (None, params["name"])
    )


def content_not_ours(objects: list) -> list:
    """Objects in a namespace that the collection did not write (blocking namespace deletion)."""
    return [
        o for o in objects
        if (o["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) != "meshops.istio"
        and not (o["kind"] == "ConfigMap" and o["metadata"]["name"] in SYSTEM_CONFIG_MAPS)
    ]  # fmt: skip


# Pure: many tenants in one run


def validate_tenants(entries: list) -> None:
    """Every entry of `tenants` valid, no tenant twice, no namespace claimed by two tenants."""
    errors = []
    for entry in entries:
        try:
            validate(entry)
        except TenantError as error:
            errors.append(f"tenant {entry['name']}: {error}")
    names = Counter(entry["name"] for entry in entries)
    twice = sorted(name for name, count in names.items() if count > 1)
    if twice:
        errors.append(f"tenants lists {', '.join(twice)} more than once; describe each tenant once")
    claims = {}
    for entry in entries:
        for namespace in _names(entry):
            claims.setdefault(namespace, []).append(entry["name"])
    for namespace, claimants in sorted(claims.items()):
        if len(set(claimants)) > 1:
            errors.append(
                f"namespace {namespace} is listed by tenants {', '.join(sorted(set(claimants)))}; "
                "a namespace belongs to one tenant"
            )
    if errors:
        raise TenantError("; ".join(errors))


def _names(params: dict) -> set:
    return {entry if isinstance(entry, str) else (entry or {}).get("name") for entry in params["namespaces"] or []}


# Cluster: what the module calls


@dataclass(frozen=True)
class ClusterView:
    """What onboarding reads, once per run however many tenants: the installed revisions, every namespace (and its
    labels), and the tenant objects the collection owns, by tenant."""

    revisions: dict
    namespaces: dict  # name -> Namespace
    labels: dict  # name -> its labels
    owned: dict  # tenant -> {identity: object}

    def members(self, tenant: str) -> set:
        return {name for name, labels in self.labels.items() if labels.get(TENANT_LABEL) == tenant}


def read_view(engine: Engine, tenants: list) -> ClusterView:
    """One LIST of revisions, one of namespaces, and one per tenant kind: of one tenant's objects, or of every
    tenant's when there are several. Reads grow with the kinds, not with the tenants."""
    selector = f"{MANAGED_BY_LABEL}=meshops.istio,{TENANT_LABEL}" + (f"={tenants[0]}" if len(tenants) == 1 else "")
    owned = {tenant: {} for tenant in tenants}
    for kind in TENANT_KINDS:
        for obj in engine.list_objects(kind, label_selector=selector):
            owned.setdefault(obj["metadata"]["labels"][TENANT_LABEL], {})[identity(obj)] = obj
    namespaces = {ns["metadata"]["name"]: ns for ns in engine.list_objects("Namespace")}
    return ClusterView(
        revisions=installed_revisions(engine.list_objects("ConfigMap", label_selector=REV_LABEL)),
        namespaces=namespaces,
        labels={name: ns["metadata"].get("labels") or {} for name, ns in namespaces.items()},
        owned=owned,
    )


def _engine(client, params: dict, check_mode: bool, report: Report | None = None) -> Engine:
    force = params["force_conflicts"] or params["takeover"]  # a takeover takes the namespace's labels over
    return Engine(client, Owner(OWNER_KIND, params["name"]), check_mode, force, report)


def _result(objects: list, namespaces: dict, released: list) -> dict:
    return {
        "namespaces": [{"name": n, "labels": labels} for n, labels in sorted(namespaces.items())],
        "policies": [o for o in objects if o["kind"] in TENANT_KINDS and o["action"] != "deleted"],
        "released": released,
        "objects": objects,
    }


def _onboard(engine: Engine, params: dict, view: ClusterView, claimed: set) -> tuple:
    """Label the tenant's namespaces, isolate them, release those it no longer lists (and no tenant of this run
    `claimed`). Returns (result, warnings)."""
    start = len(engine.report.objects)
    warnings, final_labels = [], {}
    for entry in tenant_namespaces(params):
        manifest, live = namespace_manifest(params, entry), view.namespaces.get(entry["name"])
        # A namespace already ours whose labels were changed by hand is drift: take the labels back.
        ours = view.labels.get(entry["name"], {}).get(TENANT_LABEL) == params["name"]
        engine.ensure_shared(manifest, live, force=True if ours else None)
        if live and INJECTION_LABEL in (live["metadata"].get("labels") or {}):
            warnings.append(f"namespace {entry['name']}: removed label {INJECTION_LABEL} (revision label is used)")
            engine.remove_labels(live, [INJECTION_LABEL])
        final_labels[entry["name"]] = manifest["metadata"]["labels"]
    for namespace in taken_over(params, view.labels):
        engine.delete_objects(_other_tenants_objects(engine, namespace, params["name"]))
    system_namespace = view.revisions[params["revision"]]["namespace"]
    engine.ensure_present(policies(params, system_namespace), TENANT_KINDS, view.owned.get(params["name"], {}))
    # A revision's system namespace carries its selector label, which is the tenant label by default: not a member.
    system_namespaces = {info["namespace"] for info in view.revisions.values()}
    released = sorted(view.members(params["name"]) - claimed - system_namespaces)
    for namespace in released:
        engine.release("Namespace", namespace)
    return _result(engine.report.objects[start:], final_labels, released), warnings


def _other_tenants_objects(engine: Engine, namespace: str, name: str) -> list:
    selector = f"{MANAGED_BY_LABEL}=meshops.istio,{TENANT_LABEL},{TENANT_LABEL}!={name}"
    return [obj for kind in TENANT_KINDS for obj in engine.list_objects(kind, selector, namespace)]


def _offboard(engine: Engine, params: dict) -> dict:
    """Remove what the tenant owns; release its namespaces, or delete them when asked and safe."""
    start = len(engine.report.objects)
    members = _members(engine, params["name"])
    if params["delete_namespaces"] and not params["force"]:
        blocked = {
            namespace: content_not_ours(
                [o for kind in CONTENT_KINDS for o in engine.list_objects(kind, None, namespace)]
            )
            for namespace in members
        }
        blocked = {ns: objs for ns, objs in blocked.items() if objs}
        if blocked:
            detail = "; ".join(
                f"{ns}: {', '.join(sorted({o['kind'] + ' ' + o['metadata']['name'] for o in objs})[:5])}"
                for ns, objs in sorted(blocked.items())
            )
            raise TenantError(
                f"delete_namespaces would delete objects meshops.istio does not own ({detail}); "
                "move them out first, or set force: true"
            )
    engine.ensure_absent(TENANT_KINDS)
    if params["delete_namespaces"]:
        engine.delete_objects(members.values())
        released = []
    else:
        released = sorted(members)
        for namespace in released:
            engine.release("Namespace", namespace)
    return _result(engine.report.objects[start:], {}, released)


def _members(engine: Engine, name: str) -> dict:
    return {
        ns["metadata"]["name"]: ns for ns in engine.list_objects("Namespace", label_selector=f"{TENANT_LABEL}={name}")
    }


def _refuse(entries: list, view: ClusterView) -> None:
    problems = []
    for params in entries:
        prefix = f"tenant {params['name']}: " if len(entries) > 1 else ""
        problems += [prefix + problem for problem in refusals(params, view.revisions, view.labels)]
    if problems:
        raise TenantError("; ".join(problems))


def _with_plan(view: ClusterView, planned_revisions, check_mode: bool) -> tuple:
    """(the view with the revisions this run plans, notes): check mode only, see planned.py."""
    revisions, note = with_planned_revisions(view.revisions, planned_revisions, check_mode)
    return replace(view, revisions=revisions), [note] if note else []


def ensure_tenant_present(client, params: dict, check_mode: bool, planned_revisions=()) -> tuple:
    """Onboard the tenant's namespaces and isolate them. Returns (result, warnings, diff)."""
    validate(params)
    engine = _engine(client, params, check_mode)
    view, notes = _with_plan(read_view(engine, [params["name"]]), planned_revisions, check_mode)
    _refuse([params], view)
    result, warnings = _onboard(engine, params, view, _names(params))
    return {"changed": engine.report.changed, **result}, notes + warnings, engine.report.diff


def ensure_tenant_absent(client, params: dict, check_mode: bool) -> tuple:
    """Remove what this tenant owns; release its namespaces, or delete them when asked and safe."""
    validate(params)
    engine = _engine(client, params, check_mode)
    result = _offboard(engine, params)
    return {"changed": engine.report.changed, **result}, [], engine.report.diff


def ensure_tenants(client, entries: list, check_mode: bool, planned_revisions=()) -> tuple:
    """Many tenants in one run (option `tenants`, each entry complete per-tenant params). Onboarding reads the
    cluster once and checks every tenant before anything is written; then each tenant converges as it would alone.
    Returns (result, warnings, diff)."""
    validate_tenants(entries)
    report = Report()
    tenants, warnings = [], []
    if entries and entries[0]["state"] == "present":
        view = read_view(_engine(client, entries[0], check_mode, report), [params["name"] for params in entries])
        view, warnings = _with_plan(view, planned_revisions, check_mode)
        _refuse(entries, view)
        claimed = set().union(*(_names(params) for params in entries))
        for params in entries:
            result, more = _onboard(_engine(client, params, check_mode, report), params, view, claimed)
            tenants.append(_tenant_summary(params, result))
            warnings += more
    else:
        for params in entries:
            tenants.append(_tenant_summary(params, _offboard(_engine(client, params, check_mode, report), params)))
    return {"changed": report.changed, "tenants": tenants, "objects": report.objects}, warnings, report.diff


def _tenant_summary(params: dict, result: dict) -> dict:
    """One tenant's part of a many-tenant result (the run returns every object once, at the top)."""
    return {"name": params["name"], **{key: value for key, value in result.items() if key != "objects"}}
