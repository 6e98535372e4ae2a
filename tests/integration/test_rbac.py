"""Every playbook run by a ServiceAccount bound only to the shipped ClusterRole meshops-istio-installer (applied by
playbooks/rbac.yml as the cluster admin), with a kubeconfig holding a TokenRequest token: seed 002 installed on
its own CA, verified, upgraded canary-style and uninstalled; seed 000's shared model with
its gateways installed and uninstalled; then a primary-remote mesh of two clusters installed and verified. An
account bound only to meshops-istio-viewer verifies, and its attempt to install fails with the sentence naming the
missing permission and the role to bind.

The tests build on each other in file order, like the user's runs."""

from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from playbook import SEED_000, changed_count, failures, playbook
from test_multicluster_playbook import inventory

ACCOUNT_NAMESPACE = "meshops-istio"
OLD, NEW = "usergroup-1", "usergroup-1-v2"
TENANTS = [
    {"name": "usergroup-1", "ca": True, "discovery_label": {"usergroup": "usergroup-1"}, "namespaces": ["app-ns-1"]},
    {"name": "usergroup-2", "discovery_label": {"usergroup": "usergroup-2"}, "namespaces": ["app-ns-2", "app-ns-3"]},
]


@dataclass(frozen=True)
class Account:
    """A ServiceAccount's kubeconfig: what playbook() and inventory() need of a cluster."""

    name: str
    kubeconfig: Path


def bind(admin, role: str, account: str, directory: Path) -> Account:
    """playbooks/rbac.yml run by the cluster admin binds the ClusterRole `role` to a new ServiceAccount `account`;
    returns a kubeconfig that authenticates as that account with a TokenRequest token."""
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


@pytest.fixture(scope="module")
def directory(tmp_path_factory):
    return tmp_path_factory.mktemp("rbac")


@pytest.fixture(scope="module")
def installer(cluster, directory) -> Account:
    return bind(cluster, "installer", "installer", directory)


@pytest.fixture(scope="module")
def data(directory):
    """Vars files: seed 002's tenants with usergroup-1 on its own CA, before the upgrade and after it."""
    files = {}
    for name, revision in (("before", OLD), ("after", NEW)):
        path = directory / f"{name}.yml"
        tenants = [dict(TENANTS[0], revision=revision), TENANTS[1]]
        path.write_text(yaml.safe_dump({"tenants": tenants, "ca_root_dir": str(directory / "pki")}))
        files[name] = f"@{path}"
    return files


def test_the_installer_account_is_bound_only_to_the_shipped_role(cluster, installer):
    assert bindings_of(cluster, "installer") == [
        ("V1ClusterRoleBinding", "meshops-istio-installer-installer", "meshops-istio-installer")
    ]
    # What the admin may and the account may not: an ordinary API call outside the role is refused.
    core = client.CoreV1Api(client.ApiClient(_configuration(installer)))
    with pytest.raises(client.ApiException) as raised:
        core.list_namespaced_replication_controller("default")
    assert raised.value.status == 403


def test_multitenant_installs_and_verify_passes(installer, data, istioctl):
    first = playbook(installer, "multitenant.yml", "-e", istioctl, "-e", data["before"])[1]
    assert changed_count(first) > 0
    playbook(installer, "verify.yml", "-e", data["before"])


def test_a_viewer_account_verifies_and_cannot_install(cluster, directory, data, istioctl):
    viewer = bind(cluster, "viewer", "viewer", directory)
    playbook(viewer, "verify.yml", "-e", data["before"])
    code, output = playbook(viewer, "multitenant.yml", "-e", istioctl, "-e", data["before"], check=False)
    assert code != 0
    # Each control plane fails alone (the play goes on with the others), each on the first thing the run asks for
    # that the viewer role lacks: a read of what it would write, or its dry run.
    message = failures(output)[0]
    assert "forbidden: this account may not " in message
    assert "Bind the ClusterRole meshops-istio-installer" in message
    assert "that the collection ships (playbooks/rbac.yml, see docs/rbac.md) to it" in message
    assert 'User "system:serviceaccount:meshops-istio:viewer"' in message


def test_upgrade_moves_restarts_and_removes_the_old_revision(cluster, installer, data, istioctl):
    client.AppsV1Api(cluster.api_client()).create_namespaced_deployment("app-ns-1", _deployment("web"))
    upgrade = ("-e", istioctl, "-e", data["before"], "-e", f"upgrade_tenant={OLD}", "-e", f"upgrade_to_revision={NEW}")
    playbook(installer, "upgrade.yml", *upgrade, "-e", "upgrade_restart_workloads=true")
    core, apps = client.CoreV1Api(cluster.api_client()), client.AppsV1Api(cluster.api_client())
    assert core.read_namespace("app-ns-1").metadata.labels["istio.io/rev"] == NEW
    web = apps.read_namespaced_deployment("web", "app-ns-1").spec.template.metadata.annotations
    assert web["meshops.io/restarted-for-revision"] == NEW
    assert [d.metadata.name for d in apps.list_namespaced_deployment("usergroup-1").items] == [f"istiod-{NEW}"]
    playbook(installer, "verify.yml", "-e", data["after"])


def test_uninstall_removes_a_tenant_then_every_tenant(cluster, installer, data):
    playbook(installer, "uninstall.yml", "-e", data["after"], "-e", f"uninstall_tenant={OLD}")
    assert "istio.io/rev" not in (client.CoreV1Api(cluster.api_client()).read_namespace("app-ns-1").metadata.labels)
    everything = ("-e", "uninstall_all=true", "-e", "uninstall_confirm=true")
    playbook(installer, "uninstall.yml", "-e", data["after"], *everything)
    assert _istio_deployments(cluster) == []


def test_the_shared_model_with_gateways_installs_and_uninstalls(cluster, installer, istioctl):
    playbook(installer, "multitenant.yml", *SEED_000, "-e", istioctl, "-e", "gateways_wait=false")
    service = client.CoreV1Api(cluster.api_client()).read_namespaced_service("istio-ingressgateway", "foo")
    assert service.metadata.labels["app.kubernetes.io/managed-by"] == "meshops.istio"
    playbook(installer, "uninstall.yml", *SEED_000, "-e", "uninstall_all=true", "-e", "uninstall_confirm=true")
    assert _istio_deployments(cluster) == []


def test_multicluster_installs_and_verifies_a_mesh_of_two_clusters(two_clusters, installer, directory, binaries):
    accounts = (installer, bind(two_clusters[1], "installer", "installer", directory))
    path = directory / "mesh.yml"
    path.write_text(yaml.safe_dump(inventory(accounts, binaries, directory / "mesh-pki")))
    first = playbook(accounts[0], "multicluster.yml", "-i", str(path))[1]
    assert all(stats["changed"] > 0 for stats in first["stats"].values())
    playbook(accounts[0], "verify-multicluster.yml", "-i", str(path))


def _configuration(account: Account):
    from kubernetes import config

    configuration = client.Configuration()
    config.load_kube_config(str(account.kubeconfig), client_configuration=configuration)
    return configuration


def _istio_deployments(cluster) -> list:
    apps = client.AppsV1Api(cluster.api_client())
    return [d.metadata.name for d in apps.list_deployment_for_all_namespaces(label_selector="app=istiod").items]


def _deployment(name):
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name=name, image="web:1")]),
            ),
        ),
    )
