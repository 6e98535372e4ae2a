"""Per-sidecar config size in the shared model (seed 000, as playbooks/multitenant.yml installs it), measured with a
real istiod and our xDS client (hack/xdsclient) connected as a sidecar.

Tenant foo keeps the Sidecar scope istio_tenant gives it; tenant baz is onboarded with `sidecar_scope: false`.
Tenant bar grows by TCP services (each one outbound cluster and one listener): foo's config stays flat, baz's grows
with bar.
"""

import json
import subprocess

import pytest
from integration.playbook import playbook, run_task
from localcluster import binary_dir
from support import istio_version, wait_for

pytestmark = pytest.mark.conformance

REVISION, SYSTEM_NAMESPACE = "shared", "istio-system"
MESH_LABEL = {"meshops.io/mesh": REVISION}
UNSCOPED = "baz"
STEP = 100  # services added to bar per step
STEPS = 2


@pytest.fixture(scope="module")
def shared(clusters, istiods, tmp_path_factory):
    [cluster] = clusters(1)
    playbook(
        cluster, "multitenant.yml", "-i", "examples/seed-000",
        "-e", f"istioctl_path={binary_dir() / 'istioctl'}", "-e", "gateways_wait=false",
    )  # fmt: skip
    unscoped = run_task(
        cluster.kubeconfig,
        "meshops.istio.istio_tenant",
        {"name": UNSCOPED, "revision": REVISION, "namespaces": [UNSCOPED], "discovery_label": MESH_LABEL,
         "isolation": {"sidecar_scope": False}},
        tmp_path=tmp_path_factory.mktemp("plays"),
    )  # fmt: skip
    assert unscoped["changed"] and not unscoped.get("failed"), unscoped.get("msg")
    return cluster, istiods(cluster, REVISION, SYSTEM_NAMESPACE)


def sidecar_config(xdsclient, istiod, namespace: str) -> dict:
    """{"clusters": [...], "listeners": [...]} istiod sends a sidecar of `namespace`."""
    node = f"sidecar~10.244.0.2~probe.{namespace}~{namespace}.svc.cluster.local"
    command = [xdsclient, "xds", "--addr", istiod.addresses["grpcAddr"], "--node-id", node,
               "--namespace", namespace, "--istio-version", istio_version()]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def add_tcp_services(cluster, namespace: str, first: int, count: int) -> set:
    """Services load-<i> with one TCP port each; returns the outbound cluster names a sidecar that sees them gets."""
    from kubernetes import client

    core = client.CoreV1Api(cluster.api_client())
    names = set()
    for index in range(first, first + count):
        port = 10000 + index
        spec = {"ports": [{"name": f"tcp-{index}", "port": port}], "selector": {"app": f"load-{index}"}}
        core.create_namespaced_service(namespace, {"metadata": {"name": f"load-{index}"}, "spec": spec})
        names.add(f"outbound|{port}||load-{index}.{namespace}.svc.cluster.local")
    return names


def sizes(config: dict) -> tuple:
    return len(config["clusters"]), len(config["listeners"])


def test_a_scoped_sidecar_stays_flat_while_another_tenant_grows_an_unscoped_one_does_not(shared, xdsclient):
    cluster, istiod = shared
    measured = {tenant: [sizes(sidecar_config(xdsclient, istiod, tenant))] for tenant in ("foo", UNSCOPED, "bar")}
    added = set()
    for step in range(STEPS):
        added |= add_tcp_services(cluster, "bar", step * STEP, STEP)
        # Once the unscoped sidecar gets every new service, istiod's push context holds them all.
        wait_for(
            f"{UNSCOPED}'s sidecar receives bar's {len(added)} services",
            lambda expected=frozenset(added): expected <= set(sidecar_config(xdsclient, istiod, UNSCOPED)["clusters"]),
            timeout=120,
        )
        configs = {tenant: sidecar_config(xdsclient, istiod, tenant) for tenant in measured}
        for tenant, config in configs.items():
            measured[tenant].append(sizes(config))
        assert not [name for name in configs["foo"]["clusters"] if ".bar.svc." in name]

    print(f"\nclusters/listeners per sidecar as bar grows by {STEP} TCP services per step:")
    for tenant, figures in measured.items():
        print(f"  {tenant:>4}: " + "  ".join(f"{c}/{li}" for c, li in figures))
    assert len(set(measured["foo"])) == 1, "foo's Sidecar scope did not keep its config flat"
    for step in range(1, STEPS + 1):
        grown = step * STEP
        assert measured[UNSCOPED][step] == (measured[UNSCOPED][0][0] + grown, measured[UNSCOPED][0][1] + grown)
        assert measured["bar"][step] == (measured["bar"][0][0] + grown, measured["bar"][0][1] + grown)
