# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Install or converge control planes (revisions): istio_revision with its own options (`ensure_revision_present`)
or with option `revisions`, many in one run (`ensure_revisions`, `RevisionsRun`). Either way istioctl reports its
version once and the cluster is read once for the run (`_read_view`, `_read_owned`); each revision is checked against
the installed ones and the run's earlier entries, rendered, then converged through its own Engine.

The guards and removal are in revision.py, the spec in revision_spec.py, the rendering in revision_render.py."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from .batch import SetAsideRun, failure_sentence
from .cluster import Cluster
from .engine import Engine, Report, foreign_object_problem, identity, read_existing
from .errors import EngineError, EntriesFailed, Refusal, refuse
from .istioctl import istioctl_version, render
from .kinds import KINDS, kind_of
from .planned import NOTHING_PLANNED, RunPlan
from .revision import (
    OWNER_KIND,
    REVISION_KINDS,
    keep_istiod_failure_policy,
    managed_by_us,
    moved_tags,
    refusals,
    remove_revision,
    result_of,
    revision_engine,
    rolled_out,
    tag_refusals,
)
from .revision_render import (
    DEFAULT_VALIDATOR,
    crds_to_apply,
    operator_spec,
    split_rendering,
    split_shared,
    system_namespace,
)
from .revision_spec import RevisionSpec, validate, validate_revisions
from .shared_root import Roots, planned_roots
from .trust_bundle import published_trust_bundle, resolve_trust_bundle
from .vocabulary import (
    FIELD_MANAGER,
    MANAGED_BY_LABEL,
    REV_LABEL,
    TAG_LABEL,
    installed_revisions,
    owner_label,
    tag_holders,
)

_ISTIO_CRDS_SELECTOR = "app.kubernetes.io/part-of=istio"
# What fails one entry of `revisions` and not the others: a refusal of its guards, an object or fields of others in
# its way, the API server rejecting or failing one of its requests, its rollout. Input errors are refused for the
# whole run before the cluster is contacted; an unreachable API server fails the whole run.
IN_THE_WAY = (Refusal, EngineError)


@dataclass
class _View:
    """What installing reads once per run, however many revisions: the installed revisions, every namespace, the tags'
    holders and the Istio CRDs. A revision that passes its guards is added as if installed (`add`), so that the run's
    later entries are checked against it as a second run would be."""

    revisions: dict  # name -> {"namespace", "selectors"}
    namespaces: dict  # name -> Namespace as read, until a revision of the run applies it
    labels: dict  # name -> its labels; the run's system namespaces as they will be labelled
    holders: dict  # tag -> sorted revisions
    crds: dict  # name -> Istio CRD as read
    roots: Roots
    trust_bundles: dict = field(default_factory=dict)  # revision of this run -> the root ConfigMap it publishes
    # identity -> the object the revisions of a namespace share as read (None: missing), until one applies it
    shared: dict = field(default_factory=dict)

    def add(self, spec: RevisionSpec, trust_bundle: str):
        self.revisions[spec.name] = {"namespace": spec.namespace, "selectors": list(spec.discovery_selectors)}
        labels = system_namespace(spec)["metadata"]["labels"]
        self.labels[spec.namespace] = {**self.labels.get(spec.namespace, {}), **labels}
        self.holders.update({tag: [spec.name] for tag in spec.tags})
        self.trust_bundles[spec.name] = trust_bundle


def _read_view(cluster: Cluster, plan: RunPlan, check_mode: bool) -> _View:
    """One LIST each of revisions (their mesh ConfigMaps), namespaces, tag webhooks and Istio CRDs. In check mode the
    `plan`'s revisions with a ca_root stand for the roots their `cacerts` will hold (shared_root.py)."""
    revisions = installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL))
    namespaces = {ns["metadata"]["name"]: ns for ns in cluster.list_objects("Namespace")}
    holders = tag_holders(cluster.list_objects("MutatingWebhookConfiguration", label_selector=TAG_LABEL))
    crds = cluster.list_objects("CustomResourceDefinition", _ISTIO_CRDS_SELECTOR)  # they carry part-of=istio
    return _View(
        revisions=revisions,
        namespaces=namespaces,
        labels={name: ns["metadata"].get("labels") or {} for name, ns in namespaces.items()},
        holders=holders,
        crds={crd["metadata"]["name"]: crd for crd in crds},
        roots=Roots(cluster, planned_roots(plan.revisions) if check_mode else None),
    )


def _read_owned(cluster: Cluster, names: list, kinds) -> dict:
    """{revision: {identity: object}} of what each of `names` owns: one LIST per kind, of one revision's objects or of
    every revision's when there are several. Reads grow with the kinds, not with the revisions."""
    key = owner_label(OWNER_KIND)
    selector = f"{MANAGED_BY_LABEL}={FIELD_MANAGER},{key}" + (f"={names[0]}" if len(names) == 1 else "")
    owned = {name: {} for name in names}
    for kind in sorted(kinds, key=lambda k: k.key):
        for obj in cluster.list_objects(kind.key, label_selector=selector):
            owned.setdefault(obj["metadata"]["labels"][key], {})[identity(obj)] = obj
    return owned


def _read_shared(cluster: Cluster, planned: list) -> dict:
    """{identity: object or None} of the objects the `planned` revisions share with the other revisions of their
    namespaces (engine.read_existing)."""
    wanted = {identity(manifest) for each in planned for manifest in each.shared}
    return {**dict.fromkeys(wanted), **read_existing(cluster, wanted)}


@dataclass(frozen=True)
class _Planned:
    """One revision checked and rendered: what it writes, and the live tag objects of others it takes over."""

    spec: RevisionSpec
    trust_bundle: str
    crds: list
    owned: list  # the revision's own objects
    shared: list  # the objects it shares with the other revisions of its namespace
    moving: list  # move_tags: the tags' webhooks and Services (and the default validator) other revisions hold


def _plan(cluster: Cluster, run_command, spec: RevisionSpec, version: str, view: _View, check_mode: bool) -> tuple:
    """Check one revision against the view and render it: (_Planned, warnings); raises a Refusal."""
    if spec.istio_version and spec.istio_version.removeprefix("v") != version:
        raise Refusal(
            f"istio_version {spec.istio_version} is not what istioctl_path {spec.istioctl_path} renders "
            f"({version}); point istioctl_path at the istioctl of that version"
        )
    problems = refusals(spec, view.revisions, view.labels, view.roots)
    problems += tag_refusals(spec, view.revisions, view.holders)
    planned_base = check_mode and not cluster.rehearsing and spec.canary_of and spec.canary_of not in view.revisions
    if planned_base:  # --check of a whole run: an earlier step of the same run may install the base
        problems = [p for p in problems if not p.startswith(f"canary_of {spec.canary_of} is not an installed")]
    refuse(problems)
    trust_bundle, warnings = resolve_trust_bundle(spec, version, _neighbour_trust_bundles(cluster, spec, view))
    if planned_base:
        warnings.append(f"check mode: canary_of {spec.canary_of} is not installed yet; a real run refuses it unless an "
                        "earlier step installs it")  # fmt: skip
    rendered = render(run_command, spec.istioctl_path, operator_spec(spec, trust_bundle), spec.render_cache_dir)
    crds, owned = split_rendering(rendered, spec, version)
    shared, owned = split_shared(owned)
    moving = _tag_objects_to_move(cluster, spec, moved_tags(spec, view.holders))
    view.add(spec, trust_bundle)
    return _Planned(spec, trust_bundle, crds, owned, shared, moving), warnings


def _neighbour_trust_bundles(cluster: Cluster, spec: RevisionSpec, view: _View) -> dict:
    """{revision: root ConfigMap name} of the other revisions in this revision's system namespace: as planned for
    those of this run, else as their istiod's Deployment publishes it."""
    neighbours = {}
    for other, info in view.revisions.items():
        if other == spec.name or info["namespace"] != spec.namespace:
            continue
        if other in view.trust_bundles:
            neighbours[other] = view.trust_bundles[other]
            continue
        deployment = cluster.get("Deployment", f"istiod-{other}", spec.namespace)
        if deployment is not None:  # a remote cluster's revision runs no istiod
            neighbours[other] = published_trust_bundle(deployment)
    return neighbours


def _tag_objects_to_move(cluster: Cluster, spec: RevisionSpec, tags: list) -> list:
    """The live webhooks and Services of `tags` (and the default validator with tag default) of other revisions."""
    found = []
    for tag in tags:
        for kind in ("MutatingWebhookConfiguration", "Service"):
            found += cluster.list_objects(kind, label_selector=f"{TAG_LABEL}={tag},{REV_LABEL}!={spec.name}")
    if "default" in tags:
        validator = cluster.get("ValidatingWebhookConfiguration", DEFAULT_VALIDATOR)
        if validator is not None and (validator["metadata"].get("labels") or {}).get(REV_LABEL) != spec.name:
            found.append(validator)
    return found


def _check_ownership(engine: Engine, planned: _Planned, adoptable: set, listed: dict, view: _View) -> tuple:
    """Refuse, before the first write, every desired object someone else holds: the revision's own (another owner's
    or hand-made) and the namespace's shared ones not written by meshops.istio. `listed` is what the revision owns
    as read. Returns that without the shared objects (a revision does not prune them), and the shared objects as
    read: from the view for the first revision of the run that applies them, read again after that."""
    shared_keys = {identity(manifest) for manifest in planned.shared}
    listed = {key: obj for key, obj in listed.items() if key not in shared_keys}
    lives = [listed.get(identity(m)) or engine.cluster.get(*_get_args(m)) for m in planned.owned]
    problems = engine.ownership_problems(lives, adoptable)
    shared_lives = [
        view.shared.pop(identity(m)) if identity(m) in view.shared else engine.cluster.get(*_get_args(m))
        for m in planned.shared
    ]
    if not engine.force_conflicts:
        problems += [foreign_object_problem(live) for live in shared_lives if live and not managed_by_us(live)]
    refuse(problems)
    return listed, shared_lives


def _get_args(manifest: dict) -> tuple:
    return manifest["kind"], manifest["metadata"]["name"], manifest["metadata"].get("namespace")


def _converge(engine: Engine, planned: _Planned, view: _View, listed: dict, write_crds) -> dict:
    """Write one revision: the run's CRDs when no revision wrote them yet (`write_crds`), its system namespace, the
    objects it shares, its own objects (pruning what it no longer renders), then delete the tag objects it took over
    under other names. Returns what it owned as read (for rolled_out)."""
    spec = planned.spec
    adoptable = {identity(obj) for obj in planned.moving}
    listed, shared_lives = _check_ownership(engine, planned, adoptable, listed, view)
    write_crds(engine)
    # The namespace as read, for the first revision of the run that applies it; read again after that.
    engine.ensure_shared(system_namespace(spec), view.namespaces.pop(spec.namespace, None))
    for manifest, live in zip(planned.shared, shared_lives, strict=True):
        engine.ensure_shared(manifest, live)
    engine.ensure_present(
        planned.owned, REVISION_KINDS, owned=listed, keep_live=keep_istiod_failure_policy, adoptable=adoptable
    )
    # A moved tag's objects in the old revision's namespace (the webhook is named after it) go once ours serve.
    desired = {identity(manifest) for manifest in planned.owned}
    engine.delete_objects([obj for obj in planned.moving if identity(obj) not in desired])
    return listed


def _crds_writer(planned: list, view: _View, version: str) -> tuple:
    """(write_crds(engine), warnings): the CRDs the run's renderings hold, created when missing and upgraded only by
    a newer version, applied once through the engine of the first revision that converges."""
    rendered = {crd["metadata"]["name"]: crd for each in planned for crd in each.crds}
    unwritten, warnings = crds_to_apply(list(rendered.values()), view.crds, version)

    def write_crds(engine: Engine):
        while unwritten:
            crd, live = unwritten.pop(0)
            engine.ensure_shared(crd, live)

    return write_crds, warnings


def ensure_revisions(
    cluster: Cluster,
    run_command,
    specs: list,
    check_mode: bool,
    plan: RunPlan = NOTHING_PLANNED,
    skip=None,
    named: bool = True,
) -> tuple:
    """Many revisions in one run (option `revisions`; module-level options are the same in every spec). Revisions
    with state absent are removed first; then the cluster is read once, each revision checked (against the installed
    ones and the entries before it) and rendered, and each converged as it would be alone, then their rollouts
    awaited (with wait). A revision that fails does not stop the others: its error is kept in the result's `failed`
    ({name: error}) and the caller decides (RevisionsRun). Revisions named in `skip` ({name: error}) are not written.
    `named`: errors name the `revisions` entry they come from. Returns (result, warnings, diff)."""
    if named:
        validate_revisions(specs)
    else:
        for spec in specs:
            validate(spec)
    skip = skip or {}
    entries = [(index, spec) for index, spec in enumerate(specs) if spec.name not in skip]
    engines = {spec.name: revision_engine(cluster, spec, check_mode) for _index, spec in entries}
    failed, summaries, warnings = {}, {}, []

    def attempt(index: int, spec: RevisionSpec, step, *args):
        """step(*args) for one entry; None when it failed (recorded in `failed`)."""
        try:
            with _naming(index, spec, named):
                return step(*args)
        except IN_THE_WAY as error:
            failed[spec.name] = error
            return None

    for index, spec in entries:
        if spec.state == "absent" and attempt(index, spec, remove_revision, engines[spec.name], spec):
            summaries[spec.name] = _removed(spec, engines[spec.name].report)
    installing = [(index, spec) for index, spec in entries if spec.state == "present"]
    if installing:
        summaries.update(_install(cluster, run_command, installing, engines, check_mode, plan, attempt, warnings))
    failed.update({name: error for name, error in skip.items() if name in {spec.name for spec in specs}})
    failed = {spec.name: failed[spec.name] for spec in specs if spec.name in failed}
    report = Report.combined(engine.report for name, engine in engines.items() if name not in failed)
    revisions = [summaries[spec.name] for spec in specs if spec.name in summaries and spec.name not in failed]
    result = {"changed": report.changed, "revisions": revisions, "objects": report.objects, "failed": failed}
    return result, warnings, report.diff


def _install(cluster, run_command, entries: list, engines: dict, check_mode: bool, plan: RunPlan, attempt,
             warnings: list) -> dict:  # fmt: skip
    """Check, render, converge and await each revision of `entries` ([(index, spec)], state present); returns
    {name: summary} of those that did not fail (`attempt` records the failures)."""
    first = entries[0][1]
    version = istioctl_version(run_command, first.istioctl_path, first.render_cache_dir)
    view = _read_view(cluster, plan, check_mode)
    planned = {}
    for index, spec in entries:
        outcome = attempt(index, spec, _plan, cluster, run_command, spec, version, view, check_mode)
        if outcome:
            planned[spec.name], notes = outcome
            warnings += notes
    if not planned:
        return {}
    kinds = {kind_of(m) for each in planned.values() for m in each.owned} | {KINDS[k] for k in REVISION_KINDS}
    owned = _read_owned(cluster, list(planned), kinds)
    view.shared = _read_shared(cluster, list(planned.values()))
    write_crds, crd_warnings = _crds_writer(list(planned.values()), view, version)
    warnings += crd_warnings
    listed = {}
    for index, spec in entries:
        if spec.name in planned:
            engine, each = engines[spec.name], planned[spec.name]
            listed[spec.name] = attempt(index, spec, _converge, engine, each, view, owned[spec.name], write_crds)
    converged = [(index, spec) for index, spec in entries if listed.get(spec.name) is not None]
    deadline = time.monotonic() + first.wait_timeout
    for index, spec in converged if first.wait else ():
        attempt(index, spec, _wait, engines[spec.name], planned[spec.name], deadline)
    return {
        spec.name: _installed(planned[spec.name], version, engines[spec.name].report, listed[spec.name])
        for _index, spec in converged
    }


def _wait(engine: Engine, planned: _Planned, deadline: float) -> bool:
    engine.wait_for_rollout(planned.owned, max(deadline - time.monotonic(), 0))
    return True


def _installed(planned: _Planned, version: str, report: Report, listed: dict) -> dict:
    """One installed revision's facts, as the module returns them for one revision (but `name`, and no objects)."""
    facts = {key: value for key, value in result_of(planned.spec, version, report).items() if key != "objects"}
    return {
        "name": facts.pop("revision"),
        **facts,
        "rolled_out": rolled_out(planned.owned, listed, report),
        "trust_bundle": planned.trust_bundle,
    }


def _removed(spec: RevisionSpec, report: Report) -> dict:
    return {"name": spec.name, "namespace": spec.namespace, "changed": report.changed}


@contextlib.contextmanager
def _naming(index: int, spec: RevisionSpec, named: bool):
    """An error of one revision names the `revisions` entry it came from."""
    try:
        yield
    except IN_THE_WAY as error:
        if not named:
            raise
        raise type(error)(f"revisions[{index}] ({spec.name}): {error}") from error


def ensure_revision_present(
    cluster: Cluster, run_command, spec: RevisionSpec, check_mode: bool, plan: RunPlan = NOTHING_PLANNED
) -> tuple:
    """Install or converge one revision. Returns (result, warnings, diff); raises a MeshopsError. In check mode the
    `plan`'s revisions with a ca_root stand for the roots their `cacerts` will hold (shared_root.py)."""
    result, warnings, diff = ensure_revisions(cluster, run_command, [spec], check_mode, plan, named=False)
    for error in result["failed"].values():
        raise error
    (facts,) = result["revisions"]
    facts = {key: value for key, value in facts.items() if key not in ("name", "changed")}
    return {"changed": result["changed"], "revision": spec.name, **facts, "objects": result["objects"]}, warnings, diff


class RevisionsRun(SetAsideRun):
    """The action of an istio_revision run with `revisions` (batch.SetAsideRun): a revision that fails its guards or
    whose objects or requests fail (IN_THE_WAY) is set aside while the others converge; the failure names each failed
    revision (`failed_revisions`) and returns the facts of the others (`revisions`), e.g. for a rollout wait."""

    in_the_way = IN_THE_WAY

    def __init__(self, specs: list, run_command, plan: RunPlan = NOTHING_PLANNED):
        super().__init__(specs)
        self.run_command = run_command
        self.plan = plan
        self.converged = []

    def ensure(self, cluster: Cluster, check_mode: bool, skip: dict) -> tuple:
        result, warnings, diff = ensure_revisions(cluster, self.run_command, self.specs, check_mode, self.plan, skip)
        self.converged = result["revisions"]
        return result, warnings, diff

    def failure(self, failed: dict, written: bool) -> Exception:
        names = [spec.name for spec in self.specs]
        return EntriesFailed(
            failure_sentence(failed, names, written, "revisions"),
            {"failed_revisions": {name: str(error) for name, error in failed.items()}, "revisions": self.converged},
        )
