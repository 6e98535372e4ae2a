"""A TLS proxy in front of a real kube-apiserver that answers chosen requests with faults: a status (429 with or
without Retry-After, 500, 503), a reset connection, or a stall; every other request goes through unchanged. It
serves the API server's own certificate, so the cluster's kubeconfig works with only its server changed."""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socket
import socketserver
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


@dataclass
class Fault:
    """Answer the next `times` requests whose method is `method` and path matches `path` with `kind`: a status
    code (429, 500, 503), "reset" or "stall" (no answer for `stall_seconds`, then a closed connection)."""

    method: str
    path: str
    kind: int | str
    times: int = 1
    retry_after: str | None = None
    stall_seconds: float = 10.0
    served: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.served < self.times and method == self.method and re.search(self.path, path) is not None


@dataclass
class FaultProxy:
    kubeconfig: Path  # the real cluster's
    faults: list = field(default_factory=list)
    log: list = field(default_factory=list)  # (method, path, what was answered)
    # After this many real (not dry-run) writes went through, the API server is gone for good: every later request
    # gets a reset connection, as if it had been killed.
    cut_after_writes: int | None = None
    writes: int = 0

    def start(self, directory: Path) -> Path:
        """Listen on a free local port; return a kubeconfig pointing at the proxy."""
        config = yaml.safe_load(self.kubeconfig.read_text())
        cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
        pki = Path(cluster["certificate-authority"]).parent
        upstream = ssl.create_default_context(cafile=cluster["certificate-authority"])
        upstream.load_cert_chain(user["client-certificate"], user["client-key"])
        served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        served.load_cert_chain(pki / "apiserver.pem", pki / "apiserver-key.pem")
        host, port = re.match(r"https://([^:/]+):(\d+)", cluster["server"]).groups()
        handler = _handler(self, host, int(port), upstream)
        self.server = _Server(("127.0.0.1", 0), handler, served)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        cluster["server"] = f"https://127.0.0.1:{self.server.server_address[1]}"
        path = directory / "through-proxy.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def fault_for(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.served += 1
                return fault
        return None

    def answered(self, method: str, path_pattern: str) -> list:
        """What the proxy answered, in order, to the requests matching method and path pattern."""
        return [what for m, p, what in self.log if m == method and re.search(path_pattern, p)]


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, context):
        super().__init__(address, handler)
        self.socket = context.wrap_socket(self.socket, server_side=True)


def _handler(proxy: FaultProxy, host: str, port: int, upstream: ssl.SSLContext):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def _relay(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fault = proxy.fault_for(self.command, self.path)
            if proxy.cut_after_writes is not None and proxy.writes >= proxy.cut_after_writes:
                fault = Fault(self.command, "", "reset")
            if fault is None:
                status = self._forward(body)
                proxy.log.append((self.command, self.path, status))
                if self.command in ("POST", "PUT", "PATCH", "DELETE") and "dryRun" not in self.path:
                    proxy.writes += 1
            elif fault.kind == "reset":
                proxy.log.append((self.command, self.path, "reset"))
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
                self.connection.close()
            elif fault.kind == "stall":
                proxy.log.append((self.command, self.path, "stall"))
                time.sleep(fault.stall_seconds)
                self.close_connection = True
            else:
                proxy.log.append((self.command, self.path, fault.kind))
                self._answer_status(fault.kind, fault.retry_after)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _relay

        def _answer_status(self, status: int, retry_after: str | None):
            payload = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": status,
                                  "message": f"injected {status}"}).encode()  # fmt: skip
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.end_headers()
            self.wfile.write(payload)

        def _forward(self, body: bytes) -> int:
            connection = http.client.HTTPSConnection(host, port, context=upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            connection.request(self.command, self.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            connection.close()
            return response.status

    return Handler
