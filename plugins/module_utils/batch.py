# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A run of many entries (istio_tenant's `tenants`, istio_gateway's `gateways`, istio_revision's `revisions`): their
options checked entry by entry (`checked_entries`), and a run in which one entry in the way does not block the others
(`SetAsideRun`, the action runner.run_module rehearses, then runs)."""

from __future__ import annotations

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.errors import UnsupportedError


def checked_entries(module, option: str, entry_spec: dict, run_options, entry_problems=None, **validator_options):
    """The entries of the list `option`, each checked against `entry_spec` (with its defaults) and merged with the
    module-level `run_options`. `entry_problems(entry, run)` may add checks of its own. Every invalid entry is named
    (`option[index]`) in one failure, before the cluster is contacted."""
    validator = ArgumentSpecValidator(entry_spec, **validator_options)
    run = {key: module.params[key] for key in run_options}
    entries, errors = [], []
    for index, entry in enumerate(module.params[option]):
        checked = validator.validate(entry)
        # An unsupported option's message starts with the option's name alone: say what it is.
        problems = [
            f"{'unsupported option ' if isinstance(error, UnsupportedError) else ''}{error}" for error in checked.errors
        ]
        problems += entry_problems(entry, run) if entry_problems else []
        errors += [f"{option}[{index}]: {problem}" for problem in problems]
        entries.append({**checked.validated_parameters, **run})
    if errors:
        module.fail_json(msg="; ".join(errors))
    return entries


class SetAsideRun:
    """A plan the API server rejects for any entry (its dry run fails) writes nothing, for no entry. An entry whose
    namespaces hold something in the way (an error of `in_the_way`) is set aside instead: it is not written, the
    others converge, and the run then fails naming it. An entry failing during the real run does not stop the others
    either.

    Subclasses say how to converge the entries (`ensure`, returning a result whose `failed` maps each failed entry's
    key to its error), which errors are in the way, and what to raise for the failed ones (`failure`)."""

    in_the_way: tuple = ()
    plans_locally = True  # see runner.rehearse_then_run

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
