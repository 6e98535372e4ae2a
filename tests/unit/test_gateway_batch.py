"""istio_gateway's batch form (option `gateways`) against the recording fake client: reads that grow with the kinds,
not with the gateways; one gateway in the way set aside while the others converge; bad entries refused whole."""

import dataclasses

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster
from ansible_collections.meshops.istio.plugins.module_utils.errors import EntriesFailed, Refusal
from ansible_collections.meshops.istio.plugins.module_utils.gateway.ensure import GatewaysRun, ensure_gateways
from ansible_collections.meshops.istio.plugins.module_utils.gateway.spec import validate_gateways
from ansible_collections.meshops.istio.plugins.module_utils.runner import Rehearsal, rehearse_then_run
from test_engine import FakeClient, api_error
from test_gateway import gateway

DISCOVERY = {"istio-discovery": "enabled"}


def revision_config_map() -> dict:
    mesh = yaml.safe_dump({"discoverySelectors": [{"matchLabels": DISCOVERY}]})
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "istio-shared", "namespace": "istio-system", "labels": {"istio.io/rev": "shared"}},
        "data": {"mesh": mesh},
    }


def namespace(name: str) -> dict:
    labels = {**DISCOVERY, "istio.io/rev": "shared"}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def tenants(count: int) -> list:
    return [f"tenant-{index:03d}" for index in range(count)]


def specs_for(names: list) -> list:
    return [
        gateway(namespace=name, wait=False, service={"type": "NodePort", "ports": [
            {"name": "http2", "port": 80, "target_port": 8080, "node_port": 30000 + index}]})
        for index, name in enumerate(names)
    ]  # fmt: skip


def cluster_with(names: list) -> tuple:
    fake = FakeClient([revision_config_map(), *(namespace(name) for name in names)])
    return fake, Cluster(fake)


def run(cluster: Cluster, specs: list, check_mode: bool = False) -> tuple:
    return rehearse_then_run(GatewaysRun(specs), cluster, [cluster], check_mode)


def reads(fake: FakeClient) -> list:
    return fake.verbs("list", "get")


@pytest.mark.parametrize("count", [3, 12])
def test_a_no_op_rerun_reads_one_list_per_kind_whatever_the_number_of_gateways(count):
    names = tenants(count)
    fake, cluster = cluster_with(names)
    result = run(cluster, specs_for(names))[0]
    assert result["changed"] is True
    assert [g["namespace"] for g in result["gateways"]] == names
    fake.calls.clear()
    again = run(cluster, specs_for(names))[0]
    assert again["changed"] is False and again["objects"] == []
    assert fake.writes() == []
    # Revisions, tags, namespaces, Services, and each other kind a gateway owns (Gateway API Gateways and their
    # parameter ConfigMaps included): 14 LISTs, no GET.
    assert [call[0] for call in reads(fake)] == ["list"] * 14, reads(fake)


def test_a_first_run_looks_same_named_objects_up_once_per_kind_and_name():
    names = tenants(5)
    fake, cluster = cluster_with(names)
    ensure_gateways(cluster, specs_for(names), True)
    by_name = [c for c in fake.calls if c.verb == "list" and c.options.get("label_selector") is None]
    # Namespaces, Services, and one field-selected LIST per other kind the gateways create (SA, Role, RoleBinding,
    # Deployment, HPA, PDB): not one read per gateway.
    assert sorted(c.kind for c in by_name) == sorted(
        ["Namespace", "Service", "ServiceAccount", "Role", "RoleBinding", "Deployment", "HorizontalPodAutoscaler",
         "PodDisruptionBudget"]
    )  # fmt: skip
    assert fake.verbs("get") == []


def test_a_same_named_object_of_others_sets_its_gateway_aside_and_the_others_converge():
    names = tenants(3)
    fake, cluster = cluster_with(names)
    metadata = {"name": "istio-ingressgateway", "namespace": names[1], "labels": {"made-by": "hand"}}
    hand_made = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata}
    fake.store[("ServiceAccount", names[1], "istio-ingressgateway")] = hand_made
    with pytest.raises(EntriesFailed) as failed:
        run(cluster, specs_for(names))
    message = str(failed.value)
    assert message.startswith("1 of 3 gateways failed: gateways[1] (tenant-001/istio-ingressgateway): ")
    assert "ServiceAccount tenant-001/istio-ingressgateway already exists and was not created by" in message
    assert "The other gateways (tenant-000/istio-ingressgateway, tenant-002/istio-ingressgateway) were converged" in (
        message
    )
    assert list(failed.value.result["failed_gateways"]) == ["tenant-001/istio-ingressgateway"]
    written = {call[2] for call in fake.writes()}
    assert written == {names[0], names[2]}
    assert fake.store[("ServiceAccount", names[1], "istio-ingressgateway")] == hand_made


def test_a_plan_the_api_server_rejects_writes_nothing_for_any_gateway():
    names = tenants(3)
    fake, cluster = cluster_with(names)
    fake.failures[("apply", "istio-ingressgateway")] = api_error(422, "Deployment is invalid")
    with pytest.raises(Rehearsal, match="is invalid"):
        run(cluster, specs_for(names))
    assert [call for call in fake.calls if call.verb == "apply" and call.options["dry_run"] is None] == []


def test_check_mode_is_a_dry_run_of_every_gateway_and_stores_nothing():
    names = tenants(2)
    fake, cluster = cluster_with(names)
    result, warnings, diff = run(cluster, specs_for(names), check_mode=True)
    assert result["changed"] is True and len(diff) == 2 * 7
    assert {call.options["dry_run"] for call in fake.calls if call.verb == "apply"} == {"All"}
    assert not [key for key in fake.store if key[0] == "Deployment"]


def test_bad_entries_are_refused_together_each_named_by_its_index():
    specs = specs_for(tenants(3))
    specs[1] = dataclasses.replace(specs[1], name="Bad_Name")
    specs[2] = dataclasses.replace(specs[2], service=specs[0].service)
    with pytest.raises(Refusal) as refused:
        validate_gateways(specs)
    message = str(refused.value)
    assert "gateways[1]: name 'Bad_Name' must be" in message
    assert "gateways[2].service.ports[0].node_port 30000 is also wanted by gateways[0]" in message


def test_the_same_gateway_twice_is_refused():
    spec = specs_for(["foo"])[0]
    with pytest.raises(Refusal, match=r"gateways\[1\]: gateway foo/istio-ingressgateway is gateways\[0\] too"):
        validate_gateways([spec, spec])


def test_removal_deletes_each_gateways_objects_and_nothing_else():
    names = tenants(3)
    fake, cluster = cluster_with(names)
    run(cluster, specs_for(names))
    leaving = [dataclasses.replace(spec, state="absent") for spec in specs_for(names[:2])]
    fake.calls.clear()
    result = run(cluster, leaving)[0]
    assert {o["namespace"] for o in result["objects"]} == set(names[:2])
    assert {o["action"] for o in result["objects"]} == {"deleted"}
    assert [key for key in fake.store if key[0] == "Deployment"] == [("Deployment", names[2], "istio-ingressgateway")]


def test_a_gateway_in_the_way_while_the_others_need_nothing_fails_alone_with_nothing_written():
    names = tenants(2)
    fake, cluster = cluster_with(names)
    run(cluster, specs_for(names[:1]))
    metadata = {"name": "istio-ingressgateway", "namespace": names[1], "labels": {"made-by": "hand"}}
    fake.store[("ServiceAccount", names[1], "istio-ingressgateway")] = {
        "apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata
    }  # fmt: skip
    fake.calls.clear()
    with pytest.raises(Rehearsal) as failed:
        run(cluster, specs_for(names))
    assert list(failed.value.result["failed_gateways"]) == [f"{names[1]}/istio-ingressgateway"]
    assert fake.writes() == []
