# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Istio control plane (a revision): what to refuse next to the installed ones, and how to remove it.

The spec and its validation are in revision_spec.py, the rendering in revision_render.py, installing (one revision
or many in one run) in revision_install.py; `ensure_revision_absent` at the end is what istio_revision calls to
remove one."""

from __future__ import annotations

import copy

from .cluster import Cluster
from .engine import Engine, Owner, Report, identity, rollout_problem
from .errors import Refusal
from .kinds import KINDS
from .revision_render import (
    SHARED_IN_NAMESPACE,
    injector_webhook_name,
    system_namespace,
)
from .revision_spec import RevisionSpec, validate
from .selectors import any_matches
from .shared_root import SHARE_HINT, sharing_problem, with_name_label
from .vocabulary import (
    FIELD_MANAGER,
    MANAGED_BY_LABEL,
    OWNER_LABEL_PREFIX,
    REV_LABEL,
    TAG_SERVICE_PREFIX,
    installed_revisions,
    owner_label,
)

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


# Pure: what is installed


def refusals(spec: RevisionSpec, others: dict, namespaces: dict, roots=None) -> list:
    """Why installing this revision next to the `others` would break tenants (empty when it is safe).

    Revisions in one system namespace are one control plane during a canary upgrade: they share that namespace's
    CA (`cacerts`, or the self-signed `istio-ca-secret`), so they may select the same namespaces without fighting
    over `istio-ca-root-cert`. A revision joins a namespace that holds another only as its declared `canary_of`.
    Other control planes may both select a shared namespace only (shared_root.py; `roots` answers get(system
    namespace) -> its root)."""
    name, namespace, selectors, canary_of = spec.name, spec.namespace, list(spec.discovery_selectors), spec.canary_of
    roots = roots or {}
    if canary_of and canary_of not in others and name not in others:
        installed = ", ".join(sorted(others)) or "none"
        return [
            f"canary_of {canary_of} is not an installed revision (installed: {installed}); name the revision this "
            "one upgrades, or drop canary_of to install it on its own"
        ]
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
    ours = {ns: with_name_label(ns, labels) for ns, labels in ours.items()}
    revisions = {**others, name: {"namespace": namespace, "selectors": selectors}}
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
        both = sorted(
            ns
            for ns, labels in ours.items()
            if any_matches(selectors, labels) and any_matches(info["selectors"], labels)
        )
        why = {ns: sharing_problem(revisions, name, other, ours[ns], roots) for ns in both}
        shared = [ns for ns in both if why[ns]]
        if shared or (selectors and selectors == info["selectors"]):
            where = f"namespaces {', '.join(shared)} ({why[shared[0]]})" if shared else "the same namespaces"
            problems.append(
                f"discovery_selectors overlap with revision {other}: both select {where}. Two istiods would fight "
                f"over the same istio-ca-root-cert; make the selectors disjoint, {SHARE_HINT}"
            )
    return problems


def tag_refusals(spec: RevisionSpec, others: dict, holders: dict) -> list:
    """Why this revision's name or tags would clash with the installed revisions and tags (`holders`: {tag: sorted
    revisions}). A tag is held by one revision; moving it takes move_tags. `default` is the default injector: only
    default_revision asks for it."""
    name, problems = spec.name, []
    if name.startswith(TAG_SERVICE_PREFIX):
        tag = name[len(TAG_SERVICE_PREFIX) :]
        problems.append(
            f"name {name} would give this revision the Service istiod-{name}, which is the Service of revision tag "
            f"{tag!r}; choose a name that does not start with {TAG_SERVICE_PREFIX}"
        )
    if name in holders:
        problems.append(
            f"name {name} is a revision tag of revision {', '.join(holders[name])}: namespaces labelled "
            f"{REV_LABEL}={name} would match two injectors; choose another name"
        )
    if "default" in spec.revision_tags and not spec.default_revision:
        problems.append(
            "revision_tags entry 'default' makes this revision the cluster's default injector (namespaces labelled "
            "istio-injection=enabled); set default_revision: true instead, the explicit opt-in for that"
        )
    for tag in spec.tags:
        parameter = "default_revision" if tag == "default" and spec.default_revision else f"revision_tags entry {tag!r}"
        held_by = [revision for revision in holders.get(tag, []) if revision != name]
        if held_by and not spec.move_tags:
            problems.append(
                f"{parameter}: tag {tag} is held by revision {', '.join(held_by)}, and a tag points at one revision; "
                f"set move_tags: true to move it to {name}, or remove it from {', '.join(held_by)} first"
            )
        if f"{TAG_SERVICE_PREFIX}{tag}" in others:
            problems.append(
                f"{parameter}: the tag's Service istiod-{TAG_SERVICE_PREFIX}{tag} is the Service of revision "
                f"{TAG_SERVICE_PREFIX}{tag}; choose another tag"
            )
    return problems


def moved_tags(spec: RevisionSpec, holders: dict) -> list:
    """This revision's tags that another revision holds now (move_tags moves them here)."""
    return [tag for tag in spec.tags if any(revision != spec.name for revision in holders.get(tag, []))]


# Cluster: what the module calls


def result_of(spec: RevisionSpec, version: str | None, report) -> dict:
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


def revision_engine(cluster: Cluster, spec: RevisionSpec, check_mode: bool) -> Engine:
    return Engine(cluster, Owner(OWNER_KIND, spec.name), check_mode, spec.force_conflicts)


def rolled_out(desired: list, listed: dict, report) -> bool:
    """Every Deployment of the revision was read rolled out and this run did not change it: nothing to wait for."""
    changed = {(o["kind"], o["namespace"], o["name"]) for o in report.objects}
    deployments = [identity(m) for m in desired if m["kind"] == "Deployment"]
    return all(key not in changed and key in listed and rollout_problem(listed[key]) is None for key in deployments)


def managed_by_us(live: dict) -> bool:
    return (live["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == FIELD_MANAGER


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
    engine = revision_engine(cluster, spec, check_mode)
    report = remove_revision(engine, spec)
    return result_of(spec, None, report), [], report.diff


def remove_revision(engine: Engine, spec: RevisionSpec) -> Report:
    """What ensure_revision_absent does with the revision's Engine; returns its report."""
    cluster = engine.cluster
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
    config_maps = cluster.list_objects("ConfigMap", label_selector=REV_LABEL, namespace=spec.namespace)
    remaining = set(installed_revisions(config_maps)) - {spec.name}
    owned = engine.list_owned({KINDS[kind] for kind in REVISION_KINDS + REMOVAL_ONLY_KINDS})
    shared_keys = {(kind, spec.namespace, name) for kind, name in SHARED_IN_NAMESPACE}
    if remaining:
        # A revision installed before shared objects were ownerless may still carry the owner label on one.
        owned = {key: obj for key, obj in owned.items() if key not in shared_keys}
    report = engine.delete_objects(owned.values())
    # One field manager writes every revision's labels: a canary left in the namespace still needs them, and the
    # objects every revision of the namespace shares go with the last one.
    if not remaining:
        engine.delete_objects(_shared_objects_left(cluster, spec.namespace, owned))
        engine.release("Namespace", spec.namespace)
    return report


def _shared_objects_left(cluster: Cluster, namespace: str, deleted: dict) -> list:
    """The namespace's shared objects meshops.istio wrote that no other kind of owner (a remote secret's reader)
    claims, and not deleted already."""
    left = []
    for kind, name in SHARED_IN_NAMESPACE:
        live = cluster.get(kind, name, namespace)
        if live is None or not managed_by_us(live) or identity(live) in deleted:
            continue
        labels = live["metadata"].get("labels") or {}
        if not any(key.startswith(OWNER_LABEL_PREFIX) and key != owner_label(OWNER_KIND) for key in labels):
            left.append(live)
    return left
