# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What every module gets from the shared apply engine.
    DOCUMENTATION = r"""
options:
  force_conflicts:
    description:
      - Take over fields that another field manager owns (for example labels set with kubectl) instead of failing
        with the conflict.
    type: bool
    default: false
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Every write is sent to the API server as a server-side dry run; nothing is stored. Outside check mode
      the module runs this same dry run of its whole plan first and writes only when it passed, so a value the API
      server rejects fails the task before the first write.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: full
    details: Before and after for every object created, updated, released or deleted; server bookkeeping left out and
      Secret values hidden.
"""

    # What the read-only *_info modules get instead.
    INFO_MODULE = r"""
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Read only; the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""
