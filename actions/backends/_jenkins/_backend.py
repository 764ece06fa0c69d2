"""JenkinsBackend: every question opsbot asks Jenkins and every change it makes,
through python-jenkins in a worker thread, with errors translated by ``_client``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from json import JSONDecodeError
from typing import Any
from urllib.parse import quote

import jenkins
import requests
from rapidfuzz import fuzz, process

from actions.backends._client import ClientBackend, Response
from actions.backends._common import (
    never_sent,
)
from actions.backends._console import NO_ERROR_SUMMARY, analyse_console
from actions.backends._jenkins._config import JenkinsConfig, _with_slash
from actions.backends._jenkins._json import (
    _BAD_INPUT_EXCEPTIONS,
    _CRUMB_REFUSAL,
    _and_list,
    _build_from,
    _crumb_refused,
    _defaults_of,
    _error_page,
    _http_status,
    _job_from,
    _job_from_url,
    _job_name,
    _job_path,
    _jobs_tree,
    _logging_id,
    _or_list,
    _param_text,
)
from actions.backends._jenkins._model import (
    _BACKEND,
    _BUILD_FIELDS,
    _CHOICES_TREE,
    _DEFAULTS_TREE,
    _FALLBACK_SUMMARY,
    _FOLDER_LEVELS,
    _JOB_FIELDS,
    _QUEUE_FIELDS,
    _T,
    OPERATION_PARAMETER,
    PERMALINKS,
    Build,
    FailureReport,
    Job,
    QueueState,
    Sightings,
    logger,
)
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
)


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
