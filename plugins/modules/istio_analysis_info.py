#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: istio_analysis_info
short_description: Run Istio's own analyzers per control plane and report their findings per tenant
version_added: 0.2.0
description:
  - Runs C(istioctl analyze --all-namespaces --revision <revision> --istioNamespace <system namespace> -o json) once
    per control plane revision the O(tenants) name, against the live cluster. Each run sees only that revision's
    Istio config and its mesh config.
  - Each finding (code, level, message, origin) is given to the tenants it concerns. Those are findings in the
    tenant's namespaces, in its control plane's system namespace, and on cluster-scoped resources. Findings in other
    namespaces are left out.
  - Findings at O(fail_level) or worse are returned as sentences in RV(problems); C(playbooks/verify.yml) fails when
    there are any. The module itself changes nothing and does not fail on findings.
  - istioctl reaches the cluster with the module's own credentials, however they are given. That may be
    O(kubeconfig) and O(context), O(host) with O(api_key), client certificates, impersonation, or the C(K8S_AUTH_*)
    variables of an AWX credential. They are written to a kubeconfig file that only the running user can read,
    which is deleted when istioctl is done. Credentials never appear in the output.
  - The informational codes a clean install shows in each tenancy model are listed in the README, section
    "Choosing Istio features".
author:
  - meshops.istio developers (@meshops)
requirements:
  - ansible-core 2.17 or later, on Python 3.10 or later (the host that runs the module, usually the controller)
  - kubernetes (Python) 29.0.0 or later
  - PyYAML 6.0 or later
  - istioctl of the installed Istio version, on the host that runs the module (O(istioctl_path))
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshops.istio.attributes.info_module
  - meshops.istio.attributes.transport
options:
  tenants:
    description:
      - The tenants to analyze, as C(playbooks/multitenant.yml)'s plan gives them to M(meshops.istio.istio_tenant).
        Each entry has C(name), C(revision) (the control plane serving it; when the tenant's namespaces all carry
        C(istio.io/rev) of another installed revision, for example after C(upgrade.yml) moved them, that one is
        analyzed) and C(namespaces) (names, or dicts with
        C(name)). Other keys are ignored.
    type: list
    elements: dict
    required: true
  istioctl_path:
    description:
      - The istioctl binary to run, of the installed Istio version.
    type: str
    default: istioctl
  fail_level:
    description:
      - The level from which a finding is a problem. Istio's levels are V(Info), V(Warning) and V(Error), in that order.
    type: str
    choices: [Error, Warning, Info]
    default: Error
  suppress:
    description:
      - Findings not to report, as istioctl's C(--suppress) takes them. Each is a code, C(=), and a glob over the
        finding's origin C(<Kind> <namespace>/<name>), for example
        C(IST0127=AuthorizationPolicy */meshops-tenant-isolation).
    type: list
    elements: str
    default: []
  analysis_timeout:
    description:
      - Seconds one C(istioctl analyze) run may take. istioctl waits without end for a read it is refused, so a
        missing permission fails here, naming the ClusterRoles that grant what the analyzers read.
    type: int
    default: 300
notes:
  - Needs read access to the whole cluster's Istio and Kubernetes configuration (istioctl lists every namespace).
    The C(meshops-istio-viewer) ClusterRole of C(roles/rbac) grants what the analyzers read.
seealso:
  - module: meshops.istio.istio_isolation_info
"""

EXAMPLES = r"""
- name: Analyze seed 002's control planes, failing on errors
  meshops.istio.istio_analysis_info:
    tenants:
      - {name: usergroup-1, revision: usergroup-1, namespaces: [app-ns-1]}
      - {name: usergroup-2, revision: usergroup-2, namespaces: [app-ns-2, app-ns-3]}
    istioctl_path: /usr/local/bin/istioctl
  register: analysis

- name: Fail on the findings at fail_level or worse
  ansible.builtin.assert:
    that: analysis.problems | length == 0
    fail_msg: "{{ analysis.problems | join('; ') }}"
"""

RETURN = r"""
tenants:
  description: Per tenant its revision, system namespace, the count of findings per level and the findings.
  returned: always
  type: dict
  sample:
    usergroup-1:
      revision: usergroup-1
      system_namespace: usergroup-1
      counts: {Info: 0, Warning: 0, Error: 1}
      findings:
        - code: IST0101
          level: Error
          message: "Referenced gateway not found: \"missing\""
          origin: VirtualService app-ns-1/broken
          kind: VirtualService
          namespace: app-ns-1
          name: broken
          documentation_url: https://istio.io/latest/docs/reference/config/analysis/ist0101/
problems:
  description: A sentence per finding at O(fail_level) or worse, and per tenant whose revision is not installed.
  returned: always
  type: list
  elements: str
istio_version:
  description: The Istio version of the istioctl that analyzed.
  returned: always
  type: str
server:
  description: The API server analyzed.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.meshops.istio.plugins.module_utils.analysis import AnalysisSpec, gather_analysis
from ansible_collections.meshops.istio.plugins.module_utils.runner import CLUSTER_ARG_SPEC, run_module
from ansible_collections.meshops.istio.plugins.module_utils.tenant_spec import NamespaceSpec


def main():
    module = AnsibleModule(
        argument_spec={
            **CLUSTER_ARG_SPEC,
            "tenants": dict(type="list", elements="dict", required=True),
            "istioctl_path": dict(type="str", default="istioctl"),
            "fail_level": dict(type="str", choices=["Error", "Warning", "Info"], default="Error"),
            "suppress": dict(type="list", elements="str", default=[]),
            "analysis_timeout": dict(type="int", default=300),
        },
        supports_check_mode=True,
    )
    params = module.params
    spec = AnalysisSpec(
        tenants=[
            {**t, "namespaces": [NamespaceSpec.from_entry(e).name for e in t.get("namespaces") or []]}
            for t in params["tenants"]
        ],
        istioctl=params["istioctl_path"],
        fail_level=params["fail_level"],
        suppress=tuple(params["suppress"]),
        timeout=params["analysis_timeout"],
    )
    run_module(module, lambda cluster, _check_mode: (analysis_result(cluster, module, spec), [], []))


def analysis_result(cluster, module, spec: AnalysisSpec) -> dict:
    return dict(changed=False, **gather_analysis(cluster, module.run_command, spec))


if __name__ == "__main__":
    main()
