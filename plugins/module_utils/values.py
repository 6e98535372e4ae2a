# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Checks of values the API server (or istioctl) would only reject late, after other objects were written: label
and annotation maps, CIDRs, resource quantities, port names and numbers, cluster names, names that YAML reads as
something else. Pure; each returns sentences that name the parameter, the value and the fix ([] when all is well),
as names.dns_label_errors does. Modules word nothing themselves around these."""

from __future__ import annotations

import ipaddress
import re

from .names import DNS_LABEL, DNS_SUBDOMAIN, is_label_key, is_label_value

# Kubernetes caps the keys and values of all of an object's annotations together at 256 KiB.
MAX_ANNOTATIONS_BYTES = 256 * 1024
# <signedNumber><suffix>: a decimal number, then a binary or decimal SI suffix or a decimal exponent.
_QUANTITY = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
# A named container port (IANA_SVC_NAME): at most 15 lower-case letters, digits and '-', at least one letter.
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
MAX_PORT_NAME_LENGTH = 15
# Words and numbers the YAML readers on the way to istioctl and Kubernetes (YAML 1.1 and 1.2, Go's number parser)
# turn into a bool, a null or a number; all of them are valid DNS labels.
_NOT_A_STRING_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "inf", "infinity", "nan"}
_NUMBER = re.compile(r"^([0-9]+|[0-9]+e-?[0-9]+|0x[0-9a-f]+|0o[0-7]+|0b[01]+|[0-9]{4}-[0-9]{1,2}-[0-9]{1,2})$")


def label_errors(labels, parameter: str) -> list:
    """Every key and value of a label map checked as Kubernetes does; values must be strings (quoted in YAML)."""
    if not isinstance(labels, dict):
        return [f"{parameter} must be a mapping of label keys to values, got {labels!r}"]
    errors = []
    for key, value in labels.items():
        errors += _qualified_key_errors(key, parameter, "label")
        if not isinstance(value, str):
            errors.append(f"{parameter}.{key} is {value!r}, not a string; quote it (label values are strings)")
        elif not is_label_value(value):
            errors.append(
                f"{parameter}.{key} value {value!r} is not a valid label value: at most 63 letters, digits, '-', '_' "
                "or '.', starting and ending with a letter or digit (or empty)"
            )
    return errors


def annotation_errors(annotations, parameter: str, strings_only: bool = True) -> list:
    """Keys as label keys (case aside), string values, and at most 256 KiB of keys and values together.
    `strings_only=False` where the module turns the values into strings itself."""
    if not isinstance(annotations, dict):
        return [f"{parameter} must be a mapping of annotation keys to values, got {annotations!r}"]
    errors, size = [], 0
    for key, value in annotations.items():
        errors += _qualified_key_errors(key.lower() if isinstance(key, str) else key, parameter, "annotation", key)
        if not isinstance(value, str) and strings_only:
            errors.append(f"{parameter}.{key} is {value!r}, not a string; quote it (annotation values are strings)")
            continue
        size += len(str(key).encode()) + len(str(value).encode())
    if size > MAX_ANNOTATIONS_BYTES:
        errors.append(
            f"{parameter} hold {size} bytes of keys and values; Kubernetes allows {MAX_ANNOTATIONS_BYTES} (256 KiB) "
            "per object, so move the large values elsewhere (a ConfigMap)"
        )
    return errors


def _qualified_key_errors(key, parameter: str, what: str, shown=None) -> list:
    shown = key if shown is None else shown
    if is_label_key(key):
        return []
    if isinstance(key, str) and "/" in key:
        prefix, name = key.rsplit("/", 1)
        if not (DNS_SUBDOMAIN.match(prefix) and len(prefix) <= 253):
            return [
                f"{parameter} key {shown!r} has an invalid prefix {prefix!r}: it must be a DNS subdomain (lower-case "
                "letters, digits, '-' and '.', at most 253 characters) followed by one '/'"
            ]
        key = name
    return [
        f"{parameter} key {shown!r} is not a valid {what} key: the name {key!r} must be at most 63 letters, digits, "
        "'-', '_' or '.', starting and ending with a letter or digit, after an optional DNS-subdomain prefix and '/'"
    ]


def cidr_errors(value, parameter: str) -> list:
    """An IPv4 or IPv6 network in CIDR notation with no host bits set (10.0.0.0/8, not 10.0.0.1/8)."""
    if not isinstance(value, str) or "/" not in value:
        return [f"{parameter} {value!r} is not a CIDR; give a network like 10.0.0.0/8 or 2001:db8::/32"]
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as error:
        try:
            network = ipaddress.ip_network(value, strict=False)
        except ValueError:
            return [f"{parameter} {value!r} is not a CIDR ({error}); give a network like 10.0.0.0/8 or 2001:db8::/32"]
        return [f"{parameter} {value!r} has host bits set; give the network address {network}"]
    return []


def ip_address_errors(value, parameter: str) -> list:
    """One IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return [f"{parameter} {value!r} is not an IP address; give one like 203.0.113.10 or 2001:db8::10"]
    return []


def quantity_errors(value, parameter: str, allow_negative: bool = False) -> list:
    """A Kubernetes resource quantity: 100m, 0.5, 128Mi, 1G, 1e3 (a number, then an SI suffix or an exponent)."""
    text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _QUANTITY.match(text):
        return [
            f"{parameter} {value!r} is not a Kubernetes quantity; write a number with an optional suffix, such as "
            "100m or 0.5 (CPU) or 128Mi or 1Gi (memory)"
        ]
    if text.startswith("-") and not allow_negative and text.strip("-0.") != "":
        return [f"{parameter} {value!r} is negative; give 0 or more"]
    return []


def resources_errors(resources, parameter: str) -> list:
    """A container's resources: requests and limits, each a map of resource names to quantities."""
    if not isinstance(resources, dict):
        return [f"{parameter} must be a mapping with requests and/or limits, got {resources!r}"]
    errors = []
    for section, amounts in resources.items():
        if section not in ("requests", "limits"):
            errors.append(f"{parameter} has unknown key {section!r}; use requests and limits")
            continue
        if not isinstance(amounts, dict):
            errors.append(f"{parameter}.{section} must be a mapping of resource names (cpu, memory) to quantities")
            continue
        for name, amount in amounts.items():
            errors += _qualified_key_errors(name, f"{parameter}.{section}", "resource name")
            errors += quantity_errors(amount, f"{parameter}.{section}.{name}")
    return errors


def port_name_errors(value, parameter: str) -> list:
    """A named container port (IANA service name), as a Service's targetPort or a container port's name."""
    problem = None
    if not isinstance(value, str) or not _PORT_NAME.match(value):
        problem = "must be lower-case letters, digits and '-', starting and ending with a letter or digit"
    elif len(value) > MAX_PORT_NAME_LENGTH:
        problem = f"is {len(value)} characters; a port name has at most {MAX_PORT_NAME_LENGTH}"
    elif "--" in value:
        problem = "must not hold '--'"
    elif not re.search("[a-z]", value):
        problem = "needs at least one letter (digits alone are a port number)"
    return [f"{parameter} {value!r} is not a valid port name: it {problem}"] if problem else []


def port_number_errors(value, parameter: str) -> list:
    """A TCP/UDP port number from 1 to 65535 (a nodePort's narrower range is the API server's, checked by the
    server-side dry run)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        return [f"{parameter} {value!r} must be a port number from 1 to 65535"]
    return []


def cluster_name_errors(value, parameter: str = "cluster_name") -> list:
    """The one rule for a cluster's Istio cluster ID in every module: a DNS-1123 label, because it becomes part of
    Secret names (istio-remote-secret-<name>), label values and the injection path."""
    if not isinstance(value, str) or not DNS_LABEL.match(value) or len(value) > 63:
        return [
            f"{parameter} {value!r} must be a DNS-1123 label (at most 63 lower-case letters, digits and '-', "
            "starting and ending with a letter or digit); give the cluster's Istio cluster ID "
            "(values.global.multiCluster.clusterName)"
        ]
    return []


def plain_string_errors(value, parameter: str) -> list:
    """A name YAML would read as a number, a bool, a null or a date (123, 1e3, 0x1f, true, yes, null, inf, nan,
    2024-01-01) breaks the documents istioctl and Kubernetes read; refuse it with a sentence."""
    if isinstance(value, str) and (value.lower() in _NOT_A_STRING_WORDS or _NUMBER.match(value.lower())):
        return [
            f"{parameter} {value!r} reads as a number, bool or null in YAML, which breaks istioctl's rendering; "
            f"choose a name YAML keeps as text, such as rev-{value}"
        ]
    return []
