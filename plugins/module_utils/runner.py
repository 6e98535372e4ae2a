# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module's main() does after parsing its arguments: connect, run one ensure function, and turn every
failure the user can act on into one fail_json sentence."""

from __future__ import annotations

from .client import AUTH_ARG_SPEC, connect, connect_other
from .cluster import Cluster
from .engine import Report
from .errors import MeshopsError

COMMON_ARG_SPEC = {**AUTH_ARG_SPEC, "force_conflicts": {"type": "bool", "default": False}}


def run_module(module, action, needs_cluster: bool = True, others=()):
    """Exit `module` with what `action(cluster, check_mode)` returns as (result, warnings, diff).

    The whole plan is checked before the first real write: `action` first runs as a dry run (every write sent
    with dryRun=All, so the API server validates each object), and only when that rehearsal succeeds and would
    change something does it run for real. A no-op run is the rehearsal alone.

    Every error of the collection's tree (errors.MeshopsError) becomes one fail_json sentence, with `changed` and
    the `objects` written before the failure, on the module's cluster and on the `others` (second clusters from
    other_cluster, their objects tagged with the option that names them). `needs_cluster=False` passes None instead
    of a Cluster."""
    cluster = Cluster(connect(module)) if needs_cluster else None
    clusters = [c for c in (cluster, *others) if c is not None]
    try:
        result, warnings, diff = rehearse_then_run(action, cluster, clusters, module.check_mode)
    except Rehearsal as failed:
        module.fail_json(msg=f"{failed} (Found by a dry run of the whole plan: nothing was written.)", changed=False)
    except MeshopsError as error:
        module.fail_json(msg=str(error), **written_before_failure(cluster, others))
    for warning in warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


class Rehearsal(Exception):
    """The dry run of the whole plan failed: nothing was written."""

    def __init__(self, error: MeshopsError):
        super().__init__(str(error).rstrip("."))


def rehearse_then_run(action, cluster, clusters: list, check_mode: bool) -> tuple:
    """`action` as a dry run; then, unless in check mode or nothing would change, for real."""
    for each in clusters:
        each.rehearsing = not check_mode
    try:
        planned = action(cluster, True)
    except MeshopsError as error:
        if check_mode:
            raise
        raise Rehearsal(error) from error
    finally:
        for each in clusters:
            each.rehearsing = False
    if check_mode or not planned[0].get("changed"):
        return planned
    for each in clusters:
        each.reports.clear()
    return action(cluster, False)


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
    return Cluster(connect_other(module, auth, parameter), parameter)
