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
    """Exit `module` with what `action(cluster)` returns as (result, warnings, diff).

    Every error of the collection's tree (errors.MeshopsError) becomes one fail_json sentence, with `changed` and
    the `objects` written before the failure, on the module's cluster and on the `others` (second clusters from
    other_cluster, their objects tagged with the option that names them). `needs_cluster=False` passes None instead
    of a Cluster."""
    cluster = Cluster(connect(module)) if needs_cluster else None
    try:
        result, warnings, diff = action(cluster)
    except MeshopsError as error:
        module.fail_json(msg=str(error), **written_before_failure(cluster, others))
    for warning in warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)


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
