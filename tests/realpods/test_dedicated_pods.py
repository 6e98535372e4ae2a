"""Seed 002 with real pods: the API server calls each tenant's real istiod to inject and validate, and the tenants'
echo workloads get certificates from their own istiod and talk (or fail to) over proxyless gRPC with mTLS.

The tests run in order: the last one breaks isolation by hand and repairs it."""

import json

import pytest
from conformance.support import wait_for
from echo import call, deploy_echo, echo_pod, exists, handshake, pod_directory, wait_for_pod
from integration.playbook import SEED_002, changed_count, failures, playbook
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import binary_dir

TENANT_OF = {"app-ns-1": "usergroup-1", "app-ns-2": "usergroup-2", "app-ns-3": "usergroup-2"}
REVISIONS = ("usergroup-1", "usergroup-2")
BYSTANDER = "bystander"  # a namespace of no tenant
ISTIOCTL = f"istioctl_path={binary_dir() / 'istioctl'}"
VERIFY_WORKLOADS = ("-e", "verify_workloads=true", "-e", "verify_workloads_probe=echo",
                    "-e", f"verify_echo_client={binary_dir() / 'echo-client'}", "-e", ISTIOCTL)  # fmt: skip


def validator(api, revision: str):
    name = f"istio-validator-{revision}-{revision}"
    return client.AdmissionregistrationV1Api(api).read_validating_webhook_configuration(name)


def fail_closed(api, revision: str) -> bool:
    """istiod switched every webhook of its validator to Fail, with its CA bundle: it checked that it serves."""
    hooks = validator(api, revision).webhooks
    return all(h.failure_policy == "Fail" and h.client_config.ca_bundle for h in hooks)


@pytest.fixture(scope="module")
def seed_002(cluster, api):
    client.CoreV1Api(api).create_namespace({"metadata": {"name": BYSTANDER}})
    playbook(cluster, "multitenant.yml", *SEED_002, "-e", ISTIOCTL)
    for revision in REVISIONS:
        wait_for(f"istiod {revision} switches its validator to Fail", lambda r=revision: fail_closed(api, r), 180)
    for namespace in TENANT_OF:
        deploy_echo(api, namespace)
    client.CoreV1Api(api).create_namespaced_pod(BYSTANDER, echo_pod("echo", "plain"))
    ips = {}
    for namespace in TENANT_OF:
        ips[namespace] = wait_for_pod(cluster, api, namespace, "echo")
        wait_for_pod(cluster, api, namespace, "client")
    ips[BYSTANDER] = wait_for_pod(cluster, api, BYSTANDER, "echo", certified=False)
    return ips


def test_a_rerun_keeps_what_istiod_switched_and_changes_nothing(cluster, api, seed_002):
    before = {revision: validator(api, revision).webhooks for revision in REVISIONS}
    again = playbook(cluster, "multitenant.yml", *SEED_002, "-e", ISTIOCTL)[1]
    assert changed_count(again) == 0
    for revision in REVISIONS:
        assert validator(api, revision).webhooks == before[revision]
        assert fail_closed(api, revision)


def test_the_api_server_has_each_pod_injected_by_its_own_revision(api, seed_002):
    core = client.CoreV1Api(api)
    for namespace, revision in TENANT_OF.items():
        pod = core.read_namespaced_pod("echo", namespace)
        [proxy] = [c for c in pod.spec.containers if c.name == "istio-proxy"]
        proxy_config = json.loads(next(e.value for e in proxy.env if e.name == "PROXY_CONFIG"))
        assert proxy_config["discoveryAddress"] == f"istiod-{revision}.{revision}.svc:15012"
        # It mounts the root its own revision publishes (own_trust_bundle); the fixture saw its agent certified.
        roots = {v.name: v.config_map.name for v in pod.spec.volumes if v.config_map}
        assert roots["istiod-ca-cert"] == f"istio-ca-root-cert-{revision}"
        assert core.read_namespaced_config_map(f"istio-ca-root-cert-{revision}", namespace).data["root-cert.pem"]
    bystander = core.read_namespaced_pod("echo", BYSTANDER)
    assert [c.name for c in bystander.spec.containers] == ["app"]


def invalid_virtual_service(name: str, labels: dict) -> dict:
    """Neither http, tcp nor tls: istiod's validation refuses it."""
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "labels": labels},
        "spec": {"hosts": ["echo"]},
    }


def create_virtual_service(api, namespace: str, body: dict):
    objects = client.CustomObjectsApi(api)
    return objects.create_namespaced_custom_object("networking.istio.io", "v1", namespace, "virtualservices", body)


@pytest.mark.parametrize(
    ("namespace", "labels", "webhook"),
    [
        ("app-ns-1", {"istio.io/rev": "usergroup-1"}, "rev.validation.istio.io"),
        ("app-ns-1", {}, "namespace.rev.validation.istio.io"),
        ("app-ns-3", {}, "namespace.rev.validation.istio.io"),
    ],
)
def test_invalid_tenant_config_is_denied_by_the_tenants_istiod_labelled_or_not(
    api, seed_002, namespace, labels, webhook
):
    with pytest.raises(ApiException) as denied:
        create_virtual_service(api, namespace, invalid_virtual_service(f"invalid-{len(labels)}", labels))
    assert denied.value.status == 400
    message = json.loads(denied.value.body)["message"]
    assert f'admission webhook "{webhook}" denied the request' in message
    assert "http, tcp or tls must be provided" in message


def test_config_outside_every_tenant_is_left_to_the_cluster_admin(api, seed_002):
    # No default revision: nothing validates Istio config in a namespace of no tenant (docs/real-pods.md).
    create_virtual_service(api, BYSTANDER, invalid_virtual_service("unvalidated", {}))


def matrix(cluster) -> dict:
    """(client namespace, server namespace) -> 'OK' or why the call failed, calling through each client's own
    proxyless data plane."""
    results = {}
    for source in TENANT_OF:
        for target in TENANT_OF:
            results[source, target] = outcome(cluster, source, target, count=3)
    return results


def _reason(called) -> str:
    text = called.stderr + called.stdout
    if "timed out" in text:
        return "timeout"
    for reason in ("Unavailable", "PermissionDenied", "connection"):
        if reason in text:
            return reason
    return f"failed ({text.strip().splitlines()[-1] if text.strip() else called.returncode})"


def print_matrix(title: str, results: dict):
    names = list(TENANT_OF)
    rows = [f"{'from / to':<12}" + "".join(f"{n:>20}" for n in names)]
    rows += [f"{s:<12}" + "".join(f"{results[s, t]:>20}" for t in names) for s in names]
    print(f"\n{title}\n" + "\n".join(rows))


def test_workloads_talk_within_their_tenant_and_not_across(cluster, seed_002):
    results = matrix(cluster)
    print_matrix("seed 002 matrix (proxyless gRPC over mTLS, 3 calls each)", results)
    for (source, target), result in results.items():
        expected_ok = TENANT_OF[source] == TENANT_OF[target]
        assert (result == "OK") == expected_ok, f"{source} -> {target}: {result}"


def test_a_workload_refuses_clients_with_another_tenants_certificate_or_none(cluster, seed_002):
    server = seed_002["app-ns-1"]
    certificates = {ns: pod_directory(cluster, ns, "client") / "var/lib/istio/data" for ns in TENANT_OF}
    seen = {
        "app-ns-1's certificate": handshake(server, certificates["app-ns-1"]),
        "app-ns-2's certificate": handshake(server, certificates["app-ns-2"]),
        "no certificate": handshake(server, None),
    }
    print(f"\nTLS clients at app-ns-1's echo ({server}:7070): {seen}")
    assert seen["app-ns-1's certificate"] == "ok"
    assert seen["app-ns-2's certificate"] != "ok"
    assert seen["no certificate"] != "ok"


def test_verify_probes_the_workloads_and_reports_the_matrix(cluster, seed_002, tmp_path):
    playbook(cluster, "verify.yml", *SEED_002, *VERIFY_WORKLOADS, "-e", f"verify_report_dir={tmp_path}")
    traffic = json.loads((tmp_path / "isolation.json").read_text())["traffic"]
    assert traffic["servers"] == list(TENANT_OF) and traffic["breaches"] == 0
    cells = {
        (row["client"], server): (cell["observed"], cell["expected"])
        for row in traffic["rows"]
        for server, cell in zip(traffic["servers"], row["cells"], strict=True)
    }
    assert len(cells) == len(TENANT_OF) ** 2
    assert cells["app-ns-2", "app-ns-3"] == ("OK", "OK")
    assert cells["app-ns-1", "app-ns-2"] == ("refused", "refused")


@pytest.mark.timeout(1800)  # two verify runs with workload probes and a multitenant run: slow on a loaded machine
def test_a_namespace_relabelled_to_the_other_revision_gets_no_root_and_a_rerun_repairs_it(cluster, api, seed_002):
    core = client.CoreV1Api(api)
    core.patch_namespace("app-ns-3", {"metadata": {"labels": {"istio.io/rev": "usergroup-1"}}})
    # Now injected by usergroup-1, whose proxies mount usergroup-1's own root ConfigMap. Only usergroup-2's istiod
    # discovers app-ns-3 and publishes there, under usergroup-2's name: the pod finds no root to trust the wrong
    # istiod with, so it never starts (with Istio's shared name it started, trusted usergroup-2's root and got no
    # certificate: seed 000's x509 failure).
    recreate_echo(api, "app-ns-3")
    pod = core.read_namespaced_pod("echo", "app-ns-3")
    assert root_config_maps(pod) == {"istio-ca-root-cert-usergroup-1"}  # only usergroup-1's injector names it
    published = {c.metadata.name for c in core.list_namespaced_config_map("app-ns-3").items}
    assert "istio-ca-root-cert-usergroup-2" in published
    assert "istio-ca-root-cert-usergroup-1" not in published
    waiting = "app-ns-3/echo: waiting: volume istiod-ca-cert"
    wait_for(
        "the kubelet waits for usergroup-1's root in app-ns-3", lambda: waiting in cluster.log("kubelet").read_text()
    )
    code, output = playbook(cluster, "verify.yml", *SEED_002, *VERIFY_WORKLOADS, check=False)
    assert code != 0
    [message] = failures(output)
    print(f"\nverify: {message}")
    assert "namespace app-ns-3 carries istio.io/rev=usergroup-1 but is selected by revisions usergroup-2" in message
    assert "app-ns-2 -> app-ns-3" in message

    playbook(cluster, "multitenant.yml", *SEED_002, "-e", ISTIOCTL)
    assert core.read_namespace("app-ns-3").metadata.labels["istio.io/rev"] == "usergroup-2"
    recreate_echo(api, "app-ns-3")
    for name in ("echo", "client"):
        wait_for_pod(cluster, api, "app-ns-3", name)
    assert root_config_maps(core.read_namespaced_pod("echo", "app-ns-3")) == {"istio-ca-root-cert-usergroup-2"}
    wait_for("app-ns-2 reaches app-ns-3 again", lambda: outcome(cluster, "app-ns-2", "app-ns-3") == "OK", 90)
    playbook(cluster, "verify.yml", *SEED_002, *VERIFY_WORKLOADS)


def root_config_maps(pod) -> set:
    return {v.config_map.name for v in pod.spec.volumes or [] if v.config_map and "root-cert" in v.config_map.name}


def outcome(cluster, source: str, target: str, count: int = 1) -> str:
    called = call(cluster, source, f"xds:///echo.{target}.svc.cluster.local:7070", count)
    return "OK" if called.returncode == 0 else _reason(called)


def recreate_echo(api, namespace: str):
    """Delete and create the namespace's echo pods again: injection happens at creation."""
    core = client.CoreV1Api(api)
    for name in ("echo", "client"):
        core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    for name, role in (("echo", "server"), ("client", "client")):
        wait_for(f"{namespace}/{name} deleted", lambda n=name: not exists(api, namespace, n))
        core.create_namespaced_pod(namespace, echo_pod(name, role))
