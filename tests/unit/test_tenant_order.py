"""The order istio_tenant writes in, against the recording fake client of test_engine: a namespace is labelled
for injection (istio.io/rev) only after its STRICT mTLS and policies exist, and loses its labels before its
policies go, so a run stopped at any write never leaves an injected namespace without them."""

import threading

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster
from ansible_collections.meshops.istio.plugins.module_utils.errors import ForeignObjects
from ansible_collections.meshops.istio.plugins.module_utils.tenant import (
    ensure_tenant_absent,
    ensure_tenant_present,
    ensure_tenants,
)
from ansible_collections.meshops.istio.plugins.module_utils.tenant_spec import TenantSpec
from test_engine import FakeClient, manifest

REVISION = "rev-a"


def mesh_config_map(tenants=("team-a",)):
    mesh = {"discoverySelectors": [{"matchLabels": {"meshops.io/tenant": tenant}} for tenant in tenants]}
    return manifest("ConfigMap", f"istio-{REVISION}", "istio-a", labels={"istio.io/rev": REVISION},
                    data={"mesh": yaml.safe_dump(mesh)})  # fmt: skip


def spec(state="present", root_namespace_mtls=False, namespaces=("app-a",), name="team-a"):
    return TenantSpec.from_params(
        {
            "name": name, "revision": REVISION, "namespaces": list(namespaces), "create_namespaces": True,
            "discovery_label": None, "mtls": "STRICT", "isolation": None, "takeover": False, "state": state,
            "delete_namespaces": False, "force": False, "force_conflicts": False,
            "root_namespace_mtls": root_namespace_mtls,
        }
    )  # fmt: skip


def injected_before_policies(fake: FakeClient, namespace_name: str = "app-a") -> list:
    """The states, after each write, in which the namespace carries istio.io/rev while its PeerAuthentication is
    missing."""
    states, store = [], {}
    for call in fake.calls:
        if call.verb == "apply" and call.options["dry_run"] is None:
            store[(call.kind, call.namespace, call.name)] = call.options["body"]
        elif call.verb == "delete" and call.options["dry_run"] is None:
            store.pop((call.kind, call.namespace, call.name), None)
        else:
            continue
        namespace = store.get(("Namespace", "", namespace_name))
        labels = (namespace or {}).get("metadata", {}).get("labels") or {}
        if labels.get("istio.io/rev") and ("PeerAuthentication", namespace_name, "default") not in store:
            states.append((call.verb, call.kind, call.name))
    return states


def test_a_new_namespace_is_labelled_for_injection_only_after_its_policies_exist():
    fake = FakeClient([mesh_config_map()])
    ensure_tenant_present(Cluster(fake), spec(), check_mode=False)
    applied = [(write[1], write[3]) for write in fake.writes()]
    assert applied[0] == ("Namespace", "app-a")
    assert (
        "istio.io/rev"
        not in fake.calls[[c.verb for c in fake.calls].index("apply")].options["body"]["metadata"]["labels"]
    )
    assert applied[-1] == ("Namespace", "app-a")
    assert fake.store[("Namespace", "", "app-a")]["metadata"]["labels"]["istio.io/rev"] == REVISION
    assert injected_before_policies(fake) == []


def test_a_re_run_writes_nothing_and_check_mode_labels_once():
    fake = FakeClient([mesh_config_map()])
    ensure_tenant_present(Cluster(fake), spec(), check_mode=False)
    fake.calls.clear()
    result = ensure_tenant_present(Cluster(fake), spec(), check_mode=False)[0]
    assert not result["changed"] and fake.writes() == []
    planned = FakeClient([mesh_config_map()])
    result = ensure_tenant_present(Cluster(planned), spec(), check_mode=True)[0]
    assert [o["kind"] for o in result["objects"]].count("Namespace") == 1


def test_offboarding_removes_the_labels_before_the_policies():
    fake = FakeClient([mesh_config_map()])
    ensure_tenant_present(Cluster(fake), spec(), check_mode=False)
    fake.calls.clear()
    ensure_tenant_absent(Cluster(fake), spec("absent"), check_mode=False)
    kinds = [write[1] for write in fake.writes()]
    assert kinds[0] == "Namespace" and "PeerAuthentication" in kinds[1:]
    assert "istio.io/rev" not in (fake.store[("Namespace", "", "app-a")]["metadata"].get("labels") or {})


ROOT_POLICY = ("PeerAuthentication", "istio-a", "team-a-peerauth")


def test_the_root_namespace_policy_is_written_before_injection_and_removed_after_the_labels():
    fake = FakeClient([mesh_config_map(), manifest("Namespace", "istio-a")])
    ensure_tenant_present(Cluster(fake), spec(root_namespace_mtls=True), check_mode=False)
    written = [(w[1], w[2], w[3]) for w in fake.writes()]
    labelled = max(i for i, w in enumerate(fake.writes()) if w[1] == "Namespace")
    assert ROOT_POLICY in written[:labelled]
    assert fake.store[ROOT_POLICY]["metadata"]["labels"]["meshops.io/tenant"] == "team-a"
    fake.calls.clear()
    assert not ensure_tenant_present(Cluster(fake), spec(root_namespace_mtls=True), check_mode=False)[0]["changed"]
    assert fake.writes() == []
    ensure_tenant_absent(Cluster(fake), spec("absent"), check_mode=False)
    removed = [(w[1], w[2], w[3]) for w in fake.writes()]
    assert removed[0][0] == "Namespace" and ROOT_POLICY in removed[1:] and ROOT_POLICY not in fake.store


def test_onboarding_reads_no_object_one_by_one():
    """What stands where the policies go is listed once per policy name, and a new namespace is known missing from
    the list of every namespace: onboarding sends no GET, however many namespaces."""
    fake = FakeClient([mesh_config_map()])
    result = ensure_tenant_present(Cluster(fake), spec(namespaces=("app-a", "app-b", "app-c")), check_mode=False)[0]
    assert [c for c in fake.calls if c.verb == "get"] == []
    created = {(o["kind"], o["namespace"] or o["name"]) for o in result["objects"] if o["action"] == "created"}
    assert {("PeerAuthentication", ns) for ns in ("app-a", "app-b", "app-c")} <= created
    assert {("Namespace", ns) for ns in ("app-a", "app-b", "app-c")} <= created
    assert injected_before_policies(fake) == []


def test_a_same_named_policy_made_by_hand_is_still_found_and_refused():
    """As the rehearsal (a dry run) meets it: the run then writes nothing (runner.rehearse_then_run)."""
    hand_made = manifest("PeerAuthentication", "default", "app-b", labels={"made-by": "hand"})
    fake = FakeClient([mesh_config_map(), manifest("Namespace", "app-b", ""), hand_made])
    with pytest.raises(ForeignObjects, match="PeerAuthentication app-b/default already exists and was not created"):
        ensure_tenant_present(Cluster(fake), spec(namespaces=("app-a", "app-b")), check_mode=True)
    assert [c.verb for c in fake.calls if c.verb not in ("get", "list")] == []


def test_tenants_converge_side_by_side_each_in_its_own_order():
    teams = ("team-a", "team-b", "team-c")
    fake = FakeClient([mesh_config_map(teams)])
    team_b_started = threading.Event()
    # team-a's first write is answered only once team-b has started writing: tenants one after another would wait.
    fake.hold[("apply", "app-team-a")] = lambda: team_b_started.wait(30)
    fake.hold[("apply", "app-team-b")] = team_b_started.set
    specs = [spec(name=team, namespaces=(f"app-{team}",)) for team in teams]
    result = ensure_tenants(Cluster(fake), specs, check_mode=False)[0]
    assert result["failed"] == {}
    assert [tenant["name"] for tenant in result["tenants"]] == list(teams)
    first_b = fake.events.index(("start", ("apply", "Namespace", "", "app-team-b")))
    assert first_b < fake.events.index(("end", ("apply", "Namespace", "", "app-team-a")))
    for team in teams:
        assert injected_before_policies(fake, f"app-{team}") == []
        assert fake.store[("Namespace", "", f"app-{team}")]["metadata"]["labels"]["istio.io/rev"] == REVISION
