"""istio_tenant's builders and guards: pure logic, no cluster."""

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC
from ansible_collections.meshops.istio.plugins.module_utils.tenant import (
    content_not_ours,
    refusals,
    root_policy_problems,
    taken_over,
)
from ansible_collections.meshops.istio.plugins.module_utils.tenant_policies import namespace_manifest, policies
from ansible_collections.meshops.istio.plugins.module_utils.tenant_spec import (
    NamespaceSpec,
    TenantSpec,
    validate,
    validate_tenants,
)
from ansible_collections.meshops.istio.plugins.modules.istio_tenant import ARGUMENT_SPEC


def params(**overrides):
    """The TenantSpec istio_tenant builds for these parameters, the others at the module's defaults."""
    given = {
        "name": "usergroup-1",
        "revision": "usergroup-1",
        "namespaces": ["app-ns-1", {"name": "app-ns-4", "labels": {"team": "a"}, "annotations": {"owner": "x"}}],
        "discovery_label": {"usergroup": "usergroup-1"},
        **overrides,
    }
    defaults = {key: option.get("default") for key, option in {**COMMON_ARG_SPEC, **ARGUMENT_SPEC}.items()}
    return TenantSpec.from_params(defaults | given)


REVISIONS = {
    "usergroup-1": {"namespace": "usergroup-1", "selectors": [{"matchLabels": {"usergroup": "usergroup-1"}}]},
    "usergroup-2": {"namespace": "usergroup-2", "selectors": [{"matchLabels": {"usergroup": "usergroup-2"}}]},
}


def test_namespaces_accept_names_and_dicts():
    assert params().namespaces == (
        NamespaceSpec(name="app-ns-1", labels={}, annotations={}),
        NamespaceSpec(name="app-ns-4", labels={"team": "a"}, annotations={"owner": "x"}),
    )


def test_namespace_labels_extra_labels_cannot_override_ours():
    entry = NamespaceSpec(name="n", labels={"istio.io/rev": "other", "team": "a"})
    labels = namespace_manifest(params(), entry)["metadata"]["labels"]
    assert labels == {"team": "a", "usergroup": "usergroup-1", "istio.io/rev": "usergroup-1",
                      "meshops.io/tenant": "usergroup-1"}  # fmt: skip


def test_default_discovery_label_is_the_tenant_label():
    labels = namespace_manifest(params(discovery_label=None), params().namespaces[0])["metadata"]["labels"]
    assert labels["meshops.io/tenant"] == "usergroup-1" and "usergroup" not in labels


def test_policies_per_namespace_follow_the_options():
    built = policies(params(isolation={"admins": {"groups": ["g"]}, "allow_namespaces": ["gw"]}), "usergroup-1")
    by_key = {(m["kind"], m["metadata"]["namespace"]): m for m in built}
    assert len(built) == 10  # 5 kinds x 2 namespaces
    allowed = ["app-ns-1", "app-ns-4", "gw", "usergroup-1"]
    assert by_key[("AuthorizationPolicy", "app-ns-4")]["spec"]["rules"] == [
        {"from": [{"source": {"namespaces": allowed}}]}
    ]
    assert by_key[("Sidecar", "app-ns-1")]["spec"]["egress"] == [{"hosts": [f"{n}/*" for n in allowed]}]
    assert by_key[("RoleBinding", "app-ns-1")]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "g"}
    ]
    none = policies(params(mtls="none", isolation={"authorization": False, "sidecar_scope": False,
                                                   "network_policy": False}), "usergroup-1")  # fmt: skip
    assert none == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "Bad"}, "name 'Bad' must be a DNS-1123 label"),
        ({"revision": None}, "revision is required with state=present"),
        ({"namespaces": ["a", "a"]}, "namespaces lists a more than once"),
        ({"namespaces": [{"labels": {}}]}, "namespaces[0] None must be a DNS-1123 label"),
        ({"namespaces": [["a"]]}, "namespaces[0] ['a'] must be a DNS-1123 label"),
        ({"namespaces": [{"name": {"x": 1}}]}, "namespaces[0] {'x': 1} must be a DNS-1123 label"),
        ({"discovery_label": {"usergroup": 1}}, "discovery_label.usergroup is 1, not a string; quote it"),
        ({"root_namespace_mtls": True, "mtls": "none"}, "root_namespace_mtls needs an mTLS mode"),
    ],
)
def test_validation(overrides, message):
    with pytest.raises(Refusal) as error:
        validate(params(**overrides))
    assert message in str(error.value)


def test_root_namespace_mtls_adds_the_guides_peer_authentication_in_the_system_namespace():
    plain = policies(params(), "usergroup-1")
    built = policies(params(root_namespace_mtls=True, mtls="PERMISSIVE"), "usergroup-1")
    permissive = policies(params(mtls="PERMISSIVE"), "usergroup-1")
    assert built[1:] == permissive and len(permissive) == len(plain)
    root = built[0]
    assert (root["kind"], root["metadata"]) == ("PeerAuthentication", {"name": "usergroup-1-peerauth",
                                                                       "namespace": "usergroup-1"})  # fmt: skip
    # No selector: in the root namespace it applies to every namespace the control plane manages.
    assert root["spec"] == {"mtls": {"mode": "PERMISSIVE"}}
    assert [p for p in built if p["metadata"]["namespace"] == "usergroup-1"] == [root]


def _peer_authentication(name, selector=None):
    spec = {"mtls": {"mode": "STRICT"}, **({"selector": selector} if selector else {})}
    return {"kind": "PeerAuthentication", "metadata": {"name": name, "namespace": "usergroup-1"}, "spec": spec}


def test_another_mesh_wide_policy_in_the_root_namespace_is_refused():
    spec = params(root_namespace_mtls=True)
    own, workload = _peer_authentication("usergroup-1-peerauth"), _peer_authentication("w", {"matchLabels": {"a": "b"}})
    assert root_policy_problems([spec], REVISIONS, {"usergroup-1": [own, workload]}) == []
    [problem] = root_policy_problems([spec], REVISIONS, {"usergroup-1": [own, _peer_authentication("default")]})
    assert problem.startswith("root_namespace_mtls: root namespace usergroup-1 of revision usergroup-1 already holds "
                              "PeerAuthentication default, which applies mesh-wide too")  # fmt: skip
    assert root_policy_problems([params()], REVISIONS, {"usergroup-1": [_peer_authentication("default")]}) == []


def test_two_tenants_of_one_run_cannot_both_take_a_root_namespace():
    one, two = params(root_namespace_mtls=True), params(name="usergroup-9", root_namespace_mtls=True)
    [problem] = root_policy_problems([one, two], REVISIONS, {}, indexed=True)
    assert problem.startswith("tenants[1].root_namespace_mtls: tenants usergroup-1 and usergroup-9 both ask")


def test_guards():
    namespaces = {"app-ns-1": {"meshops.io/tenant": "usergroup-2"}, "app-ns-4": {"istio.io/rev": "old"}}
    problems = refusals(params(), REVISIONS, namespaces)
    assert problems == [
        "namespace app-ns-1 belongs to tenant usergroup-2; set takeover: true to move it",
        "namespace app-ns-4 carries istio.io/rev=old (another mesh); set takeover: true to move it to this tenant",
    ]
    assert refusals(params(takeover=True), REVISIONS, namespaces) == []
    assert taken_over(params(takeover=True), namespaces) == ["app-ns-1"]


def test_guard_names_the_missing_discovery_label():
    missing, other = refusals(params(namespaces=["a"], discovery_label={"usergroup": "usergroup-2"}), REVISIONS, {})
    assert "lacks usergroup=usergroup-1" in missing
    assert other.startswith("namespaces[0] a: revision usergroup-2 would select it too")


def test_content_not_ours_ignores_system_config_maps_and_our_objects():
    objects = [
        {"kind": "ConfigMap", "metadata": {"name": "kube-root-ca.crt"}},
        {"kind": "ConfigMap", "metadata": {"name": "istio-ca-root-cert"}},
        {"kind": "Service", "metadata": {"name": "ours", "labels": {"app.kubernetes.io/managed-by": "meshops.istio"}}},
        {"kind": "Pod", "metadata": {"name": "web-1"}},
    ]
    assert [o["metadata"]["name"] for o in content_not_ours(objects)] == ["web-1"]


def test_content_not_ours_ignores_the_root_and_crl_istiod_publishes_under_a_name_of_its_own():
    istiod = {"istio.io/config": "true"}
    objects = [
        {"kind": "ConfigMap", "metadata": {"name": "istio-ca-root-cert-t1", "labels": istiod},
         "data": {"root-cert.pem": "PEM"}},
        {"kind": "ConfigMap", "metadata": {"name": "istio-ca-crl-t1", "labels": istiod}, "data": {"ca-crl.pem": ""}},
        # The label alone is not istiod's mark: a ConfigMap with other data is the tenant's.
        {"kind": "ConfigMap", "metadata": {"name": "app-config", "labels": istiod}, "data": {"app.yaml": "x"}},
        {"kind": "ConfigMap", "metadata": {"name": "istio-ca-root-cert-copy"}, "data": {"root-cert.pem": "PEM"}},
    ]  # fmt: skip
    assert [o["metadata"]["name"] for o in content_not_ours(objects)] == ["app-config", "istio-ca-root-cert-copy"]


def test_many_tenants_are_validated_together():
    one, other = params(), params(name="usergroup-2", namespaces=["app-ns-2", "app-ns-1"])
    assert validate_tenants([one, params(name="usergroup-2", namespaces=["app-ns-2"])]) is None
    with pytest.raises(Refusal) as error:
        validate_tenants([one, other, params(name="Bad"), params()])
    text = str(error.value)
    assert "tenants[2].name 'Bad' must be a DNS-1123 label" in text
    assert "tenants lists usergroup-1 more than once; describe each tenant once" in text
    assert "namespace app-ns-1 is listed by tenants Bad, usergroup-1, usergroup-2; a namespace belongs to one" in text
    assert "namespace app-ns-2 is listed" not in text
