"""istioctl.render: what it hands istioctl, and that one module run renders one input once."""

import json

from ansible_collections.meshops.istio.plugins.module_utils import istioctl


class RecordingIstioctl:
    """run_command that records the IstioOperator file it is given and answers with one manifest."""

    def __init__(self):
        self.files = []

    def __call__(self, command):
        with open(command[-1], encoding="utf-8") as handle:
            self.files.append(handle.read())
        return 0, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", ""


def test_strings_that_yaml_1_1_reads_as_bools_reach_istioctl_as_strings():
    run_command = RecordingIstioctl()
    selectors = [{"matchLabels": {"team": "y", "other": "n", "switch": "off"}}]
    istioctl.render(run_command, "/bin/istioctl-y", {"meshConfig": {"discoverySelectors": selectors}})
    given = run_command.files[0]
    assert json.loads(given)["spec"]["meshConfig"]["discoverySelectors"] == selectors
    assert '"team": "y"' in given and '"other": "n"' in given


def test_one_input_is_rendered_once_and_each_caller_gets_its_own_copy():
    run_command = RecordingIstioctl()
    spec = {"revision": "once"}
    first = istioctl.render(run_command, "/bin/istioctl-once", spec)
    first[0]["metadata"]["name"] = "changed by a caller"
    second = istioctl.render(run_command, "/bin/istioctl-once", spec)
    assert len(run_command.files) == 1
    assert second[0]["metadata"]["name"] == "x"
