"""upgrade.yml and uninstall.yml against a real API server, on seed 002 with usergroup-1 on its own CA.

The tests build on each other in file order, like a user's runs: a canary upgrade of usergroup-1 one step at a time,
the rest of it, a re-run, then usergroup-1 uninstalled; usergroup-2 must stay byte-identical throughout, until it is
uninstalled in the middle of its own canary upgrade. Every playbook runs as the ServiceAccount bound only to the
shipped installer ClusterRole (conftest's `installer`)."""

import json

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import api_request_counts, writes
from playbook import changed_tasks, failures, playbook
from written import written

OLD, NEW = "usergroup-1", "usergroup-1-v2"
TENANTS = [
    {"name": "usergroup-1", "ca": True, "discovery_label": {"usergroup": "usergroup-1"}, "namespaces": ["app-ns-1"]},
    {"name": "usergroup-2", "discovery_label": {"usergroup": "usergroup-2"}, "namespaces": ["app-ns-2", "app-ns-3"]},
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Vars files: the tenants before the upgrade, after it (usergroup-1's revision set to the new one)."""
    directory = tmp_path_factory.mktemp("data")
    files = {}
    for name, revision in (("before", OLD), ("after", NEW)):
        tenants = [dict(TENANTS[0], revision=revision), TENANTS[1]]
        path = directory / f"{name}.yml"
        path.write_text(yaml.safe_dump({"tenants": tenants, "ca_root_dir": str(directory / "pki")}))
        files[name] = f"@{path}"
    return files


@pytest.fixture(scope="module")
def installed(cluster, installer, data, istioctl):
    playbook(installer, "multitenant.yml", "-e", istioctl, "-e", data["before"])
    apps = client.AppsV1Api(cluster.api_client())
    apps.create_namespaced_deployment("app-ns-1", _deployment("web"))
    return usergroup_2_state(cluster)


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


# Every collection the revision, tenant and CA modules write to, listed cluster-wide.
COLLECTIONS = (
    "/api/v1/configmaps", "/api/v1/secrets", "/api/v1/services", "/api/v1/serviceaccounts",
    "/apis/apps/v1/deployments", "/apis/rbac.authorization.k8s.io/v1/roles",
    "/apis/rbac.authorization.k8s.io/v1/rolebindings", "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
    "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "/apis/networking.k8s.io/v1/networkpolicies", "/apis/security.istio.io/v1/peerauthentications",
    "/apis/security.istio.io/v1/authorizationpolicies", "/apis/networking.istio.io/v1/sidecars",
)  # fmt: skip


def _list(api, path: str, selector: str) -> list:
    query = [("labelSelector", selector)]
    request = api.param_serialize("GET", path, query_params=query, auth_settings=["BearerToken"])
    response = api.call_api(*request)
    response.read()
    return json.loads(response.data)["items"]


def usergroup_2_state(cluster) -> dict:
    """{(path, namespace, name): what the collection wrote to it} of everything of usergroup-2: its namespaces, its
    control plane's objects and the tenant's policies. Equal snapshots mean nothing of it was written."""
    api = cluster.api_client()
    core = client.CoreV1Api(api)
    state = {("namespaces", "", ns): written(core.read_namespace(ns))
             for ns in ("usergroup-2", "app-ns-2", "app-ns-3")}  # fmt: skip
    for selector in ("meshops.io/revision=usergroup-2", "meshops.io/tenant=usergroup-2"):
        for path in COLLECTIONS:
            for obj in _list(api, path, selector):
                metadata = obj["metadata"]
                state[(path, metadata.get("namespace", ""), metadata["name"])] = written(obj)
    assert len(state) > 20  # the control plane and the policies were found
    return state


def _revision_installed(cluster, revision, namespace="usergroup-1") -> bool:
    try:
        client.CoreV1Api(cluster.api_client()).read_namespaced_config_map(f"istio-{revision}", namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def _labels(cluster, namespace) -> dict:
    return client.CoreV1Api(cluster.api_client()).read_namespace(namespace).metadata.labels or {}


def test_install_step_alone_adds_the_canary_next_to_the_old_revision(cluster, installer, installed, data, istioctl):
    upgrade = ("-e", istioctl, "-e", data["before"], "-e", f"upgrade_tenant={OLD}", "-e", f"upgrade_to_revision={NEW}")
    playbook(installer, "upgrade.yml", *upgrade, "--tags", "install")
    assert _revision_installed(cluster, OLD) and _revision_installed(cluster, NEW)
    assert _labels(cluster, "app-ns-1")["istio.io/rev"] == OLD  # not moved yet
    # Two revisions in one system namespace share its CA: verify still sees one control plane per tenant.
    playbook(installer, "verify.yml", "-e", istioctl, "-e", data["before"])


def test_the_rest_of_the_upgrade_moves_restarts_and_removes_the_old_revision(
    cluster, installer, installed, data, istioctl
):
    upgrade = ("-e", istioctl, "-e", data["before"], "-e", f"upgrade_tenant={OLD}", "-e", f"upgrade_to_revision={NEW}")
    playbook(installer, "upgrade.yml", *upgrade, "-e", "upgrade_restart_workloads=true")
    assert _labels(cluster, "app-ns-1")["istio.io/rev"] == NEW
    assert not _revision_installed(cluster, OLD) and _revision_installed(cluster, NEW)
    web = client.AppsV1Api(cluster.api_client()).read_namespaced_deployment("web", "app-ns-1")
    assert web.spec.template.metadata.annotations["meshops.io/restarted-for-revision"] == NEW
    webhooks = client.AdmissionregistrationV1Api(cluster.api_client()).list_mutating_webhook_configuration()
    names = {w.metadata.name for w in webhooks.items}
    assert f"istio-sidecar-injector-{NEW}-usergroup-1" in names
    assert f"istio-sidecar-injector-{OLD}-usergroup-1" not in names
    core = client.CoreV1Api(cluster.api_client())
    assert core.read_namespaced_secret("cacerts", "usergroup-1")  # the tenant's CA serves the new revision
    assert usergroup_2_state(cluster) == installed

    # Resumed or repeated, the upgrade changes nothing and writes nothing.
    before = api_request_counts(cluster.kubeconfig)
    again = playbook(installer, "upgrade.yml", *upgrade, "-e", "upgrade_restart_workloads=true")[1]
    assert changed_tasks(again) == []
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    playbook(installer, "verify.yml", "-e", istioctl, "-e", data["after"])


def test_multitenant_converges_the_upgraded_data_and_refuses_the_stale_one(
    cluster, installer, installed, data, istioctl
):
    playbook(installer, "multitenant.yml", "-e", istioctl, "-e", data["after"])
    before = api_request_counts(cluster.kubeconfig)
    assert changed_tasks(playbook(installer, "multitenant.yml", "-e", istioctl, "-e", data["after"])[1]) == []
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    # Data still naming the old revision would bring it back next to the new one: refused, naming the fix.
    code, output = playbook(installer, "multitenant.yml", "-e", istioctl, "-e", data["before"], check=False)
    assert code != 0
    assert f"namespace usergroup-1 already holds revision {NEW}" in " ".join(map(str, failures(output)))
    assert usergroup_2_state(cluster) == installed


def test_wrong_upgrade_and_uninstall_variables_fail_early_and_write_nothing(
    cluster, installer, installed, data, istioctl
):
    before = api_request_counts(cluster.kubeconfig)
    code, output = playbook(installer, "upgrade.yml", "-e", istioctl, "-e", data["after"],
                            "-e", "upgrade_tenant=nobody", "-e", "upgrade_to_revision=x", check=False)  # fmt: skip
    assert code != 0
    assert "upgrade_tenant to one of the tenants: usergroup-1, usergroup-2" in failures(output)[0]
    code, output = playbook(installer, "uninstall.yml", "-e", data["after"], "-e", "uninstall_all=true", check=False)
    assert code != 0
    assert failures(output) == ["uninstall_all removes every tenant: set uninstall_confirm: true as well"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_uninstall_removes_one_tenant_and_leaves_the_other_byte_identical(cluster, installer, installed, data):
    playbook(installer, "uninstall.yml", "-e", data["after"], "-e", "uninstall_tenant=usergroup-1")
    assert not _revision_installed(cluster, NEW)
    labels = _labels(cluster, "app-ns-1")
    assert not {"istio.io/rev", "meshops.io/tenant", "usergroup"} & set(labels)  # released, not deleted
    core = client.CoreV1Api(cluster.api_client())
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_secret("cacerts", "usergroup-1")
    assert missing.value.status == 404
    assert client.AppsV1Api(cluster.api_client()).read_namespaced_deployment("web", "app-ns-1")  # workloads stay
    assert usergroup_2_state(cluster) == installed

    before = api_request_counts(cluster.kubeconfig)
    again = playbook(installer, "uninstall.yml", "-e", data["after"], "-e", "uninstall_tenant=usergroup-1")[1]
    assert changed_tasks(again) == []
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_uninstall_during_a_canary_upgrade_removes_both_revisions(cluster, installer, installed, data, istioctl):
    """usergroup-2's upgrade stops after `move` (its data still names the old revision): uninstalling the tenant
    removes the canary as well, its injector webhook included, and leaves nothing owned by either revision."""
    canary = "usergroup-2-v2"
    upgrade = ("-e", istioctl, "-e", data["after"], "-e", "upgrade_tenant=usergroup-2", "-e",
               f"upgrade_to_revision={canary}")  # fmt: skip
    playbook(installer, "upgrade.yml", *upgrade, "--tags", "install,move")
    assert _labels(cluster, "app-ns-2")["istio.io/rev"] == canary
    assert _revision_installed(cluster, "usergroup-2", "usergroup-2") and _revision_installed(
        cluster, canary, "usergroup-2"
    )

    playbook(installer, "uninstall.yml", "-e", data["after"], "-e", "uninstall_tenant=usergroup-2")
    api = cluster.api_client()
    left = [(path, obj["metadata"]["name"]) for revision in ("usergroup-2", canary) for path in COLLECTIONS
            for obj in _list(api, path, f"meshops.io/revision={revision}")]  # fmt: skip
    assert left == []
    assert not {"istio.io/rev", "meshops.io/tenant", "usergroup"} & set(_labels(cluster, "app-ns-2"))
