"""The shared value checks (values.py): what the API server or istioctl would reject late, refused early with a
sentence naming the parameter, the value and the fix. Pure logic, no cluster."""

import pytest
from ansible_collections.meshops.istio.plugins.module_utils import values

LONG_63 = "a" * 63


@pytest.mark.parametrize(
    ("labels", "problem"),
    [
        ({"team": "a", "example.com/tier": "web", "x": ""}, None),
        ({"a" * 64: "v"}, "labels key '" + "a" * 64 + "' is not a valid label key"),
        ({"Bad_Prefix.com/x": "v"}, "has an invalid prefix 'Bad_Prefix.com'"),
        ({"-team": "v"}, "is not a valid label key"),
        ({"team": "a" * 64}, "labels.team value '" + "a" * 64 + "' is not a valid label value"),
        ({"team": "has space"}, "is not a valid label value"),
        ({"team": 1}, "labels.team is 1, not a string; quote it"),
        ({"team": True}, "labels.team is True, not a string"),
        (["team"], "labels must be a mapping"),
        ({"team": LONG_63}, None),
    ],
)
def test_label_errors(labels, problem):
    errors = values.label_errors(labels, "labels")
    assert errors == [] if problem is None else any(problem in e for e in errors), errors


def test_annotation_keys_are_label_keys_whatever_their_case_and_values_strings():
    assert values.annotation_errors({"Example.COM/Owner": "x", "note": "long " * 100}, "annotations") == []
    [key] = values.annotation_errors({"bad key": "x"}, "annotations")
    assert key.startswith("annotations key 'bad key' is not a valid annotation key")
    [value] = values.annotation_errors({"n": 3}, "annotations")
    assert value == "annotations.n is 3, not a string; quote it (annotation values are strings)"
    assert values.annotation_errors({"n": 3}, "annotations", strings_only=False) == []


def test_annotations_over_256_kib_are_refused():
    fits = {"a": "x" * (256 * 1024 - 1)}
    assert values.annotation_errors(fits, "annotations") == []
    [error] = values.annotation_errors({"ab": "x" * (256 * 1024 - 1)}, "annotations")
    assert error.startswith("annotations hold 262145 bytes of keys and values; Kubernetes allows 262144")


@pytest.mark.parametrize(
    ("cidr", "problem"),
    [
        ("10.0.0.0/8", None),
        ("2001:db8::/32", None),
        ("10.0.0.1/8", "has host bits set; give the network address 10.0.0.0/8"),
        ("10.0.0.0/33", "is not a CIDR"),
        ("10.0.0.0", "is not a CIDR"),
        ("everywhere/0", "is not a CIDR"),
        (None, "is not a CIDR"),
    ],
)
def test_cidr_errors(cidr, problem):
    errors = values.cidr_errors(cidr, "ranges[0]")
    assert errors == [] if problem is None else (len(errors) == 1 and problem in errors[0]), errors
    if problem:
        assert errors[0].startswith(f"ranges[0] {cidr!r}")


@pytest.mark.parametrize("good", ["100m", "0.5", "1", "128Mi", "1Gi", "2k", "1e3", "1.5E-2", ".5", 2, 0.25, "0"])
def test_quantities_kubernetes_accepts(good):
    assert values.quantity_errors(good, "resources.requests.cpu") == []


@pytest.mark.parametrize("bad", ["100 m", "1gb", "lots", "1Kb", "", "1.2.3", "--1", True, None, [1]])
def test_quantities_kubernetes_rejects(bad):
    [error] = values.quantity_errors(bad, "resources.requests.cpu")
    assert error.startswith(f"resources.requests.cpu {bad!r} is not a Kubernetes quantity")


def test_negative_quantities_are_refused_for_resources():
    assert values.quantity_errors("-1", "q") == ["q '-1' is negative; give 0 or more"]
    assert values.quantity_errors("-0", "q") == []


def test_resources_errors_name_the_section_and_resource():
    assert values.resources_errors({"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {}}, "resources") == []
    errors = values.resources_errors({"requests": {"cpu": "lots"}, "limit": {}, "limits": "1"}, "resources")
    assert errors[0].startswith("resources.requests.cpu 'lots' is not a Kubernetes quantity")
    assert "resources has unknown key 'limit'; use requests and limits" in errors
    assert "resources.limits must be a mapping of resource names (cpu, memory) to quantities" in errors


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("http", None),
        ("http-envoy-prom", None),
        ("a" * 15, None),
        ("a" * 16, "is 16 characters; a port name has at most 15"),
        ("8080", "needs at least one letter"),
        ("http--web", "must not hold '--'"),
        ("-http", "must be lower-case letters, digits and '-'"),
        ("http-", "must be lower-case letters, digits and '-'"),
        ("HTTP", "must be lower-case letters, digits and '-'"),
        ("http_web", "must be lower-case letters, digits and '-'"),
    ],
)
def test_port_names_follow_iana_service_names(name, problem):
    errors = values.port_name_errors(name, "service.ports[0].target_port")
    if problem is None:
        assert errors == []
    else:
        [error] = errors
        assert error.startswith(f"service.ports[0].target_port {name!r} is not a valid port name: it {problem}")


@pytest.mark.parametrize(("number", "ok"), [(1, True), (65535, True), (0, False), (65536, False), (True, False),
                                            ("80", False), (-1, False)])  # fmt: skip
def test_port_numbers(number, ok):
    errors = values.port_number_errors(number, "node_port")
    assert (errors == []) is ok
    if not ok:
        assert errors == [f"node_port {number!r} must be a port number from 1 to 65535"]


@pytest.mark.parametrize("name", ["cluster1", "c", "east-1", LONG_63])
def test_cluster_names_accepted(name):
    assert values.cluster_name_errors(name) == []


@pytest.mark.parametrize("name", ["Cluster1", "c.2", "c_2", "-c", "c-", "a" * 64, "", None, "my cluster"])
def test_cluster_names_refused_with_the_one_rule(name):
    [error] = values.cluster_name_errors(name, "peers[1].cluster_name")
    assert error.startswith(f"peers[1].cluster_name {name!r} must be a DNS-1123 label (at most 63")
    assert "give the cluster's Istio cluster ID" in error


@pytest.mark.parametrize(
    "name",
    ["123", "1e3", "12e5", "1e-3", "0x1f", "0o17", "0b101", "true", "False", "yes", "no", "on", "off", "y", "n",
     "null", "inf", "Infinity", "nan", "2024-01-01"],
)  # fmt: skip
def test_names_yaml_reads_as_something_else_are_refused(name):
    [error] = values.plain_string_errors(name, "name")
    assert error == (
        f"name {name!r} reads as a number, bool or null in YAML, which breaks istioctl's rendering; choose a name "
        f"YAML keeps as text, such as rev-{name}"
    )


@pytest.mark.parametrize("name", ["1-24-0", "canary", "usergroup-1", "rev-123", "1-31", "infra", "nano", "yes-1"])
def test_names_that_stay_text_are_accepted(name):
    assert values.plain_string_errors(name, "name") == []


def test_ip_addresses():
    assert values.ip_address_errors("203.0.113.10", "ip") == []
    assert values.ip_address_errors("2001:db8::10", "ip") == []
    [error] = values.ip_address_errors("203.0.113.0/24", "service.load_balancer_ip")
    assert error.startswith("service.load_balancer_ip '203.0.113.0/24' is not an IP address")
