# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run of many entries (istio_tenant's `tenants`, istio_gateway's `gateways`) in which one entry in the way does not
block the others: the action runner.run_module rehearses, then runs."""

from __future__ import annotations


class SetAsideRun:
    """A plan the API server rejects for any entry (its dry run fails) writes nothing, for no entry. An entry whose
    namespaces hold something in the way (an error of `in_the_way`) is set aside instead: it is not written, the
    others converge, and the run then fails naming it. An entry failing during the real run does not stop the others
    either.

    Subclasses say how to converge the entries (`ensure`, returning a result whose `failed` maps each failed entry's
    key to its error), which errors are in the way, and what to raise for the failed ones (`failure`)."""

    in_the_way: tuple = ()

    def __init__(self, specs: list):
        self.specs = specs
        self.set_aside = {}

    def ensure(self, cluster, check_mode: bool, skip: dict) -> tuple:
        raise NotImplementedError

    def failure(self, failed: dict, written: bool) -> Exception:
        raise NotImplementedError

    def __call__(self, cluster, check_mode: bool) -> tuple:
        rehearsal = check_mode and cluster.rehearsing
        skip = {} if check_mode else self.set_aside
        result, warnings, diff = self.ensure(cluster, check_mode, skip)
        failed = result.pop("failed")
        in_the_way = all(isinstance(error, self.in_the_way) for error in failed.values())
        if rehearsal and failed and in_the_way and result["changed"]:
            self.set_aside = failed
            return result, warnings, diff  # the real run converges the others, then fails naming these
        if failed:
            raise self.failure(failed, not check_mode)
        return result, warnings, diff


def failure_sentence(failed: dict, keys: list, written: bool, noun: str) -> str:
    """One sentence for a run in which some entries (`noun`: tenants, gateways) failed: each failure, then (when the
    run wrote) which entries converged. A run of one entry fails with that entry's own sentence."""
    if len(keys) == 1:
        return str(next(iter(failed.values())))
    others = [key for key in keys if key not in failed]
    converged = f" The other {noun} ({', '.join(others)}) were converged." if others and written else ""
    reasons = "; ".join(str(error).rstrip(".") for error in failed.values())
    return f"{len(failed)} of {len(keys)} {noun} failed: {reasons}.{converged}"
