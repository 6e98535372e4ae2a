"""What users would do instead, fed with exactly what our run did.

A: the objects our run left in the cluster, applied by plain kubernetes.core.k8s, one object per loop item.
B: the same objects, every one of them in one kubernetes.core.k8s task (a list `definition`, server-side apply).
C: the same objects in one `kubectl apply --server-side` (the CRDs first when they are not established yet).
For the control-plane part: `istioctl install -y` of the same IstioOperator spec once per revision, and (D, the
dedicated model) `helm upgrade --install` of Istio's own base chart once and istiod chart per revision, with the
values that spec sets."""

import copy
import math

from ansible_collections.meshops.istio.plugins.filter.tenancy_plan import tenancy_plan
from ansible_collections.meshops.istio.plugins.module_utils.engine import MANAGED_BY_LABEL
from ansible_collections.meshops.istio.plugins.module_utils.kinds import KINDS, apply_order
from ansible_collections.meshops.istio.plugins.module_utils.revision_render import operator_spec
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import RevisionSpec
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC
from ansible_collections.meshops.istio.plugins.modules.istio_revision import ARGUMENT_SPEC

# Set by the API server, or by controllers, never by whoever applies the object.
SERVER_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink")
SERVER_ANNOTATIONS = ("deployment.kubernetes.io/revision",)
ISTIO_API_SUFFIX = ".istio.io/"
# istioctl's own profiles, which Istio's Helm charts take as their defaults.
ISTIOCTL_ONLY_PROFILES = ("default", "minimal")


def strip_server_fields(live: dict) -> dict:
    """A live object as a user would write it: no status, no server-set metadata, no allocated cluster IPs."""
    manifest = copy.deepcopy(live)
    manifest.pop("status", None)
    metadata = manifest["metadata"]
    for key in SERVER_METADATA:
        metadata.pop(key, None)
    annotations = metadata.get("annotations") or {}
    for key in SERVER_ANNOTATIONS:
        annotations.pop(key, None)
    if not annotations:
        metadata.pop("annotations", None)
    if manifest["kind"] == "Service":
        manifest["spec"].pop("clusterIP", None)
        manifest["spec"].pop("clusterIPs", None)
    return manifest


def managed_objects(client) -> list:
    """Every object carrying our managed-by label, of every kind the collection writes and the cluster serves (the
    Gateway API's CRDs, say, are not installed here), in apply order."""
    from kubernetes import dynamic
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    api = dynamic.DynamicClient(client)
    found = []
    for kind in KINDS.values():
        try:
            resource = api.resources.get(api_version=kind.api_version, kind=kind.kind)
        except ResourceNotFoundError:
            continue
        for item in resource.get(label_selector=f"{MANAGED_BY_LABEL}=meshops.istio").items:
            found.append(strip_server_fields(dict(item.to_dict(), kind=kind.kind, apiVersion=kind.api_version)))
    return apply_order(found)


def split_crds(objects: list) -> tuple:
    """(the CustomResourceDefinitions, everything else): custom resources can be applied once their CRDs are
    established."""
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    return crds, [o for o in objects if o["kind"] != "CustomResourceDefinition"]


def _crd_name(manifest: dict) -> str | None:
    """The CRD that defines a custom resource's kind (None for built-in kinds)."""
    kind = KINDS[manifest["kind"]]
    return f"{kind.plural}.{kind.group}" if ISTIO_API_SUFFIX in manifest["apiVersion"] else None


def sample(objects: list, limit: int) -> list:
    """Every k-th object (so the mix of kinds is kept) when there are more than `limit`, plus what the sampled
    objects need to be created: their namespaces and their CRDs. 0 means no limit."""
    if not limit or len(objects) <= limit:
        return objects
    chosen = objects[:: math.ceil(len(objects) / limit)]
    namespaces = {o["metadata"].get("namespace") for o in chosen} - {None}
    crds = {_crd_name(o) for o in chosen} - {None}
    needed = [
        o
        for o in objects
        if (o["kind"] == "Namespace" and o["metadata"]["name"] in namespaces)
        or (o["kind"] == "CustomResourceDefinition" and o["metadata"]["name"] in crds)
    ]
    by_identity = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in chosen + needed}
    return apply_order(list(by_identity.values()))


def revisions(variables: dict) -> list:
    """The control planes multitenant.yml installs for these vars, as istio_revision parameters: the tenancy plan's
    (the playbook's choices), everything else at the module's defaults."""
    defaults = {name: spec.get("default") for name, spec in {**COMMON_ARG_SPEC, **ARGUMENT_SPEC}.items()}
    plan = tenancy_plan(variables["tenants"], variables.get("tenancy_model"), variables.get("shared_control_plane"))
    return [copy.deepcopy({**defaults, **revision}) for revision in plan["control_planes"]]


def istio_operator(revision: dict) -> dict:
    """The IstioOperator our istio_revision renders for these parameters, for `istioctl install -f`."""
    return {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "metadata": {"name": revision["name"]},
        "spec": operator_spec(RevisionSpec.from_params(revision)),
    }


def _helm_profile(spec: dict) -> dict:
    """The profile value for Istio's charts: istioctl's default and minimal profiles are the charts' own defaults
    for base and istiod (the charts have no profile file of those names)."""
    return {} if spec["profile"] in ISTIOCTL_ONLY_PROFILES else {"profile": spec["profile"]}


def helm_istiod_values(revision: dict) -> dict:
    """Values for Istio's istiod chart that set what the IstioOperator spec of istio_operator() sets: the chart's
    values are the operator's `values`, with its revision, meshConfig and profile beside them."""
    spec = operator_spec(RevisionSpec.from_params(revision))
    values = {**copy.deepcopy(spec["values"]), "revision": spec["revision"], **_helm_profile(spec)}
    if "meshConfig" in spec:
        values["meshConfig"] = copy.deepcopy(spec["meshConfig"])
    return values


def helm_base_values(revisions: list) -> dict:
    """Values for Istio's base chart, installed once for all revisions (its CRDs are cluster-wide, and a release
    cannot take over another's): no default revision, as our revisions set, and their profile."""
    spec = operator_spec(RevisionSpec.from_params(revisions[0]))
    return {"defaultRevision": spec["values"]["defaultRevision"], **_helm_profile(spec)}
