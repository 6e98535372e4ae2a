"""python -m bench [--quick] [--scenarios a,b] [--repeats N] [--baseline-a-limit N]

Runs each scenario on fresh local clusters (tests/localcluster), ours and its baselines side by side in every
repeat, prints a table of medians and writes the results (with versions and machine facts) to bench/results/.
The baselines' kubectl and helm are built on first use (hack/build-bench-binaries.sh)."""

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import yaml
from kubernetes import config
from localcluster import binary_dir, start_cluster, stop_cluster, wait_for_namespace_defaults
from localcluster.cluster import REPO_ROOT

from . import baselines, facts, report
from .measure import Command, CommandFailed, run_measured
from .scenarios import GROWTH_PAIRS, QUICK_SCENARIOS, SCENARIOS, by_name, playbook_vars, with_one_tenant_changed

RESULTS_DIR = REPO_ROOT / "bench" / "results"
BENCH_PLAYBOOKS = REPO_ROOT / "bench" / "playbooks"
MULTICLUSTER_PLAYBOOK = REPO_ROOT / "playbooks" / "multicluster.yml"
BASELINE_TOOLS_SCRIPT = REPO_ROOT / "hack" / "build-bench-binaries.sh"
# The field manager of baseline C's server-side applies (baseline B's is in its playbook).
KUBECTL_FIELD_MANAGER = "bench-baseline-c"
# Baseline A costs one module run (~0.6 s) per object: above this many objects it applies an evenly spread sample
# and scales its figures (see baselines.sample), so the default suite stays within about 40 minutes.
DEFAULT_BASELINE_A_LIMIT = 40
QUICK_BASELINE_A_LIMIT = 20
NOTE = (
    "Measured on local clusters (etcd, kube-apiserver, controllers, kwok fake kubelets) on the machine that runs "
    "the playbooks, whose CPUs may be shared with other work: compare ours and the baselines within one run (they "
    "alternate in every repeat) and prefer the CPU ratios, which other load disturbs less than wall times. "
    "Requests are the API server's own apiserver_request_total, without node heartbeats, leases, events, status "
    "updates and what only controllers touch (ReplicaSets, Pods, endpoints, scale); what controllers do for a new "
    "namespace (its default ServiceAccount and root CA ConfigMap) and their discovery GETs (about 20 a minute) "
    "count on both sides. Baseline A costs one module run per object: above "
    f"{DEFAULT_BASELINE_A_LIMIT} objects it applies an evenly spread sample (with the namespaces and CRDs the "
    "sample needs) and its figures are scaled to all objects. Baselines B (kubernetes.core.k8s, every object in one "
    "task), C (one kubectl apply --server-side) and D (helm upgrade --install of Istio's charts) apply everything; "
    "their no-op writes are server-side applies that change nothing, and Helm's new release Secret at every upgrade. "
    "Reviews (SelfSubjectReview and the access reviews, which the API server answers and never stores) are counted "
    "apart from writes: ours send one per run, for the guard's installer identity."
)


class Bench:
    """Shared by every scenario: the binaries, a scratch directory for clusters, vars and logs, the options."""

    def __init__(self, options, work: Path):
        self.options = options
        self.work = work
        self.istioctl = binary_dir() / "istioctl"
        self.ansible_playbook = str(Path(sys.executable).with_name("ansible-playbook"))
        self.tools = None if options.ours_only else baseline_tools()

    def path(self, *parts) -> Path:
        path = self.work.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @contextlib.contextmanager
    def fresh_cluster(self, label: str, name: str = "c1"):
        directory = self.path("clusters", label)
        cluster = start_cluster(name, directory)
        try:
            yield cluster
        finally:
            stop_cluster(cluster)
            shutil.rmtree(directory / "etcd", ignore_errors=True)

    def playbook(self, label: str, clusters: list, playbook: Path, *extra) -> dict:
        """ansible-playbook against the first of `clusters` (K8S_AUTH_KUBECONFIG) unless an inventory says more."""
        # No other callback (profile_tasks, say) may print into the json callback's output.
        inherited = {key: value for key, value in os.environ.items() if key != "ANSIBLE_CALLBACKS_ENABLED"}
        env = {
            **inherited,
            "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "K8S_AUTH_KUBECONFIG": str(clusters[0].kubeconfig),
            "PATH": f"{Path(self.ansible_playbook).parent}:{os.environ.get('PATH', '')}",
        }
        argv = [self.ansible_playbook, str(playbook), "-e", f"istioctl_path={self.istioctl}", *extra]
        return self.run(label, argv, env, clusters)

    def run(self, label: str, argv: list, env: dict, clusters: list) -> dict:
        figures = run_measured(Command(label, argv, env, clusters, self.path("logs"), REPO_ROOT))
        progress(
            f"  {label}: {figures['wall_s']:.1f} s ({figures['cpu_s']:.1f} s CPU), {figures['reads']} reads, "
            f"{figures['writes']} writes, {figures.get('reviews', 0)} reviews"
        )
        return figures

    def write_vars(self, name: str, variables: dict) -> str:
        path = self.path("vars", f"{name}.json")
        path.write_text(json.dumps(variables))
        return f"@{path}"

    def write_objects(self, name: str, objects: list, var: str = "objects_file") -> str:
        """An objects file baseline A's or B's playbook reads (through a lookup, so Ansible never templates the Go
        templates of Istio's injector ConfigMaps)."""
        path = self.write_private(f"{name}.json", json.dumps(objects))
        return f"{var}={path}"

    def write_manifests(self, name: str, objects: list) -> Path:
        """A multi-document YAML file for kubectl."""
        return self.write_private(f"{name}.yaml", yaml.safe_dump_all(objects))

    def write_private(self, name: str, text: str) -> Path:
        path = self.path("vars", name)
        path.write_text(text)
        path.chmod(0o600)  # the objects could hold Secrets
        return path

    def tool_env(self, cluster) -> dict:
        """kubectl's and helm's environment: the cluster's kubeconfig, Helm's cache and config in the scratch
        directory."""
        helm_home = self.path("helm")
        return {
            **os.environ,
            "KUBECONFIG": str(cluster.kubeconfig),
            "HELM_CACHE_HOME": str(helm_home / "cache"),
            "HELM_CONFIG_HOME": str(helm_home / "config"),
            "HELM_DATA_HOME": str(helm_home / "data"),
        }


def baseline_tools() -> Path:
    """The directory of kubectl, helm and Istio's charts for baselines C and D, built first when missing."""
    result = subprocess.run(["bash", str(BASELINE_TOOLS_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])


def progress(message: str):
    print(message, file=sys.stderr, flush=True)


def _repeats(scenario, options) -> int:
    return options.repeats or scenario.repeats


def ours_on_fresh_cluster(bench: Bench, scenario, repeat: int, runs: dict) -> tuple:
    """Converge, no-op re-run and one-tenant-changed re-run of multitenant.yml; returns the objects it left after
    the converge and after the change."""
    multitenant = REPO_ROOT / "playbooks" / "multitenant.yml"
    variables = playbook_vars(scenario)
    data = bench.write_vars(f"{scenario.name}", variables)
    changed = bench.write_vars(f"{scenario.name}-changed", with_one_tenant_changed(variables))
    no_wait = ("-e", "gateways_wait=false")  # no istiod answers the gateways' injector here
    with bench.fresh_cluster(f"{scenario.name}-{repeat}-ours") as cluster:
        label = f"{scenario.name}.{repeat}.ours"
        runs["converge"].append(bench.playbook(f"{label}.converge", [cluster], multitenant, "-e", data, *no_wait))
        objects = baselines.managed_objects(config.new_client_from_config(str(cluster.kubeconfig)))
        _settle_namespaces(cluster, objects)
        runs["noop"].append(bench.playbook(f"{label}.noop", [cluster], multitenant, "-e", data, *no_wait))
        runs["change"].append(bench.playbook(f"{label}.change", [cluster], multitenant, "-e", changed, *no_wait))
        changed_objects = baselines.managed_objects(config.new_client_from_config(str(cluster.kubeconfig)))
    return objects, changed_objects


def _settle_namespaces(cluster, objects: list):
    """Wait for the controllers' writes into the new namespaces, so the no-op run is not charged for them."""
    api = config.new_client_from_config(str(cluster.kubeconfig))
    for namespace in (o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"):
        wait_for_namespace_defaults(api, namespace)


def baseline_a(bench: Bench, scenario, repeat: int, objects: list, runs: dict) -> dict:
    chosen = baselines.sample(objects, bench.options.baseline_a_limit)
    data = bench.write_objects(f"{scenario.name}-objects", chosen)
    playbook = BENCH_PLAYBOOKS / "apply_each.yml"
    with bench.fresh_cluster(f"{scenario.name}-{repeat}-baseline-a") as cluster:
        label = f"{scenario.name}.{repeat}.baseline-a"
        runs["converge"].append(bench.playbook(f"{label}.converge", [cluster], playbook, "-e", data))
        _settle_namespaces(cluster, chosen)
        runs["noop"].append(bench.playbook(f"{label}.noop", [cluster], playbook, "-e", data))
    return {"objects": len(objects), "applied": len(chosen)}


def whole_set(bench: Bench, scenario, repeat: int, side: str, apply, objects: tuple, runs: dict):
    """A baseline that applies all the objects at once, on a fresh cluster: converge, no-op re-run, and the objects
    our one-tenant-changed run left. `apply(label, cluster, objects, fresh)` measures one run; `fresh`: on a cluster
    that has none of the objects yet."""
    converged, changed = objects
    name = side.replace("_", "-")
    with bench.fresh_cluster(f"{scenario.name}-{repeat}-{name}") as cluster:
        label = f"{scenario.name}.{repeat}.{name}"
        runs["converge"].append(apply(f"{label}.converge", cluster, converged, fresh=True))
        _settle_namespaces(cluster, converged)
        runs["noop"].append(apply(f"{label}.noop", cluster, converged, fresh=False))
        runs["change"].append(apply(f"{label}.change", cluster, changed, fresh=False))


def apply_with_k8s_task(bench: Bench, label: str, cluster, objects: list, fresh: bool) -> dict:
    """Baseline B: bench/playbooks/apply_all.yml, every object in one kubernetes.core.k8s task (the same playbook
    whether the cluster is `fresh` or not)."""
    crds, others = baselines.split_crds(objects)
    files = ("-e", bench.write_objects(f"{label}-crds", crds, "crds_file"), "-e", bench.write_objects(label, others))
    return bench.playbook(label, [cluster], BENCH_PLAYBOOKS / "apply_all.yml", *files)


def apply_with_kubectl(bench: Bench, label: str, cluster, objects: list, fresh: bool) -> dict:
    """Baseline C: one `kubectl apply --server-side` of every object. kubectl maps every object to its resource
    before it applies any, which fails for a custom resource whose CRD is not established ("ensure CRDs are
    installed first"): on a `fresh` cluster the CRDs come first, a wait for them, then the other objects."""
    kubectl = bench.tools / "kubectl"
    apply = f"'{kubectl}' apply --server-side --force-conflicts --field-manager={KUBECTL_FIELD_MANAGER}"
    crds, others = baselines.split_crds(objects)
    if not (crds and fresh):
        script = f"{apply} -f '{bench.write_manifests(label, objects)}'"
    else:
        crds_file = bench.write_manifests(f"{label}-crds", crds)
        wait = f"'{kubectl}' wait --for=condition=Established --timeout=60s -f '{crds_file}'"
        script = f"{apply} -f '{crds_file}' && {wait} && {apply} -f '{bench.write_manifests(label, others)}'"
    return bench.run(label, ["bash", "-ec", script], bench.tool_env(cluster), [cluster])


def control_planes(bench: Bench, scenario, repeat: int, runs: dict):
    """Our control-plane part alone (converge, no-op re-run), then `istioctl install -y` of the same specs, then
    (dedicated model) Helm's install and no-op upgrade of the same control planes, each on a fresh cluster."""
    revisions = baselines.revisions(playbook_vars(scenario))
    data = bench.write_vars(f"{scenario.name}-revisions", {"revisions": revisions})
    with bench.fresh_cluster(f"{scenario.name}-{repeat}-control-plane") as cluster:
        label = f"{scenario.name}.{repeat}.ours.control-plane"
        playbook = BENCH_PLAYBOOKS / "control_plane.yml"
        runs["ours"]["control_plane"].append(bench.playbook(label, [cluster], playbook, "-e", data))
        runs["ours"]["control_plane_noop"].append(bench.playbook(f"{label}.noop", [cluster], playbook, "-e", data))
    istioctl_install(bench, scenario, repeat, revisions, runs["istioctl"])
    if scenario.model == "dedicated":
        helm_install(bench, scenario, repeat, revisions, runs["baseline_d"])


def helm_install(bench: Bench, scenario, repeat: int, revisions: list, runs: dict):
    """Baseline D: `helm upgrade --install` of Istio's base chart once and its istiod chart per revision, with the
    values our revisions set, waiting for the resources like our role and istioctl do; then the same again."""
    helm, charts = bench.tools / "helm", bench.tools / "istio-charts"
    base_values = bench.path("vars", f"{scenario.name}-helm-base.yaml")
    base_values.write_text(yaml.safe_dump(baselines.helm_base_values(revisions)))
    upgrade = f"'{helm}' upgrade --install --wait=watcher --timeout=5m"
    commands = [f"{upgrade} istio-base '{charts / 'base'}' -n istio-system --create-namespace -f '{base_values}'"]
    for revision in revisions:
        values = bench.path("vars", f"{scenario.name}-{revision['name']}-helm-istiod.yaml")
        values.write_text(yaml.safe_dump(baselines.helm_istiod_values(revision)))
        commands.append(
            f"{upgrade} istiod-{revision['name']} '{charts / 'istiod'}' -n {revision['namespace']} "
            f"--create-namespace -f '{values}'"
        )
    script = " && ".join(commands)
    with bench.fresh_cluster(f"{scenario.name}-{repeat}-helm") as cluster:
        label = f"{scenario.name}.{repeat}.baseline-d"
        env = bench.tool_env(cluster)
        runs["converge"].append(bench.run(f"{label}.converge", ["bash", "-ec", script], env, [cluster]))
        runs["noop"].append(bench.run(f"{label}.noop", ["bash", "-ec", script], env, [cluster]))


def istioctl_install(bench: Bench, scenario, repeat: int, revisions: list, runs: dict):
    """`istioctl install -y -f` of the IstioOperator spec our istio_revision renders, once per revision."""
    specs = []
    for revision in revisions:
        spec = bench.path("vars", f"{scenario.name}-{revision['name']}-operator.yaml")
        spec.write_text(yaml.safe_dump(baselines.istio_operator(revision)))
        specs.append(spec)
    with bench.fresh_cluster(f"{scenario.name}-{repeat}-istioctl") as cluster:
        installs = " && ".join(f"'{bench.istioctl}' install -y -f '{spec}'" for spec in specs)
        env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
        runs["install"].append(
            bench.run(f"{scenario.name}.{repeat}.istioctl", ["bash", "-ec", installs], env, [cluster])
        )


def single_cluster_scenario(bench: Bench, scenario) -> dict:
    runs = {
        "ours": {"converge": [], "noop": [], "change": [], "control_plane": [], "control_plane_noop": []},
        "baseline_a": {"converge": [], "noop": []},
        "baseline_b": {"converge": [], "noop": [], "change": []},
        "baseline_c": {"converge": [], "noop": [], "change": []},
        "istioctl": {"install": []},
        "baseline_d": {"converge": [], "noop": []},
    }
    result = {"status": "measured", "size": {"tenants": scenario.tenants, "namespaces": scenario.namespaces}}
    repeats = _repeats(scenario, bench.options)
    sizes = None
    try:
        for repeat in range(1, repeats + 1):
            progress(f"[{scenario.name}] repeat {repeat}/{repeats}")
            objects = ours_on_fresh_cluster(bench, scenario, repeat, runs["ours"])
            if bench.options.ours_only:
                sizes = {"objects": len(objects[0]), "applied": len(objects[0])}
                continue
            sizes = baseline_a(bench, scenario, repeat, objects[0], runs["baseline_a"])
            for side, apply in (("baseline_b", apply_with_k8s_task), ("baseline_c", apply_with_kubectl)):
                whole_set(bench, scenario, repeat, side, partial(apply, bench), objects, runs[side])
            if scenario.control_plane or bench.options.full:
                control_planes(bench, scenario, repeat, runs)
    except CommandFailed as error:  # keep what was measured before it
        result["status"] = f"failed: {error}"
    medians = {side: {phase: report.median_of(r) for phase, r in phases.items() if r} for side, phases in runs.items()}
    if sizes:
        result["size"]["objects"] = sizes["objects"]
        result["baseline_a_applied"] = sizes["applied"]
        if sizes["applied"] < sizes["objects"]:
            factor = sizes["objects"] / sizes["applied"]
            medians["baseline_a"] = {
                phase: {**report.scaled(m, factor), "scaled_from_objects": sizes["applied"]}
                for phase, m in medians["baseline_a"].items()
            }
    return {**result, "medians": medians, "runs": runs}


def multicluster_inventory(kubeconfigs: list) -> dict:
    """playbooks/multicluster.yml's inventory for local clusters: multi-primary, a network each, no waiting for the
    east-west gateways (no istiod answers their injector here), API servers on loopback."""
    hosts = {
        f"cluster{index}": {
            "kubeconfig": str(kubeconfig),
            "cluster_name": f"cluster{index}",
            "network": f"network{index}",
            "role": "primary",
        }
        for index, kubeconfig in enumerate(kubeconfigs, start=1)
    }
    group_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "multicluster_topology": "multi-primary",
        "multicluster_allow_loopback": True,
        "multicluster_eastwest_wait": False,
    }
    return {"all": {"children": {"clusters": {"hosts": hosts, "vars": group_vars}}}}


def multicluster_scenario(bench: Bench, scenario) -> dict:
    """Converge, no-op re-run, and a rotation of every remote secret (the day-2 change of a mesh). No baseline: A
    would re-apply tokens and CA keys dumped from other clusters, which no user would do."""
    if not MULTICLUSTER_PLAYBOOK.exists():
        return {"status": f"skipped: {MULTICLUSTER_PLAYBOOK.relative_to(REPO_ROOT)} does not exist"}
    runs = {"ours": {"converge": [], "noop": [], "rotate": []}}
    result = {"status": "measured", "size": {"clusters": scenario.clusters, "namespaces": 0}}
    repeats = _repeats(scenario, bench.options)
    try:
        for repeat in range(1, repeats + 1):
            progress(f"[{scenario.name}] repeat {repeat}/{repeats}")
            with contextlib.ExitStack() as stack:
                clusters = [
                    stack.enter_context(bench.fresh_cluster(f"{scenario.name}-{repeat}-c{i}", f"c{i}"))
                    for i in range(1, scenario.clusters + 1)
                ]
                inventory = bench.path("vars", f"{scenario.name}-{repeat}-inventory.yml")
                inventory.write_text(yaml.safe_dump(multicluster_inventory([c.kubeconfig for c in clusters])))
                common = (
                    "-i", str(inventory),
                    "-e", f"multicluster_istioctl_path={bench.istioctl}",
                    "-e", f"multicluster_ca_root_dir={bench.path('pki', f'{scenario.name}-{repeat}')}",
                )  # fmt: skip
                label = f"{scenario.name}.{repeat}.ours"
                ours = runs["ours"]
                ours["converge"].append(bench.playbook(f"{label}.converge", clusters, MULTICLUSTER_PLAYBOOK, *common))
                ours["noop"].append(bench.playbook(f"{label}.noop", clusters, MULTICLUSTER_PLAYBOOK, *common))
                rotate = ("-e", "multicluster_rotate_remote_secrets=true")
                ours["rotate"].append(
                    bench.playbook(f"{label}.rotate", clusters, MULTICLUSTER_PLAYBOOK, *common, *rotate)
                )
    except CommandFailed as error:
        result["status"] = f"failed: {error}"
    medians = {"ours": {phase: report.median_of(r) for phase, r in runs["ours"].items() if r}}
    return {**result, "medians": medians, "runs": runs}


FLEET_FORKS = 4


def fleet_inventory(kubeconfigs: list, variables: dict) -> dict:
    """multitenant.yml's inventory for a fleet of local clusters: one host per cluster with its kubeconfig, the
    tenants in the group's vars."""
    hosts = {f"c{index}": {"kubeconfig": str(k)} for index, k in enumerate(kubeconfigs, start=1)}
    group_vars = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    return {"meshops_clusters": {"hosts": hosts, "vars": {**group_vars, **variables}}}


def fleet_scenario(bench: Bench, scenario) -> dict:
    """Converge and no-op re-run of multitenant.yml over `scenario.clusters` clusters in one run, forks >= 4."""
    runs = {"ours": {"converge": [], "noop": []}}
    result = {"status": "measured", "size": {"clusters": scenario.clusters, "namespaces": scenario.namespaces}}
    multitenant = REPO_ROOT / "playbooks" / "multitenant.yml"
    repeats = _repeats(scenario, bench.options)
    try:
        for repeat in range(1, repeats + 1):
            progress(f"[{scenario.name}] repeat {repeat}/{repeats}")
            with contextlib.ExitStack() as stack:
                clusters = [
                    stack.enter_context(bench.fresh_cluster(f"{scenario.name}-{repeat}-c{i}", f"c{i}"))
                    for i in range(1, scenario.clusters + 1)
                ]
                inventory = bench.path("vars", f"{scenario.name}-{repeat}-inventory.yml")
                variables = playbook_vars(scenario)
                inventory.write_text(yaml.safe_dump(fleet_inventory([c.kubeconfig for c in clusters], variables)))
                forks = str(max(FLEET_FORKS, scenario.clusters))
                common = ("-i", str(inventory), "-f", forks)
                label = f"{scenario.name}.{repeat}.ours"
                runs["ours"]["converge"].append(bench.playbook(f"{label}.converge", clusters, multitenant, *common))
                runs["ours"]["noop"].append(bench.playbook(f"{label}.noop", clusters, multitenant, *common))
    except CommandFailed as error:
        result["status"] = f"failed: {error}"
    medians = {"ours": {phase: report.median_of(r) for phase, r in runs["ours"].items() if r}}
    return {**result, "medians": medians, "runs": runs}


RUNNERS = {"multicluster": multicluster_scenario, "fleet": fleet_scenario}


def run_scenario(bench: Bench, scenario) -> dict:
    runner = RUNNERS.get(scenario.model, single_cluster_scenario)
    started = time.monotonic()
    result = runner(bench, scenario)
    result.update(name=scenario.name, model=scenario.model, duration_s=round(time.monotonic() - started, 1))
    if result["status"] != "measured":
        progress(f"[{scenario.name}] {result['status']}")
    return result


def write_results(results: dict, latest: bool) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = results["started"].replace(":", "").replace("-", "")
    markdown = report.markdown_summary(results, NOTE)
    written = RESULTS_DIR / f"{stamp}.json"
    written.write_text(json.dumps(results, indent=2) + "\n")
    written.with_suffix(".md").write_text(markdown)
    if latest:
        (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS_DIR / "latest.md").write_text(markdown)
    return written


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{', '.join(QUICK_SCENARIOS)} once, baseline A sampled (minutes)"
    )
    parser.add_argument("--scenarios", help=f"comma-separated, from {', '.join(s.name for s in SCENARIOS)}")
    parser.add_argument("--repeats", type=int, help="runs per scenario (default: each scenario's own)")
    parser.add_argument(
        "--baseline-a-limit",
        type=int,
        default=None,
        help="apply at most this many objects in baseline A and scale its figures to all (0: all objects)",
    )
    parser.add_argument(
        "--full", action="store_true", help="every phase in every scenario, baseline A on all objects (hours)"
    )
    parser.add_argument(
        "--ours-only", action="store_true", help="no baselines: our converge, no-op and change runs only (minutes)"
    )
    parser.add_argument("--keep-work", action="store_true", help="keep the scratch directory (logs, vars)")
    options = parser.parse_args(argv)
    # A whole suite (the default one or --quick's), not scenarios picked by hand: its results become latest.*.
    options.suite = not options.scenarios
    if options.quick:
        options.scenarios = options.scenarios or ",".join(QUICK_SCENARIOS)
        options.repeats = options.repeats or 1
        if options.baseline_a_limit is None:
            options.baseline_a_limit = QUICK_BASELINE_A_LIMIT
    if options.baseline_a_limit is None:
        options.baseline_a_limit = 0 if options.full else DEFAULT_BASELINE_A_LIMIT
    return options


def main(argv=None) -> int:
    options = parse_args(argv)
    try:
        selected = by_name(options.scenarios.split(",")) if options.scenarios else list(SCENARIOS)
    except ValueError as error:
        progress(f"--scenarios: {error}")
        return 2
    work = Path(tempfile.mkdtemp(prefix="meshops-bench-"))
    bench = Bench(options, work)
    results = {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": ["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])],
        "options": {
            "repeats": options.repeats,
            "baseline_a_limit": options.baseline_a_limit,
            "full": options.full,
            "ours_only": options.ours_only,
        },
        **facts.collect(bench.istioctl),
        "load_average_at_start": facts.load_average(),
        "note": NOTE,
        "scenarios": {},
    }
    started = time.monotonic()
    for scenario in selected:
        results["scenarios"][scenario.name] = run_scenario(bench, scenario)
    scenarios = results["scenarios"]
    results["growth"] = [
        report.growth(scenarios[small], scenarios[large])
        for small, large in GROWTH_PAIRS
        if scenarios.get(small, {}).get("status") == scenarios.get(large, {}).get("status") == "measured"
    ]
    results["targets"] = report.targets(scenarios)
    results["load_average_at_end"] = facts.load_average()
    results["duration_s"] = round(time.monotonic() - started, 1)
    # latest.* is the last run of the default suite or of --quick (its first line names the command).
    written = write_results(results, latest=options.suite)
    print(report.markdown_summary(results, NOTE))
    progress(f"results: {written}")
    failed = any(s["status"].startswith("failed") for s in scenarios.values())
    if options.keep_work or failed:
        progress(f"logs and vars kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0
