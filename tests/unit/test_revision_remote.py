"""istio_revision for primary-remote meshes: the remote profile's values, the controlPlaneClusters annotation and the
refusals that keep a remote's injector pointed somewhere (pure, no cluster)."""

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.revision import REMOVAL_ONLY_KINDS, REVISION_KINDS
from ansible_collections.meshops.istio.plugins.module_utils.revision_render import (
    injection_path,
    operator_spec,
    system_namespace,
)
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import RevisionSpec, validate
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC
from ansible_collections.meshops.istio.plugins.modules.istio_revision import ARGUMENT_SPEC


def params(**overrides):
    """The RevisionSpec istio_revision builds for a second cluster's parameters, the others at the module's defaults."""
    given = {
        "name": "mesh",
        "namespace": "istio-system",
        "mesh_id": "mesh1",
        "cluster_name": "cluster2",
        "network": "network2",
        **overrides,
    }
    defaults = {key: option.get("default") for key, option in {**COMMON_ARG_SPEC, **ARGUMENT_SPEC}.items()}
    return RevisionSpec.from_params(defaults | given)


def remote(**overrides):
    return params(profile="remote", remote_pilot_address="192.0.2.10", **overrides)


def test_remote_profile_points_the_injector_at_the_primary_on_the_cluster_and_network_path():
    values = operator_spec(remote())["values"]
    assert values["global"]["remotePilotAddress"] == "192.0.2.10"
    assert values["istiodRemote"] == {"injectionPath": "/inject/cluster/cluster2/net/network2"}
    assert values["global"]["multiCluster"] == {"clusterName": "cluster2"}


def test_remote_profile_renders_the_mesh_config_map_next_to_pilot_env():
    values = operator_spec(remote(pilot_env={"A": 1}))["values"]
    assert values["pilot"] == {"env": {"A": "1"}, "configMap": True}


def test_primary_profiles_get_neither_remote_values_nor_a_forced_config_map():
    values = operator_spec(params(pilot_env={"EXTERNAL_ISTIOD": True}))["values"]
    assert "istiodRemote" not in values and "remotePilotAddress" not in values["global"]
    assert values["pilot"] == {"env": {"EXTERNAL_ISTIOD": "True"}}


def test_injection_path_names_cluster_and_network():
    assert injection_path("c-2", "net-b") == "/inject/cluster/c-2/net/net-b"


def test_control_plane_clusters_annotate_the_system_namespace():
    namespace = system_namespace(remote(control_plane_clusters=["cluster1", "cluster3"]))
    assert namespace["metadata"]["annotations"] == {"topology.istio.io/controlPlaneClusters": "cluster1,cluster3"}
    assert namespace["metadata"]["labels"] == {"topology.istio.io/network": "network2"}


def test_no_control_plane_clusters_no_annotation():
    assert "annotations" not in system_namespace(params())["metadata"]


def test_remote_istiod_endpoints_go_with_the_revision_but_controller_slices_are_never_pruned():
    assert "EndpointSlice" in REMOVAL_ONLY_KINDS and "EndpointSlice" not in REVISION_KINDS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"profile": "remote"}, "profile remote needs remote_pilot_address"),
        ({"profile": "remote", "network": None, "cluster_name": ""}, "profile remote needs cluster_name, network"),
        ({"remote_pilot_address": "192.0.2.10"}, "remote_pilot_address is only for profile remote"),
        ({"control_plane_clusters": ["a,b"]}, "control_plane_clusters entry 'a,b' must be a cluster name"),
        ({"control_plane_clusters": [""]}, "control_plane_clusters entry '' must be a cluster name"),
    ],
)
def test_refusals_name_the_parameter(overrides, message):
    with pytest.raises(Refusal, match=message):
        validate(params(**overrides))


def test_a_complete_remote_passes():
    validate(remote(control_plane_clusters=["cluster1"]))
