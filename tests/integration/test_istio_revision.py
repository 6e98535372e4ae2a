"""istio_revision against a real API server and a real istioctl: seed 002's two control planes.

The tests build on each other in file order (install, re-run, upgrade, remove), like a user's runs would."""

import json
import subprocess
import time

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import api_request_counts, writes
from written import written

MODULE = "meshops.istio.istio_revision"
KINDS = {  # what a revision may own, by the API used to list it
    "configmaps": ("v1", "ConfigMap"),
    "services": ("v1", "Service"),
    "serviceaccounts": ("v1", "ServiceAccount"),
    "deployments": ("apps/v1", "Deployment"),
    "hpa": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "roles": ("rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    "clusterroles": ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    "clusterrolebindings": ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    "mutating": ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"),
    "validating": ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"),
}


def revision_args(binaries, number, **overrides):
    name = f"usergroup-{number}"
    args = {
        "name": name,
        "namespace": name,
        "istioctl_path": str(binaries / "istioctl"),
        "discovery_selectors": [{"matchLabels": {"usergroup": name}}],
        "wait_timeout": 120,
    }
    return {**args, **overrides}


def objects_with_labels(api, selector: str) -> dict:
    """{(kind, namespace, name): what the collection wrote to it} of every object a revision may own matching
    `selector`."""
    from kubernetes.dynamic import DynamicClient

    dynamic = DynamicClient(api)
    found = {}
    for api_version, kind in KINDS.values():
        for item in dynamic.resources.get(api_version=api_version, kind=kind).get(label_selector=selector).items:
            found[(kind, item.metadata.namespace or "", item.metadata.name)] = written(item)
    return found


def rendered_names(binaries, args) -> set:
    """What istioctl itself renders for these args, independently of the module."""
    iop = {
        "apiVersion": "install.istio.io/v1alpha1",
        "kind": "IstioOperator",
        "spec": {
            "profile": "minimal",
            "revision": args["name"],
            "meshConfig": {"discoverySelectors": args["discovery_selectors"]},
            "values": {"defaultRevision": "", "global": {"istioNamespace": args["namespace"]}},
        },
    }
    out = subprocess.run(
        [binaries / "istioctl", "manifest", "generate", "-f", "-"],
        input=yaml.safe_dump(iop),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out) if d}


def test_check_mode_on_a_fresh_cluster_writes_nothing(run, api, cluster, binaries):
    args = revision_args(binaries, 1)
    before = api_request_counts(cluster.kubeconfig)
    result = run(args, check=True, diff=True)
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert result["changed"] is True, result.get("msg")
    shown = {tuple(d["before_header"].split(" ", 1)) for d in result["diff"]}
    shown_names = {(kind, ident.rpartition("/")[2]) for kind, ident in shown}
    assert rendered_names(binaries, args) <= shown_names
    assert ("Namespace", "usergroup-1") in shown_names
    assert all(d["before"] == {} and d["after"] for d in result["diff"])
    with pytest.raises(ApiException) as absent:
        client.CoreV1Api(api).read_namespace("usergroup-1")
    assert absent.value.status == 404
    assert not objects_with_labels(api, "meshops.io/revision=usergroup-1")
    assert (
        not client.ApiextensionsV1Api(api)
        .list_custom_resource_definition(label_selector="app.kubernetes.io/part-of=istio")
        .items
    )


def test_seed_002_two_control_planes(run, api, binaries):
    first = run(revision_args(binaries, 1))
    second = run(revision_args(binaries, 2, revision_tags=["prod"]))
    assert first["changed"] and second["changed"], (first.get("msg"), second.get("msg"))
    assert first["injector_webhook"] == "istio-sidecar-injector-usergroup-1-usergroup-1"
    assert first["istiod_service"] == "istiod-usergroup-1.usergroup-1.svc"
    assert second["tags"] == ["prod"]

    for n in (1, 2):
        rev = f"usergroup-{n}"
        names = set(objects_with_labels(api, f"istio.io/rev={rev}"))
        assert ("MutatingWebhookConfiguration", "", f"istio-sidecar-injector-{rev}-{rev}") in names
        assert ("ValidatingWebhookConfiguration", "", f"istio-validator-{rev}-{rev}") in names
        for role in (f"istiod-clusterrole-{rev}-{rev}", f"istiod-gateway-controller-{rev}-{rev}"):
            assert ("ClusterRole", "", role) in names and ("ClusterRoleBinding", "", role) in names
        assert ("ClusterRole", "", f"istio-reader-clusterrole-{rev}-{rev}") in names
        for kind, name in (("ConfigMap", f"istio-{rev}"), ("ConfigMap", f"istio-sidecar-injector-{rev}"),
                           ("Service", f"istiod-{rev}"), ("Deployment", f"istiod-{rev}")):  # fmt: skip
            assert (kind, rev, name) in names
        namespace = client.CoreV1Api(api).read_namespace(rev)
        assert namespace.metadata.labels["usergroup"] == rev
        mesh = yaml.safe_load(client.CoreV1Api(api).read_namespaced_config_map(f"istio-{rev}", rev).data["mesh"])
        assert mesh["discoverySelectors"] == [{"matchLabels": {"usergroup": rev}}]

    webhooks = client.AdmissionregistrationV1Api(api)
    mutating = [w.metadata.name for w in webhooks.list_mutating_webhook_configuration().items]
    validating = [w.metadata.name for w in webhooks.list_validating_webhook_configuration().items]
    assert not [name for name in mutating if name.startswith("istio-revision-tag-default")]
    assert "istiod-default-validator" not in validating
    assert "istio-revision-tag-prod-usergroup-2" in mutating
    deployment = client.AppsV1Api(api).read_namespaced_deployment("istiod-usergroup-1", "usergroup-1")
    assert deployment.status.available_replicas == deployment.spec.replicas


def test_second_run_changes_nothing_and_sends_no_write(run, cluster, binaries):
    before = api_request_counts(cluster.kubeconfig)
    first = run(revision_args(binaries, 1))
    second = run(revision_args(binaries, 2, revision_tags=["prod"]))
    after = api_request_counts(cluster.kubeconfig)
    assert first["changed"] is False and second["changed"] is False
    assert first["objects"] == [] and second["objects"] == []
    assert writes(before, after) == {}


def logging_istioctl(binaries, directory, build: str = "1"):
    """An istioctl that logs each run's arguments before running the real one; `build` changes its content (so its
    digest) and nothing else."""
    log, wrapper = directory / "istioctl.log", directory / "istioctl"
    wrapper.write_text(f'#!/bin/sh\n# build {build}\necho "$1 $2" >> "{log}"\nexec "{binaries / "istioctl"}" "$@"\n')
    wrapper.chmod(0o755)
    log.write_text("")
    return wrapper, log


def test_the_render_cache_renders_once_per_input_and_binary_and_drift_is_still_repaired(
    run, api, cluster, binaries, tmp_path
):
    wrapper, log = logging_istioctl(binaries, tmp_path)
    cache = tmp_path / "render-cache"
    args = revision_args(binaries, 1, istioctl_path=str(wrapper), render_cache_dir=str(cache))
    assert run(args)["changed"] is False  # rendered by this binary for the first time: the same objects
    assert log.read_text().splitlines() == ["version --remote=false", "manifest generate"]
    assert len(list(cache.glob("*.json"))) == 3  # the binary's digest, its version, the rendering

    log.write_text("")
    before = api_request_counts(cluster.kubeconfig)
    again = run(args)
    assert again["changed"] is False and again["objects"] == [], again.get("msg")
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert log.read_text() == ""  # neither rendered nor asked for its version

    # Drift on owned objects is found from the cluster, not from the cache: both are repaired on a cache hit.
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    injector = "istio-sidecar-injector-usergroup-1"
    kept = core.read_namespaced_config_map(injector, "usergroup-1").data
    core.delete_namespaced_config_map(injector, "usergroup-1")
    apps.patch_namespaced_deployment(
        "istiod-usergroup-1", "usergroup-1", {"metadata": {"labels": {"operator.istio.io/managed": "by-hand"}}},
        field_manager="by-hand",
    )  # fmt: skip
    repaired = run(args)
    assert repaired["changed"] is True, repaired.get("msg")
    assert {(o["kind"], o["name"], o["action"]) for o in repaired["objects"]} == {
        ("ConfigMap", injector, "created"), ("Deployment", "istiod-usergroup-1", "updated"),
    }  # fmt: skip
    assert core.read_namespaced_config_map(injector, "usergroup-1").data == kept
    labels = apps.read_namespaced_deployment("istiod-usergroup-1", "usergroup-1").metadata.labels
    assert labels["operator.istio.io/managed"] == "Reconcile"
    assert log.read_text() == ""

    # Another input renders again; the first input is still cached.
    changed = run({**args, "pilot_env": {"MESHOPS_CACHE_PROBE": "1"}})
    assert changed["changed"] is True, changed.get("msg")
    assert log.read_text().splitlines() == ["manifest generate"]
    env = apps.read_namespaced_deployment("istiod-usergroup-1", "usergroup-1").spec.template.spec.containers[0].env
    assert {"MESHOPS_CACHE_PROBE": "1"}.items() <= {e.name: e.value for e in env}.items()
    log.write_text("")
    back = run(args)
    assert back["changed"] is True and log.read_text() == ""
    env = apps.read_namespaced_deployment("istiod-usergroup-1", "usergroup-1").spec.template.spec.containers[0].env
    assert "MESHOPS_CACHE_PROBE" not in {e.name for e in env}

    # Another istioctl binary (other content, same path) renders again and is asked its version again.
    logging_istioctl(binaries, tmp_path, build="2")
    assert run(args)["changed"] is False
    assert log.read_text().splitlines() == ["version --remote=false", "manifest generate"]

    # render_cache false: every run renders.
    log.write_text("")
    assert run({**args, "render_cache": False})["changed"] is False
    assert log.read_text().splitlines() == ["version --remote=false", "manifest generate"]


def test_istioctl_tag_list_shows_our_tags(cluster, binaries):
    listed = subprocess.run(
        [binaries / "istioctl", "tag", "list", "--kubeconfig", str(cluster.kubeconfig), "-o", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    tags = {entry["tag"]: entry["revision"] for entry in json.loads(listed) if entry.get("tag")}
    assert tags == {"prod": "usergroup-2"}


REFUSALS = {
    "overlapping selectors": (
        {"name": "usergroup-3", "namespace": "usergroup-3",
         "discovery_selectors": [{"matchLabels": {"usergroup": "usergroup-1"}}]},
        "discovery_selectors overlap with revision usergroup-1: both select namespaces usergroup-1",
    ),
    "revision installed in another namespace": (
        {"namespace": "elsewhere", "discovery_selectors": [{"matchLabels": {"usergroup": "usergroup-1"}}]},
        "revision usergroup-1 is already installed in namespace usergroup-1",
    ),
    "tag named like a revision": (
        {"name": "usergroup-3", "namespace": "usergroup-3", "revision_tags": ["usergroup-2"],
         "discovery_selectors": [{"matchLabels": {"usergroup": "usergroup-3"}}]},
        "revision_tags entry 'usergroup-2' is the name of an installed revision",
    ),
    "tag held by another revision": (
        {"revision_tags": ["prod"]},
        "revision_tags entry 'prod': tag prod is held by revision usergroup-2, and a tag points at one revision; "
        "set move_tags: true to move it to usergroup-1",
    ),
    "name of a tag's Service": (
        {"name": "revision-tag-prod", "namespace": "revision-tag-prod",
         "discovery_selectors": [{"matchLabels": {"usergroup": "revision-tag-prod"}}]},
        "name revision-tag-prod would give this revision the Service istiod-revision-tag-prod, which is the "
        "Service of revision tag 'prod'",
    ),
    "name of a tag": (
        {"name": "prod", "namespace": "prod", "discovery_selectors": [{"matchLabels": {"usergroup": "prod"}}]},
        "name prod is a revision tag of revision usergroup-2",
    ),
    "default as a tag without default_revision": (
        {"revision_tags": ["default"]},
        "revision_tags entry 'default' makes this revision the cluster's default injector",
    ),
    "canary of a revision not installed": (
        {"name": "usergroup-1-canary", "canary_of": "usergroup-9"},
        "canary_of usergroup-9 is not an installed revision (installed: usergroup-1, usergroup-2)",
    ),
    "istio version not rendered by istioctl": ({"istio_version": "1.20.0"}, "istio_version 1.20.0 is not what"),
    "istioctl that cannot run": ({"istioctl_path": "/nonexistent/istioctl"}, "cannot be run"),
    "reserved name": ({"name": "default"}, "name 'default' is reserved"),
    "trust bundle name not a ConfigMap name": (
        {"trust_bundle_name": "Root_Cert"},
        "trust_bundle_name 'Root_Cert' must be a ConfigMap name: at most 253 lower-case letters",
    ),
    "trust bundle name in values": (
        {"values": {"global": {"trustBundleName": "root"}}},
        "values.global.trustBundleName is set by the module: use trust_bundle_name or own_trust_bundle",
    ),
    "unreachable API server": ({"host": "https://127.0.0.1:9", "validate_certs": False},
                               "Cannot reach the Kubernetes API at https://127.0.0.1:9"),
    "forbidden by RBAC": ({"impersonate_user": "nobody"},
                          "Cannot list configmaps: forbidden: this account may not list configmaps at the cluster "
                          "scope. Bind the ClusterRole meshops-istio-installer"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refusals_fail_with_the_reason_and_write_nothing(case, run, cluster, binaries):
    overrides, message = REFUSALS[case]
    before = api_request_counts(cluster.kubeconfig)
    result = run(revision_args(binaries, 1, **overrides))
    assert result.get("failed") is True
    assert message in result["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_upgrade_rolls_istiod_and_prunes_a_component_turned_off(run, api, binaries):
    apps = client.AppsV1Api(api)
    generation = apps.read_namespaced_deployment("istiod-usergroup-1", "usergroup-1").metadata.generation
    result = run(
        revision_args(
            binaries,
            1,
            pilot_env={"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"},
            values={"pilot": {"autoscaleEnabled": False}},
        ),
        diff=True,
    )
    assert result["changed"] is True, result.get("msg")
    actions = {(o["kind"], o["action"]) for o in result["objects"]}
    assert ("Deployment", "updated") in actions and ("HorizontalPodAutoscaler", "deleted") in actions
    deployment = apps.read_namespaced_deployment("istiod-usergroup-1", "usergroup-1")
    assert deployment.metadata.generation == generation + 1
    env = {e.name: e.value for e in deployment.spec.template.spec.containers[0].env}
    assert env["PILOT_SCOPE_GATEWAY_TO_NAMESPACE"] == "true"
    with pytest.raises(ApiException) as pruned:
        client.AutoscalingV2Api(api).read_namespaced_horizontal_pod_autoscaler("istiod-usergroup-1", "usergroup-1")
    assert pruned.value.status == 404
    deployment_diff = next(
        d for d in result["diff"] if d["before_header"] == "Deployment usergroup-1/istiod-usergroup-1"
    )
    assert deployment_diff["before"] != deployment_diff["after"]


def test_a_hand_made_object_with_a_revisions_name_is_refused_naming_it(run, api, cluster, binaries):
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "usergroup-4", "labels": {"usergroup": "usergroup-4"}}})
    core.create_namespaced_service_account("usergroup-4", {"metadata": {"name": "istiod-usergroup-4"}})
    core.create_namespaced_config_map("usergroup-4", {"metadata": {"name": "istio-sidecar-injector-usergroup-4"}})
    before = api_request_counts(cluster.kubeconfig)
    result = run(revision_args(binaries, 4))
    assert result.get("failed") is True
    for what in (
        "ServiceAccount usergroup-4/istiod-usergroup-4",
        "ConfigMap usergroup-4/istio-sidecar-injector-usergroup-4",
    ):
        assert f"{what} already exists and was not created by meshops.istio" in result["msg"]
    assert "set force_conflicts: true to adopt it" in result["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    assert not objects_with_labels(api, "meshops.io/revision=usergroup-4")
    # The namespace stays: deleting it would have the namespace controller write during later tests' counts.


def test_canary_install_and_rollback_leave_the_base_revision_as_it_was(run, api, binaries):
    base_before = objects_with_labels(api, "meshops.io/revision=usergroup-1")
    assert {("Deployment", "usergroup-1", "istiod-usergroup-1"), ("Service", "usergroup-1", "istiod-usergroup-1"),
            ("MutatingWebhookConfiguration", "", "istio-sidecar-injector-usergroup-1-usergroup-1"),
            ("ClusterRole", "", "istio-reader-clusterrole-usergroup-1-usergroup-1")} <= set(base_before)  # fmt: skip
    reader_before = shared_reader(api, "usergroup-1")

    canary = revision_args(binaries, 1, name="usergroup-1-canary", canary_of="usergroup-1")
    installed = run(canary)
    assert installed["changed"] is True, installed.get("msg")
    assert objects_with_labels(api, "meshops.io/revision=usergroup-1-canary")
    # Both revisions render the reader ServiceAccount: it is shared, no revision's, and was not written again.
    assert shared_reader(api, "usergroup-1") == reader_before
    assert objects_with_labels(api, "meshops.io/revision=usergroup-1") == base_before

    removed = run({**canary, "state": "absent"})
    assert removed["changed"] is True, removed.get("msg")
    assert {o["action"] for o in removed["objects"]} == {"deleted"}
    assert not objects_with_labels(api, "meshops.io/revision=usergroup-1-canary")
    # The base revision: every object it owned still there, none written again (uid, generation, our fields).
    assert objects_with_labels(api, "meshops.io/revision=usergroup-1") == base_before
    assert shared_reader(api, "usergroup-1") == reader_before
    assert run(revision_args(binaries, 1, pilot_env={"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"},
                             values={"pilot": {"autoscaleEnabled": False}}))["changed"] is False  # fmt: skip


def shared_reader(api, namespace):
    """What the collection wrote to the namespace's shared reader ServiceAccount, and its owner labels."""
    account = client.CoreV1Api(api).read_namespaced_service_account("istio-reader-service-account", namespace)
    labels = account.metadata.labels or {}
    assert labels.get("app.kubernetes.io/managed-by") == "meshops.istio"
    assert not [key for key in labels if key.startswith("meshops.io/")] and "istio.io/rev" not in labels
    return written(account)


def test_move_tags_moves_a_tag_to_another_revision_and_back(run, api, cluster, binaries):
    webhooks = client.AdmissionregistrationV1Api(api)

    def tag_objects():
        mutating = webhooks.list_mutating_webhook_configuration(label_selector="istio.io/tag=prod").items
        services = client.CoreV1Api(api).list_service_for_all_namespaces(label_selector="istio.io/tag=prod").items
        return {(o.metadata.name, o.metadata.labels["istio.io/rev"]) for o in mutating + services}

    assert tag_objects() == {
        ("istio-revision-tag-prod-usergroup-2", "usergroup-2"),
        ("istiod-revision-tag-prod", "usergroup-2"),
    }
    moved = run(
        revision_args(
            binaries,
            1,
            revision_tags=["prod"],
            move_tags=True,
            pilot_env={"PILOT_SCOPE_GATEWAY_TO_NAMESPACE": "true"},
            values={"pilot": {"autoscaleEnabled": False}},
        )
    )
    assert moved["changed"] is True, moved.get("msg")
    assert tag_objects() == {
        ("istio-revision-tag-prod-usergroup-1", "usergroup-1"),
        ("istiod-revision-tag-prod", "usergroup-1"),
    }
    assert {(o["kind"], o["name"], o["action"]) for o in moved["objects"]} >= {
        ("MutatingWebhookConfiguration", "istio-revision-tag-prod-usergroup-2", "deleted"),
        ("MutatingWebhookConfiguration", "istio-revision-tag-prod-usergroup-1", "created"),
    }
    # The revision that held it may not take it back silently.
    before = api_request_counts(cluster.kubeconfig)
    refused = run(revision_args(binaries, 2, revision_tags=["prod"]))
    assert refused.get("failed") is True and "tag prod is held by revision usergroup-1" in refused["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}
    back = run(revision_args(binaries, 2, revision_tags=["prod"], move_tags=True))
    assert back["changed"] is True, back.get("msg")
    assert tag_objects() == {
        ("istio-revision-tag-prod-usergroup-2", "usergroup-2"),
        ("istiod-revision-tag-prod", "usergroup-2"),
    }


def test_removal_is_refused_while_a_namespace_uses_the_revision(run, api, binaries):
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "app-ns-1", "labels": {"istio.io/rev": "usergroup-1"}}})
    result = run(revision_args(binaries, 1, state="absent"))
    assert result.get("failed") is True
    assert "namespaces app-ns-1 still carry istio.io/rev=usergroup-1" in result["msg"]
    assert objects_with_labels(api, "meshops.io/revision=usergroup-1")


def test_removing_one_revision_leaves_the_other_byte_identical(run, api, binaries):
    other_before = objects_with_labels(api, "meshops.io/revision=usergroup-2")
    crds_before = {c.metadata.name for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert other_before

    result = run(revision_args(binaries, 1, state="absent", force=True))
    assert result["changed"] is True, result.get("msg")
    assert {o["action"] for o in result["objects"]} <= {"deleted", "released"}

    assert not objects_with_labels(api, "meshops.io/revision=usergroup-1")
    assert not objects_with_labels(api, "istio.io/rev=usergroup-1")
    assert objects_with_labels(api, "meshops.io/revision=usergroup-2") == other_before
    # The last revision of its namespace takes the shared reader ServiceAccount with it.
    with pytest.raises(ApiException) as reader_gone:
        client.CoreV1Api(api).read_namespaced_service_account("istio-reader-service-account", "usergroup-1")
    assert reader_gone.value.status == 404
    crds_after = {c.metadata.name for c in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert crds_before <= crds_after and "sidecars.networking.istio.io" in crds_after
    namespace = client.CoreV1Api(api).read_namespace("usergroup-1")
    assert "usergroup" not in (namespace.metadata.labels or {})
    again = run(revision_args(binaries, 1, state="absent", force=True))
    assert again["changed"] is False


def test_istioctl_uninstall_revision_removes_what_the_module_installed(run, api, cluster, binaries):
    args = revision_args(binaries, 3)
    assert run(args)["changed"] is True
    assert objects_with_labels(api, "istio.io/rev=usergroup-3")
    other_before = objects_with_labels(api, "meshops.io/revision=usergroup-2")
    uninstall = subprocess.run(
        [binaries / "istioctl", "uninstall", "--revision", "usergroup-3", "-y", "--kubeconfig",
         str(cluster.kubeconfig), "--set", "values.global.istioNamespace=usergroup-3"],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    # istioctl deletes in the foreground; the garbage collector completes the deletions shortly after.
    deadline = time.monotonic() + 60
    while (left := set(objects_with_labels(api, "istio.io/rev=usergroup-3"))) and time.monotonic() < deadline:
        time.sleep(1)
    assert left == set(), uninstall.stdout
    # What istioctl leaves after its own `install` too: the base chart's reader ServiceAccount, here the one every
    # revision of the namespace shares (it names no revision, so `uninstall --revision` does not select it).
    assert shared_reader(api, "usergroup-3")
    assert objects_with_labels(api, "meshops.io/revision=usergroup-2") == other_before


def istiod_trust_bundle(api, revision: str) -> dict:
    """What the revision's rendered istiod Deployment publishes under and mounts, and what its injector injects."""
    deployment = client.AppsV1Api(api).read_namespaced_deployment(f"istiod-{revision}", revision)
    pod = deployment.spec.template.spec
    env = {e.name: e.value for e in pod.containers[0].env}
    volumes = {v.name: v.config_map.name for v in pod.volumes if v.config_map}
    injector = client.CoreV1Api(api).read_namespaced_config_map(f"istio-sidecar-injector-{revision}", revision)
    values = json.loads(injector.data["values"])
    return {
        "root_env": env.get("PILOT_CA_CERT_CONFIGMAP"),
        "crl_env": env.get("PILOT_CRL_CONFIGMAP"),
        "istiod_mounts": volumes.get("istio-csr-ca-configmap"),
        "injected_root": values["global"].get("trustBundleName"),
    }


OWN_BUNDLE = {
    "root_env": "istio-ca-root-cert-usergroup-5",
    "crl_env": None,  # the CRL keeps Istio's name, which the injected proxies mount
    "istiod_mounts": "istio-ca-root-cert-usergroup-5",
    "injected_root": "istio-ca-root-cert-usergroup-5",
}
ISTIOS_BUNDLE = {"root_env": None, "crl_env": None, "istiod_mounts": "istio-ca-root-cert", "injected_root": None}


def test_own_trust_bundle_has_istiod_publish_and_the_injector_mount_the_namespaces_name(run, api, cluster, binaries):
    check_before = api_request_counts(cluster.kubeconfig)
    planned = run(revision_args(binaries, 5, own_trust_bundle=True), check=True)
    assert writes(check_before, api_request_counts(cluster.kubeconfig)) == {}
    assert planned["trust_bundle"] == "istio-ca-root-cert-usergroup-5"

    installed = run(revision_args(binaries, 5, own_trust_bundle=True))
    assert installed["changed"] is True, installed.get("msg")
    assert installed["trust_bundle"] == planned["trust_bundle"]
    assert istiod_trust_bundle(api, "usergroup-5") == OWN_BUNDLE
    before = api_request_counts(cluster.kubeconfig)
    again = run(revision_args(binaries, 5, own_trust_bundle=True))
    assert again["changed"] is False and writes(before, api_request_counts(cluster.kubeconfig)) == {}


def test_a_canary_takes_its_namespaces_trust_bundle_and_another_name_is_refused(run, api, cluster, binaries):
    canary = revision_args(binaries, 5, name="usergroup-5-canary", canary_of="usergroup-5")
    before = api_request_counts(cluster.kubeconfig)
    refused = run({**canary, "trust_bundle_name": "canary-root"})
    assert refused.get("failed") is True
    assert (
        "trust_bundle_name canary-root differs from istio-ca-root-cert-usergroup-5, the root ConfigMap of revision "
        "usergroup-5 installed in namespace usergroup-5"
    ) in refused["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}

    installed = run({**canary, "own_trust_bundle": True})
    assert installed["changed"] is True, installed.get("msg")
    assert installed["trust_bundle"] == "istio-ca-root-cert-usergroup-5"
    env = {e.name: e.value for e in client.AppsV1Api(api).read_namespaced_deployment(
        "istiod-usergroup-5-canary", "usergroup-5").spec.template.spec.containers[0].env}  # fmt: skip
    assert env["PILOT_CA_CERT_CONFIGMAP"] == "istio-ca-root-cert-usergroup-5"
    assert run({**canary, "state": "absent"})["changed"] is True


def istioctl_reporting(binaries, directory, version: str):
    """The real istioctl, except that `istioctl version` reports `version`: an Istio without trustBundleName as far
    as the module can tell (its rendering is still the pinned istioctl's)."""
    wrapper = directory / "istioctl"
    wrapper.write_text(
        f'#!/bin/sh\nif [ "$1" = version ]; then echo "client version: {version}"; exit 0; fi\n'
        f'exec "{binaries / "istioctl"}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return str(wrapper)


def test_without_the_knob_own_trust_bundle_keeps_istios_name_and_says_so(run, api, cluster, binaries, tmp_path):
    old = istioctl_reporting(binaries, tmp_path, "1.26.3")
    before = api_request_counts(cluster.kubeconfig)
    refused = run(revision_args(binaries, 5, istioctl_path=old, trust_bundle_name="usergroup-5-root"))
    assert refused.get("failed") is True
    assert "trust_bundle_name usergroup-5-root needs Istio 1.27 or later" in refused["msg"]
    assert writes(before, api_request_counts(cluster.kubeconfig)) == {}

    kept = run(revision_args(binaries, 5, istioctl_path=old, own_trust_bundle=True, render_cache=False))
    assert kept["changed"] is True, kept.get("msg")
    assert any("Istio 1.26.3 cannot rename the root ConfigMap" in w for w in kept["warnings"])
    assert kept["trust_bundle"] == "istio-ca-root-cert"
    assert istiod_trust_bundle(api, "usergroup-5") == ISTIOS_BUNDLE


def test_turning_own_trust_bundle_off_and_on_rolls_istiod_between_the_names(run, api, binaries):
    apps = client.AppsV1Api(api)
    on = run(revision_args(binaries, 5, own_trust_bundle=True))
    assert on["changed"] is True and ("Deployment", "updated") in {(o["kind"], o["action"]) for o in on["objects"]}
    assert istiod_trust_bundle(api, "usergroup-5") == OWN_BUNDLE
    generation = apps.read_namespaced_deployment("istiod-usergroup-5", "usergroup-5").metadata.generation
    off = run(revision_args(binaries, 5))
    assert off["changed"] is True and off["trust_bundle"] == "istio-ca-root-cert"
    assert istiod_trust_bundle(api, "usergroup-5") == ISTIOS_BUNDLE
    assert apps.read_namespaced_deployment("istiod-usergroup-5", "usergroup-5").metadata.generation == generation + 1
    assert run(revision_args(binaries, 5, state="absent"))["changed"] is True
