"""Fixtures shared by the integration tests.

`cluster` is one local cluster per test module (so modules cannot disturb each other: an install with no
discoverySelectors in one would overlap every tenant of another); `two_clusters` adds a second, independent one.
Set MESHOPS_TEST_KUBECONFIG (and MESHOPS_TEST_KUBECONFIG_2) to run the same tests against real clusters.

`installer` is a ServiceAccount of the first cluster bound only to the shipped ClusterRole meshops-istio-installer
(accounts.py); playbook tests run as it. `api` is the first cluster's ApiClient; `run_on` and `run` run one module
task through ansible-playbook and return its result. A test module names its module in `MODULE`; a module whose
tasks take another shape adapts `run_on` in its own `run` fixture. `binaries` is the local Go binaries' directory,
`istioctl` the playbook variable naming its istioctl. A cluster's `local_cluster` is the localcluster.Cluster
whose processes a test may kill and start again; it is None for MESHOPS_TEST_KUBECONFIG clusters.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import pytest
from localcluster import Cluster, ClusterError, start_cluster, stop_cluster
from playbook import run_task

KUBECONFIG_VARIABLES = ("MESHOPS_TEST_KUBECONFIG", "MESHOPS_TEST_KUBECONFIG_2")


@dataclass(frozen=True)
class TestCluster:
    name: str
    kubeconfig: Path
    local_cluster: Cluster | None  # started by this session, so tests may kill and start its processes

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))


class _Clusters:
    """Starts local clusters on first use and stops them all at session end."""

    def __init__(self, state_root: Path):
        self.state_root = state_root
        self.started = []
        self.by_index = {}
        self.failed = {}

    def get(self, index: int) -> TestCluster:
        if index in self.failed:  # one failed start is reported once per test, not retried into a used directory
            raise self.failed[index]
        if index not in self.by_index:
            try:
                self.by_index[index] = self._external(index) or self._start(index)
            except ClusterError as error:
                self.failed[index] = error
                raise
        return self.by_index[index]

    @staticmethod
    def _external(index: int):
        if index >= len(KUBECONFIG_VARIABLES):  # more clusters than variables: the rest are local
            return None
        path = os.environ.get(KUBECONFIG_VARIABLES[index])
        if not path:
            return None
        if not Path(path).is_file():
            pytest.exit(f"{KUBECONFIG_VARIABLES[index]}={path} is not a file", returncode=2)
        return TestCluster(f"external-{index + 1}", Path(path), local_cluster=None)

    def _start(self, index: int) -> TestCluster:
        name = f"c{index + 1}"
        local = start_cluster(name, self.state_root / name)
        self.started.append(local)
        return TestCluster(name, local.kubeconfig, local_cluster=local)

    def stop_all(self):
        for local in self.started:
            stop_cluster(local)


@pytest.fixture(scope="module")
def _clusters(tmp_path_factory):
    clusters = _Clusters(tmp_path_factory.mktemp("clusters"))
    yield clusters
    clusters.stop_all()


@pytest.fixture(scope="module")
def cluster(_clusters) -> TestCluster:
    return _clusters.get(0)


@pytest.fixture(scope="module")
def two_clusters(_clusters) -> tuple:
    return _clusters.get(0), _clusters.get(1)


@pytest.fixture(scope="module")
def three_clusters(_clusters) -> tuple:
    return _clusters.get(0), _clusters.get(1), _clusters.get(2)


@pytest.fixture(scope="session")
def binaries():
    from localcluster import binary_dir

    return binary_dir()


@pytest.fixture(scope="module")
def installer(cluster, tmp_path_factory):
    from accounts import bind

    return bind(cluster, "installer", "installer", tmp_path_factory.mktemp("accounts"))


@pytest.fixture(scope="module")
def api(cluster):
    return cluster.api_client()


@pytest.fixture(scope="module")
def run_on(request, tmp_path_factory):
    """run_on(cluster, args, check=False, diff=False, module=None): one task of `module` (by default the test
    module's MODULE) against `cluster`, its playbook written to a directory of the test module's own."""
    directory = tmp_path_factory.mktemp("plays")
    default_module = getattr(request.module, "MODULE", None)

    def run_module(cluster, args, check=False, diff=False, module=None):
        module = module or default_module
        return run_task(cluster.kubeconfig, module, args, check=check, diff=diff, tmp_path=directory)

    return run_module


@pytest.fixture(scope="module")
def run(run_on, cluster):
    """run(args, check=False, diff=False, module=None): run_on the first cluster."""

    def run_module(args, check=False, diff=False, module=None):
        return run_on(cluster, args, check=check, diff=diff, module=module)

    return run_module


@pytest.fixture(scope="session")
def istioctl(binaries):
    """The `-e` argument that points a playbook at the local istioctl."""
    return f"istioctl_path={binaries / 'istioctl'}"
