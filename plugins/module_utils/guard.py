# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guard that keeps tenant isolation out of tenant admins' hands: two ValidatingAdmissionPolicies (and their
bindings) that only the installer identities pass.

- `meshops-istio-tenant-objects` denies creating, changing or deleting an object labelled
  `app.kubernetes.io/managed-by: meshops.istio` of the kinds istio_tenant writes (PeerAuthentication,
  AuthorizationPolicy, Sidecar, NetworkPolicy, RoleBinding) in a tenant namespace (one labelled meshops.io/tenant),
  or anywhere when it is a tenant's own (labelled meshops.io/tenant: the mesh-wide PeerAuthentication a tenant
  writes into its control plane's system namespace). A namespace being deleted is exempt, so the namespace
  controller can empty it.
- `meshops-istio-tenant-namespaces` denies changing the labels that make a namespace a tenant's (meshops.io/tenant,
  istio.io/rev, istio-injection and every tenant's discovery label) on a tenant namespace.

The installer identities are the user that runs the module (Cluster.username: a SelfSubjectReview, so that a run never
locks itself out), the `users` and the `groups` asked for (default system:masters, whose members can delete the
guard anyway). The builders are pure; `ensure_guard` writes through the Engine under its own owner."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .cluster import Cluster
from .engine import Engine, Owner
from .kinds import KINDS
from .tenant_spec import TENANT_LABEL
from .vocabulary import FIELD_MANAGER, INJECTION_LABEL, MANAGED_BY_LABEL, REV_LABEL

OWNER = Owner("guard", "tenants")
OBJECTS_POLICY = "meshops-istio-tenant-objects"
NAMESPACES_POLICY = "meshops-istio-tenant-namespaces"
# The namespace policy's guarded label keys, so that a run with other tenants adds to them instead of dropping any.
LABELS_ANNOTATION = "meshops.io/guarded-labels"
ALWAYS_GUARDED_LABELS = (TENANT_LABEL, REV_LABEL, INJECTION_LABEL)
DEFAULT_GROUPS = ("system:masters",)
GUARD_KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
# The kinds istio_tenant writes into tenant namespaces, as admission sees them: (API group, resource).
GUARDED_RESOURCES = (
    ("security.istio.io", ("peerauthentications", "authorizationpolicies")),
    ("networking.istio.io", ("sidecars",)),
    ("networking.k8s.io", ("networkpolicies",)),
    ("rbac.authorization.k8s.io", ("rolebindings",)),
)
_API = "admissionregistration.k8s.io/v1"


@dataclass(frozen=True)
class GuardSpec:
    """Option `guard` of istio_tenant: on by default; who may change what it guards besides the running user."""

    enabled: bool = True
    users: tuple = ()
    groups: tuple = DEFAULT_GROUPS

    @classmethod
    def from_params(cls, guard: dict | None) -> GuardSpec:
        guard = guard or {}
        groups = guard.get("groups")
        return cls(
            enabled=guard.get("enabled", True),
            users=tuple(guard.get("users") or ()),
            groups=DEFAULT_GROUPS if groups is None else tuple(groups),
        )


# Pure: the manifests


def _cel_list(values) -> str:
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


def installer_condition(users, groups) -> str:
    """CEL that holds for a request NOT made by an installer identity (only those requests are checked)."""
    condition = f"!(request.userInfo.username in {_cel_list(users)})"
    if groups:
        member = f"request.userInfo.groups.exists(g, g in {_cel_list(groups)})"
        condition += f" && !(has(request.userInfo.groups) && {member})"
    return condition


def who_may(users, groups) -> str:
    parts = [f"users {', '.join(users)}" if users else "", f"groups {', '.join(groups)}" if groups else ""]
    return " and ".join(part for part in parts if part)


def _label_unchanged() -> str:
    """CEL over the guarded key `k`: present in both or neither, with the same value."""
    new = "(has(object.metadata.labels) && k in object.metadata.labels)"
    old = "(has(oldObject.metadata.labels) && k in oldObject.metadata.labels)"
    return f"{new} == {old} && (!{new} || object.metadata.labels[k] == oldObject.metadata.labels[k])"


def _has_tenant_label(variable: str) -> str:
    return (
        f"({variable} != null && has({variable}.metadata.labels) && {json.dumps(TENANT_LABEL)} in "
        f"{variable}.metadata.labels)"
    )


def guarded_object_exempt() -> str:
    """CEL that passes a request on one of our objects only in a namespace being deleted, or when the object is
    neither in a tenant namespace nor a tenant's own (another owner's object elsewhere, e.g. a revision's)."""
    in_tenant_namespace = (
        f"(has(namespaceObject.metadata.labels) && {json.dumps(TENANT_LABEL)} in namespaceObject.metadata.labels)"
    )
    tenants_own = f"{_has_tenant_label('object')} || {_has_tenant_label('oldObject')}"
    return f"has(namespaceObject.metadata.deletionTimestamp) || !({in_tenant_namespace} || {tenants_own})"


def _policy(name: str, match: dict, users, groups, extra_conditions: list, validation: dict) -> dict:
    conditions = [{"name": "not-an-installer", "expression": installer_condition(users, groups)}, *extra_conditions]
    return {
        "apiVersion": _API,
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": match,
            "matchConditions": conditions,
            "validations": [validation],
        },
    }


def _binding(policy_name: str) -> dict:
    return {
        "apiVersion": _API,
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name},
        "spec": {"policyName": policy_name, "validationActions": ["Deny"]},
    }


def guard_manifests(users, groups, label_keys) -> list:
    """The two policies and their bindings. `users` and `groups` pass; `label_keys` are the namespace labels
    guarded on tenant namespaces."""
    users, groups, label_keys = sorted(set(users)), sorted(set(groups)), sorted(set(label_keys))
    allowed = who_may(users, groups)
    tenant_namespaces = {"matchExpressions": [{"key": TENANT_LABEL, "operator": "Exists"}]}
    # Every namespace: a tenant's objects also live outside tenant namespaces (its root namespace's mesh-wide
    # PeerAuthentication), and matchConditions cannot see the namespace, so the validation tells them apart.
    objects_match = {
        "resourceRules": [
            {"apiGroups": [group], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"],
             "resources": list(resources), "scope": "Namespaced"}
            for group, resources in GUARDED_RESOURCES
        ],
        "objectSelector": {"matchLabels": {MANAGED_BY_LABEL: FIELD_MANAGER}},
    }  # fmt: skip
    objects_rule = (
        f"only {allowed} may create, change or delete the isolation objects of tenant namespaces. Change the "
        "tenant's data and re-run the meshops.istio playbook instead."
    )
    objects = _policy(
        OBJECTS_POLICY,
        objects_match,
        users,
        groups,
        [],
        {
            "expression": guarded_object_exempt(),
            "reason": "Forbidden",
            "message": f"meshops.istio guards this object: {objects_rule}",
            "messageExpression": "'meshops.istio guards ' + request.kind.kind + ' ' + request.namespace + '/' + "
            f"request.name + ': ' + {json.dumps(objects_rule)}",
        },
    )
    namespaces_match = {
        "resourceRules": [
            {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"], "resources": ["namespaces"],
             "scope": "Cluster"}
        ],
        "objectSelector": tenant_namespaces,
    }  # fmt: skip
    namespaces_message = (
        f"meshops.istio guards the tenant labels of this namespace ({', '.join(label_keys)}): only {allowed} may "
        "change them. Change the tenant's data and re-run the meshops.istio playbook instead."
    )
    namespaces = _policy(
        NAMESPACES_POLICY,
        namespaces_match,
        users,
        groups,
        [],
        {
            "expression": f"{_cel_list(label_keys)}.all(k, {_label_unchanged()})",
            "reason": "Forbidden",
            "message": namespaces_message,
            "messageExpression": "'namespace ' + request.name + ': ' + " + json.dumps(namespaces_message),
        },
    )
    namespaces["metadata"]["annotations"] = {LABELS_ANNOTATION: ",".join(label_keys)}
    return [objects, _binding(OBJECTS_POLICY), namespaces, _binding(NAMESPACES_POLICY)]


def guarded_label_keys(discovery_keys, live_policies) -> list:
    """The always guarded keys, this run's discovery label keys, and those the live guard already protects."""
    keys = set(ALWAYS_GUARDED_LABELS) | set(discovery_keys)
    for live in live_policies:
        annotation = ((live.get("metadata") or {}).get("annotations") or {}).get(LABELS_ANNOTATION)
        keys |= {key for key in (annotation or "").split(",") if key}
    return sorted(keys)


# Cluster


def ensure_guard(cluster: Cluster, spec: GuardSpec, discovery_keys, check_mode: bool) -> Engine:
    """Install or update the guard (spec.enabled) or remove it. Returns its Engine (whose report says what it did)."""
    engine = Engine(cluster, OWNER, check_mode)
    if not spec.enabled:
        engine.ensure_absent(GUARD_KINDS)
        return engine
    owned = engine.list_owned({KINDS[name] for name in GUARD_KINDS})
    live_policies = [obj for obj in owned.values() if obj["kind"] == "ValidatingAdmissionPolicy"]
    users = {*spec.users, cluster.username()} - {""}
    manifests = guard_manifests(users, spec.groups, guarded_label_keys(discovery_keys, live_policies))
    engine.ensure_present(manifests, GUARD_KINDS, owned)
    return engine


def remove_guard(cluster: Cluster, check_mode: bool) -> Engine:
    engine = Engine(cluster, OWNER, check_mode)
    engine.ensure_absent(GUARD_KINDS)
    return engine
