# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Gateway API's CustomResourceDefinitions, read from files the user gives (option `gateway_api_crds`): the
collection ships none, and never downloads them."""

from __future__ import annotations

from pathlib import Path

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core; the import sanity test runs without it
    yaml = None

from ..errors import Refusal, refuse

GATEWAY_API_GROUP = "gateway.networking.k8s.io"
GATEWAYS_CRD = f"gateways.{GATEWAY_API_GROUP}"


def read_gateway_api_crds(path: str) -> list:
    """The CRDs in `path` (a directory of .yaml/.yml files, or one file). Refuses anything else: another kind, a CRD
    of another group, a directory without the Gateway CRD, a file that does not parse."""
    source = Path(path)
    files = sorted([*source.glob("*.yaml"), *source.glob("*.yml")]) if source.is_dir() else [source]
    if not source.exists() or not files:
        raise Refusal(f"gateway_api_crds {path!r} holds no .yaml file; point it at the Gateway API CRD files")
    crds, problems = [], []
    for file in files:
        try:
            documents = [doc for doc in yaml.safe_load_all(file.read_text()) if doc]
        except (OSError, yaml.YAMLError) as error:
            problems.append(f"gateway_api_crds file {file} cannot be read as YAML: {error}")
            continue
        for doc in documents:
            problem = _not_a_gateway_api_crd(doc, file)
            if problem:
                problems.append(problem)
            else:
                crds.append(doc)
    if not problems and GATEWAYS_CRD not in {crd["metadata"]["name"] for crd in crds}:
        problems.append(f"gateway_api_crds {path!r} lacks the CRD {GATEWAYS_CRD}; give the Gateway API's CRD files")
    refuse(problems)
    return crds


def _not_a_gateway_api_crd(doc, file: Path) -> str | None:
    if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
        kind = doc.get("kind") if isinstance(doc, dict) else type(doc).__name__
        return f"gateway_api_crds file {file} holds a {kind}, not a CustomResourceDefinition; remove it from the path"
    if doc.get("apiVersion") != "apiextensions.k8s.io/v1" or (doc.get("spec") or {}).get("group") != GATEWAY_API_GROUP:
        return f"gateway_api_crds file {file} holds a CRD that is not apiextensions.k8s.io/v1 of {GATEWAY_API_GROUP}"
    return None


def gateway_api_problem(served: bool, crds: list) -> str | None:
    """Why a Gateway API Gateway cannot be written: the cluster does not serve the kind and no CRDs were given."""
    if served or crds:
        return None
    return (
        f"the cluster does not serve Gateway API Gateways (no CRD {GATEWAYS_CRD}); set gateway_api_crds to the "
        "directory of the Gateway API's standard CRD files, or install them first"
    )
