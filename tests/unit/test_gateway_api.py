"""istio_gateway's Gateway API form (api: gateway_api): the Gateway and its parameters ConfigMap as istiod's deployment
controller reads them (class `istio`, `istio.io/rev`, infrastructure.parametersRef to a ConfigMap whose keys patch
what it deploys, `networking.istio.io/service-type`), what is refused, the CRD files, and a converge against the
recording fake client. No cluster."""

import json

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster
from ansible_collections.meshops.istio.plugins.module_utils.engine import identity
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.gateway.crds import GATEWAYS_CRD, read_gateway_api_crds
from ansible_collections.meshops.istio.plugins.module_utils.gateway.ensure import ensure_gateway_present
from ansible_collections.meshops.istio.plugins.module_utils.gateway.manifests import manifests
from ansible_collections.meshops.istio.plugins.module_utils.gateway.spec import GatewaySpec, validate
from ansible_collections.meshops.istio.plugins.module_utils.kinds import KINDS, kind_of
from ansible_collections.meshops.istio.plugins.module_utils.vocabulary import MANAGED_BY_LABEL
from test_engine import FakeClient
from test_gateway import raw_params
from test_gateway_batch import namespace, revision_config_map

LISTENERS = [
    {"name": "http", "port": 80, "protocol": "HTTP", "hostname": None, "tls_secret": None, "node_port": 32080},
    {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com", "tls_secret": "shop-tls",
     "node_port": None},
]  # fmt: skip


def gateway_api(**overrides) -> GatewaySpec:
    """A tenant's Gateway API gateway in namespace foo, for revision shared."""
    settings = {"name": "ingress", "api": "gateway_api", "listeners": LISTENERS, "service": {"type": "NodePort"}}
    return GatewaySpec.from_params(raw_params(**{**settings, **overrides}))


def built(spec: GatewaySpec) -> dict:
    return {obj["kind"]: obj for obj in manifests(spec, "shared", "istio-system")}


def parameters(spec: GatewaySpec) -> dict:
    return {key: json.loads(value) for key, value in built(spec)["ConfigMap"]["data"].items()}


def test_the_gateway_is_of_class_istio_for_its_revision_and_names_its_parameters():
    objects = built(gateway_api())
    assert set(objects) == {"Gateway", "ConfigMap"}
    gateway = objects["Gateway"]
    assert gateway["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert gateway["metadata"]["labels"]["istio.io/rev"] == "shared"
    assert gateway["metadata"]["annotations"] == {"networking.istio.io/service-type": "NodePort"}
    assert gateway["spec"]["gatewayClassName"] == "istio"
    assert gateway["spec"]["infrastructure"]["parametersRef"] == {
        "group": "", "kind": "ConfigMap", "name": objects["ConfigMap"]["metadata"]["name"]}  # fmt: skip
    assert objects["ConfigMap"]["metadata"]["namespace"] == "foo"


def test_what_istiod_deploys_carries_the_selector_labels_and_not_the_owner_labels():
    infrastructure = built(gateway_api())["Gateway"]["spec"]["infrastructure"]["labels"]
    assert infrastructure == {"app": "ingress", "istio": "ingress"}
    assert MANAGED_BY_LABEL not in infrastructure and not any(key.startswith("meshops.io/") for key in infrastructure)


def test_listeners_take_routes_of_their_own_namespace_and_https_terminates_with_its_secret():
    http, https = built(gateway_api())["Gateway"]["spec"]["listeners"]
    assert http == {"name": "http", "port": 80, "protocol": "HTTP", "allowedRoutes": {"namespaces": {"from": "Same"}}}
    assert https["hostname"] == "shop.example.com"
    assert https["tls"] == {
        "mode": "Terminate",
        "certificateRefs": [{"group": "", "kind": "Secret", "name": "shop-tls"}],
    }
    assert https["allowedRoutes"] == {"namespaces": {"from": "Same"}}


def test_the_parameters_patch_the_hpa_pdb_service_and_deployment_istiod_deploys():
    patches = parameters(gateway_api())
    assert patches["horizontalPodAutoscaler"]["spec"]["minReplicas"] == 2
    assert patches["horizontalPodAutoscaler"]["spec"]["maxReplicas"] == 5
    assert "scaleTargetRef" not in patches["horizontalPodAutoscaler"]["spec"]  # istiod's points at its Deployment
    assert patches["podDisruptionBudget"] == {"spec": {"minAvailable": 1}}
    assert patches["service"] == {"spec": {"ports": [{"port": 80, "nodePort": 32080}]}}
    # With an HPA the replica count is the HPA's; the proxy's resources are the module's defaults.
    assert "replicas" not in patches["deployment"]["spec"]
    [container] = patches["deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "istio-proxy" and container["resources"]["requests"]["cpu"] == "100m"


def test_without_autoscale_or_pdb_istiod_is_given_no_hpa_or_pdb_key_and_the_replicas():
    patches = parameters(gateway_api(autoscale=None, pdb=None, replicas=3))
    assert set(patches) == {"deployment", "service"}
    assert patches["deployment"]["spec"]["replicas"] == 3


def test_the_default_listener_is_http_on_80_and_the_service_is_named_as_istiod_names_it():
    spec = gateway_api(listeners=None, service=None, pdb=None)
    assert [(p.name, p.port) for p in spec.service.ports] == [("http", 80)]
    assert spec.workload_name == "ingress-istio"
    assert built(spec)["Gateway"]["metadata"]["annotations"]["networking.istio.io/service-type"] == "LoadBalancer"


def test_listeners_sharing_a_port_make_one_service_port():
    other_host = dict(LISTENERS[0], name="http-b", hostname="b.example.com", node_port=None)
    shared = [dict(LISTENERS[0], node_port=None), other_host]
    assert [p.port for p in gateway_api(listeners=shared).service.ports] == [80]


def test_the_deployment_form_is_unchanged_by_default():
    spec = GatewaySpec.from_params(raw_params())
    assert spec.api == "deployment" and spec.workload_name == spec.name
    assert {obj["kind"] for obj in manifests(spec, "shared", "istio-system")} >= {"Deployment", "Service"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kind": "eastwest", "network": "n1"}, "kind is only for api deployment"),
        ({"service": {"ports": [{"name": "http", "port": 80}]}}, "service.ports is only for api deployment"),
        ({"listeners": [dict(LISTENERS[1], tls_secret=None)]}, r"listeners\[0\] is HTTPS and needs tls_secret"),
        ({"listeners": [dict(LISTENERS[0], tls_secret="x")]}, r"listeners\[0\].tls_secret is for protocol HTTPS"),
        ({"listeners": [LISTENERS[0], LISTENERS[0]]}, r"listeners\[1\].name 'http' is used twice"),
        ({"listeners": [dict(LISTENERS[0], node_port=80)]}, r"listeners\[0\].node_port 80 is outside"),
        ({"listeners": [dict(LISTENERS[0], hostname="Bad_Host")]}, r"listeners\[0\].hostname 'Bad_Host'"),
        ({"listeners": [dict(LISTENERS[0], name="Bad")]}, r"listeners\[0\].name 'Bad' must be a DNS-1123"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(overrides, message):
    with pytest.raises(Refusal, match=message):
        validate(gateway_api(**overrides))


def test_listeners_are_refused_for_the_deployment_form():
    with pytest.raises(Refusal, match="listeners is only for api gateway_api; remove it or set api: gateway_api"):
        validate(GatewaySpec.from_params(raw_params(listeners=LISTENERS)))


def test_the_two_gateway_kinds_keep_apart():
    gateway = built(gateway_api())["Gateway"]
    assert kind_of(gateway) is KINDS["Gateway.gateway.networking.k8s.io"]
    istio_gateway = {"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": gateway["metadata"]}
    assert kind_of(istio_gateway) is KINDS["Gateway"]
    assert identity(gateway) != identity(istio_gateway)


def crd(name: str, group: str = "gateway.networking.k8s.io") -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {"group": group, "names": {"kind": name.split(".")[0].title()}, "scope": "Namespaced", "versions": []},
    }


def write_crds(directory, *documents):
    directory.mkdir(exist_ok=True)
    for index, document in enumerate(documents):
        (directory / f"{index}.yaml").write_text(yaml.safe_dump(document))
    return str(directory)


def test_the_crd_files_are_read_and_anything_else_is_refused_naming_the_file(tmp_path):
    good = write_crds(tmp_path / "good", crd(GATEWAYS_CRD), crd("httproutes.gateway.networking.k8s.io"))
    assert [c["metadata"]["name"] for c in read_gateway_api_crds(good)] == [
        GATEWAYS_CRD,
        "httproutes.gateway.networking.k8s.io",
    ]
    policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy", "metadata": {}}
    with pytest.raises(Refusal, match=r"gateway_api_crds file .*1.yaml holds a ValidatingAdmissionPolicy"):
        read_gateway_api_crds(write_crds(tmp_path / "vap", crd(GATEWAYS_CRD), policy))
    with pytest.raises(Refusal, match="holds a CRD that is not apiextensions.k8s.io/v1 of gateway.networking.k8s.io"):
        read_gateway_api_crds(write_crds(tmp_path / "other", crd(GATEWAYS_CRD), crd("x.example.com", "example.com")))
    with pytest.raises(Refusal, match=f"lacks the CRD {GATEWAYS_CRD}"):
        read_gateway_api_crds(write_crds(tmp_path / "partial", crd("httproutes.gateway.networking.k8s.io")))
    with pytest.raises(Refusal, match="holds no .yaml file"):
        read_gateway_api_crds(str(tmp_path / "missing"))


def converge(fake: FakeClient, spec: GatewaySpec, check_mode: bool = False):
    return ensure_gateway_present(Cluster(fake), spec, check_mode)[0]


def test_the_crds_are_applied_before_the_gateway_and_a_rerun_writes_nothing(tmp_path):
    crds = write_crds(tmp_path / "crds", crd(GATEWAYS_CRD))
    spec = gateway_api(wait=False, gateway_api_crds=crds)
    fake = FakeClient([revision_config_map(), namespace("foo")])
    stored = dict(fake.store)
    planned = converge(fake, spec, check_mode=True)
    assert planned["changed"] is True
    assert all(call.options["dry_run"] == "All" for call in fake.calls if call.verb == "apply")
    assert fake.store == stored
    fake.calls.clear()
    result = converge(fake, spec)
    assert {(o["kind"], o["name"], o["action"]) for o in result["objects"]} == {
        ("CustomResourceDefinition", GATEWAYS_CRD, "created"), ("ConfigMap", "ingress-gateway-parameters", "created"),
        ("Gateway.gateway.networking.k8s.io", "ingress", "created")}  # fmt: skip
    stored_writes = [(kind, name) for verb, kind, _namespace, name in fake.writes() if verb == "apply"][-3:]
    assert stored_writes == [("CustomResourceDefinition", GATEWAYS_CRD), ("ConfigMap", "ingress-gateway-parameters"),
                             ("Gateway.gateway.networking.k8s.io", "ingress")]  # fmt: skip
    assert result["service"]["name"] == "ingress-istio"
    assert "meshops.io/gateway" not in fake.store[("CustomResourceDefinition", "", GATEWAYS_CRD)]["metadata"]["labels"]
    fake.calls.clear()
    again = converge(fake, spec)
    assert again["changed"] is False and fake.writes() == []


def test_without_the_crds_served_or_given_nothing_is_written_and_the_option_is_named():
    fake = FakeClient([revision_config_map(), namespace("foo")])
    with pytest.raises(Refusal, match="does not serve Gateway API Gateways .* set gateway_api_crds"):
        converge(fake, gateway_api(wait=False))
    assert fake.writes() == []
