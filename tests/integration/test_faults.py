"""istio_tenant through a fault-injecting proxy in front of the real API server (tests/faultproxy.py): throttling,
server errors and dropped connections on reads and writes are retried until the run succeeds; faults that last
fail the task with a sentence saying what happened and after how many attempts. Faults aim at real writes (not
the dry run every run sends first) unless a test says otherwise.

The last test crashes the API server for real: the proxy SIGKILLs the local cluster's kube-apiserver right after
a chosen write of a two-tenant run was committed, before the client gets its answer. Once it is started again,
etcd shows what the run left behind; it must never be an injected namespace without its STRICT mTLS. That test
needs a local cluster and is skipped with MESHOPS_TEST_KUBECONFIG."""

import pytest
from faultproxy import Fault, FaultProxy
from kubernetes import client
from localcluster import api_request_counts, kill_component, running_components, start_component, writes
from playbook import run_task

MODULE = "meshops.istio.istio_tenant"
REAL = r"(?!.*dryRun)"  # a path pattern suffix: only requests that are not dry runs


@pytest.fixture(scope="module")
def revision(run, binaries):
    result = run(
        {
            "name": "faulty",
            "namespace": "istio-faulty",
            "istioctl_path": str(binaries / "istioctl"),
            "discovery_selectors": [{"matchLabels": {"team": "f"}}],
            "wait": False,
        },
        module="meshops.istio.istio_revision",
    )
    assert not result.get("failed"), result["msg"]


@pytest.fixture(scope="module")
def local_cluster(cluster, run, revision):
    """The local cluster, whose kube-apiserver the kill tests kill, with the tenants' guard already written (every
    istio_tenant run writes it first when it is missing): each kill test starts from the same state, so its count
    of writes lands where it says."""
    if cluster.local_cluster is None:
        pytest.skip("kills the API server, which only a local cluster allows (not MESHOPS_TEST_KUBECONFIG)")
    result = run(tenant("tf-guard"))
    assert not result.get("failed"), result["msg"]
    return cluster.local_cluster


@pytest.fixture
def kill_apiserver(local_cluster):
    """kill_apiserver(): SIGKILL the kube-apiserver; started again at the end if the test left it down."""
    yield lambda: kill_component(local_cluster, "kube-apiserver")
    if "kube-apiserver" not in running_components(local_cluster):
        start_component(local_cluster, "kube-apiserver")


@pytest.fixture
def proxy(cluster, tmp_path, revision):
    proxy = FaultProxy(cluster.kubeconfig)
    kubeconfig = proxy.start(tmp_path)
    yield proxy, kubeconfig
    proxy.stop()


def tenant(name, **options):
    return {"name": name, "revision": "faulty", "namespaces": [name], "discovery_label": {"team": "f"}, **options}


def test_throttling_server_errors_and_resets_on_reads_and_writes_are_retried(proxy, api, tmp_path):
    faults, kubeconfig = proxy
    faults.faults = [
        Fault("GET", r"/api/v1/namespaces(\?|$)", 500),
        Fault("GET", r"/peerauthentications(\?|$)", "reset"),
        Fault("PATCH", r"/namespaces/tf-1/peerauthentications/default\?" + REAL, 429),
        Fault("PATCH", r"/authorizationpolicies/meshops-tenant-isolation\?" + REAL, 429, retry_after="1"),
        Fault("PATCH", r"/sidecars/default\?" + REAL, 503),
        Fault("PATCH", r"/networkpolicies/meshops-tenant-isolation\?" + REAL, "reset"),
    ]
    result = run_task(kubeconfig, MODULE, tenant("tf-1"), tmp_path=tmp_path)

    assert not result.get("failed"), result.get("msg")
    assert [fault.served for fault in faults.faults] == [1] * len(faults.faults)
    for fault in faults.faults[2:]:  # each write was sent again and then stored
        answers = faults.answered("PATCH", fault.path)
        assert answers[0] == fault.kind and answers[1] in (200, 201), (fault.path, answers)
    policy = client.NetworkingV1Api(api).read_namespaced_network_policy("meshops-tenant-isolation", "tf-1")
    assert policy.metadata.labels["meshops.io/tenant"] == "tf-1"


def test_a_connection_reset_on_every_try_fails_saying_so_after_the_retries(proxy, tmp_path):
    faults, kubeconfig = proxy
    path = r"/namespaces/tf-2/peerauthentications/default\?"
    faults.faults = [Fault("PATCH", path, "reset", times=100)]
    result = run_task(kubeconfig, MODULE, tenant("tf-2", request_retries=2), tmp_path=tmp_path)

    assert result.get("failed")
    assert "the connection was dropped (reset) after 3 attempts" in result["msg"], result["msg"]
    assert "nothing was written" in result["msg"]
    assert faults.answered("PATCH", path) == ["reset"] * 3


def test_a_server_that_keeps_throttling_fails_with_its_answer_after_the_retries(proxy, tmp_path):
    faults, kubeconfig = proxy
    path = r"/namespaces/tf-3/sidecars/default\?"
    faults.faults = [Fault("PATCH", path, 429, times=100, retry_after="0")]
    result = run_task(kubeconfig, MODULE, tenant("tf-3", request_retries=2), tmp_path=tmp_path)

    assert result.get("failed")
    assert "injected 429" in result["msg"], result["msg"]
    assert faults.answered("PATCH", path) == [429] * 3


def test_a_stalled_server_fails_the_run_with_a_timeout_instead_of_hanging(proxy, tmp_path):
    faults, kubeconfig = proxy
    faults.faults = [Fault("GET", r"/api/v1/namespaces(\?|$)", "stall", times=100, stall_seconds=5)]
    result = run_task(kubeconfig, MODULE, tenant("tf-4", request_timeout=1, request_retries=1), tmp_path=tmp_path)

    assert result.get("failed")
    assert "no answer within the timeout (ReadTimeout) after 2 attempts" in result["msg"], result["msg"]
    assert "request_timeout" in result["msg"]


# With today's order of writes (the lock Lease, then per tenant: its namespace, its four policies sent together in
# any order, the namespace's injection label; the Lease's release), these land after: the lock; the first
# namespace, not injected; the third of its policies; its injection label, the second tenant not begun; the second
# injection label, the Lease still held by the dead run. (A run slow enough to renew the Lease shifts them by one
# write; what is asserted holds at every point.)
@pytest.mark.parametrize("killed_after", [1, 2, 5, 7, 13])
def test_an_api_server_killed_after_any_write_leaves_no_namespace_injected_without_strict_mtls_and_a_re_run_converges(
    local_cluster, kill_apiserver, proxy, run, api, tmp_path, killed_after
):
    """kube-apiserver SIGKILLed right after the `killed_after`-th stored write of a two-tenant run: once it is back,
    no namespace carries the revision label without its STRICT PeerAuthentication; a re-run converges, the next
    writes nothing, and no object of the tenants is left over."""
    faults, kubeconfig = proxy
    faults.after_writes = (killed_after, kill_apiserver)
    names = [f"kill{killed_after}-a", f"kill{killed_after}-b"]
    tenants = {"tenants": [tenant(name) for name in names], "request_retries": 0}
    result = run_task(kubeconfig, MODULE, tenants, tmp_path=tmp_path)
    assert result.get("failed") and faults.writes == killed_after, (faults.writes, result.get("msg"))
    assert "kube-apiserver" not in running_components(local_cluster)
    dropped = [entry for entry in faults.log if str(entry[2]).startswith("reset after its answer")]
    assert [entry[2] for entry in dropped] in (["reset after its answer 200"], ["reset after its answer 201"]), dropped

    start_component(local_cluster, "kube-apiserver")
    assert injected_without_strict(api, names) == []
    assert not run(tenants).get("failed")
    again = run(tenants)
    assert not again.get("failed") and not again["changed"], again.get("objects")
    assert leftovers(api, names) == []


def test_a_write_failing_amid_its_phase_stops_the_run_there_and_the_next_run_converges_then_writes_nothing(
    proxy, run, api, cluster, tmp_path
):
    """One policy of a tenant's two namespaces keeps failing: the run fails naming it, and no write of a later phase
    is sent (the namespaces stay without their injection label). A run without the fault converges from there, and
    the next one writes nothing."""
    faults, kubeconfig = proxy
    args = tenant("tf-mid", namespaces=["tf-mid-a", "tf-mid-b"])
    path = r"/namespaces/tf-mid-a/sidecars/default\?" + REAL
    faults.faults = [Fault("PATCH", path, 500, times=100)]
    result = run_task(kubeconfig, MODULE, {**args, "request_retries": 0}, tmp_path=tmp_path)

    assert result.get("failed")
    assert "Cannot apply Sidecar tf-mid-a/default" in result["msg"] and "injected 500" in result["msg"], result["msg"]
    namespace_writes = faults.answered("PATCH", r"/api/v1/namespaces/tf-mid-[ab]\?" + REAL)
    assert namespace_writes == [201, 201], namespace_writes  # created, never labelled for injection
    assert [labels_of(api, name).get("istio.io/rev") for name in ("tf-mid-a", "tf-mid-b")] == [None, None]

    converged = run(args)
    assert not converged.get("failed") and converged["changed"], converged.get("msg")
    assert [labels_of(api, name).get("istio.io/rev") for name in ("tf-mid-a", "tf-mid-b")] == ["faulty", "faulty"]
    before = api_request_counts(cluster.kubeconfig)
    again = run(args)
    assert not again.get("failed") and not again["changed"], again.get("objects")
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def labels_of(api, namespace: str) -> dict:
    return client.CoreV1Api(api).read_namespace(namespace).metadata.labels or {}


def injected_without_strict(api, names: list) -> list:
    found = []
    for namespace in client.CoreV1Api(api).list_namespace().items:
        if namespace.metadata.name not in names or not (namespace.metadata.labels or {}).get("istio.io/rev"):
            continue
        modes = [
            p["spec"].get("mtls", {}).get("mode")
            for p in client.CustomObjectsApi(api).list_namespaced_custom_object(
                "security.istio.io", "v1", namespace.metadata.name, "peerauthentications"
            )["items"]
        ]
        if "STRICT" not in modes:
            found.append(namespace.metadata.name)
    return found


def leftovers(api, names: list) -> list:
    """Objects labelled for these tenants outside their own namespaces."""
    found = []
    for group, version, plural in (
        ("security.istio.io", "v1", "peerauthentications"),
        ("security.istio.io", "v1", "authorizationpolicies"),
        ("networking.istio.io", "v1", "sidecars"),
    ):
        for item in client.CustomObjectsApi(api).list_cluster_custom_object(group, version, plural)["items"]:
            tenant_label = item["metadata"].get("labels", {}).get("meshops.io/tenant")
            if tenant_label in names and item["metadata"]["namespace"] != tenant_label:
                found.append((plural, item["metadata"]["namespace"], item["metadata"]["name"]))
    return found
