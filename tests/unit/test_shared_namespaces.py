"""Shared namespaces: the plan's keys and errors, and the one overlap the guards allow (pure logic, no cluster)."""

import base64
import datetime

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.meshops.istio.plugins.filter.tenancy_plan import tenancy_plan
from ansible_collections.meshops.istio.plugins.module_utils import pki
from ansible_collections.meshops.istio.plugins.module_utils.isolation import analyze, desired_policies
from ansible_collections.meshops.istio.plugins.module_utils.revision import refusals as revision_refusals
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import RevisionSpec
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC
from ansible_collections.meshops.istio.plugins.module_utils.shared_root import (
    Roots,
    planned_roots,
    root_id,
    sharing_problem,
)
from ansible_collections.meshops.istio.plugins.module_utils.tenant import refusals as tenant_refusals
from ansible_collections.meshops.istio.plugins.module_utils.tenant_spec import TenantSpec
from ansible_collections.meshops.istio.plugins.modules.istio_revision import ARGUMENT_SPEC as REVISION_SPEC
from ansible_collections.meshops.istio.plugins.modules.istio_tenant import ARGUMENT_SPEC as TENANT_SPEC

NOW = datetime.datetime(2026, 9, 1, tzinfo=datetime.timezone.utc)
NAME = "kubernetes.io/metadata.name"
TENANTS = [
    {"name": "team-a", "namespaces": ["a-app", "platform"], "ca": True, "ca_root": "corp"},
    {"name": "team-b", "namespaces": ["b-app"], "ca": True, "ca_root": "corp", "shared_namespaces": ["platform"]},
]


def _error(tenants) -> str:
    with pytest.raises(AnsibleFilterError) as raised:
        tenancy_plan(tenants)
    return str(raised.value)


# The plan


def test_a_shared_namespace_adds_a_name_selector_and_the_root_to_the_plan():
    plan = tenancy_plan(TENANTS)
    assert plan["control_planes"][1]["discovery_selectors"] == [
        {"matchLabels": {"meshops.io/tenant": "team-b"}},
        {"matchExpressions": [{"key": NAME, "operator": "In", "values": ["platform"]}]},
    ]
    assert plan["control_planes"][0]["discovery_selectors"] == [{"matchLabels": {"meshops.io/tenant": "team-a"}}]
    assert [ca["root"] for ca in plan["cas"]] == ["corp", "corp"]
    assert [p["ca_root"] for p in plan["planned_revisions"]] == ["corp", "corp"]
    # The namespace stays its owner's: injected by team-a's revision, onboarded with team-a only.
    assert plan["tenants"][0]["namespaces"] == ["a-app", "platform"] and plan["tenants"][0]["revision"] == "team-a"
    assert plan["tenants"][1]["namespaces"] == ["b-app"]
    assert plan["summary"][1]["shared_namespaces"] == ["platform"]


def test_the_root_defaults_to_the_tenant_name_and_a_tenant_without_ca_has_none():
    plan = tenancy_plan([{"name": "x", "namespaces": ["x"], "ca": True}, {"name": "y", "namespaces": ["y"]}])
    assert plan["cas"] == [{"tenant": "x", "namespace": "x", "revision": "x", "root": "x"}]
    assert "ca_root" not in plan["planned_revisions"][1] and plan["planned_revisions"][0]["ca_root"] == "x"


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"shared_namespaces": ["nowhere"]}, "tenants[1] (team-b): shared_namespaces[0] nowhere is no tenant's"),
        ({"shared_namespaces": ["b-app"]}, "shared_namespaces[0] b-app is one of the tenant's own namespaces"),
        (
            {"ca_root": "other"},
            "tenants team-b and team-a do not share a root: give both ca: true and the same ca_root",
        ),
        ({"ca": False}, "do not share a root: give both ca: true and the same ca_root"),
        ({"own_trust_bundle": False}, "remove own_trust_bundle: false from both"),
        ({"shared_namespaces": "platform"}, "shared_namespaces must be a list of other tenants' namespace names"),
        ({"shared_namespaces": ["Bad_Name"]}, "shared_namespaces[0] 'Bad_Name' must be a DNS-1123 label"),
    ],
)
def test_bad_sharing_fails_naming_the_tenant_the_key_and_the_fix(change, expected):
    tenants = [TENANTS[0], {**TENANTS[1], **change}]
    if change.get("ca") is False:
        del tenants[1]["ca_root"]
    assert expected in _error(tenants)


def test_ca_root_needs_ca_and_both_keys_belong_to_the_dedicated_model():
    assert "tenants[0] (x): ca_root names the root of the tenant's own CA; set ca: true" in _error(
        [{"name": "x", "namespaces": ["x"], "ca_root": "corp"}]
    )
    with pytest.raises(AnsibleFilterError, match="shared_namespaces applies to the dedicated model only"):
        tenancy_plan([{"name": "x", "namespaces": ["x"], "shared_namespaces": []}], "shared")


def test_only_returns_the_part_of_the_plan_of_the_tenants_named_after_checking_all():
    plan = tenancy_plan(TENANTS, None, None, only=["team-b"])
    assert [cp["name"] for cp in plan["control_planes"]] == ["team-b"]
    assert [p["name"] for p in plan["planned_revisions"]] == ["team-b"]
    assert [ca["tenant"] for ca in plan["cas"]] == ["team-b"] and [s["tenant"] for s in plan["summary"]] == ["team-b"]
    with pytest.raises(AnsibleFilterError, match="do not share a root"):
        tenancy_plan([TENANTS[0], {**TENANTS[1], "ca_root": "x"}], None, None, only=["team-a"])


# The rule


def _root_files(certificate) -> dict:
    return {"root-cert.pem": pki.certificate_pem(certificate), "ca-key.pem": b"never read"}


ROOT, OTHER_ROOT = pki.generate_root("ecdsa", NOW)[0], pki.generate_root("ecdsa", NOW)[0]
REVISIONS = {
    "team-a": {"namespace": "team-a", "selectors": [{"matchLabels": {"meshops.io/tenant": "team-a"}}]},
    "team-b": {
        "namespace": "team-b",
        "selectors": [
            {"matchLabels": {"meshops.io/tenant": "team-b"}},
            {"matchExpressions": [{"key": NAME, "operator": "In", "values": ["platform"]}]},
        ],
    },
}
PLATFORM = {NAME: "platform", "meshops.io/tenant": "team-a", "istio.io/rev": "team-a"}
SAME = {"team-a": root_id(_root_files(ROOT)), "team-b": root_id(_root_files(ROOT))}


def test_a_root_is_known_by_its_fingerprints_only():
    assert root_id(_root_files(ROOT)) == pki.fingerprint(ROOT)
    assert root_id({"ca.crt": pki.certificate_pem(ROOT)}) == pki.fingerprint(ROOT)
    assert root_id({"ca-key.pem": b"x"}) is None and root_id({"root-cert.pem": b"not a certificate"}) is None


def test_two_control_planes_may_share_a_namespace_only_with_one_root_and_one_of_them_injecting():
    assert sharing_problem(REVISIONS, "team-a", "team-b", PLATFORM, SAME) is None
    differ = {"team-a": SAME["team-a"], "team-b": root_id(_root_files(OTHER_ROOT))}
    assert "cacerts of team-a and team-b hold different roots" in sharing_problem(
        REVISIONS, "team-a", "team-b", PLATFORM, differ
    )
    assert "no cacerts root in the system namespace of team-b (team-b)" in sharing_problem(
        REVISIONS, "team-a", "team-b", PLATFORM, {"team-a": SAME["team-a"]}
    )
    for rev in (None, "team-c"):
        labels = {**PLATFORM, "istio.io/rev": rev} if rev else {NAME: "platform"}
        assert "names a revision of neither" in sharing_problem(REVISIONS, "team-a", "team-b", labels, SAME)


class _Secrets:
    """A cluster that holds `cacerts` Secrets and counts the reads."""

    def __init__(self, secrets):
        self.secrets, self.reads = secrets, []

    def get(self, kind, name, namespace=None):
        self.reads.append((kind, name, namespace))
        return self.secrets.get(namespace)


def test_roots_read_each_cacerts_once_and_a_planned_root_answers_first():
    encoded = {k: base64.b64encode(v).decode() for k, v in _root_files(ROOT).items()}
    cluster = _Secrets({"team-a": {"data": encoded}})
    roots = Roots(cluster, planned_roots([{"name": "team-b", "namespace": "team-b", "ca_root": "corp"}]))
    assert [roots.get("team-a"), roots.get("team-a"), roots.get("team-b"), roots.get("x")] == [
        pki.fingerprint(ROOT), pki.fingerprint(ROOT), "ca_root corp", None
    ]  # fmt: skip
    assert cluster.reads == [("Secret", "cacerts", "team-a"), ("Secret", "cacerts", "x")]


def _revision(**overrides):
    given = {"name": "team-b", "namespace": "team-b", "discovery_selectors": REVISIONS["team-b"]["selectors"]}
    defaults = {key: option.get("default") for key, option in {**COMMON_ARG_SPEC, **REVISION_SPEC}.items()}
    return RevisionSpec.from_params(defaults | given | overrides)


def test_istio_revision_allows_a_shared_namespace_and_refuses_it_without_one_root():
    others = {"team-a": REVISIONS["team-a"]}
    namespaces = {"platform": PLATFORM, "a-app": {NAME: "a-app", "meshops.io/tenant": "team-a"}}
    assert revision_refusals(_revision(), others, namespaces, SAME) == []
    [problem] = revision_refusals(_revision(), others, namespaces, {})
    assert "overlap with revision team-a: both select namespaces platform (no cacerts root" in problem
    assert "give both control planes cacerts of one root (tenancy_plan: ca: true and the same ca_root)" in problem
    # Only the shared namespace: team-a's other namespaces (and this revision's own, labelled for both) stay out.
    wider = _revision(discovery_selectors=[*REVISIONS["team-b"]["selectors"], {"matchLabels": {"meshops.io/tenant":
                                                                                               "team-a"}}])  # fmt: skip
    [problem] = revision_refusals(wider, others, namespaces, SAME)
    assert "both select namespaces a-app, team-b (its istio.io/rev=None names a revision of neither)" in problem


def _tenant(**overrides):
    given = {"name": "team-a", "revision": "team-a", "namespaces": ["platform"],
             "discovery_label": {"meshops.io/tenant": "team-a"}, **overrides}  # fmt: skip
    defaults = {key: option.get("default") for key, option in {**COMMON_ARG_SPEC, **TENANT_SPEC}.items()}
    return TenantSpec.from_params(defaults | given)


def test_istio_tenant_onboards_a_shared_namespace_even_before_it_exists():
    spec = _tenant(create_namespaces=True)
    assert tenant_refusals(spec, REVISIONS, {}, roots=SAME) == []
    [problem] = tenant_refusals(spec, REVISIONS, {}, roots={})
    assert "revision team-b would select it too" in problem and "not as a shared namespace (no cacerts root" in problem


def _state(roots):
    tenants = [{"name": "team-a", "namespaces": ["platform"]}, {"name": "team-b", "namespaces": ["b-app"]}]
    return tenants, {
        "namespaces": {
            "platform": PLATFORM,
            "b-app": {NAME: "b-app", "meshops.io/tenant": "team-b", "istio.io/rev": "team-b"},
        },  # fmt: skip
        "revisions": REVISIONS,
        "webhooks": [],
        "policies": {**desired_policies(tenants[0], "team-a"), **desired_policies(tenants[1], "team-b")},
        "gateways": [],
        "cacerts": {ns: _root_files(root) for ns, root in roots.items()},
    }


def test_verify_reports_a_shared_namespace_as_a_fact_and_its_problems():
    tenants, state = _state({"team-a": ROOT, "team-b": ROOT})
    report = analyze(tenants, state, NOW)
    assert report["shared_namespaces"] == {
        "platform": {
            "selected_by": ["team-a", "team-b"],
            "root": pki.fingerprint(ROOT),
            "injected_by": "team-a",
            "problem": None,
        }
    }
    assert report["invariants"]["no two revisions select the same namespace"] == []
    assert report["tenants"]["team-a"]["namespaces"]["platform"]["invariants"]["selected by exactly its revision"] == []

    tenants, state = _state({"team-a": ROOT, "team-b": OTHER_ROOT})
    report = analyze(tenants, state, NOW)
    assert report["shared_namespaces"]["platform"]["root"] is None
    assert report["invariants"]["no two revisions select the same namespace"] == [
        "revisions team-a and team-b both select namespaces platform and may not share them: the cacerts of team-a "
        "and team-b hold different roots"
    ]
    assert any("selected by revisions team-a, team-b" in p for p in report["problems"])

    tenants, state = _state({"team-a": ROOT, "team-b": ROOT})
    state["namespaces"]["platform"] = {NAME: "platform", "meshops.io/tenant": "team-a", "istio.io/rev": "gone"}
    report = analyze(tenants, state, NOW)
    assert report["shared_namespaces"]["platform"]["injected_by"] is None
    assert "names a revision of neither" in report["shared_namespaces"]["platform"]["problem"]
