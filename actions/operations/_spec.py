"""Operation files: read, check and describe them (docs/operations.md).

An operation is one YAML file: its intent name, example phrasings, typed parameters,
risk, and what it runs (a command, an HTTP request or a Jenkins job). Files are read from
the project's ``operations/`` folder and every folder in ``OPSBOT_OPERATIONS_PATH``
(colon-separated). Every problem is an ``OperationFileError`` naming the file, the line
and the fix; ``opsbot operations check`` lists them all, and ``opsbot run`` refuses to
start with any.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actions.errors import ConfigError
from actions.guard.policy import REACH_KEYS, RISKS, parse_duration
from actions.operations._types import COMMON_KEYS, DEFAULT_MAX_LENGTH, TYPE_KEYS, TYPES, Parameter
from actions.operations._yaml import line_of, load

__all__ = [
    "ANNOTATION", "BUILTIN_PLACEHOLDERS", "ENV_REFERENCE", "CommandRun", "HttpRun", "JenkinsRun",
    "Loaded", "OperationFileError",
    "JENKINS_BY_HTTP", "OperationSpec", "OperationsError", "builtin_intents", "env_references",
    "load_file", "load_operations", "operation_dirs", "placeholders", "reaches_jenkins",
]

PATH_VARIABLE = "OPSBOT_OPERATIONS_PATH"
# Values every template may use besides the parameters.
BUILTIN_PLACEHOLDERS = ("requester", "operation_id")
# Names no parameter may take: the placeholders, and the policy's view of a Jenkins job.
_RESERVED = (*BUILTIN_PLACEHOLDERS, *REACH_KEYS)
DEFAULT_TIMEOUT = 300.0
DEFAULT_HTTP_TIMEOUT = 30.0
DEFAULT_OUTPUT_LIMIT = 64 * 1024
DEFAULT_REPLY_WITHIN = 10.0
# A read, an HTTP request and the wait for a command's reply happen inside one action
# call, which Rasa gives up on after 5 minutes: these stay well below it.
READ_TIMEOUT = 60.0
MOST_IN_TURN = 120.0
MIN_EXAMPLES = 5

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_TOP_KEYS = ("name", "description", "examples", "parameters", "risk", "run", "success", "failure")
_RUN_KINDS = ("command", "http", "jenkins")
_COMMAND_KEYS = ("command", "env", "cwd", "timeout", "output_limit", "reply_within")
_HTTP_KEYS = ("method", "url", "headers", "json", "body", "expect", "timeout")
_JENKINS_KEYS = ("job", "parameters", "follow")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# {name}, with {{ and }} for literal braces
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# ${VAR} or ${VAR:-default}
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# [text](entity) in an example
ANNOTATION = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


class OperationFileError(ConfigError):
    """One problem in one operation file: where it is, what is wrong, how to fix it."""

    def __init__(self, path: Path | str, line: int, problem: str, fix: str = "") -> None:
        self.path, self.line, self.problem, self.fix = Path(path), line, problem, fix
        super().__init__(f"{_shown(self.path)}:{line}: {problem}" + (f" Fix: {fix}" if fix else ""))


class OperationsError(ConfigError):
    """Operation files with problems; the message lists every one."""

    def __init__(self, errors: Sequence[OperationFileError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class CommandRun:
    """``run.command``: an argv list, never a shell."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: Path
    timeout: float = DEFAULT_TIMEOUT
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    reply_within: float = DEFAULT_REPLY_WITHIN
    kind: str = "command"


@dataclass(frozen=True)
class HttpRun:
    """``run.http``: one request; placeholders in the URL are percent-encoded."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    body: str | None = None
    expect: tuple[int, ...] = ()
    timeout: float = DEFAULT_HTTP_TIMEOUT
    kind: str = "http"


@dataclass(frozen=True)
class JenkinsRun:
    """``run.jenkins``: start a job with parameters; ``follow`` reports the build's end."""

    job: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    follow: bool = True
    kind: str = "jenkins"


Run = CommandRun | HttpRun | JenkinsRun


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


def placeholders(template: str) -> list[str]:
    """The ``{names}`` a template uses; ValueError for a stray brace or an empty name."""
    names: list[str] = []
    template = ENV_REFERENCE.sub("", template)  # ${VAR} is a variable, not a placeholder
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise ValueError(f"a stray '{token}' (write {token * 2} for a literal brace)")
        name = match.group(1).strip()
        if not name:
            raise ValueError("an empty placeholder {}")
        names.append(name)
    return names


def env_references(text: str) -> list[tuple[str, str | None]]:
    """``[(VAR, default or None)]`` for each ``${VAR}`` / ``${VAR:-default}`` in ``text``."""
    return [(m.group(1), m.group(2)) for m in ENV_REFERENCE.finditer(text)]


JENKINS_BY_HTTP = ("run.http.url goes to Jenkins (the origin of JENKINS_URL); a Jenkins job "
                   "reached that way escapes the jobs-by-kind and deploy rules.",
                   "start the job with run.jenkins: {job: ..., parameters: {...}}.")


def reaches_jenkins(url: str, env: Mapping[str, str]) -> bool:
    """Whether ``url`` (its ``${VAR}`` resolved from ``env``) goes to Jenkins' own origin.

    Why: an HTTP operation that posts to ``${JENKINS_URL}/job/{job}/build`` would start
    any job a person names, past the policy's view of Jenkins jobs (``run.jenkins`` is
    the one way an operation starts a job, ``actions.guard.reach``).
    """
    jenkins = (env.get("JENKINS_URL") or "").strip()
    if not jenkins:
        return False
    resolved = ENV_REFERENCE.sub(lambda m: env.get(m.group(1)) or m.group(2) or "", url)
    here, there = _host_port(resolved), _host_port(jenkins)
    if here is None or there is None or here[1] != there[1]:
        return False
    # The same port on the same machine, however it is named (localhost, its address, an
    # alias); the scheme does not matter (a proxy may end TLS).
    return here[0] == there[0] or bool(_addresses(here[0]) & _addresses(there[0]))


def _host_port(url: str) -> tuple[str, int] | None:
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower(), 0)
    except ValueError:
        return None
    host = (parts.hostname or "").lower().rstrip(".")
    return (host, port) if host else None


def _addresses(host: str) -> set[str]:
    """The addresses ``host`` resolves to (none when it does not)."""
    import socket

    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return set()


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


class _File:
    """Collects the problems of one file."""

    def __init__(self, path: Path, check_env: bool = True) -> None:
        self.path = path
        self.check_env = check_env
        self.errors: list[OperationFileError] = []
        self.optional: set[str] = set()  # parameters that may be absent (no default)
        self.types: dict[str, str] = {}

    def whole(self, template: str, line: int, where: str) -> None:
        """Refuse optional placeholders where leaving one out would leave a hole."""
        try:
            used = placeholders(template)
        except ValueError:
            return  # reported by _check_template
        for name in used:
            if name in self.optional:
                self.error(line, f"{where} uses {{{name}}}, which is optional: when it is not "
                           f"given there is nothing to put there.",
                           f"make {name} required, or give it a default.")

    def error(self, line: int, problem: str, fix: str = "") -> None:
        self.errors.append(OperationFileError(self.path, line, problem, fix))

    def keys(self, data: Mapping[Any, Any], allowed: Sequence[str] | frozenset[str],
             where: str) -> None:
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
                hint = f"did you mean {close[0]}?" if close else \
                    f"the keys are {', '.join(sorted(str(a) for a in allowed))}."
                self.error(line_of(data, key), f"unknown key {key!r} in {where}.", hint)


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


def _check_template(f: _File, template: str, known: set[str], line: int, where: str) -> list[str]:
    if "\0" in template:
        f.error(line, f"{where} holds a NUL character, which no program or request can take.")
        return []
    try:
        used = placeholders(template)
    except ValueError as exc:
        f.error(line, f"{where} has {exc}.")
        return []
    for name in used:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            f.error(line, f"unknown placeholder {{{name}}} in {where}.",
                    (f"did you mean {{{close[0]}}}? " if close else "") +
                    "Placeholders are the parameters "
                    f"({', '.join(sorted(known - set(BUILTIN_PLACEHOLDERS))) or 'none'})"
                    f" and {', '.join(BUILTIN_PLACEHOLDERS)}.")
    return used


def _check_env(f: _File, text: str, env: Mapping[str, str], line: int, where: str) -> None:
    for name, default in env_references(text):
        if f.check_env and default is None and not env.get(name):
            f.error(line, f"{where} refers to ${{{name}}}, which is not set in opsbot's "
                    "environment.", f"set {name} where opsbot runs (secrets stay out of the "
                    "file), give a default as ${" + name + ":-value}, or remove the operation.")
    if "${" in ENV_REFERENCE.sub("", text):
        f.error(line, f"{where} has a '${{' that is not ${{VARIABLE}}.")


MAX_DURATION = 24 * 3600.0


def _duration(f: _File, data: Mapping[str, Any], key: str, default: float,
              most: float = MAX_DURATION) -> float:
    if key not in data:
        return default
    try:
        value = parse_duration(data[key])
    except (TypeError, ValueError) as exc:
        f.error(line_of(data, key), f"{key}: {exc}.")
        return default
    if not 0 < value <= most:
        f.error(line_of(data, key), f"{key} must be more than 0s and at most "
                f"{_seconds_text(most)}, not {data[key]}.")
        return default
    return value


def _seconds_text(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m"


def _run(f: _File, data: Mapping[str, Any], known: set[str], env: Mapping[str, str],
         base: Path) -> Run | None:
    run = data.get("run")
    line = line_of(data, "run")
    if not isinstance(run, dict):
        f.error(line, "run is missing: it says what the operation runs.",
                "give exactly one of command (an argv list), http or jenkins.")
        return None
    kinds = [k for k in _RUN_KINDS if k in run]
    if len(kinds) != 1:
        f.error(line, f"run needs exactly one of command, http or jenkins; it has "
                f"{', '.join(kinds) or 'none'}.")
        return None
    kind = kinds[0]
    if kind == "command":
        return _command(f, run, known, env, base)
    spec = run[kind]
    if not isinstance(spec, dict):
        f.error(line_of(run, kind), f"run.{kind} must be a mapping.")
        return None
    f.keys(run, (kind,), "run")
    if kind == "http":
        return _http(f, spec, known, env)
    return _jenkins(f, spec, known, env)


def _command(f: _File, run: Mapping[str, Any], known: set[str], env: Mapping[str, str],
             base: Path) -> CommandRun | None:
    f.keys(run, _COMMAND_KEYS, "run (a command)")
    argv = run.get("command")
    line = line_of(run, "command")
    if not isinstance(argv, list) or not argv or not all(
            isinstance(a, (str, int, float)) and not isinstance(a, bool) for a in argv):
        f.error(line, "run.command must be a list: the program, then each argument.",
                'for example: command: [scripts/restart.sh, "{service}", "{environment}"] '
                "(a list, never a shell line)")
        return None
    args = [str(a) for a in argv]
    for i, arg in enumerate(args):
        aline = line_of(argv, i, line)
        _check_template(f, arg, known, aline, f"run.command[{i}]")
        if env_references(arg):
            f.error(aline, f"run.command[{i}] refers to an environment variable; arguments are "
                    "visible to every local user (ps).", "pass secrets through run.env.")
    program = args[0]
    if placeholders_safe(program):
        f.error(line_of(argv, 0, line), "the program (run.command[0]) cannot be a placeholder.")
    elif "/" in program:
        target = (base / program) if not Path(program).is_absolute() else Path(program)
        if not target.is_file():
            f.error(line_of(argv, 0, line), f"the program {program} does not exist "
                    f"(looked at {target}).", "paths are relative to the operation file's folder.")
        elif not os.access(target, os.X_OK):
            f.error(line_of(argv, 0, line), f"the program {program} is not executable.",
                    f"chmod +x {target}")
    elif shutil.which(program) is None:
        f.error(line_of(argv, 0, line), f"the program {program} is not on PATH.",
                "give its path (relative to the operation file's folder) or install it.")
    variables = _texts(f, run, "env", "run.env", known, env, name=_VARIABLE)
    cwd = base
    if "cwd" in run:
        if "\0" in str(run["cwd"]):
            f.error(line_of(run, "cwd"), "run.cwd holds a NUL character.")
            return None
        cwd = (base / str(run["cwd"])).resolve()
        if not cwd.is_dir():
            f.error(line_of(run, "cwd"), f"run.cwd {run['cwd']} is not a folder (looked at {cwd}).")
    limit = run.get("output_limit", DEFAULT_OUTPUT_LIMIT)
    if not isinstance(limit, int) or isinstance(limit, bool) or \
            not 1024 <= limit <= 16 * 1024 * 1024:
        f.error(line_of(run, "output_limit"), "run.output_limit is a number of bytes from 1024 "
                "to 16777216.")
        limit = DEFAULT_OUTPUT_LIMIT
    return CommandRun(argv=tuple(args), env=variables, cwd=cwd,
                      timeout=_duration(f, run, "timeout", DEFAULT_TIMEOUT), output_limit=limit,
                      reply_within=_duration(f, run, "reply_within", DEFAULT_REPLY_WITHIN,
                                             MOST_IN_TURN))


def placeholders_safe(text: str) -> bool:
    """Whether ``text`` uses a placeholder (False for a stray brace: reported elsewhere)."""
    try:
        return bool(placeholders(text))
    except ValueError:
        return False


def _strings_in(value: Any, where: str, lines: Any, key: Any) -> Iterable[tuple[str, str, int]]:
    """Every string inside a JSON-like value, with where it is and its line."""
    line = line_of(lines, key)
    if isinstance(value, str):
        yield value, where, line
    elif isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "{" in k:  # keys are literal: say so, do not ignore it
                yield k, f"{where} key {k!r}", line_of(value, k)
            yield from _strings_in(v, f"{where}.{k}", value, k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings_in(v, f"{where}[{i}]", value, i)


def _check_json(f: _File, value: Any, where: str, line: int) -> None:
    """Only what JSON can carry: YAML dates, binary and .nan are not."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                f.error(line_of(value, key, line), f"{where} has the key {key!r}; JSON keys are "
                        "text.", "put the key in quotes.")
            _check_json(f, item, f"{where}.{key}", line_of(value, key, line))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(f, item, f"{where}[{i}]", line_of(value, i, line))
    elif isinstance(value, float) and not math.isfinite(value):
        f.error(line, f"{where} is {value}, which JSON cannot carry.", "write a number or text.")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        f.error(line, f"{where} is a {type(value).__name__} ({value!r}), which JSON cannot carry.",
                "put it in quotes to send it as text.")


def _http(f: _File, spec: Mapping[str, Any], known: set[str],
          env: Mapping[str, str]) -> HttpRun | None:
    f.keys(spec, _HTTP_KEYS, "run.http")
    method = str(spec.get("method") or "POST").upper()
    if method not in _METHODS:
        f.error(line_of(spec, "method"), f"run.http.method must be one of {', '.join(_METHODS)}.")
    url = spec.get("url")
    if not isinstance(url, str) or not re.match(r"^(https?://|\$\{)", url):
        f.error(line_of(spec, "url"), "run.http.url must be an http:// or https:// URL.",
                'for example: url: "https://cdn.example/purge/{service}"')
        return None
    uline = line_of(spec, "url")
    _check_template(f, url, known, uline, "run.http.url")
    _check_env(f, url, env, uline, "run.http.url")
    if reaches_jenkins(url, env):
        f.error(uline, *JENKINS_BY_HTTP)
    f.whole(url, uline, "run.http.url")
    if re.match(r"^https?://[^/?#]*\{(?!\{)", url) or re.match(r"^\$\{[^}]*\}\{(?!\{)", url):
        f.error(uline, "a placeholder cannot pick the host of run.http.url.",
                "put placeholders in the path or the query.")
    headers = _texts(f, spec, "headers", "run.http.headers", known, env, name=_HEADER)
    for key, value in headers.items():
        if "\r" in value or "\n" in value:
            f.error(line_of(spec.get("headers"), key), f"run.http.headers.{key} holds a line "
                    "break, which would end the header.")
    if "json" in spec and "body" in spec:
        f.error(line_of(spec, "body"), "run.http has both json and body; give one.")
    _check_json(f, spec.get("json"), "run.http.json", line_of(spec, "json"))
    for text, where, line in _strings_in(spec.get("json"), "run.http.json", spec, "json"):
        if " key " in where and placeholders_safe(text):
            f.error(line, f"{where} has a placeholder; JSON keys are written as they are.",
                    "put the placeholder in the value.")
            continue
        _check_template(f, text, known, line, where)
        _check_env(f, text, env, line, where)
    body = spec.get("body")
    if body is not None:
        if not isinstance(body, str):
            f.error(line_of(spec, "body"), "run.http.body must be text (use json for JSON).")
            body = None
        else:
            _check_template(f, body, known, line_of(spec, "body"), "run.http.body")
            if placeholders_safe(body):
                f.error(line_of(spec, "body"), "run.http.body cannot have placeholders: a value "
                        "would be pasted into it as typed (a '&' or a '\"' would add fields).",
                        "use json: (each value becomes one JSON string) or put the values in "
                        "the URL's path or query (they are percent-encoded).")
            _check_env(f, body, env, line_of(spec, "body"), "run.http.body")
    expect = spec.get("expect", [])
    if isinstance(expect, int) and not isinstance(expect, bool):
        expect = [expect]
    if not isinstance(expect, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and 100 <= s <= 599 for s in expect):
        f.error(line_of(spec, "expect"), "run.http.expect must be a list of HTTP statuses, "
                "e.g. [200, 202].")
        expect = []
    return HttpRun(method=method, url=url, headers=headers, json=spec.get("json"), body=body,
                   expect=tuple(expect), timeout=_duration(f, spec, "timeout", DEFAULT_HTTP_TIMEOUT,
                                                    MOST_IN_TURN))


def _jenkins(f: _File, spec: Mapping[str, Any], known: set[str],
             env: Mapping[str, str]) -> JenkinsRun | None:
    f.keys(spec, _JENKINS_KEYS, "run.jenkins")
    job = spec.get("job")
    if not isinstance(job, str) or not job.strip():
        f.error(line_of(spec, "job"), "run.jenkins.job must name a Jenkins job.",
                'for example: job: "integration-tests" (folders as folder/job)')
        return None
    _check_template(f, job, known, line_of(spec, "job"), "run.jenkins.job")
    f.whole(job, line_of(spec, "job"), "run.jenkins.job")
    try:
        used = placeholders(job)
    except ValueError:
        used = []
    for name in used:
        if f.types.get(name) != "job":
            f.error(line_of(spec, "job"), f"run.jenkins.job uses {{{name}}}, which is not a "
                    "job parameter: a typed value could pick any job opsbot can start.",
                    f"give {name} type: job (it is resolved against Jenkins' jobs), or write "
                    "the job's name.")
    parameters = _texts(f, spec, "parameters", "run.jenkins.parameters", known, env,
                        name=_JENKINS_PARAMETER)
    follow = spec.get("follow", True)
    if not isinstance(follow, bool):
        f.error(line_of(spec, "follow"), "run.jenkins.follow must be true or false.")
        follow = True
    return JenkinsRun(job=job.strip(), parameters=parameters, follow=follow)


_VARIABLE = re.compile(r"^(?!PATH$)[A-Za-z_][A-Za-z0-9_]*$")
_HEADER = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # an HTTP token (RFC 9110)
_JENKINS_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def _texts(f: _File, data: Mapping[str, Any], key: str, where: str, known: set[str],
           env: Mapping[str, str], *, name: re.Pattern[str]) -> dict[str, str]:
    """A mapping of names to texts with placeholders and ``${VAR}`` (env, headers, ...)."""
    raw = data.get(key, {}) or {}
    if not isinstance(raw, dict):
        f.error(line_of(data, key), f"{where} must be a mapping of names to values.")
        return {}
    result: dict[str, str] = {}
    for item, value in raw.items():
        line = line_of(raw, item)
        if not isinstance(item, str) or not name.match(item):
            f.error(line, f"{where}: {item!r} is not a name opsbot can set there.")
            continue
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            f.error(line, f"{where}.{item} must be text.")
            continue
        _check_template(f, str(value), known, line, f"{where}.{item}")
        _check_env(f, str(value), env, line, f"{where}.{item}")
        result[item] = str(value)
    return result


def _run_strings(run: Run) -> list[str]:
    if isinstance(run, CommandRun):
        return list(run.env.values())
    if isinstance(run, HttpRun):
        return [run.url, *run.headers.values(),
                *(s for s, _, _ in _strings_in(run.json, "", None, None)),
                *([run.body] if run.body else [])]
    return list(run.parameters.values())
