#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: istio_tenant
short_description: Onboard namespaces into a tenant's mesh, with isolation that holds
version_added: 0.1.0
description:
  - A tenant is a name, a set of namespaces and the control plane revision that serves them. Each namespace is
    labelled C(istio.io/rev=<revision>), with the O(discovery_label) the revision's discoverySelectors match and
    with C(meshops.io/tenant=<name>). A conflicting C(istio-injection) label is removed with a warning.
  - Isolation policies go in every tenant namespace. mTLS comes from a C(PeerAuthentication) named C(default).
    O(isolation.authorization) adds an C(AuthorizationPolicy) that allows only callers from the tenant's namespaces,
    its control plane and O(isolation.allow_namespaces). O(isolation.sidecar_scope) adds a C(Sidecar) named C(default)
    whose egress hosts are only those namespaces, so sidecars stop receiving the whole cluster's config.
    O(isolation.network_policy) adds a C(NetworkPolicy) that admits ingress only from those namespaces.
    O(isolation.admins) binds users and groups to the C(admin) role in these namespaces only.
  - Works for both tenancy models. In the dedicated model the revision is the tenant's own. In the shared model
    many tenants name the same revision and isolation comes from the policies.
  - Refuses before writing anything when a namespace belongs to another tenant or carries another
    C(istio.io/rev) (unless O(takeover=true)), when the revision is not installed, when the revision's
    discoverySelectors would not select the tenant's namespaces, when another revision's would, when a namespace
    is a control plane's or Kubernetes' system namespace or a wildcard, or when O(isolation.admins) names a
    cluster-wide group. With O(tenants), every entry is checked before anything is written, and errors name the
    entry (C(tenants[3].namespaces[0].labels)). The README's "Refusal rules" lists every rule.
  - A policy object the tenant writes that already exists without this tenant's owner labels (made by hand, or
    another tenant's) is refused, naming its kind, namespace and name; O(force_conflicts=true) or O(takeover=true)
    adopts it, and a later O(state=absent) then deletes it.
  - A namespace dropped from O(namespaces) is released. Its labels and policies are removed and the namespace is
    kept.
author:
  - meshops.istio developers (@meshops)
requirements:
  - ansible-core 2.17 or later, on Python 3.10 or later (the host that runs the module, usually the controller)
  - kubernetes (Python) 29.0.0 or later
  - PyYAML 6.0 or later
  - jsonpatch 1.33 or later
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshops.istio.attributes
  - meshops.istio.attributes.transport
  - meshops.istio.planned
options:
  name:
    description:
      - The tenant name, a DNS-1123 label. It becomes the value of the C(meshops.io/tenant) label.
      - Required unless O(tenants) is given.
    type: str
  tenants:
    description:
      - Many tenants in one run, instead of O(name) and the other per-tenant options. Each entry is a dict with
        C(name) (required), C(revision), C(namespaces), C(create_namespaces), C(discovery_label), C(mtls),
        C(root_namespace_mtls), C(isolation) and C(takeover), with the meaning, types and defaults of the options of
        the same name.
        O(state), O(delete_namespaces), O(force), O(force_conflicts) and O(guard) apply to every entry.
      - One tenant's failure does not stop the others. A tenant whose dry run fails is not written. Every
        other tenant is converged, then the task fails naming each failed tenant and why.
      - With O(state=present) the cluster is read once for all tenants (a LIST of namespaces, of revisions and of
        each policy kind), and every tenant is checked before anything is written, so a re-run that changes
        nothing costs the same few reads for 5 tenants or 500. A tenant no longer listed is not touched; remove it
        with O(state=absent).
      - A namespace may be listed by one tenant only.
    type: list
    elements: dict
  revision:
    description:
      - The installed control plane revision that serves the tenant. Required with O(state=present).
    type: str
  namespaces:
    description:
      - The tenant's namespaces. Each item is either a name or a dict with C(name) and optional C(labels) and
        C(annotations) to add.
      - Names are DNS-1123 labels of at most 63 characters. Wildcards and patterns, the Kubernetes system
        namespaces (C(kube-system), C(kube-public), C(kube-node-lease), C(default)) and any installed revision's
        system namespace are refused.
      - C(labels) and C(annotations) are checked as the API server would (keys C([prefix/]name), label values of at
        most 63 characters, strings only, at most 256 KiB of annotations). C(labels) may not set C(istio-injection),
        C(istio.io/rev), the O(discovery_label) key or any C(meshops.io/) key, which the module sets itself.
      - A namespace whose final labels (the ones given here, the discovery label and the labels already on it that
        the module did not write) would be selected by the discoverySelectors of any other installed revision is
        refused, since two control planes would configure its workloads.
    type: list
    elements: raw
    default: []
  create_namespaces:
    description:
      - Create namespaces that do not exist. With V(false), a missing namespace is refused.
    type: bool
    default: true
  discovery_label:
    description:
      - The label (one key and value) that the revision's discoverySelectors match, for example
        C(usergroup=usergroup-1) given as a dict. Defaults to C(meshops.io/tenant=<name>).
      - Its key may not be C(istio.io/rev) or C(istio-injection).
    type: dict
  mtls:
    description:
      - The mTLS mode of the C(PeerAuthentication) named C(default) in each namespace. V(none) creates none.
    type: str
    choices: [STRICT, PERMISSIVE, none]
    default: STRICT
  root_namespace_mtls:
    description:
      - Also write the control plane's mesh-wide mTLS, as Istio's multiple-control-planes guide does. This is a
        C(PeerAuthentication) named C(<name>-peerauth), without selector, in the revision's system namespace (its
        istiod's root namespace), with the O(mtls) mode. It applies to every namespace that control plane manages,
        also one labelled C(istio.io/rev) by hand later, which has no policies of its own.
      - For a control plane that serves this tenant only. C(playbooks/multitenant.yml) sets it in the dedicated
        model, not in the shared one.
      - It carries this tenant's owner labels, is written before any namespace is labelled for injection and is
        removed with the tenant (O(state=absent)).
      - Refused with O(mtls=none). Also refused when the root namespace already holds another C(PeerAuthentication)
        without selector (Istio applies only one mesh-wide policy), or when two entries of O(tenants) ask for it in
        the same root namespace.
    type: bool
    default: false
  isolation:
    description:
      - Which isolation policies to put in each tenant namespace.
    type: dict
    default: {}
    suboptions:
      authorization:
        description:
          - Add an C(AuthorizationPolicy) C(meshops-tenant-isolation) that allows only callers from the tenant's
            namespaces, the revision's system namespace and O(isolation.allow_namespaces).
          - An ingress gateway inside a tenant namespace serves outside clients. It needs its own ALLOW policy
            selecting the gateway's labels.
        type: bool
        default: true
      sidecar_scope:
        description:
          - Add a C(Sidecar) named C(default) whose egress hosts are the tenant's namespaces, the system namespace
            and O(isolation.allow_namespaces).
        type: bool
        default: true
      network_policy:
        description:
          - Add a C(NetworkPolicy) C(meshops-tenant-isolation) that admits ingress only from the same namespaces.
            Gateway pods (label C(istio)) are left reachable.
        type: bool
        default: true
      allow_namespaces:
        description:
          - More namespaces whose callers are allowed, for example a shared gateway's namespace.
          - Exact names only. A wildcard or pattern (C(*), C(team-*)), a Kubernetes system namespace (C(kube-system),
            C(kube-public), C(kube-node-lease), C(default)) and another installed revision's system namespace are
            refused.
        type: list
        elements: str
        default: []
      admins:
        description:
          - Users and groups bound to the built-in C(admin) ClusterRole in the tenant's namespaces only.
        type: dict
        default: {}
        suboptions:
          users:
            description: User names.
            type: list
            elements: str
            default: []
          groups:
            description:
              - Group names.
              - Groups that hold a whole class of the cluster's identities are refused unless
                O(isolation.allow_broad_admins=true). These are C(system:authenticated), C(system:unauthenticated),
                C(system:anonymous), C(system:serviceaccounts), and C(system:serviceaccounts:<namespace>) of a
                namespace outside the tenant (a tenant namespace's own group is fine). The user C(system:anonymous)
                in O(isolation.admins.users) is refused the same way.
            type: list
            elements: str
            default: []
      allow_broad_admins:
        description:
          - Allow O(isolation.admins) to name the cluster-wide groups and the anonymous user listed under
            O(isolation.admins.groups). They would make every (or every anonymous) caller of the cluster an admin of
            the tenant's namespaces. M(meshops.istio.istio_isolation_info) then does not report their bindings.
        type: bool
        default: false
  state:
    description:
      - V(present) onboards and isolates. V(absent) removes what this tenant owns and releases its namespaces.
    type: str
    choices: [present, absent]
    default: present
  delete_namespaces:
    description:
      - With O(state=absent), delete the tenant's namespaces instead of releasing them. This is refused while they
        hold objects that meshops.istio did not write, unless O(force=true).
    type: bool
    default: false
  takeover:
    description:
      - Move namespaces that belong to another tenant or carry another C(istio.io/rev) to this tenant. Nothing of
        the previous tenant remains on them afterwards.
    type: bool
    default: false
  force:
    description:
      - With O(delete_namespaces=true), delete namespaces even when they hold objects the collection does not own.
    type: bool
    default: false
  guard:
    description:
      - A guard that tenant admins cannot undo, installed (or updated) before the tenants are written. Two
        C(ValidatingAdmissionPolicies) with their bindings. C(meshops-istio-tenant-objects) denies creating,
        changing or deleting the objects this module writes in tenant namespaces (those labelled
        C(app.kubernetes.io/managed-by=meshops.istio), of the kinds PeerAuthentication, AuthorizationPolicy,
        Sidecar, NetworkPolicy and RoleBinding), and a tenant's own such objects in any namespace (the
        O(root_namespace_mtls) PeerAuthentication). C(meshops-istio-tenant-namespaces) denies changing the labels
        C(meshops.io/tenant), C(istio.io/rev), C(istio-injection) and every tenant's discovery label on tenant
        namespaces. The denial names meshops.istio and who may make the change.
      - Only the installer identities pass. They are the user that runs this module (read with a
        C(SelfSubjectReview), so a run never locks itself out), O(guard.users) and O(guard.groups). A run as
        another user takes the guard over for that user. Objects in a namespace being deleted are not guarded, so
        the namespace controller can empty it.
      - With O(state=absent), the guard is removed once no tenant namespace is left.
      - Needs Kubernetes 1.30 or later (C(admissionregistration.k8s.io/v1) admission policies).
    type: dict
    default: {}
    suboptions:
      enabled:
        description:
          - V(false) removes the guard (and installs none). Tenant admins can then change their isolation objects;
            M(meshops.istio.istio_isolation_info) reports such changes and the next run takes them back.
        type: bool
        default: true
      users:
        description:
          - More users who may change what the guard protects, for example a second automation account. The user
            running the module is always allowed.
        type: list
        elements: str
        default: []
      groups:
        description:
          - Groups whose members may change what the guard protects. The default, C(system:masters), keeps
            break-glass access for cluster administrators, who could delete the guard anyway. V([]) allows
            only the users.
        type: list
        elements: str
        default: [system:masters]
notes:
  - Needs the C(kubernetes) Python library and an installed revision (see M(meshops.istio.istio_revision)).
seealso:
  - module: meshops.istio.istio_revision
"""

EXAMPLES = r"""
- name: Seed 002 tenant usergroup-2 with two app namespaces, served by its own revision
  meshops.istio.istio_tenant:
    name: usergroup-2
    revision: usergroup-2
    discovery_label:
      usergroup: usergroup-2
    namespaces:
      - app-ns-2
      - name: app-ns-3
        labels:
          team: payments

- name: Seed 002 tenant usergroup-1, with the guide's STRICT PeerAuthentication in its control plane's namespace
  meshops.istio.istio_tenant:
    name: usergroup-1
    revision: usergroup-1
    discovery_label:
      usergroup: usergroup-1
    namespaces: [app-ns-1]
    root_namespace_mtls: true

- name: Shared model, tenant foo on the shared control plane, with its admins
  meshops.istio.istio_tenant:
    name: foo
    revision: shared
    namespaces: [foo]
    isolation:
      admins:
        groups: [foo-admins]

- name: Move app-ns-3 from tenant usergroup-2 to usergroup-1
  meshops.istio.istio_tenant:
    name: usergroup-1
    revision: usergroup-1
    discovery_label:
      usergroup: usergroup-1
    namespaces: [app-ns-1, app-ns-3]
    takeover: true

- name: Every shared-model tenant in one run
  meshops.istio.istio_tenant:
    tenants:
      - name: foo
        revision: shared
        namespaces: [foo]
      - name: bar
        revision: shared
        namespaces: [bar, bar-batch]
        isolation:
          allow_namespaces: [istio-ingress]

- name: Offboard a tenant and keep its namespaces
  meshops.istio.istio_tenant:
    name: foo
    state: absent
"""

RETURN = r"""
namespaces:
  description: The tenant's namespaces with the labels this module set on them.
  returned: when state is present
  type: list
  elements: dict
  sample:
    - name: app-ns-1
      labels: {istio.io/rev: usergroup-1, usergroup: usergroup-1, meshops.io/tenant: usergroup-1}
policies:
  description: The policies created or updated in this run (kind, namespace, name, action).
  returned: always
  type: list
  elements: dict
released:
  description: Namespaces no longer in the tenant whose labels and policies were removed (namespace kept).
  returned: always
  type: list
  elements: str
tenants:
  description: With O(tenants), per tenant its name, namespaces, policies and released namespaces.
  returned: when O(tenants) is given
  type: list
  elements: dict
  sample:
    - name: foo
      namespaces: [{name: foo, labels: {istio.io/rev: shared, meshops.io/tenant: foo}}]
      policies: []
      released: []
objects:
  description: Every object created, updated, released or deleted, in order.
  returned: always
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshops.istio.plugins.module_utils.batch import checked_entries
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.guard import GuardSpec
from ansible_collections.meshops.istio.plugins.module_utils.planned import (
    NOTHING_PLANNED,
    PLANNED_REVISION_SPEC,
    RunPlan,
)
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC, run_module
from ansible_collections.meshops.istio.plugins.module_utils.tenant import (
    TenantsRun,
    ensure_tenant_absent,
    ensure_tenant_present,
)
from ansible_collections.meshops.istio.plugins.module_utils.tenant_spec import TenantSpec, validate, validate_tenants

ISOLATION_SPEC = dict(
    authorization=dict(type="bool", default=True),
    sidecar_scope=dict(type="bool", default=True),
    network_policy=dict(type="bool", default=True),
    allow_namespaces=dict(type="list", elements="str", default=[]),
    allow_broad_admins=dict(type="bool", default=False),
    admins=dict(
        type="dict",
        default={},
        options=dict(
            users=dict(type="list", elements="str", default=[]), groups=dict(type="list", elements="str", default=[])
        ),
    ),
)

# What describes one tenant: the module's own options, or one entry of `tenants`.
TENANT_SPEC = dict(
    name=dict(type="str", required=True),
    revision=dict(type="str"),
    namespaces=dict(type="list", elements="raw", default=[]),
    create_namespaces=dict(type="bool", default=True),
    discovery_label=dict(type="dict"),
    mtls=dict(type="str", choices=["STRICT", "PERMISSIVE", "none"], default="STRICT"),
    root_namespace_mtls=dict(type="bool", default=False),
    isolation=dict(type="dict", default={}, options=ISOLATION_SPEC),
    takeover=dict(type="bool", default=False),
)
# What applies to the whole run.
RUN_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    delete_namespaces=dict(type="bool", default=False),
    force=dict(type="bool", default=False),
    guard=dict(
        type="dict",
        default={},
        options=dict(
            enabled=dict(type="bool", default=True),
            users=dict(type="list", elements="str", default=[]),
            groups=dict(type="list", elements="str", default=["system:masters"]),
        ),
    ),
)
ARGUMENT_SPEC = dict(
    TENANT_SPEC,
    name=dict(type="str"),
    tenants=dict(type="list", elements="dict"),
    **RUN_SPEC,
    planned_revisions=dict(type="list", elements="dict", default=[], options=PLANNED_REVISION_SPEC),
)


def tenant_entries(module) -> list:
    """A TenantSpec per `tenants` entry, checked against the per-tenant options, plus the run's options."""
    entries = checked_entries(module, "tenants", TENANT_SPEC, (*RUN_SPEC, "force_conflicts"))
    return [TenantSpec.from_params(entry) for entry in entries]


def main():
    module = AnsibleModule(
        argument_spec={**COMMON_ARG_SPEC, **ARGUMENT_SPEC},
        mutually_exclusive=[("tenants", option) for option in TENANT_SPEC],
        required_one_of=[("name", "tenants")],
        supports_check_mode=True,
    )
    run_module(module, _action(module))


def _action(module):
    """The ensure function to run, once every tenant's parameters are checked (before the cluster is even
    contacted)."""
    # What earlier steps of the run plan counts in check mode only, never in the dry run before a real run.
    plan = RunPlan.from_params(module.params) if module.check_mode else NOTHING_PLANNED
    try:
        guard = GuardSpec.from_params(module.params["guard"])
        if module.params["tenants"] is not None:
            specs = tenant_entries(module)
            validate_tenants(specs)
            return TenantsRun(specs, guard, plan)
        spec = TenantSpec.from_params(module.params)
        validate(spec)
    except Refusal as error:
        module.fail_json(msg=str(error))
    if spec.state == "present":
        return lambda cluster, check_mode: ensure_tenant_present(cluster, spec, check_mode, guard, plan)
    return lambda cluster, check_mode: ensure_tenant_absent(cluster, spec, check_mode, guard)


if __name__ == "__main__":
    main()
