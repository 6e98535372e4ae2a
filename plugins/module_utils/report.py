# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The isolation report: what istio_isolation_info or istio_multicluster_info found, as one document (the JSON
file), as JUnit XML (one test case per invariant per tenant namespace, gateway, cluster and traffic cell) and as
HTML rendered from the document with a Jinja2 template.

Everything here is pure: the action plugin `meshops.istio.isolation_report` reads the options, calls these
functions and writes the files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from .errors import Refusal

KINDS = ("isolation", "multicluster")
FILES = {"junit": "{name}.junit.xml", "json": "{name}.json", "html": "{name}.html"}
TRAFFIC_KEYS = ("client", "server", "expected", "observed")
CLUSTER_CLASS = "cluster"
TRAFFIC_SUITE = "traffic"


def cluster_entry(name: str, **facts) -> dict:
    """One cluster on the map; every key is there, so the template needs no defaults."""
    entry = {
        "name": name,
        "server": None,
        "network": None,
        "cacerts": None,
        "unread": None,
        "control_planes": [],
        "unplaced_namespaces": [],
        "tenants": [],
        "remote_secrets": [],
    }
    entry.update(facts)
    return entry


def case(suite: str, classname: str, name: str, problems: list) -> dict:
    """One JUnit test case; it fails with every problem found for its invariant."""
    return {"suite": suite, "classname": classname, "name": name, "failure": "; ".join(problems) or None}


# Traffic matrix: cells as data, from whatever probed the workloads


def validate_traffic(cells) -> list:
    """The cells, checked: each is a mapping with client, server, expected and observed."""
    if cells is None:
        return []
    if not isinstance(cells, list):
        raise Refusal("traffic must be a list of {client, server, expected, observed}; give a list or omit it")
    for index, cell in enumerate(cells):
        missing = [key for key in TRAFFIC_KEYS if not isinstance(cell, dict) or cell.get(key) in (None, "")]
        if missing:
            raise Refusal(f"traffic[{index}] lacks {', '.join(missing)}; give each cell {', '.join(TRAFFIC_KEYS)}")
    return cells


def cell_passes(cell: dict) -> bool:
    return str(cell["observed"]) == str(cell["expected"])


def traffic_matrix(cells: list) -> dict | None:
    """Every client x every server; a pair nobody probed is None."""
    if not cells:
        return None
    clients = sorted({str(c["client"]) for c in cells})
    servers = sorted({str(c["server"]) for c in cells})
    by_pair = {(str(c["client"]), str(c["server"])): c for c in cells}
    rows = []
    for client in clients:
        row = []
        for server in servers:
            cell = by_pair.get((client, server))
            row.append(
                None
                if cell is None
                else {"expected": str(cell["expected"]), "observed": str(cell["observed"]), "ok": cell_passes(cell)}
            )
        rows.append({"client": client, "cells": row})
    return {"servers": servers, "rows": rows, "breaches": sum(1 for c in cells if not cell_passes(c))}


def traffic_cases(cells: list) -> list:
    return [
        case(
            TRAFFIC_SUITE,
            f"{TRAFFIC_SUITE}.{c['client']}",
            f"{c['client']} -> {c['server']}",
            []
            if cell_passes(c)
            else [f"{c['client']} -> {c['server']}: expected {c['expected']}, observed {c['observed']}"],
        )
        for c in cells
    ]


# One cluster's tenancy (istio_isolation_info)


def _namespace_entry(name: str, tenant: str, facts: dict, gateways: dict) -> tuple:
    """(map entry, test cases) for one tenant namespace."""
    exists = facts.get("exists", False)
    invariants = {"namespace exists": [] if exists else [f"tenant {tenant}: namespace {name} does not exist"]}
    if exists:
        invariants.update(facts.get("invariants") or {})
    own_gateways = [
        {"name": key.split("/", 1)[1], "status": status, "ready": status == "Ready"}
        for key, status in sorted(gateways.items())
        if key.split("/", 1)[0] == name
    ]
    problems = [p for found in invariants.values() for p in found]
    entry = {
        "name": name,
        "tenant": tenant,
        "labelled_tenant": facts.get("tenant"),
        "revision": facts.get("revision"),
        "selected_by": facts.get("selected_by") or [],
        "injectors": facts.get("injectors") or [],
        "mtls": facts.get("mtls"),
        "policies": facts.get("policies") or [],
        "gateways": own_gateways,
        "problems": problems,
        "broken": bool(problems) or not all(g["ready"] for g in own_gateways),
    }
    return entry, invariants


def isolation_document(facts: dict, cluster: str | None, traffic: list, generated: str) -> dict:
    """The report document of one cluster's tenants, from istio_isolation_info's result."""
    if not isinstance(facts, dict) or not isinstance(facts.get("tenants"), dict):
        raise Refusal("isolation must be the registered result of meshops.istio.istio_isolation_info")
    cluster = cluster or "cluster"  # JUnit readers split class names at dots: not the server's address
    cases, tenants, namespaces = [], [], []
    for tenant, entry in sorted(facts["tenants"].items()):
        tenant_problems = []
        for name, ns_facts in entry.get("namespaces", {}).items():
            ns_entry, invariants = _namespace_entry(name, tenant, ns_facts, entry.get("gateways") or {})
            namespaces.append(ns_entry)
            cases += [
                case(cluster, f"{cluster}.{tenant}", f"{name}: {inv}", found) for inv, found in invariants.items()
            ]
            tenant_problems += ns_entry["problems"]
        for gateway, status in sorted((entry.get("gateways") or {}).items()):
            found = [] if status == "Ready" else [f"tenant {tenant}: gateway {gateway} is not Ready: {status}"]
            cases.append(case(cluster, f"{cluster}.{tenant}", f"gateway {gateway} Ready", found))
            tenant_problems += found
        tenants.append({
            "name": tenant,
            "namespaces": list(entry.get("namespaces", {})),
            "problems": tenant_problems,
            "broken": bool(tenant_problems),
        })  # fmt: skip
    cases += [
        case(cluster, f"{cluster}.{CLUSTER_CLASS}", invariant, found)
        for invariant, found in (facts.get("invariants") or {}).items()
    ]
    cases += traffic_cases(traffic)
    revisions = facts.get("revisions") or {}
    entry = cluster_entry(
        cluster,
        server=facts.get("server"),
        control_planes=_control_planes(revisions, namespaces),
        unplaced_namespaces=[n for n in namespaces if n["revision"] not in revisions],
        tenants=tenants,
    )
    return _document("isolation", [entry], cases, facts.get("problems") or [], traffic, generated)


def _control_planes(revisions: dict, namespaces: list) -> list:
    """Each installed revision with the tenant namespaces that carry its istio.io/rev label."""
    return [
        {
            "revision": revision,
            "namespace": info.get("namespace"),
            "ca": info.get("ca"),
            "cacerts": info.get("cacerts"),
            "namespaces": [n for n in namespaces if n["revision"] == revision],
        }
        for revision, info in sorted(revisions.items())
    ]


# The clusters of a mesh (istio_multicluster_info, one result per inventory host)


def multicluster_document(results: dict, traffic: list, generated: str) -> dict:
    """The report document of a mesh, from each host's istio_multicluster_info result ({host: result}). A host
    whose result is missing or failed is a failed test case, not a crash."""
    if not isinstance(results, dict) or not results:
        raise Refusal(
            "multicluster must map each inventory host to its registered meshops.istio.istio_multicluster_info result"
        )
    clusters, cases, problems = [], [], []
    for host, result in sorted(results.items()):
        if not isinstance(result, dict) or result.get("failed") or "cluster" not in result:
            reason = (result or {}).get("msg") if isinstance(result, dict) else None
            problem = f"cluster {host}: its facts could not be read ({reason or 'the task did not run'})"
            cases.append(case(host, f"{host}.{CLUSTER_CLASS}", "facts read", [problem]))
            problems.append(problem)
            clusters.append(cluster_entry(host, unread=problem))
            continue
        name = result["cluster"]["name"]
        invariants = result.get("invariants") or {}
        cases.append(case(name, f"{name}.{CLUSTER_CLASS}", "facts read", []))
        cases += [case(name, f"{name}.{CLUSTER_CLASS}", inv, found) for inv, found in invariants.items()]
        problems += result.get("problems") or []
        clusters.append(
            cluster_entry(
                name,
                network=result["cluster"].get("network"),
                cacerts=result["cluster"].get("cacerts"),
                remote_secrets=[
                    {**facts, "cluster": peer, "problems": invariants.get(f"remote secret for {peer} accepted") or []}
                    for peer, facts in sorted((result.get("remote_secrets") or {}).items())
                ],
            )
        )
    cases += traffic_cases(traffic)
    return _document("multicluster", clusters, cases, problems, traffic, generated)


def _document(kind: str, clusters: list, cases: list, problems: list, traffic: list, generated: str) -> dict:
    traffic_problems = [c["failure"] for c in cases if c["suite"] == TRAFFIC_SUITE and c["failure"]]
    failures = sum(1 for c in cases if c["failure"])
    return {
        "report": kind,
        "generated": generated,
        "passed": failures == 0,
        "tests": len(cases),
        "failures": failures,
        "problems": problems + traffic_problems,
        "clusters": clusters,
        "traffic": traffic_matrix(traffic),
        "cases": cases,
    }


# Output formats


def json_text(document: dict) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def junit_xml(document: dict, hostname: str) -> str:
    """JUnit XML in the Ant format (what Jenkins, GitLab, GitHub and AWX-side tools read): <testsuites> with one
    <testsuite> per cluster (and one for the traffic matrix), every attribute the strict Ant schema requires."""
    root = ET.Element("testsuites")
    suites = {}
    for item in document["cases"]:
        suites.setdefault(item["suite"], []).append(item)
    # The Ant schema's timestamp has no time zone: the report's UTC time without its suffix.
    timestamp = document["generated"].replace("Z", "")[:19]
    for index, (suite, items) in enumerate(suites.items()):
        element = ET.SubElement(root, "testsuite", {
            "name": suite,
            "package": f"meshops.istio.{document['report']}",
            "id": str(index),
            "timestamp": timestamp,
            "hostname": hostname or "localhost",
            "tests": str(len(items)),
            "failures": str(sum(1 for i in items if i["failure"])),
            "errors": "0",
            "time": "0",
        })  # fmt: skip
        ET.SubElement(element, "properties")
        for item in items:
            testcase = ET.SubElement(element, "testcase", name=item["name"], classname=item["classname"], time="0")
            if item["failure"]:
                failure = ET.SubElement(testcase, "failure", message=item["failure"], type="IsolationBroken")
                failure.text = item["failure"]
        ET.SubElement(element, "system-out")
        ET.SubElement(element, "system-err")
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def render_html(document: dict, template_text: str) -> str:
    """The HTML page, rendered from the document with autoescaping (facts come from the cluster)."""
    import jinja2  # only the action plugin renders; modules never import this

    environment = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    return environment.from_string(template_text).render(report=document)


def file_names(name: str) -> dict:
    return {kind: pattern.format(name=name) for kind, pattern in FILES.items()}
