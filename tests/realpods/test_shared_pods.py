"""Seed 000 with real pods: one shared control plane whose real istiods inject the tenants' ingress
gateways, so the gateways become Ready and verify.yml passes; each gateway is sent only its own namespace's Gateway
resources (PILOT_SCOPE_GATEWAY_TO_NAMESPACE), as istiod's xDS answers a proxy with that gateway pod's identity.

The same for the Gateway API form: the shared istiod deploys each tenant's Gateway API gateway (istio_gateway
api=gateway_api), and an Istio Gateway in bar whose selector matches the labels istiod gave foo's gateway pod is not
sent to that pod. The contrast runs the same revision's istiod once more with its flags changed: without both
PILOT_SCOPE_GATEWAY_TO_NAMESPACE and PILOT_ENABLE_STRICT_GATEWAY_MERGING (new in Istio 1.31, default true: other
namespaces' Istio Gateways stay off a managed Gateway API gateway), bar's Gateway reaches foo's pod; either flag
alone keeps it away.

Not real here: the gateways' Envoy (pilot-agent runs proxyless workloads only), so their xDS is read with
hack/xdsclient speaking as the gateway pod."""

import json
import subprocess

import pytest
from conformance.support import build_xdsclient, istio_version, wait_for
from integration.playbook import SEED_000, playbook, run_task
from kubernetes import client
from localcluster import binary_dir, start_istiod, stop_istiod

TENANTS = ("foo", "bar")
GATEWAY = "istio-ingressgateway"
ISTIOCTL = f"istioctl_path={binary_dir() / 'istioctl'}"
# Each tenant's Gateway resource listens on its own port; both select every ingress gateway by its `istio` label.
PORTS = {"foo": 8080, "bar": 9090}
# Each tenant's Gateway API gateway (deployed by istiod as `ingress-istio`), its listener port, and the port of the
# Istio Gateway created in bar that selects foo's Gateway API gateway pod by its labels.
GATEWAY_API = "ingress"
GATEWAY_API_PORTS = {"foo": 8181, "bar": 9191}
CROSS_PORT = 7070
NAME_LABEL = "gateway.networking.k8s.io/gateway-name"  # what istiod's kube-gateway template labels the pods with
SCOPE, STRICT = "PILOT_SCOPE_GATEWAY_TO_NAMESPACE", "PILOT_ENABLE_STRICT_GATEWAY_MERGING"


@pytest.fixture(scope="module")
def seed_000(cluster, api):
    playbook(cluster, "multitenant.yml", *SEED_000, "-e", ISTIOCTL)  # waits for the gateways to be Ready
    return api


def gateway_pods(api, namespace: str) -> list:
    return client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"app={GATEWAY}").items


def test_the_real_injector_makes_each_tenants_gateway_ready(seed_000):
    for namespace in TENANTS:
        deployment = client.AppsV1Api(seed_000).read_namespaced_deployment(GATEWAY, namespace)
        assert deployment.status.ready_replicas == deployment.spec.replicas >= 1
        for pod in gateway_pods(seed_000, namespace):
            [proxy] = [c for c in pod.spec.containers if c.name == "istio-proxy"]
            assert proxy.args[:2] == ["proxy", "router"]
            assert pod.metadata.annotations["sidecar.istio.io/status"]  # written by the injector


def test_verify_finds_every_tenant_isolated(cluster, seed_000):
    verified = playbook(cluster, "verify.yml", *SEED_000, "-e", ISTIOCTL)[1]
    messages = [str(h.get("msg")) for p in verified["plays"] for t in p["tasks"] for h in t["hosts"].values()]
    assert "2 tenants isolated" in messages


def gateway_resource(namespace: str) -> dict:
    server = {
        "port": {"number": PORTS[namespace], "name": "http", "protocol": "HTTP"},
        "hosts": [f"{namespace}.example"],
    }
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "web"},
        "spec": {"selector": {"istio": "ingressgateway"}, "servers": [server]},
    }


def seeded_istiod(api) -> str:
    """The plain-text xDS address of a pod of the shared revision's istiod."""
    istiod = client.CoreV1Api(api).list_namespaced_pod("istio-system", label_selector="app=istiod").items[0]
    return f"{istiod.status.pod_ip}:15010"


def xds_listeners(pod, istiod: str) -> set:
    """The listener names the istiod at xDS address `istiod` sends a router with the identity and labels of `pod`
    (istiod takes the labels of the pod it finds at that IP)."""
    namespace = pod.metadata.namespace
    labels = ",".join(f"{k}={v}" for k, v in pod.metadata.labels.items())
    node = f"router~{pod.status.pod_ip}~{pod.metadata.name}.{namespace}~{namespace}.svc.cluster.local"
    command = [build_xdsclient(), "xds", "--addr", istiod, "--node-id", node,
               "--namespace", namespace, "--istio-version", istio_version(), "--labels", labels]  # fmt: skip
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(result.stdout)["listeners"] or [])


def listeners_including(pod, istiod: str, listener: str):
    listeners = xds_listeners(pod, istiod)
    return listeners if listener in listeners else None


def test_each_gateway_is_sent_only_its_own_namespaces_gateway_resources(seed_000):
    objects = client.CustomObjectsApi(seed_000)
    for namespace in TENANTS:
        objects.create_namespaced_custom_object(
            "networking.istio.io", "v1", namespace, "gateways", gateway_resource(namespace)
        )
    istiod = seeded_istiod(seed_000)
    seen = {
        namespace: wait_for(
            f"{namespace}'s gateway gets the listener of its own Gateway",
            lambda n=namespace: listeners_including(gateway_pods(seed_000, n)[0], istiod, f"0.0.0.0_{PORTS[n]}"),
        )
        for namespace in TENANTS
    }
    print(f"\nlisteners istiod sends each tenant's gateway: {seen}")
    assert "0.0.0.0_9090" not in seen["foo"]
    assert "0.0.0.0_8080" not in seen["bar"]


@pytest.fixture(scope="module")
def gateway_api_pods(cluster, seed_000, tmp_path_factory):
    """Each tenant's Gateway API gateway on the shared revision, which the shared istiod deploys (the module waits
    for the Deployment's rollout); {namespace: its pod}."""
    entries = [
        {"name": GATEWAY_API, "namespace": namespace, "revision": "shared", "api": "gateway_api",
         "listeners": [{"name": "http", "port": GATEWAY_API_PORTS[namespace]}], "service": {"type": "ClusterIP"}}
        for namespace in TENANTS
    ]  # fmt: skip
    args = {"gateways": entries, "gateway_api_crds": str(binary_dir() / "gateway-api-crds")}
    result = run_task(cluster.kubeconfig, "meshops.istio.istio_gateway", args, tmp_path=tmp_path_factory.mktemp("gw"))
    assert result.get("failed") is not True, result.get("msg")
    core = client.CoreV1Api(seed_000)
    return {
        namespace: core.list_namespaced_pod(namespace, label_selector=f"{NAME_LABEL}={GATEWAY_API}").items[0]
        for namespace in TENANTS
    }


@pytest.fixture(scope="module")
def cross_namespace_gateway(seed_000, gateway_api_pods):
    """An Istio Gateway in bar whose selector is the gateway-name label istiod gave foo's Gateway API gateway pod
    (bar's pod carries it too: both Gateways are named `ingress`)."""
    selector = {NAME_LABEL: gateway_api_pods["foo"].metadata.labels[NAME_LABEL]}
    server = {"port": {"number": CROSS_PORT, "name": "http", "protocol": "HTTP"}, "hosts": ["cross.example"]}
    resource = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "cross"},
        "spec": {"selector": selector, "servers": [server]},
    }
    client.CustomObjectsApi(seed_000).create_namespaced_custom_object(
        "networking.istio.io", "v1", "bar", "gateways", resource
    )
    return selector


def test_the_shared_istiod_deploys_each_tenants_gateway_api_gateway(seed_000, gateway_api_pods):
    for namespace, pod in gateway_api_pods.items():
        deployment = client.AppsV1Api(seed_000).read_namespaced_deployment(f"{GATEWAY_API}-istio", namespace)
        assert deployment.status.ready_replicas == deployment.spec.replicas == 1
        assert deployment.spec.template.metadata.annotations["istio.io/rev"] == "shared"
        [proxy] = pod.spec.containers
        assert (proxy.name, proxy.args[:2]) == ("istio-proxy", ["proxy", "router"])
        assert pod.metadata.labels[NAME_LABEL] == GATEWAY_API


def own_and_cross_listeners(pods: dict, istiod: str) -> dict:
    """What `istiod` sends each tenant's Gateway API gateway pod, once bar's pod has the listener of the Istio
    Gateway `cross` (so the istiod has taken it in) and foo's pod has its own Gateway's listener."""
    seen = {}
    seen["bar"] = wait_for(
        "bar's Gateway API gateway gets the listener of bar's Istio Gateway `cross`",
        lambda: listeners_including(pods["bar"], istiod, f"0.0.0.0_{CROSS_PORT}"),
    )
    seen["foo"] = wait_for(
        "foo's Gateway API gateway gets its own listener",
        lambda: listeners_including(pods["foo"], istiod, f"0.0.0.0_{GATEWAY_API_PORTS['foo']}"),
    )
    return seen


def test_a_gateway_api_gateway_is_not_sent_another_namespaces_gateway_selecting_its_pod(
    seed_000, gateway_api_pods, cross_namespace_gateway
):
    assert cross_namespace_gateway.items() <= gateway_api_pods["foo"].metadata.labels.items()
    istiod = client.AppsV1Api(seed_000).read_namespaced_deployment("istiod-shared", "istio-system")
    [discovery] = istiod.spec.template.spec.containers
    flags = {var.name: var.value for var in discovery.env if var.name in (SCOPE, STRICT)}
    assert flags == {SCOPE: "true"}  # seed 000's pilot_env; strict merging stays at Istio's default
    seen = own_and_cross_listeners(gateway_api_pods, seeded_istiod(seed_000))
    print(f"\nlisteners the shared istiod sends each tenant's Gateway API gateway: {seen}")
    assert f"0.0.0.0_{CROSS_PORT}" not in seen["foo"]
    assert f"0.0.0.0_{GATEWAY_API_PORTS['bar']}" not in seen["foo"]
    assert f"0.0.0.0_{GATEWAY_API_PORTS['foo']}" not in seen["bar"]


@pytest.mark.parametrize(
    ("flags", "reaches"),
    [
        ({SCOPE: "false", STRICT: "false"}, True),  # the contrast: nothing keeps bar's Gateway off foo's pod
        ({SCOPE: "true", STRICT: "false"}, False),  # the scoping alone (Istio 1.29 and 1.30 have no strict merging)
        ({SCOPE: "false", STRICT: "true"}, False),  # strict merging alone (Istio 1.31's default)
    ],
    ids=["neither", "scope-only", "strict-merging-only"],
)
def test_the_other_namespaces_gateway_reaches_the_pod_only_without_either_flag(
    cluster, gateway_api_pods, cross_namespace_gateway, tmp_path, flags, reaches
):
    """The shared revision's istiod once more, as a local process with its Deployment's args and env but `flags`."""
    istiod = start_istiod(cluster.kubeconfig, "shared", "istio-system", tmp_path / "istiod", env_overrides=flags)
    try:
        seen = own_and_cross_listeners(gateway_api_pods, istiod.addresses["grpcAddr"])
    finally:
        stop_istiod(istiod)
    print(f"\nwith {flags}, foo's Gateway API gateway gets {sorted(seen['foo'])}")
    assert (f"0.0.0.0_{CROSS_PORT}" in seen["foo"]) is reaches
