"""The collection builds into a tarball that ships what users need and no development files, installs, and runs
its playbooks by FQCN from a directory outside the source tree with a user's inventory; the execution
environment's build context is complete, and cannot be created without the tarball."""

import json
import os
import shutil
import subprocess
import tarfile

import pytest
import yaml
from kubernetes import client
from localcluster.cluster import REPO_ROOT
from playbook import failures

VERSION = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"]
TARBALL = f"meshops-istio-{VERSION}.tar.gz"
REQUIREMENTS = f"meshops-istio-{VERSION}.requirements.yml"  # hack/build.sh writes it beside the tarball


def _run(*args, **kwargs):
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=300, **kwargs)


def _site_collections() -> str:
    """Where the venv's ansible package keeps kubernetes.core and ansible.posix."""
    import ansible_collections.kubernetes.core as kubernetes_core

    return str(os.path.dirname(os.path.dirname(os.path.dirname(list(kubernetes_core.__path__)[0]))))


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    directory = tmp_path_factory.mktemp("build")
    built = _run("bash", str(REPO_ROOT / "hack" / "build.sh"), str(directory)).stdout.strip()
    assert built == str(directory / TARBALL)
    return directory / TARBALL


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    collections = tmp_path_factory.mktemp("collections")
    # --force: the clone itself is on the configured collections path, which would count as installed.
    _run("ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", str(collections), str(tarball))
    return collections


def test_tarball_ships_what_users_need_and_no_development_files(tarball):
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    for needed in ("MANIFEST.json", "meta/runtime.yml", "README.md", "requirements.txt", "requirements-ee.txt",
                   "bindep.txt", "execution-environment.yml", "docs/awx.md", "playbooks/multitenant.yml",
                   "playbooks/inventory/localhost.yml", "plugins/filter/tenancy_plan.py",
                   "examples/seed-002/hosts.yml", "examples/seed-000/group_vars/meshops_clusters.yml",
                   "roles/istioctl/tasks/main.yml",
                   "plugins/filter/rollout_problems.py", "CHANGELOG.rst", "changelogs/changelog.yaml",
                   # The report's action plugin reads its template from the role at run time.
                   "plugins/action/isolation_report.py",
                   "roles/verify_report/templates/isolation_report.html.j2",
                   # The RBAC a cluster admin binds before the first run.
                   "docs/rbac.md", "playbooks/rbac.yml", "roles/rbac/files/installer-clusterrole.yml",
                   "roles/rbac/files/viewer-clusterrole.yml",
                   "roles/rbac/templates/clusterrolebinding.yml.j2"):  # fmt: skip
        assert needed in names, needed
    development = ("ansible.cfg", "tests/localcluster", "tests/integration", "tests/unit", "tests/conformance",
                   "tests/workload_certs.py", "hack", "bench", ".ci", "molecule", ".venv", "changelogs/fragments",
                   "Makefile", "requirements-dev.txt", "requirements-floor.txt", "context", "isolation-report",
                   "tests/output")  # fmt: skip
    assert [n for n in names if n.startswith(development)] == []


def test_installed_tarball_is_found_by_fqcn(installed):
    listed = _run("ansible-galaxy", "collection", "list", "meshops.istio", "--format", "json", "-p", str(installed))
    found = {name: info for path in json.loads(listed.stdout).values() for name, info in path.items()}
    assert found["meshops.istio"]["version"] == VERSION

    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(installed)}
    listed = _run("ansible-doc", "-l", "meshops.istio", "--json", env=env)
    modules = set(json.loads(listed.stdout))
    shipped = {f"meshops.istio.{p.stem}" for p in (REPO_ROOT / "plugins" / "modules").glob("*.py")}
    assert shipped and modules == shipped
    for module in sorted(shipped):
        doc = json.loads(_run("ansible-doc", module, "--json", env=env).stdout)[module]["doc"]
        assert any(line.startswith("ansible-core 2.17") for line in doc["requirements"]), module
    doc = _run("ansible-doc", "-t", "filter", "meshops.istio.tenancy_plan", env=env)
    assert "unknown or misspelled key" in doc.stdout


def test_installed_playbook_without_tenants_says_where_to_put_them(installed, tmp_path):
    """By FQCN outside the clone, with no tenants anywhere: the run stops at once with the guidance message."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env |= {"ANSIBLE_COLLECTIONS_PATH": f"{installed}:{_site_collections()}", "ANSIBLE_CONFIG": str(tmp_path / "none")}
    command = ["ansible-playbook", "meshops.istio.multitenant", "-i", "localhost,", "-c", "local",
               "-e", "meshops_hosts=localhost"]  # fmt: skip
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0 and "No tenants for localhost: describe them as `tenants:`" in run.stdout, run.stdout


def test_installed_playbooks_run_by_fqcn_from_a_user_directory(installed, cluster, binaries, tmp_path):
    """multitenant and verify by FQCN, from a directory with only the user's inventory and tenants."""
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump({"meshops_clusters": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}))  # fmt: skip
    tenants = [{"name": "team-a", "discovery_label": {"team": "team-a"}, "namespaces": ["team-a-app"]}]
    (tmp_path / "tenants.yml").write_text(yaml.safe_dump({"tenants": tenants}))
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env |= {
        "ANSIBLE_COLLECTIONS_PATH": f"{installed}:{_site_collections()}",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "K8S_AUTH_KUBECONFIG": str(cluster.kubeconfig),
    }
    for playbook in ("meshops.istio.multitenant", "meshops.istio.verify"):
        result = subprocess.run(
            ["ansible-playbook", "-i", "inventory.yml", playbook, "-e", "@tenants.yml",
             "-e", f"istioctl_path={binaries / 'istioctl'}"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (
            playbook,
            failures(json.loads(result.stdout)) if result.stdout else result.stderr,
        )
    namespace = client.CoreV1Api(cluster.api_client()).read_namespace("team-a-app")
    assert namespace.metadata.labels["istio.io/rev"] == "team-a"


def _ee_directory(tmp_path, tarball=None):
    """The files execution-environment.yml names, beside it, as in a clone after make build."""
    for name in ("execution-environment.yml", "requirements-ee.txt", "bindep.txt"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    if tarball:
        shutil.copy(tarball, tmp_path / TARBALL)
        shutil.copy(tarball.parent / REQUIREMENTS, tmp_path / REQUIREMENTS)
    return tmp_path


def _create(directory):
    return subprocess.run(
        ["ansible-builder", "create", "--file", "execution-environment.yml", "--context", "context",
         "--output-filename", "Containerfile"],
        cwd=directory, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_execution_environment_build_context_is_complete(tarball, tmp_path):
    directory = _ee_directory(tmp_path, tarball)
    result = _create(directory)
    assert result.returncode == 0, result.stdout + result.stderr
    build = directory / "context" / "_build"
    assert (build / "collections" / TARBALL).read_bytes() == tarball.read_bytes()
    galaxy = yaml.safe_load((build / "requirements.yml").read_text())  # ansible-builder's name for the galaxy file
    assert galaxy["collections"] == [{"name": f"/build/collections/{TARBALL}", "type": "file"}]
    assert (build / "requirements.txt").read_text() == (REPO_ROOT / "requirements-ee.txt").read_text()
    assert (build / "bindep.txt").read_text() == (REPO_ROOT / "bindep.txt").read_text()
    containerfile = (directory / "context" / "Containerfile").read_text()
    defaults = yaml.safe_load((REPO_ROOT / "roles" / "istioctl" / "defaults" / "main.yml").read_text())
    assert f"ARG ISTIOCTL_SHA256={defaults['istioctl_default_sha256']}" in containerfile
    assert f"ARG ISTIOCTL_URL={defaults['istioctl_default_url']}" in containerfile
    assert "sha256sum -c -" in containerfile and "-C /usr/local/bin istioctl" in containerfile
    # Every file the Containerfile copies from the context is there.
    for line in containerfile.splitlines():
        if line.startswith(("COPY _build", "ADD _build")):
            source = line.split()[1]
            assert (directory / "context" / source).exists(), line


def test_execution_environment_context_cannot_be_created_without_the_tarball(tmp_path):
    directory = _ee_directory(tmp_path)
    result = _create(directory)
    assert result.returncode != 0
    assert f"{REQUIREMENTS} does not exist" in result.stdout + result.stderr
    assert not (directory / "context").exists()
