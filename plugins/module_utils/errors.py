# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error tree. `run_module` catches `MeshopsError` and turns it into one fail_json sentence; anything else
is a bug and keeps its traceback."""

from __future__ import annotations


class MeshopsError(Exception):
    """A failure the user can act on; the message says what happened and how to fix it."""


class Refusal(MeshopsError):
    """Input or cluster state refused before anything is written; the message names the parameter and the fix."""


class ForeignObjects(Refusal):
    """Objects the run would write exist without its owner labels: state of the cluster in the way of one owner (a
    tenant admin's object in their namespace, say), not a fault of the run's plan."""


class EngineError(MeshopsError):
    """The API server refused or failed a read, write or wait."""


class FieldConflict(EngineError):
    """Server-side apply found fields another field manager owns on an object this run does not own."""


class EntriesFailed(EngineError):
    """Some entries of a many-entry run failed (the others converged); `result` holds what the module returns next
    to the message, e.g. each failed entry's sentence, for a playbook to tell whom it concerns."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


class UnknownKindError(EngineError):
    """A manifest of a kind the collection has no API path for (kinds.KINDS)."""


class ClusterUnreachable(MeshopsError):
    """The API server at `host` did not answer, after `attempts` tries. `parameter` names the option that points at
    a second cluster."""

    def __init__(self, host: str, error: Exception, parameter: str | None = None, attempts: int = 1):
        self.host = host
        if parameter:
            where = f"of {parameter} at {host}"
            fix = f"check {parameter}.kubeconfig, {parameter}.context and {parameter}.host"
        else:
            where = f"at {host}"
            fix = "check host, kubeconfig and context"
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        super().__init__(f"Cannot reach the Kubernetes API {where}: {_failure(error)}{tries}; {fix}, {_advice(error)}")


def _failure(error: Exception) -> str:
    """What went wrong on the wire, from urllib3's error types (by name: this module imports nothing)."""
    chain = f"{type(error).__name__} {type(getattr(error, 'reason', None)).__name__} {error}"
    if "Timeout" in chain or "timed out" in chain:
        return "no answer within the timeout (ReadTimeout)" if "Read" in chain else "connection timed out"
    if "NewConnectionError" in chain or "Connection refused" in chain or "NameResolution" in chain:
        return f"no connection ({type(error).__name__})"
    if "ProtocolError" in chain or "reset" in chain.lower() or "RemoteDisconnected" in chain:
        return "the connection was dropped (reset)"
    return type(error).__name__


def _advice(error: Exception) -> str:
    chain = f"{type(error).__name__} {error}"
    if "Timeout" in chain or "timed out" in chain:
        return "and that the API server is not overloaded (request_timeout raises the read timeout)"
    return "and that the API server is up"


def refuse(problems: list, error: type = Refusal) -> None:
    """Raise one `error` (a Refusal) listing every problem; do nothing when there is none."""
    if problems:
        raise error("; ".join(problems))
