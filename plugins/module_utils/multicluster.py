# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The multi-cluster invariants verify-multicluster.yml asserts about one cluster of a mesh (read only): its
`cacerts` chains to the root every other cluster shares, with an intermediate of its own; its istio namespace and
east-west gateway carry its network; each remote secret it holds is well formed, points at the cluster it names,
and carries a token that cluster accepts (a TokenReview there) for an identity allowed only what the reader role
grants (SubjectAccessReviews there).

The `*_problems` functions are pure; `gather_multicluster_report` reads through a Cluster and calls them. A token is
held in memory only to send it to the TokenReview; it is never returned."""

from __future__ import annotations

import base64
import binascii
import datetime
from dataclasses import dataclass, field

from . import pki
from .cacerts import (
    SECRET_NAME,
    bundle_problem,
    describe_bundle,
    live_bundle_fingerprints,
    live_intermediate,
    secret_files,
    secret_format_of,
)
from .cluster import Cluster
from .errors import refuse
from .remote_secret.kubeconfig import (
    CLUSTER_ANNOTATION,
    MULTICLUSTER_LABEL,
    ROOT_CA_CONFIGMAP,
    kubeconfig_of,
    kubeconfig_token,
    secret_name,
)
from .values import cluster_name_errors
from .vocabulary import NETWORK_LABEL

NETWORK_VIEW_ENV = "ISTIO_META_REQUESTED_NETWORK_VIEW"
# What istiod must be able to do with a remote secret's token, and a write no reader role grants (a remote's reader may
# write ConfigMaps and webhooks: the primary's istiod publishes istio-ca-root-cert and patches the injector there).
READER_MAY = {"verb": "list", "resource": "services"}
READER_MAY_NOT = {"verb": "create", "resource": "services"}


@dataclass(frozen=True)
class PeerSpec:
    """Another cluster of the mesh (its auth stays with the module, which connects to it)."""

    cluster_name: str
    server: str | None  # its API server as the remote secrets name it; None: its auth's own


@dataclass(frozen=True)
class MulticlusterInfoSpec:
    """What istio_multicluster_info checks, from the module's parameters."""

    cluster_name: str
    namespace: str
    network: str
    eastwest_gateway: str | None
    peers: tuple  # of PeerSpec, in the order of the peers parameter
    remote_secrets: tuple  # names of the peers this cluster must hold a remote secret for

    @classmethod
    def from_params(cls, params: dict) -> MulticlusterInfoSpec:
        given = {name: params[name] for name in ("cluster_name", "namespace", "network", "eastwest_gateway")}
        peers = tuple(PeerSpec(peer["cluster_name"], peer["server"]) for peer in params["peers"])
        return cls(**given, peers=peers, remote_secrets=tuple(params["remote_secrets"]))


def validate(spec: MulticlusterInfoSpec) -> None:
    """The one cluster_name rule (values.cluster_name_errors) for this cluster, its peers and remote_secrets."""
    errors = cluster_name_errors(spec.cluster_name)
    for index, peer in enumerate(spec.peers):
        errors += cluster_name_errors(peer.cluster_name, f"peers[{index}].cluster_name")
    for index, name in enumerate(spec.remote_secrets):
        errors += cluster_name_errors(name, f"remote_secrets[{index}]")
    refuse(errors)


@dataclass
class Trust:
    """What one cluster's cacerts holds: its intermediate, the fingerprints of the roots it trusts, and why istiod
    could not sign with it (None when it can)."""

    intermediate: object = None
    roots: set = field(default_factory=set)
    problem: str | None = None


# Pure: the trust chain


def trust_of(secret: dict | None, now: datetime.datetime) -> Trust:
    if secret is None:
        return Trust(problem="does not exist")
    files = secret_files(secret)
    secret_format = secret_format_of(files)
    live = live_intermediate(files, secret_format)
    return Trust(
        intermediate=live[0] if live else None,
        roots=live_bundle_fingerprints(files, secret_format),
        problem=bundle_problem(files, now),
    )


def trust_facts(trust: Trust) -> dict:
    intermediate = pki.describe(trust.intermediate) if trust.intermediate is not None else None
    return {"intermediate": intermediate, "roots": sorted(trust.roots), "problem": trust.problem}


def trust_problems(cluster: str, namespace: str, own: Trust, peers: dict) -> list:
    """This cluster's chain, and how each peer's compares with it. Each chain leads to a root of its own bundle
    (bundle_problem), so equal bundles mean every intermediate chains to the roots every cluster trusts. A peer
    without a usable cacerts is left to that peer's own check."""
    where = f"cluster {cluster}: Secret {namespace}/{SECRET_NAME}"
    if own.problem:
        return [f"{where} {own.problem}; run istio_cacerts (multicluster.yml) for this cluster"]
    problems = []
    for peer, theirs in sorted(peers.items()):
        if theirs.problem:
            continue
        if theirs.roots != own.roots:
            problems.append(
                f"cluster {cluster} trusts roots {sorted(own.roots)} but cluster {peer} trusts {sorted(theirs.roots)}; "
                "give every cluster the same root (root_dir) and finish a root rotation on all of them"
            )
        if pki.fingerprint(theirs.intermediate) == pki.fingerprint(own.intermediate):
            problems.append(
                f"clusters {cluster} and {peer} hold the same intermediate CA; give each cluster its own "
                "(istio_cacerts with its cluster_name)"
            )
    return problems


# Pure: networks


def _env(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    return {e["name"]: e.get("value") for c in containers for e in c.get("env") or [] if "name" in e}


def network_problems(
    cluster: str, network: str, namespace: dict | None, gateway: dict | None, service: dict | None, gateway_name
) -> list:
    """The istio namespace and, when one is expected, the east-west gateway (pods, proxy view, Service) all name the
    cluster's network."""
    if namespace is None:
        return [f"cluster {cluster}: the istio namespace does not exist"]
    name = namespace["metadata"]["name"]
    labelled = (namespace["metadata"].get("labels") or {}).get(NETWORK_LABEL)
    problems = []
    if labelled != network:
        problems.append(f"cluster {cluster}: namespace {name} is labelled {NETWORK_LABEL}={labelled}, not {network}")
    if not gateway_name:
        return problems
    if gateway is None or service is None:
        return problems + [f"cluster {cluster}: east-west gateway {name}/{gateway_name} does not exist"]
    seen = {
        "its pods' label": (gateway["spec"]["template"]["metadata"].get("labels") or {}).get(NETWORK_LABEL),
        f"its proxy's {NETWORK_VIEW_ENV}": _env(gateway).get(NETWORK_VIEW_ENV),
        "its Service's label": (service["metadata"].get("labels") or {}).get(NETWORK_LABEL),
    }
    problems += [
        f"cluster {cluster}: east-west gateway {name}/{gateway_name} has {what} {value}, not network {network}"
        for what, value in seen.items()
        if value != network
    ]
    return problems


# Pure: remote secrets


def _named(entries, name: str) -> dict:
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name:
            return entry
    return {}


def remote_secret_facts(secret: dict, cluster: str) -> dict:
    """Where a remote secret's kubeconfig points (server, CA), and whether it has the shape istiod reads."""
    config = kubeconfig_of(secret, cluster) or {}
    target = _named(config.get("clusters"), cluster).get("cluster") or {}
    context = _named(config.get("contexts"), cluster).get("context") or {}
    try:
        ca_pem = base64.b64decode(target.get("certificate-authority-data") or "", validate=True)
    except (binascii.Error, TypeError):
        ca_pem = b""
    named = bool(target) and context == {"cluster": cluster, "user": cluster}
    metadata = secret["metadata"]
    return {
        "secret": metadata["name"],
        "labelled": (metadata.get("labels") or {}).get(MULTICLUSTER_LABEL) == "true",
        "annotated": (metadata.get("annotations") or {}).get(CLUSTER_ANNOTATION) == cluster,
        "kubeconfig_named": named and config.get("current-context") == cluster,
        "server": target.get("server"),
        "ca_pem": ca_pem.decode(errors="replace"),
    }


def remote_secret_problems(
    holder: str, cluster: str, facts: dict, expected_server: str, cluster_ca: str | None
) -> list:
    where = f"cluster {holder}: remote secret {facts['secret']}"
    problems = []
    if not facts["labelled"]:
        problems.append(f"{where} lacks the label {MULTICLUSTER_LABEL}=true, so istiod ignores it")
    if not facts["annotated"]:
        problems.append(f"{where} lacks the annotation {CLUSTER_ANNOTATION}={cluster}")
    if not facts["kubeconfig_named"]:
        problems.append(f"{where} has no kubeconfig under key {cluster} whose cluster, context and user are {cluster}")
    elif (facts["server"] or "").rstrip("/") != expected_server.rstrip("/"):
        problems.append(
            f"{where} points at {facts['server']}, but cluster {cluster}'s API server is {expected_server} "
            "(its api_server, else its kubeconfig's)"
        )
    if facts["kubeconfig_named"] and cluster_ca is not None and facts["ca_pem"].strip() != cluster_ca.strip():
        problems.append(f"{where} carries a CA that is not cluster {cluster}'s (kube-root-ca.crt)")
    return problems


def review_problems(holder: str, cluster: str, review: dict, may: bool | None, may_not: bool | None) -> list:
    """What the TokenReview and the two SubjectAccessReviews on the remote cluster said about the token."""
    where = f"cluster {holder}: the token in remote secret {secret_name(cluster)}"
    if not review.get("authenticated"):
        error = review.get("error") or "not authenticated"
        return [
            f"{where} is not accepted by cluster {cluster} ({error}); re-run multicluster.yml, which issues a new one"
        ]
    user = (review.get("user") or {}).get("username")
    problems = []
    if not may:
        problems.append(f"{where} authenticates as {user}, who may not {READER_MAY['verb']} {READER_MAY['resource']}")
    if may_not:
        problems.append(
            f"{where} authenticates as {user}, who may {READER_MAY_NOT['verb']} {READER_MAY_NOT['resource']}: "
            "more than the reader role grants"
        )
    return problems


def stray_secret_problems(holder: str, secrets: list, expected: list) -> list:
    return [
        f"cluster {holder}: remote secret {s['metadata']['name']} is for cluster "
        f"{(s['metadata'].get('annotations') or {}).get(CLUSTER_ANNOTATION)}, which is not in the mesh; remove it "
        "(istio_remote_secret with state: absent)"
        for s in secrets
        if s["metadata"]["name"] not in {secret_name(c) for c in expected}
    ]


# Cluster: reads


def token_review(cluster: Cluster, token: str) -> dict:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    return cluster.post("/apis/authentication.k8s.io/v1/tokenreviews", body)


def may(cluster: Cluster, user: dict, attributes: dict) -> bool:
    spec = {
        "user": user.get("username"),
        "groups": user.get("groups") or [],
        "uid": user.get("uid"),
        "resourceAttributes": attributes,
    }
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}
    return bool(cluster.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", body).get("allowed"))


def _check_remote_secret(holder: str, cluster: str, live: dict | None, peer: Cluster, expected_server: str) -> tuple:
    """(facts without the token, problems) for the remote secret of `cluster` held by `holder`."""
    if live is None:
        return {"exists": False}, [
            f"cluster {holder} holds no remote secret for cluster {cluster} ({secret_name(cluster)}); run "
            "multicluster.yml"
        ]
    facts = remote_secret_facts(live, cluster)
    cluster_ca = (peer.get("ConfigMap", ROOT_CA_CONFIGMAP, "kube-system") or {}).get("data") or {}
    problems = remote_secret_problems(holder, cluster, facts, expected_server, cluster_ca.get("ca.crt"))
    token = kubeconfig_token(live, cluster)
    review = token_review(peer, token) if token else {"error": "the kubeconfig holds no token"}
    user = review.get("user") or {}
    allowed = review.get("authenticated") and may(peer, user, READER_MAY)
    forbidden_write_allowed = review.get("authenticated") and may(peer, user, READER_MAY_NOT)
    problems += review_problems(holder, cluster, review, allowed, forbidden_write_allowed)
    shown = {k: v for k, v in facts.items() if k != "ca_pem"}
    return {
        **shown,
        "exists": True,
        "token_authenticated": bool(review.get("authenticated")),
        "user": user.get("username"),
        "may_list_services": bool(allowed),
        "may_write": bool(forbidden_write_allowed),
    }, problems


def gather_multicluster_report(
    own_cluster: Cluster, spec: MulticlusterInfoSpec, connect_peer, now: datetime.datetime | None = None
) -> dict:
    """Read this cluster and its peers; `connect_peer(index)` returns the Cluster of spec.peers[index]."""
    now = now or pki.utc_now()
    validate(spec)
    namespace, cluster = spec.namespace, spec.cluster_name
    own_secret = own_cluster.get("Secret", SECRET_NAME, namespace)
    own = trust_of(own_secret, now)
    peers = {}
    for index, peer in enumerate(spec.peers):
        peers[peer.cluster_name] = (connect_peer(index), peer)
    peer_trust = {name: trust_of(e.get("Secret", SECRET_NAME, namespace), now) for name, (e, _p) in peers.items()}
    invariants = {"shares the root, with its own intermediate": trust_problems(cluster, namespace, own, peer_trust)}

    gateway_name = spec.eastwest_gateway
    invariants["carries its network"] = network_problems(
        cluster,
        spec.network,
        own_cluster.get("Namespace", namespace),
        own_cluster.get("Deployment", gateway_name, namespace) if gateway_name else None,
        own_cluster.get("Service", gateway_name, namespace) if gateway_name else None,
        gateway_name,
    )

    remote_secrets = {}
    for remote in spec.remote_secrets:
        accepted = f"remote secret for {remote} accepted"
        if remote not in peers:
            invariants[accepted] = [
                f"remote_secrets entry {remote} is not one of the peers; add it to peers with its auth"
            ]
            continue
        peer_cluster, peer = peers[remote]
        expected_server = peer.server or peer_cluster.host
        live = own_cluster.get("Secret", secret_name(remote), namespace)
        remote_secrets[remote], invariants[accepted] = _check_remote_secret(
            cluster, remote, live, peer_cluster, expected_server
        )
    held = own_cluster.list_objects("Secret", label_selector=f"{MULTICLUSTER_LABEL}=true", namespace=namespace)
    invariants["no remote secret for a cluster outside the mesh"] = stray_secret_problems(
        cluster, held, spec.remote_secrets
    )
    own_facts = trust_facts(own)
    if own_secret is not None:
        own_facts["root_certificates"] = describe_bundle(secret_files(own_secret), now)["root_certificates"]
    return {
        "cluster": {"name": cluster, "network": spec.network, "cacerts": own_facts},
        "peers": {name: {"cacerts": trust_facts(trust)} for name, trust in peer_trust.items()},
        "remote_secrets": remote_secrets,
        "invariants": invariants,
        "problems": [problem for problems in invariants.values() for problem in problems],
    }
