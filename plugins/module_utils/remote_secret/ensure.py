# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Remote secrets: what `istioctl create-remote-secret` does, as declared state on two clusters.

On the remote cluster: the reader (reader.py) and a token of its own for every primary that reads the remote
(tokens.py). On the primary: the Secret istiod watches, a kubeconfig holding that token (kubeconfig.py; owner
`meshops.io/remote-secret=<cluster name>`). This file runs the two clusters: `ensure_remote_secret_present` /
`ensure_remote_secret_absent` are what the module calls, with a RemoteSecretSpec (spec.py)."""

from __future__ import annotations

import datetime
import ipaddress
from urllib.parse import urlsplit

from ..cluster import Cluster
from ..engine import Engine, Owner, Report
from ..errors import Refusal, refuse
from ..vocabulary import FIELD_MANAGER, MANAGED_BY_LABEL, owner_label
from .kubeconfig import ROOT_CA_CONFIGMAP, kubeconfig_text, kubeconfig_token, remote_secret_manifest, secret_name
from .reader import READER_KINDS, READER_OWNER_KIND, reader_manifests, reader_namespace
from .spec import RemoteSecretSpec, validate
from .tokens import (
    PENDING_TOKEN,
    TOKEN_OWNER_KIND,
    UTC,
    expiration,
    issue_token,
    kept_token,
    other_users,
    pair_id,
    revoke_tokens_but,
    used_by,
)

SECRET_OWNER_KIND = "remote-secret"


# Pure


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


def normalised_server(server: str) -> str:
    """An API server URL as a comparable value: scheme and host lower-cased, the default port made explicit, no
    trailing slash (a path stays: proxies such as Rancher's serve several clusters under one host)."""
    parts = urlsplit(server.strip())
    scheme = (parts.scheme or "https").lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:  # IPv6, bracketed again
        host = f"[{host}]"
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{host}:{port}{parts.path.rstrip('/')}"


def same_cluster_problem(primary_host: str, remote_addresses: list, primary_uid: str, remote_uid: str) -> str | None:
    """Why the remote is the primary itself, or None. The rule: the same cluster answers both when the kube-system
    namespace read through each connection has the same UID (a UID is unique to one cluster's namespace), or when
    the remote's API server address (remote's own, or `server`) is the primary's, once normalised."""
    if remote_uid == primary_uid:
        reason = "its kube-system namespace has the primary's UID"
    else:
        same = [a for a in remote_addresses if a and normalised_server(a) == normalised_server(primary_host)]
        if not same:
            return None
        reason = f"its API server address {same[0]} is the primary's"
    return (
        f"remote is the primary itself ({reason}); a remote secret lets istiod read another cluster, and reading "
        "its own cluster twice duplicates every endpoint. Point remote (kubeconfig, context or host) and server at "
        "the remote cluster"
    )


def is_owned(live: dict, owner: Owner) -> bool:
    labels = live["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in owner.labels.items())


# Cluster: what the module calls


class _Clusters:
    """The two clusters of one run and what identifies this primary (its kube-system namespace's UID), which names
    this primary's token. Each step writes through a new engine (the primary's Secret, the remote's reader, the
    remote's token for this primary) and adds its report to `steps`, tagged with its cluster."""

    def __init__(self, primary: Cluster, remote: Cluster, spec: RemoteSecretSpec, check_mode: bool):
        self.spec, self.check_mode = spec, check_mode
        self.primary, self.remote = primary, remote
        self.primary_uid = _cluster_uid(primary, "the primary")
        self.pair = pair_id(self.primary_uid, spec)
        self.steps = []

    def _engine(self, cluster: Cluster, owner: Owner) -> Engine:
        return Engine(cluster, owner, self.check_mode, self.spec.force_conflicts)

    def secret_engine(self) -> Engine:
        return self._engine(self.primary, Owner(SECRET_OWNER_KIND, self.spec.cluster_name))

    def reader_engine(self) -> Engine:
        return self._engine(self.remote, Owner(READER_OWNER_KIND, self.spec.reader_id))

    def token_engine(self) -> Engine:
        return self._engine(self.remote, Owner(TOKEN_OWNER_KIND, self.pair))

    def record(self, engine: Engine):
        self.steps.append(engine.report.tagged("primary" if engine.cluster is self.primary else "remote"))

    @property
    def report(self) -> Report:
        return Report.combined(self.steps)

    @property
    def server(self) -> str:
        return self.spec.server or self.remote.host


def _cluster_uid(cluster: Cluster, which: str) -> str:
    namespace = cluster.get("Namespace", "kube-system")
    if namespace is None:
        raise Refusal(f"{which} has no kube-system namespace, so it cannot be told apart from the other")
    return namespace["metadata"]["uid"]


def _refuse_the_primary_itself(clusters: _Clusters):
    remote_uid = _cluster_uid(clusters.remote, "remote")
    addresses = [clusters.remote.host, clusters.spec.server]
    problem = same_cluster_problem(clusters.primary.host, addresses, clusters.primary_uid, remote_uid)
    if problem:
        raise Refusal(problem)


def _refuse_loopback(clusters: _Clusters):
    """A loopback address works only from the remote's own host; the primary is another cluster (see above)."""
    spec, server = clusters.spec, clusters.server
    if spec.server or spec.allow_loopback or not is_loopback(server):
        return
    raise Refusal(
        f"remote's API server address {server} is a loopback address, which istiod in the primary (another "
        "cluster) cannot reach; set server to an address the primary's pods reach, or allow_loopback: true "
        "when both clusters run on this host"
    )


def _refuse_foreign_objects(
    clusters: _Clusters, live_secret: dict | None, reader: Engine, reader_desired: list, namespace_live: dict | None
):
    """Before the first write: the primary's Secret and, when the reader's namespace is still to be created, the
    reader's cluster-wide objects must not be someone else's (the engine checks the rest before it writes)."""
    secret_engine = clusters.secret_engine()
    problems = secret_engine.ownership_problems([live_secret])
    if namespace_live is None:
        cluster_wide = [m for m in reader_desired if "namespace" not in m["metadata"]]
        lives = [clusters.remote.get(m["kind"], m["metadata"]["name"]) for m in cluster_wide]
        problems += [f"remote: {problem}" for problem in reader.ownership_problems(lives)]
    refuse(problems)


def _root_ca(clusters: _Clusters, engine: Engine) -> str:
    """The remote cluster's CA, as kube-controller-manager publishes it into every namespace."""
    namespace = clusters.spec.reader_namespace
    if clusters.check_mode:
        live = clusters.remote.get("ConfigMap", ROOT_CA_CONFIGMAP, namespace) or {}
        return (live.get("data") or {}).get("ca.crt", "")
    live = engine.wait_for(
        "ConfigMap",
        ROOT_CA_CONFIGMAP,
        namespace,
        lambda cm: bool((cm.get("data") or {}).get("ca.crt")),
        clusters.spec.wait_timeout,
        "kube-controller-manager has not published the cluster's CA",
    )
    return live["data"]["ca.crt"]


def _result(clusters: _Clusters, report: Report, rotated: bool, token: str | None) -> dict:
    return {
        "changed": report.changed,
        "secret_name": secret_name(clusters.spec.cluster_name),
        "server": clusters.server,
        "rotated": rotated,
        "token_expiration": expiration(token) if token else None,
        "objects": report.objects,
    }


def ensure_remote_secret_present(
    primary: Cluster, remote: Cluster, spec: RemoteSecretSpec, check_mode: bool, conceal
) -> tuple:
    """Converge both sides; `conceal(value)` keeps a token out of everything Ansible prints.
    Returns (result, warnings, diff); raises a MeshopsError."""
    validate(spec)
    clusters = _Clusters(primary, remote, spec, check_mode)
    _refuse_the_primary_itself(clusters)
    if primary.get("Namespace", spec.namespace) is None:
        raise Refusal(
            f"namespace {spec.namespace} does not exist on the primary; give istiod's namespace, or install "
            "the control plane first"
        )
    live_secret = primary.get("Secret", secret_name(spec.cluster_name), spec.namespace)
    _refuse_loopback(clusters)
    reader, token_engine = clusters.reader_engine(), clusters.token_engine()
    namespace_live = remote.get("Namespace", spec.reader_namespace)
    account = remote.get("ServiceAccount", spec.service_account, spec.reader_namespace) if namespace_live else None
    reader_desired = reader_manifests(spec, account is None or is_owned(account, reader.owner))
    _refuse_foreign_objects(clusters, live_secret, reader, reader_desired, namespace_live)
    tokens = remote.list_objects("Secret", label_selector=token_engine.owner.selector)
    now = datetime.datetime.now(UTC)
    kept = kept_token(spec, tokens, kubeconfig_token(live_secret, spec.cluster_name), account, now)

    if namespace_live is None:
        reader.ensure_shared(reader_namespace(spec))
    # A ServiceAccount another owner has (the istiod chart's, installed by istio_revision) is used as it is.
    reader.ensure_present(reader_desired)
    clusters.record(reader)
    if kept:
        token_name, token = kept[0]["metadata"]["name"], kept[1]
    else:
        token_name, token = issue_token(token_engine, spec, used_by(clusters.primary_uid, spec))
    conceal(token)
    kubeconfig = kubeconfig_text(spec.cluster_name, clusters.server, _root_ca(clusters, token_engine), token)
    clusters.record(token_engine)

    secret_engine = clusters.secret_engine()
    secret_engine.ensure_owned(remote_secret_manifest(spec, kubeconfig), live_secret)
    clusters.record(secret_engine)
    revoking = clusters.token_engine()
    revoked = revoke_tokens_but(revoking, tokens, token_name)
    clusters.record(revoking)
    shown = None if token == PENDING_TOKEN else token
    report = clusters.report
    return _result(clusters, report, kept is None and bool(revoked), shown), [], report.diff


def ensure_remote_secret_absent(primary: Cluster, remote: Cluster, spec: RemoteSecretSpec, check_mode: bool) -> tuple:
    """Remove the primary's Secret, this primary's tokens, and the reader once no other primary has a token."""
    validate(spec)
    clusters = _Clusters(primary, remote, spec, check_mode)
    warnings = []
    secret_engine = clusters.secret_engine()
    live_secret = primary.get("Secret", secret_name(spec.cluster_name), spec.namespace)
    if live_secret is not None and is_owned(live_secret, secret_engine.owner):
        secret_engine.delete_objects([live_secret])
        clusters.record(secret_engine)
    elif live_secret is not None:
        warnings.append(
            f"Secret {spec.namespace}/{secret_name(spec.cluster_name)} was not written by this module "
            f"(it lacks the label {owner_label(SECRET_OWNER_KIND)}); left as it is, delete it yourself if it should go"
        )
    token_engine = clusters.token_engine()
    token_engine.ensure_absent(["Secret"])
    clusters.record(token_engine)
    selector = f"{MANAGED_BY_LABEL}={FIELD_MANAGER},{owner_label(TOKEN_OWNER_KIND)}"
    tokens = remote.list_objects("Secret", label_selector=selector, namespace=spec.reader_namespace)
    if not other_users(tokens, spec, clusters.pair):
        reader = clusters.reader_engine()
        reader.ensure_absent(READER_KINDS)
        clusters.record(reader)
    report = clusters.report
    return _result(clusters, report, False, None), warnings, report.diff
