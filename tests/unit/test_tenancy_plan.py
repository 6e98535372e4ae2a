"""The tenancy plan filter: tenants + model + shared control plane -> what each step of a run installs."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshops.istio.plugins.filter.tenancy_plan import FilterModule, tenancy_plan

SEED_002 = [
    {"name": "usergroup-1", "discovery_label": {"usergroup": "usergroup-1"}, "namespaces": ["app-ns-1"]},
    {"name": "usergroup-2", "discovery_label": {"usergroup": "usergroup-2"}, "namespaces": ["app-ns-2", "app-ns-3"]},
]
SEED_000 = [
    {"name": "foo", "namespaces": ["foo"], "gateway": {"autoscale": {"min_replicas": 2}}},
    {"name": "bar", "namespaces": [{"name": "bar", "labels": {"team": "b"}}]},
]


def _error(*args, **kwargs) -> str:
    with pytest.raises(AnsibleFilterError) as raised:
        tenancy_plan(*args, **kwargs)
    return str(raised.value)


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters()["tenancy_plan"] is tenancy_plan


def test_dedicated_is_the_default_model_a_control_plane_per_tenant():
    plan = tenancy_plan(SEED_002)
    assert plan["model"] == "dedicated"
    assert plan["control_planes"][1] == {
        "name": "usergroup-2",
        "namespace": "usergroup-2",
        "discovery_selectors": [{"matchLabels": {"usergroup": "usergroup-2"}}],
        "pilot_env": {},
        "values": {},
        "own_trust_bundle": True,
        "tenants": ["usergroup-2"],
        "ca_root": None,
    }
    assert plan["tenants"][1] == {
        "name": "usergroup-2",
        "revision": "usergroup-2",
        "namespaces": ["app-ns-2", "app-ns-3"],
        "discovery_label": {"usergroup": "usergroup-2"},
        "root_namespace_mtls": True,
    }
    assert plan["cas"] == [] and plan["gateways"] == []
    assert plan["planned_revisions"][0] == {
        "name": "usergroup-1",
        "namespace": "usergroup-1",
        "discovery_selectors": [{"matchLabels": {"usergroup": "usergroup-1"}}],
    }


def test_a_dedicated_tenant_may_keep_istios_shared_root_config_map_name():
    tenants = [
        {"name": "team-a", "namespaces": ["a"], "own_trust_bundle": False},
        {"name": "team-b", "namespaces": ["b"]},
    ]
    assert [c["own_trust_bundle"] for c in tenancy_plan(tenants)["control_planes"]] == [False, True]
    error = _error([{"name": "team-a", "namespaces": ["a"], "own_trust_bundle": "no"}])
    assert "tenants[0] (team-a): own_trust_bundle must be true or false, not 'no'" in error
    error = _error([{"name": "foo", "namespaces": ["foo"], "own_trust_bundle": False}], "shared")
    assert "own_trust_bundle applies to the dedicated model only" in error


def test_dedicated_defaults_and_overrides():
    tenants = [
        {"name": "team-a", "namespaces": ["a"]},
        {"name": "team-b", "namespaces": ["b"], "revision": "team-b-v2", "system_namespace": "team-b", "ca": True,
         "mtls": "PERMISSIVE", "isolation": {"sidecar_scope": False}},
    ]  # fmt: skip
    plan = tenancy_plan(tenants, "dedicated")
    assert plan["control_planes"][0]["discovery_selectors"] == [{"matchLabels": {"meshops.io/tenant": "team-a"}}]
    assert plan["tenants"][0]["discovery_label"] == {"meshops.io/tenant": "team-a"}
    # Keys the data leaves out are not passed, so the module's defaults stay the only ones.
    assert "mtls" not in plan["tenants"][0]
    assert plan["control_planes"][1]["name"] == "team-b-v2" and plan["control_planes"][1]["namespace"] == "team-b"
    assert plan["tenants"][1]["revision"] == "team-b-v2"
    assert plan["tenants"][1]["mtls"] == "PERMISSIVE" and plan["tenants"][1]["isolation"] == {"sidecar_scope": False}
    assert plan["cas"] == [{"tenant": "team-b", "namespace": "team-b", "revision": "team-b-v2", "root": "team-b"}]


def test_dedicated_tenants_get_mesh_wide_mtls_unless_they_turn_mtls_off():
    tenants = [{"name": "team-a", "namespaces": ["a"]}, {"name": "team-b", "namespaces": ["b"], "mtls": "none"}]
    plan = tenancy_plan(tenants, "dedicated")
    assert [t["root_namespace_mtls"] for t in plan["tenants"]] == [True, False]
    assert all("root_namespace_mtls" not in t for t in tenancy_plan(tenants, "shared")["tenants"])


def test_shared_model_one_control_plane_a_mesh_label_and_gateways():
    plan = tenancy_plan(SEED_000, "shared")
    assert plan["control_planes"] == [
        {
            "name": "shared",
            "namespace": "istio-system",
            "discovery_selectors": [{"matchLabels": {"meshops.io/mesh": "shared"}}],
            "pilot_env": {"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"},
            "values": {},
            "own_trust_bundle": False,
            "tenants": ["foo", "bar"],
        }
    ]
    assert [t["revision"] for t in plan["tenants"]] == ["shared", "shared"]
    assert all(t["discovery_label"] == {"meshops.io/mesh": "shared"} for t in plan["tenants"])
    assert plan["gateways"] == [
        {"tenant": "foo", "name": "istio-ingressgateway", "namespace": "foo", "autoscale": {"min_replicas": 2}}
    ]
    assert [s["gateway"] for s in plan["summary"]] == ["foo/istio-ingressgateway", None]
    assert plan["summary"][1]["namespaces"] == ["bar"]


def test_shared_control_plane_keeps_the_defaults_it_does_not_override():
    plan = tenancy_plan(SEED_000, "shared", {"name": "shared-v2", "values": {"pilot": {"autoscaleMin": 2}}})
    [control_plane] = plan["control_planes"]
    assert control_plane["name"] == "shared-v2" and control_plane["namespace"] == "istio-system"
    assert control_plane["pilot_env"] == {"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"}
    assert control_plane["values"] == {"pilot": {"autoscaleMin": 2}}
    assert plan["tenants"][0]["discovery_label"] == {"meshops.io/mesh": "shared-v2"}


def test_a_misspelled_tenant_key_is_named_with_a_suggestion():
    message = _error([{"name": "team-a", "namespaces": ["a"], "discovery_lable": {"x": "y"}}])
    assert "tenants[0] (team-a): unknown key 'discovery_lable' (did you mean discovery_label?)" in message


def test_a_misspelled_gateway_key_and_shared_control_plane_key_are_named():
    message = _error([{"name": "foo", "namespaces": ["foo"], "gateway": {"replica": 2}}], "shared", {"nmae": "x"})
    assert "tenants[0] (foo): gateway: unknown key 'replica' (did you mean replicas?)" in message
    assert "shared_control_plane: unknown key 'nmae' (did you mean name?)" in message


@pytest.mark.parametrize(
    ("tenants", "model", "expected"),
    [
        ([{"name": "Team_A", "namespaces": ["a"]}], None, "tenants[0] (Team_A): name 'Team_A' must be a DNS-1123"),
        ([{"namespaces": ["a"]}], None, "tenants[0] (no name): name None must be a DNS-1123"),
        ([{"name": "a", "namespaces": []}], None, "tenants[0] (a): namespaces must be a non-empty list"),
        ([{"name": "a", "namespaces": ["A b"]}], None, "tenants[0] (a): namespaces[0] 'A b' must be a DNS-1123"),
        ([{"name": "a", "namespaces": ["a"], "gateway": {}}], "dedicated", "gateway applies to the shared model only"),
        ([{"name": "a", "namespaces": ["a"], "revision": "r"}], "shared", "revision applies to the dedicated model"),
        (["a"], None, "tenants[0] must be a dict"),
        ([{"name": "a", "namespaces": ["x"]}, {"name": "a", "namespaces": ["y"]}], None, "tenant a is listed twice"),
        ([{"name": "a", "namespaces": ["x"]}, {"name": "b", "namespaces": ["x"]}], None, "namespace x is listed by"),
    ],
)
def test_bad_entries_fail_naming_the_entry_and_the_fix(tenants, model, expected):
    assert expected in _error(tenants, model)


def test_every_bad_entry_is_reported_at_once():
    message = _error([{"name": "a", "namespaces": ["a"], "colour": 1}, {"name": "b", "namespaces": [], "size": 2}])
    assert "'colour'" in message and "'size'" in message and "tenants[1] (b): namespaces must be" in message


def test_unknown_model_and_non_list_tenants_are_refused():
    assert _error([], "pooled") == "tenancy_model must be dedicated or shared, not 'pooled'"
    assert "tenants must be a list" in _error({"name": "a"})


def test_no_tenants_is_an_empty_plan():
    assert tenancy_plan([])["tenants"] == []
