"""Refusals of issue 15's classes 1, 2 and 6 and what verify reports (pure logic, no cluster): each names the
parameter, the value and the fix."""

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils import cacerts, client, istioctl, pki
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.gateway.spec import GatewaySpec
from ansible_collections.meshops.istio.plugins.module_utils.gateway.spec import validate as validate_gateway
from ansible_collections.meshops.istio.plugins.module_utils.isolation import access_problems, analyze
from ansible_collections.meshops.istio.plugins.module_utils.multicluster import MulticlusterInfoSpec
from ansible_collections.meshops.istio.plugins.module_utils.multicluster import validate as validate_multicluster
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import validate as validate_revision
from ansible_collections.meshops.istio.plugins.module_utils.tenant import labels_kept, refusals
from ansible_collections.meshops.istio.plugins.module_utils.tenant_spec import IsolationSpec, validate, validate_tenants
from selfsigned import rsa_ca
from test_cacerts import NOW, pem_spec
from test_cacerts import spec as cacerts_spec
from test_revision import params as revision_params
from test_tenant import REVISIONS
from test_tenant import params as tenant_params


def refusal(check, *args) -> str:
    with pytest.raises(Refusal) as refused:
        check(*args)
    return str(refused.value)


# Class 1: values the API server would reject late, in istio_tenant (alone and in `tenants`)


def test_tenant_namespace_names_over_63_characters_are_refused():
    message = refusal(validate, tenant_params(namespaces=["a" * 64]))
    assert message == f"namespaces[0] '{'a' * 64}' is 64 characters; at most 63 fit the names derived from it"


def test_tenant_revision_name_is_checked():
    assert "revision 'Bad_Rev' must be a DNS-1123 label" in refusal(validate, tenant_params(revision="Bad_Rev"))


def test_tenant_labels_and_annotations_are_checked_as_the_api_server_does():
    entry = {"name": "app", "labels": {"team": "x" * 64, "bad key": "v"}, "annotations": {"no/pe/": "v", "n": 1}}
    message = refusal(validate, tenant_params(namespaces=[entry]))
    assert "namespaces[0].labels.team value '" + "x" * 64 + "' is not a valid label value" in message
    assert "namespaces[0].labels key 'bad key' is not a valid label key" in message
    assert "namespaces[0].annotations key 'no/pe/' has an invalid prefix 'no/pe'" in message
    assert "namespaces[0].annotations.n is 1, not a string; quote it" in message


def test_every_tenant_of_a_list_is_checked_and_named_by_its_index():
    good = [tenant_params(name=f"t{i}", namespaces=[f"ns-{i}"]) for i in range(4)]
    bad = tenant_params(name="t4", namespaces=["ns-4", {"name": "ns-5", "labels": {"team": "has space"}}])
    message = refusal(validate_tenants, [*good, bad, tenant_params(name="t5", namespaces=["x" * 70])])
    assert message.startswith("tenants[4].namespaces[1].labels.team value 'has space' is not a valid label value")
    assert "tenants[5].namespaces[0] '" + "x" * 70 + "' is 70 characters" in message
    assert "tenants[0]" not in message


# Class 2: isolation guards


@pytest.mark.parametrize("pattern", ["*", "team-*", "app?", "[ab]"])
def test_wildcard_namespaces_are_refused_as_tenant_and_allowed_namespaces(pattern):
    message = refusal(validate, tenant_params(namespaces=[pattern], isolation={"allow_namespaces": ["ok", pattern]}))
    assert f"namespaces[0] {pattern!r} is a pattern; tenant namespaces and allow_namespaces take exact namespace " in (
        message
    )
    assert f"isolation.allow_namespaces[1] {pattern!r} is a pattern" in message


@pytest.mark.parametrize("namespace", ["kube-system", "kube-public", "kube-node-lease", "default"])
def test_kubernetes_system_namespaces_are_refused(namespace):
    message = refusal(validate, tenant_params(namespaces=[namespace], isolation={"allow_namespaces": [namespace]}))
    assert f"namespaces[0] {namespace!r} is a Kubernetes system namespace" in message
    assert f"isolation.allow_namespaces[0] {namespace!r} is a Kubernetes system namespace" in message


def test_another_revisions_system_namespace_may_not_be_allowed_in():
    spec = tenant_params(namespaces=["app"], isolation={"allow_namespaces": ["usergroup-1", "usergroup-2"]})
    assert refusals(spec, REVISIONS, {}) == [
        "isolation.allow_namespaces[1] usergroup-2 is the system namespace of revision usergroup-2, another control "
        "plane; remove it (the tenant's own control plane's namespace is always allowed)"
    ]


@pytest.mark.parametrize(
    ("admins", "field", "subject"),
    [
        ({"groups": ["system:authenticated"]}, "groups", "system:authenticated"),
        ({"groups": ["system:unauthenticated"]}, "groups", "system:unauthenticated"),
        ({"groups": ["system:anonymous"]}, "groups", "system:anonymous"),
        ({"groups": ["system:serviceaccounts"]}, "groups", "system:serviceaccounts"),
        ({"groups": ["system:serviceaccounts:kube-system"]}, "groups", "system:serviceaccounts:kube-system"),
        ({"users": ["system:anonymous"]}, "users", "system:anonymous"),
    ],
)
def test_cluster_wide_admins_are_refused_unless_opted_in(admins, field, subject):
    message = refusal(validate, tenant_params(isolation={"admins": admins}))
    assert message.startswith(f"isolation.admins.{field} holds {subject} (")
    assert message.endswith("or set isolation.allow_broad_admins: true if that is meant")
    validate(tenant_params(isolation={"admins": admins, "allow_broad_admins": True}))


def test_a_tenant_namespaces_own_service_accounts_and_named_groups_are_fine():
    admins = {"groups": ["system:serviceaccounts:app-ns-1", "team-a"], "users": ["alice"]}
    validate(tenant_params(isolation={"admins": admins}))


@pytest.mark.parametrize("key", ["istio-injection", "istio.io/rev", "usergroup", "meshops.io/anything"])
def test_reserved_labels_cannot_be_set_through_labels(key):
    message = refusal(validate, tenant_params(namespaces=[{"name": "app", "labels": {key: "x"}}]))
    assert message.startswith(f"namespaces[0].labels sets {key}, a label meshops.istio sets itself")


def test_discovery_label_is_one_label_and_not_an_istio_one():
    assert "discovery_label must hold exactly one key and value, got 2" in refusal(
        validate, tenant_params(discovery_label={"a": "1", "b": "2"})
    )
    assert "discovery_label key istio.io/rev is set by meshops.istio itself" in refusal(
        validate, tenant_params(discovery_label={"istio.io/rev": "x"})
    )


def test_labels_that_make_another_revision_select_the_namespace_are_refused():
    entry = {"name": "app", "labels": {"team": "a"}}
    spec = tenant_params(namespaces=[entry])
    assert refusals(spec, REVISIONS, {}) == []
    # A label put on by hand (kept by the run) that another revision's selector matches.
    kept = {"app": {"usergroup-x": "y", "team": "a"}}
    revisions = {**REVISIONS, "other": {"namespace": "other", "selectors": [{"matchLabels": {"team": "a"}}]}}
    [problem] = refusals(spec, revisions, {"app": {}}, kept)
    assert problem.startswith("namespaces[0] app: revision other would select it too (its discoverySelectors match ")
    assert "narrow revision other's discovery_selectors" in problem


def test_a_revision_without_selectors_selects_every_tenant_namespace():
    revisions = {**REVISIONS, "everything": {"namespace": "istio-system", "selectors": []}}
    [problem] = refusals(tenant_params(namespaces=["app"]), revisions, {})
    assert "revision everything would select it too (it has no discoverySelectors and selects every namespace)" in (
        problem
    )


def test_a_canary_in_the_same_system_namespace_is_not_another_control_plane():
    revisions = {**REVISIONS, "usergroup-1-canary": dict(REVISIONS["usergroup-1"])}
    assert refusals(tenant_params(namespaces=["app"]), revisions, {}) == []


def test_labels_the_collection_wrote_are_not_kept():
    namespace = {
        "metadata": {
            "labels": {"usergroup": "usergroup-2", "team": "a"},
            "managedFields": [
                {"manager": "meshops.istio", "fieldsV1": {"f:metadata": {"f:labels": {"f:usergroup": {}}}}},
                {"manager": "kubectl", "fieldsV1": {"f:metadata": {"f:labels": {"f:team": {}}}}},
            ],
        }
    }
    assert labels_kept(namespace) == {"team": "a"}
    assert labels_kept(None) == {}


def test_many_tenant_cluster_refusals_name_the_entry():
    spec = tenant_params(namespaces=["app"], isolation={"allow_namespaces": ["usergroup-2"]})
    [problem] = refusals(spec, REVISIONS, {}, None, "tenants[7].")
    assert problem.startswith("tenants[7].isolation.allow_namespaces[0] usergroup-2 is the system namespace")


# Class 6: messages


@pytest.mark.parametrize("name", ["123", "1e3", "true", "yes", "null", "inf", "nan"])
def test_revision_names_yaml_reads_as_numbers_or_bools_are_refused(name):
    message = refusal(validate_revision, revision_params(name=name))
    assert f"name {name!r} reads as a number, bool or null in YAML, which breaks istioctl's rendering" in message


def test_revision_tags_yaml_reads_as_numbers_are_refused():
    assert "revision_tags entry '1e3' reads as a number" in refusal(
        validate_revision, revision_params(revision_tags=["1e3"])
    )


def test_revision_values_of_the_wrong_type_name_the_key_path():
    message = refusal(validate_revision, revision_params(values={"global": {"proxy": "big"}, "pilot": ["x"]}))
    assert "values.global.proxy must be a mapping, got str 'big'" in message
    assert "values.pilot must be a mapping, got list ['x']" in message
    validate_revision(revision_params(values={"global": {"proxy": {"resources": {}}}, "pilot": {"env": {}}}))


def test_revision_cluster_name_follows_the_one_rule():
    assert "cluster_name 'Cluster_2' must be a DNS-1123 label" in refusal(
        validate_revision, revision_params(cluster_name="Cluster_2")
    )


def test_multicluster_info_cluster_names_follow_the_one_rule():
    spec = MulticlusterInfoSpec.from_params(
        {"cluster_name": "c1", "namespace": "istio-system", "network": "n1", "eastwest_gateway": None,
         "peers": [{"cluster_name": "C.2", "server": None}], "remote_secrets": ["c_3"]}
    )  # fmt: skip
    message = refusal(validate_multicluster, spec)
    assert "peers[0].cluster_name 'C.2' must be a DNS-1123 label" in message
    assert "remote_secrets[0] 'c_3' must be a DNS-1123 label" in message


def _istioctl_probe(bad_path: tuple, error: str):
    """What istioctl answers for a part of the spec: `error` when the part holds the key at `bad_path`."""
    calls = []

    def probe(spec):
        calls.append(spec)
        node = spec
        for key in bad_path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        return error

    return probe, calls


def test_an_istioctl_unmarshal_error_becomes_a_sentence_naming_the_key():
    error = (
        "Error: could not unmarshal: while decoding JSON: json: cannot unmarshal number into Go value of type string"
    )
    probe, calls = _istioctl_probe(("values", "global", "hub"), error)
    spec = {"values": {"pilot": {"replicaCount": 1}, "global": {"tag": "1.31", "hub": 5}}, "meshConfig": {}}
    sentence = istioctl.failure_sentence(error, probe, spec)
    assert sentence == (
        "values.global.hub is 5, which istioctl cannot read: it expects a string there; fix the type of "
        "values.global.hub"
    )
    assert "Go value" not in sentence and all(call["profile"] == "empty" for call in calls)


def test_an_unreadable_number_in_mesh_config_is_named_too():
    error = "Error: could not unmarshal: invalid character 'a' looking for beginning of value"
    probe, _calls = _istioctl_probe(("meshConfig", "defaultConfig", "concurrency"), error)
    spec = {"values": {}, "meshConfig": {"defaultConfig": {"concurrency": "abc"}}}
    assert istioctl.failure_sentence(error, probe, spec).startswith(
        "mesh_config.defaultConfig.concurrency is 'abc', which istioctl cannot read: it expects a number or true/false"
    )


def test_istioctl_panics_and_other_failures_give_no_go_trace():
    panic = "panic: json Marshal: json: unsupported value: +Inf\n\ngoroutine 1 [running]:\nmain.main()\n\t/x.go:1"
    sentence = istioctl.failure_sentence(panic, lambda spec: None, {})
    assert sentence.startswith("istioctl manifest generate crashed (json Marshal: json: unsupported value: +Inf)")
    assert "goroutine" not in sentence
    other = istioctl.failure_sentence("Error: unknown profile foo\nmore", lambda spec: None, {})
    assert other == "istioctl manifest generate failed: unknown profile foo"


def test_invalid_yaml_kubeconfig_gives_one_sentence_naming_the_option(tmp_path):
    bad = tmp_path / "bad"
    bad.write_text("apiVersion: v1\nclusters: [\n  - name: x\n  token: secret-token-value\n")
    message = client.kubeconfig_problem(str(bad), "remote.kubeconfig")
    assert message.startswith(f"remote.kubeconfig {bad} is not valid YAML (line 3, column 3: ")
    assert "secret-token-value" not in message and "\n" not in message
    scalar = tmp_path / "scalar"
    scalar.write_text("just text")
    assert "is not a kubeconfig: its YAML is not a mapping" in client.kubeconfig_problem(str(scalar), "kubeconfig")
    content = "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: hidden}}]\n"
    message = client.kubeconfig_problem(content, "peers[0].auth.kubeconfig")
    assert message.startswith("peers[0].auth.kubeconfig holds text, not a path") and "hidden" not in message
    good = tmp_path / "good"
    good.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "clusters": []}))
    assert client.kubeconfig_problem(str(good), "kubeconfig") is None
    assert client.kubeconfig_problem({"clusters": []}, "kubeconfig") is None
    assert client.kubeconfig_problem(None, "kubeconfig") is None


@pytest.fixture(scope="module")
def weak_root():
    return rsa_ca(1024, NOW)


def test_a_1024_bit_rsa_root_is_refused(weak_root):
    message = refusal(cacerts.signing_root, pem_spec(*weak_root), False, NOW)
    assert message == (
        "root_cert has a 1024-bit RSA key, under the 2048 bits the collection accepts for a CA; give (or generate) a "
        "root with a stronger key"
    )


def test_a_weak_additional_root_is_refused(weak_root):
    message = refusal(cacerts.additional_root_certificates, [pki.certificate_pem(weak_root[0]).decode()], NOW)
    assert message.startswith("additional_roots[0] holds ") and "has a 1024-bit RSA key" in message


def test_a_live_intermediate_with_a_weak_key_is_reissued(weak_root):
    # Self-signed, so it passes every earlier check of an intermediate (signed by "the root", a CA, its own key).
    reason = cacerts.intermediate_problem(weak_root[0], weak_root[1], weak_root[0], cacerts_spec(), NOW)
    assert reason == "it has a 1024-bit RSA key, under the 2048 bits the collection accepts for a CA"
    assert pki.weak_key_problem(pki.generate_root("ecdsa", NOW)[0]) is None
    assert pki.weak_key_problem(weak_root[0]).startswith("has a 1024-bit RSA key")


def test_cacerts_cluster_name_follows_the_one_rule():
    assert "cluster_name 'Cluster_1' must be a DNS-1123 label" in refusal(
        cacerts.validate, cacerts_spec(cluster_name="Cluster_1")
    )


# istio_gateway's class 1 values


def gateway(**service):
    params = {"name": "ingress", "namespace": "app", "revision": "r1", "service": service or None}
    return GatewaySpec.from_params(params)


def test_gateway_service_values_the_api_server_would_reject_late():
    spec = gateway(
        type="LoadBalancer",
        ports=[{"name": "http", "port": 80, "target_port": "http--web", "node_port": 70000, "protocol": "TCP"}],
        annotations={"bad key": "x"},
        load_balancer_ip="10.0.0.0/8",
        load_balancer_source_ranges=["10.0.0.1/8"],
    )
    message = refusal(validate_gateway, spec)
    assert "service.ports[0].target_port 'http--web' is not a valid port name: it must not hold '--'" in message
    assert "service.ports[0].node_port 70000 must be a port number from 1 to 65535" in message
    assert "service.annotations key 'bad key' is not a valid annotation key" in message
    assert "service.load_balancer_ip '10.0.0.0/8' is not an IP address" in message
    assert "service.load_balancer_source_ranges[0] '10.0.0.1/8' has host bits set; give the network address" in message


def test_gateway_resources_must_be_quantities():
    params = {"name": "ingress", "namespace": "app", "revision": "r1", "resources": {"requests": {"cpu": "1 core"}}}
    message = refusal(validate_gateway, GatewaySpec.from_params(params))
    assert message.startswith("resources.requests.cpu '1 core' is not a Kubernetes quantity")


# D: verify reports what opens a tenant namespace, whoever created it


def _policy(kind, name, spec=None, subjects=None):
    obj = {"kind": kind, "metadata": {"name": name, "namespace": "a"}, "spec": spec or {}}
    if subjects is not None:
        obj["subjects"] = subjects
    return obj


def test_verify_reports_wildcard_sources_egress_and_broad_bindings():
    objects = [
        _policy("AuthorizationPolicy", "open", {"rules": [{"from": [{"source": {"namespaces": ["*"]}}]}]}),
        _policy("AuthorizationPolicy", "deny", {"action": "DENY",
                                                "rules": [{"from": [{"source": {"namespaces": ["*"]}}]}]}),
        _policy("AuthorizationPolicy", "gateway", {"rules": [{}]}),
        _policy("Sidecar", "default", {"egress": [{"hosts": ["*/*", "a/*"]}]}),
        _policy("RoleBinding", "everyone", subjects=[{"kind": "Group", "name": "system:authenticated"}]),
        _policy("RoleBinding", "team", subjects=[{"kind": "Group", "name": "team-a"}]),
    ]  # fmt: skip
    problems = access_problems(objects, {"a"}, IsolationSpec())
    assert problems == [
        "AuthorizationPolicy open allows callers from namespaces '*', a wildcard; allow the tenant's namespaces by "
        "name instead",
        "Sidecar default has egress hosts */*, which reach every namespace; list the tenant's namespaces instead",
        "RoleBinding everyone binds group system:authenticated (every user or ServiceAccount of the cluster, or every "
        "anonymous caller); remove that subject, or set the tenant's isolation.allow_broad_admins: true if that is "
        "meant",
    ]
    opted_in = access_problems(objects, {"a"}, IsolationSpec(allow_broad_admins=True))
    assert not any("RoleBinding" in problem for problem in opted_in)


def test_verify_counts_broad_access_as_an_isolation_problem():
    from test_isolation import TENANTS, _state

    open_policy = _policy("AuthorizationPolicy", "open", {"rules": [{"from": [{"source": {"principals": ["*"]}}]}]})
    report = analyze(TENANTS, _state(access={"a": [open_policy]}))
    facts = report["tenants"]["t1"]["namespaces"]["a"]
    assert facts["invariants"]["no wildcard or broad access"] == [
        "tenant t1: namespace a: AuthorizationPolicy open allows callers from principals '*', a wildcard; allow the "
        "tenant's namespaces by name instead"
    ]
    assert report["problems"] == facts["invariants"]["no wildcard or broad access"]


def test_revision_values_that_become_labels_or_env_are_checked():
    message = refusal(
        validate_revision,
        revision_params(
            discovery_selectors=[{"matchLabels": {"usergroup": "x" * 64}}],
            network="net work",
            pilot_env={"1BAD": "x", "PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"},
        ),
    )
    assert "discovery_selectors[0].matchLabels.usergroup value '" + "x" * 64 + "' is not a valid label value" in message
    assert "network 'net work' becomes the label value topology.istio.io/network" in message
    assert "pilot_env key '1BAD' is not an environment variable name" in message
    assert "PILOT_SCOPE" not in message


def test_a_missing_kubeconfig_file_is_named(tmp_path):
    missing = str(tmp_path / "nowhere")
    assert client.kubeconfig_problem(missing, "remote.kubeconfig") == (
        f"remote.kubeconfig {missing} does not exist; give the path of a kubeconfig file on the controller"
    )
