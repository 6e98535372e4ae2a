# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the cluster says against installing a gateway: its revision, its namespace, nodePorts held by other
Services, a same-named Deployment of others, a selector Kubernetes cannot change. (The engine refuses same-named
objects of others of every kind before its first write.)

`cluster_problems` reads what it needs through a Cluster; the checks it calls are pure."""

from __future__ import annotations

from ..cluster import Cluster
from ..engine import foreign_object_problem
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
from .manifests import selector_labels
from .spec import OWNER_LABEL, GatewaySpec


def cluster_problems(cluster: Cluster, spec: GatewaySpec, plan: RunPlan, check_mode: bool) -> tuple:
    """(installed revision behind spec.revision, its namespace, what stops the install, check-mode notes).
    In check mode the revisions and namespace labels the run's plan makes count as there (see planned.py)."""
    revisions = installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL))
    revisions, revision_note = with_planned_revisions(revisions, plan.revisions, check_mode)
    tags = installed_tags(cluster.list_objects("MutatingWebhookConfiguration", label_selector=TAG_LABEL))
    revision = resolve_revision(spec.revision, revisions, tags)
    if revision is None:
        return None, None, [_revision_problem(spec, revisions)], []
    live = cluster.get("Namespace", spec.namespace)
    namespace, namespace_note = with_planned_namespace(live, spec.namespace, plan.namespaces, check_mode)
    problems = namespace_problems(spec, namespace, revision, revisions, tags)
    if any(port.node_port for port in spec.service.ports):
        problems += node_port_problems(spec, cluster.list_objects("Service"))
    if live is not None:
        problems += _existing_object_problems(cluster, spec)
    notes = [note for note in (revision_note, namespace_note) if note]
    return revision, revisions[revision]["namespace"], problems, notes


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
    ours = (spec.namespace, spec.name)
    taken = {
        port["nodePort"]: f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        for svc in services
        if (svc["metadata"]["namespace"], svc["metadata"]["name"]) != ours
        for port in (svc.get("spec") or {}).get("ports") or []
        if port.get("nodePort")
    }
    return [
        f"service.ports[{index}].node_port {port.node_port} is already used by Service {taken[port.node_port]}; "
        "choose a free nodePort"
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


def _existing_object_problems(cluster: Cluster, spec: GatewaySpec) -> list:
    deployment_live = cluster.get("Deployment", spec.name, spec.namespace)
    problems = [foreign_owner_problem(deployment_live, spec), selector_change_problem(deployment_live, spec)]
    return [problem for problem in problems if problem]
