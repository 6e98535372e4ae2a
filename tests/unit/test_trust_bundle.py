"""Which root ConfigMap a revision publishes under (own_trust_bundle, trust_bundle_name): pure, no cluster."""

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.revision_render import operator_spec
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import validate
from ansible_collections.meshops.istio.plugins.module_utils.trust_bundle import (
    published_trust_bundle,
    resolve_trust_bundle,
)
from test_revision import params

OWN = "istio-ca-root-cert-usergroup-1"


def deployment(env: dict) -> dict:
    """An istiod Deployment as the API server returns it, with `env` on its discovery container."""
    container = {"name": "discovery", "env": [{"name": key, "value": value} for key, value in env.items()]}
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def test_own_trust_bundle_names_the_root_after_the_system_namespace():
    bundle, warnings = resolve_trust_bundle(params(own_trust_bundle=True), "1.31.1", {})
    assert bundle == OWN and warnings == []
    values = operator_spec(params(own_trust_bundle=True), bundle)["values"]
    assert values["global"] == {"istioNamespace": "usergroup-1", "trustBundleName": OWN}
    # The CRL keeps Istio's name: the injector's values would not carry pilot.crlConfigMapName to the proxies.
    assert "pilot" not in values


def test_own_trust_bundle_merges_with_user_values():
    spec = params(own_trust_bundle=True, values={"global": {"logging": {"level": "debug"}}})
    values = operator_spec(spec, OWN)["values"]
    assert values["global"] == {"logging": {"level": "debug"}, "istioNamespace": "usergroup-1", "trustBundleName": OWN}


def test_without_the_options_the_rendering_does_not_set_the_key():
    bundle, warnings = resolve_trust_bundle(params(), "1.31.1", {})
    assert bundle == "istio-ca-root-cert" and warnings == []
    assert "trustBundleName" not in operator_spec(params(), bundle)["values"]["global"]


@pytest.mark.parametrize(
    ("version", "root"),
    [
        ("1.26.3", "istio-ca-root-cert"),
        ("1.27-dev", OWN),
        ("1.27.0", OWN),
        ("1.31-dev", OWN),
    ],
)
def test_own_trust_bundle_renames_only_where_the_istio_version_can(version, root):
    bundle = resolve_trust_bundle(params(own_trust_bundle=True), version, {})[0]
    assert bundle == root
    # Older charts have no such value: nothing is set for Istio's own name.
    values = operator_spec(params(own_trust_bundle=True), bundle)["values"]
    assert ("trustBundleName" in values["global"]) == (root != "istio-ca-root-cert")


def test_own_trust_bundle_on_an_istio_without_the_knob_says_it_keeps_the_shared_name():
    bundle, warnings = resolve_trust_bundle(params(own_trust_bundle=True), "1.26.3", {})
    assert bundle == "istio-ca-root-cert"
    assert len(warnings) == 1 and "Istio 1.26.3 cannot rename the root ConfigMap" in warnings[0]
    assert "shared istio-ca-root-cert" in warnings[0]


def test_an_explicit_name_needs_istio_1_27():
    with pytest.raises(Refusal, match=r"trust_bundle_name t1-root needs Istio 1.27 or later .* renders 1.26.3"):
        resolve_trust_bundle(params(trust_bundle_name="t1-root"), "1.26.3", {})
    assert resolve_trust_bundle(params(trust_bundle_name="istio-ca-root-cert"), "1.26.3", {})[0] == "istio-ca-root-cert"
    assert resolve_trust_bundle(params(trust_bundle_name="t1-root"), "1.27.0", {})[0] == "t1-root"


def test_a_canary_follows_the_name_of_the_revision_in_its_namespace():
    canary = params(name="usergroup-1-v2", own_trust_bundle=True)
    # The revision it upgrades was installed before own_trust_bundle, under Istio's name.
    bundle, warnings = resolve_trust_bundle(canary, "1.31.1", {"usergroup-1": "istio-ca-root-cert"})
    assert bundle == "istio-ca-root-cert"
    assert len(warnings) == 1 and "the name of revision usergroup-1 in namespace usergroup-1" in warnings[0]
    assert resolve_trust_bundle(canary, "1.31.1", {"usergroup-1": OWN}) == (OWN, [])


def test_a_name_other_than_the_namespace_neighbours_is_refused():
    with pytest.raises(Refusal) as refused:
        resolve_trust_bundle(params(name="usergroup-1-v2"), "1.31.1", {"usergroup-1": OWN})
    message = str(refused.value)
    assert f"trust_bundle_name istio-ca-root-cert differs from {OWN}, the root ConfigMap of revision usergroup-1" in (
        message
    )
    assert f"Set trust_bundle_name: {OWN}, or own_trust_bundle: true to follow usergroup-1" in message
    with pytest.raises(Refusal, match="trust_bundle_name mine differs from istio-ca-root-cert"):
        resolve_trust_bundle(params(trust_bundle_name="mine"), "1.31.1", {"usergroup-1": "istio-ca-root-cert"})


def test_published_trust_bundle_reads_istiods_environment():
    assert published_trust_bundle(deployment({"CLUSTER_ID": "c", "PILOT_CA_CERT_CONFIGMAP": "a"})) == "a"
    assert published_trust_bundle(deployment({"CLUSTER_ID": "Kubernetes"})) == "istio-ca-root-cert"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"trust_bundle_name": "Root_Cert"}, "trust_bundle_name 'Root_Cert' must be a ConfigMap name"),
        ({"trust_bundle_name": "a" * 254}, "must be a ConfigMap name: at most 253"),
        ({"trust_bundle_name": "-root"}, "must be a ConfigMap name"),
        ({"trust_bundle_name": "x", "own_trust_bundle": True}, "keep one of them"),
        ({"values": {"global": {"trustBundleName": "x"}}}, "values.global.trustBundleName is set by the module"),
    ],
)
def test_bad_trust_bundle_input_is_refused_naming_the_parameter(given, expected):
    with pytest.raises(Refusal, match=expected):
        validate(params(**given))


def test_good_names_pass_validation():
    validate(params(trust_bundle_name="istio-ca-root-cert.usergroup-1"))
    validate(params(own_trust_bundle=True))
