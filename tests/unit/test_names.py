"""Kubernetes name and label syntax, shared by every module's validation."""

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.names import (
    DNS_1035_LABEL,
    DNS_LABEL,
    is_label_key,
    is_label_value,
)


@pytest.mark.parametrize(
    ("key", "valid"),
    [("app", True), ("meshops.io/tenant", True), ("topology.istio.io/network", True), ("a_b.c-d", True),
     ("Bad_Prefix/x", False), ("/x", False), ("x/", False), ("-x", False), ("n" * 64, False), (7, False)],
)  # fmt: skip
def test_label_keys(key, valid):
    assert is_label_key(key) is valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("usergroup-1", True), ("v1.2_a", True), ("-x", False), ("x" * 64, False), (1, False)],
)
def test_label_values(value, valid):
    assert is_label_value(value) is valid


def test_dns_names():
    assert DNS_LABEL.match("9-tenant") and not DNS_1035_LABEL.match("9-tenant")
    assert not DNS_LABEL.match("Tenant") and not DNS_LABEL.match("a.b")
