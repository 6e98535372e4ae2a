# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Istio control plane (a revision): what to refuse next to the installed ones, how to install and remove it.

The spec and its validation are in revision_spec.py, the rendering in revision_render.py;
`ensure_revision_present` / `ensure_revision_absent` at the end are what the istio_revision module calls."""

from __future__ import annotations

import copy

from .cluster import Cluster
from .engine import Engine, Owner, foreign_object_problem, identity, rollout_problem
from .errors import Refusal, refuse
from .istioctl import istioctl_version, render
from .kinds import KINDS, kind_of
from .planned import NOTHING_PLANNED, RunPlan
from .revision_render import (
    DEFAULT_VALIDATOR,
    SHARED_IN_NAMESPACE,
    crds_to_apply,
    injector_webhook_name,
    operator_spec,
    split_rendering,
    split_shared,
    system_namespace,
)
from .revision_spec import RevisionSpec, validate
from .selectors import any_matches
from .shared_root import SHARE_HINT, Roots, planned_roots, sharing_problem, with_name_label
from .trust_bundle import published_trust_bundle, resolve_trust_bundle
from .vocabulary import (
    FIELD_MANAGER,
    MANAGED_BY_LABEL,
    OWNER_LABEL_PREFIX,
    REV_LABEL,
    TAG_LABEL,
    TAG_SERVICE_PREFIX,
    installed_revisions,
    owner_label,
    tag_holders,
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
_ISTIO_CRDS_SELECTOR = "app.kubernetes.io/part-of=istio"


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


def ensure_revision_present(
    cluster: Cluster, run_command, spec: RevisionSpec, check_mode: bool, plan: RunPlan = NOTHING_PLANNED
) -> tuple:
    """Install or converge one revision. Returns (result, warnings, diff); raises a MeshopsError. In check mode the
    `plan`'s revisions with a ca_root stand for the roots their `cacerts` will hold (shared_root.py)."""
    validate(spec)
    engine = _engine(cluster, spec, check_mode)
    version = istioctl_version(run_command, spec.istioctl_path, spec.render_cache_dir)
    if spec.istio_version and spec.istio_version.removeprefix("v") != version:
        raise Refusal(
            f"istio_version {spec.istio_version} is not what istioctl_path {spec.istioctl_path} renders "
            f"({version}); point istioctl_path at the istioctl of that version"
        )
    others = installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL))
    namespaces = {
        ns["metadata"]["name"]: ns["metadata"].get("labels") or {} for ns in cluster.list_objects("Namespace")
    }
    holders = tag_holders(cluster.list_objects("MutatingWebhookConfiguration", label_selector=TAG_LABEL))
    roots = Roots(cluster, planned_roots(plan.revisions) if check_mode else None)
    problems = refusals(spec, others, namespaces, roots) + tag_refusals(spec, others, holders)
    planned_base = check_mode and not cluster.rehearsing and spec.canary_of and spec.canary_of not in others
    if planned_base:  # --check of a whole run: an earlier step of the same run may install the base
        problems = [p for p in problems if not p.startswith(f"canary_of {spec.canary_of} is not an installed")]
    refuse(problems)
    trust_bundle, warnings = resolve_trust_bundle(spec, version, _neighbour_trust_bundles(cluster, spec, others))

    rendered = render(run_command, spec.istioctl_path, operator_spec(spec, trust_bundle), spec.render_cache_dir)
    crds, owned = split_rendering(rendered, spec, version)
    shared, owned = split_shared(owned)
    moving = _tag_objects_to_move(cluster, spec, moved_tags(spec, holders))
    adoptable = {identity(obj) for obj in moving}
    listed, shared_lives = _check_ownership(engine, owned, shared, adoptable)
    # Istio's CRDs carry part-of=istio; one label-selected LIST instead of every CRD's schema in the cluster.
    live_crds = {
        c["metadata"]["name"]: c for c in cluster.list_objects("CustomResourceDefinition", _ISTIO_CRDS_SELECTOR)
    }
    to_apply, crd_warnings = crds_to_apply(crds, live_crds, version)
    warnings += crd_warnings
    if planned_base:
        warnings.append(f"check mode: canary_of {spec.canary_of} is not installed yet; a real run refuses it unless an "
                        "earlier step installs it")  # fmt: skip
    for crd, live in to_apply:
        engine.ensure_shared(crd, live)
    engine.ensure_shared(system_namespace(spec))
    for manifest, live in zip(shared, shared_lives, strict=True):
        engine.ensure_shared(manifest, live)
    report = engine.ensure_present(
        owned, REVISION_KINDS, owned=listed, keep_live=keep_istiod_failure_policy, adoptable=adoptable
    )
    # A moved tag's objects in the old revision's namespace (the webhook is named after it) go once ours serve.
    desired = {identity(manifest) for manifest in owned}
    engine.delete_objects([obj for obj in moving if identity(obj) not in desired])
    if spec.wait:
        engine.wait_for_rollout(owned, spec.wait_timeout)
    result = {
        **_result(spec, version, report),
        "rolled_out": rolled_out(owned, listed, report),
        "trust_bundle": trust_bundle,
    }
    return result, warnings, report.diff


def _neighbour_trust_bundles(cluster: Cluster, spec: RevisionSpec, others: dict) -> dict:
    """{revision: root ConfigMap name} of the other revisions installed in this revision's system namespace."""
    neighbours = {}
    for other, info in others.items():
        if other == spec.name or info["namespace"] != spec.namespace:
            continue
        deployment = cluster.get("Deployment", f"istiod-{other}", spec.namespace)
        if deployment is not None:  # a remote cluster's revision runs no istiod
            neighbours[other] = published_trust_bundle(deployment)
    return neighbours


def rolled_out(desired: list, listed: dict, report) -> bool:
    """Every Deployment of the revision was read rolled out and this run did not change it: nothing to wait for."""
    changed = {(o["kind"], o["namespace"], o["name"]) for o in report.objects}
    deployments = [identity(m) for m in desired if m["kind"] == "Deployment"]
    return all(key not in changed and key in listed and rollout_problem(listed[key]) is None for key in deployments)


def _tag_objects_to_move(cluster: Cluster, spec: RevisionSpec, tags: list) -> list:
    """The live webhooks and Services of `tags` (and the default validator with tag default) of other revisions."""
    found = []
    for tag in tags:
        for kind in ("MutatingWebhookConfiguration", "Service"):
            found += cluster.list_objects(kind, label_selector=f"{TAG_LABEL}={tag},{REV_LABEL}!={spec.name}")
    if "default" in tags:
        validator = cluster.get("ValidatingWebhookConfiguration", DEFAULT_VALIDATOR)
        if validator is not None and (validator["metadata"].get("labels") or {}).get(REV_LABEL) != spec.name:
            found.append(validator)
    return found


def _check_ownership(engine: Engine, owned: list, shared: list, adoptable: set) -> dict:
    """Refuse, before the first write, every desired object someone else holds: the revision's own (another owner's
    or hand-made) and the namespace's shared ones not written by meshops.istio. Returns what this revision owns now,
    for ensure_present (shared objects left out: a revision does not prune them), and the shared objects as read."""
    shared_keys = {identity(manifest) for manifest in shared}
    listed = {
        key: obj
        for key, obj in engine.list_owned({kind_of(m) for m in owned} | {KINDS[k] for k in REVISION_KINDS}).items()
        if key not in shared_keys
    }
    lives = [listed.get(identity(m)) or engine.cluster.get(*_get_args(m)) for m in owned]
    problems = engine.ownership_problems(lives, adoptable)
    shared_lives = [engine.cluster.get(*_get_args(m)) for m in shared]
    if not engine.force_conflicts:
        problems += [foreign_object_problem(live) for live in shared_lives if live is not None and not _ours(live)]
    refuse(problems)
    return listed, shared_lives


def _get_args(manifest: dict) -> tuple:
    return manifest["kind"], manifest["metadata"]["name"], manifest["metadata"].get("namespace")


def _ours(live: dict) -> bool:
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
    return _result(spec, None, report), [], report.diff


def _shared_objects_left(cluster: Cluster, namespace: str, deleted: dict) -> list:
    """The namespace's shared objects meshops.istio wrote that no other kind of owner (a remote secret's reader)
    claims, and not deleted already."""
    left = []
    for kind, name in SHARED_IN_NAMESPACE:
        live = cluster.get(kind, name, namespace)
        if live is None or not _ours(live) or identity(live) in deleted:
            continue
        labels = live["metadata"].get("labels") or {}
        if not any(key.startswith(OWNER_LABEL_PREFIX) and key != owner_label(OWNER_KIND) for key in labels):
            left.append(live)
    return left
