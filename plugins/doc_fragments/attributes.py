# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # What every writing module gets from the shared apply engine (with TRANSPORT).
    DOCUMENTATION = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for the cluster's claims lock, the Lease C(kube-system/meshops-istio-claims), while another
        meshops.istio run holds it. A run that would change something holds it from its last check to its last
        write (rollout waits included), so two runs in parallel never both pass a guard (one namespace per tenant,
        no overlapping selectors, one revision per tag) before the other wrote. A run that changes nothing never
        takes it. A holder that died leaves it to expire 60 s after its last renewal.
      - The collection's account needs create on leases, and get, update and delete on this one; the shipped
        ClusterRole C(meshops-istio-installer) grants them.
    type: int
    default: 300
  force_conflicts:
    description:
      - Take over fields that another field manager owns (for example labels set with kubectl) instead of failing
        with the conflict.
      - Also adopt a same-named object that exists without this task's owner labels (made by hand, by another tool,
        or by another owner of this collection) instead of refusing it. A later C(state=absent) then deletes it.
      - Objects that already carry the module's owner labels (C(app.kubernetes.io/managed-by=meshops.istio) and
        C(meshops.io/<owner kind>)) are always taken back, so an edit by someone else never blocks the next run;
        this option is for objects the module does not own yet.
    type: bool
    default: false
notes:
  - "Permissions: bind the ClusterRole C(meshops-istio-installer) that the collection ships (C(playbooks/rbac.yml),
    C(docs/rbac.md)) to the account that runs the module. A request the API server forbids fails with a sentence
    naming the verb, the resource, its namespace or the cluster scope, and that role."
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
notes:
  - "Permissions: the read-only ClusterRole C(meshops-istio-viewer) that the collection ships (C(playbooks/rbac.yml),
    C(docs/rbac.md)) is enough; C(meshops-istio-installer) includes it. A request the API server forbids fails with a
    sentence naming the verb, the resource, its namespace or the cluster scope, and the role to bind."
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Read only; the same in check mode.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

    # How every module talks to the API server (meshops.istio.attributes.transport).
    TRANSPORT = r"""
options:
  request_timeout:
    description:
      - Seconds to wait for the API server's answer to one request (connecting may take 10 more). A request that
        times out is retried like a dropped connection.
    type: int
    default: 30
  request_retries:
    description:
      - How many times a request is retried when the API server throttles (429, after its Retry-After), fails
        (500, 502, 503, 504), drops the connection or does not answer in time; with exponential backoff from 0.5 s
        (up to 30 s) and jitter. Writes are retried too; server-side apply sets the same fields again.
      - The error after the last try says whether no connection could be made or the connection was dropped or
        timed out, and after how many attempts.
    type: int
    default: 4
"""
