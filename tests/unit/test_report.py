"""The isolation report built from the *_info modules' facts: the document, JUnit XML against the strict Ant JUnit
schema, and the HTML page rendered from the shipped template. Pure: facts come from analyze() on listed objects."""

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import xmlschema
from ansible_collections.meshops.istio.plugins.module_utils import report
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.isolation import analyze, desired_policies

REPO = Path(__file__).resolve().parents[2]
SCHEMA = xmlschema.XMLSchema(str(REPO / "tests" / "junit.xsd"))
TEMPLATE = (REPO / "roles" / "verify_report" / "templates" / "isolation_report.html.j2").read_text()
GENERATED = "2026-12-04T14:30:00Z"
REVISIONS = ("usergroup-1", "usergroup-2")
TENANTS = [{"name": "usergroup-1", "namespaces": ["app-ns-1"]}, {"name": "usergroup-2", "namespaces": ["app-ns-2"]}]
TRAFFIC = [
    {"client": "app-ns-1", "server": "app-ns-1", "expected": "200", "observed": "200"},
    {"client": "app-ns-1", "server": "app-ns-2", "expected": "503", "observed": "200"},
    {"client": "app-ns-2", "server": "app-ns-2", "expected": 200, "observed": "200"},
]


def _injector(revision):
    return {
        "metadata": {"name": f"istio-sidecar-injector-{revision}", "labels": {"istio.io/rev": revision}},
        "webhooks": [{"name": "rev.namespace.sidecar-injector.istio.io", "namespaceSelector": {"matchExpressions": [
            {"key": "istio.io/rev", "operator": "In", "values": [revision]},
            {"key": "istio-injection", "operator": "DoesNotExist"}]}}],
    }  # fmt: skip


def _facts(relabel_app_ns_1=False):
    namespaces = {
        "app-ns-1": {"istio.io/rev": "usergroup-1", "meshops.io/tenant": "usergroup-1", "usergroup": "usergroup-1"},
        "app-ns-2": {"istio.io/rev": "usergroup-2", "meshops.io/tenant": "usergroup-2", "usergroup": "usergroup-2"},
    }
    if relabel_app_ns_1:
        namespaces["app-ns-1"]["istio.io/rev"] = "usergroup-2"
    state = {
        "namespaces": namespaces,
        "revisions": {r: {"namespace": r, "selectors": [{"matchLabels": {"usergroup": r}}]} for r in REVISIONS},
        "webhooks": [_injector("usergroup-1"), _injector("usergroup-2")],
        "policies": {**desired_policies(TENANTS[0], "usergroup-1"), **desired_policies(TENANTS[1], "usergroup-2")},
        "gateways": [{"metadata": {"name": "ingress", "namespace": "app-ns-2", "generation": 1},
                      "spec": {"replicas": 1}, "status": {"observedGeneration": 1, "availableReplicas": 1,
                                                          "updatedReplicas": 1, "replicas": 1}}],
        "cacerts": {},
    }  # fmt: skip
    return {"server": "https://127.0.0.1:6443", **analyze(TENANTS, state)}


def _junit(document):
    text = report.junit_xml(document, "controller")
    SCHEMA.validate(text)
    return ET.fromstring(text)


def _case(document, classname, name):
    [found] = [c for c in document["cases"] if c["classname"] == classname and c["name"] == name]
    return found


def test_healthy_tenants_pass_one_case_per_invariant_per_namespace():
    document = report.isolation_document(_facts(), "demo", [], GENERATED)
    assert document["passed"] and document["failures"] == 0 and document["problems"] == []
    names = sorted(c["name"] for c in document["cases"] if c["classname"] == "demo.usergroup-1")
    assert names == sorted(
        f"app-ns-1: {i}"
        for i in ("namespace exists", "labelled for its tenant", "selected by exactly its revision",
                  "exactly one injector", "mTLS as desired", "isolation policies in place",
                  "no wildcard or broad access")
    )  # fmt: skip
    assert _case(document, "demo.usergroup-2", "gateway app-ns-2/ingress Ready")["failure"] is None
    assert _case(document, "demo.cluster", "no two revisions select the same namespace")["failure"] is None
    assert [t["broken"] for t in document["clusters"][0]["tenants"]] == [False, False]
    planes = {p["revision"]: [n["name"] for n in p["namespaces"]] for p in document["clusters"][0]["control_planes"]}
    assert planes == {"usergroup-1": ["app-ns-1"], "usergroup-2": ["app-ns-2"]}


def test_a_relabelled_namespace_fails_its_case_and_marks_its_tenant():
    document = report.isolation_document(_facts(relabel_app_ns_1=True), "demo", [], GENERATED)
    failed = [(c["classname"], c["name"]) for c in document["cases"] if c["failure"]]
    assert failed == [("demo.usergroup-1", "app-ns-1: selected by exactly its revision")]
    case = _case(document, "demo.usergroup-1", "app-ns-1: selected by exactly its revision")
    assert "app-ns-1 carries istio.io/rev=usergroup-2 but is selected by revisions usergroup-1" in case["failure"]
    assert {t["name"]: t["broken"] for t in document["clusters"][0]["tenants"]} == {
        "usergroup-1": True,
        "usergroup-2": False,
    }
    # The map shows the namespace where its label put it: under the other tenant's control plane.
    planes = {p["revision"]: [n["name"] for n in p["namespaces"]] for p in document["clusters"][0]["control_planes"]}
    assert planes == {"usergroup-1": [], "usergroup-2": ["app-ns-1", "app-ns-2"]}


def test_junit_is_valid_ant_junit_with_the_failure_message():
    root = _junit(report.isolation_document(_facts(relabel_app_ns_1=True), "demo", TRAFFIC, GENERATED))
    suites = {s.get("name"): s for s in root.findall("testsuite")}
    assert sorted(suites) == ["demo", "traffic"]
    assert (suites["demo"].get("tests"), suites["demo"].get("failures")) == ("16", "1")
    assert suites["demo"].get("timestamp") == "2026-12-04T14:30:00"
    [failure] = suites["demo"].iter("failure")
    assert "is selected by revisions usergroup-1; expected usergroup-2 alone" in failure.get("message")
    assert suites["traffic"].get("failures") == "1"


def test_the_schema_rejects_what_ci_systems_would_not_read():
    text = report.junit_xml(report.isolation_document(_facts(), "demo", [], GENERATED), "controller")
    SCHEMA.validate(text)
    for broken in (
        text.replace(' classname="demo.usergroup-1"', "", 1),  # a test case without its class
        text.replace('timestamp="2026-12-04T14:30:00"', 'timestamp="2026-12-04T14:30:00Z"', 1),  # a time zone
        text.replace("<system-out />", "", 1),  # Ant's order: properties, cases, system-out, system-err
    ):
        assert broken != text
        assert not SCHEMA.is_valid(broken)


def test_traffic_matrix_every_client_by_every_server():
    matrix = report.traffic_matrix(TRAFFIC)
    assert matrix["servers"] == ["app-ns-1", "app-ns-2"] and matrix["breaches"] == 1
    rows = {r["client"]: r["cells"] for r in matrix["rows"]}
    assert rows["app-ns-1"][1] == {"expected": "503", "observed": "200", "ok": False}
    assert rows["app-ns-2"][0] is None  # nobody probed app-ns-2 -> app-ns-1
    assert rows["app-ns-2"][1]["ok"]  # 200 given as a number equals "200"
    cases = report.traffic_cases(TRAFFIC)
    assert [c["failure"] for c in cases] == [None, "app-ns-1 -> app-ns-2: expected 503, observed 200", None]


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ("app-ns-1", "traffic must be a list"),
        ([TRAFFIC[0], {"client": "a", "server": "b", "expected": "200"}], "traffic[1] lacks observed"),
        ([["a", "b"]], "traffic[0] lacks client, server, expected, observed"),
    ],
)
def test_bad_traffic_names_the_cell_and_the_fix(cells, message):
    with pytest.raises(Refusal, match=re.escape(message)):
        report.validate_traffic(cells)


def test_wrong_facts_are_refused_with_the_option_name():
    with pytest.raises(Refusal, match="isolation must be the registered result"):
        report.isolation_document({"problems": []}, None, [], GENERATED)
    with pytest.raises(Refusal, match="multicluster must map each inventory host"):
        report.multicluster_document([], [], GENERATED)


def test_html_marks_the_broken_tenant_shows_the_matrix_and_escapes_facts():
    facts = _facts(relabel_app_ns_1=True)
    facts["problems"].append("namespace <script>alert(1)</script>")
    html = report.render_html(report.isolation_document(facts, "demo", TRAFFIC, GENERATED), TEMPLATE)
    assert '<tr class="tenant broken" data-tenant="usergroup-1">' in html
    assert '<tr class="tenant isolated" data-tenant="usergroup-2">' in html
    assert '<div class="namespace broken" data-namespace="app-ns-1" data-tenant="usergroup-1">' in html
    assert '<td class="breach">200 (503) <span class="badge bad">UNEXPECTED</span></td>' in html
    assert '<td class="unprobed">not probed</td>' in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "http://" not in html and "https://" not in html.replace("https://127.0.0.1:6443", "")


def test_multicluster_document_has_a_case_per_cluster_invariant_and_fails_unread_clusters():
    good = {
        "cluster": {"name": "cluster1", "network": "network1",
                    "cacerts": {"intermediate": {"subject": "L=cluster1,CN=Intermediate CA,O=Istio",
                                                 "not_after": "2028-12-04T00:00:00+00:00"},
                                "roots": ["AA"], "problem": None,
                                "root_certificates": [{"subject": "CN=Root CA,O=Istio",
                                                       "not_after": "2036-12-01T00:00:00+00:00"}]}},
        "remote_secrets": {"cluster2": {"exists": True, "secret": "istio-remote-secret-cluster2",
                                        "user": "system:serviceaccount:istio-system:reader"}},
        "invariants": {"shares the root, with its own intermediate": [], "carries its network": [],
                       "remote secret for cluster2 accepted": [],
                       "no remote secret for a cluster outside the mesh": []},
        "problems": [],
    }  # fmt: skip
    failed = {"failed": True, "msg": "The API server at https://127.0.0.1:1 is unreachable"}
    document = report.multicluster_document({"cluster1": good, "cluster2": failed}, [], GENERATED)
    assert [(c["classname"], c["name"], c["failure"] is None) for c in document["cases"]] == [
        ("cluster1.cluster", "facts read", True),
        ("cluster1.cluster", "shares the root, with its own intermediate", True),
        ("cluster1.cluster", "carries its network", True),
        ("cluster1.cluster", "remote secret for cluster2 accepted", True),
        ("cluster1.cluster", "no remote secret for a cluster outside the mesh", True),
        ("cluster2.cluster", "facts read", False),
    ]
    assert "unreachable" in document["problems"][0]
    _junit(document)
    html = report.render_html(document, TEMPLATE)
    assert "intermediate: L=cluster1,CN=Intermediate CA,O=Istio, expires 2028-12-04" in html
    assert "root: CN=Root CA,O=Istio, expires 2036-12-01" in html
    assert 'data-remote="cluster2"' in html and "accepted</span> as system:serviceaccount:istio-system:reader" in html
