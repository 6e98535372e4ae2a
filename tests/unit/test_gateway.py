"""What istio_gateway builds and refuses: pure logic, no cluster. The expected values are the names, labels,
annotations and ports Istio's gateway injection (its `gateway` Helm chart) and its east-west gateways rely on."""

import dataclasses

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.gateway.ensure import service_facts
from ansible_collections.meshops.istio.plugins.module_utils.gateway.guards import (
    foreign_owner_problem,
    namespace_problems,
    node_port_problems,
    selector_change_problem,
)
from ansible_collections.meshops.istio.plugins.module_utils.gateway.manifests import manifests, selector_labels
from ansible_collections.meshops.istio.plugins.module_utils.gateway.spec import GatewaySpec, validate
from ansible_collections.meshops.istio.plugins.module_utils.vocabulary import installed_tags, resolve_revision
from ansible_collections.meshops.istio.plugins.modules.istio_gateway import (
    ARGUMENT_SPEC,
    MUTUALLY_EXCLUSIVE,
    REQUIRED_IF,
)


def gateway(**overrides):
    """Seed 000's gateway in namespace foo, as the module builds it."""
    return GatewaySpec.from_params(raw_params(**overrides))


def raw_params(**overrides):
    """What the module passes for seed 000's gateway in namespace foo."""
    base = {
        "name": "istio-ingressgateway",
        "namespace": "foo",
        "state": "present",
        "revision": "shared",
        "kind": "ingress",
        "replicas": None,
        "autoscale": {"min_replicas": 2, "max_replicas": 5, "target_cpu_utilization": 80},
        "pdb": {"min_available": 1},
        "service": {
            "type": "NodePort",
            "ports": [{"name": "http2", "port": 80, "target_port": 8080, "node_port": 32180, "protocol": "TCP"}],
            "annotations": {},
        },
        "labels": None,
        "resources": None,
        "network": None,
        "expose_services": False,
        "expose_istiod": False,
        "node_port_range": "30000-32767",
    }
    return {**base, **overrides}


def eastwest(**overrides):
    settings = {
        "name": "istio-eastwestgateway", "namespace": "istio-system", "kind": "eastwest", "network": "network1",
        "service": None, "autoscale": None, "pdb": None, "expose_services": True,
    }  # fmt: skip
    return gateway(**{**settings, **overrides})


def by_kind(objects):
    return {(o["kind"], o["metadata"]["name"]): o for o in objects}


def built(p=None):
    return by_kind(manifests(p or gateway(), "shared", "istio-system"))


def test_seed_000_gateway_has_every_object_named_after_the_gateway():
    assert set(built()) == {
        ("ServiceAccount", "istio-ingressgateway"),
        ("Role", "istio-ingressgateway"),
        ("RoleBinding", "istio-ingressgateway"),
        ("Deployment", "istio-ingressgateway"),
        ("Service", "istio-ingressgateway"),
        ("HorizontalPodAutoscaler", "istio-ingressgateway"),
        ("PodDisruptionBudget", "istio-ingressgateway"),
    }
    assert all(o["metadata"]["namespace"] == "foo" for o in built().values())


def test_pod_template_is_what_gateway_injection_expects():
    template = built()[("Deployment", "istio-ingressgateway")]["spec"]["template"]
    assert template["metadata"]["annotations"]["inject.istio.io/templates"] == "gateway"
    labels = template["metadata"]["labels"]
    assert labels["sidecar.istio.io/inject"] == "true"
    assert labels["istio.io/rev"] == "shared"
    assert labels["app"] == "istio-ingressgateway" and labels["istio"] == "ingressgateway"
    spec = template["spec"]
    assert spec["serviceAccountName"] == "istio-ingressgateway"
    assert spec["securityContext"]["sysctls"] == [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]
    (container,) = spec["containers"]
    assert container["name"] == "istio-proxy" and container["image"] == "auto"
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert "env" not in container


def test_the_revision_label_is_on_the_pods_only_so_istioctl_uninstall_revision_leaves_gateways_alone():
    for obj in built().values():
        assert "istio.io/rev" not in obj["metadata"]["labels"], obj["kind"]


def test_autoscaled_deployment_leaves_replicas_to_the_hpa():
    objects = built()
    deployment = objects[("Deployment", "istio-ingressgateway")]
    assert "replicas" not in deployment["spec"]
    assert deployment["metadata"]["annotations"] == {"meshops.io/min-replicas": "2"}  # what a rollout waits for
    hpa = objects[("HorizontalPodAutoscaler", "istio-ingressgateway")]["spec"]
    assert hpa["minReplicas"] == 2 and hpa["maxReplicas"] == 5
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "istio-ingressgateway"}
    assert hpa["metrics"][0]["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}


def test_fixed_replicas_without_hpa_or_pdb():
    objects = built(gateway(autoscale=None, pdb=None, replicas=3))
    assert objects[("Deployment", "istio-ingressgateway")]["spec"]["replicas"] == 3
    assert "annotations" not in objects[("Deployment", "istio-ingressgateway")]["metadata"]
    assert {key[0] for key in objects} == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"}
    assert built(gateway(autoscale=None, pdb=None))[("Deployment", "istio-ingressgateway")]["spec"]["replicas"] == 1


def test_pdb_and_deployment_select_the_gateway_pods():
    objects = built()
    selector = {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    assert objects[("PodDisruptionBudget", "istio-ingressgateway")]["spec"] == {
        "selector": {"matchLabels": selector},
        "minAvailable": 1,
    }
    assert objects[("Deployment", "istio-ingressgateway")]["spec"]["selector"] == {"matchLabels": selector}
    assert objects[("Service", "istio-ingressgateway")]["spec"]["selector"] == selector


def test_seed_000_service_is_nodeport_32180_for_port_80_to_8080():
    spec = built()[("Service", "istio-ingressgateway")]["spec"]
    assert spec["type"] == "NodePort"
    assert spec["ports"] == [{"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP", "nodePort": 32180}]


def test_default_service_is_the_charts_load_balancer_with_status_http2_https():
    spec = built(gateway(service=None))[("Service", "istio-ingressgateway")]["spec"]
    assert spec["type"] == "LoadBalancer"
    assert [(p["name"], p["port"], p["targetPort"]) for p in spec["ports"]] == [
        ("status-port", 15021, 15021), ("http2", 80, 80), ("https", 443, 443),
    ]  # fmt: skip
    egress = built(gateway(kind="egress", service=None))[("Service", "istio-ingressgateway")]["spec"]
    assert egress["type"] == "ClusterIP"


def test_role_lets_the_service_account_read_secrets_in_its_namespace():
    objects = built()
    role, binding = objects[("Role", "istio-ingressgateway")], objects[("RoleBinding", "istio-ingressgateway")]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "watch", "list"]}]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "istio-ingressgateway", "namespace": "foo"}]


def test_custom_labels_replace_the_default_selector():
    p = gateway(labels={"istio": "tenant-foo"})
    assert selector_labels(p) == {"istio": "tenant-foo"}
    assert built(p)[("Deployment", "istio-ingressgateway")]["spec"]["selector"] == {
        "matchLabels": {"istio": "tenant-foo"}
    }


def test_eastwest_gateway_has_network_label_env_and_ports():
    objects = built(eastwest())
    deployment = objects[("Deployment", "istio-eastwestgateway")]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["topology.istio.io/network"] == "network1"
    assert pod_labels["istio"] == "eastwestgateway" and pod_labels["app"] == "istio-eastwestgateway"
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert env == [{"name": "ISTIO_META_REQUESTED_NETWORK_VIEW", "value": "network1"}]
    service = objects[("Service", "istio-eastwestgateway")]
    assert service["metadata"]["labels"]["topology.istio.io/network"] == "network1"
    assert [(p["name"], p["port"]) for p in service["spec"]["ports"]] == [
        ("status-port", 15021), ("tls", 15443), ("tls-istiod", 15012), ("tls-webhook", 15017),
    ]  # fmt: skip


def test_expose_services_is_the_cross_network_gateway_with_auto_passthrough():
    gateway = built(eastwest())[("Gateway", "cross-network-gateway")]
    assert gateway["apiVersion"] == "networking.istio.io/v1"
    assert gateway["spec"]["selector"]["istio"] == "eastwestgateway"
    assert gateway["spec"]["servers"] == [
        {"port": {"number": 15443, "name": "tls", "protocol": "TLS"}, "tls": {"mode": "AUTO_PASSTHROUGH"},
         "hosts": ["*.local"]}
    ]  # fmt: skip
    assert ("Gateway", "cross-network-gateway") not in built(eastwest(expose_services=False))


def test_expose_istiod_routes_15012_and_15017_to_the_revisions_istiod():
    objects = by_kind(manifests(eastwest(expose_istiod=True), "usergroup-1", "usergroup-1"))
    gateway = objects[("Gateway", "istiod-gateway")]
    assert [(s["port"]["number"], s["tls"]["mode"]) for s in gateway["spec"]["servers"]] == [
        (15012, "PASSTHROUGH"), (15017, "PASSTHROUGH"),
    ]  # fmt: skip
    service = objects[("VirtualService", "istiod-vs-usergroup-1")]["spec"]
    assert service["gateways"] == ["istiod-gateway"]
    routes = {r["match"][0]["port"]: r["route"][0]["destination"] for r in service["tls"]}
    host = "istiod-usergroup-1.usergroup-1.svc.cluster.local"
    assert routes == {15012: {"host": host, "port": {"number": 15012}}, 15017: {"host": host, "port": {"number": 443}}}


def test_the_spec_resolves_every_default_once_and_cannot_be_changed():
    minimal = GatewaySpec.from_params({"name": "istio-ingressgateway", "namespace": "foo", "revision": "shared"})
    assert (minimal.state, minimal.kind, minimal.replicas, minimal.autoscale) == ("present", "ingress", 1, None)
    assert minimal.service.type == "LoadBalancer" and [p.port for p in minimal.service.ports] == [15021, 80, 443]
    assert dict(minimal.selector) == {"app": "istio-ingressgateway", "istio": "ingressgateway"}
    assert minimal.resources["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert (minimal.node_port_bounds, minimal.wait, minimal.wait_timeout) == ((30000, 32767), True, 300)
    scaled = gateway(autoscale={}, pdb=None)
    assert (scaled.replicas, scaled.autoscale.min_replicas, scaled.autoscale.max_replicas) == (None, 1, 5)
    assert scaled.fewest_replicas == 1 and scaled.min_available is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        minimal.kind = "egress"
    with pytest.raises(TypeError):
        minimal.selector["istio"] = "other"


def test_valid_seed_000_and_eastwest_params_pass():
    validate(gateway())
    validate(eastwest(expose_istiod=True))
    validate(GatewaySpec.from_params({"name": "istio-ingressgateway", "namespace": "foo", "state": "absent"}))


INVALID = {
    "name with upper case": ({"name": "Gateway"}, "name 'Gateway' must be lower-case letters"),
    "service name starting with a digit": ({"name": "1gw"}, "starting with a lower-case letter"),
    "owner label too long": ({"namespace": "n" * 40, "name": "g" * 30}, "the owner label meshops.io/gateway="),
    "nodePort outside range": (
        {"service": {"type": "NodePort", "ports": [{"name": "http2", "port": 80, "node_port": 8080}]}},
        "service.ports[0].node_port 8080 is outside the cluster's nodePort range 30000-32767",
    ),
    "nodePort on ClusterIP": (
        {"service": {"type": "ClusterIP", "ports": [{"name": "http2", "port": 80, "node_port": 32000}]}},
        "service.ports[0].node_port needs service.type NodePort or LoadBalancer",
    ),
    "port out of range": (
        {"service": {"type": "NodePort", "ports": [{"name": "http2", "port": 70000}]}},
        "service.ports[0].port 70000 must be a port number from 1 to 65535",
    ),
    "duplicate port name": (
        {"service": {"ports": [{"name": "http2", "port": 80}, {"name": "http2", "port": 81}]}},
        "service.ports[1].name 'http2' is used twice",
    ),
    "load balancer ip on NodePort": (
        {"service": {"type": "NodePort", "load_balancer_ip": "1.2.3.4"}},
        "service.load_balancer_ip needs service.type LoadBalancer",
    ),
    "pdb blocking drains": ({"pdb": {"min_available": 2}}, "pdb.min_available 2 is not below the gateway's 2"),
    "pdb 100 percent": ({"pdb": {"min_available": "100%"}}, "pdb.min_available 100% would block"),
    "hpa max below min": ({"autoscale": {"min_replicas": 3, "max_replicas": 2}}, "autoscale.max_replicas must be"),
    "network on ingress": ({"network": "network1"}, "network is only for kind eastwest"),
    "empty labels": ({"labels": {}}, "labels must not be empty"),
    "bad label value": ({"labels": {"istio": "a b"}}, "labels.istio value 'a b' is not a valid label value"),
    "bad node_port_range": ({"node_port_range": "high"}, "node_port_range 'high' must look like 30000-32767"),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_input_names_the_parameter(case):
    overrides, message = INVALID[case]
    with pytest.raises(Refusal) as error:
        validate(gateway(**overrides))
    assert message in str(error.value)


ARGUMENT_SPEC_REFUSALS = {
    "missing revision": ({"revision": None}, "state is present but all of the following are missing: revision"),
    "replicas with autoscale": ({"replicas": 2}, "parameters are mutually exclusive: replicas|autoscale"),
    "unknown kind": ({"kind": "sideways"}, "value of kind must be one of: ingress, egress, eastwest"),
    "unknown service type": ({"service": {"type": "External"}}, "value of type must be one of: ClusterIP"),
    "unknown protocol": (
        {"service": {"ports": [{"name": "http2", "port": 80, "protocol": "HTTP"}]}},
        "value of protocol must be one of: TCP, UDP, SCTP",
    ),
}


@pytest.mark.parametrize("case", list(ARGUMENT_SPEC_REFUSALS))
def test_the_argument_spec_refuses_what_validate_leaves_to_it(case):
    overrides, message = ARGUMENT_SPEC_REFUSALS[case]
    validator = ArgumentSpecValidator(ARGUMENT_SPEC, mutually_exclusive=MUTUALLY_EXCLUSIVE, required_if=REQUIRED_IF)

    def errors(args):  # what a task sets: options left unset are absent, not None
        return validator.validate({key: value for key, value in args.items() if value is not None}).error_messages

    assert errors(raw_params()) == []
    assert any(message in error for error in errors(raw_params(**overrides))), errors(raw_params(**overrides))


def test_eastwest_without_network_and_exposed_ports_missing_are_refused():
    with pytest.raises(Refusal, match="kind eastwest needs network"):
        validate(eastwest(network=None))
    ports = [{"name": "tls", "port": 15443}]
    with pytest.raises(Refusal, match="expose_istiod routes port 15012, which service.ports lacks"):
        validate(eastwest(expose_istiod=True, service={"ports": ports}))


REVISIONS = {"shared": {"namespace": "istio-system", "selectors": [{"matchLabels": {"mesh": "shared"}}]}}
TAG_WEBHOOK = {
    "metadata": {"name": "istio-revision-tag-prod", "labels": {"istio.io/tag": "prod", "istio.io/rev": "shared"}}
}


def namespace(labels):
    return {"metadata": {"name": "foo", "labels": labels}}


def test_revision_tags_resolve_to_their_revision():
    tags = installed_tags([TAG_WEBHOOK])
    assert tags == {"prod": "shared"}
    assert resolve_revision("prod", REVISIONS, tags) == "shared"
    assert resolve_revision("shared", REVISIONS, tags) == "shared"
    assert resolve_revision("usergroup-9", REVISIONS, tags) is None


def test_a_selected_namespace_without_injection_label_is_fine():
    assert namespace_problems(gateway(), namespace({"mesh": "shared"}), "shared", REVISIONS, {}) == []
    labelled = namespace({"mesh": "shared", "istio.io/rev": "prod"})
    assert namespace_problems(gateway(), labelled, "shared", REVISIONS, {"prod": "shared"}) == []


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"mesh": "shared", "istio-injection": "disabled"}, "namespace foo carries istio-injection=disabled"),
        ({"mesh": "shared", "istio-injection": "enabled"}, "revision injectors only act where that label is absent"),
        ({"mesh": "shared", "istio.io/rev": "other"}, "carries istio.io/rev=other, whose injector would inject"),
        ({"tenant": "foo"}, "namespace foo is not selected by the discoverySelectors of revision shared"),
    ],
)
def test_namespace_refusals(labels, message):
    (problem,) = namespace_problems(gateway(), namespace(labels), "shared", REVISIONS, {})
    assert message in problem


def test_missing_namespace_is_refused():
    (problem,) = namespace_problems(gateway(), None, "shared", REVISIONS, {})
    assert problem.startswith("namespace foo does not exist")


def service_with_node_port(namespace_, name, node_port):
    return {
        "metadata": {"namespace": namespace_, "name": name},
        "spec": {"ports": [{"port": 80, "nodePort": node_port}]},
    }


def test_node_port_held_by_another_service_names_it_but_our_own_is_fine():
    services = [
        service_with_node_port("bar", "gw-bar", 32180),
        service_with_node_port("foo", "istio-ingressgateway", 32180),
    ]
    (problem,) = node_port_problems(gateway(), services)
    assert problem == ("service.ports[0].node_port 32180 is already used by Service bar/gw-bar; choose a free nodePort")
    assert node_port_problems(gateway(), services[1:]) == []


def live(labels, selector=None):
    return {
        "kind": "Deployment",
        "metadata": {"namespace": "foo", "name": "istio-ingressgateway", "labels": labels},
        "spec": {"selector": {"matchLabels": selector or {}}},
    }


def test_objects_of_others_are_not_taken_over():
    assert foreign_owner_problem(None, gateway()) is None
    ours = {"app.kubernetes.io/managed-by": "meshops.istio"}
    assert foreign_owner_problem(live({**ours, "meshops.io/gateway": "foo.istio-ingressgateway"}), gateway()) is None
    other = foreign_owner_problem(live({**ours, "meshops.io/gateway": "bar.x"}), gateway())
    assert other.startswith(
        "Deployment foo/istio-ingressgateway already exists and belongs to meshops.istio's gateway bar.x"
    )
    assert "was not created by meshops.istio" in foreign_owner_problem(live({"app": "x"}), gateway())
    assert "set force_conflicts: true to adopt it" in foreign_owner_problem(live({"app": "x"}), gateway())
    assert foreign_owner_problem(live({"app": "x"}), gateway(force_conflicts=True)) is None


def test_selector_change_is_refused_because_kubernetes_cannot_change_it():
    ours = {"app.kubernetes.io/managed-by": "meshops.istio", "meshops.io/gateway": "foo.istio-ingressgateway"}
    same = live(ours, {"app": "istio-ingressgateway", "istio": "ingressgateway"})
    assert selector_change_problem(same, gateway()) is None
    assert "which Kubernetes cannot change" in selector_change_problem(same, gateway(labels={"istio": "other"}))


def test_service_facts_prefer_the_load_balancer_address():
    service = {
        "spec": {"type": "LoadBalancer", "clusterIP": "10.0.0.5",
                 "ports": [{"name": "tls", "port": 15443, "targetPort": 15443, "nodePort": 31000, "protocol": "TCP"}]},
        "status": {"loadBalancer": {"ingress": [{"hostname": "lb.example.com"}]}},
    }  # fmt: skip
    facts = service_facts(gateway(), service, {})
    assert facts["address"] == "lb.example.com" and facts["load_balancer_ingress"] == ["lb.example.com"]
    assert facts["ports"] == [
        {"name": "tls", "port": 15443, "target_port": 15443, "node_port": 31000, "protocol": "TCP"}
    ]
    assert service_facts(gateway(), None, {"spec": {}})["address"] == "istio-ingressgateway.foo.svc.cluster.local"
