# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one istio_tenant task (or one entry of its `tenants`) asks for: `TenantSpec`, built once from parameters,
and the rules the argument spec cannot express (`validate`, `validate_tenants` for many tenants). Pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

from .errors import Refusal, refuse
from .names import DNS_LABEL, dns_label_errors, is_label_key, is_label_value
from .vocabulary import owner_label

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

    @classmethod
    def from_params(cls, params: dict) -> TenantSpec:
        resolved = {
            "namespaces": tuple(NamespaceSpec.from_entry(entry) for entry in params["namespaces"] or ()),
            "discovery_label": dict(params["discovery_label"] or {TENANT_LABEL: params["name"]}),
            "isolation": IsolationSpec.from_params(params["isolation"]),
        }
        # Every other field is the parameter of the same name, as the argument spec left it.
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name not in resolved}, **resolved)

    @property
    def namespace_names(self) -> set:
        return {entry.name for entry in self.namespaces}


def validate(spec: TenantSpec) -> None:
    errors = dns_label_errors(spec.name, "name")
    if spec.state == "present" and not spec.revision:
        errors.append("revision is required with state=present; name the control plane that serves the tenant")
    names = [entry.name for entry in spec.namespaces]
    for index, name in enumerate(names):
        if not isinstance(name, str) or not DNS_LABEL.match(name):
            errors.append(f"namespaces[{index}] {name!r} must be a DNS-1123 label (a namespace name)")
    duplicates = sorted({n for n in names if names.count(n) > 1 and isinstance(n, str)})
    if duplicates:
        errors.append(f"namespaces lists {', '.join(duplicates)} more than once")
    labels = dict(spec.discovery_label)
    for entry in spec.namespaces:
        labels.update(entry.labels)
    for key, value in labels.items():
        if not is_label_key(key) or not is_label_value(value):
            errors.append(f"label {key}={value!r} is not a valid Kubernetes label (quote values, <= 63 characters)")
    refuse(errors)


def validate_tenants(specs: list) -> None:
    """Every entry of `tenants` valid, no tenant twice, no namespace claimed by two tenants."""
    errors = []
    for spec in specs:
        try:
            validate(spec)
        except Refusal as error:
            errors.append(f"tenant {spec.name}: {error}")
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
