"""The Engine and the Cluster against a recording fake of the kubernetes DynamicClient: what they send, in which
order, and how they turn the API server's answers into reports and errors. No cluster, no waiting: the fake
answers at once, and any sleep fails the test. Tests of concurrent writes hold the fake's answers back until the
other writes they expect in flight have arrived (a barrier) or returned (an event), so the order they assert does
not depend on timing; a bound on those waits only ends a test whose engine does not send what it should."""

import contextlib
import copy
import itertools
import json
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from ansible_collections.meshops.istio.plugins.module_utils import cluster as cluster_module
from ansible_collections.meshops.istio.plugins.module_utils.cluster import Cluster
from ansible_collections.meshops.istio.plugins.module_utils.compare import HASH_ANNOTATION, HIDDEN
from ansible_collections.meshops.istio.plugins.module_utils.engine import Engine, Owner, Report, read_existing
from ansible_collections.meshops.istio.plugins.module_utils.errors import (
    ClusterUnreachable,
    EngineError,
    Refusal,
    UnknownKindError,
)
from ansible_collections.meshops.istio.plugins.module_utils.kinds import KINDS, apply_order, kind_key
from ansible_collections.meshops.istio.plugins.module_utils.vocabulary import FIELD_MANAGER, MANAGED_BY_LABEL
from kubernetes.client.rest import ApiException
from kubernetes.dynamic.exceptions import api_exception
from urllib3.exceptions import ProtocolError

HOST = "https://203.0.113.7:6443"
HELD_BACK = 10  # seconds a held answer waits at most: reached only when the writes it waits for are never sent
OWNER = Owner("revision", "usergroup-1")
OTHER_OWNER = Owner("revision", "usergroup-2")
CLUSTER_SCOPED = {"CustomResourceDefinition", "Namespace", "ValidatingWebhookConfiguration"}
# The phases of writes (kinds.phase_of), written out: CRDs, namespaces, RBAC-config-services, workloads-policies,
# webhooks.
PHASES = {
    "CustomResourceDefinition": 0,
    "Namespace": 1,
    "ServiceAccount": 2,
    "Role": 2,
    "ConfigMap": 2,
    "Secret": 2,
    "Service": 2,
    "Deployment": 3,
    "AuthorizationPolicy": 3,
    "Sidecar": 3,
    "ValidatingWebhookConfiguration": 4,
}


def api_error(status: int, message: str):
    """The error the kubernetes library raises for an HTTP status, with the API server's Status message."""
    error = ApiException(status=status, reason="from the fake")
    error.body = json.dumps({"kind": "Status", "message": message})
    error.headers = {"Content-Type": "application/json"}
    return api_exception(error)


def manifest(kind: str, name: str, namespace: str = "istio-system", labels=None, **content) -> dict:
    metadata = {"name": name} if kind in CLUSTER_SCOPED else {"name": name, "namespace": namespace}
    if labels:
        metadata["labels"] = dict(labels)
    return {"apiVersion": KINDS[kind].api_version, "kind": kind, "metadata": metadata, **content}


def key_of(obj: dict) -> tuple:
    return kind_key(obj), obj["metadata"].get("namespace") or "", obj["metadata"]["name"]


def stored_kind(resource) -> str:
    """The store's name of a resource's kind: its KINDS key, so that two groups' kinds of one name stay apart."""
    group = f"{resource.group}/" if resource.group else ""
    return kind_key({"kind": resource.kind, "apiVersion": f"{group}{resource.api_version}"})


@dataclass
class Call:
    verb: str  # get, list, apply, delete, patch, request
    kind: str = ""
    namespace: str = ""
    name: str = ""
    options: dict = field(default_factory=dict)


class Answer:
    """What the kubernetes library returns: an object with to_dict(), a list with items."""

    def __init__(self, obj=None, items=None):
        self._obj = obj if items is None else {"items": list(items)}
        self.items = [Answer(item) for item in items or ()]

    def to_dict(self):
        return copy.deepcopy(self._obj)


def answer(obj: dict, serializer=None):
    """Answer(obj), or what `serializer` makes of the server's JSON, as the kubernetes library's meta_request does."""
    return Answer(obj) if serializer is None else serializer(None, copy.deepcopy(obj))


class FakeClient:
    """A DynamicClient in front of a dict of objects. Records every call; answers the way the API server does for
    what the engine relies on: 404 for a missing object, equality label selectors, server-side dry run, a
    namespaced object refused while its namespace does not exist, a CRD Established as soon as it is applied,
    and 409 for a planned field conflict unless force_conflicts. `failures` plans other errors per (verb, name).
    Writes may come from several threads: `events` records when each starts and returns, `hold[(verb, name)]` runs
    before it is answered (to hold the answer back), and `returned(verb, name)` is set once it has returned."""

    def __init__(self, objects=()):
        self.configuration = SimpleNamespace(host=HOST)
        self.store = {key_of(obj): copy.deepcopy(obj) for obj in objects}
        self.calls = []
        self.conflicts = set()  # names whose apply meets another field manager's fields
        self.failures = {}  # (verb, name) -> exception
        self.answers = {}  # request path -> the object the server answers
        self.events = []  # ("start" | "end", (verb, kind, namespace, name)) of every write, in the order they happened
        self.hold = {}  # (verb, name) -> called before that write is answered
        self.most_in_flight = 0
        self._in_flight = 0
        self._returned = {}  # (verb, name) -> threading.Event
        self._lock = threading.Lock()
        self._versions = itertools.count(100)

    # Reads

    def get(self, resource, name=None, namespace=None, label_selector=None, field_selector=None, serializer=None):
        if name is None:
            self.calls.append(
                Call("list", stored_kind(resource), namespace or "", options={"label_selector": label_selector})
            )
            self._fail("list", stored_kind(resource))
            found = [
                _without_type(obj)
                for key, obj in sorted(self.store.items())
                if key[0] == stored_kind(resource)
                and namespace in (None, key[1])
                and _selects(label_selector, obj)
                and _selects(field_selector, obj, fields=True)
            ]
            return answer({"items": found}, serializer) if serializer else Answer(items=found)
        self.calls.append(Call("get", stored_kind(resource), namespace or "", name))
        self._fail("get", name)
        key = (stored_kind(resource), namespace or "", name)
        if key not in self.store:
            raise api_error(404, f'{resource.name} "{name}" not found')
        return answer(self.store[key], serializer)

    def request(self, method, path, body=None):
        self.calls.append(Call("request", body["kind"], options={"method": method, "path": path, "body": body}))
        self._fail("request", body["kind"])
        return Answer(self.answers[path])

    # Writes

    def server_side_apply(
        self, resource, body, name, namespace, field_manager, force_conflicts, dry_run, serializer=None
    ):
        options = {"body": copy.deepcopy(body), "field_manager": field_manager, "force": force_conflicts}
        self.calls.append(Call("apply", stored_kind(resource), namespace or "", name, {**options, "dry_run": dry_run}))
        with self._writing("apply", stored_kind(resource), namespace, name):
            after = self._applying(resource, body, name, namespace, field_manager, force_conflicts, dry_run)
        return answer(after, serializer)

    def _applying(self, resource, body, name, namespace, field_manager, force_conflicts, dry_run):
        self._fail("apply", name)
        if name in self.conflicts and not force_conflicts:
            raise api_error(409, f'Apply failed with 1 conflict: conflict with "kubectl-edit" on {name}')
        if namespace and ("Namespace", "", namespace) not in self.store:
            raise api_error(404, f'namespaces "{namespace}" not found')
        key = (stored_kind(resource), namespace or "", name)
        after = self._applied(self.store.get(key), body, field_manager)
        if dry_run is None:
            self.store[key] = after
        return after

    def delete(self, resource, name, namespace, dry_run, propagation_policy):
        options = {"dry_run": dry_run, "propagation_policy": propagation_policy}
        self.calls.append(Call("delete", stored_kind(resource), namespace or "", name, options))
        with self._writing("delete", stored_kind(resource), namespace, name):
            self._fail("delete", name)
            key = (stored_kind(resource), namespace or "", name)
            if key not in self.store:
                raise api_error(404, f'{resource.name} "{name}" not found')
            if dry_run is None:
                del self.store[key]

    def patch(self, resource, body, name, namespace, content_type, dry_run):
        options = {"body": body, "content_type": content_type, "dry_run": dry_run}
        self.calls.append(Call("patch", stored_kind(resource), namespace or "", name, options))
        with self._writing("patch", stored_kind(resource), namespace, name):
            self._fail("patch", name)
            after = copy.deepcopy(self.store[(stored_kind(resource), namespace or "", name)])
            for label, value in body["metadata"]["labels"].items():
                if value is None:
                    after["metadata"]["labels"].pop(label, None)
            if dry_run is None:
                self.store[key_of(after)] = after
            return Answer(after)

    # What the tests look at

    def verbs(self, *verbs) -> list:
        """(verb, kind, namespace, name) of the calls of `verbs`, in order."""
        return [(c.verb, c.kind, c.namespace, c.name) for c in self.calls if c.verb in verbs]

    def writes(self) -> list:
        return self.verbs("apply", "delete", "patch")

    def returned(self, verb: str, name: str) -> threading.Event:
        """Set once the write `verb` of `name` has returned (answered or raised)."""
        with self._lock:
            return self._returned.setdefault((verb, name), threading.Event())

    def _fail(self, verb, name):
        if (verb, name) in self.failures:
            raise self.failures[(verb, name)]

    @contextlib.contextmanager
    def _writing(self, verb, kind, namespace, name):
        write = (verb, kind, namespace or "", name)
        with self._lock:
            self.events.append(("start", write))
            self._in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self._in_flight)
        try:
            self.hold.get((verb, name), lambda: None)()
            yield
        finally:
            with self._lock:
                self._in_flight -= 1
                self.events.append(("end", write))
            self.returned(verb, name).set()

    def _applied(self, live, body, manager):
        after = copy.deepcopy(body)
        metadata = after["metadata"]
        live_metadata = (live or {}).get("metadata", {})
        others = [entry for entry in live_metadata.get("managedFields") or [] if entry["manager"] != manager]
        sets_fields = set(after) - {"apiVersion", "kind", "metadata"} or set(metadata) - {"name", "namespace"}
        metadata["managedFields"] = others + ([{"manager": manager, "operation": "Apply"}] if sets_fields else [])
        metadata["uid"] = live_metadata.get("uid") or f"uid-{metadata['name']}"
        metadata["resourceVersion"] = str(next(self._versions))
        if after["kind"] == "CustomResourceDefinition":
            after["status"] = {"conditions": [{"type": "Established", "status": "True"}]}
        return after


def _selects(selector: str | None, obj: dict, fields: bool = False) -> bool:
    """Label selectors of `key=value`, `key!=value` and `key` terms, or with `fields` equality field selectors on
    top-level fields (type=Warning) and on metadata.name and metadata.namespace."""
    values = (
        {**obj, **{f"metadata.{key}": obj["metadata"].get(key) for key in ("name", "namespace")}}
        if fields
        else (obj["metadata"].get("labels") or {})
    )
    return not selector or all(_term_holds(term, values) for term in selector.split(","))


def _term_holds(term: str, values: dict) -> bool:
    if "!=" in term:
        key, value = term.split("!=")
        return values.get(key) != value
    if "=" in term:
        key, value = term.split("=")
        return values.get(key) == value
    return term in values


def _without_type(obj: dict) -> dict:
    """A LIST's items come without kind and apiVersion."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def engine_on(fake, owner=OWNER, **options) -> Engine:
    return Engine(Cluster(fake), owner, **options)


def istio_system():
    return manifest("Namespace", "istio-system")


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch):
    """The fake answers at once, so nothing may wait; a test that sleeps is a test that depends on timing."""

    def refuse_to_sleep(seconds):
        raise AssertionError(f"a unit test tried to sleep {seconds} s")

    monkeypatch.setattr(cluster_module.time, "sleep", refuse_to_sleep)


# Apply order and reads


def test_manifests_are_applied_in_dependency_order():
    fake = FakeClient()
    desired = [
        manifest("ValidatingWebhookConfiguration", "istio-validator-usergroup-1"),
        manifest("AuthorizationPolicy", "deny-other-tenants", "usergroup-1"),
        manifest("Deployment", "istiod-usergroup-1", "usergroup-1"),
        manifest("Service", "istiod-usergroup-1", "usergroup-1"),
        manifest("ConfigMap", "istio-usergroup-1", "usergroup-1"),
        manifest("Role", "istiod-usergroup-1", "usergroup-1"),
        manifest("ServiceAccount", "istiod-usergroup-1", "usergroup-1"),
        manifest("Namespace", "usergroup-1"),
        manifest("CustomResourceDefinition", "sidecars.networking.istio.io"),
    ]
    report = engine_on(fake).ensure_present(desired)
    expected = [
        ("CustomResourceDefinition", ""),  # CRDs
        ("Namespace", ""),  # namespaces
        ("Role", "usergroup-1"),  # RBAC
        ("ServiceAccount", "usergroup-1"),
        ("ConfigMap", "usergroup-1"),  # config
        ("Service", "usergroup-1"),  # services
        ("Deployment", "usergroup-1"),  # workloads
        ("AuthorizationPolicy", "usergroup-1"),  # policies
        ("ValidatingWebhookConfiguration", ""),  # webhooks
    ]
    assert [(o["kind"], o["namespace"]) for o in report.objects] == expected
    # Sent a phase at a time: within one, in any order.
    assert sorted(write[1] for write in fake.writes()) == sorted(kind for kind, _namespace in expected)
    assert [PHASES[write[1]] for write in fake.writes()] == sorted(PHASES[write[1]] for write in fake.writes())
    assert {o["action"] for o in report.objects} == {"created"} and report.changed


def test_every_write_carries_the_owner_labels_the_hash_and_our_field_manager():
    fake = FakeClient([istio_system()])
    engine_on(fake).ensure_present([manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}"})])
    (call,) = [c for c in fake.calls if c.verb == "apply"]
    metadata = call.options["body"]["metadata"]
    assert metadata["labels"] == {MANAGED_BY_LABEL: FIELD_MANAGER, "meshops.io/revision": "usergroup-1"}
    assert metadata["annotations"][HASH_ANNOTATION]
    assert call.options["field_manager"] == FIELD_MANAGER
    assert call.options["force"] is False and call.options["dry_run"] is None


def test_reads_are_one_list_per_kind_and_one_get_per_object_not_owned_yet():
    owned = [manifest("ConfigMap", f"cm-{n}", labels=OWNER.labels) for n in (1, 2)]
    fake = FakeClient([istio_system(), *owned])
    desired = [manifest("ConfigMap", "cm-1"), manifest("ConfigMap", "cm-2"), manifest("Service", "istiod")]
    engine_on(fake).ensure_present(desired)
    assert fake.verbs("get", "list") == [
        ("list", "ConfigMap", "", ""),
        ("list", "Service", "", ""),
        ("get", "Service", "istio-system", "istiod"),
    ]
    assert {c.options["label_selector"] for c in fake.calls if c.verb == "list"} == {OWNER.selector}


def test_a_crd_is_waited_for_until_established_before_what_depends_on_it():
    fake = FakeClient()
    crd = manifest("CustomResourceDefinition", "sidecars.networking.istio.io")
    engine_on(fake).ensure_present([crd, manifest("Namespace", "usergroup-1")])
    crd_calls = [(c.verb, c.name) for c in fake.calls if c.kind == "CustomResourceDefinition" and c.verb != "list"]
    assert crd_calls == [
        ("get", "sidecars.networking.istio.io"),  # not owned yet
        ("apply", "sidecars.networking.istio.io"),
        ("get", "sidecars.networking.istio.io"),  # Established?
    ]
    assert fake.writes()[-1] == ("apply", "Namespace", "", "usergroup-1")


def test_an_unknown_kind_is_refused_before_anything_is_sent():
    fake = FakeClient()
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    with pytest.raises(UnknownKindError, match="example.com/v1/Widget is not a kind this collection manages"):
        engine_on(fake).ensure_present([manifest("Namespace", "usergroup-1"), widget])
    assert fake.calls == []


# Concurrent writes: a phase at a time


def held_together(fake, verb: str, names) -> None:
    """Hold the answers to `verb` of `names` until all of them have arrived: they pass only when sent together."""
    barrier = threading.Barrier(len(names), timeout=HELD_BACK)
    for name in names:
        fake.hold[(verb, name)] = barrier.wait


def answered_after(fake, verb: str, name: str, other: str) -> None:
    """Hold the answer to `verb` of `name` (after any hold it has) until `verb` of `other` has returned."""
    held = fake.hold.get((verb, name), lambda: None)
    fake.hold[(verb, name)] = lambda: (held(), fake.returned(verb, other).wait(HELD_BACK))


def waves(events: list) -> list:
    """The writes in the groups they were in flight in: a group ends when none of its writes is in flight."""
    groups, in_flight = [], 0
    for what, write in events:
        if what == "end":
            in_flight -= 1
            continue
        if in_flight == 0:
            groups.append(set())
        groups[-1].add(write[1:])
        in_flight += 1
    return groups


def phased_manifests() -> list:
    """Two CRDs, two namespaces with config and workloads in each, a webhook: the five phases, in order."""
    teams = ("team-a", "team-b")
    return [
        [manifest("CustomResourceDefinition", name) for name in ("a.example.com", "b.example.com")],
        [manifest("Namespace", team) for team in teams],
        [manifest(kind, f"{kind.lower()}-{team}", team) for team in teams for kind in ("ServiceAccount", "Service")]
        + [manifest("ConfigMap", f"configmap-{team}", team, data={"a": "b"}) for team in teams],
        [manifest(kind, f"{kind.lower()}-{team}", team) for team in teams for kind in ("Deployment", "Sidecar")],
        [manifest("ValidatingWebhookConfiguration", "validator")],
    ]


def test_each_phase_is_sent_together_once_every_write_of_the_one_before_has_returned():
    phases = phased_manifests()
    fake = FakeClient()
    for phase in phases[:-1]:
        held_together(fake, "apply", [m["metadata"]["name"] for m in phase])
    desired = [m for phase in reversed(phases) for m in phase]
    report = engine_on(fake).ensure_present(desired)

    assert waves(fake.events) == [{key_of(m) for m in phase} for phase in phases]
    crds = {key_of(m) for m in phases[0]}
    for index, (what, write) in enumerate(fake.events):
        if what == "start" and write[2]:  # a namespaced object: its namespace and every CRD have returned
            returned = {done[1:] for when, done in fake.events[:index] if when == "end"}
            assert {("Namespace", "", write[2]), *crds} <= returned, write
    # Both CRDs were read Established before the first namespace was sent.
    calls = [(c.verb, c.kind) for c in fake.calls]
    established = [i for i, call in enumerate(calls) if call == ("get", "CustomResourceDefinition")][-2:]
    assert max(established) < calls.index(("apply", "Namespace"))
    assert [c.name for c in fake.calls[established[0] : established[1] + 1]] == ["a.example.com", "b.example.com"]
    assert [(o["kind"], o["namespace"], o["name"]) for o in report.objects] == [
        key_of(m) for phase in phases for m in apply_order(phase)
    ]


def test_no_more_writes_than_max_in_flight_are_sent_at_once():
    fake = FakeClient([istio_system()])
    names = [f"cm-{n}" for n in range(9)]
    barrier = threading.Barrier(3, timeout=HELD_BACK)  # passes three at a time
    for name in names:
        fake.hold[("apply", name)] = barrier.wait
    report = engine_on(fake, max_in_flight=3).ensure_present([manifest("ConfigMap", name) for name in names])
    assert fake.most_in_flight == 3
    assert [o["name"] for o in report.objects] == names


def test_results_are_recorded_in_the_manifests_order_whatever_order_the_answers_come_in():
    fake = FakeClient([istio_system()])
    names = ["a", "b", "c", "d"]
    for name, later in itertools.pairwise(names):
        answered_after(fake, "apply", name, later)
    report = engine_on(fake).ensure_present([manifest("ConfigMap", name) for name in reversed(names)])
    assert [write[3] for what, write in fake.events if what == "end"] == ["d", "c", "b", "a"]
    assert [o["name"] for o in report.objects] == names
    assert [d["after_header"] for d in report.diff] == [f"ConfigMap istio-system/{name}" for name in names]


def test_a_failure_lets_its_phase_finish_starts_no_later_phase_and_raises_the_first_error_in_order():
    fake = FakeClient([istio_system()])
    names = ["a", "b", "c", "d"]
    held_together(fake, "apply", names)
    answered_after(fake, "apply", "b", "d")  # d fails first
    for name in ("b", "d"):
        fake.failures[("apply", name)] = api_error(403, f'configmaps "{name}" is forbidden')
    desired = [*(manifest("ConfigMap", name) for name in names), manifest("Deployment", "istiod")]
    engine = engine_on(fake)
    with pytest.raises(EngineError, match=r'^Cannot apply ConfigMap istio-system/b: .*configmaps "b" is forbidden$'):
        engine.ensure_present(desired)
    ended = [write[3] for what, write in fake.events if what == "end"]
    assert ended.index("d") < ended.index("b")
    assert sorted(write[3] for write in fake.writes()) == names  # and no Deployment
    assert [(o["name"], o["action"]) for o in engine.report.objects] == [("a", "created"), ("c", "created")]
    assert {key[2] for key in fake.store if key[0] == "ConfigMap"} == {"a", "c"}


def test_no_write_of_a_phase_starts_once_one_has_failed():
    fake = FakeClient([istio_system()])
    fake.failures[("apply", "b")] = api_error(500, "etcdserver: request timed out")
    engine = engine_on(fake, max_in_flight=1)
    with pytest.raises(EngineError, match="^Cannot apply ConfigMap istio-system/b: etcdserver: request timed out"):
        engine.ensure_present([manifest("ConfigMap", name) for name in ("a", "b", "c")])
    assert [write[3] for write in fake.writes()] == ["a", "b"]
    assert [o["name"] for o in engine.report.objects] == ["a"]


def test_a_no_op_over_every_phase_sends_no_write():
    fake = FakeClient()
    desired = [m for phase in phased_manifests() for m in phase]
    assert engine_on(fake).ensure_present(desired).changed
    fake.calls.clear()
    again = engine_on(fake).ensure_present(desired)
    assert again.changed is False and again.objects == []
    assert fake.writes() == [] and {c.verb for c in fake.calls} == {"list"}


def test_deletes_go_a_phase_at_a_time_in_reverse_each_phase_together():
    phases = phased_manifests()
    owned = [{**m, "metadata": {**m["metadata"], "labels": OWNER.labels}} for phase in phases for m in phase]
    fake = FakeClient(owned)
    for phase in phases[:-1]:
        held_together(fake, "delete", [m["metadata"]["name"] for m in phase])
    kinds = {m["kind"] for m in owned}
    report = engine_on(fake).ensure_absent(kinds)
    assert waves(fake.events) == [{key_of(m) for m in phase} for phase in reversed(phases)]
    assert [(o["kind"], o["namespace"], o["name"]) for o in report.objects] == [
        key_of(m) for phase in reversed(phases) for m in reversed(apply_order(phase))
    ]
    assert fake.store == {}


def test_a_failed_delete_stops_before_the_next_phase_and_is_raised_first_in_order():
    phases = phased_manifests()
    owned = [{**m, "metadata": {**m["metadata"], "labels": OWNER.labels}} for phase in phases for m in phase]
    fake = FakeClient(owned)
    fake.failures[("delete", "configmap-team-b")] = api_error(403, 'configmaps "configmap-team-b" is forbidden')
    engine = engine_on(fake)
    with pytest.raises(EngineError, match="^Cannot delete ConfigMap team-b/configmap-team-b: "):
        engine.ensure_absent({m["kind"] for m in owned})
    assert not {"Namespace", "CustomResourceDefinition"} & {write[1] for write in fake.writes()}
    assert ("Namespace", "", "team-b") in fake.store
    deleted = [(o["kind"], o["name"]) for o in engine.report.objects]
    assert ("ValidatingWebhookConfiguration", "validator") in deleted
    assert ("ConfigMap", "configmap-team-b") not in deleted


# The no-op run


def test_a_live_object_with_the_same_hash_is_not_written_again():
    fake = FakeClient([istio_system()])
    desired = [manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}"}), manifest("Service", "istiod")]
    assert engine_on(fake).ensure_present(desired).changed
    fake.calls.clear()
    again = engine_on(fake).ensure_present(desired)
    assert again.changed is False and again.objects == [] and again.diff == []
    assert fake.writes() == []
    assert [read[0] for read in fake.verbs("get", "list")] == ["list", "list"]


def test_drift_under_the_same_hash_is_written_back():
    fake = FakeClient([istio_system()])
    desired = [manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}"})]
    engine_on(fake).ensure_present(desired)
    fake.store[("ConfigMap", "istio-system", "istio-usergroup-1")]["data"]["mesh"] = "edited by hand"
    report = engine_on(fake).ensure_present(desired)
    assert fake.writes()[-1] == ("apply", "ConfigMap", "istio-system", "istio-usergroup-1")
    assert report.objects == [
        {"kind": "ConfigMap", "namespace": "istio-system", "name": "istio-usergroup-1", "action": "updated"}
    ]
    assert report.diff[0]["before"]["data"] == {"mesh": "edited by hand"}
    assert report.diff[0]["after"]["data"] == {"mesh": "{}"}


def test_fields_a_controller_manages_are_kept_from_live_and_not_written_back():
    fake = FakeClient([istio_system()])
    desired = [manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}", "policy": "Ignore"})]
    engine_on(fake).ensure_present(desired)
    fake.store[("ConfigMap", "istio-system", "istio-usergroup-1")]["data"]["policy"] = "Fail"  # the controller's

    def keep_policy(wanted, live):
        return {**wanted, "data": {**wanted["data"], "policy": live["data"]["policy"]}}

    fake.calls.clear()
    assert engine_on(fake).ensure_present(desired, keep_live=keep_policy).changed is False
    assert fake.writes() == []
    # Without it the same run takes the field back: the drift repair the hook exists to avoid.
    assert engine_on(fake).ensure_present(desired).objects[0]["action"] == "updated"


def test_a_field_dropped_from_the_desired_state_is_written_although_live_still_holds_the_rest():
    fake = FakeClient([istio_system()])
    engine_on(fake).ensure_present([manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}", "extra": "x"})])
    report = engine_on(fake).ensure_present([manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}"})])
    assert report.objects[0]["action"] == "updated"
    assert "extra" not in fake.store[("ConfigMap", "istio-system", "istio-usergroup-1")]["data"]


# Prune and removal by owner labels only


def test_prune_deletes_only_what_carries_this_owners_labels():
    ours_stale = manifest("ConfigMap", "stale", labels=OWNER.labels)
    others = [
        manifest("ConfigMap", "other-owner", labels=OTHER_OWNER.labels),
        manifest("ConfigMap", "shared", labels={MANAGED_BY_LABEL: FIELD_MANAGER}),
        manifest("ConfigMap", "hand-made"),
        manifest("ConfigMap", "same-name-label", labels={"meshops.io/tenant": "usergroup-1"}),
        manifest("Deployment", "other-owner", labels=OTHER_OWNER.labels),
    ]
    fake = FakeClient([istio_system(), ours_stale, *others])
    report = engine_on(fake).ensure_present([manifest("ConfigMap", "kept")], prunable_kinds=("Deployment",))
    assert fake.verbs("delete") == [("delete", "ConfigMap", "istio-system", "stale")]
    assert [(o["name"], o["action"]) for o in report.objects] == [("kept", "created"), ("stale", "deleted")]
    assert all(key_of(obj) in fake.store for obj in others)


@pytest.mark.parametrize(
    ("labels", "held_by"),
    [
        (None, "was not created by meshops.istio (it lacks the label app.kubernetes.io/managed-by=meshops.istio)"),
        ({"app.kubernetes.io/managed-by": "Helm"}, "was not created by meshops.istio"),
        (OTHER_OWNER.labels, "belongs to meshops.istio's revision usergroup-2"),
        ({"meshops.io/revision": "usergroup-1"}, "was not created by meshops.istio"),  # our owner label, by hand
    ],
)
def test_a_desired_object_someone_else_holds_is_refused_before_the_first_write(labels, held_by):
    foreign = manifest("ServiceAccount", "istiod-usergroup-1", labels=labels)
    fake = FakeClient([istio_system(), foreign])
    desired = [
        manifest("ConfigMap", "first-in-order", data={"a": "b"}),
        manifest("ServiceAccount", "istiod-usergroup-1"),
    ]
    with pytest.raises(Refusal) as raised:
        engine_on(fake).ensure_present(desired)
    assert str(raised.value).startswith(f"ServiceAccount istio-system/istiod-usergroup-1 already exists and {held_by}")
    assert str(raised.value).endswith(
        "or set force_conflicts: true to adopt it (a later state: absent then deletes it)"
    )
    assert fake.verbs("apply") == [] and fake.verbs("delete") == []
    assert fake.store[key_of(foreign)] == foreign


def test_every_foreign_object_is_named_in_one_refusal():
    fake = FakeClient([istio_system(), manifest("ConfigMap", "a"), manifest("Service", "b", labels=OTHER_OWNER.labels)])
    with pytest.raises(Refusal) as raised:
        engine_on(fake).ensure_present([manifest("ConfigMap", "a"), manifest("Service", "b")])
    assert "ConfigMap istio-system/a already exists" in str(raised.value)
    assert "Service istio-system/b already exists and belongs to meshops.istio's revision usergroup-2" in str(
        raised.value
    )


def test_force_conflicts_adopts_a_foreign_object_and_an_adoptable_identity_is_taken_without_it():
    hand_made = manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "old"})
    fake = FakeClient([istio_system(), hand_made])
    report = engine_on(fake, force_conflicts=True).ensure_present(
        [manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}"})]
    )
    assert fake.verbs("delete") == []
    assert report.objects[0]["action"] == "updated"
    assert fake.store[key_of(hand_made)]["metadata"]["labels"]["meshops.io/revision"] == "usergroup-1"

    tag_service = manifest("Service", "istiod-revision-tag-prod", labels=OTHER_OWNER.labels)
    fake = FakeClient([istio_system(), tag_service])
    engine_on(fake).ensure_present([manifest("Service", "istiod-revision-tag-prod")], adoptable={key_of(tag_service)})
    assert fake.store[key_of(tag_service)]["metadata"]["labels"]["meshops.io/revision"] == "usergroup-1"


def test_absent_deletes_this_owners_objects_dependents_first():
    ours = [
        manifest("Namespace", "usergroup-1", labels=OWNER.labels),
        manifest("CustomResourceDefinition", "widgets.example.com", labels=OWNER.labels),
        manifest("ConfigMap", "istio-usergroup-1", "usergroup-1", labels=OWNER.labels),
        manifest("ValidatingWebhookConfiguration", "istio-validator-usergroup-1", labels=OWNER.labels),
        manifest("Deployment", "istiod-usergroup-1", "usergroup-1", labels=OWNER.labels),
        manifest("ServiceAccount", "istiod-usergroup-1", "usergroup-1", labels=OWNER.labels),
    ]
    not_ours = manifest("Deployment", "istiod-usergroup-2", "usergroup-1", labels=OTHER_OWNER.labels)
    fake = FakeClient([*ours, not_ours])
    kinds = ["Namespace", "CustomResourceDefinition", "ConfigMap", "ValidatingWebhookConfiguration", "Deployment"]
    report = engine_on(fake).ensure_absent([*kinds, "ServiceAccount"])
    deleted = [delete[1] for delete in fake.verbs("delete")]
    assert deleted[:2] == ["ValidatingWebhookConfiguration", "Deployment"]
    assert set(deleted[2:4]) == {"ConfigMap", "ServiceAccount"}  # one phase: together, in any order
    assert deleted[4:] == ["Namespace", "CustomResourceDefinition"]
    assert [o["kind"] for o in report.objects] == [
        "ValidatingWebhookConfiguration",
        "Deployment",
        "ConfigMap",
        "ServiceAccount",
        "Namespace",
        "CustomResourceDefinition",
    ]
    assert {o["action"] for o in report.objects} == {"deleted"}
    assert list(fake.store) == [key_of(not_ours)]
    deletes = [c for c in fake.calls if c.verb == "delete"]
    assert {c.options["propagation_policy"] for c in deletes} == {"Background"}


def test_an_object_already_gone_is_not_an_error_when_deleting():
    fake = FakeClient()
    gone = manifest("ConfigMap", "gone", labels=OWNER.labels)
    report = engine_on(fake).delete_objects([gone])
    assert fake.verbs("delete") == [("delete", "ConfigMap", "istio-system", "gone")]
    assert report.objects[0]["action"] == "deleted"


# Objects several owners rely on


def test_shared_objects_carry_managed_by_but_no_owner_and_are_never_pruned():
    fake = FakeClient()
    engine_on(fake).ensure_shared(manifest("CustomResourceDefinition", "sidecars.networking.istio.io"))
    (call,) = [c for c in fake.calls if c.verb == "apply"]
    assert call.options["body"]["metadata"]["labels"] == {MANAGED_BY_LABEL: FIELD_MANAGER}
    engine_on(fake).ensure_absent(["CustomResourceDefinition"])
    assert fake.verbs("delete") == []


def test_force_overrides_force_conflicts_for_one_shared_object():
    fake = FakeClient([manifest("Namespace", "usergroup-1")])
    fake.conflicts.add("usergroup-1")
    engine = engine_on(fake)
    engine.ensure_shared(manifest("Namespace", "usergroup-1", labels={"istio.io/rev": "usergroup-1"}), force=True)
    assert [c.options["force"] for c in fake.calls if c.verb == "apply"] == [True]


def test_ensure_owned_converges_one_object_without_pruning_the_others():
    old_token = manifest("Secret", "token-old", labels=OWNER.labels)
    fake = FakeClient([istio_system(), old_token])
    report = engine_on(fake).ensure_owned(manifest("Secret", "token-new", type="Opaque"), None)
    assert fake.writes() == [("apply", "Secret", "istio-system", "token-new")]
    assert key_of(old_token) in fake.store and report.objects[0]["action"] == "created"


# Release


def test_release_gives_up_our_fields_on_an_object_that_stays():
    live = manifest("Namespace", "app-ns-1", labels={"istio.io/rev": "usergroup-1", "team": "a"})
    live["metadata"]["managedFields"] = [{"manager": FIELD_MANAGER}, {"manager": "kubectl-create"}]
    fake = FakeClient([live])
    report = engine_on(fake).release("Namespace", "app-ns-1")
    (call,) = [c for c in fake.calls if c.verb == "apply"]
    assert call.options["body"] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "app-ns-1"}}
    assert call.options["field_manager"] == FIELD_MANAGER
    assert report.objects == [{"kind": "Namespace", "namespace": "", "name": "app-ns-1", "action": "released"}]
    assert ("Namespace", "", "app-ns-1") in fake.store and fake.verbs("delete") == []


def test_release_of_a_namespaced_object_names_its_namespace():
    live = manifest("ConfigMap", "kept", labels={"a": "b"})
    live["metadata"]["managedFields"] = [{"manager": FIELD_MANAGER}]
    fake = FakeClient([istio_system(), live])
    engine_on(fake).release("ConfigMap", "kept", "istio-system")
    (call,) = [c for c in fake.calls if c.verb == "apply"]
    assert call.options["body"]["metadata"] == {"name": "kept", "namespace": "istio-system"}


@pytest.mark.parametrize(
    "managers", [[], [{"manager": "kubectl-create"}], [{"manager": "istio-operator"}, {"manager": "kubectl"}]]
)
def test_release_writes_nothing_when_our_field_manager_holds_no_field(managers):
    live = manifest("Namespace", "app-ns-1", labels={"istio.io/rev": "usergroup-1"})
    live["metadata"]["managedFields"] = managers
    fake = FakeClient([live])
    report = engine_on(fake).release("Namespace", "app-ns-1")
    assert fake.writes() == [] and report.changed is False


def test_release_of_a_missing_object_writes_nothing():
    fake = FakeClient()
    assert engine_on(fake).release("Namespace", "gone").changed is False
    assert fake.verbs("get", "apply") == [("get", "Namespace", "", "gone")]


def test_remove_labels_sends_one_merge_patch_for_the_labels_present():
    live = manifest("Namespace", "legacy", labels={"istio-injection": "enabled", "team": "a"})
    fake = FakeClient([live])
    report = engine_on(fake).remove_labels(live, ["istio-injection", "istio.io/rev"])
    (call,) = [c for c in fake.calls if c.verb == "patch"]
    assert call.options["body"] == {"metadata": {"labels": {"istio-injection": None}}}
    assert call.options["content_type"] == "application/merge-patch+json"
    assert fake.store[key_of(live)]["metadata"]["labels"] == {"team": "a"}
    assert report.objects[0]["action"] == "updated"
    assert engine_on(fake).remove_labels(fake.store[key_of(live)], ["istio-injection"]).changed is False
    assert len(fake.verbs("patch")) == 1


# Check mode


def test_check_mode_is_a_server_side_dry_run_that_stores_nothing():
    stale = manifest("ConfigMap", "stale", labels=OWNER.labels)
    fake = FakeClient([istio_system(), stale])
    report = engine_on(fake, check_mode=True).ensure_present([manifest("ConfigMap", "new", data={"a": "b"})])
    assert {c.options["dry_run"] for c in fake.calls if c.verb in ("apply", "delete")} == {"All"}
    assert [(o["name"], o["action"]) for o in report.objects] == [("new", "created"), ("stale", "deleted")]
    assert set(fake.store) == {key_of(istio_system()), key_of(stale)}


def test_check_mode_counts_a_404_on_apply_as_would_be_created():
    fake = FakeClient()
    desired = [manifest("Namespace", "usergroup-1"), manifest("Sidecar", "default", "usergroup-1", spec={"a": 1})]
    report = engine_on(fake, check_mode=True).ensure_present(desired)
    assert fake.writes() == [
        ("apply", "Namespace", "", "usergroup-1"),
        ("apply", "Sidecar", "usergroup-1", "default"),  # 404: its namespace exists only in this dry run
    ]
    assert [(o["kind"], o["action"]) for o in report.objects] == [("Namespace", "created"), ("Sidecar", "created")]
    assert report.diff[1]["after"]["spec"] == {"a": 1} and report.diff[1]["before"] == {}
    assert fake.store == {}


def test_check_mode_does_not_wait_for_a_crd():
    fake = FakeClient()
    engine_on(fake, check_mode=True).ensure_present([manifest("CustomResourceDefinition", "widgets.example.com")])
    assert fake.verbs("get") == [("get", "CustomResourceDefinition", "", "widgets.example.com")]  # before, not after


def test_outside_check_mode_a_404_on_apply_is_an_error():
    fake = FakeClient()
    with pytest.raises(EngineError, match='Cannot apply Sidecar usergroup-1/default: namespaces "usergroup-1" not'):
        engine_on(fake).ensure_present([manifest("Sidecar", "default", "usergroup-1")])


# Errors


def test_a_conflict_names_the_object_and_force_conflicts():
    fake = FakeClient([istio_system()])
    fake.conflicts.add("istio-usergroup-1")
    with pytest.raises(EngineError) as raised:
        engine_on(fake).ensure_present([manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}"})])
    message = str(raised.value)
    assert message.startswith("ConfigMap istio-system/istio-usergroup-1: Apply failed with 1 conflict")
    assert "set force_conflicts: true to take them over" in message


def test_force_conflicts_takes_the_fields_over():
    fake = FakeClient([istio_system()])
    fake.conflicts.add("istio-usergroup-1")
    report = engine_on(fake, force_conflicts=True).ensure_present([manifest("ConfigMap", "istio-usergroup-1")])
    assert [c.options["force"] for c in fake.calls if c.verb == "apply"] == [True]
    assert report.objects[0]["action"] == "created"


def test_an_owned_object_changed_by_another_manager_is_taken_back():
    """A tenant admin's edit of an object the collection owns never blocks the next run: the apply is forced."""
    owned = manifest("ConfigMap", "istio-usergroup-1", labels=OWNER.labels, data={"mesh": "opened"})
    fake = FakeClient([istio_system(), owned])
    fake.conflicts.add("istio-usergroup-1")
    report = engine_on(fake).ensure_present([manifest("ConfigMap", "istio-usergroup-1", data={"mesh": "{}"})])
    assert [c.options["force"] for c in fake.calls if c.verb == "apply"] == [True]
    assert report.objects[0]["action"] == "updated"
    assert fake.store[("ConfigMap", "istio-system", "istio-usergroup-1")]["data"] == {"mesh": "{}"}


def test_a_conflict_on_an_adopted_object_it_does_not_own_stays_an_error():
    """Taking fields back is for objects with this owner's labels; one adopted by identity (a tag's Service) that
    another manager edited still fails on the conflict."""
    theirs = manifest("Service", "istiod-revision-tag-prod", labels={"app": "istiod"})
    fake = FakeClient([istio_system(), theirs])
    fake.conflicts.add("istiod-revision-tag-prod")
    with pytest.raises(EngineError, match="set force_conflicts: true"):
        engine_on(fake).ensure_present([manifest("Service", "istiod-revision-tag-prod")], adoptable={key_of(theirs)})


def test_a_conflict_on_a_second_cluster_says_which():
    fake = FakeClient([istio_system()])
    fake.conflicts.add("reader")
    with pytest.raises(EngineError, match=r"^ServiceAccount istio-system/reader on remote: Apply failed"):
        Engine(Cluster(fake, "remote"), OWNER).ensure_present([manifest("ServiceAccount", "reader")])


@pytest.mark.parametrize(
    ("verb", "call", "message"),
    [
        ("apply", lambda e: e.ensure_present([manifest("ConfigMap", "x")]), "Cannot apply ConfigMap istio-system/x"),
        ("delete", lambda e: e.delete_objects([manifest("ConfigMap", "x")]), "Cannot delete ConfigMap istio-system/x"),
        ("get", lambda e: e.release("ConfigMap", "x", "istio-system"), "Cannot read ConfigMap x"),
    ],
)
def test_other_api_errors_name_the_object_and_the_servers_message(verb, call, message):
    fake = FakeClient([istio_system(), manifest("ConfigMap", "x", labels=OWNER.labels, data={"old": "1"})])
    fake.failures[(verb, "x")] = api_error(403, 'configmaps "x" is forbidden: User "ci" cannot do that')
    with pytest.raises(EngineError) as raised:
        call(engine_on(fake))
    assert str(raised.value).startswith(message)
    assert str(raised.value).endswith('configmaps "x" is forbidden: User "ci" cannot do that')


def test_a_transport_error_on_write_is_cluster_unreachable_naming_the_host():
    fake = FakeClient([istio_system()])
    fake.failures[("apply", "x")] = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    with pytest.raises(ClusterUnreachable) as raised:
        engine_on(fake).ensure_present([manifest("ConfigMap", "x")])
    assert raised.value.host == HOST
    assert str(raised.value) == (
        f"Cannot reach the Kubernetes API at {HOST}: the connection was dropped (reset); check host, kubeconfig and "
        "context, and that the API server is up"
    )


@pytest.mark.parametrize(
    ("verb", "read"),
    [
        ("get", lambda c: c.get("Namespace", "usergroup-1")),
        ("list", lambda c: c.list_objects("ConfigMap")),
        ("request", lambda c: c.post("/apis/authentication.k8s.io/v1/tokenreviews", {"kind": "TokenReview"})),
    ],
)
def test_a_transport_error_on_read_names_the_second_clusters_parameter_and_host(verb, read):
    fake = FakeClient()
    name = {"get": "usergroup-1", "list": "ConfigMap", "request": "TokenReview"}[verb]
    fake.failures[(verb, name)] = ProtocolError("Connection aborted.", ConnectionResetError(104, "reset"))
    with pytest.raises(ClusterUnreachable) as raised:
        read(Cluster(fake, "remote"))
    assert str(raised.value).startswith(f"Cannot reach the Kubernetes API of remote at {HOST}: the connection was")
    assert "check remote.kubeconfig, remote.context and remote.host" in str(raised.value)


def test_a_kind_the_api_server_does_not_serve_lists_as_empty_and_other_list_errors_stay_errors():
    fake = FakeClient()
    fake.failures[("list", "AuthorizationPolicy")] = api_error(404, "404 page not found")
    assert Cluster(fake).list_objects("AuthorizationPolicy") == []
    fake.failures[("list", "ConfigMap")] = api_error(403, 'configmaps is forbidden: User "nobody"')
    with pytest.raises(EngineError, match="Cannot list configmaps: forbidden: this account may not list configmaps"):
        Cluster(fake).list_objects("ConfigMap")


# Secrets in reports


def test_a_secrets_values_never_reach_the_diff():
    fake = FakeClient([istio_system()])
    secret = manifest("Secret", "cacerts", data={"ca-key.pem": "c2VjcmV0"}, stringData={"token": "t0ken"})
    report = engine_on(fake).ensure_present([secret])
    assert report.diff[0]["after"]["data"] == {"ca-key.pem": HIDDEN}
    assert report.diff[0]["after"]["stringData"] == {"token": HIDDEN}
    assert "c2VjcmV0" not in str(report) and "t0ken" not in str(report)


# Reports


def _report_of(*names) -> Report:
    report = Report()
    for name in names:
        obj = manifest("ConfigMap", name)
        report.record(obj, "created", None, obj)
    return report


def test_each_engine_has_its_own_report():
    fake = FakeClient([istio_system()])
    first, second = engine_on(fake), engine_on(fake, OTHER_OWNER)
    first.ensure_present([manifest("ConfigMap", "a")])
    second.ensure_present([manifest("ConfigMap", "b")])
    assert [o["name"] for o in first.report.objects] == ["a"]
    assert [o["name"] for o in second.report.objects] == ["b"]


def test_combined_reports_keep_the_order_they_ran_in_and_any_change():
    combined = Report.combined([_report_of("a", "b"), Report(), _report_of("c")])
    assert combined.changed is True
    assert [o["name"] for o in combined.objects] == ["a", "b", "c"]
    assert [d["after_header"] for d in combined.diff] == [
        "ConfigMap istio-system/a",
        "ConfigMap istio-system/b",
        "ConfigMap istio-system/c",
    ]
    assert Report.combined([Report(), Report()]) == Report()


def test_tagged_report_names_the_cluster_and_leaves_the_original_alone():
    original = _report_of("a")
    tagged = original.tagged("cluster2")
    assert tagged.changed is True
    assert tagged.objects == [
        {"kind": "ConfigMap", "namespace": "istio-system", "name": "a", "action": "created", "cluster": "cluster2"}
    ]
    assert tagged.diff[0]["before_header"] == "cluster2: ConfigMap istio-system/a"
    assert tagged.diff[0]["after_header"] == "cluster2: ConfigMap istio-system/a"
    assert "cluster" not in original.objects[0] and original.diff[0]["after_header"] == "ConfigMap istio-system/a"


def test_tagged_and_combined_reports_of_two_clusters():
    both = Report.combined([_report_of("a").tagged("c1"), _report_of("b").tagged("c2")])
    assert [(o["cluster"], o["name"]) for o in both.objects] == [("c1", "a"), ("c2", "b")]


# Waits, without waiting


def test_wait_for_returns_the_object_once_ready():
    deployment = manifest("Deployment", "istiod", status={"readyReplicas": 1})
    fake = FakeClient([deployment])
    live = engine_on(fake).wait_for("Deployment", "istiod", "istio-system", lambda d: d["status"], 60, "not ready")
    assert live["status"] == {"readyReplicas": 1}


def test_wait_for_gives_up_at_its_deadline_naming_what_and_the_fix():
    fake = FakeClient()
    with pytest.raises(EngineError) as raised:
        engine_on(fake).wait_for("Secret", "token", "istio-system", lambda s: True, 0, "no token issued")
    assert str(raised.value) == "Secret istio-system/token: no token issued within 0 s. Raise wait_timeout."


def _deployment(available: int, **status) -> dict:
    status = {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1, "availableReplicas": available, **status}
    deployment = manifest("Deployment", "istiod", spec={"replicas": 1}, status=status)
    deployment["metadata"]["generation"] = 1
    return deployment


def test_rollout_wait_passes_a_rolled_out_deployment_and_ignores_other_kinds():
    fake = FakeClient([_deployment(available=1)])
    engine_on(fake).wait_for_rollout([_deployment(available=1), manifest("ConfigMap", "x")], timeout=60)
    assert fake.verbs("get") == [("get", "Deployment", "istio-system", "istiod")]


def test_rollout_wait_reports_why_a_deployment_is_not_ready():
    fake = FakeClient([_deployment(available=0)])
    with pytest.raises(EngineError) as raised:
        engine_on(fake).wait_for_rollout([_deployment(available=0)], timeout=0)
    assert str(raised.value) == (
        "Deployment istio-system/istiod is not ready: 0/1 replicas available, 1 updated. No warning events. "
        "Raise wait_timeout if it is only slow."
    )


def test_rollout_wait_quotes_the_pods_latest_warning_events():
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": "istiod-5d-x.1", "namespace": "istio-system"},
        "type": "Warning",
        "reason": "FailedScheduling",
        "message": "0/1 nodes are available",
        "involvedObject": {"kind": "Pod", "name": "istiod-5d-x"},
        "lastTimestamp": "2026-12-04T10:00:00Z",
    }
    fake = FakeClient([_deployment(available=0), event])
    with pytest.raises(EngineError) as raised:
        engine_on(fake).wait_for_rollout([_deployment(available=0)], timeout=0)
    assert "FailedScheduling" in str(raised.value) and "0/1 nodes are available" in str(raised.value)


def test_rollout_wait_reads_nothing_in_check_mode():
    fake = FakeClient()
    engine_on(fake, check_mode=True).wait_for_rollout([_deployment(available=0)], timeout=0)
    assert fake.calls == []


def test_poll_returns_at_once_when_the_predicate_holds():
    calls = []
    assert Cluster.poll(lambda: calls.append(1) or True, timeout=60) is True
    assert calls == [1]


def test_poll_sleeps_quickly_first_then_once_a_second(monkeypatch):
    slept, answers = [], iter([False] * 7 + [True])
    monkeypatch.setattr(cluster_module.time, "sleep", slept.append)
    assert Cluster.poll(lambda: next(answers), timeout=3600) is True
    assert slept == [0.05, 0.1, 0.2, 0.5, 1.0, 1.0, 1.0]


def test_poll_gives_up_at_the_deadline():
    assert Cluster.poll(lambda: False, timeout=0) is False


# The Cluster's reads


def test_get_returns_none_for_a_missing_object():
    fake = FakeClient([istio_system()])
    cluster = Cluster(fake)
    assert cluster.get("Namespace", "gone") is None
    assert cluster.get("Namespace", "istio-system")["metadata"]["name"] == "istio-system"


def test_list_objects_gives_each_item_its_kind_and_api_version():
    fake = FakeClient([manifest("Role", "r", labels={"a": "b"}), manifest("Role", "s")])
    listed = Cluster(fake).list_objects("Role", label_selector="a=b", namespace="istio-system")
    assert [(o["kind"], o["apiVersion"], o["metadata"]["name"]) for o in listed] == [
        ("Role", "rbac.authorization.k8s.io/v1", "r")
    ]
    assert fake.calls[0].namespace == "istio-system" and fake.calls[0].options == {"label_selector": "a=b"}


def test_post_returns_the_reviews_status_and_names_the_review_on_error():
    fake = FakeClient()
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    fake.answers[path] = {"kind": "SubjectAccessReview", "status": {"allowed": False}}
    review = {"kind": "SubjectAccessReview", "spec": {"user": "x"}}
    assert Cluster(fake).post(path, review) == {"allowed": False}
    assert fake.calls[0].options == {"method": "post", "path": path, "body": review}
    fake.failures[("request", "SubjectAccessReview")] = api_error(403, "forbidden")
    forbidden = "forbidden: this account may not create subjectaccessreviews.authorization.k8s.io at the cluster scope"
    with pytest.raises(EngineError, match=f"^Cannot send SubjectAccessReview on remote: {forbidden}"):
        Cluster(fake, "remote").post(path, review)


def test_request_token_posts_a_bound_token_request_for_the_service_account():
    fake = FakeClient()
    path = "/api/v1/namespaces/istio-system/serviceaccounts/reader/token"
    fake.answers[path] = {"status": {"token": "t0ken", "expirationTimestamp": "2030-01-01T00:00:00Z"}}
    bound_to = {"kind": "Secret", "apiVersion": "v1", "name": "holder"}
    status = Cluster(fake).request_token("istio-system", "reader", 3600, bound_to)
    assert status == {"token": "t0ken", "expirationTimestamp": "2030-01-01T00:00:00Z"}
    body = fake.calls[0].options["body"]
    assert body["kind"] == "TokenRequest" and body["spec"] == {"expirationSeconds": 3600, "boundObjectRef": bound_to}
    fake.failures[("request", "TokenRequest")] = api_error(404, 'serviceaccounts "reader" not found')
    with pytest.raises(EngineError, match="^Cannot request a token for ServiceAccount istio-system/reader: "):
        Cluster(fake).request_token("istio-system", "reader", 3600, bound_to)


def test_host_and_where_name_the_cluster():
    fake = FakeClient()
    assert Cluster(fake).host == HOST and Cluster(fake).where == ""
    assert Cluster(fake, "remote").where == " on remote"


def test_read_existing_gets_a_lone_name_and_lists_a_name_shared_by_several():
    fake = FakeClient([manifest("Sidecar", "default", "a"), manifest("Sidecar", "default", "c"),
                       manifest("Sidecar", "default", "elsewhere"), manifest("Role", "admin", "a")])  # fmt: skip
    wanted = {("Sidecar", "a", "default"), ("Sidecar", "b", "default"), ("Sidecar", "c", "default"),
              ("Role", "a", "admin"), ("Role", "b", "viewer")}  # fmt: skip
    found = read_existing(Cluster(fake), wanted)
    assert set(found) == {("Sidecar", "a", "default"), ("Sidecar", "c", "default"), ("Role", "a", "admin")}
    assert sorted((c.verb, c.kind, c.namespace, c.name) for c in fake.calls) == [
        ("get", "Role", "a", "admin"), ("get", "Role", "b", "viewer"), ("list", "Sidecar", "", "")]  # fmt: skip
