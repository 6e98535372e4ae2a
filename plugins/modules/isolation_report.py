#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: isolation_report
short_description: Write the isolation report (JUnit XML, JSON, HTML) from what the *_info modules found
version_added: 0.1.0
description:
  - Takes the registered result of M(meshops.istio.istio_isolation_info) (one cluster's tenants) or the results of
    M(meshops.istio.istio_multicluster_info) on every cluster of a mesh, and writes three files on the controller
    into O(dest).
  - C(<name>.junit.xml) has one test case per invariant per tenant namespace (namespace exists, labelled for its
    tenant, selected by exactly its revision, exactly one injector, mTLS as desired, isolation policies in place,
    no wildcard or broad access),
    one per gateway (Ready), one per cluster invariant (no overlapping selectors, each C(cacerts) can sign; in a mesh,
    shared root with its own intermediate, network labels, each remote secret accepted, no stray remote secret) and
    one per traffic matrix cell. A broken invariant is a failed test case whose message is the problem. The file
    is valid against the strict Ant JUnit schema, which Jenkins, GitLab and GitHub test reporters read.
  - C(<name>.json) is the report document; C(<name>.html) is rendered from it with a Jinja2 template shipped in the
    collection (C(roles/verify_report/templates/isolation_report.html.j2)). The page is one self-contained file
    (inline styles, no script, nothing loaded from the network) with a summary, the problems, the tenants (a broken one
    is marked BROKEN), a tenancy map (clusters, control planes with their CA's intermediate and roots and expiry
    dates, tenant namespaces, gateways, remote secrets), the traffic matrix when O(traffic) has cells, and every
    check.
  - The files are replaced whole. The task does not fail when invariants are broken; assert on RV(passed) or on the
    info module's C(problems).
  - This is an action plugin, so it runs on the controller, whatever host the task runs for.
author:
  - meshops.istio developers (@meshops)
requirements:
  - ansible-core 2.17 or later, on Python 3.10 or later (the controller, where this action runs)
  - Jinja2 (comes with ansible-core)
options:
  isolation:
    description:
      - The registered result of M(meshops.istio.istio_isolation_info).
      - Exactly one of O(isolation) and O(multicluster) is required.
    type: dict
  multicluster:
    description:
      - Per inventory host, its registered result of M(meshops.istio.istio_multicluster_info). A host whose result
        is missing or failed (an empty dict, or a result with C(failed)) becomes a failed C(facts read) test case.
    type: dict
  traffic:
    description:
      - The traffic matrix, when workloads were probed. Each cell has C(client) and C(server) (for example the
        namespaces of the curl and httpbin pods), C(expected) and C(observed) (for example HTTP codes 200 and 503).
        A cell fails when observed differs from expected.
    type: list
    elements: dict
    default: []
  dest:
    description:
      - The directory to write the files into; created when missing. A relative path is relative to the directory
        ansible-playbook was started from.
    type: path
    default: isolation-report
  name:
    description:
      - The base name of the three files. Defaults to C(isolation) or C(multicluster), after the facts given.
    type: str
  cluster_name:
    description:
      - The cluster's name in a O(isolation) report, the test suite's name and the first part of each test case's class
        name. Defaults to C(cluster); the map shows the API server address beside it.
    type: str
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Builds the report and returns the paths, but writes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the
      controller.
    support: full
seealso:
  - module: meshops.istio.istio_isolation_info
  - module: meshops.istio.istio_multicluster_info
"""

EXAMPLES = r"""
- name: Read the isolation facts
  meshops.istio.istio_isolation_info:
    tenants: "{{ tenants }}"
  register: isolation

- name: Write isolation-report/isolation.{junit.xml,json,html}
  meshops.istio.isolation_report:
    isolation: "{{ isolation }}"
    cluster_name: prod-eu1
  register: written

- name: Write the mesh's report once, from every cluster's facts
  meshops.istio.isolation_report:
    multicluster: >-
      {{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars)
         | map(attribute='multicluster_verified', default={}))) }}
    dest: /var/tmp/reports
  run_once: true

- name: Add the probed traffic matrix
  meshops.istio.isolation_report:
    isolation: "{{ isolation }}"
    traffic:
      - {client: app-ns-1, server: app-ns-1, expected: "200", observed: "200"}
      - {client: app-ns-1, server: app-ns-2, expected: "503", observed: "503"}
"""

RETURN = r"""
name:
  description: The base name of the files (O(name), or C(isolation) or C(multicluster)).
  returned: always
  type: str
  sample: isolation
files:
  description: Absolute paths of the files written (in check mode, that would be written).
  returned: always
  type: dict
  sample:
    junit: /home/me/mesh/isolation-report/isolation.junit.xml
    json: /home/me/mesh/isolation-report/isolation.json
    html: /home/me/mesh/isolation-report/isolation.html
passed:
  description: Whether every test case passed.
  returned: always
  type: bool
tests:
  description: The number of test cases.
  returned: always
  type: int
  sample: 16
failures:
  description: The number of failed test cases.
  returned: always
  type: int
  sample: 1
"""
