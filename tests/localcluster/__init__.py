"""Local Kubernetes clusters for tests, the demo and molecule (cluster.py), and real istiods run against them
(istiod.py). The CLI is `python -m localcluster`."""

from .cluster import (
    Cluster,
    ClusterError,
    api_request_counts,
    audit_events,
    audit_log_size,
    binary_dir,
    kill_component,
    running_components,
    server_request_counts,
    start_cluster,
    start_component,
    stop_cluster,
    wait_for_namespace_defaults,
    write_count,
    writes,
)
from .istiod import Istiod, IstiodError, start_istiod, stop_istiod

__all__ = [
    "Cluster",
    "ClusterError",
    "Istiod",
    "IstiodError",
    "api_request_counts",
    "audit_events",
    "audit_log_size",
    "binary_dir",
    "kill_component",
    "running_components",
    "server_request_counts",
    "start_cluster",
    "start_component",
    "start_istiod",
    "stop_cluster",
    "stop_istiod",
    "wait_for_namespace_defaults",
    "write_count",
    "writes",
]
