# Copyright: meshops.istio contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""meshops.istio.isolation_report: writes the JUnit, JSON and HTML report on the controller (documented in
plugins/modules/isolation_report.py)."""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
from pathlib import Path

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.meshops.istio.plugins.module_utils import report
from ansible_collections.meshops.istio.plugins.module_utils.errors import Refusal

TEMPLATE = Path(__file__).parents[2] / "roles" / "verify_report" / "templates" / "isolation_report.html.j2"
ARGUMENT_SPEC = {
    "isolation": {"type": "dict"},
    "multicluster": {"type": "dict"},
    "traffic": {"type": "list", "elements": "dict", "default": []},
    "dest": {"type": "path", "default": "isolation-report"},
    "name": {"type": "str"},
    "cluster_name": {"type": "str"},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(
            argument_spec=ARGUMENT_SPEC,
            mutually_exclusive=[("isolation", "multicluster")],
            required_one_of=[("isolation", "multicluster")],
        )
        try:
            document = build_document(args, utc_now())
            contents = render(document)
        except Refusal as error:
            raise AnsibleActionFail(str(error)) from error
        name = args["name"] or document["report"]
        paths = target_paths(args["dest"], name)
        changed = any(not same_content(paths[kind], text) for kind, text in contents.items())
        if not self._task.check_mode:
            write_files(paths, contents)
        result.update(
            changed=changed,
            name=name,
            files=paths,
            passed=document["passed"],
            tests=document["tests"],
            failures=document["failures"],
        )
        return result


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_document(args: dict, generated: str) -> dict:
    traffic = report.validate_traffic(args["traffic"])
    if args["isolation"] is not None:
        return report.isolation_document(args["isolation"], args["cluster_name"], traffic, generated)
    return report.multicluster_document(args["multicluster"], traffic, generated)


def render(document: dict) -> dict:
    return {
        "junit": report.junit_xml(document, platform.node()),
        "json": report.json_text(document),
        "html": report.render_html(document, TEMPLATE.read_text(encoding="utf-8")),
    }


def target_paths(dest: str, name: str) -> dict:
    """Absolute paths of the three files; a relative dest is relative to where ansible-playbook was started."""
    if not name or "/" in name or name in (".", ".."):
        raise AnsibleActionFail(f"name {name!r} must be a plain file name such as isolation; give one without '/'")
    directory = Path(dest).expanduser().absolute()
    return {kind: str(directory / file) for kind, file in report.file_names(name).items()}


def same_content(path: str, text: str) -> bool:
    try:
        return Path(path).read_text(encoding="utf-8") == text
    except OSError:
        return False


def write_files(paths: dict, contents: dict) -> None:
    """Each file is replaced whole (written beside it, then renamed), so a reader never sees half a report."""
    for kind, path in paths.items():
        directory = os.path.dirname(path)
        try:
            os.makedirs(directory, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=directory, prefix=".report-")
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(contents[kind])
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except OSError as error:
            raise AnsibleActionFail(f"Cannot write {path} ({error}); set dest to a writable directory") from error
