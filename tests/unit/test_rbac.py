"""The shipped ClusterRoles (roles/rbac/files) against the kinds the collection reads and writes, and the sentence a
403 Forbidden becomes: the verb, the resource, the scope and the shipped role to bind. The API server's answers come
from test_engine's recording fake client."""

from pathlib import Path

import pytest
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.claims import ClaimsLock
from ansible_collections.meshops.istio.plugins.module_utils.cluster import (
    INSTALLER_ROLE,
    VIEWER_ROLE,
    Cluster,
    api_message,
)
from ansible_collections.meshops.istio.plugins.module_utils.errors import EngineError
from ansible_collections.meshops.istio.plugins.module_utils.isolation import gather_isolation_report
from ansible_collections.meshops.istio.plugins.module_utils.kinds import KINDS
from test_engine import OWNER, FakeClient, api_error, engine_on, istio_system, manifest

FILES = Path(__file__).resolve().parents[2] / "roles" / "rbac" / "files"
SERVER_SAYS = 'configmaps "x" is forbidden: User "system:serviceaccount:t:ci" cannot patch resource "configmaps"'
READ_ONLY_KINDS = {"Pod", "PersistentVolumeClaim"}
WRITE_VERBS = {"create", "update", "patch", "delete", "escalate", "bind", "deletecollection", "*"}


def shipped(name: str) -> dict:
    return yaml.safe_load((FILES / f"{name}-clusterrole.yml").read_text())


def granted(role: dict, group: str, resource: str, name: str | None = None) -> set:
    """The verbs `role` grants on `resource` of `group` (on the object `name`, when given)."""
    return {
        verb
        for rule in role["rules"]
        if group in rule["apiGroups"] and resource in rule["resources"]
        if "resourceNames" not in rule or name in rule["resourceNames"]
        for verb in rule["verbs"]
    }


def test_the_shipped_roles_are_the_ones_the_errors_name():
    assert shipped("installer")["metadata"]["name"] == INSTALLER_ROLE
    assert shipped("viewer")["metadata"]["name"] == VIEWER_ROLE


@pytest.mark.parametrize("kind", sorted(KINDS.values(), key=lambda k: k.kind), ids=lambda k: k.kind)
def test_the_installer_role_reads_every_kind_and_writes_every_kind_the_engine_writes(kind):
    verbs = granted(shipped("installer"), kind.group, kind.plural, name="meshops-istio-claims")
    if kind.kind == "Lease":  # the claims lock: created, renewed (update) and given back
        assert verbs == {"create", "get", "update", "delete"}
    elif kind.kind in READ_ONLY_KINDS:  # watched only by istioctl analyze
        assert verbs - {"watch"} == {"get", "list"}
    elif kind.kind == "CustomResourceDefinition":  # never deleted: deleting a CRD deletes every object of its kind
        assert verbs - {"watch"} == {"get", "list", "create", "patch"}
    else:  # server-side apply is authorized as patch, and as create too when the object is new
        assert {"get", "list", "create", "patch", "delete"} <= verbs


def test_the_installer_role_holds_the_reviews_tokens_events_and_the_escalation_it_needs():
    role = shipped("installer")
    assert granted(role, "", "serviceaccounts/token") == {"create"}
    assert granted(role, "authentication.k8s.io", "tokenreviews") == {"create"}
    assert granted(role, "authorization.k8s.io", "subjectaccessreviews") == {"create"}
    assert granted(role, "", "events") == {"list"}
    for resource in ("clusterroles", "roles"):
        assert {"escalate", "bind"} <= granted(role, "rbac.authorization.k8s.io", resource)
    # Only the claims Lease may be read, renewed or deleted.
    assert granted(role, "coordination.k8s.io", "leases", name="istiod-leader") == {"create"}


def test_the_installer_role_has_a_reason_before_every_rule():
    text = (FILES / "installer-clusterrole.yml").read_text()
    rules = text.split("rules:\n", 1)[1].split("\n  - apiGroups")
    assert len(rules) == len(shipped("installer")["rules"]) + 1
    assert all(chunk.rstrip().splitlines()[-1].strip().startswith("#") for chunk in rules[:-1] if chunk.strip())


def test_the_viewer_role_writes_nothing_and_reads_what_verify_reads():
    role = shipped("viewer")
    verbs = {(verb, resource) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    assert {(v, r) for v, r in verbs if v in WRITE_VERBS} == {
        ("create", "tokenreviews"),  # reviews only ask
        ("create", "subjectaccessreviews"),
    }
    for kind in ("Namespace", "ConfigMap", "Secret", "MutatingWebhookConfiguration", "PeerAuthentication"):
        assert granted(role, KINDS[kind].group, KINDS[kind].plural) - {"watch"} == {"get", "list"}


# What istioctl analyze's informers list and watch (measured: without one of these it waits without end).
ANALYZER_READS = [
    ("", "namespaces"), ("", "configmaps"), ("", "secrets"), ("", "services"), ("", "pods"), ("", "nodes"),
    ("apps", "deployments"), ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("apiextensions.k8s.io", "customresourcedefinitions"), ("networking.istio.io", "*"), ("security.istio.io", "*"),
    ("telemetry.istio.io", "*"), ("extensions.istio.io", "*"),
]  # fmt: skip


@pytest.mark.parametrize("name", ["viewer", "installer"])
def test_both_roles_let_istioctl_analyze_list_and_watch_what_it_reads(name):
    for group, resource in ANALYZER_READS:
        assert {"list", "watch"} <= granted(shipped(name), group, resource), (group, resource)


def test_the_viewer_role_grants_every_read_of_istio_isolation_info():
    """Every kind istio_isolation_info reads, recorded by the fake client on a tenant with a NetworkPolicy (its
    namespace's Pods are read then)."""
    policy = manifest("NetworkPolicy", "meshops-tenant-isolation", "a", labels=OWNER.labels, spec={})
    fake = FakeClient([istio_system(), manifest("Namespace", "a", None, labels={"meshops.io/tenant": "a"}), policy])
    gather_isolation_report(Cluster(fake), [{"name": "a", "namespaces": ["a"]}])
    reads = {(call.verb, call.kind) for call in fake.calls}
    assert ("list", "Pod") in reads and ("list", "RoleBinding") in reads
    for verb, kind in reads:
        assert verb in granted(shipped("viewer"), KINDS[kind].group, KINDS[kind].plural), (verb, kind)


# A 403 Forbidden becomes a sentence


@pytest.mark.parametrize(
    ("call", "sentence"),
    [
        (lambda c: c.get("ConfigMap", "x", "istio-system"), "may not get configmaps in namespace istio-system"),
        (lambda c: c.list_objects("MutatingWebhookConfiguration"),
         "may not list mutatingwebhookconfigurations.admissionregistration.k8s.io at the cluster scope"),
        (lambda c: c.post("/apis/authentication.k8s.io/v1/tokenreviews", {"kind": "TokenReview"}),
         "may not create tokenreviews.authentication.k8s.io at the cluster scope"),
        (lambda c: c.request_token("istio-system", "reader", 3600, {}),
         "may not create serviceaccounts/token in namespace istio-system"),
    ],
)  # fmt: skip
def test_a_forbidden_read_names_the_verb_the_resource_the_scope_and_the_roles(call, sentence):
    fake = FakeClient([istio_system(), manifest("ConfigMap", "x")])
    for verb in ("get", "list"):
        fake.failures[(verb, "x")] = api_error(403, SERVER_SAYS)
        fake.failures[(verb, "MutatingWebhookConfiguration")] = api_error(403, SERVER_SAYS)
    fake.failures[("request", "TokenReview")] = api_error(403, SERVER_SAYS)
    fake.failures[("request", "TokenRequest")] = api_error(403, SERVER_SAYS)
    with pytest.raises(EngineError) as raised:
        call(Cluster(fake))
    message = str(raised.value)
    assert f"forbidden: this account {sentence}. Bind the ClusterRole {INSTALLER_ROLE}" in message
    assert message.endswith(f"The API server said: {SERVER_SAYS}")
    reading = sentence.split()[2] in ("get", "list")
    assert (f"(or {VIEWER_ROLE} for verify.yml and the *_info modules)" in message) == reading


@pytest.mark.parametrize(
    ("verb", "call", "sentence"),
    [
        ("apply", lambda e: e.ensure_present([manifest("ConfigMap", "x")]),
         "Cannot apply ConfigMap istio-system/x: forbidden: this account may not create or patch configmaps in "
         "namespace istio-system."),
        ("apply", lambda e: e.ensure_shared(manifest("CustomResourceDefinition", "x")),
         "Cannot apply CustomResourceDefinition x: forbidden: this account may not create or patch "
         "customresourcedefinitions.apiextensions.k8s.io at the cluster scope."),
        ("delete", lambda e: e.delete_objects([manifest("ConfigMap", "x")]),
         "Cannot delete ConfigMap istio-system/x: forbidden: this account may not delete configmaps in namespace "
         "istio-system."),
        ("patch", lambda e: e.remove_labels(manifest("ConfigMap", "x", labels={"a": "b"}), ["a"]),
         "Cannot remove labels ['a'] from ConfigMap istio-system/x: forbidden: this account may not patch "
         "configmaps in namespace istio-system."),
    ],
)  # fmt: skip
def test_a_forbidden_write_names_the_verb_the_resource_the_scope_and_the_installer_role(verb, call, sentence):
    fake = FakeClient([istio_system(), manifest("ConfigMap", "x", labels={"a": "b", **OWNER.labels})])
    fake.failures[(verb, "x")] = api_error(403, SERVER_SAYS)
    with pytest.raises(EngineError) as raised:
        call(engine_on(fake))
    assert str(raised.value) == (
        f"{sentence} Bind the ClusterRole {INSTALLER_ROLE} that the collection ships (playbooks/rbac.yml, see "
        f"docs/rbac.md) to it. The API server said: {SERVER_SAYS}"
    )


def test_a_forbidden_lock_names_the_lease_verb_and_the_installer_role():
    fake = FakeClient()

    def forbidden(*args, **kwargs):
        raise api_error(403, "leases is forbidden")

    fake.create = forbidden
    with pytest.raises(EngineError) as raised:
        ClaimsLock(Cluster(fake), "me", timeout=0).try_acquire()
    assert str(raised.value).startswith(
        "Cannot take the lock Lease kube-system/meshops-istio-claims: forbidden: this account may not create "
        f"leases.coordination.k8s.io in namespace kube-system. Bind the ClusterRole {INSTALLER_ROLE}"
    )


@pytest.mark.parametrize("status", [401, 404, 409, 422, 500])
def test_other_statuses_keep_the_servers_own_sentence(status):
    said = api_message(api_error(status, "the server's words"), "patch", KINDS["ConfigMap"], "x")
    assert said == "the server's words"
