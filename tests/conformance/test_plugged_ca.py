"""The plug-in CA as istio_cacerts writes it, used by real istiods: seed 002 with a CA root per tenant
(`ca: true`) on cluster c1, and usergroup-1 again on cluster c2 from the same root directory.

Workload certificates are requested the way a sidecar does: a CSR over istiod's CA service (TLS verified against
the root istiod distributed), authenticated with a TokenRequest token of audience istio-ca.
"""

import base64
import json
import subprocess

import pytest
from cryptography import x509
from integration.playbook import playbook
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import binary_dir
from support import service_account_token, wait_for

pytestmark = [pytest.mark.conformance, pytest.mark.multicluster]

TENANTS = [
    {"name": "usergroup-1", "discovery_label": {"usergroup": "usergroup-1"}, "namespaces": ["app-ns-1"], "ca": True},
    {"name": "usergroup-2", "discovery_label": {"usergroup": "usergroup-2"}, "namespaces": ["app-ns-2"], "ca": True},
]
WORKLOAD = "workload"  # the ServiceAccount certificates are requested for
# What istiod logs when it cannot build its CA from the plug-in bundle (the cacerts Secret it mounts).
CA_ERRORS = (
    "incomplete signing CA bundle",
    "certificate signed by unknown authority",
    "does not match the key",
    "failed to parse cert PEM",
    "failed to create an istiod CA",
)


@pytest.fixture(scope="module")
def mesh(clusters, istiods, tmp_path_factory):
    """c1: usergroup-1 and usergroup-2, each with its own root; c2: usergroup-1 from the same root as on c1."""
    c1, c2 = clusters(2)
    pki = tmp_path_factory.mktemp("pki")
    common = ["-e", f"istioctl_path={binary_dir() / 'istioctl'}", "-e", f"ca_root_dir={pki}"]
    playbook(c1, "multitenant.yml", *common, "-e", json.dumps({"tenants": TENANTS}))
    playbook(c2, "multitenant.yml", *common, "-e", json.dumps({"tenants": TENANTS[:1]}))
    for cluster, tenants in ((c1, TENANTS), (c2, TENANTS[:1])):
        for tenant in tenants:
            client.CoreV1Api(cluster.api_client()).create_namespaced_service_account(
                tenant["namespaces"][0], {"metadata": {"name": WORKLOAD}}
            )
    return {
        ("c1", "usergroup-1"): (c1, istiods(c1, "usergroup-1", "usergroup-1")),
        ("c1", "usergroup-2"): (c1, istiods(c1, "usergroup-2", "usergroup-2")),
        ("c2", "usergroup-1"): (c2, istiods(c2, "usergroup-1", "usergroup-1")),
    }


def cacerts(cluster, namespace: str) -> dict:
    secret = client.CoreV1Api(cluster.api_client()).read_namespaced_secret("cacerts", namespace)
    return {key: base64.b64decode(value) for key, value in secret.data.items() if key != "ca-key.pem"}


def distributed_root(cluster, namespace: str) -> str | None:
    """root-cert.pem of the ConfigMap the namespace's tenant's istiod publishes its root in (the dedicated model's
    istio-ca-root-cert-<system namespace>); None until istiod has written it."""
    core = client.CoreV1Api(cluster.api_client())
    [tenant] = [t["name"] for t in TENANTS if namespace in t["namespaces"]]
    try:
        return core.read_namespaced_config_map(f"istio-ca-root-cert-{tenant}", namespace).data["root-cert.pem"]
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def request_certificate(xdsclient, cluster, istiod, namespace: str, tmp_path, audiences=("istio-ca",)):
    """The CSR a sidecar in `namespace` (ServiceAccount `workload`) sends; returns the completed process."""
    token = tmp_path / f"token-{cluster.name}-{namespace}"
    token.write_text(service_account_token(cluster.api_client(), namespace, WORKLOAD, audiences=list(audiences)))
    root = tmp_path / f"root-{cluster.name}-{namespace}.pem"
    root.write_text(wait_for(f"istiod's root in {namespace}", lambda: distributed_root(cluster, namespace)))
    command = [xdsclient, "csr", "--addr", istiod.addresses["secureGRPCAddr"], "--server-name", istiod.service,
               "--root-cert", root, "--token-file", token]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def issued_chain(xdsclient, cluster, istiod, namespace: str, tmp_path) -> tuple:
    """(leaf, intermediate, root) as istiod issued them. Its response is the leaf, its cert-chain.pem (intermediate
    and root) and the root once more."""
    result = request_certificate(xdsclient, cluster, istiod, namespace, tmp_path)
    assert result.returncode == 0, result.stderr
    end = "-----END CERTIFICATE-----"
    leaf, *rest = [block.strip() + f"\n{end}\n" for block in result.stdout.split(end)[:-1]]
    root = rest[-1]
    [intermediate] = [block for block in rest if block != root]
    return leaf, intermediate, root


def verifies(tmp_path, chain: tuple, root: bytes) -> bool:
    """`openssl verify` of an issued chain's leaf, through its intermediate, against `root` as the only trust
    anchor (the root the chain itself names is not trusted)."""
    leaf, intermediate = chain[:2]
    (tmp_path / "leaf.pem").write_text(leaf)
    (tmp_path / "untrusted.pem").write_text(intermediate)
    (tmp_path / "trusted.pem").write_bytes(root)
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", "trusted.pem", "-untrusted", "untrusted.pem", "leaf.pem"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return result.returncode == 0 and result.stdout.strip() == "leaf.pem: OK"


@pytest.mark.parametrize("instance", [("c1", "usergroup-1"), ("c1", "usergroup-2"), ("c2", "usergroup-1")])
def test_istiod_starts_on_our_cacerts_and_distributes_its_root(mesh, instance):
    cluster, istiod = mesh[instance]
    revision = instance[1]
    log = istiod.log.read_text()
    assert not [error for error in CA_ERRORS if error in log], istiod.log_tail()
    assert "Use local CA certificate" in log and "Use self-signed certificate" not in log
    # It did not fall back to a self-signed root.
    secrets = client.CoreV1Api(cluster.api_client()).list_namespaced_secret(revision).items
    assert "istio-ca-secret" not in {s.metadata.name for s in secrets}
    ours = cacerts(cluster, revision)["root-cert.pem"].decode().strip()
    tenant_namespace = next(t["namespaces"][0] for t in TENANTS if t["name"] == revision)
    distributed = wait_for(f"root in {tenant_namespace}", lambda: distributed_root(cluster, tenant_namespace))
    assert distributed.strip() == ours


def test_a_workload_certificate_from_istiod_chains_to_our_root(mesh, xdsclient, tmp_path):
    cluster, istiod = mesh[("c1", "usergroup-1")]
    chain = issued_chain(xdsclient, cluster, istiod, "app-ns-1", tmp_path)
    leaf, intermediate, root = chain
    plugged = cacerts(cluster, "usergroup-1")
    assert intermediate.strip() == plugged["ca-cert.pem"].decode().strip()
    assert root.strip() == plugged["root-cert.pem"].decode().strip()
    certificate = x509.load_pem_x509_certificate(leaf.encode())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    uris = names.get_values_for_type(x509.UniformResourceIdentifier)
    assert uris == [f"spiffe://cluster.local/ns/app-ns-1/sa/{WORKLOAD}"]
    assert verifies(tmp_path, chain, plugged["root-cert.pem"])


def test_istiods_ca_refuses_a_token_not_meant_for_it(mesh, xdsclient, tmp_path):
    cluster, istiod = mesh[("c1", "usergroup-1")]
    # The API server's own audience: a valid token, but not for istio-ca.
    result = request_certificate(xdsclient, cluster, istiod, "app-ns-1", tmp_path, audiences=())
    assert result.returncode != 0
    assert "Unauthenticated" in result.stderr


def test_clusters_sharing_a_root_verify_each_others_workload_certificates(mesh, xdsclient, tmp_path):
    c1, istiod1 = mesh[("c1", "usergroup-1")]
    c2, istiod2 = mesh[("c2", "usergroup-1")]
    chain1 = issued_chain(xdsclient, c1, istiod1, "app-ns-1", tmp_path)
    chain2 = issued_chain(xdsclient, c2, istiod2, "app-ns-1", tmp_path)
    assert chain1[1] != chain2[1], "each cluster signs with its own intermediate"
    assert verifies(tmp_path, chain1, cacerts(c2, "usergroup-1")["root-cert.pem"])
    assert verifies(tmp_path, chain2, cacerts(c1, "usergroup-1")["root-cert.pem"])


def test_tenants_with_their_own_roots_do_not_verify_each_others_certificates(mesh, xdsclient, tmp_path):
    cluster = mesh[("c1", "usergroup-1")][0]
    chains = {
        revision: issued_chain(xdsclient, cluster, mesh[("c1", revision)][1], namespace, tmp_path)
        for revision, namespace in (("usergroup-1", "app-ns-1"), ("usergroup-2", "app-ns-2"))
    }
    roots = {revision: cacerts(cluster, revision)["root-cert.pem"] for revision in chains}
    assert roots["usergroup-1"] != roots["usergroup-2"]
    for revision, chain in chains.items():
        other = "usergroup-2" if revision == "usergroup-1" else "usergroup-1"
        assert verifies(tmp_path, chain, roots[revision])
        assert not verifies(tmp_path, chain, roots[other])
