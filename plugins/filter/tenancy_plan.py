# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The tenancy plan: the `tenants` data, the model and the shared control plane turned into what each step of
a run installs (control planes, CAs, tenants, gateways). Every playbook reads the plan; the defaults of the tenant
data live here and nowhere else. Pure: no cluster, no Ansible state."""

from __future__ import annotations

import difflib

from ansible.errors import AnsibleFilterError
from ansible_collections.meshops.istio.plugins.module_utils.names import DNS_LABEL
from ansible_collections.meshops.istio.plugins.module_utils.tenant_spec import TENANT_LABEL
from ansible_collections.meshops.istio.plugins.module_utils.vocabulary import NAME_LABEL

MODELS = ("dedicated", "shared")
DEFAULT_MODEL = "dedicated"
MESH_LABEL = "meshops.io/mesh"
DEFAULT_SHARED_CONTROL_PLANE = {
    "name": "shared",
    "namespace": "istio-system",
    "pilot_env": {"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"},
    "values": {},
}
DEFAULT_GATEWAY_NAME = "istio-ingressgateway"

# Keys a tenant entry may carry, and the model each one is for (None: both).
TENANT_KEYS = {
    "name": None,
    "namespaces": None,
    "mtls": None,
    "isolation": None,
    "takeover": None,
    "create_namespaces": None,
    "revision": "dedicated",
    "system_namespace": "dedicated",
    "discovery_label": "dedicated",
    "ca": "dedicated",
    "ca_root": "dedicated",
    "shared_namespaces": "dedicated",
    "own_trust_bundle": "dedicated",
    "gateway": "shared",
}
GATEWAY_KEYS = ("name", "namespace", "autoscale", "replicas", "pdb", "service", "wait")
# Carried to the gateway step only when the data sets them, so the step's own defaults apply otherwise.
GATEWAY_OPTIONAL_KEYS = ("autoscale", "replicas", "pdb", "service", "wait")
# Passed to istio_tenant only when the data sets them, so the module's defaults are the only ones.
TENANT_OPTIONAL_KEYS = ("mtls", "isolation", "takeover", "create_namespaces")


def _unknown_keys(entry: dict, known, where: str) -> list:
    errors = []
    for key in sorted(set(entry) - set(known), key=str):
        close = difflib.get_close_matches(str(key), list(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors.append(f"{where}: unknown key {key!r}{hint}; known keys: {', '.join(known)}")
    return errors


def _name_error(value, where: str) -> list:
    if isinstance(value, str) and DNS_LABEL.match(value) and len(value) <= 63:
        return []
    return [f"{where} {value!r} must be a DNS-1123 label (lower-case letters, digits and '-', at most 63)"]


def namespace_name(entry):
    """A `namespaces` item: a bare name, or a dict with `name` (and labels, annotations)."""
    return entry.get("name") if isinstance(entry, dict) else entry


def _tenant_errors(index: int, tenant, model: str) -> list:
    if not isinstance(tenant, dict):
        return [f"tenants[{index}] must be a dict with name and namespaces, not {tenant!r}"]
    where = f"tenants[{index}] ({tenant.get('name', 'no name')})"
    errors = _unknown_keys(tenant, list(TENANT_KEYS), where)
    errors += _name_error(tenant.get("name"), f"{where}: name")
    for key, only in TENANT_KEYS.items():
        if only and only != model and key in tenant:
            errors.append(f"{where}: {key} applies to the {only} model only, and tenancy_model is {model}")
    namespaces = tenant.get("namespaces")
    if not isinstance(namespaces, list) or not namespaces:
        errors.append(f"{where}: namespaces must be a non-empty list of namespace names")
    else:
        for position, entry in enumerate(namespaces):
            errors += _name_error(namespace_name(entry), f"{where}: namespaces[{position}]")
    for key in ("revision", "system_namespace", "ca_root"):
        if key in tenant:
            errors += _name_error(tenant[key], f"{where}: {key}")
    if "ca_root" in tenant and tenant.get("ca") is not True:
        errors.append(f"{where}: ca_root names the root of the tenant's own CA; set ca: true, or remove ca_root")
    shared = tenant.get("shared_namespaces", [])
    if not isinstance(shared, list):
        errors.append(f"{where}: shared_namespaces must be a list of other tenants' namespace names")
    else:
        for position, name in enumerate(shared):
            errors += _name_error(name, f"{where}: shared_namespaces[{position}]")
    if "own_trust_bundle" in tenant and not isinstance(tenant["own_trust_bundle"], bool):
        errors.append(f"{where}: own_trust_bundle must be true or false, not {tenant['own_trust_bundle']!r}")
    if "discovery_label" in tenant and not isinstance(tenant["discovery_label"], dict):
        errors.append(f"{where}: discovery_label must be a dict of one label, e.g. {{usergroup: {tenant.get('name')}}}")
    gateway = tenant.get("gateway")
    if gateway is not None:
        if isinstance(gateway, dict):
            errors += _unknown_keys(gateway, list(GATEWAY_KEYS), f"{where}: gateway")
        else:
            errors.append(f"{where}: gateway must be a dict (e.g. {{}} for the defaults)")
    return errors


def _shared_control_plane(given) -> tuple:
    """(the shared control plane with its defaults, errors)."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        return {}, [f"shared_control_plane must be a dict with name and namespace, not {given!r}"]
    errors = _unknown_keys(given, list(DEFAULT_SHARED_CONTROL_PLANE), "shared_control_plane")
    merged = {**DEFAULT_SHARED_CONTROL_PLANE, **{key: value for key, value in given.items() if value is not None}}
    errors += _name_error(merged["name"], "shared_control_plane.name")
    errors += _name_error(merged["namespace"], "shared_control_plane.namespace")
    return merged, errors


def _duplicate_errors(tenants: list) -> list:
    errors, seen, owners = [], set(), {}
    for tenant in tenants:
        if tenant["name"] in seen:
            errors.append(f"tenant {tenant['name']} is listed twice; describe each tenant once")
        seen.add(tenant["name"])
        for entry in tenant["namespaces"]:
            owners.setdefault(namespace_name(entry), []).append(tenant["name"])
    for namespace, names in sorted(owners.items()):
        if len(names) > 1:
            errors.append(f"namespace {namespace} is listed by tenants {', '.join(names)}; it belongs to one tenant")
    return errors


def _root(tenant: dict) -> str | None:
    """The root a tenant's CA is issued from: tenants with one root may share namespaces. None without its own CA."""
    return (tenant.get("ca_root") or tenant["name"]) if tenant.get("ca") else None


def _sharing_errors(tenants: list) -> list:
    """A shared namespace is another tenant's namespace, and the two tenants share a root."""
    owners = {namespace_name(entry): tenant for tenant in tenants for entry in tenant["namespaces"]}
    errors = []
    for index, tenant in enumerate(tenants):
        where = f"tenants[{index}] ({tenant['name']})"
        for position, name in enumerate(tenant.get("shared_namespaces", [])):
            at, owner = f"{where}: shared_namespaces[{position}] {name}", owners.get(name)
            if owner is None:
                errors.append(f"{at} is no tenant's namespace; list it in the namespaces of the tenant that owns it")
            elif owner is tenant:
                errors.append(f"{at} is one of the tenant's own namespaces; remove it from shared_namespaces")
            elif _root(tenant) is None or _root(tenant) != _root(owner):
                errors.append(
                    f"{at} belongs to tenant {owner['name']}, and tenants {tenant['name']} and {owner['name']} do not "
                    "share a root: give both ca: true and the same ca_root"
                )
            elif tenant.get("own_trust_bundle") is False or owner.get("own_trust_bundle") is False:
                errors.append(
                    f"{at}: tenants {tenant['name']} and {owner['name']} both publish their root there, each under its "
                    "own name; remove own_trust_bundle: false from both"
                )
    return errors


def _discovery_selectors(tenant: dict, label: dict) -> list:
    """The tenant's label, and the other tenants' namespaces it shares by name (selectors are OR'ed)."""
    selectors = [{"matchLabels": label}]
    if tenant.get("shared_namespaces"):
        names = sorted(set(tenant["shared_namespaces"]))
        selectors.append({"matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": names}]})
    return selectors


def _dedicated(tenant: dict) -> dict:
    name = tenant["name"]
    revision = tenant.get("revision") or name
    namespace = tenant.get("system_namespace") or name
    label = dict(tenant.get("discovery_label") or {TENANT_LABEL: name})
    return {"revision": revision, "system_namespace": namespace, "discovery_label": label}


def _tenant_entry(tenant: dict, placement: dict) -> dict:
    """What istio_tenant's `tenants` option takes for this tenant."""
    entry = {
        "name": tenant["name"],
        "revision": placement["revision"],
        "namespaces": tenant["namespaces"],
        "discovery_label": placement["discovery_label"],
    }
    entry.update({key: tenant[key] for key in TENANT_OPTIONAL_KEYS if key in tenant})
    return entry


def _gateway(tenant: dict) -> dict:
    given = tenant["gateway"] or {}
    gateway = {
        "tenant": tenant["name"],
        "name": given.get("name") or DEFAULT_GATEWAY_NAME,
        "namespace": given.get("namespace") or namespace_name(tenant["namespaces"][0]),
    }
    gateway.update({key: given[key] for key in GATEWAY_OPTIONAL_KEYS if key in given})
    return gateway


def tenancy_plan(tenants, model=None, shared_control_plane=None, only=None) -> dict:
    """The plan of a run. Raises AnsibleFilterError naming every bad entry and key before any step runs.
    `only` (tenant names) returns the part of the plan that serves those tenants, all of them checked.

    Returns {model, control_planes, planned_revisions, cas, tenants, gateways, summary}: control_planes as
    istio_revision's name, namespace, discovery_selectors, pilot_env, values and own_trust_bundle, plus the names of
    the tenants each serves (tenants); cas (dedicated tenants with `ca: true`) as tenant,
    namespace and revision; tenants as istio_tenant's `tenants` entries; gateways as istio_gateway's name and
    namespace plus the data's settings; summary one line of facts per tenant; planned_revisions the control planes
    as istio_tenant's and istio_gateway's planned_revisions."""
    model = model or DEFAULT_MODEL
    if model not in MODELS:
        raise AnsibleFilterError(f"tenancy_model must be dedicated or shared, not {model!r}")
    if not isinstance(tenants, list):
        raise AnsibleFilterError(f"tenants must be a list of tenant entries, not {type(tenants).__name__}")
    shared, errors = _shared_control_plane(shared_control_plane)
    for index, tenant in enumerate(tenants):
        errors += _tenant_errors(index, tenant, model)
    if not errors:
        errors += _duplicate_errors(tenants)
    if not errors and model == "dedicated":
        errors += _sharing_errors(tenants)
    if errors:
        raise AnsibleFilterError("; ".join(errors))
    plan = _dedicated_plan(tenants) if model == "dedicated" else _shared_plan(tenants, shared)
    if only is not None:
        plan = _restricted(plan, set(only))
    plan["planned_revisions"] = [planned_revision(control_plane) for control_plane in plan["control_planes"]]
    return plan


def _restricted(plan: dict, names: set) -> dict:
    """The part of the plan that serves the tenants named."""
    control_planes = [
        {**cp, "tenants": [t for t in cp["tenants"] if t in names]}
        for cp in plan["control_planes"]
        if names.intersection(cp["tenants"])
    ]
    return {
        **plan,
        "control_planes": control_planes,
        "cas": [ca for ca in plan["cas"] if ca["tenant"] in names],
        "tenants": [tenant for tenant in plan["tenants"] if tenant["name"] in names],
        "gateways": [gateway for gateway in plan["gateways"] if gateway["tenant"] in names],
        "summary": [line for line in plan["summary"] if line["tenant"] in names],
    }


def planned_revision(control_plane: dict) -> dict:
    """What a later step of the run (istio_revision, istio_tenant, istio_gateway) accepts as planned, in check
    mode: with the root its CA is issued from, when it has one of its own."""
    planned = {key: control_plane[key] for key in ("name", "namespace", "discovery_selectors")}
    if control_plane.get("ca_root"):
        planned["ca_root"] = control_plane["ca_root"]
    return planned


def _dedicated_plan(tenants: list) -> dict:
    plan = {"model": "dedicated", "control_planes": [], "cas": [], "tenants": [], "gateways": [], "summary": []}
    for tenant in tenants:
        placement = _dedicated(tenant)
        plan["control_planes"].append(
            {
                "name": placement["revision"],
                "namespace": placement["system_namespace"],
                "discovery_selectors": _discovery_selectors(tenant, placement["discovery_label"]),
                "pilot_env": {},
                "values": {},
                # Its own root ConfigMap: no other control plane can overwrite it, even with overlapping selectors.
                "own_trust_bundle": tenant.get("own_trust_bundle", True),
                "tenants": [tenant["name"]],
                "ca_root": _root(tenant),
            }
        )
        if tenant.get("ca"):
            ca = {"tenant": tenant["name"], "namespace": placement["system_namespace"]}
            plan["cas"].append({**ca, "revision": placement["revision"], "root": _root(tenant)})
        # The control plane is the tenant's alone: its root namespace gets the tenant's mesh-wide mTLS (seed 002).
        entry = _tenant_entry(tenant, placement)
        plan["tenants"].append({**entry, "root_namespace_mtls": tenant.get("mtls", "STRICT") != "none"})
        plan["summary"].append({**_summary(tenant, placement, None), "shared_namespaces": _shared_names(tenant)})
    return plan


def _shared_names(tenant: dict) -> list:
    return sorted(set(tenant.get("shared_namespaces", [])))


def _shared_plan(tenants: list, shared: dict) -> dict:
    label = {MESH_LABEL: shared["name"]}
    placement = {"revision": shared["name"], "system_namespace": shared["namespace"], "discovery_label": label}
    plan = {
        "model": "shared",
        "control_planes": [
            {
                "name": shared["name"],
                "namespace": shared["namespace"],
                "discovery_selectors": [{"matchLabels": label}],
                "pilot_env": shared["pilot_env"] or {},
                "values": shared["values"] or {},
                "own_trust_bundle": False,
                "tenants": [tenant["name"] for tenant in tenants],
            }
        ],
        "cas": [],
        "tenants": [],
        "gateways": [],
        "summary": [],
    }
    for tenant in tenants:
        plan["tenants"].append(_tenant_entry(tenant, placement))
        gateway = _gateway(tenant) if "gateway" in tenant else None
        if gateway:
            plan["gateways"].append(gateway)
        plan["summary"].append(_summary(tenant, placement, gateway))
    return plan


def _summary(tenant: dict, placement: dict, gateway: dict | None) -> dict:
    return {
        "tenant": tenant["name"],
        "revision": placement["revision"],
        "system_namespace": placement["system_namespace"],
        "namespaces": [namespace_name(entry) for entry in tenant["namespaces"]],
        "gateway": f"{gateway['namespace']}/{gateway['name']}" if gateway else None,
    }


class FilterModule:
    def filters(self):
        return {"tenancy_plan": tenancy_plan}
