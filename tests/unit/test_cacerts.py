"""What istio_cacerts refuses, where its root comes from and when the live intermediate stays. No cluster."""

import base64
import datetime
import os
import stat

import pytest
from ansible_collections.meshops.istio.plugins.module_utils import cacerts, pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pem import pem_block

NOW = datetime.datetime(2026, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)


def spec(**overrides):
    """A spec as the module builds it from its parameters, with `overrides` (parameter names)."""
    base = {
        "namespace": "istio-system",
        "state": "present",
        "cluster_name": "cluster1",
        "revision": None,
        "root_dir": None,
        "root_cert": None,
        "root_key": None,
        "root_only": False,
        "additional_roots": [],
        "key_type": "ecdsa",
        "validity_days": 730,
        "renew_before": 30,
        "format": "istio",
        "force_conflicts": False,
    }
    return cacerts.CacertsSpec.from_params({**base, **overrides})


def make_ca(ca=True, key_cert_sign=True, days=3650, start=NOW, key_usage=True):
    """A self-signed certificate with the given flaws, to feed the refusals."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Some CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start - datetime.timedelta(days=1))
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if key_usage:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, key_cert_sign, False, False, False), critical=True
        )
    return builder.sign(key, hashes.SHA256()), key


def pem_spec(certificate, key, **overrides):
    return spec(
        root_cert=pki.certificate_pem(certificate).decode(), root_key=pki.private_key_pem(key).decode(), **overrides
    )


@pytest.fixture(scope="module")
def root():
    return pki.generate_root("ecdsa", NOW)


# Parameters


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"namespace": "Istio_System"}, "namespace 'Istio_System' must be a DNS-1123 label"),
        ({"revision": "1-31"}, None),
        ({"revision": "Rev.1"}, "revision 'Rev.1' must be a DNS-1123 label"),
        ({"cluster_name": None}, "cluster_name is required unless root_only is true"),
        ({"cluster_name": "my cluster"}, "cluster_name 'my cluster' must be 1-64 letters"),
        ({"validity_days": 0, "renew_before": 0}, "validity_days is 0; give a positive number of days"),
        ({"renew_before": 730}, "renew_before (730 days) must be at least 0 and shorter than validity_days (730)"),
        ({"renew_before": -1}, "renew_before (-1 days) must be at least 0"),
    ],
)
def test_parameter_refusals(overrides, message):
    if message is None:
        cacerts.validate(spec(**overrides))
        return
    with pytest.raises(cacerts.Refusal) as refused:
        cacerts.validate(spec(**overrides))
    assert message in str(refused.value)


def test_root_only_needs_no_cluster_name():
    cacerts.validate(spec(cluster_name=None, root_only=True))


def test_the_spec_resolves_paths_and_never_shows_the_root_key(root):
    given = pem_spec(*root)
    assert "PRIVATE KEY" in given.root_key and "PRIVATE KEY" not in repr(given)
    assert spec(root_dir="~/pki").root_dir == os.path.expanduser("~/pki")
    assert spec(format="tls").secret_format == "tls"


# Reading PEM parameters


def test_read_pem_takes_content_or_a_path(tmp_path, root):
    content = pki.certificate_pem(root[0])
    path = tmp_path / "root.pem"
    path.write_bytes(content)
    assert cacerts.read_pem(content.decode(), "root_cert") == content
    assert cacerts.read_pem(str(path), "root_cert") == content


def test_read_pem_of_a_missing_file_names_the_parameter_but_never_a_secret_value(tmp_path):
    with pytest.raises(cacerts.Refusal, match=r"root_cert \('/nope/root.pem'\) is neither PEM content"):
        cacerts.read_pem("/nope/root.pem", "root_cert")
    with pytest.raises(cacerts.Refusal) as refused:
        cacerts.read_pem("MIIEvQIBADANBgkqhkiG9w0B", "root_key", secret=True)
    assert str(refused.value).startswith("root_key is neither PEM content")
    assert "MIIEvQ" not in str(refused.value)


# Refusals of a given root


def refusal(p):
    with pytest.raises(cacerts.Refusal) as refused:
        cacerts.signing_root(p, check_mode=False, now=NOW)
    return str(refused.value)


def test_a_good_given_root_is_accepted(root):
    signing, warnings = cacerts.signing_root(pem_spec(*root), check_mode=False, now=NOW)
    assert signing.certificate == root[0] and not signing.generated and warnings == []


def test_root_that_is_not_a_ca_is_refused():
    message = refusal(pem_spec(*make_ca(ca=False)))
    assert message == "root_cert is not a CA certificate (basicConstraints CA:true is missing); give a root CA"


def test_root_without_key_cert_sign_is_refused():
    assert "root_cert lacks the keyCertSign key usage" in refusal(pem_spec(*make_ca(key_cert_sign=False)))
    assert "root_cert lacks the keyCertSign key usage" in refusal(pem_spec(*make_ca(key_usage=False)))


def test_key_of_another_certificate_is_refused(root):
    other_key = make_ca()[1]
    message = refusal(pem_spec(root[0], other_key))
    assert message == "the root key does not match root_cert; give the key that belongs to this certificate"


def test_expired_root_is_refused():
    expired = make_ca(days=100, start=NOW - datetime.timedelta(days=200))
    message = refusal(pem_spec(*expired))
    assert message.startswith("root_cert expired on 2026-01-21; rotate to a new root")


def test_intermediate_outliving_the_root_is_refused():
    short = make_ca(days=365)
    message = refusal(pem_spec(*short, validity_days=730))
    assert message.startswith("validity_days (730) is longer than the root's remaining life (365 days")
    assert "lower validity_days or rotate the root" in message
    cacerts.signing_root(pem_spec(*short, validity_days=300), check_mode=False, now=NOW)


def test_unparsable_root_cert_and_key_are_refused(root):
    bad_cert = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    message = refusal(spec(root_cert=bad_cert, root_key=pki.private_key_pem(root[1]).decode()))
    assert message.startswith("root_cert is not a parsable PEM certificate")
    assert message.endswith("give the root CA certificate in PEM")
    bad_key = pem_block("PRIVATE KEY", "c2VjcmV0LWJ5dGVz")  # base64 of b"secret-bytes": not a key
    message = refusal(spec(root_cert=pki.certificate_pem(root[0]).decode(), root_key=bad_key))
    assert message.startswith("root_key is not a parsable PEM private key")
    assert "c2VjcmV0" not in message


# root_dir


def test_under_umask_000_every_directory_and_file_of_a_new_root_is_private(tmp_path):
    directory = tmp_path / "not" / "yet" / "pki"
    previous = os.umask(0)
    try:
        cacerts.signing_root(spec(root_dir=str(directory)), check_mode=False, now=NOW)
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in (tmp_path / "not").rglob("*")}
    modes["not"] = stat.S_IMODE((tmp_path / "not").stat().st_mode)
    assert modes == {
        "not": 0o700, "yet": 0o700, "pki": 0o700, "root-key.pem": 0o600, "root-cert.pem": 0o600, ".lock": 0o600,
    }  # fmt: skip


def test_root_dir_generates_once_with_a_private_key_file_and_reuses_it(tmp_path):
    directory = tmp_path / "pki"
    first = cacerts.signing_root(spec(root_dir=str(directory)), check_mode=False, now=NOW)[0]
    assert first.generated
    assert stat.S_IMODE(os.stat(directory / "root-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert pki.load_certificate((directory / "root-cert.pem").read_bytes()) == first.certificate
    again, warnings = cacerts.signing_root(spec(root_dir=str(directory), key_type="rsa"), check_mode=False, now=NOW)
    assert not again.generated and warnings == []
    assert pki.fingerprint(again.certificate) == pki.fingerprint(first.certificate)
    assert pki.key_matches(again.certificate, again.key)


def test_root_dir_in_check_mode_saves_nothing(tmp_path):
    directory = tmp_path / "pki"
    root = cacerts.signing_root(spec(root_dir=str(directory)), check_mode=True, now=NOW)[0]
    assert root.generated and not directory.exists()
    directory.mkdir()
    cacerts.signing_root(spec(root_dir=str(directory)), check_mode=True, now=NOW)
    assert sorted(p.name for p in directory.iterdir()) == [".lock"]


@pytest.mark.parametrize(("present", "missing"), [("root-cert.pem", "root-key.pem"), ("root-key.pem", "root-cert.pem")])
def test_root_dir_with_half_a_root_is_refused(tmp_path, root, present, missing):
    content = {"root-cert.pem": pki.certificate_pem(root[0]), "root-key.pem": pki.private_key_pem(root[1])}
    (tmp_path / present).write_bytes(content[present])
    message = refusal(spec(root_dir=str(tmp_path)))
    assert message == (
        f"root_dir {tmp_path} holds {present} but not {missing}; restore {missing} from your backup "
        f"(a root is never regenerated silently), or remove {present} to generate a new root"
    )
    assert not (tmp_path / missing).exists()


def test_root_dir_with_a_readable_key_warns(tmp_path, root):
    (tmp_path / "root-cert.pem").write_bytes(pki.certificate_pem(root[0]))
    (tmp_path / "root-key.pem").write_bytes(pki.private_key_pem(root[1]))
    os.chmod(tmp_path / "root-key.pem", 0o644)
    warnings = cacerts.signing_root(spec(root_dir=str(tmp_path)), check_mode=False, now=NOW)[1]
    assert warnings == [f"{tmp_path}/root-key.pem is readable by others than its owner; run chmod 600 on it"]


def test_root_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in refusal(spec(root_dir=str(tmp_path / "file")))


def test_root_dir_with_an_expired_root_is_refused(tmp_path):
    expired = make_ca(days=10, start=NOW - datetime.timedelta(days=20))
    (tmp_path / "root-cert.pem").write_bytes(pki.certificate_pem(expired[0]))
    (tmp_path / "root-key.pem").write_bytes(pki.private_key_pem(expired[1]))
    assert refusal(spec(root_dir=str(tmp_path))).startswith(f"root_dir {tmp_path}'s root-cert.pem expired on")


def test_generated_root_is_refused_for_an_intermediate_as_long(tmp_path):
    message = refusal(spec(root_dir=str(tmp_path / "pki"), validity_days=3650, renew_before=30))
    assert message.startswith("validity_days (3650) is not shorter than a new root's life (3650 days)")
    assert not (tmp_path / "pki" / "root-key.pem").exists()


# additional_roots


def test_additional_roots_take_bundles_and_paths(tmp_path, root):
    second, third = make_ca()[0], make_ca()[0]
    path = tmp_path / "old.pem"
    path.write_bytes(pki.certificate_pem(third))
    found = cacerts.additional_root_certificates([pki.bundle_pem([root[0], second]).decode(), str(path)], NOW)
    assert found == [root[0], second, third]


def test_additional_roots_refusals(root):
    with pytest.raises(cacerts.Refusal, match=r"^additional_roots\[0\] holds no PEM certificate"):
        cacerts.additional_root_certificates(["-----BEGIN nothing"], NOW)
    leaf = make_ca(ca=False)[0]
    with pytest.raises(cacerts.Refusal, match=r"^additional_roots\[1\] holds CN=Some CA, which is not a CA"):
        cacerts.additional_root_certificates([pki.certificate_pem(c).decode() for c in (root[0], leaf)], NOW)
    expired = make_ca(days=1, start=NOW - datetime.timedelta(days=5))[0]
    with pytest.raises(cacerts.Refusal, match=r"which expired on .*; remove it from additional_roots"):
        cacerts.additional_root_certificates([pki.certificate_pem(expired).decode()], NOW)


# Whether the live intermediate stays


@pytest.fixture(scope="module")
def issued(root):
    return pki.issue_intermediate(*root, "cluster1", "istio-system", "rev-1", days=730, key_type="ecdsa", now=NOW)


@pytest.mark.parametrize(
    ("overrides", "days_later", "reason"),
    [
        ({}, 0, None),
        ({"revision": "rev-1"}, 0, None),
        ({}, 690, None),
        ({}, 701, "it expires in 29 days, within renew_before (30 days)"),
        ({"renew_before": 100}, 631, "it expires in 99 days, within renew_before (100 days)"),
        ({}, 800, "it expires in 0 days, within renew_before (30 days)"),
        ({"cluster_name": "cluster2"}, 0, "its subject names cluster 'cluster1', not 'cluster2'"),
        ({"revision": "rev-2"}, 0, "it lacks the subjectAltName istiod-rev-2.istio-system.svc"),
        ({"namespace": "other"}, 0, "it lacks the subjectAltName istiod.other.svc"),
    ],
)
def test_intermediate_problem(root, issued, overrides, days_later, reason):
    now = NOW + datetime.timedelta(days=days_later)
    assert cacerts.intermediate_problem(*issued, root[0], spec(**overrides), now) == reason


def test_intermediate_of_another_root_or_with_another_key_is_re_issued(root, issued):
    other_root = pki.generate_root("ecdsa", NOW)[0]
    assert cacerts.intermediate_problem(*issued, other_root, spec(), NOW) == "it is not signed by the root"
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert cacerts.intermediate_problem(issued[0], other_key, root[0], spec(), NOW) == (
        "its key does not match its certificate"
    )


# The Secret


def live_secret(manifest, secret_type=None):
    return {**manifest, "type": secret_type or manifest["type"], "metadata": {**manifest["metadata"], "uid": "x"}}


def test_secret_round_trip(root, issued):
    bundle = pki.root_bundle(root[0])
    for secret_format, secret_type in (("istio", "Opaque"), ("tls", "kubernetes.io/tls")):
        manifest = cacerts.secret_manifest(
            "istio-system", secret_format, pki.secret_data(*issued, root[0], bundle, secret_format)
        )
        assert manifest["type"] == secret_type
        assert manifest["metadata"] == {"name": "cacerts", "namespace": "istio-system"}
        files = cacerts.secret_files(live_secret(manifest))
        certificate, key = cacerts.live_intermediate(files, secret_format)
        assert certificate == issued[0] and pki.key_matches(certificate, key)
        assert cacerts.live_bundle_fingerprints(files, secret_format) == {pki.fingerprint(root[0])}
        assert cacerts.unchanged(live_secret(manifest), manifest)
        assert cacerts.type_problem(live_secret(manifest), secret_format) is None


def test_changed_bundle_is_not_unchanged(root, issued):
    data = pki.secret_data(*issued, root[0], [root[0]])
    manifest = cacerts.secret_manifest("istio-system", "istio", data)
    rotated = cacerts.secret_manifest(
        "istio-system", "istio", pki.secret_data(*issued, root[0], [root[0], make_ca()[0]])
    )
    assert not cacerts.unchanged(live_secret(manifest), rotated)
    assert not cacerts.unchanged(None, manifest)


def test_garbage_in_a_live_secret_is_no_intermediate():
    files = cacerts.secret_files({"data": {"ca-cert.pem": base64.b64encode(b"junk").decode(), "ca-key.pem": "!!"}})
    assert files == {"ca-cert.pem": b"junk"}
    assert cacerts.live_intermediate(files, "istio") is None
    assert cacerts.live_intermediate({}, "tls") is None
    assert cacerts.live_bundle_fingerprints(files, "istio") == set()


def test_format_switch_is_refused(root, issued):
    manifest = cacerts.secret_manifest("istio-system", "istio", pki.secret_data(*issued, root[0], [root[0]]))
    assert cacerts.type_problem(live_secret(manifest), "tls") == (
        "format tls needs a Secret of type kubernetes.io/tls, but istio-system/cacerts has type Opaque, which "
        "Kubernetes cannot change in place; delete that Secret first or keep format: istio"
    )
    assert cacerts.type_problem(None, "tls") is None


def test_ensure_root_reports_generation_once(tmp_path):
    p = spec(root_dir=str(tmp_path / "new"), root_only=True, cluster_name=None)
    first = cacerts.ensure_root(p, check_mode=False, now=NOW)[0]
    second = cacerts.ensure_root(p, check_mode=False, now=NOW)[0]
    assert first["changed"] and first["root"]["generated"]
    assert not second["changed"] and second["root"] == {**first["root"], "generated": False}
    assert "key" not in repr(first).lower()


# The check verify.yml runs on live Secrets


@pytest.mark.parametrize("secret_format", ["istio", "tls"])
def test_bundle_problem_accepts_what_the_module_writes(root, issued, secret_format):
    files = pki.secret_data(*issued, root[0], [root[0]], secret_format)
    assert cacerts.bundle_problem(files, NOW) is None


def test_bundle_problem_names_each_break(root, issued):
    good = pki.secret_data(*issued, root[0], [root[0]])
    other_root = make_ca()
    other_key = pki.new_private_key("ecdsa")
    cases = {
        "lacks ca-key.pem": {k: v for k, v in good.items() if k != "ca-key.pem"},
        "ca-cert.pem does not match ca-key.pem": {**good, "ca-key.pem": pki.private_key_pem(other_key)},
        "cert-chain.pem does not start with ca-cert.pem": {**good, "cert-chain.pem": good["root-cert.pem"]},
        "is not signed by any of the given roots": {**good, "root-cert.pem": pki.certificate_pem(other_root[0])},
        "holds unparsable PEM": {**good, "root-cert.pem": b"not a PEM"},
    }
    for expected, files in cases.items():
        assert expected in cacerts.bundle_problem(files, NOW)
