"""ServiceAccounts bound only to the ClusterRoles the collection ships (roles/rbac, applied by playbooks/rbac.yml as
the cluster admin). The playbook tests run as `installer` (conftest), so every flow they cover is also proof that the
installer role is enough."""

from dataclasses import dataclass
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes import config as kube_config
from playbook import playbook

ACCOUNT_NAMESPACE = "meshops-istio"


@dataclass(frozen=True)
class Account:
    """A ServiceAccount's kubeconfig on one cluster: what playbook() and the inventories need of a cluster."""

    name: str
    kubeconfig: Path

    def api_client(self):
        return kube_config.new_client_from_config(str(self.kubeconfig))


def bind(admin, role: str, account: str, directory: Path) -> Account:
    """playbooks/rbac.yml run by the cluster admin binds the ClusterRole meshops-istio-`role` to a new ServiceAccount
    `account`; returns a kubeconfig that authenticates as that account with a TokenRequest token."""
    playbook(admin, "rbac.yml", "-e", f"rbac_role={role}", "-e", f"rbac_subject_name={account}")
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=7200))
    token = client.CoreV1Api(admin.api_client()).create_namespaced_service_account_token(
        account, ACCOUNT_NAMESPACE, request
    )
    config = yaml.safe_load(admin.kubeconfig.read_text())
    config["users"] = [{"name": account, "user": {"token": token.status.token}}]
    config["contexts"][0]["context"]["user"] = account
    path = directory / f"{admin.name}-{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return Account(admin.name, path)


def bindings_of(admin, account: str) -> list:
    """(binding kind, name, role) of every binding that names the ServiceAccount `account`."""
    rbac = client.RbacAuthorizationV1Api(admin.api_client())
    found = []
    for binding in [*rbac.list_cluster_role_binding().items, *rbac.list_role_binding_for_all_namespaces().items]:
        for subject in binding.subjects or []:
            if (subject.kind, subject.name, subject.namespace) == ("ServiceAccount", account, ACCOUNT_NAMESPACE):
                found.append((binding.kind or type(binding).__name__, binding.metadata.name, binding.role_ref.name))
    return found
