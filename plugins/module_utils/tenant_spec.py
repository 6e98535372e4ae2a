# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one istio_tenant task (or one entry of its `tenants`) asks for: `TenantSpec`, built once from parameters,
and the rules the argument spec cannot express (`validate`, `validate_tenants` for many tenants). Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

from .errors import refuse
from .names import dns_label_errors
from .values import annotation_errors, label_errors
from .vocabulary import INJECTION_LABEL, REV_LABEL, owner_label

OWNER_KIND = "tenant"
TENANT_LABEL = owner_label(OWNER_KIND)


@dataclass(frozen=True)
class NamespaceSpec:
    """One `namespaces` entry: a bare name or {name, labels, annotations}. `name` is what was given, checked by
    `validate`."""

    name: str
    labels: dict = field(default_factory=dict)
    annotations: dict = field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry) -> NamespaceSpec:
        if not isinstance(entry, dict):
            return cls(name=entry)
        return cls(
            name=entry.get("name"),
            labels=dict(entry.get("labels") or {}),
            annotations=dict(entry.get("annotations") or {}),
        )


@dataclass(frozen=True)
class AdminsSpec:
    users: tuple = ()
    groups: tuple = ()


@dataclass(frozen=True)
class IsolationSpec:
    """Which isolation policies go in each tenant namespace; every policy is on unless turned off."""

    authorization: bool = True
    sidecar_scope: bool = True
    network_policy: bool = True
    allow_namespaces: tuple = ()
    admins: AdminsSpec = AdminsSpec()
    # Opt-in for admin subjects that stand for a whole class of the cluster's identities (broad_admin_problems).
    allow_broad_admins: bool = False

    @classmethod
    def from_params(cls, isolation: dict | None) -> IsolationSpec:
        """From the `isolation` option, or a playbook's tenant entry (where options may be missing)."""
        isolation = isolation or {}
        admins = isolation.get("admins") or {}
        return cls(
            authorization=isolation.get("authorization", True),
            sidecar_scope=isolation.get("sidecar_scope", True),
            network_policy=isolation.get("network_policy", True),
            allow_namespaces=tuple(isolation.get("allow_namespaces") or ()),
            admins=AdminsSpec(users=tuple(admins.get("users") or ()), groups=tuple(admins.get("groups") or ())),
            allow_broad_admins=bool(isolation.get("allow_broad_admins", False)),
        )


@dataclass(frozen=True)
class TenantSpec:
    """One tenant's parameters with every default resolved, plus the run's options (state, delete_namespaces,
    force, force_conflicts); builders, guards and ensure functions read only this."""

    name: str
    revision: str | None
    namespaces: tuple  # of NamespaceSpec
    create_namespaces: bool
    # The label the revision's discoverySelectors match: the option, or meshops.io/tenant=<name>.
    discovery_label: dict
    mtls: str
    isolation: IsolationSpec
    takeover: bool
    state: str
    delete_namespaces: bool
    force: bool
    force_conflicts: bool
    # Also the mesh-wide PeerAuthentication in the revision's system namespace (Istio's root namespace), seed 002's.
    root_namespace_mtls: bool = False

    @classmethod
    def from_params(cls, params: dict) -> TenantSpec:
        resolved = {
            "namespaces": tuple(NamespaceSpec.from_entry(entry) for entry in params["namespaces"] or ()),
            "discovery_label": dict(params["discovery_label"] or {TENANT_LABEL: params["name"]}),
            "isolation": IsolationSpec.from_params(params["isolation"]),
        }
        # Every other field is the parameter of the same name, as the argument spec left it (or its default here).
        given = {f.name: params[f.name] for f in fields(cls) if f.name not in resolved and f.name in params}
        return cls(**given, **resolved)

    @property
    def namespace_names(self) -> set:
        """The names given as strings (validate refuses the others)."""
        return {entry.name for entry in self.namespaces if isinstance(entry.name, str)}


# Namespaces Kubernetes itself runs in: a tenant neither owns them nor lets their callers in.
KUBERNETES_NAMESPACES = ("kube-system", "kube-public", "kube-node-lease", "default")
# Groups that hold every user, every anonymous caller or every ServiceAccount of the cluster.
BROAD_GROUPS = ("system:authenticated", "system:unauthenticated", "system:anonymous", "system:serviceaccounts")
BROAD_USERS = ("system:anonymous",)
SERVICE_ACCOUNTS_GROUP_PREFIX = "system:serviceaccounts:"
# Namespace labels the collection sets itself (or removes): given through `labels` they would fight its own and
# flip on every run, or move the namespace to another mesh.
RESERVED_LABELS = (REV_LABEL, INJECTION_LABEL)
RESERVED_LABEL_PREFIX = "meshops.io/"


def validate(spec: TenantSpec, at: str = "") -> None:
    """Every input error of one tenant at once, before anything is read or written. `at` prefixes parameter names
    (`tenants[3].` for an entry of `tenants`)."""
    refuse(tenant_errors(spec, at))


def tenant_errors(spec: TenantSpec, at: str = "") -> list:
    errors = dns_label_errors(spec.name, f"{at}name")
    if spec.state == "present" and not spec.revision:
        errors.append(f"{at}revision is required with state=present; name the control plane that serves the tenant")
    elif spec.revision:
        errors += dns_label_errors(spec.revision, f"{at}revision")
    names = [entry.name for entry in spec.namespaces]
    for index, entry in enumerate(spec.namespaces):
        errors += _namespace_errors(spec, entry, f"{at}namespaces[{index}]")
    duplicates = sorted({n for n in names if names.count(n) > 1 and isinstance(n, str)})
    if duplicates:
        errors.append(f"{at}namespaces lists {', '.join(duplicates)} more than once")
    errors += _discovery_label_errors(spec.discovery_label, f"{at}discovery_label")
    if spec.state == "present" and spec.root_namespace_mtls and spec.mtls == "none":
        errors.append(
            f"{at}root_namespace_mtls needs an mTLS mode for the root namespace's PeerAuthentication, and {at}mtls is "
            "none; set mtls to STRICT (or PERMISSIVE), or root_namespace_mtls to false"
        )
    if spec.state == "present":
        errors += _isolation_errors(spec, f"{at}isolation")
    return errors


def _namespace_errors(spec: TenantSpec, entry: NamespaceSpec, at: str) -> list:
    errors = namespace_name_errors(entry.name, at)
    errors += label_errors(entry.labels, f"{at}.labels")
    for key in entry.labels:
        if _reserved(key, spec.discovery_label):
            errors.append(
                f"{at}.labels sets {key}, a label meshops.istio sets itself (istio-injection, istio.io/rev, the "
                "discovery label and meshops.io/*); remove it from labels (use revision or discovery_label instead)"
            )
    errors += annotation_errors(entry.annotations, f"{at}.annotations")
    return errors


def _reserved(key, discovery_label: dict) -> bool:
    return key in RESERVED_LABELS or key in discovery_label or str(key).startswith(RESERVED_LABEL_PREFIX)


def namespace_name_errors(name, parameter: str) -> list:
    """A namespace a tenant may own or let in: a DNS label, no pattern, none of Kubernetes' own."""
    if isinstance(name, str) and any(char in name for char in "*?[]"):
        return [
            f"{parameter} {name!r} is a pattern; tenant namespaces and allow_namespaces take exact namespace names "
            "only (a wildcard would allow every namespace), so list each namespace"
        ]
    if name in KUBERNETES_NAMESPACES:
        return [
            f"{parameter} {name!r} is a Kubernetes system namespace ({', '.join(KUBERNETES_NAMESPACES)}); give a "
            "namespace of the tenant's own"
        ]
    return dns_label_errors(name, parameter)


def _discovery_label_errors(discovery_label: dict, parameter: str) -> list:
    errors = label_errors(discovery_label, parameter)
    if isinstance(discovery_label, dict):
        if len(discovery_label) != 1:
            errors.append(f"{parameter} must hold exactly one key and value, got {len(discovery_label)}")
        for key in set(discovery_label) & set(RESERVED_LABELS):
            errors.append(f"{parameter} key {key} is set by meshops.istio itself; choose another key, e.g. usergroup")
    return errors


def _isolation_errors(spec: TenantSpec, at: str) -> list:
    isolation = spec.isolation
    errors = []
    for index, name in enumerate(isolation.allow_namespaces):
        errors += namespace_name_errors(name, f"{at}.allow_namespaces[{index}]")
    if not isolation.allow_broad_admins:
        errors += broad_admin_problems(isolation.admins, spec.namespace_names, f"{at}.admins")
    return errors


def broad_subjects(admins: AdminsSpec, namespaces: set) -> list:
    """(field, name, who) of every subject that stands for a whole class of the cluster's identities: the broad
    groups, anonymous, and the ServiceAccounts of a namespace that is not one of `namespaces` (the tenant's)."""
    found = [("users", user, "every anonymous caller") for user in admins.users if user in BROAD_USERS]
    for group in admins.groups:
        if group in BROAD_GROUPS:
            found.append(("groups", group, "every user or ServiceAccount of the cluster, or every anonymous caller"))
        elif group.removeprefix(SERVICE_ACCOUNTS_GROUP_PREFIX) not in namespaces | {group}:
            found.append(("groups", group, "the ServiceAccounts of a namespace outside the tenant"))
    return found


def broad_admin_problems(admins: AdminsSpec, namespaces: set, at: str = "isolation.admins") -> list:
    return [
        f"{at}.{field} holds {name} ({who}); name the tenant's own users and groups (a tenant namespace's own "
        "system:serviceaccounts:<namespace> is fine), or set isolation.allow_broad_admins: true if that is meant"
        for field, name, who in broad_subjects(admins, namespaces)
    ]


def validate_tenants(specs: list) -> None:
    """Every entry of `tenants` valid, no tenant twice, no namespace claimed by two tenants."""
    errors = []
    for index, spec in enumerate(specs):
        errors += tenant_errors(spec, f"tenants[{index}].")
    names = Counter(spec.name for spec in specs)
    twice = sorted(name for name, count in names.items() if count > 1)
    if twice:
        errors.append(f"tenants lists {', '.join(twice)} more than once; describe each tenant once")
    claims = {}
    for spec in specs:
        for namespace in spec.namespace_names:
            claims.setdefault(namespace, []).append(spec.name)
    for namespace, claimants in sorted(claims.items()):
        if len(set(claimants)) > 1:
            errors.append(
                f"namespace {namespace} is listed by tenants {', '.join(sorted(set(claimants)))}; "
                "a namespace belongs to one tenant"
            )
    refuse(errors)
