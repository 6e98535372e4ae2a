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


__all__ = ["AUTH_ARG_SPEC", "ApiError", "NotFoundError", "Resource", "connect"]


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
