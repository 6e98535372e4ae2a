# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a revision looks like: the IstioOperator spec istioctl renders, its system namespace, the labels
`istioctl install` would add, and which shared CRDs to create or upgrade. Pure: same spec, same manifests."""

from __future__ import annotations

import copy

from .istioctl import version_key
from .revision_spec import RevisionSpec
from .trust_bundle import ISTIOS_ROOT_CONFIG_MAP, trust_bundle_values
from .vocabulary import CONTROL_PLANE_CLUSTERS_ANNOTATION, NETWORK_LABEL, REV_LABEL

CRD_VERSION_ANNOTATION = "meshops.io/istio-version"
READER_SERVICE_ACCOUNT = "istio-reader-service-account"
DEFAULT_VALIDATOR = "istiod-default-validator"
# Objects the base chart renders; everything else in a revision's rendering belongs to its istiod (Pilot).
_BASE_OBJECTS = {
    ("ServiceAccount", READER_SERVICE_ACCOUNT),
    ("ValidatingWebhookConfiguration", DEFAULT_VALIDATOR),
}
# What every revision renders identically in its system namespace (`istioctl manifest generate` of two revisions in
# one namespace has only this name in common): owned by none of them, removed with the last one.
SHARED_IN_NAMESPACE = (("ServiceAccount", READER_SERVICE_ACCOUNT),)
# Labels that name one revision or its Istio version: a shared object carries none, or the runs of a canary and its
# base (of two Istio versions) would relabel it in turn.
_REVISION_LABELS = (REV_LABEL, "operator.istio.io/version", "app.kubernetes.io/version", "helm.sh/chart")


def _merge(base: dict, override: dict) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        merged[key] = _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) \
            else copy.deepcopy(value)  # fmt: skip
    return merged


def operator_spec(spec: RevisionSpec, trust_bundle: str = ISTIOS_ROOT_CONFIG_MAP) -> dict:
    """The IstioOperator spec istioctl renders, publishing the root in the ConfigMap `trust_bundle`. Our settings win
    over the same keys in values/mesh_config."""
    global_values = {"istioNamespace": spec.namespace}
    if spec.mesh_id:
        global_values["meshID"] = spec.mesh_id
    if spec.cluster_name:
        global_values["multiCluster"] = {"clusterName": spec.cluster_name}
    if spec.network:
        global_values["network"] = spec.network
    if spec.remote_pilot_address:
        global_values["remotePilotAddress"] = spec.remote_pilot_address
    ours = {
        "global": global_values,
        # Empty: no default revision, so no istiod-default-validator (multi-tenant clusters want none).
        "defaultRevision": spec.name if spec.default_revision else "",
        "revisionTags": list(spec.tags),
    }
    if spec.pilot_env:
        ours["pilot"] = {"env": {k: str(v) for k, v in spec.pilot_env.items()}}
    if spec.remote:
        ours["istiodRemote"] = {"injectionPath": injection_path(spec.cluster_name, spec.network)}
        # The remote profile renders no mesh ConfigMap. Ours records the revision and its discoverySelectors on the
        # remote, so the overlap guard, istio_gateway and istio_tenant see the revision there too; nothing reads it.
        ours.setdefault("pilot", {})["configMap"] = True
    ours = _merge(ours, trust_bundle_values(trust_bundle))
    mesh_config = copy.deepcopy(spec.mesh_config)
    if spec.discovery_selectors:
        mesh_config["discoverySelectors"] = copy.deepcopy(list(spec.discovery_selectors))
    rendered = {
        "profile": spec.profile,
        "revision": spec.name,
        "values": _merge(spec.values, ours),
    }
    if mesh_config:
        rendered["meshConfig"] = mesh_config
    return rendered


def system_namespace(spec: RevisionSpec) -> dict:
    """The revision's own namespace, labelled so its discoverySelectors select it."""
    labels = {}
    for selector in spec.discovery_selectors:
        labels.update(selector.get("matchLabels") or {})
    if spec.network:
        labels[NETWORK_LABEL] = spec.network
    metadata = {"name": spec.namespace, "labels": labels}
    if spec.control_plane_clusters:
        metadata["annotations"] = {CONTROL_PLANE_CLUSTERS_ANNOTATION: ",".join(spec.control_plane_clusters)}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def injection_path(cluster_name: str, network: str) -> str:
    """The path a remote cluster's injector calls on the primary's istiod: it names the pod's cluster and network."""
    return f"/inject/cluster/{cluster_name}/net/{network}"


def injector_webhook_name(revision: str, namespace: str) -> str:
    suffix = "" if namespace == "istio-system" else f"-{namespace}"
    return f"istio-sidecar-injector-{revision}{suffix}"


def _istioctl_labels(manifest: dict, revision: str, namespace: str, version: str) -> dict:
    """The labels `istioctl install` would add, so `istioctl tag list` and `uninstall --revision` understand us."""
    base = (manifest["kind"], manifest["metadata"]["name"]) in _BASE_OBJECTS
    labels = {
        "operator.istio.io/component": "Base" if base else "Pilot",
        **(manifest["metadata"].get("labels") or {}),
        REV_LABEL: revision,
        "install.operator.istio.io/owning-resource-namespace": namespace,
        "operator.istio.io/managed": "Reconcile",
        "operator.istio.io/version": version,
    }
    return {**manifest, "metadata": {**manifest["metadata"], "labels": labels}}


def split_rendering(rendered: list, spec: RevisionSpec, version: str) -> tuple:
    """(CRDs shared by every revision, the revision's own objects with istioctl's labels)."""
    crds, owned = [], []
    for manifest in rendered:
        manifest["metadata"].pop("creationTimestamp", None)
        if manifest["kind"] == "CustomResourceDefinition":
            annotations = {**(manifest["metadata"].get("annotations") or {}), CRD_VERSION_ANNOTATION: version}
            crds.append({**manifest, "metadata": {**manifest["metadata"], "annotations": annotations}})
        else:
            if "default" not in spec.tags:  # a default validator would see unlabelled config
                manifest = validating_its_namespaces(manifest, spec.name)
            owned.append(_istioctl_labels(manifest, spec.name, spec.namespace, version))
    return crds, owned


def validating_its_namespaces(manifest: dict, revision: str) -> dict:
    """The revision's validator, also validating the unlabelled Istio config of the namespaces injected by it.

    Istio's per-revision validator only sees objects labelled istio.io/rev=<revision>; the cluster-wide default
    validator sees the rest, but a multi-tenant install has no default revision, so a tenant's unlabelled
    VirtualService would reach istiod unvalidated. A second webhook of the same configuration (istiod patches the
    caBundle and failurePolicy of every webhook in it) takes unlabelled objects in namespaces labelled for the
    revision; labelled ones stay with the first, so nothing is validated twice."""
    if manifest["kind"] != "ValidatingWebhookConfiguration" or manifest["metadata"]["name"] == DEFAULT_VALIDATOR:
        return manifest
    selected = {"key": REV_LABEL, "operator": "In", "values": [revision]}
    revised = copy.deepcopy(manifest)
    for hook in manifest.get("webhooks") or []:
        if selected in ((hook.get("objectSelector") or {}).get("matchExpressions") or []):
            by_namespace = copy.deepcopy(hook)
            by_namespace["name"] = f"namespace.{hook['name']}"
            by_namespace["objectSelector"] = {"matchExpressions": [{"key": REV_LABEL, "operator": "DoesNotExist"}]}
            by_namespace["namespaceSelector"] = {"matchExpressions": [selected]}
            revised["webhooks"].append(by_namespace)
    return revised


def split_shared(owned: list) -> tuple:
    """(objects every revision of the namespace renders the same, without the labels naming one revision; the rest)."""
    shared, own = [], []
    for manifest in owned:
        if (manifest["kind"], manifest["metadata"]["name"]) in SHARED_IN_NAMESPACE:
            neutral = copy.deepcopy(manifest)
            for label in _REVISION_LABELS:
                neutral["metadata"]["labels"].pop(label, None)
            shared.append(neutral)
        else:
            own.append(manifest)
    return shared, own


def _crd_version(crd: dict) -> str | None:
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
        live_version = _crd_version(live)
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
