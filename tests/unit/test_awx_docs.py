"""AWX material: the survey specs in docs/awx/ have the shape AWX accepts, ask only for variables the playbooks
document, and docs/awx.md and execution-environment.yml point at files that exist."""

import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SURVEY_DIR = ROOT / "docs" / "awx"
PLAYBOOKS = ROOT / "playbooks"
SURVEYS = sorted(SURVEY_DIR.glob("*-survey.json"))

# The question types AWX's survey editor offers, and the keys each question must carry.
QUESTION_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
REQUIRED_QUESTION_KEYS = {"question_name", "variable", "type", "required"}
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def survey_errors(survey) -> list:
    """Everything AWX would reject in a survey spec (or that would make a question unanswerable)."""
    errors = []
    if not isinstance(survey, dict):
        return ["the survey is not an object"]
    for key in ("name", "description"):
        if not isinstance(survey.get(key), str):
            errors.append(f"'{key}' must be a string")
    if not survey.get("name"):
        errors.append("'name' must not be empty")
    spec = survey.get("spec")
    if not isinstance(spec, list) or not spec:
        return [*errors, "'spec' must be a non-empty list of questions"]
    seen = set()
    for index, question in enumerate(spec):
        where = f"spec[{index}]"
        if not isinstance(question, dict):
            errors.append(f"{where} is not an object")
            continue
        missing = REQUIRED_QUESTION_KEYS - question.keys()
        if missing:
            errors.append(f"{where} lacks {sorted(missing)}")
            continue
        variable, kind = question["variable"], question["type"]
        where = f"{where} ({variable})"
        if not isinstance(question["question_name"], str) or not question["question_name"]:
            errors.append(f"{where}: question_name must be a non-empty string")
        if not isinstance(variable, str) or not VARIABLE_NAME.match(variable):
            errors.append(f"{where}: variable is not a valid variable name")
        elif variable in seen:
            errors.append(f"{where}: variable asked twice")
        seen.add(variable)
        if not isinstance(question["required"], bool):
            errors.append(f"{where}: required must be true or false")
        if kind not in QUESTION_TYPES:
            errors.append(f"{where}: type {kind!r} is not one of {sorted(QUESTION_TYPES)}")
            continue
        errors.extend(_type_errors(where, kind, question))
    return errors


def _choices(question) -> list:
    choices = question.get("choices")
    return choices.split("\n") if isinstance(choices, str) else choices


def _type_errors(where, kind, question) -> list:
    errors = []
    default = question.get("default")
    if "min" in question and "max" in question and question["min"] > question["max"]:
        errors.append(f"{where}: min is greater than max")
    if kind in ("multiplechoice", "multiselect"):
        choices = _choices(question)
        if not isinstance(choices, list) or not choices or not all(isinstance(c, str) and c for c in choices):
            return [*errors, f"{where}: {kind} needs a non-empty list of non-empty string choices"]
        if len(set(choices)) != len(choices):
            errors.append(f"{where}: duplicate choices")
        picked = [] if default in (None, "") else (default.split("\n") if kind == "multiselect" else [default])
        if any(value not in choices for value in picked):
            errors.append(f"{where}: default {default!r} is not among the choices {choices}")
    elif kind in ("integer", "float"):
        number = int if kind == "integer" else (int, float)
        if default not in (None, "") and (isinstance(default, bool) or not isinstance(default, number)):
            errors.append(f"{where}: default {default!r} is not of type {kind}")
    elif default not in (None, ""):
        if not isinstance(default, str):
            errors.append(f"{where}: default {default!r} is not a string")
        elif not question.get("min", 0) <= len(default) <= question.get("max", len(default)):
            errors.append(f"{where}: default {default!r} is outside the min/max length")
    if question["required"] and kind not in ("multiplechoice", "multiselect") and default in (None, ""):
        # Allowed by AWX, but then every launch has to type it in; we always give required questions a default.
        errors.append(f"{where}: a required question without a default")
    return errors


def _yaml(path: Path):
    return yaml.safe_load(path.read_text()) or {}


def _role_options(role_name: str) -> dict:
    role = role_name.removeprefix("meshops.istio.")
    specs = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    if not specs.exists():
        return {}
    return _yaml(specs).get("argument_specs", {}).get("main", {}).get("options", {}) or {}


def _tasks(block_list):
    for task in block_list or []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key))


ALLOWED_VALUES = re.compile(r"^\s*(\w+)\s+in\s+(\[[^\]]*\])\s*$")


def documented_variables(playbook: Path) -> dict:
    """The variables a playbook documents for its users: its plays' vars, vars files, the argument specs of the
    roles in its plays' `roles:` and of inline validate_argument_spec tasks, plus the example inventories' group
    vars in examples/. Maps each name to what is known of it: {"choices": [...]} from an argument spec or from an
    assert of the form `<variable> in [...]`, else {}."""
    found = {}
    for path in sorted((ROOT / "examples").glob("*/group_vars/*.yml")):
        found.update(dict.fromkeys(_yaml(path), {}))
    choices = {}
    for play in _yaml(playbook):
        target = play.get("import_playbook") or play.get("ansible.builtin.import_playbook")
        if target:
            found.update(documented_variables(playbook.parent / target))
            continue
        found.update(dict.fromkeys(play.get("vars") or {}, {}))
        for vars_file in play.get("vars_files") or []:
            path = playbook.parent / vars_file
            if "{{" not in str(vars_file) and path.exists():
                found.update(dict.fromkeys(_yaml(path), {}))
        for role in play.get("roles") or []:
            found.update(_role_options(role if isinstance(role, str) else role.get("role", role.get("name", ""))))
        for section in ("pre_tasks", "tasks", "post_tasks", "handlers"):
            for task in _tasks(play.get(section)):
                for action in ("validate_argument_spec", "ansible.builtin.validate_argument_spec"):
                    if isinstance(task.get(action), dict):
                        found.update(task[action].get("argument_spec") or {})
                for action in ("assert", "ansible.builtin.assert"):
                    that = task.get(action, {}).get("that", []) if isinstance(task.get(action), dict) else []
                    for condition in [that] if isinstance(that, str) else that:
                        match = ALLOWED_VALUES.match(condition)
                        if match:
                            choices[match.group(1)] = yaml.safe_load(match.group(2))
    for name, values in choices.items():
        if name in found:
            found[name] = {**found[name], "choices": values}
    return found


def _without_comments(path: Path) -> str:
    return "\n".join(line.split(" #")[0] for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))


def _code(playbook: Path) -> str:
    """A playbook's text without comments, with the playbooks it imports, the task files it includes or imports, and
    the tasks of the roles its plays list in `roles:` (the tenancy role reads the data every playbook shares)."""
    text = _without_comments(playbook)
    for target in re.findall(r"import_playbook:\s*(\S+)", text):
        text += _code(playbook.parent / target)
    for target in re.findall(r"(?:include|import)_tasks:\s*(?:file:\s*)?([\w./-]+\.yml)", text):
        text += _without_comments(playbook.parent / target)
    for play in _yaml(playbook):
        for role in play.get("roles") or []:
            name = (role if isinstance(role, str) else role.get("role", role.get("name", ""))).split(".")[-1]
            for path in sorted((ROOT / "roles" / name / "tasks").glob("*.yml")):
                text += _without_comments(path)
    return text


def test_surveys_exist_for_the_playbooks_awx_runs():
    # verify.yml reads only `tenants` (a list, which a survey cannot ask for): its template has extra vars only.
    expected = {"multitenant-survey.json", "upgrade-survey.json", "uninstall-survey.json"}
    assert expected <= {path.name for path in SURVEYS}


@pytest.mark.parametrize("path", SURVEYS, ids=lambda p: p.name)
def test_survey_has_the_shape_awx_accepts(path):
    assert survey_errors(json.loads(path.read_text())) == []


@pytest.mark.parametrize("path", SURVEYS, ids=lambda p: p.name)
def test_survey_asks_only_for_documented_variables(path):
    playbook = PLAYBOOKS / path.name.replace("-survey.json", ".yml")
    if not playbook.exists():
        pytest.skip(f"{playbook.relative_to(ROOT)} is not written yet")
    documented = documented_variables(playbook)
    used = _code(playbook)
    for question in json.loads(path.read_text())["spec"]:
        variable = question["variable"]
        assert variable in documented, f"{path.name} asks for {variable}, which {playbook.name} does not document"
        # Documented in a shared vars file is not enough: the playbook itself must read it.
        assert re.search(rf"\b{variable}\b", used), f"{path.name} asks for {variable}, which {playbook.name} ignores"
        spec = documented[variable]
        if question["type"] in ("multiplechoice", "multiselect") and spec.get("choices"):
            assert set(_choices(question)) == set(spec["choices"]), (
                f"{variable}: the survey offers other values than {playbook.name} accepts"
            )


@pytest.mark.parametrize(
    ("survey", "problem"),
    [
        (
            {"description": "", "spec": [{"question_name": "q", "variable": "v", "type": "text", "required": False}]},
            "name",
        ),
        ({"name": "s", "description": "", "spec": []}, "non-empty list"),
        ({"name": "s", "description": "", "spec": [{"question_name": "q", "variable": "v", "type": "text"}]}, "lacks"),
        (
            {
                "name": "s",
                "description": "",
                "spec": [{"question_name": "q", "variable": "v", "type": "choice", "required": False}],
            },
            "type",
        ),
        (
            {
                "name": "s",
                "description": "",
                "spec": [{"question_name": "q", "variable": "1v", "type": "text", "required": False}],
            },
            "valid variable",
        ),
        (
            {
                "name": "s",
                "description": "",
                "spec": [
                    {"question_name": "a", "variable": "v", "type": "text", "required": False},
                    {"question_name": "b", "variable": "v", "type": "text", "required": False},
                ],
            },
            "asked twice",
        ),
        (
            {
                "name": "s",
                "description": "",
                "spec": [
                    {
                        "question_name": "m",
                        "variable": "m",
                        "type": "multiplechoice",
                        "required": True,
                        "choices": ["dedicated", "shared"],
                        "default": "both",
                    },
                ],
            },
            "not among the choices",
        ),
        (
            {
                "name": "s",
                "description": "",
                "spec": [{"question_name": "m", "variable": "m", "type": "multiplechoice", "required": True}],
            },
            "needs a non-empty list",
        ),
        (
            {
                "name": "s",
                "description": "",
                "spec": [{"question_name": "n", "variable": "n", "type": "integer", "required": False, "default": "3"}],
            },
            "is not of type integer",
        ),
        (
            {
                "name": "s",
                "description": "",
                "spec": [{"question_name": "t", "variable": "t", "type": "text", "required": True, "default": ""}],
            },
            "without a default",
        ),
    ],
)
def test_survey_checks_catch_what_awx_rejects(survey, problem):
    assert any(problem in error for error in survey_errors(survey)), survey_errors(survey)


def test_documented_variables_read_play_vars_and_vars_files():
    documented = documented_variables(PLAYBOOKS / "multitenant.yml")
    assert {"tenants", "istioctl_path", "istio_version"} <= documented.keys()
    assert "no_such_variable" not in documented
    # Role options the playbook maps itself (include_role with vars) are not for users to set.
    assert "control_plane_name" not in documented


def test_documented_variables_take_choices_from_an_assert(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "PLAYBOOKS", tmp_path)
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- hosts: localhost\n  vars: {model: a}\n  tasks:\n"
        "    - ansible.builtin.assert: {that: \"model in ['a', 'b']\"}\n"
    )
    assert documented_variables(playbook)["model"] == {"choices": ["a", "b"]}


def test_awx_guide_links_every_survey_and_names_the_credential_variables():
    guide = (ROOT / "docs" / "awx.md").read_text()
    for path in SURVEYS:
        assert f"awx/{path.name}" in guide, f"docs/awx.md does not link {path.name}"
    for variable in ("K8S_AUTH_HOST", "K8S_AUTH_API_KEY", "K8S_AUTH_VERIFY_SSL", "K8S_AUTH_SSL_CA_CERT"):
        assert variable in guide
    for link in re.findall(r"\]\((?!https?:)([^)#]+)", guide):
        assert (ROOT / "docs" / link).resolve().exists(), f"docs/awx.md links {link}, which does not exist"


def test_execution_environment_installs_this_collection_and_its_dependencies():
    ee = _yaml(ROOT / "execution-environment.yml")
    galaxy = _yaml(ROOT / "galaxy.yml")
    tarball = f"{galaxy['namespace']}-{galaxy['name']}-{galaxy['version']}.tar.gz"
    assert ee["version"] == 3
    assert ee["images"]["base_image"]["name"]
    deps = ee["dependencies"]
    assert deps["python"] == "requirements-ee.txt" and (ROOT / deps["python"]).exists()
    assert deps["system"] == "bindep.txt" and (ROOT / deps["system"]).exists()
    # hack/build.sh writes the galaxy requirements beside the tarball; it names the tarball where the galaxy stage
    # of ansible-builder's Containerfile finds the build context's _build.
    assert deps["galaxy"] == tarball.replace(".tar.gz", ".requirements.yml")
    build = (ROOT / "hack" / "build.sh").read_text().replace("$tarball", tarball)
    assert f"- name: /build/collections/{tarball}\n" in build
    assert {"src": tarball, "dest": "collections"} in ee["additional_build_files"]
