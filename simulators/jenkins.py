"""A local Jenkins that python-jenkins 1.8.3 cannot tell from the real one.

Why: opsbot's Jenkins backend, its tests and ``opsbot demo`` need a Jenkins with
realistic jobs, history and failures, on any machine, offline. This module serves
the REST API that python-jenkins calls:
``/api/json`` with ``tree``/``depth``, jobs and folders (``job/a/job/b``),
``build`` / ``buildWithParameters`` -> 201 + queue ``Location``, queue items that
turn into builds, build JSON with parameters and causes, ``consoleText`` (growing
while the build runs), ``stop``, ``/me``, ``/whoAmI``, ``/computer`` (for
``get_running_builds``), the crumb issuer, Basic auth with an API token or a password,
and the error pages and status codes Jenkins answers with.

Crumbs are bound to the web session (JSESSIONID) for password logins, and API-token
requests need none (``restart`` drops the sessions); a stop takes effect when the build
reaches an abort point, not when ``POST stop`` answers (``set_stop``). Each method's
docstring names its source.

An exception inside a request gets Jenkins' "Oops!" page (500), which names neither the
exception nor its message: only "A problem occurred while processing the request" and a
logging id (``core/src/main/resources/jenkins/model/Jenkins/oops.jelly``: the stack
trace is printed only when ``Jenkins.shouldShowStackTrace()``, i.e. the
``jenkins.model.Jenkins.SHOW_STACK_TRACE`` system property, is set;
``show_stack_trace=True`` here). So a client cannot learn from the page why a bad
choice value was refused; it has to check the job's parameter definitions itself.

Builds progress on the clock, not on a background thread: whenever the state is
read it is first brought up to date, under one lock, by replaying queue and build
events in time order. So a build's timing never depends on who polls it or when.

    with JenkinsSimulator() as sim:
        server = jenkins.Jenkins(sim.url, username=sim.user, password=sim.token, timeout=5)
        queue_id = server.build_job("deploy-payments", {"VERSION": "2.4.1", "ENVIRONMENT": "prod"})

    python -m simulators.jenkins --port 8080     # prints the URL and credentials
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import hmac
import html
import re
import secrets
import string
import threading
import time
import uuid
from base64 import b64decode
from binascii import Error as BinasciiError
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from simulators._base import (
    Faults,
    RequestLog,
    SimulatorBase,
    add_address_arguments,
    check_account,
    run_main,
)
from simulators._http import Request, Response
from simulators._seed import SeedError, check_keys, mapping, parse_span, read_seed, sequence

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TOKEN",
    "RESULTS",
    "BuildSnapshot",
    "JenkinsSimulator",
    "RecordedRequest",
    "SeedError",
    "main",
]

DEFAULT_SEED = Path(__file__).resolve().parent / "data" / "jenkins.yml"
# A fixed token keeps the demo reproducible; it is shaped like a real one (34 hex digits).
DEFAULT_TOKEN = "11e5c1f0d5a4b3c2d1e0f9a8b7c6d5e4f3"
RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")

_COLORS = {"SUCCESS": "blue", "UNSTABLE": "yellow", "FAILURE": "red",
           "NOT_BUILT": "notbuilt", "ABORTED": "aborted"}
_JOB_CLASSES = {
    "freestyle": "hudson.model.FreeStyleProject",
    "pipeline": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
    "folder": "com.cloudbees.hudson.plugins.folder.Folder",
}
_BUILD_CLASSES = {
    "freestyle": "hudson.model.FreeStyleBuild",
    "pipeline": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
}
_PARAM_CLASSES = {  # kind -> (definition class, value class)
    "string": ("hudson.model.StringParameterDefinition", "hudson.model.StringParameterValue"),
    "choice": ("hudson.model.ChoiceParameterDefinition", "hudson.model.StringParameterValue"),
    "boolean": ("hudson.model.BooleanParameterDefinition", "hudson.model.BooleanParameterValue"),
    "text": ("hudson.model.TextParameterDefinition", "hudson.model.TextParameterValue"),
    "password": ("hudson.model.PasswordParameterDefinition",
                 "hudson.model.PasswordParameterValue"),
}
_PERMALINKS = ("lastBuild", "lastCompletedBuild", "lastSuccessfulBuild", "lastStableBuild",
               "lastFailedBuild", "lastUnstableBuild", "lastUnsuccessfulBuild")
_QUEUE_RETENTION = 300.0  # Jenkins forgets a left queue item after five minutes
_CRUMB_FIELD = "Jenkins-Crumb"
_WORKSPACE_ROOT = "/var/jenkins_home/workspace"
_BUILD_KEYS = frozenset({"ago", "duration", "result", "by", "params", "log", "number"})


@dataclass(frozen=True)
class BuildSnapshot:
    """A copy of one build's state, for tests and the demo (never shared with the server)."""

    job: str
    number: int
    result: str | None
    building: bool
    parameters: dict[str, str | bool]
    cause: str  # e.g. "Started by user Alice Chen"
    user_id: str | None  # who started it, for builds started by a user
    started_at: float  # epoch seconds
    duration: float  # seconds, so far if still building
    queue_id: int
    console: str
    stop_requested_at: float | None = None  # epoch seconds; it may still be building


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str
    target: str  # path and query as sent
    status: int
    user: str | None  # the authenticated user, None for anonymous or refused credentials
    crumb: str | None  # the Jenkins-Crumb header, if one was sent
    auth: str | None = None  # how the user signed in: "token" or "password"; None: anonymous


# ---------------------------------------------------------------------------------------
# The model: jobs, builds, queue items. Mutated only under _State.lock.


@dataclass(frozen=True)
class _Param:
    """A job parameter definition."""

    name: str
    kind: str
    default: str | bool
    choices: tuple[str, ...] = ()
    description: str = ""

    def coerce(self, raw: str | None) -> str | bool:
        """The value Jenkins would record for ``raw`` (None: not submitted, so the default)."""
        if raw is None:
            return self.default
        if self.kind == "boolean":
            return raw.strip().lower() == "true"  # Java's Boolean.valueOf
        if self.kind == "choice" and raw not in self.choices:
            raise _Refused(500, f"Illegal choice for parameter {self.name}: {raw}",
                           java="java.lang.IllegalArgumentException")
        return raw

    def definition_json(self) -> dict[str, Any]:
        definition, _ = _PARAM_CLASSES[self.kind]
        data: dict[str, Any] = {
            "_class": definition,
            "defaultParameterValue": self.value_json(self.default),
            "description": self.description or None,
            "name": self.name,
            "type": definition.rsplit(".", 1)[1],
        }
        if self.kind == "choice":
            data["choices"] = list(self.choices)
        return data

    def value_json(self, value: str | bool) -> dict[str, Any]:
        data: dict[str, Any] = {"_class": _PARAM_CLASSES[self.kind][1], "name": self.name}
        if self.kind != "password":  # Jenkins never exports a password's value
            data["value"] = value
        return data


@dataclass(frozen=True)
class _Cause:
    """Why a build ran: a user, a timer, an SCM change or an upstream build."""

    kind: str
    user_id: str = ""
    user_name: str = ""
    upstream_job: str = ""
    upstream_build: int = 0

    def short(self) -> str:
        if self.kind == "user":
            return f"Started by user {self.user_name}"
        if self.kind == "timer":
            return "Started by timer"
        if self.kind == "scm":
            return "Started by an SCM change"
        return (f'Started by upstream project "{self.upstream_job}" '
                f"build number {self.upstream_build}")

    def to_json(self) -> dict[str, Any]:
        if self.kind == "user":
            return {"_class": "hudson.model.Cause$UserIdCause", "shortDescription": self.short(),
                    "userId": self.user_id, "userName": self.user_name}
        if self.kind == "timer":
            return {"_class": "hudson.triggers.TimerTrigger$TimerTriggerCause",
                    "shortDescription": self.short()}
        if self.kind == "scm":
            return {"_class": "hudson.triggers.SCMTrigger$SCMTriggerCause",
                    "shortDescription": self.short()}
        return {"_class": "hudson.model.Cause$UpstreamCause", "shortDescription": self.short(),
                "upstreamBuild": self.upstream_build, "upstreamProject": self.upstream_job,
                "upstreamUrl": _job_path(self.upstream_job)}


ParamValues = tuple[tuple[_Param, str | bool], ...]


@dataclass(eq=False)
class _Job:
    """A job or a folder, addressed by its full name ("platform/nightly-integration")."""

    full_name: str
    kind: str
    description: str = ""
    params: tuple[_Param, ...] = ()
    disabled: bool = False
    concurrent: bool = False
    scm: str = ""
    logs: dict[str, str] = field(default_factory=dict)  # result -> template name
    env: dict[str, str] = field(default_factory=dict)  # extra variables for its console logs
    children: list[_Job] = field(default_factory=list)
    builds: list[_Build] = field(default_factory=list)  # oldest first
    next_number: int = 1
    forced: deque[tuple[str, str | None]] = field(default_factory=deque)  # (result, log)
    # How its builds take a stop (JenkinsSimulator.set_stop): seconds until it takes effect
    # (None: the simulator's stop_seconds) and the result then (None: the stop is ignored).
    stop_seconds: float | None = None
    stop_result: str | None = "ABORTED"

    @property
    def name(self) -> str:
        return self.full_name.rsplit("/", 1)[-1]

    @property
    def is_folder(self) -> bool:
        return self.kind == "folder"

    @property
    def path(self) -> str:
        return _job_path(self.full_name)

    @property
    def display(self) -> str:
        return self.full_name.replace("/", " » ")


@dataclass(eq=False)
class _Build:
    """One build; ``result`` stays None while it runs."""

    job: _Job
    number: int
    queue_id: int
    params: ParamValues
    cause: _Cause
    started_at: float
    planned_seconds: float
    planned_result: str
    body: tuple[str, ...]  # console lines between the cause and "Finished:"
    commit: str = ""
    ends_at: float = 0.0
    result: str | None = None
    aborted_by: str | None = None  # display name of who pressed stop
    stop_requested_at: float | None = None  # when stop was pressed (the build may run on)
    stop_line: int = 0  # how many body lines the console had then
    stop_obeyed: bool = True  # False: the build ignored the stop and ran its course

    @property
    def building(self) -> bool:
        return self.result is None

    @property
    def parameters(self) -> dict[str, str | bool]:
        return {param.name: value for param, value in self.params}


@dataclass(eq=False)
class _QueueItem:
    """A requested build waiting for its quiet period, its job or an executor."""

    id: int
    job: _Job
    params: ParamValues
    cause: _Cause
    queued_at: float
    ready_at: float
    build: _Build | None = None
    cancelled: bool = False
    left_at: float | None = None


class _Refused(Exception):
    """Jenkins answers this request with an error status."""

    def __init__(self, status: int, message: str, *, java: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.java = java  # the Java exception class behind a 500 "Oops!" page


def _job_path(full_name: str) -> str:
    """``"a/b"`` -> ``"job/a/job/b/"``, each name percent-encoded as Jenkins does."""
    return "".join(f"job/{quote(part)}/" for part in full_name.split("/"))


# ---------------------------------------------------------------------------------------
# The seed file.


@dataclass
class _Seed:
    version: str
    executors: int
    users: dict[str, str]  # id -> full name
    templates: dict[str, tuple[str, ...]]  # name -> console lines, includes expanded
    top: list[_Job]
    jobs: dict[str, _Job]
    next_queue_id: int
    running: list[_Build]


def _expand_templates(raw: dict[str, str], where: str) -> dict[str, tuple[str, ...]]:
    """Resolve ``@include name`` lines, so a template can reuse e.g. a git checkout."""

    def expand(name: str, chain: tuple[str, ...]) -> list[str]:
        if name in chain:
            cycle = " -> ".join(chain + (name,))
            raise SeedError(f"{where}: logs.{name} includes itself ({cycle})")
        lines: list[str] = []
        for line in raw[name].rstrip("\n").split("\n"):
            if line.strip().startswith("@include "):
                target = line.strip()[len("@include "):].strip()
                if target not in raw:
                    raise SeedError(f"{where}: logs.{name} includes unknown log {target!r}")
                lines.extend(expand(target, chain + (name,)))
            else:
                lines.append(line)
        return lines

    for name, text in raw.items():
        if not isinstance(text, str):
            raise SeedError(f"{where}: logs.{name} must be a block of text")
    return {name: tuple(expand(name, ())) for name in raw}


def _parse_param(raw: object, where: str) -> _Param:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SeedError(f"{where}: a parameter needs at least a name, e.g. {{name: BRANCH}}")
    check_keys(raw, {"name", "type", "default", "choices", "description"}, where)
    kind = str(raw.get("type", "string"))
    if kind not in _PARAM_CLASSES:
        raise SeedError(f"{where}: type {kind!r} is not one of {', '.join(_PARAM_CLASSES)}")
    choices = tuple(str(choice) for choice in raw.get("choices") or ())
    default: str | bool
    if kind == "choice":
        if not choices:
            raise SeedError(f"{where}: a choice parameter needs choices: [a, b, ...]")
        default = choices[0]  # Jenkins: the first choice is the default
    elif kind == "boolean":
        default = bool(raw.get("default", False))
    else:
        default = "" if raw.get("default") is None else str(raw["default"])
    return _Param(raw["name"], kind, default, choices, str(raw.get("description") or ""))


class _SeedLoader:
    """Turns the YAML catalogue into jobs and past builds, relative to ``now``."""

    _JOB_KEYS = frozenset({"name", "type", "description", "parameters", "disabled", "concurrent",
                           "scm", "env", "logs", "jobs", "builds", "first_build"})

    def __init__(self, path: Path, now: float, default_user: str) -> None:
        self.path = path
        self.now = now
        self.default_user = default_user
        self.jobs: dict[str, _Job] = {}
        self.past: list[_Build] = []
        self.users: dict[str, str] = {}
        self.templates: dict[str, tuple[str, ...]] = {}

    def load(self) -> _Seed:
        raw = read_seed(self.path, "Jenkins seed", ("server", "users", "logs", "jobs"))
        where = str(self.path)
        # "x-" keys hold YAML anchors for reuse (as in docker-compose files).
        check_keys({k: v for k, v in raw.items() if not str(k).startswith("x-")},
                   ("server", "users", "logs", "jobs"), where)
        server = mapping(raw.get("server"), f"{where}: server")
        check_keys(server, {"version", "executors", "first_queue_id"}, f"{where}: server")
        users = mapping(raw.get("users"), f"{where}: users")
        self.users = {str(k): str(v) for k, v in users.items()}
        self.templates = _expand_templates(mapping(raw.get("logs"), f"{where}: logs"), where)
        top = [self._job(item, "", f"{where}: jobs[{i}]")
               for i, item in enumerate(sequence(raw.get("jobs"), f"{where}: jobs"))]
        # Queue ids grow with time across all jobs, as in Jenkins.
        next_queue_id = int(server.get("first_queue_id", 1))
        for build in sorted(self.past, key=lambda b: b.started_at):
            build.queue_id = next_queue_id
            next_queue_id += 1
        running = [b for b in self.past if b.building]
        return _Seed(str(server.get("version", "2.452.3")), int(server.get("executors", 4)),
                     self.users, self.templates, top, self.jobs, next_queue_id, running)

    def _job(self, raw: object, parent: str, where: str) -> _Job:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise SeedError(f"{where}: every job needs a name")
        where = f"{where} ({raw['name']})"
        check_keys(raw, self._JOB_KEYS, where)
        if "/" in raw["name"] or not raw["name"].strip():
            raise SeedError(f"{where}: a name cannot contain '/'; nest jobs in a folder instead")
        full_name = f"{parent}/{raw['name']}" if parent else raw["name"]
        if full_name in self.jobs:
            raise SeedError(f"{where}: a second job called {full_name!r}")
        kind = str(raw.get("type", "freestyle"))
        if kind not in _JOB_CLASSES:
            raise SeedError(f"{where}: type {kind!r} is not one of {', '.join(_JOB_CLASSES)}")
        logs = {str(k): str(v) for k, v in mapping(raw.get("logs"), f"{where}.logs").items()}
        for result, log in logs.items():
            if result not in RESULTS:
                raise SeedError(f"{where}: logs key {result!r} is not one of {', '.join(RESULTS)}")
            if log not in self.templates:
                raise SeedError(f"{where}: logs.{result} names unknown log {log!r}")
        job = _Job(full_name, kind, str(raw.get("description") or ""),
                   tuple(_parse_param(p, f"{where}: parameters[{i}]") for i, p in
                         enumerate(sequence(raw.get("parameters"), f"{where}.parameters"))),
                   bool(raw.get("disabled", False)), bool(raw.get("concurrent", False)),
                   str(raw.get("scm") or ""), logs,
                   {str(k): _seed_text(v)
                    for k, v in mapping(raw.get("env"), f"{where}.env").items()})
        self.jobs[full_name] = job
        if kind == "folder":
            if raw.get("builds") or raw.get("parameters"):
                raise SeedError(f"{where}: a folder has jobs, not builds or parameters")
            job.children = [self._job(child, full_name, f"{where}.jobs[{i}]") for i, child
                            in enumerate(sequence(raw.get("jobs"), f"{where}.jobs"))]
            return job
        if raw.get("jobs"):
            raise SeedError(f"{where}: only a folder (type: folder) can contain jobs")
        job.next_number = int(raw.get("first_build", 1))
        entries = [self._past_build(b, f"{where}.builds[{i}]")
                   for i, b in enumerate(sequence(raw.get("builds"), f"{where}.builds"))]
        for entry in sorted(entries, key=lambda e: -e[0]):  # oldest first; stable
            self._add_past(job, *entry)
        return job

    @staticmethod
    def _past_build(raw: object, where: str) -> tuple[float, dict[str, Any], str]:
        if not isinstance(raw, dict) or "ago" not in raw:
            raise SeedError(f"{where}: a past build needs at least ago: (e.g. ago: 3h)")
        check_keys(raw, _BUILD_KEYS, where)
        return parse_span(raw["ago"], f"{where}.ago"), raw, where

    def _add_past(self, job: _Job, ago: float, raw: dict[str, Any], where: str) -> None:
        duration = parse_span(raw.get("duration", "1m"), f"{where}.duration")
        result = str(raw.get("result", "SUCCESS"))
        if result not in RESULTS:
            raise SeedError(f"{where}: result {result!r} is not one of {', '.join(RESULTS)}")
        number = int(raw.get("number", job.next_number))
        if number < job.next_number:
            raise SeedError(f"{where}: build number {number} is not after #{job.next_number - 1}; "
                            "numbers must grow with time")
        log = raw.get("log")
        if log is not None and log not in self.templates:
            raise SeedError(f"{where}: log {log!r} is not defined under logs:")
        raw_params = mapping(raw.get("params"), f"{where}.params")
        known = {param.name: param for param in job.params}
        unknown = sorted(set(raw_params) - set(known))
        if unknown:
            raise SeedError(f"{where}: {job.full_name} has no parameter(s) {', '.join(unknown)}")
        try:
            params = tuple((param, param.coerce(None if param.name not in raw_params
                                                else _seed_text(raw_params[param.name])))
                           for param in job.params)
        except _Refused as exc:
            raise SeedError(f"{where}: {exc.message}") from exc
        cause = self._cause(raw.get("by", "scm"), where)
        started = self.now - ago
        build = _new_build(job, number, 0, params, cause, started, duration, result,
                           log, self.templates)
        if build.started_at + duration <= self.now:
            build.result = result
        job.builds.append(build)
        job.next_number = number + 1
        self.past.append(build)

    def _cause(self, by: object, where: str) -> _Cause:
        text = str(by)
        if text in ("timer", "scm"):
            return _Cause(text)
        match = re.fullmatch(r"upstream:(.+)#(\d+)", text)
        if match:
            return _Cause("upstream", upstream_job=match[1], upstream_build=int(match[2]))
        if text not in self.users and text != self.default_user:
            raise SeedError(f"{where}: by: {text!r} is not a user under users: "
                            "(or timer, scm, upstream:JOB#N)")
        return _Cause("user", text, self.users.get(text, text))


def _seed_text(value: object) -> str:
    """YAML reads ``true`` and ``2.4`` as non-strings; Jenkins parameters are text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_FALLBACK_BODIES = {
    "SUCCESS": ("Building in workspace ${WORKSPACE}", "+ ./ci/build.sh",
                "Build step 'Execute shell' marked build as success"),
    "UNSTABLE": ("Building in workspace ${WORKSPACE}", "+ ./ci/build.sh",
                 "Build step 'Publish JUnit test result report' changed build result to UNSTABLE"),
    "FAILURE": ("Building in workspace ${WORKSPACE}", "+ ./ci/build.sh",
                "Build step 'Execute shell' marked build as failure"),
    "ABORTED": ("Building in workspace ${WORKSPACE}", "+ ./ci/build.sh",
                "Build timed out (after 30 minutes). Marking the build as aborted.",
                "Build was aborted"),
    "NOT_BUILT": ("Skipped: nothing to build",),
}


def _new_build(job: _Job, number: int, queue_id: int, params: ParamValues, cause: _Cause,
               started_at: float, seconds: float, result: str, log: str | None,
               templates: dict[str, tuple[str, ...]]) -> _Build:
    """A build with its console body rendered from the job's template for ``result``."""
    commit = hashlib.sha1(f"{job.full_name}#{number}".encode()).hexdigest() if job.scm else ""
    name = log or job.logs.get(result)
    lines = templates[name] if name else _FALLBACK_BODIES[result]
    values = dict(job.env)
    values.update((param.name, _seed_text(value)) for param, value in params)
    values.update(
        JOB_NAME=job.full_name, JOB_BASE_NAME=job.name, BUILD_NUMBER=str(number),
        BUILD_ID=str(number), BUILD_TAG=f"jenkins-{job.full_name.replace('/', '-')}-{number}",
        WORKSPACE=f"{_WORKSPACE_ROOT}/{job.full_name}", GIT_URL=job.scm,
        GIT_COMMIT=commit, GIT_SHORT=commit[:8],
    )
    body = tuple(string.Template(line).safe_substitute(values) for line in lines)
    return _Build(job, number, queue_id, params, cause, started_at, seconds, result, body,
                  commit, ends_at=started_at + seconds)


# ---------------------------------------------------------------------------------------
# Jenkins' "tree" query parameter: jobs[name,url,jobs[name]]{0,10}


_TreeSpec = dict[str, tuple["_TreeSpec | None", "tuple[int, int | None] | None"]]
_TREE_NAME = re.compile(r"[A-Za-z0-9_$]+")


def _parse_tree(text: str) -> _TreeSpec:
    """Parse a tree expression; raise ValueError when it is malformed."""
    position = 0

    def parse_list() -> _TreeSpec:
        nonlocal position
        spec: _TreeSpec = {}
        while True:
            match = _TREE_NAME.match(text, position)
            if not match:
                raise ValueError(f"expected a field name at {position} in {text!r}")
            name, position = match.group(), match.end()
            sub: _TreeSpec | None = None
            window: tuple[int, int | None] | None = None
            if text.startswith("[", position):
                position += 1
                sub = parse_list()
                if not text.startswith("]", position):
                    raise ValueError(f"missing ] in {text!r}")
                position += 1
            if text.startswith("{", position):
                end = text.index("}", position)  # {M,N}, {M,} or {M}: a slice of a list
                low, comma, high = text[position + 1:end].partition(",")
                if comma:
                    window = (int(low or 0), int(high) if high else None)
                else:
                    window = (int(low), int(low) + 1)
                position = end + 1
            spec[name] = (sub, window)
            if not text.startswith(",", position):
                return spec
            position += 1

    result = parse_list()
    if position != len(text):
        raise ValueError(f"unexpected {text[position]!r} at {position} in {text!r}")
    return result


def _apply_tree(value: Any, spec: _TreeSpec) -> Any:
    """Keep only what ``spec`` asks for; like Jenkins, every object keeps its ``_class``."""
    if isinstance(value, list):
        return [_apply_tree(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {"_class": value["_class"]} if "_class" in value else {}
    for name, (sub, window) in spec.items():
        if name not in value:
            continue
        item = value[name]
        if window is not None and isinstance(item, list):
            item = item[window[0]:window[1]]
        out[name] = _tree_leaf(item) if sub is None else _apply_tree(item, sub)
    return out


def _tree_leaf(value: Any) -> Any:
    """A field named without a sub-tree: objects shrink to their ``_class``."""
    if isinstance(value, list):
        return [_tree_leaf(item) for item in value]
    if isinstance(value, dict):
        return {"_class": value["_class"]} if "_class" in value else {}
    return value


# ---------------------------------------------------------------------------------------
# State and its rules.


def _time_span(seconds: float) -> str:
    """Durations the way Jenkins writes them in queue reasons ("4.9 sec", "12 min")."""
    seconds = max(seconds, 0.0)
    if seconds >= 3600:
        return f"{int(seconds // 3600)} hr {int(seconds % 3600 // 60)} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60)} sec"
    if seconds >= 10:
        return f"{int(seconds)} sec"
    if seconds >= 0.1:
        return f"{seconds:.1f} sec" if seconds >= 1 else f"{seconds:.2f} sec"
    return f"{int(seconds * 1000)} ms"


class _State:
    """Jobs, builds and the queue, with Jenkins' scheduling rules. Callers hold ``lock``."""

    def __init__(self, seed: _Seed, *, queue_delay: float, build_seconds: float,
                 clock: Callable[[], float], stop_seconds: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.jobs = seed.jobs
        self.users = seed.users
        self.queue_delay = queue_delay
        self.build_seconds = build_seconds
        self.stop_seconds = stop_seconds
        self.clock = clock
        self.executors = seed.executors
        self.next_queue_id = seed.next_queue_id
        self.running: list[_Build] = list(seed.running)
        self.pending: list[_QueueItem] = []  # oldest first
        self.items: dict[int, _QueueItem] = {}
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()

    def now(self) -> float:
        """The current time, with everything that happened until then applied."""
        now = self.clock()
        self._advance(now)
        return now

    def _advance(self, now: float, since: float = float("-inf")) -> None:
        """Replay build ends and starts up to ``now`` in time order (ends first on ties)."""
        t = since
        while True:
            ending = min(self.running, key=lambda b: b.ends_at, default=None)
            start: tuple[float, _QueueItem] | None = None
            if len(self.running) < self.executors:
                busy = {id(b.job) for b in self.running}
                for item in self.pending:
                    if not item.job.concurrent and id(item.job) in busy:
                        continue
                    at = max(item.ready_at, t)
                    if start is None or at < start[0]:
                        start = (at, item)
            end_at = ending.ends_at if ending else float("inf")
            start_at = start[0] if start else float("inf")
            if ending is not None and end_at <= start_at and end_at <= now:
                ending.result = ending.planned_result
                self.running.remove(ending)
                t = max(t, end_at)
            elif start is not None and start_at <= now:
                self._start(start[1], start_at)
                t = max(t, start_at)
            else:
                return

    def _start(self, item: _QueueItem, at: float) -> None:
        job = item.job
        result, log = job.forced.popleft() if job.forced else ("SUCCESS", None)
        build = _new_build(job, job.next_number, item.id, item.params, item.cause, at,
                           self.build_seconds, result, log, self.seed.templates)
        job.next_number += 1
        job.builds.append(build)
        self.running.append(build)
        self.pending.remove(item)
        item.build, item.left_at = build, at

    # -- lookups -------------------------------------------------------------------

    def job(self, full_name: str) -> _Job:
        job = self.jobs.get(full_name)
        if job is None:
            raise _Refused(404, "Not Found")
        return job

    def build(self, job: _Job, ref: str) -> _Build:
        """A build by number or permalink (``lastFailedBuild``), or 404."""
        if job.is_folder:
            raise _Refused(404, "Not Found")
        found: _Build | None = None
        if ref.isdigit():
            found = next((b for b in job.builds if b.number == int(ref)), None)
        elif ref in _PERMALINKS:
            found = self.permalink(job, ref)
        if found is None:
            raise _Refused(404, "Not Found")
        return found

    @staticmethod
    def permalink(job: _Job, name: str) -> _Build | None:
        tests: dict[str, Callable[[_Build], bool]] = {
            "lastBuild": lambda b: True,
            "lastCompletedBuild": lambda b: not b.building,
            "lastSuccessfulBuild": lambda b: b.result in ("SUCCESS", "UNSTABLE"),
            "lastStableBuild": lambda b: b.result == "SUCCESS",
            "lastFailedBuild": lambda b: b.result == "FAILURE",
            "lastUnstableBuild": lambda b: b.result == "UNSTABLE",
            "lastUnsuccessfulBuild": lambda b: b.result not in (None, "SUCCESS"),
        }
        return next((b for b in reversed(job.builds) if tests[name](b)), None)

    def pending_item(self, job: _Job) -> _QueueItem | None:
        return next((item for item in self.pending if item.job is job), None)

    def queue_item(self, number: int, now: float) -> _QueueItem:
        item = self.items.get(number)
        if item is None or (item.left_at is not None and now - item.left_at > _QUEUE_RETENTION):
            raise _Refused(404, "Not Found")
        return item

    def display_name(self, user_id: str) -> str:
        return self.users.get(user_id, user_id)

    # -- operations ----------------------------------------------------------------

    def trigger(self, job: _Job, values: dict[str, list[str]], with_parameters: bool,
                user_id: str, now: float) -> _QueueItem:
        """``POST build`` / ``buildWithParameters``; an identical waiting request is reused."""
        if job.is_folder:
            raise _Refused(404, "Not Found")
        if job.disabled:
            raise _Refused(409, f"{job.full_name} is not buildable")
        if with_parameters and not job.params:
            raise _Refused(500, "This build is not parameterized!",
                           java="java.lang.IllegalStateException")
        if not with_parameters and job.params:
            raise _Refused(400, "Nothing is submitted")

        def submitted(name: str) -> str | None:
            """The first value given for ``name`` (Jenkins reads one); None if none was."""
            given = values.get(name)
            return given[0] if given else None

        params = tuple((param, param.coerce(submitted(param.name)))
                       for param in job.params)  # undeclared parameters are dropped, as in Jenkins
        for item in self.pending:
            if item.job is job and item.params == params:
                return item
        delay = self.queue_delay
        match = re.fullmatch(r"(\d+)(?:sec)?", (values.get("delay") or [""])[0])
        if match:
            delay = float(match[1])
        item = _QueueItem(self.next_queue_id, job, params,
                          _Cause("user", user_id, self.display_name(user_id)), now, now + delay)
        self.next_queue_id += 1
        self.items[item.id] = item
        self.pending.append(item)
        self._advance(now)  # a zero delay starts the build at once
        return item

    def stop(self, build: _Build, user_id: str, now: float) -> None:
        """Ask a running build to stop; a finished one is left alone, as Jenkins does.

        The request only interrupts the build (``Executor.doStop`` -> ``interrupt()``; a
        pipeline's ``AsynchronousExecution.interrupt`` hands it to a timer thread): the
        build ends when it reaches an abort point, ``stop_seconds`` later, with its job's
        ``stop_result`` (a pipeline that catches the interruption ends as it likes), or, for
        a job that ignores stops, when it would have anyway. A second stop changes nothing.
        """
        if not build.building or build.stop_requested_at is not None:
            return
        job = build.job
        delay = self.stop_seconds if job.stop_seconds is None else job.stop_seconds
        build.stop_requested_at = now
        build.stop_line = _lines_by(build, now)
        build.aborted_by = self.display_name(user_id)
        build.stop_obeyed = job.stop_result is not None
        if job.stop_result is not None and now + delay < build.ends_at:
            build.ends_at, build.planned_result = now + delay, job.stop_result
        self._advance(now, since=now)  # whatever waited for it starts then, not earlier

    def cancel(self, number: int, now: float) -> None:
        item = self.items.get(number)
        if item is None or item.build is not None or item.cancelled:
            raise _Refused(404, "Not Found")
        item.cancelled, item.left_at = True, now
        self.pending.remove(item)

    def snapshot(self, build: _Build, now: float) -> BuildSnapshot:
        return BuildSnapshot(
            job=build.job.full_name, number=build.number, result=build.result,
            building=build.building, parameters=build.parameters, cause=build.cause.short(),
            user_id=build.cause.user_id or None, started_at=build.started_at,
            duration=(now if build.building else build.ends_at) - build.started_at,
            queue_id=build.queue_id, console=_console(build, now),
            stop_requested_at=build.stop_requested_at,
        )


def _lines_by(build: _Build, moment: float) -> int:
    """How many body lines a build's console has at ``moment`` (it grows as it runs)."""
    elapsed = moment - build.started_at
    progress = elapsed / build.planned_seconds if build.planned_seconds else 1.0
    return int(len(build.body) * min(max(progress, 0.0), 1.0))


_FORCE_AFTER = 15.0  # WorkflowRun.printLater: the terminate link shows 15 s after a stop


def _console(build: _Build, now: float) -> str:
    """The console log as of ``now``: lines appear as the build progresses, never reordered.

    After a stop a pipeline prints "Aborted by" at once (``recordCauseOfInterruption``)
    and, still running 15 s later, the link to terminate its steps; a freestyle build
    prints "Build was aborted" when it has ended ABORTED.
    """
    lines = [build.cause.short()]
    until = now if build.building else build.ends_at
    pipeline = build.job.kind == "pipeline"
    if build.stop_requested_at is None:
        lines.extend(build.body[:_lines_by(build, until)] if build.building else build.body)
    else:
        lines.extend(build.body[:build.stop_line])
        if pipeline:
            lines.append(f"Aborted by {build.aborted_by}")
        if not build.stop_obeyed:
            lines.extend(build.body[build.stop_line:_lines_by(build, until)])
        elif pipeline and until - build.stop_requested_at >= _FORCE_AFTER:
            lines.append("Click here to forcibly terminate running steps")
        if not build.building and pipeline:
            lines.append("[Pipeline] End of Pipeline")
        elif not build.building and build.result == "ABORTED":
            lines += ["Build was aborted", f"Aborted by {build.aborted_by}"]
    if not build.building:
        lines.append(f"Finished: {build.result}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------
# JSON, as Jenkins renders it.


class _Renderer:
    """Builds the JSON bodies; ``base`` is the server URL as the client reached it."""

    def __init__(self, state: _State, base: str, now: float) -> None:
        self.state = state
        self.base = base
        self.now = now

    def color(self, job: _Job) -> str:
        if job.disabled:
            return "disabled"
        completed = _State.permalink(job, "lastCompletedBuild")
        color = _COLORS[completed.result or "NOT_BUILT"] if completed else "notbuilt"
        if job.builds and job.builds[-1].building:
            color += "_anime"
        return color

    def build_ref(self, build: _Build | None) -> dict[str, Any] | None:
        if build is None:
            return None
        return {"_class": _BUILD_CLASSES[build.job.kind], "number": build.number,
                "url": f"{self.base}{build.job.path}{build.number}/"}

    def summary(self, job: _Job) -> dict[str, Any]:
        data: dict[str, Any] = {"_class": _JOB_CLASSES[job.kind], "name": job.name,
                                "url": f"{self.base}{job.path}"}
        if not job.is_folder:
            data["color"] = self.color(job)  # Jenkins gives folders no color
        return data

    def jobs_list(self, jobs: Sequence[_Job], depth: int, full: bool) -> list[dict[str, Any]]:
        ordered = sorted(jobs, key=lambda j: j.name.lower())
        if full or depth >= 1:
            return [self.job(job, depth - 1, full) for job in ordered]
        return [self.summary(job) for job in ordered]

    def root(self, depth: int, full: bool) -> dict[str, Any]:
        all_view = {"_class": "hudson.model.AllView", "name": "all", "url": self.base}
        return {
            "_class": "hudson.model.Hudson",
            "assignedLabels": [{"name": "built-in"}],
            "mode": "NORMAL",
            "nodeDescription": "the Jenkins controller's built-in node",
            "nodeName": "",
            "numExecutors": self.state.executors,
            "description": None,
            "jobs": self.jobs_list(self.state.seed.top, depth, full),
            "overallLoad": {},
            "primaryView": all_view,
            "quietDownReason": None,
            "quietingDown": False,
            "slaveAgentPort": -1,
            "unlabeledLoad": {"_class": "jenkins.model.UnlabeledLoadStatistics"},
            "url": self.base,
            "useCrumbs": True,
            "useSecurity": True,
            "views": [all_view],
        }

    def health(self, job: _Job) -> list[dict[str, Any]]:
        recent = [b for b in reversed(job.builds) if not b.building][:5]
        if not recent:
            return []
        failed = sum(1 for b in recent if b.result == "FAILURE")
        score = 100 - 100 * failed // len(recent)
        icon = next(name for low, name in ((80, "80plus"), (60, "60to79"), (40, "40to59"),
                                           (20, "20to39"), (-1, "00to19")) if score > low)
        description = ("Build stability: No recent builds failed." if not failed else
                       f"Build stability: {failed} out of the last {len(recent)} builds failed.")
        return [{"description": description, "iconClassName": f"icon-health-{icon}",
                 "iconUrl": f"health-{icon}.png", "score": score}]

    def estimated_ms(self, job: _Job) -> int:
        done = [b for b in reversed(job.builds) if not b.building]
        good = [b for b in done if b.result in ("SUCCESS", "UNSTABLE")][:3] or done[:3]
        if not good:
            return -1
        return int(sum(b.ends_at - b.started_at for b in good) / len(good) * 1000)

    def job(self, job: _Job, depth: int = 0, full: bool = False) -> dict[str, Any]:
        """Job or folder JSON; ``full`` (a tree query) includes everything, nested."""
        url = f"{self.base}{job.path}"
        data: dict[str, Any] = {"_class": _JOB_CLASSES[job.kind]}
        if job.is_folder:
            view = {"_class": "hudson.model.AllView", "name": "All", "url": url}
            data.update(actions=[{}], description=job.description or None,
                        displayName=job.name, displayNameOrNull=None,
                        fullDisplayName=job.display, fullName=job.full_name, name=job.name,
                        url=url, healthReport=[],
                        jobs=self.jobs_list(job.children, depth, full),
                        primaryView=view, views=[view])
            return data
        expand = full or depth >= 1

        def ref(build: _Build | None) -> dict[str, Any] | None:
            if build is None or not expand:
                return self.build_ref(build)
            return self.build(build)

        definitions = [param.definition_json() for param in job.params]
        prop = ([{"_class": "hudson.model.ParametersDefinitionProperty",
                  "parameterDefinitions": definitions}] if definitions else [])
        newest = list(reversed(job.builds))
        item = self.state.pending_item(job)
        data.update(
            actions=prop + [{}, {"_class": "org.jenkinsci.plugins.displayurlapi.actions"
                                           ".JobDisplayAction"}],
            description=job.description or None,
            displayName=job.name,
            displayNameOrNull=None,
            fullDisplayName=job.display,
            fullName=job.full_name,
            name=job.name,
            url=url,
            buildable=not job.disabled,
            builds=[ref(b) for b in newest[:100]],
            color=self.color(job),
            firstBuild=ref(job.builds[0] if job.builds else None),
            healthReport=self.health(job),
            inQueue=item is not None,
            keepDependencies=False,
        )
        for name in _PERMALINKS:
            data[name] = ref(_State.permalink(job, name))
        data.update(
            nextBuildNumber=job.next_number,
            property=prop,
            queueItem=self.queue_item(item) if item else None,
            concurrentBuild=job.concurrent,
            disabled=job.disabled,
        )
        if job.kind == "freestyle":
            data.update(downstreamProjects=[], labelExpression=None,
                        scm={"_class": "hudson.plugins.git.GitSCM" if job.scm
                             else "hudson.scm.NullSCM"},
                        upstreamProjects=[])
        else:
            data["resumeBlocked"] = False
        if full:
            data["allBuilds"] = [ref(b) for b in newest]
        return data

    def build(self, build: _Build) -> dict[str, Any]:
        job = build.job
        actions: list[dict[str, Any]] = []
        if build.params:
            actions.append({"_class": "hudson.model.ParametersAction",
                            "parameters": [p.value_json(v) for p, v in build.params]})
        actions.append({"_class": "hudson.model.CauseAction", "causes": [build.cause.to_json()]})
        if job.scm:
            branch = f"refs/remotes/origin/{build.parameters.get('BRANCH', 'main')}"
            revision = {"SHA1": build.commit, "branch": [{"SHA1": build.commit, "name": branch}]}
            actions.append({
                "_class": "hudson.plugins.git.util.BuildData",
                "buildsByBranchName": {branch: {
                    "_class": "hudson.plugins.git.util.Build", "buildNumber": build.number,
                    "buildResult": None, "marked": revision, "revision": revision}},
                "lastBuiltRevision": revision,
                "remoteUrls": [job.scm],
                "scmName": "",
            })
        actions.append({"_class": "org.jenkinsci.plugins.displayurlapi.actions.RunDisplayAction"})
        building = build.building
        data: dict[str, Any] = {
            "_class": _BUILD_CLASSES[job.kind],
            "actions": actions,
            "artifacts": [],
            "building": building,
            "description": None,
            "displayName": f"#{build.number}",
            "duration": 0 if building else int((build.ends_at - build.started_at) * 1000),
            "estimatedDuration": self.estimated_ms(job),
            "executor": {"_class": "hudson.model.Executor"} if building else None,
            "fullDisplayName": f"{job.display} #{build.number}",
            "id": str(build.number),
            "keepLog": False,
            "number": build.number,
            "queueId": build.queue_id,
            "result": build.result,
            "timestamp": int(build.started_at * 1000),
            "url": f"{self.base}{job.path}{build.number}/",
        }
        index = job.builds.index(build)
        if job.kind == "freestyle":
            data.update(builtOn="", changeSet={"_class": "hudson.scm.EmptyChangeLogSet",
                                               "items": [], "kind": None}, culprits=[])
        else:
            data.update(changeSets=[], culprits=[], inProgress=building,
                        nextBuild=self.build_ref(job.builds[index + 1]
                                                 if index + 1 < len(job.builds) else None),
                        previousBuild=self.build_ref(job.builds[index - 1] if index else None))
        return data

    def queue_item(self, item: _QueueItem) -> dict[str, Any]:
        actions: list[dict[str, Any]] = []
        if item.params:
            actions.append({"_class": "hudson.model.ParametersAction",
                            "parameters": [p.value_json(v) for p, v in item.params]})
        actions.append({"_class": "hudson.model.CauseAction", "causes": [item.cause.to_json()]})
        data: dict[str, Any] = {
            "actions": actions, "blocked": False, "buildable": False, "id": item.id,
            "inQueueSince": int(item.queued_at * 1000),
            "params": "".join(f"\n{p.name}={_seed_text(v)}" for p, v in item.params
                              if p.kind != "password"),
            "stuck": False,
            "task": {"_class": _JOB_CLASSES[item.job.kind], "name": item.job.name,
                     "url": f"{self.base}{item.job.path}", "color": self.color(item.job)},
            "url": f"queue/item/{item.id}/",
            "why": None,
        }
        if item.left_at is not None:
            return {"_class": "hudson.model.Queue$LeftItem", **data, "cancelled": item.cancelled,
                    "executable": self.build_ref(item.build)}
        if item.ready_at > self.now:
            return {"_class": "hudson.model.Queue$WaitingItem", **data,
                    "why": "In the quiet period. Expires in "
                           + _time_span(item.ready_at - self.now),
                    "timestamp": int(item.ready_at * 1000)}
        running = next((b for b in self.state.running if b.job is item.job), None)
        if running is not None and not item.job.concurrent:
            return {"_class": "hudson.model.Queue$BlockedItem", **data, "blocked": True,
                    "why": f"Build #{running.number} is already in progress "
                           f"(ETA: {_time_span(running.ends_at - self.now)})"}
        return {"_class": "hudson.model.Queue$BuildableItem", **data, "buildable": True,
                "pending": False, "why": "Waiting for next available executor"}

    def computer(self) -> dict[str, Any]:
        running = sorted(self.state.running, key=lambda b: b.started_at)
        slots = max(self.state.executors, len(running))
        executors = []
        for number in range(slots):
            build = running[number] if number < len(running) else None
            progress = -1
            if build is not None and build.planned_seconds:
                progress = min(99, int(100 * (self.now - build.started_at) / build.planned_seconds))
            executors.append({"_class": "hudson.model.Executor",
                              "currentExecutable": self.build_ref(build), "idle": build is None,
                              "likelyStuck": False, "number": number, "progress": progress})
        return {
            "_class": "hudson.model.Hudson$MasterComputer",
            "actions": [],
            "assignedLabels": [{"name": "built-in"}],
            "description": "the Jenkins controller's built-in node",
            "displayName": "Built-In Node",
            "executors": executors,
            "icon": "symbol-computer",
            "iconClassName": "symbol-computer",
            "idle": not running,
            "jnlpAgent": False,
            "launchSupported": True,
            "manualLaunchAllowed": True,
            "monitorData": {},
            "numExecutors": self.state.executors,
            "offline": False,
            "offlineCause": None,
            "offlineCauseReason": "",
            "oneOffExecutors": [],
            "temporarilyOffline": False,
        }

    def user(self, user_id: str) -> dict[str, Any]:
        return {"_class": "hudson.model.User", "absoluteUrl": f"{self.base}user/{quote(user_id)}",
                "description": None, "fullName": self.state.display_name(user_id),
                "id": user_id, "property": [
                    {"_class": "jenkins.security.ApiTokenProperty"},
                    {"_class": "hudson.model.MyViewsProperty"},
                    {"_class": "hudson.tasks.Mailer$UserProperty",
                     "address": f"{user_id}@example.com"}]}


# ---------------------------------------------------------------------------------------
# HTTP: auth, crumbs, routing and Jenkins' error pages.


def _jetty_error(status: int, message: str, target: str) -> str:
    """The HTML error page Jetty (Jenkins' servlet container) answers with."""
    message = html.escape(message)
    return (
        "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n"
        f"<title>Error {status} {message}</title>\n</head>\n<body><h2>HTTP ERROR {status} "
        f"{message}</h2>\n<table>\n<tr><th>URI:</th><td>{html.escape(target)}</td></tr>\n"
        f"<tr><th>STATUS:</th><td>{status}</td></tr>\n<tr><th>MESSAGE:</th><td>{message}</td>"
        "</tr>\n<tr><th>SERVLET:</th><td>Stapler</td></tr>\n</table>\n\n</body>\n</html>\n"
    )


def _oops_page(java: str, message: str, show_stack_trace: bool = False) -> str:
    """Jenkins' own page for an exception inside a request (status 500): the exception
    only with SHOW_STACK_TRACE (oops.jelly), a logging id always."""
    trace = (f"<h2>Stack trace</h2><pre style=\"margin:2em; clear:both\">{html.escape(java)}: "
             f"{html.escape(message)}\n\tat hudson.model.ParametersDefinitionProperty"
             "</pre>") if show_stack_trace else ""
    return (
        "<!DOCTYPE html><html><head><title>Jenkins</title></head><body>"
        "<h1 style=\"text-align: center\"><span style=\"font-size:50px\">&nbsp;Oops!</span>"
        "</h1><div id=\"error-description\"><h2 style=\"text-align: center\">A problem "
        "occurred while processing the request</h2><p style=\"text-align: center\">Logging "
        f"ID={uuid.uuid4()}</p></div>{trace}</body></html>\n"
    )


def _html_page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><title>{html.escape(title)} [Jenkins]</title></head>"
            f"<body>{body}</body></html>\n")


class _App:
    """The HTTP face of the simulator: Request in, Response out."""

    def __init__(self, state: _State, user: str, token: str, default_base: Callable[[], str],
                 password: str | None = None):
        self.state = state
        self.user = user
        self.token = token
        self.password = password
        self.default_base = default_base
        self.secret = secrets.token_bytes(16)  # the crumb salt: kept across restarts
        self.node = hashlib.sha256(self.secret).hexdigest()[:8]  # the cookie's name
        self.instance = secrets.token_hex(4)  # X-Jenkins-Session: new at every start
        self.show_stack_trace = False
        self.session_counter = 0
        self.sessions: set[str] = set()  # the live web sessions (Jetty keeps them in memory)

    def __call__(self, request: Request) -> Response:
        failure = self.state.faults.hold(unquote(request.raw_path))
        user: str | None = None
        how: str | None = None
        if failure is not None:
            response = self._fault_response(failure, request)
        else:
            try:
                user, how = self._authenticate(request)
                with self.state.lock:
                    response = self._route(request, user, how)
            except _Refused as refused:
                response = self._refusal(refused, request, user)
        response.with_header("X-Content-Type-Options", "nosniff")
        response.with_header("X-Hudson", "1.395")
        response.with_header("X-Jenkins", self.state.seed.version)
        response.with_header("X-Jenkins-Session", self.instance)
        self.state.log.append(RecordedRequest(request.method, request.target, response.status,
                                              user, request.header(_CRUMB_FIELD), how))
        self.state.faults.hold_response(unquote(request.raw_path))  # respond_delay()
        return response

    # -- auth ----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> tuple[str | None, str | None]:
        """(user, "token" or "password") of a valid ``Authorization: Basic`` header, (None,
        None) for anonymous; 401 if wrong. The API token is tried first, then the password,
        as Jenkins' BasicHeaderApiTokenAuthenticator and BasicHeaderRealPasswordAuthenticator."""
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            user, _, password = b64decode(value.strip(), validate=True).decode().partition(":")
        except (BinasciiError, UnicodeDecodeError):
            raise _Refused(401, "Invalid Basic authentication header") from None
        if user == self.user and hmac.compare_digest(password.encode(), self.token.encode()):
            return user, "token"
        if user == self.user and self.password is not None and \
                hmac.compare_digest(password.encode(), self.password.encode()):
            return user, "password"
        raise _Refused(401, f"Invalid password/token for user: {user}")

    def _session(self, request: Request) -> str | None:
        """The request's web session, if the cookie names a live one (a stale id is no session)."""
        session = request.cookies().get(f"JSESSIONID.{self.node}")
        return session if session in self.sessions else None

    @staticmethod
    def _client_ip(request: Request) -> str:
        """DefaultCrumbIssuer.getClientIP: the first X-Forwarded-For hop, else the peer."""
        forwarded = request.header("X-Forwarded-For")
        return forwarded.split(",")[0] if forwarded else request.client

    def _crumb(self, request: Request, user: str | None, session: str | None) -> str:
        """DefaultCrumbIssuer.issueCrumb: a digest of user;client IP;session id and the salt."""
        message = f"{user or 'anonymous'};{self._client_ip(request)};{session or ''}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def _check_crumb(self, request: Request, user: str | None, how: str | None) -> None:
        """CrumbFilter on a POST: API-token requests pass whatever crumb they carry
        (ApiCrumbExclusion, JENKINS-22474); any other needs the crumb issued to its user,
        address and live web session, else 403 "No valid crumb was included in the request"."""
        if how == "token":
            return
        sent = request.header(_CRUMB_FIELD) or request.param(_CRUMB_FIELD)
        expected = self._crumb(request, user, self._session(request))
        if sent is None or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise _Refused(403, "No valid crumb was included in the request")

    def restart(self) -> None:
        """Jenkins restarted: its web sessions, and so every crumb issued in one, are gone."""
        self.sessions.clear()
        self.instance = secrets.token_hex(4)

    # -- routing -------------------------------------------------------------------

    def _base(self, request: Request) -> str:
        host = request.header("Host")
        return f"http://{host}/" if host else self.default_base()

    def _route(self, request: Request, user: str | None, how: str | None) -> Response:
        segments, method = request.segments, request.method
        if not segments and method == "GET":  # "/" answers anyone, so get_version() works first
            return Response.html(_html_page("Dashboard", "<h1>Welcome to Jenkins!</h1>"))
        if method == "POST":
            self._check_crumb(request, user, how)
        if user is None:
            raise _Refused(403, "Authentication required")
        now = self.state.now()
        render = _Renderer(self.state, self._base(request), now)
        match segments:
            case ("api", "json"):
                return self._api(request, lambda depth, full: render.root(depth, full))
            case ("crumbIssuer", "api", "json"):
                return self._crumb_issuer(request, user)
            case ("me", "api", "json"):
                return self._api(request, lambda depth, full: render.user(user))
            case ("user", user_id, "api", "json") if user_id in self.state.users or user_id == user:
                return self._api(request, lambda depth, full: render.user(user_id))
            case ("whoAmI", "api", "json"):
                return self._api(request, lambda depth, full: {
                    "_class": "hudson.security.WhoAmI", "anonymous": False, "authenticated": True,
                    "authorities": ["authenticated"], "details": None, "name": user,
                    "toString": f"UsernamePasswordAuthenticationToken [Principal={user}, "
                                "Authenticated=true, Granted Authorities=[authenticated]]"})
            case ("queue", "api", "json"):
                items = [render.queue_item(item) for item in self.state.pending]
                return self._api(request, lambda depth, full: {
                    "_class": "hudson.model.Queue", "discoverableItems": [], "items": items})
            case ("queue", "item", number, "api", "json") if number.isdigit():
                item = self.state.queue_item(int(number), now)
                return self._api(request, lambda depth, full: render.queue_item(item))
            case ("queue", "cancelItem"):
                self._require_post(request)
                number = request.param("id") or ""
                self.state.cancel(int(number) if number.isdigit() else -1, now)
                return Response(204)
            case ("computer", "api", "json"):
                computer = render.computer()
                return self._api(request, lambda depth, full: {
                    "_class": "hudson.model.ComputerSet",
                    "busyExecutors": len(self.state.running), "computer": [computer],
                    "displayName": "Nodes", "totalExecutors": computer["numExecutors"]})
            case ("computer", "(master)" | "(built-in)", "api", "json"):
                return self._api(request, lambda depth, full: render.computer())
            case ("job", *_):
                return self._job_route(request, user, render, now)
        raise _Refused(404, "Not Found")

    def _job_route(self, request: Request, user: str, render: _Renderer, now: float) -> Response:
        segments = request.segments
        names: list[str] = []
        index = 0
        while index + 1 < len(segments) and segments[index] == "job":
            names.append(segments[index + 1])
            index += 2
        rest = segments[index:]
        job = self.state.job("/".join(names))
        match rest:
            case ():
                heading = f"<h1>{html.escape(job.display)}</h1>"
                return Response.html(_html_page(job.display, heading))
            case ("api", "json"):
                return self._api(request, lambda depth, full: render.job(job, depth, full))
            case ("build" | "buildWithParameters" as verb,):
                self._require_post(request)
                values = dict(request.query)
                if "x-www-form-urlencoded" in (request.header("Content-Type") or ""):
                    for key, items in parse_qs(request.body.decode(errors="replace"),
                                               keep_blank_values=True).items():
                        values.setdefault(key, items)
                item = self.state.trigger(job, values, verb == "buildWithParameters", user, now)
                return Response(201).with_header(
                    "Location", f"{render.base}queue/item/{item.id}/")
        if job.is_folder or not rest:
            raise _Refused(404, "Not Found")
        build = self.state.build(job, rest[0])
        title = f"{job.display} #{build.number}"
        match rest[1:]:
            case ():
                return Response.html(_html_page(title, f"<h1>{html.escape(title)}</h1>"
                                                f"<p>{build.result or 'In progress'}</p>"))
            case ("api", "json"):
                return self._api(request, lambda depth, full: render.build(build))
            case ("consoleText",):
                return Response.text(_console(build, now))
            case ("console",):
                return Response.html(_html_page(title, "<pre class=\"console-output\">"
                                                f"{html.escape(_console(build, now))}</pre>"))
            case ("logText", "progressiveText"):
                text = _console(build, now).encode()
                start = request.param("start") or "0"
                offset = int(start) if start.isdigit() else 0
                response = Response(200, text[offset:], "text/plain;charset=utf-8")
                response.with_header("X-Text-Size", str(len(text)))
                if build.building:
                    response.with_header("X-More-Data", "true")
                return response
            case ("stop",):
                self._require_post(request)
                self.state.stop(build, user, now)
                return Response(302).with_header(
                    "Location", f"{render.base}{job.path}{build.number}/")
        raise _Refused(404, "Not Found")

    @staticmethod
    def _require_post(request: Request) -> None:
        if request.method != "POST":
            raise _Refused(405, "This URL requires POST")

    @staticmethod
    def _api(request: Request, render: Callable[[int, bool], dict[str, Any]]) -> Response:
        """Render at ``depth``; with ``tree``, render everything then keep what it names."""
        depth_text = request.param("depth") or "0"
        depth = int(depth_text) if depth_text.isdigit() else 0
        tree = request.param("tree")
        if not tree:
            return Response.json(render(depth, False))
        try:
            spec = _parse_tree(tree)
        except ValueError as exc:
            raise _Refused(400, f"Malformed tree expression: {exc}") from None
        return Response.json(_apply_tree(render(depth, True), spec))

    def _crumb_issuer(self, request: Request, user: str) -> Response:
        session = self._session(request)
        cookie = None
        if session is None:  # req.getSession() makes one: no cookie, or a stale one
            self.session_counter += 1
            digest = hmac.new(self.secret, str(self.session_counter).encode(), hashlib.sha256)
            session = f"node0{digest.hexdigest()[:26]}{self.session_counter}.node0"
            self.sessions.add(session)
            cookie = f"JSESSIONID.{self.node}={session}; Path=/; HttpOnly"
        response = Response.json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                                  "crumb": self._crumb(request, user, session),
                                  "crumbRequestField": _CRUMB_FIELD})
        return response.with_header("Set-Cookie", cookie) if cookie else response

    def _refusal(self, refused: _Refused, request: Request, user: str | None) -> Response:
        if refused.status == 401:
            return Response.html(_jetty_error(401, refused.message, request.raw_path), 401) \
                .with_header("WWW-Authenticate", 'Basic realm="Jenkins"')
        if refused.status == 403 and refused.message == "Authentication required":
            login = f"/login?from={quote(request.target, safe='')}"
            page = (f"<html><head><meta http-equiv='refresh' content='1;url={login}'/><script>"
                    f"window.location.replace('{login}');</script></head><body style='"
                    "background-color:white; color:white;'>\n\nAuthentication required\n"
                    "<!--\n-->\n\n</body></html>\n")
            return (Response.html(page, 403)
                    .with_header("X-You-Are-Authenticated-As", "anonymous")
                    .with_header("X-Required-Permission", "hudson.model.Hudson.Read")
                    .with_header("X-Permission-Implied-By",
                                 "hudson.security.Permission.GenericRead")
                    .with_header("X-Permission-Implied-By", "hudson.model.Hudson.Administer"))
        if refused.status == 500:
            return Response.html(_oops_page(refused.java or "java.lang.RuntimeException",
                                            refused.message, self.show_stack_trace), 500)
        return Response.html(_jetty_error(refused.status, refused.message, request.raw_path),
                             refused.status)

    @staticmethod
    def _fault_response(status: int, request: Request) -> Response:
        if status == 500:
            return Response.html(_oops_page("java.lang.RuntimeException",
                                            "injected by JenkinsSimulator.fail_next()"), 500)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return Response.html(_jetty_error(status, phrase, request.raw_path), status)


# ---------------------------------------------------------------------------------------
# The public face.


class JenkinsSimulator(SimulatorBase[RecordedRequest]):
    """A Jenkins HTTP server in a thread, seeded from YAML, with helpers for tests and demos.

    ``queue_delay`` is each build's quiet period in the queue and ``build_seconds`` how
    long a triggered build runs (seconds). ``port=0`` picks a free port; read ``url``
    after ``start()``. ``clock`` (epoch seconds) lets a test drive time itself.
    ``password`` lets ``user`` also sign in with a password instead of the API token
    (its POSTs then need a crumb from their web session); ``stop_seconds`` is how long a
    stopped build takes to reach an abort point (``set_stop`` sets it per job).
    """

    def __init__(
        self,
        seed_path: str | Path | None = None,
        user: str = "opsbot",
        token: str = DEFAULT_TOKEN,
        queue_delay: float = 0.2,
        build_seconds: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        show_stack_trace: bool = False,
        password: str | None = None,
        stop_seconds: float = 0.0,
    ) -> None:
        check_account(user, token, user_kind="Jenkins user id", client="python-jenkins")
        if queue_delay < 0 or build_seconds < 0 or stop_seconds < 0:
            raise ValueError("queue_delay, build_seconds and stop_seconds must be >= 0 seconds")
        if password is not None and (not password or password == token):
            raise ValueError("password must be non-empty and differ from the API token")
        self.seed_path = Path(seed_path) if seed_path is not None else DEFAULT_SEED
        self.user = user
        self.token = token
        self.password = password
        seed = _SeedLoader(self.seed_path, clock(), user).load()
        self._state = _State(seed, queue_delay=queue_delay, build_seconds=build_seconds,
                             clock=clock, stop_seconds=stop_seconds)
        app = _App(self._state, user, token, lambda: self.url, password)
        app.show_stack_trace = show_stack_trace  # -Djenkins.model.Jenkins.SHOW_STACK_TRACE
        self._app = app
        super().__init__(
            app, faults=self._state.faults, requests=self._state.log,
            host=host, port=port, name="jenkins-simulator", server_name="Jetty(10.0.20)",
        )

    def __repr__(self) -> str:
        return f"JenkinsSimulator({self._location()}, user={self.user!r}, token='**********')"

    def restart(self) -> None:
        """Restart Jenkins as its HTTP clients see it: every web session is gone, and with
        it every crumb issued in one; builds, the queue and the crumb salt stay.

        Jetty keeps sessions in memory, and since Jenkins 2.176.2 (SECURITY-626) the
        default crumb issuer binds a crumb to the web session it was issued in
        (``DefaultCrumbIssuer.issueCrumb`` digests ``req.getSession().getId()``; see
        https://www.jenkins.io/doc/book/security/csrf-protection/ and CloudBees' "CSRF
        Protection Explained"). So a password client's next POST with its old crumb gets
        403 "No valid crumb was included in the request" (``CrumbFilter``), while an API
        token client passes (``ApiCrumbExclusion``). ``X-Jenkins-Session`` changes.
        """
        with self._state.lock:
            self._app.restart()

    # -- lifecycle (url, port, start, stop, with: SimulatorBase) -------------------

    @property
    def version(self) -> str:
        """The Jenkins version the server reports in ``X-Jenkins``."""
        return self._state.seed.version

    def describe(self) -> str:
        """One line for the demo banner (the token is the simulator's own, not a secret)."""
        return f"Jenkins {self.version} at {self.url} (user {self.user}, token {self.token})"

    def env(self) -> dict[str, str]:
        """JENKINS_URL, JENKINS_USER and JENKINS_TOKEN for opsbot's action server."""
        return {"JENKINS_URL": self.url, "JENKINS_USER": self.user, "JENKINS_TOKEN": self.token}

    # -- inspection (and request_log: SimulatorBase) -------------------------------

    def job_names(self) -> list[str]:
        """Full names of every job and folder, e.g. ``platform/nightly-integration``."""
        with self._state.lock:
            return sorted(self._state.jobs)

    def builds(self, job: str) -> list[BuildSnapshot]:
        """Every build of ``job``, oldest first, with parameters, cause and console."""
        with self._state.lock:
            now = self._state.now()
            return [self._state.snapshot(b, now) for b in self._job(job).builds]

    def build(self, job: str, number: int) -> BuildSnapshot:
        """One build of ``job``; KeyError if there is no such build."""
        for snapshot in self.builds(job):
            if snapshot.number == number:
                return snapshot
        raise KeyError(f"{job} has no build #{number}")

    # -- steering (and fail_next, delay_next, respond_delay: SimulatorBase) --------

    def set_outcome(self, job: str, result: str, *, log: str | None = None) -> None:
        """Make the next build of ``job`` end with ``result`` (queued: calls stack up).

        ``log`` names a console template from the seed's ``logs:`` (default: the job's
        own template for that result).
        """
        if result not in RESULTS:
            raise ValueError(f"result must be one of {', '.join(RESULTS)}, got {result!r}")
        with self._state.lock:
            target = self._job(job)
            if target.is_folder:
                raise ValueError(f"{job} is a folder; folders have no builds")
            if log is not None and log not in self._state.seed.templates:
                known = ", ".join(sorted(self._state.seed.templates))
                raise ValueError(f"no log template {log!r} in {self.seed_path}; known: {known}")
            target.forced.append((result, log))

    def set_stop(self, job: str, *, seconds: float = 0.0, result: str | None = "ABORTED") -> None:
        """How ``job``'s builds take a stop from now on: ``seconds`` until it takes effect,
        and the result they end with then; ``result=None``: they ignore it and run their
        course (a step that does not answer the interrupt).

        Stopping is asynchronous in Jenkins: ``POST .../stop`` answers 302 at once
        (``Executor.doStop`` interrupts the executor and returns
        ``forwardToPreviousPage()``), and the build, ``building: true`` meanwhile, ends
        when it reaches an abort point; a pipeline gets the interrupt on a timer thread
        and offers to terminate its steps after 15 s (workflow-job's
        ``WorkflowRun.sleep()`` and ``printLater``), and one that catches the
        interruption (``catchError``, ``try``/``catch``) may end SUCCESS or FAILURE.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        if result is not None and result not in RESULTS:
            raise ValueError(f"result must be one of {', '.join(RESULTS)} or None, "
                             f"got {result!r}")
        with self._state.lock:
            target = self._job(job)
            if target.is_folder:
                raise ValueError(f"{job} is a folder; folders have no builds")
            target.stop_seconds, target.stop_result = seconds, result

    def _job(self, name: str) -> _Job:
        job = self._state.jobs.get(name)
        if job is None:
            close = difflib.get_close_matches(name, self._state.jobs, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"no job called {name!r} in {self.seed_path}{hint}")
        return job


# ---------------------------------------------------------------------------------------
# python -m simulators.jenkins


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.jenkins",
        description="A local Jenkins for opsbot: python-jenkins talks to it like to the real one.",
    )
    add_address_arguments(parser, 8080)
    parser.add_argument("--seed", type=Path, default=DEFAULT_SEED, help="jobs and history (YAML)")
    parser.add_argument("--user", default="opsbot", help="the one user that may log in")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="that user's API token")
    parser.add_argument("--password", default=None,
                        help="that user's password too (its POSTs need a session's crumb)")
    parser.add_argument("--queue-delay", type=float, default=1.0,
                        help="seconds a build waits in the queue (default 1)")
    parser.add_argument("--build-seconds", type=float, default=10.0,
                        help="seconds a triggered build runs (default 10)")
    args = parser.parse_args(argv)

    def banner(simulator: JenkinsSimulator) -> list[str]:
        return [f"Jenkins simulator (Jenkins {simulator.version}) at {simulator.url}",
                f"  user:  {simulator.user}",
                f"  token: {simulator.token}",
                f"  jobs:  {len(simulator.job_names())} from {simulator.seed_path}"]

    return run_main(lambda: JenkinsSimulator(args.seed, args.user, args.token, args.queue_delay,
                                             args.build_seconds, args.host, args.port,
                                             password=args.password),
                    banner, seed_error=SeedError, cannot=f"listen on {args.host}:{args.port}")


if __name__ == "__main__":
    raise SystemExit(main())
