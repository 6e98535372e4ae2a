"""istio_tenant against a real API server with Istio's CRDs: seed 002's tenants and the guards around them.

The tests build on each other in file order, like a platform team's successive runs."""

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from localcluster import api_request_counts, writes

POLICY_KINDS = {
    "PeerAuthentication": "security.istio.io/v1",
    "AuthorizationPolicy": "security.istio.io/v1",
    "Sidecar": "networking.istio.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "RoleBinding": "rbac.authorization.k8s.io/v1",
}


@pytest.fixture(scope="module")
def run(run_on, cluster):
    """run(module, args, check=False, diff=False): these tests run istio_revision and istio_tenant."""

    def run_module(module, args, check=False, diff=False):
        return run_on(cluster, args, check=check, diff=diff, module=f"meshops.istio.{module}")

    return run_module


@pytest.fixture(scope="module", autouse=True)
def revisions(run, binaries):
    for number in (1, 2):
        name = f"usergroup-{number}"
        result = run(
            "istio_revision",
            {
                "name": name,
                "namespace": name,
                "istioctl_path": str(binaries / "istioctl"),
                "discovery_selectors": [{"matchLabels": {"usergroup": name}}],
            },
        )
        assert not result.get("failed"), result.get("msg")


def tenant(number, namespaces, **overrides):
    name = f"usergroup-{number}"
    args = {
        "name": name,
        "revision": name,
        "discovery_label": {"usergroup": name},
        "namespaces": namespaces,
        "isolation": {"admins": {"users": [f"admin-{number}"]}},
    }
    return {**args, **overrides}


def labels_of(api, namespace):
    return client.CoreV1Api(api).read_namespace(namespace).metadata.labels or {}


def policies_in(api, namespace) -> dict:
    dynamic = DynamicClient(api)
    found = {}
    for kind, api_version in POLICY_KINDS.items():
        for item in dynamic.resources.get(api_version=api_version, kind=kind).get(namespace=namespace).items:
            if (item.metadata.labels or {}).get("app.kubernetes.io/managed-by") == "meshops.istio":
                found[(kind, item.metadata.name)] = item.to_dict()
    return found


def snapshot(api) -> dict:
    """resourceVersions of every namespace and tenant policy: what a refused run must leave untouched."""
    versions = {("Namespace", ns.metadata.name): ns.metadata.resource_version
                for ns in client.CoreV1Api(api).list_namespace().items}  # fmt: skip
    for ns in list(versions):
        for key, obj in policies_in(api, ns[1]).items():
            versions[(ns[1], *key)] = obj["metadata"]["resourceVersion"]
    return versions


def test_check_mode_writes_nothing(run, api, cluster):
    before = api_request_counts(cluster.kubeconfig)
    result = run("istio_tenant", tenant(1, ["app-ns-1"]), check=True, diff=True)
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert result["changed"] is True, result.get("msg")
    headers = {d["before_header"] for d in result["diff"]}
    assert {"Namespace app-ns-1", "PeerAuthentication app-ns-1/default", "Sidecar app-ns-1/default"} <= headers
    with pytest.raises(ApiException) as absent:
        client.CoreV1Api(api).read_namespace("app-ns-1")
    assert absent.value.status == 404


def test_seed_002_tenants(run, api):
    first = run("istio_tenant", tenant(1, ["app-ns-1"]))
    second = run("istio_tenant", tenant(2, ["app-ns-2", "app-ns-3"]))
    assert first["changed"] and second["changed"], (first.get("msg"), second.get("msg"))
    for namespace, group in (("app-ns-1", "usergroup-1"), ("app-ns-2", "usergroup-2"), ("app-ns-3", "usergroup-2")):
        labels = labels_of(api, namespace)
        assert labels["usergroup"] == group and labels["istio.io/rev"] == group
        assert labels["meshops.io/tenant"] == group
        assert "istio-injection" not in labels
        mtls = policies_in(api, namespace)[("PeerAuthentication", "default")]
        assert mtls["spec"] == {"mtls": {"mode": "STRICT"}}
    assert [n["name"] for n in second["namespaces"]] == ["app-ns-2", "app-ns-3"]


def test_policy_content(api):
    policies = policies_in(api, "app-ns-2")
    allowed = ["app-ns-2", "app-ns-3", "usergroup-2"]
    authorization = policies[("AuthorizationPolicy", "meshops-tenant-isolation")]["spec"]
    assert authorization == {"action": "ALLOW", "rules": [{"from": [{"source": {"namespaces": allowed}}]}]}
    sidecar = policies[("Sidecar", "default")]["spec"]
    assert sidecar == {"egress": [{"hosts": [f"{n}/*" for n in allowed]}]}
    network = policies[("NetworkPolicy", "meshops-tenant-isolation")]["spec"]
    [peer] = network["ingress"][0]["from"]
    assert peer["namespaceSelector"]["matchExpressions"] == [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": allowed}
    ]
    assert network["policyTypes"] == ["Ingress"]
    binding = policies[("RoleBinding", "meshops-tenant-admins")]
    assert binding["roleRef"]["name"] == "admin"
    assert [s["name"] for s in binding["subjects"]] == ["admin-2"]


def test_invalid_policy_is_rejected_by_the_real_schema(api):
    """The CRDs the revision installed validate tenant policies: a bad mode is refused by the API server."""
    dynamic = DynamicClient(api)
    bad = {"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
           "metadata": {"name": "bad", "namespace": "app-ns-1"}, "spec": {"mtls": {"mode": "SOMETIMES"}}}  # fmt: skip
    with pytest.raises(ApiException) as rejected:
        dynamic.resources.get(api_version="security.istio.io/v1", kind="PeerAuthentication").create(body=bad)
    assert rejected.value.status == 422


def _can_create_deployment(cluster, user, namespace):
    as_user = cluster.api_client()
    as_user.set_default_header("Impersonate-User", user)
    deployment = {
        "metadata": {"name": f"by-{user}"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": [{"name": "x", "image": "x"}]}},
        },
    }
    try:
        client.AppsV1Api(as_user).create_namespaced_deployment(namespace, deployment, dry_run="All")
        return True
    except ApiException as error:
        assert error.status == 403, error
        return False


def test_tenant_admins_are_admins_in_their_namespaces_only(cluster):
    assert _can_create_deployment(cluster, "admin-1", "app-ns-1")
    assert not _can_create_deployment(cluster, "admin-1", "app-ns-2")
    assert _can_create_deployment(cluster, "admin-2", "app-ns-3")
    assert not _can_create_deployment(cluster, "admin-2", "app-ns-1")


def test_second_run_changes_nothing_and_sends_no_write(run, cluster):
    before = api_request_counts(cluster.kubeconfig)
    first = run("istio_tenant", tenant(1, ["app-ns-1"]))
    second = run("istio_tenant", tenant(2, ["app-ns-2", "app-ns-3"]))
    assert first["changed"] is False and second["changed"] is False
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


GUARDS = {
    "namespace of another tenant": (tenant(1, ["app-ns-1", "app-ns-2"]),
                                    "namespace app-ns-2 belongs to tenant usergroup-2; set takeover: true"),
    "revision not installed": (tenant(1, ["app-ns-1"], revision="usergroup-9"),
                               "revision usergroup-9 is not installed (installed: usergroup-1, usergroup-2)"),
    "selectors would not see the namespace": (tenant(1, ["app-ns-1"], discovery_label=None),
                                              "lacks usergroup=usergroup-1; set discovery_label"),
    "a control plane's system namespace": (tenant(1, ["usergroup-2"]),
                                           "namespace usergroup-2 is the system namespace of revision usergroup-2"),
    "invalid namespace name": (tenant(1, ["App_NS"]), "namespaces[0] 'App_NS' must be a DNS-1123 label"),
    "missing namespace without create": (tenant(1, ["app-ns-9"], create_namespaces=False),
                                         "namespace app-ns-9 does not exist; create it"),
}  # fmt: skip


def assert_refused_without_writing(run, api, cluster, args, message):
    """istio_tenant fails with `message`, sends no write and leaves every namespace and policy as it was."""
    before, counts = snapshot(api), api_request_counts(cluster.kubeconfig)
    result = run("istio_tenant", args)
    assert result.get("failed") is True
    assert message in result["msg"]
    assert writes(counts, api_request_counts(cluster.kubeconfig)) == {}
    assert snapshot(api) == before


@pytest.mark.parametrize("case", list(GUARDS))
def test_guards_fail_with_their_message_and_change_nothing(case, run, api, cluster):
    assert_refused_without_writing(run, api, cluster, *GUARDS[case])


def test_a_namespace_in_another_mesh_needs_takeover(run, api):
    client.CoreV1Api(api).create_namespace(
        {"metadata": {"name": "legacy", "labels": {"istio.io/rev": "old-mesh", "istio-injection": "enabled"}}}
    )
    refused = run("istio_tenant", tenant(1, ["app-ns-1", "legacy"]))
    assert "namespace legacy carries istio.io/rev=old-mesh (another mesh)" in refused["msg"]
    taken = run("istio_tenant", tenant(1, ["app-ns-1", "legacy"], takeover=True))
    assert taken["changed"] is True, taken.get("msg")
    assert any("removed label istio-injection" in w for w in taken["warnings"])
    labels = labels_of(api, "legacy")
    assert labels["istio.io/rev"] == "usergroup-1" and "istio-injection" not in labels


def test_moving_a_namespace_between_tenants_leaves_nothing_of_the_first(run, api):
    moved = run("istio_tenant", tenant(1, ["app-ns-1", "legacy", "app-ns-3"], takeover=True))
    assert moved["changed"] is True, moved.get("msg")
    labels = labels_of(api, "app-ns-3")
    assert labels["meshops.io/tenant"] == "usergroup-1" and labels["usergroup"] == "usergroup-1"
    assert labels["istio.io/rev"] == "usergroup-1"
    owners = {obj["metadata"]["labels"]["meshops.io/tenant"] for obj in policies_in(api, "app-ns-3").values()}
    assert owners == {"usergroup-1"}
    # The old tenant's next run no longer lists it: nothing to release, nothing of app-ns-3 touched.
    rest = run("istio_tenant", tenant(2, ["app-ns-2"]))
    assert rest.get("failed") is not True, rest.get("msg")
    assert rest["released"] == []
    assert labels_of(api, "app-ns-3")["meshops.io/tenant"] == "usergroup-1"


def test_dropping_a_namespace_releases_it(run, api):
    result = run("istio_tenant", tenant(1, ["app-ns-1", "app-ns-3"]))
    assert result["released"] == ["legacy"]
    labels = labels_of(api, "legacy")
    assert not {"meshops.io/tenant", "usergroup", "istio.io/rev"} & set(labels)
    assert policies_in(api, "legacy") == {}


def test_absent_with_delete_is_refused_while_foreign_objects_live_there(run, api):
    client.CoreV1Api(api).create_namespaced_config_map("app-ns-2", {"metadata": {"name": "user-data"}})
    refused = run("istio_tenant", {"name": "usergroup-2", "state": "absent", "delete_namespaces": True})
    assert "would delete objects meshops.istio does not own (app-ns-2: ConfigMap user-data)" in refused["msg"]
    released = run("istio_tenant", {"name": "usergroup-2", "state": "absent"})
    assert released["changed"] is True and released["released"] == ["app-ns-2"]
    assert policies_in(api, "app-ns-2") == {}
    assert "meshops.io/tenant" not in labels_of(api, "app-ns-2")
    assert policies_in(api, "app-ns-1")  # the other tenant keeps everything


# Many tenants in one run (option `tenants`), shared-model style: every batch tenant on revision usergroup-1.

TENANT_READS = {"namespaces", "configmaps", "peerauthentications", "authorizationpolicies", "sidecars",
                "networkpolicies", "rolebindings"}  # fmt: skip


def batch(count, **overrides):
    entries = [
        {"name": f"batch-{n:02d}", "revision": "usergroup-1", "discovery_label": {"usergroup": "usergroup-1"},
         "namespaces": [f"batch-{n:02d}"]}
        for n in range(1, count + 1)
    ]  # fmt: skip
    return {"tenants": entries, **overrides}


def tenant_reads(before: dict, after: dict) -> dict:
    """GET and LIST requests for what istio_tenant reads, by resource (controllers watch, they do not send these)."""
    return {
        (verb, resource): int(count - before.get((verb, resource, sub), 0))
        for (verb, resource, sub), count in after.items()
        if verb in ("GET", "LIST") and resource in TENANT_READS and not sub
        and count > before.get((verb, resource, sub), 0)
    }  # fmt: skip


def test_many_tenants_check_mode_writes_nothing(run, api, cluster):
    before = api_request_counts(cluster.kubeconfig)
    result = run("istio_tenant", batch(3), check=True)
    assert result["changed"] is True, result.get("msg")
    assert [t["name"] for t in result["tenants"]] == ["batch-01", "batch-02", "batch-03"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert "batch-01" not in {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}


def test_many_tenants_converge_and_their_no_op_reads_do_not_grow_with_tenants(run, api, cluster):
    reads = {}
    for count in (5, 20):
        converged = run("istio_tenant", batch(count))
        assert converged["changed"] is True, converged.get("msg")
        before = api_request_counts(cluster.kubeconfig)
        again = run("istio_tenant", batch(count))
        after = api_request_counts(cluster.kubeconfig)
        assert again["changed"] is False, again.get("objects")
        assert writes(before, after) == {}
        reads[count] = tenant_reads(before, after)
    assert reads[20] == reads[5]  # one LIST per kind, whatever the number of tenants
    assert sum(reads[20].values()) <= len(TENANT_READS)
    for n in (1, 20):
        labels = labels_of(api, f"batch-{n:02d}")
        assert labels["meshops.io/tenant"] == f"batch-{n:02d}" and labels["istio.io/rev"] == "usergroup-1"
        owners = {obj["metadata"]["labels"]["meshops.io/tenant"] for obj in policies_in(api, f"batch-{n:02d}").values()}
        assert owners == {f"batch-{n:02d}"}
    sidecar = policies_in(api, "batch-07")[("Sidecar", "default")]["spec"]
    assert sidecar == {"egress": [{"hosts": ["batch-07/*", "usergroup-1/*"]}]}  # its own namespace, not the batch's


BATCH_REFUSALS = {
    "one tenant's revision is missing": (
        {"tenants": [*batch(1)["tenants"], {"name": "batch-new", "revision": "usergroup-9", "namespaces": ["new"]}]},
        "tenant batch-new: tenants[1].revision usergroup-9 is not installed",
    ),
    "a namespace listed by two tenants": (
        {"tenants": [*batch(1)["tenants"], {**batch(1)["tenants"][0], "name": "batch-new"}]},
        "namespace batch-01 is listed by tenants batch-01, batch-new; a namespace belongs to one tenant",
    ),
    "an option an entry does not have": (
        {"tenants": [{**batch(1)["tenants"][0], "revison": "usergroup-1"}]},
        "tenants[0]: unsupported option revison",
    ),
    "name next to tenants": ({**batch(1), "name": "batch-01"}, "mutually exclusive: tenants|name"),
}


@pytest.mark.parametrize("case", list(BATCH_REFUSALS))
def test_many_tenants_are_all_checked_before_anything_is_written(case, run, api, cluster):
    assert_refused_without_writing(run, api, cluster, *BATCH_REFUSALS[case])


def test_many_tenants_removed_in_one_run(run, api):
    removed = run("istio_tenant", {"tenants": [{"name": f"batch-{n:02d}"} for n in range(1, 21)], "state": "absent"})
    assert removed["changed"] is True, removed.get("msg")
    assert [t["released"] for t in removed["tenants"]] == [[f"batch-{n:02d}"] for n in range(1, 21)]
    for n in (1, 20):
        assert "meshops.io/tenant" not in labels_of(api, f"batch-{n:02d}")
        assert policies_in(api, f"batch-{n:02d}") == {}
    assert policies_in(api, "app-ns-1")  # a tenant not listed keeps everything


def test_a_revision_on_the_default_tenant_label_keeps_its_system_namespace(run, api, cluster, binaries):
    """A revision whose selectors match the default discovery label meshops.io/tenant=<name> puts that label on its
    own system namespace; the tenant's runs must not take the namespace for a member and release it each time."""
    selectors = [{"matchLabels": {"meshops.io/tenant": "solo"}}]
    installed = run("istio_revision", {"name": "solo", "namespace": "solo", "discovery_selectors": selectors,
                                       "istioctl_path": str(binaries / "istioctl")})  # fmt: skip
    assert not installed.get("failed"), installed.get("msg")
    assert labels_of(api, "solo")["meshops.io/tenant"] == "solo"
    first = run("istio_tenant", {"name": "solo", "revision": "solo", "namespaces": ["solo-app"]})
    assert first["changed"] is True and first["released"] == [], first.get("msg")
    before = api_request_counts(cluster.kubeconfig)
    again = run("istio_tenant", {"name": "solo", "revision": "solo", "namespaces": ["solo-app"]})
    assert again["changed"] is False and again["released"] == [], again.get("objects")
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert labels_of(api, "solo")["meshops.io/tenant"] == "solo"


PLANNED_SOLO_2 = {"name": "solo-2", "namespace": "solo-2", "discovery_selectors": [{"matchLabels": {"x": "solo-2"}}]}


def test_check_mode_accepts_a_revision_the_run_plans_and_says_so(run, cluster):
    args = {"name": "solo-2", "revision": "solo-2", "namespaces": ["solo-2-app"], "discovery_label": {"x": "solo-2"},
            "planned_revisions": [PLANNED_SOLO_2]}  # fmt: skip
    before = api_request_counts(cluster.kubeconfig)
    planned = run("istio_tenant", args, check=True, diff=True)
    assert planned["changed"] is True, planned.get("msg")
    assert any(w.startswith("check mode: revision solo-2 is not installed yet") for w in planned["warnings"])
    assert {"Namespace solo-2-app", "PeerAuthentication solo-2-app/default"} <= {
        d["before_header"] for d in planned["diff"]
    }
    # Outside check mode the plan counts for nothing: the revision is not there.
    refused = run("istio_tenant", args)
    assert refused["failed"] is True and "revision solo-2 is not installed" in refused["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
