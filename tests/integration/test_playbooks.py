"""The playbooks users run, through the roles, against a real API server: multitenant.yml in both models,
verify.yml catching isolation broken by hand, and the istioctl role's checksum."""

import hashlib
import json
import subprocess
import tarfile

import pytest
import yaml
from kubernetes import client
from localcluster import api_request_counts, writes
from localcluster.cluster import REPO_ROOT
from playbook import ANSIBLE_ENV, SEED_000, SEED_002, changed_count, failures, playbook


def test_dedicated_model_installs_seed_002_and_verifies(cluster, istioctl):
    first = playbook(cluster, "multitenant.yml", *SEED_002, "-e", istioctl)[1]
    assert changed_count(first) > 0
    namespaces = {
        ns.metadata.name: ns.metadata.labels for ns in client.CoreV1Api(cluster.api_client()).list_namespace().items
    }
    assert namespaces["app-ns-1"]["istio.io/rev"] == "usergroup-1"
    assert namespaces["app-ns-3"]["usergroup"] == "usergroup-2"
    verified = playbook(cluster, "verify.yml", *SEED_002, "-e", istioctl)[1]
    assert any("2 tenants isolated" in str(h.get("msg")) for p in verified["plays"] for t in p["tasks"]
               for h in t["hosts"].values())  # fmt: skip


def test_second_run_changes_nothing_and_sends_no_write(cluster, istioctl):
    before = api_request_counts(cluster.kubeconfig)
    again = playbook(cluster, "multitenant.yml", *SEED_002, "-e", istioctl)[1]
    assert changed_count(again) == 0
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_verify_fails_on_isolation_broken_by_hand_and_a_rerun_repairs_it(cluster, istioctl):
    api = cluster.api_client()
    client.CoreV1Api(api).patch_namespace("app-ns-1", {"metadata": {"labels": {"istio.io/rev": "usergroup-2"}}})
    client.CustomObjectsApi(api).delete_namespaced_custom_object(
        "security.istio.io", "v1", "app-ns-2", "peerauthentications", "default"
    )
    code, broken = playbook(cluster, "verify.yml", *SEED_002, "-e", istioctl, check=False)
    assert code != 0
    [message] = failures(broken)
    assert "namespace app-ns-1 carries istio.io/rev=usergroup-2 but is selected by revisions usergroup-1" in message
    assert "namespace app-ns-2 has mTLS unset; expected STRICT" in message

    playbook(cluster, "multitenant.yml", *SEED_002, "-e", istioctl)
    playbook(cluster, "verify.yml", *SEED_002, "-e", istioctl)


def test_verify_reports_a_missing_tenant_namespace_instead_of_crashing(cluster, tmp_path, istioctl):
    data = yaml.safe_load((REPO_ROOT / "examples/seed-002/group_vars/meshops_clusters.yml").read_text())
    data["tenants"][1]["namespaces"] = ["app-ns-2", "app-ns-gone"]
    extra = tmp_path / "tenants.yml"
    extra.write_text(yaml.safe_dump(data))
    code, broken = playbook(cluster, "verify.yml", *SEED_002, "-e", istioctl, "-e", f"@{extra}", check=False)
    assert code != 0
    [message] = failures(broken)
    assert "tenant usergroup-2: namespace app-ns-gone does not exist" in message


def test_verify_reports_an_overlapping_selector_applied_directly(cluster, istioctl):
    core = client.CoreV1Api(cluster.api_client())
    config_map = core.read_namespaced_config_map("istio-usergroup-2", "usergroup-2")
    mesh = yaml.safe_load(config_map.data["mesh"])
    original = config_map.data["mesh"]
    mesh["discoverySelectors"].append({"matchLabels": {"usergroup": "usergroup-1"}})
    core.patch_namespaced_config_map("istio-usergroup-2", "usergroup-2", {"data": {"mesh": yaml.safe_dump(mesh)}})
    try:
        code, broken = playbook(cluster, "verify.yml", *SEED_002, "-e", istioctl, check=False)
        assert code != 0
        assert (
            "revisions usergroup-1 and usergroup-2 both select namespaces app-ns-1, usergroup-1" in failures(broken)[0]
        )
    finally:
        core.patch_namespaced_config_map("istio-usergroup-2", "usergroup-2", {"data": {"mesh": original}})
    playbook(cluster, "verify.yml", *SEED_002, "-e", istioctl)


def test_a_wrong_variable_fails_early_with_a_clear_message(cluster, istioctl):
    before = api_request_counts(cluster.kubeconfig)
    code, output = playbook(cluster, "multitenant.yml", *SEED_002, "-e", istioctl, "-e", "tenancy_model=pooled",
                            check=False)  # fmt: skip
    assert code != 0
    [message] = failures(output)
    assert "tenancy_model must be one of: dedicated, shared, got: pooled" in message
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def _istioctl_archive(binaries, tmp_path):
    archive = tmp_path / "istioctl.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(binaries / "istioctl", arcname="istioctl")
    return archive, hashlib.sha256(archive.read_bytes()).hexdigest()


def _role_play(tmp_path, **role_vars):
    play = [{"name": "istioctl role", "hosts": "localhost", "gather_facts": False,
             "roles": [{"role": "meshops.istio.istioctl", **role_vars}]}]  # fmt: skip
    path = tmp_path / "role.yml"
    path.write_text(yaml.safe_dump(play))
    return path


@pytest.mark.parametrize("good_checksum", [True, False])
def test_istioctl_role_downloads_and_verifies_the_checksum(binaries, tmp_path, cluster, good_checksum):
    archive, digest = _istioctl_archive(binaries, tmp_path)
    sha256 = digest if good_checksum else "0" * 64
    play = _role_play(tmp_path, istioctl_url=f"file://{archive}", istioctl_sha256=sha256, istioctl_version="1.31-dev",
                      istioctl_install_dir=str(tmp_path / "install"))  # fmt: skip
    result = subprocess.run(["ansible-playbook", str(play)], cwd=REPO_ROOT, env=ANSIBLE_ENV, capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    if good_checksum:
        assert result.returncode == 0, failures(json.loads(result.stdout))
        assert (tmp_path / "install" / "istioctl").is_file()
    else:
        assert result.returncode != 0
        assert any("checksum" in str(m).lower() for m in failures(json.loads(result.stdout)))
        assert not (tmp_path / "install" / "istioctl").exists()


def test_shared_model_installs_seed_000_next_to_the_dedicated_tenants(cluster, istioctl):
    seed_000 = (*SEED_000, "-e", istioctl, "-e", "gateways_wait=false")
    playbook(cluster, "multitenant.yml", *seed_000)
    api = cluster.api_client()
    for namespace, node_port in (("foo", 32180), ("bar", 32280)):
        labels = client.CoreV1Api(api).read_namespace(namespace).metadata.labels
        assert labels["istio.io/rev"] == "shared" and labels["meshops.io/mesh"] == "shared"
        service = client.CoreV1Api(api).read_namespaced_service("istio-ingressgateway", namespace)
        assert [(p.port, p.target_port, p.node_port) for p in service.spec.ports if p.port == 80] == [
            (80, 8080, node_port)
        ]
    istiod = client.AppsV1Api(api).read_namespaced_deployment("istiod-shared", "istio-system").spec.template.spec
    env = {e.name: e.value for e in istiod.containers[0].env}
    assert env["PILOT_SCOPE_GATEWAY_TO_NAMESPACE"] == "true"

    # No istiod answers the injector webhook on this cluster (kwok fakes kubelets, not istiod), so the gateways'
    # pods cannot be created: verify must say exactly that and find nothing else wrong.
    code, output = playbook(cluster, "verify.yml", *seed_000, check=False)
    assert code != 0
    problems = failures(output)[0].removeprefix("Isolation is broken: ").split("; tenant ")
    assert len(problems) == 2
    assert all("gateway istio-ingressgateway is not Ready" in p and "failed calling webhook" in p for p in problems)


def test_shared_model_upgrade_moves_tenants_and_gateways(cluster, istioctl):
    seed_000 = (*SEED_000, "-e", istioctl, "-e", "gateways_wait=false")
    playbook(cluster, "upgrade.yml", *seed_000, "-e", "upgrade_to_revision=shared-v2")
    api = cluster.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for namespace in ("foo", "bar"):
        assert core.read_namespace(namespace).metadata.labels["istio.io/rev"] == "shared-v2"
        gateway = apps.read_namespaced_deployment("istio-ingressgateway", namespace)
        assert gateway.spec.template.metadata.labels["istio.io/rev"] == "shared-v2"
    assert [d.metadata.name for d in apps.list_namespaced_deployment("istio-system").items] == ["istiod-shared-v2"]
    # The dedicated tenants next to them were not touched.
    assert core.read_namespace("app-ns-1").metadata.labels["istio.io/rev"] == "usergroup-1"


def test_uninstall_all_needs_confirmation_and_removes_every_shared_tenant(cluster):
    upgraded = (*SEED_000, "-e", '{"shared_control_plane": {"name": "shared-v2", "namespace": "istio-system"}}')
    code, output = playbook(cluster, "uninstall.yml", *upgraded, "-e", "uninstall_all=true", check=False)
    assert code != 0 and failures(output) == ["uninstall_all removes every tenant: set uninstall_confirm: true as well"]
    playbook(cluster, "uninstall.yml", *upgraded, "-e", "uninstall_all=true", "-e", "uninstall_confirm=true")
    api = cluster.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    for namespace in ("foo", "bar"):
        assert "istio.io/rev" not in (core.read_namespace(namespace).metadata.labels or {})
        assert apps.list_namespaced_deployment(namespace).items == []
    assert apps.list_namespaced_deployment("istio-system").items == []
    # The dedicated tenants of the other data set are not this data's tenants: untouched.
    assert core.read_namespace("app-ns-1").metadata.labels["istio.io/rev"] == "usergroup-1"


def test_a_tenant_whose_control_plane_is_in_the_way_fails_alone_and_the_others_are_onboarded(
    cluster, istioctl, tmp_path
):
    core = client.CoreV1Api(cluster.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="blocked")))
    hand_made = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="istio-blocked"), data={"mesh": "{}"})
    core.create_namespaced_config_map("blocked", hand_made)
    data = tmp_path / "tenants.yml"
    data.write_text(yaml.safe_dump({"tenancy_model": "dedicated", "tenants": [
        {"name": "blocked", "namespaces": ["blocked-app"]}, {"name": "fine", "namespaces": ["fine-app"]},
    ]}))  # fmt: skip
    code, output = playbook(cluster, "multitenant.yml", *SEED_002, "-e", istioctl, "-e", f"@{data}", check=False)
    assert code != 0
    *rescued, message = failures(output)
    assert message.startswith("Failed (tenants not named here were converged): blocked: "), (rescued, message)
    assert "istio-blocked" in message
    names = {ns.metadata.name: ns.metadata.labels for ns in core.list_namespace().items}
    assert names["fine-app"]["istio.io/rev"] == "fine" and names["fine-app"]["meshops.io/tenant"] == "fine"
    assert "blocked-app" not in names
    kept = core.read_namespaced_config_map("istio-blocked", "blocked")
    assert kept.data == {"mesh": "{}"} and not (kept.metadata.labels or {})
