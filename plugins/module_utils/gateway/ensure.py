# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install or remove gateways: what the istio_gateway module calls, with one GatewaySpec (`ensure_gateway_present`,
`ensure_gateway_absent`) or many (option `gateways`: `GatewaysRun`). Either way the cluster is read once for the
whole run (guards.read_view), every gateway is checked, then each converges through its own Engine.

The rest of the package: `spec` (GatewaySpec, validate), `manifests` (pure builders), `guards` (reads, checks)."""

from __future__ import annotations

import contextlib
from dataclasses import replace

from ..batch import SetAsideRun, failure_sentence
from ..cluster import Cluster
from ..engine import Engine, Owner, Report, identity
from ..errors import EngineError, EntriesFailed, FieldConflict, Refusal, refuse
from ..planned import NOTHING_PLANNED, RunPlan
from .crds import gateway_api_problem, read_gateway_api_crds
from .guards import gateway_problems, read_others, read_services, read_view, resolved_revision
from .manifests import GATEWAY_KINDS, deployed_workload, manifests, selector_labels, service
from .spec import GATEWAY_API, OWNER_KIND, GatewaySpec, validate, validate_gateways

# What sets one gateway aside instead of failing the whole run: the state of its namespace or of the cluster around
# it (a refusal of the cluster guards, an object of others in the way, fields another manager owns), not a fault of
# the run's plan. Input errors are refused for the whole run before anything is read.
IN_THE_WAY = (Refusal, FieldConflict)
_CRDS = "gateway-api-crds"  # the key of the engine that applies the Gateway API CRDs (no gateway's key has no '/')


def ensure_gateway_present(
    cluster: Cluster, spec: GatewaySpec, check_mode: bool, plan: RunPlan = NOTHING_PLANNED
) -> tuple:
    """Install or converge one gateway. Returns (result, warnings, diff); raises a MeshopsError. In check mode,
    `plan` holds what earlier steps of the same run install (planned.py); the warnings say when it was used."""
    validate(spec)
    result, warnings, diff = ensure_gateways(cluster, [spec], check_mode, plan, named=False)
    for error in result["failed"].values():
        raise error
    (summary,) = result["gateways"]
    return {"changed": result["changed"], **summary, "objects": result["objects"]}, warnings, diff


def ensure_gateway_absent(cluster: Cluster, spec: GatewaySpec, check_mode: bool) -> tuple:
    """Remove every object of this gateway and nothing of any other."""
    validate(spec)
    result, warnings, diff = ensure_gateways(cluster, [spec], check_mode, named=False)
    (summary,) = result["gateways"]
    return {"changed": result["changed"], **summary, "objects": result["objects"]}, warnings, diff


def ensure_gateways(
    cluster: Cluster, specs: list, check_mode: bool, plan: RunPlan = NOTHING_PLANNED, skip=None, named: bool = True
) -> tuple:
    """Many gateways in one run (all of one `state`). Reads the cluster once, checks each gateway, then converges
    each as it would alone. A gateway that fails does not stop the others: its error is kept in the result's
    `failed` ({namespace/name: error}) and the caller decides (GatewaysRun). Gateways whose key is in `skip`
    ({key: error}) are not written. `named`: errors name the `gateways` entry they come from.
    Returns (result, warnings, diff)."""
    validate_gateways(specs)
    skip = skip or {}
    present = bool(specs) and specs[0].state == "present"
    crds_path = specs[0].gateway_api_crds if present else None
    crds = read_gateway_api_crds(crds_path) if crds_path else []
    view = read_view(cluster, specs, present)
    engines = {key_of(spec): _engine(cluster, spec, check_mode) for spec in specs}
    if crds:
        engines[_CRDS] = _crd_engine(cluster, specs[0], check_mode)
    converge = _converge_all if present else _remove_all
    summaries, warnings, failed = converge(cluster, view, specs, engines, plan, skip, named, crds)
    failed.update({key: error for key, error in skip.items() if key in engines})
    if present and not check_mode and any(engines[key].report.changed for key in summaries):
        view = replace(view, services=read_services(cluster))  # as the API server allocated them
    gateways = [_summary(spec, summaries[key_of(spec)], view) for spec in specs if key_of(spec) in summaries]
    report = Report.combined(engine.report for key, engine in engines.items() if key not in failed)
    result = {"changed": report.changed, "gateways": gateways, "objects": report.objects, "failed": failed}
    return result, warnings, report.diff


def key_of(spec: GatewaySpec) -> str:
    return f"{spec.namespace}/{spec.name}"


def _converge_all(cluster, view, specs, engines, plan, skip, named, crds) -> tuple:
    """Check and converge each gateway not in `skip`: ({key: revision}, warnings, {key: error}). `crds`: the Gateway
    API CRDs the run applies, when given."""
    planned, warnings, failed = {}, [], {}
    for index, spec in enumerate(specs):
        key = key_of(spec)
        if key in skip:
            continue
        revision, revision_namespace, problems, notes = resolved_revision(spec, view, plan, engines[key].check_mode)
        if spec.api == GATEWAY_API and gateway_api_problem(view.gateway_api_served, crds):
            problems.append(gateway_api_problem(view.gateway_api_served, crds))
        if problems:
            failed[key] = _named(Refusal("; ".join(problems)), index, spec, named)
            continue
        planned[key] = (revision, manifests(spec, revision, revision_namespace))
        warnings += notes
    wanted = [
        identity(m) for key, (revision, desired) in planned.items() for m in desired
        if identity(m) not in view.owned[_spec(specs, key).owner_name]
    ]  # fmt: skip
    others = read_others(cluster, view, wanted)
    revisions = {}

    unwritten = list(crds)

    def crds_writer():
        """Applies the Gateway API CRDs (shared objects, never pruned) once, before the first Gateway of the run."""
        while unwritten:
            engines[_CRDS].ensure_shared(unwritten.pop(0))

    for index, spec in enumerate(specs):
        key = key_of(spec)
        if key not in planned:
            continue
        revision, desired = planned[key]
        try:
            with _naming(index, spec, named):
                _converge(engines[key], spec, view, revision, desired, others, plan, warnings, crds_writer)
        except (Refusal, EngineError) as error:
            failed[key] = error
            continue
        revisions[key] = revision
    return revisions, warnings, failed


def _converge(engine: Engine, spec: GatewaySpec, view, revision: str, desired: list, others: dict, plan, warnings,
              write_crds):  # fmt: skip
    owned = view.owned[spec.owner_name]
    deployment = next((obj for obj in desired if obj["kind"] == "Deployment"), None)
    live_deployment = (
        None if deployment is None else owned.get(identity(deployment)) or others.get(identity(deployment))
    )
    problems, notes = gateway_problems(spec, view, revision, live_deployment, plan, engine.check_mode)
    refuse(problems)
    warnings += notes
    if spec.api == GATEWAY_API:
        write_crds()
    engine.ensure_present(desired, GATEWAY_KINDS, owned, others=others)
    if spec.wait:
        engine.wait_for_rollout([deployed_workload(spec)], spec.wait_timeout)


def _remove_all(cluster, view, specs, engines, plan, skip, named, crds) -> tuple:
    """Delete what each gateway not in `skip` owns, and nothing of any other."""
    removed, failed = {}, {}
    for index, spec in enumerate(specs):
        key = key_of(spec)
        if key in skip:
            continue
        try:
            with _naming(index, spec, named):
                engines[key].delete_objects(view.owned[spec.owner_name].values())
        except EngineError as error:
            failed[key] = error
            continue
        removed[key] = None
    return removed, [], failed


def _spec(specs: list, key: str) -> GatewaySpec:
    return next(spec for spec in specs if key_of(spec) == key)


def _named(error: Exception, index: int, spec: GatewaySpec, named: bool) -> Exception:
    return type(error)(f"gateways[{index}] ({key_of(spec)}): {error}") if named else error


@contextlib.contextmanager
def _naming(index: int, spec: GatewaySpec, named: bool):
    """An error of one gateway names the `gateways` entry it came from."""
    try:
        yield
    except (Refusal, EngineError) as error:
        if not named:
            raise
        raise _named(error, index, spec, named) from error


def _summary(spec: GatewaySpec, revision: str | None, view) -> dict:
    """One gateway's facts: name, namespace, revision, and when installed its selector, Service and address."""
    summary = {"name": spec.name, "namespace": spec.namespace, "revision": revision}
    if revision is None:
        return summary
    desired = service(spec)
    info = service_facts(spec, view.services.get(identity(desired)), desired)
    return {**summary, "selector": selector_labels(spec), "address": info.pop("address"), "service": info}


class GatewaysRun(SetAsideRun):
    """The action of an istio_gateway run with `gateways` (batch.SetAsideRun): a gateway whose namespace or objects
    hold something in the way (IN_THE_WAY) is set aside while the others converge; the failure names each failed
    gateway (`failed_gateways`)."""

    in_the_way = IN_THE_WAY

    def __init__(self, specs: list, plan: RunPlan = NOTHING_PLANNED):
        super().__init__(specs)
        self.plan = plan

    def ensure(self, cluster: Cluster, check_mode: bool, skip: dict) -> tuple:
        return ensure_gateways(cluster, self.specs, check_mode, self.plan, skip)

    def failure(self, failed: dict, written: bool) -> Exception:
        keys = [key_of(spec) for spec in self.specs]
        return EntriesFailed(
            failure_sentence(failed, keys, written, "gateways"),
            {"failed_gateways": {key: str(error) for key, error in failed.items()}},
        )


def service_facts(spec: GatewaySpec, live: dict | None, desired: dict) -> dict:
    """The Service as clients reach it: live when it exists (allocated nodePorts, load-balancer address)."""
    obj = live or desired
    service_spec, status = obj.get("spec") or {}, obj.get("status") or {}
    ingress = [i.get("ip") or i.get("hostname") for i in (status.get("loadBalancer") or {}).get("ingress") or []]
    dns_name = f"{spec.workload_name}.{spec.namespace}.svc.cluster.local"
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
        "name": spec.workload_name,
        "namespace": spec.namespace,
        "type": service_spec.get("type"),
        "cluster_ip": service_spec.get("clusterIP"),
        "dns_name": dns_name,
        "ports": ports,
        "load_balancer_ingress": [address for address in ingress if address],
        "address": next((address for address in ingress if address), dns_name),
    }


def _crd_engine(cluster: Cluster, spec: GatewaySpec, check_mode: bool) -> Engine:
    """Writes the Gateway API CRDs as shared objects: no owner labels, never pruned or removed with a gateway."""
    return Engine(cluster, Owner(OWNER_KIND, _CRDS), check_mode, spec.force_conflicts)


def _engine(cluster: Cluster, spec: GatewaySpec, check_mode: bool) -> Engine:
    return Engine(cluster, Owner(OWNER_KIND, spec.owner_name), check_mode, spec.force_conflicts)
