"""What the collection takes from current Istio, as the playbooks use it on seed 002 (dedicated model), run as the
installer account:
- the mesh-wide STRICT PeerAuthentication Istio's multiple-control-planes guide puts in each control plane's root
  namespace, owned by the tenant: written before injection, idempotent, in check mode and diff, verified, guarded,
  removed with the tenant;
- Istio's own analyzers in verify.yml (istio_analysis_info): the clean install passes, an Error-level finding planted
  by hand fails it, and the module reaches the cluster with any of the modules' credentials.

The tests build on each other in file order, like the user's runs."""

import glob
import json
import tempfile

import pytest
from kubernetes import client
from localcluster import api_request_counts, writes
from playbook import SEED_002, changed_count, failures, playbook, run_task

ROOT_POLICIES = {"usergroup-1": "usergroup-1-peerauth", "usergroup-2": "usergroup-2-peerauth"}
PA = ("security.istio.io", "v1", "peerauthentications")


def root_policy(api, tenant: str):
    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(*PA[:2], tenant, PA[2], ROOT_POLICIES[tenant])
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def task_results(output, name_part: str) -> list:
    """The host results of the tasks whose name (after a role's prefix) starts with `name_part`."""
    return [
        host
        for play in output["plays"]
        for task in play["tasks"]
        if task["task"]["name"].split(" : ")[-1].startswith(name_part)
        for host in task["hosts"].values()
    ]


def test_check_mode_shows_the_root_namespace_policies_and_writes_nothing(cluster, installer, istioctl):
    before = api_request_counts(cluster.kubeconfig)
    output = playbook(installer, "multitenant.yml", *SEED_002, "-e", istioctl, "--check", "--diff")[1]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    [tenants] = task_results(output, "Tenants ")
    planned = {(o["kind"], o["namespace"], o["name"]) for o in tenants["objects"]}
    assert {("PeerAuthentication", tenant, name) for tenant, name in ROOT_POLICIES.items()} <= planned
    headers = [d["after_header"] for d in tenants["diff"]]
    assert "PeerAuthentication usergroup-1/usergroup-1-peerauth" in headers


def test_the_install_writes_each_root_policy_before_any_namespace_is_injected(cluster, installer, istioctl):
    output = playbook(installer, "multitenant.yml", *SEED_002, "-e", istioctl)[1]
    [tenants] = task_results(output, "Tenants ")
    order = [(o["kind"], o["namespace"], o["name"]) for o in tenants["objects"]]
    injected = max(i for i, (kind, _ns, name) in enumerate(order) if kind == "Namespace" and name == "app-ns-1")
    assert order.index(("PeerAuthentication", "usergroup-1", "usergroup-1-peerauth")) < injected
    api = cluster.api_client()
    for tenant in ROOT_POLICIES:
        policy = root_policy(api, tenant)
        assert policy["spec"] == {"mtls": {"mode": "STRICT"}}  # no selector: mesh-wide for the control plane
        labels = policy["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "meshops.istio" and labels["meshops.io/tenant"] == tenant


def test_a_second_run_sends_no_write(cluster, installer, istioctl):
    before = api_request_counts(cluster.kubeconfig)
    again = playbook(installer, "multitenant.yml", *SEED_002, "-e", istioctl)[1]
    assert changed_count(again) == 0
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_verify_passes_and_reports_the_analyzers_findings_per_tenant(cluster, installer, istioctl):
    output = playbook(installer, "verify.yml", *SEED_002, "-e", istioctl)[1]
    [analysis] = task_results(output, "Run istioctl analyze")
    assert set(analysis["tenants"]) == set(ROOT_POLICIES) and analysis["problems"] == []
    for tenant, facts in analysis["tenants"].items():
        assert facts["revision"] == tenant and facts["counts"]["Error"] == 0
        print(f"\n{tenant}: " + ", ".join(f"{f['level']} {f['code']} on {f['origin']}" for f in facts["findings"]))
    [isolation] = task_results(output, "Read the isolation facts")
    assert isolation["invariants"]["tenant usergroup-1: mesh-wide mTLS in root namespace usergroup-1"] == []


def test_verify_fails_on_an_error_level_finding_planted_by_hand(cluster, installer, istioctl):
    custom = client.CustomObjectsApi(cluster.api_client())
    service = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "broken", "namespace": "app-ns-1"},
        "spec": {"hosts": ["web"], "gateways": ["missing"], "http": [{"route": [{"destination": {"host": "web"}}]}]},
    }
    custom.create_namespaced_custom_object("networking.istio.io", "v1", "app-ns-1", "virtualservices", service)
    try:
        code, output = playbook(installer, "verify.yml", *SEED_002, "-e", istioctl, check=False)
        assert code != 0
        [message] = failures(output)
        assert message.startswith("istioctl analyze: tenant usergroup-1: istioctl analyze --revision usergroup-1 "
                                  "reports Error IST0101 on VirtualService app-ns-1/broken")  # fmt: skip
        assert "usergroup-2" not in message  # the finding is usergroup-1's alone
    finally:
        custom.delete_namespaced_custom_object("networking.istio.io", "v1", "app-ns-1", "virtualservices", "broken")
    playbook(installer, "verify.yml", *SEED_002, "-e", istioctl)


def test_the_analysis_module_takes_host_and_api_key_and_leaves_no_credential_behind(cluster, installer, tmp_path,
                                                                                    binaries):  # fmt: skip
    import yaml

    config = yaml.safe_load(installer.kubeconfig.read_text())
    token = config["users"][0]["user"]["token"]
    server = config["clusters"][0]["cluster"]
    args = {
        "host": server["server"],
        "api_key": token,
        "validate_certs": False,
        "kubeconfig": None,
        "tenants": [{"name": "usergroup-2", "revision": "usergroup-2", "namespaces": ["app-ns-2", "app-ns-3"]}],
        "istioctl_path": str(binaries / "istioctl"),
    }
    left_before = set(glob.glob(f"{tempfile.gettempdir()}/meshops-kubeconfig-*"))
    result = run_task(cluster.kubeconfig, "meshops.istio.istio_analysis_info", args, tmp_path=tmp_path)
    assert not result.get("failed"), result.get("msg")
    assert result["tenants"]["usergroup-2"]["system_namespace"] == "usergroup-2" and result["problems"] == []
    assert token not in json.dumps(result)
    assert set(glob.glob(f"{tempfile.gettempdir()}/meshops-kubeconfig-*")) == left_before


def test_the_guard_denies_anyone_else_the_root_namespace_policy(cluster):
    """eve may delete PeerAuthentications in the system namespace as far as RBAC goes: the guard still says no."""
    rbac = client.RbacAuthorizationV1Api(cluster.api_client())
    role = {"metadata": {"name": "eve"},
            "rules": [{"apiGroups": [PA[0]], "resources": [PA[2]], "verbs": ["get", "delete"]}]}  # fmt: skip
    binding = {
        "metadata": {"name": "eve"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "eve"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "eve"}],
    }
    rbac.create_namespaced_role("usergroup-1", role)
    rbac.create_namespaced_role_binding("usergroup-1", binding)
    eve = cluster.api_client()
    eve.set_default_header("Impersonate-User", "eve")
    with pytest.raises(client.ApiException) as denied:
        client.CustomObjectsApi(eve).delete_namespaced_custom_object(*PA[:2], "usergroup-1", PA[2],
                                                                     "usergroup-1-peerauth")  # fmt: skip
    assert denied.value.status == 403
    assert "meshops.istio guards PeerAuthentication usergroup-1/usergroup-1-peerauth" in denied.value.body
    rbac.delete_namespaced_role_binding("eve", "usergroup-1")
    rbac.delete_namespaced_role("eve", "usergroup-1")


def test_verify_names_a_root_policy_removed_by_hand_and_a_rerun_restores_it(cluster, installer, istioctl):
    client.CustomObjectsApi(cluster.api_client()).delete_namespaced_custom_object(
        *PA[:2], "usergroup-2", PA[2], "usergroup-2-peerauth"
    )
    code, output = playbook(installer, "verify.yml", *SEED_002, "-e", istioctl, check=False)
    assert code != 0
    assert (
        "tenant usergroup-2: root namespace usergroup-2 lacks PeerAuthentication usergroup-2-peerauth (mesh-wide mTLS)"
        in failures(output)[0]
    )
    playbook(installer, "multitenant.yml", *SEED_002, "-e", istioctl)
    assert root_policy(cluster.api_client(), "usergroup-2")["spec"] == {"mtls": {"mode": "STRICT"}}


def test_a_foreign_mesh_wide_policy_in_the_root_namespace_is_refused_before_any_write(cluster, installer, istioctl):
    custom = client.CustomObjectsApi(cluster.api_client())
    foreign = {
        "apiVersion": "security.istio.io/v1",
        "kind": "PeerAuthentication",
        "metadata": {"name": "default", "namespace": "usergroup-1"},
        "spec": {"mtls": {"mode": "PERMISSIVE"}},
    }
    custom.create_namespaced_custom_object(*PA[:2], "usergroup-1", PA[2], foreign)
    try:
        before = api_request_counts(cluster.kubeconfig)
        code, output = playbook(installer, "multitenant.yml", *SEED_002, "-e", istioctl, check=False)
        assert code != 0
        assert "root namespace usergroup-1 of revision usergroup-1 already holds PeerAuthentication default" in (
            " ".join(str(m) for m in failures(output))
        )
        assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    finally:
        custom.delete_namespaced_custom_object(*PA[:2], "usergroup-1", PA[2], "default")


def test_uninstalling_a_tenant_removes_its_root_policy_only(cluster, installer):
    playbook(installer, "uninstall.yml", *SEED_002, "-e", "uninstall_tenant=usergroup-2")
    api = cluster.api_client()
    assert root_policy(api, "usergroup-2") is None
    assert root_policy(api, "usergroup-1")["metadata"]["labels"]["meshops.io/tenant"] == "usergroup-1"
