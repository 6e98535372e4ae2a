"""Seed 002 as playbooks/multitenant.yml installs it, served by two real istiods (usergroup-1, usergroup-2) at once.

Root-of-trust distribution (seed 000's x509 failure; each control plane publishes its root in a ConfigMap of its
own, istio_revision's own_trust_bundle), discovery scoping (seed 000's performance problem) and injection routing,
as the real control plane does them. The test that breaks the overlap guard on purpose runs last.
"""

import base64
import json
import ssl
import subprocess
import uuid

import pytest
import urllib3
import yaml
from ansible_collections.meshops.istio.plugins.module_utils.selectors import matches
from integration.playbook import playbook, run_task
from kubernetes import client
from kubernetes.client.rest import ApiException
from localcluster import binary_dir
from support import istio_version, wait_for

pytestmark = pytest.mark.conformance

TENANT_NAMESPACES = {"usergroup-1": ["app-ns-1"], "usergroup-2": ["app-ns-2", "app-ns-3"]}
REVISIONS = tuple(TENANT_NAMESPACES)
BYSTANDER = "bystander"  # a namespace of no tenant
NO_TENANT = (BYSTANDER, "default", "kube-system", "kube-public")
ISTIOS_ROOT_CONFIG_MAP = "istio-ca-root-cert"  # Istio's shared name, which no control plane of the seed uses
PROBE_LABELS = {"app": "probe"}


def injector_name(revision: str) -> str:
    return f"istio-sidecar-injector-{revision}-{revision}"


@pytest.fixture(scope="module")
def seed_002(clusters, istiods):
    """The cluster after multitenant.yml, the webhooks' caBundles as installed, and both istiods running."""
    [cluster] = clusters(1)
    api = cluster.api_client()
    client.CoreV1Api(api).create_namespace({"metadata": {"name": BYSTANDER}})
    playbook(cluster, "multitenant.yml", "-i", "examples/seed-002", "-e", f"istioctl_path={binary_dir() / 'istioctl'}")
    installed_bundles = {rev: ca_bundles(api, rev) for rev in REVISIONS}
    running = {rev: istiods(cluster, rev, rev) for rev in REVISIONS}
    return {"cluster": cluster, "api": api, "istiod": running, "installed_bundles": installed_bundles}


def ca_bundles(api, revision: str) -> dict:
    """The caBundle of each webhook of the revision's injector and validator, by configuration name."""
    admission = client.AdmissionregistrationV1Api(api)
    injector = admission.read_mutating_webhook_configuration(injector_name(revision))
    validator = admission.read_validating_webhook_configuration(f"istio-validator-{revision}-{revision}")
    return {c.metadata.name: [w.client_config.ca_bundle for w in c.webhooks] for c in (injector, validator)}


def all_bundles(bundles: dict) -> list:
    return [bundle for configuration in bundles.values() for bundle in configuration]


def root_config_map(revision: str) -> str:
    """The ConfigMap the revision's istiod publishes its root in (own_trust_bundle: named after its namespace)."""
    return f"istio-ca-root-cert-{revision}"


def self_signed_root(api, revision: str) -> str:
    """The root istiod generated for itself (no cacerts was installed): Secret istio-ca-secret."""
    secret = client.CoreV1Api(api).read_namespaced_secret("istio-ca-secret", revision)
    return base64.b64decode(secret.data["ca-cert.pem"]).decode()


def config_map_in(api, namespace: str, name: str):
    """The namespace's ConfigMap `name`, None when there is none."""
    try:
        return client.CoreV1Api(api).read_namespaced_config_map(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def root_in(api, namespace: str, revision: str):
    """root-cert.pem of the ConfigMap the revision publishes its root in, in `namespace`; None when there is none."""
    config_map = config_map_in(api, namespace, root_config_map(revision))
    return config_map.data["root-cert.pem"] if config_map else None


def what_istiod_wrote(api, namespace: str, name: str) -> dict:
    """The data, labels and managed fields (manager, operation, time and fields of each write) of a ConfigMap."""
    config_map = api.sanitize_for_serialization(client.CoreV1Api(api).read_namespaced_config_map(name, namespace))
    return {key: config_map["metadata"].get(key) for key in ("labels", "managedFields", "uid")} | {
        "data": config_map["data"]
    }


def registry(istiod) -> set:
    return {service["hostname"] for service in istiod.debug("registryz")}


def create_service(api, namespace: str, name: str):
    service = {"metadata": {"name": name}, "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": name}}}
    client.CoreV1Api(api).create_namespaced_service(namespace, service)


def test_each_tenant_namespace_carries_its_own_revisions_root_and_no_other(seed_002):
    api = seed_002["api"]
    roots = {rev: self_signed_root(api, rev) for rev in REVISIONS}
    assert roots["usergroup-1"] != roots["usergroup-2"]
    for rev, namespaces in TENANT_NAMESPACES.items():
        [other] = [r for r in REVISIONS if r != rev]
        for namespace in (rev, *namespaces):
            distributed = wait_for(
                f"{root_config_map(rev)} in {namespace}", lambda ns=namespace, r=rev: root_in(api, ns, r)
            )
            assert distributed.strip() == roots[rev].strip(), f"{namespace} holds a root that is not {rev}'s"
            # Only its own revision's ConfigMap: neither the other's nor Istio's shared one.
            names = {cm.metadata.name for cm in client.CoreV1Api(api).list_namespaced_config_map(namespace).items}
            assert root_config_map(other) not in names and ISTIOS_ROOT_CONFIG_MAP not in names, names
    for namespace in NO_TENANT:
        for rev in REVISIONS:
            assert root_in(api, namespace, rev) is None, f"{namespace} belongs to no tenant but got {rev}'s root"
        assert config_map_in(api, namespace, ISTIOS_ROOT_CONFIG_MAP) is None


def test_each_registry_holds_only_its_tenants_services(seed_002):
    api, running = seed_002["api"], seed_002["istiod"]
    # The bystander's Service first: istiod watches Services cluster-wide in order, so once it has registered the
    # later ones it has also decided about this one.
    for namespace in (BYSTANDER, *TENANT_NAMESPACES["usergroup-1"], *TENANT_NAMESPACES["usergroup-2"]):
        create_service(api, namespace, "echo")
    for rev, namespaces in TENANT_NAMESPACES.items():
        expected = {f"istiod-{rev}.{rev}.svc.cluster.local"} | {f"echo.{ns}.svc.cluster.local" for ns in namespaces}
        wait_for(f"registry of {rev} holds {sorted(expected)}", lambda r=rev, e=expected: registry(running[r]) >= e)
        assert registry(running[rev]) == expected


def test_200_services_of_another_tenant_do_not_grow_usergroup_1s_registry(seed_002):
    api, running = seed_002["api"], seed_002["istiod"]
    before = {rev: registry(running[rev]) for rev in REVISIONS}
    added = set()
    for index in range(200):
        namespace = TENANT_NAMESPACES["usergroup-2"][index % 2]
        create_service(api, namespace, f"load-{index}")
        added.add(f"load-{index}.{namespace}.svc.cluster.local")
    # A last Service of usergroup-1's own: once its istiod registered it, it has seen the 200 before it.
    create_service(api, "app-ns-1", "sentinel")
    sentinel = "sentinel.app-ns-1.svc.cluster.local"
    wait_for("usergroup-1 registers the sentinel", lambda: sentinel in registry(running["usergroup-1"]))
    wait_for("usergroup-2 registers the 200 services", lambda: registry(running["usergroup-2"]) >= added)
    after = {rev: registry(running[rev]) for rev in REVISIONS}
    print(f"\nregistry sizes before/after 200 services in usergroup-2's namespaces: "
          f"usergroup-1 {len(before['usergroup-1'])}/{len(after['usergroup-1'])} (+1 sentinel), "
          f"usergroup-2 {len(before['usergroup-2'])}/{len(after['usergroup-2'])}")  # fmt: skip
    assert after["usergroup-1"] == before["usergroup-1"] | {sentinel}
    assert after["usergroup-2"] == before["usergroup-2"] | added


def test_istiod_runs_as_its_service_account_and_our_rbac_denies_it_nothing(seed_002):
    for istiod in seed_002["istiod"].values():
        user = yaml.safe_load((istiod.directory / "kubeconfig").read_text())["users"][0]["name"]
        assert user == f"istiod-{istiod.revision}"
        denied = [line for line in istiod.log.read_text().splitlines() if "forbidden" in line.lower()]
        assert denied == [], f"istiod {istiod.revision} was denied by the API server"


def matching_injectors(api, namespace: str) -> list:
    """Names of the injector configurations with a webhook that matches a probe pod in `namespace`, evaluated on
    the real configurations and the real namespace labels."""
    labels = client.CoreV1Api(api).read_namespace(namespace).metadata.labels or {}
    found = []
    for configuration in client.AdmissionregistrationV1Api(api).list_mutating_webhook_configuration().items:
        configuration = api.sanitize_for_serialization(configuration)
        if any(
            matches(webhook.get("namespaceSelector") or {}, labels)
            and matches(webhook.get("objectSelector") or {}, PROBE_LABELS)
            for webhook in configuration["webhooks"]
        ):
            found.append(configuration["metadata"]["name"])
    return found


def probe_pod(namespace: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "probe", "namespace": namespace, "labels": PROBE_LABELS},
        "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
    }


def api_server_admission(api, namespace: str) -> str:
    """What the real API server says to a dry-run probe pod: 'admitted', or the error of the webhook it called."""
    try:
        client.CoreV1Api(api).create_namespaced_pod(namespace, probe_pod(namespace), dry_run="All")
        return "admitted"
    except ApiException as error:
        return json.loads(error.body)["message"]


def inject(istiod, ca_bundle: str, namespace: str) -> list:
    """POSTs a pod AdmissionReview to istiod's /inject, trusting only `ca_bundle` for the name `istiod.service`
    (what the API server does), and returns the JSON patch."""
    context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode())
    host, port = istiod.addresses["httpsAddr"].split(":")
    pool = urllib3.HTTPSConnectionPool(
        host, int(port), ssl_context=context, server_hostname=istiod.service, assert_hostname=istiod.service
    )
    review = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "object": probe_pod(namespace),
            "userInfo": {},
        },
    }
    response = pool.request("POST", "/inject", body=json.dumps(review), headers={"Content-Type": "application/json"})
    answer = json.loads(response.data)["response"]
    assert answer["allowed"] and answer["patchType"] == "JSONPatch", answer
    return json.loads(base64.b64decode(answer["patch"]))


def injected_proxy(patch: list) -> dict:
    [proxy] = [op["value"] for op in patch if op["path"].startswith("/spec/containers/")
               and op["value"].get("name") == "istio-proxy"]  # fmt: skip
    return proxy


def test_istiod_patched_its_webhooks_ca_bundles_with_its_root(seed_002):
    api = seed_002["api"]
    for rev in REVISIONS:
        installed = all_bundles(seed_002["installed_bundles"][rev])
        assert not any(installed), "the install itself should leave the caBundles to istiod"
        patched = wait_for(
            f"caBundles of {rev}'s webhooks", lambda r=rev: all(all_bundles(ca_bundles(api, r))) and ca_bundles(api, r)
        )
        root = self_signed_root(api, rev).strip()
        assert {base64.b64decode(bundle).decode().strip() for bundle in all_bundles(patched)} == {root}


@pytest.mark.parametrize("namespace", ["app-ns-1", "app-ns-2", "app-ns-3"])
def test_a_tenant_pod_is_routed_to_its_revisions_istiod_and_injected_with_its_settings(seed_002, namespace):
    api, running = seed_002["api"], seed_002["istiod"]
    [rev] = [r for r, namespaces in TENANT_NAMESPACES.items() if namespace in namespaces]
    assert matching_injectors(api, namespace) == [injector_name(rev)]
    # The API server itself picks the same webhook: it calls the revision's istiod Service (unreachable from the
    # API server here, since istiod is a local process, so the dry run fails naming where it went).
    assert f"https://istiod-{rev}.{rev}.svc:443/inject" in api_server_admission(api, namespace)

    bundle = wait_for(f"caBundle of {injector_name(rev)}", lambda: ca_bundles(api, rev)[injector_name(rev)][0])
    patch = inject(running[rev], bundle, namespace)
    proxy = injected_proxy(patch)
    env = {var["name"]: var.get("value") for var in proxy["env"]}
    address = f"istiod-{rev}.{rev}.svc:15012"
    assert env["CA_ADDR"] == address
    assert yaml.safe_load(env["PROXY_CONFIG"])["discoveryAddress"] == address
    values = json.loads(
        client.CoreV1Api(api).read_namespaced_config_map(f"istio-sidecar-injector-{rev}", rev).data["values"]
    )["global"]
    assert proxy["image"] == f"{values['hub']}/{values['proxy']['image']}:{values['tag']}"
    [annotations] = [op["value"] for op in patch if op["path"] == "/metadata/annotations"]
    assert annotations["istio.io/rev"] == rev
    # The proxy mounts its own revision's root, the ConfigMap that revision's istiod writes.
    volumes = {v["name"]: v for v in injected_volumes(patch)}
    assert volumes["istiod-ca-cert"]["configMap"]["name"] == root_config_map(rev)
    mounts = {m["name"]: m["mountPath"] for m in proxy["volumeMounts"]}
    assert mounts["istiod-ca-cert"] == "/var/run/secrets/istio"
    assert wait_for(f"{root_config_map(rev)} in {namespace}", lambda: root_in(api, namespace, rev))


def injected_volumes(patch: list) -> list:
    """The pod volumes a JSON patch of the injector adds (one op per volume, or the whole list at once)."""
    volumes = []
    for op in patch:
        if op["path"] == "/spec/volumes":
            volumes += op["value"]
        elif op["path"].startswith("/spec/volumes/"):
            volumes.append(op["value"])
    return volumes


@pytest.mark.parametrize("namespace", NO_TENANT)
def test_a_pod_of_no_tenant_matches_no_injector(seed_002, namespace):
    api = seed_002["api"]
    assert matching_injectors(api, namespace) == []
    assert api_server_admission(api, namespace) == "admitted"


LATE = "late-ns"  # labelled for usergroup-1 by hand after the install, with no policy of its own


def inbound_transports(xdsclient, istiod, namespace: str) -> set:
    """The transport protocols the filter chains of the inbound listener istiod sends a sidecar of `namespace` match
    (its blackhole chain matches none): {"tls"} under STRICT mTLS, {"tls", "raw_buffer"} under PERMISSIVE."""
    node = f"sidecar~10.244.0.3~probe.{namespace}~{namespace}.svc.cluster.local"
    command = [str(xdsclient), "xds", "--addr", istiod.addresses["grpcAddr"], "--node-id", node,
               "--namespace", namespace, "--istio-version", istio_version()]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    chains = json.loads(result.stdout)["inbound_filter_chains"] or []
    return {chain["transport_protocol"] for chain in chains if chain["transport_protocol"]}


def test_the_root_namespace_policy_makes_a_namespace_labelled_later_strict(seed_002, xdsclient, tmp_path):
    """Seed 002's mesh-wide STRICT: a namespace labelled for usergroup-1 by hand, with no PeerAuthentication of its
    own, gets STRICT from the tenant's PeerAuthentication in usergroup-1 (istiod's root namespace); without it the
    same sidecar accepts plain text, and istio_tenant puts it back."""
    api, istiod = seed_002["api"], seed_002["istiod"]["usergroup-1"]
    assert istiod.debug("mesh")["rootNamespace"] == "usergroup-1"
    labels = {"usergroup": "usergroup-1", "istio.io/rev": "usergroup-1"}
    client.CoreV1Api(api).create_namespace({"metadata": {"name": LATE, "labels": labels}})
    custom = client.CustomObjectsApi(api)
    assert custom.list_namespaced_custom_object("security.istio.io", "v1", LATE, "peerauthentications")["items"] == []
    wait_for("a late-ns sidecar gets STRICT", lambda: inbound_transports(xdsclient, istiod, LATE) == {"tls"})

    custom.delete_namespaced_custom_object("security.istio.io", "v1", "usergroup-1", "peerauthentications",
                                           "usergroup-1-peerauth")  # fmt: skip
    wait_for(
        "without the root policy the late-ns sidecar accepts plain text",
        lambda: inbound_transports(xdsclient, istiod, LATE) == {"tls", "raw_buffer"},
    )
    # A tenant namespace keeps STRICT from its own PeerAuthentication `default`.
    assert inbound_transports(xdsclient, istiod, "app-ns-1") == {"tls"}
    tenant = {"name": "usergroup-1", "revision": "usergroup-1", "namespaces": TENANT_NAMESPACES["usergroup-1"],
              "discovery_label": {"usergroup": "usergroup-1"}, "root_namespace_mtls": True}  # fmt: skip
    restored = run_task(seed_002["cluster"].kubeconfig, "meshops.istio.istio_tenant", tenant, tmp_path=tmp_path)
    assert restored["changed"] and not restored.get("failed"), restored.get("msg")
    wait_for("the restored root policy makes it STRICT again",
             lambda: inbound_transports(xdsclient, istiod, LATE) == {"tls"})  # fmt: skip


def revision_args(rev: str, selector_values: list) -> dict:
    return {
        "name": rev,
        "namespace": rev,
        "istioctl_path": str(binary_dir() / "istioctl"),
        "own_trust_bundle": True,
        "discovery_selectors": [{"matchLabels": {"usergroup": value}} for value in selector_values],
    }


def test_overlapping_selectors_applied_behind_the_guards_back_leave_each_root_where_it_was(seed_002, tmp_path):
    """Seed 000's x509 failure cannot happen with a root ConfigMap per control plane: with usergroup-2's selectors
    widened by hand to usergroup-1's namespaces (what istio_revision refuses), usergroup-2's istiod publishes its own
    ConfigMap in app-ns-1 and never writes usergroup-1's, whose data and managed fields stay as they were."""
    api, cluster = seed_002["api"], seed_002["cluster"]
    roots = {rev: self_signed_root(api, rev).strip() for rev in REVISIONS}
    refused = run_task(
        cluster.kubeconfig, "meshops.istio.istio_revision",
        revision_args("usergroup-2", ["usergroup-2", "usergroup-1"]), tmp_path=tmp_path,
    )  # fmt: skip
    assert refused.get("failed") and "overlap with revision usergroup-1" in refused["msg"]
    wait_for("usergroup-1's root in app-ns-1", lambda: root_in(api, "app-ns-1", "usergroup-1"))
    usergroup_1_wrote = what_istiod_wrote(api, "app-ns-1", root_config_map("usergroup-1"))
    usergroup_2_wrote = what_istiod_wrote(api, "app-ns-2", root_config_map("usergroup-2"))

    core = client.CoreV1Api(api)
    mesh = yaml.safe_load(core.read_namespaced_config_map("istio-usergroup-2", "usergroup-2").data["mesh"])
    mesh["discoverySelectors"].append({"matchLabels": {"usergroup": "usergroup-1"}})
    core.patch_namespaced_config_map(
        "istio-usergroup-2", "usergroup-2", {"data": {"mesh": yaml.safe_dump(mesh)}}, field_manager="by-hand"
    )
    # usergroup-2's istiod now discovers app-ns-1 and has published its root there: it has processed the namespace.
    theirs = wait_for("usergroup-2's root in app-ns-1", lambda: root_in(api, "app-ns-1", "usergroup-2"))
    assert theirs.strip() == roots["usergroup-2"]
    # ... and wrote nothing to usergroup-1's ConfigMap, nor usergroup-1's to usergroup-2's.
    assert what_istiod_wrote(api, "app-ns-1", root_config_map("usergroup-1")) == usergroup_1_wrote
    assert root_in(api, "app-ns-1", "usergroup-1").strip() == roots["usergroup-1"]
    assert what_istiod_wrote(api, "app-ns-2", root_config_map("usergroup-2")) == usergroup_2_wrote
    assert config_map_in(api, "app-ns-1", ISTIOS_ROOT_CONFIG_MAP) is None

    # The repair the README gives: re-run istio_revision with force_conflicts; usergroup-1's root was never touched.
    repaired = run_task(
        cluster.kubeconfig, "meshops.istio.istio_revision",
        {**revision_args("usergroup-2", ["usergroup-2"]), "force_conflicts": True}, tmp_path=tmp_path,
    )  # fmt: skip
    assert repaired["changed"] and not repaired.get("failed"), repaired.get("msg")
    assert what_istiod_wrote(api, "app-ns-1", root_config_map("usergroup-1")) == usergroup_1_wrote
