# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote secrets: what `istioctl create-remote-secret` does, as declared state on two clusters.

On the remote cluster: the reader ServiceAccount with a ClusterRole and ClusterRoleBinding (owner
`meshops.io/remote-reader=<reader namespace>.<service account>`), and a token of its own for every primary that
reads the remote (owner `meshops.io/remote-token=<pair id>`). The token is either a Secret of type
kubernetes.io/service-account-token, or an Opaque Secret that a TokenRequest is bound to. Either way, deleting
that Secret revokes the token. On the primary: the Secret istiod watches, a kubeconfig holding that token (owner
`meshops.io/remote-secret=<cluster name>`).

Pure builders and checks first; `ensure_remote_secret_present` / `ensure_remote_secret_absent` at the end are
what the module calls. Tokens are held in memory and written to the Secrets; never returned, logged or diffed."""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import ipaddress
import json
import secrets
from urllib.parse import urlsplit

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core; the import sanity test runs without it
    yaml = None

from .cluster import Cluster
from .engine import Engine, Owner, Report
from .errors import Refusal, refuse
from .names import DNS_LABEL, DNS_SUBDOMAIN
from .vocabulary import FIELD_MANAGER, MANAGED_BY_LABEL, owner_label

SECRET_OWNER_KIND = "remote-secret"
TOKEN_OWNER_KIND = "remote-token"
READER_OWNER_KIND = "remote-reader"
READER_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding")
SECRET_PREFIX = "istio-remote-secret-"
MULTICLUSTER_LABEL = "istio/multiCluster"
CLUSTER_ANNOTATION = "networking.istio.io/cluster"
# The token controller needs it on a token Secret; bound-token Secrets carry it too, so that every token Secret
# names the ServiceAccount it belongs to.
SERVICE_ACCOUNT_ANNOTATION = "kubernetes.io/service-account.name"
SERVICE_ACCOUNT_UID_ANNOTATION = "kubernetes.io/service-account.uid"
USED_BY_ANNOTATION = "meshops.io/used-by"
TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
# Set by kube-controller-manager on a legacy token unused for a year; the API server rejects the token then.
INVALID_TOKEN_LABEL = "kubernetes.io/legacy-token-invalid-since"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DEFAULT_TOKEN_LIFETIME = 365 * 24 * 3600
# What the API server accepts in a TokenRequest.
MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME = 600, 2**32
# A bound token is re-issued once less than this share of its life is left.
RENEW_SHARE = 1 / 3
# Check mode issues no token (a TokenRequest is not a dry run); the Secret is compared with this one instead.
PENDING_TOKEN = "issued-when-not-in-check-mode"
SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # the characters Kubernetes uses for generateName

_READ = ["get", "list", "watch"]
# What istiod reads in a remote cluster (Istio's istio-reader ClusterRole, without its writes to serviceexports).
READER_RULES = [
    {
        "apiGroups": [
            "config.istio.io",
            "security.istio.io",
            "networking.istio.io",
            "authentication.istio.io",
            "rbac.istio.io",
            "telemetry.istio.io",
            "extensions.istio.io",
        ],
        "resources": ["*"],
        "verbs": _READ,
    },
    {
        "apiGroups": [""],
        "resources": [
            "configmaps",
            "endpoints",
            "namespaces",
            "nodes",
            "pods",
            "replicationcontrollers",
            "secrets",
            "services",
        ],
        "verbs": _READ,
    },
    {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": _READ},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": _READ},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": _READ},
    {"apiGroups": ["gateway.networking.k8s.io", "networking.x-k8s.io"], "resources": ["gateways"], "verbs": _READ},
    {"apiGroups": ["multicluster.x-k8s.io"], "resources": ["serviceexports", "serviceimports"], "verbs": _READ},
    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
]


# Pure: parameters


def validate(params: dict) -> None:
    errors = []
    cluster = params["cluster_name"]
    if not isinstance(cluster, str) or not DNS_LABEL.match(cluster) or len(cluster) > 63:
        errors.append(
            f"cluster_name {cluster!r} must be a DNS-1123 label (at most 63 lower-case letters, digits and '-'); "
            "give the remote cluster's Istio cluster ID (values.global.multiCluster.clusterName)"
        )
    for parameter in ("namespace", "reader_namespace"):
        value = params[parameter]
        if not DNS_LABEL.match(value) or len(value) > 63:
            errors.append(f"{parameter} {value!r} must be a DNS-1123 label; give an existing namespace's name")
    if not DNS_SUBDOMAIN.match(params["service_account"]) or len(params["service_account"]) > 253:
        errors.append(f"service_account {params['service_account']!r} must be a DNS-1123 subdomain")
    elif len(reader_id(params)) > 63:
        errors.append(
            f"reader_namespace and service_account joined by a dot ({reader_id(params)!r}) must fit the 63 "
            "characters of a label value; shorten service_account"
        )
    errors += _token_errors(params)
    if params["server"] and _server_problem(params["server"]):
        errors.append(f"server {params['server']!r} {_server_problem(params['server'])}")
    if params["rotate"] and params["state"] == "absent":
        errors.append("rotate needs state: present (state: absent revokes every token anyway); drop rotate")
    refuse(errors)


def _token_errors(params: dict) -> list:
    lifetime = params["token_lifetime"]
    if lifetime is None:
        return []
    if params["token_type"] != "bound":
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


def token_lifetime(params: dict) -> int:
    return params["token_lifetime"] or DEFAULT_TOKEN_LIFETIME


def is_loopback(server: str) -> bool:
    """Whether an API server address only works from the host it is on (loopback or unspecified address)."""
    host = (urlsplit(server).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


# Pure: names


def secret_name(cluster_name: str) -> str:
    return f"{SECRET_PREFIX}{cluster_name}"


def reader_id(params: dict) -> str:
    return f"{params['reader_namespace']}.{params['service_account']}"


def reader_role_name(params: dict) -> str:
    # A prefix of our own: never one of the istio-reader-* objects the istiod chart installs.
    return f"meshops.istio:remote-reader:{params['reader_namespace']}:{params['service_account']}"


def pair_id(primary_uid: str, params: dict) -> str:
    """Names one primary Secret's use of the remote (the primary cluster by its kube-system namespace's UID, its
    namespace, the cluster name): each has a token of its own, so that rotating or removing one primary's Secret
    never revokes another primary's access."""
    key = f"{primary_uid}/{params['namespace']}/{params['cluster_name']}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def used_by(primary_uid: str, params: dict) -> str:
    """For people reading the token Secret: which primary Secret holds the token."""
    return f"Secret {params['namespace']}/{secret_name(params['cluster_name'])} in the cluster {primary_uid}"


def token_secret_name(params: dict, suffix: str) -> str:
    kind = "bound" if params["token_type"] == "bound" else "token"
    return f"{params['service_account']}-{kind}-{suffix}"


def new_suffix() -> str:
    return "".join(secrets.SystemRandom().choices(SUFFIX_ALPHABET, k=5))


# Pure: manifests


def reader_namespace(params: dict) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": params["reader_namespace"]}}


def reader_manifests(params: dict, with_service_account: bool) -> list:
    """The reader's ClusterRole and ClusterRoleBinding, and its ServiceAccount unless another owner has it."""
    name = reader_role_name(params)
    account = {"name": params["service_account"], "namespace": params["reader_namespace"]}
    manifests = [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": READER_RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", **account}],
        },
    ]
    if with_service_account:
        manifests.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": account})
    return manifests


def token_secret(params: dict, name: str, user: str) -> dict:
    """A token Secret the token controller fills in, or, for a bound token, the Secret the token is bound to."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": params["reader_namespace"],
            "annotations": {SERVICE_ACCOUNT_ANNOTATION: params["service_account"], USED_BY_ANNOTATION: user},
        },
        "type": "Opaque" if params["token_type"] == "bound" else TOKEN_SECRET_TYPE,
    }


def kubeconfig_text(cluster_name: str, server: str, ca_pem: str, token: str) -> str:
    """The kubeconfig istiod reads: cluster, context and user all named after the remote cluster."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": server, "certificate-authority-data": base64.b64encode(ca_pem.encode()).decode()},
            }
        ],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "preferences": {},
        "users": [{"name": cluster_name, "user": {"token": token}}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def remote_secret(params: dict, kubeconfig: str) -> dict:
    cluster = params["cluster_name"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": secret_name(cluster),
            "namespace": params["namespace"],
            "labels": {MULTICLUSTER_LABEL: "true"},
            "annotations": {CLUSTER_ANNOTATION: cluster},
        },
        "type": "Opaque",
        "data": {cluster: base64.b64encode(kubeconfig.encode()).decode()},
    }


# Pure: live objects


def _decoded(value) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, TypeError, UnicodeDecodeError):
        return None


def kubeconfig_token(secret: dict | None, cluster_name: str) -> str | None:
    """The token in a live remote secret's kubeconfig, None when there is none to read."""
    text = _decoded(((secret or {}).get("data") or {}).get(cluster_name))
    try:
        config = yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return None
    users = config.get("users") if isinstance(config, dict) else None
    for user in users if isinstance(users, list) else []:
        if isinstance(user, dict) and user.get("name") == cluster_name and isinstance(user.get("user"), dict):
            return user["user"].get("token")
    return None


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


def is_owned(live: dict, owner: Owner) -> bool:
    labels = live["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in owner.labels.items())


def _filled_token(secret: dict) -> str | None:
    return _decoded((secret.get("data") or {}).get("token"))


def _usable_token_secret(secret: dict, params: dict, account: dict) -> bool:
    metadata = secret["metadata"]
    annotations = metadata.get("annotations") or {}
    return (
        secret.get("type") == TOKEN_SECRET_TYPE
        and metadata.get("namespace") == params["reader_namespace"]
        and annotations.get(SERVICE_ACCOUNT_ANNOTATION) == params["service_account"]
        and annotations.get(SERVICE_ACCOUNT_UID_ANNOTATION) == account["metadata"]["uid"]
        and INVALID_TOKEN_LABEL not in (metadata.get("labels") or {})
        and _filled_token(secret) is not None
    )


def kept_token_secret(params: dict, tokens: list, current: str | None, account: dict | None) -> tuple | None:
    """(token Secret, token) to keep for token_type secret: the one the primary's Secret holds, else the newest
    good one; None when a new token is needed."""
    usable = [t for t in tokens if account is not None and _usable_token_secret(t, params, account)]
    if not usable:
        return None
    usable.sort(key=lambda t: t["metadata"].get("creationTimestamp") or "", reverse=True)
    usable.sort(key=lambda t: _filled_token(t) != current)  # stable: the held one first, then the newest
    return usable[0], _filled_token(usable[0])


def kept_bound_token(
    params: dict, tokens: list, current: str | None, account: dict | None, now: datetime.datetime
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
        if t.get("type") == "Opaque" and t["metadata"].get("namespace") == params["reader_namespace"]
    }
    anchor = anchors.get(bound.get("name"))
    matches = (
        identity.get("namespace") == params["reader_namespace"]
        and holder.get("name") == params["service_account"]
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


def expiration(token: str) -> str | None:
    """When a token expires (ISO 8601 UTC), None when it does not (a token Secret's token)."""
    expires = (token_claims(token) or {}).get("exp")
    if not isinstance(expires, int):
        return None
    return datetime.datetime.fromtimestamp(expires, datetime.UTC).isoformat()


def other_users(secrets_in_namespace: list, params: dict, pair: str) -> list:
    """Token Secrets of other primaries for the same reader ServiceAccount: while any remains, the reader stays."""
    return [
        s
        for s in secrets_in_namespace
        if (s["metadata"].get("annotations") or {}).get(SERVICE_ACCOUNT_ANNOTATION) == params["service_account"]
        and (s["metadata"].get("labels") or {}).get(owner_label(TOKEN_OWNER_KIND)) != pair
    ]


# Cluster: what the module calls


class _Clusters:
    """The two clusters of one run and what identifies this primary (its kube-system namespace's UID), which names
    this primary's token. Each step writes through a new engine (the primary's Secret, the remote's reader, the
    remote's token for this primary) and adds its report to `steps`, tagged with its cluster."""

    def __init__(self, primary: Cluster, remote: Cluster, params: dict, check_mode: bool):
        self.params, self.check_mode = params, check_mode
        self.primary, self.remote = primary, remote
        self.primary_uid = _cluster_uid(primary, "the primary")
        self.pair = pair_id(self.primary_uid, params)
        self.steps = []

    def _engine(self, cluster: Cluster, owner: Owner) -> Engine:
        return Engine(cluster, owner, self.check_mode, self.params["force_conflicts"])

    def secret_engine(self) -> Engine:
        return self._engine(self.primary, Owner(SECRET_OWNER_KIND, self.params["cluster_name"]))

    def reader_engine(self) -> Engine:
        return self._engine(self.remote, Owner(READER_OWNER_KIND, reader_id(self.params)))

    def token_engine(self) -> Engine:
        return self._engine(self.remote, Owner(TOKEN_OWNER_KIND, self.pair))

    def record(self, engine: Engine):
        self.steps.append(engine.report.tagged("primary" if engine.cluster is self.primary else "remote"))

    @property
    def report(self) -> Report:
        return Report.combined(self.steps)

    @property
    def server(self) -> str:
        return self.params["server"] or self.remote.host


def _cluster_uid(cluster: Cluster, which: str) -> str:
    namespace = cluster.get("Namespace", "kube-system")
    if namespace is None:
        raise Refusal(f"{which} has no kube-system namespace, so it cannot be told apart from the other")
    return namespace["metadata"]["uid"]


def _refuse_loopback(clusters: _Clusters):
    params, server = clusters.params, clusters.server
    if params["server"] or params["allow_loopback"] or not is_loopback(server):
        return
    if _cluster_uid(clusters.remote, "remote") != clusters.primary_uid:
        raise Refusal(
            f"remote's API server address {server} is a loopback address, which istiod in the primary (another "
            "cluster) cannot reach; set server to an address the primary's pods reach, or allow_loopback: true "
            "when both clusters run on this host"
        )


def _root_ca(clusters: _Clusters, engine: Engine) -> str:
    """The remote cluster's CA, as kube-controller-manager publishes it into every namespace."""
    namespace = clusters.params["reader_namespace"]
    if clusters.check_mode:
        live = clusters.remote.get("ConfigMap", ROOT_CA_CONFIGMAP, namespace) or {}
        return (live.get("data") or {}).get("ca.crt", "")
    live = engine.wait_for(
        "ConfigMap",
        ROOT_CA_CONFIGMAP,
        namespace,
        lambda cm: bool((cm.get("data") or {}).get("ca.crt")),
        clusters.params["wait_timeout"],
        "kube-controller-manager has not published the cluster's CA",
    )
    return live["data"]["ca.crt"]


def _issue_token(clusters: _Clusters, engine: Engine) -> tuple:
    """(token Secret name, token): a new token, or a placeholder in check mode."""
    params = clusters.params
    name, namespace = token_secret_name(params, new_suffix()), params["reader_namespace"]
    engine.ensure_owned(token_secret(params, name, used_by(clusters.primary_uid, params)), None)
    if clusters.check_mode:
        return name, PENDING_TOKEN
    if params["token_type"] == "secret":
        filled = engine.wait_for(
            "Secret",
            name,
            namespace,
            lambda secret: _filled_token(secret) is not None,
            params["wait_timeout"],
            "the token controller has not filled in the token",
        )
        return name, _filled_token(filled)
    anchor = clusters.remote.get("Secret", name, namespace)
    bound_to = {"apiVersion": "v1", "kind": "Secret", "name": name, "uid": anchor["metadata"]["uid"]}
    status = clusters.remote.request_token(namespace, params["service_account"], token_lifetime(params), bound_to)
    return name, status["token"]


def _kept_token(clusters: _Clusters, tokens: list, account: dict | None, live_secret: dict | None) -> tuple | None:
    params = clusters.params
    if params["rotate"]:
        return None
    current = kubeconfig_token(live_secret, params["cluster_name"])
    if params["token_type"] == "secret":
        return kept_token_secret(params, tokens, current, account)
    return kept_bound_token(params, tokens, current, account, datetime.datetime.now(datetime.UTC))


def _result(clusters: _Clusters, report: Report, rotated: bool, token: str | None) -> dict:
    return {
        "changed": report.changed,
        "secret_name": secret_name(clusters.params["cluster_name"]),
        "server": clusters.server,
        "rotated": rotated,
        "token_expiration": expiration(token) if token else None,
        "objects": report.objects,
    }


def ensure_remote_secret_present(primary: Cluster, remote: Cluster, params: dict, check_mode: bool, conceal) -> tuple:
    """Converge both sides; `conceal(value)` keeps a token out of everything Ansible prints.
    Returns (result, warnings, diff); raises a MeshopsError."""
    validate(params)
    clusters = _Clusters(primary, remote, params, check_mode)
    if primary.get("Namespace", params["namespace"]) is None:
        raise Refusal(
            f"namespace {params['namespace']} does not exist on the primary; give istiod's namespace, or install "
            "the control plane first"
        )
    live_secret = primary.get("Secret", secret_name(params["cluster_name"]), params["namespace"])
    _refuse_loopback(clusters)
    reader, token_engine, namespace = clusters.reader_engine(), clusters.token_engine(), params["reader_namespace"]
    namespace_live = remote.get("Namespace", namespace)
    account = remote.get("ServiceAccount", params["service_account"], namespace) if namespace_live else None
    tokens = remote.list_objects("Secret", label_selector=token_engine.owner.selector)
    kept = _kept_token(clusters, tokens, account, live_secret)

    if namespace_live is None:
        reader.ensure_shared(reader_namespace(params))
    # A ServiceAccount another owner has (the istiod chart's, installed by istio_revision) is used as it is.
    reader.ensure_present(reader_manifests(params, account is None or is_owned(account, reader.owner)))
    clusters.record(reader)
    token_name, token = (kept[0]["metadata"]["name"], kept[1]) if kept else _issue_token(clusters, token_engine)
    conceal(token)
    kubeconfig = kubeconfig_text(params["cluster_name"], clusters.server, _root_ca(clusters, token_engine), token)
    clusters.record(token_engine)

    secret_engine = clusters.secret_engine()
    secret_engine.ensure_owned(remote_secret(params, kubeconfig), live_secret)
    clusters.record(secret_engine)
    revoked = [t for t in tokens if t["metadata"]["name"] != token_name]
    revoking = clusters.token_engine()
    revoking.delete_objects(revoked)
    clusters.record(revoking)
    shown = None if token == PENDING_TOKEN else token
    report = clusters.report
    return _result(clusters, report, kept is None and bool(revoked), shown), [], report.diff


def ensure_remote_secret_absent(primary: Cluster, remote: Cluster, params: dict, check_mode: bool) -> tuple:
    """Remove the primary's Secret, this primary's tokens, and the reader once no other primary has a token."""
    validate(params)
    clusters = _Clusters(primary, remote, params, check_mode)
    warnings = []
    secret_engine = clusters.secret_engine()
    live_secret = primary.get("Secret", secret_name(params["cluster_name"]), params["namespace"])
    if live_secret is not None and is_owned(live_secret, secret_engine.owner):
        secret_engine.delete_objects([live_secret])
        clusters.record(secret_engine)
    elif live_secret is not None:
        warnings.append(
            f"Secret {params['namespace']}/{secret_name(params['cluster_name'])} was not written by this module "
            f"(it lacks the label {owner_label(SECRET_OWNER_KIND)}); left as it is, delete it yourself if it should go"
        )
    token_engine = clusters.token_engine()
    token_engine.ensure_absent(["Secret"])
    clusters.record(token_engine)
    selector = f"{MANAGED_BY_LABEL}={FIELD_MANAGER},{owner_label(TOKEN_OWNER_KIND)}"
    tokens = remote.list_objects("Secret", label_selector=selector, namespace=params["reader_namespace"])
    if not other_users(tokens, params, clusters.pair):
        reader = clusters.reader_engine()
        reader.ensure_absent(READER_KINDS)
        clusters.record(reader)
    report = clusters.report
    return _result(clusters, report, False, None), warnings, report.diff
