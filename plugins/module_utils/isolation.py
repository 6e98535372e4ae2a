# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The isolation invariants verify.yml asserts, evaluated on what a cluster holds (read only).

`analyze` is pure: it takes listed objects and returns a report per tenant plus every problem as a sentence.
`gather_isolation_report` lists what it needs through the engine and calls it."""

from __future__ import annotations

from .apply import Engine, Owner, rollout_problem
from .revision import REV_LABEL, installed_revisions
from .selectors import any_matches, matches
from .tenant import ISOLATION_NAME, TENANT_LABEL

# (kind, name, isolation option that turns it off)
EXPECTED_POLICIES = (
    ("AuthorizationPolicy", ISOLATION_NAME, "authorization"),
    ("Sidecar", "default", "sidecar_scope"),
    ("NetworkPolicy", ISOLATION_NAME, "network_policy"),
)


def injector_webhooks(webhook_configurations: list, labels: dict) -> list:
    """`<configuration>/<webhook>` of every Istio injector webhook whose namespaceSelector admits `labels`."""
    found = []
    for configuration in webhook_configurations:
        if REV_LABEL not in (configuration["metadata"].get("labels") or {}):
            continue
        for webhook in configuration.get("webhooks") or []:
            if matches(webhook.get("namespaceSelector") or {}, labels):
                found.append(f"{configuration['metadata']['name']}/{webhook['name']}")
    return sorted(found)


def selector_overlaps(revisions: dict, namespaces: dict) -> list:
    """Sentences for every existing namespace two revisions' discoverySelectors both select."""
    names = sorted(revisions)
    problems = []
    for index, first in enumerate(names):
        for second in names[index + 1 :]:
            shared = sorted(
                ns for ns, labels in namespaces.items()
                if any_matches(revisions[first]["selectors"], labels)
                and any_matches(revisions[second]["selectors"], labels)
            )  # fmt: skip
            if shared:
                problems.append(f"revisions {first} and {second} both select namespaces {', '.join(shared)}")
    return problems


def _namespace_checks(tenant: dict, namespace: str, state: dict) -> tuple:
    """(facts, problems) for one tenant namespace."""
    labels = state["namespaces"].get(namespace)
    if labels is None:
        return {"exists": False}, [f"tenant {tenant['name']}: namespace {namespace} does not exist"]
    revision = labels.get(REV_LABEL)
    selected_by = sorted(r for r, info in state["revisions"].items() if any_matches(info["selectors"], labels))
    injectors = injector_webhooks(state["webhooks"], labels)
    policies = state["policies"].get(namespace, {})
    facts = {
        "exists": True,
        "revision": revision,
        "tenant": labels.get(TENANT_LABEL),
        "selected_by": selected_by,
        "injectors": injectors,
        "mtls": (policies.get(("PeerAuthentication", "default")) or {}).get("mtls", {}).get("mode"),
        "policies": sorted(f"{kind}/{name}" for kind, name in policies),
    }
    where, problems = f"tenant {tenant['name']}: namespace {namespace}", []
    if facts["tenant"] != tenant["name"]:
        problems.append(f"{where} is labelled {TENANT_LABEL}={facts['tenant']}, not {tenant['name']}")
    if revision not in state["revisions"]:
        problems.append(f"{where} points {REV_LABEL}={revision} at no installed revision")
    if selected_by != [revision]:
        problems.append(
            f"{where} carries {REV_LABEL}={revision} but is selected by revisions {', '.join(selected_by) or 'none'}; "
            f"expected {revision} alone"
        )
    if len(injectors) != 1:
        problems.append(f"{where} matches {len(injectors)} injector webhooks {injectors}; expected exactly one")
    expected_mtls = tenant.get("mtls") or "STRICT"
    if expected_mtls != "none" and facts["mtls"] != expected_mtls:
        problems.append(f"{where} has mTLS {facts['mtls'] or 'unset'}; expected {expected_mtls}")
    isolation = tenant.get("isolation") or {}
    for kind, name, option in EXPECTED_POLICIES:
        if isolation.get(option, True) and (kind, name) not in policies:
            problems.append(f"{where} lacks {kind} {name}")
    return facts, problems


def analyze(tenants: list, state: dict) -> dict:
    """The report: per tenant and namespace the facts, gateway readiness, selector overlaps, and problems.

    `state` holds namespaces {name: labels}, revisions (installed_revisions), webhooks (MWC objects),
    policies {namespace: {(kind, name): spec}} and gateways (Deployment objects)."""
    report = {"tenants": {}, "problems": selector_overlaps(state["revisions"], state["namespaces"])}
    for tenant in tenants:
        entry = {"namespaces": {}, "gateways": {}}
        for namespace in tenant["namespaces"]:
            facts, problems = _namespace_checks(tenant, namespace, state)
            entry["namespaces"][namespace] = facts
            report["problems"] += problems
        for gateway in state["gateways"]:
            metadata = gateway["metadata"]
            if metadata["namespace"] in tenant["namespaces"]:
                problem = rollout_problem(gateway)
                entry["gateways"][f"{metadata['namespace']}/{metadata['name']}"] = problem or "Ready"
                if problem:
                    report["problems"].append(
                        f"tenant {tenant['name']}: gateway {metadata['name']} is not Ready: {problem}"
                    )
        report["tenants"][tenant["name"]] = entry
    return report


def gather_isolation_report(client, tenants: list) -> dict:
    engine = Engine(client, Owner("verify", "read-only"), check_mode=True)
    managed = "app.kubernetes.io/managed-by=meshops.istio"
    policies = {}
    for kind in ("PeerAuthentication", "AuthorizationPolicy", "Sidecar", "NetworkPolicy"):
        for obj in engine.list_objects(kind, managed):
            key = (kind, obj["metadata"]["name"])
            policies.setdefault(obj["metadata"]["namespace"], {})[key] = obj.get("spec") or {}
    namespaces = engine.list_objects("Namespace")
    state = {
        "namespaces": {n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in namespaces},
        "revisions": installed_revisions(engine.list_objects("ConfigMap", label_selector=REV_LABEL)),
        "webhooks": engine.list_objects("MutatingWebhookConfiguration", label_selector=REV_LABEL),
        "policies": policies,
        "gateways": engine.list_objects("Deployment", label_selector="meshops.io/gateway"),
    }
    return analyze([_normalized(t) for t in tenants], state)


def _normalized(tenant: dict) -> dict:
    names = [n if isinstance(n, str) else n["name"] for n in tenant.get("namespaces") or []]
    return {**tenant, "namespaces": names}
