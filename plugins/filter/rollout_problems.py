# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filter the roles wait for a rollout with, in visible retried steps."""

from __future__ import annotations

from ansible_collections.meshops.istio.plugins.module_utils.engine import rollout_problem

DOCUMENTATION = r"""
name: rollout_problems
short_description: Why each of some Deployments is not rolled out yet
version_added: 0.2.0
description:
  - One line per Deployment that has not all its replicas updated and available, naming the Deployment and why.
  - An empty list when every Deployment is rolled out, or when there is none (nothing to wait for).
options:
  _input:
    description: Deployments as kubernetes.core.k8s_info returns them (its C(resources)).
    type: list
    elements: dict
    required: true
"""

EXAMPLES = r"""
- name: Wait for istiod
  kubernetes.core.k8s_info:
    kind: Deployment
    namespace: istio-system
    label_selectors: [app=istiod]
  register: istiod
  until: istiod.resources | meshops.istio.rollout_problems | length == 0
  retries: 150
  delay: 2
"""

RETURN = r"""
_value:
  description: "One line per Deployment not rolled out: C(namespace/name: why)."
  type: list
  elements: str
"""


def rollout_problems(deployments: list) -> list:
    problems = []
    for deployment in deployments or []:
        problem = rollout_problem(deployment)
        if problem:
            metadata = deployment["metadata"]
            problems.append(f"{metadata.get('namespace')}/{metadata['name']}: {problem}")
    return problems


class FilterModule:
    def filters(self):
        return {"rollout_problems": rollout_problems}
