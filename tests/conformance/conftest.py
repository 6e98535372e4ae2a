"""Fixtures of the conformance tier: local clusters, real istiods started from what the collection installed, and
the xDS/CSR client built from hack/xdsclient.

Each test module gets its own clusters (a module's installs and fights cannot disturb another's). Every istiod a
test module starts is stopped at its end, also on failure; when a test fails, the tail of each running istiod's log
is added to its report.
"""

from dataclasses import dataclass
from pathlib import Path

import pytest
from localcluster import start_cluster, start_istiod, stop_cluster, stop_istiod
from support import build_xdsclient

RUNNING = []  # every istiod started and not yet stopped, for the failure reports


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport():
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for istiod in RUNNING:
            report.sections.append((f"istiod {istiod.revision} ({istiod.log})", istiod.log_tail()))


@dataclass(frozen=True)
class LocalCluster:
    name: str
    kubeconfig: Path

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))


@pytest.fixture(scope="module")
def clusters(tmp_path_factory):
    """start(count) -> [LocalCluster]: the module's clusters, started once, stopped at the module's end."""
    state = tmp_path_factory.mktemp("clusters")
    started = []

    def start(count: int) -> list:
        while len(started) < count:
            name = f"c{len(started) + 1}"
            started.append(start_cluster(name, state / name))
        return [LocalCluster(c.name, c.kubeconfig) for c in started[:count]]

    yield start
    for cluster in started:
        stop_cluster(cluster)


@pytest.fixture(scope="module")
def istiods(tmp_path_factory):
    """start(cluster, revision, namespace) -> Istiod: a real istiod for an installed revision, stopped at the module's
    end."""
    directory = tmp_path_factory.mktemp("istiod")
    mine = []

    def start(cluster, revision: str, namespace: str):
        istiod = start_istiod(cluster.kubeconfig, revision, namespace, directory / f"{cluster.name}-{revision}")
        mine.append(istiod)
        RUNNING.append(istiod)
        return istiod

    yield start
    for istiod in mine:
        stop_istiod(istiod)
        RUNNING.remove(istiod)


@pytest.fixture(scope="session")
def xdsclient() -> Path:
    return build_xdsclient()
