"""verify.yml's invariants evaluated on listed objects: pure logic, no cluster."""

from ansible_collections.meshops.istio.plugins.module_utils.isolation import analyze, injector_webhooks


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


POLICIES = {
    ("PeerAuthentication", "default"): {"mtls": {"mode": "STRICT"}},
    ("AuthorizationPolicy", "meshops-tenant-isolation"): {},
    ("Sidecar", "default"): {},
    ("NetworkPolicy", "meshops-tenant-isolation"): {},
}


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
        "policies": {"a": dict(POLICIES), "b": dict(POLICIES)},
        "gateways": [],
        "cacerts": {},
    }
    state.update(changes)
    return state


TENANTS = [{"name": "t1", "namespaces": ["a"]}, {"name": "t2", "namespaces": ["b"]}]


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
        "revisions r1 and r2 both select namespaces a",
        "tenant t1: namespace a carries istio.io/rev=r1 but is selected by revisions r1, r2; expected r1 alone",
        "tenant t1: namespace a lacks Sidecar default",
        "tenant t1: gateway gw is not Ready: 0/2 replicas available, 0 updated",
        "tenant t2: namespace b carries istio.io/rev=r1 but is selected by revisions r2; expected r1 alone",
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
    assert "revisions r1 and r1-v2 both select namespaces a" in analyze(TENANTS, state)["problems"]
