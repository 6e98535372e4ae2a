# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module's main() does after parsing its arguments: connect, run one ensure function, and turn every
failure the user can act on into one fail_json sentence."""

from __future__ import annotations

from .apply import EngineError
from .client import AUTH_ARG_SPEC, TransportError, connect, unreachable

# Options every module has: kubernetes.core's connection options and the engine's (docs: doc_fragments/attributes.py).
COMMON_ARG_SPEC = {**AUTH_ARG_SPEC, "force_conflicts": {"type": "bool", "default": False}}


def run_module(module, action, refusals=(), needs_cluster: bool = True):
    """Exit `module` with what `action(client)` returns as (result, warnings, diff).

    `refusals` are the module's own error classes (raised before anything is written); engine errors and an
    unreachable API server are handled for every module. `needs_cluster=False` passes no client."""
    client = connect(module) if needs_cluster else None
    try:
        result, warnings, diff = action(client)
    except (EngineError, *refusals) as error:
        module.fail_json(msg=str(error))
    except TransportError as error:
        module.fail_json(msg=unreachable(client.configuration.host, error))
    for warning in warnings:
        module.warn(warning)
    if module._diff:
        result["diff"] = diff
    module.exit_json(**result)
