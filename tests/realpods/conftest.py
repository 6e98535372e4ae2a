"""Fixtures of the real-pods tier: a local cluster inside the pod network (hack/pod-network.sh), where the API
server calls the real istiods (run by the cluster's kubelet at their pods' IPs) for injection and validation, and
echo pods run pilot-agent and Istio's echo server as processes (tests/localcluster/kubelet.py, workload.py).

The tier refuses to run outside the pod network instead of skipping: `make realpods` enters it."""

import pytest
from localcluster import podnet, start_cluster, stop_cluster


def pytest_configure(config):
    if not podnet.inside():
        pytest.exit(
            f"the real-pods tier runs inside the pod network: `make realpods` ({podnet.WRAPPER} pytest tests/realpods)",
            returncode=2,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    local = start_cluster("c1", tmp_path_factory.mktemp("cluster") / "c1", real_pods=True)
    yield local
    stop_cluster(local)


@pytest.fixture(scope="module")
def api(cluster):
    from kubernetes import config

    return config.new_client_from_config(str(cluster.kubeconfig))
