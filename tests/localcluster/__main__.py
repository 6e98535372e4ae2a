"""python -m localcluster up|down|status|binaries [--state-dir DIR] [--clusters N] [--nodes N] [--real-pods]

`up` starts N clusters (named c1, c2, …) that keep running after the command returns and prints one
kubeconfig path per line; `down` stops every cluster under the state directory."""

import argparse
import shutil
import sys
import time
from pathlib import Path

from .cluster import (
    REPO_ROOT,
    STATE_FILE,
    Cluster,
    binary_dir,
    running_components,
    start_cluster,
    stop_cluster,
)

DEFAULT_STATE_DIR = REPO_ROOT / ".cluster"


def _clusters(state_dir: Path) -> list:
    return [Cluster.load(path.parent) for path in sorted(state_dir.glob(f"*/{STATE_FILE}"))]


def up(args) -> int:
    running = [c for c in _clusters(args.state_dir) if running_components(c)]
    if running:
        print(f"clusters already running under {args.state_dir}; run `down` first", file=sys.stderr)
        return 1
    shutil.rmtree(args.state_dir, ignore_errors=True)
    for index in range(1, args.clusters + 1):
        started = time.monotonic()
        name = f"c{index}"
        cluster = start_cluster(name, args.state_dir / name, nodes=args.nodes, detach=True, real_pods=args.real_pods)
        print(f"cluster {name} ready in {time.monotonic() - started:.1f} s at {cluster.server}", file=sys.stderr)
        print(cluster.kubeconfig)
    return 0


def down(args) -> int:
    for cluster in _clusters(args.state_dir):
        stop_cluster(cluster)
        print(f"cluster {cluster.name} stopped", file=sys.stderr)
    return 0


def status(args) -> int:
    """Exit 0 only when there are clusters and every component of each is running."""
    clusters = _clusters(args.state_dir)
    healthy = bool(clusters)
    for cluster in clusters:
        running = running_components(cluster)
        healthy &= set(running) == set(cluster.components)
        print(f"{cluster.name} {cluster.server} {cluster.kubeconfig} running: {' '.join(running) or 'nothing'}")
    return 0 if healthy else 1


def binaries(_args) -> int:
    print(binary_dir())
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="localcluster", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("up", "down", "status", "binaries"))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--clusters", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument(
        "--real-pods", action="store_true", help="webhooks at pod IPs and a kubelet for istiod and echo pods"
    )
    args = parser.parse_args(argv)
    args.state_dir = args.state_dir.resolve()
    return {"up": up, "down": down, "status": status, "binaries": binaries}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
