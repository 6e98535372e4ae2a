"""The plug-in CA's X.509 work: what is generated, that it verifies, and what is refused. No cluster."""

import datetime

import pytest
from ansible_collections.meshops.istio.plugins.module_utils import pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import NameOID, SignatureAlgorithmOID
from pem import pem_begin, pem_block
from workload_certs import leaf_signed_by as workload_leaf

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
CA_KEY_USAGE = {"digital_signature", "content_commitment", "key_encipherment", "key_cert_sign"}


@pytest.fixture(scope="module")
def root():
    return pki.generate_root("ecdsa", NOW)


@pytest.fixture(scope="module")
def intermediate(root):
    return pki.issue_intermediate(*root, "cluster1", "istio-system", "usergroup-1", key_type="ecdsa", now=NOW)


def leaf_signed_by(issuer, issuer_key, name="svc.example", now=NOW):
    return workload_leaf(issuer, issuer_key, now, name)


def verify(leaf, intermediates, roots, now=NOW):
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store(roots))
        .time(now)
        .build_server_verifier(verification.DNSName("svc.example"))
    )
    return verifier.verify(leaf, intermediates)


def key_usage_set(certificate) -> set:
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    names = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
             "key_cert_sign", "crl_sign")  # fmt: skip
    return {name for name in names if getattr(usage, name)}


def ext(certificate, extension_class):
    return certificate.extensions.get_extension_for_class(extension_class)


# Generated root


def test_root_is_what_istio_tools_make(root):
    certificate, key = root
    assert certificate.subject == x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Istio"), x509.NameAttribute(NameOID.COMMON_NAME, "Root CA")]
    )
    assert certificate.issuer == certificate.subject
    constraints = ext(certificate, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length is None
    assert ext(certificate, x509.KeyUsage).critical
    assert key_usage_set(certificate) == CA_KEY_USAGE
    assert ext(certificate, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        key.public_key()
    )
    assert certificate.not_valid_after_utc - NOW == datetime.timedelta(days=3650)
    assert NOW - certificate.not_valid_before_utc == pki.BACKDATE
    assert isinstance(certificate.signature_hash_algorithm, hashes.SHA256)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert pki.issued_by(certificate, certificate)


def test_rsa_root_has_a_4096_bit_key():
    certificate, key = pki.generate_root("rsa", NOW)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 4096
    assert pki.key_matches(certificate, key)
    assert pki.issued_by(certificate, certificate)


def test_unknown_key_type_is_refused():
    with pytest.raises(ValueError, match="key_type 'dsa'"):
        pki.new_private_key("dsa")


# Intermediate


def test_intermediate_is_what_istio_tools_make(root, intermediate):
    root_cert = root[0]
    certificate, key = intermediate
    assert [(a.oid, a.value) for a in certificate.subject] == [
        (NameOID.ORGANIZATION_NAME, "Istio"),
        (NameOID.COMMON_NAME, "Intermediate CA"),
        (NameOID.LOCALITY_NAME, "cluster1"),
    ]
    assert certificate.issuer == root_cert.subject
    constraints = ext(certificate, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    assert ext(certificate, x509.KeyUsage).critical and key_usage_set(certificate) == CA_KEY_USAGE
    assert ext(certificate, x509.SubjectKeyIdentifier).value == x509.SubjectKeyIdentifier.from_public_key(
        key.public_key()
    )
    assert (
        ext(certificate, x509.AuthorityKeyIdentifier).value.key_identifier
        == ext(root_cert, x509.SubjectKeyIdentifier).value.digest
    )
    assert pki.dns_names(certificate) == ["istiod.istio-system.svc", "istiod-usergroup-1.istio-system.svc"]
    assert certificate.not_valid_after_utc - NOW == datetime.timedelta(days=730)
    assert pki.issued_by(certificate, root_cert) and pki.key_matches(certificate, key)
    assert pki.locality(certificate) == "cluster1"


def test_intermediate_without_revision_names_only_istiod():
    root_cert, root_key = pki.generate_root("ecdsa", NOW)
    certificate = pki.issue_intermediate(root_cert, root_key, "c2", "usergroup-2", key_type="ecdsa", now=NOW)[0]
    assert pki.dns_names(certificate) == ["istiod.usergroup-2.svc"]
    # The default revision's istiod Service is plain `istiod`.
    default = pki.issue_intermediate(root_cert, root_key, "c2", "ns", "default", key_type="ecdsa", now=NOW)[0]
    assert pki.dns_names(default) == ["istiod.ns.svc"]


def test_intermediate_of_an_rsa_root_keeps_the_root_signature_type():
    root_cert, root_key = pki.generate_root("rsa", NOW)
    certificate, key = pki.issue_intermediate(root_cert, root_key, "c1", "istio-system", key_type="ecdsa", now=NOW)
    assert certificate.signature_algorithm_oid == SignatureAlgorithmOID.RSA_WITH_SHA256
    assert isinstance(root_cert.public_key(), rsa.RSAPublicKey) and isinstance(key, ec.EllipticCurvePrivateKey)
    assert pki.issued_by(certificate, root_cert)


# Verification


def test_a_leaf_of_the_intermediate_verifies_with_the_cryptography_verifier(root, intermediate):
    leaf = leaf_signed_by(*intermediate)
    chain = verify(leaf, [intermediate[0]], [root[0]])
    assert [c.subject for c in chain] == [leaf.subject, intermediate[0].subject, root[0].subject]
    assert pki.chain_problem([leaf, intermediate[0]], [root[0]], NOW) is None


def test_leaves_of_two_clusters_verify_against_the_shared_root(root):
    for cluster in ("cluster1", "cluster2"):
        certificate, key = pki.issue_intermediate(*root, cluster, "istio-system", key_type="ecdsa", now=NOW)
        assert len(verify(leaf_signed_by(certificate, key), [certificate], [root[0]])) == 3


def test_another_root_does_not_verify(root, intermediate):
    other_root = pki.generate_root("ecdsa", NOW)[0]
    leaf = leaf_signed_by(*intermediate)
    with pytest.raises(verification.VerificationError):
        verify(leaf, [intermediate[0]], [other_root])
    assert not pki.issued_by(intermediate[0], other_root)
    assert "not signed by any of the given roots" in pki.chain_problem([leaf, intermediate[0]], [other_root], NOW)


def test_chain_problem_names_an_expired_certificate(root, intermediate):
    later = NOW + datetime.timedelta(days=731)
    assert "Intermediate CA" in pki.chain_problem([intermediate[0]], [root[0]], later)
    swapped = pki.chain_problem([leaf_signed_by(*intermediate), root[0]], [root[0]], NOW)
    assert "is not signed by CN=Root CA" in swapped


# Serialising and the Secret


def test_fingerprint_is_sha256_of_the_der_as_openssl_prints_it(root):
    der = root[0].public_bytes(serialization.Encoding.DER)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    assert pki.fingerprint(root[0]) == ":".join(f"{b:02X}" for b in digest.finalize())


def test_istio_secret_data(root, intermediate):
    other_root = pki.generate_root("ecdsa", NOW)[0]
    bundle = pki.root_bundle(root[0], [other_root])
    data = pki.secret_data(*intermediate, root[0], bundle)
    assert set(data) == set(pki.ISTIO_KEYS)
    assert pki.load_certificate(data["ca-cert.pem"]) == intermediate[0]
    assert pki.key_matches(intermediate[0], pki.load_private_key(data["ca-key.pem"]))
    assert data["ca-key.pem"].startswith(pem_begin("PRIVATE KEY").encode())
    assert pki.load_certificates(data["root-cert.pem"]) == [root[0], other_root]
    assert pki.load_certificates(data["cert-chain.pem"]) == [intermediate[0], root[0]]


def test_tls_secret_data(root, intermediate):
    data = pki.secret_data(*intermediate, root[0], [root[0]], "tls")
    assert set(data) == set(pki.TLS_KEYS)
    assert pki.load_certificate(data["tls.crt"]) == intermediate[0]
    assert pki.key_matches(intermediate[0], pki.load_private_key(data["tls.key"]))
    assert pki.load_certificates(data["ca.crt"]) == [root[0]]


def test_root_bundle_puts_the_signing_root_first_and_each_root_once(root):
    other = pki.generate_root("ecdsa", NOW)[0]
    assert pki.root_bundle(root[0], [other, root[0], other]) == [root[0], other]
    assert pki.root_bundle(other, [root[0]]) == [other, root[0]]


def test_describe_has_no_key_material(root):
    described = pki.describe(root[0])
    assert described == {
        "subject": "CN=Root CA,O=Istio",
        "fingerprint_sha256": pki.fingerprint(root[0]),
        "not_after": (NOW + datetime.timedelta(days=3650)).isoformat(),
    }


# Loading refusals


def test_garbage_is_not_a_certificate():
    with pytest.raises(pki.PemError, match="holds no PEM certificate"):
        pki.load_certificates(b"hello")
    with pytest.raises(pki.PemError, match="is not a parsable PEM certificate"):
        pki.load_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


def test_a_bundle_is_not_one_certificate(root):
    other = pki.generate_root("ecdsa", NOW)[0]
    with pytest.raises(pki.PemError, match="holds 2 certificates where one is expected"):
        pki.load_certificate(pki.bundle_pem([root[0], other]))


def test_key_refusals_never_quote_the_key(root):
    with pytest.raises(pki.PemError, match="holds no PEM private key"):
        pki.load_private_key(pki.certificate_pem(root[0]))
    broken = pem_block("PRIVATE KEY", "TUlJQ1NFQ1JFVA==").encode()  # not a key
    with pytest.raises(pki.PemError, match="is not a parsable PEM private key") as refused:
        pki.load_private_key(broken)
    assert "TUlJQ1NFQ1JFVA" not in str(refused.value)
    encrypted = root[1].private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    with pytest.raises(pki.PemError, match="is an encrypted private key"):
        pki.load_private_key(encrypted)


def test_pkcs1_rsa_and_sec1_ec_keys_load():
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pkcs1 = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert pkcs1.startswith(pem_begin("RSA PRIVATE KEY").encode())
    assert pki.load_private_key(pkcs1).private_numbers() == rsa_key.private_numbers()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    sec1 = ec_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    assert pki.load_private_key(sec1).private_numbers() == ec_key.private_numbers()


def test_key_matches_only_its_own_certificate(root, intermediate):
    assert pki.key_matches(root[0], root[1])
    assert not pki.key_matches(root[0], intermediate[1])
