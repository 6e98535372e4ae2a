#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: istio_cacerts
short_description: Plug a per-cluster intermediate CA, signed by one shared root, into istiod (the cacerts Secret)
version_added: 0.1.0
description:
  - Writes the C(cacerts) Secret in istiod's namespace, which istiod uses as its signing CA instead of a self-signed
    one. Clusters whose intermediates are signed by the same root trust each other's workloads (multi-cluster);
    tenants with their own roots cannot complete mTLS with each other at all (per-tenant trust domains).
  - The root CA is either given (O(root_cert) and O(root_key)) or generated once into O(root_dir) and reused on every
    later run and for every cluster. A root is never regenerated silently. A generated root matches what Istio's
    own tools (C(tools/certs)) make, RSA 4096 (or ECDSA P-256), C(O=Istio, CN=Root CA), 10 years, CA:true critical,
    keyUsage critical digitalSignature, nonRepudiation, keyEncipherment, keyCertSign, subjectKeyIdentifier.
  - The intermediate has C(O=Istio, CN=Intermediate CA, L=<cluster_name>), CA:true pathlen:0 critical, the same key
    usage, subject and authority key identifiers, and the subjectAltName C(DNS:istiod.<namespace>.svc) (plus
    C(DNS:istiod-<revision>.<namespace>.svc) with O(revision)).
  - A live C(cacerts) whose intermediate is signed by the root, whose key matches, whose subject and names fit the
    parameters and which does not expire within O(renew_before) days stays as it is; when the root bundle is also
    unchanged no write request is sent and the task reports C(changed=false). Otherwise the Secret is updated with
    one server-side apply (never deleted and recreated).
  - Root rotation without an outage uses O(additional_roots), which adds roots to C(root-cert.pem) so workloads trust
    old and new roots during the switch. istiod hot-reloads a new intermediate, but not a new root, see
    RV(istiod_restart_needed). The procedure is in the examples.
  - Refuses before writing anything, with one sentence per problem, a root that is not a CA or lacks keyCertSign, a
    key that does not match its certificate, an expired root, a O(validity_days) longer than the root's remaining
    life, unparsable PEM, and a O(root_dir) that holds the certificate without the key or the reverse.
  - A C(cacerts) Secret that this module did not write (for example a plug-in CA made by hand) is refused, naming it;
    O(force_conflicts=true) adopts it, and a later O(state=absent) then deletes it.
  - Private keys are never returned, logged or shown in diffs.
author:
  - meshops.istio developers (@meshops)
requirements:
  - ansible-core 2.17 or later, on Python 3.10 or later (the host that runs the module, usually the controller)
  - kubernetes (Python) 29.0.0 or later
  - PyYAML 6.0 or later
  - jsonpatch 1.33 or later
  - cryptography (Python) 42.0.0 or later
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshops.istio.attributes
  - meshops.istio.attributes.transport
options:
  namespace:
    description:
      - The istiod namespace, where the C(cacerts) Secret goes. It is created when missing. Also the namespace in
        the intermediate's subjectAltName C(istiod.<namespace>.svc).
    type: str
    default: istio-system
  cluster_name:
    description:
      - The cluster (or tenant) this intermediate is for. It becomes the subject's C(L=) and should be the Istio
        cluster ID (C(values.global.multiCluster.clusterName)). Required unless O(root_only=true).
      - A DNS-1123 label of at most 63 characters, the rule every module applies to a cluster name.
    type: str
  revision:
    description:
      - The revision of the istiod that uses this Secret. Adds C(DNS:istiod-<revision>.<namespace>.svc) to the
        intermediate's subjectAltName.
    type: str
  state:
    description:
      - V(present) converges the C(cacerts) Secret. V(absent) deletes the C(cacerts) Secret this module wrote in
        O(namespace) (a Secret it did not write is left alone) and needs no root; the root on the controller stays.
    type: str
    choices: [present, absent]
    default: present
  root_dir:
    description:
      - Directory with the root CA, C(root-cert.pem) and C(root-key.pem) (mode 0600), on the host that runs the
        module (normally the controller). When both are missing a root is generated there once, and every later run,
        for any cluster, reuses it. When only one of them is there the task fails.
      - Back the directory up and keep it private; whoever has C(root-key.pem) can mint identities for every cluster.
    type: path
  root_cert:
    description:
      - The root CA certificate, as PEM content or the path of a PEM file. Needs O(root_key).
      - An RSA key under 2048 bits is refused, here, in O(root_dir)'s root and in O(additional_roots). A live
        intermediate with such a key is re-issued.
    type: str
  root_key:
    description:
      - The root CA's unencrypted private key, as PEM content (for example from Ansible Vault) or the path of a PEM
        file. Needs O(root_cert).
    type: str
  root_only:
    description:
      - Only make sure the root exists (generate it into O(root_dir) when missing) and return its facts; touch no
        cluster. Step one of a root rotation, see the examples.
    type: bool
    default: false
  additional_roots:
    description:
      - More root certificates for C(root-cert.pem) (PEM content or paths; each may hold several certificates), next
        to the signing root. Workloads then trust certificates of those roots too, which is what a root rotation
        needs. Remove them once the rotation is done.
    type: list
    elements: str
    default: []
  key_type:
    description:
      - The key type of what this module generates, the intermediate and a new root. An existing root keeps its key.
    type: str
    choices: [rsa, ecdsa]
    default: rsa
  validity_days:
    description:
      - Lifetime of a new intermediate in days. Must not exceed the root's remaining life.
    type: int
    default: 730
  renew_before:
    description:
      - Re-issue the intermediate when it expires within this many days. Must be shorter than O(validity_days).
    type: int
    default: 30
  format:
    description:
      - V(istio) writes C(ca-cert.pem), C(ca-key.pem), C(root-cert.pem) and C(cert-chain.pem) (intermediate and root)
        into an Opaque Secret.
      - V(tls) writes C(tls.crt), C(tls.key) and C(ca.crt) into a C(kubernetes.io/tls) Secret.
      - Kubernetes cannot change a Secret's type in place, so switching the format of an existing Secret is refused.
    type: str
    choices: [istio, tls]
    default: istio
notes:
  - Needs the C(cryptography) and C(kubernetes) Python libraries.
  - O(root_dir), O(root_cert), O(root_key) and O(additional_roots) paths are read on the host that runs the module.
    Run it on the controller (C(localhost)) so the root never leaves it.
  - Create the Secret before installing istiod. istiod that already runs on its self-signed CA, or on another root,
    only picks up a new root after a restart.
seealso:
  - name: Plug in CA certificates
    description: Istio's task this module automates.
    link: https://istio.io/latest/docs/tasks/security/cert-management/plugin-ca-cert/
  - module: meshops.istio.istio_revision
"""

EXAMPLES = r"""
- name: One root for the mesh, generated once on the controller; an intermediate for cluster1
  meshops.istio.istio_cacerts:
    kubeconfig: ~/.kube/cluster1
    root_dir: ~/mesh-pki/root
    cluster_name: cluster1

- name: The same root for cluster2 (a different intermediate, the same root-cert.pem)
  meshops.istio.istio_cacerts:
    kubeconfig: ~/.kube/cluster2
    root_dir: ~/mesh-pki/root
    cluster_name: cluster2

- name: A tenant's own root (no mTLS with other tenants), for its revision's istiod, kubernetes.io/tls layout
  meshops.istio.istio_cacerts:
    namespace: usergroup-1
    revision: usergroup-1
    cluster_name: usergroup-1
    root_cert: "{{ vault_usergroup_1_root_cert }}"
    root_key: "{{ vault_usergroup_1_root_key }}"
    key_type: ecdsa
    format: tls

# Root rotation without an outage, for every cluster of the mesh. Finish each step on all clusters before the
# next. After each step that reports istiod_restart_needed, restart istiod, then the workloads
# (kubectl rollout restart), so every proxy has the new trust bundle before any certificate of the new root is used.
- name: Rotation step 1, create the new root next to the old one (no cluster is touched)
  meshops.istio.istio_cacerts:
    root_dir: ~/mesh-pki/root-2026
    root_only: true

- name: Rotation step 2, trust both roots, still sign with the old one
  meshops.istio.istio_cacerts:
    root_dir: ~/mesh-pki/root
    additional_roots:
      - ~/mesh-pki/root-2026/root-cert.pem
    cluster_name: "{{ cluster_name }}"
  register: trust_both

- name: Restart istiod when the root bundle changed (then restart the workloads)
  kubernetes.core.k8s:
    api_version: apps/v1
    kind: Deployment
    namespace: istio-system
    name: istiod
    definition:
      spec:
        template:
          metadata:
            annotations:
              meshops.io/root-bundle: "{{ trust_both.root_bundle | map(attribute='fingerprint_sha256') | join(',') }}"
  when: trust_both.istiod_restart_needed

- name: Rotation step 3, sign with the new root, still trust the old one (istiod hot-reloads the intermediate)
  meshops.istio.istio_cacerts:
    root_dir: ~/mesh-pki/root-2026
    additional_roots:
      - ~/mesh-pki/root/root-cert.pem
    cluster_name: "{{ cluster_name }}"

- name: Rotation step 4, once every workload has a certificate of the new root, drop the old root (restart again)
  meshops.istio.istio_cacerts:
    root_dir: ~/mesh-pki/root-2026
    cluster_name: "{{ cluster_name }}"

- name: Remove a tenant's cacerts Secret (playbooks/uninstall.yml does this with the tenant's revision)
  meshops.istio.istio_cacerts:
    namespace: usergroup-1
    state: absent
"""

RETURN = r"""
namespace:
  description: The namespace of the Secret.
  returned: unless root_only
  type: str
  sample: istio-system
secret:
  description: The Secret's name.
  returned: unless root_only
  type: str
  sample: cacerts
format:
  description: The Secret's layout.
  returned: when state is present, unless root_only
  type: str
  sample: istio
root:
  description: The root CA that signs the intermediate.
  returned: when state is present
  type: dict
  contains:
    subject:
      description: The subject, RFC 4514.
      type: str
      sample: CN=Root CA,O=Istio
    fingerprint_sha256:
      description: SHA-256 fingerprint of the certificate.
      type: str
      sample: "3A:0F:...:9C"
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
      sample: "2036-05-09T07:36:11+00:00"
    generated:
      description: Whether this run generated the root (and saved it to root_dir, unless in check mode).
      type: bool
      sample: false
intermediate:
  description: The intermediate CA in the Secret after the run.
  returned: when state is present, unless root_only
  type: dict
  contains:
    subject:
      description: The subject, RFC 4514.
      type: str
      sample: L=cluster1,CN=Intermediate CA,O=Istio
    fingerprint_sha256:
      description: SHA-256 fingerprint of the certificate.
      type: str
      sample: "7B:11:...:E0"
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
      sample: "2028-05-09T07:36:11+00:00"
    issued:
      description: Whether this run issued a new intermediate.
      type: bool
      sample: false
    reason:
      description: Why a new intermediate was issued; null when the live one stays.
      type: str
      sample: it expires in 12 days, within renew_before (30 days)
root_bundle:
  description: The roots in C(root-cert.pem) (C(ca.crt)), the signing root first, each with subject, fingerprint_sha256
    and not_after.
  returned: when state is present, unless root_only
  type: list
  elements: dict
  sample:
    - {subject: "CN=Root CA,O=Istio", fingerprint_sha256: "3A:0F:...:9C", not_after: "2036-05-09T07:36:11+00:00"}
istiod_restart_needed:
  description:
    - Whether the root bundle differs from the one in the Secret before the run (also when the Secret is created).
      istiod reloads a new intermediate by itself but needs a restart for a new root bundle; restart the workloads
      after it. If istiod is not installed yet there is nothing to restart.
  returned: when state is present, unless root_only
  type: bool
  sample: false
objects:
  description: Every object created or updated (kind, namespace, name, action).
  returned: unless root_only
  type: list
  elements: dict
  sample:
    - {kind: Secret, namespace: istio-system, name: cacerts, action: updated}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshops.istio.plugins.module_utils.cacerts import (
    CacertsSpec,
    ensure_cacerts,
    ensure_cacerts_absent,
    ensure_root,
)
from ansible_collections.meshops.istio.plugins.module_utils.pki import IMPORT_ERROR as CRYPTOGRAPHY_IMPORT_ERROR
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC, run_module

ARGUMENT_SPEC = dict(
    namespace=dict(type="str", default="istio-system"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    cluster_name=dict(type="str"),
    revision=dict(type="str"),
    root_dir=dict(type="path"),
    root_cert=dict(type="str"),
    root_key=dict(type="str", no_log=True),
    root_only=dict(type="bool", default=False),
    additional_roots=dict(type="list", elements="str", default=[]),
    key_type=dict(type="str", choices=["rsa", "ecdsa"], default="rsa"),
    validity_days=dict(type="int", default=730),
    renew_before=dict(type="int", default=30),
    format=dict(type="str", choices=["istio", "tls"], default="istio"),
)


def main():
    module = AnsibleModule(
        argument_spec={**COMMON_ARG_SPEC, **ARGUMENT_SPEC},
        mutually_exclusive=[("root_dir", "root_cert"), ("root_dir", "root_key")],
        required_together=[("root_cert", "root_key")],
        required_if=[("state", "present", ("root_dir", "root_cert"), True)],
        supports_check_mode=True,
    )
    if CRYPTOGRAPHY_IMPORT_ERROR is not None:
        module.fail_json(msg=f"The cryptography Python library is required: {CRYPTOGRAPHY_IMPORT_ERROR}. Install it.")
    spec = CacertsSpec.from_params(module.params)
    if spec.state == "absent":
        run_module(module, lambda cluster, check_mode: ensure_cacerts_absent(cluster, spec, check_mode))
    elif spec.root_only:
        run_module(module, lambda _cluster, check_mode: ensure_root(spec, check_mode), needs_cluster=False)
    else:
        run_module(module, lambda cluster, check_mode: ensure_cacerts(cluster, spec, check_mode))


if __name__ == "__main__":
    main()
