"""Which root and CRL ConfigMaps a revision publishes under (own_trust_bundle, trust_bundle_name): pure, no cluster."""

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.revision_render import operator_spec
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import validate
from ansible_collections.meshops.istio.plugins.module_utils.trust_bundle import (
    TrustBundle,
    published_trust_bundle,
    resolve_trust_bundle,
)
from test_revision import params

OWN = TrustBundle(root="istio-ca-root-cert-usergroup-1", crl="istio-ca-crl-usergroup-1")


def deployment(env: dict) -> dict:
    """An istiod Deployment as the API server returns it, with `env` on its discovery container."""
    container = {"name": "discovery", "env": [{"name": key, "value": value} for key, value in env.items()]}
    return {"spec": {"template": {"spec": {"containers": [container]}}}}


def test_own_trust_bundle_names_the_root_and_crl_after_the_system_namespace():
    bundle, warnings = resolve_trust_bundle(params(own_trust_bundle=True), "1.31.1", {})
    assert bundle == OWN and warnings == []
    values = operator_spec(params(own_trust_bundle=True), bundle)["values"]
    assert values["global"] == {"istioNamespace": "usergroup-1", "trustBundleName": "istio-ca-root-cert-usergroup-1"}
    assert values["pilot"] == {"crlConfigMapName": "istio-ca-crl-usergroup-1"}


def test_own_trust_bundle_merges_with_pilot_env_and_user_values():
    spec = params(own_trust_bundle=True, pilot_env={"A": "1"}, values={"pilot": {"autoscaleMin": 2}})
    values = operator_spec(spec, OWN)["values"]
    assert values["pilot"] == {"autoscaleMin": 2, "env": {"A": "1"}, "crlConfigMapName": "istio-ca-crl-usergroup-1"}


def test_without_the_options_the_rendering_sets_neither_key():
    bundle, warnings = resolve_trust_bundle(params(), "1.31.1", {})
    assert bundle == TrustBundle("istio-ca-root-cert", "istio-ca-crl") and warnings == []
    values = operator_spec(params(), bundle)["values"]
    assert "trustBundleName" not in values["global"] and "pilot" not in values


@pytest.mark.parametrize(
    ("version", "root", "crl"),
    [
        ("1.26.3", "istio-ca-root-cert", "istio-ca-crl"),
        ("1.27.0", "istio-ca-root-cert-usergroup-1", "istio-ca-crl"),
        ("1.28-dev", "istio-ca-root-cert-usergroup-1", "istio-ca-crl"),
        ("1.29.0", "istio-ca-root-cert-usergroup-1", "istio-ca-crl-usergroup-1"),
        ("1.31-dev", "istio-ca-root-cert-usergroup-1", "istio-ca-crl-usergroup-1"),
    ],
)
def test_own_trust_bundle_renames_only_what_the_istio_version_can(version, root, crl):
    bundle, _ = resolve_trust_bundle(params(own_trust_bundle=True), version, {})
    assert bundle == TrustBundle(root, crl)
    # Older charts have no such values: nothing is set for a name left at Istio's default.
    values = operator_spec(params(own_trust_bundle=True), bundle)["values"]
    assert ("trustBundleName" in values["global"]) == (root != "istio-ca-root-cert")
    assert ("pilot" in values) == (crl != "istio-ca-crl")


def test_own_trust_bundle_on_an_istio_without_the_knob_says_it_keeps_the_shared_name():
    bundle, warnings = resolve_trust_bundle(params(own_trust_bundle=True), "1.26.3", {})
    assert bundle == TrustBundle()
    assert len(warnings) == 1 and "Istio 1.26.3 cannot rename the root ConfigMap" in warnings[0]
    assert "shared istio-ca-root-cert" in warnings[0]


def test_an_explicit_name_needs_istio_1_27():
    with pytest.raises(Refusal, match=r"trust_bundle_name t1-root needs Istio 1.27 or later .* renders 1.26.3"):
        resolve_trust_bundle(params(trust_bundle_name="t1-root"), "1.26.3", {})
    bundle, _ = resolve_trust_bundle(params(trust_bundle_name="istio-ca-root-cert"), "1.26.3", {})
    assert bundle == TrustBundle()
    bundle, _ = resolve_trust_bundle(params(trust_bundle_name="t1-root"), "1.27.0", {})
    assert bundle == TrustBundle(root="t1-root")


def test_a_canary_follows_the_names_of_the_revision_in_its_namespace():
    canary = params(name="usergroup-1-v2", own_trust_bundle=True)
    # The revision it upgrades was installed before own_trust_bundle, under Istio's names.
    bundle, warnings = resolve_trust_bundle(canary, "1.31.1", {"usergroup-1": TrustBundle()})
    assert bundle == TrustBundle()
    assert len(warnings) == 1 and "names of revision usergroup-1 in namespace usergroup-1" in warnings[0]
    bundle, warnings = resolve_trust_bundle(canary, "1.31.1", {"usergroup-1": OWN})
    assert bundle == OWN and warnings == []


def test_a_name_other_than_the_namespace_neighbours_is_refused():
    with pytest.raises(Refusal) as refused:
        resolve_trust_bundle(params(name="usergroup-1-v2"), "1.31.1", {"usergroup-1": OWN})
    message = str(refused.value)
    assert "trust_bundle_name istio-ca-root-cert (CRL istio-ca-crl) differs from istio-ca-root-cert-usergroup-1" in (
        message
    )
    assert "revision usergroup-1, installed in namespace usergroup-1" in message
    assert "Set trust_bundle_name: istio-ca-root-cert-usergroup-1, or own_trust_bundle: true" in message
    with pytest.raises(Refusal, match="differs from istio-ca-root-cert "):
        resolve_trust_bundle(params(trust_bundle_name="mine"), "1.31.1", {"usergroup-1": TrustBundle()})


def test_published_trust_bundle_reads_istiods_environment():
    assert published_trust_bundle(deployment({"PILOT_CA_CERT_CONFIGMAP": "a", "PILOT_CRL_CONFIGMAP": "b"})) == (
        TrustBundle("a", "b")
    )
    assert published_trust_bundle(deployment({"CLUSTER_ID": "Kubernetes"})) == TrustBundle()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"trust_bundle_name": "Root_Cert"}, "trust_bundle_name 'Root_Cert' must be a ConfigMap name"),
        ({"trust_bundle_name": "a" * 254}, "must be a ConfigMap name: at most 253"),
        ({"trust_bundle_name": "-root"}, "must be a ConfigMap name"),
        ({"trust_bundle_name": "x", "own_trust_bundle": True}, "keep one of them"),
        ({"values": {"global": {"trustBundleName": "x"}}}, "values.global.trustBundleName is set by the module"),
        ({"values": {"pilot": {"crlConfigMapName": "x"}}}, "values.pilot.crlConfigMapName is set by the module"),
    ],
)
def test_bad_trust_bundle_input_is_refused_naming_the_parameter(given, expected):
    with pytest.raises(Refusal, match=expected):
        validate(params(**given))


def test_good_names_pass_validation():
    validate(params(trust_bundle_name="istio-ca-root-cert.usergroup-1"))
    validate(params(own_trust_bundle=True))
