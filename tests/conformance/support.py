"""What the conformance tests share (and the real-pods tier): waiting for istiod to converge, ServiceAccount tokens,
the pinned version, the xDS/CSR client."""

import subprocess
import time
from pathlib import Path

import pytest
from localcluster.cluster import REPO_ROOT


def wait_for(what: str, check, timeout: float = 60.0, interval: float = 0.3):
    """Polls check() until it returns something truthy and returns that; fails naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s (last value {value!r})")
        time.sleep(interval)


def service_account_token(api, namespace: str, account: str, audiences=None) -> str:
    """A TokenRequest token (10 minutes) of a ServiceAccount, as a sidecar's projected token would be."""
    from kubernetes import client

    spec = {"expirationSeconds": 600, **({"audiences": audiences} if audiences else {})}
    request = client.AuthenticationV1TokenRequest(spec=spec)
    return client.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request).status.token


def istio_version() -> str:
    """The pinned Istio version (what pilot-discovery reports), from hack/versions.env."""
    for line in (REPO_ROOT / "hack" / "versions.env").read_text().splitlines():
        if line.startswith("ISTIO_VERSION="):
            return line.split("=", 1)[1]
    raise AssertionError("ISTIO_VERSION missing from hack/versions.env")


def build_xdsclient() -> Path:
    """hack/xdsclient, built into its cache directory when missing; the tests that need it skip without Go."""
    build = REPO_ROOT / "hack" / "build-xdsclient.sh"
    result = subprocess.run(["bash", str(build)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        if "go: command not found" in result.stderr:
            pytest.skip("hack/xdsclient cannot be built: no Go toolchain on PATH (see README, Go 1.26+)")
        raise AssertionError(f"building hack/xdsclient failed:\n{result.stderr}")
    return Path(result.stdout.strip().splitlines()[-1])
