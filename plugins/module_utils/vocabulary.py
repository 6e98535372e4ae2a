# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The names the collection and Istio agree on (labels, annotations, field manager), and what they say about a
cluster: which revisions are installed and which tag points where. Pure."""

from __future__ import annotations

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core; the import sanity test runs without it
    yaml = None

# Ours
FIELD_MANAGER = "meshops.istio"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
OWNER_LABEL_PREFIX = "meshops.io/"

# Istio's
REV_LABEL = "istio.io/rev"
TAG_LABEL = "istio.io/tag"
# Namespace label of Istio's default injection; revision injectors only act where it is absent.
INJECTION_LABEL = "istio-injection"
NETWORK_LABEL = "topology.istio.io/network"
# Kubernetes': the API server sets it on every namespace, so a selector on it names namespaces.
NAME_LABEL = "kubernetes.io/metadata.name"
# Namespace annotation of a remote cluster's istio namespace: the clusters whose istiod manages this one.
CONTROL_PLANE_CLUSTERS_ANNOTATION = "topology.istio.io/controlPlaneClusters"
# Deployment annotation of the fewest replicas it runs with when an HPA sets its count (a gateway's
# autoscale.min_replicas): a rollout is complete only once that many are available, not when the first one is.
MIN_REPLICAS_ANNOTATION = "meshops.io/min-replicas"
# Istio derives Service names `istiod-<revision>` and `istiod-revision-tag-<tag>`: DNS labels of <= 63.
MAX_REVISION_LENGTH = 63 - len("istiod-")
MAX_TAG_LENGTH = 63 - len("istiod-revision-tag-")
# A tag's Service is `istiod-revision-tag-<tag>`: a revision named `revision-tag-<tag>` would own the same Service.
TAG_SERVICE_PREFIX = "revision-tag-"


def owner_label(owner_kind: str) -> str:
    """The label naming the module instance that owns an object: `meshops.io/<revision|tenant|gateway|...>`."""
    return f"{OWNER_LABEL_PREFIX}{owner_kind}"


def owners_of(labels: dict) -> list:
    """`<kind> <name>` of every meshops.istio owner an object's labels name (empty when the collection did not
    write it)."""
    if labels.get(MANAGED_BY_LABEL) != FIELD_MANAGER:
        return []
    return [
        f"{key[len(OWNER_LABEL_PREFIX) :]} {value}"
        for key, value in sorted(labels.items())
        if key.startswith(OWNER_LABEL_PREFIX)
    ]


def installed_revisions(config_maps: list) -> dict:
    """{revision: {"namespace", "selectors"}} from the mesh ConfigMaps `istio-<rev>` (or `istio`) found."""
    revisions = {}
    for cm in config_maps:
        metadata = cm["metadata"]
        revision = (metadata.get("labels") or {}).get(REV_LABEL)
        if not revision or metadata["name"] not in (f"istio-{revision}", "istio"):
            continue
        mesh = yaml.safe_load((cm.get("data") or {}).get("mesh") or "") or {}
        revisions[revision] = {"namespace": metadata["namespace"], "selectors": mesh.get("discoverySelectors") or []}
    return revisions


def installed_tags(webhooks: list) -> dict:
    """{tag: revision} from the `istio-revision-tag-<tag>` MutatingWebhookConfigurations."""
    tags = {}
    for webhook in webhooks:
        labels = webhook["metadata"].get("labels") or {}
        if labels.get(TAG_LABEL) and labels.get(REV_LABEL):
            tags[labels[TAG_LABEL]] = labels[REV_LABEL]
    return tags


def tag_holders(webhooks: list) -> dict:
    """{tag: sorted revisions} from the tag webhooks: more than one revision for a tag means two injectors match it."""
    holders = {}
    for webhook in webhooks:
        labels = webhook["metadata"].get("labels") or {}
        if labels.get(TAG_LABEL) and labels.get(REV_LABEL):
            holders.setdefault(labels[TAG_LABEL], set()).add(labels[REV_LABEL])
    return {tag: sorted(revisions) for tag, revisions in holders.items()}


def resolve_revision(name: str, revisions: dict, tags: dict) -> str | None:
    """The installed revision a revision name or tag stands for, or None."""
    if name in revisions:
        return name
    return tags.get(name) if tags.get(name) in revisions else None
