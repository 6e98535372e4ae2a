"""One measured command: wall and CPU time, the API requests the server counted while it ran, and the peak resident
memory of its whole process tree (ansible-playbook forks a worker per task and a Python per module run; pages the
processes share are counted in each, so the sum is an upper bound)."""

import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from localcluster.cluster import BACKGROUND_RESOURCES, BACKGROUND_SUBRESOURCES, server_request_counts

from .report import request_summary

SAMPLE_SECONDS = 0.1
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class CommandFailed(RuntimeError):
    pass


@dataclass
class Command:
    label: str  # names the log file
    argv: list
    env: dict
    clusters: list  # localcluster Clusters: their API servers count the requests, and spend CPU time on them
    log_dir: Path
    cwd: Path


def _process_table() -> dict:
    """{pid: (parent pid, resident bytes)} for every process readable in /proc."""
    table = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:  # exited between listing and reading
            continue
        # Fields after the parenthesised command name: state, ppid, ... rss is the 22nd of them.
        fields = stat.rpartition(")")[2].split()
        table[int(entry.name)] = (int(fields[1]), int(fields[21]) * PAGE_SIZE)
    return table


def tree_rss(root: int, table: dict) -> int:
    """Resident bytes of `root` and all its descendants in a _process_table()."""
    children = {}
    for pid, (parent, _rss) in table.items():
        children.setdefault(parent, []).append(pid)
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        if pid in table:
            total += table[pid][1]
        pending.extend(children.get(pid, ()))
    return total


class _PeakSampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            self.peak = max(self.peak, tree_rss(self.pid, _process_table()))
            self.done.wait(SAMPLE_SECONDS)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a running process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# Resources and subresources only the cluster's controllers and admission plugins touch (the collection writes none,
# see plugins/module_utils/kinds.py, nor does kubernetes.core.k8s here): Deployments' ReplicaSets, Services'
# endpoints and IPs, CRD groups' APIServices, LimitRanger's lookups, the scheduler's bindings, and HPAs reading and
# setting a Deployment's scale every 15 s, which would otherwise land in whichever run is going on.
CONTROLLER_RESOURCES = frozenset(
    {"replicasets", "endpoints", "endpointslices", "ipaddresses", "apiservices", "limitranges", "resourcequotas"}
)
CONTROLLER_SUBRESOURCES = frozenset({"scale", "binding"})


def _background(key: tuple) -> bool:
    _verb, resource, subresource = key
    return (
        resource in BACKGROUND_RESOURCES | CONTROLLER_RESOURCES
        or subresource in BACKGROUND_SUBRESOURCES | CONTROLLER_SUBRESOURCES
    )


def request_delta(before: dict, after: dict) -> dict:
    """{(verb, resource, subresource): count} between two server_request_counts() snapshots, without the cluster's
    own heartbeats, status updates and controller work."""
    return {
        key: int(count - before.get(key, 0))
        for key, count in after.items()
        if count > before.get(key, 0) and not _background(key)
    }


def run_measured(command: Command) -> dict:
    """Run `command` to completion and return its figures; raises CommandFailed on a non-zero exit.

    CPU seconds (of the command's process tree, and of the API server) are less sensitive than wall time to other
    work sharing the machine."""
    command.log_dir.mkdir(parents=True, exist_ok=True)
    stdout_path = command.log_dir / f"{command.label}.out"
    stderr_path = command.log_dir / f"{command.label}.err"
    before = [server_request_counts(cluster.kubeconfig) for cluster in command.clusters]
    apiserver_before = sum(cpu_seconds(cluster.pids["kube-apiserver"]) for cluster in command.clusters)
    started = time.monotonic()
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(command.argv, cwd=command.cwd, env=command.env, stdout=stdout, stderr=stderr)
        sampler = _PeakSampler(process.pid)
        sampler.start()
        # wait4's usage covers the process and every descendant it waited for: the whole tree's CPU time.
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        sampler.done.set()
        sampler.join()
    wall = time.monotonic() - started
    apiserver_cpu = sum(cpu_seconds(cluster.pids["kube-apiserver"]) for cluster in command.clusters) - apiserver_before
    delta = {}
    for cluster, counts in zip(command.clusters, before, strict=True):
        for key, count in request_delta(counts, server_request_counts(cluster.kubeconfig)).items():
            delta[key] = delta.get(key, 0) + count
    if process.returncode != 0:
        raise CommandFailed(f"{command.label} exited {process.returncode}; see {stdout_path} and {stderr_path}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "apiserver_cpu_s": round(apiserver_cpu, 2),
        "peak_rss_mb": round(sampler.peak / 2**20, 1),
        **request_summary(delta),
        **_ansible_summary(stdout_path),
    }


def _seconds(duration: dict) -> float:
    start, end = (datetime.fromisoformat(duration[key]) for key in ("start", "end"))
    return (end - start).total_seconds()


def _ansible_summary(stdout_path: Path) -> dict:
    """From the json callback's output of an ansible-playbook run: the `changed` count, and where the time went,
    as seconds and task count per module (what is left of the wall time is Ansible's own start and bookkeeping).
    Empty for other commands."""
    try:
        output = json.loads(stdout_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    by_action = {}
    for play in output["plays"]:
        for task in play["tasks"]:
            for host in task["hosts"].values():
                seconds, count = by_action.get(host["action"], (0.0, 0))
                by_action[host["action"]] = (seconds + _seconds(task["task"]["duration"]), count + 1)
    ranked = sorted(by_action.items(), key=lambda item: -item[1][0])
    return {
        "changed": sum(host["changed"] for host in output["stats"].values()),
        "time_by_module": {action: {"seconds": round(s, 2), "tasks": n} for action, (s, n) in ranked},
    }
