# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every request to an API server has a timeout and is retried, with exponential backoff and jitter, when the
server throttles (429, honouring Retry-After), fails (500, 502, 503, 504) or drops the connection.

Retrying writes is safe for what the collection sends: server-side apply and merge patches set the same fields
again, a delete of an object already gone is taken as done, reviews only read, and the lock Lease is written
conditionally on the version read (claims.py). A TokenRequest retried after a lost answer issues a second token;
the first expires unused."""

from __future__ import annotations

import functools
import random
import time

from .client import ApiError, TransportError
from .errors import ClusterUnreachable

RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
CONNECT_TIMEOUT = 10
MAX_DELAY = 30.0

TRANSPORT_ARG_SPEC = {
    "request_timeout": {"type": "int", "default": 30},
    "request_retries": {"type": "int", "default": 4},
}


class RetryingClient:
    """A kubernetes DynamicClient whose calls the collection makes (`CALLS`) carry a timeout and are retried up to
    `retries` times; every other attribute is the client's own."""

    CALLS = frozenset({"get", "server_side_apply", "delete", "patch", "request", "create", "replace"})

    def __init__(self, client, timeout: int = 30, retries: int = 4, sleep=time.sleep, jitter=random.random):
        self.client = client
        self.timeout = (CONNECT_TIMEOUT, timeout)
        self.retries = retries
        self.sleep = sleep
        self.jitter = jitter

    def __getattr__(self, name):
        attribute = getattr(self.client, name)
        return functools.partial(self._call, attribute) if name in self.CALLS else attribute

    def _call(self, method, *args, **kwargs):
        kwargs.setdefault("_request_timeout", self.timeout)
        attempt = 0
        while True:
            attempt += 1
            try:
                return method(*args, **kwargs)
            except ApiError as error:
                if error.status not in RETRIED_STATUSES or attempt > self.retries:
                    raise
                delay = retry_after(error) or self.backoff(attempt)
            except TransportError as error:
                if attempt > self.retries:
                    raise Unanswered(error, attempt) from error
                delay = self.backoff(attempt)
            self.sleep(delay)

    def backoff(self, attempt: int) -> float:
        """0.5 s, 1 s, 2 s, ... up to MAX_DELAY, each scaled by a random factor in [0.5, 1.5)."""
        return min(0.5 * 2 ** (attempt - 1), MAX_DELAY) * (0.5 + self.jitter())


class Unanswered(TransportError):
    """A transport failure that lasted through every retry; `attempts` says how many were made."""

    def __init__(self, error: Exception, attempts: int):
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


def retry_after(error) -> float | None:
    """The seconds a throttling server asks to wait (Retry-After in seconds), capped at MAX_DELAY."""
    headers = getattr(error, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return min(float(value), MAX_DELAY) if value is not None else None
    except ValueError:
        return None


def unreachable(host: str, error: Exception, parameter: str | None) -> ClusterUnreachable:
    """ClusterUnreachable saying how the server failed: no connection at all, or dropped / timed out after N
    attempts."""
    if isinstance(error, Unanswered):
        return ClusterUnreachable(host, error.error, parameter, error.attempts)
    return ClusterUnreachable(host, error, parameter)
