# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a tenant looks like: its namespaces as labelled for the revision, and the policies that isolate them.
Pure: same spec, same manifests."""

from __future__ import annotations

from .tenant_spec import TENANT_LABEL, AdminsSpec, NamespaceSpec, TenantSpec
from .vocabulary import REV_LABEL

ISOLATION_NAME = "meshops-tenant-isolation"
ADMINS_NAME = "meshops-tenant-admins"
ROOT_POLICY_SUFFIX = "-peerauth"


def root_policy_name(tenant: str) -> str:
    """The mesh-wide PeerAuthentication's name, as Istio's multiple-control-planes guide names it (seed 002)."""
    return f"{tenant}{ROOT_POLICY_SUFFIX}"


def namespace_manifest(spec: TenantSpec, entry: NamespaceSpec) -> dict:
    labels = {
        **entry.labels,
        **spec.discovery_label,
        REV_LABEL: spec.revision,
        TENANT_LABEL: spec.name,
    }
    metadata = {"name": entry.name, "labels": labels}
    if entry.annotations:
        metadata["annotations"] = dict(entry.annotations)
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": metadata}


def _allowed_namespaces(spec: TenantSpec, system_namespace: str) -> list:
    return sorted(spec.namespace_names | {system_namespace} | set(spec.isolation.allow_namespaces))


def root_peer_authentication(spec: TenantSpec, system_namespace: str) -> dict:
    """The control plane's mesh-wide mTLS: a PeerAuthentication without selector in its root namespace (the system
    namespace) applies to every namespace it manages, also one labelled by hand later without policies of its own."""
    return _istio("security.istio.io/v1", "PeerAuthentication", root_policy_name(spec.name), system_namespace,
                  {"mtls": {"mode": spec.mtls}})  # fmt: skip


def policies(spec: TenantSpec, system_namespace: str) -> list:
    """The root namespace's mesh-wide mTLS when asked, then per tenant namespace: mTLS, authorization, sidecar scope,
    network policy and admin binding, as asked."""
    isolation = spec.isolation
    allowed = _allowed_namespaces(spec, system_namespace)
    manifests = []
    if spec.root_namespace_mtls and spec.mtls != "none":
        manifests.append(root_peer_authentication(spec, system_namespace))
    for entry in spec.namespaces:
        namespace = entry.name
        if spec.mtls != "none":
            manifests.append(_istio("security.istio.io/v1", "PeerAuthentication", "default", namespace,
                                    {"mtls": {"mode": spec.mtls}}))  # fmt: skip
        if isolation.authorization:
            rules = [{"from": [{"source": {"namespaces": allowed}}]}]
            manifests.append(_istio("security.istio.io/v1", "AuthorizationPolicy", ISOLATION_NAME, namespace,
                                    {"action": "ALLOW", "rules": rules}))  # fmt: skip
        if isolation.sidecar_scope:
            hosts = [f"{name}/*" for name in allowed]
            manifests.append(_istio("networking.istio.io/v1", "Sidecar", "default", namespace,
                                    {"egress": [{"hosts": hosts}]}))  # fmt: skip
        if isolation.network_policy:
            manifests.append(_network_policy(namespace, allowed))
        subjects = _admin_subjects(isolation.admins)
        if subjects:
            manifests.append(_admin_binding(namespace, subjects))
    return manifests


def _istio(api_version, kind, name, namespace, spec):
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _network_policy(namespace: str, allowed: list) -> dict:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": ISOLATION_NAME, "namespace": namespace},
        "spec": {
            # Gateway pods (label `istio`) stay reachable from outside; every other pod only from allowed namespaces.
            "podSelector": {"matchExpressions": [{"key": "istio", "operator": "DoesNotExist"}]},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/metadata.name", "operator": "In", "values": allowed}
                                ]
                            }
                        }
                    ]
                }
            ],
        },
    }


def _admin_subjects(admins: AdminsSpec) -> list:
    group = "rbac.authorization.k8s.io"
    return [{"apiGroup": group, "kind": "User", "name": u} for u in admins.users] + [
        {"apiGroup": group, "kind": "Group", "name": g} for g in admins.groups
    ]


def _admin_binding(namespace: str, subjects: list) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": ADMINS_NAME, "namespace": namespace},
        # The built-in `admin` ClusterRole, bound in the namespace: full control there, nothing elsewhere.
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
        "subjects": subjects,
    }
