"""What istio_multicluster_info finds wrong with one cluster of a mesh: trust chain, networks, remote secrets. No
cluster: live objects are built here."""

import base64
import datetime

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils import multicluster, pki
from ansible_collections.meshops.istio.plugins.module_utils.cacerts import secret_manifest

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture(scope="module")
def roots():
    yesterday = NOW - datetime.timedelta(days=1)
    return [pki.generate_root("ecdsa", yesterday), pki.generate_root("ecdsa", yesterday)]


def cacerts_secret(root, cluster_name, intermediate=None):
    certificate, key = intermediate or pki.issue_intermediate(*root, cluster_name, "istio-system", key_type="ecdsa",
                                                              now=NOW)  # fmt: skip
    files = pki.secret_data(certificate, key, root[0], [root[0]])
    return secret_manifest("istio-system", "istio", files)


def trust(secret):
    return multicluster.trust_of(secret, NOW)


def test_clusters_with_one_root_and_their_own_intermediates_are_sound(roots):
    own, peer = trust(cacerts_secret(roots[0], "c1")), trust(cacerts_secret(roots[0], "c2"))
    assert own.problem is None and own.roots == peer.roots == {pki.fingerprint(roots[0][0])}
    assert multicluster.trust_problems("c1", "istio-system", own, {"c2": peer}) == []
    facts = multicluster.trust_facts(own)
    assert facts["intermediate"]["subject"] == "L=c1,CN=Intermediate CA,O=Istio" and "key" not in str(facts).lower()


def test_a_peer_with_another_root_is_named(roots):
    own, peer = trust(cacerts_secret(roots[0], "c1")), trust(cacerts_secret(roots[1], "c2"))
    (problem,) = multicluster.trust_problems("c1", "istio-system", own, {"c2": peer})
    assert problem.startswith("cluster c1 trusts roots") and "but cluster c2 trusts" in problem


def test_a_copied_intermediate_is_named(roots):
    shared = pki.issue_intermediate(*roots[0], "c1", "istio-system", key_type="ecdsa", now=NOW)
    own, peer = trust(cacerts_secret(roots[0], "c1", shared)), trust(cacerts_secret(roots[0], "c2", shared))
    assert multicluster.trust_problems("c1", "istio-system", own, {"c2": peer}) == [
        "clusters c1 and c2 hold the same intermediate CA; give each cluster its own (istio_cacerts with its "
        "cluster_name)"
    ]


def test_a_missing_or_broken_own_cacerts_is_the_only_problem_reported(roots):
    missing = trust(None)
    assert multicluster.trust_problems(
        "c1", "istio-system", missing, {"c2": trust(cacerts_secret(roots[1], "c2"))}
    ) == [
        "cluster c1: Secret istio-system/cacerts does not exist; run istio_cacerts (multicluster.yml) for this cluster"
    ]
    foreign = cacerts_secret(roots[0], "c1")
    foreign["data"]["root-cert.pem"] = base64.b64encode(pki.certificate_pem(roots[1][0])).decode()
    (problem,) = multicluster.trust_problems("c1", "istio-system", trust(foreign), {})
    assert "is not signed by any of the given roots" in problem


def namespace(network):
    return {"metadata": {"name": "istio-system", "labels": {"topology.istio.io/network": network}}}


def gateway(network, view=None):
    container = {
        "name": "istio-proxy",
        "env": [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": view or network}],
    }
    return {
        "spec": {"template": {"metadata": {"labels": {"topology.istio.io/network": network}},
                              "spec": {"containers": [container]}}}
    }  # fmt: skip


def service(network):
    return {"metadata": {"labels": {"topology.istio.io/network": network}}}


def test_consistent_network_labels_pass():
    problems = multicluster.network_problems(
        "c1", "net1", namespace("net1"), gateway("net1"), service("net1"), "istio-eastwestgateway"
    )
    assert problems == []


def test_every_place_that_names_another_network_is_reported():
    problems = multicluster.network_problems(
        "c1", "net1", namespace("net2"), gateway("net1", view="net3"), service("net4"), "istio-eastwestgateway"
    )
    assert problems == [
        "cluster c1: namespace istio-system is labelled topology.istio.io/network=net2, not net1",
        "cluster c1: east-west gateway istio-system/istio-eastwestgateway has its proxy's "
        "ISTIO_META_REQUESTED_NETWORK_VIEW net3, not network net1",
        "cluster c1: east-west gateway istio-system/istio-eastwestgateway has its Service's label net4, not "
        "network net1",
    ]


def test_an_expected_gateway_that_is_missing_is_reported_and_none_expected_none_checked():
    assert multicluster.network_problems("c1", "net1", namespace("net1"), None, None, "istio-eastwestgateway") == [
        "cluster c1: east-west gateway istio-system/istio-eastwestgateway does not exist"
    ]
    assert multicluster.network_problems("c1", "net1", namespace("net1"), None, None, None) == []


def remote_secret(cluster="c2", server="https://192.0.2.20:6443", ca="CA PEM", names=None, labels=True):
    names = names or {"cluster": cluster, "context": cluster, "user": cluster}
    target = {"server": server, "certificate-authority-data": base64.b64encode(ca.encode()).decode()}
    config = {
        "clusters": [{"name": names["cluster"], "cluster": target}],
        "contexts": [{"name": names["context"], "context": {"cluster": names["cluster"], "user": names["user"]}}],
        "current-context": names["context"],
        "users": [{"name": names["user"], "user": {"token": "t0ken"}}],
    }  # fmt: skip
    metadata = {"name": f"istio-remote-secret-{cluster}"}
    if labels:
        metadata |= {"labels": {"istio/multiCluster": "true"}, "annotations": {"networking.istio.io/cluster": cluster}}
    data = {cluster: base64.b64encode(yaml.safe_dump(config).encode()).decode()}
    return {"metadata": metadata, "data": data}


def test_a_well_formed_remote_secret_for_the_right_server_and_ca_passes():
    facts = multicluster.remote_secret_facts(remote_secret(), "c2")
    assert facts["server"] == "https://192.0.2.20:6443" and facts["kubeconfig_named"]
    assert multicluster.remote_secret_problems("c1", "c2", facts, "https://192.0.2.20:6443/", "CA PEM\n") == []


def test_remote_secret_problems_name_label_annotation_names_server_and_ca():
    unlabelled = multicluster.remote_secret_facts(remote_secret(labels=False, ca="other"), "c2")
    problems = multicluster.remote_secret_problems("c1", "c2", unlabelled, "https://10.0.0.2:6443", "CA PEM")
    assert problems == [
        "cluster c1: remote secret istio-remote-secret-c2 lacks the label istio/multiCluster=true, so istiod ignores "
        "it",
        "cluster c1: remote secret istio-remote-secret-c2 lacks the annotation networking.istio.io/cluster=c2",
        "cluster c1: remote secret istio-remote-secret-c2 points at https://192.0.2.20:6443, but cluster c2's API "
        "server is https://10.0.0.2:6443 (its api_server, else its kubeconfig's)",
        "cluster c1: remote secret istio-remote-secret-c2 carries a CA that is not cluster c2's (kube-root-ca.crt)",
    ]
    misnamed = multicluster.remote_secret_facts(
        remote_secret(names={"cluster": "c2", "context": "x", "user": "c2"}), "c2"
    )
    assert multicluster.remote_secret_problems("c1", "c2", misnamed, "https://192.0.2.20:6443", None) == [
        "cluster c1: remote secret istio-remote-secret-c2 has no kubeconfig under key c2 whose cluster, context and "
        "user are c2"
    ]


def test_token_facts_never_include_the_token_or_the_ca():
    facts = multicluster.remote_secret_facts(remote_secret(), "c2")
    assert "t0ken" not in str(facts)


def test_review_problems():
    reader = {"authenticated": True, "user": {"username": "system:serviceaccount:istio-system:reader"}}
    assert multicluster.review_problems("c1", "c2", reader, True, False) == []
    assert multicluster.review_problems("c1", "c2", {"error": "Token has been invalidated"}, None, None) == [
        "cluster c1: the token in remote secret istio-remote-secret-c2 is not accepted by cluster c2 (Token has been "
        "invalidated); re-run multicluster.yml, which issues a new one"
    ]
    (too_much,) = multicluster.review_problems("c1", "c2", reader, True, True)
    assert "who may create services: more than the reader role grants" in too_much
    (too_little,) = multicluster.review_problems("c1", "c2", reader, False, False)
    assert "who may not list services" in too_little


def test_remote_secrets_for_clusters_outside_the_mesh_are_strays():
    held = [remote_secret("c2"), remote_secret("old")]
    assert multicluster.stray_secret_problems("c1", held, ["c2"]) == [
        "cluster c1: remote secret istio-remote-secret-old is for cluster old, which is not in the mesh; remove it "
        "(istio_remote_secret with state: absent)"
    ]


def test_the_spec_keeps_the_peers_in_order_without_their_auth():
    params = {
        "cluster_name": "c1",
        "namespace": "istio-system",
        "network": "net1",
        "eastwest_gateway": None,
        "peers": [
            {"cluster_name": "c3", "auth": {"api_key": "s3cr3t-key"}, "server": None},
            {"cluster_name": "c2", "auth": {}, "server": "https://192.0.2.20:6443"},
        ],
        "remote_secrets": ["c2"],
    }
    spec = multicluster.MulticlusterInfoSpec.from_params(params)
    assert spec.peers == (
        multicluster.PeerSpec("c3", None),
        multicluster.PeerSpec("c2", "https://192.0.2.20:6443"),
    )
    assert spec.remote_secrets == ("c2",) and "s3cr3t-key" not in repr(spec)
