# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What one istio_revision task asks for: `RevisionSpec`, built once from the module's parameters, and `validate`,
the rules its argument spec cannot express (names, selectors, cross-field rules). Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from .errors import refuse
from .names import dns_label_errors, is_label_value
from .render_cache import default_directory
from .selectors import selector_errors
from .trust_bundle import trust_bundle_name_errors
from .values import cluster_name_errors, label_errors, plain_string_errors
from .vocabulary import MAX_REVISION_LENGTH, MAX_TAG_LENGTH, NETWORK_LABEL

# What Kubernetes accepts as a container's environment variable name.
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")

REMOTE_PROFILE = "remote"


@dataclass(frozen=True)
class RevisionSpec:
    """One revision's parameters with every default resolved; builders, guards and ensure functions read only this."""

    name: str
    namespace: str
    state: str
    istio_version: str | None
    istioctl_path: str
    profile: str
    discovery_selectors: tuple  # of LabelSelector dicts
    mesh_config: dict
    values: dict
    pilot_env: dict
    revision_tags: tuple
    # Every tag the revision should carry: `default` when it is the default revision, then revision_tags.
    tags: tuple
    canary_of: str | None
    default_revision: bool
    move_tags: bool
    mesh_id: str | None
    cluster_name: str | None
    network: str | None
    remote_pilot_address: str | None
    control_plane_clusters: tuple
    wait: bool
    wait_timeout: int
    force: bool
    force_conflicts: bool
    # The root ConfigMap's name (Istio's istio-ca-root-cert when None), or own_trust_bundle's name (trust_bundle.py).
    trust_bundle_name: str | None = None
    own_trust_bundle: bool = False
    # Where renderings are cached on this host (render_cache.py), None for no cache.
    render_cache_dir: str | None = None

    @classmethod
    def from_params(cls, params: dict) -> RevisionSpec:
        revision_tags = tuple(params["revision_tags"] or ())
        resolved = {
            "discovery_selectors": tuple(params["discovery_selectors"] or ()),
            "mesh_config": dict(params["mesh_config"] or {}),
            "values": dict(params["values"] or {}),
            "pilot_env": dict(params["pilot_env"] or {}),
            "revision_tags": revision_tags,
            "tags": (("default",) if params["default_revision"] else ()) + revision_tags,
            "control_plane_clusters": tuple(params["control_plane_clusters"] or ()),
            "render_cache_dir": (params.get("render_cache_dir") or default_directory())
            if params.get("render_cache")
            else None,
        }
        # Every other field is the parameter of the same name, as the argument spec left it.
        return cls(**{f.name: params[f.name] for f in fields(cls) if f.name not in resolved}, **resolved)

    @property
    def remote(self) -> bool:
        """A remote cluster of a primary-remote mesh: its injector calls the primary's istiod."""
        return self.profile == REMOTE_PROFILE


def validate(spec: RevisionSpec) -> None:
    refuse(revision_errors(spec))


def validate_revisions(specs: list) -> None:
    """Every input error of every `revisions` entry at once, each named `revisions[<index>].<option>`, and what entries
    cannot share: a revision name (one control plane) and a tag (a tag points at one revision)."""
    errors, names, tags = [], {}, {}
    for index, spec in enumerate(specs):
        at = f"revisions[{index}]"
        errors += [f"{at}.{error}" for error in revision_errors(spec)]
        if spec.name in names:
            errors.append(f"{at}.name: revision {spec.name} is revisions[{names[spec.name]}] too; list it once")
        names.setdefault(spec.name, index)
        for tag in spec.tags:
            if tag in tags and tags[tag] != index:
                errors.append(
                    f"{at}.revision_tags: tag {tag} is also revisions[{tags[tag]}]'s, and a tag points at one "
                    "revision; keep it on one entry"
                )
            tags.setdefault(tag, index)
    refuse(errors)


def revision_errors(spec: RevisionSpec) -> list:
    """What is wrong with one revision's parameters, each sentence starting with the parameter's name."""
    name, tags = spec.name, spec.revision_tags
    errors = dns_label_errors(name, "name", MAX_REVISION_LENGTH) + dns_label_errors(spec.namespace, "namespace")
    errors += plain_string_errors(name, "name")
    if name == "default":
        errors.append("name 'default' is reserved for Istio's default revision; choose another revision name")
    for tag in tags:
        errors += dns_label_errors(tag, "revision_tags entry", MAX_TAG_LENGTH)
        errors += plain_string_errors(tag, "revision_tags entry")
        if tag == name:
            errors.append(f"revision_tags entry {tag!r} equals the revision name; a tag must differ from revisions")
    if spec.default_revision and "default" in tags:
        errors.append("revision_tags holds 'default' and default_revision is true; keep only default_revision")
    selectors = spec.discovery_selectors
    for index, selector in enumerate(selectors):
        errors += selector_errors(selector, f"discovery_selectors[{index}]")
        if isinstance(selector, dict) and isinstance(selector.get("matchLabels"), dict):
            # They become the system namespace's labels.
            errors += label_errors(selector["matchLabels"], f"discovery_selectors[{index}].matchLabels")
    if selectors and not any((s or {}).get("matchLabels") for s in selectors if isinstance(s, dict)):
        errors.append(
            "discovery_selectors need at least one matchLabels selector: its labels go on the system namespace "
            "so the revision's istiod sees its own namespace"
        )
    errors += _remote_errors(spec)
    if spec.cluster_name is not None:
        errors += cluster_name_errors(spec.cluster_name)
    if spec.network is not None and not is_label_value(spec.network):
        errors.append(
            f"network {spec.network!r} becomes the label value {NETWORK_LABEL}; give at most 63 letters, digits, '-', "
            "'_' or '.', starting and ending with a letter or digit"
        )
    errors += [
        f"pilot_env key {key!r} is not an environment variable name; use letters, digits, '_', '-' and '.', not "
        "starting with a digit"
        for key in spec.pilot_env
        if not isinstance(key, str) or not _ENV_NAME.match(key)
    ]
    errors += value_type_errors(spec.values, "values")
    return errors + _trust_bundle_errors(spec)


def _trust_bundle_errors(spec: RevisionSpec) -> list:
    errors = [] if spec.trust_bundle_name is None else trust_bundle_name_errors(spec.trust_bundle_name)
    if spec.trust_bundle_name is not None and spec.own_trust_bundle:
        errors.append("trust_bundle_name and own_trust_bundle: true both name the root ConfigMap; keep one of them")
    given = spec.values.get("global") if isinstance(spec.values, dict) else None
    if isinstance(given, dict) and "trustBundleName" in given:
        # The module reads the name back from istiod's Deployment for canaries: it must be the one it sets.
        errors.append("values.global.trustBundleName is set by the module: use trust_bundle_name or own_trust_bundle")
    return errors


# Where the Istio charts' values must hold a mapping: istioctl stops with a Go unmarshal error naming no key when
# one of these is a string, a number or a list.
_MAPPINGS = (
    "global",
    "global.proxy",
    "global.proxy.resources",
    "global.proxy_init",
    "global.multiCluster",
    "global.meshNetworks",
    "global.logging",
    "global.tracer",
    "pilot",
    "pilot.env",
    "pilot.resources",
    "pilot.autoscaleBehavior",
    "pilot.podAnnotations",
    "pilot.podLabels",
    "pilot.nodeSelector",
    "pilot.cni",
    "gateways",
    "meshConfig",
    "sidecarInjectorWebhook",
    "telemetry",
    "istiodRemote",
    "base",
    "cni",
    "ztunnel",
)


def value_type_errors(values, parameter: str) -> list:
    """The keys of `values` given a scalar or a list where the charts take a mapping, named by their path."""
    if not isinstance(values, dict):
        return [f"{parameter} must be a mapping (the IstioOperator spec.values), got {type(values).__name__}"]
    errors = []
    for path in _MAPPINGS:
        value, found = values, True
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                found = False
                break
            value = value[key]
        if found and value is not None and not isinstance(value, dict):
            errors.append(
                f"{parameter}.{path} must be a mapping, got {type(value).__name__} {value!r}; give its keys, as in "
                f"{parameter}.{path}: {{key: value}}"
            )
    return errors


def _remote_errors(spec: RevisionSpec) -> list:
    """A remote cluster's injector must know where the primary's istiod is and which cluster and network it serves."""
    errors = []
    if spec.remote:
        missing = [key for key in ("cluster_name", "network", "remote_pilot_address") if not getattr(spec, key)]
        if missing:
            errors.append(
                f"profile remote needs {', '.join(missing)}: the remote's injector calls the primary's istiod at "
                "remote_pilot_address (its east-west gateway) on the path of cluster_name and network"
            )
    elif spec.remote_pilot_address:
        errors.append(
            "remote_pilot_address is only for profile remote (it would point this istiod's own proxies away from "
            "it); remove it or set profile: remote"
        )
    for entry in spec.control_plane_clusters:
        if not entry or "," in entry or entry != entry.strip():
            errors.append(
                f"control_plane_clusters entry {entry!r} must be a cluster name (or '*') without commas or spaces"
            )
    return errors
