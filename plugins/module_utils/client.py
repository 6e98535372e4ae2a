# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that imports kubernetes.core's module_utils (not a declared public API; galaxy.yml caps its
major version). Everything else talks to the cluster through `connect()`, `connect_other()` and cluster.Cluster."""

from __future__ import annotations

import os

from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC

from .errors import ClusterUnreachable

try:
    import yaml
except ImportError:  # PyYAML comes with ansible-core; the import sanity test runs without it
    yaml = None

try:
    from ansible_collections.kubernetes.core.plugins.module_utils.args_common import (
        extract_sensitive_values_from_kubeconfig,
    )
except ImportError:  # kubernetes.core < 6.3 hides a kubeconfig option as a whole (no_log), so nothing to add
    extract_sensitive_values_from_kubeconfig = None

try:
    import kubernetes
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.client import create_api_client, get_api_client
    from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
    from kubernetes.config import ConfigException
    from kubernetes.dynamic.exceptions import DynamicApiError as ApiError
    from kubernetes.dynamic.exceptions import NotFoundError
    from kubernetes.dynamic.resource import Resource
    from urllib3.exceptions import HTTPError as TransportError
    from urllib3.util import make_headers

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

    class ConfigException(Exception):
        pass


__all__ = [
    "AUTH_ARG_SPEC",
    "ApiError",
    "NotFoundError",
    "Resource",
    "TransportError",
    "configuration_for",
    "connect",
    "connect_other",
    "kubeconfig_for",
]
# kubernetes.client.Configuration attributes set from kubernetes.core's option names, as its factory does.
_CONFIGURATION_ATTRIBUTES = {
    "username": "username",
    "password": "password",
    "validate_certs": "verify_ssl",
    "ca_cert": "ssl_ca_cert",
    "client_cert": "cert_file",
    "client_key": "key_file",
    "proxy": "proxy",
    "no_proxy": "no_proxy",
}


def connect(module):
    """A kubernetes DynamicClient configured from the module's auth options and K8S_AUTH_* variables."""
    if IMPORT_ERROR is not None:
        module.fail_json(msg=f"The kubernetes Python library is required: {IMPORT_ERROR}. Install it with pip.")
    # kubernetes.core's factory wants its own module class; the auth options as keywords need no such thing,
    # and it still falls back to the K8S_AUTH_* environment variables for those not set.
    auth = {name: module.params.get(name) for name in AUTH_ARG_SPEC}
    kubeconfig, parameter = auth.get("kubeconfig"), "kubeconfig"
    if kubeconfig is None and os.environ.get("K8S_AUTH_KUBECONFIG"):
        kubeconfig, parameter = os.environ["K8S_AUTH_KUBECONFIG"], "K8S_AUTH_KUBECONFIG"
    problem = kubeconfig_problem(kubeconfig, parameter)
    if problem:
        module.fail_json(msg=problem)
    try:
        return get_api_client(**auth).client
    except yaml.YAMLError as error:  # the default kubeconfig (~/.kube/config), read by the factory
        module.fail_json(msg=f"The kubeconfig is not valid YAML ({_yaml_problem(error)}); fix it or set kubeconfig.")
    except CoreException as error:
        module.fail_json(msg=f"Cannot configure the Kubernetes client: {error}. Check kubeconfig, context or host.")
    except TransportError as error:  # the factory already asks the server for its version
        module.fail_json(msg=str(ClusterUnreachable(auth.get("host") or "the kubeconfig's server", error)))


def connect_other(module, auth: dict, parameter: str):
    """A DynamicClient for a second cluster from a dict of kubernetes.core's auth options (the module option
    `parameter`). Unlike connect(): no K8S_AUTH_* variables, no in-cluster config and no default kubeconfig, since
    those describe the first cluster; and a configuration of its own, so the two clusters' credentials never mix
    (the kubernetes library's default configuration is neither read nor changed)."""
    if IMPORT_ERROR is not None:
        module.fail_json(msg=f"The kubernetes Python library is required: {IMPORT_ERROR}. Install it with pip.")
    if not (auth.get("kubeconfig") or auth.get("host")):
        module.fail_json(
            msg=f"{parameter} needs kubeconfig or host: the second cluster's credentials are never taken from "
            "K8S_AUTH_* variables, the in-cluster config or the default kubeconfig"
        )
    problem = kubeconfig_problem(auth.get("kubeconfig"), f"{parameter}.kubeconfig")
    if problem:
        module.fail_json(msg=problem)
    if isinstance(auth.get("kubeconfig"), dict) and extract_sensitive_values_from_kubeconfig:
        module.no_log_values.update(extract_sensitive_values_from_kubeconfig(auth["kubeconfig"]))
    try:
        configuration = configuration_for(auth)
    except (ConfigException, OSError, ValueError) as error:
        module.fail_json(msg=f"Cannot configure the client for {parameter}: {error}. Check {parameter}.kubeconfig.")
    try:
        return create_api_client(configuration, **_impersonation_headers(auth))
    except TransportError as error:  # discovery already asks the server for its version
        module.fail_json(msg=str(ClusterUnreachable(configuration.host, error, parameter)))
    except ApiError as error:
        module.fail_json(
            msg=f"The API server of {parameter} at {configuration.host} answered {error.status} ({error.reason}); "
            f"check the credentials in {parameter}"
        )


def kubeconfig_problem(kubeconfig, parameter: str) -> str | None:
    """One sentence naming `parameter` when a kubeconfig option cannot be read as a kubeconfig (content given where
    a path is expected, a missing file, invalid YAML, not a mapping); None when it can, or when it is not set.
    Never quotes the content, which holds credentials."""
    if kubeconfig is None or isinstance(kubeconfig, dict):
        return None
    if not isinstance(kubeconfig, str):
        return f"{parameter} must be the path of a kubeconfig file or a kubeconfig as a mapping"
    path = os.path.expanduser(kubeconfig)
    if not os.path.exists(path):
        if "\n" in kubeconfig or "apiVersion" in kubeconfig:
            return (
                f"{parameter} holds text, not a path: give the path of a kubeconfig file, or the kubeconfig as a "
                "mapping (for example with the from_yaml filter)"
            )
        return f"{parameter} {kubeconfig} does not exist; give the path of a kubeconfig file on the controller"
    try:
        with open(path, encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        return f"{parameter} {kubeconfig} is not valid YAML ({_yaml_problem(error)}); fix the file or give another"
    except (OSError, UnicodeDecodeError) as error:
        return f"{parameter} {kubeconfig} cannot be read ({type(error).__name__}); give a readable kubeconfig file"
    if not isinstance(config, dict):
        return (
            f"{parameter} {kubeconfig} is not a kubeconfig: its YAML is not a mapping with clusters, contexts and "
            "users; give a kubeconfig file"
        )
    return None


def _yaml_problem(error) -> str:
    """Where and what, without the parser's trace or the file's content."""
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{getattr(error, 'problem', None) or type(error).__name__}"


def configuration_for(auth: dict):
    """A kubernetes.client.Configuration of its own from kubernetes.core's auth options; nothing from the
    environment."""
    configuration = kubernetes.client.Configuration()
    credentials = auth.get("api_key") or (auth.get("username") and auth.get("password"))
    credentials = credentials or (auth.get("client_cert") and auth.get("client_key"))
    # As in kubernetes.core: a host with credentials is enough, and then the kubeconfig is not read.
    if auth.get("kubeconfig") and not (auth.get("host") and credentials):
        options = {
            "context": auth.get("context"),
            "client_configuration": configuration,
            "persist_config": bool(auth.get("persist_config")),
        }
        if isinstance(auth["kubeconfig"], dict):
            kubernetes.config.load_kube_config_from_dict(auth["kubeconfig"], **options)
        else:
            kubernetes.config.load_kube_config(auth["kubeconfig"], **options)
    for option, attribute in _CONFIGURATION_ATTRIBUTES.items():
        if auth.get(option) is not None:
            setattr(configuration, attribute, auth[option])
    if auth.get("host"):
        configuration.host = auth["host"].rstrip("/")
    if auth.get("api_key"):
        configuration.api_key = {"authorization": f"Bearer {auth['api_key']}"}
    if auth.get("proxy_headers"):
        configuration.proxy_headers = make_headers(**{k: v for k, v in auth["proxy_headers"].items() if v})
    return configuration


def _impersonation_headers(auth: dict) -> dict:
    headers = {"Impersonate-User": auth.get("impersonate_user"), "Impersonate-Group": auth.get("impersonate_groups")}
    return {name: value for name, value in headers.items() if value}


def kubeconfig_for(api_client) -> dict:
    """A kubeconfig (as a mapping) that reaches the cluster as `api_client` (a kubernetes ApiClient) does, for a
    tool that takes only a kubeconfig (istioctl): its server, CA, TLS check, proxy, token or client certificate,
    basic auth and impersonation, however the module got them (kubeconfig and context, host and api_key, K8S_AUTH_*).
    It holds credentials: write it only to a private file and never return it."""
    configuration = api_client.configuration
    cluster = {"server": configuration.host}
    if not configuration.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    elif configuration.ssl_ca_cert:
        cluster["certificate-authority"] = configuration.ssl_ca_cert
    if configuration.proxy:
        cluster["proxy-url"] = configuration.proxy
    user = {}
    token = (configuration.api_key or {}).get("authorization") or (configuration.api_key or {}).get("BearerToken")
    if token:
        user["token"] = token.removeprefix("Bearer ").strip()
    if configuration.cert_file and configuration.key_file:
        user["client-certificate"], user["client-key"] = configuration.cert_file, configuration.key_file
    if configuration.username and configuration.password:
        user["username"], user["password"] = configuration.username, configuration.password
    headers = api_client.default_headers or {}
    if headers.get("Impersonate-User"):
        user["as"] = headers["Impersonate-User"]
    groups = headers.get("Impersonate-Group")
    if groups:
        user["as-groups"] = [groups] if isinstance(groups, str) else list(groups)
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": "user", "user": user}],
        "contexts": [{"name": "module", "context": {"cluster": "cluster", "user": "user"}}],
        "current-context": "module",
    }
