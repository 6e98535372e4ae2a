"""Small pure parts of the engine: owner selectors, rollout diagnosis, Istio version order."""

from ansible_collections.meshops.istio.plugins.module_utils.engine import Owner, rollout_problem
from ansible_collections.meshops.istio.plugins.module_utils.istioctl import version_key


def test_owner_labels_and_selector():
    owner = Owner("revision", "usergroup-1")
    assert owner.labels == {"app.kubernetes.io/managed-by": "meshops.istio", "meshops.io/revision": "usergroup-1"}
    assert owner.selector == "app.kubernetes.io/managed-by=meshops.istio,meshops.io/revision=usergroup-1"


def _deployment(generation=2, observed=2, replicas=2, updated=2, available=2, conditions=()):
    return {
        "metadata": {"generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "conditions": list(conditions),
        },
    }


def test_rolled_out_deployment_has_no_problem():
    assert rollout_problem(_deployment()) is None


def test_rollout_problems_say_why():
    assert "not observed the latest spec" in rollout_problem(_deployment(generation=3))
    stuck = _deployment(
        available=1,
        conditions=[
            {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable", "message": "1 missing"}
        ],
    )
    assert rollout_problem(stuck) == (
        "1/2 replicas available, 2 updated; Available=False (MinimumReplicasUnavailable: 1 missing)"
    )


def test_a_deployment_an_hpa_scales_is_rolled_out_once_its_minimum_is_available():
    # The HPA has not raised the Deployment from 1 replica to its minimum of 2 yet: the rollout is not complete.
    scaling = _deployment(replicas=1, updated=1, available=1)
    scaling["metadata"]["annotations"] = {"meshops.io/min-replicas": "2"}
    assert rollout_problem(scaling) == "1/2 replicas available, 1 updated"
    scaled = _deployment(replicas=2, updated=2, available=2)
    scaled["metadata"]["annotations"] = {"meshops.io/min-replicas": "2"}
    assert rollout_problem(scaled) is None


def test_version_order():
    ordered = ["1.29.9", "1.30.2", "1.31-dev", "1.31.0", "v1.31.1", "1.32.0-alpha.1", "1.32.0"]
    assert sorted(ordered, key=version_key) == ordered
