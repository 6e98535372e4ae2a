# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One writing run at a time per cluster: the guards (a namespace belongs to one tenant, selectors never overlap, a
tag has one revision, a nodePort one gateway) check and then write, so two runs in parallel could each pass before
the other wrote. A run that would change something holds the Lease `kube-system/meshops-istio-claims` from its last
check to its last write; another run waits for it, then checks against what the first one wrote.

The holder renews the Lease every RENEW_SECONDS. A run that died leaves it to expire LEASE_SECONDS after its last
renewal, or at once when it ran on the same host and its process is gone; the next run then takes it over with an
update conditional on the resourceVersion it read, so two waiting runs never both take it. A run that changes
nothing never takes the lock, so a no-op run still writes nothing."""

from __future__ import annotations

import datetime
import os
import socket
import threading
import uuid

from .client import ApiError
from .cluster import Cluster, api_message, resource
from .errors import EngineError, MeshopsError, Refusal
from .kinds import KINDS

LEASE_NAME = "meshops-istio-claims"
LEASE_NAMESPACE = "kube-system"
LEASE_SECONDS = 60
RENEW_SECONDS = 15
HOST_ANNOTATION = "meshops.io/holder-host"
PID_ANNOTATION = "meshops.io/holder-pid"


def holder_identity(module_name: str) -> str:
    """Who holds the lock, as another run's message shows it: module, host, process and a random suffix."""
    return f"{module_name} on {socket.gethostname()} pid {os.getpid()} ({uuid.uuid4().hex[:8]})"


class ClaimsLock:
    """`with ClaimsLock(cluster, identity, timeout):` holds the Lease, waiting up to `timeout` seconds for it."""

    def __init__(self, cluster: Cluster, identity: str, timeout: float, now=None):
        self.cluster = cluster
        self.identity = identity
        self.timeout = timeout
        self.now = now or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.other = None  # the Lease as last seen held by another run
        self._stop = threading.Event()
        self._renewer = None

    def __enter__(self):
        if not self.cluster.poll(self.try_acquire, self.timeout):
            raise Refusal(self._held_message())
        self._renewer = threading.Thread(target=self._renew_until_stopped, daemon=True)
        self._renewer.start()
        return self

    def __exit__(self, exc_type, *_):
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self.release()
        except MeshopsError:
            if exc_type is None:
                raise  # else the run's own error says more; the Lease expires on its own

    def try_acquire(self) -> bool:
        """Take the Lease if it is free, expired or ours; False while another run holds it."""
        live = self.cluster.get("Lease", LEASE_NAME, LEASE_NAMESPACE)
        if live is None:
            return self._write("create", self._lease())
        spec = live.get("spec") or {}
        if spec.get("holderIdentity") == self.identity:
            return True
        if spec.get("holderIdentity") and not self._expired(spec) and not _holder_gone(live):
            self.other = spec
            return False
        return self._write("replace", self._lease(live))

    def release(self):
        """Give the Lease up if this run still holds it (a delete conditional on what was read)."""
        live = self.cluster.get("Lease", LEASE_NAME, LEASE_NAMESPACE)
        if live is None or (live.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        preconditions = {"resourceVersion": live["metadata"]["resourceVersion"]}
        try:
            with self.cluster.reaching():
                self.cluster.client.delete(
                    _lease_resource(), name=LEASE_NAME, namespace=LEASE_NAMESPACE,
                    body={"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": preconditions},
                )  # fmt: skip
        except ApiError:
            pass  # renewed or taken over meanwhile: it expires on its own

    def _renew_until_stopped(self):
        while not self._stop.wait(RENEW_SECONDS):
            try:
                live = self.cluster.get("Lease", LEASE_NAME, LEASE_NAMESPACE)
                if live and (live.get("spec") or {}).get("holderIdentity") == self.identity:
                    self._write("replace", self._lease(live, renewing=True))
            except Exception:  # noqa: BLE001 - a failed renewal only shortens the lock; the run goes on
                pass

    def _lease(self, live: dict | None = None, renewing: bool = False) -> dict:
        now = _micro_time(self.now())
        spec = dict((live or {}).get("spec") or {}) if renewing else {}
        spec.update({"holderIdentity": self.identity, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": now})
        if not renewing:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = ((live or {}).get("spec") or {}).get("leaseTransitions", 0) + (1 if live else 0)
        metadata = {"name": LEASE_NAME, "namespace": LEASE_NAMESPACE, "annotations": _holder_process()}
        if live is not None:
            metadata["resourceVersion"] = live["metadata"]["resourceVersion"]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _write(self, verb: str, lease: dict) -> bool:
        """Create or replace the Lease; False when another run got there first (409)."""
        try:
            with self.cluster.reaching():
                if verb == "create":
                    self.cluster.client.create(_lease_resource(), body=lease, namespace=LEASE_NAMESPACE)
                else:
                    self.cluster.client.replace(
                        _lease_resource(), body=lease, name=LEASE_NAME, namespace=LEASE_NAMESPACE
                    )
        except ApiError as error:
            if error.status == 409:
                return False
            raise EngineError(
                f"Cannot take the lock Lease {LEASE_NAMESPACE}/{LEASE_NAME}{self.cluster.where}: "
                f"{api_message(error, 'update' if verb == 'replace' else verb, KINDS['Lease'], LEASE_NAMESPACE)}"
            ) from error
        return True

    def _expired(self, spec: dict) -> bool:
        renewed = _parse_time(spec.get("renewTime") or spec.get("acquireTime"))
        duration = datetime.timedelta(seconds=spec.get("leaseDurationSeconds") or LEASE_SECONDS)
        return renewed is None or renewed + duration < self.now()

    def _held_message(self) -> str:
        other = self.other or {}
        return (
            f"another meshops.istio run ({other.get('holderIdentity', 'unknown')}) holds the lock Lease "
            f"{LEASE_NAMESPACE}/{LEASE_NAME}{self.cluster.where} since {other.get('acquireTime', 'unknown')}; "
            f"waited {self.timeout:.0f} s (lock_timeout). Run again when it has finished; if that run is gone, the "
            f"Lease expires {LEASE_SECONDS} s after its last renewal"
        )


def _holder_process() -> dict:
    return {HOST_ANNOTATION: socket.gethostname(), PID_ANNOTATION: str(os.getpid())}


def _holder_gone(lease: dict) -> bool:
    """The holder ran on this host and its process has exited (it failed or was killed without giving the lock
    back): no need to wait for the Lease to expire."""
    annotations = lease["metadata"].get("annotations") or {}
    pid = annotations.get(PID_ANNOTATION) or ""
    if annotations.get(HOST_ANNOTATION) != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _lease_resource():
    return resource(KINDS["Lease"])


def _micro_time(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        try:
            return datetime.datetime.strptime(text.replace("Z", "+0000"), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            return None
