#!/usr/bin/env bash
# Runs a command inside the pod network of real-pods clusters (tests/localcluster/podnet.py, which names the same
# addresses): a new unprivileged user and network namespace whose loopback owns kwok's pod CIDR and the service CIDR,
# and a veth interface with the controller's own address (istioctl names itself by a non-loopback address when it
# asks istiod for debug xDS). Usage: hack/pod-network.sh CMD...
# Nothing inside can reach the outside: build the venv and the Go binaries first.
set -euo pipefail
if [ "${MESHOPS_POD_NETWORK:-}" = 1 ]; then exec "$@"; fi  # already inside
for tool in unshare ip; do
  command -v "$tool" >/dev/null || { echo "pod network: '$tool' is missing (util-linux, iproute2)" >&2; exit 2; }
done
if ! unshare --user --map-root-user --net true 2>/dev/null; then
  echo "pod network: this machine refuses unprivileged user + network namespaces (unshare --user --net);" \
    "the real-pods tier cannot run here" >&2
  exit 2
fi
export MESHOPS_POD_NETWORK=1
exec unshare --user --map-root-user --net bash -euc '
  ip link set lo up
  ip route add local 10.244.0.0/16 dev lo
  ip route add local 10.96.0.0/16 dev lo
  ip link add ctl0 type veth peer name ctl1
  ip addr add 10.244.255.252/32 dev ctl0
  ip link set ctl0 up
  ip link set ctl1 up
  exec "$@"' pod-network "$@"
