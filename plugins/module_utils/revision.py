# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Istio control plane (a revision): what to render, what to refuse, how to install and remove it.

Pure builders and validators first; `ensure_revision_present` / `ensure_revision_absent` at the end are what
the istio_revision module calls."""

from __future__ import annotations

import copy

from .cluster import Cluster
from .engine import Engine, Owner
from .errors import Refusal, refuse
from .istioctl import istioctl_version, render, version_key
from .names import dns_label_errors
from .selectors import any_matches, selector_errors
from .vocabulary import (
    CONTROL_PLANE_CLUSTERS_ANNOTATION,
    MAX_REVISION_LENGTH,
    MAX_TAG_LENGTH,
    NETWORK_LABEL,
    REV_LABEL,
    installed_revisions,
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
CRD_VERSION_ANNOTATION = "meshops.io/istio-version"
REMOTE_PROFILE = "remote"
ISTIO_CRDS_SELECTOR = "app.kubernetes.io/part-of=istio"
# Objects the base chart renders; everything else in a revision's rendering belongs to its istiod (Pilot).
_BASE_OBJECTS = {
    ("ServiceAccount", "istio-reader-service-account"),
    ("ValidatingWebhookConfiguration", "istiod-default-validator"),
}


# Pure: validation


def validate(params: dict) -> None:
    name, tags = params["name"], params["revision_tags"] or []
    errors = dns_label_errors(name, "name", MAX_REVISION_LENGTH) + dns_label_errors(params["namespace"], "namespace")
    if name == "default":
        errors.append("name 'default' is reserved for Istio's default revision; choose another revision name")
    for tag in tags:
        errors += dns_label_errors(tag, "revision_tags entry", MAX_TAG_LENGTH)
        if tag == name:
            errors.append(f"revision_tags entry {tag!r} equals the revision name; a tag must differ from revisions")
    if params["default_revision"] and "default" in tags:
        errors.append("revision_tags holds 'default' and default_revision is true; keep only default_revision")
    selectors = params["discovery_selectors"] or []
    for index, selector in enumerate(selectors):
        errors += selector_errors(selector, f"discovery_selectors[{index}]")
    if selectors and not any((s or {}).get("matchLabels") for s in selectors if isinstance(s, dict)):
        errors.append(
            "discovery_selectors need at least one matchLabels selector: its labels go on the system namespace "
            "so the revision's istiod sees its own namespace"
        )
    errors += _remote_errors(params)
    refuse(errors)


def _remote_errors(params: dict) -> list:
    """A remote cluster's injector must know where the primary's istiod is and which cluster and network it serves."""
    errors = []
    if params["profile"] == REMOTE_PROFILE:
        missing = [key for key in ("cluster_name", "network", "remote_pilot_address") if not params.get(key)]
        if missing:
            errors.append(
                f"profile remote needs {', '.join(missing)}: the remote's injector calls the primary's istiod at "
                "remote_pilot_address (its east-west gateway) on the path of cluster_name and network"
            )
    elif params.get("remote_pilot_address"):
        errors.append(
            "remote_pilot_address is only for profile remote (it would point this istiod's own proxies away from "
            "it); remove it or set profile: remote"
        )
    for entry in params.get("control_plane_clusters") or []:
        if not entry or "," in entry or entry != entry.strip():
            errors.append(
                f"control_plane_clusters entry {entry!r} must be a cluster name (or '*') without commas or spaces"
            )
    return errors


# Pure: builders


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else copy.deepcopy(value)  # fmt: skip
    return merged


def desired_tags(params: dict) -> list:
    return (["default"] if params["default_revision"] else []) + list(params["revision_tags"] or [])


def operator_spec(params: dict) -> dict:
    """The IstioOperator spec istioctl renders. Our settings win over the same keys in values/mesh_config."""
    global_values = {"istioNamespace": params["namespace"]}
    if params["mesh_id"]:
        global_values["meshID"] = params["mesh_id"]
    if params["cluster_name"]:
        global_values["multiCluster"] = {"clusterName": params["cluster_name"]}
    if params["network"]:
        global_values["network"] = params["network"]
    if params.get("remote_pilot_address"):
        global_values["remotePilotAddress"] = params["remote_pilot_address"]
    ours = {
        "global": global_values,
        # Empty: no default revision, so no istiod-default-validator (multi-tenant clusters want none).
        "defaultRevision": params["name"] if params["default_revision"] else "",
        "revisionTags": desired_tags(params),
    }
    if params["pilot_env"]:
        ours["pilot"] = {"env": {k: str(v) for k, v in params["pilot_env"].items()}}
    if params["profile"] == REMOTE_PROFILE:
        ours["istiodRemote"] = {"injectionPath": injection_path(params["cluster_name"], params["network"])}
        # The remote profile renders no mesh ConfigMap. Ours records the revision and its discoverySelectors on the
        # remote, so the overlap guard, istio_gateway and istio_tenant see the revision there too; nothing reads it.
        ours.setdefault("pilot", {})["configMap"] = True
    mesh_config = copy.deepcopy(params["mesh_config"] or {})
    if params["discovery_selectors"]:
        mesh_config["discoverySelectors"] = params["discovery_selectors"]
    spec = {
        "profile": params["profile"],
        "revision": params["name"],
        "values": _merge(params["values"] or {}, ours),
    }
    if mesh_config:
        spec["meshConfig"] = mesh_config
    return spec


def system_namespace(params: dict) -> dict:
    """The revision's own namespace, labelled so its discoverySelectors select it."""
    labels = {}
    for selector in params["discovery_selectors"] or []:
        labels.update(selector.get("matchLabels") or {})
    if params["network"]:
        labels[NETWORK_LABEL] = params["network"]
    metadata = {"name": params["namespace"], "labels": labels}
    if params.get("control_plane_clusters"):
        metadata["annotations"] = {CONTROL_PLANE_CLUSTERS_ANNOTATION: ",".join(params["control_plane_clusters"])}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def injection_path(cluster_name: str, network: str) -> str:
    """The path a remote cluster's injector calls on the primary's istiod: it names the pod's cluster and network."""
    return f"/inject/cluster/{cluster_name}/net/{network}"


def istioctl_labels(manifest: dict, revision: str, namespace: str, version: str) -> dict:
    """The labels `istioctl install` would add, so `istioctl tag list` and `uninstall --revision` understand us."""
    labelled = copy.deepcopy(manifest)
    labels = labelled["metadata"].setdefault("labels", {})
    base = (manifest["kind"], manifest["metadata"]["name"]) in _BASE_OBJECTS
    labels.setdefault("operator.istio.io/component", "Base" if base else "Pilot")
    labels.update(
        {
            REV_LABEL: revision,
            "install.operator.istio.io/owning-resource-namespace": namespace,
            "operator.istio.io/managed": "Reconcile",
            "operator.istio.io/version": version,
        }
    )
    return labelled


def split_rendering(rendered: list, params: dict, version: str) -> tuple:
    """(CRDs shared by every revision, the revision's own objects with istioctl's labels)."""
    crds, owned = [], []
    for manifest in rendered:
        manifest["metadata"].pop("creationTimestamp", None)
        if manifest["kind"] == "CustomResourceDefinition":
            crd = copy.deepcopy(manifest)
            crd["metadata"].setdefault("annotations", {})[CRD_VERSION_ANNOTATION] = version
            crds.append(crd)
        else:
            owned.append(istioctl_labels(manifest, params["name"], params["namespace"], version))
    return crds, owned


def injector_webhook_name(revision: str, namespace: str) -> str:
    suffix = "" if namespace == "istio-system" else f"-{namespace}"
    return f"istio-sidecar-injector-{revision}{suffix}"


def crd_version(crd: dict) -> str | None:
    metadata = crd["metadata"]
    return (metadata.get("annotations") or {}).get(CRD_VERSION_ANNOTATION)


def crds_to_apply(desired: list, live_by_name: dict, version: str) -> tuple:
    """(CRDs to apply, warnings): create missing ones, upgrade older ones, never downgrade or touch unknowns."""
    apply, warnings = [], []
    for crd in desired:
        live = live_by_name.get(crd["metadata"]["name"])
        if live is None:
            apply.append((crd, None))
            continue
        live_version = crd_version(live)
        if live_version is None:
            warnings.append(
                f"CRD {crd['metadata']['name']} was not installed by meshops.istio and its Istio version is unknown; "
                "left as it is"
            )
        elif version_key(live_version) <= version_key(version):
            apply.append((crd, live))
        else:
            warnings.append(
                f"CRD {crd['metadata']['name']} is from Istio {live_version}, newer than {version}; not downgraded"
            )
    return apply, warnings


# Pure: what is installed


def refusals(params: dict, others: dict, namespaces: dict) -> list:
    """Why installing this revision next to the `others` would break tenants (empty when it is safe).

    Revisions in one system namespace are one control plane during a canary upgrade: they share that namespace's
    CA (`cacerts`, or the self-signed `istio-ca-secret`), so they may select the same namespaces without fighting
    over `istio-ca-root-cert`. A revision joins a namespace that holds another only as its declared `canary_of`."""
    name, namespace, selectors = params["name"], params["namespace"], params["discovery_selectors"] or []
    canary_of = params.get("canary_of")
    if canary_of and others.get(canary_of, {}).get("namespace", namespace) != namespace:
        return [
            f"canary_of {canary_of} is installed in namespace {others[canary_of]['namespace']}, not {namespace}; "
            "a canary goes into the namespace of the revision it upgrades"
        ]
    # Our system namespace as it will be labelled, whether or not it exists yet.
    ours = {
        **namespaces,
        namespace: {**namespaces.get(namespace, {}), **system_namespace(params)["metadata"]["labels"]},
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
        if other in desired_tags(params):
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


def _result(params: dict, version: str | None, report) -> dict:
    namespace = params["namespace"]
    return {
        "changed": report.changed,
        "revision": params["name"],
        "namespace": namespace,
        "istio_version": version,
        "istiod_service": f"istiod-{params['name']}.{namespace}.svc",
        "injector_webhook": injector_webhook_name(params["name"], namespace),
        "tags": desired_tags(params),
        "objects": report.objects,
    }


def _engine(cluster: Cluster, params: dict, check_mode: bool) -> Engine:
    return Engine(cluster, Owner(OWNER_KIND, params["name"]), check_mode, params["force_conflicts"])


def ensure_revision_present(cluster: Cluster, run_command, params: dict, check_mode: bool) -> tuple:
    """Install or converge one revision. Returns (result, warnings, diff); raises a MeshopsError."""
    validate(params)
    engine = _engine(cluster, params, check_mode)
    version = istioctl_version(run_command, params["istioctl_path"])
    if params["istio_version"] and params["istio_version"].removeprefix("v") != version:
        raise Refusal(
            f"istio_version {params['istio_version']} is not what istioctl_path {params['istioctl_path']} renders "
            f"({version}); point istioctl_path at the istioctl of that version"
        )
    others = installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL))
    namespaces = {
        ns["metadata"]["name"]: ns["metadata"].get("labels") or {} for ns in cluster.list_objects("Namespace")
    }
    refuse(refusals(params, others, namespaces))

    crds, owned = split_rendering(render(run_command, params["istioctl_path"], operator_spec(params)), params, version)
    # Istio's CRDs carry part-of=istio; one label-selected LIST instead of every CRD's schema in the cluster.
    live_crds = {
        c["metadata"]["name"]: c for c in cluster.list_objects("CustomResourceDefinition", ISTIO_CRDS_SELECTOR)
    }
    to_apply, warnings = crds_to_apply(crds, live_crds, version)
    for crd, live in to_apply:
        engine.ensure_shared(crd, live)
    engine.ensure_shared(system_namespace(params))
    report = engine.ensure_present(owned, REVISION_KINDS)
    if params["wait"]:
        engine.wait_for_rollout(owned, params["wait_timeout"])
    return _result(params, version, report), warnings, report.diff


def ensure_revision_absent(cluster: Cluster, params: dict, check_mode: bool) -> tuple:
    """Remove every object of this revision (and its tags), nothing of any other; keep CRDs and namespace."""
    validate(params)
    engine = _engine(cluster, params, check_mode)
    users = sorted(
        ns["metadata"]["name"]
        for ns in cluster.list_objects("Namespace", label_selector=f"{REV_LABEL}={params['name']}")
        if ns["metadata"]["name"] != params["namespace"]
    )
    if users and not params["force"]:
        raise Refusal(
            f"namespaces {', '.join(users)} still carry {REV_LABEL}={params['name']}; move them to another "
            "revision first, or set force: true to remove the revision anyway"
        )
    report = engine.ensure_absent(REVISION_KINDS + REMOVAL_ONLY_KINDS)
    # One field manager writes every revision's labels: a canary left in the namespace still needs them.
    config_maps = cluster.list_objects("ConfigMap", label_selector=REV_LABEL, namespace=params["namespace"])
    if not set(installed_revisions(config_maps)) - {params["name"]}:
        engine.release("Namespace", params["namespace"])
    return _result(params, None, report), [], report.diff
