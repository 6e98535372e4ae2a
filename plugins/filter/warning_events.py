# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter the roles explain a rollout that did not finish with."""

from __future__ import annotations

from ansible_collections.meshops.istio.plugins.module_utils.cluster import warning_lines

DOCUMENTATION = r"""
name: warning_events
short_description: The latest warning events of the objects whose names start with a prefix
version_added: 0.2.0
description:
  - For a Deployment C(istiod-x), the prefix C(istiod-x-) selects its ReplicaSets and Pods, so the lines show why
    its Pods are missing or not ready (FailedScheduling, FailedCreate by an admission webhook, image pull errors).
  - One line per object and reason, the newest event's message, newest last.
options:
  _input:
    description: Event objects as kubernetes.core.k8s_info returns them (its C(resources)).
    type: list
    elements: dict
    required: true
  name_prefix:
    description: Keep events about objects whose names start with this.
    type: str
    required: true
  limit:
    description: At most this many lines.
    type: int
    default: 3
"""

EXAMPLES = r"""
- name: Explain istiod's rollout
  ansible.builtin.debug:
    msg: "{{ events.resources | meshops.istio.warning_events('istiod-usergroup-1-') }}"
"""

RETURN = r"""
_value:
  description: "C(Kind name: Reason: message) lines."
  type: list
  elements: str
"""


def warning_events(events: list, name_prefix: str, limit: int = 3) -> list:
    return warning_lines(events or [], name_prefix, limit)


class FilterModule:
    def filters(self):
        return {"warning_events": warning_events}
