# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The `cacerts` Secret istiod plugs in: which root signs, whether the live intermediate can stay, what to refuse.

Pure checks first; `ensure_cacerts` at the end is what the istio_cacerts module calls. Private keys are only
ever held in memory, written to the Secret or to the root directory's key file (mode 0600), never returned."""

from __future__ import annotations

import base64
import contextlib
import datetime
import fcntl
import os
import re
import stat
from dataclasses import dataclass, field, fields

from . import pki
from .cluster import Cluster
from .engine import Engine, Owner
from .errors import Refusal, refuse
from .names import dns_label_errors
from .vocabulary import MAX_REVISION_LENGTH

OWNER_KIND = "cacerts"
SECRET_NAME = "cacerts"
ROOT_CERT_FILE = "root-cert.pem"
ROOT_KEY_FILE = "root-key.pem"
LOCK_FILE = ".lock"
SECRET_TYPES = {"istio": "Opaque", "tls": "kubernetes.io/tls"}
# (certificate, key, root bundle) file names per Secret layout.
FILES = {"istio": ("ca-cert.pem", "ca-key.pem", "root-cert.pem"), "tls": ("tls.crt", "tls.key", "ca.crt")}
CLUSTER_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,62}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class CacertsSpec:
    """What istio_cacerts is asked for, from the module's parameters."""

    namespace: str
    state: str
    cluster_name: str | None  # the cluster's Istio cluster ID; not needed for root_only or state: absent
    revision: str | None
    root_dir: str | None  # where the root is kept (or generated), the user's home expanded
    root_cert: str | None  # PEM, or the path of a PEM file
    root_key: str | None = field(repr=False)  # PEM, or the path of a PEM file
    root_only: bool
    additional_roots: tuple  # PEM bundles or paths, trusted next to the root
    key_type: str
    validity_days: int
    renew_before: int
    secret_format: str  # "istio" (ca-cert.pem, ...) or "tls" (tls.crt, ...)
    force_conflicts: bool

    @classmethod
    def from_params(cls, params: dict) -> CacertsSpec:
        given = {f.name: params[f.name] for f in fields(cls) if f.name in params}
        given["root_dir"] = os.path.expanduser(params["root_dir"]) if params["root_dir"] else None
        given["additional_roots"] = tuple(params["additional_roots"] or ())
        return cls(**given, secret_format=params["format"])


@dataclass
class RootCA:
    certificate: object
    key: object
    source: str  # how messages name where the root came from
    generated: bool = False


# Pure: parameters


def validate(spec: CacertsSpec) -> None:
    """Refuse, naming every bad parameter at once, what the argument spec lets through."""
    errors = []
    if not spec.root_only and not spec.cluster_name:
        errors.append("cluster_name is required unless root_only is true; give the cluster's Istio cluster ID")
    elif spec.cluster_name and not CLUSTER_NAME.match(spec.cluster_name):
        errors.append(
            f"cluster_name {spec.cluster_name!r} must be 1-64 letters, digits, '-', '_' or '.'; "
            "use the cluster's Istio cluster ID (values.global.multiCluster.clusterName)"
        )
    errors += dns_label_errors(spec.namespace, "namespace")
    if spec.revision:
        errors += dns_label_errors(spec.revision, "revision", MAX_REVISION_LENGTH)
    if spec.validity_days < 1:
        errors.append(f"validity_days is {spec.validity_days}; give a positive number of days")
    if not 0 <= spec.renew_before < spec.validity_days:
        errors.append(
            f"renew_before ({spec.renew_before} days) must be at least 0 and shorter than validity_days "
            f"({spec.validity_days}), or every run would re-issue the intermediate; lower renew_before"
        )
    refuse(errors)


def read_pem(value: str, parameter: str, secret: bool = False) -> bytes:
    """PEM given inline, or read from a file path on the host that runs the module."""
    if "-----BEGIN" in value:
        return value.encode()
    path = os.path.expanduser(value)
    if not os.path.isfile(path):
        shown = "" if secret else f" ({value!r})"
        raise Refusal(
            f"{parameter}{shown} is neither PEM content nor the path of a readable file; give the PEM text or "
            "the path of a PEM file on the host that runs the module"
        )
    with open(path, "rb") as handle:
        return handle.read()


def _parsed(loader, pem: bytes, parameter: str, fix: str):
    try:
        return loader(pem)
    except pki.PemError as error:
        raise Refusal(f"{parameter} {error}; {fix}") from None


# Pure: what makes a root or an intermediate unusable


def root_problems(root: RootCA, now: datetime.datetime) -> list:
    cert, source = root.certificate, root.source
    problems = []
    if not pki.is_ca(cert):
        problems.append(f"{source} is not a CA certificate (basicConstraints CA:true is missing); give a root CA")
    if not pki.can_sign_certificates(cert):
        problems.append(f"{source} lacks the keyCertSign key usage, so it may not sign an intermediate; give a root CA")
    if not pki.key_matches(cert, root.key):
        problems.append(f"the root key does not match {source}; give the key that belongs to this certificate")
    if pki.not_after(cert) <= now:
        problems.append(
            f"{source} expired on {pki.not_after(cert).date().isoformat()}; rotate to a new root "
            "(see the root rotation procedure in the module's examples)"
        )
    elif pki.not_before(cert) > now:
        problems.append(f"{source} is not valid before {pki.not_before(cert).isoformat()}; check the clock")
    return problems


def fit_problem(root_certificate, validity_days: int, now: datetime.datetime) -> str | None:
    """An intermediate must not outlive the root that signs it."""
    left = pki.remaining(root_certificate, now)
    if left <= datetime.timedelta(0) or datetime.timedelta(days=validity_days) <= left:
        return None
    return (
        f"validity_days ({validity_days}) is longer than the root's remaining life ({left.days} days, until "
        f"{pki.not_after(root_certificate).date().isoformat()}); lower validity_days or rotate the root"
    )


def additional_root_certificates(values: list, now: datetime.datetime) -> list:
    certificates = []
    for index, value in enumerate(values or []):
        parameter = f"additional_roots[{index}]"
        found = _parsed(pki.load_certificates, read_pem(value, parameter), parameter, "give PEM root certificates")
        for certificate in found:
            if not pki.is_ca(certificate):
                raise Refusal(
                    f"{parameter} holds {pki.subject(certificate)}, which is not a CA; give only root certificates"
                )
            if pki.not_after(certificate) <= now:
                raise Refusal(
                    f"{parameter} holds {pki.subject(certificate)}, which expired on "
                    f"{pki.not_after(certificate).date().isoformat()}; remove it from additional_roots"
                )
        certificates.extend(found)
    return certificates


def intermediate_problem(certificate, key, root_certificate, spec: CacertsSpec, now: datetime.datetime) -> str | None:
    """Why the live intermediate cannot stay (it is re-issued then), or None when it is still good."""
    if not pki.key_matches(certificate, key):
        return "its key does not match its certificate"
    if not pki.issued_by(certificate, root_certificate):
        return "it is not signed by the root"
    if not (pki.is_ca(certificate) and pki.can_sign_certificates(certificate)):
        return "it is not a CA allowed to sign certificates"
    left = pki.remaining(certificate, now)
    if left <= datetime.timedelta(days=spec.renew_before):
        return f"it expires in {max(left.days, 0)} days, within renew_before ({spec.renew_before} days)"
    if pki.locality(certificate) != spec.cluster_name:
        return f"its subject names cluster {pki.locality(certificate)!r}, not {spec.cluster_name!r}"
    missing = set(pki.istiod_dns_names(spec.namespace, spec.revision)) - set(pki.dns_names(certificate))
    if missing:
        return f"it lacks the subjectAltName {', '.join(sorted(missing))}"
    return None


# Pure: the Secret


def secret_files(secret: dict | None) -> dict:
    """A live Secret's data, base64-decoded; undecodable values are left out."""
    files = {}
    for name, value in ((secret or {}).get("data") or {}).items():
        with contextlib.suppress(ValueError, TypeError):
            files[name] = base64.b64decode(value, validate=True)
    return files


def live_intermediate(files: dict, secret_format: str) -> tuple | None:
    """(certificate, key) from a live Secret's files, or None when absent or unparsable."""
    cert_file, key_file, _bundle = FILES[secret_format]
    if cert_file not in files or key_file not in files:
        return None
    try:
        return pki.load_certificates(files[cert_file])[0], pki.load_private_key(files[key_file])
    except pki.PemError:
        return None


def secret_format_of(files: dict) -> str:
    return "tls" if FILES["tls"][0] in files else "istio"


def bundle_problem(files: dict, now: datetime.datetime) -> str | None:
    """Why istiod would not sign with a live `cacerts` Secret's files (None when the chain is valid): the
    intermediate must match its key and chain, through cert-chain.pem when present, to a root of the bundle."""
    secret_format = secret_format_of(files)
    names = FILES[secret_format]
    missing = [name for name in names if name not in files]
    if missing:
        return f"lacks {', '.join(missing)}"
    try:
        certificate = pki.load_certificates(files[names[0]])[0]
        key = pki.load_private_key(files[names[1]])
        roots = pki.load_certificates(files[names[2]])
        chain = pki.load_certificates(files.get("cert-chain.pem") or files[names[0]])
    except pki.PemError as error:
        return f"holds unparsable PEM ({error})"
    if not pki.key_matches(certificate, key):
        return f"{names[0]} does not match {names[1]}"
    if pki.fingerprint(chain[0]) != pki.fingerprint(certificate):
        return f"cert-chain.pem does not start with {names[0]}"
    # A chain that ends in a self-signed root lists that root; the check wants the certificates below it.
    below_root = [c for c in chain if not pki.issued_by(c, c)] or chain
    return pki.chain_problem(below_root, roots, now)


def describe_bundle(files: dict, now: datetime.datetime) -> dict:
    """What a report may show about a `cacerts` Secret's files: its intermediate and roots (subject, fingerprint,
    expiry) and why istiod could not sign with it (None when it can); nothing about the key."""
    secret_format = secret_format_of(files)
    live = live_intermediate(files, secret_format)
    try:
        roots = pki.load_certificates(files[FILES[secret_format][2]]) if FILES[secret_format][2] in files else []
    except pki.PemError:
        roots = []
    return {
        "intermediate": pki.describe(live[0]) if live else None,
        "root_certificates": [pki.describe(root) for root in roots],
        "problem": bundle_problem(files, now),
    }


def live_bundle_fingerprints(files: dict, secret_format: str) -> set:
    pem = files.get(FILES[secret_format][2])
    if not pem:
        return set()
    try:
        return {pki.fingerprint(c) for c in pki.load_certificates(pem)}
    except pki.PemError:
        return set()


def secret_manifest(namespace: str, secret_format: str, files: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": SECRET_NAME, "namespace": namespace},
        "type": SECRET_TYPES[secret_format],
        "data": {name: base64.b64encode(content).decode() for name, content in files.items()},
    }


def type_problem(live: dict | None, secret_format: str) -> str | None:
    if live is None:
        return None
    have, want = live.get("type") or "Opaque", SECRET_TYPES[secret_format]
    if have == want:
        return None
    other = {v: k for k, v in SECRET_TYPES.items()}.get(have)
    keep = f" or keep format: {other}" if other else ""
    return (
        f"format {secret_format} needs a Secret of type {want}, but {live['metadata']['namespace']}/{SECRET_NAME} "
        f"has type {have}, which Kubernetes cannot change in place; delete that Secret first{keep}"
    )


def unchanged(live: dict | None, manifest: dict) -> bool:
    live_data = (live or {}).get("data") or {}
    return live is not None and all(live_data.get(k) == v for k, v in manifest["data"].items())


# Controller: the root


def _given_root(spec: CacertsSpec) -> RootCA:
    cert_pem = read_pem(spec.root_cert, "root_cert")
    key_pem = read_pem(spec.root_key, "root_key", secret=True)
    certificate = _parsed(pki.load_certificate, cert_pem, "root_cert", "give the root CA certificate in PEM")
    key = _parsed(pki.load_private_key, key_pem, "root_key", "give the root CA's private key in PEM")
    return RootCA(certificate, key, "root_cert")


@contextlib.contextmanager
def _locked(directory: str):
    """Serialise runs that share a root directory, so two clusters never generate two roots."""
    descriptor = os.open(os.path.join(directory, LOCK_FILE), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _root_from_dir(spec: CacertsSpec, check_mode: bool, now: datetime.datetime) -> tuple:
    """(RootCA, warnings): the directory's root, or a new one saved there (not in check mode)."""
    directory = spec.root_dir
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise Refusal(f"root_dir {directory} is not a directory; give a directory for root-cert.pem/root-key.pem")
    if not os.path.isdir(directory):
        if check_mode:
            return _new_root(spec, directory, now), []
        _make_private_directory(directory)
    with _locked(directory):
        return _load_or_create_root(spec, directory, check_mode, now)


def _load_or_create_root(spec: CacertsSpec, directory: str, check_mode: bool, now: datetime.datetime) -> tuple:
    cert_path, key_path = os.path.join(directory, ROOT_CERT_FILE), os.path.join(directory, ROOT_KEY_FILE)
    has_cert, has_key = os.path.exists(cert_path), os.path.exists(key_path)
    if has_cert != has_key:
        present, missing = (ROOT_CERT_FILE, ROOT_KEY_FILE) if has_cert else (ROOT_KEY_FILE, ROOT_CERT_FILE)
        raise Refusal(
            f"root_dir {directory} holds {present} but not {missing}; restore {missing} from your backup "
            f"(a root is never regenerated silently), or remove {present} to generate a new root"
        )
    if not has_cert:
        root = _new_root(spec, directory, now)
        if not check_mode:
            _save_root(root, cert_path, key_path)
        return root, []
    source = f"root_dir {directory}'s {ROOT_CERT_FILE}"
    fix = f"restore the root's files in root_dir {directory}"
    with open(cert_path, "rb") as cert_file, open(key_path, "rb") as key_file:
        certificate = _parsed(pki.load_certificate, cert_file.read(), source, fix)
        key = _parsed(pki.load_private_key, key_file.read(), f"root_dir {directory}'s {ROOT_KEY_FILE}", fix)
    warnings = []
    if stat.S_IMODE(os.stat(key_path).st_mode) & 0o077:
        warnings.append(f"{key_path} is readable by others than its owner; run chmod 600 on it")
    return RootCA(certificate, key, source), warnings


def _new_root(spec: CacertsSpec, directory: str, now: datetime.datetime) -> RootCA:
    if spec.validity_days >= pki.ROOT_DAYS:
        raise Refusal(
            f"validity_days ({spec.validity_days}) is not shorter than a new root's life ({pki.ROOT_DAYS} "
            "days); lower validity_days"
        )
    certificate, key = pki.generate_root(spec.key_type, now)
    return RootCA(certificate, key, f"root_dir {directory}'s new {ROOT_CERT_FILE}", generated=True)


def _make_private_directory(directory: str) -> None:
    """Create `directory` and any missing parent 0700 whatever the umask (os.makedirs masks its mode with the umask
    and gives parents the umask's default)."""
    missing = []
    path = os.path.abspath(directory)
    while not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for path in reversed(missing):
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)


def _save_root(root: RootCA, cert_path: str, key_path: str) -> None:
    """Each file whole or absent, 0600 from its first byte whatever the umask: written to a temporary file in the
    same directory, flushed, then linked (the key: never over an existing one) or renamed into place."""
    _write_private(key_path, pki.private_key_pem(root.key), replace=False)
    _write_private(cert_path, pki.certificate_pem(root.certificate), replace=True)


def _write_private(path: str, content: bytes, replace: bool) -> None:
    temporary = f"{path}.{os.getpid()}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def signing_root(spec: CacertsSpec, check_mode: bool, now: datetime.datetime) -> tuple:
    """(RootCA, warnings); raises Refusal with every reason the root cannot sign an intermediate."""
    if spec.root_dir:
        root, warnings = _root_from_dir(spec, check_mode, now)
    else:
        root, warnings = _given_root(spec), []
    problems = root_problems(root, now)
    fit = fit_problem(root.certificate, spec.validity_days, now)
    if fit and not problems:
        problems.append(fit)
    if problems:
        raise Refusal("; ".join(problems))
    return root, warnings


# Cluster: what the module calls


def _intermediate_for(live: dict | None, root: RootCA, spec: CacertsSpec, now: datetime.datetime) -> tuple:
    """(certificate, key, reason it was issued or None when the live one stays)."""
    current = live_intermediate(secret_files(live), spec.secret_format)
    if live is None:
        reason = "there is no cacerts Secret"
    elif current is None:
        reason = "the cacerts Secret holds no usable intermediate certificate and key"
    else:
        reason = intermediate_problem(*current, root.certificate, spec, now)
    if reason is None:
        return current[0], current[1], None
    certificate, key = pki.issue_intermediate(
        root.certificate,
        root.key,
        spec.cluster_name,
        spec.namespace,
        spec.revision,
        spec.validity_days,
        spec.key_type,
        now,
    )
    return certificate, key, reason


def ensure_root(spec: CacertsSpec, check_mode: bool, now: datetime.datetime | None = None) -> tuple:
    """root_only: make sure the root exists (generated into root_dir when missing); no cluster is touched."""
    now = now or pki.utc_now()
    validate(spec)
    root, warnings = signing_root(spec, check_mode, now)
    result = {"changed": root.generated, "root": {**pki.describe(root.certificate), "generated": root.generated}}
    return result, warnings, []


def ensure_cacerts(
    cluster: Cluster, spec: CacertsSpec, check_mode: bool, now: datetime.datetime | None = None
) -> tuple:
    """Converge the cacerts Secret. Returns (result, warnings, diff); raises a MeshopsError."""
    now = now or pki.utc_now()
    validate(spec)
    extra_roots = additional_root_certificates(spec.additional_roots, now)
    root, warnings = signing_root(spec, check_mode, now)
    engine = Engine(cluster, Owner(OWNER_KIND, spec.namespace), check_mode, spec.force_conflicts)
    live = cluster.get("Secret", SECRET_NAME, spec.namespace)
    problem = type_problem(live, spec.secret_format)
    if problem:
        raise Refusal(problem)

    intermediate, key, reason = _intermediate_for(live, root, spec, now)
    bundle = pki.root_bundle(root.certificate, extra_roots)
    manifest = secret_manifest(
        spec.namespace,
        spec.secret_format,
        pki.secret_data(intermediate, key, root.certificate, bundle, spec.secret_format),
    )
    if not unchanged(live, manifest):
        if live is None and cluster.get("Namespace", spec.namespace) is None:
            engine.ensure_shared({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": spec.namespace}})
        engine.ensure_present([manifest])
    report = engine.report
    restart = {pki.fingerprint(c) for c in bundle} != live_bundle_fingerprints(secret_files(live), spec.secret_format)
    result = {
        "changed": report.changed or root.generated,
        "namespace": spec.namespace,
        "secret": SECRET_NAME,
        "format": spec.secret_format,
        "root": {**pki.describe(root.certificate), "generated": root.generated},
        "intermediate": {**pki.describe(intermediate), "issued": reason is not None, "reason": reason},
        "root_bundle": [pki.describe(c) for c in bundle],
        "istiod_restart_needed": restart,
        "objects": report.objects,
    }
    return result, warnings, report.diff


def ensure_cacerts_absent(cluster: Cluster, spec: CacertsSpec, check_mode: bool) -> tuple:
    """Delete the cacerts Secret this module wrote in the namespace. Returns (result, warnings, diff)."""
    engine = Engine(cluster, Owner(OWNER_KIND, spec.namespace), check_mode, spec.force_conflicts)
    report = engine.ensure_absent(["Secret"])
    result = {"changed": report.changed, "namespace": spec.namespace, "secret": SECRET_NAME}
    return {**result, "objects": report.objects}, [], report.diff
