# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install or remove one gateway: what the istio_gateway module calls with its GatewaySpec.

The rest of the package: `spec` (GatewaySpec, validate), `manifests` (pure builders), `guards` (cluster checks)."""

from __future__ import annotations

from ..cluster import Cluster
from ..engine import Engine, Owner
from ..errors import refuse
from ..planned import NOTHING_PLANNED, RunPlan
from .guards import cluster_problems
from .manifests import GATEWAY_KINDS, manifests, selector_labels, service
from .spec import OWNER_KIND, GatewaySpec, validate


def ensure_gateway_present(
    cluster: Cluster, spec: GatewaySpec, check_mode: bool, plan: RunPlan = NOTHING_PLANNED
) -> tuple:
    """Install or converge one gateway. Returns (result, warnings, diff); raises a MeshopsError. In check mode,
    `plan` holds what earlier steps of the same run install (planned.py); the warnings say when it was used."""
    validate(spec)
    engine = _engine(cluster, spec, check_mode)
    revision, revision_namespace, problems, notes = cluster_problems(cluster, spec, plan, check_mode)
    refuse(problems)
    desired = manifests(spec, revision, revision_namespace)
    report = engine.ensure_present(desired, GATEWAY_KINDS)
    if spec.wait:
        engine.wait_for_rollout(desired, spec.wait_timeout)
    live_service = cluster.get("Service", spec.name, spec.namespace)
    info = service_facts(spec, live_service, service(spec))
    return _result(spec, revision, report, info), notes, report.diff


def ensure_gateway_absent(cluster: Cluster, spec: GatewaySpec, check_mode: bool) -> tuple:
    """Remove every object of this gateway and nothing of any other."""
    validate(spec)
    engine = _engine(cluster, spec, check_mode)
    report = engine.ensure_absent(GATEWAY_KINDS)
    return _result(spec, None, report, None), [], report.diff


def service_facts(spec: GatewaySpec, live: dict | None, desired: dict) -> dict:
    """The Service as clients reach it: live when it exists (allocated nodePorts, load-balancer address)."""
    obj = live or desired
    service_spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ingress = [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
    dns_name = f"{spec.name}.{spec.namespace}.svc.cluster.local"
    ports = [
        {
            "name": p.get("name"),
            "port": p["port"],
            "target_port": p.get("targetPort"),
            "node_port": p.get("nodePort"),
            "protocol": p.get("protocol", "TCP"),
        }
        for p in service_spec.get("ports") or []
    ]
    return {
        "name": spec.name,
        "namespace": spec.namespace,
        "type": service_spec.get("type"),
        "cluster_ip": service_spec.get("clusterIP"),
        "dns_name": dns_name,
        "ports": ports,
        "load_balancer_ingress": [address for address in ingress if address],
        "address": next((address for address in ingress if address), dns_name),
    }


def _engine(cluster: Cluster, spec: GatewaySpec, check_mode: bool) -> Engine:
    return Engine(cluster, Owner(OWNER_KIND, spec.owner_name), check_mode, spec.force_conflicts)


def _result(spec: GatewaySpec, revision: str | None, report, service_info: dict | None) -> dict:
    result = {
        "changed": report.changed,
        "name": spec.name,
        "namespace": spec.namespace,
        "revision": revision,
        "objects": report.objects,
    }
    if service_info is not None:
        result.update(
            selector=selector_labels(spec),
            service=service_info,
            address=service_info.pop("address"),
        )
    return result
