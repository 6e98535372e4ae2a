# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What istio_remote_secret is asked for: one frozen spec built from the module's parameters (defaults resolved
here, nowhere else), and the checks its argument spec cannot express (pure)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from urllib.parse import urlsplit

from ..errors import refuse
from ..names import DNS_LABEL, DNS_SUBDOMAIN
from ..values import cluster_name_errors

DEFAULT_TOKEN_LIFETIME = 365 * 24 * 3600
# What the API server accepts in a TokenRequest.
MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME = 600, 2**32


@dataclass(frozen=True)
class RemoteSecretSpec:
    cluster_name: str  # the remote cluster's Istio cluster ID
    namespace: str  # where the primary's istiod reads remote secrets
    reader_namespace: str
    service_account: str
    token_type: str  # "secret" (a token Secret) or "bound" (a TokenRequest bound to a Secret)
    # Seconds a bound token lives. None for a token Secret's token, which does not expire; given with
    # token_type secret it stays set, so that validate() refuses it.
    token_lifetime: int | None
    server: str | None  # the remote API server's address as the primary reaches it; None: the remote's own
    allow_loopback: bool
    rotate: bool
    state: str
    wait_timeout: int
    force_conflicts: bool

    @classmethod
    def from_params(cls, params: dict) -> RemoteSecretSpec:
        lifetime = params["token_lifetime"]
        if lifetime is None and params["token_type"] == "bound":
            lifetime = DEFAULT_TOKEN_LIFETIME
        given = {f.name: params[f.name] for f in fields(cls) if f.name != "token_lifetime"}
        return cls(**given, token_lifetime=lifetime)

    @property
    def bound(self) -> bool:
        return self.token_type == "bound"

    @property
    def reader_id(self) -> str:
        """Names the reader (its ServiceAccount) in the owner label of its RBAC objects."""
        return f"{self.reader_namespace}.{self.service_account}"


def validate(spec: RemoteSecretSpec) -> None:
    """Refuse, naming every bad parameter at once, what the argument spec lets through."""
    errors = cluster_name_errors(spec.cluster_name)
    for parameter, value in (("namespace", spec.namespace), ("reader_namespace", spec.reader_namespace)):
        if not DNS_LABEL.match(value) or len(value) > 63:
            errors.append(f"{parameter} {value!r} must be a DNS-1123 label; give an existing namespace's name")
    if not DNS_SUBDOMAIN.match(spec.service_account) or len(spec.service_account) > 253:
        errors.append(f"service_account {spec.service_account!r} must be a DNS-1123 subdomain")
    elif len(spec.reader_id) > 63:
        errors.append(
            f"reader_namespace and service_account joined by a dot ({spec.reader_id!r}) must fit the 63 "
            "characters of a label value; shorten service_account"
        )
    errors += _token_errors(spec)
    if spec.server and _server_problem(spec.server):
        errors.append(f"server {spec.server!r} {_server_problem(spec.server)}")
    if spec.rotate and spec.state == "absent":
        errors.append("rotate needs state: present (state: absent revokes every token anyway); drop rotate")
    refuse(errors)


def _token_errors(spec: RemoteSecretSpec) -> list:
    lifetime = spec.token_lifetime
    if lifetime is None:
        return []
    if not spec.bound:
        return [
            "token_lifetime only applies to token_type: bound (a token Secret does not expire); remove "
            "token_lifetime or set token_type: bound"
        ]
    if not MIN_TOKEN_LIFETIME <= lifetime <= MAX_TOKEN_LIFETIME:
        return [
            f"token_lifetime {lifetime} must be between {MIN_TOKEN_LIFETIME} seconds and 2^32 seconds, what the "
            "API server accepts for a TokenRequest"
        ]
    return []


def _server_problem(server: str) -> str | None:
    parts = urlsplit(server)
    if parts.scheme != "https" or not parts.hostname:
        return "must be an https:// URL of the remote API server, such as https://10.0.0.5:6443"
    return None
