"""Operation files: read, check and describe them (docs/operations.md).

An operation is one YAML file: its intent name, example phrasings, typed parameters,
risk, and what it runs (a command, an HTTP request or a Jenkins job). Files are read from
the project's ``operations/`` folder and every folder in ``OPSBOT_OPERATIONS_PATH``
(colon-separated). Every problem is an ``OperationFileError`` naming the file, the line
and the fix; ``opsbot operations check`` lists them all, and ``opsbot run`` refuses to
start with any.

This module finds and reads the files (name, description, parameters, examples, risk,
messages); the ``run`` section is checked in ``_runs``, and what every section shares
(the problems, templates, ``${VAR}``, durations) is in ``_checks``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actions.guard.policy import REACH_KEYS, RISKS, parse_duration
from actions.operations._checks import (
    BUILTIN_PLACEHOLDERS,
    ENV_REFERENCE,
    OperationFileError,
    OperationsError,
    _check_template,
    _File,
    _seconds_text,
    _shown,
    env_references,
    placeholders,
)
from actions.operations._runs import (
    JENKINS_BY_HTTP,
    MOST_IN_TURN,
    READ_TIMEOUT,
    CommandRun,
    HttpRun,
    JenkinsRun,
    Run,
    _run,
    _run_strings,
    reaches_jenkins,
)
from actions.operations._types import COMMON_KEYS, DEFAULT_MAX_LENGTH, TYPE_KEYS, TYPES, Parameter
from actions.operations._yaml import line_of, load

__all__ = [
    "ANNOTATION", "BUILTIN_PLACEHOLDERS", "ENV_REFERENCE", "CommandRun", "HttpRun", "JenkinsRun",
    "Loaded", "OperationFileError",
    "JENKINS_BY_HTTP", "OperationSpec", "OperationsError", "builtin_intents", "env_references",
    "load_file", "load_operations", "operation_dirs", "placeholders", "reaches_jenkins",
]

PATH_VARIABLE = "OPSBOT_OPERATIONS_PATH"
# Names no parameter may take: the placeholders, and the policy's view of a Jenkins job.
_RESERVED = (*BUILTIN_PLACEHOLDERS, *REACH_KEYS)
MIN_EXAMPLES = 5

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOP_KEYS = ("name", "description", "examples", "parameters", "risk", "run", "success", "failure")
# [text](entity) in an example
ANNOTATION = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


@dataclass(frozen=True)
class OperationSpec:
    """One operation file, checked."""

    name: str
    description: str
    examples: tuple[str, ...]
    parameters: tuple[Parameter, ...]
    risk: str
    run: Run
    success: str | None
    failure: str | None
    path: Path
    line: int = 1  # the line of name:

    def parameter(self, name: str) -> Parameter | None:
        return next((p for p in self.parameters if p.name == name), None)

    @property
    def runner(self) -> str:
        return self.run.kind

    def secret_names(self) -> list[str]:
        """The environment variables the run refers to (their values are masked)."""
        return sorted({name for text in _run_strings(self.run) for name, _ in env_references(text)})


@dataclass
class Loaded:
    """Every operation found, and every problem with the files."""

    operations: dict[str, OperationSpec] = field(default_factory=dict)
    errors: list[OperationFileError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def raise_errors(self) -> None:
        if self.errors:
            raise OperationsError(self.errors)


def operation_dirs(project: Path, env: Mapping[str, str] | None = None) -> list[Path]:
    """The project's ``operations/`` and each folder of ``OPSBOT_OPERATIONS_PATH``."""
    env = os.environ if env is None else env
    dirs = [project / "operations"]
    for part in (env.get(PATH_VARIABLE) or "").split(":"):
        if part.strip():
            path = Path(part.strip()).expanduser()
            dirs.append(path if path.is_absolute() else Path.cwd() / path)
    seen: list[Path] = []
    for d in dirs:
        if d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def builtin_intents(project: Path) -> frozenset[str]:
    """The intents of the project's domain.yml (an operation cannot take one's name)."""
    try:
        data = yaml.safe_load((project / "domain.yml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return frozenset()
    names = set()
    for item in data.get("intents") or []:
        names.add(next(iter(item)) if isinstance(item, dict) else str(item))
    return frozenset(names) | {"nlu_fallback", "notify"}


def operation_files(dirs: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for directory in dirs:
        if directory.is_dir():
            files += sorted(p for p in directory.iterdir()
                            if p.suffix in (".yml", ".yaml") and p.is_file())
    return files


def load_operations(project: Path, env: Mapping[str, str] | None = None,
                    dirs: Sequence[Path] | None = None, *, check_env: bool = False) -> Loaded:
    """Read and check every operation file; problems are collected, not raised.

    ``check_env``: also report ``${VAR}`` references that ``env`` does not set (what
    ``opsbot operations check`` and ``opsbot run`` do; training needs no secrets, and the
    action server says a missing one when the operation is asked for).
    """
    env = os.environ if env is None else env
    builtins = builtin_intents(project)
    loaded = Loaded()
    where: dict[str, Path] = {}
    missing = [d for d in (dirs or operation_dirs(project, env))[1:] if not d.is_dir()]
    for d in missing:
        loaded.errors.append(OperationFileError(
            d, 1, f"{PATH_VARIABLE} names {d}, which is not a folder.",
            "create it, or correct the variable (folders are separated by ':')."))
    for path in operation_files(dirs or operation_dirs(project, env)):
        loaded.files.append(path)
        try:
            spec, errors = load_file(path, env, builtins, check_env=check_env)
        except Exception as exc:  # noqa: BLE001 - one odd file must not take the others down
            spec, errors = None, [OperationFileError(
                path, 1, f"opsbot could not read this file ({type(exc).__name__}: {exc}).",
                "compare its keys and value types with `opsbot operations new`'s template.")]
        loaded.errors += errors
        if spec is None:
            continue
        if spec.name in where:
            loaded.errors.append(OperationFileError(
                path, spec.line,
                f"the name {spec.name} is already taken by {_shown(where[spec.name])}.",
                "give one of them another name (the name is the intent)."))
            continue
        where[spec.name] = path
        loaded.operations[spec.name] = spec
    return loaded


def load_file(path: Path, env: Mapping[str, str] | None = None,
              builtins: frozenset[str] = frozenset(), *,
              check_env: bool = True) -> tuple[OperationSpec | None, list[OperationFileError]]:
    """One file: its operation (None if it has problems) and its problems."""
    env = os.environ if env is None else env
    f = _File(path, check_env)
    try:
        data = load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        f.error(1, f"cannot be read: {exc.strerror or exc}.")
        return None, f.errors
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        f.error(mark.line + 1 if mark else 1, f"is not valid YAML: {problem}.",
                "check the indentation and quoting around that line.")
        return None, f.errors
    except UnicodeDecodeError:
        f.error(1, "is not UTF-8 text.")
        return None, f.errors
    if not isinstance(data, dict):
        f.error(1, "must be a mapping with name, description, examples, parameters, risk and run.",
                "start from 'opsbot operations new NAME'.")
        return None, f.errors
    f.keys(data, _TOP_KEYS, "the operation")

    name = data.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        f.error(line_of(data, "name"), f"name must be lowercase letters, digits and _ "
                f"(starting with a letter), not {name!r}.", "for example: name: restart_service")
        name = None
    elif name in builtins:
        f.error(line_of(data, "name"), f"{name} is one of opsbot's built-in intents.",
                "choose another name, e.g. team_" + name)
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        f.error(line_of(data, "description"), "description is missing: one line for the help "
                "text and the preview.", "for example: description: Restart a service")
        description = ""

    parameters = _parameters(f, data)
    known = {p.name for p in parameters} | set(BUILTIN_PLACEHOLDERS)
    f.optional = {p.name for p in parameters if not p.required and p.default is None}
    f.types = {p.name: p.type for p in parameters}
    examples = _examples(f, data, {p.name for p in parameters})

    risk = data.get("risk")
    if risk not in RISKS:
        f.error(line_of(data, "risk"), f"risk must be one of {', '.join(RISKS)}, not {risk!r}.",
                "read answers at once; change and critical ask for confirmation.")
        risk = "critical"
    run = _run(f, data, known, env, path.parent)
    if risk == "read" and isinstance(run, JenkinsRun):
        f.error(line_of(data, "risk"), "a read operation cannot start a Jenkins job: a build "
                "is a change.", "use risk: change (the preview and a confirmation come first).")
    if risk == "read" and isinstance(run, CommandRun):
        # A read answers in the turn that asked: its command has that long.
        if "timeout" not in data["run"]:
            run = dataclasses.replace(run, timeout=READ_TIMEOUT)
        elif run.timeout > MOST_IN_TURN:
            f.error(line_of(data["run"], "timeout"), f"a read operation answers in the same "
                    f"turn, so its timeout is at most {_seconds_text(MOST_IN_TURN)}.",
                    "lower run.timeout, or make it risk: change (long runs report their end "
                    "later).")
    templates: dict[str, str | None] = {}
    for key in ("success", "failure"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            f.error(line_of(data, key), f"{key} must be a message (text with {{placeholders}}).")
            value = None
        if isinstance(value, str):
            _check_template(f, value, known | {"output", "exit_code", "status", "build"},
                            line_of(data, key), key)
        templates[key] = value
    if f.errors or name is None or run is None:
        return None, f.errors
    return OperationSpec(name=name, description=str(description).strip(), examples=examples,
                         parameters=tuple(parameters), risk=str(risk), run=run,
                         success=templates["success"], failure=templates["failure"],
                         path=path, line=line_of(data, "name")), f.errors


def _parameters(f: _File, data: Mapping[str, Any]) -> list[Parameter]:
    raw = data.get("parameters", {})
    if raw is None:
        return []
    if not isinstance(raw, dict):
        f.error(line_of(data, "parameters"), "parameters must be a mapping of name: {type: ...}.",
                "for example: service: {type: service, required: true}")
        return []
    result = []
    for pname, spec in raw.items():
        line = line_of(raw, pname)
        if not isinstance(pname, str) or not _PARAMETER_NAME.match(pname) or \
                pname in _RESERVED:
            f.error(line, f"parameter name {pname!r} must be lowercase letters, digits and _"
                    + (" and not " + "/".join(_RESERVED) if pname in _RESERVED else "") + ".",
                    "requester and operation_id are filled in by opsbot; job_kind, "
                    "job_environment and job_service are what the policy is told about the "
                    "Jenkins job an operation reaches" if pname in _RESERVED else "")
            continue
        if not isinstance(spec, dict):
            f.error(line, f"parameter {pname} must be a mapping like {{type: text}}.")
            continue
        ptype = spec.get("type")
        if not isinstance(ptype, str) or ptype not in TYPE_KEYS:
            f.error(line_of(spec, "type", line), f"parameter {pname} has type {ptype!r}; the "
                    f"types are {', '.join(TYPES)}.")
            continue
        f.keys(spec, COMMON_KEYS | TYPE_KEYS[ptype], f"parameter {pname} ({ptype})")
        kwargs: dict[str, Any] = {"name": pname, "type": ptype, "line": line}
        for key in ("description", "prompt"):
            if key in spec:
                if not isinstance(spec[key], str):
                    f.error(line_of(spec, key, line), f"{pname}.{key} must be text.")
                else:
                    kwargs[key] = spec[key].strip()
        if ptype == "choice":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices or not all(
                    isinstance(c, (str, int)) and not isinstance(c, bool) for c in choices):
                f.error(line_of(spec, "choices", line), f"parameter {pname} needs choices: a "
                        "list of values.", "for example: choices: [graceful, hard]")
                continue
            kwargs["choices"] = tuple(str(c) for c in choices)
        for key, attr in (("min", "minimum"), ("max", "maximum")):
            if key in spec:
                try:
                    if isinstance(spec[key], bool):
                        raise TypeError(key)
                    bound = float(spec[key]) if ptype == "integer" else parse_duration(spec[key])
                    if not math.isfinite(bound):
                        raise ValueError(key)
                    kwargs[attr] = bound
                except (TypeError, ValueError):
                    f.error(line_of(spec, key, line), f"{pname}.{key} must be "
                            f"{'a number' if ptype == 'integer' else 'a duration like 5m'}, "
                            f"not {spec[key]!r}.")
        if kwargs.get("minimum") is not None and kwargs.get("maximum") is not None and \
                kwargs["minimum"] > kwargs["maximum"]:
            f.error(line_of(spec, "min", line), f"{pname}: min is above max.")
        if "max_length" in spec:
            value = spec["max_length"]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 10000:
                f.error(line_of(spec, "max_length", line),
                        f"{pname}.max_length must be a whole number from 1 to 10000.")
            else:
                kwargs["max_length"] = value
        else:
            kwargs["max_length"] = DEFAULT_MAX_LENGTH
        if "pattern" in spec:
            try:
                if not isinstance(spec["pattern"], str):
                    raise re.error("it must be text in quotes (YAML read "
                                   f"{type(spec['pattern']).__name__})")
                kwargs["pattern"] = re.compile(spec["pattern"])
            except re.error as exc:
                f.error(line_of(spec, "pattern", line), f"{pname}.pattern is not a regular "
                        f"expression: {exc}.")
        required = spec.get("required")
        if required is not None and not isinstance(required, bool):
            f.error(line_of(spec, "required", line), f"{pname}.required must be true or false.")
            required = None
        parameter = Parameter(**kwargs)
        if "default" in spec:
            default = spec["default"]
            value, problem = (parameter.normalise(default) if isinstance(default, (str, int, float))
                              and not isinstance(default, bool) else
                              (None, "it must be one value (text or a number)"))
            if problem:
                f.error(line_of(spec, "default", line), f"the default of {pname} is not valid: "
                        f"{problem}.")
                continue
            parameter = Parameter(**{**kwargs, "default": value})
        needed = required if required is not None else parameter.default is None
        if needed and parameter.default is not None:
            f.error(line_of(spec, "required", line), f"{pname} is required and has a default.",
                    "drop one of them: a default makes it optional.")
        parameter = Parameter(**{**kwargs, "default": parameter.default, "required": needed})
        result.append(parameter)
    return result


def _examples(f: _File, data: Mapping[str, Any], names: set[str]) -> tuple[str, ...]:
    raw = data.get("examples")
    line = line_of(data, "examples")
    if not isinstance(raw, list) or not all(isinstance(e, str) and e.strip() for e in raw):
        f.error(line, "examples must be a list of phrasings.",
                f"give at least {MIN_EXAMPLES}, e.g. "
                "- restart [payments](service) on [prod](environment)")
        return ()
    if len(raw) < MIN_EXAMPLES:
        f.error(line, f"only {len(raw)} example{'s' if len(raw) != 1 else ''}; opsbot needs at "
                f"least {MIN_EXAMPLES} to learn the phrasing.", "add more ways of asking.")
    seen: set[str] = set()
    for i, example in enumerate(raw):
        eline = line_of(raw, i, line)
        if example.strip().lower() in seen:
            f.error(eline, f"the example {example!r} is written twice.")
        seen.add(example.strip().lower())
        if "\n" in example.strip():
            f.error(eline, "an example is one line.")
        for match in ANNOTATION.finditer(example):
            entity = match.group(2).strip()
            if entity not in names:
                f.error(eline, f"the example marks [{match.group(1)}]({entity}), but there is "
                        f"no parameter {entity}.",
                        "declare it under parameters, or use one of: "
                        f"{', '.join(sorted(names)) or '(none)'}.")
    return tuple(e.strip() for e in raw)
