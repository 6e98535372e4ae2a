"""istio_revision's batch form (option `revisions`) against a real API server and a real istioctl: three control
planes in one module run, checked on an empty cluster, converged, re-run without a write; an entry overlapping an
installed revision refused while the others converge; drift on one revision's object repaired by the batch run.

The tests build on each other in file order, like a user's runs would."""

from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import api_request_counts, writes

MODULE = "meshops.istio.istio_revision"
NAMES = ("batch-1", "batch-2", "batch-3")


def entry(name: str, **overrides) -> dict:
    return {"name": name, "namespace": name, "discovery_selectors": [{"matchLabels": {"usergroup": name}}],
            "own_trust_bundle": True, **overrides}  # fmt: skip


def batch(binaries, *entries, **options) -> dict:
    return {"istioctl_path": str(binaries / "istioctl"), "wait_timeout": 120, "revisions": list(entries), **options}


def three(binaries) -> dict:
    return batch(binaries, *(entry(name) for name in NAMES))


def istiods(api) -> set:
    apps = client.AppsV1Api(api)
    return {(d.metadata.namespace, d.metadata.name) for d in apps.list_deployment_for_all_namespaces().items}


def written_by(api, namespace: str) -> list:
    """The objects of a namespace the collection wrote (labelled managed-by), and the namespace itself if it exists."""
    core = client.CoreV1Api(api)
    try:
        core.read_namespace(namespace)
    except ApiException as error:
        assert error.status == 404
        found = []
    else:
        found = [("Namespace", namespace)]
    selector = "app.kubernetes.io/managed-by=meshops.istio"
    config_maps = core.list_namespaced_config_map(namespace, label_selector=selector).items
    found += [("ConfigMap", config_map.metadata.name) for config_map in config_maps]
    apps = client.AppsV1Api(api)
    return found + [("Deployment", d.metadata.name) for d in apps.list_namespaced_deployment(namespace).items]


def test_check_mode_on_an_empty_cluster_plans_every_revision_and_writes_nothing(run, api, cluster, binaries):
    before = api_request_counts(cluster.kubeconfig)
    result = run(three(binaries), check=True, diff=True)
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert result["changed"] is True, result.get("msg")
    planned = {(o["kind"], o["namespace"], o["name"]) for o in result["objects"]}
    for name in NAMES:
        assert ("Deployment", name, f"istiod-{name}") in planned and ("Namespace", "", name) in planned
    assert [r["name"] for r in result["revisions"]] == list(NAMES)
    assert all(written_by(api, name) == [] for name in NAMES)


def test_three_revisions_converge_in_one_run(run, api, binaries):
    result = run(three(binaries))
    assert result["changed"] is True, result.get("msg")
    assert {(name, f"istiod-{name}") for name in NAMES} <= istiods(api)
    by_name = {r["name"]: r for r in result["revisions"]}
    assert list(by_name) == list(NAMES)
    for name in NAMES:
        facts = by_name[name]
        assert facts["namespace"] == name and facts["changed"] is True and facts["rolled_out"] is False
        assert facts["injector_webhook"] == f"istio-sidecar-injector-{name}-{name}"
        assert facts["trust_bundle"] == f"istio-ca-root-cert-{name}"
        labels = client.CoreV1Api(api).read_namespace(name).metadata.labels
        assert labels["usergroup"] == name
        deployment = client.AppsV1Api(api).read_namespaced_deployment(f"istiod-{name}", name)
        assert deployment.status.available_replicas == deployment.spec.replicas  # wait: true awaited every rollout


def test_a_no_op_rerun_sends_no_write(run, cluster, binaries):
    before = api_request_counts(cluster.kubeconfig)
    result = run(three(binaries))
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert result["changed"] is False and result["objects"] == [], result.get("objects")
    assert [(r["name"], r["changed"], r["rolled_out"]) for r in result["revisions"]] == [
        (name, False, True) for name in NAMES
    ]


def test_an_entry_overlapping_an_installed_revision_fails_alone_and_writes_nothing(run, api, binaries):
    overlapping = entry("batch-4", discovery_selectors=[{"matchLabels": {"usergroup": "batch-1"}}])
    args = batch(binaries, *(entry(name) for name in NAMES), overlapping, entry("batch-5"))
    result = run(args)
    assert result.get("failed") is True
    assert list(result["failed_revisions"]) == ["batch-4"]
    reason = result["failed_revisions"]["batch-4"]
    assert reason.startswith("revisions[3] (batch-4): discovery_selectors overlap with revision batch-1"), reason
    assert "1 of 5 revisions failed" in result["msg"]
    assert "The other revisions (batch-1, batch-2, batch-3, batch-5) were converged." in result["msg"]
    assert ("batch-5", "istiod-batch-5") in istiods(api)
    assert [r["name"] for r in result["revisions"]] == ["batch-1", "batch-2", "batch-3", "batch-5"]
    assert written_by(api, "batch-4") == []
    assert {(o["namespace"], o["name"]) for o in result["objects"] if o["kind"] == "Deployment"} == {
        ("batch-5", "istiod-batch-5")
    }


def test_drift_on_one_revisions_object_is_repaired_by_the_batch_run(run, api, cluster, binaries):
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    args = three(binaries)
    injector = "istio-sidecar-injector-batch-2"
    kept = core.read_namespaced_config_map(injector, "batch-2").data
    core.patch_namespaced_config_map(injector, "batch-2", {"data": {"values": "{}"}}, field_manager="by-hand")
    apps.patch_namespaced_deployment(
        "istiod-batch-3", "batch-3", {"metadata": {"labels": {"operator.istio.io/managed": "by-hand"}}},
        field_manager="by-hand",
    )  # fmt: skip
    repaired = run(args)
    assert repaired["changed"] is True, repaired.get("msg")
    assert {(o["kind"], o["namespace"], o["name"], o["action"]) for o in repaired["objects"]} == {
        ("ConfigMap", "batch-2", injector, "updated"), ("Deployment", "batch-3", "istiod-batch-3", "updated"),
    }  # fmt: skip
    assert [r["name"] for r in repaired["revisions"] if r["changed"]] == ["batch-2", "batch-3"]
    assert core.read_namespaced_config_map(injector, "batch-2").data == kept
    labels = apps.read_namespaced_deployment("istiod-batch-3", "batch-3").metadata.labels
    assert labels["operator.istio.io/managed"] == "Reconcile"
    before = api_request_counts(cluster.kubeconfig)
    again = run(args)
    assert again["changed"] is False and writes(before, api_request_counts(cluster.kubeconfig)) == {}
