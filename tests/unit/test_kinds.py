"""Apply order: what others depend on goes first; phases: what may be written together."""

import itertools

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.kinds import (
    UnknownKindError,
    apply_order,
    kind_of,
    phase_of,
)


def _m(kind, name, namespace=None, api_version=None):
    version = api_version or kind_of({"kind": kind, "apiVersion": _API[kind]}).api_version
    metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": version, "kind": kind, "metadata": metadata}


_API = {
    "MutatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "Deployment": "apps/v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "ClusterRole": "rbac.authorization.k8s.io/v1",
    "ServiceAccount": "v1",
    "Namespace": "v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
}


SHUFFLED = [
    _m("MutatingWebhookConfiguration", "inject"),
    _m("Deployment", "istiod", "ns"),
    _m("Service", "istiod", "ns"),
    _m("ConfigMap", "mesh", "ns"),
    _m("ClusterRole", "reader"),
    _m("ServiceAccount", "istiod", "ns"),
    _m("Namespace", "ns"),
    _m("CustomResourceDefinition", "sidecars.networking.istio.io"),
]


def test_dependencies_first_webhooks_last():
    kinds = [m["kind"] for m in apply_order(SHUFFLED)]
    assert kinds == [
        "CustomResourceDefinition",
        "Namespace",
        "ClusterRole",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "MutatingWebhookConfiguration",
    ]


def test_phases_ascend_with_the_apply_order_and_hold_what_only_names_each_other():
    ordered = apply_order(SHUFFLED)
    assert [phase_of(m) for m in ordered] == sorted(phase_of(m) for m in ordered)
    phases = [[m["kind"] for m in phase] for _number, phase in itertools.groupby(ordered, key=phase_of)]
    assert phases == [
        ["CustomResourceDefinition"],
        ["Namespace"],
        ["ClusterRole", "ServiceAccount", "ConfigMap", "Service"],
        ["Deployment"],
        ["MutatingWebhookConfiguration"],
    ]
    policy = _m("NetworkPolicy", "isolation", "ns", api_version="networking.k8s.io/v1")
    assert phase_of(policy) == phase_of(_m("Deployment", "istiod", "ns"))


def test_order_is_deterministic_within_a_kind():
    a, b = _m("ConfigMap", "a", "x"), _m("ConfigMap", "b", "x")
    assert apply_order([b, a]) == apply_order([a, b]) == [a, b]


def test_unknown_kind_or_version_is_refused():
    with pytest.raises(UnknownKindError, match="not a kind this collection manages"):
        kind_of({"apiVersion": "apps/v1", "kind": "DaemonSet"})
    with pytest.raises(UnknownKindError):
        kind_of({"apiVersion": "apps/v1beta1", "kind": "Deployment"})
