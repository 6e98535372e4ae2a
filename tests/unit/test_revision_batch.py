"""istio_revision's batch form (option `revisions`): entries parsed and checked before the cluster is contacted, each
error named `revisions[<index>]`; against the recording fake client and a fake istioctl (a small rendering per
revision): reads that grow with the kinds, not with the revisions; an entry refused by the guards, or rejected by the
API server, set aside while the others converge; the run's earlier entries seen by the guards of the later ones."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster
from ansible_collections.meshops.istio.plugins.module_utils.errors import EntriesFailed, Refusal
from ansible_collections.meshops.istio.plugins.module_utils.revision_install import RevisionsRun
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import validate_revisions
from ansible_collections.meshops.istio.plugins.module_utils.runner import Rehearsal, rehearse_then_run
from ansible_collections.meshops.istio.plugins.modules.istio_revision import revision_entries
from test_engine import FakeClient, api_error
from test_revision import params

# An executable file (istioctl_version checks it is one); fake_istioctl answers in its stead.
ISTIOCTL = shutil.which("true")


def fake_istioctl(command: list) -> tuple:
    """(rc, out, err) of istioctl: version 1.31.1, and for `manifest generate` a small rendering of the revision in
    the IstioOperator file (a CRD, the mesh ConfigMap, istiod's ServiceAccount and Deployment, the shared reader)."""
    if command[1] == "version":
        return 0, "1.31.1\n", ""
    spec = json.loads(Path(command[-1]).read_text())["spec"]
    revision, namespace = spec["revision"], spec["values"]["global"]["istioNamespace"]
    mesh = yaml.safe_dump(spec.get("meshConfig") or {})

    def obj(api_version, kind, name, **rest):
        return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}, **rest}

    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "wasmplugins.extensions.istio.io", "labels": {"app.kubernetes.io/part-of": "istio"}},
        "spec": {"group": "extensions.istio.io", "names": {"kind": "WasmPlugin"}},
    }
    rendered = [
        crd,
        obj("v1", "ServiceAccount", "istio-reader-service-account"),
        obj("v1", "ServiceAccount", f"istiod-{revision}"),
        obj("v1", "ConfigMap", f"istio-{revision}", data={"mesh": mesh}),
        obj("apps/v1", "Deployment", f"istiod-{revision}", spec={"replicas": 1}),
    ]
    return 0, yaml.safe_dump_all(rendered), ""


def revision(number: int, **overrides):
    name = f"team-{number}"
    given = {"name": name, "namespace": name, "discovery_selectors": [{"matchLabels": {"usergroup": name}}]}
    return params(istioctl_path=ISTIOCTL, wait=False, render_cache=False, **{**given, **overrides})


def run(cluster: Cluster, specs: list, check_mode: bool = False) -> tuple:
    return rehearse_then_run(RevisionsRun(specs, fake_istioctl), cluster, [cluster], check_mode)


def installed(fake: FakeClient) -> set:
    return {name for (kind, _namespace, name) in fake.store if kind == "Deployment"}


# Parsing and validation, before the cluster is contacted


def module_with(entries: list):
    """What revision_entries reads of AnsibleModule: its params, and fail_json (raising here)."""

    def fail_json(msg):
        raise Refusal(msg)

    run = {"istioctl_path": ISTIOCTL, "wait": False, "wait_timeout": 30, "render_cache": False,
           "render_cache_dir": None, "planned_revisions": [], "force_conflicts": False}  # fmt: skip
    return SimpleNamespace(params={**run, "revisions": entries}, fail_json=fail_json)


def test_entries_take_the_per_revision_options_with_their_defaults_and_the_runs_options():
    specs = revision_entries(
        module_with([{"name": "a", "namespace": "a"}, {"name": "b", "namespace": "b", "force": True}])
    )
    assert [(s.name, s.state, s.profile, s.force, s.istioctl_path, s.wait) for s in specs] == [
        ("a", "present", "minimal", False, ISTIOCTL, False),
        ("b", "present", "minimal", True, ISTIOCTL, False),
    ]


def test_an_unknown_or_mistyped_option_of_an_entry_is_named_by_its_index():
    with pytest.raises(Refusal) as refused:
        revision_entries(module_with([{"name": "a", "namespace": "a", "wait": True}, {"name": "b", "force": "maybe"}]))
    message = str(refused.value)
    assert "revisions[0]: unsupported option wait" in message  # a run option, not an entry's
    assert "revisions[1]: missing required arguments: namespace" in message
    assert "revisions[1]: argument 'force' is of type" in message


def test_bad_entries_are_refused_together_each_option_named():
    specs = [revision(1, name="Team_1"), revision(2), revision(3, pilot_env={"1BAD": "x"}), revision(4, name="team-2")]
    with pytest.raises(Refusal) as refused:
        validate_revisions(specs)
    message = str(refused.value)
    assert "revisions[0].name 'Team_1' must be a DNS-1123 label" in message
    assert "revisions[2].pilot_env key '1BAD' is not an environment variable name" in message
    assert "revisions[3].name: revision team-2 is revisions[1] too; list it once" in message
    assert "revisions[1]." not in message


def test_one_tag_in_two_entries_is_refused():
    with pytest.raises(Refusal, match=r"revisions\[1\]\.revision_tags: tag prod is also revisions\[0\]'s"):
        validate_revisions([revision(1, revision_tags=["prod"]), revision(2, revision_tags=["prod"])])


# Against the fake cluster


@pytest.mark.parametrize("count", [3, 9])
def test_a_no_op_rerun_reads_the_same_lists_whatever_the_number_of_revisions(count):
    fake = FakeClient()
    cluster = Cluster(fake)
    specs = [revision(number) for number in range(count)]
    result = run(cluster, specs)[0]
    assert result["changed"] is True and installed(fake) == {f"istiod-team-{n}" for n in range(count)}
    assert [r["name"] for r in result["revisions"]] == [s.name for s in specs]
    fake.calls.clear()
    again = run(cluster, specs)[0]
    assert again["changed"] is False and again["objects"] == [] and fake.writes() == []
    assert all(not r["changed"] for r in again["revisions"])
    # Revisions, namespaces, tags, CRDs, one per kind a revision owns, and one of the reader account every
    # revision's namespace holds (shared, owned by none): not one more with 9 revisions than with 3, and no GET.
    assert [call[0] for call in fake.verbs("list", "get")] == ["list"] * (4 + 14 + 1), fake.verbs("list", "get")


def test_check_mode_dry_runs_every_entry_and_stores_nothing():
    fake = FakeClient()
    result = run(Cluster(fake), [revision(1), revision(2)], check_mode=True)[0]
    assert result["changed"] is True
    assert {("Deployment", "team-1", "istiod-team-1"), ("Deployment", "team-2", "istiod-team-2")} <= {
        (o["kind"], o["namespace"], o["name"]) for o in result["objects"]
    }
    assert fake.store == {}
    assert all(call.options["dry_run"] == "All" for call in fake.calls if call.verb == "apply")


def test_an_entry_overlapping_an_earlier_one_is_set_aside_while_the_others_converge():
    fake = FakeClient()
    cluster = Cluster(fake)
    overlapping = revision(3, discovery_selectors=[{"matchLabels": {"usergroup": "team-1"}}])
    with pytest.raises(EntriesFailed) as failed:
        run(cluster, [revision(1), overlapping, revision(2)])
    assert installed(fake) == {"istiod-team-1", "istiod-team-2"}
    assert not [key for key in fake.store if key[1] == "team-3" or key[2] == "team-3"]
    reason = failed.value.result["failed_revisions"]["team-3"]
    assert reason.startswith("revisions[1] (team-3): discovery_selectors overlap with revision team-1")
    assert "The other revisions (team-1, team-2) were converged." in str(failed.value)
    assert [r["name"] for r in failed.value.result["revisions"]] == ["team-1", "team-2"]


def test_a_second_revision_in_a_namespace_of_the_run_needs_canary_of():
    fake = FakeClient()
    with pytest.raises(EntriesFailed) as failed:
        run(Cluster(fake), [revision(1), revision(2, namespace="team-1")])
    assert "namespace team-1 already holds revision team-1" in failed.value.result["failed_revisions"]["team-2"]
    assert installed(fake) == {"istiod-team-1"}
    canary = revision(
        2, namespace="team-1", canary_of="team-1", discovery_selectors=[{"matchLabels": {"usergroup": "team-1"}}]
    )
    result = run(Cluster(fake), [revision(1), canary])[0]
    assert installed(fake) == {"istiod-team-1", "istiod-team-2"} and result["changed"]


def test_an_entry_the_api_server_rejects_writes_nothing_and_the_others_converge():
    fake = FakeClient()
    fake.failures[("apply", "istiod-team-2")] = api_error(422, "Deployment is invalid")
    with pytest.raises(EntriesFailed) as failed:
        run(Cluster(fake), [revision(1), revision(2), revision(3)])
    assert installed(fake) == {"istiod-team-1", "istiod-team-3"}
    assert not [key for key in fake.store if key[1] == "team-2"]
    assert "Deployment is invalid" in failed.value.result["failed_revisions"]["team-2"]


def test_an_entry_in_the_way_while_the_others_need_nothing_fails_with_nothing_written():
    fake = FakeClient()
    cluster = Cluster(fake)
    run(cluster, [revision(1)])
    fake.calls.clear()
    with pytest.raises(Rehearsal) as failed:
        run(cluster, [revision(1), revision(2, discovery_selectors=[{"matchLabels": {"usergroup": "team-1"}}])])
    assert fake.writes() == []
    assert list(failed.value.result["failed_revisions"]) == ["team-2"]
