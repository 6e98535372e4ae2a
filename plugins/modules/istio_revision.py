#!/usr/bin/python
# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: istio_revision
short_description: Install, upgrade, tag and remove one Istio control plane (a revision)
version_added: 0.1.0
description:
  - Renders one Istio control plane offline with C(istioctl manifest generate) from an IstioOperator spec
    (revision, system namespace, discoverySelectors, mesh config, values) and applies it with server-side
    apply under the field manager C(meshops.istio). It never runs C(istioctl install).
  - Made for clusters shared by tenants. By default there is no default revision, so no default injector
    webhook and no C(istiod-default-validator).
  - Refuses before writing anything when the new revision's C(discovery_selectors) select a namespace that another
    installed revision selects (two istiods would fight over C(istio-ca-root-cert), unless O(own_trust_bundle) renames
    it), except a shared namespace (two control planes may both select a namespace when the C(cacerts) Secrets of
    their system namespaces hold the same root, C(root-cert.pem), and the namespace's C(istio.io/rev) names a
    revision of one of them), when the revision is already installed in another namespace, when its namespace already
    holds another revision (unless O(canary_of) names it), when a tag has the name of a revision, or when
    O(istio_version) is not what O(istioctl_path) renders.
  - Tags and canaries are refused before writing anything too. A tag points at one revision, so a tag that another
    revision holds is refused unless O(move_tags=true). A name starting with C(revision-tag-) is refused (its
    Service C(istiod-<name>) would be the Service of a tag), and so is a name that is a tag of another revision.
    O(canary_of) must name an installed revision (unless this revision is installed already), and the tag
    C(default) is only set through O(default_revision).
  - An object this revision would write that already exists without its owner labels (hand-made, another tool's,
    another revision's) is refused, naming its kind, namespace and name; O(force_conflicts=true) adopts it, and a
    later O(state=absent) then deletes it.
  - The CRDs are shared by every control plane. They are created when missing and upgraded only by a newer Istio
    version. They are never downgraded and never deleted by this module.
  - Objects carry the labels C(istioctl install) would add (C(istio.io/rev), C(operator.istio.io/component), ...),
    so C(istioctl tag list) and C(istioctl uninstall --revision) understand the installation. They also carry
    C(app.kubernetes.io/managed-by=meshops.istio) and C(meshops.io/revision=<name>), which prune and removal select by.
  - Revisions in one system namespace (a canary and the revision it upgrades) share the objects every revision
    renders there the same, namely the ServiceAccount C(istio-reader-service-account). It carries no revision's owner
    label and is deleted only with the last revision of the namespace, so removing a canary leaves every object of
    the other revision as it was.
  - A second run with the same parameters sends no write request and reports C(changed=false).
  - O(revisions) installs, converges or removes many control planes in one run, one module process for all of them.
author:
  - meshops.istio developers (@meshops)
requirements:
  - ansible-core 2.17 or later, on Python 3.10 or later (the host that runs the module, usually the controller)
  - kubernetes (Python) 29.0.0 or later
  - PyYAML 6.0 or later
  - jsonpatch 1.33 or later
  - istioctl of the Istio version to install, on the host that runs the module (O(istioctl_path))
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
  - meshops.istio.attributes
  - meshops.istio.attributes.transport
  - meshops.istio.planned
options:
  name:
    description:
      - The revision name, for example C(usergroup-1). A DNS-1123 label of at most 56 characters, not C(default).
      - Names that YAML reads as a number, bool, null or date (C(123), C(1e3), C(true), C(yes), C(null), C(inf),
        C(nan), C(2024-01-01)) are refused, since they break istioctl's rendering. C(1-24-0) is fine. The same holds
        for O(revision_tags).
      - Required unless O(revisions) is given.
    type: str
  namespace:
    description:
      - The control plane's own system namespace. It is created when missing and labelled with the matchLabels of
        O(discovery_selectors), so the revision's istiod sees it. Give each revision its own namespace.
      - On removal the namespace stays; the labels this module set are removed.
      - Required unless O(revisions) is given.
    type: str
  revisions:
    description:
      - Many control planes in one run, instead of O(name) and the other per-revision options. Each entry is a dict
        with C(name) and C(namespace) (required), C(state), C(istio_version), C(profile), C(discovery_selectors),
        C(mesh_config), C(values), C(pilot_env), C(revision_tags), C(canary_of), C(default_revision), C(move_tags),
        C(mesh_id), C(cluster_name), C(network), C(remote_pilot_address), C(control_plane_clusters), C(force),
        C(own_trust_bundle) and C(trust_bundle_name), with the meaning, types and defaults of the options of the
        same name. O(istioctl_path), O(render_cache), O(render_cache_dir), O(planned_revisions), O(wait),
        O(wait_timeout), O(force_conflicts), O(lock_timeout) and the connection options apply to every entry.
      - Entries are checked before the cluster is contacted. An invalid entry (named C(revisions[<index>].<option>)),
        the same revision twice, or one tag in two entries fail the task and nothing is written.
      - Entries with C(state=absent) are removed first. Then istioctl reports its version once and the cluster is
        read once for all the others, a LIST of revisions, of namespaces, of revision tags and of Istio's CRDs, and
        one LIST per kind a revision owns, selected by the owner labels. A re-run that changes nothing costs the
        same few reads for 3 control planes or 30, and each revision renders from the render cache.
      - Each entry is checked against the installed revisions and against the entries before it, as if those were
        installed, so two entries whose discovery selectors overlap, or a second revision in a namespace without
        C(canary_of), are refused as two runs would refuse the second.
      - The whole run is first rehearsed as a dry run. An entry that fails there (refused by the guards, an object
        or fields of others in its way, a request the API server rejects) is set aside and not written, every other
        entry is converged, then the task fails naming each failed entry. So does an entry whose real writes or
        rollout fail. The task returns them in C(failed_revisions), and the others in C(revisions).
      - With O(wait), the rollouts are awaited after every entry is written, all within one O(wait_timeout).
    type: list
    elements: dict
  state:
    description:
      - V(present) installs or converges the revision; V(absent) removes every object of it and of its tags. The
        objects shared by the revisions of the namespace stay while another revision is installed there.
    type: str
    choices: [present, absent]
    default: present
  istio_version:
    description:
      - The Istio version to install. When set, it must equal the version O(istioctl_path) renders.
    type: str
  istioctl_path:
    description:
      - The istioctl binary that renders the control plane; its embedded charts define what is installed.
    type: path
    default: istioctl
  profile:
    description:
      - The IstioOperator profile.
    type: str
    default: minimal
  discovery_selectors:
    description:
      - Kubernetes label selectors (C(matchLabels), C(matchExpressions)) for C(meshConfig.discoverySelectors). The
        istiod sees only namespaces that one of them selects. They must not select a namespace that another
        revision selects. At least one selector needs C(matchLabels).
      - Empty means every namespace, which overlaps with any other revision.
    type: list
    elements: dict
    default: []
  mesh_config:
    description:
      - Extra C(meshConfig) settings. C(discoverySelectors) comes from O(discovery_selectors).
    type: dict
    default: {}
  values:
    description:
      - Extra Helm values for the IstioOperator C(values). The settings this module owns override the same keys, namely
        C(global.istioNamespace), C(defaultRevision), C(revisionTags), C(pilot.env), C(global.meshID),
        C(global.multiCluster.clusterName) and C(global.network), and with O(profile=remote) also
        C(global.remotePilotAddress), C(istiodRemote.injectionPath) and C(pilot.configMap).
      - Keys that take a mapping (C(global), C(global.proxy), C(pilot), C(pilot.env), C(meshConfig) and others) must
        be given one. When istioctl cannot read a value of the wrong type deeper down, the error names its key path,
        for example C(values.pilot.replicaCount).
    type: dict
    default: {}
  pilot_env:
    description:
      - Environment variables for istiod, for example C(PILOT_SCOPE_GATEWAY_TO_NAMESPACE=true) in the shared model.
      - Keys are environment variable names (letters, digits, C(_), C(-), C(.), not starting with a digit).
    type: dict
    default: {}
  revision_tags:
    description:
      - Tags that point at this revision. Each tag is a C(istio-revision-tag-<tag>) webhook. Namespaces labelled
        C(istio.io/rev=<tag>) get this revision's sidecars.
      - Moving a tag to a new revision is how a canary upgrade switches namespaces. A tag may not have the name of
        a revision. A tag another revision holds is refused unless O(move_tags=true).
      - V(default) is not accepted here, as it makes the revision the cluster's default injector; set
        O(default_revision=true) for that.
    type: list
    elements: str
    default: []
  canary_of:
    description:
      - Install this revision as the canary of the installed revision named here, in that revision's O(namespace).
        Revisions in one system namespace share its CA (C(cacerts), or the self-signed C(istio-ca-secret)), so both
        may select the tenant's namespaces while they move from the old revision to the new one.
      - Without it a new revision is refused in a namespace that already holds another revision. Once both are
        installed, re-runs of either need no O(canary_of), and it is ignored when the revision it names is gone.
      - Naming a revision that is not installed is refused while this revision is not installed yet.
      - Removing the canary (O(state=absent)) leaves the other revision's objects, and the objects the two share,
        untouched. A tag moved to the canary goes with it, so move the tag back first (O(move_tags=true)).
    type: str
  default_revision:
    description:
      - Make this revision the cluster's default. This adds the C(default) tag and C(istiod-default-validator).
        Multi-tenant clusters usually want neither.
      - The C(default) tag held by another revision is refused unless O(move_tags=true).
    type: bool
    default: false
  move_tags:
    description:
      - Move the tags of O(revision_tags) (and C(default) with O(default_revision)) that another revision holds to
        this revision. The tag's webhook and Service (and C(istiod-default-validator) for C(default)) are taken over
        when they have the same name, and deleted in the other revision's namespace otherwise, after this revision's
        objects are written.
      - Without it a tag held by another revision is refused, naming the tag and the revision, because two
        injectors would match the namespaces that use the tag.
    type: bool
    default: false
  mesh_id:
    description:
      - Multi-cluster C(values.global.meshID).
    type: str
  cluster_name:
    description:
      - Multi-cluster C(values.global.multiCluster.clusterName), which becomes istiod's C(CLUSTER_ID).
      - A DNS-1123 label of at most 63 characters, the rule every module applies to a cluster name.
    type: str
  network:
    description:
      - Multi-network C(values.global.network). The system namespace is labelled C(topology.istio.io/network).
    type: str
  remote_pilot_address:
    description:
      - For O(profile=remote), a remote cluster of a primary-remote mesh, C(values.global.remotePilotAddress). It is
        the address (IP or host name) of the primary's east-west gateway, which exposes the primary's istiod.
      - With O(profile=remote) the injector calls the primary's istiod on the path
        C(/inject/cluster/<cluster_name>/net/<network>), so O(cluster_name) and O(network) are required too. The
        revision's mesh ConfigMap is rendered as well, so the overlap guard and the other modules see the revision
        on the remote cluster. Refused with any other profile.
    type: str
  control_plane_clusters:
    description:
      - The clusters whose istiod manages this cluster, set as the annotation
        C(topology.istio.io/controlPlaneClusters) on the system namespace. Give the primary's cluster name on a remote
        cluster of a primary-remote mesh.
    type: list
    elements: str
    default: []
  own_trust_bundle:
    description:
      - Publish the revision's root under a name of its own, C(istio-ca-root-cert-<namespace>), instead of Istio's
        shared C(istio-ca-root-cert). istiod writes this ConfigMap into every namespace it discovers, and the proxies
        it injects (sidecars, gateways, waypoints) mount it, so no other control plane can overwrite this one's root,
        even where discovery selectors overlap by mistake. The overlap guard still refuses overlapping selectors.
      - The name is per system namespace, not per revision. The revisions of one namespace (a canary and the
        revision it upgrades) share one leader that writes this ConfigMap, so they must use one name. When
        another revision is installed in O(namespace), this revision takes that revision's name and says so in a
        warning.
      - Needs Istio 1.27 or later (C(values.global.trustBundleName)). With an older istioctl the revision keeps
        Istio's name, and a warning says so.
      - The CRL ConfigMap keeps Istio's name C(istio-ca-crl). C(values.pilot.crlConfigMapName) (1.29) would rename
        what istiod writes, but the injector's values do not carry it, so injected proxies would still mount
        C(istio-ca-crl).
      - Turning it on for an installed revision rolls out istiod, which then writes the new ConfigMap. Running pods
        keep the C(istio-ca-root-cert) they mount (nothing deletes it, but nothing updates it any more). Pods
        injected from then on mount the new name, and a pod created before istiod has written it waits in
        C(ContainerCreating) until it exists. Restart the workloads so that a later root rotation reaches them.
      - The playbooks turn it on for every control plane of the dedicated model.
    type: bool
    default: false
  trust_bundle_name:
    description:
      - The ConfigMap name the revision publishes its root under (C(values.global.trustBundleName), istiod's
        C(PILOT_CA_CERT_CONFIGMAP)), when O(own_trust_bundle) does not fit. A DNS subdomain of at most 253
        characters. Omitted, and without O(own_trust_bundle), Istio's C(istio-ca-root-cert).
      - Needs Istio 1.27 or later. It must equal the name of any other revision installed in O(namespace), and
        with O(profile=remote) the name the primary's istiod publishes under.
      - Set it here, not as C(values.global.trustBundleName), which is refused.
    type: str
  planned_revisions:
    # The rest of this option comes from the meshops.istio.planned fragment.
    description:
      - Check mode only, ignored otherwise. The revisions of the same run, as the tenancy plan gives them
        (C(tenancy_plan.planned_revisions)). Only their O(planned_revisions[].ca_root) is used, by the overlap
        guard. A check-mode run only dry-runs the C(cacerts) Secrets, so two revisions planned with the same
        C(ca_root) count as sharing a root and may both select a shared namespace.
  wait:
    description:
      - Wait until istiod's Deployment is rolled out.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the rollout before failing with the reason.
    type: int
    default: 300
  force:
    description:
      - With O(state=absent), remove the revision even while namespaces still carry C(istio.io/rev=<name>).
    type: bool
    default: false
  render_cache:
    description:
      - Keep what C(istioctl manifest generate) renders, and the version istioctl reports, in O(render_cache_dir)
        on the host that runs the module (the controller), so that a re-run with the same input does not start
        istioctl. Rendering takes about a second per revision.
      - An entry is keyed by the sha256 of the istioctl binary's content and of the whole render input. That input
        is the IstioOperator spec, with profile, revision, values and meshConfig. Another binary or any changed
        input renders again. The binary is hashed once per version of the file, and its digest is kept under its
        path, inode, size, mtime and ctime. Entries are written atomically (a temporary file renamed into place), so
        concurrent runs are safe, and an unreadable entry is rendered again.
      - The cluster is read and compared as without the cache, so drift on any object the revision owns is still
        found and repaired.
      - A rendering that holds a Secret or a private key is never stored. Set V(false) to render every time.
    type: bool
    default: true
  render_cache_dir:
    description:
      - The directory of the render cache, created readable by its owner only.
      - Defaults to C($XDG_CACHE_HOME/meshops-istio/render), or C(~/.cache/meshops-istio/render) without
        C(XDG_CACHE_HOME).
    type: path
notes:
  - Needs the C(kubernetes) Python library and an istioctl binary of the Istio version to install.
seealso:
  - name: Install multiple Istio control planes in a single cluster
    description: The deployment model this module automates.
    link: https://istio.io/latest/docs/setup/install/multiple-controlplanes/
"""

EXAMPLES = r"""
- name: A control plane per tenant (seed 002's usergroup-1), no default revision
  meshops.istio.istio_revision:
    name: usergroup-1
    namespace: usergroup-1
    istioctl_path: /opt/istio-1.31.1/bin/istioctl
    istio_version: 1.31.1
    own_trust_bundle: true
    discovery_selectors:
      - matchLabels:
          usergroup: usergroup-1

- name: One shared control plane whose gateways only select Gateways in their own namespace
  meshops.istio.istio_revision:
    name: shared
    namespace: istio-system
    pilot_env:
      PILOT_SCOPE_GATEWAY_TO_NAMESPACE: "true"
    values:
      pilot:
        autoscaleMin: 2

- name: Canary upgrade, step 1, install the new revision next to the old one (playbooks/upgrade.yml does every step)
  meshops.istio.istio_revision:
    name: usergroup-1-v1-32
    namespace: usergroup-1
    canary_of: usergroup-1
    istioctl_path: /opt/istio-1.32.0/bin/istioctl
    discovery_selectors:
      - matchLabels:
          usergroup: usergroup-1

- name: Canary upgrade, step 2, move the tag prod from usergroup-1 to the canary
  meshops.istio.istio_revision:
    name: usergroup-1-v1-32
    namespace: usergroup-1
    revision_tags: [prod]
    move_tags: true
    istioctl_path: /opt/istio-1.32.0/bin/istioctl
    discovery_selectors:
      - matchLabels:
          usergroup: usergroup-1

- name: A remote cluster of a primary-remote mesh, managed by cluster1's istiod through its east-west gateway
  meshops.istio.istio_revision:
    kubeconfig: ~/.kube/cluster2
    name: mesh
    namespace: istio-system
    profile: remote
    mesh_id: mesh1
    cluster_name: cluster2
    network: network2
    remote_pilot_address: 192.0.2.10
    control_plane_clusters: [cluster1]

- name: Seed 002's control planes, both in one run; the rollouts are awaited by the next task
  meshops.istio.istio_revision:
    istioctl_path: /opt/istio-1.31.1/bin/istioctl
    wait: false
    revisions:
      - name: usergroup-1
        namespace: usergroup-1
        own_trust_bundle: true
        discovery_selectors: [{matchLabels: {usergroup: usergroup-1}}]
      - name: usergroup-2
        namespace: usergroup-2
        own_trust_bundle: true
        discovery_selectors: [{matchLabels: {usergroup: usergroup-2}}]
  register: control_planes

- name: Remove a revision (refused while namespaces still use it)
  meshops.istio.istio_revision:
    name: usergroup-1
    namespace: usergroup-1
    state: absent
"""

RETURN = r"""
revisions:
  description:
    - With O(revisions), per converged entry its C(name), C(namespace) and C(changed), and with C(state=present)
      its C(istio_version), C(istiod_service), C(injector_webhook), C(tags), C(rolled_out) and C(trust_bundle), as
      described for one revision.
    - Also returned when the task fails after converging the other entries, for those entries.
  returned: when O(revisions) is given
  type: list
  elements: dict
  sample:
    - name: usergroup-1
      namespace: usergroup-1
      changed: false
      istio_version: 1.31.1
      istiod_service: istiod-usergroup-1.usergroup-1.svc
      injector_webhook: istio-sidecar-injector-usergroup-1-usergroup-1
      tags: []
      rolled_out: true
      trust_bundle: istio-ca-root-cert-usergroup-1
failed_revisions:
  description: With O(revisions), when some entries failed, why each failed, by revision name.
  returned: when the task fails after converging the other entries
  type: dict
  sample:
    usergroup-3: >-
      revisions[2] (usergroup-3): discovery_selectors overlap with revision usergroup-1: both select namespaces
      usergroup-1 (...)
revision:
  description: The revision name.
  returned: without O(revisions)
  type: str
  sample: usergroup-1
namespace:
  description: The revision's system namespace.
  returned: without O(revisions)
  type: str
  sample: usergroup-1
istio_version:
  description: The Istio version rendered, as istioctl reports it.
  returned: when state is present, without O(revisions)
  type: str
  sample: 1.31.1
istiod_service:
  description: The istiod service address that sidecars of this revision connect to (port 15012 for XDS).
  returned: without O(revisions)
  type: str
  sample: istiod-usergroup-1.usergroup-1.svc
injector_webhook:
  description: Name of the revision's MutatingWebhookConfiguration for sidecar injection.
  returned: without O(revisions)
  type: str
  sample: istio-sidecar-injector-usergroup-1-usergroup-1
tags:
  description: The revision tags that point at this revision.
  returned: without O(revisions)
  type: list
  elements: str
  sample: [prod]
rolled_out:
  description:
    - True when every Deployment of the revision (istiod) was read available and up to date and this run did not
      change it, so a rollout wait after the task has nothing to wait for.
  returned: when state is present, without O(revisions)
  type: bool
  sample: true
trust_bundle:
  description:
    - The ConfigMap istiod writes its root (C(root-cert.pem)) into, in every namespace it discovers, and which the
      proxies of this revision mount.
  returned: when state is present, without O(revisions)
  type: str
  sample: istio-ca-root-cert-usergroup-1
objects:
  description: Every object created, updated, released or deleted, in the order it happened.
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: Deployment, namespace: usergroup-1, name: istiod-usergroup-1, action: created}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.validation import check_required_arguments
from ansible_collections.meshops.istio.plugins.module_utils.batch import checked_entries
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.planned import PLANNED_REVISION_SPEC, RunPlan
from ansible_collections.meshops.istio.plugins.module_utils.revision import ensure_revision_absent
from ansible_collections.meshops.istio.plugins.module_utils.revision_install import (
    RevisionsRun,
    ensure_revision_present,
)
from ansible_collections.meshops.istio.plugins.module_utils.revision_spec import RevisionSpec, validate_revisions
from ansible_collections.meshops.istio.plugins.module_utils.runner import COMMON_ARG_SPEC, run_module

# What describes one revision: the module's own options, or one entry of `revisions`.
REVISION_SPEC = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    istio_version=dict(type="str"),
    profile=dict(type="str", default="minimal"),
    discovery_selectors=dict(type="list", elements="dict", default=[]),
    mesh_config=dict(type="dict", default={}),
    values=dict(type="dict", default={}),
    pilot_env=dict(type="dict", default={}),
    revision_tags=dict(type="list", elements="str", default=[]),
    canary_of=dict(type="str"),
    default_revision=dict(type="bool", default=False),
    move_tags=dict(type="bool", default=False),
    mesh_id=dict(type="str"),
    cluster_name=dict(type="str"),
    network=dict(type="str"),
    remote_pilot_address=dict(type="str"),
    control_plane_clusters=dict(type="list", elements="str", default=[]),
    force=dict(type="bool", default=False),
    own_trust_bundle=dict(type="bool", default=False),
    trust_bundle_name=dict(type="str"),
)
# What applies to the whole run.
RUN_SPEC = dict(
    istioctl_path=dict(type="path", default="istioctl"),
    wait=dict(type="bool", default=True),
    wait_timeout=dict(type="int", default=300),
    render_cache=dict(type="bool", default=True),
    render_cache_dir=dict(type="path"),
    planned_revisions=dict(type="list", elements="dict", default=[], options=PLANNED_REVISION_SPEC),
)
# One revision given by the module's own options.
ARGUMENT_SPEC = {**REVISION_SPEC, **RUN_SPEC}
# What the module takes: one revision, or `revisions`.
MODULE_SPEC = {
    **ARGUMENT_SPEC,
    "name": dict(type="str"),
    "namespace": dict(type="str"),
    "revisions": dict(type="list", elements="dict"),
}


def main():
    module = AnsibleModule(
        argument_spec={**COMMON_ARG_SPEC, **MODULE_SPEC},
        mutually_exclusive=[("revisions", option) for option in REVISION_SPEC],
        required_one_of=[("name", "revisions")],
        supports_check_mode=True,
    )
    plan = RunPlan.from_params(module.params)
    if module.params["revisions"] is not None:
        specs = revision_entries(module)
        try:
            validate_revisions(specs)
        except Refusal as error:
            module.fail_json(msg=str(error))
        run_module(module, RevisionsRun(specs, module.run_command, plan))
        return
    spec = RevisionSpec.from_params(one_revision(module))
    if spec.state == "present":
        run_module(
            module,
            lambda cluster, check_mode: ensure_revision_present(cluster, module.run_command, spec, check_mode, plan),
        )
    else:
        run_module(module, lambda cluster, check_mode: ensure_revision_absent(cluster, spec, check_mode))


def one_revision(module) -> dict:
    """The module's own options, checked as one revision: name and namespace required."""
    given = {key: value for key, value in module.params.items() if value is not None}
    try:
        check_required_arguments({key: REVISION_SPEC[key] for key in ("name", "namespace")}, given)
    except TypeError as error:
        module.fail_json(msg=str(error))
    return module.params


def revision_entries(module) -> list:
    """A RevisionSpec per `revisions` entry, checked against the per-revision options, plus the run's options."""
    entries = checked_entries(module, "revisions", REVISION_SPEC, (*RUN_SPEC, "force_conflicts"))
    return [RevisionSpec.from_params(entry) for entry in entries]


if __name__ == "__main__":
    main()
