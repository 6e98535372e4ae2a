"""Label selectors evaluated locally, as the API server and istiod evaluate them."""

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.selectors import any_matches, matches, selector_errors

LABELS = {"usergroup": "usergroup-1", "tier": "web"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({"matchLabels": {"usergroup": "usergroup-1"}}, True),
        ({"matchLabels": {"usergroup": "usergroup-2"}}, False),
        ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web", "db"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["web"]}]}, False),
        ({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["x"]}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, False),
        (
            {
                "matchLabels": {"usergroup": "usergroup-1"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}],
            },
            False,
        ),
    ],
)
def test_matches(selector, expected):
    assert matches(selector, LABELS) is expected


def test_discovery_selectors_any_and_empty_means_all():
    assert any_matches([], {"anything": "x"})
    assert any_matches([{"matchLabels": {"a": "1"}}, {"matchLabels": {"usergroup": "usergroup-1"}}], LABELS)
    assert not any_matches([{"matchLabels": {"a": "1"}}], LABELS)


def test_errors_name_the_parameter_and_the_fix():
    errors = selector_errors(
        {"matchLabel": {"a": "b"}, "matchExpressions": [{"key": "k", "operator": "Equals"}]}, "discovery_selectors[0]"
    )
    assert any("discovery_selectors[0] has unknown key 'matchLabel'" in e for e in errors)
    assert any("operator must be one of In, NotIn, Exists, DoesNotExist" in e for e in errors)
    assert selector_errors({}, "s")[0].startswith("s is empty and would select every namespace")
    assert selector_errors({"matchLabels": {"a": 1}}, "s") == ["s.matchLabels.a must be a string; quote it"]
    assert selector_errors({"matchExpressions": [{"key": "k", "operator": "In"}]}, "s") == [
        "s.matchExpressions[0] with operator In needs values"
    ]
    assert selector_errors({"matchLabels": {"a": "b"}}, "s") == []
