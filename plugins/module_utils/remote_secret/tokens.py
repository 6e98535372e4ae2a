# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reader's tokens on the remote cluster: one for every primary Secret that reads the remote (owner
`meshops.io/remote-token=<pair id>`), either a Secret of type kubernetes.io/service-account-token or an Opaque
Secret that a TokenRequest is bound to. Either way, deleting that Secret revokes the token.

Which token to keep, how to issue a new one and how to revoke the others. Tokens are held in memory and written to
the Secrets; never returned, logged or diffed."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import secrets

from ..engine import Engine
from ..vocabulary import owner_label
from .kubeconfig import decoded_text, secret_name
from .spec import RemoteSecretSpec

TOKEN_OWNER_KIND = "remote-token"
# The token controller needs it on a token Secret; bound-token Secrets carry it too, so that every token Secret
# names the ServiceAccount it belongs to.
SERVICE_ACCOUNT_ANNOTATION = "kubernetes.io/service-account.name"
SERVICE_ACCOUNT_UID_ANNOTATION = "kubernetes.io/service-account.uid"
USED_BY_ANNOTATION = "meshops.io/used-by"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
# Set by kube-controller-manager on a legacy token unused for a year; the API server rejects the token then.
INVALID_TOKEN_LABEL = "kubernetes.io/legacy-token-invalid-since"
# A bound token is re-issued once less than this share of its life is left.
RENEW_SHARE = 1 / 3
# Check mode issues no token (a TokenRequest is not a dry run); the Secret is compared with this one instead.
PENDING_TOKEN = "issued-when-not-in-check-mode"
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the characters Kubernetes uses for generateName
# Not datetime.UTC: modules also run on Python 3.10, which lacks it.
UTC = datetime.timezone.utc  # noqa: UP017


# Pure: names


def pair_id(primary_uid: str, spec: RemoteSecretSpec) -> str:
    """Names one primary Secret's use of the remote (the primary cluster by its kube-system namespace's UID, its
    namespace, the cluster name): each has a token of its own, so that rotating or removing one primary's Secret
    never revokes another primary's access."""
    key = f"{primary_uid}/{spec.namespace}/{spec.cluster_name}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def used_by(primary_uid: str, spec: RemoteSecretSpec) -> str:
    """For people reading the token Secret: which primary Secret holds the token."""
    return f"Secret {spec.namespace}/{secret_name(spec.cluster_name)} in the cluster {primary_uid}"


def token_secret_name(spec: RemoteSecretSpec, suffix: str) -> str:
    kind = "bound" if spec.bound else "token"
    return f"{spec.service_account}-{kind}-{suffix}"


def new_suffix() -> str:
    return "".join(secrets.SystemRandom().choices(SUFFIX_ALPHABET, k=5))


def token_secret(spec: RemoteSecretSpec, name: str, user: str) -> dict:
    """A token Secret the token controller fills in, or, for a bound token, the Secret the token is bound to."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": spec.reader_namespace,
            "annotations": {SERVICE_ACCOUNT_ANNOTATION: spec.service_account, USED_BY_ANNOTATION: user},
        },
        "type": "Opaque" if spec.bound else TOKEN_SECRET_TYPE,
    }


# Pure: live tokens


def token_claims(token: str | None) -> dict | None:
    """A JWT's payload, unverified: only to see which Secret a token we issued is bound to and when it expires."""
    parts = (token or "").split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def expiration(token: str) -> str | None:
    """When a token expires (ISO 8601 UTC), None when it does not (a token Secret's token)."""
    expires = (token_claims(token) or {}).get("exp")
    if not isinstance(expires, int):
        return None
    return datetime.datetime.fromtimestamp(expires, UTC).isoformat()


def _filled_token(secret: dict) -> str | None:
    return decoded_text((secret.get("data") or {}).get("token"))


def _usable_token_secret(secret: dict, spec: RemoteSecretSpec, account: dict) -> bool:
    metadata = secret["metadata"]
    annotations = metadata.get("annotations") or {}
    return (
        secret.get("type") == TOKEN_SECRET_TYPE
        and metadata.get("namespace") == spec.reader_namespace
        and annotations.get(SERVICE_ACCOUNT_ANNOTATION) == spec.service_account
        and annotations.get(SERVICE_ACCOUNT_UID_ANNOTATION) == account["metadata"]["uid"]
        and INVALID_TOKEN_LABEL not in (metadata.get("labels") or {})
        and _filled_token(secret) is not None
    )


def kept_token_secret(spec: RemoteSecretSpec, tokens: list, current: str | None, account: dict | None) -> tuple | None:
    """(token Secret, token) to keep for token_type secret: the one the primary's Secret holds, else the newest
    good one; None when a new token is needed."""
    usable = [t for t in tokens if account is not None and _usable_token_secret(t, spec, account)]
    if not usable:
        return None
    usable.sort(key=lambda t: t["metadata"].get("creationTimestamp") or "", reverse=True)
    usable.sort(key=lambda t: _filled_token(t) != current)  # stable: the held one first, then the newest
    return usable[0], _filled_token(usable[0])


def kept_bound_token(
    spec: RemoteSecretSpec, tokens: list, current: str | None, account: dict | None, now: datetime.datetime
) -> tuple | None:
    """(Secret the token is bound to, token) when the primary's token is one of ours for this ServiceAccount with
    more than a third of its life left; None when a new token is needed."""
    claims = token_claims(current)
    if account is None or claims is None:
        return None
    identity = claims.get("kubernetes.io") if isinstance(claims.get("kubernetes.io"), dict) else {}
    holder, bound = identity.get("serviceaccount") or {}, identity.get("secret") or {}
    anchors = {
        t["metadata"]["name"]: t
        for t in tokens
        if t.get("type") == "Opaque" and t["metadata"].get("namespace") == spec.reader_namespace
    }
    anchor = anchors.get(bound.get("name"))
    matches = (
        identity.get("namespace") == spec.reader_namespace
        and holder.get("name") == spec.service_account
        and holder.get("uid") == account["metadata"]["uid"]
        and anchor is not None
        and bound.get("uid") == anchor["metadata"]["uid"]
    )
    issued, expires = claims.get("iat"), claims.get("exp")
    if not matches or not isinstance(issued, int) or not isinstance(expires, int):
        return None
    if now.timestamp() >= expires - (expires - issued) * RENEW_SHARE:
        return None
    return anchor, current


def kept_token(
    spec: RemoteSecretSpec, tokens: list, current: str | None, account: dict | None, now: datetime.datetime
) -> tuple | None:
    """(token Secret, token) to keep of this pair's `tokens`, given the token the primary holds (`current`) and the
    reader's live ServiceAccount; None when a new token is needed (always with rotate)."""
    if spec.rotate:
        return None
    if spec.bound:
        return kept_bound_token(spec, tokens, current, account, now)
    return kept_token_secret(spec, tokens, current, account)


def other_users(secrets_in_namespace: list, spec: RemoteSecretSpec, pair: str) -> list:
    """Token Secrets of other primaries for the same reader ServiceAccount: while any remains, the reader stays."""
    return [
        s
        for s in secrets_in_namespace
        if (s["metadata"].get("annotations") or {}).get(SERVICE_ACCOUNT_ANNOTATION) == spec.service_account
        and (s["metadata"].get("labels") or {}).get(owner_label(TOKEN_OWNER_KIND)) != pair
    ]


# Cluster: issue and revoke, through the remote's engine of this pair's tokens


def issue_token(engine: Engine, spec: RemoteSecretSpec, user: str) -> tuple:
    """(token Secret name, token): a new token, or a placeholder in check mode."""
    name, namespace = token_secret_name(spec, new_suffix()), spec.reader_namespace
    engine.ensure_owned(token_secret(spec, name, user), None)
    if engine.check_mode:
        return name, PENDING_TOKEN
    if not spec.bound:
        filled = engine.wait_for(
            "Secret",
            name,
            namespace,
            lambda secret: _filled_token(secret) is not None,
            spec.wait_timeout,
            "the token controller has not filled in the token",
        )
        return name, _filled_token(filled)
    anchor = engine.cluster.get("Secret", name, namespace)
    bound_to = {"apiVersion": "v1", "kind": "Secret", "name": name, "uid": anchor["metadata"]["uid"]}
    status = engine.cluster.request_token(namespace, spec.service_account, spec.token_lifetime, bound_to)
    return name, status["token"]


def revoke_tokens_but(engine: Engine, tokens: list, kept_name: str) -> list:
    """Delete every token Secret of `tokens` but the one named `kept_name`, which revokes their tokens; returns
    the deleted ones."""
    revoked = [t for t in tokens if t["metadata"]["name"] != kept_name]
    engine.delete_objects(revoked)
    return revoked
