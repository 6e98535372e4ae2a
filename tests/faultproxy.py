"""A TLS proxy in front of a real kube-apiserver that answers chosen requests with faults: a status (429 with or
without Retry-After, 500, 503), a reset connection, or a stall; every other request goes through unchanged. It
serves the API server's own certificate, so the cluster's kubeconfig works with only its server changed.

It also passes the writes that store something (not dry runs, not SelfSubjectReviews or other reviews) one at a
time, counts them, and can act right after a chosen one (`after_writes`): a test kills the API server there, once
the write is committed, and the client never gets its answer. While the API server is down, every request gets a
reset connection, as a client of a dead server would."""

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
STORES_NOTHING = re.compile(r"dryRun|reviews(\?|$)")  # a path pattern: dry runs, SelfSubjectReviews and the like


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
    # (n, action): once the n-th write that stores something has been answered by the API server, call action()
    # (which kills it) and drop that answer: the client sees its connection reset after a committed write.
    after_writes: tuple[int, Callable[[], None]] | None = None
    writes: int = 0  # writes that store something, answered by the API server
    # They go through one at a time, so that no other write reaches the server between the n-th and action().
    write_lock: threading.Lock = field(default_factory=threading.Lock)

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
            if fault is None and self.command in WRITE_METHODS and not STORES_NOTHING.search(self.path):
                with proxy.write_lock:
                    self._forward_write(body)
            elif fault is None:
                self._forward(body)
            elif fault.kind == "reset":
                proxy.log.append((self.command, self.path, "reset"))
                self._reset()
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

        def _reset(self):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()

        def _forward(self, body: bytes):
            answer = self._ask_upstream(body)
            if answer is not None:
                self._send_upstream_answer(*answer)

        def _forward_write(self, body: bytes):
            answer = self._ask_upstream(body)
            if answer is None:
                return
            proxy.writes += 1
            if proxy.after_writes is not None and proxy.writes == proxy.after_writes[0]:
                proxy.after_writes[1]()
                proxy.log.append((self.command, self.path, f"reset after its answer {answer[0]}"))
                self._reset()
                return
            self._send_upstream_answer(*answer)

        def _ask_upstream(self, body: bytes) -> tuple | None:
            """The API server's (status, headers, payload); None, the connection reset, when it cannot answer."""
            connection = http.client.HTTPSConnection(host, port, context=upstream, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
            try:
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                answer = response.status, response.getheaders(), response.read()
            except (OSError, http.client.HTTPException):  # refused or dropped: the API server is down
                proxy.log.append((self.command, self.path, "reset: API server down"))
                self._reset()
                return None
            finally:
                connection.close()
            return answer

        def _send_upstream_answer(self, status: int, headers: list, payload: bytes):
            proxy.log.append((self.command, self.path, status))
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in HOP_BY_HOP | {"content-length"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler
