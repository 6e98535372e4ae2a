# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes label selectors, evaluated locally: validation and matching (pure)."""

from __future__ import annotations

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


def selector_errors(selector, where: str) -> list:
    """What is wrong with one LabelSelector, as sentences naming `where` it came from."""
    if not isinstance(selector, dict):
        return [f"{where} must be a label selector (matchLabels and/or matchExpressions), got {selector!r}"]
    errors = [f"{where} has unknown key {key!r}; use matchLabels or matchExpressions" for key in selector
              if key not in ("matchLabels", "matchExpressions")]  # fmt: skip
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        errors.append(f"{where} is empty and would select every namespace; give matchLabels or matchExpressions")
    for key, value in (selector.get("matchLabels") or {}).items():
        if not isinstance(value, str):
            errors.append(f"{where}.matchLabels.{key} must be a string; quote it")
    for index, expression in enumerate(selector.get("matchExpressions") or []):
        at = f"{where}.matchExpressions[{index}]"
        operator, values = expression.get("operator"), expression.get("values") or []
        if not expression.get("key"):
            errors.append(f"{at} needs a key")
        if operator not in OPERATORS:
            errors.append(f"{at}.operator must be one of {', '.join(OPERATORS)}, got {operator!r}")
        elif operator in ("In", "NotIn") and not values:
            errors.append(f"{at} with operator {operator} needs values")
        elif operator in ("Exists", "DoesNotExist") and values:
            errors.append(f"{at} with operator {operator} must not have values")
    return errors


def matches(selector: dict, labels: dict) -> bool:
    """Whether one LabelSelector selects an object with `labels`."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if operator == "In" and not (present and labels[key] in values):
            return False
        if operator == "NotIn" and present and labels[key] in values:
            return False
        if operator == "Exists" and not present:
            return False
        if operator == "DoesNotExist" and present:
            return False
    return True


def any_matches(selectors: list, labels: dict) -> bool:
    """Istio's discoverySelectors semantics: a namespace is seen when any selector matches; none = all."""
    return not selectors or any(matches(s, labels) for s in selectors)
