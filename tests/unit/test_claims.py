"""claims.ClaimsLock against a stand-in API server that keeps one Lease with resourceVersion preconditions (409 on
a stale version or an existing name), as the real one does."""

import datetime
import json
from types import SimpleNamespace

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.claims import LEASE_SECONDS, ClaimsLock
from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import api_exception

NOW = datetime.datetime(2026, 12, 4, 18, 0, tzinfo=datetime.timezone.utc)


def api_error(status):
    error = ApiException(status=status, reason="fake")
    error.body = json.dumps({"kind": "Status", "message": f"status {status}"})
    error.headers = {}
    return api_exception(error)


class Answer(SimpleNamespace):
    def to_dict(self):
        return json.loads(json.dumps(self.obj))


class LeaseServer:
    configuration = SimpleNamespace(host="https://203.0.113.7:6443")

    def __init__(self, lease=None):
        self.lease = lease
        self.version = 1

    def get(self, resource, name=None, namespace=None, serializer=None, **_):
        if self.lease is None:
            raise api_error(404)
        return serializer(self, Answer(obj=self.lease).to_dict()) if serializer else Answer(obj=self.lease)

    def create(self, resource, body, namespace, **_):
        if self.lease is not None:
            raise api_error(409)
        return Answer(obj=self._store(body))

    def replace(self, resource, body, name, namespace, **_):
        if self.lease is None or body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise api_error(409)
        return Answer(obj=self._store(body))

    def delete(self, resource, name, namespace, body=None, **_):
        if body["preconditions"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise api_error(409)
        self.lease = None

    def _store(self, body):
        self.version += 1
        self.lease = {**body, "metadata": {**body["metadata"], "resourceVersion": str(self.version)}}
        return self.lease


def held_by(holder, renewed_ago: float, transitions=0):
    renewed = (NOW - datetime.timedelta(seconds=renewed_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    spec = {"holderIdentity": holder, "leaseDurationSeconds": LEASE_SECONDS, "acquireTime": renewed,
            "renewTime": renewed, "leaseTransitions": transitions}  # fmt: skip
    return {"metadata": {"name": "meshops-istio-claims", "namespace": "kube-system", "resourceVersion": "1"},
            "spec": spec}  # fmt: skip


def lock(server, timeout=0.0):
    return ClaimsLock(Cluster(server), "us", timeout, now=lambda: NOW)


def test_a_free_lock_is_taken_held_and_given_back():
    server = LeaseServer()
    with lock(server):
        assert server.lease["spec"]["holderIdentity"] == "us"
        assert server.lease["spec"]["leaseDurationSeconds"] == LEASE_SECONDS
    assert server.lease is None


def test_a_lock_another_run_holds_is_waited_for_then_refused_naming_the_holder():
    server = LeaseServer(held_by("istio_tenant on host-a pid 7", renewed_ago=5))
    with pytest.raises(Refusal) as raised, lock(server):
        pass
    message = str(raised.value)
    assert "istio_tenant on host-a pid 7" in message and "lock_timeout" in message
    assert server.lease["spec"]["holderIdentity"] == "istio_tenant on host-a pid 7"


def test_an_expired_lock_is_taken_over():
    server = LeaseServer(held_by("a run that died", renewed_ago=LEASE_SECONDS + 1, transitions=2))
    candidate = lock(server)
    assert candidate.try_acquire()
    assert server.lease["spec"]["holderIdentity"] == "us"
    assert server.lease["spec"]["leaseTransitions"] == 3


def test_two_runs_taking_over_the_same_expired_lock_cannot_both_win():
    server = LeaseServer(held_by("a run that died", renewed_ago=LEASE_SECONDS + 1))
    first, second = lock(server), ClaimsLock(Cluster(server), "them", 0.0, now=lambda: NOW)
    stale = server.get(None).to_dict()
    assert first.try_acquire()
    server.get = lambda *a, **k: stale  # the second read the Lease before the first took it
    assert not second._write("replace", second._lease(stale))
    assert server.lease["spec"]["holderIdentity"] == "us"


def test_release_leaves_a_lock_another_run_took_meanwhile():
    server = LeaseServer()
    held = lock(server)
    assert held.try_acquire()
    server.lease = held_by("them", renewed_ago=0)
    held.release()
    assert server.lease["spec"]["holderIdentity"] == "them"


def test_a_lock_whose_holder_process_on_this_host_is_gone_is_taken_at_once():
    import os
    import socket

    gone = held_by("a run that was killed", renewed_ago=1)
    dead_pid = _exited_pid()
    gone["metadata"]["annotations"] = {
        "meshops.io/holder-host": socket.gethostname(),
        "meshops.io/holder-pid": dead_pid,
    }
    server = LeaseServer(gone)
    assert lock(server).try_acquire()
    alive = held_by("a run still going", renewed_ago=1)
    alive["metadata"]["annotations"] = {"meshops.io/holder-host": socket.gethostname(),
                                        "meshops.io/holder-pid": str(os.getpid())}  # fmt: skip
    assert not lock(LeaseServer(alive)).try_acquire()


def _exited_pid() -> str:
    import subprocess

    process = subprocess.Popen(["true"])
    process.wait()
    return str(process.pid)
