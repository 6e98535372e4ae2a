"""The guard of tenant isolation (pure builders) and how istio_tenant runs many tenants when one fails (against the
recording fake client of test_engine)."""

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.batch import failure_sentence
from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster
from ansible_collections.meshops.istio.plugins.module_utils.errors import EngineError
from ansible_collections.meshops.istio.plugins.module_utils.guard import (
    LABELS_ANNOTATION,
    GuardSpec,
    guard_manifests,
    guarded_label_keys,
    guarded_object_exempt,
    installer_condition,
)
from ansible_collections.meshops.istio.plugins.module_utils.runner import Rehearsal, rehearse_then_run
from ansible_collections.meshops.istio.plugins.module_utils.tenant import TenantsRun
from ansible_collections.meshops.istio.plugins.module_utils.tenant_spec import TenantSpec
from test_engine import FakeClient, api_error, manifest


def by_name(manifests):
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def test_defaults_allow_the_running_user_and_system_masters():
    spec = GuardSpec.from_params({})
    assert (spec.enabled, spec.users, spec.groups) == (True, (), ("system:masters",))
    assert GuardSpec.from_params({"enabled": False, "users": ["ci"], "groups": []}) == GuardSpec(False, ("ci",), ())


def test_objects_policy_guards_the_tenant_kinds_labelled_ours_in_tenant_namespaces():
    manifests = by_name(guard_manifests(["alice"], ["system:masters"], ["meshops.io/tenant"]))
    policy = manifests[("ValidatingAdmissionPolicy", "meshops-istio-tenant-objects")]["spec"]
    match = policy["matchConstraints"]
    assert sorted(r for rule in match["resourceRules"] for r in rule["resources"]) == [
        "authorizationpolicies", "networkpolicies", "peerauthentications", "rolebindings", "sidecars",
    ]  # fmt: skip
    assert all(rule["operations"] == ["CREATE", "UPDATE", "DELETE"] for rule in match["resourceRules"])
    assert "namespaceSelector" not in match  # a tenant's root namespace PeerAuthentication is outside its namespaces
    assert match["objectSelector"] == {"matchLabels": {"app.kubernetes.io/managed-by": "meshops.istio"}}
    conditions = {c["name"]: c["expression"] for c in policy["matchConditions"]}
    assert conditions["not-an-installer"] == installer_condition(["alice"], ["system:masters"])
    assert '"alice"' in conditions["not-an-installer"] and '"system:masters"' in conditions["not-an-installer"]
    [validation] = policy["validations"]
    assert validation["expression"] == guarded_object_exempt()
    assert validation["expression"].startswith("has(namespaceObject.metadata.deletionTimestamp) || !(")
    assert "meshops.istio guards" in validation["message"]
    assert "only users alice and groups system:masters may" in validation["message"]
    binding = manifests[("ValidatingAdmissionPolicyBinding", "meshops-istio-tenant-objects")]["spec"]
    assert binding == {"policyName": "meshops-istio-tenant-objects", "validationActions": ["Deny"]}


def test_namespaces_policy_guards_the_tenant_labels_and_records_them():
    manifests = by_name(guard_manifests(["alice"], [], ["usergroup", "meshops.io/tenant", "istio.io/rev"]))
    policy = manifests[("ValidatingAdmissionPolicy", "meshops-istio-tenant-namespaces")]
    assert policy["metadata"]["annotations"] == {LABELS_ANNOTATION: "istio.io/rev,meshops.io/tenant,usergroup"}
    match = policy["spec"]["matchConstraints"]
    assert match["resourceRules"][0]["resources"] == ["namespaces"]
    assert match["resourceRules"][0]["operations"] == ["UPDATE"]
    [validation] = policy["spec"]["validations"]
    assert validation["expression"].startswith('["istio.io/rev", "meshops.io/tenant", "usergroup"].all(k, ')
    assert "groups" not in policy["spec"]["matchConditions"][0]["expression"]  # no group may pass
    assert "only users alice may change them" in validation["message"]


def test_guarded_labels_add_to_what_the_live_guard_protects():
    live = {"metadata": {"annotations": {LABELS_ANNOTATION: "usergroup,meshops.io/tenant"}}}
    assert guarded_label_keys({"meshops.io/mesh"}, [live]) == [
        "istio-injection", "istio.io/rev", "meshops.io/mesh", "meshops.io/tenant", "usergroup",
    ]  # fmt: skip


# One tenant's failure never stops the others


def mesh_config_map():
    mesh = {"discoverySelectors": [{"matchExpressions": [{"key": "meshops.io/tenant", "operator": "Exists"}]}]}
    return manifest("ConfigMap", "istio-shared", "istio-system", labels={"istio.io/rev": "shared"},
                    data={"mesh": yaml.safe_dump(mesh)})  # fmt: skip


def tenant(name):
    return TenantSpec.from_params(
        {
            "name": name, "revision": "shared", "namespaces": [name], "create_namespaces": True,
            "discovery_label": None, "mtls": "STRICT", "isolation": None, "takeover": False, "state": "present",
            "delete_namespaces": False, "force": False, "force_conflicts": False,
        }
    )  # fmt: skip


def run_like_the_runner(action, cluster):
    """runner.rehearse_then_run without a lock: a rehearsal (dry run), then, when it would change something, again
    and for real."""
    return rehearse_then_run(action, cluster, [cluster], False)


def real_writes(fake) -> list:
    return [(c.kind, c.namespace, c.name) for c in fake.calls if c.verb == "apply" and not c.options["dry_run"]]


def test_a_tenant_whose_namespace_is_in_the_way_is_set_aside_and_the_others_are_converged():
    fake = FakeClient([mesh_config_map(), manifest("Namespace", "istio-system")])
    fake.conflicts.add("a")  # namespace a carries a label another manager owns, and the object is not ours
    action = TenantsRun([tenant("a"), tenant("b")], None)
    with pytest.raises(EngineError) as raised:
        run_like_the_runner(action, Cluster(fake))
    message = str(raised.value)
    assert message.startswith("1 of 2 tenants failed: tenants[0] (a): Namespace a: Apply failed with 1 conflict")
    assert message.endswith("The other tenants (b) were converged.")
    assert ("PeerAuthentication", "b", "default") in real_writes(fake)
    assert not [w for w in real_writes(fake) if "a" in (w[1], w[2])]


def test_a_plan_the_api_server_rejects_for_one_tenant_writes_nothing_for_any():
    fake = FakeClient([mesh_config_map(), manifest("Namespace", "istio-system")])
    fake.failures[("apply", "b")] = api_error(422, 'Namespace "b" is invalid')
    with pytest.raises(Rehearsal) as raised:
        run_like_the_runner(TenantsRun([tenant("a"), tenant("b")], None), Cluster(fake))
    assert str(raised.value).startswith("1 of 2 tenants failed: tenants[1] (b): Cannot apply Namespace b")
    assert "converged" not in str(raised.value)
    assert real_writes(fake) == []


def test_when_every_tenant_is_in_the_way_nothing_is_written():
    fake = FakeClient([mesh_config_map(), manifest("Namespace", "istio-system")])
    fake.conflicts.update({"a", "b"})
    with pytest.raises(Rehearsal, match=r"^2 of 2 tenants failed: tenants\[0\] \(a\): .*; tenants\[1\] \(b\): "):
        run_like_the_runner(TenantsRun([tenant("a"), tenant("b")], None), Cluster(fake))
    assert real_writes(fake) == []


def test_a_run_asks_once_who_runs_it_and_guards_for_that_user():
    fake = FakeClient([mesh_config_map(), manifest("Namespace", "istio-system")])
    fake.answers["/apis/authentication.k8s.io/v1/selfsubjectreviews"] = {"status": {"userInfo": {"username": "ops"}}}
    run_like_the_runner(TenantsRun([tenant("a"), tenant("b")], GuardSpec()), Cluster(fake))
    reviews = [c for c in fake.calls if c.verb == "request" and c.kind == "SelfSubjectReview"]
    assert len(reviews) == 1  # the planning pass, the locked rehearsal and the run share the answer
    guards = [c for c in fake.calls if c.verb == "apply" and c.kind == "ValidatingAdmissionPolicy"]
    assert guards and all('"ops"' in str(c.options["body"]["spec"]) for c in guards)


def test_failure_sentence_names_each_failed_tenant():
    assert failure_sentence({"a": "tenants[0] (a): boom"}, ["a"], True, "tenants") == "tenants[0] (a): boom"
    failed = {"a": "tenants[0] (a): boom.", "c": "tenants[2] (c): bang"}
    assert failure_sentence(failed, ["a", "b", "c"], True, "tenants") == (
        "2 of 3 tenants failed: tenants[0] (a): boom; tenants[2] (c): bang. The other tenants (b) were converged."
    )
    assert (
        failure_sentence(failed, ["a", "b", "c"], False, "tenants")
        == "2 of 3 tenants failed: tenants[0] (a): boom; tenants[2] (c): bang."
    )
