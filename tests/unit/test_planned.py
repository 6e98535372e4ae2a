"""Check-mode guards accept what the same run plans: pure merging of planned revisions and namespace labels."""

from ansible_collections.meshops.istio.plugins.module_utils.planned import (
    NOTHING_PLANNED,
    RunPlan,
    with_planned_namespace,
    with_planned_revisions,
)

INSTALLED = {"usergroup-1": {"namespace": "usergroup-1", "selectors": [{"matchLabels": {"usergroup": "usergroup-1"}}]}}
PLANNED = [
    {"name": "usergroup-1", "namespace": "elsewhere", "discovery_selectors": []},
    {
        "name": "team-c",
        "namespace": "team-c",
        "discovery_selectors": [{"matchLabels": {"meshops.io/tenant": "team-c"}}],
    },
]


def test_check_mode_adds_the_planned_revisions_that_are_not_installed_and_says_so():
    revisions, note = with_planned_revisions(INSTALLED, PLANNED, check_mode=True)
    assert revisions["team-c"] == {
        "namespace": "team-c",
        "selectors": [{"matchLabels": {"meshops.io/tenant": "team-c"}}],
    }
    # An installed revision is what the cluster says, never what the plan says.
    assert revisions["usergroup-1"] == INSTALLED["usergroup-1"]
    assert note.startswith("check mode: revision team-c is not installed yet")


def test_outside_check_mode_the_plan_is_ignored():
    assert with_planned_revisions(INSTALLED, PLANNED, check_mode=False) == (INSTALLED, None)
    live = {"metadata": {"name": "foo", "labels": {"a": "b"}}}
    assert with_planned_namespace(live, "foo", [{"name": "foo", "labels": {"x": "y"}}], check_mode=False) == (
        live,
        None,
    )


def test_nothing_planned_beyond_what_is_installed_gives_no_note():
    assert with_planned_revisions(INSTALLED, PLANNED[:1], check_mode=True) == (INSTALLED, None)


def test_a_planned_namespace_is_created_or_relabelled_as_the_tenant_step_leaves_it():
    planned = [{"name": "foo", "labels": {"istio.io/rev": "shared", "meshops.io/mesh": "shared"}}]
    created, note = with_planned_namespace(None, "foo", planned, check_mode=True)
    assert created["metadata"] == {"name": "foo", "labels": planned[0]["labels"]}
    assert "created by the tenant step" in note
    live = {"metadata": {"name": "foo", "labels": {"team": "a", "istio.io/rev": "old"}, "uid": "1"}}
    relabelled, note = with_planned_namespace(live, "foo", planned, check_mode=True)
    assert relabelled["metadata"]["labels"] == {"team": "a", "istio.io/rev": "shared", "meshops.io/mesh": "shared"}
    assert relabelled["metadata"]["uid"] == "1" and "labelled by the tenant step" in note


def test_a_namespace_the_plan_does_not_touch_stays_as_it_is():
    live = {"metadata": {"name": "bar", "labels": {}}}
    assert with_planned_namespace(live, "bar", [{"name": "foo", "labels": {}}], check_mode=True) == (live, None)


def test_the_run_plan_is_what_the_module_options_hold_and_empty_without_them():
    plan = RunPlan.from_params({"planned_revisions": PLANNED, "planned_namespaces": None})
    assert plan == RunPlan(revisions=tuple(PLANNED), namespaces=())
    # istio_tenant has no planned_namespaces option; a module without either plans nothing.
    assert RunPlan.from_params({"planned_revisions": []}) == NOTHING_PLANNED == RunPlan()
