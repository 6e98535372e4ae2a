"""The isolation report as CI and a person see it: verify.yml on a healthy and a broken seed 002 install writes JUnit
(valid against the strict Ant JUnit schema), JSON and HTML; the HTML opens in headless Chromium with no console
error and marks the broken tenant. Screenshots and the reports are kept under tests/output/isolation-report/.

The cluster is this module's own (one local cluster); the broken install is the healthy one with namespace app-ns-1
relabelled to the other tenant's revision."""

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from browser import Page, chromium_binary
from kubernetes import client
from localcluster.cluster import REPO_ROOT
from playbook import SEED_002, failures, playbook, run_task

SCHEMA = xmlschema.XMLSchema(str(REPO_ROOT / "tests" / "junit.xsd"))
ARTIFACTS = REPO_ROOT / "tests" / "output" / "isolation-report"
NAMESPACE_INVARIANTS = 7  # per tenant namespace: exists, tenant label, selection, injector, mTLS, policies, access
SEED_002_NAMESPACES = 3  # usergroup-1: app-ns-1; usergroup-2: app-ns-2, app-ns-3

needs_chromium = pytest.mark.skipif(
    chromium_binary() is None, reason="Debian's chromium package is missing (.ci/run installs it)"
)


def _reports(directory: Path) -> dict:
    extensions = {"junit": "junit.xml", "json": "json", "html": "html"}
    files = {kind: directory / f"isolation.{ext}" for kind, ext in extensions.items()}
    assert all(path.is_file() for path in files.values()), sorted(p.name for p in directory.iterdir())
    SCHEMA.validate(str(files["junit"]))
    return files


def _keep(files: dict, label: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for path in files.values():
        shutil.copy(path, ARTIFACTS / f"{label}-{path.name}")


def _failed_cases(junit: Path) -> dict:
    root = ET.parse(junit).getroot()
    return {
        (case.get("classname"), case.get("name")): case.find("failure").get("message")
        for case in root.iter("testcase")
        if case.find("failure") is not None
    }


@pytest.fixture(scope="module")
def seed_002(cluster, binaries):
    playbook(cluster, "multitenant.yml", *SEED_002, "-e", f"istioctl_path={binaries / 'istioctl'}")
    return cluster


@pytest.fixture(scope="module")
def healthy(seed_002, binaries, tmp_path_factory) -> dict:
    directory = tmp_path_factory.mktemp("healthy")
    playbook(seed_002, "verify.yml", *SEED_002, "-e", f"istioctl_path={binaries / 'istioctl'}",
             "-e", f"verify_report_dir={directory}")  # fmt: skip
    files = _reports(directory)
    _keep(files, "healthy")
    return files


@pytest.fixture(scope="module")
def broken(seed_002, healthy, binaries, tmp_path_factory) -> tuple:
    """verify.yml's exit code, output and files after app-ns-1 was relabelled to usergroup-2; the label is restored."""
    directory = tmp_path_factory.mktemp("broken")
    core = client.CoreV1Api(seed_002.api_client())
    core.patch_namespace("app-ns-1", {"metadata": {"labels": {"istio.io/rev": "usergroup-2"}}})
    try:
        code, output = playbook(seed_002, "verify.yml", *SEED_002, "-e", f"istioctl_path={binaries / 'istioctl'}",
                                "-e", f"verify_report_dir={directory}", check=False)  # fmt: skip
    finally:
        core.patch_namespace("app-ns-1", {"metadata": {"labels": {"istio.io/rev": "usergroup-1"}}})
    files = _reports(directory)
    _keep(files, "broken")
    return code, output, files


def test_healthy_install_passes_every_case(healthy):
    root = ET.parse(healthy["junit"]).getroot()
    cases = list(root.iter("testcase"))
    assert _failed_cases(healthy["junit"]) == {}
    assert len([c for c in cases if c.get("classname").endswith((".usergroup-1", ".usergroup-2"))]) == (
        NAMESPACE_INVARIANTS * SEED_002_NAMESPACES
    )
    document = json.loads(healthy["json"].read_text())
    assert document["passed"] and document["tests"] == len(cases)
    [cluster] = document["clusters"]
    planes = {p["revision"]: sorted(n["name"] for n in p["namespaces"]) for p in cluster["control_planes"]}
    assert planes == {"usergroup-1": ["app-ns-1"], "usergroup-2": ["app-ns-2", "app-ns-3"]}


def test_broken_install_fails_the_play_and_the_one_case_with_the_reason(broken):
    code, output, files = broken
    assert code != 0
    assert "namespace app-ns-1 carries istio.io/rev=usergroup-2" in failures(output)[0]
    failed = _failed_cases(files["junit"])
    assert [name for (_classname, name) in failed] == ["app-ns-1: selected by exactly its revision"]
    [(classname, _name)] = failed
    assert classname.endswith(".usergroup-1")
    assert "is selected by revisions usergroup-1; expected usergroup-2 alone" in next(iter(failed.values()))
    tenants = {t["name"]: t["broken"] for t in json.loads(files["json"].read_text())["clusters"][0]["tenants"]}
    assert tenants == {"usergroup-1": True, "usergroup-2": False}


def _tenant_rows(page: Page) -> dict:
    return page.evaluate(
        "Object.fromEntries([...document.querySelectorAll('tr.tenant')].map("
        "row => [row.dataset.tenant, row.classList.contains('broken')]))"
    )


@needs_chromium
def test_healthy_report_opens_without_console_errors_and_marks_no_tenant(healthy):
    with Page(healthy["html"]) as page:
        assert page.console_errors() == []
        assert _tenant_rows(page) == {"usergroup-1": False, "usergroup-2": False}
        assert page.evaluate("document.getElementById('summary').textContent").startswith("All ")
        page.screenshot(ARTIFACTS / "healthy.png")


@needs_chromium
def test_broken_report_opens_without_console_errors_and_marks_the_broken_tenant(broken):
    files = broken[2]
    with Page(files["html"]) as page:
        assert page.console_errors() == []
        assert _tenant_rows(page) == {"usergroup-1": True, "usergroup-2": False}
        marked = page.evaluate(
            "[...document.querySelectorAll('.namespace.broken')].map(n => n.dataset.namespace + '/' + n.dataset.tenant)"
        )
        assert marked == ["app-ns-1/usergroup-1"]
        assert page.evaluate("getComputedStyle(document.querySelector('tr.tenant.broken td')).backgroundColor") != (
            page.evaluate("getComputedStyle(document.querySelector('tr.tenant.isolated td')).backgroundColor")
        )
        assert (page.screenshot(ARTIFACTS / "broken.png")).stat().st_size > 0


@needs_chromium
def test_the_browser_check_sees_console_errors(tmp_path):
    """What the two tests above rely on: a page that loads from the network or runs script fails the check."""
    page_file = tmp_path / "loads.html"
    page_file.write_text(
        "<!DOCTYPE html><html><head><meta http-equiv='Content-Security-Policy' content=\"default-src 'none'\">"
        "</head><body><img src='http://192.0.2.1/logo.png'><script>console.error('x')</script></body></html>"
    )
    with Page(page_file) as page:
        errors = page.console_errors()
    assert len(errors) == 2 and all("Content Security Policy" in e for e in errors)


FACTS = {
    "server": "https://192.0.2.1:6443",
    "tenants": {"t1": {"namespaces": {"a": {"exists": False}}, "gateways": {}}},
    "invariants": {"no two revisions select the same namespace": []},
    "revisions": {},
    "problems": ["tenant t1: namespace a does not exist"],
}


def test_check_mode_writes_nothing_and_bad_input_is_refused_before_writing(tmp_path):
    dest = tmp_path / "reports"
    kubeconfig = tmp_path / "unused-kubeconfig"
    checked = run_task(kubeconfig, "meshops.istio.isolation_report", {"isolation": FACTS, "dest": str(dest)},
                       check=True, tmp_path=tmp_path)  # fmt: skip
    assert not checked.get("failed"), checked
    assert checked["changed"] and checked["files"]["html"] == str(dest / "isolation.html")
    assert (checked["tests"], checked["failures"]) == (2, 1)
    assert not dest.exists()

    refused = run_task(kubeconfig, "meshops.istio.isolation_report",
                       {"isolation": FACTS, "dest": str(dest), "traffic": [{"client": "a", "server": "b"}]},
                       tmp_path=tmp_path)  # fmt: skip
    assert refused["failed"] and refused["msg"] == (
        "traffic[0] lacks expected, observed; give each cell client, server, expected, observed"
    )
    both = run_task(kubeconfig, "meshops.istio.isolation_report",
                    {"isolation": FACTS, "multicluster": {"c1": {}}, "dest": str(dest)}, tmp_path=tmp_path)  # fmt: skip
    assert both["failed"] and "mutually exclusive: isolation|multicluster" in both["msg"]
    outside = run_task(kubeconfig, "meshops.istio.isolation_report",
                       {"isolation": FACTS, "dest": str(dest), "name": "../escape"}, tmp_path=tmp_path)  # fmt: skip
    assert outside["failed"] and outside["msg"].startswith("name '../escape' must be a plain file name")
    assert not dest.exists()

    written = run_task(kubeconfig, "meshops.istio.isolation_report",
                       {"isolation": FACTS, "dest": str(dest), "name": "nightly"}, tmp_path=tmp_path)  # fmt: skip
    assert sorted(p.name for p in dest.iterdir()) == ["nightly.html", "nightly.json", "nightly.junit.xml"]
    assert written["files"]["junit"] == str(dest / "nightly.junit.xml")
    SCHEMA.validate(str(dest / "nightly.junit.xml"))
