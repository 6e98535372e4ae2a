# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One Istio gateway (ingress, egress or east-west) bound to a revision by gateway injection: what to build,
what to refuse, how to install and remove it.

Pure builders and validators first; `ensure_gateway_present` / `ensure_gateway_absent` at the end are what the
istio_gateway module calls."""

from __future__ import annotations

import re

from .apply import Engine, Owner
from .names import DNS_1035_LABEL, DNS_LABEL, is_label_key, is_label_value
from .planned import with_planned_namespace, with_planned_revisions
from .revision import INJECTION_LABEL, REV_LABEL, installed_revisions
from .selectors import any_matches

OWNER_KIND = "gateway"
OWNER_LABEL = f"meshops.io/{OWNER_KIND}"
# Everything a gateway may own: what prune and removal look at.
GATEWAY_KINDS = (
    "ServiceAccount", "Role", "RoleBinding", "Service", "Deployment", "HorizontalPodAutoscaler",
    "PodDisruptionBudget", "Gateway", "VirtualService",
)  # fmt: skip
KINDS_OF_GATEWAY = ("ingress", "egress", "eastwest")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
PROTOCOLS = ("TCP", "UDP", "SCTP")
NETWORK_LABEL = "topology.istio.io/network"
TAG_LABEL = "istio.io/tag"
CROSS_NETWORK_GATEWAY = "cross-network-gateway"
ISTIOD_GATEWAY = "istiod-gateway"
DEFAULT_NODE_PORT_RANGE = "30000-32767"

PERCENT = re.compile(r"^[0-9]+%$")
PORT_RANGE = re.compile(r"^([0-9]+)-([0-9]+)$")

# What the gateway chart's Service exposes by default, and what an east-west gateway needs.
DEFAULT_PORTS = (
    {"name": "status-port", "port": 15021, "target_port": 15021},
    {"name": "http2", "port": 80, "target_port": 80},
    {"name": "https", "port": 443, "target_port": 443},
)
EASTWEST_PORTS = (
    {"name": "status-port", "port": 15021, "target_port": 15021},
    {"name": "tls", "port": 15443, "target_port": 15443},
    {"name": "tls-istiod", "port": 15012, "target_port": 15012},
    {"name": "tls-webhook", "port": 15017, "target_port": 15017},
)
DEFAULT_SERVICE_TYPE = {"ingress": "LoadBalancer", "egress": "ClusterIP", "eastwest": "LoadBalancer"}
DEFAULT_RESOURCES = {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": "2000m", "memory": "1024Mi"}}
DEFAULT_AUTOSCALE = {"min_replicas": 1, "max_replicas": 5, "target_cpu_utilization": 80}


class GatewayError(Exception):
    """Refusal before anything is written; the message names the parameter and the fix."""


# Pure: settings with their defaults


def service_settings(params: dict) -> dict:
    service = dict(params.get("service") or {})
    kind = params.get("kind") or "ingress"
    service["type"] = service.get("type") or DEFAULT_SERVICE_TYPE[kind]
    if not service.get("ports"):
        service["ports"] = [dict(p) for p in (EASTWEST_PORTS if kind == "eastwest" else DEFAULT_PORTS)]
    return service


def autoscale_settings(params: dict) -> dict | None:
    if params.get("autoscale") is None:
        return None
    return {**DEFAULT_AUTOSCALE, **{k: v for k, v in params["autoscale"].items() if v is not None}}


def fewest_replicas(params: dict) -> int:
    autoscale = autoscale_settings(params)
    if autoscale is not None:
        return autoscale["min_replicas"]
    return 1 if params.get("replicas") is None else params["replicas"]


def selector_labels(params: dict) -> dict:
    """The labels the Deployment selects its pods by, and Istio `Gateway` resources select the gateway by."""
    if params.get("labels"):
        return dict(params["labels"])
    name = params["name"]
    return {"app": name, "istio": name.removeprefix("istio-")}


def owner(params: dict) -> Owner:
    return Owner(OWNER_KIND, f"{params['namespace']}.{params['name']}")


def node_port_range(params: dict) -> tuple | None:
    """(low, high), or None when node_port_range is not of the form 30000-32767."""
    match = PORT_RANGE.match(params.get("node_port_range") or DEFAULT_NODE_PORT_RANGE)
    if not match or int(match.group(1)) > int(match.group(2)):
        return None
    return int(match.group(1)), int(match.group(2))


# Pure: validation


def _name_errors(value, parameter: str, pattern=DNS_LABEL, max_length: int = 63) -> list:
    if not isinstance(value, str) or not pattern.match(value):
        start = "a lower-case letter" if pattern is DNS_1035_LABEL else "a lower-case letter or digit"
        return [f"{parameter} {value!r} must be lower-case letters, digits and '-', starting with {start}"]
    if len(value) > max_length:
        return [f"{parameter} {value!r} is {len(value)} characters; at most {max_length} are allowed"]
    return []


def _label_errors(labels: dict, parameter: str) -> list:
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


def _port_errors(service: dict, range_: tuple) -> list:
    errors, names, numbers, node_ports = [], set(), set(), set()
    low, high = range_ or (0, 65535)
    for index, port in enumerate(service["ports"]):
        at = f"service.ports[{index}]"
        errors += _name_errors(port.get("name"), f"{at}.name")
        protocol = port.get("protocol") or "TCP"
        for field in ("port", "target_port"):
            value = port.get(field)
            if field == "target_port" and (value is None or (isinstance(value, str) and not value.isdigit())):
                continue  # unset, or a named container port
            if not 1 <= int(value or 0) <= 65535:
                errors.append(f"{at}.{field} {value!r} must be a port number from 1 to 65535")
        if protocol not in PROTOCOLS:
            errors.append(f"{at}.protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        if port.get("name") in names:
            errors.append(f"{at}.name {port['name']!r} is used twice; give each port its own name")
        if (port.get("port"), protocol) in numbers:
            errors.append(f"{at}.port {port.get('port')} is used twice; give each port its own number")
        names.add(port.get("name"))
        numbers.add((port.get("port"), protocol))
        node_port = port.get("node_port")
        if node_port is None:
            continue
        if service["type"] == "ClusterIP":
            errors.append(f"{at}.node_port needs service.type NodePort or LoadBalancer, not ClusterIP")
        elif not low <= node_port <= high:
            errors.append(
                f"{at}.node_port {node_port} is outside the cluster's nodePort range {low}-{high}; choose one inside "
                "it (or set node_port_range to the API server's --service-node-port-range)"
            )
        if node_port in node_ports:
            errors.append(f"{at}.node_port {node_port} is used twice; give each port its own nodePort")
        node_ports.add(node_port)
    return errors


def _service_errors(service: dict, params: dict) -> list:
    errors = []
    if service["type"] not in SERVICE_TYPES:
        errors.append(f"service.type must be one of {', '.join(SERVICE_TYPES)}, got {service['type']!r}")
    if service["type"] != "LoadBalancer":
        for option in ("load_balancer_ip", "load_balancer_source_ranges"):
            if service.get(option):
                errors.append(f"service.{option} needs service.type LoadBalancer, not {service['type']}")
    if node_port_range(params) is None:
        errors.append(f"node_port_range {params.get('node_port_range')!r} must look like 30000-32767 (low-high)")
    errors += _port_errors(service, node_port_range(params))
    numbers = {p.get("port") for p in service["ports"]}
    needed = {15443: "expose_services"} if params.get("expose_services") else {}
    if params.get("expose_istiod"):
        needed.update({15012: "expose_istiod", 15017: "expose_istiod"})
    for number, option in sorted(needed.items()):
        if number not in numbers:
            errors.append(f"{option} routes port {number}, which service.ports lacks; add it or leave ports unset")
    return errors


def _replica_errors(params: dict) -> list:
    errors = []
    autoscale = autoscale_settings(params)
    if autoscale is not None and params.get("replicas") is not None:
        errors.append("replicas and autoscale exclude each other; set one of them")
    if autoscale is not None:
        if autoscale["min_replicas"] < 1:
            errors.append("autoscale.min_replicas must be at least 1")
        if autoscale["max_replicas"] < autoscale["min_replicas"]:
            errors.append("autoscale.max_replicas must be at least autoscale.min_replicas")
        if autoscale["target_cpu_utilization"] < 1:
            errors.append("autoscale.target_cpu_utilization must be a positive percentage")
    elif params.get("replicas") is not None and params["replicas"] < 0:
        errors.append("replicas must be 0 or more")
    min_available = (params.get("pdb") or {}).get("min_available")
    if min_available is None:
        return errors
    fewest = fewest_replicas(params)
    if isinstance(min_available, str) and PERCENT.match(min_available):
        if int(min_available[:-1]) >= 100:
            errors.append("pdb.min_available 100% would block every node drain; use less than 100%")
    elif isinstance(min_available, int) or str(min_available).isdigit():
        if int(min_available) >= fewest:
            errors.append(
                f"pdb.min_available {min_available} is not below the gateway's {fewest} replica(s), so node drains "
                "would wait forever; lower it or raise replicas / autoscale.min_replicas"
            )
    else:
        errors.append(f"pdb.min_available must be a number or a percentage like '50%', got {min_available!r}")
    return errors


def _kind_errors(params: dict) -> list:
    kind = params.get("kind") or "ingress"
    if kind not in KINDS_OF_GATEWAY:
        return [f"kind must be one of {', '.join(KINDS_OF_GATEWAY)}, got {kind!r}"]
    errors = []
    if kind == "eastwest" and not params.get("network"):
        errors.append("kind eastwest needs network, the name of this cluster's network (e.g. network1)")
    if kind != "eastwest":
        errors += [f"{option} is only for kind eastwest; remove it or set kind: eastwest"
                   for option in ("network", "expose_services", "expose_istiod") if params.get(option)]  # fmt: skip
    if params.get("network"):
        errors += _label_errors({NETWORK_LABEL: params["network"]}, "network")
    return errors


def validate(params: dict) -> None:
    """Every input error at once, before anything is read or written."""
    name, namespace = params["name"], params["namespace"]
    errors = _name_errors(name, "name", DNS_1035_LABEL) + _name_errors(namespace, "namespace")
    owner_value = f"{namespace}.{name}"
    if not errors and len(owner_value) > 63:
        errors.append(
            f"namespace and name together are {len(owner_value)} characters; the owner label "
            f"{OWNER_LABEL}={owner_value} allows 62 plus the dot, so shorten the name"
        )
    if params.get("state", "present") == "absent":
        if errors:
            raise GatewayError("; ".join(errors))
        return
    if params.get("revision") is None:
        errors.append("revision is required to install a gateway; name an installed revision or revision tag")
    else:
        errors += _name_errors(params["revision"], "revision")
    errors += _kind_errors(params)
    if params.get("labels") is not None and not params["labels"]:
        errors.append("labels must not be empty: they select the gateway's pods; leave it unset for the defaults")
    errors += _label_errors(params.get("labels") or {}, "labels")
    errors += _replica_errors(params)
    errors += _service_errors(service_settings(params), params)
    if errors:
        raise GatewayError("; ".join(errors))


# Pure: builders


def _metadata(params: dict, name: str | None = None, labels: dict | None = None) -> dict:
    common = {"app.kubernetes.io/name": params["name"], "app.kubernetes.io/part-of": "istio", **selector_labels(params)}
    return {"name": name or params["name"], "namespace": params["namespace"], "labels": {**common, **(labels or {})}}


def service_account(params: dict) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(params)}


def secret_reader_role(params: dict) -> list:
    """Role + RoleBinding named after the ServiceAccount: istiod serves credentials to the gateway only when a
    SubjectAccessReview says its ServiceAccount may read secrets in its namespace."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(params),
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(params),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": params["name"]},
        "subjects": [{"kind": "ServiceAccount", "name": params["name"], "namespace": params["namespace"]}],
    }
    return [role, binding]


def network_labels(params: dict) -> dict:
    return {NETWORK_LABEL: params["network"]} if params.get("network") else {}


def pod_template(params: dict) -> dict:
    """The pod template Istio's injector expects: the gateway template, injection on, the revision's label."""
    container = {
        "name": "istio-proxy",
        "image": "auto",  # the injector replaces it with the revision's proxy image
        "securityContext": {
            "capabilities": {"drop": ["ALL"]},
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        },
        "ports": [{"containerPort": 15090, "protocol": "TCP", "name": "http-envoy-prom"}],
        "resources": params.get("resources") or DEFAULT_RESOURCES,
    }
    if params.get("network"):
        container["env"] = [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": params["network"]}]
    return {
        "metadata": {
            "annotations": {
                "inject.istio.io/templates": "gateway",
                "prometheus.io/path": "/stats/prometheus",
                "prometheus.io/port": "15020",
                "prometheus.io/scrape": "true",
                "sidecar.istio.io/inject": "true",
            },
            "labels": {
                "sidecar.istio.io/inject": "true",
                REV_LABEL: params["revision"],
                **selector_labels(params),
                "app.kubernetes.io/name": params["name"],
                "istio.io/dataplane-mode": "none",  # an ambient namespace must not capture the gateway itself
                **network_labels(params),
            },
        },
        "spec": {
            "serviceAccountName": params["name"],
            # Lets the proxy bind ports below 1024 without privileges.
            "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
            "containers": [container],
            "terminationGracePeriodSeconds": 30,
        },
    }


def deployment(params: dict) -> dict:
    spec = {"selector": {"matchLabels": selector_labels(params)}, "template": pod_template(params)}
    if params.get("autoscale") is None:
        # With an HPA the replica count is the HPA's: setting it here would fight it on every run.
        spec["replicas"] = fewest_replicas(params)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(params), "spec": spec}


def _service_port(port: dict) -> dict:
    built = {
        "name": port["name"],
        "port": port["port"],
        "targetPort": port.get("target_port") or port["port"],
        "protocol": port.get("protocol") or "TCP",
    }
    if isinstance(built["targetPort"], str) and built["targetPort"].isdigit():
        built["targetPort"] = int(built["targetPort"])
    if port.get("node_port") is not None:
        built["nodePort"] = port["node_port"]
    return built


def service(params: dict) -> dict:
    settings = service_settings(params)
    spec = {
        "type": settings["type"],
        "ports": [_service_port(p) for p in settings["ports"]],
        "selector": selector_labels(params),
    }
    optional = {
        "loadBalancerIP": settings.get("load_balancer_ip"),
        "loadBalancerSourceRanges": settings.get("load_balancer_source_ranges"),
        "externalTrafficPolicy": settings.get("external_traffic_policy"),
    }
    spec.update({key: value for key, value in optional.items() if value})
    metadata = _metadata(params, labels=network_labels(params))
    if settings.get("annotations"):
        metadata["annotations"] = {k: str(v) for k, v in settings["annotations"].items()}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def autoscaler(params: dict) -> dict:
    autoscale = autoscale_settings(params)
    target = {"type": "Utilization", "averageUtilization": autoscale["target_cpu_utilization"]}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(params),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": params["name"]},
            "minReplicas": autoscale["min_replicas"],
            "maxReplicas": autoscale["max_replicas"],
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def disruption_budget(params: dict) -> dict:
    min_available = params["pdb"]["min_available"]
    if isinstance(min_available, str) and min_available.isdigit():
        min_available = int(min_available)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(params),
        "spec": {"selector": {"matchLabels": selector_labels(params)}, "minAvailable": min_available},
    }


def cross_network_gateway(params: dict) -> dict:
    """Services of this network reachable from other networks through port 15443, mTLS passed through by SNI."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": _metadata(params, CROSS_NETWORK_GATEWAY),
        "spec": {
            "selector": selector_labels(params),
            "servers": [
                {
                    "port": {"number": 15443, "name": "tls", "protocol": "TLS"},
                    "tls": {"mode": "AUTO_PASSTHROUGH"},
                    "hosts": ["*.local"],
                }
            ],
        },
    }


def istiod_virtual_service_name(revision: str) -> str:
    return f"istiod-vs-{revision}"


def istiod_exposure(params: dict, revision: str, revision_namespace: str) -> list:
    """Gateway on 15012 (XDS) and 15017 (webhooks) plus the VirtualService that routes them to this revision's
    istiod, for remote clusters of a primary-remote mesh."""
    servers = [
        {
            "port": {"number": number, "name": port_name, "protocol": "TLS"},
            "tls": {"mode": "PASSTHROUGH"},
            "hosts": ["*"],
        }
        for number, port_name in ((15012, "tls-istiod"), (15017, "tls-istiodwebhook"))
    ]
    gateway = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": _metadata(params, ISTIOD_GATEWAY),
        "spec": {"selector": selector_labels(params), "servers": servers},
    }
    host = f"istiod-{revision}.{revision_namespace}.svc"
    routes = [
        {
            "match": [{"port": gateway_port, "sniHosts": [host, f"{host}.cluster.local"]}],
            "route": [{"destination": {"host": f"{host}.cluster.local", "port": {"number": istiod_port}}}],
        }
        for gateway_port, istiod_port in ((15012, 15012), (15017, 443))
    ]
    virtual_service = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": _metadata(params, istiod_virtual_service_name(revision)),
        "spec": {"hosts": ["*"], "gateways": [ISTIOD_GATEWAY], "tls": routes},
    }
    return [gateway, virtual_service]


def manifests(params: dict, revision: str, revision_namespace: str) -> list:
    """Every object of this gateway. `revision`/`revision_namespace`: the installed revision behind
    params["revision"] (which may be a tag)."""
    objects = [service_account(params), *secret_reader_role(params), deployment(params), service(params)]
    if params.get("autoscale") is not None:
        objects.append(autoscaler(params))
    if (params.get("pdb") or {}).get("min_available") is not None:
        objects.append(disruption_budget(params))
    if params.get("expose_services"):
        objects.append(cross_network_gateway(params))
    if params.get("expose_istiod"):
        objects += istiod_exposure(params, revision, revision_namespace)
    return objects


# Pure: what the cluster says


def revision_tags(webhooks: list) -> dict:
    """{tag: revision} from the `istio-revision-tag-<tag>` MutatingWebhookConfigurations."""
    tags = {}
    for webhook in webhooks:
        labels = webhook["metadata"].get("labels") or {}
        if labels.get(TAG_LABEL) and labels.get(REV_LABEL):
            tags[labels[TAG_LABEL]] = labels[REV_LABEL]
    return tags


def resolve_revision(name: str, revisions: dict, tags: dict) -> str | None:
    """The installed revision a revision name or tag stands for, or None."""
    if name in revisions:
        return name
    return tags.get(name) if tags.get(name) in revisions else None


def _revision_problem(params: dict, revisions: dict) -> str:
    installed = ", ".join(sorted(revisions)) or "none"
    return (
        f"revision {params['revision']!r} is neither an installed revision nor a revision tag (installed: "
        f"{installed}); install it with meshops.istio.istio_revision first or name an installed one"
    )


def namespace_problems(params: dict, namespace: dict | None, revision: str, revisions: dict, tags: dict) -> list:
    """Why the revision's injector would not inject (or another one would) a gateway pod in this namespace."""
    name = params["namespace"]
    if namespace is None:
        return [f"namespace {name} does not exist; create it (and label it for revision {revision}) first"]
    labels = namespace["metadata"].get("labels") or {}
    problems = []
    injection = labels.get(INJECTION_LABEL)
    if injection == "disabled":
        problems.append(
            f"namespace {name} carries {INJECTION_LABEL}=disabled, which stops the gateway's injection; remove the "
            "label (use sidecar.istio.io/inject=false on other pods instead)"
        )
    elif injection is not None:
        problems.append(
            f"namespace {name} carries {INJECTION_LABEL}={injection}: revision injectors only act where that label "
            f"is absent, so revision {revision} would not inject the gateway; remove the label"
        )
    namespace_revision = labels.get(REV_LABEL)
    if namespace_revision and resolve_revision(namespace_revision, revisions, tags) != revision:
        problems.append(
            f"namespace {name} carries {REV_LABEL}={namespace_revision}, whose injector would inject the gateway "
            f"instead of revision {revision}; use that revision or relabel the namespace"
        )
    selectors = revisions[revision]["selectors"]
    if not any_matches(selectors, labels):
        problems.append(
            f"namespace {name} is not selected by the discoverySelectors of revision {revision} ({selectors}), so "
            "its istiod would not configure the gateway; label the namespace so that a selector matches"
        )
    return problems


def node_port_problems(params: dict, services: list) -> list:
    """nodePorts this gateway wants that another Service already holds (the API server would refuse them)."""
    ours = (params["namespace"], params["name"])
    taken = {
        port["nodePort"]: f"{svc['metadata']['namespace']}/{svc['metadata']['name']}"
        for svc in services
        if (svc["metadata"]["namespace"], svc["metadata"]["name"]) != ours
        for port in (svc.get("spec") or {}).get("ports") or []
        if port.get("nodePort")
    }
    return [
        f"service.ports[{index}].node_port {port['node_port']} is already used by Service {taken[port['node_port']]}; "
        "choose a free nodePort"
        for index, port in enumerate(service_settings(params)["ports"])
        if port.get("node_port") in taken
    ]


def foreign_owner_problem(live: dict | None, params: dict) -> str | None:
    """A same-named object this gateway does not own (another gateway's, Helm's, hand-made) is not ours to take."""
    if live is None:
        return None
    label = (live["metadata"].get("labels") or {}).get(OWNER_LABEL)
    if label == owner(params).name:
        return None
    held_by = f"gateway {label}" if label else "something other than this module"
    where = f"{live['kind']} {live['metadata']['namespace']}/{live['metadata']['name']}"
    return f"{where} already exists and belongs to {held_by}; remove it or give this gateway another name/namespace"


def selector_change_problem(live: dict | None, params: dict) -> str | None:
    if live is None or foreign_owner_problem(live, params):
        return None
    current = ((live.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if current == selector_labels(params):
        return None
    return (
        f"labels {selector_labels(params)} differ from the existing Deployment's selector {current}, which "
        "Kubernetes cannot change; keep the labels, or remove the gateway (state: absent) and create it again"
    )


def service_facts(params: dict, live: dict | None, desired: dict) -> dict:
    """The Service as clients reach it: live when it exists (allocated nodePorts, load-balancer address)."""
    obj = live or desired
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ingress = [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
    dns_name = f"{params['name']}.{params['namespace']}.svc.cluster.local"
    ports = [
        {
            "name": p.get("name"),
            "port": p["port"],
            "target_port": p.get("targetPort"),
            "node_port": p.get("nodePort"),
            "protocol": p.get("protocol", "TCP"),
        }
        for p in spec.get("ports") or []
    ]
    return {
        "name": params["name"],
        "namespace": params["namespace"],
        "type": spec.get("type"),
        "cluster_ip": spec.get("clusterIP"),
        "dns_name": dns_name,
        "ports": ports,
        "load_balancer_ingress": [address for address in ingress if address],
        "address": next((address for address in ingress if address), dns_name),
    }


# Cluster: what the module calls


def _engine(client, params: dict, check_mode: bool) -> Engine:
    return Engine(client, owner(params), check_mode, params.get("force_conflicts", False))


def _existing_object_problems(engine: Engine, params: dict, revision: str) -> list:
    deployment_live = engine.get("Deployment", params["name"], params["namespace"])
    named = []
    if params.get("expose_services"):
        named.append(("Gateway", CROSS_NETWORK_GATEWAY))
    if params.get("expose_istiod"):
        named += [("Gateway", ISTIOD_GATEWAY), ("VirtualService", istiod_virtual_service_name(revision))]
    problems = [foreign_owner_problem(deployment_live, params), selector_change_problem(deployment_live, params)]
    problems += [foreign_owner_problem(engine.get(kind, name, params["namespace"]), params) for kind, name in named]
    return [problem for problem in problems if problem]


def _cluster_problems(engine: Engine, params: dict) -> tuple:
    """(installed revision behind params["revision"], its namespace, what stops the install, check-mode notes).
    In check mode the revisions and namespace labels this run plans count as there (see planned.py)."""
    revisions = installed_revisions(engine.list_objects("ConfigMap", label_selector=REV_LABEL))
    revisions, revision_note = with_planned_revisions(revisions, params.get("planned_revisions"), engine.check_mode)
    tags = revision_tags(engine.list_objects("MutatingWebhookConfiguration", label_selector=TAG_LABEL))
    revision = resolve_revision(params["revision"], revisions, tags)
    if revision is None:
        return None, None, [_revision_problem(params, revisions)], []
    live = engine.get("Namespace", params["namespace"])
    namespace, namespace_note = with_planned_namespace(
        live, params["namespace"], params.get("planned_namespaces"), engine.check_mode
    )
    problems = namespace_problems(params, namespace, revision, revisions, tags)
    if any(port.get("node_port") for port in service_settings(params)["ports"]):
        problems += node_port_problems(params, engine.list_objects("Service"))
    if live is not None:
        problems += _existing_object_problems(engine, params, revision)
    notes = [note for note in (revision_note, namespace_note) if note]
    return revision, revisions[revision]["namespace"], problems, notes


def _result(params: dict, revision: str | None, report, service_info: dict | None) -> dict:
    result = {
        "changed": report.changed,
        "name": params["name"],
        "namespace": params["namespace"],
        "revision": revision,
        "objects": report.objects,
    }
    if service_info is not None:
        result.update(
            selector=selector_labels(params),
            service=service_info,
            address=service_info.pop("address"),
        )
    return result


def ensure_gateway_present(client, params: dict, check_mode: bool) -> tuple:
    """Install or converge one gateway. Returns (result, warnings, diff); raises GatewayError or EngineError."""
    validate(params)
    engine = _engine(client, params, check_mode)
    revision, revision_namespace, problems, notes = _cluster_problems(engine, params)
    if problems:
        raise GatewayError("; ".join(problems))
    desired = manifests(params, revision, revision_namespace)
    report = engine.ensure_present(desired, GATEWAY_KINDS)
    if params.get("wait", True):
        engine.wait_for_rollout(desired, params.get("wait_timeout", 300))
    live_service = engine.get("Service", params["name"], params["namespace"])
    info = service_facts(params, live_service, service(params))
    return _result(params, revision, report, info), notes, report.diff


def ensure_gateway_absent(client, params: dict, check_mode: bool) -> tuple:
    """Remove every object of this gateway and nothing of any other."""
    validate({**params, "state": "absent"})
    engine = _engine(client, params, check_mode)
    report = engine.ensure_absent(GATEWAY_KINDS)
    return _result(params, None, report, None), [], report.diff
