"""Run a workload pod's containers as local processes on its pod IP (kubelet.py decides which pods).

An app container whose image is in LOCAL_IMAGES runs the matching binary (Istio's echo server) with the container's
args and env. A pod the real injector gave a proxyless `istio-proxy` container (annotation
`inject.istio.io/templates: grpc-agent`) also runs pilot-agent with that container's args and env and its volumes
(volumes.py: the `istio-ca` token bound to the pod, the namespace's root certificate, pod labels and annotations), so
the workload gets its SPIFFE certificate from its own istiod and the app its xDS through the agent's socket.

What differs from a pod, because every pod shares one network namespace and there is no cluster DNS:
- the agent dials istiod at the pod IP behind the discovery Service's name (`ISTIOD_SAN` keeps that name as the one
  istiod's certificate must carry), and reaches it as CA too (no `CA_ADDR`);
- the agent's status port is a free port, not 15020 on every address;
- the app reads a copy of the agent's gRPC bootstrap whose xDS server is the agent socket's absolute path.
"""

import json
import os
import time
from pathlib import Path

from .cluster import _kill, free_port
from .istiod import container_env, expand, spawn
from .volumes import NotYet, write_volumes

LOCAL_IMAGES = {"meshops.test/echo-server": "echo-server"}
PROXY = "istio-proxy"
BOOTSTRAP_SECONDS = 15.0

__all__ = ["LOCAL_IMAGES", "NotYet", "exec_env", "runs_locally", "start"]


def runs_locally(pod) -> bool:
    return any(c.image in LOCAL_IMAGES for c in pod.spec.containers)


def start(kubeconfig: Path, core, pod, directory: Path, binaries: Path) -> dict:
    """Starts the pod's processes and returns {name: pid}; raises NotYet while a volume source is missing."""
    directory.mkdir(parents=True, exist_ok=True)
    started, bootstrap = {}, None
    proxy = next((c for c in pod.spec.containers if c.name == PROXY), None)
    if proxy is not None:
        write_volumes(core, pod.metadata.namespace, pod.spec, proxy, directory, pod)
        args, env = _agent_command(core, pod, proxy, directory)
        started["pilot-agent"] = spawn([binaries / "pilot-agent", *args], env, directory, directory / "pilot-agent.log")
        try:
            bootstrap = _local_bootstrap(directory)
        except NotYet:
            _stop(started)
            raise
    for container in pod.spec.containers:
        if container.image in LOCAL_IMAGES:
            args, env = _app_command(pod, container, bootstrap)
            binary = binaries / LOCAL_IMAGES[container.image]
            started[container.name] = spawn([binary, *args], env, directory, directory / f"{container.name}.log")
    return started


def _agent_command(core, pod, proxy, directory: Path):
    env = container_env(proxy, pod.spec, pod.metadata.namespace, pod.metadata.name, pod.status.pod_ip)
    proxy_config = json.loads(env.get("PROXY_CONFIG") or "{}")
    host, port = proxy_config["discoveryAddress"].rsplit(":", 1)
    proxy_config["discoveryAddress"] = f"{_endpoint_ip(core, host)}:{port}"
    proxy_config["statusPort"] = free_port()
    env.pop("CA_ADDR", None)
    env.update(
        PROXY_CONFIG=json.dumps(proxy_config),
        ISTIOD_SAN=host,
        OUTPUT_CERTS=str(directory / "var/lib/istio/data"),
        PATH=os.environ.get("PATH", ""),
    )
    return [expand(arg, env) for arg in proxy.args or []], env


def _app_command(pod, container, bootstrap):
    env = container_env(container, pod.spec, pod.metadata.namespace, pod.metadata.name, pod.status.pod_ip)
    if bootstrap is not None:
        env.update(GRPC_XDS_BOOTSTRAP=str(bootstrap), GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT="true")
    return [expand(arg, env) for arg in container.args or []], env


def exec_env(directory: Path) -> dict:
    """The environment of a command run in the pod (`kubectl exec`): the app's xDS bootstrap when it has one."""
    bootstrap = directory / "grpc-bootstrap.json"
    if not bootstrap.exists():
        return {}
    return {"GRPC_XDS_BOOTSTRAP": str(bootstrap), "GRPC_XDS_EXPERIMENTAL_SECURITY_SUPPORT": "true"}


def _endpoint_ip(core, host: str) -> str:
    """What cluster DNS and kube-proxy would turn `<service>.<namespace>.svc[...]` into: a ready endpoint's address."""
    from kubernetes import client

    service, namespace = host.split(".")[:2]
    discovery = client.DiscoveryV1Api(core.api_client)
    slices = discovery.list_namespaced_endpoint_slice(namespace, label_selector=f"kubernetes.io/service-name={service}")
    for endpoint_slice in slices.items:
        for endpoint in endpoint_slice.endpoints or []:
            if endpoint.conditions is None or endpoint.conditions.ready is not False:
                return endpoint.addresses[0]
    raise NotYet(f"no ready endpoint for {host}")


def _local_bootstrap(directory: Path) -> Path:
    """The agent's gRPC bootstrap with its xDS server at the agent socket's absolute path (the agent writes an
    absolute `unix:///etc/istio/proxy/XDS`, a path of the pod's own filesystem)."""
    written = directory / "etc/istio/proxy/grpc-bootstrap.json"
    deadline = time.monotonic() + BOOTSTRAP_SECONDS
    while not written.exists() or not written.stat().st_size:
        if time.monotonic() > deadline:
            raise NotYet(f"pilot-agent wrote no gRPC bootstrap within {BOOTSTRAP_SECONDS:.0f} s (see its log)")
        time.sleep(0.1)
    bootstrap = json.loads(written.read_text())
    for server in bootstrap["xds_servers"]:
        server["server_uri"] = f"unix://{directory}/etc/istio/proxy/XDS"
    local = directory / "grpc-bootstrap.json"
    local.write_text(json.dumps(bootstrap))
    return local


def _stop(started: dict):
    for pid in started.values():
        _kill(pid)
