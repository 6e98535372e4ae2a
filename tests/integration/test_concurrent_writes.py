"""Independent writes sent together, a phase at a time (engine.py), seen from a real API server's audit log: a
converge of many objects across namespaces (tenants with their policies and admin bindings, then a gateway per
tenant) never sends an object before the writes it depends on have been answered, and its re-run writes nothing.

The audit log logs each write's arrival (RequestReceived) and, before the client can have the answer, its
ResponseComplete (localcluster.AUDIT_POLICY): a write logged as received before another's ResponseComplete was sent
before that one was answered. Only a local cluster has that log, so these tests are skipped with
MESHOPS_TEST_KUBECONFIG."""

from typing import NamedTuple

import pytest
from localcluster import api_request_counts, audit_events, audit_log_size, writes

MODULE = "meshops.istio.istio_tenant"
REVISION = "conc"
DISCOVERY = {"team": "conc"}
TENANTS = [f"conc-{n}" for n in range(1, 5)]
INGRESS = "istio-ingressgateway"
# The phases the engine writes in (kinds.py), by resource, for what this run writes: namespaces; RBAC, config and
# services; workloads and policies.
PHASES = {
    "namespaces": 1,
    "serviceaccounts": 2,
    "roles": 2,
    "rolebindings": 2,
    "services": 2,
    "configmaps": 2,
    "deployments": 3,
    "horizontalpodautoscalers": 3,
    "poddisruptionbudgets": 3,
    "peerauthentications": 3,
    "authorizationpolicies": 3,
    "sidecars": 3,
    "networkpolicies": 3,
}


class Apply(NamedTuple):
    received: int  # the index of its RequestReceived event in the run's audit events
    answered: int  # the index of its ResponseComplete event
    resource: str
    namespace: str
    name: str


@pytest.fixture(scope="module")
def revision(cluster, run, binaries):
    if cluster.local_cluster is None:
        pytest.skip("reads the API server's audit log, which only a local cluster has (not MESHOPS_TEST_KUBECONFIG)")
    result = run(
        {
            "name": REVISION,
            "namespace": f"istio-{REVISION}",
            "istioctl_path": str(binaries / "istioctl"),
            "discovery_selectors": [{"matchLabels": DISCOVERY}],
            # No istiod serves on kwok's nodes: without its injector webhook the gateways' pods can be created.
            "values": {"global": {"operatorManageWebhooks": True}},
            "wait": False,
        },
        module="meshops.istio.istio_revision",
    )
    assert not result.get("failed"), result.get("msg")


def tenants_args() -> dict:
    """Four tenants of three namespaces each, with admins: 15 policies and bindings per tenant."""
    return {
        "tenants": [
            {
                "name": name,
                "revision": REVISION,
                "discovery_label": DISCOVERY,
                "namespaces": [f"{name}-{part}" for part in ("web", "api", "db")],
                "isolation": {"admins": {"users": [f"admin-{name}"]}},
            }
            for name in TENANTS
        ]
    }


def gateways_args() -> dict:
    """A gateway in each tenant's first namespace: seven objects each, over two phases."""
    entries = [
        {
            "name": INGRESS,
            "namespace": f"{name}-web",
            "revision": REVISION,
            "autoscale": {"min_replicas": 2},
            "pdb": {"min_available": 1},
        }
        for name in TENANTS
    ]
    return {"gateways": entries, "wait": False}


def stored_applies(events: list) -> list:
    """The server-side applies among audit events that stored something (not dry runs), of the kinds in PHASES."""
    received, answered = {}, {}
    for index, event in enumerate(events):
        uri = event["requestURI"]
        if event["verb"] != "patch" or "fieldManager=" not in uri or "dryRun=" in uri:
            continue
        if event["objectRef"]["resource"] in PHASES:
            (received if event["stage"] == "RequestReceived" else answered)[event["auditID"]] = (index, event)
    assert set(answered) == set(received), "every write of a finished run was answered"
    applies = []
    for audit_id, (index, event) in received.items():
        ref = event["objectRef"]
        applies.append(Apply(index, answered[audit_id][0], ref["resource"], ref.get("namespace", ""), ref["name"]))
    return applies


def test_a_converge_of_many_objects_sends_nothing_before_what_it_depends_on_has_been_answered(run, cluster, revision):
    since = audit_log_size(cluster.kubeconfig)
    tenants = run(tenants_args())
    assert tenants["changed"] is True, tenants.get("msg")
    gateways = run(gateways_args(), module="meshops.istio.istio_gateway")
    assert gateways["changed"] is True, gateways.get("msg")

    applies = stored_applies(audit_events(cluster.kubeconfig, since))
    assert len(applies) >= 4 * (3 * 2 + 15 + 7), len(applies)  # namespaces (created, then labelled), policies, gateways
    created = {}  # namespace -> the first apply of it: its creation
    for each in sorted(applies):
        if each.resource == "namespaces":
            created.setdefault(each.name, each)
    assert set(created) == {f"{name}-{part}" for name in TENANTS for part in ("web", "api", "db")}
    before_their_namespace = [
        each
        for each in applies
        if each.resource != "namespaces"
        and each.namespace in created
        and each.received < created[each.namespace].answered
    ]
    assert before_their_namespace == []
    before_an_earlier_phase = [
        (first, then)
        for first in applies
        for then in applies
        if first.namespace == then.namespace != ""
        and PHASES[first.resource] < PHASES[then.resource]
        and first.received < then.received < first.answered
    ]
    assert before_an_earlier_phase == []


def test_its_re_run_sends_no_write(run, cluster, revision):
    before = api_request_counts(cluster.kubeconfig)
    tenants = run(tenants_args())
    gateways = run(gateways_args(), module="meshops.istio.istio_gateway")
    assert (tenants["changed"], gateways["changed"]) == (False, False), (tenants.get("objects"), gateways["objects"])
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
