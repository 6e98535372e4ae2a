# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Istio control plane (a revision): what to refuse next to the installed ones, how to install and remove it.

The spec and its validation are in revision_spec.py, the rendering in revision_render.py;
`ensure_revision_present` / `ensure_revision_absent` at the end are what the istio_revision module calls."""

from __future__ import annotations

import copy

from .cluster import Cluster
from .engine import Engine, Owner
from .errors import Refusal, refuse
from .istioctl import istioctl_version, render
from .revision_render import crds_to_apply, injector_webhook_name, operator_spec, split_rendering, system_namespace
from .revision_spec import RevisionSpec, validate
from .selectors import any_matches
from .vocabulary import REV_LABEL, installed_revisions

OWNER_KIND = "revision"
# Every kind a revision's rendering may hold (besides shared CRDs): what prune and removal look at.
REVISION_KINDS = (
    "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "Secret",
    "Service", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
)  # fmt: skip
# Removal also deletes these. Prune does not look for them: the EndpointSlice controller copies the istiod Service's
# labels, ours included, onto the slices it makes, so pruning by label would delete those on every run.
REMOVAL_ONLY_KINDS = ("EndpointSlice",)
_ISTIO_CRDS_SELECTOR = "app.kubernetes.io/part-of=istio"


# Pure: what is installed


def refusals(spec: RevisionSpec, others: dict, namespaces: dict) -> list:
    """Why installing this revision next to the `others` would break tenants (empty when it is safe).

    Revisions in one system namespace are one control plane during a canary upgrade: they share that namespace's
    CA (`cacerts`, or the self-signed `istio-ca-secret`), so they may select the same namespaces without fighting
    over `istio-ca-root-cert`. A revision joins a namespace that holds another only as its declared `canary_of`."""
    name, namespace, selectors, canary_of = spec.name, spec.namespace, list(spec.discovery_selectors), spec.canary_of
    if canary_of and others.get(canary_of, {}).get("namespace", namespace) != namespace:
        return [
            f"canary_of {canary_of} is installed in namespace {others[canary_of]['namespace']}, not {namespace}; "
            "a canary goes into the namespace of the revision it upgrades"
        ]
    # Our system namespace as it will be labelled, whether or not it exists yet.
    ours = {
        **namespaces,
        namespace: {**namespaces.get(namespace, {}), **system_namespace(spec)["metadata"]["labels"]},
    }
    problems = []
    for other, info in sorted(others.items()):
        if other == name and info["namespace"] != namespace:
            problems.append(
                f"revision {name} is already installed in namespace {info['namespace']}; remove it there first "
                "or choose another name"
            )
        elif other != name and info["namespace"] == namespace and name not in others and other != canary_of:
            problems.append(
                f"namespace {namespace} already holds revision {other}; give each control plane its own namespace, "
                f"or set canary_of: {other} to upgrade it"
            )
        if other in spec.tags:
            problems.append(f"revision_tags entry {other!r} is the name of an installed revision; choose another tag")
        if other == name or info["namespace"] == namespace:
            continue
        shared = sorted(
            ns
            for ns, labels in ours.items()
            if any_matches(selectors, labels) and any_matches(info["selectors"], labels)
        )
        if shared or (selectors and selectors == info["selectors"]):
            where = f"namespaces {', '.join(shared)}" if shared else "the same namespaces"
            problems.append(
                f"discovery_selectors overlap with revision {other}: both select {where}. Two istiods would fight "
                "over the same istio-ca-root-cert; make the selectors disjoint"
            )
    return problems


# Cluster: what the module calls


def _result(spec: RevisionSpec, version: str | None, report) -> dict:
    return {
        "changed": report.changed,
        "revision": spec.name,
        "namespace": spec.namespace,
        "istio_version": version,
        "istiod_service": f"istiod-{spec.name}.{spec.namespace}.svc",
        "injector_webhook": injector_webhook_name(spec.name, spec.namespace),
        "tags": list(spec.tags),
        "objects": report.objects,
    }


def _engine(cluster: Cluster, spec: RevisionSpec, check_mode: bool) -> Engine:
    return Engine(cluster, Owner(OWNER_KIND, spec.name), check_mode, spec.force_conflicts)


def ensure_revision_present(cluster: Cluster, run_command, spec: RevisionSpec, check_mode: bool) -> tuple:
    """Install or converge one revision. Returns (result, warnings, diff); raises a MeshopsError."""
    validate(spec)
    engine = _engine(cluster, spec, check_mode)
    version = istioctl_version(run_command, spec.istioctl_path)
    if spec.istio_version and spec.istio_version.removeprefix("v") != version:
        raise Refusal(
            f"istio_version {spec.istio_version} is not what istioctl_path {spec.istioctl_path} renders "
            f"({version}); point istioctl_path at the istioctl of that version"
        )
    others = installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL))
    namespaces = {
        ns["metadata"]["name"]: ns["metadata"].get("labels") or {} for ns in cluster.list_objects("Namespace")
    }
    refuse(refusals(spec, others, namespaces))

    crds, owned = split_rendering(render(run_command, spec.istioctl_path, operator_spec(spec)), spec, version)
    # Istio's CRDs carry part-of=istio; one label-selected LIST instead of every CRD's schema in the cluster.
    live_crds = {
        c["metadata"]["name"]: c for c in cluster.list_objects("CustomResourceDefinition", _ISTIO_CRDS_SELECTOR)
    }
    to_apply, warnings = crds_to_apply(crds, live_crds, version)
    for crd, live in to_apply:
        engine.ensure_shared(crd, live)
    engine.ensure_shared(system_namespace(spec))
    report = engine.ensure_present(owned, REVISION_KINDS, keep_live=keep_istiod_failure_policy)
    if spec.wait:
        engine.wait_for_rollout(owned, spec.wait_timeout)
    return _result(spec, version, report), warnings, report.diff


def keep_istiod_failure_policy(desired: dict, live: dict) -> dict:
    """istiod's validation controller switches its ValidatingWebhookConfiguration from the rendered
    failurePolicy Ignore to Fail once it serves: keep what it chose, or every re-run would conflict with it."""
    if desired["kind"] != "ValidatingWebhookConfiguration":
        return desired
    chosen = {hook["name"]: hook["failurePolicy"] for hook in live.get("webhooks") or [] if "failurePolicy" in hook}
    kept = copy.deepcopy(desired)
    for hook in kept.get("webhooks") or []:
        if hook.get("name") in chosen:
            hook["failurePolicy"] = chosen[hook["name"]]
    return kept


def ensure_revision_absent(cluster: Cluster, spec: RevisionSpec, check_mode: bool) -> tuple:
    """Remove every object of this revision (and its tags), nothing of any other; keep CRDs and namespace."""
    validate(spec)
    engine = _engine(cluster, spec, check_mode)
    users = sorted(
        ns["metadata"]["name"]
        for ns in cluster.list_objects("Namespace", label_selector=f"{REV_LABEL}={spec.name}")
        if ns["metadata"]["name"] != spec.namespace
    )
    if users and not spec.force:
        raise Refusal(
            f"namespaces {', '.join(users)} still carry {REV_LABEL}={spec.name}; move them to another "
            "revision first, or set force: true to remove the revision anyway"
        )
    report = engine.ensure_absent(REVISION_KINDS + REMOVAL_ONLY_KINDS)
    # One field manager writes every revision's labels: a canary left in the namespace still needs them.
    config_maps = cluster.list_objects("ConfigMap", label_selector=REV_LABEL, namespace=spec.namespace)
    if not set(installed_revisions(config_maps)) - {spec.name}:
        engine.release("Namespace", spec.namespace)
    return _result(spec, None, report), [], report.diff
