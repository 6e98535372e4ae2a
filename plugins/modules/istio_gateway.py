#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: istio_gateway
short_description: Install and remove Istio ingress, egress or east-west gateways bound to a revision
version_added: 0.1.0
description:
  - Builds one gateway the way Istio's C(gateway) chart does, with gateway injection and without istioctl or Helm.
    The objects are a ServiceAccount, a Deployment, a Service, a Role and RoleBinding that let the gateway's
    ServiceAccount read secrets in its namespace, and optionally a HorizontalPodAutoscaler and a PodDisruptionBudget.
  - The Deployment's pod template is annotated C(inject.istio.io/templates=gateway) and labelled
    C(sidecar.istio.io/inject=true) and C(istio.io/rev=<revision>). Its container image is C(auto), so the
    revision's injector fills in the proxy. The pod may bind ports below 1024 through the
    C(net.ipv4.ip_unprivileged_port_start=0) sysctl and runs as non-root without capabilities.
  - Made for the shared model, with one control plane and a gateway per tenant namespace. Combine it with
    C(PILOT_SCOPE_GATEWAY_TO_NAMESPACE=true) on the revision so that each gateway only takes C(Gateway) resources
    from its own namespace. For multi-network meshes, O(kind=eastwest) builds the east-west gateway and can expose
    this network's services (O(expose_services)) and its istiod (O(expose_istiod)).
  - Refuses before writing anything when the revision is neither installed nor a revision tag, or when the
    namespace does not exist. It also refuses a namespace that carries C(istio-injection) or another revision's
    C(istio.io/rev) label, because the revision's injector would then not inject the gateway. The namespace must
    also be selected by the revision's discoverySelectors. A nodePort outside O(node_port_range) or used by another
    Service is refused too, as are invalid names, labels and ports.
  - A same-named object of any kind the gateway writes (ServiceAccount, Service, Role, RoleBinding, HPA, PDB,
    Deployment, Gateway, VirtualService) that exists without this gateway's owner labels (made by hand, by Helm, or
    another gateway's) is refused before writing, naming its kind, namespace and name. O(force_conflicts=true)
    adopts it, and a later O(state=absent) then deletes it.
  - Objects carry C(app.kubernetes.io/managed-by=meshops.istio) and C(meshops.io/gateway=<namespace>.<name>). Prune
    and removal select by these labels, so removing one gateway never touches another. The objects do not carry
    C(istio.io/rev), so C(istioctl uninstall --revision) does not delete them. Only the pod template carries it.
  - A second run with the same parameters sends no write request and reports C(changed=false).
  - O(gateways) installs or removes many gateways in one run, one module process for all of them.
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
      - The gateway's name. The Deployment, Service, ServiceAccount, Role, RoleBinding, HPA and PDB are all named
        after it. A DNS-1035 label such as C(istio-ingressgateway) or C(istio-eastwestgateway).
      - O(namespace) and O(name) joined by a dot must fit in 63 characters, the owner label's limit.
      - Required unless O(gateways) is given.
    type: str
  namespace:
    description:
      - The namespace the gateway runs in. It must exist already and must not carry C(istio-injection).
      - Required unless O(gateways) is given.
    type: str
  gateways:
    description:
      - Many gateways in one run, instead of O(name) and the other per-gateway options. Each entry is a dict with
        C(name) and C(namespace) (required), C(revision) (required with O(state=present)), C(api), C(listeners),
        C(kind), C(replicas),
        C(autoscale), C(pdb), C(service), C(labels), C(resources), C(network), C(expose_services) and
        C(expose_istiod), with the meaning, types and defaults of the options of the same name. O(state),
        O(node_port_range), O(wait), O(wait_timeout), O(force_conflicts) and the C(planned_*) options apply to
        every entry, and so does O(gateway_api_crds).
      - The cluster is read once for all gateways. That is a LIST of revisions, revision tags, namespaces and
        Services, and one LIST per kind a gateway owns, selected by the owner labels. A desired object no gateway
        owns yet is looked up by name, one LIST per kind and name across namespaces. That finds same-named objects
        of others, which are refused as with one gateway. A re-run that changes nothing costs the same few reads
        for 5 gateways or 500.
      - Entries are checked before anything is read. An invalid entry, the same namespace and name twice, or one
        nodePort in two entries fail the task and nothing is written.
      - A gateway whose namespace or objects are in the way is set aside and not written. That covers a refusal
        that names the namespace, an object of others, and fields another manager owns. Every other gateway is
        converged, then the task fails naming each set-aside gateway. The task returns them in C(failed_gateways).
        A plan the API server rejects in its dry run writes nothing for any gateway.
      - A gateway no longer listed is not touched; remove it with O(state=absent).
    type: list
    elements: dict
  state:
    description:
      - V(present) installs or converges the gateway. V(absent) removes every object of this gateway and nothing else.
    type: str
    choices: [present, absent]
    default: present
  revision:
    description:
      - The installed revision (or revision tag) whose injector injects the gateway and whose istiod configures it.
        With a tag, moving the tag and restarting the gateway upgrades it.
      - Required with O(state=present).
    type: str
  api:
    description:
      - How the gateway is declared.
      - V(deployment) builds the Deployment, Service and the rest here, with gateway injection, as described above.
      - V(gateway_api) writes a Gateway API C(Gateway) of class C(istio), labelled C(istio.io/rev=<revision>), and a
        ConfigMap C(<name>-gateway-parameters) that its C(infrastructure.parametersRef) names. The revision's istiod
        (its deployment controller) then deploys the gateway, a Deployment, Service and ServiceAccount named
        C(<name>-istio), and another revision's istiod does not. The ConfigMap carries O(replicas), O(resources),
        O(autoscale) (an HPA), O(pdb) (a PDB), the nodePorts of O(listeners) and the O(service) options as patches
        istiod applies to what it deploys. The Service type is set with the Gateway's annotation
        C(networking.istio.io/service-type).
      - With V(gateway_api) the Gateway's listeners accept routes from its own namespace only, so another tenant's
        routes cannot attach to it. O(kind) must stay V(ingress), and O(network), O(expose_services),
        O(expose_istiod) and O(service.ports) are refused (the Service's ports come from O(listeners)).
      - The cluster must serve the Gateway API CRDs, or O(gateway_api_crds) must name their files. Istio 1.31 ignores
        CRDs older than it requires (TLSRoute below v1.5.0, TCPRoute below v1.6.0); its own build uses v1.6.0.
    type: str
    choices: [deployment, gateway_api]
    default: deployment
  listeners:
    description:
      - With O(api=gateway_api), the Gateway's listeners. Defaults to one HTTP listener C(http) on port 80.
      - Listeners may share a port (with different hostnames); the Service gets one port per number.
    type: list
    elements: dict
    suboptions:
      name:
        description: The listener's name, a DNS-1123 label unique in the Gateway.
        type: str
        required: true
      port:
        description: The port the gateway listens on, and its Service exposes.
        type: int
        required: true
      protocol:
        description: The listener's protocol. V(HTTPS) terminates TLS with O(listeners[].tls_secret).
        type: str
        choices: [HTTP, HTTPS, TCP]
        default: HTTP
      hostname:
        description: The host name the listener serves, such as C(shop.example.com) or C(*.example.com).
        type: str
      tls_secret:
        description: For V(HTTPS), the name of the TLS Secret in the gateway's namespace that holds its certificate.
        type: str
      node_port:
        description:
          - A fixed nodePort for this listener's port (Service type V(NodePort) or V(LoadBalancer)), checked as
            O(service.ports[].node_port) is.
        type: int
  gateway_api_crds:
    description:
      - A directory of Gateway API CRD files (or one file) to apply before the first C(Gateway) of the run, as shared
        objects that are never pruned or removed with a gateway. Only CustomResourceDefinitions of
        C(gateway.networking.k8s.io) are accepted; anything else is refused before writing.
      - The collection ships no CRDs and downloads nothing. Take the files from the Gateway API release the pinned
        Istio requires (its C(config/crd/standard) directory, without the ValidatingAdmissionPolicy file), or install
        them yourself with C(kubectl apply --server-side) and leave this unset.
      - Applies to every entry of O(gateways).
    type: path
  kind:
    description:
      - V(ingress) and V(egress) differ only in the default Service type (V(LoadBalancer) and V(ClusterIP)).
      - V(eastwest) needs O(network). It adds the network label and C(ISTIO_META_REQUESTED_NETWORK_VIEW), and its
        default Service ports are status-port 15021, tls 15443, tls-istiod 15012 and tls-webhook 15017.
    type: str
    choices: [ingress, egress, eastwest]
    default: ingress
  replicas:
    description:
      - A fixed number of replicas, without HPA. Used when O(autoscale) is not set, and defaults to 1 then.
    type: int
  autoscale:
    description:
      - Scale with a HorizontalPodAutoscaler on CPU. The Deployment then leaves the replica count to the HPA, and
        carries the annotation C(meshops.io/min-replicas) so that O(wait), the playbooks' waits and verify count the
        rollout complete only once O(autoscale.min_replicas) replicas are available, not when the first one is.
    type: dict
    suboptions:
      min_replicas:
        description: Fewest replicas.
        type: int
        default: 1
      max_replicas:
        description: Most replicas.
        type: int
        default: 5
      target_cpu_utilization:
        description: Average CPU utilization in percent of the requests that the HPA aims for.
        type: int
        default: 80
  pdb:
    description:
      - A PodDisruptionBudget for the gateway's pods.
    type: dict
    suboptions:
      min_available:
        description:
          - Pods that must stay available during voluntary disruptions, as a number or a percentage such as C(50%).
          - Must be below the fewest replicas, otherwise node drains would wait forever.
        type: raw
        required: true
  service:
    description:
      - The gateway's Service.
    type: dict
    suboptions:
      type:
        description:
          - The Service type. Defaults to V(LoadBalancer) for ingress and east-west gateways and to V(ClusterIP)
            for egress gateways.
        type: str
        choices: [ClusterIP, NodePort, LoadBalancer]
      ports:
        description:
          - The Service's ports. Defaults to status-port 15021, http2 80 and https 443, or to the four east-west
            ports for O(kind=eastwest). Ports that O(expose_services) or O(expose_istiod) route must be present.
        type: list
        elements: dict
        suboptions:
          name:
            description: Port name; Istio reads the protocol from its prefix (C(http2), C(https), C(tls), ...).
            type: str
            required: true
          port:
            description: The Service port.
            type: int
            required: true
          target_port:
            description:
              - The port the proxy listens on (1-65535), or a named container port. Defaults to
                O(service.ports[].port).
              - A name is an IANA service name, as Kubernetes requires. At most 15 lower-case letters, digits and
                C(-), with at least one letter and no leading, trailing or double C(-).
            type: raw
          node_port:
            description:
              - A fixed nodePort (types NodePort and LoadBalancer). It must lie in O(node_port_range) and must not be
                used by another Service. Unset means the API server picks one.
            type: int
          protocol:
            description: The port's protocol.
            type: str
            choices: [TCP, UDP, SCTP]
            default: TCP
      annotations:
        description:
          - Annotations for the Service, for example the cloud load balancer's settings.
          - Keys are checked as the API server does (C([prefix/]name)), and keys and values together must fit in
            256 KiB.
        type: dict
        default: {}
      load_balancer_ip:
        description: C(spec.loadBalancerIP), for type V(LoadBalancer) only. An IPv4 or IPv6 address.
        type: str
      load_balancer_source_ranges:
        description:
          - C(spec.loadBalancerSourceRanges), for type V(LoadBalancer) only.
          - Each a CIDR with no host bits set, such as C(10.0.0.0/8) (not C(10.0.0.1/8)).
        type: list
        elements: str
      external_traffic_policy:
        description: C(spec.externalTrafficPolicy). V(Local) keeps the client's source address.
        type: str
        choices: [Cluster, Local]
  labels:
    description:
      - The labels that select the gateway's pods and that Istio C(Gateway) resources select the gateway by.
      - Defaults to C(app=<name>) and C(istio=<name without the istio- prefix>). A Deployment's selector cannot change,
        so changing them later is refused.
    type: dict
  resources:
    description:
      - The proxy container's resources.
      - Defaults to requests of C(cpu=100m) and C(memory=128Mi) and limits of C(cpu=2000m) and C(memory=1024Mi).
      - Only C(requests) and C(limits) are taken. Each amount must be a Kubernetes quantity (C(100m), C(0.5), C(128Mi),
        C(1Gi)) of 0 or more.
    type: dict
  network:
    description:
      - For O(kind=eastwest), the name of this cluster's network, for example C(network1). It is set as the
        C(topology.istio.io/network) label on the pods and the Service and as C(ISTIO_META_REQUESTED_NETWORK_VIEW)
        in the proxy.
    type: str
  expose_services:
    description:
      - For O(kind=eastwest), create the Gateway C(cross-network-gateway), which passes mTLS traffic on port 15443
        through to services of this network (C(AUTO_PASSTHROUGH), hosts C(*.local)).
    type: bool
    default: false
  expose_istiod:
    description:
      - For O(kind=eastwest) in a primary-remote mesh, create the Gateway C(istiod-gateway) on ports 15012 and
        15017 (C(PASSTHROUGH)) and the VirtualService C(istiod-vs-<revision>). The VirtualService routes them to the
        revision's istiod, so remote clusters reach it through this gateway.
    type: bool
    default: false
  node_port_range:
    description:
      - The API server's C(--service-node-port-range). Fixed nodePorts outside it are refused before writing.
    type: str
    default: 30000-32767
  wait:
    description:
      - Wait until the gateway's Deployment is rolled out. With O(api=gateway_api) that is the Deployment
        C(<name>-istio) the revision's istiod deploys, so the revision's istiod must be running.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the rollout before failing with the reason.
    type: int
    default: 300
  planned_namespaces:
    description:
      - Check mode only, ignored otherwise. Namespaces as an earlier step of the same run leaves them (the
        C(namespaces) that M(meshops.istio.istio_tenant) returns), so that the gateway's namespace is checked with
        the labels that step plans, or as created by it; a warning says so.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The namespace.
        type: str
        required: true
      labels:
        description: Its labels once that step ran.
        type: dict
        default: {}
notes:
  - Needs the C(kubernetes) Python library. Install the revision first with M(meshops.istio.istio_revision).
seealso:
  - module: meshops.istio.istio_revision
  - name: Installing Gateways
    description: Istio's gateway deployment with gateway injection.
    link: https://istio.io/latest/docs/setup/additional-setup/gateway/
"""

EXAMPLES = r"""
- name: Seed 000, one ingress gateway per tenant on the shared control plane
  meshops.istio.istio_gateway:
    name: istio-ingressgateway
    namespace: foo
    revision: shared
    autoscale:
      min_replicas: 2
    pdb:
      min_available: 1
    service:
      type: NodePort
      ports:
        - name: http2
          port: 80
          target_port: 8080
          node_port: 32180

- name: East-west gateway for network1, exposing this network's services
  meshops.istio.istio_gateway:
    name: istio-eastwestgateway
    namespace: istio-system
    revision: shared
    kind: eastwest
    network: network1
    expose_services: true
  register: eastwest

- name: The address remote clusters use
  ansible.builtin.debug:
    msg: "{{ eastwest.address }}"

- name: Egress gateway of a tenant, reachable inside the cluster only
  meshops.istio.istio_gateway:
    name: istio-egressgateway
    namespace: foo
    revision: shared
    kind: egress

- name: Seed 000's gateways, every tenant's in one run
  meshops.istio.istio_gateway:
    gateways:
      - name: istio-ingressgateway
        namespace: foo
        revision: shared
        service: {type: NodePort, ports: [{name: http2, port: 80, target_port: 8080, node_port: 32180}]}
      - name: istio-ingressgateway
        namespace: bar
        revision: shared
        service: {type: NodePort, ports: [{name: http2, port: 80, target_port: 8080, node_port: 32280}]}

- name: A tenant's ingress as a Gateway API Gateway, deployed by the tenant's own istiod
  meshops.istio.istio_gateway:
    name: ingress
    namespace: app-ns-1
    revision: usergroup-1
    api: gateway_api
    gateway_api_crds: /opt/gateway-api/v1.6.0/config/crd/standard
    listeners:
      - {name: http, port: 80, node_port: 32080}
      - {name: https, port: 443, protocol: HTTPS, hostname: shop.example.com, tls_secret: shop-tls}
    service: {type: NodePort}
    autoscale: {min_replicas: 2, max_replicas: 4}
    pdb: {min_available: 1}

- name: Remove one tenant's gateway (nothing else)
  meshops.istio.istio_gateway:
    name: istio-ingressgateway
    namespace: foo
    state: absent
"""

RETURN = r"""
gateways:
  description:
    - With O(gateways), per converged gateway its C(name), C(namespace), C(revision), and with O(state=present)
      its C(selector), C(service) and C(address), as described for one gateway.
  returned: when O(gateways) is given
  type: list
  elements: dict
  sample:
    - name: istio-ingressgateway
      namespace: foo
      revision: shared
      selector: {app: istio-ingressgateway, istio: ingressgateway}
      address: istio-ingressgateway.foo.svc.cluster.local
      service: {name: istio-ingressgateway, namespace: foo, type: NodePort}
failed_gateways:
  description: With O(gateways), when some gateways failed, why each failed, by C(<namespace>/<name>).
  returned: when the task fails after converging the other gateways
  type: dict
  sample:
    foo/istio-ingressgateway: >-
      gateways[0] (foo/istio-ingressgateway): namespace foo carries istio-injection=disabled, which stops the
      gateway's injection; remove the label (use sidecar.istio.io/inject=false on other pods instead)
name:
  description: The gateway's name.
  returned: without O(gateways)
  type: str
  sample: istio-ingressgateway
namespace:
  description: The gateway's namespace.
  returned: without O(gateways)
  type: str
  sample: foo
revision:
  description: The installed revision that injects the gateway (the tag resolved when O(revision) is a tag).
  returned: when state is present, without O(gateways)
  type: str
  sample: shared
selector:
  description: The labels to put in the C(selector) of Istio C(Gateway) resources that this gateway should serve.
  returned: when state is present, without O(gateways)
  type: dict
  sample: {app: istio-ingressgateway, istio: ingressgateway}
address:
  description: The first load-balancer ingress IP or hostname when there is one, else the Service's cluster DNS name.
  returned: when state is present, without O(gateways)
  type: str
  sample: istio-ingressgateway.foo.svc.cluster.local
service:
  description: The gateway's Service as the cluster holds it (as desired in check mode before it exists).
  returned: when state is present, without O(gateways)
  type: dict
  contains:
    name:
      description: Service name.
      type: str
    namespace:
      description: Service namespace.
      type: str
    type:
      description: Service type.
      type: str
    cluster_ip:
      description: The cluster IP (unset in check mode before the Service exists).
      type: str
    dns_name:
      description: The Service's cluster DNS name.
      type: str
    ports:
      description: Ports with C(name), C(port), C(target_port), C(node_port) (allocated or fixed) and C(protocol).
      type: list
      elements: dict
    load_balancer_ingress:
      description: Load-balancer IPs or hostnames from the Service's status, empty until the cloud assigns them.
      type: list
      elements: str
  sample:
    name: istio-ingressgateway
    namespace: foo
    type: NodePort
    cluster_ip: 10.96.0.17
    dns_name: istio-ingressgateway.foo.svc.cluster.local
    ports: [{name: http2, port: 80, target_port: 8080, node_port: 32180, protocol: TCP}]
    load_balancer_ingress: []
objects:
  description:
    - Every object created, updated or deleted, in the order it happened.
    - A Gateway API C(Gateway) is listed with kind C(Gateway.gateway.networking.k8s.io), apart from Istio's C(Gateway).
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: Deployment, namespace: foo, name: istio-ingressgateway, action: created}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.validation import check_required_arguments, check_required_if
from ansible_collections.meshops.istio.plugins.module_utils.batch import checked_entries
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.gateway.ensure import (
    GatewaysRun,
    ensure_gateway_absent,
    ensure_gateway_present,
)
from ansible_collections.meshops.istio.plugins.module_utils.gateway.spec import GatewaySpec, validate_gateways
from ansible_collections.meshops.istio.plugins.module_utils.planned import (
    NOTHING_PLANNED,
    PLANNED_NAMESPACE_SPEC,
    PLANNED_REVISION_SPEC,
    RunPlan,
)
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC, run_module

PORT_SPEC = dict(
    name=dict(type="str", required=True),
    port=dict(type="int", required=True),
    target_port=dict(type="raw"),
    node_port=dict(type="int"),
    protocol=dict(type="str", choices=["TCP", "UDP", "SCTP"], default="TCP"),
)
SERVICE_SPEC = dict(
    type=dict(type="str", choices=["ClusterIP", "NodePort", "LoadBalancer"]),
    ports=dict(type="list", elements="dict", options=PORT_SPEC),
    annotations=dict(type="dict", default={}),
    load_balancer_ip=dict(type="str"),
    load_balancer_source_ranges=dict(type="list", elements="str"),
    external_traffic_policy=dict(type="str", choices=["Cluster", "Local"]),
)
AUTOSCALE_SPEC = dict(
    min_replicas=dict(type="int", default=1),
    max_replicas=dict(type="int", default=5),
    target_cpu_utilization=dict(type="int", default=80),
)
# What describes one gateway: the module's own options, or one entry of `gateways`.
LISTENER_SPEC = dict(
    name=dict(type="str", required=True),
    port=dict(type="int", required=True),
    protocol=dict(type="str", choices=["HTTP", "HTTPS", "TCP"], default="HTTP"),
    hostname=dict(type="str"),
    tls_secret=dict(type="str", no_log=False),  # the name of a Secret, not a secret
    node_port=dict(type="int"),
)
GATEWAY_SPEC = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    revision=dict(type="str"),
    api=dict(type="str", choices=["deployment", "gateway_api"], default="deployment"),
    listeners=dict(type="list", elements="dict", options=LISTENER_SPEC),
    kind=dict(type="str", choices=["ingress", "egress", "eastwest"], default="ingress"),
    replicas=dict(type="int"),
    autoscale=dict(type="dict", options=AUTOSCALE_SPEC),
    pdb=dict(type="dict", options=dict(min_available=dict(type="raw", required=True))),
    service=dict(type="dict", options=SERVICE_SPEC),
    labels=dict(type="dict"),
    resources=dict(type="dict"),
    network=dict(type="str"),
    expose_services=dict(type="bool", default=False),
    expose_istiod=dict(type="bool", default=False),
)
# What applies to the whole run.
RUN_SPEC = dict(
    state=dict(type="str", choices=["present", "absent"], default="present"),
    node_port_range=dict(type="str", default="30000-32767"),
    gateway_api_crds=dict(type="path"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=300),
    planned_revisions=dict(type="list", elements="dict", default=[], options=PLANNED_REVISION_SPEC),
    planned_namespaces=dict(type="list", elements="dict", default=[], options=PLANNED_NAMESPACE_SPEC),
)
# One gateway given by the module's own options.
ARGUMENT_SPEC = {**GATEWAY_SPEC, **RUN_SPEC}
MUTUALLY_EXCLUSIVE = [("replicas", "autoscale")]
REQUIRED_IF = [("state", "present", ("revision",))]
# What the module takes: one gateway, or `gateways`.
MODULE_SPEC = {
    **ARGUMENT_SPEC,
    "name": dict(type="str"),
    "namespace": dict(type="str"),
    "gateways": dict(type="list", elements="dict"),
}


def main():
    module = AnsibleModule(
        argument_spec={**COMMON_ARG_SPEC, **MODULE_SPEC},
        mutually_exclusive=MUTUALLY_EXCLUSIVE + [("gateways", option) for option in GATEWAY_SPEC],
        required_one_of=[("name", "gateways")],
        supports_check_mode=True,
    )
    # What earlier steps of the run plan counts in check mode only, never in the dry run before a real run.
    plan = RunPlan.from_params(module.params) if module.check_mode else NOTHING_PLANNED
    if module.params["gateways"] is not None:
        specs = gateway_entries(module)
        try:
            validate_gateways(specs)
        except Refusal as error:
            module.fail_json(msg=str(error))
        run_module(module, GatewaysRun(specs, plan))
        return
    spec = GatewaySpec.from_params(one_gateway(module))
    if spec.state == "absent":
        run_module(module, lambda cluster, check_mode: ensure_gateway_absent(cluster, spec, check_mode))
        return
    run_module(module, lambda cluster, check_mode: ensure_gateway_present(cluster, spec, check_mode, plan))


def one_gateway(module) -> dict:
    """The module's own options, checked as one gateway: name and namespace required, revision to install."""
    given = {key: value for key, value in module.params.items() if value is not None}
    try:
        check_required_arguments({key: GATEWAY_SPEC[key] for key in ("name", "namespace")}, given)
        check_required_if(REQUIRED_IF, given)
    except TypeError as error:
        module.fail_json(msg=str(error))
    return module.params


def gateway_entries(module) -> list:
    """A GatewaySpec per `gateways` entry, checked against the per-gateway options, plus the run's options; a
    revision is required with state present."""

    def revision_problems(entry: dict, run: dict) -> list:
        if run["state"] == "present" and not entry.get("revision"):
            return ["revision is required with state present; name the installed revision"]
        return []

    entries = checked_entries(
        module, "gateways", GATEWAY_SPEC, (*RUN_SPEC, "force_conflicts"), revision_problems,
        mutually_exclusive=MUTUALLY_EXCLUSIVE,
    )  # fmt: skip
    return [GatewaySpec.from_params(entry) for entry in entries]


if __name__ == "__main__":
    main()
