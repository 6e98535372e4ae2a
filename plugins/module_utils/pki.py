# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure X.509 work for Istio's plug-in CA, on the `cryptography` library: load and check PEM, generate a root,
issue a per-cluster intermediate, verify signatures, fingerprints, and the `cacerts` Secret's data.

What is generated matches Istio's own tooling (tools/certs): subjects, extensions and lifetimes."""

from __future__ import annotations

import datetime

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import NameOID

    IMPORT_ERROR = None
except ImportError as error:  # reported by the module; the import sanity test runs without cryptography
    IMPORT_ERROR = error
    x509 = hashes = serialization = ec = rsa = NameOID = None
    InvalidSignature = UnsupportedAlgorithm = None

ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 730
RSA_BITS = 4096
# The weakest RSA key the collection accepts in a CA (NIST SP 800-131A: 2048 bits since 2014).
MIN_RSA_BITS = 2048
# Certificates start a little in the past so a cluster whose clock lags the controller's accepts them at once.
BACKDATE = datetime.timedelta(minutes=5)
KEY_TYPES = ("rsa", "ecdsa")
ISTIO_KEYS = ("ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem")
TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")


class PemError(ValueError):
    """PEM that cannot be used; the message says why, without any of the PEM's content."""


# Loading


def load_certificates(pem: bytes) -> list:
    """Every certificate in a PEM bundle, in order; at least one."""
    if b"-----BEGIN CERTIFICATE-----" not in pem:
        raise PemError("holds no PEM certificate (no BEGIN CERTIFICATE block)")
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError as error:
        raise PemError(f"is not a parsable PEM certificate ({_first_line(error)})") from None


def load_certificate(pem: bytes):
    certificates = load_certificates(pem)
    if len(certificates) != 1:
        raise PemError(f"holds {len(certificates)} certificates where one is expected")
    return certificates[0]


def load_private_key(pem: bytes):
    if b"PRIVATE KEY-----" not in pem:
        raise PemError("holds no PEM private key (no BEGIN ... PRIVATE KEY block)")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise PemError("is an encrypted private key; give it unencrypted (keep it in Ansible Vault)") from None
    except (ValueError, UnsupportedAlgorithm) as error:
        # The library's message never quotes the key; still keep only its first line.
        raise PemError(f"is not a parsable PEM private key ({_first_line(error)})") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise PemError("is neither an RSA nor an ECDSA key, the key types istiod can sign with")
    return key


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


# Facts about certificates


def weak_key_problem(certificate) -> str | None:
    """Why a certificate's key is too weak for a CA, or None: an RSA key under MIN_RSA_BITS bits."""
    key = certificate.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        return f"has a {key.key_size}-bit RSA key, under the {MIN_RSA_BITS} bits the collection accepts for a CA"
    return None


def key_matches(certificate, key) -> bool:
    def public(k):
        return k.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    return public(certificate.public_key()) == public(key.public_key())


def _extension(certificate, extension_class):
    try:
        return certificate.extensions.get_extension_for_class(extension_class).value
    except x509.ExtensionNotFound:
        return None


def is_ca(certificate) -> bool:
    constraints = _extension(certificate, x509.BasicConstraints)
    return constraints is not None and constraints.ca


def can_sign_certificates(certificate) -> bool:
    usage = _extension(certificate, x509.KeyUsage)
    return usage is not None and usage.key_cert_sign


def dns_names(certificate) -> list:
    names = _extension(certificate, x509.SubjectAlternativeName)
    return names.get_values_for_type(x509.DNSName) if names is not None else []


def not_after(certificate) -> datetime.datetime:
    return certificate.not_valid_after_utc


def not_before(certificate) -> datetime.datetime:
    return certificate.not_valid_before_utc


def remaining(certificate, now: datetime.datetime) -> datetime.timedelta:
    return not_after(certificate) - now


def fingerprint(certificate) -> str:
    """SHA-256 fingerprint as openssl prints it: upper-case hex pairs joined by colons."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


def subject(certificate) -> str:
    return certificate.subject.rfc4514_string()


def locality(certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.LOCALITY_NAME)
    return values[0].value if values else None


def issued_by(certificate, issuer) -> bool:
    """Whether `issuer` signed `certificate` (issuer name and signature, nothing else)."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def chain_problem(chain: list, roots: list, now: datetime.datetime) -> str | None:
    """Why `chain` (leaf first, each issued by the next) does not lead to one of `roots` at `now`; None if it does."""
    for certificate in list(chain) + list(roots):
        if not not_before(certificate) <= now <= not_after(certificate):
            return f"{subject(certificate)} is not valid at {now.isoformat()}"
    for child, parent in zip(chain[:-1], chain[1:], strict=True):
        if not issued_by(child, parent):
            return f"{subject(child)} is not signed by {subject(parent)}"
        if not (is_ca(parent) and can_sign_certificates(parent)):
            return f"{subject(parent)} is not a CA allowed to sign certificates"
    if not any(issued_by(chain[-1], root) for root in roots):
        return f"{subject(chain[-1])} is not signed by any of the given roots"
    return None


# Generating


def new_private_key(key_type: str = "rsa"):
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"key_type {key_type!r} is not one of {', '.join(KEY_TYPES)}")


def _ca_key_usage():
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=True,  # nonRepudiation
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _name(*attributes) -> object:
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])


def root_subject():
    return _name((NameOID.ORGANIZATION_NAME, "Istio"), (NameOID.COMMON_NAME, "Root CA"))


def intermediate_subject(cluster_name: str):
    return _name(
        (NameOID.ORGANIZATION_NAME, "Istio"),
        (NameOID.COMMON_NAME, "Intermediate CA"),
        (NameOID.LOCALITY_NAME, cluster_name),
    )


def istiod_dns_names(namespace: str, revision: str | None = None) -> list:
    names = [f"istiod.{namespace}.svc"]
    if revision and revision != "default":
        names.append(f"istiod-{revision}.{namespace}.svc")
    return names


def _builder(subject_name, issuer_name, public_key, now: datetime.datetime, days: int):
    return (
        x509.CertificateBuilder()
        .subject_name(subject_name)
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def generate_root(key_type: str = "rsa", now: datetime.datetime | None = None, days: int = ROOT_DAYS) -> tuple:
    """(certificate, key) of a new self-signed root CA as Istio's tools make it."""
    now = now or utc_now()
    key = new_private_key(key_type)
    certificate = (
        _builder(root_subject(), root_subject(), key.public_key(), now, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue_intermediate(
    root_certificate,
    root_key,
    cluster_name: str,
    namespace: str,
    revision: str | None = None,
    days: int = INTERMEDIATE_DAYS,
    key_type: str = "rsa",
    now: datetime.datetime | None = None,
) -> tuple:
    """(certificate, key) of a new intermediate CA for one cluster's istiod, signed by the root."""
    now = now or utc_now()
    key = new_private_key(key_type)
    root_ski = _extension(root_certificate, x509.SubjectKeyIdentifier)
    authority = (
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski)
        if root_ski is not None
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(root_certificate.public_key())
    )
    certificate = (
        _builder(intermediate_subject(cluster_name), root_certificate.subject, key.public_key(), now, days)
        .add_extension(authority, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in istiod_dns_names(namespace, revision)]),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return certificate, key


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


# Serialising


def certificate_pem(certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def private_key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def root_bundle(signing_root, additional_roots=()) -> list:
    """The roots workloads trust: the signing root first, then the others, each once."""
    bundle, seen = [], set()
    for certificate in [signing_root, *additional_roots]:
        if fingerprint(certificate) not in seen:
            seen.add(fingerprint(certificate))
            bundle.append(certificate)
    return bundle


def bundle_pem(certificates) -> bytes:
    return b"".join(certificate_pem(c) for c in certificates)


def secret_data(intermediate, intermediate_key, signing_root, bundle, secret_format: str = "istio") -> dict:
    """The `cacerts` Secret's files (PEM bytes) in Istio's own or the kubernetes.io/tls layout."""
    roots = bundle_pem(bundle)
    if secret_format == "tls":
        return {
            "tls.crt": certificate_pem(intermediate),
            "tls.key": private_key_pem(intermediate_key),
            "ca.crt": roots,
        }
    return {
        "ca-cert.pem": certificate_pem(intermediate),
        "ca-key.pem": private_key_pem(intermediate_key),
        "root-cert.pem": roots,
        "cert-chain.pem": certificate_pem(intermediate) + certificate_pem(signing_root),
    }


def describe(certificate) -> dict:
    """What a module may return about a certificate (never anything about its key)."""
    return {
        "subject": subject(certificate),
        "fingerprint_sha256": fingerprint(certificate),
        "not_after": not_after(certificate).isoformat(),
    }
