# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The isolation invariants verify.yml asserts, evaluated on what a cluster holds (read only).

`analyze` is pure: it takes listed objects and returns a report per tenant plus every problem as a sentence.
`gather_isolation_report` lists what it needs through a Cluster and calls it."""

from __future__ import annotations

from . import pki
from .cacerts import SECRET_NAME, bundle_problem, describe_bundle, secret_files
from .cluster import Cluster
from .compare import is_subset
from .engine import rollout_problem
from .gateway.spec import OWNER_LABEL as GATEWAY_LABEL
from .selectors import any_matches, matches
from .shared_root import root_id, sharing_problem
from .tenant_policies import ISOLATION_NAME, root_policy_name
from .tenant_policies import policies as policies_of
from .tenant_spec import TENANT_LABEL, AdminsSpec, IsolationSpec, NamespaceSpec, TenantSpec, broad_subjects
from .vocabulary import FIELD_MANAGER, MANAGED_BY_LABEL, REV_LABEL, installed_revisions

# (kind, name, isolation option that turns it off)
EXPECTED_POLICIES = (
    ("AuthorizationPolicy", ISOLATION_NAME, "authorization"),
    ("Sidecar", "default", "sidecar_scope"),
    ("NetworkPolicy", ISOLATION_NAME, "network_policy"),
)
# The invariants checked for every tenant namespace, in the order their problems are reported.
NAMESPACE_INVARIANTS = (
    "labelled for its tenant",
    "selected by exactly its revision",
    "exactly one injector",
    "mTLS as desired",
    "isolation policies in place",
    "no wildcard or broad access",
)
NO_OVERLAP = "no two revisions select the same namespace"


def injector_webhooks(webhook_configurations: list, labels: dict) -> list:
    """`<configuration>/<webhook>` of every Istio injector webhook whose namespaceSelector admits `labels`."""
    found = []
    for configuration in webhook_configurations:
        if REV_LABEL not in (configuration["metadata"].get("labels") or {}):
            continue
        for webhook in configuration.get("webhooks") or []:
            if matches(webhook.get("namespaceSelector") or {}, labels):
                found.append(f"{configuration['metadata']['name']}/{webhook['name']}")
    return sorted(found)


def same_control_plane(revisions: dict, first: str, second: str) -> bool:
    """Revisions in one system namespace (a canary upgrade) share its CA and may select the same namespaces."""
    return revisions[first]["namespace"] == revisions[second]["namespace"]


def selector_overlaps(revisions: dict, namespaces: dict, roots: dict) -> list:
    """Sentences for every existing namespace the discoverySelectors of two control planes both select, shared
    namespaces (shared_root.py) aside. `roots` maps a system namespace to its root."""
    names = sorted(revisions)
    problems = []
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            if same_control_plane(revisions, first, second):
                continue
            why = {
                ns: sharing_problem(revisions, first, second, labels, roots)
                for ns, labels in sorted(namespaces.items())
                if any_matches(revisions[first]["selectors"], labels)
                and any_matches(revisions[second]["selectors"], labels)
            }
            overlap = [ns for ns, problem in why.items() if problem]
            if overlap:
                problems.append(
                    f"revisions {first} and {second} both select namespaces {', '.join(overlap)} and may not share "
                    f"them: {why[overlap[0]]}"
                )
    return problems


def shared_namespaces(revisions: dict, namespaces: dict, roots: dict) -> dict:
    """{namespace: facts} of every existing namespace that revisions of more than one control plane select: which
    revisions, the root (when they all hold one), the revision its istio.io/rev names, and why it may not be shared
    (None when it may)."""
    found = {}
    for ns, labels in sorted(namespaces.items()):
        selected_by = sorted(r for r, info in revisions.items() if any_matches(info["selectors"], labels))
        if len({revisions[r]["namespace"] for r in selected_by}) < 2:
            continue
        problems = [
            sharing_problem(revisions, first, second, labels, roots)
            for first in selected_by
            for second in selected_by
            if first < second and not same_control_plane(revisions, first, second)
        ]
        held = {roots.get(revisions[r]["namespace"]) for r in selected_by}
        found[ns] = {
            "selected_by": selected_by,
            "root": held.pop() if len(held) == 1 else None,
            "injected_by": labels.get(REV_LABEL) if labels.get(REV_LABEL) in selected_by else None,
            "problem": next((problem for problem in problems if problem), None),
        }
    return found


def _namespace_checks(tenant: dict, namespace: str, state: dict) -> tuple:
    """(facts, problems) for one tenant namespace; facts["invariants"] holds the problems by invariant."""
    labels = state["namespaces"].get(namespace)
    if labels is None:
        problem = f"tenant {tenant['name']}: namespace {namespace} does not exist"
        return {"exists": False, "invariants": {"namespace exists": [problem]}}, [problem]
    revision = labels.get(REV_LABEL)
    selected_by = sorted(r for r, info in state["revisions"].items() if any_matches(info["selectors"], labels))
    injectors = injector_webhooks(state["webhooks"], labels)
    policies = state["policies"].get(namespace, {})
    facts = {
        "exists": True,
        "revision": revision,
        "tenant": labels.get(TENANT_LABEL),
        "selected_by": selected_by,
        "injectors": injectors,
        "mtls": (policies.get(("PeerAuthentication", "default")) or {}).get("mtls", {}).get("mode"),
        "policies": sorted(f"{kind}/{name}" for kind, name in policies),
        "ca": _ca_of(revision, state),
    }
    where = f"tenant {tenant['name']}: namespace {namespace}"
    found = {name: [] for name in NAMESPACE_INVARIANTS}
    labelled, selected = found["labelled for its tenant"], found["selected by exactly its revision"]
    if facts["tenant"] != tenant["name"]:
        labelled.append(f"{where} is labelled {TENANT_LABEL}={facts['tenant']}, not {tenant['name']}")
    if revision not in state["revisions"]:
        selected.append(f"{where} points {REV_LABEL}={revision} at no installed revision")
    elif revision not in selected_by or any(
        not same_control_plane(state["revisions"], revision, r)
        and sharing_problem(state["revisions"], revision, r, labels, state["roots"])
        for r in selected_by
    ):
        selected.append(
            f"{where} carries {REV_LABEL}={revision} but is selected by revisions {', '.join(selected_by) or 'none'}; "
            f"expected {revision} alone, or other control planes only as a shared namespace (one root, injected by "
            f"{revision})"
        )
    if len(injectors) != 1:
        found["exactly one injector"].append(
            f"{where} matches {len(injectors)} injector webhooks {injectors}; expected exactly one"
        )
    expected_mtls = tenant.get("mtls") or "STRICT"
    if expected_mtls != "none" and facts["mtls"] != expected_mtls:
        found["mTLS as desired"].append(f"{where} has mTLS {facts['mtls'] or 'unset'}; expected {expected_mtls}")
    isolation = IsolationSpec.from_params(tenant.get("isolation"))
    for kind, name, option in EXPECTED_POLICIES:
        if getattr(isolation, option) and (kind, name) not in policies:
            found["isolation policies in place"].append(f"{where} lacks {kind} {name}")
    access = state.get("access", {}).get(namespace, [])
    found["no wildcard or broad access"] = [
        f"{where}: {problem}" for problem in access_problems(access, set(tenant["namespaces"]), isolation)
    ]
    if revision in state["revisions"] and not selected:  # under the wrong control plane, that is the problem
        desired = desired_policies(tenant, state["revisions"][revision]["namespace"]).get(namespace, {})
        for (kind, _name), problem in content_problems(desired, policies).items():
            invariant = "mTLS as desired" if kind == "PeerAuthentication" else "isolation policies in place"
            if kind != "PeerAuthentication" or facts["mtls"] == expected_mtls:  # a wrong mode is reported above
                found[invariant].append(f"{where}: {problem}")
    network_policy = policies.get(("NetworkPolicy", ISOLATION_NAME))
    if network_policy is not None:
        gateways = [g for g in state["gateways"] if g["metadata"]["namespace"] == namespace]
        for pod, shown in escaping_pods(network_policy, state.get("pods", {}).get(namespace, []), gateways):
            found["isolation policies in place"].append(
                f"{where}: pod {pod} escapes NetworkPolicy {ISOLATION_NAME} (labels {shown} are outside its "
                "podSelector), so every namespace can reach it; remove the label, or deploy it as a meshops.istio "
                "gateway"
            )
    facts["invariants"] = found
    return facts, [problem for problems in found.values() for problem in problems]


def access_problems(objects: list, tenant_namespaces: set, isolation: IsolationSpec) -> list:
    """What in a tenant namespace opens it to everyone, whoever wrote it (a user can create these by hand):
    an AuthorizationPolicy allowing any namespace or principal, a Sidecar whose egress reaches every namespace,
    a RoleBinding to a group of the whole cluster (unless the tenant opted in with allow_broad_admins)."""
    problems = []
    for obj in objects:
        kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec") or {}
        if kind == "AuthorizationPolicy":
            problems += [f"AuthorizationPolicy {name} {problem}" for problem in _policy_wildcards(spec)]
        elif kind == "Sidecar":
            hosts = [h for egress in spec.get("egress") or [] for h in egress.get("hosts") or []]
            wide = [h for h in hosts if isinstance(h, str) and h.split("/", 1)[0] == "*"]
            if wide:
                problems.append(
                    f"Sidecar {name} has egress hosts {', '.join(wide)}, which reach every namespace; list the "
                    "tenant's namespaces instead"
                )
        elif kind == "RoleBinding" and not isolation.allow_broad_admins:
            subjects = obj.get("subjects") or []
            admins = AdminsSpec(
                users=tuple(s.get("name") for s in subjects if s.get("kind") == "User"),
                groups=tuple(s.get("name") for s in subjects if s.get("kind") == "Group"),
            )
            problems += [
                f"RoleBinding {name} binds {field[:-1]} {subject} ({who}); remove that subject, or set the "
                "tenant's isolation.allow_broad_admins: true if that is meant"
                for field, subject, who in broad_subjects(admins, tenant_namespaces)
            ]
    return problems


def _policy_wildcards(spec: dict) -> list:
    """Sources of an ALLOW AuthorizationPolicy that match any namespace or principal."""
    if (spec.get("action") or "ALLOW") != "ALLOW":
        return []
    found = []
    for rule in spec.get("rules") or []:
        for source in (entry.get("source") or {} for entry in rule.get("from") or []):
            for field in ("namespaces", "principals"):
                found += [f"{field} {value!r}" for value in source.get(field) or [] if "*" in str(value)]
    if not found:
        return []
    return [f"allows callers from {', '.join(found)}, a wildcard; allow the tenant's namespaces by name instead"]


def desired_policies(tenant: dict, system_namespace: str) -> dict:
    """{namespace: {(kind, name): spec}} of the isolation policies istio_tenant writes for `tenant` (a verify entry:
    name, namespaces, mtls, isolation) served by a control plane in `system_namespace`."""
    spec = TenantSpec(
        name=tenant["name"],
        revision=None,
        namespaces=tuple(NamespaceSpec(name) for name in tenant["namespaces"]),
        create_namespaces=False,
        discovery_label={},
        mtls=tenant.get("mtls") or "STRICT",
        isolation=IsolationSpec.from_params(tenant.get("isolation")),
        takeover=False,
        state="present",
        delete_namespaces=False,
        force=False,
        force_conflicts=False,
    )
    desired = {}
    for manifest in policies_of(spec, system_namespace):
        if manifest["kind"] != "RoleBinding":
            metadata = manifest["metadata"]
            desired.setdefault(metadata["namespace"], {})[(manifest["kind"], metadata["name"])] = manifest["spec"]
    return desired


def changed_fields(desired: dict, live: dict) -> list:
    """The top-level spec fields in which `live` differs from `desired` (values the server leaves out count as
    empty)."""
    return sorted(
        key for key in set(desired) | set(live)
        if not (is_subset(desired.get(key), live.get(key)) and is_subset(live.get(key), desired.get(key)))
    )  # fmt: skip


def content_problems(desired: dict, live: dict) -> dict:
    """{(kind, name): sentence} for each desired policy that exists with another content than meshops.istio
    writes (a missing one is reported as lacking)."""
    problems = {}
    for key, spec in sorted(desired.items()):
        if key not in live:
            continue
        fields = changed_fields(spec, live[key])
        if fields:
            kind, name = key
            opened = " and admits ingress from everywhere" if kind == "NetworkPolicy" and _open(live[key]) else ""
            problems[key] = (
                f"{kind} {name} differs from what meshops.istio writes ({', '.join('spec.' + f for f in fields)})"
                f"{opened}; re-run the tenant's onboarding to restore it"
            )
    return problems


def _open(network_policy: dict) -> bool:
    """An ingress rule without peers, or with an empty peer, admits every source."""
    return any(
        not rule.get("from") or any(not peer for peer in rule["from"]) for rule in network_policy.get("ingress") or []
    )


def escaping_pods(network_policy: dict, pods: list, gateways: list) -> list:
    """(pod name, its labels the podSelector looks at) of each pod the NetworkPolicy does not select, gateway pods
    of meshops.istio's `gateways` (Deployments) in the namespace aside. A pod counts as a gateway's when its
    ReplicaSet is the gateway's (named <deployment>-<pod-template-hash>) and the gateway's selector matches it."""
    selector = network_policy.get("podSelector") or {}
    keys = set(selector.get("matchLabels") or {}) | {e["key"] for e in selector.get("matchExpressions") or []}
    escaping = []
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        if matches(selector, labels) or _gateway_pod(pod, labels, gateways):
            continue
        escaping.append((pod["metadata"]["name"], {k: v for k, v in sorted(labels.items()) if k in keys}))
    return sorted(escaping, key=lambda found: found[0])


def _gateway_pod(pod: dict, labels: dict, gateways: list) -> bool:
    owners = {(o.get("kind"), o.get("name")) for o in pod["metadata"].get("ownerReferences") or []}
    return any(
        ("ReplicaSet", f"{g['metadata']['name']}-{labels.get('pod-template-hash')}") in owners
        and matches((g.get("spec") or {}).get("selector") or {}, labels)
        for g in gateways
    )


def _ca_of(revision: str | None, state: dict) -> str | None:
    """`cacerts` when the revision's istiod signs with a plugged CA, `self-signed` otherwise."""
    if revision not in state["revisions"]:
        return None
    return "cacerts" if state["revisions"][revision]["namespace"] in state["cacerts"] else "self-signed"


def cacerts_problems(cacerts: dict, now) -> list:
    """Sentences for every `cacerts` Secret (by namespace: its files) whose chain istiod could not sign with."""
    problems = []
    for namespace, files in sorted(cacerts.items()):
        problem = bundle_problem(files, now)
        if problem:
            problems.append(f"Secret {SECRET_NAME} in namespace {namespace} {problem}")
    return problems


def revision_facts(state: dict, now) -> dict:
    """Per installed revision: its system namespace and its CA (the `cacerts` chain with expiry dates, or
    self-signed)."""
    facts = {}
    for revision, info in sorted(state["revisions"].items()):
        files = state["cacerts"].get(info["namespace"])
        facts[revision] = {
            "namespace": info["namespace"],
            "ca": "cacerts" if files is not None else "self-signed",
            "cacerts": describe_bundle(files, now) if files is not None else None,
        }
    return facts


def root_mtls_invariant(tenant: dict, state: dict) -> tuple:
    """(invariant name, problems) for a tenant with root_namespace_mtls: its revision's root namespace holds the
    tenant's mesh-wide PeerAuthentication with the tenant's mode. (None, []) for other tenants."""
    revision = tenant.get("revision")
    if not tenant.get("root_namespace_mtls") or revision not in state["revisions"]:
        return None, []
    root = state["revisions"][revision]["namespace"]
    name = root_policy_name(tenant["name"])
    invariant = f"tenant {tenant['name']}: mesh-wide mTLS in root namespace {root}"
    live = state["policies"].get(root, {}).get(("PeerAuthentication", name))
    expected = {"mtls": {"mode": tenant.get("mtls") or "STRICT"}}
    where = f"tenant {tenant['name']}: root namespace {root}"
    if live is None:
        return invariant, [f"{where} lacks PeerAuthentication {name} (mesh-wide mTLS); re-run the tenant's onboarding"]
    problem = content_problems({("PeerAuthentication", name): expected}, {("PeerAuthentication", name): live})
    return invariant, [f"{where}: {sentence}" for sentence in problem.values()]


def analyze(tenants: list, state: dict, now=None) -> dict:
    """The report: per tenant and namespace the facts, gateway readiness, selector overlaps, and problems.

    `state` holds namespaces {name: labels}, revisions (installed_revisions), webhooks (MWC objects),
    policies {namespace: {(kind, name): spec}}, gateways (Deployment objects), cacerts {system namespace:
    the files of its `cacerts` Secret} and pods {tenant namespace with a NetworkPolicy: Pod objects}."""
    now = now or pki.utc_now()
    state = {**state, "roots": {ns: root_id(files) for ns, files in state["cacerts"].items()}}
    invariants = {NO_OVERLAP: selector_overlaps(state["revisions"], state["namespaces"], state["roots"])}
    for namespace, files in sorted(state["cacerts"].items()):
        invariants[f"cacerts in {namespace} can sign"] = cacerts_problems({namespace: files}, now)
    report = {
        "tenants": {},
        "revisions": revision_facts(state, now),
        "shared_namespaces": shared_namespaces(state["revisions"], state["namespaces"], state["roots"]),
        "invariants": invariants,
        "problems": [problem for problems in invariants.values() for problem in problems],
    }
    for tenant in tenants:
        invariant, problems = root_mtls_invariant(tenant, state)
        if invariant:
            report["invariants"][invariant] = problems
            report["problems"] += problems
        entry = {"namespaces": {}, "gateways": {}}
        for namespace in tenant["namespaces"]:
            facts, problems = _namespace_checks(tenant, namespace, state)
            entry["namespaces"][namespace] = facts
            report["problems"] += problems
        for gateway in state["gateways"]:
            metadata = gateway["metadata"]
            if metadata["namespace"] in tenant["namespaces"]:
                problem = rollout_problem(gateway)
                entry["gateways"][f"{metadata['namespace']}/{metadata['name']}"] = problem or "Ready"
                if problem:
                    report["problems"].append(
                        f"tenant {tenant['name']}: gateway {metadata['name']} is not Ready: {problem}"
                    )
        report["tenants"][tenant["name"]] = entry
    return report


def gather_isolation_report(cluster: Cluster, tenants: list) -> dict:
    managed = f"{MANAGED_BY_LABEL}={FIELD_MANAGER}"
    policies = {}
    for kind in ("PeerAuthentication", "AuthorizationPolicy", "Sidecar", "NetworkPolicy"):
        for obj in cluster.list_objects(kind, managed):
            key = (kind, obj["metadata"]["name"])
            policies.setdefault(obj["metadata"]["namespace"], {})[key] = obj.get("spec") or {}
    namespaces = cluster.list_objects("Namespace")
    revisions = installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL))
    tenants = [_normalized(t) for t in tenants]
    # Pods are read only where a NetworkPolicy should isolate them: one LIST per such namespace.
    guarded = sorted({ns for t in tenants for ns in t["namespaces"] if ("NetworkPolicy", ISOLATION_NAME) in
                      policies.get(ns, {})})  # fmt: skip
    state = {
        "namespaces": {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in namespaces},
        "revisions": revisions,
        "cacerts": _cacerts_files(cluster, {info["namespace"] for info in revisions.values()}),
        "webhooks": cluster.list_objects("MutatingWebhookConfiguration", label_selector=REV_LABEL),
        "policies": policies,
        "gateways": cluster.list_objects("Deployment", label_selector=GATEWAY_LABEL),
        "access": _access_objects(cluster, {ns for t in tenants for ns in _normalized(t)["namespaces"]}),
        "pods": {ns: cluster.list_objects("Pod", None, ns) for ns in guarded},
    }
    return {"server": cluster.host, **analyze(tenants, state)}


ACCESS_KINDS = ("AuthorizationPolicy", "Sidecar", "RoleBinding")


def _access_objects(cluster: Cluster, tenant_namespaces: set) -> dict:
    """{namespace: objects} of every AuthorizationPolicy, Sidecar and RoleBinding in the tenant namespaces, ours or
    not: one LIST per kind."""
    found = {}
    for kind in ACCESS_KINDS:
        for obj in cluster.list_objects(kind):
            namespace = obj["metadata"].get("namespace")
            if namespace in tenant_namespaces:
                found.setdefault(namespace, []).append(obj)
    return found


def _cacerts_files(cluster: Cluster, system_namespaces: set) -> dict:
    """The files of each system namespace's `cacerts` Secret (private keys stay in this process, never reported)."""
    secrets = {ns: cluster.get("Secret", SECRET_NAME, ns) for ns in sorted(system_namespaces)}
    return {ns: secret_files(secret) for ns, secret in secrets.items() if secret is not None}


def _normalized(tenant: dict) -> dict:
    names = [NamespaceSpec.from_entry(entry).name for entry in tenant.get("namespaces") or []]
    return {**tenant, "namespaces": names}
