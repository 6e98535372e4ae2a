"""Isolation that tenant admins cannot undo (issue 21): the admission guard istio_tenant installs, the content checks
of istio_isolation_info, and a re-run that takes back what a tenant admin changed while other tenants are repaired
in the same run. A tenant admin is a user bound by the collection's RoleBinding to `admin` in their namespace,
impersonated by the test's cluster-admin credentials.

The tests build on each other in file order. The API server loads admission policies asynchronously, so a test
waits (with a deadline) until a dry-run request shows the guard in force, or gone, before it acts."""

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from written import written

MODULE = "meshops.istio.istio_tenant"
REVISION = "guarded"
MESH_LABEL = {"meshops.io/mesh": REVISION}
ISOLATION = "meshops-tenant-isolation"
GUARD_POLICIES = ("meshops-istio-tenant-objects", "meshops-istio-tenant-namespaces")
WAIT_SECONDS = 60


def tenants(**run_options):
    entries = [
        {"name": name, "revision": REVISION, "namespaces": [name], "discovery_label": MESH_LABEL,
         "isolation": {"admins": {"users": [f"admin-of-{name}"]}}}
        for name in ("team-a", "team-b")
    ]  # fmt: skip
    return {"tenants": entries, **run_options}


@pytest.fixture(scope="module", autouse=True)
def revision(run, binaries):
    result = run(
        {
            "name": REVISION,
            "namespace": REVISION,
            "istioctl_path": str(binaries / "istioctl"),
            "discovery_selectors": [{"matchLabels": MESH_LABEL}],
        },
        module="meshops.istio.istio_revision",
    )
    assert not result.get("failed"), result.get("msg")


def as_user(cluster, user):
    api = cluster.api_client()
    api.set_default_header("Impersonate-User", user)
    return api


def network_policies(api):
    return client.NetworkingV1Api(api)


def open_network_policy(api, namespace, dry_run=None):
    """What a tenant admin did in the field: allow ingress from everywhere."""
    return network_policies(api).patch_namespaced_network_policy(
        ISOLATION, namespace, {"spec": {"ingress": [{}]}}, dry_run=dry_run
    )


def denial(call) -> ApiException | None:
    try:
        call()
    except ApiException as error:
        return error
    return None


def guard_denies(call) -> bool:
    error = denial(call)
    return error is not None and "meshops.istio guards" in error.body


def eventually(predicate, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while not predicate():
        assert time.monotonic() < deadline, f"not within {WAIT_SECONDS} s: {what}"
        time.sleep(0.5)


def running_user(api) -> str:
    review = client.AuthenticationV1Api(api).create_self_subject_review({})
    return review.status.user_info.username


def guard_objects(api) -> dict:
    dynamic = DynamicClient(api)
    found = {}
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        resource = dynamic.resources.get(api_version="admissionregistration.k8s.io/v1", kind=kind)
        for item in resource.get(label_selector="meshops.io/guard=tenants").items:
            found[(kind, item.metadata.name)] = item.to_dict()
    return found


def peer_authentication(api, namespace):
    resource = DynamicClient(api).resources.get(api_version="security.istio.io/v1", kind="PeerAuthentication")
    try:
        return resource.get(name="default", namespace=namespace).to_dict()
    except Exception:  # noqa: BLE001 - the dynamic client's NotFoundError
        return None


def delete_peer_authentication(api, namespace):
    resource = DynamicClient(api).resources.get(api_version="security.istio.io/v1", kind="PeerAuthentication")
    resource.delete(name="default", namespace=namespace)


def isolation_problems(run) -> list:
    result = run({"tenants": tenants()["tenants"]}, module="meshops.istio.istio_isolation_info")
    assert not result.get("failed"), result.get("msg")
    return result["problems"]


def test_onboarding_installs_the_guard_for_the_running_user(run, api):
    result = run(tenants())
    assert result["changed"] and not result.get("failed"), result.get("msg")
    guard = guard_objects(api)
    assert sorted(guard) == sorted(
        (kind, name) for name in GUARD_POLICIES
        for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    )  # fmt: skip
    condition = guard[("ValidatingAdmissionPolicy", GUARD_POLICIES[0])]["spec"]["matchConditions"][0]["expression"]
    assert f'"{running_user(api)}"' in condition and '"system:masters"' in condition
    keys = guard[("ValidatingAdmissionPolicy", GUARD_POLICIES[1])]["metadata"]["annotations"]
    assert keys["meshops.io/guarded-labels"] == "istio-injection,istio.io/rev,meshops.io/mesh,meshops.io/tenant"
    assert run(tenants())["changed"] is False  # the guard is part of the converged state


def test_a_tenant_admin_cannot_open_the_network_policy(cluster, api):
    admin = as_user(cluster, "admin-of-team-a")
    # The admin role is real: the admin may write their own NetworkPolicy, just not the collection's.
    own = {"metadata": {"name": "mine"}, "spec": {"podSelector": {}, "ingress": [{}]}}
    network_policies(admin).create_namespaced_network_policy("team-a", own, dry_run="All")
    eventually(lambda: guard_denies(lambda: open_network_policy(admin, "team-a", dry_run="All")), "the guard in force")
    before = network_policies(api).read_namespaced_network_policy(ISOLATION, "team-a")
    denied = denial(lambda: open_network_policy(admin, "team-a"))
    assert denied is not None and denied.status == 403
    assert "meshops.istio guards NetworkPolicy team-a/meshops-tenant-isolation" in denied.body
    assert "only users" in denied.body and "groups system:masters may create, change or delete" in denied.body
    deleted = denial(lambda: network_policies(admin).delete_namespaced_network_policy(ISOLATION, "team-a"))
    assert deleted is not None and "meshops.istio guards" in deleted.body
    after = network_policies(api).read_namespaced_network_policy(ISOLATION, "team-a")
    assert after.spec.to_dict() == before.spec.to_dict()


def test_the_tenant_labels_of_a_namespace_are_guarded(cluster, api):
    rbac = client.RbacAuthorizationV1Api(api)
    rule = {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "patch"]}
    rbac.create_cluster_role({"metadata": {"name": "test-namespace-labeller"}, "rules": [rule]})
    group = "rbac.authorization.k8s.io"
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": "test-namespace-labeller"},
            "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": "test-namespace-labeller"},
            "subjects": [{"apiGroup": group, "kind": "User", "name": "labeller"}],
        }
    )
    labeller = client.CoreV1Api(as_user(cluster, "labeller"))
    relabel = {"metadata": {"labels": {"meshops.io/tenant": "team-b"}}}
    eventually(lambda: guard_denies(lambda: labeller.patch_namespace("team-a", relabel, dry_run="All")), "the guard")
    denied = denial(lambda: labeller.patch_namespace("team-a", {"metadata": {"labels": {"istio.io/rev": None}}}))
    assert denied is not None and denied.status == 403
    assert "namespace team-a: meshops.istio guards the tenant labels of this namespace" in denied.body
    labeller.patch_namespace("team-a", {"metadata": {"labels": {"cost-centre": "42"}}})  # other labels stay free
    labels = client.CoreV1Api(api).read_namespace("team-a").metadata.labels
    assert labels["meshops.io/tenant"] == "team-a" and labels["istio.io/rev"] == REVISION


def test_without_the_guard_an_opened_policy_is_reported_and_taken_back_while_another_tenant_is_repaired(
    run, cluster, api
):
    removed = run(tenants(guard={"enabled": False}))
    assert removed["changed"] and not removed.get("failed"), removed.get("msg")
    assert guard_objects(api) == {}
    admin = as_user(cluster, "admin-of-team-a")
    eventually(lambda: denial(lambda: open_network_policy(admin, "team-a", dry_run="All")) is None, "the guard gone")
    open_network_policy(admin, "team-a")
    client.CoreV1Api(admin).create_namespaced_pod(
        "team-a",
        # Not injected: the local cluster runs no istiod to answer the injector.
        {"metadata": {"name": "sneaky", "labels": {"istio": "anything", "sidecar.istio.io/inject": "false"}},
         "spec": {"containers": [{"name": "app", "image": "app"}]}},
    )  # fmt: skip
    delete_peer_authentication(api, "team-b")

    problems = isolation_problems(run)
    assert (
        "tenant team-a: namespace team-a: NetworkPolicy meshops-tenant-isolation differs from what meshops.istio "
        "writes (spec.ingress) and admits ingress from everywhere; re-run the tenant's onboarding to restore it"
    ) in problems
    assert any(p.startswith("tenant team-a: namespace team-a: pod sneaky escapes NetworkPolicy") for p in problems)
    assert "tenant team-b: namespace team-b has mTLS unset; expected STRICT" in problems

    repaired = run(tenants(guard={"enabled": False}))
    assert repaired["changed"] and not repaired.get("failed"), repaired.get("msg")
    actions = {(o["kind"], o["namespace"], o["name"]): o["action"] for o in repaired["objects"]}
    assert actions[("NetworkPolicy", "team-a", ISOLATION)] == "updated"
    assert actions[("PeerAuthentication", "team-b", "default")] == "created"
    policy = network_policies(api).read_namespaced_network_policy(ISOLATION, "team-a")
    assert policy.spec.ingress[0]._from[0].namespace_selector.match_expressions[0].values == ["guarded", "team-a"]
    assert peer_authentication(api, "team-b")["spec"] == {"mtls": {"mode": "STRICT"}}
    assert isolation_problems(run) == [p for p in problems if "pod sneaky" in p]
    client.CoreV1Api(api).delete_namespaced_pod("sneaky", "team-a", grace_period_seconds=0)
    eventually(lambda: isolation_problems(run) == [], "the pod gone")


def test_a_tenant_that_fails_does_not_stop_the_others_repair(run, cluster, api):
    """team-a's admin disowns and opens the NetworkPolicy: no longer the collection's, it is in the way, not taken
    over. team-b's deleted PeerAuthentication is still repaired in the same run, which then fails naming team-a."""
    admin = as_user(cluster, "admin-of-team-a")
    disowned = {"metadata": {"labels": {"meshops.io/tenant": None}}, "spec": {"ingress": [{}]}}
    network_policies(admin).patch_namespaced_network_policy(ISOLATION, "team-a", disowned)
    delete_peer_authentication(api, "team-b")
    before = written(network_policies(api).read_namespaced_network_policy(ISOLATION, "team-a"))

    result = run(tenants(guard={"enabled": False}))
    assert result.get("failed") is True
    assert result["msg"].startswith("1 of 2 tenants failed: tenants[0] (team-a): NetworkPolicy team-a/")
    assert "lost its meshops.istio owner label" in result["msg"] and "set force_conflicts: true" in result["msg"]
    assert result["msg"].endswith("The other tenants (team-b) were converged.")
    assert peer_authentication(api, "team-b")["spec"] == {"mtls": {"mode": "STRICT"}}
    assert written(network_policies(api).read_namespaced_network_policy(ISOLATION, "team-a")) == before

    network_policies(api).delete_namespaced_network_policy(ISOLATION, "team-a")
    converged = run(tenants(guard={"enabled": False}))
    assert converged["changed"] and not converged.get("failed"), converged.get("msg")
    assert isolation_problems(run) == []


def test_the_guard_goes_with_the_last_tenant(run, api):
    installed = run(tenants())
    assert not installed.get("failed"), installed.get("msg")
    assert len(guard_objects(api)) == 4
    removed = run({"tenants": [{"name": "team-a"}, {"name": "team-b"}], "state": "absent"})
    assert removed["changed"] and not removed.get("failed"), removed.get("msg")
    assert guard_objects(api) == {}
    assert [t["released"] for t in removed["tenants"]] == [["team-a"], ["team-b"]]
