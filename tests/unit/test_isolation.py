"""verify.yml's invariants evaluated on listed objects: pure logic, no cluster."""

import copy

from ansible_collections.meshops.istio.plugins.module_utils.isolation import (
    analyze,
    desired_policies,
    escaping_pods,
    injector_webhooks,
)


def _injector(revision):
    return {
        "metadata": {"name": f"istio-sidecar-injector-{revision}", "labels": {"istio.io/rev": revision}},
        "webhooks": [
            {"name": "rev.namespace.sidecar-injector.istio.io", "namespaceSelector": {"matchExpressions": [
                {"key": "istio.io/rev", "operator": "In", "values": [revision]},
                {"key": "istio-injection", "operator": "DoesNotExist"}]}},
            {"name": "rev.object.sidecar-injector.istio.io", "namespaceSelector": {"matchExpressions": [
                {"key": "istio.io/rev", "operator": "DoesNotExist"},
                {"key": "istio-injection", "operator": "DoesNotExist"}]}},
        ],
    }  # fmt: skip


TENANTS = [{"name": "t1", "namespaces": ["a"]}, {"name": "t2", "namespaces": ["b"]}]


def _state(**changes):
    state = {
        "namespaces": {
            "a": {"istio.io/rev": "r1", "meshops.io/tenant": "t1", "group": "one"},
            "b": {"istio.io/rev": "r2", "meshops.io/tenant": "t2", "group": "two"},
        },
        "revisions": {
            "r1": {"namespace": "r1", "selectors": [{"matchLabels": {"group": "one"}}]},
            "r2": {"namespace": "r2", "selectors": [{"matchLabels": {"group": "two"}}]},
        },
        "webhooks": [_injector("r1"), _injector("r2")],
        "policies": {**desired_policies(TENANTS[0], "r1"), **desired_policies(TENANTS[1], "r2")},
        "gateways": [],
        "cacerts": {},
    }
    state.update(changes)
    return state


def test_isolated_tenants_have_no_problems():
    report = analyze(TENANTS, _state())
    assert report["problems"] == []
    facts = report["tenants"]["t1"]["namespaces"]["a"]
    assert facts["selected_by"] == ["r1"] and facts["mtls"] == "STRICT"
    assert facts["injectors"] == ["istio-sidecar-injector-r1/rev.namespace.sidecar-injector.istio.io"]


def test_only_the_namespace_webhook_of_the_labelled_revision_matches():
    assert injector_webhooks([_injector("r1"), _injector("r2")], {"istio.io/rev": "r2"}) == [
        "istio-sidecar-injector-r2/rev.namespace.sidecar-injector.istio.io"
    ]


def test_overlap_relabel_missing_policy_and_unready_gateway_are_each_reported():
    state = _state()
    state["revisions"]["r2"]["selectors"].append({"matchLabels": {"group": "one"}})
    state["namespaces"]["b"]["istio.io/rev"] = "r1"
    del state["policies"]["a"][("Sidecar", "default")]
    state["gateways"] = [{"metadata": {"name": "gw", "namespace": "a", "generation": 1},
                          "spec": {"replicas": 2}, "status": {"observedGeneration": 1}}]  # fmt: skip
    problems = analyze(TENANTS, state)["problems"]
    assert problems == [
        "revisions r1 and r2 both select namespaces a and may not share them: no cacerts root in the system namespace "
        "of r1 (r1), r2 (r2), so they do not share a root",
        "tenant t1: namespace a carries istio.io/rev=r1 but is selected by revisions r1, r2; expected r1 alone, or "
        "other control planes only as a shared namespace (one root, injected by r1)",
        "tenant t1: namespace a lacks Sidecar default",
        "tenant t1: gateway gw is not Ready: 0/2 replicas available, 0 updated",
        "tenant t2: namespace b carries istio.io/rev=r1 but is selected by revisions r2; expected r1 alone, or other "
        "control planes only as a shared namespace (one root, injected by r1)",
    ]


def test_missing_namespace_and_policies_turned_off():
    tenants = [{"name": "t1", "namespaces": ["a", "gone"], "mtls": "none",
                "isolation": {"authorization": False, "sidecar_scope": False, "network_policy": False}}]  # fmt: skip
    state = _state(policies={})
    assert analyze(tenants, state)["problems"] == ["tenant t1: namespace gone does not exist"]


def test_a_canary_in_the_same_system_namespace_is_one_control_plane():
    state = _state()
    state["revisions"]["r1-v2"] = {"namespace": "r1", "selectors": [{"matchLabels": {"group": "one"}}]}
    state["webhooks"].append(_injector("r1-v2"))
    report = analyze(TENANTS, state)
    assert report["problems"] == []
    assert report["tenants"]["t1"]["namespaces"]["a"]["selected_by"] == ["r1", "r1-v2"]
    # The same selectors from another system namespace are two control planes fighting over the namespace.
    state["revisions"]["r1-v2"]["namespace"] = "elsewhere"
    [overlap] = analyze(TENANTS, state)["invariants"]["no two revisions select the same namespace"]
    assert overlap.startswith("revisions r1 and r1-v2 both select namespaces a and may not share them")


def test_policies_as_written_are_isolation_and_their_content_is_compared():
    desired = desired_policies(TENANTS[0], "r1")["a"]
    assert desired[("NetworkPolicy", "meshops-tenant-isolation")]["ingress"][0]["from"][0]["namespaceSelector"] == {
        "matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["a", "r1"]}]
    }
    assert desired[("AuthorizationPolicy", "meshops-tenant-isolation")]["rules"] == [
        {"from": [{"source": {"namespaces": ["a", "r1"]}}]}
    ]


def test_an_opened_network_policy_and_a_changed_authorization_policy_are_reported():
    state = _state()
    policies = copy.deepcopy(state["policies"])
    policies["a"][("NetworkPolicy", "meshops-tenant-isolation")]["ingress"] = [{}]
    policies["b"][("AuthorizationPolicy", "meshops-tenant-isolation")]["selector"] = {"matchLabels": {"app": "x"}}
    policies["b"][("PeerAuthentication", "default")]["portLevelMtls"] = {"8080": {"mode": "DISABLE"}}
    report = analyze(TENANTS, {**state, "policies": policies})
    assert report["problems"] == [
        "tenant t1: namespace a: NetworkPolicy meshops-tenant-isolation differs from what meshops.istio writes "
        "(spec.ingress) and admits ingress from everywhere; re-run the tenant's onboarding to restore it",
        "tenant t2: namespace b: PeerAuthentication default differs from what meshops.istio writes "
        "(spec.portLevelMtls); re-run the tenant's onboarding to restore it",
        "tenant t2: namespace b: AuthorizationPolicy meshops-tenant-isolation differs from what meshops.istio "
        "writes (spec.selector); re-run the tenant's onboarding to restore it",
    ]
    invariants = report["tenants"]["t2"]["namespaces"]["b"]["invariants"]
    assert len(invariants["mTLS as desired"]) == 1 and len(invariants["isolation policies in place"]) == 1


def _pod(name, labels, owner=None):
    metadata = {"name": name, "labels": labels}
    if owner:
        metadata["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner}]
    return {"metadata": metadata}


GATEWAY = {
    "metadata": {"name": "ingress", "namespace": "a", "generation": 1},
    "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "ingress", "istio": "ingress"}}},
    "status": {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 1, "replicas": 1},
}


def test_a_pod_labelled_istio_escapes_the_network_policy_unless_it_is_a_gateway_pod():
    gateway_labels = {"app": "ingress", "istio": "ingress", "pod-template-hash": "5d9f"}
    pods = [
        _pod("app", {"app": "app"}),
        _pod("ingress-5d9f-x", gateway_labels, owner="ingress-5d9f"),
        _pod("impostor", gateway_labels, owner="impostor-5d9f"),
        _pod("sneaky", {"app": "app", "istio": "anything"}),
    ]
    state = _state(gateways=[GATEWAY], pods={"a": pods})
    problems = analyze(TENANTS, state)["problems"]
    assert problems == [
        "tenant t1: namespace a: pod impostor escapes NetworkPolicy meshops-tenant-isolation (labels {'istio': "
        "'ingress'} are outside its podSelector), so every namespace can reach it; remove the label, or deploy it "
        "as a meshops.istio gateway",
        "tenant t1: namespace a: pod sneaky escapes NetworkPolicy meshops-tenant-isolation (labels {'istio': "
        "'anything'} are outside its podSelector), so every namespace can reach it; remove the label, or deploy it "
        "as a meshops.istio gateway",
    ]


def test_a_network_policy_selecting_every_pod_lets_none_escape():
    pods = [_pod("sneaky", {"istio": "anything"})]
    assert escaping_pods({"podSelector": {}}, pods, []) == []
    selective = {"podSelector": {"matchExpressions": [{"key": "istio", "operator": "DoesNotExist"}]}}
    assert escaping_pods(selective, pods, []) == [("sneaky", {"istio": "anything"})]


ROOT_TENANTS = [{**TENANTS[0], "revision": "r1", "root_namespace_mtls": True}, TENANTS[1]]


def test_the_mesh_wide_peer_authentication_of_a_dedicated_tenant_is_checked():
    root = {"r1": {("PeerAuthentication", "t1-peerauth"): {"mtls": {"mode": "STRICT"}}}}
    invariant = "tenant t1: mesh-wide mTLS in root namespace r1"
    report = analyze(ROOT_TENANTS, _state(policies={**_state()["policies"], **root}))
    assert report["problems"] == [] and report["invariants"][invariant] == []
    missing = analyze(ROOT_TENANTS, _state())
    assert missing["invariants"][invariant] == [
        "tenant t1: root namespace r1 lacks PeerAuthentication t1-peerauth (mesh-wide mTLS); re-run the tenant's "
        "onboarding"
    ]
    permissive = {"r1": {("PeerAuthentication", "t1-peerauth"): {"mtls": {"mode": "PERMISSIVE"}}}}
    [problem] = analyze(ROOT_TENANTS, _state(policies={**_state()["policies"], **permissive}))["problems"]
    assert problem.startswith("tenant t1: root namespace r1: PeerAuthentication t1-peerauth differs from what")
    assert invariant not in analyze(TENANTS, _state())["invariants"]
