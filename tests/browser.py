"""A page opened in headless Chromium (Debian's `chromium` package) through the DevTools protocol, the way a person's
browser would open it: what the console said, what the DOM holds, and a screenshot.

Talks to Chromium with websocket-client (a dependency of the kubernetes client); nothing else is needed."""

import base64
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import websocket

DEADLINE = 60  # seconds; a wait for Chromium, never an assertion about speed
ERROR_LEVELS = ("error",)


def chromium_binary():
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """`with Page(path) as page:` loads the file and records every console message and uncaught exception."""

    def __init__(self, path: Path, width: int = 1280, height: int = 900):
        self.path, self.width, self.height = Path(path).absolute(), width, height
        self.events, self._next_id = [], 0

    def __enter__(self):
        # Chromium's helper processes may still write the profile as they exit.
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True)
        self._process = subprocess.Popen(
            [chromium_binary(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self._profile.name}", f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            self._socket = websocket.create_connection(self._page_socket_url(), timeout=DEADLINE, suppress_origin=True)
            for domain in ("Runtime", "Log", "Page"):
                self.send(f"{domain}.enable")
            self.send("Page.navigate", url=self.path.as_uri())
            self.wait_for_event("Page.loadEventFired")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if getattr(self, "_socket", None):
            self._socket.close()
        self._signal_group(signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._process.wait()
        self._signal_group(signal.SIGKILL)  # helpers that outlived the browser process
        self._profile.cleanup()

    def _signal_group(self, number: int) -> None:
        """Chromium and the helper processes it started (their own session, so nothing else is signalled)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, number)

    def _page_socket_url(self) -> str:
        """The page target's DevTools address, once Chromium has written its port into the profile."""
        port_file = Path(self._profile.name) / "DevToolsActivePort"
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode} before DevTools was up")
            if port_file.is_file() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=DEADLINE) as response:
                    pages = [t for t in json.load(response) if t["type"] == "page"]
                if pages:
                    return pages[0]["webSocketDebuggerUrl"]
            time.sleep(0.1)
        raise RuntimeError(f"chromium wrote no DevTools port within {DEADLINE} s")

    def send(self, method: str, **params) -> dict:
        self._next_id += 1
        self._socket.send(json.dumps({"id": self._next_id, "method": method, "params": params}))
        while True:
            message = self._receive()
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result") or {}

    def _receive(self) -> dict:
        message = json.loads(self._socket.recv())
        if "method" in message:
            self.events.append(message)
        return message

    def wait_for_event(self, method: str) -> dict:
        for event in self.events:
            if event["method"] == method:
                return event
        while True:
            message = self._receive()
            if message.get("method") == method:
                return message

    def console_errors(self) -> list:
        """Every error the page caused: uncaught exceptions, console.error, and browser log errors (a resource that
        failed to load, a Content-Security-Policy violation)."""
        errors = []
        for event in self.events:
            params = event.get("params") or {}
            if event["method"] == "Runtime.exceptionThrown":
                errors.append(params["exceptionDetails"].get("text"))
            elif event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ERROR_LEVELS:
                errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args") or []))
            elif event["method"] == "Log.entryAdded" and params["entry"].get("level") in ERROR_LEVELS:
                errors.append(params["entry"].get("text"))
        return errors

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """The whole page (or what the window shows) as PNG."""
        height = int(self.evaluate("document.documentElement.scrollHeight")) if full_page else self.height
        self.send(
            "Emulation.setDeviceMetricsOverride", width=self.width, height=height, deviceScaleFactor=1, mobile=False
        )
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path
