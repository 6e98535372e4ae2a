"""Self-signed CA certificates for tests that need a root the collection did not make: a weak RSA one, or one with
a flaw (not a CA, no keyCertSign, expired, about to expire)."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def self_signed_ca(key=None, ca=True, key_cert_sign=True, days=3650, start_days_ago=1, now=None) -> tuple:
    """(certificate, private key) of a self-signed CA, valid from `start_days_ago` before `now` (the clock's, unless
    given) for `days`; an EC P-256 key unless `key` is given."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test CA")])
    start = (now or datetime.datetime.now(datetime.timezone.utc)) - datetime.timedelta(days=start_days_ago)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, key_cert_sign, False, False, False), True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def rsa_ca(bits: int, now=None) -> tuple:
    """(certificate, private key) of a self-signed CA with an RSA key of `bits`."""
    return self_signed_ca(rsa.generate_private_key(public_exponent=65537, key_size=bits), now=now)


def pem(certificate, key) -> tuple:
    """(certificate PEM, PKCS#8 key PEM) as text."""
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def weak_rsa_root_pem() -> dict:
    """root_cert and root_key of a 1024-bit RSA root, as istio_cacerts takes them."""
    cert, key = pem(*rsa_ca(1024))
    return {"root_cert": cert, "root_key": key}
