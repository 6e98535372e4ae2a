"""The local cluster is a real Kubernetes control plane: each test here would fail against a fake."""

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from localcluster import api_request_counts, server_request_counts, wait_for_namespace_defaults, writes
from localcluster.cluster import Cluster, _alive

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.meshops.io"},
    "spec": {
        "group": "test.meshops.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _namespace(api_client) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api_client).create_namespace({"metadata": {"name": name}})
    wait_for_namespace_defaults(api_client, name)
    return name


def _wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"{what} not reached within {timeout} s")


def _config_map(name, namespace, data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace}, "data": data}


@pytest.fixture(scope="module")
def dynamic(api):
    return DynamicClient(api)


def test_version_is_the_pinned_kubernetes(api, binaries):
    pinned = dict(line.split("=", 1) for line in _versions_lines())["KUBERNETES_VERSION"]
    assert client.VersionApi(api).get_code().git_version == f"v{pinned}"


def _versions_lines():
    from localcluster.cluster import REPO_ROOT

    text = (REPO_ROOT / "hack" / "versions.env").read_text()
    return [line.strip() for line in text.splitlines() if "=" in line and not line.startswith("#")]


def test_crd_schema_rejects_invalid_custom_resource(api, dynamic):
    extensions = client.ApiextensionsV1Api(api)
    try:
        extensions.create_custom_resource_definition(WIDGET_CRD)
    except ApiException as error:
        assert error.status == 409
    _wait_for(
        lambda: any(
            c.type == "Established" and c.status == "True"
            for c in extensions.read_custom_resource_definition(WIDGET_CRD["metadata"]["name"]).status.conditions or []
        ),
        what="CRD Established",
    )
    namespace = _namespace(api)
    widgets = _wait_for(lambda: _resource_or_none(dynamic, "test.meshops.io/v1", "Widget"), what="Widget discovery")
    valid = {"apiVersion": "test.meshops.io/v1", "kind": "Widget", "metadata": {"name": "ok"}, "spec": {"size": 3}}
    widgets.create(body=valid, namespace=namespace)

    invalid = {**valid, "metadata": {"name": "too-big"}, "spec": {"size": 42}}
    with pytest.raises(ApiException) as rejected:
        widgets.create(body=invalid, namespace=namespace)
    assert rejected.value.status == 422
    assert "spec.size" in rejected.value.body
    assert [w.metadata.name for w in widgets.get(namespace=namespace).items] == ["ok"]


def _resource_or_none(dynamic, api_version, kind):
    try:
        dynamic.resources.invalidate_cache()
        return dynamic.resources.get(api_version=api_version, kind=kind)
    except Exception:
        return None


def test_server_side_apply_reports_conflict_between_field_managers(api, dynamic):
    namespace = _namespace(api)
    config_maps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    config_maps.server_side_apply(
        body=_config_map("shared", namespace, {"owner": "first"}), namespace=namespace, field_manager="first"
    )
    with pytest.raises(ApiException) as conflict:
        config_maps.server_side_apply(
            body=_config_map("shared", namespace, {"owner": "second"}), namespace=namespace, field_manager="second"
        )
    assert conflict.value.status == 409
    assert "conflict" in conflict.value.body.lower()
    assert config_maps.get(name="shared", namespace=namespace).data.owner == "first"

    forced = config_maps.server_side_apply(
        body=_config_map("shared", namespace, {"owner": "second"}),
        namespace=namespace,
        field_manager="second",
        force_conflicts=True,
    )
    assert forced.data.owner == "second"


def test_server_side_dry_run_changes_nothing(api, dynamic, cluster):
    namespace = _namespace(api)
    config_maps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    existing = config_maps.create(body=_config_map("kept", namespace, {"a": "1"}), namespace=namespace)
    before = server_request_counts(cluster.kubeconfig)

    preview = config_maps.server_side_apply(
        body=_config_map("kept", namespace, {"a": "2"}),
        namespace=namespace,
        field_manager="t",
        force_conflicts=True,
        dry_run="All",
    )
    created = config_maps.create(body=_config_map("new", namespace, {"b": "1"}), namespace=namespace, dry_run="All")

    assert preview.data.a == "2" and created.metadata.name == "new"
    current = config_maps.get(name="kept", namespace=namespace)
    assert current.data.a == "1"
    assert current.metadata.resourceVersion == existing.metadata.resourceVersion
    with pytest.raises(ApiException) as absent:
        config_maps.get(name="new", namespace=namespace)
    assert absent.value.status == 404
    # The server counts dry runs apart (label dry_run=All): no write was counted.
    assert writes(before, server_request_counts(cluster.kubeconfig)) == {}


def test_request_counts_name_what_a_client_sent_and_not_what_the_controllers_did(api, dynamic, cluster):
    before, before_dry = (api_request_counts(cluster.kubeconfig, dry_run) for dry_run in (False, True))
    namespace = _namespace(api)  # kube-controller-manager then writes its ServiceAccount and root CA ConfigMap
    config_maps = dynamic.resources.get(api_version="v1", kind="ConfigMap")
    config_maps.server_side_apply(body=_config_map("a", namespace, {"a": "1"}), namespace=namespace, field_manager="t")
    config_maps.create(body=_config_map("b", namespace, {"b": "1"}), namespace=namespace, dry_run="All")
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {
        ("POST", "namespaces", ""): 1,
        ("APPLY", "configmaps", ""): 1,
    }
    assert writes(before_dry, api_request_counts(cluster.kubeconfig, dry_run=True)) == {("POST", "configmaps", ""): 1}
    assert ("POST", "serviceaccounts", "") in writes({}, server_request_counts(cluster.kubeconfig))


def test_deployment_becomes_ready_through_kwok(api):
    namespace = _namespace(api)
    labels = {"app": "web"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "web", "image": "example.invalid/web:1"}]},
            },
        },
    }
    apps = client.AppsV1Api(api)
    apps.create_namespaced_deployment(namespace, deployment)
    ready = _wait_for(
        lambda: (apps.read_namespaced_deployment_status("web", namespace).status.ready_replicas or 0) == 2,
        what="2 ready replicas",
    )
    assert ready
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 2
    assert all(p.status.phase == "Running" and p.spec.node_name for p in pods)


def test_impersonated_user_without_rbac_is_forbidden(api, cluster):
    namespace = _namespace(api)
    user = f"tenant-{uuid.uuid4().hex[:6]}"
    as_user = cluster.api_client()
    as_user.set_default_header("Impersonate-User", user)
    with pytest.raises(ApiException) as forbidden:
        client.CoreV1Api(as_user).list_namespaced_config_map(namespace)
    assert forbidden.value.status == 403
    assert user in forbidden.value.body

    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "read-config"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "read-config"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-config"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    # Granted in its namespace only: the same user still may not read another namespace.
    assert _wait_for(lambda: _can_list(as_user, namespace), what="RBAC grant") is True
    with pytest.raises(ApiException) as elsewhere:
        client.CoreV1Api(as_user).list_namespaced_config_map("default")
    assert elsewhere.value.status == 403


def _can_list(api_client, namespace):
    try:
        client.CoreV1Api(api_client).list_namespaced_config_map(namespace)
        return True
    except ApiException:
        return False


def test_service_account_tokens_are_signed_and_accepted(api, cluster):
    namespace = _namespace(api)
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "reader"}})
    token = core.create_namespaced_service_account_token(
        "reader", namespace, {"spec": {"expirationSeconds": 600}}
    ).status.token
    review = client.AuthenticationV1Api(api).create_token_review({"spec": {"token": token}})
    assert review.status.authenticated
    assert review.status.user.username == f"system:serviceaccount:{namespace}:reader"


@pytest.mark.multicluster
def test_two_clusters_are_independent(two_clusters):
    first, second = two_clusters
    assert first.kubeconfig != second.kubeconfig
    name = f"only-in-first-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(first.api_client()).create_namespace({"metadata": {"name": name}})
    with pytest.raises(ApiException) as absent:
        client.CoreV1Api(second.api_client()).read_namespace(name)
    assert absent.value.status == 404
    uid_first = client.CoreV1Api(first.api_client()).read_namespace("kube-system").metadata.uid
    uid_second = client.CoreV1Api(second.api_client()).read_namespace("kube-system").metadata.uid
    assert uid_first != uid_second


def test_istioctl_renders_revisioned_minimal_profile_offline(binaries, tmp_path):
    revision = "usergroup-1"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    result = subprocess.run(
        [
            binaries / "istioctl",
            "manifest",
            "generate",
            "--set",
            "profile=minimal",
            "--set",
            f"revision={revision}",
            "--set",
            f"values.global.istioNamespace={revision}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    objects = {(o["kind"], o["metadata"]["name"]) for o in yaml.safe_load_all(result.stdout) if o}
    assert ("Deployment", f"istiod-{revision}") in objects
    assert ("Service", f"istiod-{revision}") in objects
    assert ("MutatingWebhookConfiguration", f"istio-sidecar-injector-{revision}-{revision}") in objects
    assert ("ConfigMap", f"istio-{revision}") in objects
    assert not any(kind == "Deployment" and "gateway" in name for kind, name in objects)


def test_istioctl_reports_the_pinned_istio_version(binaries):
    pinned = dict(line.split("=", 1) for line in _versions_lines())["ISTIO_VERSION"]
    result = subprocess.run(
        [binaries / "istioctl", "version", "--remote=false", "--short"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == f"client version: {pinned}"


def test_components_die_with_a_killed_test_process(tmp_path):
    """No process is left behind even when the process that started the cluster is SIGKILLed."""
    state = tmp_path / "orphan"
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from localcluster import start_cluster;"
            "start_cluster('orphan', Path(sys.argv[1])); print('up', flush=True); time.sleep(600)",
            str(state),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert starter.stdout.readline().strip() == "up"
        pids = Cluster.load(state).pids
        assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
        assert all(_alive(pid) for pid in pids.values())
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait()
    _wait_for(lambda: not any(_alive(pid) for pid in pids.values()), timeout=15, what="components gone")
