#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: istio_multicluster_info
short_description: Check one cluster of a multi-cluster mesh (shared root, networks, valid remote secrets)
version_added: 0.1.0
description:
  - Reads one cluster of a mesh (the top-level connection options) and the other clusters (O(peers)) and evaluates
    the multi-cluster invariants locally. It changes nothing.
  - Trust chain. The C(cacerts) Secret in O(namespace) must hold an intermediate that matches its key and chains to
    a root of its root bundle. Every peer's root bundle must be the same, and every peer's intermediate must differ
    from this cluster's.
  - Network. The istio namespace must be labelled C(topology.istio.io/network=<network>). With O(eastwest_gateway),
    that gateway's pods, its proxy's C(ISTIO_META_REQUESTED_NETWORK_VIEW) and its Service must name the same network.
  - Remote secrets. For each cluster in O(remote_secrets) the Secret C(istio-remote-secret-<cluster>) must exist,
    labelled C(istio/multiCluster=true) and annotated C(networking.istio.io/cluster=<cluster>), with a kubeconfig
    whose cluster, context and user are named after that cluster, that points at the peer's API server and carries
    the peer's cluster CA. The peer must accept its token (a TokenReview on the peer), and the token's identity must
    be allowed to list Services there and must not be allowed to create Services (SubjectAccessReviews on the
    peer). A remote secret for a cluster that is not in O(remote_secrets) is a problem too.
  - Every violation is returned as a sentence in RV(problems). C(playbooks/verify-multicluster.yml) fails when there
    are any. Tokens are only sent to the peer's TokenReview; they are never returned or logged.
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
  - meshops.istio.attributes.info_module
  - meshops.istio.attributes.transport
options:
  cluster_name:
    description:
      - This cluster's name in the mesh (its Istio cluster ID). A DNS-1123 label of at most 63 characters, the rule
        every module applies to a cluster name (so are the peers' names and O(remote_secrets)).
    type: str
    required: true
  namespace:
    description:
      - The istio namespace on every cluster, which holds C(cacerts), the remote secrets and the east-west gateway.
    type: str
    default: istio-system
  network:
    description:
      - This cluster's network.
    type: str
    required: true
  eastwest_gateway:
    description:
      - The name of this cluster's east-west gateway, when it must have one. Unset means no gateway is checked.
    type: str
  peers:
    description:
      - The other clusters of the mesh.
    type: list
    elements: dict
    default: []
    suboptions:
      cluster_name:
        description: The peer's cluster name.
        type: str
        required: true
      auth:
        description:
          - How to connect to the peer, with the names of the top-level connection options (C(kubeconfig),
            C(context), C(host), C(api_key), ...). Never taken from C(K8S_AUTH_*) variables, which describe this
            cluster. The credentials must be allowed to read Secrets in O(namespace) and to create TokenReviews and
            SubjectAccessReviews.
        type: dict
        required: true
      server:
        description:
          - The peer's API server address as this cluster reaches it, when it differs from the one in O(peers[].auth).
            The remote secret must point there.
        type: str
  remote_secrets:
    description:
      - The peers whose remote secrets this cluster must hold (on a primary, every other cluster; on a remote, none).
    type: list
    elements: str
    default: []
notes:
  - Needs the C(kubernetes), C(cryptography) and C(PyYAML) Python libraries.
seealso:
  - module: meshops.istio.istio_remote_secret
  - module: meshops.istio.istio_cacerts
"""

EXAMPLES = r"""
- name: Check cluster1 of a two-cluster multi-primary mesh
  meshops.istio.istio_multicluster_info:
    kubeconfig: ~/.kube/cluster1
    cluster_name: cluster1
    network: network1
    eastwest_gateway: istio-eastwestgateway
    peers:
      - cluster_name: cluster2
        auth:
          kubeconfig: ~/.kube/cluster2
    remote_secrets: [cluster2]
  register: mesh

- name: Fail on any broken invariant
  ansible.builtin.assert:
    that: mesh.problems | length == 0
    fail_msg: "{{ mesh.problems }}"
"""

RETURN = r"""
cluster:
  description: This cluster's name, network and C(cacerts) (its intermediate, the fingerprints of its roots, its root
    certificates with expiry, and why istiod could not sign with it, null when it can).
  returned: always
  type: dict
  sample:
    name: cluster1
    network: network1
    cacerts:
      intermediate: {subject: "L=cluster1,CN=Intermediate CA,O=Istio", fingerprint_sha256: "7B:11:...:E0",
                     not_after: "2028-05-09T07:36:11+00:00"}
      roots: ["3A:0F:...:9C"]
      root_certificates: [{subject: "CN=Root CA,O=Istio", fingerprint_sha256: "3A:0F:...:9C",
                           not_after: "2036-05-07T07:36:10+00:00"}]
      problem: null
peers:
  description: Each peer's C(cacerts), with the same facts as in RV(cluster).
  returned: always
  type: dict
  sample:
    cluster2:
      cacerts: {intermediate: {subject: "L=cluster2,CN=Intermediate CA,O=Istio"}, roots: ["3A:0F:...:9C"],
                problem: null}
remote_secrets:
  description: Per expected peer, its remote secret on this cluster, what its kubeconfig points at, and what the peer
    said about its token (never the token itself).
  returned: always
  type: dict
  sample:
    cluster2:
      exists: true
      secret: istio-remote-secret-cluster2
      labelled: true
      annotated: true
      kubeconfig_named: true
      server: https://192.0.2.20:6443
      token_authenticated: true
      user: system:serviceaccount:istio-system:istio-reader-service-account
      may_list_services: true
      may_write: false
invariants:
  description: Each invariant checked on this cluster and the problems found for it (an empty list when it holds);
    meshops.istio.isolation_report makes one test case of each.
  returned: always
  type: dict
  sample:
    shares the root, with its own intermediate: []
    carries its network: []
    remote secret for cluster2 accepted: []
    no remote secret for a cluster outside the mesh: []
problems:
  description: Every broken invariant, one sentence each; empty when the cluster is a sound member of the mesh.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshops.istio.plugins.module_utils.multicluster import (
    MulticlusterInfoSpec,
    gather_multicluster_report,
)
from ansible_collections.meshops.istio.plugins.module_utils.pki import IMPORT_ERROR as CRYPTOGRAPHY_IMPORT_ERROR
from ansible_collections.meshops.istio.plugins.module_utils.runner import CLUSTER_ARG_SPEC, other_cluster, run_module

PEER_SPEC = dict(
    cluster_name=dict(type="str", required=True),
    auth=dict(type="dict", required=True, no_log=True),
    server=dict(type="str"),
)
ARGUMENT_SPEC = dict(
    cluster_name=dict(type="str", required=True),
    namespace=dict(type="str", default="istio-system"),
    network=dict(type="str", required=True),
    eastwest_gateway=dict(type="str"),
    peers=dict(type="list", elements="dict", default=[], options=PEER_SPEC),
    # Cluster names, nothing secret.
    remote_secrets=dict(type="list", elements="str", default=[], no_log=False),
)


def main():
    module = AnsibleModule(argument_spec={**CLUSTER_ARG_SPEC, **ARGUMENT_SPEC}, supports_check_mode=True)
    if CRYPTOGRAPHY_IMPORT_ERROR is not None:
        module.fail_json(msg=f"The cryptography Python library is required: {CRYPTOGRAPHY_IMPORT_ERROR}. Install it.")
    spec = MulticlusterInfoSpec.from_params(module.params)

    def connect_peer(index: int):
        return other_cluster(module, module.params["peers"][index]["auth"], f"peers[{index}].auth")

    run_module(
        module,
        lambda cluster, _check_mode: (
            dict(changed=False, **gather_multicluster_report(cluster, spec, connect_peer)),
            [],
            [],
        ),
    )


if __name__ == "__main__":
    main()
