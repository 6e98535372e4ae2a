# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes' syntax for names and labels, in one place (pure). Modules word their own errors around these."""

from __future__ import annotations

import re

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label: namespaces, most object names
DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # Service names must start with a letter
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def is_label_key(key) -> bool:
    """[prefix/]name: an optional DNS subdomain prefix, a name of at most 63 letters, digits and -_."""
    if not isinstance(key, str):
        return False
    prefix, slash, name = key.rpartition("/")
    prefix_ok = bool(DNS_SUBDOMAIN.match(prefix)) and len(prefix) <= 253 if slash else True
    return bool(_LABEL_NAME.match(name)) and len(name) <= 63 and prefix_ok


def is_label_value(value) -> bool:
    """A string, empty or at most 63 letters, digits and -_. starting and ending alphanumeric."""
    return isinstance(value, str) and (not value or (bool(_LABEL_NAME.match(value)) and len(value) <= 63))


def dns_label_errors(value, parameter: str, max_length: int = 63, pattern=DNS_LABEL) -> list:
    """[] when `value` is a DNS label (RFC 1123, or `pattern`) of at most `max_length` characters, else the one
    sentence naming `parameter`."""
    if not isinstance(value, str) or not pattern.match(value):
        if pattern is DNS_LABEL:
            return [f"{parameter} {value!r} must be a DNS-1123 label: lower-case letters, digits and '-'"]
        return [f"{parameter} {value!r} must be lower-case letters, digits and '-', starting with a lower-case letter"]
    if len(value) > max_length:
        return [f"{parameter} {value!r} is {len(value)} characters; at most {max_length} fit the names derived from it"]
    return []
