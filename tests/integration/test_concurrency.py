"""Two runs in parallel that claim the same thing (a namespace, the same discovery selectors): exactly one succeeds
and the other fails with a sentence naming the conflict, in every round; never both. The claims lock (a Lease)
makes the second run check against what the first one wrote."""

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from kubernetes import client
from playbook import run_task

TENANT, REVISION = "meshops.istio.istio_tenant", "meshops.istio.istio_revision"
ROUNDS = 5


def in_parallel(cluster, tmp_path, tasks: list) -> list:
    """Each (module, args) run by its own ansible-playbook, all started together."""
    for index in range(len(tasks)):
        (tmp_path / str(index)).mkdir()
    with ThreadPoolExecutor(len(tasks)) as pool:
        futures = [
            pool.submit(run_task, cluster.kubeconfig, module, args, tmp_path=tmp_path / str(index))
            for index, (module, args) in enumerate(tasks)
        ]
        return [future.result() for future in futures]


def revision(binaries, name, team, **overrides):
    args = {
        "name": name,
        "namespace": f"istio-{name}",
        "istioctl_path": str(binaries / "istioctl"),
        "discovery_selectors": [{"matchLabels": {"team": team}}],
        "wait": False,
    }
    return REVISION, {**args, **overrides}


@pytest.fixture(scope="module")
def two_revisions(run, binaries):
    for name, team in (("rev-x", "x"), ("rev-y", "y")):
        result = run(revision(binaries, name, team)[1], module=REVISION)
        assert not result.get("failed"), result["msg"]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_tenants_claiming_one_namespace_in_parallel_one_wins(cluster, api, tmp_path, two_revisions, round_):
    namespace = f"contested-{round_}"
    tasks = [
        (TENANT, {"name": f"{team}-{round_}", "revision": f"rev-{team}", "namespaces": [namespace],
                  "discovery_label": {"team": team}})
        for team in ("x", "y")
    ]  # fmt: skip
    results = in_parallel(cluster, tmp_path, tasks)

    failed = [r for r in results if r.get("failed")]
    assert len(failed) == 1, [r.get("msg") for r in results]
    winner = tasks[results.index(next(r for r in results if not r.get("failed")))][1]["name"]
    # Under the lock the loser's guard names the namespace's owner; racing the winner's writes before it, the loser's
    # dry run names the owner of the first object it would take. Either way nothing of the loser's is written.
    assert re.search(f"belongs to (meshops.istio's )?tenant {winner}\\b", failed[0]["msg"]), failed[0]["msg"]
    assert not failed[0].get("objects"), failed[0]["objects"]
    labels = client.CoreV1Api(api).read_namespace(namespace).metadata.labels
    assert labels["meshops.io/tenant"] == winner
    sidecars = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "networking.istio.io", "v1", namespace, "sidecars"
    )["items"]
    assert {s["metadata"]["labels"]["meshops.io/tenant"] for s in sidecars} == {winner}


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_revisions_with_the_same_selectors_in_parallel_one_wins(cluster, api, binaries, tmp_path, round_):
    team = f"o{round_}"
    tasks = [revision(binaries, f"rev-{team}-{n}", team) for n in (1, 2)]
    results = in_parallel(cluster, tmp_path, tasks)

    failed = [r for r in results if r.get("failed")]
    assert len(failed) == 1, [r.get("msg") for r in results]
    assert "discoverySelectors" in failed[0]["msg"] or "overlap" in failed[0]["msg"], failed[0]["msg"]
    assert not failed[0].get("objects"), failed[0].get("objects")
    config_maps = client.CoreV1Api(api).list_config_map_for_all_namespaces(label_selector="istio.io/rev").items
    installed = {cm.metadata.labels["istio.io/rev"] for cm in config_maps if cm.metadata.name.startswith("istio-rev-o")}
    assert len({name for name in installed if name.startswith(f"rev-{team}-")}) == 1


def test_the_lock_is_given_back_after_each_run(api, two_revisions):
    from kubernetes.client.rest import ApiException

    with pytest.raises(ApiException) as raised:
        client.CoordinationV1Api(api).read_namespaced_lease("meshops-istio-claims", "kube-system")
    assert raised.value.status == 404
