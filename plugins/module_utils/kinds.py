# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kinds the collection writes, with their API paths, so no run pays for API discovery, the order they are
applied in (dependencies first), and the phases of that order whose writes may be sent together."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .errors import UnknownKindError


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    plural: str
    namespaced: bool
    order: int  # apply in ascending order, delete in descending order
    qualified: bool = False  # the kind name is taken by another group: keyed as <Kind>.<group> (GATEWAY_API_GATEWAY)

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def version(self) -> str:
        return self.api_version.rpartition("/")[2]

    @property
    def key(self) -> str:
        """Its name in KINDS, in identities and in the `kind_name` of reads."""
        return f"{self.kind}.{self.group}" if self.qualified else self.kind


_CRDS, _NAMESPACES, _RBAC, _CONFIG, _SERVICES, _WORKLOADS, _POLICY, _WEBHOOKS = range(8)
# The ranks that begin a phase: a phase's writes are sent together, once every write of the phases before has
# returned. Custom resources need their CRD Established and namespaced objects their namespace; pods need the
# ServiceAccounts, ConfigMaps and Secrets they mount; webhooks come last, so that no write of a run meets a webhook
# whose server the run is still writing. Within a phase objects only name each other (a RoleBinding its Role, a
# Service or a policy the pods it selects), which the API server accepts in any order.
_PHASE_STARTS = (_CRDS, _NAMESPACES, _RBAC, _WORKLOADS, _WEBHOOKS)

KINDS = {
    k.key: k
    for k in (
        Kind("CustomResourceDefinition", "apiextensions.k8s.io/v1", "customresourcedefinitions", False, _CRDS),
        Kind("Namespace", "v1", "namespaces", False, _NAMESPACES),
        Kind("ServiceAccount", "v1", "serviceaccounts", True, _RBAC),
        Kind("ClusterRole", "rbac.authorization.k8s.io/v1", "clusterroles", False, _RBAC),
        Kind("ClusterRoleBinding", "rbac.authorization.k8s.io/v1", "clusterrolebindings", False, _RBAC),
        Kind("Role", "rbac.authorization.k8s.io/v1", "roles", True, _RBAC),
        Kind("RoleBinding", "rbac.authorization.k8s.io/v1", "rolebindings", True, _RBAC),
        Kind("ConfigMap", "v1", "configmaps", True, _CONFIG),
        Kind("Secret", "v1", "secrets", True, _CONFIG),
        Kind("Lease", "coordination.k8s.io/v1", "leases", True, _CONFIG),
        Kind("Service", "v1", "services", True, _SERVICES),
        # A remote cluster's istiod Service points at the primary through it (remote profile, IP address).
        Kind("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", True, _SERVICES),
        Kind("Deployment", "apps/v1", "deployments", True, _WORKLOADS),
        # Read only: what shows that a namespace holds workloads or data the collection does not own.
        Kind("Pod", "v1", "pods", True, _WORKLOADS),
        Kind("PersistentVolumeClaim", "v1", "persistentvolumeclaims", True, _WORKLOADS),
        Kind("HorizontalPodAutoscaler", "autoscaling/v2", "horizontalpodautoscalers", True, _WORKLOADS),
        Kind("PodDisruptionBudget", "policy/v1", "poddisruptionbudgets", True, _WORKLOADS),
        Kind("NetworkPolicy", "networking.k8s.io/v1", "networkpolicies", True, _POLICY),
        Kind("PeerAuthentication", "security.istio.io/v1", "peerauthentications", True, _POLICY),
        Kind("AuthorizationPolicy", "security.istio.io/v1", "authorizationpolicies", True, _POLICY),
        Kind("Sidecar", "networking.istio.io/v1", "sidecars", True, _POLICY),
        Kind("Gateway", "networking.istio.io/v1", "gateways", True, _POLICY),
        Kind("VirtualService", "networking.istio.io/v1", "virtualservices", True, _POLICY),
        # The Gateway API's Gateway, which istiod's deployment controller deploys a gateway for.
        Kind("Gateway", "gateway.networking.k8s.io/v1", "gateways", True, _POLICY, qualified=True),
        Kind("EnvoyFilter", "networking.istio.io/v1alpha3", "envoyfilters", True, _POLICY),
        # The guard of tenant isolation (guard.py).
        Kind(
            "ValidatingAdmissionPolicy",
            "admissionregistration.k8s.io/v1",
            "validatingadmissionpolicies",
            False,
            _WEBHOOKS,
        ),
        Kind(
            "ValidatingAdmissionPolicyBinding",
            "admissionregistration.k8s.io/v1",
            "validatingadmissionpolicybindings",
            False,
            _WEBHOOKS,
        ),
        Kind(
            "MutatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            "mutatingwebhookconfigurations",
            False,
            _WEBHOOKS,
        ),
        Kind(
            "ValidatingWebhookConfiguration",
            "admissionregistration.k8s.io/v1",
            "validatingwebhookconfigurations",
            False,
            _WEBHOOKS,
        ),
    )
}


GATEWAY_API_GATEWAY = "Gateway.gateway.networking.k8s.io"


def kind_key(manifest: dict) -> str:
    """The KINDS key of a manifest: its kind, or <Kind>.<group> for a kind whose name another group took first."""
    kind, group = manifest.get("kind"), (manifest.get("apiVersion") or "").rpartition("/")[0]
    qualified = f"{kind}.{group}"
    return qualified if qualified in KINDS and KINDS[qualified].qualified else kind


def kind_of(manifest: dict) -> Kind:
    kind = KINDS.get(kind_key(manifest))
    if kind is None or kind.api_version != manifest.get("apiVersion"):
        raise UnknownKindError(
            f"{manifest.get('apiVersion')}/{manifest.get('kind')} is not a kind this collection manages "
            f"(known: {', '.join(sorted(KINDS))})"
        )
    return kind


def apply_order(manifests: list) -> list:
    """Dependencies first (CRDs, namespaces, RBAC, config, services, workloads, policy, webhooks); stable by
    namespace and name within a rank, so runs and diffs are deterministic."""
    return sorted(
        manifests,
        key=lambda m: (kind_of(m).order, kind_key(m), m["metadata"].get("namespace", ""), m["metadata"]["name"]),
    )


def phase_of(manifest: dict) -> int:
    """The phase a manifest is written in (see _PHASE_STARTS): ascending with apply_order."""
    return bisect.bisect_right(_PHASE_STARTS, kind_of(manifest).order) - 1
