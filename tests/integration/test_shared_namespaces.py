"""A shared namespace through multitenant.yml and verify.yml against a real API server: tenant team-a's control plane
discovers tenant platform's namespace, both tenants with intermediates of one root. Check mode on the empty cluster
writes nothing, the install passes the overlap guards, a re-run writes nothing, verify reports the shared namespace,
and a control plane of another root that selects it is refused with nothing written. The tests build on each other
in file order."""

import base64

import pytest
import yaml
from kubernetes import client
from localcluster import api_request_counts, writes
from playbook import playbook

NAME = "kubernetes.io/metadata.name"
TENANTS = [
    {"name": "platform", "namespaces": ["platform-svc"], "ca": True, "ca_root": "corp", "create_namespaces": True},
    {
        "name": "team-a",
        "namespaces": ["team-a-app"],
        "ca": True,
        "ca_root": "corp",
        "shared_namespaces": ["platform-svc"],
        "create_namespaces": True,
    },
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("data")
    path = directory / "tenants.yml"
    path.write_text(yaml.safe_dump({"tenants": TENANTS, "ca_root_dir": str(directory / "pki")}))
    return f"@{path}", directory / "pki"


def _root_cert(core, namespace) -> bytes:
    return base64.b64decode(core.read_namespaced_secret("cacerts", namespace).data["root-cert.pem"])


def test_check_mode_on_an_empty_cluster_passes_and_writes_nothing(cluster, data, istioctl):
    before = api_request_counts(cluster.kubeconfig)
    playbook(cluster, "multitenant.yml", "--check", "-e", istioctl, "-e", data[0])
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_the_install_gives_both_tenants_one_root_and_team_a_a_name_selector(cluster, data, istioctl):
    playbook(cluster, "multitenant.yml", "-e", istioctl, "-e", data[0])
    core = client.CoreV1Api(cluster.api_client())
    assert _root_cert(core, "platform") == _root_cert(core, "team-a")
    assert sorted(path.name for path in data[1].iterdir()) == ["corp"]
    mesh = yaml.safe_load(core.read_namespaced_config_map("istio-team-a", "team-a").data["mesh"])
    assert mesh["discoverySelectors"] == [
        {"matchLabels": {"meshops.io/tenant": "team-a"}},
        {"matchExpressions": [{"key": NAME, "operator": "In", "values": ["platform-svc"]}]},
    ]
    labels = core.read_namespace("platform-svc").metadata.labels
    assert labels["istio.io/rev"] == "platform" and labels["meshops.io/tenant"] == "platform"


def test_a_re_run_and_a_check_mode_run_write_nothing(cluster, data, istioctl):
    before = api_request_counts(cluster.kubeconfig)
    playbook(cluster, "multitenant.yml", "-e", istioctl, "-e", data[0])
    playbook(cluster, "multitenant.yml", "--check", "-e", istioctl, "-e", data[0])
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def _isolation_facts(output) -> dict:
    [facts] = [
        host
        for play in output["plays"]
        for task in play["tasks"]
        if task["task"]["name"] == "Read the isolation facts"
        for host in task["hosts"].values()
    ]
    return facts


def test_verify_reports_the_shared_namespace(cluster, data, istioctl):
    output = playbook(cluster, "verify.yml", "-e", istioctl, "-e", data[0], "-e", "verify_analyze=false")[1]
    facts = _isolation_facts(output)
    shared = facts["shared_namespaces"]["platform-svc"]
    assert shared["selected_by"] == ["platform", "team-a"] and shared["injected_by"] == "platform"
    [root] = facts["revisions"]["team-a"]["cacerts"]["root_certificates"]
    assert shared["problem"] is None and shared["root"] == root["fingerprint_sha256"]


def test_a_control_plane_of_another_root_selecting_it_is_refused_with_nothing_written(
    cluster, data, istioctl, run, binaries, tmp_path
):
    other = {"name": "team-x", "namespaces": ["team-x-app"], "ca": True, "create_namespaces": True,
             "shared_namespaces": ["platform-svc"]}  # fmt: skip
    # The plan refuses it first: team-x does not share platform's root.
    mixed = tmp_path / "mixed.yml"
    mixed.write_text(yaml.safe_dump({"tenants": [*TENANTS, other], "ca_root_dir": str(data[1])}))
    before = api_request_counts(cluster.kubeconfig)
    code, output = playbook(cluster, "multitenant.yml", "-e", istioctl, "-e", f"@{mixed}", check=False)
    assert code != 0 and "tenants team-x and platform do not share a root" in str(output)
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    # The guard refuses it too, without the plan: a revision whose cacerts holds another root.
    issued = run(
        {"root_dir": str(tmp_path / "other-root"), "cluster_name": "team-x", "namespace": "team-x"},
        module="meshops.istio.istio_cacerts",
    )
    assert issued["changed"], issued
    selectors = [{"matchLabels": {"meshops.io/tenant": "team-x"}},
                 {"matchExpressions": [{"key": NAME, "operator": "In", "values": ["platform-svc"]}]}]  # fmt: skip
    args = {"name": "team-x", "namespace": "team-x", "istioctl_path": str(binaries / "istioctl"),
            "discovery_selectors": selectors, "own_trust_bundle": True, "wait": False}  # fmt: skip
    before = api_request_counts(cluster.kubeconfig)
    refused = run(args, module="meshops.istio.istio_revision")
    assert refused.get("failed"), refused
    assert "overlap with revision platform: both select namespaces platform-svc" in refused["msg"]
    assert "hold different roots" in refused["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
