"""An operation's ``run`` section: a command, an HTTP request or a Jenkins job, checked.

Each kind is a frozen data class, built from the file only when every check passes: a
command is an argv list (never a shell) whose program exists; an HTTP request cannot
pick its host with a placeholder or reach Jenkins past the policy; a Jenkins job is
named in the file or by a ``job`` parameter. A new kind of run is added here (and run
in ``_runners``).
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actions.operations._checks import (
    ENV_REFERENCE,
    _check_env,
    _check_template,
    _duration,
    _File,
    env_references,
    placeholders,
    placeholders_safe,
)
from actions.operations._yaml import line_of

DEFAULT_TIMEOUT = 300.0
DEFAULT_HTTP_TIMEOUT = 30.0
DEFAULT_OUTPUT_LIMIT = 64 * 1024
DEFAULT_REPLY_WITHIN = 10.0
# A read, an HTTP request and the wait for a command's reply happen inside one action
# call, which Rasa gives up on after 5 minutes: these stay well below it.
READ_TIMEOUT = 60.0
MOST_IN_TURN = 120.0

_RUN_KINDS = ("command", "http", "jenkins")
_COMMAND_KEYS = ("command", "env", "cwd", "timeout", "output_limit", "reply_within")
_HTTP_KEYS = ("method", "url", "headers", "json", "body", "expect", "timeout")
_JENKINS_KEYS = ("job", "parameters", "follow")
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


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
