# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module's main() does after parsing its arguments: connect, run one ensure function, and turn every
failure the user can act on into one fail_json sentence."""

from __future__ import annotations

import contextlib

from .claims import ClaimsLock, holder_identity
from .client import AUTH_ARG_SPEC, connect, connect_other
from .cluster import Cluster
from .engine import Report
from .errors import MeshopsError
from .transport import TRANSPORT_ARG_SPEC, RetryingClient

# What every module that talks to a cluster takes (doc fragment meshops.istio.attributes); writers add
# force_conflicts.
CLUSTER_ARG_SPEC = {**AUTH_ARG_SPEC, **TRANSPORT_ARG_SPEC}
COMMON_ARG_SPEC = {
    **CLUSTER_ARG_SPEC,
    "force_conflicts": {"type": "bool", "default": False},
    "lock_timeout": {"type": "int", "default": 300},
}


def run_module(module, action, needs_cluster: bool = True, others=()):
    """Exit `module` with what `action(cluster, check_mode)` returns as (result, warnings, diff).

    The whole plan is checked before the first real write: `action` first runs as a dry run (every write sent
    with dryRun=All, so the API server validates each object). A no-op run is that rehearsal alone. A run that
    would change something takes the cluster's claims lock (claims.py), rehearses again under it, so that what it
    checked still holds, and then runs for real.

    Every error of the collection's tree (errors.MeshopsError) becomes one fail_json sentence, with `changed` and
    the `objects` written before the failure, on the module's cluster and on the `others` (second clusters from
    other_cluster, their objects tagged with the option that names them). `needs_cluster=False` passes None instead
    of a Cluster."""
    cluster = Cluster(retrying(module, connect(module))) if needs_cluster else None
    clusters = [c for c in (cluster, *others) if c is not None]
    try:
        result, warnings, diff = rehearse_then_run(action, cluster, clusters, module.check_mode, _locking(module))
    except Rehearsal as failed:
        module.fail_json(
            msg=f"{failed} (Found by a dry run of the whole plan: nothing was written.)", changed=False, **failed.result
        )
    except MeshopsError as error:
        module.fail_json(msg=str(error), **written_before_failure(cluster, others), **getattr(error, "result", {}))
    for warning in warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


class Rehearsal(Exception):
    """The dry run of the whole plan failed: nothing was written."""

    def __init__(self, error: MeshopsError):
        super().__init__(str(error).rstrip("."))
        self.result = getattr(error, "result", {})


def rehearse_then_run(action, cluster, clusters: list, check_mode: bool, locked=None) -> tuple:
    """`action` as a dry run; then, unless in check mode or nothing would change, again as a dry run and for real
    inside `locked(cluster)` (a context manager), when given.

    An action that `plans_locally` (a batch of many entries) sends nothing in its first rehearsal outside check
    mode: that pass only tells whether anything would change (what the engines read against what they would send);
    the rehearsal under the lock has the API server check every write, as a check-mode run does."""
    plans_locally = not check_mode and getattr(action, "plans_locally", False)
    planned = _rehearse(action, cluster, clusters, check_mode, plans_locally)
    if check_mode or not planned[0].get("changed"):
        return planned
    with locked(cluster) if locked and cluster else contextlib.nullcontext():
        _rehearse(action, cluster, clusters, check_mode)
        for each in clusters:
            each.reports.clear()
        return action(cluster, False)


def _rehearse(action, cluster, clusters: list, check_mode: bool, planning: bool = False) -> tuple:
    for each in clusters:
        each.reports.clear()
        each.rehearsing = not check_mode
        each.planning = planning
    try:
        return action(cluster, True)
    except MeshopsError as error:
        if check_mode:
            raise
        raise Rehearsal(error) from error
    finally:
        for each in clusters:
            each.rehearsing = each.planning = False


def _locking(module):
    """The claims lock for writing modules (those with lock_timeout), else None."""
    if "lock_timeout" not in module.params:
        return None
    identity = holder_identity(module._name)
    return lambda cluster: ClaimsLock(cluster, identity, module.params["lock_timeout"])


def written_before_failure(cluster: Cluster | None, others=()) -> dict:
    """changed and objects of every Engine that wrote on `cluster` or on the `others`, for a failing module's
    result."""
    reports = list(cluster.reports if cluster else [])
    reports += [report.tagged(other.parameter) for other in others for report in other.reports]
    report = Report.combined(reports)
    return {"changed": report.changed, "objects": report.objects}


def other_cluster(module, auth: dict, parameter: str) -> Cluster:
    """The Cluster a module option (`parameter`, a dict of kubernetes.core's auth options) points at; errors on it
    name that option."""
    return Cluster(retrying(module, connect_other(module, auth, parameter)), parameter)


def retrying(module, client) -> RetryingClient:
    """`client` with the module's request_timeout and request_retries on every request."""
    return RetryingClient(client, module.params["request_timeout"], module.params["request_retries"])
