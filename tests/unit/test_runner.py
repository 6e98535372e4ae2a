"""runner.rehearse_then_run: the whole plan as a dry run first, then for real only when it passed and changes
something. The action is a recording stand-in for a module's ensure function."""

import pytest
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal
from ansible_collections.meshops.istio.plugins.module_utils.runner import Rehearsal, rehearse_then_run


class FakeCluster:
    def __init__(self):
        self.rehearsing = False
        self.reports = ["a report of an earlier pass"]


class RecordingAction:
    """Returns `changed`; fails in the pass whose check_mode equals `fail_when_check_mode`."""

    def __init__(self, changed=True, fail_when_check_mode=None):
        self.changed, self.fail_when_check_mode = changed, fail_when_check_mode
        self.calls = []

    def __call__(self, cluster, check_mode):
        self.calls.append((check_mode, cluster.rehearsing))
        if check_mode == self.fail_when_check_mode:
            raise Refusal("Service x/y: spec.ports[0].nodePort: Invalid value: 80.")
        return {"changed": self.changed, "pass": "dry" if check_mode else "real"}, [], []


def run(action, check_mode=False, clusters=None):
    clusters = clusters or [FakeCluster()]
    return rehearse_then_run(action, clusters[0], clusters, check_mode), clusters


def test_a_change_is_rehearsed_as_a_dry_run_then_run_for_real():
    action = RecordingAction(changed=True)
    (result, _, _), clusters = run(action)
    assert action.calls == [(True, True), (False, False)]
    assert result["pass"] == "real"
    assert clusters[0].reports == []  # the rehearsal's would-be writes are not reported as written


def test_a_no_op_is_the_rehearsal_alone():
    action = RecordingAction(changed=False)
    (result, _, _), clusters = run(action)
    assert action.calls == [(True, True)]
    assert result["pass"] == "dry"
    assert not clusters[0].rehearsing


def test_check_mode_runs_once_and_is_not_a_rehearsal():
    action = RecordingAction(changed=True)
    (result, _, _), _ = run(action, check_mode=True)
    assert action.calls == [(True, False)]
    assert result["pass"] == "dry"


def test_a_failing_rehearsal_never_runs_for_real_and_says_nothing_was_written():
    action = RecordingAction(fail_when_check_mode=True)
    second = FakeCluster()
    with pytest.raises(Rehearsal, match="nodePort: Invalid value: 80$"):
        run(action, clusters=[FakeCluster(), second])
    assert action.calls == [(True, True)]
    assert not second.rehearsing


def test_a_failure_in_check_mode_is_the_error_itself():
    with pytest.raises(Refusal):
        run(RecordingAction(fail_when_check_mode=True), check_mode=True)


def test_a_failure_of_the_real_pass_is_the_error_itself():
    action = RecordingAction(fail_when_check_mode=False)
    with pytest.raises(Refusal):
        run(action)
    assert action.calls == [(True, True), (False, False)]
