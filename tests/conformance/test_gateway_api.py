"""Seed 002's two tenants, each declaring its ingress as a Gateway API Gateway with istio_gateway (api: gateway_api),
served by real istiods: a tenant's istiod (its deployment controller) deploys the Deployment, Service and
ServiceAccount of its own tenant's Gateway, with the HPA, PDB and nodePort of the parameters ConfigMap, and does not
deploy the other tenant's."""

import pytest
from integration.playbook import playbook, run_task
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import binary_dir
from support import wait_for

pytestmark = pytest.mark.conformance

GATEWAYS = {"usergroup-1": ("app-ns-1", 32481), "usergroup-2": ("app-ns-2", 32482)}
DEPLOYED = "ingress-istio"  # istiod names what it deploys <Gateway name>-<class>


def gateway_entry(revision: str) -> dict:
    namespace, node_port = GATEWAYS[revision]
    return {
        "name": "ingress",
        "namespace": namespace,
        "revision": revision,
        "api": "gateway_api",
        "listeners": [{"name": "http", "port": 80, "node_port": node_port}],
        "service": {"type": "NodePort"},
        "autoscale": {"min_replicas": 2, "max_replicas": 3},
        "pdb": {"min_available": 1},
    }


@pytest.fixture(scope="module")
def tenants_gateways(clusters, tmp_path_factory):
    """Seed 002 as multitenant.yml installs it, plus each tenant's Gateway and the Gateway API CRDs, before any istiod
    runs."""
    [cluster] = clusters(1)
    playbook(cluster, "multitenant.yml", "-i", "examples/seed-002", "-e", f"istioctl_path={binary_dir() / 'istioctl'}")
    args = {
        "gateways": [gateway_entry(revision) for revision in GATEWAYS],
        "gateway_api_crds": str(binary_dir() / "gateway-api-crds"),
        "wait": False,  # no pod of a gateway runs here: no istiod answers the injection webhook from the API server
    }
    result = run_task(cluster.kubeconfig, "meshops.istio.istio_gateway", args, tmp_path=tmp_path_factory.mktemp("gw"))
    assert result.get("failed") is not True, result.get("msg")
    return {"cluster": cluster, "api": cluster.api_client()}


def deployed(api, namespace: str):
    """What istiod deployed for the Gateway `ingress` in `namespace`: {kind: object}, only the kinds that exist."""
    reads = {
        "Deployment": lambda: client.AppsV1Api(api).read_namespaced_deployment(DEPLOYED, namespace),
        "Service": lambda: client.CoreV1Api(api).read_namespaced_service(DEPLOYED, namespace),
        "ServiceAccount": lambda: client.CoreV1Api(api).read_namespaced_service_account(DEPLOYED, namespace),
        "HorizontalPodAutoscaler": lambda: client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(
            DEPLOYED, namespace),
        "PodDisruptionBudget": lambda: client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(
            DEPLOYED, namespace),
    }  # fmt: skip
    found = {}
    for kind, read in reads.items():
        try:
            found[kind] = read()
        except ApiException as error:
            if error.status != 404:
                raise
    return found


def wait_for_everything_deployed(api, namespace: str) -> dict:
    """What istiod deployed for the Gateway in `namespace`, once every kind is there (slow on a loaded machine)."""
    kinds = {"Deployment", "Service", "ServiceAccount", "HorizontalPodAutoscaler", "PodDisruptionBudget"}

    def everything():
        found = deployed(api, namespace)
        return found if set(found) == kinds else None

    return wait_for(f"istiod deploys {namespace}'s gateway", everything, timeout=180)


def assert_deployed_for(objects: dict, revision: str):
    namespace, node_port = GATEWAYS[revision]
    deployment, service = objects["Deployment"], objects["Service"]
    assert deployment.spec.template.metadata.annotations["istio.io/rev"] == revision
    # The proxy gets its certificates (and config) from the tenant's own istiod.
    [proxy] = deployment.spec.template.spec.containers
    assert {var.name: var.value for var in proxy.env}["CA_ADDR"] == f"istiod-{revision}.{revision}.svc:15012"
    assert [(ref.kind, ref.name) for ref in deployment.metadata.owner_references] == [("Gateway", "ingress")]
    # The infrastructure labels, not the collection's owner labels: prune never takes these for the gateway's.
    assert deployment.metadata.labels["app"] == "ingress"
    assert not any(key.startswith("meshops.io/") for key in deployment.metadata.labels)
    assert service.spec.type == "NodePort"
    assert {(p.port, p.node_port) for p in service.spec.ports if p.port == 80} == {(80, node_port)}
    assert (
        objects["HorizontalPodAutoscaler"].spec.min_replicas,
        objects["HorizontalPodAutoscaler"].spec.max_replicas,
    ) == (2, 3)
    assert objects["HorizontalPodAutoscaler"].spec.scale_target_ref.name == DEPLOYED
    assert objects["PodDisruptionBudget"].spec.min_available == 1


def test_a_tenants_istiod_deploys_its_tenants_gateway_and_not_the_other_tenants(tenants_gateways, istiods):
    cluster, api = tenants_gateways["cluster"], tenants_gateways["api"]
    istiods(cluster, "usergroup-1", "usergroup-1")
    objects = wait_for_everything_deployed(api, "app-ns-1")
    assert_deployed_for(objects, "usergroup-1")
    # usergroup-1's istiod has gone through every Gateway of its first sync: app-ns-2's is usergroup-2's.
    assert deployed(api, "app-ns-2") == {}


def test_the_other_tenants_istiod_deploys_the_other_gateway_and_leaves_the_first(tenants_gateways, istiods):
    cluster, api = tenants_gateways["cluster"], tenants_gateways["api"]
    before = deployed(api, "app-ns-1")["Deployment"].metadata.generation
    istiods(cluster, "usergroup-2", "usergroup-2")
    objects = wait_for_everything_deployed(api, "app-ns-2")
    assert_deployed_for(objects, "usergroup-2")
    first = deployed(api, "app-ns-1")["Deployment"]
    assert first.spec.template.metadata.annotations["istio.io/rev"] == "usergroup-1"
    assert first.metadata.generation == before


def test_a_rerun_of_the_module_sends_no_write_while_the_istiods_manage_what_they_deployed(tenants_gateways, tmp_path):
    cluster = tenants_gateways["cluster"]
    args = {"gateways": [gateway_entry(revision) for revision in GATEWAYS], "wait": False}
    result = run_task(cluster.kubeconfig, "meshops.istio.istio_gateway", args, tmp_path=tmp_path)
    assert (result.get("failed"), result["changed"], result["objects"]) == (None, False, []), result
