# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A read-only view of one cluster: reads, lists, reviews and token requests, the one `poll` every wait uses, and
the translation of client errors into the collection's error tree. The writing Engine works through a Cluster."""

from __future__ import annotations

import contextlib
import time

from .client import ApiError, NotFoundError, Resource, TransportError
from .errors import ClusterUnreachable, EngineError
from .kinds import KINDS, Kind

# Polls are quick at first (a new CRD is Established within milliseconds, a Deployment within seconds), then
# once a second.
POLL_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)


def api_message(error) -> str:
    """The API server's own sentence for an ApiError (its Status message), else the error's text."""
    return getattr(error, "summary", lambda: str(error))()


def resource(kind: Kind):
    """The kubernetes library's Resource for one of our kinds, without API discovery."""
    return Resource(
        prefix="apis" if kind.group else "api",
        group=kind.group,
        api_version=kind.version,
        kind=kind.kind,
        namespaced=kind.namespaced,
        name=kind.plural,
    )


class Cluster:
    """One API server. `parameter` names the module option that points at it when it is not the module's own
    connection (e.g. `remote`), so that errors say which cluster failed."""

    def __init__(self, client, parameter: str | None = None):
        self.client = client
        self.parameter = parameter

    @property
    def host(self) -> str:
        return self.client.configuration.host

    @contextlib.contextmanager
    def reaching(self):
        """Turn a transport failure (refused, reset, timed out) into ClusterUnreachable naming this cluster."""
        try:
            yield
        except TransportError as error:
            raise ClusterUnreachable(self.host, error, self.parameter) from error

    def get(self, kind_name: str, name: str, namespace: str | None = None) -> dict | None:
        """The object, or None when it does not exist."""
        try:
            with self.reaching():
                return self.client.get(resource(KINDS[kind_name]), name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        except ApiError as error:
            raise EngineError(f"Cannot read {kind_name} {name}{self.where}: {api_message(error)}") from error

    def list_objects(self, kind_name: str, label_selector: str | None = None, namespace: str | None = None) -> list:
        kind = KINDS[kind_name]
        try:
            with self.reaching():
                result = self.client.get(resource(kind), namespace=namespace, label_selector=label_selector)
        except ApiError as error:
            raise EngineError(f"Cannot list {kind.plural}{self.where}: {api_message(error)}") from error
        return [dict(item.to_dict(), kind=kind.kind, apiVersion=kind.api_version) for item in result.items]

    def post(self, path: str, body: dict) -> dict:
        """Create a review or request (TokenReview, SubjectAccessReview, TokenRequest, ...) and return its status."""
        try:
            with self.reaching():
                return self.client.request("post", path, body=body).to_dict().get("status") or {}
        except ApiError as error:
            raise EngineError(f"Cannot send {body['kind']}{self.where}: {api_message(error)}") from error

    def request_token(self, namespace: str, service_account: str, lifetime: int, bound_to: dict) -> dict:
        """A TokenRequest for a ServiceAccount, bound to an object in its namespace (deleting that object revokes
        the token). Returns the TokenRequest's status: token and expirationTimestamp. Never call in check mode:
        the server would issue a real token."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": lifetime, "boundObjectRef": bound_to},
        }
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token"
        try:
            with self.reaching():
                return self.client.request("post", path, body=body).to_dict()["status"]
        except ApiError as error:
            raise EngineError(
                f"Cannot request a token for ServiceAccount {namespace}/{service_account}{self.where}: "
                f"{api_message(error)}"
            ) from error

    @property
    def where(self) -> str:
        """` on <parameter>` for a second cluster, to follow an object's name in a message; else empty."""
        return f" on {self.parameter}" if self.parameter else ""

    @staticmethod
    def poll(predicate, timeout: float) -> bool:
        """Call `predicate` until it returns true (True) or `timeout` seconds have passed (False)."""
        deadline, delays = time.monotonic() + timeout, _delays()
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(next(delays))


def _delays():
    """Seconds to sleep between polls: POLL_SECONDS, then its last value for good."""
    yield from POLL_SECONDS
    while True:
        yield POLL_SECONDS[-1]
