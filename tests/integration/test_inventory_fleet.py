"""The playbooks as users run them: an inventory of clusters (group meshops_clusters, each host with its own
kubeconfig), tenants in group_vars and host_vars, several clusters in one run under forks; no tenants, bad tenant
data and bad role variables refused before any write; --check --diff of new data planning the whole run.

The tests build on each other in file order on three local clusters: c1 and c2 dedicated, c3 shared."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from localcluster import api_request_counts, writes
from localcluster.cluster import REPO_ROOT
from playbook import ANSIBLE_ENV, failures

DEMO_NAMESPACES = {"app-ns-1", "app-ns-2", "app-ns-3", "usergroup-1", "usergroup-2", "foo", "bar"}
# What each cluster gets: c1 the group's tenants, c2 and c3 their own (c3 in the shared model, from its host vars).
GROUP_TENANTS = [{"name": "team-a", "namespaces": ["team-a-web"]}]
HOST_VARS = {
    "c1": {},
    "c2": {
        "tenants": [
            {"name": "team-b", "namespaces": ["team-b-web", "team-b-db"]},
            {"name": "team-c", "namespaces": ["team-c-web"], "discovery_label": {"usergroup": "team-c"}},
        ]
    },
    "c3": {"tenancy_model": "shared", "tenants": [{"name": "shop", "namespaces": ["shop"], "gateway": {}}]},
}
EXPECTED_REVISIONS = {
    "c1": {"team-a-web": "team-a"},
    "c2": {"team-b-web": "team-b", "team-b-db": "team-b", "team-c-web": "team-c"},
    "c3": {"shop": "shared"},
}


def write_inventory(directory: Path, hosts: dict, group_vars: dict, host_vars: dict) -> Path:
    """An inventory directory: hosts.yml (group meshops_clusters, connection local, each host's kubeconfig),
    group_vars/meshops_clusters.yml and host_vars/<host>.yml, as a user would write them."""
    (directory / "group_vars").mkdir(parents=True, exist_ok=True)
    (directory / "host_vars").mkdir(exist_ok=True)
    inventory = {
        "meshops_clusters": {
            "hosts": {name: {"kubeconfig": str(kubeconfig)} for name, kubeconfig in hosts.items()},
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        }
    }
    (directory / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (directory / "group_vars" / "meshops_clusters.yml").write_text(yaml.safe_dump(group_vars))
    for name, variables in host_vars.items():
        (directory / "host_vars" / f"{name}.yml").write_text(yaml.safe_dump(variables))
    return directory


def run(inventory: Path, name: str, *extra, forks: int = 4) -> tuple:
    """(exit code, json output) of `ansible-playbook -i <inventory> playbooks/<name>`: no K8S_AUTH_* in the
    environment, so each host reaches its cluster through its own kubeconfig only."""
    env = {key: value for key, value in ANSIBLE_ENV.items() if not key.startswith("K8S_AUTH_")}
    command = ["ansible-playbook", "-i", str(inventory), "-f", str(forks), f"playbooks/{name}", *extra]
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"no JSON from ansible-playbook:\n{result.stdout}\n{result.stderr}") from error


def host_results(output, host: str, task_prefix: str = "") -> list:
    return [
        task["hosts"][host]
        for play in output["plays"]
        for task in play["tasks"]
        if host in task["hosts"] and task["task"]["name"].startswith(task_prefix)
    ]


def planned_objects(output, host: str) -> set:
    """(kind, namespace, name, action) of every object the run's modules reported for this host."""
    found = set()
    for result in host_results(output, host):
        for item in [result, *result.get("results", [])]:
            for obj in item.get("objects") or []:
                found.add((obj["kind"], obj.get("namespace"), obj["name"], obj["action"]))
    return found


def revision_labels(cluster) -> dict:
    return {
        ns.metadata.name: (ns.metadata.labels or {}).get("istio.io/rev")
        for ns in client.CoreV1Api(cluster.api_client()).list_namespace().items
    }


def counts(clusters) -> dict:
    return {cluster.name: api_request_counts(cluster.kubeconfig) for cluster in clusters}


def no_writes(clusters, before: dict) -> dict:
    """{cluster: writes} for every cluster that received a write since `before`."""
    after = counts(clusters)
    return {name: sent for name, sent in ((n, writes(before[n], after[n])) for n in before) if sent}


@pytest.fixture(scope="module")
def fleet(three_clusters, binaries, tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet")
    group_vars = {
        "tenancy_model": "dedicated",
        "tenants": GROUP_TENANTS,
        "istioctl_path": str(binaries / "istioctl"),
        "gateways_wait": False,  # no istiod answers the gateway injector on a local cluster
        "ca_root_dir": str(root / "pki"),
    }
    hosts = {cluster.name: cluster.kubeconfig for cluster in three_clusters}
    inventory = write_inventory(root / "inventory", hosts, group_vars, HOST_VARS)
    return {"clusters": three_clusters, "inventory": inventory, "group_vars": group_vars, "root": root}


def test_group_and_host_vars_drive_three_clusters_in_one_run(fleet):
    code, output = run(fleet["inventory"], "multitenant.yml")
    assert code == 0, failures(output)
    for cluster in fleet["clusters"]:
        labels = revision_labels(cluster)
        assert {ns: labels.get(ns) for ns in EXPECTED_REVISIONS[cluster.name]} == EXPECTED_REVISIONS[cluster.name]
        assert not DEMO_NAMESPACES & labels.keys(), f"{cluster.name} got demo namespaces"
        assert output["stats"][cluster.name]["changed"] > 0
    # c3's host vars chose the shared model: one control plane, the tenant's gateway.
    c3 = client.AppsV1Api(fleet["clusters"][2].api_client())
    assert [d.metadata.name for d in c3.list_namespaced_deployment("istio-system").items] == ["istiod-shared"]
    assert c3.read_namespaced_deployment("istio-ingressgateway", "shop")


def test_a_second_run_sends_no_write_to_any_cluster(fleet):
    before = counts(fleet["clusters"])
    code, output = run(fleet["inventory"], "multitenant.yml")
    assert code == 0, failures(output)
    assert {cluster.name: output["stats"][cluster.name]["changed"] for cluster in fleet["clusters"]} == {
        "c1": 0,
        "c2": 0,
        "c3": 0,
    }
    assert no_writes(fleet["clusters"], before) == {}


def test_an_unreachable_cluster_fails_alone_while_the_others_converge(fleet):
    c1, c2 = fleet["clusters"][:2]
    kubeconfig = yaml.safe_load(Path(c1.kubeconfig).read_text())
    for entry in kubeconfig["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens there: connection refused
    broken = fleet["root"] / "broken.kubeconfig"
    broken.write_text(yaml.safe_dump(kubeconfig))
    host_vars = {
        "c1": {"tenants": [{"name": "team-a", "namespaces": ["team-a-web", "team-a-api"]}]},
        "c2": HOST_VARS["c2"],
        "broken": {"tenants": [*GROUP_TENANTS, {"name": "team-x", "namespaces": ["team-x-web"]}]},
    }
    inventory = write_inventory(
        fleet["root"] / "with-broken",
        {"c1": c1.kubeconfig, "broken": broken, "c2": c2.kubeconfig},
        fleet["group_vars"],
        host_vars,
    )
    before = counts([c2])
    code, output = run(inventory, "multitenant.yml")
    assert code != 0
    assert output["stats"]["broken"]["failures"] == 1
    assert output["stats"]["c1"]["failures"] == 0 and output["stats"]["c2"]["failures"] == 0
    # Both of its tenants failed for one reason, said once by the play's last task.
    message = failures(output)[-1]
    assert message.count("Cannot reach the Kubernetes API") == 1, message
    assert "team-a, team-x: Cannot reach" in message, message
    # c1 converged its change in the same run; c2 had nothing to change and was sent nothing.
    assert revision_labels(c1)["team-a-api"] == "team-a"
    assert no_writes([c2], before) == {}


def test_no_tenants_fails_at_once_saying_where_to_put_them(fleet, tmp_path):
    c1 = fleet["clusters"][0]
    group_vars = {key: value for key, value in fleet["group_vars"].items() if key != "tenants"}
    inventory = write_inventory(tmp_path / "inventory", {"c1": c1.kubeconfig}, group_vars, {})
    before = counts([c1])
    code, output = run(inventory, "multitenant.yml")
    assert code != 0
    [message] = failures(output)
    assert message.startswith("No tenants for c1: describe them as `tenants:` in the inventory")
    assert "group_vars/meshops_clusters.yml" in message and "host_vars/c1.yml" in message
    assert no_writes([c1], before) == {}


def test_an_unknown_tenant_key_fails_naming_it_before_any_write(fleet, tmp_path):
    c1 = fleet["clusters"][0]
    tenants = [{"name": "team-z", "namespaces": ["team-z-web"], "discovery_lable": {"usergroup": "team-z"}}]
    inventory = write_inventory(
        tmp_path / "inventory", {"c1": c1.kubeconfig}, {**fleet["group_vars"], "tenants": tenants}, {}
    )
    before = counts([c1])
    code, output = run(inventory, "multitenant.yml")
    assert code != 0
    [message] = failures(output)
    assert "tenants[0] (team-z): unknown key 'discovery_lable' (did you mean discovery_label?)" in message
    assert no_writes([c1], before) == {}
    assert "team-z-web" not in revision_labels(c1)


@pytest.mark.parametrize(
    ("role_vars", "expected"),
    [
        ({"control_plane_namespace": "team-q"}, "missing required arguments: control_plane_name"),
        ({"control_plane_name": "team-q", "control_plane_wait_timeout": "soon"}, "control_plane_wait_timeout"),
        (
            {"control_plane_name": "team-q", "control_plane_discovery_selector": [{"matchLabels": {"a": "b"}}]},
            "Role meshops.istio.control_plane has no variable control_plane_discovery_selector (misspelled?)",
        ),
    ],
    ids=["missing", "wrong-type", "misspelled"],
)
def test_a_bad_role_variable_fails_naming_it_before_any_write(fleet, tmp_path, role_vars, expected):
    c1 = fleet["clusters"][0]
    task = {"name": "control plane", "ansible.builtin.include_role": {"name": "meshops.istio.control_plane"}}
    play = [{"name": "role", "hosts": "localhost", "gather_facts": False, "tasks": [{**task, "vars": role_vars}]}]
    path = tmp_path / "role.yml"
    path.write_text(yaml.safe_dump(play))
    env = {**ANSIBLE_ENV, "K8S_AUTH_KUBECONFIG": str(c1.kubeconfig)}
    before = counts([c1])
    result = subprocess.run(["ansible-playbook", str(path)], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=300, check=False)  # fmt: skip
    assert result.returncode != 0
    assert expected in " ".join(str(m) for m in failures(json.loads(result.stdout)))
    assert no_writes([c1], before) == {}


NEW_DATA = {
    "dedicated": {
        "tenancy_model": "dedicated",
        "tenants": [
            {"name": "team-x", "namespaces": ["team-x-web"], "ca": True},
            {"name": "team-y", "namespaces": ["team-y-web", "team-y-db"]},
        ],
    },
    "shared": {
        "tenancy_model": "shared",
        "shared_control_plane": {"name": "mesh-x", "namespace": "mesh-x-system"},
        "tenants": [
            {"name": "shop-x", "namespaces": ["shop-x"], "gateway": {}},
            {"name": "blog-x", "namespaces": ["blog-x"]},
        ],
    },
}
PLANNED = {
    "dedicated": {
        ("Deployment", "team-x", "istiod-team-x", "created"),
        ("Secret", "team-x", "cacerts", "created"),
        ("Namespace", "", "team-y-db", "created"),
        ("PeerAuthentication", "team-y-db", "default", "created"),
        ("AuthorizationPolicy", "team-x-web", "meshops-tenant-isolation", "created"),
    },
    "shared": {
        ("Deployment", "mesh-x-system", "istiod-mesh-x", "created"),
        ("Namespace", "", "shop-x", "created"),
        ("Sidecar", "blog-x", "default", "created"),
        ("Deployment", "shop-x", "istio-ingressgateway", "created"),
        ("Service", "shop-x", "istio-ingressgateway", "created"),
    },
}
FOLLOW_UPS = {
    "dedicated": [
        ("upgrade.yml", "-e", "upgrade_tenant=team-x", "-e", "upgrade_to_revision=team-x-v2"),
        ("uninstall.yml", "-e", "uninstall_tenant=team-x"),
    ],
    "shared": [
        ("upgrade.yml", "-e", "upgrade_to_revision=mesh-x-v2"),
        ("uninstall.yml", "-e", "uninstall_all=true", "-e", "uninstall_confirm=true"),
    ],
}


@pytest.mark.parametrize("model", ["dedicated", "shared"])
def test_check_diff_of_new_data_plans_the_whole_run_and_writes_nothing(fleet, tmp_path, model):
    c2 = fleet["clusters"][1]
    group_vars = {**fleet["group_vars"], **NEW_DATA[model], "ca_root_dir": str(tmp_path / "pki")}
    inventory = write_inventory(tmp_path / "inventory", {"c2": c2.kubeconfig}, group_vars, {})
    before = counts([c2])
    code, output = run(inventory, "multitenant.yml", "--check", "--diff")
    assert code == 0, failures(output)
    assert PLANNED[model] <= planned_objects(output, "c2")
    # One warning line says where the check relies on the plan rather than the cluster.
    assert "check mode: revision" in json.dumps(output)
    for playbook, *extra in FOLLOW_UPS[model]:
        code, output = run(inventory, playbook, "--check", "--diff", *extra)
        assert code == 0, (playbook, failures(output))
    assert no_writes([c2], before) == {}
    assert not {"team-x-web", "shop-x"} & revision_labels(c2).keys()
    assert not os.path.exists(tmp_path / "pki" / "team-x" / "root-key.pem")
