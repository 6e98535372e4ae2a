# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The option that lets a check-mode run of a whole playbook plan on revisions an earlier step only dry-ran
    # (module_utils/planned.py).
    DOCUMENTATION = r"""
options:
  planned_revisions:
    description:
      - Check mode only, ignored otherwise. Revisions an earlier step of the same run installs (as
        M(meshops.istio.istio_revision) would), so that a check-mode run of a whole playbook can plan this task on
        revisions it has only dry-run. A planned revision that is not installed is checked with its namespace and
        discoverySelectors, and a warning says so. C(playbooks/multitenant.yml) passes its tenancy plan's control
        planes.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The revision.
        type: str
        required: true
      namespace:
        description: Its system namespace.
        type: str
        required: true
      discovery_selectors:
        description: Its discoverySelectors.
        type: list
        elements: dict
        default: []
      ca_root:
        description:
          - The root its C(cacerts) is issued from (the tenancy plan's C(ca_root)). In check mode, revisions planned
            with the same C(ca_root) count as sharing a root, so they may both select a shared namespace.
        type: str
"""
