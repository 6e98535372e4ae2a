# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ConfigMap a revision's istiod publishes its root in, in every namespace it discovers.

Istio 1.27 added `values.global.trustBundleName` (istiod's PILOT_CA_CERT_CONFIGMAP, and the ConfigMap the proxies it
injects mount). With a name of its own, a control plane cannot overwrite another one's root even where their
discoverySelectors overlap.

The name is per system namespace, not per revision: the revisions of one namespace (a canary and the revision it
upgrades) share one namespace-controller leader lease, and only the leader writes its ConfigMap, so they must
publish under one name or the other revision's pods find no root. They share the namespace's CA, so one name is
right for both.

The CRL ConfigMap keeps Istio's name: `values.pilot.crlConfigMapName` (1.29) renames what istiod writes, but the
injector's values keep only `pilot.cni` and `pilot.env`, so injected proxies would still mount `istio-ca-crl`. Pure."""

from __future__ import annotations

from .errors import refuse
from .istioctl import version_key
from .names import DNS_SUBDOMAIN

ISTIOS_ROOT_CONFIG_MAP = "istio-ca-root-cert"
ROOT_ENV = "PILOT_CA_CERT_CONFIGMAP"
TRUST_BUNDLE_NAME_SINCE = (1, 27, 0)
MAX_CONFIG_MAP_NAME = 253


def trust_bundle_values(name: str) -> dict:
    """The IstioOperator values that make istiod publish under `name`; none for Istio's own (older charts lack it)."""
    return {} if name == ISTIOS_ROOT_CONFIG_MAP else {"global": {"trustBundleName": name}}


def own_trust_bundle(namespace: str) -> str:
    return f"{ISTIOS_ROOT_CONFIG_MAP}-{namespace}"


def published_trust_bundle(deployment: dict) -> str:
    """The name an installed istiod Deployment publishes its root under (its PILOT_CA_CERT_CONFIGMAP)."""
    for container in deployment["spec"]["template"]["spec"].get("containers") or []:
        for item in container.get("env") or []:
            if item.get("name") == ROOT_ENV and item.get("value"):
                return item["value"]
    return ISTIOS_ROOT_CONFIG_MAP


def trust_bundle_name_errors(name) -> list:
    """A ConfigMap name: a DNS subdomain of at most 253 characters."""
    if isinstance(name, str) and DNS_SUBDOMAIN.match(name) and len(name) <= MAX_CONFIG_MAP_NAME:
        return []
    return [
        f"trust_bundle_name {name!r} must be a ConfigMap name: at most {MAX_CONFIG_MAP_NAME} lower-case letters, "
        "digits, '-' and '.', starting and ending with a letter or digit, such as istio-ca-root-cert-tenant-a"
    ]


def resolve_trust_bundle(spec, version: str, neighbours: dict) -> tuple:
    """(root ConfigMap name, warnings) for the revision `spec` rendered by Istio `version`, next to `neighbours` (the
    other revisions installed in its system namespace: {revision: name}). Refuses a name the revision cannot use."""
    renames, warnings = version_key(version)[0] >= TRUST_BUNDLE_NAME_SINCE, []
    if spec.trust_bundle_name:
        wanted = spec.trust_bundle_name
        if wanted != ISTIOS_ROOT_CONFIG_MAP and not renames:
            refuse([
                f"trust_bundle_name {wanted} needs Istio 1.27 or later (values.global.trustBundleName); "
                f"istioctl_path renders {version}: remove trust_bundle_name or install a newer Istio"
            ])  # fmt: skip
    elif spec.own_trust_bundle:
        wanted = own_trust_bundle(spec.namespace) if renames else ISTIOS_ROOT_CONFIG_MAP
        if not renames:
            warnings.append(
                f"own_trust_bundle: Istio {version} cannot rename the root ConfigMap (values.global.trustBundleName "
                f"came with 1.27), so revision {spec.name} publishes its root as the shared {ISTIOS_ROOT_CONFIG_MAP}; "
                "the discovery_selectors overlap guard still keeps other control planes off its namespaces"
            )
        if neighbours:
            # A canary publishes under the name of the revision it upgrades (see the module docstring).
            revision, theirs = sorted(neighbours.items())[0]
            if theirs != wanted:
                warnings.append(
                    f"own_trust_bundle: revision {spec.name} publishes its root as {theirs}, the name of revision "
                    f"{revision} in namespace {spec.namespace}, since the revisions of one namespace share the leader "
                    "that writes it"
                )
            wanted = theirs
    else:
        wanted = ISTIOS_ROOT_CONFIG_MAP
    refuse(_neighbour_problems(spec, wanted, neighbours))
    return wanted, warnings


def _neighbour_problems(spec, wanted: str, neighbours: dict) -> list:
    return [
        f"trust_bundle_name {wanted} differs from {theirs}, the root ConfigMap of revision {revision} installed in "
        f"namespace {spec.namespace}: the revisions of one namespace share the leader that writes it, so the other "
        f"revision's pods would find no root. Set trust_bundle_name: {theirs}, or own_trust_bundle: true to follow "
        f"{revision}"
        for revision, theirs in sorted(neighbours.items())
        if theirs != wanted
    ]
