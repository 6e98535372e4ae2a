# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The objects of one gateway, built from its GatewaySpec (pure: same spec, same manifests)."""

from __future__ import annotations

import copy
import json

from ..kinds import GATEWAY_API_GATEWAY
from ..vocabulary import MIN_REPLICAS_ANNOTATION, NETWORK_LABEL, REV_LABEL
from .spec import GATEWAY_API, GATEWAY_CLASS, GatewaySpec, PortSpec

# Everything a gateway may own: what prune and removal look at.
GATEWAY_KINDS = (
    "ServiceAccount", "Role", "RoleBinding", "Service", "Deployment", "HorizontalPodAutoscaler",
    "PodDisruptionBudget", "Gateway", "VirtualService", GATEWAY_API_GATEWAY, "ConfigMap",
)  # fmt: skip
# The annotation on a Gateway API Gateway that sets the type of the Service istiod deploys for it.
SERVICE_TYPE_ANNOTATION = "networking.istio.io/service-type"
CROSS_NETWORK_GATEWAY = "cross-network-gateway"
ISTIOD_GATEWAY = "istiod-gateway"


def manifests(spec: GatewaySpec, revision: str, revision_namespace: str) -> list:
    """Every object of this gateway. `revision`/`revision_namespace`: the installed revision behind
    spec.revision (which may be a tag)."""
    if spec.api == GATEWAY_API:
        return [gateway_parameters(spec), gateway_api_gateway(spec)]
    objects = [service_account(spec), *secret_reader_role(spec), deployment(spec), service(spec)]
    if spec.autoscale is not None:
        objects.append(autoscaler(spec))
    if spec.min_available is not None:
        objects.append(disruption_budget(spec))
    if spec.expose_services:
        objects.append(cross_network_gateway(spec))
    if spec.expose_istiod:
        objects += istiod_exposure(spec, revision, revision_namespace)
    return objects


def selector_labels(spec: GatewaySpec) -> dict:
    """The labels the Deployment selects its pods by, and Istio `Gateway` resources select the gateway by."""
    return dict(spec.selector)


def network_labels(spec: GatewaySpec) -> dict:
    return {NETWORK_LABEL: spec.network} if spec.network else {}


def _metadata(spec: GatewaySpec, name: str | None = None, labels: dict | None = None) -> dict:
    common = {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/part-of": "istio", **selector_labels(spec)}
    return {"name": name or spec.name, "namespace": spec.namespace, "labels": {**common, **(labels or {})}}


def service_account(spec: GatewaySpec) -> dict:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _metadata(spec)}


def secret_reader_role(spec: GatewaySpec) -> list:
    """Role + RoleBinding named after the ServiceAccount: istiod serves credentials to the gateway only when a
    SubjectAccessReview says its ServiceAccount may read secrets in its namespace."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(spec),
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(spec),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": spec.name},
        "subjects": [{"kind": "ServiceAccount", "name": spec.name, "namespace": spec.namespace}],
    }
    return [role, binding]


def pod_template(spec: GatewaySpec) -> dict:
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
        "resources": copy.deepcopy(dict(spec.resources)),
    }
    if spec.network:
        container["env"] = [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": spec.network}]
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
                REV_LABEL: spec.revision,
                **selector_labels(spec),
                "app.kubernetes.io/name": spec.name,
                "istio.io/dataplane-mode": "none",  # an ambient namespace must not capture the gateway itself
                **network_labels(spec),
            },
        },
        "spec": {
            "serviceAccountName": spec.name,
            # Lets the proxy bind ports below 1024 without privileges.
            "securityContext": {"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
            "containers": [container],
            "terminationGracePeriodSeconds": 30,
        },
    }


def deployment(spec: GatewaySpec) -> dict:
    deployment_spec = {"selector": {"matchLabels": selector_labels(spec)}, "template": pod_template(spec)}
    metadata = _metadata(spec)
    if spec.replicas is not None:
        deployment_spec["replicas"] = spec.replicas
    else:  # The HPA sets the replica count: setting it here would fight it on every run. Waits wait for its minimum.
        metadata["annotations"] = {MIN_REPLICAS_ANNOTATION: str(spec.autoscale.min_replicas)}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata, "spec": deployment_spec}


def _service_port(port: PortSpec) -> dict:
    built = {"name": port.name, "port": port.port, "targetPort": port.target, "protocol": port.protocol}
    if port.node_port is not None:
        built["nodePort"] = port.node_port
    return built


def service(spec: GatewaySpec) -> dict:
    settings = spec.service
    service_spec = {
        "type": settings.type,
        "ports": [_service_port(port) for port in settings.ports],
        "selector": selector_labels(spec),
    }
    optional = {
        "loadBalancerIP": settings.load_balancer_ip,
        "loadBalancerSourceRanges": list(settings.load_balancer_source_ranges),
        "externalTrafficPolicy": settings.external_traffic_policy,
    }
    service_spec.update({key: value for key, value in optional.items() if value})
    metadata = _metadata(spec, spec.workload_name, labels=network_labels(spec))
    if settings.annotations:
        metadata["annotations"] = {key: str(value) for key, value in settings.annotations.items()}
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": service_spec}


def autoscaler(spec: GatewaySpec) -> dict:
    target = {"type": "Utilization", "averageUtilization": spec.autoscale.target_cpu_utilization}
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(spec),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": spec.autoscale.min_replicas,
            "maxReplicas": spec.autoscale.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": target}}],
        },
    }


def disruption_budget(spec: GatewaySpec) -> dict:
    min_available = spec.min_available
    if isinstance(min_available, str) and min_available.isdigit():
        min_available = int(min_available)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(spec),
        "spec": {"selector": {"matchLabels": selector_labels(spec)}, "minAvailable": min_available},
    }


def cross_network_gateway(spec: GatewaySpec) -> dict:
    """Services of this network reachable from other networks through port 15443, mTLS passed through by SNI."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "Gateway",
        "metadata": _metadata(spec, CROSS_NETWORK_GATEWAY),
        "spec": {
            "selector": selector_labels(spec),
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


def istiod_exposure(spec: GatewaySpec, revision: str, revision_namespace: str) -> list:
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
        "metadata": _metadata(spec, ISTIOD_GATEWAY),
        "spec": {"selector": selector_labels(spec), "servers": servers},
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
        "metadata": _metadata(spec, istiod_virtual_service_name(revision)),
        "spec": {"hosts": ["*"], "gateways": [ISTIOD_GATEWAY], "tls": routes},
    }
    return [gateway, virtual_service]


def gateway_parameters_name(spec: GatewaySpec) -> str:
    return f"{spec.name}-gateway-parameters"


def gateway_api_gateway(spec: GatewaySpec) -> dict:
    """A Gateway API Gateway of class `istio`, for the istiod of spec.revision (its `istio.io/rev` label) to deploy.
    Its infrastructure labels are the gateway's selector labels: without them istiod would copy the Gateway's own
    labels, ours included, onto what it deploys, and prune would take those objects for this gateway's."""
    metadata = _metadata(spec, labels={REV_LABEL: spec.revision})
    metadata["annotations"] = {SERVICE_TYPE_ANNOTATION: spec.service.type}
    parameters = {"group": "", "kind": "ConfigMap", "name": gateway_parameters_name(spec)}
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": metadata,
        "spec": {
            "gatewayClassName": GATEWAY_CLASS,
            "infrastructure": {"labels": selector_labels(spec), "parametersRef": parameters},
            "listeners": [_listener(listener) for listener in spec.listeners],
        },
    }


def _listener(listener) -> dict:
    built = {
        "name": listener.name,
        "port": listener.port,
        "protocol": listener.protocol,
        # Only routes of the gateway's own namespace attach: another tenant's routes cannot use this gateway.
        "allowedRoutes": {"namespaces": {"from": "Same"}},
    }
    if listener.hostname:
        built["hostname"] = listener.hostname
    if listener.tls_secret:
        built["tls"] = {
            "mode": "Terminate",
            "certificateRefs": [{"group": "", "kind": "Secret", "name": listener.tls_secret}],
        }
    return built


def gateway_parameters(spec: GatewaySpec) -> dict:
    """The ConfigMap the Gateway's infrastructure.parametersRef names: per kind istiod deploys, a strategic merge
    patch over its template. istiod deploys an HPA or a PDB only when its key is there."""
    patches = {"deployment": _deployment_patch(spec), "service": _service_patch(spec)}
    if spec.autoscale is not None:
        scaling = {key: value for key, value in autoscaler(spec)["spec"].items() if key != "scaleTargetRef"}
        patches["horizontalPodAutoscaler"] = {"spec": scaling}  # istiod's template targets its own Deployment
    if spec.min_available is not None:
        patches["podDisruptionBudget"] = {"spec": {"minAvailable": disruption_budget(spec)["spec"]["minAvailable"]}}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(spec, gateway_parameters_name(spec)),
        "data": {key: json.dumps(patch, sort_keys=True) for key, patch in patches.items() if patch},
    }


def _deployment_patch(spec: GatewaySpec) -> dict:
    container = {"name": "istio-proxy", "resources": copy.deepcopy(dict(spec.resources))}
    patch = {"spec": {"template": {"spec": {"containers": [container]}}}}
    if spec.replicas is not None:
        patch["spec"]["replicas"] = spec.replicas
    return patch


def _service_patch(spec: GatewaySpec) -> dict:
    settings = spec.service
    service_spec = {
        "loadBalancerIP": settings.load_balancer_ip,
        "loadBalancerSourceRanges": list(settings.load_balancer_source_ranges),
        "externalTrafficPolicy": settings.external_traffic_policy,
        # Ports merge by number into the ones istiod makes from the listeners.
        "ports": [{"port": port.port, "nodePort": port.node_port} for port in settings.ports if port.node_port],
    }
    patch = {"spec": {key: value for key, value in service_spec.items() if value}}
    if settings.annotations:
        patch["metadata"] = {"annotations": {key: str(value) for key, value in settings.annotations.items()}}
    return patch if patch["spec"] or settings.annotations else {}


def deployed_workload(spec: GatewaySpec) -> dict:
    """The Deployment a rollout wait looks at: this gateway's, or the one istiod deploys for its Gateway."""
    return {"kind": "Deployment", "metadata": {"name": spec.workload_name, "namespace": spec.namespace}}
