"""Bad or isolation-breaking input, across every module that writes: each task fails with a message naming the
parameter, and the API server counts 0 writes (its own apiserver_request_total, not the module's word).

All cases run as tasks of one playbook against one prepared cluster (two revisions, a tag, a tenant, a gateway
and objects made by hand), so the write count over the whole run proves that no case wrote anything."""

import re
import time

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import api_request_counts, wait_for_namespace_defaults, writes
from playbook import run_tasks
from selfsigned import pem, rsa_ca

TENANT, REVISION, SHARED = "meshops.istio.istio_tenant", "meshops.istio.istio_revision", "meshops.istio.istio_gateway"
CACERTS, REMOTE = "meshops.istio.istio_cacerts", "meshops.istio.istio_remote_secret"
LONG = "x" * 64


def tenant(**args):
    return TENANT, {"name": "team-z", "revision": "rev-a", "namespaces": ["app-z"], **args}


def namespace(**entry):
    return tenant(namespaces=[{"name": "app-z", **entry}])


def admins(**who):
    return tenant(isolation={"admins": who})


def allow(*namespaces):
    return tenant(isolation={"allow_namespaces": list(namespaces)})


def many(*entries):
    return TENANT, {"tenants": [{"revision": "rev-a", **entry} for entry in entries]}


def revision(istioctl, **args):
    base = {"name": "rev-c", "namespace": "istio-c", "istioctl_path": istioctl, "wait": False}
    return REVISION, {**base, "discovery_selectors": [{"matchLabels": {"team": "c"}}], **args}


def gateway(**args):
    return SHARED, {"name": "gw-z", "namespace": "app-a", "revision": "rev-a", "wait": False, **args}


def ports(**port):
    return gateway(service={"type": "NodePort", "ports": [{"name": "http", "port": 80, **port}]})


def cacerts(pki, **args):
    return CACERTS, {"cluster_name": "cluster1", "namespace": "istio-a", "root_dir": str(pki), **args}


def remote_secret(kubeconfig, **args):
    return REMOTE, {"cluster_name": "cluster2", "remote": {"kubeconfig": kubeconfig}, "allow_loopback": True, **args}


def cases(istioctl, pki, weak_root, own_kubeconfig):
    """(id, (module, args), what the message must name)."""
    return [
        # istio_tenant: names and values the API server would reject late
        ("tenant-name-too-long", tenant(name=LONG), r"\bname\b"),
        ("namespace-too-long", tenant(namespaces=[LONG]), r"namespaces\[0\]"),
        ("namespace-uppercase", tenant(namespaces=["App-Z"]), r"namespaces\[0\]"),
        ("namespace-not-a-string", tenant(namespaces=[["a"]]), r"namespaces\[0\]"),
        ("annotation-key-invalid", namespace(annotations={"bad key!": "v"}), r"annotations"),
        ("annotation-prefix-too-long", namespace(annotations={"a" * 254 + "/k": "v"}), r"annotations"),
        ("label-key-invalid", namespace(labels={"a/b/c": "v"}), r"labels"),
        ("label-value-too-long", namespace(labels={"team": LONG}), r"labels"),
        ("discovery-label-invalid", tenant(discovery_label={"bad key": "x"}), r"discovery_label|label"),
        ("mtls-not-a-mode", tenant(mtls="OFF"), r"mtls"),
        ("unknown-option", tenant(namespace=["app-z"]), r"namespace"),
        ("revision-missing", tenant(revision=None), r"revision"),
        ("revision-not-installed", tenant(revision="nope"), r"revision"),
        # istio_tenant: isolation-breaking values
        ("reserved-label-injection", namespace(labels={"istio-injection": "enabled"}), r"labels"),
        ("reserved-label-rev", namespace(labels={"istio.io/rev": "rev-b"}), r"labels"),
        ("label-selected-by-other-revision", namespace(labels={"team": "b"}), r"labels|rev-b"),
        ("system-namespace-kube-system", tenant(namespaces=["kube-system"]), r"namespaces"),
        ("system-namespace-default", tenant(namespaces=["default"]), r"namespaces"),
        ("system-namespace-of-a-revision", tenant(namespaces=["istio-b"]), r"namespace"),
        ("another-tenants-namespace", tenant(namespaces=["app-a"]), r"takeover"),
        ("allow-wildcard", allow("*"), r"allow_namespaces"),
        ("allow-pattern", allow("team-*"), r"allow_namespaces"),
        ("allow-invalid-name", allow("Bad_NS"), r"allow_namespaces"),
        ("allow-system-namespace", allow("kube-system"), r"allow_namespaces"),
        ("admins-all-authenticated", admins(groups=["system:authenticated"]), r"admins|groups"),
        ("admins-unauthenticated", admins(groups=["system:unauthenticated"]), r"admins|groups"),
        ("admins-anonymous", admins(users=["system:anonymous"]), r"admins|users"),
        ("admins-all-service-accounts", admins(groups=["system:serviceaccounts"]), r"admins|groups"),
        # istio_tenant: `tenants`
        (
            "tenants-bad-second-entry",
            many({"name": "t1", "namespaces": ["t1"]}, {"name": "t2", "namespaces": [LONG]}),
            r"tenants\[1\]|tenant t2",
        ),
        (
            "tenants-namespace-twice",
            many({"name": "t1", "namespaces": ["x"]}, {"name": "t2", "namespaces": ["x"]}),
            r"namespace",
        ),
        ("tenants-name-twice", many({"name": "t1", "namespaces": ["x1"]}, {"name": "t1", "namespaces": ["x2"]}), r"t1"),
        ("tenants-unknown-key", many({"name": "t1", "namespace": ["x1"]}), r"namespace"),
        # istio_revision
        ("revision-name-numeric", revision(istioctl, name="123"), r"\bname\b"),
        ("revision-name-exponent", revision(istioctl, name="1e3"), r"\bname\b"),
        ("revision-name-bool", revision(istioctl, name="true"), r"\bname\b"),
        ("revision-name-inf", revision(istioctl, name="inf"), r"\bname\b"),
        ("revision-name-nan", revision(istioctl, name="nan"), r"\bname\b"),
        ("revision-name-null", revision(istioctl, name="null"), r"\bname\b"),
        ("revision-name-uppercase", revision(istioctl, name="Rev-C"), r"\bname\b"),
        ("revision-name-too-long", revision(istioctl, name="r" * 60), r"\bname\b"),
        ("revision-namespace-invalid", revision(istioctl, namespace="Istio_C"), r"namespace"),
        ("tag-held-by-another-revision", revision(istioctl, revision_tags=["prod-a"]), r"revision_tags|prod-a"),
        ("tag-default-without-opt-in", revision(istioctl, revision_tags=["default"]), r"default"),
        ("revision-named-like-a-tag", revision(istioctl, name="prod-a"), r"prod-a"),
        ("canary-of-unknown", revision(istioctl, canary_of="nope"), r"canary_of"),
        ("values-not-a-mapping", revision(istioctl, values={"global": "flat"}), r"values|global"),
        ("values-deep-wrong-type", revision(istioctl, values={"pilot": {"replicaCount": "many"}}), r"replicaCount"),
        (
            "selectors-invalid-key",
            revision(istioctl, discovery_selectors=[{"matchLabels": {"bad key": "x"}}]),
            r"discovery_selectors",
        ),
        (
            "selectors-overlap-a-tenant",
            revision(istioctl, discovery_selectors=[{"matchLabels": {"team": "a"}}]),
            r"discovery_selectors|overlap|rev-a",
        ),
        ("revision-cluster-name-invalid", revision(istioctl, cluster_name="bad name"), r"cluster_name"),
        ("istio-version-mismatch", revision(istioctl, istio_version="9.9.9"), r"istio_version"),
        # istio_gateway
        ("gateway-name-too-long", gateway(name=LONG), r"\bname\b"),
        ("gateway-revision-unknown", gateway(revision="nope"), r"revision"),
        ("target-port-name-too-long", ports(target_port="a-very-long-port-name"), r"target_port"),
        ("target-port-name-invalid", ports(target_port="Bad_Name"), r"target_port"),
        ("node-port-below-range", ports(node_port=80), r"node_port"),
        ("node-port-not-a-port", ports(node_port=70000), r"node_port"),
        ("port-number-zero", ports(port=0), r"port"),
        ("port-name-invalid", ports(name="Bad Name"), r"name"),
        (
            "source-range-invalid",
            gateway(service={"load_balancer_source_ranges": ["10.0.0.0/33"]}),
            r"load_balancer_source_ranges",
        ),
        ("service-annotation-invalid", gateway(service={"annotations": {"bad key!": "x"}}), r"annotations"),
        ("resources-bad-quantity", gateway(resources={"limits": {"cpu": "lots"}}), r"resources|cpu"),
        ("gateway-label-invalid", gateway(labels={"bad key": "v"}), r"labels"),
        ("replicas-negative", gateway(replicas=-1), r"replicas"),
        ("autoscale-min-above-max", gateway(autoscale={"min_replicas": 5, "max_replicas": 2}), r"min_replicas"),
        ("pdb-not-a-number", gateway(pdb={"min_available": "abc"}), r"min_available"),
        ("gateway-takes-a-hand-made-service-account", gateway(name="hand-made"), r"ServiceAccount|takeover|force"),
        # istio_cacerts
        ("cacerts-cluster-name-invalid", cacerts(pki, cluster_name="Bad Name"), r"cluster_name"),
        ("cacerts-validity-zero", cacerts(pki, validity_days=0), r"validity_days"),
        (
            "cacerts-root-not-pem",
            (CACERTS, {"cluster_name": "c1", "root_cert": "nope", "root_key": "nope"}),
            r"root_cert|root_key",
        ),
        # istio_remote_secret
        ("remote-is-the-primary", remote_secret(own_kubeconfig), r"remote"),
        ("remote-kubeconfig-not-yaml", remote_secret("clusters: [unclosed"), r"remote|kubeconfig"),
        ("remote-cluster-name-invalid", remote_secret(own_kubeconfig, cluster_name="Bad Name"), r"cluster_name"),
        ("remote-token-lifetime-negative", remote_secret(own_kubeconfig, token_lifetime=-5), r"token_lifetime"),
        ("weak-rsa-root", weak_root, r"2048|root_key|root_cert"),
    ]


@pytest.fixture(scope="module")
def prepared(cluster, api, run, binaries):
    """rev-a (tag prod-a) selecting team=a, rev-b selecting team=b, tenant team-a on rev-a with app-a, and a
    ServiceAccount made by hand in app-a."""
    istioctl = str(binaries / "istioctl")
    for name, team, tags in (("rev-a", "a", ["prod-a"]), ("rev-b", "b", [])):
        result = run(
            {
                "name": name,
                "namespace": f"istio-{team}",
                "istioctl_path": istioctl,
                "discovery_selectors": [{"matchLabels": {"team": team}}],
                "revision_tags": tags,
                "wait": False,
            },
            module=REVISION,
        )
        assert not result.get("failed"), result["msg"]
    result = run(
        {"name": "team-a", "revision": "rev-a", "namespaces": ["app-a"], "discovery_label": {"team": "a"}},
        module=TENANT,
    )
    assert not result.get("failed"), result["msg"]
    service_account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="hand-made"))
    client.CoreV1Api(api).create_namespaced_service_account("app-a", service_account)
    return istioctl


@pytest.mark.timeout(2400)  # some 75 module runs in one playbook: minutes on a loaded 2-core machine
def test_every_bad_input_fails_naming_its_parameter_and_writes_nothing(cluster, prepared, tmp_path):
    pki = tmp_path / "pki"
    weak_cert, weak_key = pem(*rsa_ca(1024))
    weak_root = (CACERTS, {"cluster_name": "cluster1", "namespace": "istio-a", "root_cert": weak_cert,
                           "root_key": weak_key})  # fmt: skip
    own_kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    table = cases(prepared, pki, weak_root, own_kubeconfig)
    assert len(table) >= 60
    tasks = [{"name": case[0], case[1][0]: case[1][1]} for case in table]

    before = api_request_counts(cluster.kubeconfig)
    results = run_tasks(cluster.kubeconfig, tasks, tmp_path)
    written = writes(before, api_request_counts(cluster.kubeconfig))

    problems = []
    for (name, _task, expected), result in zip(table, results, strict=True):
        if not result.get("failed"):
            problems.append(f"{name}: accepted ({result.get('objects')})")
        elif not re.search(expected, result.get("msg", ""), re.IGNORECASE):
            problems.append(f"{name}: message does not name /{expected}/: {result.get('msg')}")
        elif "Traceback" in result.get("msg", "") or "goroutine" in result.get("msg", ""):
            problems.append(f"{name}: a trace reached the user: {result.get('msg')}")
    assert not problems, "\n".join(problems)
    assert written == {}, written
    assert not (pki / "root-key.pem").exists()


def deny_network_policies_in(api, label: str):
    """A ValidatingAdmissionPolicy that rejects NetworkPolicies in namespaces carrying `label`=true: a rejection
    only the API server knows of, found when the object is written."""
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(api)
    policies = dynamic.resources.get(api_version="admissionregistration.k8s.io/v1", kind="ValidatingAdmissionPolicy")
    bindings = dynamic.resources.get(
        api_version="admissionregistration.k8s.io/v1", kind="ValidatingAdmissionPolicyBinding"
    )
    rule = {"apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
            "resources": ["networkpolicies"]}  # fmt: skip
    policies.create(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": "deny-network-policies"},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [rule]},
                "validations": [{"expression": "false", "message": "network policies are not allowed here"}],
            },
        }
    )
    bindings.create(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": "deny-network-policies"},
            "spec": {
                "policyName": "deny-network-policies",
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {label: "true"}}},
            },
        }
    )


def denied(api, namespace: str) -> bool:
    """Whether a dry-run NetworkPolicy in `namespace` is rejected yet (the policy takes effect shortly after it
    is created)."""
    policy = client.V1NetworkPolicy(
        metadata=client.V1ObjectMeta(name="probe"), spec=client.V1NetworkPolicySpec(pod_selector={})
    )
    try:
        client.NetworkingV1Api(api).create_namespaced_network_policy(namespace, policy, dry_run="All")
    except ApiException as error:
        return error.status in (403, 422)
    return False


def test_a_rejection_late_in_twenty_tenants_writes_nothing(cluster, api, prepared, tmp_path):
    last = "late-20"
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=last, labels={"refusals/deny": "true"}))
    )
    wait_for_namespace_defaults(api, last)
    deny_network_policies_in(api, "refusals/deny")
    deadline = time.monotonic() + 60
    while not denied(api, last):
        assert time.monotonic() < deadline, "the admission policy never took effect"
        time.sleep(0.5)
    tenants = [
        {"name": f"late-{n}", "revision": "rev-a", "namespaces": [f"late-{n}"], "discovery_label": {"team": "a"}}
        for n in range(1, 21)
    ]

    before = api_request_counts(cluster.kubeconfig)
    result = run_tasks(cluster.kubeconfig, [{"name": "twenty", TENANT: {"tenants": tenants}}], tmp_path)[0]
    written = writes(before, api_request_counts(cluster.kubeconfig))

    assert result.get("failed"), result
    assert re.search(r"tenants\[19\]|late-20", result["msg"]), result["msg"]
    assert "network policies are not allowed here" in result["msg"]
    assert "nothing was written" in result["msg"]
    assert not result.get("changed") and not result.get("objects")
    assert written == {}, written
    names = {ns.metadata.name for ns in client.CoreV1Api(api).list_namespace().items}
    assert not {f"late-{n}" for n in range(1, 20)} & names
