# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one gateway is (pure): `GatewaySpec`, built once from the module's parameters with every default resolved
here, and `validate`, the rules the module's argument spec cannot express (names, labels, ports, cross-field)."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ..errors import refuse
from ..names import DNS_1035_LABEL, dns_label_errors, is_label_key, is_label_value
from ..values import (
    annotation_errors,
    cidr_errors,
    ip_address_errors,
    port_name_errors,
    port_number_errors,
    resources_errors,
)
from ..vocabulary import NETWORK_LABEL, owner_label

OWNER_KIND = "gateway"
OWNER_LABEL = owner_label(OWNER_KIND)
# The two forms of a gateway (option `api`): a Deployment with gateway injection, built here, or a Gateway API
# `Gateway` whose revision's istiod deploys the gateway (its deployment controller).
DEPLOYMENT_API, GATEWAY_API = "deployment", "gateway_api"
# What istiod's deployment controller appends to a Gateway's name for the Deployment, Service and ServiceAccount it
# deploys for the class `istio`.
GATEWAY_CLASS = "istio"
# Options only the Deployment form takes (a Gateway API Gateway's ports come from its listeners).
_DEPLOYMENT_ONLY = ("kind", "network", "expose_services", "expose_istiod", "service.ports")

_PERCENT = re.compile(r"^[0-9]+%$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_PORT_RANGE = re.compile(r"^([0-9]+)-([0-9]+)$")


@dataclass(frozen=True)
class PortSpec:
    """One Service port. `target_port` None means `port`; a non-numeric string names a container port."""

    name: str
    port: int
    target_port: int | str | None = None
    node_port: int | None = None
    protocol: str = "TCP"

    @classmethod
    def from_params(cls, port: dict) -> PortSpec:
        return cls(**{key: value for key, value in port.items() if value is not None})

    @property
    def target(self) -> int | str:
        """The Service's targetPort: target_port, else port; a number given as a string becomes a number."""
        target = self.target_port or self.port
        return int(target) if isinstance(target, str) and target.isdigit() else target


@dataclass(frozen=True)
class ListenerSpec:
    """One listener of a Gateway API Gateway; `tls_secret` is the Secret an HTTPS listener terminates TLS with."""

    name: str
    port: int
    protocol: str = "HTTP"
    hostname: str | None = None
    tls_secret: str | None = None
    node_port: int | None = None

    @classmethod
    def from_params(cls, listener: dict) -> ListenerSpec:
        return cls(**{key: value for key, value in listener.items() if value is not None})


_DEFAULT_LISTENERS = (ListenerSpec("http", 80),)


@dataclass(frozen=True)
class AutoscaleSpec:
    min_replicas: int = 1
    max_replicas: int = 5
    target_cpu_utilization: int = 80

    @classmethod
    def from_params(cls, autoscale: dict) -> AutoscaleSpec:
        return cls(**{key: value for key, value in autoscale.items() if value is not None})


# What the gateway chart's Service exposes by default, and what an east-west gateway needs.
_CHART_PORTS = (PortSpec("status-port", 15021, 15021), PortSpec("http2", 80, 80), PortSpec("https", 443, 443))
_EASTWEST_PORTS = (
    PortSpec("status-port", 15021, 15021),
    PortSpec("tls", 15443, 15443),
    PortSpec("tls-istiod", 15012, 15012),
    PortSpec("tls-webhook", 15017, 15017),
)
# kind -> (default Service type, default ports)
_SERVICE_DEFAULTS = {
    "ingress": ("LoadBalancer", _CHART_PORTS),
    "egress": ("ClusterIP", _CHART_PORTS),
    "eastwest": ("LoadBalancer", _EASTWEST_PORTS),
}
_DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2000m", "memory": "1024Mi"}}
_DEFAULT_NODE_PORT_RANGE = "30000-32767"


@dataclass(frozen=True)
class ServiceSpec:
    type: str
    ports: tuple[PortSpec, ...]
    annotations: Mapping[str, object]
    load_balancer_ip: str | None
    load_balancer_source_ranges: tuple[str, ...]
    external_traffic_policy: str | None

    @classmethod
    def from_params(cls, service: dict | None, kind: str, listeners: tuple | None = None) -> ServiceSpec:
        """`listeners`: a Gateway API Gateway's, whose ports (and nodePorts) its Service takes."""
        service = service or {}
        default_type, default_ports = _SERVICE_DEFAULTS[kind]
        ports = service.get("ports")
        if listeners is not None:
            # One Service port per listener port, as istiod makes them (listeners may share a port by hostname).
            first = {}
            for item in listeners:
                first.setdefault(item.port, item)
            default_ports = tuple(PortSpec(item.name, item.port, node_port=item.node_port) for item in first.values())
        return cls(
            type=service.get("type") or default_type,
            ports=tuple(PortSpec.from_params(port) for port in ports) if ports else default_ports,
            annotations=_frozen(service.get("annotations")),
            load_balancer_ip=service.get("load_balancer_ip"),
            load_balancer_source_ranges=tuple(service.get("load_balancer_source_ranges") or ()),
            external_traffic_policy=service.get("external_traffic_policy"),
        )


@dataclass(frozen=True)
class GatewaySpec:
    """One gateway as the module's parameters describe it, defaults resolved. Choices, types, required options and
    mutually exclusive ones are the argument spec's to enforce; `validate` checks the rest."""

    name: str
    namespace: str
    state: str
    revision: str | None  # an installed revision or a revision tag; unset only with state absent
    kind: str
    labels: Mapping[str, object] | None  # as given; None means the default selector
    selector: Mapping[str, str]  # what the Deployment selects its pods by and Istio Gateways select the gateway by
    replicas: int | None  # None when the HPA sets them
    autoscale: AutoscaleSpec | None
    min_available: int | str | None  # pdb.min_available; None means no PodDisruptionBudget
    service: ServiceSpec
    resources: Mapping[str, object]
    network: str | None
    expose_services: bool
    expose_istiod: bool
    node_port_range: str
    wait: bool
    wait_timeout: int
    force_conflicts: bool
    api: str = DEPLOYMENT_API
    listeners: tuple = ()  # ListenerSpec, with api gateway_api only
    gateway_api_crds: str | None = None  # a path to the Gateway API CRD files to apply (crds.py)
    misplaced: tuple = ()  # options given that the chosen api does not take, for `validate` to name

    @classmethod
    def from_params(cls, params: dict) -> GatewaySpec:
        name, kind = params["name"], params.get("kind") or "ingress"
        labels = params.get("labels")
        autoscale = None if params.get("autoscale") is None else AutoscaleSpec.from_params(params["autoscale"])
        api = params.get("api") or DEPLOYMENT_API
        listeners = None
        if api == GATEWAY_API:
            given = params.get("listeners")
            listeners = tuple(ListenerSpec.from_params(item) for item in given) if given else _DEFAULT_LISTENERS
        return cls(
            api=api,
            listeners=listeners or (),
            gateway_api_crds=params.get("gateway_api_crds"),
            misplaced=_misplaced(params, api),
            name=name,
            namespace=params["namespace"],
            state=_given(params, "state", "present"),
            revision=params.get("revision"),
            kind=kind,
            labels=None if labels is None else _frozen(labels),
            selector=_frozen(labels or {"app": name, "istio": name.removeprefix("istio-")}),
            replicas=None if autoscale is not None else _given(params, "replicas", 1),
            autoscale=autoscale,
            min_available=(params.get("pdb") or {}).get("min_available"),
            service=ServiceSpec.from_params(params.get("service"), kind, listeners),
            resources=_frozen(params.get("resources") or _DEFAULT_RESOURCES),
            network=params.get("network") or None,
            expose_services=bool(params.get("expose_services")),
            expose_istiod=bool(params.get("expose_istiod")),
            node_port_range=params.get("node_port_range") or _DEFAULT_NODE_PORT_RANGE,
            wait=_given(params, "wait", True),
            wait_timeout=_given(params, "wait_timeout", 300),
            force_conflicts=_given(params, "force_conflicts", False),
        )

    @property
    def owner_name(self) -> str:
        """The value of OWNER_LABEL on every object of this gateway."""
        return f"{self.namespace}.{self.name}"

    @property
    def workload_name(self) -> str:
        """The name of the gateway's Deployment and Service: its own, or what istiod names them for a Gateway."""
        return f"{self.name}-{GATEWAY_CLASS}" if self.api == GATEWAY_API else self.name

    @property
    def fewest_replicas(self) -> int:
        return self.autoscale.min_replicas if self.autoscale is not None else self.replicas

    @property
    def node_port_bounds(self) -> tuple[int, int] | None:
        """(low, high), or None when node_port_range is not of the form 30000-32767."""
        match = _PORT_RANGE.match(self.node_port_range)
        if not match or int(match.group(1)) > int(match.group(2)):
            return None
        return int(match.group(1)), int(match.group(2))


def _misplaced(params: dict, api: str) -> tuple:
    """The options given that `api` does not take."""
    if api == DEPLOYMENT_API:
        return ("listeners",) if params.get("listeners") else ()
    given = {
        "kind": (params.get("kind") or "ingress") != "ingress",
        "network": params.get("network"),
        "expose_services": params.get("expose_services"),
        "expose_istiod": params.get("expose_istiod"),
        "service.ports": (params.get("service") or {}).get("ports"),
    }
    return tuple(option for option in _DEPLOYMENT_ONLY if given[option])


def _given(params: dict, key: str, default):
    value = params.get(key)
    return default if value is None else value


def _frozen(mapping: dict | None) -> Mapping:
    return MappingProxyType(copy.deepcopy(dict(mapping or {})))


def validate(spec: GatewaySpec) -> None:
    """Every input error at once, before anything is read or written. Removal checks the names only."""
    errors = _name_errors(spec)
    if spec.state == "present":
        errors += _install_errors(spec)
    refuse(errors)


def validate_gateways(specs: list) -> None:
    """Every input error of every `gateways` entry at once, each named by its index, and what entries cannot share:
    a namespace and name (one gateway), a nodePort (the API server would take it for the first and refuse the
    next)."""
    errors, seen, node_ports = [], {}, {}
    for index, spec in enumerate(specs):
        at = f"gateways[{index}]"
        entry_errors = _name_errors(spec) + (_install_errors(spec) if spec.state == "present" else [])
        errors += [f"{at}: {error}" for error in entry_errors]
        key = (spec.namespace, spec.name)
        if key in seen:
            errors.append(f"{at}: gateway {spec.namespace}/{spec.name} is gateways[{seen[key]}] too; list it once")
        seen.setdefault(key, index)
        for number, port in enumerate(spec.service.ports if spec.state == "present" else ()):
            if port.node_port is None:
                continue
            if port.node_port in node_ports and node_ports[port.node_port] != index:
                errors.append(
                    f"{at}.service.ports[{number}].node_port {port.node_port} is also wanted by "
                    f"gateways[{node_ports[port.node_port]}]; give each gateway its own nodePorts"
                )
            node_ports.setdefault(port.node_port, index)
    refuse(errors)


def _name_errors(spec: GatewaySpec) -> list:
    errors = dns_label_errors(spec.name, "name", pattern=DNS_1035_LABEL) + dns_label_errors(spec.namespace, "namespace")
    if not errors and len(spec.owner_name) > 63:
        errors.append(
            f"namespace and name together are {len(spec.owner_name)} characters; the owner label "
            f"{OWNER_LABEL}={spec.owner_name} allows 62 plus the dot, so shorten the name"
        )
    return errors


def _install_errors(spec: GatewaySpec) -> list:
    errors = dns_label_errors(spec.revision, "revision")
    errors += _api_errors(spec)
    errors += _kind_errors(spec)
    if spec.labels is not None and not spec.labels:
        errors.append("labels must not be empty: they select the gateway's pods; leave it unset for the defaults")
    errors += _label_errors(spec.labels or {}, "labels")
    errors += _replica_errors(spec)
    errors += _service_errors(spec)
    errors += resources_errors(dict(spec.resources), "resources")
    return errors


def _api_errors(spec: GatewaySpec) -> list:
    """Options of the other form, and the listeners of a Gateway API Gateway."""
    if spec.api == DEPLOYMENT_API:
        return [f"{option} is only for api gateway_api; remove it or set api: gateway_api" for option in spec.misplaced]
    errors = [
        f"{option} is only for api deployment; remove it"
        + (" (the Service's ports come from listeners)" if option == "service.ports" else "")
        for option in spec.misplaced
    ]
    if len(spec.owner_name) + len(GATEWAY_CLASS) + 1 > 63:
        errors.append(
            f"istiod names the gateway's Deployment {spec.workload_name}, whose labels would exceed 63 characters; "
            "shorten the name"
        )
    names, numbers = set(), set()
    for index, listener in enumerate(spec.listeners):
        at = f"listeners[{index}]"
        errors += dns_label_errors(listener.name, f"{at}.name")
        errors += port_number_errors(listener.port, f"{at}.port")
        if listener.name in names:
            errors.append(f"{at}.name {listener.name!r} is used twice; give each listener its own name")
        names.add(listener.name)
        if listener.hostname is not None and not _HOSTNAME.match(listener.hostname):
            errors.append(f"{at}.hostname {listener.hostname!r} must be a DNS name, optionally starting with '*.'")
        if listener.protocol == "HTTPS" and not listener.tls_secret:
            errors.append(f"{at} is HTTPS and needs tls_secret, the Secret in the gateway's namespace it serves")
        if listener.protocol != "HTTPS" and listener.tls_secret:
            errors.append(f"{at}.tls_secret is for protocol HTTPS only; remove it or set protocol: HTTPS")
        if listener.tls_secret:
            errors += dns_label_errors(listener.tls_secret, f"{at}.tls_secret", max_length=253, pattern=_SUBDOMAIN)
        errors += _listener_node_port_errors(spec, listener, at, numbers)
        numbers.add(listener.port)
    return errors


def _listener_node_port_errors(spec: GatewaySpec, listener: ListenerSpec, at: str, earlier_ports: set) -> list:
    if listener.node_port is None:
        return []
    if listener.port in earlier_ports:
        return [f"{at}.node_port: port {listener.port} is shared with an earlier listener; set node_port there"]
    errors = port_number_errors(listener.node_port, f"{at}.node_port")
    errors += _node_port_errors(listener.node_port, spec.service.type, spec.node_port_bounds or (0, 65535), at)
    others = [item.name for item in spec.listeners if item is not listener and item.node_port == listener.node_port]
    if others:
        errors.append(f"{at}.node_port {listener.node_port} is also listener {others[0]}'s; give each its own")
    return errors


def _kind_errors(spec: GatewaySpec) -> list:
    errors = []
    if spec.kind == "eastwest" and not spec.network:
        errors.append("kind eastwest needs network, the name of this cluster's network (e.g. network1)")
    if spec.kind != "eastwest":
        eastwest_only = {"network": spec.network, "expose_services": spec.expose_services,
                         "expose_istiod": spec.expose_istiod}  # fmt: skip
        errors += [f"{option} is only for kind eastwest; remove it or set kind: eastwest"
                   for option, value in eastwest_only.items() if value]  # fmt: skip
    if spec.network:
        errors += _label_errors({NETWORK_LABEL: spec.network}, "network")
    return errors


def _label_errors(labels: Mapping, parameter: str) -> list:
    errors = []
    for key, value in labels.items():
        if not is_label_key(key):
            errors.append(
                f"{parameter} key {key!r} is not a valid label key; use [prefix/]name with letters, digits, -_."
            )
        if not isinstance(value, str):
            errors.append(f"{parameter}.{key} must be a string; quote it")
        elif not is_label_value(value):
            errors.append(f"{parameter}.{key} value {value!r} is not a valid label value (63 characters, -_.)")
    return errors


def _replica_errors(spec: GatewaySpec) -> list:
    errors = []
    autoscale = spec.autoscale
    if autoscale is not None:
        if autoscale.min_replicas < 1:
            errors.append("autoscale.min_replicas must be at least 1")
        if autoscale.max_replicas < autoscale.min_replicas:
            errors.append("autoscale.max_replicas must be at least autoscale.min_replicas")
        if autoscale.target_cpu_utilization < 1:
            errors.append("autoscale.target_cpu_utilization must be a positive percentage")
    elif spec.replicas < 0:
        errors.append("replicas must be 0 or more")
    return errors + _disruption_budget_errors(spec)


def _disruption_budget_errors(spec: GatewaySpec) -> list:
    min_available = spec.min_available
    if min_available is None:
        return []
    if isinstance(min_available, str) and _PERCENT.match(min_available):
        if int(min_available[:-1]) >= 100:
            return ["pdb.min_available 100% would block every node drain; use less than 100%"]
    elif isinstance(min_available, int) or str(min_available).isdigit():
        if int(min_available) >= spec.fewest_replicas:
            return [
                f"pdb.min_available {min_available} is not below the gateway's {spec.fewest_replicas} replica(s), so "
                "node drains would wait forever; lower it or raise replicas / autoscale.min_replicas"
            ]
    else:
        return [f"pdb.min_available must be a number or a percentage like '50%', got {min_available!r}"]
    return []


def _service_errors(spec: GatewaySpec) -> list:
    errors = []
    service = spec.service
    if service.type != "LoadBalancer":
        for option, value in (("load_balancer_ip", service.load_balancer_ip),
                              ("load_balancer_source_ranges", service.load_balancer_source_ranges)):  # fmt: skip
            if value:
                errors.append(f"service.{option} needs service.type LoadBalancer, not {service.type}")
    if service.load_balancer_ip:
        errors += ip_address_errors(service.load_balancer_ip, "service.load_balancer_ip")
    for index, cidr in enumerate(service.load_balancer_source_ranges):
        errors += cidr_errors(cidr, f"service.load_balancer_source_ranges[{index}]")
    errors += annotation_errors(dict(service.annotations), "service.annotations", strings_only=False)
    if spec.node_port_bounds is None:
        errors.append(f"node_port_range {spec.node_port_range!r} must look like 30000-32767 (low-high)")
    if spec.api == DEPLOYMENT_API:
        errors += _port_errors(service, spec.node_port_bounds)
    numbers = {port.port for port in service.ports}
    needed = {15443: "expose_services"} if spec.expose_services else {}
    if spec.expose_istiod:
        needed.update({15012: "expose_istiod", 15017: "expose_istiod"})
    for number, option in sorted(needed.items()):
        if number not in numbers:
            errors.append(f"{option} routes port {number}, which service.ports lacks; add it or leave ports unset")
    return errors


def _port_errors(service: ServiceSpec, bounds: tuple | None) -> list:
    errors, names, numbers, node_ports = [], set(), set(), set()
    for index, port in enumerate(service.ports):
        at = f"service.ports[{index}]"
        errors += dns_label_errors(port.name, f"{at}.name")
        errors += _port_number_errors(port, at)
        if port.name in names:
            errors.append(f"{at}.name {port.name!r} is used twice; give each port its own name")
        if (port.port, port.protocol) in numbers:
            errors.append(f"{at}.port {port.port} is used twice; give each port its own number")
        names.add(port.name)
        numbers.add((port.port, port.protocol))
        if port.node_port is None:
            continue
        errors += _node_port_errors(port.node_port, service.type, bounds or (0, 65535), at)
        if port.node_port in node_ports:
            errors.append(f"{at}.node_port {port.node_port} is used twice; give each port its own nodePort")
        node_ports.add(port.node_port)
    return errors


def _port_number_errors(port: PortSpec, at: str) -> list:
    errors = port_number_errors(port.port, f"{at}.port")
    target = port.target_port
    if isinstance(target, str) and not target.isdigit():
        errors += port_name_errors(target, f"{at}.target_port")  # a named container port
    elif target is not None:
        errors += port_number_errors(int(target), f"{at}.target_port")
    if port.node_port is not None:
        errors += port_number_errors(port.node_port, f"{at}.node_port")
    return errors


def _node_port_errors(node_port: int, service_type: str, bounds: tuple, at: str) -> list:
    low, high = bounds
    if service_type == "ClusterIP":
        return [f"{at}.node_port needs service.type NodePort or LoadBalancer, not ClusterIP"]
    if not low <= node_port <= high:
        return [
            f"{at}.node_port {node_port} is outside the cluster's nodePort range {low}-{high}; choose one inside "
            "it (or set node_port_range to the API server's --service-node-port-range)"
        ]
    return []
