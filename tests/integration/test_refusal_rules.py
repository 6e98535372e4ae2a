"""The README's refusal rules (issue 15, classes 1, 2 and 6) on a real API server: each bad input fails its task
with a message naming the parameter, and the API server counts 0 writes. Then verify (istio_isolation_info)
reporting the same wildcards and broad bindings when they were created by hand.

One local cluster with two revisions; revision usergroup-2 also selects namespaces labelled shared-ops=true, so a
tenant label can make it select another tenant's namespace."""

import pytest
from kubernetes import client
from kubernetes.dynamic import DynamicClient
from localcluster import api_request_counts, writes
from selfsigned import weak_rsa_root_pem

REVISION_SELECTORS = {
    "usergroup-1": [{"matchLabels": {"usergroup": "usergroup-1"}}],
    "usergroup-2": [{"matchLabels": {"usergroup": "usergroup-2"}}, {"matchLabels": {"shared-ops": "true"}}],
}


@pytest.fixture(scope="module")
def run(run_on, cluster):
    def run_module(module, args):
        return run_on(cluster, args, module=f"meshops.istio.{module}")

    return run_module


@pytest.fixture(scope="module", autouse=True)
def revisions(run, binaries):
    for name, selectors in REVISION_SELECTORS.items():
        args = {"name": name, "namespace": name, "istioctl_path": str(binaries / "istioctl"),
                "discovery_selectors": selectors}  # fmt: skip
        result = run("istio_revision", args)
        assert not result.get("failed"), result.get("msg")


def tenant(**overrides):
    args = {
        "name": "usergroup-1",
        "revision": "usergroup-1",
        "discovery_label": {"usergroup": "usergroup-1"},
        "namespaces": ["ok-ns"],
    }
    return {**args, **overrides}


def many_tenants(last_entry: dict) -> dict:
    """20 tenants on revision usergroup-1, the last one `last_entry`'s changes."""
    entries = [
        {"name": f"t-{i}", "revision": "usergroup-1", "discovery_label": {"usergroup": "usergroup-1"},
         "namespaces": [f"many-{i}"]}
        for i in range(20)
    ]  # fmt: skip
    entries[19].update(last_entry)
    return {"tenants": entries}


def gateway(**service):
    return {"name": "ingress", "namespace": "gw-ns", "revision": "usergroup-1", "wait": False,
            "service": {"type": "LoadBalancer", **service}}  # fmt: skip


def port(**overrides):
    return {"ports": [{"name": "http", "port": 80, **overrides}]}


# A revision that would install if nothing else were wrong.
R3 = {"name": "r3", "namespace": "r3", "discovery_selectors": [{"matchLabels": {"usergroup": "r3"}}]}
BAD_KUBECONFIG = "apiVersion: v1\nclusters: [\n  - name: x\n  token: not-shown\n"

# case: (module, args, what the message must hold); {bad_kubeconfig} is a file holding BAD_KUBECONFIG.
CASES = {
    # Class 1: values the API server would reject late
    "namespace over 63 characters": (
        "istio_tenant", tenant(namespaces=["n" * 64]), f"namespaces[0] '{'n' * 64}' is 64 characters"),
    "label value over 63 characters": (
        "istio_tenant", tenant(namespaces=[{"name": "ok-ns", "labels": {"team": "v" * 64}}]),
        "namespaces[0].labels.team value"),
    "invalid annotation key": (
        "istio_tenant", tenant(namespaces=[{"name": "ok-ns", "annotations": {"bad key": "x"}}]),
        "namespaces[0].annotations key 'bad key' is not a valid annotation key"),
    "bad entry late in a 20-tenant list": (
        "istio_tenant", many_tenants({"namespaces": [{"name": "many-19", "labels": {"team": "a b"}}]}),
        "tenants[19].namespaces[0].labels.team value 'a b' is not a valid label value"),
    "target port name not an IANA service name": (
        "istio_gateway", gateway(**port(target_port="http--web")),
        "service.ports[0].target_port 'http--web' is not a valid port name"),
    "CIDR with host bits": (
        "istio_gateway", gateway(load_balancer_source_ranges=["10.0.0.1/8"]),
        "service.load_balancer_source_ranges[0] '10.0.0.1/8' has host bits set; give the network address 10.0.0.0/8"),
    "bad resource quantity": (
        "istio_gateway", {**gateway(), "resources": {"requests": {"cpu": "1 core"}}},
        "resources.requests.cpu '1 core' is not a Kubernetes quantity"),
    "invalid Service annotation key": (
        "istio_gateway", gateway(annotations={"bad key": "x"}), "service.annotations key 'bad key'"),
    "nodePort beyond 65535": (
        "istio_gateway", gateway(**port(node_port=70000)),
        "service.ports[0].node_port 70000 must be a port number from 1 to 65535"),
    # Class 2: isolation guards
    "wildcard tenant namespace": ("istio_tenant", tenant(namespaces=["*"]), "namespaces[0] '*' is a pattern"),
    "wildcard allowed namespace": (
        "istio_tenant", tenant(isolation={"allow_namespaces": ["team-*"]}),
        "isolation.allow_namespaces[0] 'team-*' is a pattern"),
    "kube-system as a tenant namespace": (
        "istio_tenant", tenant(namespaces=["kube-system"]),
        "namespaces[0] 'kube-system' is a Kubernetes system namespace"),
    "another control plane's namespace allowed in": (
        "istio_tenant", tenant(isolation={"allow_namespaces": ["usergroup-2"]}),
        "isolation.allow_namespaces[0] usergroup-2 is the system namespace of revision usergroup-2"),
    "system:authenticated as admins": (
        "istio_tenant", tenant(isolation={"admins": {"groups": ["system:authenticated"]}}),
        "isolation.admins.groups holds system:authenticated"),
    "system:anonymous as admin": (
        "istio_tenant", tenant(isolation={"admins": {"users": ["system:anonymous"]}}),
        "isolation.admins.users holds system:anonymous"),
    "istio-injection through labels": (
        "istio_tenant", tenant(namespaces=[{"name": "ok-ns", "labels": {"istio-injection": "enabled"}}]),
        "namespaces[0].labels sets istio-injection, a label meshops.istio sets itself"),
    "label another revision selects": (
        "istio_tenant", tenant(namespaces=[{"name": "ok-ns", "labels": {"shared-ops": "true"}}]),
        "namespaces[0] ok-ns: revision usergroup-2 would select it too"),
    "label another revision selects, late in a 20-tenant list": (
        "istio_tenant", many_tenants({"namespaces": [{"name": "many-19", "labels": {"shared-ops": "true"}}]}),
        "tenant t-19: tenants[19].namespaces[0] many-19: revision usergroup-2 would select it too"),
    # Class 6: messages
    "numeric revision name": ("istio_revision", {**R3, "name": "123"}, "name '123' reads as a number"),
    "inf as a revision name": ("istio_revision", {**R3, "name": "inf"}, "name 'inf' reads as a number"),
    "a mapping given a string in values": (
        "istio_revision", {**R3, "values": {"global": {"proxy": "big"}}},
        "values.global.proxy must be a mapping, got str 'big'"),
    "a number given text deep in values": (
        "istio_revision", {**R3, "values": {"pilot": {"replicaCount": "two"}}},
        "values.pilot.replicaCount is 'two', which istioctl cannot read"),
    "revision cluster_name": (
        "istio_revision", {**R3, "cluster_name": "Cluster_3"},
        "cluster_name 'Cluster_3' must be a DNS-1123 label"),
    "invalid YAML kubeconfig": (
        "istio_tenant", tenant(kubeconfig="{bad_kubeconfig}"), "kubeconfig {bad_kubeconfig} is not valid YAML (line 3"),
    "invalid YAML remote kubeconfig": (
        "istio_remote_secret", {"cluster_name": "c2", "remote": {"kubeconfig": "{bad_kubeconfig}"}},
        "remote.kubeconfig {bad_kubeconfig} is not valid YAML (line 3"),
    "1024-bit RSA root": (
        "istio_cacerts", {"cluster_name": "c1", **weak_rsa_root_pem()},
        "root_cert has a 1024-bit RSA key, under the 2048 bits the collection accepts for a CA"),
    "cacerts cluster_name": (
        "istio_cacerts", {"cluster_name": "Cluster_1", "root_dir": "/nonexistent"},
        "cluster_name 'Cluster_1' must be a DNS-1123 label"),
}  # fmt: skip


def _filled(value, replacements: dict):
    if isinstance(value, str):
        return value.format(**replacements) if "{bad_kubeconfig}" in value else value
    if isinstance(value, dict):
        return {key: _filled(item, replacements) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_filled(item, replacements) for item in value)
    return value


@pytest.fixture(scope="module")
def bad_kubeconfig(tmp_path_factory):
    path = tmp_path_factory.mktemp("kubeconfig") / "broken"
    path.write_text(BAD_KUBECONFIG)
    return str(path)


@pytest.mark.parametrize("case", list(CASES))
def test_refused_naming_the_parameter_with_no_write(case, run, cluster, binaries, bad_kubeconfig):
    module, args, message = _filled(CASES[case], {"bad_kubeconfig": bad_kubeconfig})
    if module == "istio_revision":
        args = {**args, "istioctl_path": str(binaries / "istioctl")}
    before = api_request_counts(cluster.kubeconfig)
    result = run(module, args)
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert result.get("failed") is True, result
    assert message in result["msg"], result["msg"]
    assert "goroutine" not in result["msg"] and "Traceback" not in result["msg"] and "not-shown" not in result["msg"]
    assert result.get("changed") is not True


def test_nothing_of_the_refused_runs_exists(api):
    names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
    assert not names & {"ok-ns", "gw-ns", "r3", *(f"many-{i}" for i in range(20))}


def test_an_explicit_opt_in_allows_a_broad_admin_group(run, api):
    result = run("istio_tenant", tenant(name="opted-in", discovery_label={"usergroup": "usergroup-1"},
                                        namespaces=["opted-ns"],
                                        isolation={"admins": {"groups": ["system:authenticated"]},
                                                   "allow_broad_admins": True}))  # fmt: skip
    assert result.get("failed") is not True, result.get("msg")
    binding = client.RbacAuthorizationV1Api(api).read_namespaced_role_binding("meshops-tenant-admins", "opted-ns")
    assert [s.name for s in binding.subjects] == ["system:authenticated"]


def test_verify_reports_wildcards_and_broad_bindings_created_by_hand(run, api):
    result = run("istio_tenant", tenant(name="handmade", namespaces=["handmade-ns"]))
    assert result.get("failed") is not True, result.get("msg")
    clean = run("istio_isolation_info", {"tenants": [{"name": "handmade", "namespaces": ["handmade-ns"]}]})
    assert clean["problems"] == [], clean["problems"]
    dynamic = DynamicClient(api)
    objects = [
        ("security.istio.io/v1", "AuthorizationPolicy", {"name": "open"},
         {"action": "ALLOW", "rules": [{"from": [{"source": {"namespaces": ["*"]}}]}]}),
        ("networking.istio.io/v1", "Sidecar", {"name": "wide"},
         {"workloadSelector": {"labels": {"app": "x"}}, "egress": [{"hosts": ["*/*"]}]}),
    ]  # fmt: skip
    for api_version, kind, metadata, spec in objects:
        body = {"apiVersion": api_version, "kind": kind, "metadata": {**metadata, "namespace": "handmade-ns"},
                "spec": spec}  # fmt: skip
        dynamic.resources.get(api_version=api_version, kind=kind).create(body=body, namespace="handmade-ns")
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        "handmade-ns",
        {
            "metadata": {"name": "everyone"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}],
        },
    )
    report = run("istio_isolation_info", {"tenants": [{"name": "handmade", "namespaces": ["handmade-ns"]}]})
    where = "tenant handmade: namespace handmade-ns"
    assert report["problems"] == [
        f"{where}: AuthorizationPolicy open allows callers from namespaces '*', a wildcard; allow the tenant's "
        "namespaces by name instead",
        f"{where}: Sidecar wide has egress hosts */*, which reach every namespace; list the tenant's namespaces "
        "instead",
        f"{where}: RoleBinding everyone binds group system:authenticated (every user or ServiceAccount of the "
        "cluster, or every anonymous caller); remove that subject, or set the tenant's "
        "isolation.allow_broad_admins: true if that is meant",
    ]
    facts = report["tenants"]["handmade"]["namespaces"]["handmade-ns"]
    assert facts["invariants"]["no wildcard or broad access"] == report["problems"]
