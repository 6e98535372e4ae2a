# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Istio's own analyzers per control plane: `istioctl analyze --revision <rev>` over the live cluster, its JSON
findings attributed to the tenants the control plane serves (istio_analysis_info). The parsing and attribution are
pure; `gather_analysis` runs istioctl, once per control plane."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from dataclasses import dataclass

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core; the import sanity test runs without it
    yaml = None

from .cluster import Cluster
from .errors import EngineError, Refusal
from .istioctl import istioctl_version
from .vocabulary import REV_LABEL, installed_revisions

LEVELS = ("Info", "Warning", "Error")


def analyze_command(istioctl: str, kubeconfig: str, revision: str, system_namespace: str, suppress=()) -> list:
    """Every namespace, the config of `revision` only, its mesh config read from its system namespace; JSON out,
    every level (JSON output never sets a failing exit code: the levels are judged here)."""
    command = [istioctl, "analyze", "--all-namespaces", "--revision", revision, "--istioNamespace", system_namespace,
               "--output", "json", "--output-threshold", "Info", "--kubeconfig", kubeconfig]  # fmt: skip
    for entry in suppress:
        command += ["--suppress", entry]
    return command


def origin_parts(origin: str) -> tuple:
    """(kind, namespace or None, name) of an analyzer message's origin: `<Kind> <namespace>/<name>` for a namespaced
    resource, `<Kind> <name>` for a cluster-scoped one (a Namespace is its own namespace)."""
    kind, full_name = ((origin or "").split(" ", 1) + [""])[:2]
    namespace, name = (["", *full_name.split("/", 1)])[-2:]
    if not namespace and kind == "Namespace":
        namespace = name
    return kind, namespace or None, name


def parse_findings(output: str) -> list:
    """The findings in `istioctl analyze -o json` output: a dict per message with code, level, message, origin,
    kind, namespace, name and documentation_url."""
    start = output.find("[")
    if start < 0:
        raise ValueError("no JSON list in the output")
    findings = []
    for message in json.loads(output[start:]):
        kind, namespace, name = origin_parts(message.get("origin") or "")
        findings.append(
            {
                "code": message.get("code"),
                "level": message.get("level"),
                "message": message.get("message"),
                "origin": message.get("origin"),
                "kind": kind,
                "namespace": namespace,
                "name": name,
                "documentation_url": message.get("documentationUrl"),
                "cluster": message.get("cluster"),
            }
        )
    return findings


def findings_of(findings: list, namespaces: set, system_namespace: str) -> list:
    """The findings about a tenant of a control plane: in its namespaces, in the control plane's system namespace,
    or on a cluster-scoped resource (the revision's webhooks)."""
    return [f for f in findings if f["namespace"] is None or f["namespace"] in namespaces | {system_namespace}]


def level_counts(findings: list) -> dict:
    return {level: sum(1 for f in findings if f["level"] == level) for level in LEVELS}


def at_or_above(findings: list, fail_level: str) -> list:
    """The findings whose level is `fail_level` or worse (Info < Warning < Error)."""
    worst = LEVELS.index(fail_level)
    return [f for f in findings if f["level"] in LEVELS and LEVELS.index(f["level"]) >= worst]


def problem_sentence(tenant: str, revision: str, finding: dict) -> str:
    return (
        f"tenant {tenant}: istioctl analyze --revision {revision} reports {finding['level']} {finding['code']} on "
        f"{finding['origin'] or 'the mesh'}: {finding['message']}"
    )


def serving(tenant: dict, namespace_labels: dict, revisions: dict) -> dict:
    """The tenant with the revision that serves its namespaces: the one their istio.io/rev labels name when it is a
    single installed revision (after upgrade.yml moved them, the new one), else the revision the tenant names."""
    labelled = {namespace_labels[ns].get(REV_LABEL) for ns in tenant["namespaces"] if ns in namespace_labels} - {None}
    if len(labelled) == 1 and next(iter(labelled)) in revisions:
        return {**tenant, "revision": next(iter(labelled))}
    return tenant


def tenants_report(tenants: list, revisions: dict, findings_by_revision: dict, fail_level: str) -> dict:
    """Per tenant its revision, system namespace, findings and counts by level; `problems` holds a sentence per
    finding at or above `fail_level`, and per tenant whose revision is not installed."""
    report, problems = {}, []
    for tenant in tenants:
        name, revision = tenant["name"], tenant.get("revision")
        if revision not in revisions:
            problems.append(f"tenant {name}: revision {revision} is not installed, so no analyzer ran for it")
            continue
        system_namespace = revisions[revision]["namespace"]
        found = findings_of(findings_by_revision[revision], set(tenant["namespaces"]), system_namespace)
        report[name] = {
            "revision": revision,
            "system_namespace": system_namespace,
            "counts": level_counts(found),
            "findings": found,
        }
        problems += [problem_sentence(name, revision, finding) for finding in at_or_above(found, fail_level)]
    return {"tenants": report, "problems": problems}


# Cluster


@dataclass(frozen=True)
class AnalysisSpec:
    """What istio_analysis_info was asked: the tenants (name, revision, namespace names), the istioctl to run, the
    level from which a finding is a problem, istioctl's --suppress entries, and how long one istioctl run may take."""

    tenants: list
    istioctl: str
    fail_level: str = "Error"
    suppress: tuple = ()
    timeout: int = 300


def gather_analysis(cluster: Cluster, run_command, spec: AnalysisSpec) -> dict:
    """Run `istioctl analyze` once per revision the tenants name, against the cluster the module reaches (a private
    kubeconfig file written for istioctl from the module's credentials, removed afterwards)."""
    version = istioctl_version(run_command, spec.istioctl)
    revisions = installed_revisions(cluster.list_objects("ConfigMap", label_selector=REV_LABEL))
    labels = {ns["metadata"]["name"]: ns["metadata"].get("labels") or {} for ns in cluster.list_objects("Namespace")}
    tenants = [serving(tenant, labels, revisions) for tenant in spec.tenants]
    wanted = sorted({t.get("revision") for t in tenants if t.get("revision") in revisions})
    findings = {}
    with _private_kubeconfig(cluster.kubeconfig()) as kubeconfig:
        for revision in wanted:
            namespace = revisions[revision]["namespace"]
            command = analyze_command(spec.istioctl, kubeconfig, revision, namespace, spec.suppress)
            findings[revision] = _run(run_command, command, revision, spec.timeout)
    report = tenants_report(tenants, revisions, findings, spec.fail_level)
    return {"istio_version": version, "server": cluster.host, **report}


def _run(run_command, command: list, revision: str, timeout: int) -> list:
    rc, out, err, stopped = bounded_run(run_command, command, timeout)
    if stopped:
        raise EngineError(
            f"istioctl analyze --revision {revision} gave no answer within {timeout} s. It waits for every read it "
            "is refused: bind the ClusterRole meshops-istio-viewer or meshops-istio-installer (both grant the list "
            "and watch the analyzers need, see docs/rbac.md), or raise analysis_timeout on a large cluster"
        )
    if rc != 0:
        first = next((line.strip() for line in (err or out).splitlines() if line.strip()), f"exit code {rc}")
        raise EngineError(f"istioctl analyze --revision {revision} failed: {first.removeprefix('Error:').strip()}")
    try:
        return parse_findings(out)
    except ValueError as error:
        raise Refusal(
            f"istioctl analyze --revision {revision} printed no findings list ({error}); check that istioctl_path "
            "is an istioctl of Istio 1.22 or later"
        ) from error


def bounded_run(run_command, command: list, timeout: float) -> tuple:
    """(rc, stdout, stderr, stopped) of `command` run by `run_command` (AnsibleModule.run_command), killed after
    `timeout` seconds (then stopped is True). istioctl analyze waits without end for a read it is refused (its
    informers retry a forbidden list, and its --timeout flag is not wired), and run_command has no timeout."""
    timers, killed = [], []

    def kill(process):
        killed.append(True)
        process.kill()

    def kill_later(process):
        timer = threading.Timer(timeout, kill, [process])
        timer.daemon = True
        timer.start()
        timers.append(timer)

    try:
        rc, out, err = run_command(command, before_communicate_callback=kill_later)
    finally:
        for timer in timers:
            timer.cancel()
    return rc, out, err, bool(killed)


@contextlib.contextmanager
def _private_kubeconfig(config: dict):
    """The path of a kubeconfig file only this user can read (mkstemp creates it 0600), deleted afterwards."""
    handle, path = tempfile.mkstemp(prefix="meshops-kubeconfig-", suffix=".yaml")
    try:
        with os.fdopen(handle, "w") as file:
            yaml.safe_dump(config, file)
        yield path
    finally:
        os.unlink(path)
