"""istio_gateway's Gateway API form (api: gateway_api) against a real API server: the Gateway API CRDs from the files
hack/build-binaries.sh copied out of the gateway-api Go module the pinned Istio requires, applied by the module; a
tenant's Gateway and its parameters ConfigMap accepted by the CRDs' own validation; check mode, a no-op re-run and bad
input writing nothing; removal leaving the CRDs. No istiod runs here (tests/conformance/test_gateway_api.py has one)."""

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import api_request_counts, wait_for_namespace_defaults, writes

MODULE = "meshops.istio.istio_gateway"
DISCOVERY = {"istio-discovery": "enabled"}
TENANT = "tenant-a"
GATEWAYS_CRD = "gateways.gateway.networking.k8s.io"


@pytest.fixture(scope="module", autouse=True)
def shared_revision(run, api, binaries):
    result = run(
        {
            "name": "shared",
            "namespace": "istio-system",
            "istioctl_path": str(binaries / "istioctl"),
            "discovery_selectors": [{"matchLabels": DISCOVERY}],
            "values": {"global": {"operatorManageWebhooks": True}},  # no istiod answers webhooks here
            "wait_timeout": 120,
        },
        module="meshops.istio.istio_revision",
    )
    assert result.get("failed") is not True, result.get("msg")
    client.CoreV1Api(api).create_namespace(
        {"metadata": {"name": TENANT, "labels": {**DISCOVERY, "istio.io/rev": "shared"}}}
    )
    wait_for_namespace_defaults(api, TENANT)


@pytest.fixture(scope="module")
def crds_path(binaries):
    path = binaries / "gateway-api-crds"
    assert (path / "gateway.networking.k8s.io_gateways.yaml").is_file(), "make binaries copies them"
    return str(path)


def gateway_args(crds_path, **overrides):
    args = {
        "name": "ingress",
        "namespace": TENANT,
        "revision": "shared",
        "api": "gateway_api",
        "gateway_api_crds": crds_path,
        "listeners": [
            {"name": "http", "port": 80, "node_port": 32480},
            {"name": "https", "port": 443, "protocol": "HTTPS", "hostname": "shop.example.com", "tls_secret": "shop"},
        ],
        "service": {"type": "NodePort"},
        "autoscale": {"min_replicas": 2, "max_replicas": 4},
        "pdb": {"min_available": 1},
        "wait": False,
    }
    return {**args, **overrides}


def live_gateway(api):
    try:
        return client.CustomObjectsApi(api).get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", TENANT, "gateways", "ingress"
        )
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def crd_served(api) -> bool:
    try:
        client.ApiextensionsV1Api(api).read_custom_resource_definition(GATEWAYS_CRD)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def test_without_the_crds_the_run_is_refused_naming_gateway_api_crds(run, api, cluster):
    before = api_request_counts(cluster.kubeconfig)
    result = run(gateway_args(None, gateway_api_crds=None))
    assert result.get("failed") is True
    assert "does not serve Gateway API Gateways" in result["msg"] and "gateway_api_crds" in result["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_a_path_holding_anything_but_gateway_api_crds_is_refused_before_writing(run, api, cluster, tmp_path):
    (tmp_path / "policy.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    before = api_request_counts(cluster.kubeconfig)
    result = run(gateway_args(str(tmp_path)))
    assert result.get("failed") is True
    assert "gateway_api_crds file" in result["msg"] and "holds a ConfigMap" in result["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert not crd_served(api)


def test_check_mode_plans_the_crds_and_the_gateway_and_stores_nothing(run, api, cluster, crds_path):
    before = api_request_counts(cluster.kubeconfig)
    result = run(gateway_args(crds_path), check=True, diff=True)
    assert result["changed"] is True, result.get("msg")
    planned = {(o["kind"], o["name"]) for o in result["objects"]}
    assert {("CustomResourceDefinition", GATEWAYS_CRD), ("ConfigMap", "ingress-gateway-parameters"),
            ("Gateway.gateway.networking.k8s.io", "ingress")} <= planned  # fmt: skip
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert not crd_served(api) and live_gateway(api) is None


def test_converge_installs_the_crds_and_a_gateway_for_the_tenants_revision(run, api, crds_path):
    result = run(gateway_args(crds_path))
    assert result["changed"] is True, result.get("msg")
    assert crd_served(api)
    gateway = live_gateway(api)
    assert gateway["metadata"]["labels"]["istio.io/rev"] == "shared"
    assert gateway["metadata"]["annotations"]["networking.istio.io/service-type"] == "NodePort"
    assert gateway["spec"]["gatewayClassName"] == "istio"
    assert [listener["name"] for listener in gateway["spec"]["listeners"]] == ["http", "https"]
    assert gateway["spec"]["infrastructure"]["parametersRef"]["name"] == "ingress-gateway-parameters"
    parameters = client.CoreV1Api(api).read_namespaced_config_map("ingress-gateway-parameters", TENANT)
    assert set(parameters.data) == {"deployment", "service", "horizontalPodAutoscaler", "podDisruptionBudget"}
    assert result["service"]["name"] == "ingress-istio"
    assert result["address"] == f"ingress-istio.{TENANT}.svc.cluster.local"


def test_a_second_run_sends_no_write(run, cluster, crds_path):
    before = api_request_counts(cluster.kubeconfig)
    result = run(gateway_args(crds_path))
    assert (result["changed"], result["objects"]) == (False, []), result["objects"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_bad_listeners_are_refused_naming_the_parameter_and_nothing_is_written(run, cluster, crds_path):
    args = gateway_args(crds_path, listeners=[{"name": "https", "port": 443, "protocol": "HTTPS"}])
    before = api_request_counts(cluster.kubeconfig)
    result = run(args)
    assert result.get("failed") is True
    assert "listeners[0] is HTTPS and needs tls_secret" in result["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_a_change_updates_the_gateway_and_its_parameters_only(run, api, crds_path):
    args = gateway_args(crds_path, replicas=1)
    del args["autoscale"], args["pdb"]
    result = run(args)
    assert result["changed"] is True, result.get("msg")
    changed = {(o["kind"], o["name"], o["action"]) for o in result["objects"]}
    assert changed == {("ConfigMap", "ingress-gateway-parameters", "updated")}
    parameters = client.CoreV1Api(api).read_namespaced_config_map("ingress-gateway-parameters", TENANT)
    assert set(parameters.data) == {"deployment", "service"}


def test_removal_deletes_the_gateway_and_its_parameters_and_keeps_the_crds(run, api, crds_path):
    result = run({"name": "ingress", "namespace": TENANT, "state": "absent"})
    assert result["changed"] is True, result.get("msg")
    deleted = {(o["kind"], o["name"]) for o in result["objects"] if o["action"] == "deleted"}
    assert deleted == {("ConfigMap", "ingress-gateway-parameters"), ("Gateway.gateway.networking.k8s.io", "ingress")}
    assert live_gateway(api) is None
    assert crd_served(api)
