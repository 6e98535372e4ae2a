"""Run the repository's playbooks, or one module task, through a real ansible-playbook (the json callback's view)."""

import json
import os
import subprocess
from pathlib import Path

import yaml
from localcluster.cluster import REPO_ROOT

# The example inventories (one cluster, localhost, and its tenants), as the tests pass them.
SEED_002 = ("-i", "examples/seed-002")
SEED_000 = ("-i", "examples/seed-000")

ANSIBLE_ENV = {
    **os.environ,
    "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
    "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
}


def playbook(cluster, name, *extra, check=True):
    """(exit code, json output) of `ansible-playbook playbooks/<name> *extra`; with `check`, a failure fails the test
    with the failed tasks' messages."""
    env = {**ANSIBLE_ENV, "K8S_AUTH_KUBECONFIG": str(cluster.kubeconfig)}
    result = subprocess.run(
        ["ansible-playbook", f"playbooks/{name}", *extra],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    output = json.loads(result.stdout)
    if check:
        assert result.returncode == 0, failures(output)
    return result.returncode, output


def failures(output) -> list:
    """The messages of the failed tasks."""
    return [
        host.get("msg")
        for play in output["plays"]
        for task in play["tasks"]
        for host in task["hosts"].values()
        if host.get("failed")
    ]


def changed_count(output) -> int:
    return output["stats"]["localhost"]["changed"]


def changed_tasks(output) -> list:
    """(task name, its objects or result items) of every task that reported a change: readable when a re-run is
    expected to change nothing."""
    return [
        (task["task"]["name"], host.get("objects") or [r.get("item") for r in host.get("results", [])])
        for play in output["plays"]
        for task in play["tasks"]
        for host in task["hosts"].values()
        if host.get("changed")
    ]


def run_task(kubeconfig: Path, module: str, args: dict, check: bool = False, diff: bool = False, tmp_path=None):
    task = {"name": "under test", module: args, "check_mode": check, "diff": diff}
    return run_tasks(kubeconfig, [task], tmp_path)[0]


def run_tasks(kubeconfig: Path, tasks: list, tmp_path=None) -> list:
    """Each task's result, in order, from one ansible-playbook run; a failing task does not stop the others."""
    tasks = [{"ignore_errors": True, **task} for task in tasks]
    play = [{"name": "test", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    playbook = Path(tmp_path or "/tmp") / f"play-{os.getpid()}-{abs(hash(json.dumps(tasks, sort_keys=True)))}.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = {**ANSIBLE_ENV, "ANSIBLE_CALLBACK_RESULT_FORMAT": "json", "K8S_AUTH_KUBECONFIG": str(kubeconfig)}
    command = ["ansible-playbook", str(playbook)]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=1200, check=False
    )
    try:
        output = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"ansible-playbook printed no JSON:\n{completed.stdout}\n{completed.stderr}") from error
    return [task["hosts"]["localhost"] for task in output["plays"][0]["tasks"]]


def run_verbose(kubeconfig: Path, tasks: list, tmp_path: Path) -> subprocess.CompletedProcess:
    """ansible-playbook -vvv with the default callback, diff on: everything a CI log would keep."""
    play = [{"name": "verbose", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    playbook = tmp_path / "verbose.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "K8S_AUTH_KUBECONFIG": str(kubeconfig),
        "ANSIBLE_FORCE_COLOR": "0",
    }
    return subprocess.run(
        ["ansible-playbook", "-vvv", "--diff", str(playbook)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
