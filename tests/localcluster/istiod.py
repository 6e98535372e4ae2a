"""Run a real istiod (pilot-discovery) as a local process for a revision the collection installed.

Pods cannot run images here, but istiod can run as a process against the API server. It is configured from the
revision's own Deployment `istiod-<rev>`, the way the kubelet would start its container: the container's args and
env (valueFrom resolved from the pod it would be), the Secret and ConfigMap volumes it mounts written as files
under the instance's working directory (istiod reads `./etc/cacerts` relative to it), and the API credentials of
the Deployment's ServiceAccount (a TokenRequest token), so our RBAC is what istiod gets. It reads the mesh config
`istio-<rev>` and the injector config `istio-sidecar-injector-<rev>` from the API, as it does in the pod, since the
Deployment mounts neither.

What differs from the pod, because a local process is not a pod:
- listen addresses: loopback, on free ports per instance, instead of the container ports (in a real-pods cluster,
  kubelet.py runs istiod pods with run_istiod_pod: the container ports on the pod's IP, as in a pod);
- KUBECONFIG and --kubeconfig: a kubeconfig with the ServiceAccount's token instead of the in-cluster config;
- volumes at absolute paths (the projected `istio-token`, `/var/run/secrets/...`) are not provided: istiod then
  authenticates CA and xDS clients with TokenReview only, as it does in a pod whose token has no OIDC issuer.
"""

import json
import math
import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .cluster import _alive, _die_with_parent, _stop_process, background_client, binary_dir, free_port
from .volumes import write_private, write_volumes

STOP_TIMEOUT = 15.0
TOKEN_SECONDS = 4 * 3600
# Flags the harness sets per instance; the Deployment's own values for them are dropped.
ADDRESS_FLAGS = ("httpAddr", "grpcAddr", "secureGRPCAddr", "httpsAddr", "monitoringAddr")
HARNESS_FLAGS = (*ADDRESS_FLAGS, "ctrlz_address", "ctrlz_port", "kubeconfig")
# istiod's container ports, where it listens in a pod (and in a real-pods cluster, on the pod's IP).
POD_PORTS = {"httpAddr": 8080, "grpcAddr": 15010, "secureGRPCAddr": 15012, "httpsAddr": 15017, "monitoringAddr": 15014}
CTRLZ_PORT = 9876
PORT_ATTEMPTS = 3


class IstiodError(RuntimeError):
    pass


@dataclass
class Istiod:
    revision: str
    namespace: str
    directory: Path
    addresses: dict = field(default_factory=dict)
    pid: int = 0

    @property
    def log(self) -> Path:
        return self.directory / "istiod.log"

    @property
    def service(self) -> str:
        """The name istiod's serving certificate carries and injected sidecars dial."""
        return f"istiod-{self.revision}.{self.namespace}.svc"

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://{self.addresses['httpAddr']}{path}", timeout=10) as response:
            return response.read()

    def debug(self, endpoint: str):
        """A JSON debug endpoint of the HTTP port, e.g. `registryz`."""
        return json.loads(self.get(f"/debug/{endpoint}"))

    def running(self) -> bool:
        return bool(self.pid) and _alive(self.pid)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_istiod(
    kubeconfig: Path, revision: str, namespace: str, directory: Path, timeout: float = 120, env_overrides=None
) -> Istiod:
    """Starts istiod for the installed `revision` in `namespace` and returns once it reports /ready.

    `env_overrides` ({name: value}) replaces or adds variables of the Deployment's env, to run the same control plane
    with one feature flag changed. The process dies with this Python process. On failure nothing is left running."""
    from kubernetes import client, config

    api = config.new_client_from_config(str(kubeconfig))
    deployment = client.AppsV1Api(api).read_namespaced_deployment(f"istiod-{revision}", namespace)
    directory = directory.resolve()
    base_args, env = _command(
        api, kubeconfig, namespace, deployment.spec.template.spec, f"istiod-{revision}-local", "127.0.0.1", directory
    )
    base_args[0] = binary_dir() / base_args[0]
    env.update(env_overrides or {})
    istiod = Istiod(revision, namespace, directory)
    attempt = 1
    while True:
        try:
            _run_until_ready(istiod, base_args, env, timeout)
            return istiod
        except IstiodError as error:
            # Free ports are picked before istiod binds them: another process may have taken one meanwhile.
            if attempt == PORT_ATTEMPTS or "address already in use" not in str(error):
                raise
            attempt += 1


def run_istiod_pod(kubeconfig: Path, pod, directory: Path, binaries: Path) -> int:
    """Starts pilot-discovery for a Running istiod pod (a V1Pod) as its kubelet would, listening on the pod's IP
    and container ports; returns its pid without waiting for it to be ready."""
    api = background_client(kubeconfig)
    ip = pod.status.pod_ip
    args, env = _command(api, kubeconfig, pod.metadata.namespace, pod.spec, pod.metadata.name, ip, directory)
    args[0] = binaries / args[0]
    args += [f"--{flag}={ip}:{port}" for flag, port in POD_PORTS.items()]
    args += [f"--ctrlz_address={ip}", f"--ctrlz_port={CTRLZ_PORT}"]
    return spawn(args, env, directory, directory / "istiod.log")


def _command(api, kubeconfig: Path, namespace: str, pod_spec, pod_name: str, pod_ip: str, directory: Path):
    """pilot-discovery's args (without listen addresses) and env for a pod of istiod's Deployment, with its volumes
    written under `directory` and the API credentials of its ServiceAccount."""
    from kubernetes import client

    directory.mkdir(parents=True, exist_ok=True)
    container = next(c for c in pod_spec.containers if c.name == "discovery")
    account = pod_spec.service_account_name or "default"
    istiod_kubeconfig = _write_service_account_kubeconfig(api, kubeconfig, namespace, account, directory)
    write_volumes(client.CoreV1Api(api), namespace, pod_spec, container, directory)
    env = {
        **container_env(container, pod_spec, namespace, pod_name, pod_ip),
        "KUBECONFIG": str(istiod_kubeconfig),
    }
    args = ["pilot-discovery", *_without_harness_flags(container.args or []), f"--kubeconfig={istiod_kubeconfig}"]
    return args, env


def stop_istiod(istiod: Istiod, timeout: float = STOP_TIMEOUT):
    """SIGTERM, then SIGKILL after `timeout` (istiod drains for --shutdownDuration first)."""
    if istiod.pid:
        _stop_process(istiod.pid, timeout)
        istiod.pid = 0


def _run_until_ready(istiod: Istiod, base_args: list, env: dict, timeout: float):
    """One start on fresh free ports; a failed start is stopped again."""
    istiod.addresses = {flag: f"127.0.0.1:{free_port()}" for flag in ADDRESS_FLAGS}
    args = [*base_args, *(f"--{flag}={address}" for flag, address in istiod.addresses.items())]
    args.append(f"--ctrlz_port={free_port()}")
    istiod.pid = spawn(args, env, istiod.directory, istiod.log)
    try:
        _wait_ready(istiod, timeout)
    except BaseException:
        stop_istiod(istiod)
        raise


def spawn(args: list, env: dict, directory: Path, log_path: Path) -> int:
    """Starts a process that dies with this one, logging to `log_path`; returns its pid."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(a) for a in args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return process.pid


def _wait_ready(istiod: Istiod, timeout: float):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if not istiod.running():
            raise IstiodError(f"istiod {istiod.revision} exited; log {istiod.log}:\n{istiod.log_tail()}")
        try:
            istiod.get("/ready")
            return
        except OSError as error:  # not listening yet, or 503 until its caches synced
            last_error = error
        time.sleep(0.3)
    raise IstiodError(
        f"istiod {istiod.revision} not ready within {timeout:.0f} s ({last_error}); log {istiod.log}:\n"
        f"{istiod.log_tail()}"
    )


def _without_harness_flags(args: list) -> list:
    """The Deployment's args minus the flags the harness sets, in `--flag=value` or `--flag value` form."""
    kept, skip_value = [], False
    for arg in args:
        if skip_value:
            skip_value = False
            continue
        name = re.match(r"--?([A-Za-z_]+)(=?)", arg)
        if name and name.group(1) in HARNESS_FLAGS:
            skip_value = not name.group(2)
            continue
        kept.append(arg)
    return kept


def container_env(container, pod, namespace: str, pod_name: str, pod_ip: str) -> dict:
    """The container's env as the kubelet would set it for a pod of this template (`$(VAR)` references to earlier
    variables expanded, as Kubernetes does)."""
    env = {}
    for var in container.env or []:
        source = var.value_from
        if source is None:
            env[var.name] = expand(var.value or "", env)
        elif source.field_ref:
            env[var.name] = _field_value(source.field_ref.field_path, pod, namespace, pod_name, pod_ip)
        elif source.resource_field_ref:
            env[var.name] = _resource_value(source.resource_field_ref, container)
        else:
            raise IstiodError(
                f"env {var.name} of container {container.name} uses a source the harness does not resolve"
            )
    return env


def expand(text: str, env: dict) -> str:
    """Kubernetes' `$(VAR)` expansion in env values, command and args; unknown references stay as they are."""
    return re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), text)


def _field_value(path: str, pod, namespace: str, pod_name: str, pod_ip: str) -> str:
    values = {
        "metadata.name": pod_name,
        "metadata.namespace": namespace,
        "spec.serviceAccountName": pod.service_account_name or "default",
        "spec.nodeName": pod.node_name or "localhost",
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": "127.0.0.1",
    }
    if path not in values:
        raise IstiodError(f"fieldRef {path} is not resolved by the harness")
    return values[path]


def _resource_value(ref, container) -> str:
    """resourceFieldRef: the container's limit or request; an unset limit is the node's capacity (this machine's),
    as the downward API reports it."""
    from kubernetes.utils import parse_quantity

    kind, resource = ref.resource.split(".", 1)
    resources = container.resources
    declared = (resources.limits if kind == "limits" else resources.requests) or {}
    if resource in declared:
        quantity = parse_quantity(declared[resource])
    elif resource == "cpu":
        quantity = os.cpu_count()
    elif resource == "memory":
        quantity = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    else:
        raise IstiodError(f"resourceFieldRef {ref.resource} of {container.name} is not resolved by the harness")
    return str(math.ceil(quantity / parse_quantity(ref.divisor or "1")))


def _write_service_account_kubeconfig(api, kubeconfig: Path, namespace: str, account: str, directory: Path) -> Path:
    """A kubeconfig for the API server of `kubeconfig` with a TokenRequest token of ServiceAccount `account`: what
    istiod's in-cluster config would hold."""
    from kubernetes import client, config

    request = client.AuthenticationV1TokenRequest(spec={"expirationSeconds": TOKEN_SECONDS})
    token = client.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request).status.token
    connection = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=connection)
    cluster = {"server": connection.host}
    if connection.ssl_ca_cert:
        cluster["certificate-authority"] = str(connection.ssl_ca_cert)
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "istiod", "context": {"cluster": "cluster", "user": account}}],
        "current-context": "istiod",
    }
    path = directory / "kubeconfig"
    write_private(path, yaml.safe_dump(document).encode())
    return path
