# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Secret istiod watches on the primary and the kubeconfig it holds: written from a spec, read back from a
live Secret (pure). istio_multicluster_info reads remote secrets through the same functions."""

from __future__ import annotations

import base64
import binascii

from .spec import RemoteSecretSpec

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core; the import sanity test runs without it
    yaml = None

# What istiod looks for: Secrets with this label, the cluster each is for in this annotation.
MULTICLUSTER_LABEL, CLUSTER_ANNOTATION = "istio/multiCluster", "networking.istio.io/cluster"
SECRET_PREFIX = "istio-remote-secret-"
# Where kube-controller-manager publishes the cluster's CA, in every namespace.
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"


def secret_name(cluster_name: str) -> str:
    return f"{SECRET_PREFIX}{cluster_name}"


def kubeconfig_text(cluster_name: str, server: str, ca_pem: str, token: str) -> str:
    """The kubeconfig istiod reads: cluster, context and user all named after the remote cluster."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode()},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "preferences": {},
        "users": [{"name": cluster_name, "user": {"token": token}}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def remote_secret_manifest(spec: RemoteSecretSpec, kubeconfig: str) -> dict:
    cluster = spec.cluster_name
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(cluster),
            "namespace": spec.namespace,
            "labels": {MULTICLUSTER_LABEL: "true"},
            "annotations": {CLUSTER_ANNOTATION: cluster},
        },
        "type": "Opaque",
        "data": {cluster: base64.b64encode(kubeconfig.encode()).decode()},
    }


def decoded_text(value) -> str | None:
    """A base64 value of a Secret's data as text, None when it is not."""
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, TypeError, UnicodeDecodeError):
        return None


def kubeconfig_of(secret: dict | None, cluster_name: str) -> dict | None:
    """The kubeconfig under the key `cluster_name` of a live remote secret, parsed; None when there is none."""
    text = decoded_text(((secret or {}).get("data") or {}).get(cluster_name))
    try:
        config = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    return config if isinstance(config, dict) else None


def kubeconfig_token(secret: dict | None, cluster_name: str) -> str | None:
    """The token in a live remote secret's kubeconfig, None when there is none to read."""
    users = (kubeconfig_of(secret, cluster_name) or {}).get("users")
    for user in users if isinstance(users, list) else []:
        if isinstance(user, dict) and user.get("name") == cluster_name and isinstance(user.get("user"), dict):
            return user["user"].get("token")
    return None
