"""apiserver_request_total parsing, the basis of every "zero writes" assertion."""

from localcluster.cluster import parse_request_counts, write_count

METRICS = """\
# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="GET",version="v1"} 7
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 2
apiserver_request_total{code="409",component="apiserver",dry_run="",group="",resource="configmaps",scope="resource",subresource="",verb="POST",version="v1"} 1
apiserver_request_total{code="200",component="apiserver",dry_run="",group="apps",resource="deployments",scope="resource",subresource="",verb="APPLY",version="v1"} 3
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="resource",subresource="status",verb="PATCH",version="v1"} 40
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="PUT",version="v1"} 90
apiserver_request_total_other{verb="POST",resource="configmaps"} 1000
"""


def test_counts_sum_over_codes_and_keep_verb_resource_subresource():
    counts = parse_request_counts(METRICS)
    assert counts[("POST", "configmaps", "")] == 3
    assert counts[("GET", "configmaps", "")] == 7
    assert counts[("PATCH", "pods", "status")] == 40
    assert ("POST", "configmaps", "") in counts and len(counts) == 5


def test_write_count_ignores_reads_heartbeats_and_status():
    before = parse_request_counts(METRICS)
    after = dict(before)
    after[("GET", "configmaps", "")] += 100
    after[("PUT", "leases", "")] += 5
    after[("PATCH", "pods", "status")] += 5
    assert write_count(before, after) == 0
    after[("APPLY", "deployments", "")] += 1
    after[("DELETE", "secrets", "")] = 2
    assert write_count(before, after) == 3
