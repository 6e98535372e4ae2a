#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: istio_isolation_info
short_description: Report whether tenants are isolated on a live cluster
version_added: 0.1.0
description:
  - Reads namespaces, installed revisions (their mesh ConfigMaps), injector webhooks, tenant policies and gateways,
    and evaluates the isolation invariants locally. It changes nothing.
  - Each tenant namespace must exist and carry the tenant's label. It must be selected by exactly one revision's
    discoverySelectors (its own; another control plane's too only for a shared namespace, whose C(cacerts) both hold
    the same roots, and its C(istio.io/rev) names one of them) and match exactly one injector webhook. Its
    PeerAuthentication must have the expected mTLS mode, and it must hold the isolation policies that were asked for.
  - Nothing in a tenant namespace may open it to everyone, whoever created it. That means no ALLOW
    C(AuthorizationPolicy) whose source namespaces or principals hold a wildcard, no C(Sidecar) whose egress reaches
    C(*/...), and no C(RoleBinding) to C(system:authenticated), C(system:unauthenticated), C(system:anonymous),
    C(system:serviceaccounts), C(system:serviceaccounts:<namespace>) of a namespace outside the tenant or the user
    C(system:anonymous). The last is allowed when the tenant's C(isolation.allow_broad_admins) is true. This is the
    invariant C(no wildcard or broad access).
  - The content counts, not only the presence. The PeerAuthentication, AuthorizationPolicy, Sidecar and NetworkPolicy
    are compared with what M(meshops.istio.istio_tenant) writes for the tenant's data and the control plane that
    serves the namespace. A policy someone changed (for example a NetworkPolicy opened to every source, or an
    AuthorizationPolicy given a selector) is a problem that names the changed fields.
  - Pods the NetworkPolicy does not select are reported too. Its pod selector leaves out pods labelled C(istio),
    so that gateways stay reachable. A pod with that label that is not a pod of a meshops.istio gateway (its
    ReplicaSet is not the gateway Deployment's) can be reached from every namespace. The pods of namespaces with a
    NetworkPolicy are read for this, one LIST per namespace.
  - Across the cluster, no namespace may be selected by two revisions, and every tenant gateway must be Ready.
  - Every violation is returned as a sentence in RV(problems). C(playbooks/verify.yml) fails when there are any.
author:
  - meshops.istio developers (@meshops)
requirements:
  - ansible-core 2.17 or later, on Python 3.10 or later (the host that runs the module, usually the controller)
  - kubernetes (Python) 29.0.0 or later
  - PyYAML 6.0 or later
  - jsonpatch 1.33 or later
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshops.istio.attributes.info_module
  - meshops.istio.attributes.transport
options:
  tenants:
    description:
      - The tenants to check, as given to C(playbooks/multitenant.yml). Each entry has C(name) and C(namespaces),
        and optionally C(mtls) (default STRICT) and C(isolation) (which policies are expected, and the
        C(allow_namespaces) their content allows).
      - "An entry with C(root_namespace_mtls) true and C(revision) (as the dedicated model's plan gives them) is also
        checked for its mesh-wide C(PeerAuthentication) C(<name>-peerauth) in the revision's system namespace, with
        the tenant's C(mtls) mode. The result is the RV(invariants) entry C(tenant <name>: mesh-wide mTLS in root
        namespace <namespace>)."
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Check seed 002's tenants
  meshops.istio.istio_isolation_info:
    tenants:
      - {name: usergroup-1, namespaces: [app-ns-1]}
      - {name: usergroup-2, namespaces: [app-ns-2, app-ns-3]}
  register: isolation

- name: Fail on any broken invariant
  ansible.builtin.assert:
    that: isolation.problems | length == 0
    fail_msg: "{{ isolation.problems }}"
"""

RETURN = r"""
tenants:
  description: Per tenant, each namespace's facts (revision, selected_by, injectors, mtls, policies) and gateways.
  returned: always
  type: dict
  sample:
    usergroup-1:
      namespaces:
        app-ns-1:
          exists: true
          revision: usergroup-1
          selected_by: [usergroup-1]
          injectors: [istio-sidecar-injector-usergroup-1-usergroup-1/rev.namespace.sidecar-injector.istio.io]
          mtls: STRICT
          invariants:
            labelled for its tenant: []
            selected by exactly its revision: []
            exactly one injector: []
            mTLS as desired: []
            isolation policies in place: []
      gateways: {}
revisions:
  description: Per installed revision, its system namespace and CA (C(cacerts) with its intermediate and roots, each
    with subject, fingerprint and expiry, and why istiod could not sign with it; or C(self-signed)).
  returned: always
  type: dict
  sample:
    usergroup-1:
      namespace: usergroup-1
      ca: cacerts
      cacerts:
        intermediate: {subject: "L=usergroup-1,CN=Intermediate CA,O=Istio", fingerprint_sha256: "7B:11:...:E0",
                       not_after: "2028-05-09T07:36:11+00:00"}
        root_certificates: [{subject: "CN=Root CA,O=Istio", fingerprint_sha256: "3A:0F:...:9C",
                             not_after: "2036-05-07T07:36:10+00:00"}]
        problem: null
shared_namespaces:
  description:
    - Each namespace that control planes of more than one system namespace select (a shared namespace of the
      dedicated model), with the revisions that select it, the root they share (the fingerprints of the roots in
      their C(cacerts); null when they do not hold one), the revision whose C(istio.io/rev) it carries when that is
      one of them (the one that injects it), and why it may not be shared (null when it may). A namespace that may
      not be shared is also a problem of the invariant C(no two revisions select the same namespace).
  returned: always
  type: dict
  sample:
    platform-svc:
      selected_by: [platform, team-a]
      root: "3A:0F:...:9C"
      injected_by: platform
      problem: null
invariants:
  description: The cluster-wide invariants and the problems found for each (an empty list when it holds). Each tenant
    namespace's own are in RV(tenants) (C(namespaces.<name>.invariants)). meshops.istio.isolation_report makes one
    test case of each.
  returned: always
  type: dict
  sample:
    no two revisions select the same namespace: []
    cacerts in usergroup-1 can sign: []
    "tenant usergroup-1: mesh-wide mTLS in root namespace usergroup-1": []
server:
  description: The API server the facts were read from.
  returned: always
  type: str
  sample: https://127.0.0.1:6443
problems:
  description: Every broken invariant, one sentence each; empty when the tenants are isolated.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshops.istio.plugins.module_utils.isolation import gather_isolation_report
from ansible_collections.meshops.istio.plugins.module_utils.runner import CLUSTER_ARG_SPEC, run_module


def main():
    module = AnsibleModule(
        argument_spec={**CLUSTER_ARG_SPEC, "tenants": dict(type="list", elements="dict", required=True)},
        supports_check_mode=True,
    )
    run_module(
        module,
        lambda cluster, _check_mode: (
            dict(changed=False, **gather_isolation_report(cluster, module.params["tenants"])),
            [],
            [],
        ),
    )


if __name__ == "__main__":
    main()
