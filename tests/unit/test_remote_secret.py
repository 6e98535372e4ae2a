"""What istio_remote_secret refuses, what it writes on each side, and which token it keeps. No cluster."""

import base64
import datetime
import json

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.client import configuration_for
from ansible_collections.meshops.istio.plugins.module_utils.engine import Owner
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.remote_secret import ensure, kubeconfig, reader, tokens
from ansible_collections.meshops.istio.plugins.module_utils.remote_secret.spec import RemoteSecretSpec, validate

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
ACCOUNT = {"metadata": {"name": "istio-reader-service-account", "namespace": "istio-system", "uid": "sa-uid-1"}}


def spec(**overrides):
    """A spec as the module builds it from its parameters, with `overrides` (parameter names)."""
    base = {
        "cluster_name": "cluster2",
        "namespace": "istio-system",
        "reader_namespace": "istio-system",
        "service_account": "istio-reader-service-account",
        "token_type": "secret",
        "token_lifetime": None,
        "server": None,
        "allow_loopback": False,
        "rotate": False,
        "state": "present",
        "wait_timeout": 60,
        "force_conflicts": False,
    }
    return RemoteSecretSpec.from_params({**base, **overrides})


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# Refusals


REFUSALS = {
    "cluster name with capitals": (
        {"cluster_name": "Cluster2"},
        "cluster_name 'Cluster2' must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', starting "
        "and ending with a letter or digit); give the cluster's Istio cluster ID",
    ),
    "cluster name with a dot": ({"cluster_name": "c.2"}, "cluster_name 'c.2' must be a DNS-1123 label"),
    "cluster name of 64 characters": ({"cluster_name": "c" * 64}, "must be a DNS-1123 label"),
    "namespace": ({"namespace": "Istio_System"}, "namespace 'Istio_System' must be a DNS-1123 label"),
    "reader namespace": ({"reader_namespace": "-x"}, "reader_namespace '-x' must be a DNS-1123 label"),
    "service account": ({"service_account": "Reader"}, "service_account 'Reader' must be a DNS-1123 subdomain"),
    "reader too long for a label": (
        {"service_account": "r" * 55},
        "reader_namespace and service_account joined by a dot",
    ),
    "lifetime with a token Secret": (
        {"token_lifetime": 3600},
        "token_lifetime only applies to token_type: bound (a token Secret does not expire); remove token_lifetime "
        "or set token_type: bound",
    ),
    "lifetime under ten minutes": (
        {"token_type": "bound", "token_lifetime": 599},
        "token_lifetime 599 must be between 600 seconds and 2^32 seconds",
    ),
    "lifetime over 2^32": ({"token_type": "bound", "token_lifetime": 2**32 + 1}, "must be between 600 seconds"),
    "server without https": ({"server": "10.0.0.5:6443"}, "server '10.0.0.5:6443' must be an https:// URL"),
    "rotate with absent": ({"rotate": True, "state": "absent"}, "rotate needs state: present"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_name_the_parameter(case):
    overrides, message = REFUSALS[case]
    with pytest.raises(Refusal) as refused:
        validate(spec(**overrides))
    assert message in str(refused.value)


def test_every_problem_is_reported_at_once():
    with pytest.raises(Refusal) as refused:
        validate(spec(cluster_name="A", token_lifetime=3600))
    assert str(refused.value).count("; ") >= 1
    assert "cluster_name" in str(refused.value) and "token_lifetime" in str(refused.value)


@pytest.mark.parametrize(
    "good",
    [{}, {"token_type": "bound"}, {"token_type": "bound", "token_lifetime": 600}, {"server": "https://10.0.0.5:6443"}],
)
def test_valid_parameters_pass(good):
    validate(spec(**good))


def test_a_bound_token_lives_a_year_unless_told():
    assert spec(token_type="bound").token_lifetime == 31536000
    assert spec(token_type="bound", token_lifetime=7200).token_lifetime == 7200
    assert spec().token_lifetime is None


@pytest.mark.parametrize(
    ("server", "loopback"),
    [
        ("https://127.0.0.1:6443", True),
        ("https://127.1.2.3", True),
        ("https://localhost:6443", True),
        ("https://api.localhost", True),
        ("https://[::1]:6443", True),
        ("https://0.0.0.0:6443", True),
        ("https://10.0.0.5:6443", False),
        ("https://api.cluster2.example:6443", False),
        ("https://[fd00::5]:6443", False),
    ],
)
def test_loopback_addresses(server, loopback):
    assert ensure.is_loopback(server) is loopback


# What is written


CA = "-----BEGIN CERTIFICATE-----\n"


def test_the_kubeconfig_names_everything_after_the_cluster_and_reads_back():
    text = kubeconfig.kubeconfig_text("cluster2", "https://10.0.0.5:6443", CA, "tok")
    config = yaml.safe_load(text)
    assert config["current-context"] == "cluster2"
    assert config["clusters"] == [
        {
            "name": "cluster2",
            "cluster": {"server": "https://10.0.0.5:6443", "certificate-authority-data": b64(CA)},
        }
    ]
    assert config["contexts"] == [{"name": "cluster2", "context": {"cluster": "cluster2", "user": "cluster2"}}]
    assert config["users"] == [{"name": "cluster2", "user": {"token": "tok"}}]
    # Deterministic, so an unchanged token means an unchanged Secret and no write.
    assert text == kubeconfig.kubeconfig_text("cluster2", "https://10.0.0.5:6443", CA, "tok")
    secret = kubeconfig.remote_secret_manifest(spec(), text)
    assert kubeconfig.kubeconfig_token(secret, "cluster2") == "tok"
    assert kubeconfig.kubeconfig_token(secret, "cluster3") is None


def test_the_primary_secret_is_what_istiod_watches():
    secret = kubeconfig.remote_secret_manifest(spec(namespace="mesh"), "kubeconfig text")
    assert secret["metadata"] == {
        "name": "istio-remote-secret-cluster2",
        "namespace": "mesh",
        "labels": {"istio/multiCluster": "true"},
        "annotations": {"networking.istio.io/cluster": "cluster2"},
    }
    assert secret["data"] == {"cluster2": b64("kubeconfig text")}


@pytest.mark.parametrize(
    "data",
    [None, {}, {"cluster2": "not base64!"}, {"cluster2": b64(": : not yaml")}, {"cluster2": b64("[1, 2]")},
     {"cluster2": b64("users: [{name: other, user: {token: t}}]")}],
)  # fmt: skip
def test_an_unreadable_secret_holds_no_token(data):
    assert kubeconfig.kubeconfig_token({"data": data}, "cluster2") is None


def test_reader_objects_never_share_a_name_with_the_istiod_charts():
    manifests = reader.reader_manifests(spec(), with_service_account=True)
    assert [(m["kind"], m["metadata"]["name"]) for m in manifests] == [
        ("ClusterRole", "meshops.istio:remote-reader:istio-system:istio-reader-service-account"),
        ("ClusterRoleBinding", "meshops.istio:remote-reader:istio-system:istio-reader-service-account"),
        ("ServiceAccount", "istio-reader-service-account"),
    ]
    binding = manifests[1]
    assert binding["roleRef"]["name"] == manifests[0]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "istio-reader-service-account", "namespace": "istio-system"}
    ]
    foreign = reader.reader_manifests(spec(), with_service_account=False)
    assert [m["kind"] for m in foreign] == ["ClusterRole", "ClusterRoleBinding"]


def test_the_reader_role_only_reads_except_reviews():
    grants = {
        (group, resource): tuple(rule["verbs"])
        for rule in reader.READER_RULES
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    writes = {key: verbs for key, verbs in grants.items() if set(verbs) - {"get", "list", "watch"}}
    assert writes == {
        ("authentication.k8s.io", "tokenreviews"): ("create",),
        ("authorization.k8s.io", "subjectaccessreviews"): ("create",),
    }
    for needed in [
        ("", "endpoints"), ("", "pods"), ("", "services"), ("", "nodes"), ("", "namespaces"), ("", "secrets"),
        ("", "configmaps"), ("apps", "replicasets"), ("discovery.k8s.io", "endpointslices"),
        ("apiextensions.k8s.io", "customresourcedefinitions"), ("gateway.networking.k8s.io", "gateways"),
        ("networking.istio.io", "*"), ("security.istio.io", "*"),
    ]:  # fmt: skip
        assert grants[needed] == ("get", "list", "watch"), needed


def test_token_secrets_by_type():
    token = tokens.token_secret(spec(), "reader-token-abcde", "used by")
    assert token["type"] == "kubernetes.io/service-account-token"
    assert token["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "istio-reader-service-account"
    anchor = tokens.token_secret(spec(token_type="bound"), "reader-bound-abcde", "used by")
    assert anchor["type"] == "Opaque"
    assert tokens.token_secret_name(spec(), "abcde") == "istio-reader-service-account-token-abcde"
    assert tokens.token_secret_name(spec(token_type="bound"), "x") == "istio-reader-service-account-bound-x"
    suffixes = {tokens.new_suffix() for attempt in range(20)}
    assert len(suffixes) > 1 and all(len(s) == 5 and set(s) <= set(tokens.SUFFIX_ALPHABET) for s in suffixes)


def test_each_primary_secret_has_its_own_pair_id():
    first = tokens.pair_id("uid-1", spec())
    assert first == tokens.pair_id("uid-1", spec())
    others = {
        tokens.pair_id("uid-2", spec()),
        tokens.pair_id("uid-1", spec(namespace="tenant-a")),
        tokens.pair_id("uid-1", spec(cluster_name="cluster3")),
    }
    assert first not in others and len(others) == 3
    assert len(first) == 16


# Which token stays


def token_secret(name, token, created="2026-04-01T00:00:00Z", **changes):
    secret = {
        "kind": "Secret",
        "type": "kubernetes.io/service-account-token",
        "metadata": {
            "name": name,
            "namespace": "istio-system",
            "creationTimestamp": created,
            "labels": {},
            "annotations": {
                "kubernetes.io/service-account.name": "istio-reader-service-account",
                "kubernetes.io/service-account.uid": "sa-uid-1",
            },
        },
        "data": {"token": b64(token)} if token else {},
    }
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        target = secret
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return secret


def test_the_token_the_primary_holds_stays():
    held = [token_secret("new", "t-new", "2026-04-02T00:00:00Z"), token_secret("held", "t-held")]
    kept, token = tokens.kept_token_secret(spec(), held, "t-held", ACCOUNT)
    assert (kept["metadata"]["name"], token) == ("held", "t-held")


def test_otherwise_the_newest_good_token_stays():
    held = [token_secret("old", "t-old"), token_secret("new", "t-new", "2026-04-02T00:00:00Z")]
    kept, token = tokens.kept_token_secret(spec(), held, None, ACCOUNT)
    assert (kept["metadata"]["name"], token) == ("new", "t-new")


@pytest.mark.parametrize(
    "unusable",
    [
        token_secret("unfilled", None),
        token_secret("other-account", "t", metadata__annotations={"kubernetes.io/service-account.name": "x"}),
        token_secret("recreated-account", "t", metadata__annotations={
            "kubernetes.io/service-account.name": "istio-reader-service-account",
            "kubernetes.io/service-account.uid": "sa-uid-0"}),
        token_secret("invalidated", "t", metadata__labels={"kubernetes.io/legacy-token-invalid-since": "2026-01-01"}),
        token_secret("other-namespace", "t", metadata__namespace="elsewhere"),
        token_secret("bound-anchor", "t", type="Opaque"),
    ],
    ids=lambda s: s["metadata"]["name"],
)  # fmt: skip
def test_unusable_token_secrets_are_replaced(unusable):
    assert tokens.kept_token_secret(spec(), [unusable], "t", ACCOUNT) is None


def test_no_token_stays_without_the_service_account():
    assert tokens.kept_token_secret(spec(), [token_secret("held", "t")], "t", None) is None


def jwt(claims: dict) -> str:
    def part(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


def bound_claims(issued=NOW - datetime.timedelta(days=100), days=365, **identity):
    base = {
        "namespace": "istio-system",
        "serviceaccount": {"name": "istio-reader-service-account", "uid": "sa-uid-1"},
        "secret": {"name": "reader-bound-abcde", "uid": "anchor-uid"},
    }
    return {
        "iat": int(issued.timestamp()),
        "exp": int((issued + datetime.timedelta(days=days)).timestamp()),
        "kubernetes.io": {**base, **identity},
    }


ANCHOR = {
    "kind": "Secret",
    "type": "Opaque",
    "metadata": {"name": "reader-bound-abcde", "namespace": "istio-system", "uid": "anchor-uid"},
}


def test_a_bound_token_with_life_left_stays():
    token = jwt(bound_claims())
    kept = tokens.kept_bound_token(spec(token_type="bound"), [ANCHOR], token, ACCOUNT, NOW)
    assert kept == (ANCHOR, token)
    expected = (NOW - datetime.timedelta(days=100) + datetime.timedelta(days=365)).replace(microsecond=0)
    assert tokens.expiration(token) == expected.isoformat()


@pytest.mark.parametrize(
    "claims",
    [
        bound_claims(issued=NOW - datetime.timedelta(days=250)),  # less than a third of a year left
        bound_claims(issued=NOW - datetime.timedelta(days=400)),  # expired
        bound_claims(secret={"name": "reader-bound-abcde", "uid": "another-uid"}),  # anchor re-created
        bound_claims(secret={"name": "reader-bound-other", "uid": "anchor-uid"}),
        bound_claims(serviceaccount={"name": "istio-reader-service-account", "uid": "sa-uid-0"}),
        bound_claims(serviceaccount={"name": "someone-else", "uid": "sa-uid-1"}),
        bound_claims(namespace="elsewhere"),
        {"iat": 1, "exp": 2},
    ],
)
def test_a_bound_token_is_reissued(claims):
    assert tokens.kept_bound_token(spec(token_type="bound"), [ANCHOR], jwt(claims), ACCOUNT, NOW) is None


@pytest.mark.parametrize("token", [None, "", "not-a-jwt", "a.!!!.c", f"a.{base64.b64encode(b'[1]').decode()}.c"])
def test_unreadable_tokens_have_no_claims(token):
    assert tokens.token_claims(token) is None
    assert tokens.kept_bound_token(spec(token_type="bound"), [ANCHOR], token, ACCOUNT, NOW) is None


def test_a_token_secret_token_does_not_expire():
    assert tokens.expiration(jwt({"iss": "kubernetes/serviceaccount"})) is None


def test_other_primaries_keep_the_reader():
    mine, theirs = "pair-a", "pair-b"

    def token(pair, account="istio-reader-service-account"):
        labels, annotations = {"meshops.io/remote-token": pair}, {"kubernetes.io/service-account.name": account}
        return {"metadata": {"labels": labels, "annotations": annotations}}

    assert tokens.other_users([token(mine), token(theirs, "another-reader")], spec(), mine) == []
    assert tokens.other_users([token(mine), token(theirs)], spec(), mine) == [token(theirs)]


def test_ownership_needs_every_owner_label():
    owner = Owner("remote-reader", "istio-system.istio-reader-service-account")
    assert ensure.is_owned({"metadata": {"labels": owner.labels}}, owner)
    revision_owned = {"app.kubernetes.io/managed-by": "meshops.istio", "meshops.io/revision": "1-31"}
    assert not ensure.is_owned({"metadata": {"labels": revision_owned}}, owner)
    assert not ensure.is_owned({"metadata": {}}, owner)


# The second cluster's client configuration


KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c2", "cluster": {"server": "https://10.0.0.5:6443", "insecure-skip-tls-verify": True}}],
    "users": [{"name": "c2", "user": {"token": "remote-token"}}],
    "contexts": [
        {"name": "c2", "context": {"cluster": "c2", "user": "c2"}},
        {"name": "other", "context": {"cluster": "c2", "user": "c2", "namespace": "x"}},
    ],
    "current-context": "c2",
}


def test_the_remote_configuration_takes_nothing_from_the_environment(monkeypatch):
    from kubernetes import client

    monkeypatch.setenv("K8S_AUTH_HOST", "https://primary:6443")
    monkeypatch.setenv("K8S_AUTH_API_KEY", "primary-token")
    default_before = client.Configuration.get_default_copy().host
    configuration = configuration_for({"kubeconfig": KUBECONFIG, "context": "other"})
    assert configuration.host == "https://10.0.0.5:6443"
    assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer remote-token"
    assert client.Configuration.get_default_copy().host == default_before  # the primary's default is untouched


def test_host_and_key_override_the_kubeconfig():
    configuration = configuration_for(
        {"kubeconfig": KUBECONFIG, "host": "https://10.0.0.9:6443/", "api_key": "given", "validate_certs": False}
    )
    assert configuration.host == "https://10.0.0.9:6443"
    assert configuration.auth_settings()["BearerToken"]["value"] == "Bearer given"
    assert configuration.verify_ssl is False


# The primary itself as the remote


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://10.0.0.5:6443", "https://10.0.0.5:6443/"),
        ("https://API.example.com", "https://api.example.com:443"),
        ("https://api.example.com.", "https://api.example.com"),
        ("https://[::1]:6443", "https://[::1]:6443/"),
    ],
)
def test_normalised_servers_compare_equal(a, b):
    assert ensure.normalised_server(a) == ensure.normalised_server(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://127.0.0.1:6443", "https://127.0.0.1:6444"),
        ("https://rancher.example.com/k8s/clusters/c-1", "https://rancher.example.com/k8s/clusters/c-2"),
    ],
)
def test_different_servers_stay_different(a, b):
    assert ensure.normalised_server(a) != ensure.normalised_server(b)


def test_the_same_kube_system_uid_is_the_same_cluster_whatever_the_address():
    problem = ensure.same_cluster_problem("https://127.0.0.1:6443", ["https://10.0.0.5:6443"], "uid-1", "uid-1")
    assert problem.startswith("remote is the primary itself (its kube-system namespace has the primary's UID)")
    assert "Point remote (kubeconfig, context or host) and server at the remote cluster" in problem


def test_the_primarys_address_as_remote_or_server_is_the_same_cluster():
    primary = "https://127.0.0.1:6443"
    problem = ensure.same_cluster_problem(
        primary, ["https://127.0.0.1:7000", "https://127.0.0.1:6443/"], "uid-1", "uid-2"
    )
    assert problem.startswith("remote is the primary itself (its API server address https://127.0.0.1:6443/ is")
    assert ensure.same_cluster_problem(primary, ["https://127.0.0.1:7000", None], "uid-1", "uid-2") is None
