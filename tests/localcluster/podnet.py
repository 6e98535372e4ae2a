"""The pod network of a real-pods cluster: an unprivileged user + network namespace whose loopback owns kwok's pod
CIDR and the service CIDR, so a local process can listen on any pod's IP and the API server (with aggregator
routing) reaches webhooks, and tests reach workloads, at the addresses Kubernetes publishes for them.

Kubernetes refuses loopback addresses in EndpointSlices, so 127.0.0.1 cannot stand in for a pod. hack/pod-network.sh
runs a command inside such a namespace; the host's network is untouched and nothing inside can reach the outside
(build binaries and virtualenvs before entering)."""

import errno
import socket

POD_CIDR = "10.244.0.0/16"
SERVICE_CIDR = "10.96.0.0/16"
# An address of the pod CIDR that kwok does not hand out first: the API server advertises it (the namespace has no
# default route to take an address from) and kwok's fake nodes carry it as their InternalIP.
# hack/pod-network.sh creates these routes, and gives the controller 10.244.255.252 on interface ctl0.
ADVERTISE_ADDRESS = "10.244.255.254"
NODE_ADDRESS = "10.244.255.253"
WRAPPER = "hack/pod-network.sh"


def inside() -> bool:
    """True when this process can listen on a pod address: it runs inside the pod network."""
    with socket.socket() as probe:
        try:
            probe.bind((ADVERTISE_ADDRESS, 0))
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                return False
            raise
    return True
