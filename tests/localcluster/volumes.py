"""A container's volumes as the kubelet mounts them, written as files under a process's working directory: the
processes that stand in for containers (istiod, pilot-agent, the echo app) run with that directory as their working
directory, and Istio's binaries read their mounts relative to it (`./var/run/secrets/...`, `./etc/cacerts`)."""

import contextlib
import os
from base64 import b64decode
from pathlib import Path

TOKEN_SECONDS = 4 * 3600


class NotYet(RuntimeError):
    """A volume's source does not exist yet (the kubelet keeps such a pod in ContainerCreating)."""


def write_volumes(core, namespace: str, pod_spec, container, directory: Path, pod=None):
    """Secret, ConfigMap and emptyDir volumes of `container`; with `pod` (a V1Pod) also downward API files and
    projected ServiceAccount tokens bound to it. A missing optional source is skipped, a missing required one raises
    NotYet."""
    volumes = {v.name: v for v in pod_spec.volumes or []}
    for mount in container.volume_mounts or []:
        volume = volumes[mount.name]
        target = directory / mount.mount_path.lstrip("/")
        files = _volume_files(core, namespace, volume, pod)
        target.mkdir(parents=True, exist_ok=True)
        for path, data in files.items():
            (target / path).parent.mkdir(parents=True, exist_ok=True)
            write_private(target / path, data)


def _volume_files(core, namespace: str, volume, pod) -> dict:
    from kubernetes.client.rest import ApiException

    try:
        if volume.secret:
            return _secret_files(core, namespace, volume.secret.secret_name)
        if volume.config_map:
            return _config_map_files(core, namespace, volume.config_map.name, volume.config_map.items)
        if pod is not None and volume.downward_api:
            return {item.path: _downward_file(pod, item.field_ref.field_path) for item in volume.downward_api.items}
        if pod is not None and volume.projected:
            return _projected_files(core, volume.projected.sources, pod)
    except ApiException as error:
        source = volume.secret or volume.config_map
        if error.status != 404:
            raise
        if source is not None and source.optional:
            return {}
        raise NotYet(f"volume {volume.name}: {error.reason} ({source})") from error
    return {}  # emptyDir, or a source this harness does not provide (see the callers' docstrings)


def _secret_files(core, namespace: str, name: str) -> dict:
    secret = core.read_namespaced_secret(name, namespace)
    return {key: b64decode(value) for key, value in (secret.data or {}).items()}


def _config_map_files(core, namespace: str, name: str, items=None) -> dict:
    data = core.read_namespaced_config_map(name, namespace).data or {}
    if items:
        return {item.path: data[item.key].encode() for item in items if item.key in data}
    return {key: value.encode() for key, value in data.items()}


def _projected_files(core, sources, pod) -> dict:
    files = {}
    for source in sources:
        if source.service_account_token:
            files[source.service_account_token.path] = _token(core, pod, source.service_account_token).encode()
        elif source.config_map:
            name = source.config_map.name
            files.update(_config_map_files(core, pod.metadata.namespace, name, source.config_map.items))
    return files


def _token(core, pod, projection) -> str:
    """A TokenRequest token of the pod's ServiceAccount, bound to the pod, for the projection's audience."""
    from kubernetes import client

    spec = {
        "audiences": [projection.audience] if projection.audience else None,
        "expirationSeconds": projection.expiration_seconds or TOKEN_SECONDS,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid},
    }
    request = client.AuthenticationV1TokenRequest(spec=spec)
    account = pod.spec.service_account_name or "default"
    return core.create_namespaced_service_account_token(account, pod.metadata.namespace, request).status.token


def _downward_file(pod, field_path: str) -> bytes:
    """metadata.labels / metadata.annotations in the downward API's file format: one `key="value"` line each."""
    values = {"metadata.labels": pod.metadata.labels, "metadata.annotations": pod.metadata.annotations}[field_path]
    lines = [f'{key}="{_quoted(value)}"' for key, value in sorted((values or {}).items())]
    return "\n".join(lines).encode()


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_private(path: Path, data: bytes):
    """Writes a file only its owner can read, from its creation on (CA keys, tokens)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as file:
        file.write(data)
