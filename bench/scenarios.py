"""The scenarios measured: tenants generated as the playbook's vars (nothing big is committed), and the one-tenant
change each scenario re-runs with. Pure: no cluster, no files."""

import copy
from dataclasses import dataclass

# The playbook's own default, spelled out with `values`: without that key the playbook's
# `shared_control_plane['values']` resolves to the dict's values() method and the task fails.
SHARED_CONTROL_PLANE = {
    "name": "shared",
    "namespace": "istio-system",
    "pilot_env": {"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"},
    "values": {},
}
# The first gateway NodePort; each gateway takes the next one (the Service range is 30000-32767).
FIRST_NODE_PORT = 30000


@dataclass(frozen=True)
class Scenario:
    name: str
    model: str  # dedicated, shared or multicluster
    tenants: int
    namespaces_per_tenant: int = 1
    gateway_every: int = 0  # shared model: a gateway for every n-th tenant (0: none)
    clusters: int = 1
    repeats: int = 1  # runs of ours and the baselines in the default suite (medians over them)
    # The control-plane comparison; --full runs it everywhere. At 500 tenants it is shared-100's: skipped by default.
    control_plane: bool = True

    @property
    def namespaces(self) -> int:
        return self.tenants * self.namespaces_per_tenant


SCENARIOS = (
    Scenario("dedicated-3x3", "dedicated", 3, 3, repeats=3),
    Scenario("dedicated-10x3", "dedicated", 10, 3),
    Scenario("shared-100", "shared", 100, 1, gateway_every=10),
    Scenario("shared-500", "shared", 500, 1, gateway_every=10, control_plane=False),
    Scenario("multicluster-2", "multicluster", 0, clusters=2),
    # One multitenant.yml run over a fleet (one inventory host per cluster, forks >= 4), dedicated-3x3's tenants on
    # each cluster: how close to flat the wall time stays from 1 to 4 clusters.
    Scenario("fleet-1", "fleet", 3, 3, clusters=1),
    Scenario("fleet-2", "fleet", 3, 3, clusters=2),
    Scenario("fleet-4", "fleet", 3, 3, clusters=4),
)
# Scenarios compared pairwise to show how cost grows with tenants: (smaller, larger).
GROWTH_PAIRS = (("dedicated-3x3", "dedicated-10x3"), ("shared-100", "shared-500"))
# Issue 16's targets are judged on dedicated-10x3, shared-100 and shared-500: a quick run measures them (once, the
# baselines sampled), next to dedicated-3x3.
QUICK_SCENARIOS = ("dedicated-3x3", "dedicated-10x3", "shared-100", "shared-500")


def by_name(names) -> list:
    known = {s.name: s for s in SCENARIOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(known)}")
    return [known[n] for n in names]


def tenant_name(index: int) -> str:
    return f"tenant-{index:03d}"


def _gateway(index: int) -> dict:
    """A gateway shaped like seed 000's: autoscaled, NodePort 80 -> 8080, a port of its own."""
    return {
        "autoscale": {"min_replicas": 2},
        "service": {
            "type": "NodePort",
            "ports": [{"name": "http2", "port": 80, "target_port": 8080, "node_port": FIRST_NODE_PORT + index}],
        },
    }


def playbook_vars(scenario: Scenario) -> dict:
    """The extra vars for playbooks/multitenant.yml. Every tenant namespace gets the playbook's defaults: STRICT
    mTLS, an AuthorizationPolicy, a Sidecar scope and a NetworkPolicy."""
    tenants = []
    gateways = 0
    for index in range(1, scenario.tenants + 1):
        name = tenant_name(index)
        if scenario.namespaces_per_tenant == 1:
            namespaces = [name]
        else:
            namespaces = [f"{name}-ns-{n}" for n in range(1, scenario.namespaces_per_tenant + 1)]
        tenant = {"name": name, "namespaces": namespaces}
        if scenario.model in ("dedicated", "fleet"):  # seed 002's shape: each control plane selects its usergroup label
            tenant["discovery_label"] = {"usergroup": name}
        if scenario.gateway_every and index % scenario.gateway_every == 0:
            tenant["gateway"] = _gateway(gateways)
            gateways += 1
        tenants.append(tenant)
    variables = {"tenancy_model": "dedicated" if scenario.model == "fleet" else scenario.model, "tenants": tenants}
    if scenario.model == "shared":
        variables["shared_control_plane"] = SHARED_CONTROL_PLANE
    return variables


def with_one_tenant_changed(variables: dict) -> dict:
    """The same tenants, the first one onboarding one more namespace: what a day-2 change looks like."""
    changed = copy.deepcopy(variables)
    first = changed["tenants"][0]
    first["namespaces"].append(f"{first['name']}-added")
    return changed
