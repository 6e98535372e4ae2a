"""transport.RetryingClient: a timeout on every call, retries with backoff for throttling, server errors and dropped
connections, and errors that say which of those it was. The client is a scripted stand-in; sleeping is recorded,
never done."""

import json

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster
from ansible_collections.meshops.istio.plugins.module_utils.errors import ClusterUnreachable
from ansible_collections.meshops.istio.plugins.module_utils.transport import MAX_DELAY, RetryingClient
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import api_exception
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ReadTimeoutError


def api_error(status: int, retry_after: str | None = None):
    error = ApiException(status=status, reason="scripted")
    error.body = json.dumps({"kind": "Status", "message": f"status {status}"})
    error.headers = {"Content-Type": "application/json", **({"Retry-After": retry_after} if retry_after else {})}
    return api_exception(error)


class Scripted:
    """A client whose `get` fails with the scripted errors in turn, then answers 'ok'."""

    configuration = type("Configuration", (), {"host": "https://203.0.113.7:6443"})()

    def __init__(self, *failures):
        self.failures = list(failures)
        self.calls = []

    def get(self, *args, **kwargs):
        self.calls.append(kwargs)
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def retrying(client, retries=4):
    slept = []
    return RetryingClient(client, timeout=30, retries=retries, sleep=slept.append, jitter=lambda: 0.5), slept


def test_every_call_carries_the_timeout_and_a_success_is_not_retried():
    client = Scripted()
    wrapped, slept = retrying(client)
    assert wrapped.get("resource", name="x") == "ok"
    assert client.calls == [{"name": "x", "_request_timeout": (10, 30)}]
    assert slept == []
    assert wrapped.configuration.host == client.configuration.host  # everything else is the client's own


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_retried_with_exponential_backoff(status):
    client = Scripted(api_error(status), api_error(status), api_error(status))
    wrapped, slept = retrying(client)
    assert wrapped.get("resource") == "ok"
    assert slept == [0.5, 1.0, 2.0]


def test_retry_after_is_honoured_and_capped():
    client = Scripted(api_error(429, retry_after="3"), api_error(429, retry_after="3600"))
    wrapped, slept = retrying(client)
    assert wrapped.get("resource") == "ok"
    assert slept == [3.0, MAX_DELAY]


@pytest.mark.parametrize("status", [400, 403, 404, 409, 422])
def test_client_errors_are_not_retried(status):
    client = Scripted(api_error(status))
    wrapped, slept = retrying(client)
    with pytest.raises(Exception) as raised:
        wrapped.get("resource")
    assert raised.value.status == status and slept == [] and len(client.calls) == 1


def test_a_server_that_keeps_throttling_fails_after_the_retries_with_its_status():
    client = Scripted(*[api_error(503)] * 10)
    wrapped, slept = retrying(client, retries=2)
    with pytest.raises(Exception) as raised:
        wrapped.get("resource")
    assert raised.value.status == 503 and len(client.calls) == 3 and len(slept) == 2


def test_a_reset_connection_is_retried_and_then_reported_with_the_attempts():
    reset = ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    cluster = Cluster(retrying(Scripted(*[reset] * 5), retries=2)[0])
    with pytest.raises(ClusterUnreachable) as raised:
        cluster.get("Namespace", "x")
    message = str(raised.value)
    assert "the connection was dropped (reset) after 3 attempts" in message
    assert message.startswith("Cannot reach the Kubernetes API at https://203.0.113.7:6443")


def test_a_stalled_server_is_reported_as_a_timeout_naming_request_timeout():
    stall = ReadTimeoutError(None, "/api/v1/namespaces/x", "Read timed out. (read timeout=30)")
    cluster = Cluster(retrying(Scripted(*[stall] * 5), retries=1)[0])
    with pytest.raises(ClusterUnreachable) as raised:
        cluster.get("Namespace", "x")
    assert "no answer within the timeout (ReadTimeout) after 2 attempts" in str(raised.value)
    assert "request_timeout" in str(raised.value)


def test_no_connection_at_all_is_reported_apart_from_a_dropped_one():
    refused = MaxRetryError(None, "/api", NewConnectionError(None, "Connection refused"))
    cluster = Cluster(retrying(Scripted(*[refused] * 5), retries=1)[0])
    with pytest.raises(ClusterUnreachable) as raised:
        cluster.get("Namespace", "x")
    assert "no connection (MaxRetryError) after 2 attempts" in str(raised.value)
    assert "dropped" not in str(raised.value)
