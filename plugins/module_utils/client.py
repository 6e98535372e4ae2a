# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that imports kubernetes.core's module_utils (not a declared public API; galaxy.yml caps its
major version). Everything else talks to the cluster through `connect()` and `ApiError`."""

from __future__ import annotations

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from kubernetes.dynamic.exceptions import DynamicApiError as ApiError
    from kubernetes.dynamic.exceptions import NotFoundError
    from kubernetes.dynamic.resource import Resource
    from urllib3.exceptions import HTTPError as TransportError

    IMPORT_ERROR = None
except ImportError as error:  # reported by fail_json in connect()
    IMPORT_ERROR = error
    Resource = None

    class ApiError(Exception):
        pass

    class NotFoundError(ApiError):
        pass

    class CoreException(Exception):
        pass

    class TransportError(Exception):
        pass


__all__ = ["AUTH_ARG_SPEC", "ApiError", "NotFoundError", "Resource", "TransportError", "connect", "unreachable"]


def connect(module):
    """A kubernetes DynamicClient configured from the module's auth options and K8S_AUTH_* variables."""
    if IMPORT_ERROR is not None:
        module.fail_json(msg=f"The kubernetes Python library is required: {IMPORT_ERROR}. Install it with pip.")
    # kubernetes.core's factory wants its own module class; the auth options as keywords need no such thing,
    # and it still falls back to the K8S_AUTH_* environment variables for those not set.
    auth = {name: module.params.get(name) for name in AUTH_ARG_SPEC}
    try:
        return get_api_client(**auth).client
    except CoreException as error:
        module.fail_json(msg=f"Cannot configure the Kubernetes client: {error}. Check kubeconfig, context or host.")
    except TransportError as error:  # the factory already asks the server for its version
        module.fail_json(msg=unreachable(auth.get("host") or "the kubeconfig's server", error))


def unreachable(host: str, error) -> str:
    """The one sentence for an API server that does not answer."""
    return (
        f"Cannot reach the Kubernetes API at {host} ({type(error).__name__}); check host, kubeconfig and "
        "context, and that the API server is up"
    )
