# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reader on the remote cluster: the ServiceAccount istiod in a primary acts as, and the ClusterRole and
ClusterRoleBinding that let it read what istiod needs (pure). Owned by `meshops.io/remote-reader=<reader id>`,
shared by every primary that reads the remote."""

from __future__ import annotations

from .spec import RemoteSecretSpec

READER_OWNER_KIND = "remote-reader"
READER_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")

_READ = ["get", "list", "watch"]
# What istiod reads in a remote cluster (Istio's istio-reader ClusterRole, without its writes to serviceexports).
READER_RULES = [
    {
        "apiGroups": [
            "config.istio.io",
            "security.istio.io",
            "networking.istio.io",
            "authentication.istio.io",
            "rbac.istio.io",
            "telemetry.istio.io",
            "extensions.istio.io",
        ],
        "resources": ["*"],
        "verbs": _READ,
    },
    {
        "apiGroups": [""],
        "resources": [
            "configmaps",
            "endpoints",
            "namespaces",
            "nodes",
            "pods",
            "replicationcontrollers",
            "secrets",
            "services",
        ],
        "verbs": _READ,
    },
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": _READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": _READ},
    {"apiGroups": ["gateway.networking.k8s.io", "networking.x-k8s.io"], "resources": ["gateways"], "verbs": _READ},
    {"apiGroups": ["multicluster.x-k8s.io"], "resources": ["serviceexports", "serviceimports"], "verbs": _READ},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]


def reader_role_name(spec: RemoteSecretSpec) -> str:
    # A prefix of our own: never one of the istio-reader-* objects the istiod chart installs.
    return f"meshops.istio:remote-reader:{spec.reader_namespace}:{spec.service_account}"


def reader_namespace(spec: RemoteSecretSpec) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.reader_namespace}}


def reader_manifests(spec: RemoteSecretSpec, with_service_account: bool) -> list:
    """The reader's ClusterRole and ClusterRoleBinding, and its ServiceAccount unless another owner has it."""
    name = reader_role_name(spec)
    account = {"name": spec.service_account, "namespace": spec.reader_namespace}
    manifests = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": READER_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", **account}],
        },
    ]
    if with_service_account:
        manifests.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": account})
    return manifests
