"""playbooks/multicluster.yml for a primary-remote mesh on two networks, against two real API servers: check mode on
fresh clusters writes nothing, one run installs both sides, a second run writes nothing, and verify-multicluster.yml
holds until the mesh is broken by hand (and again after a re-run repairs it).

cluster1 is the primary, cluster2 the remote. Both local API servers listen on 127.0.0.1, hence allow_loopback. The
remote reaches the primary's east-west gateway through a load balancer the local clusters cannot provide, so
remote_pilot_address stands in for its address (TEST-NET-1). No istiod runs, so gateways are not awaited."""

import base64
import json
import os
import subprocess
from dataclasses import dataclass
from xml.etree import ElementTree

import pytest
import xmlschema
import yaml
from accounts import bind
from cryptography import x509
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from localcluster import api_request_counts, writes
from localcluster.cluster import REPO_ROOT

NAMESPACE = "istio-system"
REMOTE_PILOT_ADDRESS = "192.0.2.10"

# The mesh fixture (two multicluster.yml runs) counts towards its first test, and some tests run four playbooks:
# minutes each on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(3600)


def inventory(two_clusters, binaries, pki_dir, **overrides) -> dict:
    primary, remote = two_clusters
    hosts = {
        "cluster1": {"kubeconfig": str(primary.kubeconfig), "cluster_name": "cluster1", "network": "network1",
                     "role": "primary"},
        "cluster2": {"kubeconfig": str(remote.kubeconfig), "cluster_name": "cluster2", "network": "network2",
                     "role": "remote", "remote_pilot_address": REMOTE_PILOT_ADDRESS},
    }  # fmt: skip
    mesh = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "multicluster_topology": "primary-remote",
        "multicluster_istioctl_path": str(binaries / "istioctl"),
        "multicluster_ca_root_dir": str(pki_dir),
        "multicluster_allow_loopback": True,
        "multicluster_eastwest_wait": False,
        **overrides,
    }
    return {"all": {"children": {"clusters": {"hosts": hosts, "vars": mesh}}}}


@dataclass
class Run:
    returncode: int
    output: dict
    stdout: str
    writes: dict  # per cluster name: {(verb, resource, subresource): count}

    def changed(self) -> dict:
        return {host: stats["changed"] for host, stats in self.output["stats"].items()}

    def failures(self) -> list:
        return [
            result.get("msg")
            for play in self.output["plays"]
            for task in play["tasks"]
            for result in task["hosts"].values()
            if result.get("failed")
        ]

    def messages(self) -> list:
        return [
            str(result.get("msg")) for p in self.output["plays"] for t in p["tasks"] for result in t["hosts"].values()
        ]


def run_playbook(two_clusters, inventory_path, name, *extra) -> Run:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
    }
    before = {c.name: api_request_counts(c.kubeconfig) for c in two_clusters}
    completed = subprocess.run(
        ["ansible-playbook", "-i", str(inventory_path), f"playbooks/{name}", *extra],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    after = {c.name: writes(before[c.name], api_request_counts(c.kubeconfig)) for c in two_clusters}
    try:
        output = json.loads(completed.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"no JSON from ansible-playbook:\n{completed.stdout}\n{completed.stderr}") from error
    return Run(completed.returncode, output, completed.stdout, after)


@dataclass
class Mesh:
    inventory: object
    check: Run
    root_after_check: bool
    first: Run
    second: Run


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("mesh-pki")


@pytest.fixture(scope="module")
def mesh(two_clusters, binaries, pki_dir, tmp_path_factory) -> Mesh:
    """The mesh installed by ServiceAccounts bound only to the shipped installer ClusterRole, one per cluster."""
    directory = tmp_path_factory.mktemp("inventory")
    accounts = [bind(cluster, "installer", "installer", directory) for cluster in two_clusters]
    path = directory / "mesh.yml"
    path.write_text(yaml.safe_dump(inventory(accounts, binaries, pki_dir)))
    check = run_playbook(two_clusters, path, "multicluster.yml", "--check", "--diff")
    root_after_check = (pki_dir / "root-key.pem").exists()
    first = run_playbook(two_clusters, path, "multicluster.yml", "--diff")
    assert first.returncode == 0, first.failures()
    second = run_playbook(two_clusters, path, "multicluster.yml")
    return Mesh(path, check, root_after_check, first, second)


def nothing_written(two_clusters) -> dict:
    return {c.name: {} for c in two_clusters}


def api(cluster):
    return cluster.api_client()


def cacerts(cluster) -> dict:
    secret = client.CoreV1Api(api(cluster)).read_namespaced_secret("cacerts", NAMESPACE)
    return {name: base64.b64decode(value) for name, value in secret.data.items()}


def test_check_mode_on_fresh_clusters_succeeds_and_writes_nothing(mesh, two_clusters):
    assert mesh.check.returncode == 0, mesh.check.failures()
    assert mesh.check.writes == nothing_written(two_clusters)
    assert mesh.check.changed()["cluster1"] > 0 and mesh.check.changed()["cluster2"] > 0
    assert not mesh.root_after_check


def test_both_clusters_share_the_root_and_have_their_own_intermediate(mesh, two_clusters, pki_dir):
    root = x509.load_pem_x509_certificate((pki_dir / "root-cert.pem").read_bytes())
    files = [cacerts(c) for c in two_clusters]
    assert files[0]["root-cert.pem"] == files[1]["root-cert.pem"] == (pki_dir / "root-cert.pem").read_bytes()
    intermediates = [x509.load_pem_x509_certificate(f["ca-cert.pem"]) for f in files]
    assert intermediates[0].fingerprint(intermediates[0].signature_hash_algorithm) != intermediates[1].fingerprint(
        intermediates[1].signature_hash_algorithm
    )
    for intermediate, name in zip(intermediates, ("cluster1", "cluster2"), strict=True):
        intermediate.verify_directly_issued_by(root)  # raises when it does not chain to the shared root
        assert intermediate.subject.get_attributes_for_oid(x509.NameOID.LOCALITY_NAME)[0].value == name


def test_primary_runs_an_external_istiod_exposed_through_its_eastwest_gateway(mesh, two_clusters):
    primary = api(two_clusters[0])
    istiod = client.AppsV1Api(primary).read_namespaced_deployment("istiod-mesh", NAMESPACE)
    env = {e.name: e.value for e in istiod.spec.template.spec.containers[0].env}
    assert (env["EXTERNAL_ISTIOD"], env["CLUSTER_ID"]) == ("true", "cluster1")
    labels = client.CoreV1Api(primary).read_namespace(NAMESPACE).metadata.labels
    assert labels["topology.istio.io/network"] == "network1"
    istio = client.CustomObjectsApi(primary)
    gateways = istio.list_namespaced_custom_object("networking.istio.io", "v1", NAMESPACE, "gateways")["items"]
    assert sorted(g["metadata"]["name"] for g in gateways) == ["cross-network-gateway", "istiod-gateway"]
    routes = istio.get_namespaced_custom_object(
        "networking.istio.io", "v1", NAMESPACE, "virtualservices", "istiod-vs-mesh"
    )
    assert {r["route"][0]["destination"]["host"] for r in routes["spec"]["tls"]} == {
        "istiod-mesh.istio-system.svc.cluster.local"
    }


def test_remote_is_managed_by_the_primary_through_the_injection_path(mesh, two_clusters):
    remote = api(two_clusters[1])
    namespace = client.CoreV1Api(remote).read_namespace(NAMESPACE).metadata
    assert namespace.annotations["topology.istio.io/controlPlaneClusters"] == "cluster1"
    assert namespace.labels["topology.istio.io/network"] == "network2"
    webhook = client.AdmissionregistrationV1Api(remote).read_mutating_webhook_configuration(
        "istio-sidecar-injector-mesh"
    )
    assert {w.client_config.service.path for w in webhook.webhooks} == {"/inject/cluster/cluster2/net/network2"}
    assert client.AppsV1Api(remote).list_namespaced_deployment(NAMESPACE, label_selector="app=istiod").items == []
    endpoints = client.DiscoveryV1Api(remote).read_namespaced_endpoint_slice("istiod-mesh", NAMESPACE)
    assert [e.addresses for e in endpoints.endpoints] == [[REMOTE_PILOT_ADDRESS]]
    # its own network's services reach the primary's network through its own east-west gateway
    gateway = client.AppsV1Api(remote).read_namespaced_deployment("istio-eastwestgateway", NAMESPACE)
    assert gateway.spec.template.metadata.labels["topology.istio.io/network"] == "network2"


def remote_secret_kubeconfig(primary) -> dict:
    secret = client.CoreV1Api(api(primary)).read_namespaced_secret("istio-remote-secret-cluster2", NAMESPACE)
    assert secret.metadata.labels["istio/multiCluster"] == "true"
    assert secret.metadata.annotations["networking.istio.io/cluster"] == "cluster2"
    return yaml.safe_load(base64.b64decode(secret.data["cluster2"]))


def test_remote_secret_reads_the_remote_api_server_and_may_not_write(mesh, two_clusters):
    primary, remote = two_clusters
    kubeconfig = remote_secret_kubeconfig(primary)
    assert [c["name"] for c in kubeconfig["contexts"]] == ["cluster2"]
    reader = client.CoreV1Api(config.new_client_from_config_dict(kubeconfig))
    names = {s.metadata.name for s in reader.list_service_for_all_namespaces().items}
    assert "istiod-mesh" in names  # the remote's Service, so this is cluster2's API server
    service = {"metadata": {"name": "probe"}, "spec": {"ports": [{"port": 80}]}}
    with pytest.raises(ApiException) as denied:
        reader.create_namespaced_service("default", service, dry_run="All")
    assert denied.value.status == 403
    # only the remote secret's direction exists in primary-remote
    held = client.CoreV1Api(api(remote)).list_namespaced_secret(NAMESPACE, label_selector="istio/multiCluster=true")
    assert held.items == []


def test_second_run_changes_nothing_and_sends_no_write(mesh, two_clusters):
    assert mesh.second.returncode == 0, mesh.second.failures()
    assert mesh.second.changed() == {"cluster1": 0, "cluster2": 0}
    assert mesh.second.writes == nothing_written(two_clusters)


def test_no_key_or_token_in_the_output_of_a_diff_run(mesh, two_clusters, pki_dir):
    token = remote_secret_kubeconfig(two_clusters[0])["users"][0]["user"]["token"]
    keys = [cacerts(c)["ca-key.pem"].decode() for c in two_clusters] + [(pki_dir / "root-key.pem").read_text()]
    for text in (mesh.check.stdout, mesh.first.stdout):
        assert token not in text
        assert "PRIVATE KEY" not in text
        assert not any(line in text for key in keys for line in key.splitlines()[1:-1])


def failed_report_cases(report_dir) -> dict:
    """(classname, name) -> message of each failed case in the mesh's JUnit report, valid against the Ant schema."""
    junit = report_dir / "multicluster.junit.xml"
    xmlschema.XMLSchema(str(REPO_ROOT / "tests" / "junit.xsd")).validate(str(junit))
    cases = ElementTree.parse(junit).getroot().iter("testcase")
    return {(c.get("classname"), c.get("name")): c.find("failure").get("message") for c in cases if len(c)}


def test_verify_holds_then_names_what_was_broken_and_a_rerun_repairs_it(mesh, two_clusters, tmp_path):
    report = f"verify_report_dir={tmp_path}"
    verified = run_playbook(two_clusters, mesh.inventory, "verify-multicluster.yml", "-e", report)
    assert verified.returncode == 0, verified.failures()
    assert any("cluster cluster1: trust chain shared" in m for m in verified.messages())
    assert failed_report_cases(tmp_path) == {}
    assert json.loads((tmp_path / "multicluster.json").read_text())["passed"]

    primary = client.CoreV1Api(api(two_clusters[0]))
    primary.delete_namespaced_secret("istio-remote-secret-cluster2", NAMESPACE)
    broken = run_playbook(two_clusters, mesh.inventory, "verify-multicluster.yml", "-e", report)
    assert broken.returncode != 0
    assert any("cluster cluster1 holds no remote secret for cluster cluster2" in str(m) for m in broken.failures())
    [(case, message)] = failed_report_cases(tmp_path).items()
    assert case == ("cluster1.cluster", "remote secret for cluster2 accepted")
    assert "cluster cluster1 holds no remote secret for cluster cluster2" in message
    assert '<tr class="broken" data-remote="cluster2">' in (tmp_path / "multicluster.html").read_text()

    repaired = run_playbook(two_clusters, mesh.inventory, "multicluster.yml")
    assert repaired.changed()["cluster1"] > 0
    assert run_playbook(two_clusters, mesh.inventory, "verify-multicluster.yml").returncode == 0


def test_an_inconsistent_inventory_is_refused_before_anything_is_written(
    mesh, two_clusters, binaries, pki_dir, tmp_path
):
    bad = inventory(two_clusters, binaries, pki_dir)
    bad["all"]["children"]["clusters"]["hosts"]["cluster2"].update(role="primary", cluster_name="Cluster_2")
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(bad))
    refused = run_playbook(two_clusters, path, "multicluster.yml")
    assert refused.returncode != 0
    message = " ".join(str(m) for m in refused.failures())
    assert "hosts cluster2: cluster_name must be a DNS-1123 label" in message
    assert "topology primary-remote needs at least one host with role remote" in message
    assert refused.writes == nothing_written(two_clusters)
