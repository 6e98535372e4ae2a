"""python -m bench.profile: where the dedicated-model control-plane install spends its time, next to `istioctl
install` of the same specs (issue 8's profile for the target it misses). On fresh local clusters:

1. ansible-playbook bench/playbooks/control_plane.yml for dedicated-3x3's revisions (multitenant.yml's control-plane
   step: one istio_revision run for all of them, then one rollout wait): Ansible's start-up and the time of each
   task, from the json callback's timestamps;
2. the same revisions installed in-process by ensure_revision_present (the module's code without Ansible), each
   phase timed: istioctl (version and manifest generate), API reads, API writes, waits (CRD Established,
   Deployments rolled out) and the rest (building, comparing);
3. what starting a module costs: a Python with the imports istio_revision needs;
4. `istioctl install -y` of the same specs.
Figures, not assertions."""

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml
from ansible_collections.meshops.istio.plugins.module_utils import cluster, engine
from ansible_collections.meshops.istio.plugins.module_utils.client import configuration_for, create_api_client
from ansible_collections.meshops.istio.plugins.module_utils.revision_install import ensure_revision_present
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import RevisionSpec
from localcluster import binary_dir, start_cluster, stop_cluster
from localcluster.cluster import REPO_ROOT

from . import baselines
from .scenarios import by_name, playbook_vars

# The istio_revision task of playbooks/tasks/control-plane.yml.
REVISION_TASK = "Install or repair the control planes"

# Engine methods by phase; a phase called inside another (a GET inside a wait) is charged to the inner one only.
# (class, method) pairs timed as each phase.
PHASES = {
    "API reads": (("Cluster", "get"), ("Cluster", "list_objects")),
    "API writes": (("Engine", "_apply"), ("Engine", "_delete"), ("Engine", "remove_labels")),
    "waits": (("Engine", "_wait_established"), ("Engine", "wait_for_rollout")),
}
MODULE_IMPORTS = (
    "import ansible.module_utils.basic, kubernetes.dynamic, yaml; "
    "import ansible_collections.meshops.istio.plugins.module_utils.revision, "
    "ansible_collections.meshops.istio.plugins.module_utils.client"
)


class Clock:
    """Exclusive time per phase: entering a phase pauses the one it was called from."""

    def __init__(self):
        self.totals, self.stack, self.mark = {}, [], time.perf_counter()

    def charge(self):
        now = time.perf_counter()
        phase = self.stack[-1] if self.stack else "the rest"
        self.totals[phase] = self.totals.get(phase, 0.0) + now - self.mark
        self.mark = now

    @contextlib.contextmanager
    def phase(self, name: str):
        self.charge()
        self.stack.append(name)
        try:
            yield
        finally:
            self.charge()
            self.stack.pop()

    def wrap(self, name: str, function):
        def timed(*args, **kwargs):
            with self.phase(name):
                return function(*args, **kwargs)

        return timed


@contextlib.contextmanager
def timed_engine(clock: Clock):
    classes = {"Cluster": cluster.Cluster, "Engine": engine.Engine}
    originals = {pair: getattr(classes[pair[0]], pair[1]) for pairs in PHASES.values() for pair in pairs}
    for phase, pairs in PHASES.items():
        for owner, method in pairs:
            setattr(classes[owner], method, clock.wrap(phase, originals[owner, method]))
    try:
        yield
    finally:
        for (owner, method), original in originals.items():
            setattr(classes[owner], method, original)


def run_command(argv) -> tuple:
    completed = subprocess.run(argv, capture_output=True, text=True, check=False)
    return completed.returncode, completed.stdout, completed.stderr


def in_process(kubeconfig: Path, revisions: list) -> dict:
    clock = Clock()
    target = cluster.Cluster(create_api_client(configuration_for({"kubeconfig": str(kubeconfig)})))
    started = time.perf_counter()
    with timed_engine(clock):
        for revision in revisions:
            spec = RevisionSpec.from_params(revision)
            ensure_revision_present(target, clock.wrap("istioctl", run_command), spec, check_mode=False)
    clock.charge()
    return {"total": time.perf_counter() - started, **clock.totals}


def through_ansible(kubeconfig: Path, work: Path, revisions: list) -> dict:
    data = work / "revisions.json"
    data.write_text(json.dumps({"revisions": revisions}))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "K8S_AUTH_KUBECONFIG": str(kubeconfig),
    }
    argv = [
        str(Path(sys.executable).with_name("ansible-playbook")),
        str(REPO_ROOT / "bench" / "playbooks" / "control_plane.yml"),
        "-e", f"@{data}", "-e", f"istioctl_path={binary_dir() / 'istioctl'}",
    ]  # fmt: skip
    started = time.time()
    completed = subprocess.run(argv, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    ended = time.time()
    tasks = json.loads(completed.stdout)["plays"][0]["tasks"]
    spans = [(_stamp(t["task"]["duration"]["start"]), _stamp(t["task"]["duration"]["end"]), t) for t in tasks]
    modules = [end - start for start, end, task in spans if task["task"]["name"] == REVISION_TASK]
    return {
        "total": ended - started,
        "start-up (before the first task)": spans[0][0] - started,
        "istio_revision tasks": sum(modules),
        "per istio_revision task": sum(modules) / max(len(modules), 1),
        "other tasks and the end": ended - started - (spans[0][0] - started) - sum(modules),
    }


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def module_start_up() -> float:
    """Seconds for a Python to start with istio_revision's imports (what every module run pays before its work)."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / ".collections")}

    def once() -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", MODULE_IMPORTS], env=env, check=True)
        return time.perf_counter() - started

    return statistics.median(once() for attempt in range(3))


def istioctl_install(kubeconfig: Path, work: Path, revisions: list) -> float:
    started = time.perf_counter()
    for revision in revisions:
        spec = work / f"{revision['name']}-operator.yaml"
        spec.write_text(yaml.safe_dump(baselines.istio_operator(revision)))
        subprocess.run(
            [str(binary_dir() / "istioctl"), "install", "-y", "-f", str(spec)],
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            capture_output=True,
            check=True,
        )
    return time.perf_counter() - started


@contextlib.contextmanager
def fresh_cluster(work: Path, label: str):
    cluster = start_cluster("c1", work / label)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)


def main() -> int:
    [scenario] = by_name(["dedicated-3x3"])
    revisions = baselines.revisions(playbook_vars(scenario))
    for revision in revisions:  # the options every module has, at their defaults
        revision.update(istioctl_path=str(binary_dir() / "istioctl"), force_conflicts=False)
    with tempfile.TemporaryDirectory(prefix="meshops-profile-") as scratch:
        work = Path(scratch)
        with fresh_cluster(work, "ansible") as cluster:
            ansible = through_ansible(cluster.kubeconfig, work, revisions)
        with fresh_cluster(work, "in-process") as cluster:
            phases = in_process(cluster.kubeconfig, revisions)
        with fresh_cluster(work, "istioctl") as cluster:
            istioctl = istioctl_install(cluster.kubeconfig, work, revisions)
    start_up = module_start_up()
    print(f"Control planes of {scenario.name} ({len(revisions)} revisions), seconds:\n")
    print("| where | s |\n|---|---|")
    for what, seconds in ansible.items():
        print(f"| ansible-playbook: {what} | {seconds:.1f} |")
    for what, seconds in phases.items():
        print(f"| in-process ensure_revision_present: {what} | {seconds:.1f} |")
    print(f"| a module's Python start-up with its imports (median of 3) | {start_up:.2f} |")
    print(f"| istioctl install -y, {len(revisions)} times | {istioctl:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
