"""Deciding locally whether an apply could change anything: the basis of zero-write no-op runs."""

import copy

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.compare import (
    HASH_ANNOTATION,
    HIDDEN,
    for_diff,
    is_subset,
    needs_apply,
    same_object,
    with_hash,
)
from ansible_collections.meshops.istio.plugins.module_utils.engine import with_labels


def _deployment(memory="2048Mi", env_value=""):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "istiod-a", "namespace": "a", "labels": {"app": "istiod"}},
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "discovery",
                            "env": [{"name": "EMPTY", "value": env_value}],
                            "resources": {"requests": {"memory": memory, "cpu": "500m"}},
                        }
                    ]
                }
            }
        },
    }


def _live_from(desired, **changes):
    """What the API server returns for `desired`: defaults added, empty strings dropped, quantities canonical."""
    live = copy.deepcopy(with_hash(desired))
    live["metadata"].update(resourceVersion="42", uid="u-1", managedFields=[{"manager": "meshops.istio"}])
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["env"] = [{"name": "EMPTY"}]
    container["resources"]["requests"]["memory"] = "2Gi"
    container["imagePullPolicy"] = "IfNotPresent"
    live["status"] = {"replicas": 1}
    for path, value in changes.items():
        target = live
        *parents, leaf = path.split(".")
        for key in parents:
            target = target[key]
        target[leaf] = value
    return live


def test_unchanged_object_needs_no_apply_despite_server_normalisation():
    desired = with_hash(_deployment())
    assert not needs_apply(desired, _live_from(_deployment()))


def test_missing_object_needs_apply():
    assert needs_apply(with_hash(_deployment()), None)


def test_changed_value_needs_apply():
    assert needs_apply(with_hash(_deployment(memory="4Gi")), _live_from(_deployment()))


def test_field_removed_from_desired_needs_apply_even_though_live_is_a_superset():
    desired = _deployment()
    del desired["metadata"]["labels"]["app"]
    assert is_subset(desired, _live_from(_deployment()))  # a subset check alone would miss it
    assert needs_apply(with_hash(desired), _live_from(_deployment()))


def test_drift_by_another_writer_needs_apply():
    live = _live_from(_deployment(), **{"metadata.labels": {"app": "changed-by-hand"}})
    assert needs_apply(with_hash(_deployment()), live)


@pytest.mark.parametrize(
    ("desired", "live", "expected"),
    [
        ("2048Mi", "2Gi", True),
        ("0.5", "500m", True),
        ("1", "1000m", True),
        ("1Gi", "1G", False),
        ("v1", "v2", False),
        ([1, 2], [1, 2, 3], False),
        ({"a": ""}, {}, True),
        ({"a": None}, {}, True),
        ({"a": "x"}, {}, False),
    ],
)
def test_subset_rules(desired, live, expected):
    assert is_subset(desired, live) is expected


def test_hash_ignores_its_own_annotation_and_key_order():
    one = with_hash({"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"a": "1", "b": "2"}})
    other = with_hash({"data": {"b": "2", "a": "1"}, "metadata": {"name": "x"}, "kind": "ConfigMap"})
    assert one["metadata"]["annotations"][HASH_ANNOTATION] == other["metadata"]["annotations"][HASH_ANNOTATION]
    assert with_hash(one) == one


def test_stamping_copies_and_leaves_the_input_as_it_was():
    desired = _deployment()
    given = copy.deepcopy(desired)
    stamped = with_hash(with_labels(desired, {"meshops.io/tenant": "a"}))
    assert desired == given
    assert stamped["metadata"]["labels"] == {"app": "istiod", "meshops.io/tenant": "a"}
    assert stamped["spec"] == given["spec"]
    # The hash is that of the labelled manifest without annotations: the same as before it was stamped.
    unstamped = with_labels(desired, {"meshops.io/tenant": "a"})
    assert (
        stamped["metadata"]["annotations"][HASH_ANNOTATION]
        == with_hash(unstamped)["metadata"]["annotations"][HASH_ANNOTATION]
    )


def test_diff_hides_secret_values_and_server_bookkeeping():
    secret = {
        "kind": "Secret",
        "metadata": {"name": "cacerts", "managedFields": [{}], "resourceVersion": "7"},
        "data": {"ca-key.pem": "c2VjcmV0"},
    }
    shown = for_diff(secret)
    assert shown["data"] == {"ca-key.pem": HIDDEN}
    assert "managedFields" not in shown["metadata"] and "resourceVersion" not in shown["metadata"]
    assert secret["data"]["ca-key.pem"] == "c2VjcmV0"  # the input is not modified
    assert secret["metadata"]["managedFields"] == [{}] and secret["metadata"]["resourceVersion"] == "7"


def test_diff_leaves_out_kubectls_last_applied_annotation_but_not_the_others():
    last_applied = "kubectl.kubernetes.io/last-applied-configuration"
    obj = {"kind": "ConfigMap", "metadata": {"name": "c", "annotations": {last_applied: "{}", "a": "1"}}}
    assert for_diff(obj)["metadata"]["annotations"] == {"a": "1"}
    assert obj["metadata"]["annotations"] == {last_applied: "{}", "a": "1"}


def test_same_object_sees_secret_value_changes_that_the_diff_hides():
    before = {"kind": "Secret", "metadata": {"name": "s", "resourceVersion": "1"}, "data": {"k": "YQ=="}}
    after = {"kind": "Secret", "metadata": {"name": "s", "resourceVersion": "2"}, "data": {"k": "Yg=="}}
    assert not same_object(before, after)
    assert same_object(before, {**before, "metadata": {"name": "s", "resourceVersion": "9"}})
