"""Throwaway PKI for a local cluster: a CA, the API server's serving certificate, client certificates and
the service-account signing key. Test infrastructure only; the collection's CA code lives in plugins/."""

import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=30)


def _name(common_name, organization=None):
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _key_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject, issuer, public_key):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _write(path, data, mode=0o644):
    path.write_bytes(data)
    path.chmod(mode)


def write_cluster_pki(directory: Path, cluster_name: str) -> dict:
    """Writes ca, apiserver, admin client and service-account key files; returns their paths by role."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_subject = _name(f"{cluster_name}-ca")
    ca = (
        _builder(ca_subject, ca_subject, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def issue(common_name, organization=None, server_names=()):
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = _builder(_name(common_name, organization), ca_subject, key.public_key()).add_extension(
            x509.ExtendedKeyUsage([usage]), critical=False
        )
        if server_names:
            sans = [
                x509.IPAddress(ipaddress.ip_address(n)) if n[0].isdigit() else x509.DNSName(n) for n in server_names
            ]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    paths = cluster_pki_paths(directory)
    _write(paths["ca"], _cert_pem(ca))
    _write(paths["ca-key"], _key_pem(ca_key), 0o600)
    server_names = ("127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default.svc")
    for role, (key, cert) in {
        "apiserver": issue("kube-apiserver", server_names=server_names),
        "admin": issue("meshops-admin", organization="system:masters"),
    }.items():
        _write(paths[role], _cert_pem(cert))
        _write(paths[f"{role}-key"], _key_pem(key), 0o600)
    service_account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write(paths["service-account-key"], _key_pem(service_account_key), 0o600)
    return paths


def cluster_pki_paths(directory: Path) -> dict:
    """Where write_cluster_pki puts each file, by role (ca, apiserver, admin, and each one's -key)."""
    paths = {name: directory / f"{name}.pem" for name in ("ca", "apiserver", "admin")}
    keys = {f"{name}-key": directory / f"{name}-key.pem" for name in ("ca", "apiserver", "admin", "service-account")}
    return {**paths, **keys}
