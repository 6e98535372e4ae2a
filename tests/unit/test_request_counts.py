"""apiserver_request_total parsing and the audit log's events, the basis of every "zero writes" assertion."""

import json

from localcluster.cluster import (
    api_request_counts,
    audit_events,
    parse_request_counts,
    request_key,
    write_count,
)


def _metric(verb, resource, value, code="200", subresource="", group="", dry_run=""):
    labels = (
        f'code="{code}",component="apiserver",dry_run="{dry_run}",group="{group}",resource="{resource}",'
        f'scope="resource",subresource="{subresource}",verb="{verb}",version="v1"'
    )
    return f"apiserver_request_total{{{labels}}} {value}"


METRICS = "\n".join(
    [
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests",
        "# TYPE apiserver_request_total counter",
        _metric("GET", "configmaps", 7),
        _metric("POST", "configmaps", 2, code="201"),
        _metric("POST", "configmaps", 1, code="409"),
        _metric("APPLY", "deployments", 3, group="apps"),
        _metric("PATCH", "pods", 40, subresource="status"),
        _metric("PUT", "leases", 90, group="coordination.k8s.io"),
        _metric("APPLY", "deployments", 500, group="apps", dry_run="All"),
        'apiserver_request_total_other{verb="POST",resource="configmaps"} 1000',
    ]
)


def test_counts_sum_over_codes_and_keep_verb_resource_subresource():
    counts = parse_request_counts(METRICS)
    assert counts[("POST", "configmaps", "")] == 3
    assert counts[("GET", "configmaps", "")] == 7
    assert counts[("PATCH", "pods", "status")] == 40
    assert counts[("APPLY", "deployments", "")] == 3  # the dry-run sample is not a write
    assert parse_request_counts(METRICS, dry_run=True) == {("APPLY", "deployments", ""): 500}
    assert ("POST", "configmaps", "") in counts and len(counts) == 5


def test_write_count_ignores_reads_heartbeats_and_status():
    before = parse_request_counts(METRICS)
    after = dict(before)
    after[("GET", "configmaps", "")] += 100
    after[("PUT", "leases", "")] += 5
    after[("PATCH", "pods", "status")] += 5
    after[("POST", "serviceaccounts", "token")] = 3
    assert write_count(before, after) == 0
    after[("APPLY", "deployments", "")] += 1
    after[("DELETE", "secrets", "")] = 2
    assert write_count(before, after) == 3


def test_write_count_ignores_controllers_following_a_gateway_but_not_the_collections_endpointslices():
    before = parse_request_counts(METRICS)
    after = dict(before)
    after[("PUT", "endpoints", "")] = 2
    after[("POST", "endpointslices", "")] = 1
    after[("PUT", "endpointslices", "")] = 2
    after[("PUT", "deployments", "scale")] = 2
    assert write_count(before, after) == 0
    after[("APPLY", "endpointslices", "")] = 1
    after[("DELETE", "endpointslices", "")] = 1
    assert write_count(before, after) == 2


def _event(verb, resource, uri, subresource=None):
    ref = {"resource": resource, **({"subresource": subresource} if subresource else {})}
    return {"verb": verb, "objectRef": ref, "requestURI": uri}


def test_audit_events_are_keyed_as_the_metrics_name_requests():
    assert request_key(_event("patch", "configmaps", "/api/v1/namespaces/a/configmaps/x?fieldManager=m")) == (
        "APPLY", "configmaps", "")  # fmt: skip
    assert request_key(_event("patch", "namespaces", "/api/v1/namespaces/a")) == ("PATCH", "namespaces", "")
    assert request_key(_event("create", "serviceaccounts", "/x", "token")) == ("POST", "serviceaccounts", "token")
    assert request_key(_event("update", "leases", "/x")) == ("PUT", "leases", "")
    assert request_key(_event("list", "services", "/api/v1/services")) == ("LIST", "services", "")


def _audit_line(stage, audit_id, verb, resource, uri, user_agent="ansible"):
    return json.dumps({"stage": stage, "auditID": audit_id, "verb": verb, "objectRef": {"resource": resource},
                       "requestURI": uri, "userAgent": user_agent})  # fmt: skip


def test_a_write_logged_on_arrival_and_answer_counts_once_and_background_clients_are_left_out(tmp_path):
    (tmp_path / "logs").mkdir()
    apply = "/api/v1/namespaces/a/configmaps/x?fieldManager=m"
    lines = [
        _audit_line("RequestReceived", "1", "patch", "configmaps", apply),
        _audit_line("RequestReceived", "2", "get", "configmaps", "/api/v1/namespaces/a/configmaps/x"),
        _audit_line("ResponseComplete", "1", "patch", "configmaps", apply),
        _audit_line("RequestReceived", "3", "update", "pods", "/api/v1/x", user_agent="kube-controller-manager/v1"),
        _audit_line("ResponseComplete", "3", "update", "pods", "/api/v1/x", user_agent="kube-controller-manager/v1"),
    ]
    (tmp_path / "logs" / "audit.log").write_text("\n".join(lines) + "\n")
    kubeconfig = tmp_path / "kubeconfig"
    assert api_request_counts(kubeconfig) == {("APPLY", "configmaps", ""): 1, ("GET", "configmaps", ""): 1}
    assert [(e["stage"], e["auditID"]) for e in audit_events(kubeconfig)] == [
        ("RequestReceived", "1"),
        ("RequestReceived", "2"),
        ("ResponseComplete", "1"),
    ]
    since = len(lines[0]) + 1
    assert [e["auditID"] for e in audit_events(kubeconfig, since)] == ["2", "1"]
