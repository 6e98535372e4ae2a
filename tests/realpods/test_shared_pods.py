"""Seed 000 with real pods: one shared control plane whose real istiods inject the tenants' ingress
gateways, so the gateways become Ready and verify.yml passes; each gateway is sent only its own namespace's Gateway
resources (PILOT_SCOPE_GATEWAY_TO_NAMESPACE), as istiod's xDS answers a proxy with that gateway pod's identity.

Not real here: the gateways' Envoy (pilot-agent runs proxyless workloads only), so their xDS is read with
hack/xdsclient speaking as the gateway pod."""

import json
import subprocess

import pytest
from conformance.support import build_xdsclient, istio_version, wait_for
from integration.playbook import SEED_000, playbook
from kubernetes import client
from localcluster import binary_dir

TENANTS = ("foo", "bar")
GATEWAY = "istio-ingressgateway"
ISTIOCTL = f"istioctl_path={binary_dir() / 'istioctl'}"
# Each tenant's Gateway resource listens on its own port; both select every ingress gateway by its `istio` label.
PORTS = {"foo": 8080, "bar": 9090}


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


def listeners_of(api, namespace: str) -> set:
    """The listener names istiod's xDS sends a router with the identity and labels of the namespace's gateway pod."""
    pod = gateway_pods(api, namespace)[0]
    istiod = client.CoreV1Api(api).list_namespaced_pod("istio-system", label_selector="app=istiod").items[0]
    labels = ",".join(f"{k}={v}" for k, v in pod.metadata.labels.items())
    node = f"router~{pod.status.pod_ip}~{pod.metadata.name}.{namespace}~{namespace}.svc.cluster.local"
    command = [build_xdsclient(), "xds", "--addr", f"{istiod.status.pod_ip}:15010", "--node-id", node,
               "--namespace", namespace, "--istio-version", istio_version(), "--labels", labels]  # fmt: skip
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(result.stdout)["listeners"] or [])


def listeners_including(api, namespace: str, listener: str):
    listeners = listeners_of(api, namespace)
    return listeners if listener in listeners else None


def test_each_gateway_is_sent_only_its_own_namespaces_gateway_resources(seed_000):
    objects = client.CustomObjectsApi(seed_000)
    for namespace in TENANTS:
        objects.create_namespaced_custom_object(
            "networking.istio.io", "v1", namespace, "gateways", gateway_resource(namespace)
        )
    seen = {
        namespace: wait_for(
            f"{namespace}'s gateway gets the listener of its own Gateway",
            lambda n=namespace: listeners_including(seed_000, n, f"0.0.0.0_{PORTS[n]}"),
        )
        for namespace in TENANTS
    }
    print(f"\nlisteners istiod sends each tenant's gateway: {seen}")
    assert "0.0.0.0_9090" not in seen["foo"]
    assert "0.0.0.0_8080" not in seen["bar"]
