"""istio_cacerts against two real API servers: one root for both clusters, an intermediate each, re-runs that
write nothing, renewal near expiry, a root rotation, the refusals, and no private key in verbose output.

The tests build on each other in file order, like a user's runs would. Leaves are made here with cryptography
and checked with the openssl CLI, independently of the module's own code."""

import base64
import datetime
import stat
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import api_request_counts, writes
from playbook import run_verbose
from selfsigned import pem, self_signed_ca
from workload_certs import leaf_signed_by

MODULE = "meshops.istio.istio_cacerts"
NAMESPACE = "mesh-ca"

pytestmark = pytest.mark.multicluster


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pki")


@pytest.fixture(scope="module")
def run(run_on):
    """run(cluster, args, check=False, diff=False): these tests run on both clusters, so each names its own."""
    return run_on


def args_for(pki_dir, cluster_name, **overrides):
    return {"root_dir": str(pki_dir / "root"), "cluster_name": cluster_name, "namespace": NAMESPACE, **overrides}


def read_secret(cluster, namespace=NAMESPACE, name="cacerts"):
    """The Secret as stored, data base64-decoded; None when absent."""
    try:
        secret = client.CoreV1Api(cluster.api_client()).read_namespaced_secret(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    files = {key: base64.b64decode(value) for key, value in (secret.data or {}).items()}
    return secret, files


def certificates(pem: bytes) -> list:
    return x509.load_pem_x509_certificates(pem)


def fingerprint(certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def make_leaf(ca_cert_pem: bytes, ca_key_pem: bytes):
    """A workload certificate as istiod would issue it, signed by an intermediate from a cacerts Secret."""
    issuer = x509.load_pem_x509_certificate(ca_cert_pem)
    issuer_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    return leaf_signed_by(issuer, issuer_key, datetime.datetime.now(datetime.timezone.utc))


def openssl_verify(tmp_path, root_bundle: bytes, intermediate: bytes, leaf) -> subprocess.CompletedProcess:
    """`openssl verify -CAfile root-cert.pem -untrusted ca-cert.pem leaf.pem`."""
    directory = tmp_path / f"verify-{fingerprint(leaf)[:11].replace(':', '')}"
    directory.mkdir()
    (directory / "root-cert.pem").write_bytes(root_bundle)
    (directory / "ca-cert.pem").write_bytes(intermediate)
    (directory / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    return subprocess.run(
        ["openssl", "verify", "-CAfile", "root-cert.pem", "-untrusted", "ca-cert.pem", "leaf.pem"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def assert_verifies(tmp_path, root_bundle, files):
    leaf = make_leaf(files["ca-cert.pem"], files["ca-key.pem"])
    verified = openssl_verify(tmp_path, root_bundle, files["ca-cert.pem"], leaf)
    assert verified.returncode == 0 and verified.stdout.strip() == "leaf.pem: OK", verified.stderr


# Runs in file order


def test_check_mode_on_a_fresh_cluster_writes_nothing(run, two_clusters, pki_dir):
    first = two_clusters[0]
    result = run(first, args_for(pki_dir, "cluster1"), check=True, diff=True)
    assert result["changed"] is True, result.get("msg")
    assert result["root"]["generated"] is True and result["intermediate"]["issued"] is True
    assert result["istiod_restart_needed"] is True
    secret_diffs = [d for d in result["diff"] if d["after_header"] == f"Secret {NAMESPACE}/cacerts"]
    assert len(secret_diffs) == 1 and secret_diffs[0]["before"] == {}
    assert secret_diffs[0]["after"]["data"] == dict.fromkeys(
        ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"), "<hidden>"
    )
    assert read_secret(first) is None
    with pytest.raises(ApiException) as absent:
        client.CoreV1Api(first.api_client()).read_namespace(NAMESPACE)
    assert absent.value.status == 404
    assert not (pki_dir / "root").exists()


def test_two_clusters_share_the_root_and_get_their_own_intermediate(run, two_clusters, pki_dir, tmp_path):
    results = [run(c, args_for(pki_dir, f"cluster{n}")) for n, c in enumerate(two_clusters, 1)]
    assert all(r["changed"] for r in results), [r.get("msg") for r in results]
    assert results[0]["root"]["generated"] is True and results[1]["root"]["generated"] is False
    assert results[0]["root"]["fingerprint_sha256"] == results[1]["root"]["fingerprint_sha256"]
    assert results[0]["intermediate"]["fingerprint_sha256"] != results[1]["intermediate"]["fingerprint_sha256"]
    assert results[0]["objects"] == [
        {"kind": "Namespace", "namespace": "", "name": NAMESPACE, "action": "created"},
        {"kind": "Secret", "namespace": NAMESPACE, "name": "cacerts", "action": "created"},
    ]
    key_file = pki_dir / "root" / "root-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    (secret1, files1), files2 = read_secret(two_clusters[0]), read_secret(two_clusters[1])[1]
    assert secret1.type == "Opaque"
    assert secret1.metadata.labels["app.kubernetes.io/managed-by"] == "meshops.istio"
    assert secret1.metadata.labels["meshops.io/cacerts"] == NAMESPACE
    assert set(files1) == {"ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem"}
    assert files1["root-cert.pem"] == files2["root-cert.pem"] == (pki_dir / "root" / "root-cert.pem").read_bytes()
    assert files1["ca-cert.pem"] != files2["ca-cert.pem"]
    assert files1["cert-chain.pem"] == files1["ca-cert.pem"] + files1["root-cert.pem"]
    for n, files in ((1, files1), (2, files2)):
        intermediate = x509.load_pem_x509_certificate(files["ca-cert.pem"])
        assert intermediate.subject.rfc4514_string() == f"L=cluster{n},CN=Intermediate CA,O=Istio"
        assert intermediate.public_key().key_size == 4096  # the default key type, RSA 4096
        assert_verifies(tmp_path, files["root-cert.pem"], files)
    # A leaf of cluster2 verifies with cluster1's trust bundle: the clusters trust each other.
    assert_verifies(tmp_path, files1["root-cert.pem"], files2)


def test_second_run_changes_nothing_and_sends_no_write(run, two_clusters, pki_dir):
    counts = [api_request_counts(c.kubeconfig) for c in two_clusters]
    results = [run(c, args_for(pki_dir, f"cluster{n}")) for n, c in enumerate(two_clusters, 1)]
    for result, cluster, before in zip(results, two_clusters, counts, strict=True):
        assert result["changed"] is False, result
        assert result["objects"] == [] and result["istiod_restart_needed"] is False
        assert result["intermediate"]["issued"] is False and result["intermediate"]["reason"] is None
        assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_a_run_within_renew_before_re_issues_the_intermediate(run, two_clusters, pki_dir):
    first = two_clusters[0]
    old_secret, old_files = read_secret(first)
    before = api_request_counts(first.kubeconfig)
    # The live intermediate has ~730 days left: inside a 750-day renewal window.
    renewed = run(first, args_for(pki_dir, "cluster1", validity_days=800, renew_before=750, key_type="ecdsa"))
    assert renewed["changed"] is True, renewed.get("msg")
    assert renewed["intermediate"]["issued"] is True
    assert "within renew_before (750 days)" in renewed["intermediate"]["reason"]
    assert renewed["istiod_restart_needed"] is False
    assert renewed["objects"] == [{"kind": "Secret", "namespace": NAMESPACE, "name": "cacerts", "action": "updated"}]
    written = writes(before, api_request_counts(first.kubeconfig))
    assert set(written) == {("APPLY", "secrets", "")} and sum(written.values()) == 1  # one apply, no delete

    new_secret, new_files = read_secret(first)
    assert new_secret.metadata.uid == old_secret.metadata.uid  # updated in place, never recreated
    assert new_files["ca-cert.pem"] != old_files["ca-cert.pem"] and new_files["ca-key.pem"] != old_files["ca-key.pem"]
    assert new_files["root-cert.pem"] == old_files["root-cert.pem"]
    intermediate = x509.load_pem_x509_certificate(new_files["ca-cert.pem"])
    assert fingerprint(intermediate) == renewed["intermediate"]["fingerprint_sha256"]
    assert intermediate.not_valid_after_utc.isoformat() == renewed["intermediate"]["not_after"]

    again = run(first, args_for(pki_dir, "cluster1", validity_days=800, renew_before=750, key_type="ecdsa"))
    assert again["changed"] is False and again["intermediate"]["issued"] is False


def test_tls_format_in_another_namespace(run, two_clusters, pki_dir, tmp_path):
    second = two_clusters[1]
    result = run(second, args_for(pki_dir, "tenant-a", namespace="tenant-a", revision="tenant-a", format="tls",
                                  key_type="ecdsa"))  # fmt: skip
    assert result["changed"] is True, result.get("msg")
    secret, files = read_secret(second, "tenant-a")
    assert secret.type == "kubernetes.io/tls" and set(files) == {"tls.crt", "tls.key", "ca.crt"}
    intermediate = x509.load_pem_x509_certificate(files["tls.crt"])
    names = intermediate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["istiod.tenant-a.svc", "istiod-tenant-a.tenant-a.svc"]
    assert_verifies(tmp_path, files["ca.crt"], {"ca-cert.pem": files["tls.crt"], "ca-key.pem": files["tls.key"]})


def test_root_rotation_without_an_outage(run, two_clusters, pki_dir, tmp_path):
    first = two_clusters[0]
    old_root, new_root = pki_dir / "root", pki_dir / "root-2"
    before = api_request_counts(first.kubeconfig)
    created = run(first, {"root_dir": str(new_root), "root_only": True, "key_type": "ecdsa"})
    assert created["changed"] is True and created["root"]["generated"] is True, created.get("msg")
    assert writes(before, api_request_counts(first.kubeconfig)) == {}
    files_before = read_secret(first)[1]

    # Step 2: trust both roots, still sign with the old one. The intermediate stays.
    trust_both = run(first, args_for(pki_dir, "cluster1", additional_roots=[str(new_root / "root-cert.pem")]))
    assert trust_both["changed"] is True and trust_both["istiod_restart_needed"] is True, trust_both.get("msg")
    assert trust_both["intermediate"]["issued"] is False
    step2 = read_secret(first)[1]
    assert step2["ca-cert.pem"] == files_before["ca-cert.pem"]
    assert [fingerprint(c) for c in certificates(step2["root-cert.pem"])] == [
        trust_both["root"]["fingerprint_sha256"],
        created["root"]["fingerprint_sha256"],
    ]

    # Step 3: sign with the new root, still trust the old one.
    switched = run(first, args_for(pki_dir, "cluster1", root_dir=str(new_root),
                                   additional_roots=[str(old_root / "root-cert.pem")]))  # fmt: skip
    assert switched["changed"] is True, switched.get("msg")
    assert switched["intermediate"]["issued"] is True
    assert switched["intermediate"]["reason"] == "it is not signed by the root"
    assert switched["istiod_restart_needed"] is False  # the same two roots; istiod reloads the intermediate
    step3 = read_secret(first)[1]
    assert len(certificates(step3["root-cert.pem"])) == 2
    # Leaves of the old and of the new intermediate both verify against the combined bundle, and the bundle of
    # step 2 already trusts leaves of the new root: no moment in which one side rejects the other.
    assert_verifies(tmp_path, step3["root-cert.pem"], step2)
    assert_verifies(tmp_path, step3["root-cert.pem"], step3)
    assert_verifies(tmp_path, step2["root-cert.pem"], step3)

    # Step 4: drop the old root; its leaves no longer verify.
    dropped = run(first, args_for(pki_dir, "cluster1", root_dir=str(new_root)))
    assert dropped["changed"] is True and dropped["istiod_restart_needed"] is True
    assert dropped["intermediate"]["issued"] is False
    step4 = read_secret(first)[1]
    assert [fingerprint(c) for c in certificates(step4["root-cert.pem"])] == [created["root"]["fingerprint_sha256"]]
    old_leaf = make_leaf(step2["ca-cert.pem"], step2["ca-key.pem"])
    assert openssl_verify(tmp_path, step4["root-cert.pem"], step2["ca-cert.pem"], old_leaf).returncode != 0


# Refusals: each fails with its sentence and writes nothing


def self_signed(**flaws) -> tuple:
    """(certificate PEM, key) of a self-signed CA with `flaws` (selfsigned.self_signed_ca's options)."""
    certificate, key = self_signed_ca(**flaws)
    return pem(certificate, key)[0], key


def key_pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def given_root(pki_dir, certificate_pem, key, **overrides):
    args = args_for(pki_dir, "cluster1", root_cert=certificate_pem, root_key=key_pem(key), **overrides)
    del args["root_dir"]
    return args


def half_root_dir(pki_dir, keep):
    directory = pki_dir / f"half-{keep}"
    directory.mkdir(exist_ok=True)
    source = pki_dir / "root-2" / keep
    (directory / keep).write_bytes(source.read_bytes())
    return str(directory)


REFUSALS = {
    "root that is not a CA": (
        lambda d: given_root(d, *self_signed(ca=False)),
        "root_cert is not a CA certificate (basicConstraints CA:true is missing); give a root CA",
    ),
    "root without keyCertSign": (
        lambda d: given_root(d, *self_signed(key_cert_sign=False)),
        "root_cert lacks the keyCertSign key usage, so it may not sign an intermediate; give a root CA",
    ),
    "key of another certificate": (
        lambda d: given_root(d, self_signed()[0], self_signed()[1]),
        "the root key does not match root_cert; give the key that belongs to this certificate",
    ),
    "expired root": (
        lambda d: given_root(d, *self_signed(days=10, start_days_ago=20)),
        "root_cert expired on",
    ),
    "intermediate outliving the root": (
        lambda d: given_root(d, *self_signed(days=100)),
        "validity_days (730) is longer than the root's remaining life",
    ),
    "unparsable root_cert": (
        lambda d: given_root(d, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", self_signed()[1]),
        "root_cert is not a parsable PEM certificate",
    ),
    "unparsable additional root": (
        lambda d: args_for(d, "cluster1", additional_roots=["-----BEGIN CERTIFICATE-----\nAAAA\n"]),
        "additional_roots[0] is not a parsable PEM certificate",
    ),
    "root_dir with a certificate but no key": (
        lambda d: args_for(d, "cluster1", root_dir=half_root_dir(d, "root-cert.pem")),
        "holds root-cert.pem but not root-key.pem; restore root-key.pem from your backup",
    ),
    "root_dir with a key but no certificate": (
        lambda d: args_for(d, "cluster1", root_dir=half_root_dir(d, "root-key.pem")),
        "holds root-key.pem but not root-cert.pem; restore root-cert.pem from your backup",
    ),
    "renew_before not shorter than validity_days": (
        lambda d: args_for(d, "cluster1", renew_before=730),
        "renew_before (730 days) must be at least 0 and shorter than validity_days (730)",
    ),
    "format switch of an existing Secret": (
        lambda d: args_for(d, "cluster1", root_dir=str(d / "root-2"), format="tls"),
        "format tls needs a Secret of type kubernetes.io/tls, but mesh-ca/cacerts has type Opaque",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_fail_with_the_reason_and_write_nothing(case, run, two_clusters, pki_dir):
    first = two_clusters[0]
    make_args, message = REFUSALS[case]
    args = make_args(pki_dir)
    secret_before = read_secret(first)[0]
    before = api_request_counts(first.kubeconfig)
    result = run(first, args)
    assert result.get("failed") is True, result
    assert message in result["msg"]
    assert "PRIVATE KEY" not in str(result)
    assert writes(before, api_request_counts(first.kubeconfig)) == {}
    assert read_secret(first)[0].metadata.resource_version == secret_before.metadata.resource_version


# Verbose output


def test_verbose_runs_print_no_private_key(two_clusters, pki_dir, tmp_path):
    second = two_clusters[1]
    inline_cert, inline_key = self_signed()
    tasks = [
        {  # a generated root, a new Secret
            "name": "from root_dir",
            MODULE: args_for(
                pki_dir, "verbose-1", namespace="verbose-1", root_dir=str(pki_dir / "root-3"), key_type="ecdsa"
            ),
        },  # fmt: skip
        {  # the root key inline, as it would come from Vault
            "name": "inline root",
            MODULE: given_root(pki_dir, inline_cert, inline_key, namespace="verbose-2", key_type="ecdsa"),
        },
        {"name": "inline root again", MODULE: given_root(pki_dir, inline_cert, inline_key, namespace="verbose-2")},
        {  # a refusal whose input holds a key
            "name": "refused",
            MODULE: given_root(pki_dir, inline_cert, self_signed()[1], namespace="verbose-2"),
            "ignore_errors": True,
        },
    ]
    completed = run_verbose(second.kubeconfig, tasks, tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert "ok=4" in output and "changed=2" in output and "ignored=1" in output
    assert "EXEC /bin/sh -c" in output and "AnsiballZ_istio_cacerts.py" in output  # -vvv took effect
    inline_fingerprint = fingerprint(x509.load_pem_x509_certificate(inline_cert.encode()))
    assert f'"fingerprint_sha256": "{inline_fingerprint}"' in output  # the inline key signed, unprinted
    assert '"ca-key.pem": "<hidden>"' in output  # the diff names the key's file, not its content
    assert "the root key does not match root_cert" in output
    assert "PRIVATE KEY" not in output
    assert read_secret(second, "verbose-1") is not None and read_secret(second, "verbose-2") is not None


def test_state_absent_deletes_only_the_secret_this_module_wrote(run, two_clusters, pki_dir):
    _first, second = two_clusters
    core = client.CoreV1Api(second.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="hand-made")))
    core.create_namespaced_secret(
        "hand-made", client.V1Secret(metadata=client.V1ObjectMeta(name="cacerts"), string_data={"k": "v"})
    )
    checked = run(second, {"namespace": "verbose-1", "state": "absent"}, check=True, diff=True)
    assert checked["changed"] and read_secret(second, "verbose-1") is not None
    assert "PRIVATE KEY" not in str(checked["diff"])

    removed = run(second, {"namespace": "verbose-1", "state": "absent"})
    assert removed["objects"] == [{"kind": "Secret", "namespace": "verbose-1", "name": "cacerts", "action": "deleted"}]
    assert read_secret(second, "verbose-1") is None
    assert read_secret(second, "verbose-2") is not None  # another namespace's cacerts stays
    assert not run(second, {"namespace": "verbose-1", "state": "absent"})["changed"]
    # A cacerts Secret someone else wrote stays, and asking costs no write.
    before = api_request_counts(second.kubeconfig)
    assert not run(second, {"namespace": "hand-made", "state": "absent"})["changed"]
    assert writes(before, api_request_counts(second.kubeconfig)) == {}
    assert read_secret(second, "hand-made") is not None
