"""A shared namespace served by two real istiods: tenant team-a's control plane also discovers tenant platform's
namespace platform-svc, both tenants with intermediates of one root (`ca_root: corp`) and a root ConfigMap name of
their own. Both istiods publish there, each in its own ConfigMap only, and a pod of each tenant, injected by the real
injector, mounts its own revision's bundle."""

import base64
import json

import pytest
from conformance.test_dedicated_control_planes import (
    ISTIOS_ROOT_CONFIG_MAP,
    ca_bundles,
    config_map_in,
    inject,
    injected_volumes,
    injector_name,
    matching_injectors,
    root_config_map,
    root_in,
)
from integration.playbook import playbook
from kubernetes import client
from localcluster import binary_dir
from support import wait_for

pytestmark = pytest.mark.conformance

SHARED = "platform-svc"
TENANTS = [
    {"name": "platform", "namespaces": [SHARED], "ca": True, "ca_root": "corp", "create_namespaces": True},
    {"name": "team-a", "namespaces": ["team-a-app"], "ca": True, "ca_root": "corp", "shared_namespaces": [SHARED],
     "create_namespaces": True},
]  # fmt: skip
REVISIONS = ("platform", "team-a")


@pytest.fixture(scope="module")
def shared(clusters, istiods, tmp_path_factory):
    [cluster] = clusters(1)
    pki = tmp_path_factory.mktemp("pki")
    playbook(cluster, "multitenant.yml", "-e", f"istioctl_path={binary_dir() / 'istioctl'}", "-e", f"ca_root_dir={pki}",
             "-e", json.dumps({"tenants": TENANTS}))  # fmt: skip
    running = {rev: istiods(cluster, rev, rev) for rev in REVISIONS}
    return {"cluster": cluster, "api": cluster.api_client(), "istiod": running}


def cacerts_root(api, namespace: str) -> str:
    secret = client.CoreV1Api(api).read_namespaced_secret("cacerts", namespace)
    return base64.b64decode(secret.data["root-cert.pem"]).decode()


def root_config_maps(api, namespace: str) -> dict:
    """{name: ConfigMap} of the root ConfigMaps in the namespace (istiod labels them istio.io/config=true)."""
    listed = client.CoreV1Api(api).list_namespaced_config_map(namespace, label_selector="istio.io/config=true")
    return {cm.metadata.name: api.sanitize_for_serialization(cm) for cm in listed.items if "root-cert.pem" in cm.data}


def test_both_istiods_publish_in_the_shared_namespace_each_its_own_config_map_only(shared):
    api = shared["api"]
    roots = {rev: cacerts_root(api, rev) for rev in REVISIONS}
    assert roots["platform"] == roots["team-a"]  # one root, two intermediates
    for rev in REVISIONS:
        wait_for(f"{root_config_map(rev)} in {SHARED}", lambda r=rev: root_in(api, SHARED, r))
    found = root_config_maps(api, SHARED)
    assert sorted(found) == sorted(root_config_map(rev) for rev in REVISIONS)
    assert config_map_in(api, SHARED, ISTIOS_ROOT_CONFIG_MAP) is None
    for rev in REVISIONS:
        config_map = found[root_config_map(rev)]
        assert config_map["data"]["root-cert.pem"].strip() == roots[rev].strip()
        # One writer each: istiod's namespace controller (it creates the ConfigMap without a field manager, so the
        # API server names the manager after its user agent). Nobody else has written it.
        managers = {(entry["manager"], entry["operation"]) for entry in config_map["metadata"]["managedFields"]}
        assert managers == {("pilot-discovery", "Update")}, managers
    # team-a's namespace gets team-a's ConfigMap only: platform does not discover it.
    wait_for("team-a's root in team-a-app", lambda: root_in(api, "team-a-app", "team-a"))
    assert sorted(root_config_maps(api, "team-a-app")) == [root_config_map("team-a")]


def test_the_shared_namespace_is_injected_by_its_owner_only(shared):
    assert matching_injectors(shared["api"], SHARED) == [injector_name("platform")]
    assert matching_injectors(shared["api"], "team-a-app") == [injector_name("team-a")]


@pytest.mark.parametrize("rev, namespace", [("platform", SHARED), ("team-a", "team-a-app")])
def test_an_injected_pod_of_each_tenant_mounts_its_own_revisions_bundle(shared, rev, namespace):
    api = shared["api"]
    bundle = wait_for(f"caBundle of {injector_name(rev)}", lambda: ca_bundles(api, rev)[injector_name(rev)][0])
    patch = inject(shared["istiod"][rev], bundle, namespace)
    volumes = {v["name"]: v for v in injected_volumes(patch)}
    assert volumes["istiod-ca-cert"]["configMap"]["name"] == root_config_map(rev)
    mounted = wait_for(f"{root_config_map(rev)} in {namespace}", lambda: root_in(api, namespace, rev))
    assert mounted.strip() == cacerts_root(api, rev).strip()
