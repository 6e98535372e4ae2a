"""A job run with exactly what an AWX Kubernetes credential injects: K8S_AUTH_HOST, K8S_AUTH_API_KEY,
K8S_AUTH_VERIFY_SSL and K8S_AUTH_SSL_CA_CERT, a service account's bearer token, no kubeconfig anywhere and an empty
HOME. multitenant, verify, upgrade and uninstall run in turn, like four job templates.

`hack/floor.sh` runs this file again with the oldest supported ansible-core and Python (MESHOPS_ANSIBLE_BIN, the
bin directory of that venv, and MESHOPS_COLLECTIONS_PATH, where it finds the collections)."""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from localcluster.cluster import REPO_ROOT
from playbook import SEED_002, failures

ANSIBLE_BIN = Path(os.environ.get("MESHOPS_ANSIBLE_BIN") or Path(sys.executable).parent)
OLD, NEW = "usergroup-1", "usergroup-1-v2"


def _collections_path() -> str:
    if os.environ.get("MESHOPS_COLLECTIONS_PATH"):
        return os.environ["MESHOPS_COLLECTIONS_PATH"]
    import ansible_collections.kubernetes.core as kubernetes_core

    # The clone's link (make venv), then the site-packages directory holding kubernetes.core and ansible.posix.
    return f"{REPO_ROOT / '.collections'}:{Path(list(kubernetes_core.__path__)[0]).parents[2]}"


@pytest.fixture(scope="module")
def credential(cluster, tmp_path_factory):
    """What AWX's 'OpenShift or Kubernetes API Bearer Token' credential injects, for a cluster-admin service
    account's token; the CA certificate in a file of its own, as AWX writes it."""
    api = cluster.api_client()
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account("kube-system", {"metadata": {"name": "awx"}})
    rbac.create_cluster_role_binding({
        "metadata": {"name": "awx-cluster-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "awx", "namespace": "kube-system"}],
    })  # fmt: skip
    token = core.create_namespaced_service_account_token(
        "awx", "kube-system", {"spec": {"expirationSeconds": 3600}}
    ).status.token
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    server = kubeconfig["clusters"][0]["cluster"]
    ca = tmp_path_factory.mktemp("awx") / "ca.crt"
    if "certificate-authority-data" in server:
        ca.write_bytes(base64.b64decode(server["certificate-authority-data"]))
    else:
        ca.write_bytes(Path(server["certificate-authority"]).read_bytes())
    return {
        "K8S_AUTH_HOST": server["server"],
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_VERIFY_SSL": "True",
        "K8S_AUTH_SSL_CA_CERT": str(ca),
    }


@pytest.fixture(scope="module")
def job(credential, binaries, tmp_path_factory):
    """Run one playbook as an AWX job would: the project checkout as working directory, its example inventory
    examples/seed-002 as the job's inventory, the credential's variables,
    an empty HOME, no kubeconfig; the json callback's view of it."""
    home = tmp_path_factory.mktemp("home")
    env = {
        "PATH": f"{ANSIBLE_BIN}:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANSIBLE_COLLECTIONS_PATH": _collections_path(),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        **credential,
    }
    istioctl = f"istioctl_path={binaries / 'istioctl'}"

    def run(name, *extra):
        result = subprocess.run(
            [str(ANSIBLE_BIN / "ansible-playbook"), f"playbooks/{name}", *SEED_002, "-e", istioctl, *extra],
            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        try:
            output = json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise AssertionError(
                f"{name} printed no JSON:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            ) from error
        assert result.returncode == 0, (name, failures(output))
        assert not list(home.glob(".kube*")), "a kubeconfig appeared in HOME"
        return output

    return run


def _revisions(cluster) -> set:
    deployments = client.AppsV1Api(cluster.api_client()).list_deployment_for_all_namespaces(
        label_selector="app.kubernetes.io/managed-by=meshops.istio"
    )
    return {(d.metadata.namespace, d.metadata.name) for d in deployments.items}


@pytest.mark.timeout(3600)  # four playbooks in one test: minutes each on a loaded 2-core machine
def test_multitenant_verify_upgrade_and_uninstall_with_only_the_credential(cluster, job):
    installed = job("multitenant.yml")
    assert installed["stats"]["localhost"]["changed"] > 0
    assert {(OLD, f"istiod-{OLD}"), ("usergroup-2", "istiod-usergroup-2")} <= _revisions(cluster)

    verified = job("verify.yml")
    assert verified["stats"]["localhost"]["failures"] == 0

    job("upgrade.yml", "-e", f"upgrade_tenant={OLD}", "-e", f"upgrade_to_revision={NEW}")
    labels = client.CoreV1Api(cluster.api_client()).read_namespace("app-ns-1").metadata.labels
    assert labels["istio.io/rev"] == NEW
    assert (OLD, f"istiod-{NEW}") in _revisions(cluster) and (OLD, f"istiod-{OLD}") not in _revisions(cluster)

    job("uninstall.yml", "-e", "uninstall_tenant=usergroup-2")
    assert ("usergroup-2", "istiod-usergroup-2") not in _revisions(cluster)
    labels = client.CoreV1Api(cluster.api_client()).read_namespace("app-ns-2").metadata.labels or {}
    assert "istio.io/rev" not in labels
