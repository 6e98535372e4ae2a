"""What a user of the released collection relies on, checked from the files: the execution environment ships the
istioctl and Python packages the surveys and requirements name, the action group lists every module, every module
documents its requirements, the declared floor is the one make test runs, and bindep names what the roles run."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted((ROOT / "plugins" / "modules").glob("*.py"))


def _yaml(path: Path):
    return yaml.safe_load(path.read_text())


def _pins(path: Path) -> dict:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {name.lower(): version for name, version in (line.split("==") for line in lines if "==" in line)}


def _ranges(path: Path) -> dict:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {name.lower(): minimum for name, minimum in (line.split(">=") for line in lines if ">=" in line)}


def _version(text: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])


def _module_doc(path: Path) -> dict:
    return yaml.safe_load(re.search(r'DOCUMENTATION = r"""(.*?)"""', path.read_text(), re.S).group(1))


def test_execution_environment_pins_every_python_requirement_at_what_make_test_runs():
    ee_pins, dev_pins = _pins(ROOT / "requirements-ee.txt"), _pins(ROOT / "requirements-dev.txt")
    ranges = _ranges(ROOT / "requirements.txt")
    assert ee_pins.keys() == ranges.keys()
    for name, version in ee_pins.items():
        assert dev_pins[name] == version, (
            f"{name}: the execution environment pins {version}, make test {dev_pins[name]}"
        )
        assert _version(version) >= _version(ranges[name])


def test_execution_environment_ships_the_istioctl_role_default_release_checked_by_its_checksum():
    defaults = _yaml(ROOT / "roles" / "istioctl" / "defaults" / "main.yml")
    steps = "\n".join(_yaml(ROOT / "execution-environment.yml")["additional_build_steps"]["append_final"])
    version, url, sha256 = (defaults[f"istioctl_default_{k}"] for k in ("version", "url", "sha256"))
    assert re.fullmatch(r"[0-9a-f]{64}", sha256)
    assert f"/{version}/istioctl-{version}-linux-amd64.tar.gz" in url
    assert f"ARG ISTIOCTL_URL={url}\n" in steps + "\n" and f"ARG ISTIOCTL_SHA256={sha256}\n" in steps + "\n"
    assert "sha256sum -c -" in steps and "/usr/local/bin/istioctl version" in steps


@pytest.mark.parametrize("survey", ["multitenant", "upgrade"])
def test_survey_defaults_are_what_the_execution_environment_ships(survey):
    defaults = _yaml(ROOT / "roles" / "istioctl" / "defaults" / "main.yml")
    questions = {
        q["variable"]: q for q in json.loads((ROOT / "docs" / "awx" / f"{survey}-survey.json").read_text())["spec"]
    }
    assert questions["istioctl_path"]["default"] == "/usr/local/bin/istioctl"
    if "istio_version" in questions:
        assert questions["istio_version"]["default"] == defaults["istioctl_default_version"]


def _talks_to_a_cluster(module: Path) -> bool:
    return "kubernetes.core.k8s_auth_options" in _module_doc(module).get("extends_documentation_fragment", [])


def test_the_action_group_holds_every_module_that_talks_to_a_cluster():
    runtime = _yaml(ROOT / "meta" / "runtime.yml")
    assert sorted(runtime["action_groups"]["all"]) == [path.stem for path in MODULES if _talks_to_a_cluster(path)]


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.stem)
def test_every_module_documents_the_declared_floor(module):
    floor = _yaml(ROOT / "meta" / "runtime.yml")["requires_ansible"].removeprefix(">=")
    python = _yaml(ROOT / "tests" / "config.yml")["modules"]["python_requires"].removeprefix(">=")
    requirements = _module_doc(module)["requirements"]
    assert f"ansible-core {floor.rsplit('.', 1)[0]} or later, on Python {python} or later" in requirements[0]
    if _talks_to_a_cluster(module):
        assert any(line.startswith("kubernetes (Python)") for line in requirements)


def test_make_test_runs_the_declared_floor():
    floor = _yaml(ROOT / "meta" / "runtime.yml")["requires_ansible"].removeprefix(">=")
    python = _yaml(ROOT / "tests" / "config.yml")["modules"]["python_requires"].removeprefix(">=")
    assert _pins(ROOT / "requirements-floor.txt")["ansible-core"].startswith(floor.rsplit(".", 1)[0] + ".")
    script = (ROOT / "hack" / "floor.sh").read_text()
    assert f"python{python}" in script
    planned = subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "bash hack/floor.sh" in planned


def test_bindep_names_what_the_roles_run_and_nothing_else():
    packages = {line.split()[0] for line in (ROOT / "bindep.txt").read_text().splitlines() if line and line[0] != "#"}
    assert packages == {"tar", "gzip"}
    tasks = (ROOT / "roles" / "istioctl" / "tasks" / "main.yml").read_text()
    assert "ansible.builtin.unarchive" in tasks  # unarchive runs tar and gzip


def test_galaxy_metadata_has_no_placeholder_urls():
    galaxy = _yaml(ROOT / "galaxy.yml")
    for key in ("repository", "documentation", "homepage", "issues"):
        assert "example" not in str(galaxy.get(key) or "")
    assert {"ansible.cfg", "tests/conformance"} <= set(galaxy["build_ignore"])
