"""opsbot's Jenkins backend: a typed, async wrapper over python-jenkins.

python-jenkins is synchronous (requests underneath), so every call runs in a worker
thread (``asyncio.to_thread``) under ``asyncio.wait_for``, and every request also carries
the client-side ``timeout``. Whatever python-jenkins or requests raises is translated
into :mod:`actions.errors` here, with a message fit for the chat; nothing of theirs
escapes this module.

Reads use Jenkins' ``tree`` query, so a job's history with parameters and causes, or
every job in every folder, is one request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from html import unescape
from json import JSONDecodeError
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import jenkins
import requests
from rapidfuzz import fuzz, process

from actions.backends._client import ClientBackend, Response
from actions.backends._common import (
    account_from_env,
    check_config,
    exception_chain,
    never_sent,
    server_url_problem,
    tidy,
)
from actions.backends._console import NO_ERROR_SUMMARY, analyse_console
from actions.backends._protocol import BackendKind
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    Secret,
)

__all__ = [
    "JENKINS",
    "OPERATION_PARAMETER",
    "PERMALINKS",
    "Build",
    "FailureReport",
    "JenkinsBackend",
    "JenkinsConfig",
    "Job",
    "QueueState",
    "Sightings",
]

logger = logging.getLogger(__name__)

_BACKEND = "Jenkins"
"""The ``backend`` every error from this module carries."""

PERMALINKS = ("lastBuild", "lastSuccessfulBuild", "lastFailedBuild", "lastCompletedBuild",
              "lastStableBuild", "lastUnstableBuild", "lastUnsuccessfulBuild")
"""The build permalinks Jenkins keeps for every job (see :meth:`JenkinsBackend.last_build`)."""

OPERATION_PARAMETER = "OPSBOT_OPERATION"
"""The build parameter that carries opsbot's operation id, on jobs that declare it.

Jenkins drops parameters a job does not declare, so only such jobs get it; with it,
opsbot finds the build it started even when Jenkins' answer to the start was lost.
"""

_T = TypeVar("_T")
_FOLDER_LEVELS = 6  # folder levels fetched per request; deeper folders cost one more each
_JOB_FIELDS = "name,url,color,lastBuild[number],property[parameterDefinitions[name]]"
_BUILD_FIELDS = ("number,url,result,building,timestamp,duration,"
                 "actions[parameters[name,value],causes[userId,shortDescription]]")
_QUEUE_FIELDS = ("items[id,inQueueSince,task[url],"
                 "actions[parameters[name,value],causes[userId]]]")
_DEFAULTS_TREE = "property[parameterDefinitions[name,defaultParameterValue[value]]]"
_CHOICES_TREE = "property[parameterDefinitions[name,choices]]"
_STATUS_BY_COLOR = {
    "blue": "success", "green": "success", "red": "failure", "yellow": "unstable",
    "aborted": "aborted", "disabled": "disabled", "notbuilt": "not_built",
    "grey": "not_built", "nobuilt": "not_built",
}
_FALLBACK_SUMMARY = {
    "ABORTED": "aborted, and the log does not say why",
    "UNSTABLE": "marked unstable (usually failing tests or a quality gate)",
    "FAILURE": "failed without a recognisable error message in the log",
    "NOT_BUILT": "not built",
}


# -- configuration ------------------------------------------------------------------------


def _url_problem(url: str) -> str | None:
    """What is wrong with a Jenkins URL, or None."""
    return server_url_problem(url, product="Jenkins'", example="https://jenkins.example.com/",
                              credentials=("JENKINS_USER", "JENKINS_TOKEN"))


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class JenkinsConfig:
    """Where Jenkins is and how opsbot signs in; the token is a :class:`Secret`."""

    url: str
    user: str
    token: Secret
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.token, str):  # a plain string must never reach a repr
            object.__setattr__(self, "token", Secret(self.token))
        check_config("JenkinsConfig", self.url, self.timeout, _url_problem)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JenkinsConfig | None:
        """JENKINS_URL, JENKINS_USER, JENKINS_TOKEN, JENKINS_TIMEOUT (seconds) from ``env``.

        None when JENKINS_URL is unset or empty (Jenkins is not configured); ConfigError
        naming the variable when the URL is set but USER or TOKEN is missing, or the URL
        or timeout is malformed.
        """
        account = account_from_env(
            os.environ if env is None else env, "JENKINS", url_problem=_url_problem,
            fix="set JENKINS_USER to the Jenkins user opsbot acts as, and JENKINS_TOKEN to an "
                "API token of that user (Jenkins: your name > Security > API Token), not its "
                "password.")
        if account is None:
            return None
        return cls(url=_with_slash(account.url), user=account.user, token=Secret(account.token),
                   timeout=account.timeout)


def _from_env(env: Mapping[str, str]) -> JenkinsBackend | None:
    config = JenkinsConfig.from_env(env)
    return JenkinsBackend(config) if config else None


JENKINS: BackendKind[JenkinsBackend] = BackendKind(
    "jenkins", "Jenkins", ("JENKINS_URL", "JENKINS_USER", "JENKINS_TOKEN", "JENKINS_TIMEOUT"),
    _from_env, setup="set JENKINS_URL, JENKINS_USER and JENKINS_TOKEN")
"""The Jenkins backend's declaration (``actions.backends._protocol``)."""


def _defaults_of(data: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter definition's default value ("" for none) in a job's JSON."""
    defaults: dict[str, str] = {}
    for prop in data.get("property") or ():
        for definition in (prop.get("parameterDefinitions") or ()
                           if isinstance(prop, dict) else ()):
            if not isinstance(definition, dict) or not definition.get("name"):
                continue
            default = definition.get("defaultParameterValue") or {}
            defaults[str(definition["name"])] = _param_text(
                default.get("value") if isinstance(default, dict) else None)
    return defaults


# -- what the backend returns -------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """A Jenkins job (never a folder), as listed or looked up."""

    full_name: str
    name: str
    url: str
    color: str
    parameters: tuple[str, ...]
    last_build: int | None

    @property
    def status(self) -> str:
        """The last completed build's outcome: success, failure, unstable, aborted,
        not_built or disabled."""
        return _STATUS_BY_COLOR.get(self.color.removesuffix("_anime"), "not_built")

    @property
    def building(self) -> bool:
        """True while a build of this job runs (Jenkins' blinking ``_anime`` colours)."""
        return self.color.endswith("_anime")


@dataclass(frozen=True)
class Build:
    """One build of a job, with its parameters and who (or what) started it."""

    job: str
    number: int
    url: str
    result: str | None
    building: bool
    started_at: datetime
    duration_s: float
    parameters: dict[str, str]
    started_by: str | None
    started_by_user: str | None = None  # the Jenkins user id of the cause, if a user
    operation: str | None = None  # OPSBOT_OPERATION: the opsbot operation that started it


@dataclass(frozen=True)
class Sightings:
    """Builds and queue items that may be the one a lost start request made."""

    builds: tuple[Build, ...]
    queued: tuple[int, ...]  # queue ids of matching items still waiting

    @property
    def count(self) -> int:
        return len(self.builds) + len(self.queued)


@dataclass(frozen=True)
class QueueState:
    """Where a requested build is: still waiting (``why``), started, or cancelled."""

    queue_id: int
    build_number: int | None
    cancelled: bool
    why: str | None


@dataclass(frozen=True)
class FailureReport:
    """Why a build failed: the stage, the few error lines that matter, and a summary."""

    job: str
    number: int
    result: str
    url: str
    stage: str | None
    error_lines: tuple[str, ...]
    summary: str


# -- parsing Jenkins' JSON ------------------------------------------------------------------


def _param_text(value: object) -> str:
    """A parameter value as Jenkins reads it back from a form (booleans are true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _parameter_names(data: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for prop in data.get("property") or ():
        if isinstance(prop, dict):
            for definition in prop.get("parameterDefinitions") or ():
                if isinstance(definition, dict) and definition.get("name"):
                    names.append(str(definition["name"]))
    return tuple(names)


def _job_from(data: Mapping[str, Any], full_name: str) -> Job:
    last = data.get("lastBuild")
    number = last.get("number") if isinstance(last, dict) else None
    return Job(
        full_name=full_name,
        name=str(data.get("name") or full_name.rsplit("/", 1)[-1]),
        url=str(data.get("url") or ""),
        color=str(data.get("color") or "notbuilt"),
        parameters=_parameter_names(data),
        last_build=int(number) if number is not None else None,
    )


def _build_from(data: Mapping[str, Any], job: str) -> Build:
    started = float(data.get("timestamp") or 0) / 1000
    building = bool(data.get("building"))
    parameters: dict[str, str] = {}
    causes: list[Mapping[str, Any]] = []
    for action in data.get("actions") or ():
        if not isinstance(action, dict):
            continue
        for parameter in action.get("parameters") or ():
            if isinstance(parameter, dict) and parameter.get("name"):
                parameters[str(parameter["name"])] = _param_text(parameter.get("value"))
        causes.extend(cause for cause in action.get("causes") or () if isinstance(cause, dict))
    user = next((cause["userId"] for cause in causes if cause.get("userId")), None)
    description = next((cause["shortDescription"] for cause in causes
                        if cause.get("shortDescription")), None)
    started_by = user if user is not None else description
    operation = parameters.pop(OPERATION_PARAMETER, "") or None
    result = data.get("result")
    return Build(
        job=job,
        number=int(data["number"]),
        url=str(data.get("url") or ""),
        result=str(result) if result is not None else None,
        building=building,
        started_at=datetime.fromtimestamp(started, tz=UTC),
        duration_s=(max(0.0, time.time() - started) if building
                    else float(data.get("duration") or 0) / 1000),
        parameters=parameters,
        started_by=str(started_by) if started_by is not None else None,
        started_by_user=str(user) if user is not None else None,
        operation=operation,
    )


def _job_name(full_name: str) -> str:
    """``"platform/nightly-integration"``; Jenkins' display form ``a » b`` is accepted too."""
    name = "/".join(part.strip() for part in full_name.replace(" » ", "/").split("/"))
    name = name.strip("/")
    if not name:
        raise InvalidRequest("Which Jenkins job? The job name is empty.", backend=_BACKEND)
    return name


def _job_path(full_name: str) -> str:
    """``"a/b"`` -> ``"job/a/job/b"`` (python-jenkins' get_info quotes it)."""
    return "/".join(f"job/{part}" for part in full_name.split("/"))


def _job_from_url(url: str) -> str | None:
    """The full job name in a job or build URL (``.../job/a/job/b/12/`` -> ``a/b``)."""
    parts = [unquote(part) for part in urlsplit(url).path.split("/") if part]
    index = parts.index("job") if "job" in parts else len(parts)
    names: list[str] = []
    while index + 1 < len(parts) and parts[index] == "job":
        names.append(parts[index + 1])
        index += 2
    return "/".join(names) or None


def _jobs_tree(levels: int) -> str:
    """``jobs[FIELDS,jobs[FIELDS,...,jobs]]``: a bare ``jobs`` marks where folders were cut."""
    tree = "jobs"
    for _ in range(levels):
        tree = f"jobs[{_JOB_FIELDS},{tree}]"
    return tree


def _and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _or_list(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


# -- errors -------------------------------------------------------------------------------

_STATUS_IN_TEXT = re.compile(r"authentication failed \[(\d{3})\]")
_JAVA_EXCEPTION = re.compile(
    r"\b((?:[a-z]\w*\.)+[A-Z]\w*(?:Exception|Error|Failure)): ([^\n<]+)")
_JETTY_MESSAGE = re.compile(r"HTTP ERROR \d{3} ([^<\n]+)")
_BAD_INPUT_EXCEPTIONS = ("IllegalArgumentException", "IllegalStateException",
                         "Failure", "FormException")
_CRUMB_REFUSAL = "No valid crumb was included in the request"  # CrumbFilter's 403


def _http_status(chain: list[BaseException]) -> tuple[int | None, str]:
    """The HTTP status and response body behind an exception, if any.

    python-jenkins turns many HTTP errors into ``JenkinsException("... does not exist")``
    (a 503 included) but raises them while handling the ``requests.HTTPError``, so the
    real status is still in the chain.
    """
    for exc in chain:
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return exc.response.status_code, exc.response.text or ""
    for exc in chain:
        if isinstance(exc, jenkins.JenkinsException):
            match = _STATUS_IN_TEXT.search(str(exc))
            if match:
                return int(match.group(1)), str(exc)
    return None, ""


def _error_page(body: str) -> tuple[str | None, str | None]:
    """(Java exception class, message) or (None, Jetty's message) from an error page."""
    text = unescape(body)
    match = _JAVA_EXCEPTION.search(text)
    if match:
        return match.group(1).rsplit(".", 1)[-1], tidy(match.group(2))
    match = _JETTY_MESSAGE.search(text)
    return None, (tidy(match.group(1)) if match else None)


def _crumb_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is Jenkins' crumb filter refusing a POST (403, nothing ran)."""
    status, body = _http_status(exception_chain(exc))
    return status == 403 and _CRUMB_REFUSAL in body


def _logging_id(body: str) -> str:
    """", Logging ID=..." from Jenkins' Oops! page: what its admin looks up in the log."""
    match = re.search(r"Logging ID=([0-9a-fA-F-]{8,64})", body)
    return f", Jenkins log ID {match.group(1)}" if match else ""


# -- the backend --------------------------------------------------------------------------


class JenkinsBackend(ClientBackend):
    """Jenkins for opsbot's actions: jobs, builds, consoles, failure reports, start and stop.

    Every method is a coroutine that never blocks the event loop and raises only
    :mod:`actions.errors` exceptions, chained to the python-jenkins/requests cause
    (``actions.backends._client``).
    """

    name = "jenkins"
    product = _BACKEND
    api = "Jenkins' JSON API"
    url_variable, timeout_variable = "JENKINS_URL", "JENKINS_TIMEOUT"
    timeouts = (jenkins.TimeoutException,)
    not_api = (JSONDecodeError, jenkins.EmptyResponseException)
    _config: JenkinsConfig

    def __init__(self, config: JenkinsConfig) -> None:
        self._config = config
        self._url = _with_slash(config.url)
        self._server = jenkins.Jenkins(self._url, username=config.user,
                                       password=config.token.reveal(), timeout=config.timeout)

    def __repr__(self) -> str:
        return f"JenkinsBackend({self._url!r}, user={self._config.user!r})"

    @property
    def url(self) -> str:
        """Jenkins' base URL, with a trailing slash."""
        return self._url


    # -- reading jobs --------------------------------------------------------------

    async def jobs(self) -> list[Job]:
        """Every job, through every folder (folders themselves are not listed)."""
        found: list[Job] = []
        folders: list[str] = [""]  # "" is the top level
        while folders:
            folder = folders.pop(0)
            path = _job_path(folder) if folder else ""
            data = await self._run(partial(self._get, path, _jobs_tree(_FOLDER_LEVELS)),
                                   doing="list the jobs",
                                   missing=f"There is no Jenkins folder called '{folder}'.")
            self._walk(data.get("jobs"), f"{folder}/" if folder else "", found, folders)
        return found

    @staticmethod
    def _walk(items: object, prefix: str, found: list[Job], cut: list[str]) -> None:
        """Collect jobs from a nested ``jobs`` list; folders cut off by the tree go to ``cut``."""
        if not isinstance(items, list):
            return
        for item in items:
            if not isinstance(item, dict) or not item.get("name"):
                continue
            full_name = prefix + str(item["name"])
            children = item.get("jobs")
            if isinstance(children, list):  # a folder (or a multibranch project)
                if any(not isinstance(c, dict) or "url" not in c for c in children):
                    cut.append(full_name)
                else:
                    JenkinsBackend._walk(children, full_name + "/", found, cut)
            else:
                found.append(_job_from(item, full_name))

    async def job(self, full_name: str) -> Job:
        """One job by its full name (``"platform/nightly-integration"``)."""
        name = _job_name(full_name)
        data = await self._job_json(name, f"{_JOB_FIELDS},fullName")
        return self._parse(lambda: _job_from(data, str(data.get("fullName") or name)))

    # -- reading builds ------------------------------------------------------------

    async def builds(self, full_name: str, limit: int = 20) -> list[Build]:
        """The job's newest ``limit`` builds, newest first, in one request."""
        name = _job_name(full_name)
        if limit <= 0:
            return []
        field = "builds" if limit <= 100 else "allBuilds"  # Jenkins' builds stops at 100
        data = await self._job_json(name, f"{field}[{_BUILD_FIELDS}]{{0,{limit}}}")
        raw = data.get(field) or []
        builds = self._parse(lambda: [_build_from(item, name) for item in raw
                                       if isinstance(item, dict)])
        return sorted(builds, key=lambda build: build.number, reverse=True)[:limit]

    async def build(self, full_name: str, number: int) -> Build:
        """Build ``number`` of the job."""
        name = _job_name(full_name)
        path = f"{_job_path(name)}/{int(number)}"
        try:
            data = await self._run(lambda: self._get(path, _BUILD_FIELDS),
                                   doing=f"read {name} #{number}",
                                   missing=f"{name} has no build #{number}.")
        except NotFound as exc:
            raise await self._missing_build(name, number) from exc
        return self._parse(lambda: _build_from(data, name))

    async def last_build(self, full_name: str, which: str = "lastBuild") -> Build | None:
        """The build a permalink points at (``lastBuild``, ``lastSuccessfulBuild``,
        ``lastFailedBuild``, ``lastCompletedBuild`` ...), or None if there is none."""
        if which not in PERMALINKS:
            raise ValueError(f"which must be one of {', '.join(PERMALINKS)}, got {which!r}")
        name = _job_name(full_name)
        data = await self._job_json(name, f"{which}[{_BUILD_FIELDS}]")
        raw = data.get(which)
        return self._parse(lambda: _build_from(raw, name)) if isinstance(raw, dict) else None

    async def console(self, full_name: str, number: int) -> str:
        """The build's whole console log (so far, while it runs)."""
        name = _job_name(full_name)
        try:
            text = await self._run(
                lambda: self._server.get_build_console_output(name, int(number)),
                doing=f"read the console of {name} #{number}",
                missing=f"{name} has no build #{number}.")
        except NotFound as exc:
            raise await self._missing_build(name, number) from exc
        return str(text)

    async def failure_report(self, full_name: str, number: int | None = None) -> FailureReport:
        """Why build ``number`` failed; None means the job's last unsuccessful build.

        "Unsuccessful" is Jenkins' ``lastUnsuccessfulBuild``: FAILURE, UNSTABLE or ABORTED.
        NotFound when the job has no such build; InvalidRequest while the build still
        runs. A build that succeeded gets a report that says so.
        """
        name = _job_name(full_name)
        if number is None:
            data = await self._job_json(
                name, f"lastBuild[number,result],lastUnsuccessfulBuild[{_BUILD_FIELDS}]")
            raw = data.get("lastUnsuccessfulBuild")
            if not isinstance(raw, dict):
                last = data.get("lastBuild")
                if not isinstance(last, dict):
                    raise NotFound(f"{name} has never been built, so nothing has failed yet.",
                                   backend=_BACKEND)
                ended = f"ended {last['result']}" if last.get("result") else "is still running"
                raise NotFound(f"{name} has no failed build in Jenkins' history: its last "
                               f"build, #{last.get('number')}, {ended}.", backend=_BACKEND)
            build = self._parse(lambda: _build_from(raw, name))
        else:
            build = await self.build(name, number)
        if build.building or build.result is None:
            raise InvalidRequest(f"{name} #{build.number} is still running; ask again when it "
                                 "has finished.", backend=_BACKEND)
        if build.result == "SUCCESS":
            return FailureReport(job=name, number=build.number, result=build.result,
                                 url=build.url, stage=None, error_lines=(),
                                 summary="nothing failed")
        text = await self.console(name, build.number)
        stage, lines, summary = await asyncio.to_thread(analyse_console, text)  # logs get big
        if summary == NO_ERROR_SUMMARY:
            summary = _FALLBACK_SUMMARY.get(build.result, summary)
        return FailureReport(job=name, number=build.number, result=build.result, url=build.url,
                             stage=stage, error_lines=lines, summary=summary)

    # -- changing things -----------------------------------------------------------

    async def start(self, full_name: str, parameters: Mapping[str, str] | None = None) -> int:
        """Queue a build and return its queue id (see :meth:`wait_for_build`).

        Without parameters a parameterized job is built with its defaults, as Jenkins'
        form would; InvalidRequest names the parameters that have no default.
        """
        name = _job_name(full_name)
        values = {str(key): _param_text(value) for key, value in (parameters or {}).items()}

        def call() -> int:
            if values:
                self._check_choices(name, values)
            try:
                return int(self._post(lambda: self._server.build_job(name, values or None)))
            except requests.HTTPError as exc:
                response = exc.response
                if values or response is None or response.status_code != 400:
                    raise
            # POST /build on a parameterized job is refused; submit the defaults instead
            defaults = self._defaults(name)
            return int(self._post(lambda: self._server.build_job(name, defaults)))

        try:
            return await self._run(call, doing=f"start {name}",
                                   missing=f"There is no Jenkins job called '{name}'.",
                                   refused={409: f"{name} is disabled in Jenkins, so it cannot "
                                                 "be started; enable it in Jenkins first."},
                                   suggest=name)
        except BackendUnavailable as exc:
            if never_sent(exc):
                raise
            raise self._unknown(exc, f"start {name}") from exc

    def _check_choices(self, name: str, values: Mapping[str, str]) -> None:
        """InvalidRequest, naming the allowed values, for a value a choice parameter lacks.

        Checked before the start, from the job's own parameter definitions: a real
        Jenkins answers a bad choice with its "Oops!" page, which does not say why.
        """
        data = self._get(_job_path(name), _CHOICES_TREE)
        definitions = [definition for prop in data.get("property") or ()
                       for definition in (prop.get("parameterDefinitions") or ()
                                          if isinstance(prop, dict) else ())]
        if not definitions:  # Jenkins: IllegalStateException "This build is not parameterized!"
            raise InvalidRequest(f"{name} is not parameterized in Jenkins, so it takes no values "
                                 f"({_and_list(sorted(values))}); nothing was started.",
                                 backend=_BACKEND)
        for definition in definitions:
            if isinstance(definition, dict):
                parameter = str(definition.get("name"))
                choices = definition.get("choices")
                if parameter not in values or not isinstance(choices, list):
                    continue
                allowed = [str(c) for c in choices]
                if values[parameter] not in allowed:
                    raise InvalidRequest(
                        f"{name} takes {parameter} = {_or_list(allowed)}, not "
                        f"'{values[parameter]}'; nothing was started.", backend=_BACKEND)

    async def parameter_defaults(self, full_name: str) -> dict[str, str]:
        """What Jenkins gives each parameter a start does not send: its default (a choice
        parameter's first choice), "" where it has none. Why: what a job acts on is what
        it is sent *and* what it defaults to (``actions.guard.reach``)."""
        name = _job_name(full_name)
        data = await self._job_json(name, _DEFAULTS_TREE)
        return self._parse(lambda: _defaults_of(data))

    def _defaults(self, name: str) -> dict[str, str]:
        """The job's parameter defaults (in the worker thread); InvalidRequest if some lack one."""
        every = _defaults_of(self._get(_job_path(name), _DEFAULTS_TREE))
        # An empty OPSBOT_OPERATION is no operation; any other empty value is no default.
        defaults = {k: v for k, v in every.items() if v or k == OPERATION_PARAMETER}
        lacking = [k for k in every if k not in defaults]
        if lacking or not defaults:
            needed = (_and_list(lacking) if lacking else "its parameters")
            plural = "s" if len(lacking) > 1 else ""
            raise InvalidRequest(f"{name} needs a value for {needed}: Jenkins has no "
                                 f"default{plural} to start it with.", backend=_BACKEND)
        return defaults

    async def queue_state(self, queue_id: int) -> QueueState:
        """Whether queue item ``queue_id`` is still waiting, became a build, or was cancelled."""
        data = await self._queue_item(queue_id)
        return self._parse(lambda: self._queue_state(data, queue_id))

    @staticmethod
    def _queue_state(data: Mapping[str, Any], queue_id: int) -> QueueState:
        executable = data.get("executable")
        number = executable.get("number") if isinstance(executable, dict) else None
        why = data.get("why")
        return QueueState(queue_id=int(data.get("id", queue_id)),
                          build_number=int(number) if number is not None else None,
                          cancelled=bool(data.get("cancelled")),
                          why=str(why) if why else None)

    # The deadline lives in the polling loop, not in asyncio.timeout(), so that running out
    # of time raises with Jenkins' last reason for the wait (state.why) instead of cancelling
    # a request half-way; callers (the watcher, tests) pass ``timeout`` by name.
    async def wait_for_build(self, queue_id: int, *, poll: float = 1.0,
                             timeout: float = 600.0) -> Build:  # noqa: ASYNC109
        """Poll queue item ``queue_id`` until it has become a build (not until that finishes).

        BackendError if it was cancelled; BackendUnavailable if it has not started after
        ``timeout`` seconds (the message gives Jenkins' reason for the wait).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            data = await self._queue_item(queue_id)
            state = self._parse(partial(self._queue_state, data, queue_id))
            if state.cancelled:
                raise BackendError(f"The build queued as item {queue_id} was cancelled in "
                                   "Jenkins before it started.", backend=_BACKEND)
            if state.build_number is not None:
                executable, task = data.get("executable") or {}, data.get("task") or {}
                name = (_job_from_url(str(executable.get("url") or ""))
                        or _job_from_url(str(task.get("url") or "")))
                if name is None:
                    raise BackendUnavailable(f"Jenkins started build #{state.build_number} for "
                                             f"queue item {queue_id} but did not say of which "
                                             "job.", backend=_BACKEND)
                return await self.build(name, state.build_number)
            remaining = deadline - loop.time()
            if remaining <= 0:
                why = f" Jenkins says: {state.why}" if state.why else ""
                raise BackendUnavailable(f"Jenkins queued the build (queue item {queue_id}) but "
                                         f"it had not started after {timeout:g}s.{why}",
                                         backend=_BACKEND)
            await asyncio.sleep(min(poll, remaining))

    async def stop(self, full_name: str, number: int) -> None:
        """Abort build ``number`` (Jenkins ignores this for a build that already finished)."""
        name = _job_name(full_name)
        try:
            await self._run(lambda: self._post(lambda: self._server.stop_build(name, int(number))),
                            doing=f"stop {name} #{number}",
                            missing=f"{name} has no build #{number}.")
        except NotFound as exc:
            raise await self._missing_build(name, number) from exc
        except BackendUnavailable as exc:
            if never_sent(exc):
                raise
            raise self._unknown(exc, f"stop {name} #{number}") from exc

    async def find_started(self, full_name: str, parameters: Mapping[str, str], *,
                           since: datetime, by_me: bool = True, limit: int = 50) -> Sightings:
        """The job's builds and waiting queue items that a lost start request could have made.

        A match has every one of ``parameters`` (``OPERATION_PARAMETER`` included, which
        makes it unique), was started or queued at ``since`` or later and, with ``by_me``,
        by opsbot's own Jenkins user. Used when Jenkins' answer to a start was lost.
        """
        name = _job_name(full_name)
        wanted = {str(k): _param_text(v) for k, v in parameters.items()}
        after = since.timestamp()
        me = self._config.user if by_me else None

        def fits(values: Mapping[str, str], user: str | None, at: float) -> bool:
            return (at >= after and (me is None or user == me)
                    and all(values.get(k) == v for k, v in wanted.items()))

        # The queue first: an item that leaves it for a build meanwhile is then seen as a
        # build; read the other way round, it could be missed by both.
        data = await self._run(lambda: self._get("queue", _QUEUE_FIELDS),
                               doing="read the build queue", missing="Jenkins has no queue.")
        found = []
        for build in await self.builds(name, limit=limit):
            values = dict(build.parameters)
            if build.operation is not None:
                values[OPERATION_PARAMETER] = build.operation
            if fits(values, build.started_by_user, build.started_at.timestamp()):
                found.append(build)
        queued = self._parse(lambda: [
            int(item["id"]) for item in data.get("items") or ()
            if isinstance(item, dict) and _job_from_url(str((item.get("task") or {}).get("url")
                                                            or "")) == name
            and fits(*_queue_facts(item))])
        return Sightings(builds=tuple(found), queued=tuple(queued))

    async def ping(self) -> str:
        """Jenkins' version, after checking that opsbot's credentials work."""

        def call() -> str:
            self._server.get_whoami()
            try:
                return str(self._server.get_version())
            except KeyError:  # no X-Jenkins header: something else answers at this URL
                raise BackendUnavailable(f"{self._url} answered, but not like Jenkins does (no "
                                         "X-Jenkins header); is JENKINS_URL right?",
                                         backend=_BACKEND) from None

        return await self._run(call, doing="sign in", missing=f"{self._url} is not Jenkins' "
                               "address (404); is JENKINS_URL right?")

    # -- plumbing ------------------------------------------------------------------

    def _post(self, call: Callable[[], _T]) -> _T:
        """Run a python-jenkins call that POSTs (in the worker thread); when Jenkins refuses
        its crumb, fetch a new one and send it once more.

        python-jenkins fetches a crumb once per client and keeps it, but Jenkins binds the
        crumb of a password login to its web session, which a restart ends: every later
        POST gets 403 "No valid crumb was included in the request". Jenkins' CrumbFilter
        answers that before the request reaches the job, so nothing ran and the second
        attempt cannot start anything twice; no other refusal is retried.
        """
        try:
            return call()
        except jenkins.JenkinsException as exc:
            if not _crumb_refused(exc):
                raise
            logger.info("Jenkins at %s refused opsbot's crumb (its web session is gone, e.g. "
                        "after a restart); sending once more with a new one", self._url)
        self._server.crumb = None  # the next request fetches one, in a new web session
        return call()

    def _get(self, path: str, tree: str) -> dict[str, Any]:
        """GET ``path/api/json?tree=...`` (in the worker thread)."""
        data = self._server.get_info(item=path, query="?tree=" + quote(tree, safe=","))
        if not isinstance(data, dict):
            raise BackendUnavailable(f"Jenkins at {self._url} sent an answer opsbot could not "
                                     "read.", backend=_BACKEND)
        return data

    async def _job_json(self, name: str, tree: str) -> dict[str, Any]:
        """A job's JSON restricted to ``tree``; NotFound (with suggestions) or, for a
        folder, InvalidRequest."""
        path = _job_path(name)
        data = await self._run(lambda: self._get(path, f"{tree},jobs[name]"),
                               doing=f"read {name}",
                               missing=f"There is no Jenkins job called '{name}'.",
                               suggest=name)
        children = data.get("jobs")
        if isinstance(children, list):
            inside = [str(c["name"]) for c in children if isinstance(c, dict) and c.get("name")]
            holds = f"; it holds {', '.join(inside[:8])}" if inside else ""
            raise InvalidRequest(f"'{name}' is a folder, not a job{holds}.", backend=_BACKEND)
        return data

    async def _queue_item(self, queue_id: int) -> dict[str, Any]:
        data = await self._run(
            lambda: self._server.get_queue_item(int(queue_id)),
            doing=f"read queue item {queue_id}",
            missing=f"Jenkins has no queue item {queue_id}: Jenkins forgets an item about five "
                    "minutes after its build started, or the id is wrong.")
        if not isinstance(data, dict):
            raise BackendUnavailable(f"Jenkins at {self._url} sent an answer opsbot could not "
                                     "read.", backend=_BACKEND)
        return data

    async def _missing_build(self, name: str, number: int) -> NotFound:
        """NotFound for a build: says whether the job or only the build is missing."""
        job = await self.job(name)  # raises NotFound when the job itself is missing
        last = f" (its last build is #{job.last_build})" if job.last_build else ""
        return NotFound(f"{name} has no build #{number}{last}.", backend=_BACKEND)

    async def _suggestions(self, name: str) -> list[str]:
        """Up to three job names close to ``name``; none if listing the jobs fails."""
        try:
            names = [job.full_name for job in await self.jobs()]
        except BackendError:
            return []
        matches = process.extract(name, names, scorer=fuzz.WRatio, limit=3, score_cutoff=75)
        return [match[0] for match in matches]

    async def _run(self, call: Callable[[], _T], *, doing: str, missing: str,
                   refused: Mapping[int, str] | None = None, suggest: str | None = None) -> _T:
        """One python-jenkins call (``ClientBackend._call``); ``refused`` maps HTTP statuses
        to InvalidRequest messages; with ``suggest``, a NotFound also names the jobs closest
        to it."""
        try:
            return await self._call(call, doing=doing, missing=missing, refused=refused or {})
        except NotFound as error:
            close = ([n for n in await self._suggestions(suggest) if n != suggest]
                     if suggest is not None else [])
            if not close:
                raise
            raise NotFound(f"{error} Did you mean {_or_list(close)}?",
                           backend=_BACKEND) from error.__cause__

    def _credentials(self) -> str:
        return "JENKINS_USER and JENKINS_TOKEN"

    def _response_of(self, chain: list[BaseException]) -> Response | None:
        status, body = _http_status(chain)
        return None if status is None else Response(status, body, {})

    def _refusal(self, response: Response, *, doing: str,
                 hints: Mapping[str, Any]) -> BackendError | None:
        status, body = response.status, response.body
        refused: Mapping[int, str] = hints.get("refused") or {}
        if status in refused:
            return self._error(InvalidRequest, refused[status])
        if status == 403 and _CRUMB_REFUSAL in body:  # after _post's retry with a fresh crumb
            return self._error(BackendAuthError, (
                f"{self._where} refused opsbot's CSRF crumb twice (403 \"{_CRUMB_REFUSAL}\") "
                f"while trying to {doing}, the second time a fresh one; Jenkins refuses "
                "such a request before acting on it, so nothing was done. Jenkins ties "
                "the crumb of a password login to its web session: set JENKINS_TOKEN to "
                f"an API token of {self._config.user} (API tokens need no crumb), or "
                "check that nothing between opsbot and Jenkins drops its JSESSIONID "
                "cookie."))
        exception, detail = _error_page(body)
        if status >= 500 and exception is not None and exception.endswith(_BAD_INPUT_EXCEPTIONS):
            return self._error(InvalidRequest, f"Jenkins refused to {doing}: {detail}.")
        return None

    def _library_error(self, chain: list[BaseException], *, missing: str) -> BackendError | None:
        text = " ".join(str(e) for e in chain)
        if any(isinstance(e, jenkins.NotFoundException) for e in chain) or \
                "does not exist" in text:
            return self._error(NotFound, missing)
        if "Could not parse JSON" in text:
            return self._error(BackendUnavailable, f"{self._where} sent an answer that is not "
                               f"{self.api}; is JENKINS_URL Jenkins itself, not a login page "
                               "or proxy?")
        return None

    def _detail(self, body: str) -> str:
        return _error_page(body)[1] or ""

    def _log_reference(self, body: str) -> str:
        return _logging_id(body)

    def _unknown(self, exc: BackendUnavailable, doing: str) -> BackendError:
        """OutcomeUnknown for a change request that may have reached Jenkins before ``exc``."""
        return self._error(OutcomeUnknown, f"{self._lost_answer(exc)} after opsbot asked it to "
                           f"{doing}, so opsbot cannot tell whether it did.")



def _queue_facts(item: Mapping[str, Any]) -> tuple[dict[str, str], str | None, float]:
    """A queue item's parameters, the user who queued it, and when (epoch seconds)."""
    values: dict[str, str] = {}
    user: str | None = None
    for action in item.get("actions") or ():
        if not isinstance(action, dict):
            continue
        for parameter in action.get("parameters") or ():
            if isinstance(parameter, dict) and parameter.get("name"):
                values[str(parameter["name"])] = _param_text(parameter.get("value"))
        for cause in action.get("causes") or ():
            if isinstance(cause, dict) and cause.get("userId") and user is None:
                user = str(cause["userId"])
    return values, user, float(item.get("inQueueSince") or 0) / 1000
