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


class RecordingLock:
    """Records when the lock is taken and given back, among the action's calls."""

    def __init__(self, action):
        self.action = action

    def __call__(self, cluster):
        return self

    def __enter__(self):
        self.action.calls.append("locked")

    def __exit__(self, *_):
        self.action.calls.append("unlocked")


def run(action, check_mode=False, clusters=None, locked=None):
    clusters = clusters or [FakeCluster()]
    return rehearse_then_run(action, clusters[0], clusters, check_mode, locked), clusters


def test_a_change_is_rehearsed_as_a_dry_run_then_run_for_real():
    action = RecordingAction(changed=True)
    (result, _warnings, _diff), clusters = run(action)
    assert action.calls == [(True, True), (True, True), (False, False)]
    assert result["pass"] == "real"
    assert clusters[0].reports == []  # the rehearsal's would-be writes are not reported as written


def test_a_change_is_rehearsed_again_and_run_under_the_lock():
    action = RecordingAction(changed=True)
    run(action, locked=RecordingLock(action))
    assert action.calls == [(True, True), "locked", (True, True), (False, False), "unlocked"]


def test_a_no_op_never_takes_the_lock():
    action = RecordingAction(changed=False)
    run(action, locked=RecordingLock(action))
    assert "locked" not in action.calls


def test_a_no_op_is_the_rehearsal_alone():
    action = RecordingAction(changed=False)
    (result, _warnings, _diff), clusters = run(action)
    assert action.calls == [(True, True)]
    assert result["pass"] == "dry"
    assert not clusters[0].rehearsing


def test_check_mode_runs_once_and_is_not_a_rehearsal():
    action = RecordingAction(changed=True)
    (result, _warnings, _diff), _clusters = run(action, check_mode=True)
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
    assert action.calls == [(True, True), (True, True), (False, False)]
