# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The version an istioctl binary renders, read once per binary and kept in the render cache."""

from __future__ import annotations

DOCUMENTATION = r"""
name: istioctl_version
short_description: The Istio version an istioctl binary renders, cached under the binary's digest
version_added: 0.2.0
description:
  - Runs C(istioctl version --remote=false --short) on the controller, once per binary, and keeps the answer in the
    render cache that M(meshops.istio.istio_revision) uses, under the sha256 of the binary's content. A re-run reads
    it from there instead of starting istioctl again; another binary, or the same path written again, is read anew.
  - Never fails on a binary that cannot be run; it says why in C(problem), so that the caller can say what to do.
options:
  _terms:
    description: The path of the istioctl binary, or its name on PATH.
    type: str
    required: true
  render_cache:
    description: Keep the version in O(render_cache_dir); false runs istioctl every time.
    type: bool
    default: true
  render_cache_dir:
    description: The render cache's directory; by default C($XDG_CACHE_HOME/meshops-istio/render), else
      C(~/.cache/meshops-istio/render).
    type: path
"""

EXAMPLES = r"""
- name: Read the version istioctl renders
  ansible.builtin.set_fact:
    istioctl_reported: "{{ lookup('meshops.istio.istioctl_version', '/usr/local/bin/istioctl') }}"

- name: The istioctl can be run
  ansible.builtin.assert:
    that: not istioctl_reported.problem
    fail_msg: "Cannot run istioctl: {{ istioctl_reported.problem }}"
"""

RETURN = r"""
_raw:
  description: One mapping per term.
  type: list
  elements: dict
  contains:
    version:
      description: The Istio version the binary renders, e.g. C(1.31.1); empty when it cannot be run.
      type: str
    problem:
      description: Why the binary cannot be run (no such file, or what it printed); empty when it ran.
      type: str
"""


import subprocess

from ansible.plugins.lookup import LookupBase
from ansible_collections.meshops.istio.plugins.module_utils.istioctl import CannotRun, istioctl_version
from ansible_collections.meshops.istio.plugins.module_utils.render_cache import default_directory


def run_command(argv: list) -> tuple:
    """(rc, stdout, stderr), as AnsibleModule.run_command answers; a file that cannot be executed is rc 126."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    except OSError as error:
        return 126, "", error.strerror or str(error)
    except subprocess.TimeoutExpired:
        return 124, "", "no answer within 120 s"
    return done.returncode, done.stdout, done.stderr


def answer(istioctl: str, cache_dir: str | None) -> dict:
    """{version, problem} of one binary; `cache_dir` None runs it whatever the cache holds."""
    try:
        return {"version": istioctl_version(run_command, istioctl, cache_dir), "problem": ""}
    except CannotRun as error:
        return {"version": "", "problem": error.reason}


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        cache_dir = None
        if self.get_option("render_cache"):
            cache_dir = self.get_option("render_cache_dir") or default_directory()
        return [answer(istioctl, cache_dir) for istioctl in terms]
