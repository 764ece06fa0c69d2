"""Operation files: every kind of problem names its file, its exact line and the fix.

Each test writes one operation file to ``tmp_path`` (a valid one with one thing changed)
and loads it with ``load_file`` or ``load_operations``; the line an error names is found
in the written text, so it is exact. The CLI tests run ``python -m opsbot operations``
in the project with a folder of the test's own in ``OPSBOT_OPERATIONS_PATH``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from actions.operations._spec import (
    CommandRun,
    OperationFileError,
    OperationSpec,
    builtin_intents,
    load_file,
    load_operations,
)
from tests.conftest import ROOT

BUILTINS = frozenset({"greet", "deploy", "rollback"})

# A valid operation; each test changes one thing. The command is a block list so that
# each argv element has its own line.
VALID = """\
name: restart_thing
description: Restart a thing
examples:
  - restart [payments](service) on [prod](environment)
  - please restart [checkout](service) in [staging](environment)
  - can you restart [search](service) on [production](environment)
  - restart the [billing](service) service in [dev](environment)
  - I need you to restart [auth](service) on [stage](environment)
parameters:
  service: {type: service}
  environment: {type: environment}
risk: change
run:
  command:
    - echo
    - "{service}"
    - "--env={environment}"
"""

HTTP_RUN = """\
run:
  http:
    method: POST
    url: "https://cdn.example/purge/{service}"
    headers:
      Authorization: "Bearer ${CDN_TOKEN}"
    json: {environment: "{environment}"}
    expect: [200, 202]
"""


def with_run(run: str) -> str:
    """VALID with its run section replaced."""
    return VALID.split("run:\n")[0] + run


def with_parameter(block: str) -> str:
    """VALID with one more parameter (``block`` indented as under ``parameters:``)."""
    return VALID.replace("risk: change\n", block + "risk: change\n")


def line(text: str, needle: str) -> int:
    """The 1-based line of the one line of ``text`` that contains ``needle``."""
    hits = [n for n, content in enumerate(text.splitlines(), 1) if needle in content]
    assert len(hits) == 1, f"{needle!r} is on lines {hits}"
    return hits[0]


def write(folder: Path, text: str, name: str = "op.yml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None, *,
         check_env: bool = True) -> tuple[Path, OperationSpec | None, list[OperationFileError]]:
    path = write(tmp_path, text)
    spec, errors = load_file(path, env={} if env is None else env, builtins=BUILTINS,
                             check_env=check_env)
    return path, spec, errors


def only_error(tmp_path: Path, text: str, env: dict[str, str] | None = None, *,
               check_env: bool = True) -> OperationFileError:
    """The one problem of ``text``; the file is refused and the message names file:line."""
    path, spec, errors = load(tmp_path, text, env, check_env=check_env)
    assert spec is None
    assert len(errors) == 1, [str(e) for e in errors]
    error = errors[0]
    assert error.path == path
    assert f"{path.name}:{error.line}: {error.problem}" in str(error)
    if error.fix:
        assert str(error).endswith(f" Fix: {error.fix}")
    return error


def project(tmp_path: Path) -> Path:
    """A project with a minimal domain.yml (its intents are the built-ins)."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "domain.yml").write_text(
        'version: "3.1"\nintents:\n  - greet\n  - deploy\n  - rollback\n', encoding="utf-8")
    return root


def test_the_valid_file_loads(tmp_path: Path) -> None:
    path, spec, errors = load(tmp_path, VALID)
    assert errors == []
    assert spec is not None
    assert (spec.name, spec.risk, spec.runner, spec.path) == ("restart_thing", "change",
                                                              "command", path)
    assert isinstance(spec.run, CommandRun)
    assert spec.run.argv == ("echo", "{service}", "--env={environment}")
    assert [p.name for p in spec.parameters] == ["service", "environment"]


# -- the file as a whole ---------------------------------------------------------------------


def test_not_yaml_names_the_line_of_the_yaml_error(tmp_path: Path) -> None:
    text = VALID.replace("risk: change", "risk: change: now")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "risk: change: now") == 12
    assert error.problem == "is not valid YAML: mapping values are not allowed here."
    assert error.fix == "check the indentation and quoting around that line."


def test_a_key_written_twice_is_not_yaml_at_the_second_key(tmp_path: Path) -> None:
    text = VALID.replace("risk: change\n", "risk: change\nname: other_name\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "name: other_name")
    assert error.problem == "is not valid YAML: the key 'name' is written twice."


def test_not_a_mapping(tmp_path: Path) -> None:
    error = only_error(tmp_path, "# a list, not an operation\n- restart\n- things\n")
    assert error.line == 1
    assert error.problem == ("must be a mapping with name, description, examples, parameters, "
                             "risk and run.")
    assert error.fix == "start from 'opsbot operations new NAME'."


def test_an_unknown_top_level_key_suggests_the_close_one(tmp_path: Path) -> None:
    text = VALID.replace("risk: change\n", "risk: change\nsucess: Restarted {service}.\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "sucess:")
    assert error.problem == "unknown key 'sucess' in the operation."
    assert error.fix == "did you mean success?"


def test_a_bad_name(tmp_path: Path) -> None:
    text = VALID.replace("name: restart_thing", "name: Restart-Thing")
    error = only_error(tmp_path, text)
    assert error.line == 1
    assert error.problem == ("name must be lowercase letters, digits and _ (starting with a "
                             "letter), not 'Restart-Thing'.")
    assert error.fix == "for example: name: restart_service"


def test_a_name_clashing_with_a_built_in_intent(tmp_path: Path) -> None:
    root = project(tmp_path)
    text = "# clashes with domain.yml\n" + VALID.replace("name: restart_thing", "name: deploy")
    path = write(root / "operations", text, "deploy.yml")
    loaded = load_operations(root, {}, check_env=True)
    assert loaded.operations == {}
    assert loaded.files == [path]
    [error] = loaded.errors
    assert (error.path, error.line) == (path, line(text, "name: deploy"))
    assert error.problem == "deploy is one of opsbot's built-in intents."
    assert error.fix == "choose another name, e.g. team_deploy"
    assert f"deploy.yml:2: {error.problem}" in str(error)


def test_a_missing_description(tmp_path: Path) -> None:
    text = VALID.replace("description: Restart a thing\n", "")
    error = only_error(tmp_path, text)
    assert error.line == 1  # a missing key: the line where the operation starts
    assert error.problem == "description is missing: one line for the help text and the preview."
    assert error.fix == "for example: description: Restart a service"


def test_a_blank_description_names_its_line(tmp_path: Path) -> None:
    text = VALID.replace("description: Restart a thing", 'description: "   "')
    assert only_error(tmp_path, text).line == line(text, "description:") == 2


# -- examples --------------------------------------------------------------------------------


def test_fewer_than_five_examples(tmp_path: Path) -> None:
    text = VALID.replace("  - I need you to restart [auth](service) on [stage](environment)\n", "")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "examples:") == 3
    assert error.problem == "only 4 examples; opsbot needs at least 5 to learn the phrasing."
    assert error.fix == "add more ways of asking."


def test_a_duplicate_example_names_the_second_one(tmp_path: Path) -> None:
    again = "  - Restart [PAYMENTS](service) on [prod](environment)"  # case does not matter
    text = VALID.replace("  - I need you to restart", again + "\n  - I need you to restart")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "[PAYMENTS]") == 8
    assert error.problem == ("the example 'Restart [PAYMENTS](service) on [prod](environment)' "
                             "is written twice.")


def test_an_example_marking_an_undeclared_parameter(tmp_path: Path) -> None:
    text = VALID.replace("  - can you restart [search](service)",
                         "  - can you [hard](mode) restart [search](service)")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "[hard](mode)") == 6
    assert error.problem == "the example marks [hard](mode), but there is no parameter mode."
    assert error.fix == "declare it under parameters, or use one of: environment, service."


# -- parameters ------------------------------------------------------------------------------


def test_an_unknown_parameter_type(tmp_path: Path) -> None:
    text = with_parameter("  count:\n    type: number\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "type: number")
    assert error.problem == ("parameter count has type 'number'; the types are service, "
                             "environment, version, job, issue_key, integer, choice, text, "
                             "duration.")


def test_an_unknown_key_in_a_parameter(tmp_path: Path) -> None:
    text = with_parameter("  count:\n    type: integer\n    maximum: 5\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "maximum: 5")
    assert error.problem == "unknown key 'maximum' in parameter count (integer)."
    assert error.fix == "did you mean max?"


def test_a_choice_without_choices(tmp_path: Path) -> None:
    text = with_parameter("  mode: {type: choice, default: hard}\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "mode:")
    assert error.problem == "parameter mode needs choices: a list of values."
    assert error.fix == "for example: choices: [graceful, hard]"


def test_min_above_max(tmp_path: Path) -> None:
    text = with_parameter("  count:\n    type: integer\n    min: 10\n    max: 2\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "min: 10")
    assert error.problem == "count: min is above max."


def test_a_default_outside_the_range(tmp_path: Path) -> None:
    text = with_parameter("  count:\n    type: integer\n    max: 20\n    default: 50\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "default: 50")
    assert error.problem == ('the default of count is not valid: "50" is not a whole number of '
                             'at most 20.')


def test_required_with_a_default(tmp_path: Path) -> None:
    text = with_parameter("  count:\n    type: integer\n    required: true\n    default: 2\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "required: true")
    assert error.problem == "count is required and has a default."
    assert error.fix == "drop one of them: a default makes it optional."


# -- risk and run ----------------------------------------------------------------------------


def test_a_bad_risk(tmp_path: Path) -> None:
    text = VALID.replace("risk: change", "risk: dangerous")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "risk: dangerous") == 12
    assert error.problem == "risk must be one of read, change, critical, not 'dangerous'."


def test_run_with_none_of_command_http_jenkins(tmp_path: Path) -> None:
    text = with_run("run:\n  timeout: 5m\n")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "run:") == 13
    assert error.problem == "run needs exactly one of command, http or jenkins; it has none."


def test_run_with_two_of_command_http_jenkins(tmp_path: Path) -> None:
    text = with_run('run:\n  command: [echo, hi]\n  jenkins: {job: "integration-tests"}\n')
    error = only_error(tmp_path, text)
    assert error.line == line(text, "run:")
    assert error.problem == ("run needs exactly one of command, http or jenkins; it has "
                             "command, jenkins.")


def test_a_command_that_is_not_a_list(tmp_path: Path) -> None:
    text = with_run('run:\n  command: "echo {service}"\n')
    error = only_error(tmp_path, text)
    assert error.line == line(text, "command:") == 14
    assert error.problem == "run.command must be a list: the program, then each argument."
    assert "(a list, never a shell line)" in error.fix


def test_a_program_that_does_not_exist_relative_to_the_file(tmp_path: Path) -> None:
    text = VALID.replace("    - echo", "    - scripts/restart.sh")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "scripts/restart.sh") == 15
    assert error.problem == (f"the program scripts/restart.sh does not exist (looked at "
                             f"{tmp_path / 'scripts/restart.sh'}).")
    assert error.fix == "paths are relative to the operation file's folder."


def test_a_program_that_is_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "scripts" / "restart.sh"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\necho restarted\n", encoding="utf-8")
    script.chmod(0o644)
    text = VALID.replace("    - echo", "    - scripts/restart.sh")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "scripts/restart.sh")
    assert error.problem == "the program scripts/restart.sh is not executable."
    assert error.fix == f"chmod +x {script}"


def test_a_relative_program_is_found_from_the_files_folder_not_the_cwd(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "ops"
    script = folder / "scripts" / "restart.sh"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\necho restarted\n", encoding="utf-8")
    script.chmod(0o755)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _, spec, errors = load(folder, VALID.replace("    - echo", "    - scripts/restart.sh"))
    assert errors == []
    assert spec is not None and isinstance(spec.run, CommandRun)
    assert spec.run.cwd == folder


def test_a_program_that_is_not_on_path(tmp_path: Path) -> None:
    text = VALID.replace("    - echo", "    - no-such-program-opsbot-test")
    error = only_error(tmp_path, text)
    assert error.line == line(text, "no-such-program")
    assert error.problem == "the program no-such-program-opsbot-test is not on PATH."
    assert error.fix == ("give its path (relative to the operation file's folder) or install "
                         "it.")


def test_an_unknown_placeholder_in_the_command_names_the_file_and_line(tmp_path: Path) -> None:
    """The acceptance case: the file, the line of that argv element, the parameters."""
    text = VALID.replace('    - "--env={environment}"', '    - "--env={enviroment}"')
    error = only_error(tmp_path, text)
    assert error.line == line(text, "{enviroment}") == 17
    assert error.problem == "unknown placeholder {enviroment} in run.command[2]."
    assert error.fix == ("did you mean {environment}? Placeholders are the parameters "
                         "(environment, service) and requester, operation_id.")
    assert str(error).startswith(f"{error.path}:17: unknown placeholder {{enviroment}}")


def test_a_stray_brace(tmp_path: Path) -> None:
    text = VALID.replace('    - "{service}"', '    - "{service"')
    error = only_error(tmp_path, text)
    assert error.line == line(text, '"{service"') == 16
    assert error.problem == "run.command[1] has a stray '{' (write {{ for a literal brace)."


def test_a_variable_in_the_argv_is_refused(tmp_path: Path) -> None:
    text = VALID.replace('    - "--env={environment}"', '    - "--token=${DEPLOY_TOKEN}"')
    error = only_error(tmp_path, text, {"DEPLOY_TOKEN": "set-or-not"})
    assert error.line == line(text, "DEPLOY_TOKEN")
    assert error.problem == ("run.command[2] refers to an environment variable; arguments are "
                             "visible to every local user (ps).")
    assert error.fix == "pass secrets through run.env."


def test_a_missing_variable_in_run_env_only_when_checked(tmp_path: Path) -> None:
    text = VALID + '  env:\n    DEPLOY_TOKEN: "${DEPLOY_TOKEN}"\n'
    error = only_error(tmp_path, text, {})
    assert error.line == line(text, "DEPLOY_TOKEN:")
    assert error.problem == ("run.env.DEPLOY_TOKEN refers to ${DEPLOY_TOKEN}, which is not set "
                             "in opsbot's environment.")
    assert error.fix == ("set DEPLOY_TOKEN where opsbot runs (secrets stay out of the file), "
                         "give a default as ${DEPLOY_TOKEN:-value}, or remove the operation.")
    assert load(tmp_path, text, {}, check_env=False)[2] == []
    assert load(tmp_path, text, {"DEPLOY_TOKEN": "s3cret"})[2] == []


def test_a_missing_variable_in_http_headers_only_when_checked(tmp_path: Path) -> None:
    text = with_run(HTTP_RUN)
    error = only_error(tmp_path, text, {"OTHER": "x"})
    assert error.line == line(text, "Authorization:")
    assert error.problem == ("run.http.headers.Authorization refers to ${CDN_TOKEN}, which is "
                             "not set in opsbot's environment.")
    assert load(tmp_path, text, {}, check_env=False)[2] == []
    assert load(tmp_path, text, {"CDN_TOKEN": "t0ken"})[2] == []


def test_a_variable_with_a_default_is_accepted_when_unset(tmp_path: Path) -> None:
    text = VALID + '  env:\n    STATE: "${OPSBOT_TEST_UNSET:-/tmp}/state"\n    EMPTY: "${X:-}"\n'
    _, spec, errors = load(tmp_path, text, {}, check_env=True)
    assert errors == []
    assert spec is not None and spec.secret_names() == ["OPSBOT_TEST_UNSET", "X"]


def test_a_dollar_brace_that_is_not_a_variable(tmp_path: Path) -> None:
    text = VALID + '  env:\n    WEIRD: "${not a variable}"\n'
    _, spec, errors = load(tmp_path, text)
    assert spec is None
    # It is also read as the placeholder {not a variable}; both are on its line.
    assert {(e.line, e.problem) for e in errors} == {
        (line(text, "WEIRD:"), "run.env.WEIRD has a '${' that is not ${VARIABLE}."),
        (line(text, "WEIRD:"), "unknown placeholder {not a variable} in run.env.WEIRD."),
    }


def test_an_http_url_that_is_not_http(tmp_path: Path) -> None:
    text = with_run(HTTP_RUN.replace("https://cdn.example", "ftp://cdn.example"))
    error = only_error(tmp_path, text, {"CDN_TOKEN": "t0ken"})
    assert error.line == line(text, "url:")
    assert error.problem == "run.http.url must be an http:// or https:// URL."
    assert error.fix == 'for example: url: "https://cdn.example/purge/{service}"'


def test_a_placeholder_in_the_url_host_is_refused(tmp_path: Path) -> None:
    text = with_run(HTTP_RUN.replace("https://cdn.example/purge/{service}",
                                     "https://{service}.cdn.example/purge"))
    error = only_error(tmp_path, text, {"CDN_TOKEN": "t0ken"})
    assert error.line == line(text, "url:")
    assert error.problem == "a placeholder cannot pick the host of run.http.url."
    assert error.fix == "put placeholders in the path or the query."


def test_an_optional_placeholder_where_it_cannot_be_left_out(tmp_path: Path) -> None:
    text = with_parameter("  reason: {type: text, required: false}\n").split("run:\n")[0] + \
        HTTP_RUN.replace("purge/{service}", "purge/{service}/{reason}")
    error = only_error(tmp_path, text, {"CDN_TOKEN": "t0ken"})
    assert error.line == line(text, "url:")
    assert error.problem == ("run.http.url uses {reason}, which is optional: when it is not "
                             "given there is nothing to put there.")
    assert error.fix == "make reason required, or give it a default."


def test_a_placeholder_right_after_a_leading_variable_is_refused(tmp_path: Path) -> None:
    text = with_run(HTTP_RUN.replace("https://cdn.example/purge/{service}",
                                     "${CDN_URL}{service}/purge"))
    error = only_error(tmp_path, text, {"CDN_TOKEN": "t0ken", "CDN_URL": "https://cdn.example"})
    assert error.problem == "a placeholder cannot pick the host of run.http.url."


def test_a_bad_expect(tmp_path: Path) -> None:
    text = with_run(HTTP_RUN.replace("expect: [200, 202]", "expect: [200, 999]"))
    error = only_error(tmp_path, text, {"CDN_TOKEN": "t0ken"})
    assert error.line == line(text, "expect:")
    assert error.problem == "run.http.expect must be a list of HTTP statuses, e.g. [200, 202]."


# -- folders ---------------------------------------------------------------------------------


def test_the_same_name_in_two_folders(tmp_path: Path) -> None:
    root = project(tmp_path)
    first = write(tmp_path / "team_a", VALID, "restart.yml")
    second = write(tmp_path / "team_b", VALID, "restart_again.yml")
    loaded = load_operations(root, {}, dirs=[tmp_path / "team_a", tmp_path / "team_b"],
                             check_env=True)
    assert loaded.files == [first, second]
    assert list(loaded.operations) == ["restart_thing"]
    assert loaded.operations["restart_thing"].path == first
    [error] = loaded.errors
    assert (error.path, error.line) == (second, 1)
    assert error.problem == f"the name restart_thing is already taken by {first}."
    assert error.fix == "give one of them another name (the name is the intent)."


def test_the_same_name_in_two_folders_names_the_line_of_name(tmp_path: Path) -> None:
    root = project(tmp_path)
    text = "# Team B's copy\n" + VALID
    write(tmp_path / "team_a", VALID, "restart.yml")
    write(tmp_path / "team_b", text, "restart.yml")
    loaded = load_operations(root, {}, dirs=[tmp_path / "team_a", tmp_path / "team_b"])
    [error] = loaded.errors
    assert error.line == line(text, "name: restart_thing") == 2


def test_a_folder_in_the_path_that_does_not_exist(tmp_path: Path) -> None:
    root = project(tmp_path)
    good = tmp_path / "team_ops"
    path = write(good, VALID, "restart.yml")
    missing = tmp_path / "no_such_folder"
    loaded = load_operations(root, {"OPSBOT_OPERATIONS_PATH": f"{good}:{missing}"},
                             check_env=True)
    assert list(loaded.operations) == ["restart_thing"]
    assert loaded.files == [path]
    [error] = loaded.errors
    assert (error.path, error.line) == (missing, 1)
    assert error.problem == f"OPSBOT_OPERATIONS_PATH names {missing}, which is not a folder."
    assert error.fix == "create it, or correct the variable (folders are separated by ':')."


def test_every_problem_of_a_file_is_reported_not_only_the_first(tmp_path: Path) -> None:
    text = VALID.replace("risk: change", "risk: dangerous").replace(
        "name: restart_thing", "name: Bad-Name")
    _, spec, errors = load(tmp_path, text)
    assert spec is None
    assert sorted(e.line for e in errors) == [1, 12]


# -- the project's own files -----------------------------------------------------------------


@pytest.mark.skipif(not (ROOT / "operations" / "scripts" / "restart.py").exists(),
                    reason="operations/scripts/restart.py does not exist yet")
def test_the_projects_operation_files_load_without_problems() -> None:
    env = {"CDN_URL": "http://x", "CDN_TOKEN": "t"}
    builtins = builtin_intents(ROOT)
    files = sorted((ROOT / "operations").glob("*.y*ml"))
    assert files
    for path in files:
        spec, errors = load_file(path, env=env, builtins=builtins, check_env=True)
        assert errors == [], [str(e) for e in errors]
        assert spec is not None
    loaded = load_operations(ROOT, env, dirs=[ROOT / "operations"], check_env=True)
    assert loaded.errors == []
    assert len(loaded.operations) == len(files)


# -- opsbot operations ... -------------------------------------------------------------------


def opsbot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m opsbot operations ARGS`` in the project, with ``env`` over the tests' env."""
    base = {k: v for k, v in os.environ.items() if k != "OPSBOT_OPERATIONS_PATH"}
    return subprocess.run([sys.executable, "-m", "opsbot", "operations", *args], cwd=ROOT,
                          env={**base, **env}, capture_output=True, text=True, timeout=60,
                          check=False)


CDN = {"CDN_URL": "http://cdn.test", "CDN_TOKEN": "cdn-s3cret-token"}


def test_cli_check_names_the_file_and_line_of_a_problem(tmp_path: Path) -> None:
    text = VALID.replace('    - "--env={environment}"', '    - "--env={enviroment}"')
    path = write(tmp_path / "team_ops", text, "restart_thing.yml")
    result = opsbot("check", OPSBOT_OPERATIONS_PATH=str(path.parent), **CDN)
    assert result.returncode == 1, result.stderr
    assert f"{path}:17: unknown placeholder {{enviroment}} in run.command[2]." in result.stderr
    assert "did you mean {environment}?" in result.stderr
    assert "1 problem(s) in " in result.stderr


def test_cli_check_passes_on_the_project() -> None:
    result = opsbot("check", **CDN)
    assert result.returncode == 0, result.stderr
    assert "operation file(s) OK" in result.stdout


def test_cli_new_writes_a_file_that_loads(tmp_path: Path) -> None:
    result = opsbot("new", "restart_widget", "--dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    path = tmp_path / "restart_widget.yml"
    assert f"Wrote {path}." in result.stdout
    spec, errors = load_file(path, env={}, builtins=builtin_intents(ROOT), check_env=True)
    assert errors == [], [str(e) for e in errors]
    assert spec is not None and spec.name == "restart_widget"
    assert isinstance(spec.run, CommandRun) and spec.run.argv[0] == "echo"


def test_cli_new_refuses_an_existing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "# ours\n", "restart_widget.yml")
    result = opsbot("new", "restart_widget", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert f"{path} exists already; edit it, or choose another name." in result.stderr
    assert path.read_text(encoding="utf-8") == "# ours\n"


def test_cli_new_refuses_a_bad_name(tmp_path: Path) -> None:
    result = opsbot("new", "Restart-Widget", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "'Restart-Widget' is not an operation name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_new_refuses_a_built_in_intent(tmp_path: Path) -> None:
    result = opsbot("new", "deploy", "--dir", str(tmp_path))
    assert result.returncode == 1
    assert "built-in" in result.stderr
    assert not (tmp_path / "deploy.yml").exists()


def test_cli_run_prints_the_request_with_the_token_masked() -> None:
    result = opsbot("run", "purge_cache", "service=payments", "environment=production", **CDN)
    assert result.returncode == 0, result.stderr
    assert "POST http://cdn.test/purge/payments" in result.stdout
    assert "Authorization: Bearer ********" in result.stdout
    assert CDN["CDN_TOKEN"] not in result.stdout + result.stderr
    assert '"environment": "prod"' in result.stdout
    assert "nothing is sent" in result.stdout


def test_cli_run_refuses_an_unknown_parameter() -> None:
    result = opsbot("run", "purge_cache", "service=payments", "environment=prod", "colour=red",
                    **CDN)
    assert result.returncode == 1
    assert "purge_cache has no parameter colour (it has: service, environment)." in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_run_refuses_a_missing_required_value() -> None:
    result = opsbot("run", "purge_cache", "service=payments", **CDN)
    assert result.returncode == 1
    assert "Nothing would run:" in result.stderr
    assert "environment is required (one of dev, staging, prod)." in result.stderr


def test_cli_run_refuses_an_invalid_value() -> None:
    result = opsbot("run", "purge_cache", "service=payments", "environment=moon", **CDN)
    assert result.returncode == 1
    assert 'environment: "moon" is not one of dev, staging, prod' in result.stderr
    assert "POST" not in result.stdout


def test_cli_run_refuses_an_unknown_operation() -> None:
    result = opsbot("run", "purge_cach", **CDN)
    assert result.returncode == 1
    assert "There is no operation purge_cach (known: " in result.stderr


def test_cli_list_json() -> None:
    result = opsbot("list", "--json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert listing["errors"] == []
    rows = {row["name"]: row for row in listing["operations"]}
    assert rows["purge_cache"] == {"name": "purge_cache", "risk": "change", "runner": "http",
                                   "file": "operations/purge_cache.yml",
                                   "description": "Purge the CDN cache of a service"}
    assert rows["restart_service"]["runner"] == "command"
    assert rows["pr_integration_tests"]["runner"] == "jenkins"
    assert rows["last_restart"]["risk"] == "read"


def test_cli_list_json_reports_problems(tmp_path: Path) -> None:
    write(tmp_path, VALID.replace("risk: change", "risk: dangerous"), "broken.yml")
    result = opsbot("list", "--json", OPSBOT_OPERATIONS_PATH=str(tmp_path))
    assert result.returncode == 1
    listing = json.loads(result.stdout)
    assert "restart_thing" not in {row["name"] for row in listing["operations"]}
    assert [e for e in listing["errors"] if "broken.yml:12: risk must be one of" in e]


# -- what the review of the runners found: refused when the file is read -----------------------


def test_placeholders_in_a_raw_body_are_refused(tmp_path: Path) -> None:
    text = with_run('run:\n  http:\n    url: "https://cdn.example/purge"\n'
                    '    body: "service={service}&env={environment}"\n')
    error = only_error(tmp_path, text)
    assert error.line == line(text, "body:")
    assert error.problem.startswith("run.http.body cannot have placeholders")
    assert error.fix.startswith("use json:")


def test_a_jenkins_job_picked_by_a_text_value_is_refused(tmp_path: Path) -> None:
    text = with_parameter("  which: {type: text}\n").split("run:\n")[0] + \
        'run:\n  jenkins:\n    job: "{which}"\n'
    error = only_error(tmp_path, text)
    assert error.problem.startswith("run.jenkins.job uses {which}, which is not a job parameter")
    assert error.fix.startswith("give which type: job")


@pytest.mark.parametrize(("block", "problem"), [
    ("  p: {type: [text]}\n", "parameter p has type ['text']; the types are"),
    ("  p: {type: text, pattern: [a-z0-9]}\n", "p.pattern is not a regular expression: it must "
                                             "be text in quotes"),
    ("  p: {type: text, default: [1, 2]}\n", "the default of p is not valid: it must be one "
                                           "value (text or a number)."),
    ("  p: {type: integer, max: .nan}\n", "p.max must be a number, not nan."),
])
def test_values_of_the_wrong_yaml_type_are_named(tmp_path: Path, block: str, problem: str) -> None:
    error = only_error(tmp_path, with_parameter(block))
    assert error.problem.startswith(problem), error.problem


def test_a_placeholder_in_a_json_key_is_refused(tmp_path: Path) -> None:
    text = with_run(HTTP_RUN.replace('json: {environment: "{environment}"}',
                                     'json: {"{environment}": "x"}'))
    error = only_error(tmp_path, text, {"CDN_TOKEN": "t0ken"})
    assert error.problem == ("run.http.json key '{environment}' has a placeholder; JSON keys "
                             "are written as they are.")


def test_a_line_break_in_a_header_of_the_file_is_refused(tmp_path: Path) -> None:
    text = with_run(HTTP_RUN.replace('Authorization: "Bearer ${CDN_TOKEN}"',
                                     'X-Two: "a\\r\\nX-Injected: b"'))
    error = only_error(tmp_path, text)
    assert error.problem == "run.http.headers.X-Two holds a line break, which would end the header."


@pytest.mark.parametrize(("run", "key", "most"), [
    ("  timeout: 100000h\n", "timeout", "24h"),
    ("  reply_within: 10m\n", "reply_within", "2m"),
])
def test_durations_are_bounded(tmp_path: Path, run: str, key: str, most: str) -> None:
    error = only_error(tmp_path, VALID + run)
    assert error.problem.startswith(f"{key} must be more than 0s and at most {most}")


def test_a_read_command_answers_within_the_turn(tmp_path: Path) -> None:
    text = VALID.replace("risk: change", "risk: read") + "  timeout: 10m\n"
    error = only_error(tmp_path, text)
    assert error.problem == ("a read operation answers in the same turn, so its timeout is at "
                             "most 2m.")
    _, spec, _ = load(tmp_path, VALID.replace("risk: change", "risk: read"))
    assert spec is not None and spec.run.timeout == 60.0  # type: ignore[union-attr]


def test_a_nul_in_an_argument_is_refused(tmp_path: Path) -> None:
    error = only_error(tmp_path, VALID.replace('"--env={environment}"', '"--env={environment}\\0"'))
    assert "NUL" in error.problem


def test_a_file_that_breaks_the_loader_is_one_error_not_a_crash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import actions.operations._spec as spec_module

    root = project(tmp_path)
    write(tmp_path / "ops", VALID, "restart.yml")
    write(tmp_path / "ops", VALID.replace("restart_thing", "other_thing"), "other.yml")
    real = spec_module.load_file

    def fragile(path: Path, *args: object, **kwargs: object) -> object:
        if path.name == "restart.yml":
            raise TypeError("unhashable type: 'LocatedList'")
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(spec_module, "load_file", fragile)
    loaded = load_operations(root, {}, dirs=[tmp_path / "ops"])
    assert list(loaded.operations) == ["other_thing"]
    [error] = loaded.errors
    assert error.problem == ("opsbot could not read this file (TypeError: unhashable type: "
                             "'LocatedList').")


def test_a_value_with_a_line_break_is_refused() -> None:
    from actions.operations import Parameter

    value, problem = Parameter(name="reason", type="text").normalise("ok\nIt runs: rm -rf /")
    assert value is None and problem == "it contains a line break or another control character"


def test_a_read_cannot_start_a_jenkins_job(tmp_path: Path) -> None:
    text = VALID.replace("risk: change", "risk: read").split("run:\n")[0] + \
        'run:\n  jenkins:\n    job: integration-tests\n'
    error = only_error(tmp_path, text)
    assert error.line == line(text, "risk: read")
    assert error.problem == "a read operation cannot start a Jenkins job: a build is a change."


@pytest.mark.parametrize(("value", "problem"), [
    ("2024-01-01", "run.http.json.since is a date (datetime.date(2024, 1, 1)), which JSON "
                   "cannot carry."),
    (".nan", "run.http.json.since is nan, which JSON cannot carry."),
])
def test_json_holds_only_what_json_can_carry(tmp_path: Path, value: str, problem: str) -> None:
    text = with_run(HTTP_RUN.replace('json: {environment: "{environment}"}',
                                     f'json: {{environment: "{{environment}}", since: {value}}}'))
    error = only_error(tmp_path, text, {"CDN_TOKEN": "t0ken"})
    assert error.problem == problem


def test_a_direction_mark_in_a_value_is_refused() -> None:
    from actions.operations import Parameter

    value, problem = Parameter(name="reason", type="text").normalise("dev\u202e dorp no")
    assert value is None and problem == "it contains a line break or another control character"


@pytest.mark.parametrize(("raw", "expected"), [("77", "77"), ("#77", "77"), ("+3", "3"),
                                               ("#", None), ("#-3", None), ("##7", None),
                                               ("#7a", None), ("7 #", None)])
def test_an_integer_may_be_written_with_a_leading_hash(raw: str, expected: str | None) -> None:
    from actions.operations import Parameter

    value, problem = Parameter(name="pr", type="integer").normalise(raw)
    assert value == expected
    assert (problem is None) == (expected is not None)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/job/{service}/buildWithParameters",
    "https://localhost:8080/job/{service}/build",  # another name, another scheme
    "${JENKINS_URL}job/{service}/build",
])
def test_an_http_operation_cannot_post_to_jenkins_itself(tmp_path: Path, url: str) -> None:
    # A job named by a person through a URL path would escape the jobs-by-kind rules.
    text = with_run(f"run:\n  http:\n    method: POST\n    url: \"{url}\"\n")
    error = only_error(tmp_path, text, {"JENKINS_URL": "http://127.0.0.1:8080/"})
    assert "goes to Jenkins" in str(error) and "run.jenkins" in str(error)
    elsewhere = with_run("run:\n  http:\n    url: \"http://127.0.0.1:8081/purge/{service}\"\n")
    assert load(tmp_path, elsewhere, {"JENKINS_URL": "http://127.0.0.1:8080/"})[2] == []
