"""istio_remote_secret against two real API servers: c1 is the primary, c2 the remote. The Secret's kubeconfig is
used here as istiod would use it: against c2's API server, where it may read and nothing else. Re-runs write
nothing, a rotation revokes the old token (401) in the same run, removal clears both sides, refusals write nothing,
and no token reaches Ansible's output.

The tests build on each other in file order, like a user's runs would."""

import base64
import datetime
import json
import time

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from localcluster import api_request_counts, wait_for_namespace_defaults, writes
from playbook import run_task, run_verbose

MODULE = "meshops.istio.istio_remote_secret"
NAMESPACE = "istio-system"
SECRET = "istio-remote-secret-cluster2"
READER = "istio-reader-service-account"
ROLE = f"meshops.istio:remote-reader:{NAMESPACE}:{READER}"
READER_OBJECTS = (
    ("ServiceAccount", READER, NAMESPACE),
    ("ClusterRole", ROLE, None),
    ("ClusterRoleBinding", ROLE, None),
)
# The API server caches a successful token authentication for 10 s; a revoked token fails after that.
REVOCATION_DEADLINE = 30

pytestmark = pytest.mark.multicluster


@pytest.fixture(scope="module")
def primary(two_clusters):
    cluster = two_clusters[0]
    api = cluster.api_client()
    client.CoreV1Api(api).create_namespace({"metadata": {"name": NAMESPACE}})
    wait_for_namespace_defaults(api, NAMESPACE)
    return cluster


@pytest.fixture(scope="module")
def remote(two_clusters):
    return two_clusters[1]


@pytest.fixture(scope="module")
def run(run_on, primary, remote):
    """run(check=False, diff=False, **overrides): the module on the primary for the remote, args_for(overrides)."""

    def run_module(check=False, diff=False, **overrides):
        return run_on(primary, args_for(remote, **overrides), check=check, diff=diff)

    return run_module


def args_for(remote_cluster, **overrides):
    args = {
        "cluster_name": "cluster2",
        "namespace": NAMESPACE,
        "remote": {"kubeconfig": str(remote_cluster.kubeconfig)},
        "allow_loopback": True,  # both local clusters listen on 127.0.0.1
    }
    return {**args, **overrides}


def remote_server(remote) -> str:
    return yaml.safe_load(remote.kubeconfig.read_text())["clusters"][0]["cluster"]["server"]


def counts(*clusters, dry_run=False) -> list:
    return [api_request_counts(c.kubeconfig, dry_run) for c in clusters]


def written(clusters, before, dry_run=False) -> list:
    """Write requests per cluster since `before` (server-side dry runs with dry_run=True)."""
    return [writes(b, api_request_counts(c.kubeconfig, dry_run)) for c, b in zip(clusters, before, strict=True)]


def read(cluster, kind: str, name: str, namespace: str | None = None):
    """An object as stored, or None."""
    api = cluster.api_client()
    readers = {
        "Secret": lambda: client.CoreV1Api(api).read_namespaced_secret(name, namespace),
        "ServiceAccount": lambda: client.CoreV1Api(api).read_namespaced_service_account(name, namespace),
        "Namespace": lambda: client.CoreV1Api(api).read_namespace(name),
        "ClusterRole": lambda: client.RbacAuthorizationV1Api(api).read_cluster_role(name),
        "ClusterRoleBinding": lambda: client.RbacAuthorizationV1Api(api).read_cluster_role_binding(name),
    }
    try:
        return readers[kind]()
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def stored_kubeconfig(primary, namespace=NAMESPACE, cluster_name="cluster2") -> dict:
    secret = read(primary, "Secret", f"istio-remote-secret-{cluster_name}", namespace)
    return yaml.safe_load(base64.b64decode(secret.data[cluster_name]))


def token_of(kubeconfig: dict) -> str:
    return kubeconfig["users"][0]["user"]["token"]


def as_token(kubeconfig: dict, token: str):
    """An API client of the remote that authenticates with `token`, as istiod would with the Secret."""
    changed = {**kubeconfig, "users": [{"name": kubeconfig["users"][0]["name"], "user": {"token": token}}]}
    return config.new_client_from_config_dict(changed)


def list_services_status(api) -> int:
    """200 when the identity may list Services on the remote, else the API server's status."""
    try:
        client.CoreV1Api(api).list_service_for_all_namespaces()
    except ApiException as error:
        return error.status
    return 200


def wait_until_rejected(kubeconfig: dict, token: str) -> int:
    """401 once the API server no longer authenticates the token (403 means it still does, without the rights)."""
    deadline = time.monotonic() + REVOCATION_DEADLINE
    while (status := list_services_status(as_token(kubeconfig, token))) != 401 and time.monotonic() < deadline:
        time.sleep(1)
    return status


def token_secrets(remote, namespace=NAMESPACE) -> dict:
    """This module's token Secrets on the remote, by name."""
    found = client.CoreV1Api(remote.api_client()).list_namespaced_secret(
        namespace, label_selector="meshops.io/remote-token"
    )
    return {s.metadata.name: s for s in found.items}


# Refusals first, on clusters where nothing was written yet


# (overrides of args_for, the message; {server} is the remote's API server address)
REFUSALS = {
    "loopback remote for another primary": (
        {"allow_loopback": False},
        "remote's API server address {server} is a loopback address, which istiod in the primary (another "
        "cluster) cannot reach; set server to an address the primary's pods reach, or allow_loopback: true",
    ),
    "cluster name not a DNS-1123 label": (
        {"cluster_name": "Cluster_2"},
        "cluster_name 'Cluster_2' must be a DNS-1123 label",
    ),
    "primary namespace missing": (
        {"namespace": "nowhere"},
        "namespace nowhere does not exist on the primary; give istiod's namespace, or install the control plane first",
    ),
    "lifetime with a token Secret": ({"token_lifetime": 3600}, "token_lifetime only applies to token_type: bound"),
    "bound lifetime too short": (
        {"token_type": "bound", "token_lifetime": 60},
        "token_lifetime 60 must be between 600 seconds and 2^32 seconds",
    ),
    "unreachable remote": (
        {"remote": {"host": "https://127.0.0.1:1", "api_key": "unused"}},
        "Cannot reach the Kubernetes API of remote at https://127.0.0.1:1",
    ),
    "remote without credentials": ({"remote": {"context": "c2"}}, "remote needs kubeconfig or host"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_name_the_parameter_and_write_nothing(case, primary, remote, tmp_path):
    overrides, message = REFUSALS[case]
    before = counts(primary, remote)
    result = run_task(primary.kubeconfig, MODULE, args_for(remote, **overrides), tmp_path=tmp_path)
    assert result.get("failed") is True, result
    assert message.format(server=remote_server(remote)) in result["msg"]
    assert written((primary, remote), before) == [{}, {}]
    assert read(primary, "Secret", SECRET, NAMESPACE) is None
    assert read(remote, "Namespace", NAMESPACE) is None


def test_a_primary_secret_someone_else_wrote_is_refused_naming_it_and_force_conflicts(primary, remote, tmp_path):
    core = client.CoreV1Api(primary.api_client())
    core.create_namespace({"metadata": {"name": "hand-made"}})
    wait_for_namespace_defaults(primary.api_client(), "hand-made")
    core.create_namespaced_secret("hand-made", {"metadata": {"name": SECRET}, "stringData": {"cluster2": "by hand"}})
    before = counts(primary, remote)
    result = run_task(primary.kubeconfig, MODULE, args_for(remote, namespace="hand-made"), tmp_path=tmp_path)
    assert result.get("failed") is True, result
    assert result["msg"].startswith(
        f"Secret hand-made/{SECRET} already exists and was not created by meshops.istio (it lacks the label "
        "app.kubernetes.io/managed-by=meshops.istio); remove it or choose another name, or set force_conflicts: true"
    )
    assert written((primary, remote), before) == [{}, {}]
    assert read(remote, "Namespace", NAMESPACE) is None
    assert read(primary, "Secret", SECRET, "hand-made").data == {"cluster2": base64.b64encode(b"by hand").decode()}
    # The namespace stays: deleting it would have the namespace controller write during the next tests' counts.


def test_check_mode_writes_nothing_and_the_diff_hides_the_data(run, primary, remote):
    stored = counts(primary, remote)
    dry = counts(primary, remote, dry_run=True)
    result = run(check=True, diff=True)
    assert result["changed"] is True, result.get("msg")
    assert result["rotated"] is False and result["token_expiration"] is None
    shown = [(o["cluster"], o["kind"], o["name"], o["action"]) for o in result["objects"]]
    token_name = next(o["name"] for o in result["objects"] if o["cluster"] == "remote" and o["kind"] == "Secret")
    assert token_name.startswith(f"{READER}-token-")
    assert shown == [
        ("remote", "Namespace", NAMESPACE, "created"),
        ("remote", "ClusterRole", ROLE, "created"),
        ("remote", "ClusterRoleBinding", ROLE, "created"),
        ("remote", "ServiceAccount", READER, "created"),
        ("remote", "Secret", token_name, "created"),
        ("primary", "Secret", SECRET, "created"),
    ]
    secret_diff = next(d for d in result["diff"] if d["after_header"] == f"primary: Secret {NAMESPACE}/{SECRET}")
    assert secret_diff["before"] == {} and secret_diff["after"]["data"] == {"cluster2": "<hidden>"}
    assert secret_diff["after"]["metadata"]["labels"]["istio/multiCluster"] == "true"
    assert written((primary, remote), stored) == [{}, {}]
    dry_runs = written((primary, remote), dry, dry_run=True)
    assert dry_runs[0] == {("APPLY", "secrets", ""): 1}
    assert dry_runs[1][("APPLY", "secrets", "")] == 1 and dry_runs[1][("APPLY", "clusterroles", "")] == 1
    assert read(primary, "Secret", SECRET, NAMESPACE) is None and read(remote, "Namespace", NAMESPACE) is None


def test_the_secret_authenticates_to_the_remote_and_may_only_read(run, primary, remote):
    result = run(diff=True)
    assert result["changed"] is True, result.get("msg")
    assert result["secret_name"] == SECRET and result["server"] == remote_server(remote)
    assert result["rotated"] is False and result["token_expiration"] is None

    secret = read(primary, "Secret", SECRET, NAMESPACE)
    assert secret.metadata.labels["istio/multiCluster"] == "true"
    assert secret.metadata.annotations["networking.istio.io/cluster"] == "cluster2"
    assert list(secret.data) == ["cluster2"]
    kubeconfig = stored_kubeconfig(primary)
    assert kubeconfig["current-context"] == "cluster2"
    assert [c["name"] for c in kubeconfig["clusters"]] == [u["name"] for u in kubeconfig["users"]] == ["cluster2"]
    assert kubeconfig["contexts"] == [{"name": "cluster2", "context": {"cluster": "cluster2", "user": "cluster2"}}]
    assert kubeconfig["clusters"][0]["cluster"]["server"] == remote_server(remote)
    token = token_of(kubeconfig)
    assert token not in str(result)

    reader_api = config.new_client_from_config_dict(kubeconfig)
    services = client.CoreV1Api(reader_api).list_service_for_all_namespaces().items
    assert "kubernetes" in {s.metadata.name for s in services}  # the remote's own Service: c2's API server
    review = client.AuthorizationV1Api(reader_api).create_self_subject_access_review(
        {"spec": {"resourceAttributes": {"verb": "create", "resource": "configmaps", "namespace": "default"}}}
    )
    assert review.status.allowed is False
    with pytest.raises(ApiException) as forbidden:
        client.CoreV1Api(reader_api).create_namespaced_config_map("default", {"metadata": {"name": "written"}})
    assert forbidden.value.status == 403
    identity = client.AuthenticationV1Api(reader_api).create_self_subject_review({}).status.user_info
    assert identity.username == f"system:serviceaccount:{NAMESPACE}:{READER}"

    account = read(remote, "ServiceAccount", READER, NAMESPACE)
    assert account.metadata.labels["meshops.io/remote-reader"] == f"{NAMESPACE}.{READER}"
    binding = read(remote, "ClusterRoleBinding", ROLE)
    assert binding.role_ref.name == ROLE and binding.subjects[0].name == READER


def test_second_run_changes_nothing_and_sends_no_write(run, primary, remote):
    before = counts(primary, remote)
    result = run(diff=True)
    assert result["changed"] is False, result
    assert result["objects"] == [] and result["diff"] == []
    assert written((primary, remote), before) == [{}, {}]


def test_rotate_revokes_the_old_token_in_one_run(run, primary, remote):
    old = stored_kubeconfig(primary)
    old_tokens = token_secrets(remote)
    before = counts(primary, remote)
    checked = run(rotate=True, check=True, diff=True)
    assert checked["changed"] is True and checked["rotated"] is True, checked.get("msg")
    assert [(o["cluster"], o["action"]) for o in checked["objects"]] == [
        ("remote", "created"),
        ("primary", "updated"),
        ("remote", "deleted"),
    ]
    assert written((primary, remote), before) == [{}, {}]
    assert stored_kubeconfig(primary) == old and set(token_secrets(remote)) == set(old_tokens)
    untouched = {kind: read(remote, kind, name, ns).metadata.resource_version for kind, name, ns in READER_OBJECTS}
    before = counts(primary, remote)
    result = run(rotate=True)
    primary_writes, remote_writes = written((primary, remote), before)
    assert result["changed"] is True and result["rotated"] is True, result.get("msg")
    new_tokens = token_secrets(remote)
    (new_name,) = set(new_tokens) - set(old_tokens)
    (old_name,) = old_tokens
    assert [(o["cluster"], o["kind"], o["name"], o["action"]) for o in result["objects"]] == [
        ("remote", "Secret", new_name, "created"),
        ("primary", "Secret", SECRET, "updated"),
        ("remote", "Secret", old_name, "deleted"),
    ]
    assert set(new_tokens) == {new_name}
    # Nothing but the Secrets (the token controller then fills in the new token: not the run's write).
    assert primary_writes == {("APPLY", "secrets", ""): 1}
    assert remote_writes == {("APPLY", "secrets", ""): 1, ("DELETE", "secrets", ""): 1}
    for kind, name, ns in READER_OBJECTS:
        assert read(remote, kind, name, ns).metadata.resource_version == untouched[kind]

    new = stored_kubeconfig(primary)
    assert token_of(new) != token_of(old)
    assert new["clusters"] == old["clusters"]
    assert wait_until_rejected(old, token_of(old)) == 401
    assert list_services_status(as_token(new, token_of(new))) == 200
    assert run()["changed"] is False


def test_a_secret_deleted_by_hand_comes_back_with_the_same_token(run, primary, remote):
    kubeconfig, tokens = stored_kubeconfig(primary), set(token_secrets(remote))
    client.CoreV1Api(primary.api_client()).delete_namespaced_secret(SECRET, NAMESPACE)
    before = counts(primary, remote)
    result = run()
    assert result["changed"] is True and result["rotated"] is False, result.get("msg")
    assert [(o["cluster"], o["name"], o["action"]) for o in result["objects"]] == [("primary", SECRET, "created")]
    assert written((primary, remote), before) == [{("APPLY", "secrets", ""): 1}, {}]
    assert stored_kubeconfig(primary) == kubeconfig and set(token_secrets(remote)) == tokens


def test_a_bound_token_replaces_the_token_secret(run, primary, remote):
    old = stored_kubeconfig(primary)
    result = run(token_type="bound", token_lifetime=3600)
    assert result["changed"] is True and result["rotated"] is True, result.get("msg")
    (anchor,) = token_secrets(remote).values()
    assert anchor.type == "Opaque" and anchor.metadata.name.startswith(f"{READER}-bound-")
    new = stored_kubeconfig(primary)
    review = client.AuthenticationV1Api(remote.api_client()).create_token_review({"spec": {"token": token_of(new)}})
    assert review.status.authenticated is True
    assert review.status.user.username == f"system:serviceaccount:{NAMESPACE}:{READER}"
    claims = json.loads(base64.urlsafe_b64decode(token_of(new).split(".")[1] + "=="))
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["kubernetes.io"]["secret"] == {"name": anchor.metadata.name, "uid": anchor.metadata.uid}
    assert (
        result["token_expiration"] == datetime.datetime.fromtimestamp(claims["exp"], datetime.timezone.utc).isoformat()
    )
    assert wait_until_rejected(old, token_of(old)) == 401

    before = counts(primary, remote)
    again = run(token_type="bound", token_lifetime=3600)
    assert again["changed"] is False and again["token_expiration"] == result["token_expiration"], again
    assert written((primary, remote), before) == [{}, {}]

    rotated = run(token_type="bound", token_lifetime=3600, rotate=True)
    assert rotated["rotated"] is True, rotated.get("msg")
    assert [(o["cluster"], o["action"]) for o in rotated["objects"]] == [
        ("remote", "created"),
        ("primary", "updated"),
        ("remote", "deleted"),
    ]
    latest = stored_kubeconfig(primary)
    assert wait_until_rejected(new, token_of(new)) == 401  # its Secret is gone: the bound token is revoked
    assert list_services_status(as_token(latest, token_of(latest))) == 200


def test_a_second_primary_secret_has_its_own_token_and_a_revision_account_is_only_used(run, primary, remote):
    # A reader ServiceAccount as istio_revision installs it with the istiod chart: another owner's.
    core = client.CoreV1Api(remote.api_client())
    core.create_namespace({"metadata": {"name": "istio-rev"}})
    revision_labels = {"app.kubernetes.io/managed-by": "meshops.istio", "meshops.io/revision": "1-31"}
    core.create_namespaced_service_account("istio-rev", {"metadata": {"name": READER, "labels": revision_labels}})
    client.CoreV1Api(primary.api_client()).create_namespace({"metadata": {"name": "tenant-b"}})
    account_before = read(remote, "ServiceAccount", READER, "istio-rev")
    first = stored_kubeconfig(primary)

    result = run(namespace="tenant-b", reader_namespace="istio-rev")
    assert result["changed"] is True, result.get("msg")
    role = f"meshops.istio:remote-reader:istio-rev:{READER}"
    assert {(o["cluster"], o["kind"], o["name"]) for o in result["objects"]} >= {
        ("remote", "ClusterRole", role),
        ("remote", "ClusterRoleBinding", role),
        ("primary", "Secret", SECRET),
    }
    assert "ServiceAccount" not in {o["kind"] for o in result["objects"]}
    account = read(remote, "ServiceAccount", READER, "istio-rev")
    assert account.metadata.resource_version == account_before.metadata.resource_version
    assert account.metadata.labels == revision_labels
    second = stored_kubeconfig(primary, "tenant-b")
    assert token_of(second) != token_of(first)
    assert list_services_status(as_token(second, token_of(second))) == 200

    # Removing the second primary Secret revokes its token only; the revision's account stays.
    removed = run(namespace="tenant-b", reader_namespace="istio-rev", state="absent")
    assert removed["changed"] is True, removed.get("msg")
    assert {(o["cluster"], o["kind"]) for o in removed["objects"]} == {
        ("primary", "Secret"),
        ("remote", "Secret"),
        ("remote", "ClusterRole"),
        ("remote", "ClusterRoleBinding"),
    }
    assert read(remote, "ServiceAccount", READER, "istio-rev").metadata.labels == revision_labels
    assert read(remote, "ClusterRole", role) is None and token_secrets(remote, "istio-rev") == {}
    assert wait_until_rejected(second, token_of(second)) == 401
    assert list_services_status(as_token(first, token_of(first))) == 200


def test_another_primary_keeps_the_reader_when_one_is_removed(run, primary, remote):
    client.CoreV1Api(primary.api_client()).create_namespace({"metadata": {"name": "tenant-c"}})
    assert run(namespace="tenant-c")["changed"] is True
    other = stored_kubeconfig(primary, "tenant-c")
    removed = run(namespace="tenant-c", state="absent")
    assert [(o["cluster"], o["kind"], o["action"]) for o in removed["objects"]] == [
        ("primary", "Secret", "deleted"),
        ("remote", "Secret", "deleted"),
    ]
    assert read(remote, "ServiceAccount", READER, NAMESPACE) is not None
    assert read(remote, "ClusterRole", ROLE) is not None
    assert wait_until_rejected(other, token_of(other)) == 401
    current = stored_kubeconfig(primary)
    assert list_services_status(as_token(current, token_of(current))) == 200


# (remote's auth, server, why it is the primary): the kube-system UID read through remote is the primary's, or server
# is the primary's API server address once normalised.
THE_PRIMARY_ITSELF = {
    "same kubeconfig": (lambda primary, remote: ({"kubeconfig": str(primary.kubeconfig)}, None),
                        "its kube-system namespace has the primary's UID"),
    "server of the primary": (lambda primary, remote: ({"kubeconfig": str(remote.kubeconfig)},
                                                       remote_server(primary) + "/"),
                              "its API server address {server}/ is the primary's"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(THE_PRIMARY_ITSELF))
def test_a_remote_that_is_the_primary_itself_is_refused_and_nothing_is_written(case, primary, remote, tmp_path):
    connect, why = THE_PRIMARY_ITSELF[case]
    remote_auth, server = connect(primary, remote)
    args = {"cluster_name": "cluster1", "namespace": NAMESPACE, "remote": remote_auth}
    if server:
        args["server"] = server
    before = counts(primary, remote)
    result = run_task(primary.kubeconfig, MODULE, args, tmp_path=tmp_path)
    assert result.get("failed") is True, result
    assert result["msg"].startswith(f"remote is the primary itself ({why.format(server=remote_server(primary))})")
    assert "Point remote (kubeconfig, context or host) and server at the remote cluster" in result["msg"]
    assert written((primary, remote), before) == [{}, {}]
    assert read(primary, "Secret", "istio-remote-secret-cluster1", NAMESPACE) is None


# Verbose output


def test_no_token_or_kubeconfig_in_verbose_output(primary, remote, tmp_path):
    tasks = [
        {"name": "rotate", MODULE: args_for(remote, rotate=True)},
        {"name": "again", MODULE: args_for(remote)},
    ]
    completed = run_verbose(primary.kubeconfig, tasks, tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-3000:]
    assert "ok=2" in output and "changed=1" in output
    assert "AnsiballZ_istio_remote_secret.py" in output and '"cluster2": "<hidden>"' in output
    secret = read(primary, "Secret", SECRET, NAMESPACE)
    token = token_of(stored_kubeconfig(primary))
    assert token not in output and token.split(".")[1] not in output
    assert secret.data["cluster2"] not in output


def test_absent_removes_both_sides(run, primary, remote):
    token = stored_kubeconfig(primary)
    before = counts(primary, remote)
    result = run(state="absent", diff=True)
    assert result["changed"] is True, result.get("msg")
    assert [(o["cluster"], o["kind"], o["action"]) for o in result["objects"]] == [
        ("primary", "Secret", "deleted"),
        ("remote", "Secret", "deleted"),
        ("remote", "ServiceAccount", "deleted"),
        ("remote", "ClusterRoleBinding", "deleted"),
        ("remote", "ClusterRole", "deleted"),
    ]
    secret_diffs = [d for d in result["diff"] if d["before"]["kind"] == "Secret"]
    assert len(secret_diffs) == 2 and all(set(d["before"]["data"].values()) == {"<hidden>"} for d in secret_diffs)
    primary_writes, remote_writes = written((primary, remote), before)
    assert primary_writes == {("DELETE", "secrets", ""): 1}
    removed_kinds = ("secrets", "serviceaccounts", "clusterrolebindings", "clusterroles")
    assert set(remote_writes) == {("DELETE", plural, "") for plural in removed_kinds}
    assert read(primary, "Secret", SECRET, NAMESPACE) is None
    assert read(remote, "ServiceAccount", READER, NAMESPACE) is None and token_secrets(remote) == {}
    assert read(remote, "ClusterRole", ROLE) is None and read(remote, "ClusterRoleBinding", ROLE) is None
    assert read(remote, "Namespace", NAMESPACE) is not None  # created for the reader, never deleted
    assert wait_until_rejected(token, token_of(token)) == 401

    before = counts(primary, remote)
    again = run(state="absent")
    assert again["changed"] is False and again["objects"] == [], again
    assert written((primary, remote), before) == [{}, {}]
