# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What earlier steps of the same run plan, for guards that run in check mode (pure).

A check-mode run writes nothing, so a step that depends on an earlier step's objects (a tenant on a revision the run
installs, a gateway in a namespace the tenant step labels) would be refused although the real run succeeds. Modules
take the run's plan (options `planned_revisions`, `planned_namespaces`) and, in check mode only, guard against the
cluster as it will be once the plan is applied. Outside check mode the plan is ignored: guards see the cluster."""

from __future__ import annotations

from dataclasses import dataclass

PLANNED_REVISION_SPEC = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    discovery_selectors=dict(type="list", elements="dict", default=[]),
    ca_root=dict(type="str"),
)
PLANNED_NAMESPACE_SPEC = dict(
    name=dict(type="str", required=True),
    labels=dict(type="dict", default={}),
)


@dataclass(frozen=True)
class RunPlan:
    """What earlier steps of the run plan: the modules' options `planned_revisions` and `planned_namespaces` as the
    argument spec left them (lists of dicts; a module without an option gets an empty tuple)."""

    revisions: tuple = ()
    namespaces: tuple = ()

    @classmethod
    def from_params(cls, params: dict) -> RunPlan:
        return cls(
            revisions=tuple(params.get("planned_revisions") or ()),
            namespaces=tuple(params.get("planned_namespaces") or ()),
        )


NOTHING_PLANNED = RunPlan()


def with_planned_revisions(installed: dict, planned: list, check_mode: bool) -> tuple:
    """(installed revisions plus the planned ones not installed yet, a note naming those) in check mode;
    (installed, None) otherwise. Revisions map name -> {"namespace", "selectors"} as installed_revisions() gives."""
    if not check_mode or not planned:
        return installed, None
    added = {
        entry["name"]: {"namespace": entry["namespace"], "selectors": entry.get("discovery_selectors") or []}
        for entry in planned
        if entry["name"] not in installed
    }
    if not added:
        return installed, None
    note = (
        f"check mode: revision {', '.join(sorted(added))} is not installed yet; checked as this run's plan "
        "installs it (namespace and discoverySelectors)"
    )
    return {**installed, **added}, note


def with_planned_namespace(live: dict | None, name: str, planned: list, check_mode: bool) -> tuple:
    """(the namespace as the run's plan leaves it, a note when the plan changed it) in check mode: the planned
    labels over the live ones, or a namespace the plan creates. (live, None) otherwise."""
    entry = next((item for item in planned or [] if item["name"] == name), None) if check_mode else None
    if entry is None:
        return live, None
    labels = {**((live or {}).get("metadata", {}).get("labels") or {}), **(entry.get("labels") or {})}
    namespace = {**(live or {}), "metadata": {**((live or {}).get("metadata") or {}), "name": name, "labels": labels}}
    state = "created" if live is None else "labelled"
    return namespace, f"check mode: namespace {name} checked as this run's plan leaves it ({state} by the tenant step)"
