"""The shipped ClusterRoles. The full single-cluster flows (multitenant, verify, upgrade, uninstall:
test_upgrade_uninstall.py) and the multi-cluster flow (test_multicluster_playbook.py) run as a ServiceAccount bound
only to meshops-istio-installer (conftest's `installer`). Here: that account is bound to nothing else, seed 000's
shared model with its gateways installs and uninstalls as it, and an account bound only to meshops-istio-viewer
verifies but its attempt to install fails with the sentence naming the missing permission and the role to bind.

The tests build on each other in file order, like the user's runs."""

import json

import pytest
from accounts import bind, bindings_of
from kubernetes import client
from playbook import SEED_000, failures, playbook


def test_the_installer_account_is_bound_only_to_the_shipped_role(cluster, installer):
    assert bindings_of(cluster, "installer") == [
        ("V1ClusterRoleBinding", "meshops-istio-installer-installer", "meshops-istio-installer")
    ]
    # What the admin may and the account may not: an ordinary API call outside the role is refused.
    with pytest.raises(client.ApiException) as raised:
        client.CoreV1Api(installer.api_client()).list_namespaced_replication_controller("default")
    assert raised.value.status == 403


def test_the_shared_model_with_gateways_installs(cluster, installer, istioctl):
    playbook(installer, "multitenant.yml", *SEED_000, "-e", istioctl, "-e", "gateways_wait=false")
    service = client.CoreV1Api(cluster.api_client()).read_namespaced_service("istio-ingressgateway", "foo")
    assert service.metadata.labels["app.kubernetes.io/managed-by"] == "meshops.istio"


def test_a_viewer_account_verifies_and_cannot_install(cluster, tmp_path, istioctl):
    viewer = bind(cluster, "viewer", "viewer", tmp_path)
    # The viewer reads everything verify checks: the only problems are the gateways' (no istiod answers the
    # injector on the local cluster, so their pods are never created), none is a refused read.
    code, output = playbook(viewer, "verify.yml", *SEED_000, "-e", istioctl, check=False)
    assert "forbidden" not in json.dumps(output)
    [verdict] = failures(output)
    problems = verdict.removeprefix("Isolation is broken: ").split("; tenant ")
    assert len(problems) == 2 and all("gateway istio-ingressgateway is not Ready" in p for p in problems), verdict
    code, output = playbook(viewer, "multitenant.yml", *SEED_000, "-e", istioctl, "-e", "gateways_wait=false",
                            check=False)  # fmt: skip
    assert code != 0
    # The viewer role lacks the first thing the run asks for: a read of what it would write, or its dry run.
    message = failures(output)[0]
    assert "forbidden: this account may not " in message
    assert "Bind the ClusterRole meshops-istio-installer" in message
    assert "that the collection ships (playbooks/rbac.yml, see docs/rbac.md) to it" in message
    assert 'User "system:serviceaccount:meshops-istio:viewer"' in message


def test_the_shared_model_uninstalls(cluster, installer):
    playbook(installer, "uninstall.yml", *SEED_000, "-e", "uninstall_all=true", "-e", "uninstall_confirm=true")
    apps = client.AppsV1Api(cluster.api_client())
    assert [d.metadata.name for d in apps.list_deployment_for_all_namespaces(label_selector="app=istiod").items] == []
