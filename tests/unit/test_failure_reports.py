"""What a failing module reports: the objects written before the failure, and the warning events that explain a
rollout that did not finish."""

from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster, warning_lines
from ansible_collections.meshops.istio.plugins.module_utils.engine import Engine, Owner
from ansible_collections.meshops.istio.plugins.module_utils.runner import written_before_failure


def _event(kind, name, reason, message, when, event_type="Warning"):
    return {
        "metadata": {"name": f"{name}.{when}", "creationTimestamp": when},
        "involvedObject": {"kind": kind, "name": name},
        "reason": reason,
        "message": message,
        "type": event_type,
        "lastTimestamp": when,
    }


def test_warning_lines_keep_the_newest_per_object_and_reason_of_the_deployment_only():
    events = [
        _event("Pod", "istiod-a-1-x", "FailedScheduling", "0/1 nodes are available: old", "2026-05-01T12:00:01Z"),
        _event("Pod", "istiod-a-1-x", "FailedScheduling", "0/1 nodes are available: new", "2026-05-01T12:00:09Z"),
        _event("Pod", "istiod-b-1-x", "FailedScheduling", "another deployment's pod", "2026-05-01T12:00:10Z"),
        _event("ReplicaSet", "istiod-a-1", "FailedCreate", "admission webhook denied", "2026-05-01T12:00:05Z"),
        _event("Pod", "istiod-a-1-x", "Scheduled", "normal events are not warnings", "2026-05-01T12:00:11Z", "Normal"),
    ]
    assert warning_lines(events, "istiod-a-", 3) == [
        "ReplicaSet istiod-a-1: FailedCreate: admission webhook denied",
        "Pod istiod-a-1-x: FailedScheduling: 0/1 nodes are available: new",
    ]
    assert warning_lines(events, "istiod-a-", 1) == ["Pod istiod-a-1-x: FailedScheduling: 0/1 nodes are available: new"]
    assert warning_lines(events, "istiod-c-", 3) == []


def test_a_failure_reports_what_every_engine_on_the_cluster_wrote():
    cluster = Cluster(client=None)
    assert written_before_failure(cluster) == {"changed": False, "objects": []}
    first, second = Engine(cluster, Owner("revision", "a")), Engine(cluster, Owner("tenant", "b"))
    first.report.record({"kind": "Namespace", "metadata": {"name": "a"}}, "created", None, {})
    second.report.record({"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"}}, "updated", {}, {})
    assert written_before_failure(cluster) == {
        "changed": True,
        "objects": [
            {"kind": "Namespace", "namespace": "", "name": "a", "action": "created"},
            {"kind": "ConfigMap", "namespace": "a", "name": "c", "action": "updated"},
        ],
    }
    assert written_before_failure(None) == {"changed": False, "objects": []}


def test_a_failure_also_reports_what_was_written_on_a_second_cluster_naming_it():
    primary, remote = Cluster(client=None), Cluster(client=None, parameter="remote")
    Engine(remote, Owner("remote-reader", "r")).report.record(
        {"kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": "istio-system"}}, "created", None, {}
    )
    assert written_before_failure(primary, [remote]) == {
        "changed": True,
        "objects": [
            {"kind": "ServiceAccount", "namespace": "istio-system", "name": "reader", "action": "created",
             "cluster": "remote"},
        ],
    }  # fmt: skip
