"""Start and stop real, independent Kubernetes control planes on loopback.

Each cluster is etcd, kube-apiserver (RBAC, service-account tokens, admission), kube-controller-manager,
kube-scheduler and kwok (fake nodes and kubelets, so Deployments become Ready). The binaries come from
hack/build-binaries.sh. A cluster's state (PKI, etcd data, logs, kubeconfig, pids, each component's command line)
lives in one directory, so a cluster started by one process (the CLI) can be stopped by another, and one component
can be killed and started again as it was (kill_component, start_component).

A real-pods cluster (real_pods=True, inside the pod network of podnet.py) also lets the API server call webhooks at
pod IPs, and runs kubelet.py, which runs istiod pods and echo workloads as local processes.
"""

import contextlib
import ctypes
import json
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import podnet
from ._pki import cluster_pki_paths, write_cluster_pki

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "hack" / "build-binaries.sh"
STATE_FILE = "cluster.json"
KWOK_STAGES = sorted(Path(__file__).with_name("kwok").glob("*.yaml"))
# Process start order; they are stopped in reverse. Only real-pods clusters run the kubelet.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubelet")
STOP_TIMEOUT = 10.0


class ClusterError(RuntimeError):
    pass


@dataclass
class Cluster:
    name: str
    directory: Path
    api_port: int
    pids: dict = field(default_factory=dict)
    args: dict = field(default_factory=dict)  # component -> its command line, to start it again as it was
    real_pods: bool = False

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.directory / "logs" / "audit.log"

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    def log(self, component: str) -> Path:
        return self.directory / "logs" / f"{component}.log"

    def save(self):
        state = {
            "name": self.name,
            "api_port": self.api_port,
            "pids": self.pids,
            "args": self.args,
            "real_pods": self.real_pods,
        }
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, directory: Path) -> "Cluster":
        state = json.loads((directory / STATE_FILE).read_text())
        return cls(
            state["name"],
            directory,
            state["api_port"],
            state["pids"],
            state.get("args", {}),
            state.get("real_pods", False),
        )

    @property
    def components(self) -> tuple:
        return COMPONENTS if self.real_pods else COMPONENTS[:-1]


def binary_dir() -> Path:
    """The cached binaries, built first when missing (that takes minutes once, then nothing)."""
    override = os.environ.get("MESHOPS_BIN_DIR")
    if override:
        return Path(override)
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])


# Components' ports come from below the kernel's ephemeral range (32768-60999 by default): a port from bind(0)
# is free only until the socket closes, and another bind(0) or an outgoing connection's local port may take it
# before the component binds it (kube-controller-manager once got the port just chosen for its kube-apiserver).
# Each port is handed out once per process, and picked at random so that parallel test processes rarely meet.
_PORT_RANGE = range(20000, 30000)
_handed_out: set = set()


def free_port() -> int:
    while True:
        port = random.choice(_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port


def _die_with_parent():
    # Linux prctl(PR_SET_PDEATHSIG, SIGKILL): a component started for a test session cannot outlive it,
    # even when pytest itself is killed.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def _spawn(cluster: Cluster, component: str, args: list, detach: bool) -> int:
    cluster.args[component] = [str(arg) for arg in args]
    log = cluster.log(component).open("ab")
    process = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=cluster.directory,
        start_new_session=True,
        preexec_fn=None if detach else _die_with_parent,
    )
    log.close()
    cluster.pids[component] = process.pid
    cluster.save()
    return process.pid


def _alive(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our child
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    # A zombie whose new parent has not reaped it yet counts as gone.
    return stat.rpartition(")")[2].split()[0] != "Z"


def _wait_until(what: str, check, timeout: float, cluster: Cluster, component: str):
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        pid = cluster.pids.get(component)
        if pid and not _alive(pid):
            raise ClusterError(f"{component} of cluster {cluster.name} exited; see {cluster.log(component)}")
        try:
            if check():
                return
        except Exception as error:  # the component is still starting: keep polling until the deadline
            last_error = error
        time.sleep(0.2)
    raise ClusterError(
        f"{what} not reached within {timeout:.0f} s for cluster {cluster.name} ({last_error}); "
        f"see {cluster.log(component)}"
    )


def _admin_ssl_context(pki: dict) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.load_cert_chain(str(pki["admin"]), str(pki["admin-key"]))
    return context


def _get(url: str, context=None) -> bytes:
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return response.read()


def _write_kubeconfig(cluster: Cluster, pki: dict):
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": cluster.name, "cluster": {"server": cluster.server, "certificate-authority": str(pki["ca"])}}
        ],
        "users": [
            {
                "name": f"{cluster.name}-admin",
                "user": {"client-certificate": str(pki["admin"]), "client-key": str(pki["admin-key"])},
            }
        ],
        "contexts": [{"name": cluster.name, "context": {"cluster": cluster.name, "user": f"{cluster.name}-admin"}}],
        "current-context": cluster.name,
    }
    cluster.kubeconfig.write_text(yaml.safe_dump(config))
    cluster.kubeconfig.chmod(0o600)


def _control_loop_flags(kubeconfig: str) -> list:
    """What kube-controller-manager and kube-scheduler share: admin credentials, their own loopback port."""
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={free_port()}",
        "--leader-elect=false",
    ]


# Who sent what, for api_request_counts and audit_events: one line per request as it arrives (stage
# RequestReceived, before the server acts on it), and for writes a second line once the server has written its
# answer (stage ResponseComplete). Blocking: each line is on disk before the client has its answer, so the log's
# order is the order a client could see. Requests of the cluster's own machinery (its ServiceAccounts, nodes,
# leases, events, health and discovery URLs) are not logged.
_WRITES = ["create", "update", "patch", "delete", "deletecollection"]
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["ResponseStarted", "Panic"],
    "rules": [
        {"level": "None", "userGroups": ["system:serviceaccounts", "system:nodes"]},
        {"level": "None", "users": ["system:apiserver"]},
        {"level": "None", "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}]},
        {"level": "None", "resources": [{"group": "", "resources": ["events"]}]},
        {"level": "None", "nonResourceURLs": ["*"]},
        {"level": "Metadata", "verbs": _WRITES},
        {"level": "Metadata", "omitStages": ["ResponseComplete"]},
    ],
}


def _write_audit_policy(cluster: Cluster) -> Path:
    path = cluster.directory / "audit-policy.yaml"
    path.write_text(yaml.safe_dump(AUDIT_POLICY))
    return path


def _component_args(bins: Path, cluster: Cluster, pki: dict, etcd_url: str, peer_url: str) -> dict:
    kubeconfig = str(cluster.kubeconfig)
    return {
        "etcd": [
            bins / "etcd",
            "--name",
            cluster.name,
            "--data-dir",
            cluster.directory / "etcd",
            "--listen-client-urls",
            etcd_url,
            "--advertise-client-urls",
            etcd_url,
            "--listen-peer-urls",
            peer_url,
            "--initial-advertise-peer-urls",
            peer_url,
            "--initial-cluster",
            f"{cluster.name}={peer_url}",
            "--unsafe-no-fsync",  # throwaway data: durability is not worth the disk latency in tests
        ],
        "kube-apiserver": [
            bins / "kube-apiserver",
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            f"--secure-port={cluster.api_port}",
            f"--tls-cert-file={pki['apiserver']}",
            f"--tls-private-key-file={pki['apiserver-key']}",
            f"--client-ca-file={pki['ca']}",
            "--authorization-mode=RBAC",
            "--enable-admission-plugins=NamespaceLifecycle,ServiceAccount,LimitRanger,ResourceQuota,"
            "DefaultStorageClass,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki['service-account-key']}",
            f"--service-account-signing-key-file={pki['service-account-key']}",
            f"--service-cluster-ip-range={podnet.SERVICE_CIDR}",
            "--service-node-port-range=30000-32767",
            # Endpoints may not hold a loopback address, so the apiserver cannot publish itself; nothing needs it.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            f"--audit-policy-file={_write_audit_policy(cluster)}",
            f"--audit-log-path={cluster.audit_log}",
            "--audit-log-mode=blocking",
        ],
        "kube-controller-manager": [
            bins / "kube-controller-manager",
            *_control_loop_flags(kubeconfig),
            "--use-service-account-credentials=true",
            f"--service-account-private-key-file={pki['service-account-key']}",
            f"--root-ca-file={pki['ca']}",
            f"--cluster-signing-cert-file={pki['ca']}",
            f"--cluster-signing-key-file={pki['ca-key']}",
            f"--service-cluster-ip-range={podnet.SERVICE_CIDR}",
        ],
        "kube-scheduler": [
            bins / "kube-scheduler",
            *_control_loop_flags(kubeconfig),
        ],
        "kwok": [
            bins / "kwok",
            *(f"--config={stage}" for stage in KWOK_STAGES),
            f"--kubeconfig={kubeconfig}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--cidr={podnet.POD_CIDR}",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{free_port()}",
        ],
        "kubelet": [
            "env",
            f"PYTHONPATH={REPO_ROOT / 'tests'}",
            sys.executable,
            "-m",
            "localcluster.kubelet",
            f"--kubeconfig={kubeconfig}",
            f"--state-dir={cluster.directory / 'pods'}",
            f"--binaries={bins}",
        ],
    }


KUBELET_PORT = 10250


def _real_pods_args(args: dict, bins: Path, cluster: Cluster):
    """The API server calls webhooks at their Service's endpoint (the pod IP) instead of the ClusterIP nothing serves,
    advertises an address of the pod network (which has no default route to take one from), and reaches the nodes'
    kubelet API (exec, port-forward) at their InternalIP, where kwok serves it and runs `kubectl exec` commands as
    local processes (kubelet.py says where and with which environment; `client` is Istio's echo client, as in its
    echo image)."""
    args["kube-apiserver"] += [
        "--enable-aggregator-routing=true",
        f"--advertise-address={podnet.ADVERTISE_ADDRESS}",
        "--kubelet-preferred-address-types=InternalIP",
    ]
    commands = cluster.directory / "bin"
    commands.mkdir(exist_ok=True)
    (commands / "client").symlink_to(bins / "echo-client")
    kwok = [a for a in args["kwok"] if not str(a).startswith(("--node-ip=", "--server-address="))]
    args["kwok"] = [
        "env",
        f"PATH={commands}:{os.environ.get('PATH', '')}",
        *kwok,
        f"--node-ip={podnet.NODE_ADDRESS}",
        f"--node-port={KUBELET_PORT}",
        f"--server-address={podnet.NODE_ADDRESS}:{KUBELET_PORT}",
        "--enable-crds=Exec,PortForward",
    ]


def _create_kwok_crds(cluster: Cluster, bins: Path):
    from kubernetes import client

    extensions = client.ApiextensionsV1Api(_core_api(cluster).api_client)
    for path in sorted((bins / "kwok-crds").glob("*.yaml")):
        extensions.create_custom_resource_definition(yaml.safe_load(path.read_text()))


def _fake_node(name: str) -> dict:
    resources = {"cpu": "64", "memory": "256Gi", "pods": "250"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    }


def _core_api(cluster: Cluster):
    from kubernetes import client, config

    return client.CoreV1Api(config.new_client_from_config(str(cluster.kubeconfig)))


def _node_ready(core, name: str) -> bool:
    conditions = core.read_node_status(name).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def start_cluster(name: str, directory: Path, nodes: int = 1, detach: bool = False, real_pods: bool = False) -> Cluster:
    """Starts a cluster in `directory` and returns once nodes are Ready and controllers run.

    detach=True leaves the processes running after this Python process exits (the CLI's `up`);
    otherwise they are killed when it dies. real_pods=True needs the pod network (hack/pod-network.sh).
    On failure everything started is stopped again."""
    if real_pods and not podnet.inside():
        raise ClusterError(
            f"a real-pods cluster must run inside the pod network: run the command through {podnet.WRAPPER}"
        )
    bins = binary_dir()
    directory = directory.resolve()
    (directory / "logs").mkdir(parents=True, exist_ok=True)
    pki = write_cluster_pki(directory / "pki", name)
    cluster = Cluster(name, directory, free_port(), real_pods=real_pods)
    _write_kubeconfig(cluster, pki)
    etcd_url = f"http://127.0.0.1:{free_port()}"
    args = _component_args(bins, cluster, pki, etcd_url, f"http://127.0.0.1:{free_port()}")
    if real_pods:
        _real_pods_args(args, bins, cluster)
    admin = _admin_ssl_context(pki)
    try:
        _spawn(cluster, "etcd", args["etcd"], detach)
        _wait_until("etcd health", lambda: b"true" in _get(f"{etcd_url}/health"), 30, cluster, "etcd")
        _spawn(cluster, "kube-apiserver", args["kube-apiserver"], detach)
        _wait_for_apiserver(cluster, admin)
        if real_pods:
            _create_kwok_crds(cluster, bins)
        for component in cluster.components[2:]:
            _spawn(cluster, component, args[component], detach)
        core = _core_api(cluster)
        node_names = [f"kwok-node-{i}" for i in range(nodes)]
        for node in node_names:
            core.create_node(_fake_node(node))
        _wait_for_nodes(cluster, core, node_names, args["kwok"], detach)
        # The default ServiceAccount appears once kube-controller-manager's controllers run.
        _wait_until(
            "default ServiceAccount",
            lambda: core.read_namespaced_service_account("default", "default"),
            60,
            cluster,
            "kube-controller-manager",
        )
        _wait_until("startup writes settle", lambda: _quiet(cluster), 60, cluster, "kube-controller-manager")
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def _wait_for_apiserver(cluster: Cluster, admin: ssl.SSLContext):
    _wait_until(
        "kube-apiserver /readyz",
        lambda: _get(f"{cluster.server}/readyz", admin) == b"ok",
        60,
        cluster,
        "kube-apiserver",
    )


def kill_component(cluster: Cluster, component: str):
    """SIGKILL one running component, as a crash would (no chance to finish requests or shut down), and return
    once it is gone. start_component starts it again."""
    pid = cluster.pids.pop(component, None)
    cluster.save()
    if pid is None or not _alive(pid):
        raise ClusterError(f"{component} of cluster {cluster.name} is not running")
    _kill(pid)


def start_component(cluster: Cluster, component: str, detach: bool = False):
    """Start a component killed by kill_component again, with the same command line (the same ports, certificates
    and etcd data); for kube-apiserver, return once it answers /readyz."""
    if component in running_components(cluster):
        raise ClusterError(f"{component} of cluster {cluster.name} is already running")
    _spawn(cluster, component, cluster.args[component], detach)
    if component == "kube-apiserver":
        _wait_for_apiserver(cluster, _admin_ssl_context(cluster_pki_paths(cluster.directory / "pki")))


def wait_for_namespace_defaults(api_client, namespace: str, timeout: float = 60.0):
    """kube-controller-manager gives every new namespace a `default` ServiceAccount and the `kube-root-ca.crt`
    ConfigMap; wait for both, so those writes are not counted as a test's."""
    from kubernetes import client

    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout
    while True:
        accounts = {a.metadata.name for a in core.list_namespaced_service_account(namespace).items}
        maps = {m.metadata.name for m in core.list_namespaced_config_map(namespace).items}
        if "default" in accounts and "kube-root-ca.crt" in maps:
            return
        if time.monotonic() >= deadline:
            raise ClusterError(f"namespace {namespace} never got its default ServiceAccount and root CA ConfigMap")
        time.sleep(0.2)


def _quiet(cluster: Cluster, window: float = 1.5) -> bool:
    """No write for `window` seconds: controllers have finished their start-up work (e.g. aggregated roles),
    so a test that counts writes sees only its own."""
    before = server_request_counts(cluster.kubeconfig)
    time.sleep(window)
    return not writes(before, server_request_counts(cluster.kubeconfig))


def _wait_for_nodes(cluster: Cluster, core, node_names: list, kwok_args: list, detach: bool, attempts: int = 3):
    for attempt in range(1, attempts + 1):
        try:
            _wait_until("fake nodes Ready", lambda: all(_node_ready(core, n) for n in node_names), 60, cluster, "kwok")
            return
        except ClusterError:
            if _alive(cluster.pids["kwok"]) or attempt == attempts:
                raise
            # kwok 0.8.0 can die at start-up with "concurrent map writes" in its CEL setup (an upstream race):
            # start it again; the nodes it manages are already there.
            _spawn(cluster, "kwok", kwok_args, detach)


def _stop_process(pid: int, timeout: float):
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.1)
    # kube-scheduler has been seen to ignore SIGTERM.
    _kill(pid)


def _kill(pid: int):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    while _alive(pid):
        time.sleep(0.05)


def stop_cluster(cluster: Cluster, timeout: float = STOP_TIMEOUT):
    for component in reversed(COMPONENTS):
        pid = cluster.pids.pop(component, None)
        if pid:
            _stop_process(pid, timeout)
    cluster.save()


def running_components(cluster: Cluster) -> list:
    return [c for c, pid in cluster.pids.items() if _alive(pid)]


KUBELET_AGENT = "localcluster-kubelet/"


def background_client(kubeconfig: Path):
    """An ApiClient for a client that runs beside the tests (the real-pods kubelet): its requests are not a run's."""
    from kubernetes import config

    api = config.new_client_from_config(str(kubeconfig))
    api.user_agent = f"{KUBELET_AGENT}1"
    return api


# Clients that run beside the tests: the cluster's control loops and fake kubelets, real istiods, the real-pods
# kubelet (localcluster/kubelet.py). Their requests are not a run's.
BACKGROUND_USER_AGENTS = ("kube-controller-manager/", "kube-scheduler/", "kwok/", "pilot-discovery/", KUBELET_AGENT)
# Audit verbs as apiserver_request_total names them; a patch with a fieldManager is a server-side apply.
_AUDIT_VERBS = {"get": "GET", "list": "LIST", "watch": "WATCH", "create": "POST", "update": "PUT", "patch": "PATCH",
                "delete": "DELETE", "deletecollection": "DELETECOLLECTION"}  # fmt: skip
_audit_seen = {}  # audit log path -> (bytes read, {dry_run: counts})


def api_request_counts(kubeconfig: Path, dry_run: bool = False) -> dict:
    """{(verb, resource, subresource): count} of the requests the API server received from anything but the
    cluster's own components and other background clients (BACKGROUND_USER_AGENTS): the server's word on what a run
    sent (its modules, kubernetes.core tasks, istioctl), read from its audit log. With dry_run=True only server-side
    dry runs (which store nothing), else only real requests."""
    path = _audit_log(kubeconfig)
    if not path.exists():  # a cluster this harness did not start (MESHOPS_TEST_KUBECONFIG): every client's requests
        return server_request_counts(kubeconfig, dry_run)
    offset, counts = _audit_seen.get(path, (0, {False: {}, True: {}}))
    with path.open("rb") as log:
        log.seek(offset)
        new = log.read()
    complete = new[: new.rfind(b"\n") + 1]
    for line in complete.splitlines():
        event = json.loads(line)
        if not _from_a_run(event) or event["stage"] != "RequestReceived":
            continue
        key = request_key(event)
        side = counts["dryRun=All" in event["requestURI"]]
        side[key] = side.get(key, 0) + 1
    _audit_seen[path] = (offset + len(complete), counts)
    return dict(counts[dry_run])


def audit_log_size(kubeconfig: Path) -> int:
    """Where the local cluster's audit log ends now: audit_events(kubeconfig, since=this) after a run is the run's."""
    return _audit_log(kubeconfig).stat().st_size


def audit_events(kubeconfig: Path, since: int = 0) -> list:
    """The audit events of what a run sent (see api_request_counts), from byte `since` of the local cluster's audit
    log, in the order the API server logged them: each request's RequestReceived and, for writes, its
    ResponseComplete, logged before the client has the answer."""
    with _audit_log(kubeconfig).open("rb") as log:
        log.seek(since)
        new = log.read()
    events = (json.loads(line) for line in new[: new.rfind(b"\n") + 1].splitlines())
    return [event for event in events if _from_a_run(event)]


def _audit_log(kubeconfig: Path) -> Path:
    return Path(kubeconfig).parent / "logs" / "audit.log"


def _from_a_run(event: dict) -> bool:
    return not event.get("userAgent", "").startswith(BACKGROUND_USER_AGENTS) and "objectRef" in event


def request_key(event: dict) -> tuple:
    """An audit event's (verb, resource, subresource), verbs as apiserver_request_total names them."""
    verb = _AUDIT_VERBS.get(event["verb"], event["verb"].upper())
    if verb == "PATCH" and "fieldManager=" in event["requestURI"]:
        verb = "APPLY"
    ref = event["objectRef"]
    return verb, ref.get("resource", ""), ref.get("subresource", "")


def server_request_counts(kubeconfig: Path, dry_run: bool = False) -> dict:
    """apiserver_request_total summed by (verb, resource, subresource), read from the API server's own /metrics:
    every client's requests, the cluster's own components' included."""
    from kubernetes import config

    api = config.new_client_from_config(str(kubeconfig))
    method, url, headers = api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])[:3]
    response = api.call_api(method, url, header_params=headers)
    response.read()
    return parse_request_counts(response.data.decode(), dry_run)


def parse_request_counts(metrics_text: str, dry_run: bool = False) -> dict:
    """Real requests by default; with dry_run=True only server-side dry runs (which store nothing)."""
    prefix = "apiserver_request_total{"
    counts = {}
    for line in metrics_text.splitlines():
        if not line.startswith(prefix):
            continue
        labels_text, value = line[len(prefix) :].rsplit("} ", 1)
        labels = dict(re.findall(r'(\w+)="([^"]*)"', labels_text))
        if bool(labels.get("dry_run")) != dry_run:
            continue
        key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
        counts[key] = counts.get(key, 0) + float(value)
    return counts


WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION"})
# What the cluster's own components keep sending while idle: kwok's node heartbeats and leases, status
# updates, kube-controller-manager's TokenRequests for its controllers (a token is issued, nothing stored), and
# its ReplicaSet controller retrying pods an injector webhook refuses, and its Deployment controller still
# scaling down a restarted workload's old ReplicaSet (the collection writes neither pods nor ReplicaSets); the
# endpoints and EndpointSlice controllers following a gateway's pods, and the HPA controller setting its Deployment's
# scale. The collection never writes Endpoints or a scale, and writes EndpointSlices only by apply or delete.
BACKGROUND_RESOURCES = frozenset({"leases", "events", "nodes", "pods", "replicasets", "endpoints"})
BACKGROUND_SUBRESOURCES = frozenset({"status", "token", "scale"})
BACKGROUND_REQUESTS = frozenset({("POST", "endpointslices", ""), ("PUT", "endpointslices", "")})
# Requests that are POSTs but store nothing: istio_tenant's SelfSubjectReview (who runs it, for its guard).
REVIEW_RESOURCES = frozenset({"selfsubjectreviews"})


def writes(before: dict, after: dict) -> dict:
    """{(verb, resource, subresource): count} of write requests between two api_request_counts() snapshots,
    the background above excluded; empty when nothing was written."""
    return {
        key: int(count - before.get(key, 0))
        for key, count in after.items()
        if count > before.get(key, 0)
        and key[0] in WRITE_VERBS
        and key[1] not in BACKGROUND_RESOURCES | REVIEW_RESOURCES
        and key[2] not in BACKGROUND_SUBRESOURCES
        and key not in BACKGROUND_REQUESTS
    }


def write_count(before: dict, after: dict) -> int:
    return sum(writes(before, after).values())
