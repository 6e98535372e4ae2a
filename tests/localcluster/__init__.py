"""Local Kubernetes clusters for tests, the demo and molecule. See cluster.py; the CLI is `python -m localcluster`."""

from .cluster import (
    Cluster,
    ClusterError,
    api_request_counts,
    binary_dir,
    running_components,
    start_cluster,
    stop_cluster,
    wait_for_namespace_defaults,
    write_count,
    writes,
)

__all__ = [
    "Cluster",
    "ClusterError",
    "api_request_counts",
    "binary_dir",
    "running_components",
    "start_cluster",
    "stop_cluster",
    "wait_for_namespace_defaults",
    "write_count",
    "writes",
]
