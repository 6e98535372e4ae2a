# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the cluster says against installing a gateway: its revision, its namespace, nodePorts held by other
Services, a same-named Deployment of others, a selector Kubernetes cannot change. (The engine refuses same-named
objects of others of every kind before its first write.)

`read_view` and `read_others` read what a run of gateways needs through a Cluster, in bulk; the checks are pure."""

from __future__ import annotations

from dataclasses import dataclass

from ..cluster import Cluster
from ..engine import foreign_object_problem, identity, read_existing
from ..planned import RunPlan, with_planned_namespace, with_planned_revisions
from ..selectors import any_matches
from ..vocabulary import (
    FIELD_MANAGER,
    INJECTION_LABEL,
    MANAGED_BY_LABEL,
    REV_LABEL,
    TAG_LABEL,
    installed_revisions,
    installed_tags,
    resolve_revision,
)
from .crds import GATEWAYS_CRD
from .manifests import GATEWAY_KINDS, selector_labels
from .spec import GATEWAY_API, OWNER_LABEL, GatewaySpec


@dataclass(frozen=True)
class GatewaysView:
    """What a run of one or many gateways reads, once however many gateways: the installed revisions and tags,
    every namespace, every Service (nodePorts held, same-named Services of others, the gateways' addresses), and the
    objects the collection owns for each gateway of the run. Reads grow with the kinds, not with the gateways."""

    revisions: dict
    tags: dict
    namespaces: dict  # name -> Namespace
    services: dict  # identity -> Service
    owned: dict  # owner name -> {identity: object}
    gateway_api_served: bool = False  # the cluster has the Gateway API's Gateway CRD (read for api gateway_api only)


def read_view(cluster: Cluster, specs: list, present: bool = True) -> GatewaysView:
    """One LIST per kind a gateway may own (label-selected by owner), plus, to install, one of revisions, of tags, of
    namespaces and of Services. Removal reads the owned objects only."""
    owners = {spec.owner_name for spec in specs}
    only = f"={next(iter(owners))}" if len(owners) == 1 else ""
    selector = f"{MANAGED_BY_LABEL}={FIELD_MANAGER},{OWNER_LABEL}{only}"
    services = read_services(cluster) if present else {}
    owned = {owner: {} for owner in owners}
    for kind in GATEWAY_KINDS:
        listed = services.values() if present and kind == "Service" else cluster.list_objects(kind, selector)
        for obj in listed:
            labels = obj["metadata"].get("labels") or {}
            if labels.get(MANAGED_BY_LABEL) == FIELD_MANAGER and labels.get(OWNER_LABEL) in owners:
                owned[labels[OWNER_LABEL]][identity(obj)] = obj
    if not present:
        return GatewaysView({}, {}, {}, services, owned)
    return GatewaysView(
        revisions=installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL)),
        tags=installed_tags(cluster.list_objects("MutatingWebhookConfiguration", label_selector=TAG_LABEL)),
        namespaces={ns["metadata"]["name"]: ns for ns in cluster.list_objects("Namespace")},
        services=services,
        owned=owned,
        gateway_api_served=any(spec.api == GATEWAY_API for spec in specs)
        and cluster.get("CustomResourceDefinition", GATEWAYS_CRD) is not None,
    )


def read_services(cluster: Cluster) -> dict:
    """{identity: Service} of every Service in the cluster."""
    return {identity(obj): obj for obj in cluster.list_objects("Service")}


def read_others(cluster: Cluster, view: GatewaysView, wanted: list) -> dict:
    """{identity: object, or None when missing} of the `wanted` identities (desired objects no gateway of the run
    owns): a same-named object made by hand, by another tool or by another owner (engine.read_existing; nothing read
    when every desired object is already owned). Services come from the view."""
    services = {key: view.services.get(key) for key in wanted if key[0] == "Service"}
    rest = {key for key in wanted if key[0] != "Service"}
    return {**dict.fromkeys(rest), **read_existing(cluster, rest), **services}


def resolved_revision(spec: GatewaySpec, view: GatewaysView, plan: RunPlan, check_mode: bool) -> tuple:
    """(the installed revision behind spec.revision, its namespace, problems, notes). In check mode the revisions
    the run's plan installs count as there (see planned.py)."""
    revisions, note = with_planned_revisions(view.revisions, plan.revisions, check_mode)
    revision = resolve_revision(spec.revision, revisions, view.tags)
    if revision is None:
        return None, None, [_revision_problem(spec, revisions)], []
    return revision, revisions[revision]["namespace"], [], [note] if note else []


def gateway_problems(spec: GatewaySpec, view: GatewaysView, revision: str, deployment: dict | None, plan, check_mode):
    """(what stops installing this gateway, check-mode notes): its namespace, nodePorts held by other Services, a
    same-named Deployment of others or a selector Kubernetes cannot change. `deployment` is the live one, or None.
    In check mode the namespace labels the run's plan makes count as there."""
    revisions = with_planned_revisions(view.revisions, plan.revisions, check_mode)[0]
    live = view.namespaces.get(spec.namespace)
    namespace, note = with_planned_namespace(live, spec.namespace, plan.namespaces, check_mode)
    problems = namespace_problems(spec, namespace, revision, revisions, view.tags)
    if any(port.node_port for port in spec.service.ports):
        problems += node_port_problems(spec, list(view.services.values()))
    if live is not None:
        problems += _existing_object_problems(deployment, spec)
    return problems, [note] if note else []


def _revision_problem(spec: GatewaySpec, revisions: dict) -> str:
    installed = ", ".join(sorted(revisions)) or "none"
    return (
        f"revision {spec.revision!r} is neither an installed revision nor a revision tag (installed: "
        f"{installed}); install it with meshops.istio.istio_revision first or name an installed one"
    )


def namespace_problems(spec: GatewaySpec, namespace: dict | None, revision: str, revisions: dict, tags: dict) -> list:
    """Why the revision's injector would not inject (or another one would) a gateway pod in this namespace."""
    name = spec.namespace
    if namespace is None:
        return [f"namespace {name} does not exist; create it (and label it for revision {revision}) first"]
    labels = namespace["metadata"].get("labels") or {}
    problems = []
    injection = labels.get(INJECTION_LABEL)
    if injection == "disabled":
        problems.append(
            f"namespace {name} carries {INJECTION_LABEL}=disabled, which stops the gateway's injection; remove the "
            "label (use sidecar.istio.io/inject=false on other pods instead)"
        )
    elif injection is not None:
        problems.append(
            f"namespace {name} carries {INJECTION_LABEL}={injection}: revision injectors only act where that label "
            f"is absent, so revision {revision} would not inject the gateway; remove the label"
        )
    namespace_revision = labels.get(REV_LABEL)
    if namespace_revision and resolve_revision(namespace_revision, revisions, tags) != revision:
        problems.append(
            f"namespace {name} carries {REV_LABEL}={namespace_revision}, whose injector would inject the gateway "
            f"instead of revision {revision}; use that revision or relabel the namespace"
        )
    selectors = revisions[revision]["selectors"]
    if not any_matches(selectors, labels):
        problems.append(
            f"namespace {name} is not selected by the discoverySelectors of revision {revision} ({selectors}), so "
            "its istiod would not configure the gateway; label the namespace so that a selector matches"
        )
    return problems


def node_port_problems(spec: GatewaySpec, services: list) -> list:
    """nodePorts this gateway wants that another Service already holds (the API server would refuse them)."""
    ours = (spec.namespace, spec.workload_name)
    taken = {
        port["nodePort"]: f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        for svc in services
        if (svc["metadata"]["namespace"], svc["metadata"]["name"]) != ours
        for port in (svc.get("spec") or {}).get("ports") or []
        if port.get("nodePort")
    }
    where = "listeners on port {port}" if spec.api == GATEWAY_API else "service.ports[{index}]"
    return [
        f"{where.format(index=index, port=port.port)}.node_port {port.node_port} is already used by Service "
        f"{taken[port.node_port]}; choose a free nodePort"
        for index, port in enumerate(spec.service.ports)
        if port.node_port in taken
    ]


def foreign_owner_problem(live: dict | None, spec: GatewaySpec) -> str | None:
    """A same-named object this gateway does not own (another gateway's, Helm's, hand-made) is not ours to take
    unless force_conflicts adopts it. The engine refuses every other kind the same way before its first write."""
    if live is None or spec.force_conflicts:
        return None
    labels = live["metadata"].get("labels") or {}
    if labels.get(OWNER_LABEL) == spec.owner_name and labels.get(MANAGED_BY_LABEL) == FIELD_MANAGER:
        return None
    return foreign_object_problem(live)


def selector_change_problem(live: dict | None, spec: GatewaySpec) -> str | None:
    if live is None or foreign_owner_problem(live, spec):
        return None  # refused as another's; an adopted Deployment keeps its selector rule
    current = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if current == selector_labels(spec):
        return None
    return (
        f"labels {selector_labels(spec)} differ from the existing Deployment's selector {current}, which "
        "Kubernetes cannot change; keep the labels, or remove the gateway (state: absent) and create it again"
    )


def _existing_object_problems(deployment: dict | None, spec: GatewaySpec) -> list:
    problems = [foreign_owner_problem(deployment, spec), selector_change_problem(deployment, spec)]
    return [problem for problem in problems if problem]
