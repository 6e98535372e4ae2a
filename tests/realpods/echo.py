"""Istio's echo app as tenants' workloads in a real-pods cluster: the Pod, Service and DestinationRule a tenant would
write, waiting for the kubelet to run it, and calls between pods through their own proxyless gRPC data plane."""

import ssl
import subprocess
from pathlib import Path

from conformance.support import wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import binary_dir
from localcluster.workload import exec_env

ECHO_IMAGE = "meshops.test/echo-server"
GRPC_PORT = 7070  # the xDS-managed (mTLS) gRPC port
FORWARD_PORT = 17070  # plain gRPC (Istio's ForwardEcho API); here only a readiness check
PORT_ARGS = ["--grpc=7070,17070", "--port=18080", "--tcp=19090", "--bind-ip=7070,17070,18080,19090"]
XDS_ARGS = ["--xds-grpc-server=7070"]  # port 7070 takes its listener and mTLS from xDS (needs the agent's bootstrap)


def echo_pod(name: str, role: str) -> dict:
    """Istio's echo app in a pod. `server`: injected (proxyless), serving port 7070 with xDS-managed mTLS, selected
    by the echo Service. `client`: injected, its app takes no xDS, so the echo client run in it is the only xDS
    client of its agent (one agent serves one xDS stream). `plain`: not injected."""
    injected = role != "plain"
    annotations = {"inject.istio.io/templates": "grpc-agent"} if injected else {"sidecar.istio.io/inject": "false"}
    container = {
        "name": "app",
        "image": ECHO_IMAGE,
        "args": XDS_ARGS + PORT_ARGS if role == "server" else PORT_ARGS,
        "env": [{"name": "INSTANCE_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "ports": [
            {"name": "grpc", "containerPort": GRPC_PORT},
            {"name": "grpc-forward", "containerPort": FORWARD_PORT},
        ],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "echo" if role == "server" else f"echo-{role}"},
                     "annotations": annotations},
        "spec": {"containers": [container]},
    }  # fmt: skip


def echo_service() -> dict:
    return {
        "metadata": {"name": "echo"},
        "spec": {"selector": {"app": "echo"}, "ports": [{"name": "grpc", "port": GRPC_PORT, "targetPort": GRPC_PORT}]},
    }


def mutual_tls(namespace: str) -> dict:
    """Proxyless clients send plaintext unless a DestinationRule asks for Istio's mTLS."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": "echo"},
        "spec": {"host": f"echo.{namespace}.svc.cluster.local", "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}}},
    }


def deploy_echo(api, namespace: str):
    """A tenant's echo server and client pods, the Service and the ISTIO_MUTUAL DestinationRule."""
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, echo_pod("echo", "server"))
    core.create_namespaced_pod(namespace, echo_pod("client", "client"))
    core.create_namespaced_service(namespace, echo_service())
    client.CustomObjectsApi(api).create_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "destinationrules", mutual_tls(namespace)
    )


def pod_directory(cluster, namespace: str, name: str) -> Path:
    return cluster.directory / "pods" / namespace / name


def pod_ip(api, namespace: str, name: str) -> str:
    return wait_for(
        f"{namespace}/{name} has an IP",
        lambda: client.CoreV1Api(api).read_namespaced_pod(name, namespace).status.pod_ip,
    )


def serving(address: str) -> bool:
    """Something accepts TCP connections at ip:port."""
    import socket

    ip, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((ip, int(port)), timeout=1):
            return True
    except OSError:
        return False


def wait_for_pod(cluster, api, namespace: str, name: str, certified: bool = True) -> str:
    """The pod's IP once its echo app serves (and, when `certified`, once its agent holds a workload certificate)."""
    ip = pod_ip(api, namespace, name)
    wait_for(f"{namespace}/{name} serves", lambda: serving(f"{ip}:{FORWARD_PORT}"), timeout=90)
    if certified:
        certs = pod_directory(cluster, namespace, name) / "var/lib/istio/data/cert-chain.pem"
        wait_for(f"{namespace}/{name} has a workload certificate", certs.exists, timeout=90)
    return ip


def call(cluster, namespace: str, url: str, count: int = 3) -> subprocess.CompletedProcess:
    """Run Istio's echo client in the namespace's client pod, as `kubectl exec` would: in the pod's working directory
    with the app's xDS bootstrap, so the call leaves with that pod's xDS (through its agent) and certificate."""
    directory = pod_directory(cluster, namespace, "client")
    env = exec_env(directory)
    command = [str(binary_dir() / "echo-client"), url, f"--count={count}", "--timeout=4s"]
    return subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True, timeout=60, check=False)


def handshake(ip: str, certificate_dir: Path | None) -> str:
    """'ok' when a TLS client presenting the workload certificate in `certificate_dir` (none: no certificate) is
    accepted at ip:7070, else the error. The server's certificate is not checked: this asks whether the server
    accepts the client."""
    import socket

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    if certificate_dir is not None:
        context.load_cert_chain(certificate_dir / "cert-chain.pem", certificate_dir / "key.pem")
    try:
        with socket.create_connection((ip, GRPC_PORT), timeout=5) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            if not tls.recv(9):  # the server's SETTINGS frame; with TLS 1.3 a refused client learns it here
                return "closed"
        return "ok"
    except (OSError, ssl.SSLError) as error:
        return type(error).__name__


def exists(api, namespace: str, name: str) -> bool:
    try:
        client.CoreV1Api(api).read_namespaced_pod(name, namespace)
        return True
    except ApiException as error:
        if error.status == 404:
            return False
        raise
