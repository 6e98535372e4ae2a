"""What istio_revision renders, labels and refuses: pure logic, no cluster."""

import dataclasses

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.engine import Report
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.revision import (
    keep_istiod_failure_policy,
    moved_tags,
    refusals,
    rolled_out,
    tag_refusals,
)
from ansible_collections.meshops.istio.plugins.module_utils.revision_render import (
    CRD_VERSION_ANNOTATION,
    crds_to_apply,
    injector_webhook_name,
    operator_spec,
    split_rendering,
    split_shared,
    system_namespace,
    validating_its_namespaces,
)
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import RevisionSpec, validate
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC
from ansible_collections.meshops.istio.plugins.module_utils.vocabulary import installed_revisions, tag_holders
from ansible_collections.meshops.istio.plugins.modules.istio_revision import ARGUMENT_SPEC


def params(**overrides):
    """The RevisionSpec istio_revision builds for these parameters, the others at the module's defaults."""
    given = {
        "name": "usergroup-1",
        "namespace": "usergroup-1",
        "discovery_selectors": [{"matchLabels": {"usergroup": "usergroup-1"}}],
        **overrides,
    }
    defaults = {key: option.get("default") for key, option in {**COMMON_ARG_SPEC, **ARGUMENT_SPEC}.items()}
    return RevisionSpec.from_params(defaults | given)


def test_operator_spec_for_a_tenant_has_no_default_revision():
    spec = operator_spec(params())
    assert spec["revision"] == "usergroup-1" and spec["profile"] == "minimal"
    assert spec["meshConfig"]["discoverySelectors"] == [{"matchLabels": {"usergroup": "usergroup-1"}}]
    assert spec["values"]["global"] == {"istioNamespace": "usergroup-1"}
    assert spec["values"]["defaultRevision"] == ""
    assert spec["values"]["revisionTags"] == []


def test_operator_spec_merges_user_values_under_ours():
    spec = operator_spec(
        params(
            values={"global": {"istioNamespace": "wrong", "logging": {"level": "debug"}}, "pilot": {"autoscaleMin": 2}},
            pilot_env={"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": True},
            default_revision=True,
            revision_tags=["prod"],
            mesh_id="mesh1",
            cluster_name="east",
            network="net1",
        )
    )
    values = spec["values"]
    assert values["global"] == {
        "istioNamespace": "usergroup-1",
        "logging": {"level": "debug"},
        "meshID": "mesh1",
        "multiCluster": {"clusterName": "east"},
        "network": "net1",
    }
    assert values["pilot"] == {"autoscaleMin": 2, "env": {"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "True"}}
    assert values["defaultRevision"] == "usergroup-1" and values["revisionTags"] == ["default", "prod"]


def test_system_namespace_carries_the_selector_and_network_labels():
    ns = system_namespace(params(network="net1"))
    assert ns["metadata"] == {
        "name": "usergroup-1",
        "labels": {"usergroup": "usergroup-1", "topology.istio.io/network": "net1"},
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "default"}, "name 'default' is reserved"),
        ({"name": "UserGroup"}, "name 'UserGroup' must be a DNS-1123 label"),
        ({"name": "r" * 57}, "at most 56 fit the names derived from it"),
        ({"namespace": "bad_ns"}, "namespace 'bad_ns' must be a DNS-1123 label"),
        ({"revision_tags": ["usergroup-1"]}, "revision_tags entry 'usergroup-1' equals the revision name"),
        ({"revision_tags": ["t" * 44]}, "at most 43"),
        ({"discovery_selectors": [{}]}, "discovery_selectors[0] is empty"),
        (
            {"discovery_selectors": [{"matchExpressions": [{"key": "a", "operator": "Exists"}]}]},
            "need at least one matchLabels selector",
        ),
    ],
)
def test_validation_names_the_parameter(overrides, message):
    with pytest.raises(Refusal, match=message.replace("[", r"\[").replace("]", r"\]")):
        validate(params(**overrides))


def test_valid_params_pass():
    validate(params(revision_tags=["prod"]))


RENDERED = [
    {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
     "metadata": {"name": "sidecars.networking.istio.io", "labels": {"app.kubernetes.io/part-of": "istio"}}},
    {"apiVersion": "v1", "kind": "ServiceAccount",
     "metadata": {"name": "istio-reader-service-account", "namespace": "usergroup-1", "creationTimestamp": None}},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "istiod-clusterrole-usergroup-1-usergroup-1", "labels": {"app": "istiod"}}},
    {"apiVersion": "apps/v1", "kind": "Deployment",
     "metadata": {"name": "istiod-usergroup-1", "namespace": "usergroup-1",
                  "labels": {"operator.istio.io/component": "Pilot", "istio.io/rev": "usergroup-1"}}},
]  # fmt: skip


def test_split_rendering_labels_like_istioctl_install_and_keeps_crds_apart():
    crds, owned = split_rendering([dict(m, metadata=dict(m["metadata"])) for m in RENDERED], params(), "1.31.1")
    assert [c["metadata"]["name"] for c in crds] == ["sidecars.networking.istio.io"]
    assert crds[0]["metadata"]["annotations"][CRD_VERSION_ANNOTATION] == "1.31.1"
    by_name = {m["metadata"]["name"]: m["metadata"] for m in owned}
    for metadata in by_name.values():
        assert metadata["labels"]["istio.io/rev"] == "usergroup-1"
        assert metadata["labels"]["install.operator.istio.io/owning-resource-namespace"] == "usergroup-1"
        assert metadata["labels"]["operator.istio.io/version"] == "1.31.1"
        assert "creationTimestamp" not in metadata
    assert by_name["istio-reader-service-account"]["labels"]["operator.istio.io/component"] == "Base"
    assert by_name["istiod-clusterrole-usergroup-1-usergroup-1"]["labels"]["operator.istio.io/component"] == "Pilot"


VALIDATOR = {
    "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "istio-validator-usergroup-1-usergroup-1"},
    "webhooks": [{
        "name": "rev.validation.istio.io",
        "failurePolicy": "Ignore",
        "objectSelector": {"matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["usergroup-1"]}]},
    }],
}  # fmt: skip


def test_a_validator_without_a_default_revision_also_takes_unlabelled_config_in_its_namespaces():
    revised = validating_its_namespaces(VALIDATOR, "usergroup-1")
    labelled, unlabelled = revised["webhooks"]
    assert labelled == VALIDATOR["webhooks"][0]
    assert unlabelled["name"] == "namespace.rev.validation.istio.io"
    assert unlabelled["objectSelector"] == {"matchExpressions": [{"key": "istio.io/rev", "operator": "DoesNotExist"}]}
    assert unlabelled["namespaceSelector"] == {
        "matchExpressions": [{"key": "istio.io/rev", "operator": "In", "values": ["usergroup-1"]}]
    }
    assert len(VALIDATOR["webhooks"]) == 1  # pure: the rendering it was given is unchanged


def test_with_a_default_revision_the_default_validator_takes_unlabelled_config():
    rendered = [dict(VALIDATOR, metadata=dict(VALIDATOR["metadata"]))]
    [validator] = split_rendering(rendered, params(default_revision=True), "1.31.1")[1]
    assert len(validator["webhooks"]) == 1
    [validator] = split_rendering(rendered, params(), "1.31.1")[1]
    assert len(validator["webhooks"]) == 2


def _crd(name, version=None):
    annotations = {CRD_VERSION_ANNOTATION: version} if version else {}
    return {"kind": "CustomResourceDefinition", "metadata": {"name": name, "annotations": annotations}}


def test_crds_are_created_upgraded_never_downgraded_or_taken_from_strangers():
    desired = [_crd(n, "1.31.1") for n in ("missing", "older", "same", "newer", "stranger")]
    live = {
        "older": _crd("older", "1.30.2"),
        "same": _crd("same", "1.31.1"),
        "newer": _crd("newer", "1.32.0"),
        "stranger": _crd("stranger"),
    }
    apply, warnings = crds_to_apply(desired, live, "1.31.1")
    assert [crd["metadata"]["name"] for crd, _live in apply] == ["missing", "older", "same"]
    assert any("newer" in w and "not downgraded" in w for w in warnings)
    assert any("stranger" in w and "left as it is" in w for w in warnings)


def _mesh_cm(revision, namespace, selectors, name=None):
    return {
        "metadata": {"name": name or f"istio-{revision}", "namespace": namespace, "labels": {"istio.io/rev": revision}},
        "data": {"mesh": yaml.safe_dump({"discoverySelectors": selectors})},
    }


def test_installed_revisions_come_from_mesh_config_maps_only():
    found = installed_revisions(
        [
            _mesh_cm("usergroup-2", "usergroup-2", [{"matchLabels": {"usergroup": "usergroup-2"}}]),
            _mesh_cm("usergroup-2", "usergroup-2", [], name="istio-sidecar-injector-usergroup-2"),
            _mesh_cm("default", "istio-system", [], name="istio"),
        ]
    )
    assert found == {
        "usergroup-2": {"namespace": "usergroup-2", "selectors": [{"matchLabels": {"usergroup": "usergroup-2"}}]},
        "default": {"namespace": "istio-system", "selectors": []},
    }


OTHERS = {"usergroup-2": {"namespace": "usergroup-2", "selectors": [{"matchLabels": {"usergroup": "usergroup-2"}}]}}
NAMESPACES = {"usergroup-2": {"usergroup": "usergroup-2"}, "app-ns-2": {"usergroup": "usergroup-2"}, "other": {}}


def test_disjoint_revisions_are_accepted():
    assert refusals(params(), OTHERS, NAMESPACES) == []


def test_overlapping_selectors_are_refused_naming_namespace_and_revisions():
    overlapping = params(
        discovery_selectors=[
            {"matchLabels": {"usergroup": "usergroup-1"}},
            {"matchExpressions": [{"key": "usergroup", "operator": "In", "values": ["usergroup-2"]}]},
        ]
    )
    [problem] = refusals(overlapping, OTHERS, NAMESPACES)
    assert "overlap with revision usergroup-2" in problem and "app-ns-2, usergroup-2" in problem


def test_identical_selectors_overlap_even_before_any_namespace_matches():
    same = params(name="usergroup-3", namespace="usergroup-3",
                  discovery_selectors=[{"matchLabels": {"usergroup": "usergroup-2"}}])  # fmt: skip
    assert any("overlap" in p for p in refusals(same, OTHERS, {}))


def test_no_selectors_means_every_namespace_and_overlaps():
    assert any("overlap" in p for p in refusals(params(discovery_selectors=[]), OTHERS, NAMESPACES))


def test_same_name_elsewhere_shared_namespace_and_tag_named_like_a_revision_are_refused():
    assert "already installed in namespace usergroup-2" in refusals(params(name="usergroup-2"), OTHERS, NAMESPACES)[0]
    shared_ns = refusals(params(namespace="usergroup-2"), OTHERS, NAMESPACES)
    assert any("namespace usergroup-2 already holds revision usergroup-2" in p for p in shared_ns)
    tagged = refusals(params(revision_tags=["usergroup-2"]), OTHERS, NAMESPACES)
    assert any("revision_tags entry 'usergroup-2' is the name of an installed revision" in p for p in tagged)


def test_a_canary_shares_its_revisions_namespace_and_selectors():
    canary = params(name="usergroup-2-v2", namespace="usergroup-2", canary_of="usergroup-2",
                    discovery_selectors=[{"matchLabels": {"usergroup": "usergroup-2"}}])  # fmt: skip
    assert refusals(canary, OTHERS, NAMESPACES) == []
    # Installed, the pair stays accepted on re-runs of either revision, with or without canary_of.
    pair = {**OTHERS, "usergroup-2-v2": {**OTHERS["usergroup-2"]}}
    assert refusals(dataclasses.replace(canary, canary_of=None), pair, NAMESPACES) == []
    old = params(name="usergroup-2", namespace="usergroup-2", discovery_selectors=OTHERS["usergroup-2"]["selectors"])
    assert refusals(old, pair, NAMESPACES) == []


def test_a_canary_of_a_revision_elsewhere_or_a_new_revision_without_canary_of_is_refused():
    elsewhere = params(name="usergroup-2-v2", namespace="usergroup-9", canary_of="usergroup-2")
    [problem] = refusals(elsewhere, OTHERS, NAMESPACES)
    assert "canary_of usergroup-2 is installed in namespace usergroup-2, not usergroup-9" in problem
    undeclared = params(name="usergroup-2-v2", namespace="usergroup-2")
    assert any("or set canary_of: usergroup-2" in p for p in refusals(undeclared, OTHERS, NAMESPACES))


def test_injector_webhook_name_drops_the_namespace_suffix_in_istio_system():
    assert injector_webhook_name("canary", "istio-system") == "istio-sidecar-injector-canary"
    assert injector_webhook_name("usergroup-1", "usergroup-1") == "istio-sidecar-injector-usergroup-1-usergroup-1"


def test_istiods_failure_policy_is_kept_on_its_validator_and_nowhere_else():
    rendered = {
        "kind": "ValidatingWebhookConfiguration",
        "webhooks": [{"name": "rev.validation.istio.io", "failurePolicy": "Ignore"}, {"name": "new.istio.io"}],
    }
    live = {"webhooks": [{"name": "rev.validation.istio.io", "failurePolicy": "Fail"}]}
    kept = keep_istiod_failure_policy(rendered, live)
    assert kept["webhooks"] == [{"name": "rev.validation.istio.io", "failurePolicy": "Fail"}, {"name": "new.istio.io"}]
    assert rendered["webhooks"][0]["failurePolicy"] == "Ignore"  # the rendering itself is not changed
    injector = {"kind": "MutatingWebhookConfiguration", "webhooks": [{"name": "x", "failurePolicy": "Fail"}]}
    assert keep_istiod_failure_policy(injector, {"webhooks": [{"name": "x", "failurePolicy": "Ignore"}]}) is injector


# Tags and canaries


def test_a_tag_held_by_another_revision_is_refused_naming_tag_and_revision_unless_moved():
    holders = {"prod": ["usergroup-2"]}
    [problem] = tag_refusals(params(revision_tags=["prod"]), OTHERS, holders)
    assert problem == (
        "revision_tags entry 'prod': tag prod is held by revision usergroup-2, and a tag points at one revision; "
        "set move_tags: true to move it to usergroup-1, or remove it from usergroup-2 first"
    )
    assert tag_refusals(params(revision_tags=["prod"], move_tags=True), OTHERS, holders) == []
    assert moved_tags(params(revision_tags=["prod", "canary"], move_tags=True), holders) == ["prod"]
    # Our own tag on a re-run is no move.
    assert tag_refusals(params(revision_tags=["prod"]), OTHERS, {"prod": ["usergroup-1"]}) == []
    assert moved_tags(params(revision_tags=["prod"]), {"prod": ["usergroup-1"]}) == []


def test_the_default_tag_of_another_revision_names_default_revision():
    [problem] = tag_refusals(params(default_revision=True), OTHERS, {"default": ["usergroup-2"]})
    assert problem.startswith("default_revision: tag default is held by revision usergroup-2")


def test_default_as_a_tag_needs_default_revision():
    [problem] = tag_refusals(params(revision_tags=["default"]), OTHERS, {})
    assert problem.startswith("revision_tags entry 'default' makes this revision the cluster's default injector")
    assert "set default_revision: true instead" in problem
    assert tag_refusals(params(default_revision=True), OTHERS, {}) == []


def test_names_that_collide_with_tag_objects_are_refused():
    [problem] = tag_refusals(params(name="revision-tag-prod"), OTHERS, {})
    assert problem.startswith(
        "name revision-tag-prod would give this revision the Service istiod-revision-tag-prod, which is the Service "
        "of revision tag 'prod'"
    )
    [problem] = tag_refusals(params(name="prod"), OTHERS, {"prod": ["usergroup-2"]})
    assert problem.startswith("name prod is a revision tag of revision usergroup-2")
    others = {**OTHERS, "revision-tag-canary": {"namespace": "x", "selectors": []}}
    [problem] = tag_refusals(params(revision_tags=["canary"]), others, {})
    assert "the tag's Service istiod-revision-tag-canary is the Service of revision revision-tag-canary" in problem


def test_tag_holders_lists_every_revision_a_tag_points_at():
    def webhook(tag, revision):
        return {
            "metadata": {"name": f"istio-revision-tag-{tag}", "labels": {"istio.io/tag": tag, "istio.io/rev": revision}}
        }

    holders = tag_holders(
        [webhook("prod", "b"), webhook("prod", "a"), webhook("canary", "a"), {"metadata": {"name": "x"}}]
    )
    assert holders == {"prod": ["a", "b"], "canary": ["a"]}


def test_canary_of_a_revision_that_is_not_installed_is_refused_until_the_canary_is_installed():
    canary = params(name="usergroup-1-v2", canary_of="usergroup-9")
    [problem] = refusals(canary, OTHERS, NAMESPACES)
    assert problem.startswith("canary_of usergroup-9 is not an installed revision (installed: usergroup-2)")
    installed = {**OTHERS, "usergroup-1-v2": {"namespace": "usergroup-1", "selectors": []}}
    assert not any("canary_of" in p for p in refusals(canary, installed, NAMESPACES))


def test_the_shared_reader_account_leaves_the_revisions_objects_and_names_no_revision():
    _crds, owned = split_rendering([dict(m, metadata=dict(m["metadata"])) for m in RENDERED], params(), "1.31.1")
    shared, own = split_shared(owned)
    assert [m["metadata"]["name"] for m in shared] == ["istio-reader-service-account"]
    assert "istio-reader-service-account" not in {m["metadata"]["name"] for m in own}
    labels = shared[0]["metadata"]["labels"]
    assert "istio.io/rev" not in labels and "operator.istio.io/version" not in labels
    assert labels["operator.istio.io/component"] == "Base"
    canary_rendering = split_rendering(
        [dict(m, metadata=dict(m["metadata"])) for m in RENDERED], params(name="usergroup-1-v2"), "1.32.0"
    )
    assert (
        split_shared(canary_rendering[1])[0] == shared
    )  # every revision of the namespace writes the same: no flip-flop between their runs


def _istiod(available: int) -> dict:
    return {
        "kind": "Deployment",
        "metadata": {"name": "istiod-a", "namespace": "a", "generation": 2},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": available},
    }


def test_rolled_out_only_when_istiod_was_read_available_and_left_unchanged():
    desired = [_istiod(0), {"kind": "ConfigMap", "metadata": {"name": "istio-a", "namespace": "a"}}]
    key = ("Deployment", "a", "istiod-a")
    unchanged, updated = Report(), Report()
    updated.record(_istiod(1), "updated", _istiod(1), _istiod(1))
    assert rolled_out(desired, {key: _istiod(1)}, unchanged) is True
    assert rolled_out(desired, {key: _istiod(1)}, updated) is False
    assert rolled_out(desired, {key: _istiod(0)}, unchanged) is False
    assert rolled_out(desired, {}, unchanged) is False
