"""Run one module task through a real ansible-playbook and return its result (the json callback's view)."""

import json
import os
import subprocess
from pathlib import Path

import yaml
from localcluster.cluster import REPO_ROOT


def run_task(kubeconfig: Path, module: str, args: dict, check: bool = False, diff: bool = False, tmp_path=None):
    task = {"name": "under test", module: args, "check_mode": check, "diff": diff, "ignore_errors": True}
    play = [{"name": "test", "hosts": "localhost", "gather_facts": False, "tasks": [task]}]
    playbook = Path(tmp_path or "/tmp") / f"play-{os.getpid()}-{abs(hash(json.dumps(args, sort_keys=True)))}.yml"
    playbook.write_text(yaml.safe_dump(play))
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "K8S_AUTH_KUBECONFIG": str(kubeconfig),
    }
    command = ["ansible-playbook", str(playbook)]
    completed = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    try:
        output = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"ansible-playbook printed no JSON:\n{completed.stdout}\n{completed.stderr}") from error
    return output["plays"][0]["tasks"][0]["hosts"]["localhost"]
