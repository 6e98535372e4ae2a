"""A kubelet for the pods of a real-pods cluster that can run here: `python -m localcluster.kubelet`.

kwok's fake kubelets schedule every pod, give it an IP of the pod network and mark it Ready; this process runs, as
local processes bound to that IP, the containers of the pods it knows how to run:
- istiod pods (a `discovery` container): pilot-discovery, as istiod.run_istiod_pod starts it;
- pods whose containers use an image of LOCAL_IMAGES (Istio's echo server): the app as a process, and, when the
  real injector gave the pod a proxyless `istio-proxy` container (template `grpc-agent`), pilot-agent beside it
  (workload.py).
Every other pod stays fake. Like a kubelet it starts a pod's processes once the pod runs, starts a process that
exits again (at most every RESTART_SECONDS), and stops them when the pod is deleted. It logs what it does to stdout;
each process logs to <state-dir>/<namespace>/<pod>/.

The kubelet API (exec, port-forward) is kwok's: for each pod it runs, this process writes kwok's Exec (a command
runs in the pod's working directory with its app's xDS bootstrap, as `kubectl exec` into the app container would) or
PortForward (to istiod's ports at its pod IP), named after the pod.
"""

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path

from . import workload
from .cluster import _alive, _kill, background_client
from .istiod import POD_PORTS, run_istiod_pod

KWOK_GROUP, KWOK_VERSION = "kwok.x-k8s.io", "v1alpha1"
KWOK_API = f"{KWOK_GROUP}/{KWOK_VERSION}"
SYNC_SECONDS = 0.5
RESTART_SECONDS = 2.0


def runnable(pod) -> bool:
    names = {c.name for c in pod.spec.containers}
    return "discovery" in names or workload.runs_locally(pod)


class Kubelet:
    def __init__(self, kubeconfig: Path, state_dir: Path, binaries: Path):
        from kubernetes import client

        self.kubeconfig = kubeconfig
        self.state_dir = state_dir
        self.binaries = binaries
        self.core = client.CoreV1Api(background_client(kubeconfig))
        self.running = {}  # pod uid -> {process name: pid}
        self.started_at = {}  # pod uid -> monotonic time of its last (re)start
        self.directories = {}  # pod uid -> its processes' working directory

    def sync(self):
        pods = self.core.list_pod_for_all_namespaces(field_selector="status.phase=Running").items
        wanted = {p.metadata.uid: p for p in pods if p.status.pod_ip and not p.metadata.deletion_timestamp}
        wanted = {uid: pod for uid, pod in wanted.items() if runnable(pod)}
        for uid in set(self.directories) - set(wanted):
            self.stop(uid)
            shutil.rmtree(self.directories.pop(uid), ignore_errors=True)  # a pod's files go with it
        for uid, pod in wanted.items():
            self.ensure_running(uid, pod)

    def ensure_running(self, uid: str, pod):
        processes = self.running.get(uid, {})
        if processes and all(_alive(pid) for pid in processes.values()):
            return
        if time.monotonic() - self.started_at.get(uid, -RESTART_SECONDS) < RESTART_SECONDS:
            return
        self.stop(uid)
        directory = self.state_dir / pod.metadata.namespace / pod.metadata.name
        self.directories[uid] = directory
        self.started_at[uid] = time.monotonic()
        try:
            if any(c.name == "discovery" for c in pod.spec.containers):
                started = {"pilot-discovery": run_istiod_pod(self.kubeconfig, pod, directory, self.binaries)}
            else:
                started = workload.start(self.kubeconfig, self.core, pod, directory, self.binaries)
        except workload.NotYet as reason:  # e.g. the namespace's root certificate is not published yet
            log(f"{pod.metadata.namespace}/{pod.metadata.name}: waiting: {reason}")
            return
        self.running[uid] = started
        self.publish(kubelet_api(pod, directory))
        log(f"{pod.metadata.namespace}/{pod.metadata.name} ({pod.status.pod_ip}): started {started}")

    def publish(self, document: dict):
        from kubernetes import client
        from kubernetes.client.rest import ApiException

        objects = client.CustomObjectsApi(self.core.api_client)
        plural = f"{document['kind'].lower()}s"
        namespace, name = document["metadata"]["namespace"], document["metadata"]["name"]
        try:
            objects.create_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, namespace, plural, document)
        except ApiException as error:
            if error.status != 409:
                raise
            objects.delete_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, namespace, plural, name)
            objects.create_namespaced_custom_object(KWOK_GROUP, KWOK_VERSION, namespace, plural, document)

    def stop(self, uid: str):
        for pid in self.running.pop(uid, {}).values():
            _kill(pid)

    def stop_all(self):
        for uid in list(self.running):
            self.stop(uid)


def kubelet_api(pod, directory: Path) -> dict:
    """kwok's Exec for a workload pod, or its PortForward for an istiod pod."""
    metadata = {"name": pod.metadata.name, "namespace": pod.metadata.namespace}
    if any(c.name == "discovery" for c in pod.spec.containers):
        ip = pod.status.pod_ip
        forwards = [{"ports": [port], "target": {"address": ip, "port": port}} for port in POD_PORTS.values()]
        return {"apiVersion": KWOK_API, "kind": "PortForward", "metadata": metadata, "spec": {"forwards": forwards}}
    envs = [{"name": name, "value": value} for name, value in workload.exec_env(directory).items()]
    local = {"workDir": str(directory), "envs": envs}
    return {"apiVersion": KWOK_API, "kind": "Exec", "metadata": metadata, "spec": {"execs": [{"local": local}]}}


def log(message: str):
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster.kubelet", description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--binaries", type=Path, required=True)
    args = parser.parse_args(argv)
    kubelet = Kubelet(args.kubeconfig, args.state_dir, args.binaries)

    def terminate(*_):
        kubelet.stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, terminate)
    while True:
        try:
            kubelet.sync()
        except Exception as error:  # the API server restarting, a pod deleted mid-start: the next sync retries
            log(f"sync failed: {error!r}")
        time.sleep(SYNC_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
