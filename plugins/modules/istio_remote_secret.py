#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: istio_remote_secret
short_description: Give a primary's istiod read access to a remote cluster (a rotatable Istio remote secret)
version_added: 0.1.0
description:
  - What C(istioctl create-remote-secret) does, as declared state. The module writes on two clusters, the primary
    (the top-level connection options, where istiod runs and reads the Secret) and the remote (O(remote), the cluster
    whose services and endpoints istiod should discover).
  - On the remote it ensures O(reader_namespace) (created when missing, never deleted), the reader ServiceAccount
    O(service_account), a ClusterRole and ClusterRoleBinding named
    C(meshops.istio:remote-reader:<reader_namespace>:<service_account>) that grant only what istiod reads (get,
    list and watch on Istio configuration, endpoints, endpointslices, pods, services, nodes, namespaces, secrets,
    configmaps, replicasets, CRDs and gateways; create on tokenreviews and subjectaccessreviews), and a token.
  - The token is a Secret of type C(kubernetes.io/service-account-token) (O(token_type=secret), no expiry), or a
    token from a TokenRequest bound to an Opaque Secret (O(token_type=bound), expires after O(token_lifetime)). In
    both cases deleting that Secret revokes the token, which is how O(rotate) and O(state=absent) revoke it. The API
    server may still accept a revoked token for a few seconds (its token cache).
  - Every primary Secret has a token of its own, told apart by the primary cluster (the UID of its C(kube-system)
    namespace), O(namespace) and O(cluster_name). Rotating or removing one primary's Secret never revokes another
    primary's access to the same remote.
  - On the primary it writes the Secret C(istio-remote-secret-<cluster_name>) in O(namespace), labelled
    C(istio/multiCluster=true) and annotated C(networking.istio.io/cluster=<cluster_name>). Its key C(<cluster_name>)
    holds a kubeconfig whose cluster, context and user are all named O(cluster_name), with the remote's API server
    address (O(server), else the address the module reached it at), the remote cluster's CA (the C(kube-root-ca.crt)
    ConfigMap) and the token.
  - A run with the same parameters keeps the token and, when the Secret already holds it, sends no write request
    and reports C(changed=false). The kubeconfig is compared locally. A bound token is re-issued once less than a
    third of its life is left.
  - O(rotate=true) issues a new token, rewrites the Secret, then revokes the old token, all in one run.
  - A ServiceAccount of the same name that this module did not create, for example the one the istiod chart
    installs with meshops.istio.istio_revision on a cluster with a control plane, is used as it is. It is never
    changed or deleted here, and the RBAC objects of this module never share a name with the chart's
    C(istio-reader-*) objects. If its owner removes it, the tokens stop working until the next run issues new ones.
  - O(state=absent) deletes the Secret on the primary (only if this module wrote it) and this primary's token on the
    remote. It deletes the reader (its ClusterRole, ClusterRoleBinding and the ServiceAccount, if this module created
    it) once no other primary holds a token for it.
  - Refuses before writing anything when O(remote) cannot be reached, when O(remote) is the primary itself, when the
    remote's address is a loopback address (unless O(server) or O(allow_loopback) is set), when O(cluster_name) is
    not a DNS-1123 label, when O(namespace) does not exist on the primary, and when O(token_type) and
    O(token_lifetime) do not go together.
  - O(remote) is the primary itself when the C(kube-system) namespace read through O(remote) has the UID of the
    primary's, or when the remote's API server address (O(remote)'s own, or O(server)) is the primary's once
    normalised (scheme and host lower-cased, default port explicit, no trailing slash). istiod would read its own
    cluster twice.
  - The token and the kubeconfig are never returned, logged or shown in diffs.
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
options:
  cluster_name:
    description:
      - The remote cluster's name, its Istio cluster ID (C(values.global.multiCluster.clusterName), istiod's
        C(CLUSTER_ID) in that cluster). A DNS-1123 label of at most 63 characters, the rule every module applies to
        a cluster name. It names the Secret, its key and the kubeconfig's cluster,
        context and user.
    type: str
    required: true
  namespace:
    description:
      - The primary's istiod namespace, where the Secret goes. It must exist.
    type: str
    default: istio-system
  remote:
    description:
      - How to connect to the remote cluster, with the same options as the top-level connection options. There is
        no fallback to C(K8S_AUTH_*) environment variables, the in-cluster config or the default kubeconfig, since
        those describe the primary. Give O(remote.kubeconfig) or O(remote.host).
      - The remote credentials must be allowed to manage ServiceAccounts, Secrets, ClusterRoles and
        ClusterRoleBindings and to request tokens, and they must hold every permission of the reader role (or
        C(escalate) and C(bind)); the ClusterRole C(meshops-istio-installer) that the collection ships grants all of
        this.
    type: dict
    required: true
    suboptions:
      kubeconfig:
        description:
          - Path to a kubeconfig of the remote cluster, or its content as a dict.
        type: raw
      context:
        description:
          - The context of O(remote.kubeconfig) to use.
        type: str
      host:
        description:
          - The remote API server's URL.
        type: str
      api_key:
        description:
          - A bearer token for the remote API server.
        type: str
      username:
        description:
          - A user name for basic authentication.
        type: str
      password:
        description:
          - The password for basic authentication.
        type: str
      validate_certs:
        description:
          - Whether to verify the remote API server's certificate.
        type: bool
        aliases: [verify_ssl]
      ca_cert:
        description:
          - Path to a CA certificate that signs the remote API server's certificate.
        type: path
        aliases: [ssl_ca_cert]
      client_cert:
        description:
          - Path to a client certificate for the remote API server.
        type: path
        aliases: [cert_file]
      client_key:
        description:
          - Path to the key of O(remote.client_cert).
        type: path
        aliases: [key_file]
      proxy:
        description:
          - An HTTP proxy URL for the connection to the remote.
        type: str
      no_proxy:
        description:
          - Comma-separated hosts, domains, IP addresses or CIDRs to reach without O(remote.proxy).
        type: str
      proxy_headers:
        description:
          - Headers for O(remote.proxy).
        type: dict
        suboptions:
          proxy_basic_auth:
            description:
              - Colon-separated user name and password for the proxy.
            type: str
          basic_auth:
            description:
              - Colon-separated user name and password for basic authentication.
            type: str
          user_agent:
            description:
              - The User-Agent header.
            type: str
      persist_config:
        description:
          - Whether refreshed credentials are written back to O(remote.kubeconfig).
        type: bool
      impersonate_user:
        description:
          - The user to impersonate on the remote.
        type: str
      impersonate_groups:
        description:
          - The groups to impersonate on the remote.
        type: list
        elements: str
  reader_namespace:
    description:
      - The remote namespace of the reader ServiceAccount and its tokens. Created when missing, never deleted.
    type: str
    default: istio-system
  service_account:
    description:
      - The reader ServiceAccount on the remote. Created when missing; used as it is when another owner has it.
    type: str
    default: istio-reader-service-account
  token_type:
    description:
      - V(secret) makes a Secret of type C(kubernetes.io/service-account-token), whose token does not expire, as
        C(istioctl create-remote-secret) does.
      - V(bound) requests a token (TokenRequest) that expires after O(token_lifetime) and is bound to a Secret of
        this module, so that it can be revoked. Run the module regularly, it renews the token in time.
      - Switching the type issues a new token and revokes the old one.
    type: str
    choices: [secret, bound]
    default: secret
  token_lifetime:
    description:
      - The bound token's lifetime in seconds, from 600 up to 2^32. Defaults to 31536000 (a year) with
        O(token_type=bound). Not allowed with O(token_type=secret).
      - The API server may shorten it (C(--service-account-max-token-expiration)).
    type: int
  server:
    description:
      - The remote API server's address written into the kubeconfig, when the primary's pods reach it at another
        address than the module does. An C(https://) URL.
    type: str
  allow_loopback:
    description:
      - Accept a loopback remote address (such as C(https://127.0.0.1:6443)). The remote must still be another
        cluster than the primary.
        Only useful when both clusters run on one host, as in tests.
    type: bool
    default: false
  rotate:
    description:
      - Issue a new token, rewrite the Secret with it, then revoke the old token. Every run with O(rotate=true)
        rotates, so set it for one run only.
    type: bool
    default: false
  state:
    description:
      - V(present) writes both sides. V(absent) removes them (see the description).
    type: str
    choices: [present, absent]
    default: present
  wait_timeout:
    description:
      - Seconds to wait for the remote's controllers to fill in a new token Secret and to publish the cluster's CA
        into a new O(reader_namespace).
    type: int
    default: 60
notes:
  - Needs the C(kubernetes) and C(PyYAML) Python libraries.
  - A Secret of the same name that another tool wrote (for example C(istioctl create-remote-secret) with
    C(kubectl apply)) is refused before writing, naming it; set O(force_conflicts=true) to take it over.
    O(state=absent) leaves such a Secret alone.
  - Changing O(reader_namespace) or O(service_account) leaves the previous reader on the remote; remove it first
    with O(state=absent) and the previous values.
seealso:
  - name: Install multi-primary on different networks
    description: Istio's task that uses remote secrets.
    link: https://istio.io/latest/docs/setup/install/multicluster/multi-primary_multi-network/
  - module: meshops.istio.istio_revision
  - module: meshops.istio.istio_cacerts
"""

EXAMPLES = r"""
- name: Let cluster1's istiod discover cluster2 (multi-primary, the other direction is a second task)
  meshops.istio.istio_remote_secret:
    kubeconfig: ~/.kube/cluster1
    cluster_name: cluster2
    remote:
      kubeconfig: ~/.kube/cluster2

- name: A bound token that expires after 30 days (renewed by any run within its last 10 days), another API address
  meshops.istio.istio_remote_secret:
    kubeconfig: ~/.kube/cluster1
    cluster_name: cluster2
    remote:
      kubeconfig: ~/.kube/cluster2
      context: admin@cluster2
    token_type: bound
    token_lifetime: 2592000
    server: https://cluster2-api.internal:6443

- name: Rotate the token (a new token in the Secret, the old one revoked)
  meshops.istio.istio_remote_secret:
    kubeconfig: ~/.kube/cluster1
    cluster_name: cluster2
    remote:
      kubeconfig: ~/.kube/cluster2
    rotate: true

- name: Remove cluster2 from cluster1's mesh view (the Secret, its token, and the reader once unused)
  meshops.istio.istio_remote_secret:
    kubeconfig: ~/.kube/cluster1
    cluster_name: cluster2
    remote:
      kubeconfig: ~/.kube/cluster2
    state: absent
"""

RETURN = r"""
secret_name:
  description: The Secret's name on the primary.
  returned: always
  type: str
  sample: istio-remote-secret-cluster2
server:
  description: The remote API server address in the kubeconfig.
  returned: always
  type: str
  sample: https://10.0.0.5:6443
rotated:
  description: Whether this run replaced the token, a new one issued and the previous one revoked.
  returned: always
  type: bool
  sample: false
token_expiration:
  description: When the token in the Secret expires (ISO 8601 UTC). Null for a token Secret's token, which does not
    expire, in check mode when a new token would be issued, and with O(state=absent).
  returned: always
  type: str
  sample: "2027-05-09T07:36:11+00:00"
objects:
  description: Every object created, updated or deleted, in the order it happened, with the cluster it is on.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The object's kind.
      type: str
    namespace:
      description: Its namespace, empty for cluster-scoped objects.
      type: str
    name:
      description: Its name.
      type: str
    action:
      description: V(created), V(updated) or V(deleted).
      type: str
    cluster:
      description: V(primary) or V(remote).
      type: str
  sample:
    - {kind: Secret, namespace: istio-system, name: istio-reader-service-account-token-x7k2p, action: created,
       cluster: remote}
    - {kind: Secret, namespace: istio-system, name: istio-remote-secret-cluster2, action: updated, cluster: primary}
"""

import copy

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshops.istio.plugins.module_utils.client import AUTH_ARG_SPEC
from ansible_collections.meshops.istio.plugins.module_utils.remote_secret.ensure import (
    ensure_remote_secret_absent,
    ensure_remote_secret_present,
)
from ansible_collections.meshops.istio.plugins.module_utils.remote_secret.spec import RemoteSecretSpec
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC, other_cluster, run_module

ARGUMENT_SPEC = dict(
    cluster_name=dict(type="str", required=True),
    namespace=dict(type="str", default="istio-system"),
    remote=dict(type="dict", required=True, options=copy.deepcopy(AUTH_ARG_SPEC)),
    reader_namespace=dict(type="str", default="istio-system"),
    service_account=dict(type="str", default="istio-reader-service-account"),
    token_type=dict(type="str", choices=["secret", "bound"], default="secret"),
    token_lifetime=dict(type="int", no_log=False),
    server=dict(type="str"),
    allow_loopback=dict(type="bool", default=False),
    rotate=dict(type="bool", default=False),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    wait_timeout=dict(type="int", default=60),
)


def main():
    module = AnsibleModule(argument_spec={**COMMON_ARG_SPEC, **ARGUMENT_SPEC}, supports_check_mode=True)
    spec = RemoteSecretSpec.from_params(module.params)
    remote = other_cluster(module, module.params["remote"], "remote")

    def ensure(primary, check_mode):
        if spec.state == "absent":
            return ensure_remote_secret_absent(primary, remote, spec, check_mode)
        return ensure_remote_secret_present(primary, remote, spec, check_mode, module.no_log_values.add)

    run_module(module, ensure, others=[remote])


if __name__ == "__main__":
    main()
