# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A read-only view of one cluster: reads, lists, reviews and token requests, the one `poll` every wait uses, and
the translation of client errors into the collection's error tree. The writing Engine works through a Cluster."""

from __future__ import annotations

import contextlib
import os
import time

from .client import ApiError, NotFoundError, Resource, TransportError, kubeconfig_for
from .errors import EngineError
from .kinds import KINDS, Kind
from .transport import unreachable

# Polls are quick at first (a new CRD is Established within milliseconds, a Deployment within seconds), then
# once a second.
POLL_SECONDS = (0.05, 0.1, 0.2, 0.5, 1.0)
# The process that started this module (ansible's worker): when it is gone, nobody waits for our answer.
_STARTED_BY = os.getppid()


# The ClusterRoles the collection ships (roles/rbac, playbooks/rbac.yml, docs/rbac.md).
INSTALLER_ROLE = "meshops-istio-installer"
VIEWER_ROLE = "meshops-istio-viewer"
_READ_VERBS = ("get", "list")


def api_message(error, verb: str | None = None, resource: Kind | str | None = None, namespace: str | None = None):
    """The API server's own sentence for an ApiError (its Status message), else the error's text. A 403 Forbidden on
    `verb` of `resource` (a Kind, or a plural such as "serviceaccounts/token") says which permission is missing and
    which shipped ClusterRole grants it, followed by the server's sentence."""
    said = getattr(error, "summary", lambda: str(error))()
    if getattr(error, "status", None) != 403 or verb is None:
        return said
    if isinstance(resource, Kind):
        resource = f"{resource.plural}.{resource.group}" if resource.group else resource.plural
    scope = f"in namespace {namespace}" if namespace else "at the cluster scope"
    roles = f"{INSTALLER_ROLE} (or {VIEWER_ROLE} for verify.yml and the *_info modules)"
    role = roles if verb in _READ_VERBS else INSTALLER_ROLE
    return (
        f"forbidden: this account may not {verb} {resource} {scope}. Bind the ClusterRole {role} that the collection "
        f"ships (playbooks/rbac.yml, see docs/rbac.md) to it. The API server said: {said}"
    )


def as_dict(_client, data: dict) -> dict:
    """The kubernetes library's `serializer` that keeps the API server's JSON as it came: wrapping it in
    ResourceInstance objects and unwrapping them with to_dict() cost more CPU than the rest of a no-op run's reads."""
    return data


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
        # The report of every Engine writing here, so that a failure after some writes still reports them.
        self.reports = []
        # True while a module rehearses its plan as a dry run before running it (runner.rehearse_then_run).
        self.rehearsing = False
        # True while the rehearsal only plans: engines send no write, not even a dry run, and take each object as
        # they would send it for the API server's answer.
        self.planning = False
        self._username = None

    @property
    def host(self) -> str:
        return self.client.configuration.host

    def kubeconfig(self) -> dict:
        """A kubeconfig reaching this API server with this client's credentials, for istioctl (it holds them: write
        it only to a private file). The client is a RetryingClient around a DynamicClient around an ApiClient."""
        return kubeconfig_for(self.client.client.client)

    @contextlib.contextmanager
    def reaching(self):
        """Turn a transport failure (refused, reset, timed out) into ClusterUnreachable naming this cluster."""
        try:
            yield
        except TransportError as error:
            raise unreachable(self.host, error, self.parameter) from error

    def get(self, kind_name: str, name: str, namespace: str | None = None) -> dict | None:
        """The object, or None when it does not exist."""
        try:
            with self.reaching():
                return self.client.get(resource(KINDS[kind_name]), name=name, namespace=namespace, serializer=as_dict)
        except NotFoundError:
            return None
        except ApiError as error:
            message = api_message(error, "get", KINDS[kind_name], namespace)
            raise EngineError(f"Cannot read {kind_name} {name}{self.where}: {message}") from error

    def list_objects(
        self,
        kind_name: str,
        label_selector: str | None = None,
        namespace: str | None = None,
        field_selector: str | None = None,
    ) -> list:
        kind = KINDS[kind_name]
        by_field = {"field_selector": field_selector} if field_selector else {}
        try:
            with self.reaching():
                result = self.client.get(
                    resource(kind), namespace=namespace, label_selector=label_selector, serializer=as_dict, **by_field
                )
        except NotFoundError:
            # The API server does not serve the kind (its CRD is not installed, e.g. on a new cluster whose
            # control plane a check-mode run only dry-ran): there is no object of it.
            return []
        except ApiError as error:
            message = api_message(error, "list", kind, namespace)
            raise EngineError(f"Cannot list {kind.plural}{self.where}: {message}") from error
        return [dict(item, kind=kind.kind, apiVersion=kind.api_version) for item in result.get("items") or []]

    def post(self, path: str, body: dict) -> dict:
        """Create a review or request (TokenReview, SubjectAccessReview, TokenRequest, ...) and return its status."""
        try:
            with self.reaching():
                return self.client.request("post", path, body=body).to_dict().get("status") or {}
        except ApiError as error:
            message = api_message(error, "create", _resource_of(path))
            raise EngineError(f"Cannot send {body['kind']}{self.where}: {message}") from error

    def username(self) -> str:
        """The user name the API server sees for this client's credentials, from a SelfSubjectReview (which stores
        nothing), asked once: a module's rehearsals and its run share the answer."""
        if self._username is None:
            review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            status = self.post("/apis/authentication.k8s.io/v1/selfsubjectreviews", review)
            self._username = (status.get("userInfo") or {}).get("username") or ""
        return self._username

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
                f"{api_message(error, 'create', 'serviceaccounts/token', namespace)}"
            ) from error

    def latest_warnings(self, namespace: str, name_prefix: str, limit: int = 3) -> list:
        """The latest Warning events of the objects in `namespace` whose names start with `name_prefix` (a
        Deployment's ReplicaSets and Pods), newest last, one per object and reason: 'Pod x: Reason: message'."""
        try:
            with self.reaching():
                events = self.client.get(_events(), namespace=namespace, field_selector="type=Warning").to_dict()
        except ApiError:
            return []  # the events only explain a failure; never fail for want of them
        return warning_lines(events.get("items") or [], name_prefix, limit)

    @property
    def where(self) -> str:
        """` on <parameter>` for a second cluster, to follow an object's name in a message; else empty."""
        return f" on {self.parameter}" if self.parameter else ""

    @staticmethod
    def poll(predicate, timeout: float) -> bool:
        """Call `predicate` until it returns true (True) or `timeout` seconds have passed (False). Stops with an
        EngineError when the ansible-playbook that started the module is gone."""
        deadline, delays = time.monotonic() + timeout, _delays()
        while True:
            if predicate():
                return True
            if time.monotonic() >= deadline:
                return False
            if os.getppid() != _STARTED_BY:
                raise EngineError("the ansible process that started this module is gone; stopped waiting")
            time.sleep(next(delays))


def _resource_of(path: str) -> str:
    """`tokenreviews.authentication.k8s.io` from `/apis/authentication.k8s.io/v1/tokenreviews`."""
    parts = path.strip("/").split("/")
    return f"{parts[-1]}.{parts[1]}" if parts[0] == "apis" else parts[-1]


def _events():
    """Core v1 Events: read only to explain a failed wait, not a kind the collection writes (kinds.KINDS)."""
    return Resource(prefix="api", group="", api_version="v1", kind="Event", namespaced=True, name="events")


def warning_lines(events: list, name_prefix: str, limit: int) -> list:
    """`limit` lines of the newest Warning events about objects named `name_prefix`..., newest last."""
    latest = {}
    for event in sorted(events, key=_event_time):
        involved = event.get("involvedObject") or {}
        if event.get("type") == "Warning" and (involved.get("name") or "").startswith(name_prefix):
            key = (involved.get("kind"), involved.get("name"), event.get("reason"))
            latest.pop(key, None)
            latest[key] = f"{key[0]} {key[1]}: {key[2]}: {(event.get('message') or '').strip()}"
    return list(latest.values())[-limit:]


def _event_time(event: dict) -> str:
    """Core v1 events carry lastTimestamp, or only eventTime when written through events.k8s.io; RFC 3339 sorts."""
    return str(event.get("lastTimestamp") or event.get("eventTime") or event["metadata"].get("creationTimestamp") or "")


def _delays():
    """Seconds to sleep between polls: POLL_SECONDS, then its last value for good."""
    yield from POLL_SECONDS
    while True:
        yield POLL_SECONDS[-1]
