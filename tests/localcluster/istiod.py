"""Run a real istiod (pilot-discovery) as a local process for a revision the collection installed.

Pods cannot run images here, but istiod can run as a process against the API server. It is configured from the
revision's own Deployment `istiod-<rev>`, the way the kubelet would start its container: the container's args and
env (valueFrom resolved from the pod it would be), the Secret and ConfigMap volumes it mounts written as files
under the instance's working directory (istiod reads `./etc/cacerts` relative to it), and the API credentials of
the Deployment's ServiceAccount (a TokenRequest token), so our RBAC is what istiod gets. It reads the mesh config
`istio-<rev>` and the injector config `istio-sidecar-injector-<rev>` from the API, as it does in the pod, since the
Deployment mounts neither.

What differs from the pod, because a local process is not a pod:
- listen addresses: loopback, on free ports per instance, instead of the container ports;
- KUBECONFIG and --kubeconfig: a kubeconfig with the ServiceAccount's token instead of the in-cluster config;
- volumes at absolute paths (the projected `istio-token`, `/var/run/secrets/...`) are not provided: istiod then
  authenticates CA and xDS clients with TokenReview only, as it does in a pod whose token has no OIDC issuer.
"""

import contextlib
import json
import math
import os
import re
import subprocess
import time
import urllib.request
from base64 import b64decode
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .cluster import _alive, _die_with_parent, _stop_process, binary_dir, free_port

STOP_TIMEOUT = 15.0
TOKEN_SECONDS = 4 * 3600
# Flags the harness sets per instance; the Deployment's own values for them are dropped.
ADDRESS_FLAGS = ("httpAddr", "grpcAddr", "secureGRPCAddr", "httpsAddr", "monitoringAddr")
HARNESS_FLAGS = (*ADDRESS_FLAGS, "ctrlz_port", "kubeconfig")
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


def start_istiod(kubeconfig: Path, revision: str, namespace: str, directory: Path, timeout: float = 120) -> Istiod:
    """Starts istiod for the installed `revision` in `namespace` and returns once it reports /ready.

    The process dies with this Python process. On failure nothing is left running."""
    from kubernetes import client, config

    api = config.new_client_from_config(str(kubeconfig))
    deployment = client.AppsV1Api(api).read_namespaced_deployment(f"istiod-{revision}", namespace)
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    pod = deployment.spec.template.spec
    container = next(c for c in pod.containers if c.name == "discovery")
    account = pod.service_account_name or "default"
    istiod_kubeconfig = _write_service_account_kubeconfig(api, kubeconfig, namespace, account, directory)
    _write_volumes(client.CoreV1Api(api), namespace, pod, container, directory)
    env = {
        **_container_env(container, pod, namespace, f"istiod-{revision}-local"),
        "KUBECONFIG": str(istiod_kubeconfig),
    }
    istiod = Istiod(revision, namespace, directory)
    base_args = [binary_dir() / "pilot-discovery", *_without_harness_flags(container.args or [])]
    base_args.append(f"--kubeconfig={istiod_kubeconfig}")
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
    istiod.pid = _spawn(args, env, istiod.directory, istiod.log)
    try:
        _wait_ready(istiod, timeout)
    except BaseException:
        stop_istiod(istiod)
        raise


def _spawn(args: list, env: dict, directory: Path, log_path: Path) -> int:
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


def _container_env(container, pod, namespace: str, pod_name: str) -> dict:
    """The container's env as the kubelet would set it for a pod of this template."""
    env = {}
    for var in container.env or []:
        source = var.value_from
        if source is None:
            env[var.name] = var.value or ""
        elif source.field_ref:
            env[var.name] = _field_value(source.field_ref.field_path, pod, namespace, pod_name)
        elif source.resource_field_ref:
            env[var.name] = _resource_value(source.resource_field_ref, container)
        else:
            raise IstiodError(f"env {var.name} of istiod's container uses a source the harness does not resolve")
    return env


def _field_value(path: str, pod, namespace: str, pod_name: str) -> str:
    values = {
        "metadata.name": pod_name,
        "metadata.namespace": namespace,
        "spec.serviceAccountName": pod.service_account_name or "default",
        "spec.nodeName": "localhost",
        "status.podIP": "127.0.0.1",
        "status.hostIP": "127.0.0.1",
    }
    if path not in values:
        raise IstiodError(f"fieldRef {path} of istiod's container is not resolved by the harness")
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
        raise IstiodError(f"resourceFieldRef {ref.resource} of istiod's container is not resolved by the harness")
    return str(math.ceil(quantity / parse_quantity(ref.divisor or "1")))


def _write_volumes(core, namespace: str, pod, container, directory: Path):
    """Secret and ConfigMap volumes as the kubelet mounts them, under `directory` (istiod's working directory).
    An optional source that does not exist is skipped, like the kubelet does."""
    from kubernetes.client.rest import ApiException

    volumes = {v.name: v for v in pod.volumes or []}
    for mount in container.volume_mounts or []:
        volume = volumes[mount.name]
        source = volume.secret or volume.config_map
        if source is None:
            continue  # emptyDir and projected tokens: see the module docstring
        name = volume.secret.secret_name if volume.secret else volume.config_map.name
        try:
            files = _secret_files(core, namespace, name) if volume.secret else _config_map_files(core, namespace, name)
        except ApiException as error:
            if error.status == 404 and source.optional:
                continue
            raise
        target = directory / mount.mount_path.lstrip("/")
        target.mkdir(parents=True, exist_ok=True)
        for key, data in files.items():
            _write_private(target / key, data)


def _secret_files(core, namespace: str, name: str) -> dict:
    secret = core.read_namespaced_secret(name, namespace)
    return {key: b64decode(value) for key, value in (secret.data or {}).items()}


def _config_map_files(core, namespace: str, name: str) -> dict:
    config_map = core.read_namespaced_config_map(name, namespace)
    return {key: value.encode() for key, value in (config_map.data or {}).items()}


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
    _write_private(path, yaml.safe_dump(document).encode())
    return path


def _write_private(path: Path, data: bytes):
    """Writes a file only its owner can read, from its creation on (CA keys, tokens)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(data)
