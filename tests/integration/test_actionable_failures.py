"""Failures users can act on. A missing istioctl: the istioctl role says which and how to point at one.
A control plane that cannot be scheduled: the control_plane role shows its wait going on in the job output and
fails naming the role variable to raise and the Pods' FailedScheduling events; the module, failing after it wrote,
reports changed and the objects it wrote. The local cluster's kube-scheduler finds no node matching istiod's
nodeSelector and records FailedScheduling, as a real one does."""

import json
import re
import subprocess

import pytest
import yaml
from localcluster.cluster import REPO_ROOT
from playbook import ANSIBLE_ENV, failures, run_task

NOWHERE = {"pilot": {"nodeSelector": {"meshops.io/no-such-node": "true"}}}


@pytest.fixture(scope="module")
def istioctl(binaries):
    return str(binaries / "istioctl")


def test_control_plane_role_shows_the_wait_and_names_the_variable_and_events(cluster, istioctl, tmp_path):
    role_vars = {
        "control_plane_name": "unschedulable-role",
        "control_plane_istioctl_path": istioctl,
        "control_plane_discovery_selectors": [{"matchLabels": {"meshops.io/tenant": "unschedulable-role"}}],
        "control_plane_values": NOWHERE,
        "control_plane_wait_timeout": 16,
    }
    task = {"name": "control plane", "ansible.builtin.include_role": {"name": "meshops.istio.control_plane"}}
    play = [
        {"name": "unschedulable", "hosts": "localhost", "gather_facts": False, "tasks": [{**task, "vars": role_vars}]}
    ]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    env = {
        **ANSIBLE_ENV,
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
        "K8S_AUTH_KUBECONFIG": str(cluster.kubeconfig),
    }
    result = subprocess.run(["ansible-playbook", str(path)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=600, check=False)  # fmt: skip
    output = result.stdout
    assert result.returncode != 0, output
    # The revision's objects were written, reported as a change, before the wait started.
    assert re.search(
        r"TASK \[meshops\.istio\.control_plane : Istio revision unschedulable-role\] \**\nchanged:", output
    )
    awaited = "Wait for istiod to be available: unschedulable-role/istiod-unschedulable-role, up to "
    retries = [line for line in output.splitlines() if line.startswith("FAILED - RETRYING: [localhost]: ")]
    assert retries and all(f"{awaited}control_plane_wait_timeout=16 s" in line for line in retries), output[-3000:]
    failure = output[output.index("Istiod did not roll out") :]
    assert len(retries) >= 2 and output.index("FAILED - RETRYING") < output.index("Istiod did not roll out")
    assert "raise control_plane_wait_timeout" in failure
    assert "istiod-unschedulable-role-" in failure and "FailedScheduling" in failure


def test_module_failing_after_writing_reports_changed_objects_and_events(cluster, istioctl, tmp_path):
    args = {
        "name": "unschedulable-module",
        "namespace": "unschedulable-module",
        "istioctl_path": istioctl,
        "discovery_selectors": [{"matchLabels": {"meshops.io/tenant": "unschedulable-module"}}],
        "values": NOWHERE,
        "wait_timeout": 20,
    }
    result = run_task(cluster.kubeconfig, "meshops.istio.istio_revision", args, tmp_path=tmp_path)
    assert result.get("failed"), json.dumps(result)[:2000]
    assert result["changed"] is True, result["msg"]
    written = {(o["kind"], o["name"]) for o in result["objects"]}
    assert ("Deployment", "istiod-unschedulable-module") in written and ("Namespace", "unschedulable-module") in written
    assert "Deployment unschedulable-module/istiod-unschedulable-module is not ready" in result["msg"]
    assert "FailedScheduling" in result["msg"] and "Raise wait_timeout" in result["msg"]


def istioctl_role_failure(tmp_path, istioctl_path: str, version: str) -> str:
    """The one failure message of the istioctl role given this binary and version."""
    play = [{"name": "istioctl", "hosts": "localhost", "gather_facts": False,
             "roles": [{"role": "meshops.istio.istioctl", "istioctl_path": istioctl_path,
                        "istioctl_version": version}]}]  # fmt: skip
    path = tmp_path / "istioctl.yml"
    path.write_text(yaml.safe_dump(play))
    result = subprocess.run(["ansible-playbook", str(path)], cwd=REPO_ROOT, env=ANSIBLE_ENV, capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode != 0
    [message] = failures(json.loads(result.stdout))
    return message


def test_istioctl_role_says_which_istioctl_is_missing_and_how_to_give_one(tmp_path):
    message = istioctl_role_failure(tmp_path, "/nonexistent/istioctl", "1.31.1")
    assert message.startswith("Cannot run istioctl /nonexistent/istioctl (")
    assert "set istioctl_path to the path of an istioctl binary of Istio 1.31.1" in message
    assert "istioctl_url and istioctl_sha256" in message


def test_istioctl_role_names_the_version_a_binary_renders_when_another_is_asked(istioctl, tmp_path):
    message = istioctl_role_failure(tmp_path, istioctl, "1.0.0")
    assert re.fullmatch(rf"{re.escape(istioctl)} reports 1\.\d+[-.\w]*, not istioctl_version 1\.0\.0", message), message
