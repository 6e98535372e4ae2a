"""Multi-cluster discovery through a remote secret: cluster c1's real istiod (revision usergroup-1, cluster ID c1)
reads cluster c2 with the Secret istio_remote_secret wrote, and keeps doing so after the token is rotated."""

import base64

import pytest
import yaml
from integration.playbook import run_task
from kubernetes import client
from localcluster import binary_dir
from support import wait_for

pytestmark = [pytest.mark.conformance, pytest.mark.multicluster]

REVISION = "usergroup-1"
SELECTED = {"usergroup": REVISION}
REMOTE_ID = "c2"
SECRET = f"istio-remote-secret-{REMOTE_ID}"


@pytest.fixture(scope="module")
def primary_and_remote(clusters, istiods, tmp_path_factory):
    c1, c2 = clusters(2)
    plays = tmp_path_factory.mktemp("plays")
    installed = run_task(
        c1.kubeconfig, "meshops.istio.istio_revision",
        {"name": REVISION, "namespace": REVISION, "istioctl_path": str(binary_dir() / "istioctl"),
         "discovery_selectors": [{"matchLabels": SELECTED}], "cluster_name": "c1", "mesh_id": "mesh1"},
        tmp_path=plays,
    )  # fmt: skip
    assert installed["changed"] and not installed.get("failed"), installed.get("msg")
    remote = client.CoreV1Api(c2.api_client())
    for namespace, labels in (("app-ns-1", SELECTED), ("bystander", {})):
        remote.create_namespace({"metadata": {"name": namespace, "labels": labels}})
        create_service(c2, namespace, "echo")

    def remote_secret(**extra):
        result = run_task(
            c1.kubeconfig, "meshops.istio.istio_remote_secret",
            {"cluster_name": REMOTE_ID, "namespace": REVISION, "remote": {"kubeconfig": str(c2.kubeconfig)},
             "allow_loopback": True, **extra},  # both local clusters listen on 127.0.0.1
            tmp_path=plays,
        )  # fmt: skip
        assert not result.get("failed"), result.get("msg")
        return result

    remote_secret()
    return {"primary": c1, "remote": c2, "istiod": istiods(c1, REVISION, REVISION), "remote_secret": remote_secret}


def create_service(cluster, namespace: str, name: str) -> str:
    """Creates a Service and returns its cluster IP."""
    service = {"metadata": {"name": name}, "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": name}}}
    created = client.CoreV1Api(cluster.api_client()).create_namespaced_service(namespace, service)
    return created.spec.cluster_ip


def addresses_by_cluster(istiod, hostname: str) -> dict:
    """{cluster ID: [VIP]} of a service in istiod's registry; empty when istiod does not know it."""
    for service in istiod.debug("registryz"):
        if service["hostname"] == hostname:
            return service["clusterVIPs"]["Addresses"]
    return {}


def secret_token(primary) -> str:
    secret = client.CoreV1Api(primary.api_client()).read_namespaced_secret(SECRET, REVISION)
    kubeconfig = yaml.safe_load(base64.b64decode(secret.data[REMOTE_ID]))
    return kubeconfig["users"][0]["user"]["token"]


def authenticated(cluster, token: str) -> bool:
    review = {"spec": {"token": token}}
    return bool(client.AuthenticationV1Api(cluster.api_client()).create_token_review(review).status.authenticated)


def test_istiod_discovers_the_remote_clusters_selected_services_under_its_cluster_id(primary_and_remote):
    c2, istiod = primary_and_remote["remote"], primary_and_remote["istiod"]
    vip = client.CoreV1Api(c2.api_client()).read_namespaced_service("echo", "app-ns-1").spec.cluster_ip
    found = wait_for(
        "echo.app-ns-1 of c2 in c1's registry", lambda: addresses_by_cluster(istiod, "echo.app-ns-1.svc.cluster.local")
    )
    assert found == {REMOTE_ID: [vip]}
    # The revision's discoverySelectors scope the remote cluster too.
    assert addresses_by_cluster(istiod, "echo.bystander.svc.cluster.local") == {}
    # The reader role the module grants on c2 is all istiod needs there.
    assert [line for line in istiod.log.read_text().splitlines() if "forbidden" in line.lower()] == []


def test_after_rotate_discovery_continues_on_the_new_token_and_the_old_token_is_gone(primary_and_remote):
    c1, c2, istiod = primary_and_remote["primary"], primary_and_remote["remote"], primary_and_remote["istiod"]
    old = secret_token(c1)
    reloads_before = istiod.log.read_text().count(f"stopping previous cluster {REMOTE_ID} after new cluster synced")
    assert primary_and_remote["remote_secret"](rotate=True)["rotated"] is True
    new = secret_token(c1)
    assert new != old
    # istiod built a client from the new kubeconfig, synced it, and dropped the old one.
    wait_for(
        "istiod switches to the rotated remote secret",
        lambda: (
            istiod.log.read_text().count(f"stopping previous cluster {REMOTE_ID} after new cluster synced")
            > reloads_before
        ),
    )
    wait_for("the API server of c2 refuses the old token", lambda: not authenticated(c2, old))
    assert authenticated(c2, new)
    # Only the new token works now, and istiod still follows c2.
    vip = create_service(c2, "app-ns-1", "after-rotation")
    found = wait_for(
        "a service created after the rotation in c1's registry",
        lambda: addresses_by_cluster(istiod, "after-rotation.app-ns-1.svc.cluster.local"),
    )
    assert found == {REMOTE_ID: [vip]}
