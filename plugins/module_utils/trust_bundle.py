# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which ConfigMap a revision's istiod publishes its root (and CRL) in, in every namespace it discovers.

Istio 1.27 added `values.global.trustBundleName` (istiod's PILOT_CA_CERT_CONFIGMAP, and the ConfigMap the injected
proxies mount), 1.29 `values.pilot.crlConfigMapName` (PILOT_CRL_CONFIGMAP). With a name of its own, a control plane
cannot overwrite another one's root even where their discoverySelectors overlap.

The name is per system namespace, not per revision: the revisions of one namespace (a canary and the revision it
upgrades) share one namespace-controller leader lease, and only the leader writes its ConfigMaps, so they must
publish under one name or the other revision's pods find no root. They share the namespace's CA, so one name is
right for both. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import refuse
from .istioctl import version_key
from .names import DNS_SUBDOMAIN

ISTIO_ROOT_CONFIG_MAP = "istio-ca-root-cert"
ISTIO_CRL_CONFIG_MAP = "istio-ca-crl"
ROOT_ENV = "PILOT_CA_CERT_CONFIGMAP"
CRL_ENV = "PILOT_CRL_CONFIGMAP"
TRUST_BUNDLE_NAME_SINCE = (1, 27, 0)
CRL_CONFIG_MAP_NAME_SINCE = (1, 29, 0)
MAX_CONFIG_MAP_NAME = 253


@dataclass(frozen=True)
class TrustBundle:
    """The ConfigMap names istiod writes into every namespace it discovers; Istio's defaults when not renamed."""

    root: str = ISTIO_ROOT_CONFIG_MAP
    crl: str = ISTIO_CRL_CONFIG_MAP

    def values(self) -> dict:
        """The IstioOperator values that set these names; nothing for Istio's defaults (older charts lack the keys)."""
        values = {}
        if self.root != ISTIO_ROOT_CONFIG_MAP:
            values["global"] = {"trustBundleName": self.root}
        if self.crl != ISTIO_CRL_CONFIG_MAP:
            values["pilot"] = {"crlConfigMapName": self.crl}
        return values


# Istio's own names: what a revision publishes under without own_trust_bundle or trust_bundle_name.
ISTIOS_TRUST_BUNDLE = TrustBundle()


def own_trust_bundle(namespace: str, version: str) -> TrustBundle:
    """The names of the control plane in `namespace`, as far as the Istio `version` can rename them."""
    release = version_key(version)[0]
    return TrustBundle(
        root=f"{ISTIO_ROOT_CONFIG_MAP}-{namespace}" if release >= TRUST_BUNDLE_NAME_SINCE else ISTIO_ROOT_CONFIG_MAP,
        crl=f"{ISTIO_CRL_CONFIG_MAP}-{namespace}" if release >= CRL_CONFIG_MAP_NAME_SINCE else ISTIO_CRL_CONFIG_MAP,
    )


def published_trust_bundle(deployment: dict) -> TrustBundle:
    """The names an installed istiod Deployment publishes under (its PILOT_CA_CERT_CONFIGMAP / PILOT_CRL_CONFIGMAP)."""
    env = {}
    for container in deployment["spec"]["template"]["spec"].get("containers") or []:
        env.update({item["name"]: item.get("value") for item in container.get("env") or [] if "name" in item})
    return TrustBundle(root=env.get(ROOT_ENV) or ISTIO_ROOT_CONFIG_MAP, crl=env.get(CRL_ENV) or ISTIO_CRL_CONFIG_MAP)


def trust_bundle_name_errors(name) -> list:
    """A ConfigMap name: a DNS subdomain of at most 253 characters."""
    if isinstance(name, str) and DNS_SUBDOMAIN.match(name) and len(name) <= MAX_CONFIG_MAP_NAME:
        return []
    return [
        f"trust_bundle_name {name!r} must be a ConfigMap name: at most {MAX_CONFIG_MAP_NAME} lower-case letters, "
        "digits, '-' and '.', starting and ending with a letter or digit, such as istio-ca-root-cert-tenant-a"
    ]


def resolve_trust_bundle(spec, version: str, neighbours: dict) -> tuple:
    """(TrustBundle, warnings) for the revision `spec` rendered by Istio `version`, next to `neighbours` (the other
    revisions installed in its system namespace: {revision: TrustBundle}). Refuses a name the revision cannot use."""
    release, warnings = version_key(version)[0], []
    if spec.trust_bundle_name:
        wanted = TrustBundle(root=spec.trust_bundle_name)
        if wanted.root != ISTIO_ROOT_CONFIG_MAP and release < TRUST_BUNDLE_NAME_SINCE:
            refuse([
                f"trust_bundle_name {wanted.root} needs Istio 1.27 or later (values.global.trustBundleName); "
                f"istioctl_path renders {version}: remove trust_bundle_name or install a newer Istio"
            ])  # fmt: skip
    elif spec.own_trust_bundle:
        wanted = own_trust_bundle(spec.namespace, version)
        if wanted.root == ISTIO_ROOT_CONFIG_MAP:
            warnings.append(
                f"own_trust_bundle: Istio {version} cannot rename the root ConfigMap (values.global.trustBundleName "
                f"came with 1.27), so revision {spec.name} publishes its root as the shared {ISTIO_ROOT_CONFIG_MAP}; "
                "the discovery_selectors overlap guard still keeps other control planes off its namespaces"
            )
        if neighbours:
            # A canary publishes under the name of the revision it upgrades (see the module docstring).
            revision, theirs = sorted(neighbours.items())[0]
            if theirs != wanted:
                warnings.append(
                    f"own_trust_bundle: revision {spec.name} publishes under {theirs.root} (and {theirs.crl}), the "
                    f"names of revision {revision} in namespace {spec.namespace}, since the revisions of one namespace "
                    "share the leader that writes them"
                )
            wanted = theirs
    else:
        wanted = ISTIOS_TRUST_BUNDLE
    refuse(_neighbour_problems(spec, wanted, neighbours))
    return wanted, warnings


def _neighbour_problems(spec, wanted: TrustBundle, neighbours: dict) -> list:
    return [
        f"trust_bundle_name {wanted.root} (CRL {wanted.crl}) differs from {theirs.root} (CRL {theirs.crl}) of "
        f"revision {revision}, installed in namespace {spec.namespace}: the revisions of one namespace share the "
        "leader that writes these ConfigMaps, so the other revision's pods would find no root. Set trust_bundle_name: "
        f"{theirs.root}, or own_trust_bundle: true to follow {revision}"
        for revision, theirs in sorted(neighbours.items())
        if theirs != wanted
    ]
