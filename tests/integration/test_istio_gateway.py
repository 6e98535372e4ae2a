"""istio_gateway against a real API server: seed 000's shared model (one revision, a gateway per tenant) and an
east-west gateway. The tests build on each other in file order, like a user's runs would.

The cluster is this module's own: installing a revision installs Istio's CRDs, and test_istio_revision expects
a cluster without them when it starts."""

import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from localcluster import api_request_counts, wait_for_namespace_defaults, writes
from written import written

MODULE = "meshops.istio.istio_gateway"
DISCOVERY = {"istio-discovery": "enabled"}
TENANTS = {"foo": 32180, "bar": 32280}
INGRESS = "istio-ingressgateway"
EASTWEST = "istio-eastwestgateway"
OWNED_KINDS = (  # what a gateway may own, by the API used to list it
    ("v1", "ServiceAccount"), ("v1", "Service"), ("apps/v1", "Deployment"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"), ("policy/v1", "PodDisruptionBudget"),
    ("rbac.authorization.k8s.io/v1", "Role"), ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("networking.istio.io/v1", "Gateway"), ("networking.istio.io/v1", "VirtualService"),
)  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def shared_revision(run, api, binaries):
    """Seed 000's one shared control plane; its tenants' namespaces are selected by it and use it."""
    result = run(
        {
            "name": "shared",
            "namespace": "istio-system",
            "istioctl_path": str(binaries / "istioctl"),
            "discovery_selectors": [{"matchLabels": DISCOVERY}],
            "pilot_env": {"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"},
            # No istiod process runs on kwok's fake nodes, so an injector webhook (failurePolicy Fail) could never
            # answer and no gateway pod could be created. Rendering the revision without its webhooks keeps
            # everything else of the revision (mesh ConfigMap, istiod, selectors) as seed 000 has it.
            "values": {"global": {"operatorManageWebhooks": True}},
            "wait_timeout": 120,
        },
        module="meshops.istio.istio_revision",
    )
    assert result.get("failed") is not True, result.get("msg")
    core = client.CoreV1Api(api)
    namespaces = {
        "foo": {**DISCOVERY, "istio.io/rev": "shared"},
        "bar": {**DISCOVERY, "istio.io/rev": "shared"},
        "no-injection": {**DISCOVERY, "istio-injection": "disabled"},
        "unselected": {},
    }
    for name, labels in namespaces.items():
        core.create_namespace({"metadata": {"name": name, "labels": labels}})
    for name in namespaces:
        wait_for_namespace_defaults(api, name)


def tenant_args(namespace, **overrides):
    args = {
        "name": INGRESS,
        "namespace": namespace,
        "revision": "shared",
        "autoscale": {"min_replicas": 2},
        "pdb": {"min_available": 1},
        "service": {
            "type": "NodePort",
            "ports": [{"name": "http2", "port": 80, "target_port": 8080, "node_port": TENANTS.get(namespace, 32380)}],
        },
        "wait_timeout": 120,
    }
    return {**args, **overrides}


def eastwest_args(**overrides):
    args = {
        "name": EASTWEST,
        "namespace": "foo",
        "revision": "shared",
        "kind": "eastwest",
        "network": "network1",
        "expose_services": True,
        "expose_istiod": True,
        "service": {"type": "NodePort"},
        "wait_timeout": 120,
    }
    return {**args, **overrides}


def owned(api, owner: str) -> dict:
    """{(kind, namespace, name): what the collection wrote to it} of every object labelled as the gateway `owner`'s."""
    dynamic = DynamicClient(api)
    found = {}
    for api_version, kind in OWNED_KINDS:
        resource = dynamic.resources.get(api_version=api_version, kind=kind)
        for item in resource.get(label_selector=f"meshops.io/gateway={owner}").items:
            found[(kind, item.metadata.namespace, item.metadata.name)] = written(item)
    return found


def expected_objects(namespace):
    names = ("ServiceAccount", "Role", "RoleBinding", "Service", "Deployment", "HorizontalPodAutoscaler",
             "PodDisruptionBudget")  # fmt: skip
    return {(kind, namespace, INGRESS) for kind in names}


def wait_for_hpa_scale(api, namespace, replicas=2, timeout=90):
    """The HPA, not the module, raises the Deployment to min_replicas; wait until its pods are available."""
    apps = client.AppsV1Api(api)
    deadline = time.monotonic() + timeout
    while True:
        deployment = apps.read_namespaced_deployment(INGRESS, namespace)
        if deployment.spec.replicas == replicas and (deployment.status.available_replicas or 0) == replicas:
            return deployment
        assert time.monotonic() < deadline, deployment.status
        time.sleep(1)


def test_check_mode_stores_nothing_and_the_diff_shows_every_object(run, api, cluster):
    stored, dry = (api_request_counts(cluster.kubeconfig, dry_run) for dry_run in (False, True))
    result = run(tenant_args("foo"), check=True, diff=True)
    assert result["changed"] is True, result.get("msg")
    shown = {d["before_header"] for d in result["diff"]}
    assert shown == {f"{kind} {ns}/{name}" for kind, ns, name in expected_objects("foo")}
    assert all(d["before"] == {} and d["after"]["metadata"]["name"] == INGRESS for d in result["diff"])
    assert {(o["kind"], o["namespace"], o["name"]) for o in result["objects"]} == expected_objects("foo")
    assert not owned(api, f"foo.{INGRESS}")
    assert writes(stored, api_request_counts(cluster.kubeconfig)) == {}
    dry_runs = writes(dry, api_request_counts(cluster.kubeconfig, dry_run=True))
    assert dry_runs.get(("APPLY", "deployments", "")) == 1, dry_runs


def test_seed_000_a_gateway_per_tenant_on_the_shared_revision(run, api):
    for namespace, node_port in TENANTS.items():
        result = run(tenant_args(namespace), diff=True)
        assert result["changed"] is True, result.get("msg")
        assert {(o["kind"], o["namespace"], o["name"]) for o in result["objects"]} == expected_objects(namespace)
        assert len(result["diff"]) == len(expected_objects(namespace))
        assert result["revision"] == "shared"
        assert result["selector"] == {"app": INGRESS, "istio": "ingressgateway"}
        assert result["service"]["type"] == "NodePort" and result["service"]["cluster_ip"]
        assert result["service"]["ports"] == [
            {"name": "http2", "port": 80, "target_port": 8080, "node_port": node_port, "protocol": "TCP"}
        ]
        assert result["address"] == f"{INGRESS}.{namespace}.svc.cluster.local"
        assert set(owned(api, f"{namespace}.{INGRESS}")) == expected_objects(namespace)

    for namespace in TENANTS:
        deployment = wait_for_hpa_scale(api, namespace)
        assert deployment.spec.replicas == 2


def test_the_objects_are_what_istios_injector_expects(api):
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    deployment = apps.read_namespaced_deployment(INGRESS, "foo")
    template = deployment.spec.template
    assert template.metadata.annotations["inject.istio.io/templates"] == "gateway"
    assert template.metadata.labels["sidecar.istio.io/inject"] == "true"
    assert template.metadata.labels["istio.io/rev"] == "shared"
    assert template.metadata.labels["app"] == INGRESS and template.metadata.labels["istio"] == "ingressgateway"
    assert deployment.spec.selector.match_labels == {"app": INGRESS, "istio": "ingressgateway"}
    sysctls = [(s.name, s.value) for s in template.spec.security_context.sysctls]
    assert sysctls == [("net.ipv4.ip_unprivileged_port_start", "0")]
    (container,) = template.spec.containers
    assert container.image == "auto" and container.name == "istio-proxy"
    assert container.security_context.run_as_non_root is True
    assert container.security_context.capabilities.drop == ["ALL"]
    assert template.spec.service_account_name == INGRESS
    assert "istio.io/rev" not in deployment.metadata.labels

    rbac = client.RbacAuthorizationV1Api(api)
    role = rbac.read_namespaced_role(INGRESS, "foo")
    assert [(r.api_groups, r.resources, r.verbs) for r in role.rules] == [([""], ["secrets"], ["get", "watch", "list"])]
    binding = rbac.read_namespaced_role_binding(INGRESS, "foo")
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", INGRESS)
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [("ServiceAccount", INGRESS, "foo")]
    core.read_namespaced_service_account(INGRESS, "foo")

    hpa = client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler(INGRESS, "foo")
    assert (hpa.spec.min_replicas, hpa.spec.max_replicas, hpa.spec.scale_target_ref.name) == (2, 5, INGRESS)
    pdb = client.PolicyV1Api(api).read_namespaced_pod_disruption_budget(INGRESS, "foo")
    assert pdb.spec.min_available == 1 and pdb.spec.selector.match_labels == deployment.spec.selector.match_labels
    for namespace, node_port in TENANTS.items():
        service = core.read_namespaced_service(INGRESS, namespace)
        assert service.spec.type == "NodePort"
        assert [(p.port, p.target_port, p.node_port) for p in service.spec.ports] == [(80, 8080, node_port)]
        assert service.spec.selector == {"app": INGRESS, "istio": "ingressgateway"}


def test_second_run_changes_nothing_and_sends_no_write(run, cluster):
    before = api_request_counts(cluster.kubeconfig)
    results = [run(tenant_args(namespace)) for namespace in TENANTS]
    after = api_request_counts(cluster.kubeconfig)
    assert [(r["changed"], r["objects"]) for r in results] == [(False, []), (False, [])], results
    assert writes(before, after) == {}


REFUSALS = {
    "revision not installed": (
        tenant_args("foo", revision="usergroup-9"),
        "revision 'usergroup-9' is neither an installed revision nor a revision tag (installed: shared)",
    ),
    "namespace with injection disabled": (
        tenant_args("no-injection"),
        "namespace no-injection carries istio-injection=disabled, which stops the gateway's injection",
    ),
    "namespace the revision does not select": (
        tenant_args("unselected"),
        "namespace unselected is not selected by the discoverySelectors of revision shared",
    ),
    "nodePort of another Service": (
        tenant_args("foo", name="second-gateway", service={"type": "NodePort", "ports": [
            {"name": "http2", "port": 80, "node_port": 32280}]}),
        "service.ports[0].node_port 32280 is already used by Service bar/istio-ingressgateway",
    ),
    "nodePort outside the range": (
        tenant_args("foo", service={"type": "NodePort", "ports": [{"name": "http2", "port": 80, "node_port": 8080}]}),
        "service.ports[0].node_port 8080 is outside the cluster's nodePort range 30000-32767",
    ),
    "invalid name": (tenant_args("foo", name="Ingress_GW"), "name 'Ingress_GW' must be lower-case letters"),
    "invalid port": (
        tenant_args("foo", service={"type": "NodePort", "ports": [{"name": "http2", "port": 0}]}),
        "service.ports[0].port 0 must be a port number from 1 to 65535",
    ),
    "selector change on an existing gateway": (
        tenant_args("foo", labels={"istio": "tenant-foo"}),
        "differ from the existing Deployment's selector",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_fail_with_the_reason_and_write_nothing(case, run, cluster):
    args, message = REFUSALS[case]
    before = api_request_counts(cluster.kubeconfig)
    result = run(args)
    assert result.get("failed") is True
    assert message in result["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_eastwest_gateway_for_network1_exposes_services_and_istiod(run, api):
    result = run(eastwest_args(), diff=True)
    assert result["changed"] is True, result.get("msg")
    assert {(o["kind"], o["name"]) for o in result["objects"]} == {
        ("ServiceAccount", EASTWEST), ("Role", EASTWEST), ("RoleBinding", EASTWEST), ("Service", EASTWEST),
        ("Deployment", EASTWEST), ("Gateway", "cross-network-gateway"), ("Gateway", "istiod-gateway"),
        ("VirtualService", "istiod-vs-shared"),
    }  # fmt: skip
    assert result["selector"] == {"app": EASTWEST, "istio": "eastwestgateway"}

    deployment = client.AppsV1Api(api).read_namespaced_deployment(EASTWEST, "foo")
    assert deployment.status.available_replicas == 1
    assert deployment.spec.template.metadata.labels["topology.istio.io/network"] == "network1"
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env == {"ISTIO_META_REQUESTED_NETWORK_VIEW": "network1"}
    service = client.CoreV1Api(api).read_namespaced_service(EASTWEST, "foo")
    assert service.metadata.labels["topology.istio.io/network"] == "network1"
    assert [(p.name, p.port) for p in service.spec.ports] == [
        ("status-port", 15021), ("tls", 15443), ("tls-istiod", 15012), ("tls-webhook", 15017),
    ]  # fmt: skip
    assert all(30000 <= p.node_port <= 32767 for p in service.spec.ports)

    custom = client.CustomObjectsApi(api)
    gateway = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1", "foo", "gateways", "cross-network-gateway"
    )
    assert gateway["spec"]["selector"]["istio"] == "eastwestgateway"
    assert gateway["spec"]["servers"] == [
        {"port": {"number": 15443, "name": "tls", "protocol": "TLS"}, "tls": {"mode": "AUTO_PASSTHROUGH"},
         "hosts": ["*.local"]}
    ]  # fmt: skip
    routes = custom.get_namespaced_custom_object(
        "networking.istio.io", "v1", "foo", "virtualservices", "istiod-vs-shared"
    )
    destinations = {r["match"][0]["port"]: r["route"][0]["destination"] for r in routes["spec"]["tls"]}
    host = "istiod-shared.istio-system.svc.cluster.local"
    assert destinations == {
        15012: {"host": host, "port": {"number": 15012}},
        15017: {"host": host, "port": {"number": 443}},
    }
    assert run(eastwest_args())["changed"] is False


def test_removing_the_eastwest_gateway_leaves_the_ingress_gateway_byte_identical(run, api):
    ingress_before = {namespace: owned(api, f"{namespace}.{INGRESS}") for namespace in TENANTS}
    assert all(ingress_before.values())

    result = run(eastwest_args(state="absent"), diff=True)
    assert result["changed"] is True, result.get("msg")
    assert {o["action"] for o in result["objects"]} == {"deleted"}
    assert all(d["after"] == {} and d["before"] for d in result["diff"])
    assert not owned(api, f"foo.{EASTWEST}")
    assert {namespace: owned(api, f"{namespace}.{INGRESS}") for namespace in TENANTS} == ingress_before
    assert run(eastwest_args(state="absent"))["changed"] is False


def test_removing_one_tenants_gateway_leaves_the_other_alone(run, api):
    bar_before = owned(api, f"bar.{INGRESS}")
    result = run({"name": INGRESS, "namespace": "foo", "state": "absent"})
    assert result["changed"] is True, result.get("msg")
    assert {(o["kind"], o["namespace"], o["name"]) for o in result["objects"]} == expected_objects("foo")
    assert not owned(api, f"foo.{INGRESS}")
    with pytest.raises(ApiException) as gone:
        client.AppsV1Api(api).read_namespaced_deployment(INGRESS, "foo")
    assert gone.value.status == 404
    assert owned(api, f"bar.{INGRESS}") == bar_before


def test_same_named_objects_of_others_are_refused_and_adopted_only_with_force_conflicts(run, api, cluster):
    """A ServiceAccount, Service, Role and RoleBinding made by hand with a new gateway's name: refused, each named,
    nothing written; force_conflicts adopts them, and only then does state: absent delete them."""
    name, core, rbac = "gw-hand", client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    hand = {"metadata": {"name": name, "labels": {"made-by": "hand"}}}
    core.create_namespaced_service_account("bar", hand)
    core.create_namespaced_service("bar", {**hand, "spec": {"ports": [{"port": 80}]}})
    rbac.create_namespaced_role("bar", {**hand, "rules": []})
    rbac.create_namespaced_role_binding(
        "bar", {**hand, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": "bar"}]},
    )  # fmt: skip
    args = tenant_args("bar", name=name, autoscale=None, pdb=None, wait=False,
                       service={"type": "ClusterIP", "ports": [{"name": "http2", "port": 80}]})  # fmt: skip
    made = {kind: written(read()) for kind, read in hand_made_readers(api, name).items()}

    before = api_request_counts(cluster.kubeconfig)
    refused = run(args)
    assert refused.get("failed") is True
    for kind in ("ServiceAccount", "Service", "Role", "RoleBinding"):
        assert f"{kind} bar/{name} already exists and was not created by meshops.istio" in refused["msg"]
    assert "set force_conflicts: true to adopt it" in refused["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert {kind: written(read()) for kind, read in hand_made_readers(api, name).items()} == made
    assert not owned(api, f"bar.{name}")

    adopted = run({**args, "force_conflicts": True})
    assert adopted["changed"] is True, adopted.get("msg")
    assert {("ServiceAccount", "bar", name), ("Service", "bar", name), ("Role", "bar", name),
            ("RoleBinding", "bar", name)} <= set(owned(api, f"bar.{name}"))  # fmt: skip
    removed = run({"name": name, "namespace": "bar", "state": "absent"})
    assert removed["changed"] is True, removed.get("msg")
    assert not owned(api, f"bar.{name}")


def hand_made_readers(api, name) -> dict:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    return {
        "ServiceAccount": lambda: core.read_namespaced_service_account(name, "bar"),
        "Service": lambda: core.read_namespaced_service(name, "bar"),
        "Role": lambda: rbac.read_namespaced_role(name, "bar"),
        "RoleBinding": lambda: rbac.read_namespaced_role_binding(name, "bar"),
    }


# The batch form: option `gateways`, every tenant's gateway in one module run.
BATCH = ("batch-1", "batch-2", "batch-3", "batch-4")
BATCH_KINDS = {"serviceaccounts", "roles", "rolebindings", "services", "deployments", "horizontalpodautoscalers",
               "poddisruptionbudgets", "gateways", "virtualservices", "namespaces", "configmaps",
               "mutatingwebhookconfigurations"}  # fmt: skip


def batch_entry(namespace, node_port):
    return {
        "name": INGRESS,
        "namespace": namespace,
        "revision": "shared",
        "autoscale": {"min_replicas": 2},
        "pdb": {"min_available": 1},
        "service": {"type": "NodePort", "ports": [
            {"name": "http2", "port": 80, "target_port": 8080, "node_port": node_port}]},
    }  # fmt: skip


def batch_args(namespaces, **overrides):
    entries = [batch_entry(namespace, 31000 + BATCH.index(namespace)) for namespace in namespaces]
    return {"gateways": entries, "wait": False, **overrides}


def reads_of_gateway_kinds(before: dict, after: dict) -> dict:
    """GETs and LISTs of what a gateway run reads, between two api_request_counts() snapshots."""
    return {
        key: int(count - before.get(key, 0))
        for key, count in after.items()
        if key[0] in ("GET", "LIST") and key[1] in BATCH_KINDS and not key[2] and count > before.get(key, 0)
    }


@pytest.fixture(scope="module")
def batch_namespaces(api):
    core = client.CoreV1Api(api)
    for name in (*BATCH, "batch-in-the-way"):
        core.create_namespace({"metadata": {"name": name, "labels": {**DISCOVERY, "istio.io/rev": "shared"}}})
        wait_for_namespace_defaults(api, name)
    return BATCH


def test_batch_check_mode_plans_every_gateway_and_stores_nothing(run, api, cluster, batch_namespaces):
    stored, dry = (api_request_counts(cluster.kubeconfig, dry_run) for dry_run in (False, True))
    result = run(batch_args(BATCH[:2]), check=True, diff=True)
    assert result["changed"] is True, result.get("msg")
    planned = {(o["kind"], o["namespace"], o["name"]) for o in result["objects"]}
    assert planned == expected_objects("batch-1") | expected_objects("batch-2")
    assert [g["namespace"] for g in result["gateways"]] == ["batch-1", "batch-2"]
    assert writes(stored, api_request_counts(cluster.kubeconfig)) == {}
    assert writes(dry, api_request_counts(cluster.kubeconfig, dry_run=True)).get(("APPLY", "deployments", "")) == 2
    assert not owned(api, f"batch-1.{INGRESS}")


def test_batch_converges_every_gateway_in_one_run(run, api, batch_namespaces):
    result = run(batch_args(BATCH[:2]), diff=True)
    assert result["changed"] is True, result.get("msg")
    for index, namespace in enumerate(BATCH[:2]):
        assert set(owned(api, f"{namespace}.{INGRESS}")) == expected_objects(namespace)
        summary = result["gateways"][index]
        assert (summary["namespace"], summary["revision"]) == (namespace, "shared")
        assert summary["address"] == f"{INGRESS}.{namespace}.svc.cluster.local"
        assert summary["service"]["cluster_ip"]
        assert [p["node_port"] for p in summary["service"]["ports"]] == [31000 + index]
    actions = {(o["namespace"], o["action"]) for o in result["objects"]}
    assert actions == {("batch-1", "created"), ("batch-2", "created")}


def test_batch_no_op_sends_no_write_and_reads_as_much_for_four_gateways_as_for_two(run, cluster, batch_namespaces):
    assert run(batch_args(BATCH))["changed"] is True  # batch-3 and batch-4 join
    reads = {}
    for size in (2, 4):
        before = api_request_counts(cluster.kubeconfig)
        result = run(batch_args(BATCH[:size]))
        after = api_request_counts(cluster.kubeconfig)
        assert (result["changed"], result["objects"]) == (False, []), result
        assert writes(before, after) == {}
        reads[size] = reads_of_gateway_kinds(before, after)
    assert reads[2] == reads[4], reads
    assert sum(reads[4].values()) <= 15, reads[4]
    assert not any(key[0] == "GET" for key in reads[4]), reads[4]


def test_batch_one_bad_entry_writes_nothing(run, api, cluster, batch_namespaces):
    args = batch_args(BATCH)
    args["gateways"][2]["name"] = "Bad_Name"
    args["gateways"][3]["pdb"] = {"min_available": 5}
    before = api_request_counts(cluster.kubeconfig)
    result = run(args)
    assert result.get("failed") is True
    assert "gateways[2]: name 'Bad_Name' must be" in result["msg"]
    assert "gateways[3]: pdb.min_available 5 is not below" in result["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_batch_a_gateway_in_the_way_is_set_aside_and_the_others_converge(run, api, cluster, batch_namespaces):
    core = client.CoreV1Api(api)
    hand = {"metadata": {"name": INGRESS, "labels": {"made-by": "hand"}}}
    core.create_namespaced_service_account("batch-in-the-way", hand)
    made = written(core.read_namespaced_service_account(INGRESS, "batch-in-the-way"))
    apps = client.AppsV1Api(api)
    # Drift on a converged gateway: a label of its Deployment changed by someone else.
    apps.patch_namespaced_deployment(INGRESS, "batch-2", {"metadata": {"labels": {"app.kubernetes.io/part-of": "x"}}},
                                     field_manager="by-hand")  # fmt: skip
    args = batch_args(BATCH)
    args["gateways"].insert(1, {**batch_entry("batch-in-the-way", 31100)})
    result = run(args)
    assert result.get("failed") is True
    assert list(result["failed_gateways"]) == [f"batch-in-the-way/{INGRESS}"]
    assert result["msg"].startswith("1 of 5 gateways failed: gateways[1] (batch-in-the-way/istio-ingressgateway): ")
    assert f"ServiceAccount batch-in-the-way/{INGRESS} already exists and was not created by" in result["msg"]
    assert "The other gateways (batch-1/istio-ingressgateway, batch-2" in result["msg"]
    # The others converged: batch-2's drift is repaired; nothing was written in the way.
    assert {(o["kind"], o["namespace"], o["action"]) for o in result["objects"]} == {
        ("Deployment", "batch-2", "updated")
    }
    assert apps.read_namespaced_deployment(INGRESS, "batch-2").metadata.labels["app.kubernetes.io/part-of"] == "istio"
    assert written(core.read_namespaced_service_account(INGRESS, "batch-in-the-way")) == made
    assert not owned(api, f"batch-in-the-way.{INGRESS}")


def test_batch_removal_removes_the_listed_gateways_and_nothing_else(run, api, batch_namespaces):
    kept = owned(api, f"batch-4.{INGRESS}")
    result = run({"gateways": [{"name": INGRESS, "namespace": n} for n in BATCH[:3]], "state": "absent"})
    assert result["changed"] is True, result.get("msg")
    assert {(o["namespace"], o["action"]) for o in result["objects"]} == {
        (namespace, "deleted") for namespace in BATCH[:3]
    }
    assert all(not owned(api, f"{namespace}.{INGRESS}") for namespace in BATCH[:3])
    assert owned(api, f"batch-4.{INGRESS}") == kept
