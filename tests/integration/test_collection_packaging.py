"""The collection builds into a tarball that installs and is found by FQCN, shipping only what it should."""

import json
import os
import subprocess
import tarfile

import yaml
from localcluster.cluster import REPO_ROOT


def _run(*args):
    return subprocess.run(args, capture_output=True, text=True, check=True, timeout=300)


def test_tarball_installs_and_ships_only_the_collection(tmp_path):
    version = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"]
    _run("ansible-galaxy", "collection", "build", "--output-path", str(tmp_path), str(REPO_ROOT))
    tarball = tmp_path / f"meshops-istio-{version}.tar.gz"
    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    assert not [n for n in names if n.startswith(("tests/localcluster", "hack", ".ci", "molecule", ".venv"))]

    collections = tmp_path / "collections"
    # --force: the clone itself is on the configured collections path, which would count as installed.
    _run("ansible-galaxy", "collection", "install", "--force", "--no-deps", "-p", str(collections), str(tarball))
    listed = _run("ansible-galaxy", "collection", "list", "meshops.istio", "--format", "json", "-p", str(collections))
    found = {name: info for path in json.loads(listed.stdout).values() for name, info in path.items()}
    assert found["meshops.istio"]["version"] == version

    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections)}
    listed = subprocess.run(["ansible-doc", "-l", "meshops.istio", "--json"], env=env, capture_output=True,
                            text=True, check=True, timeout=120)  # fmt: skip
    modules = set(json.loads(listed.stdout))
    shipped = {f"meshops.istio.{p.stem}" for p in (REPO_ROOT / "plugins" / "modules").glob("*.py")}
    assert shipped and modules == shipped

    # The playbooks run by FQCN from the installed collection, outside the clone: with no tenants anywhere, the run
    # stops at once and says where to put them; the example inventories ship with it.
    assert (collections / "ansible_collections/meshops/istio/examples/seed-002/hosts.yml").is_file()
    env["ANSIBLE_CONFIG"] = str(tmp_path / "none.cfg")  # not the clone's ansible.cfg
    command = ["ansible-playbook", "meshops.istio.multitenant", "-i", "localhost,", "-c", "local",
               "-e", "meshops_hosts=localhost"]  # fmt: skip
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0 and "No tenants for localhost: describe them as `tenants:`" in run.stdout, run.stdout
    doc = subprocess.run(["ansible-doc", "-t", "filter", "meshops.istio.tenancy_plan"], env=env, capture_output=True,
                         text=True, check=True, timeout=120)  # fmt: skip
    assert "unknown or misspelled key" in doc.stdout
