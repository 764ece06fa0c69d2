"""GithubBackend: what opsbot asks GitHub and what it changes there, through PyGithub in a
worker thread, with errors translated by ``_client`` and GitHub's rate limits kept.

PyGithub is held as opsbot needs it: no retries of its own (``retry=None``: its default
sleeps until a rate limit resets, or 60 s for a secondary one), no pacing of its own, lazy
objects (a ``get_pull`` is one request, not two), and every request passes the
:class:`~actions.backends._github._auth.RateGate` first.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import urlsplit

from github import Auth, Github, GithubException, GithubIntegration
from github.Repository import Repository as GhRepository
from github.WorkflowRun import WorkflowRun as GhRun
from rapidfuzz import fuzz, process

from actions.backends._client import ClientBackend, Response
from actions.backends._common import exception_chain, never_sent, tidy
from actions.backends._github._auth import (
    ClockedAppAuth,
    GatedAuth,
    Held,
    InstallationToken,
    RateGate,
)
from actions.backends._github._config import (
    APP_VARIABLES,
    TIMEOUT_VARIABLE,
    TOKEN_VARIABLE,
    URL_VARIABLE,
    GithubConfig,
)
from actions.backends._github._model import (
    FAILED,
    MERGE_METHODS,
    DispatchResult,
    MergePreview,
    MergeResult,
    PullRequestList,
    PullRequestStatus,
    Rerun,
    Workflow,
    WorkflowRun,
    or_list,
)
from actions.backends._github._names import Repository
from actions.backends._github._read import (
    blockers,
    check_of_run,
    check_of_status,
    latest_reviews,
    requested,
    run_of,
    summary_of_issue,
    summary_of_pull,
)
from actions.backends._github._workflows import check_inputs, read_workflow_file
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    RateLimited,
)

_T = TypeVar("_T")
_BACKEND = "GitHub"
_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_SECONDARY_DEFAULT = 60.0  # GitHub: without retry-after, wait at least a minute
_PERMISSION_WORDS = ("not accessible", "permission", "must have", "admin rights")

Sleep = Callable[[float], Awaitable[None]]


class GithubBackend(ClientBackend):
    """GitHub for opsbot's pull-request and Actions intents.

    Every method is a coroutine that never blocks the event loop and raises only
    :mod:`actions.errors` exceptions: a refusal in words, RateLimited with the time GitHub
    accepts again (nothing is sent before it), OutcomeUnknown when a change was sent and
    the answer lost. ``clock`` (epoch seconds) and ``sleep`` are injected so a test moves
    time; ``brief_wait``: a limit that lifts within this many seconds is waited out, once,
    instead of refused; ``per_page``: list page size (GitHub allows 100).
    """

    name = "github"
    product = _BACKEND
    api = "GitHub's REST API"
    url_variable, timeout_variable = URL_VARIABLE, TIMEOUT_VARIABLE
    _config: GithubConfig

    def __init__(self, config: GithubConfig, *, clock: Callable[[], float] = time.time,
                 sleep: Sleep = asyncio.sleep, brief_wait: float = 10.0,
                 per_page: int = 100) -> None:
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._brief_wait = brief_wait
        seconds = max(1, math.ceil(config.timeout))  # PyGithub asserts an int
        plain: dict[str, Any] = {"base_url": config.api_url, "timeout": seconds, "retry": None,
                                 "seconds_between_requests": None,
                                 "seconds_between_writes": None}
        self._installation: InstallationToken | None = None
        self._integration: GithubIntegration | None = None
        inner: Auth.Auth
        if config.app is not None:
            self._integration = GithubIntegration(auth=ClockedAppAuth(config.app, clock),
                                                  **plain)
            inner = self._installation = InstallationToken(config.app, self._integration,
                                                           clock)
        else:
            inner = Auth.Token(config.token.reveal())
        self._gate = RateGate(clock, self._last_seen)
        self._github = Github(auth=GatedAuth(inner, self._gate), per_page=per_page, lazy=True,
                              **plain)
        self._login: str | None = None  # learned by ping (a token's user)
        self.request_details = True  # ask dispatches for their run (False: GHES before it)

    def __repr__(self) -> str:
        who = f"app={self._config.app.app_id}" if self._config.app else "token='**********'"
        return f"GithubBackend({self._config.api_url!r}, {who})"

    @property
    def url(self) -> str:
        """The REST API's base address (``https://api.github.com``, ``https://HOST/api/v3``)."""
        return self._config.api_url

    @property
    def owner(self) -> str | None:
        """GITHUB_OWNER: where pull requests are searched when no repository is named."""
        return self._config.owner

    @property
    def installation_tokens(self) -> int:
        """How many installation tokens this backend has made (0 with GITHUB_TOKEN)."""
        return self._installation.issued if self._installation else 0

    # -- health ------------------------------------------------------------------------------

    async def ping(self) -> str:
        """"GitHub api.github.com as opsbot-gh", or as the App's installation; a BackendError
        if GitHub cannot be reached or refuses opsbot's credentials."""
        app, integration = self._config.app, self._integration

        def call() -> str:
            if app is None or integration is None:
                self._login = self._github.get_user().login
                return self._login
            assert self._installation is not None
            self._gate.check()
            self._installation.token  # noqa: B018 - makes (and so proves) a token
            installation = integration.get_app_installation(app.installation_id)
            return (f"the App {installation.app_slug} (installation {app.installation_id} on "
                    f"{installation.account.login})")

        who = await self._gh(call, doing="sign in", missing=(
            f"{self.url} has no GitHub API (404); is {URL_VARIABLE} right? (GitHub Enterprise "
            "Server: https://HOST/api/v3)" if app is None else
            f"GitHub has no installation {app.installation_id} of App {app.app_id} (404); is "
            f"{APP_VARIABLES[2]} right, and is the App still installed?"))
        return f"{self._site} as {who}"

    @property
    def _site(self) -> str:
        parts = urlsplit(self.url)
        if parts.path.rstrip("/").endswith("/api/v3"):
            return f"GitHub Enterprise Server {parts.netloc}"
        return f"GitHub {parts.netloc}"

    # -- pull requests -------------------------------------------------------------------------

    async def pull_request(self, repository: Repository, number: int) -> PullRequestStatus:
        """Title, author, state, mergeability, checks, reviews and what blocks the merge.

        GitHub computes mergeability in the background after a push (``mergeable`` null);
        that is asked once more after a second, then reported as still being worked out.
        """
        status = await self._status(repository, number)
        if status.state == "open" and status.mergeable is None:
            await self._sleep(1.0)
            status = await self._status(repository, number)
        return status

    async def _status(self, repository: Repository, number: int) -> PullRequestStatus:
        def call() -> PullRequestStatus:
            pull = self._repo(repository).get_pull(int(number))
            state = "merged" if pull.merged else pull.state
            sha = pull.head.sha
            commit = self._repo(repository).get_commit(sha)
            checks = (*(check_of_run(c) for c in commit.get_check_runs()),
                      *(check_of_status(s) for s in commit.get_combined_status().statuses))
            reviews = latest_reviews(pull.get_reviews())
            asked = requested(pull)
            return PullRequestStatus(
                repository=repository, number=pull.number, title=pull.title,
                author=pull.user.login, url=pull.html_url, state=state,
                draft=bool(pull.draft), head_ref=pull.head.ref, head_sha=sha,
                base_ref=pull.base.ref, mergeable=pull.mergeable,
                mergeable_state=pull.mergeable_state or "unknown", checks=checks,
                reviews=reviews, review_requested=asked,
                blockers=blockers(state=state, draft=bool(pull.draft),
                                  mergeable=pull.mergeable,
                                  mergeable_state=pull.mergeable_state or "unknown",
                                  base_ref=pull.base.ref, checks=checks, reviews=reviews,
                                  review_requested=asked))

        return await self._on_pull(repository, number, call, doing=f"read pull request "
                                    f"#{number} of {repository}")

    async def open_pull_requests(self, repository: Repository, *,
                                 limit: int = 30) -> PullRequestList:
        """The repository's open pull requests, newest first: up to ``limit``, and how many
        there are (GitHub's pages followed as far as ``limit`` needs)."""

        def call() -> PullRequestList:
            pulls = self._repo(repository).get_pulls(state="open", sort="created",
                                                    direction="desc")
            total = pulls.totalCount  # before iterating: PyGithub's rule
            return PullRequestList(tuple(summary_of_pull(repository, p)
                                         for p in islice(pulls, max(0, limit))), total)

        return await self._gh(call, doing=f"list the pull requests of {repository}",
                              missing=self._no_repository(repository))

    async def waiting_for_review(self, login: str, *, repository: Repository | None = None,
                                 limit: int = 30) -> PullRequestList:
        """Open pull requests that wait for ``login``'s review (their GitHub login), newest
        first: in ``repository``, else in GITHUB_OWNER's repositories, else anywhere the
        token sees. Uses GitHub's search (its own limit: 30 a minute)."""
        login = login.strip().removeprefix("@")
        if not _LOGIN.match(login):
            raise InvalidRequest(f"{login!r} is not a GitHub login (letters, digits and "
                                 "dashes, like bob-gh).", backend=_BACKEND)
        scope = (f" repo:{repository}" if repository is not None
                 else f" org:{self.owner}" if self.owner else "")
        query = f"is:pr is:open archived:false review-requested:{login}{scope}"

        def call() -> PullRequestList:
            found = self._github.search_issues(query, sort="created", order="desc")
            total = found.totalCount
            return PullRequestList(tuple(summary_of_issue(i)
                                         for i in islice(found, max(0, limit))), total)

        return await self._gh(call, doing=f"search the pull requests waiting for {login}",
                              missing=self._no_repository(repository) if repository
                              else f"GitHub does not know the user {login}.")

    # -- checks and workflow runs ---------------------------------------------------------------

    async def rerun_failed_checks(self, repository: Repository, number: int) -> Rerun:
        """Re-run the failed jobs of the failed workflow runs on the pull request's head
        commit (the newest run of each workflow); follow them with :meth:`workflow_run`.

        A run GitHub will not re-run (403 "already running" and the like) is ``skipped``
        with its reason; a failing check no workflow run here owns (an external CI's) is
        ``failing_elsewhere``. Nothing failed: a Rerun with nothing in it.
        """

        def survey() -> tuple[str, list[Any], list[Any]]:
            repo = self._repo(repository)
            sha = repo.get_pull(int(number)).head.sha
            newest: dict[int, Any] = {}
            for run in repo.get_workflow_runs(head_sha=sha):
                newest.setdefault(run.workflow_id, run)
            commit = repo.get_commit(sha)
            outside = [check_of_run(c) for c in commit.get_check_runs()
                       if c.app is None or c.app.slug != "github-actions"]
            outside += [check_of_status(s) for s in commit.get_combined_status().statuses]
            return sha, list(newest.values()), [c for c in outside if c.state == FAILED]

        sha, runs, elsewhere = await self._on_pull(
            repository, number, survey, doing=f"read the checks of #{number} in {repository}")
        failed = [run for run in runs if run.status == "completed"
                  and run.conclusion not in ("success", "neutral", "skipped")]
        rerun: list[WorkflowRun] = []
        skipped: list[tuple[WorkflowRun, str]] = []
        for run in failed:
            doing = f"re-run the failed jobs of {run.name} (run {run.id})"
            try:
                await self._change(partial(self._github.requester.requestJsonAndCheck, "POST",
                                           f"{run.url}/rerun-failed-jobs"), doing=doing,
                    missing=f"GitHub no longer has run {run.id} of {repository}.",
                    permission="Actions: write")
            except InvalidRequest as exc:
                skipped.append((run_of(repository, run), str(exc)))
                continue
            rerun.append(await self.workflow_run(repository, run.id))
        return Rerun(repository, int(number), sha, tuple(rerun), tuple(skipped),
                     tuple(elsewhere))

    async def workflow_run(self, repository: Repository, run_id: int) -> WorkflowRun:
        """A workflow run as it stands: status, conclusion, link."""
        return await self._gh(
            lambda: run_of(repository, self._repo(repository).get_workflow_run(int(run_id))),
            doing=f"read workflow run {run_id} of {repository}",
            missing=f"{repository} has no workflow run {run_id} (or opsbot cannot see it).")

    async def wait_for_run(self, repository: Repository, run_id: int, *, poll: float = 15.0,
                           timeout: float = 3600.0) -> WorkflowRun:  # noqa: ASYNC109
        """Read the run every ``poll`` seconds until it has completed or ``timeout`` seconds
        have passed; the last state read either way (``done`` tells which)."""
        deadline = self._clock() + timeout
        while True:
            run = await self.workflow_run(repository, run_id)
            remaining = deadline - self._clock()
            if run.done or remaining <= 0:
                return run
            await self._sleep(min(poll, remaining))

    # -- workflows ----------------------------------------------------------------------------

    async def workflow(self, repository: Repository, name: str,
                       ref: str | None = None) -> Workflow:
        """The workflow a person means by ``name`` (its file, ``e2e.yml`` or ``e2e``, or its
        name, ``E2E``), as its file at ``ref`` (default: the default branch) declares it:
        triggers and ``workflow_dispatch`` inputs. NotFound names the workflows there are."""

        def call() -> Workflow:
            repo = self._repo(repository)
            found = _pick_workflow(repository, name, list(repo.get_workflows()))
            at = ref or repo.default_branch
            try:
                content = repo.get_contents(found.path, ref=at)
            except GithubException as exc:
                if exc.status == 404:
                    raise NotFound(f"{repository} has no branch, tag or commit '{at}' with "
                                   f"{found.path}.", backend=_BACKEND) from exc
                raise
            if isinstance(content, list):
                raise BackendUnavailable(f"{found.path} in {repository} is a folder, not a "
                                         "workflow file.", backend=_BACKEND)
            try:
                triggers, inputs = read_workflow_file(content.decoded_content.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidRequest(f"{found.path} in {repository} at {at} is not a workflow "
                                     f"opsbot can read ({exc}).", backend=_BACKEND) from exc
            return Workflow(repository, found.id, found.name, found.path, found.html_url, at,
                            triggers, inputs)

        return await self._gh(call, doing=f"read the workflows of {repository}",
                              missing=self._no_repository(repository))

    async def dispatch_workflow(self, repository: Repository, name: str, ref: str,
                                inputs: Mapping[str, object] | None = None) -> DispatchResult:
        """Run a workflow by hand on ``ref`` with ``inputs``, checked first against its file at
        that ref (InvalidRequest, naming the inputs and options, before anything is sent);
        then the run it made, as GitHub reports it or, when it does not, the new
        ``workflow_dispatch`` run that shows up in its list."""
        workflow = await self.workflow(repository, name, ref)
        values = check_inputs(workflow, inputs or {})
        started = self._clock()
        details = self.request_details

        def call() -> int | None:
            flow = self._repo(repository).get_workflow(workflow.id)
            if not details:
                flow.create_dispatch(ref, values, throw=True)
                return None
            made: object = flow.create_dispatch(ref, values, throw=True, return_run_details=True)
            # a GitHub that does not report the run answers 204: PyGithub gives True
            return int(made.id) if isinstance(made, GhRun) else None

        run_id = await self._change(call, doing=f"run {workflow.name} on {ref}",
                                    missing=self._no_repository(repository),
                                    permission="Actions: write")
        run = (await self.workflow_run(repository, run_id) if run_id is not None
               else await self._find_dispatched(workflow, ref, started))
        return DispatchResult(workflow, ref, values, run)

    async def _find_dispatched(self, workflow: Workflow, ref: str, since: float,
                               looks: int = 5, every: float = 2.0) -> WorkflowRun | None:
        """The first ``workflow_dispatch`` run of ``workflow`` on ``ref`` made at ``since`` or
        later (by opsbot's login when known); GitHub lists it within seconds."""
        repository = workflow.repository
        me = self._login

        def call() -> WorkflowRun | None:
            runs = self._repo(repository).get_workflow(workflow.id).get_runs(
                event="workflow_dispatch", branch=ref)
            fits = [r for r in islice(runs, 30)
                    if r.created_at.timestamp() >= since - 30
                    and (me is None or r.actor is None or r.actor.login == me)]
            return run_of(repository, min(fits, key=lambda r: r.id)) if fits else None

        for look in range(looks):
            found = await self._gh(call, doing=f"find the run of {workflow.name}",
                                   missing=self._no_repository(repository))
            if found is not None or look == looks - 1:
                return found
            await self._sleep(every)
        return None

    # -- merging ----------------------------------------------------------------------------------

    async def merge_preview(self, repository: Repository, number: int,
                            method: str | None = None) -> MergePreview:
        """What a merge would do: the pull request (its head SHA is what :meth:`merge` will
        insist on), the method (``merge`` unless asked, or the repository allows only
        others) and the methods the repository allows."""
        if method is not None and method not in MERGE_METHODS:
            raise InvalidRequest(f"GitHub merges by {or_list(MERGE_METHODS)}, not "
                                 f"{method!r}.", backend=_BACKEND)

        def allowed() -> tuple[str, ...]:
            repo = self._repo(repository)
            flags = {"merge": repo.allow_merge_commit, "squash": repo.allow_squash_merge,
                     "rebase": repo.allow_rebase_merge}
            return tuple(m for m, on in flags.items() if on is not False)

        methods = await self._gh(allowed, doing=f"read {repository}",
                                 missing=self._no_repository(repository))
        chosen = method or (methods[0] if methods else "merge")
        if methods and chosen not in methods:
            raise InvalidRequest(f"{repository} does not allow {chosen} merges; it allows "
                                 f"{or_list(methods)}.", backend=_BACKEND)
        return MergePreview(await self.pull_request(repository, number), chosen, methods)

    async def merge(self, repository: Repository, number: int, *, sha: str,
                    method: str = "merge") -> MergeResult:
        """Merge the pull request, only if its head is still ``sha`` (the one the person saw
        in the preview): a push since makes GitHub refuse (409), and nothing is merged."""
        if not _SHA.match(sha):
            raise InvalidRequest(f"{sha!r} is not a full commit SHA (40 hex digits).",
                                 backend=_BACKEND)
        if method not in MERGE_METHODS:
            raise InvalidRequest(f"GitHub merges by {or_list(MERGE_METHODS)}, not "
                                 f"{method!r}.", backend=_BACKEND)
        where = f"#{number} in {repository}"

        def call() -> MergeResult:
            done = self._repo(repository).get_pull(int(number)).merge(merge_method=method,
                                                                       sha=sha)
            return MergeResult(repository, int(number), method, sha, done.sha, done.message)

        return await self._change(
            call, doing=f"merge {where}", missing=self._no_pull(repository, number),
            permission="Pull requests: write and Contents: write", refused={
                409: f"New commits were pushed to {where} after the preview, so GitHub did "
                     "not merge it (409: {message}). Nothing was merged; ask for the preview "
                     "again to see what changed.",
                405: f"GitHub would not merge {where}: {{message}} (405). Nothing was merged.",
            })

    # -- the shared structure ------------------------------------------------------------------

    def _repo(self, repository: Repository) -> GhRepository:
        """The repository, lazily: no request until something of it is read."""
        return self._github.get_repo(f"{repository.owner}/{repository.name}")

    def _last_seen(self) -> tuple[int, float]:
        requester = self._github.requester
        return requester.rate_limiting[0], float(requester.rate_limiting_resettime)

    async def _gh(self, call: Callable[[], _T], *, doing: str, missing: str,
                  retry: bool = True, **hints: Any) -> _T:
        """One PyGithub call (``ClientBackend._call``), after the rate gate: a limit that lifts
        within ``brief_wait`` is waited out (once, and only with ``retry``); a longer one is
        refused here, naming the time, without sending anything."""
        for attempt in (1, 2):
            hold = self._gate.held()
            if hold is not None:
                wait = hold.until - self._clock()
                if wait > self._brief_wait:
                    raise self._limited(hold.until, hold.why)
                await self._sleep(wait)
            try:
                return await self._call(call, doing=doing, missing=missing, **hints)
            except RateLimited as exc:
                wait = exc.retry_at - self._clock()
                if attempt == 2 or not retry or wait > self._brief_wait:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _change(self, call: Callable[[], _T], *, doing: str, missing: str,
                      **hints: Any) -> _T:
        """A request that changes something: OutcomeUnknown when it may have reached GitHub
        but its answer was lost (a timeout, a 5xx, a broken connection)."""
        try:
            return await self._gh(call, doing=doing, missing=missing, **hints)
        except RateLimited:
            raise
        except BackendUnavailable as exc:
            if _refused_before_acting(exc):
                raise
            raise self._error(OutcomeUnknown, f"{self._lost_answer(exc)} after opsbot asked it "
                              f"to {doing}, so opsbot cannot tell whether it did; look on "
                              "GitHub before asking again.") from exc

    async def _on_pull(self, repository: Repository, number: int, call: Callable[[], _T], *,
                       doing: str) -> _T:
        """A read of one pull request; its 404 tells a missing pull request from a
        repository opsbot cannot see (one more request, on that path only)."""
        try:
            return await self._gh(call, doing=doing, missing=self._no_pull(repository, number))
        except NotFound as exc:
            try:
                await self._gh(lambda: self._repo(repository).default_branch, doing=f"read "
                               f"{repository}", missing=self._no_repository(repository))
            except NotFound as missing:
                raise missing from exc
            raise

    @staticmethod
    def _no_repository(repository: Repository | None) -> str:
        return (f"GitHub shows opsbot no repository {repository} (404): it does not exist, or "
                "opsbot's token (or App installation) has no access to it.")

    @staticmethod
    def _no_pull(repository: Repository, number: int) -> str:
        return f"{repository} has no pull request #{number}."

    def _limited(self, until: float, why: str) -> RateLimited:
        """RateLimited, its message naming when GitHub will accept again."""
        moment = datetime.fromtimestamp(until, UTC)
        wait = max(0.0, until - self._clock())
        within = (f"in {math.ceil(wait)} seconds" if wait < 120 else
                  f"in {round(wait / 60)} minutes")
        at = f"{moment:%H:%M:%S} UTC ({within})"
        if why == "primary":
            text = (f"GitHub's rate limit for opsbot is used up until {at}; opsbot sends "
                    "GitHub nothing until then. Ask again after that.")
        else:
            text = (f"GitHub asked opsbot to slow down (a secondary rate limit) until {at}; "
                    "ask again after that.")
        return RateLimited(text, backend=_BACKEND, retry_at=until)

    # -- what is GitHub's own in the translation (ClientBackend) ---------------------------------

    def _credentials(self) -> str:
        if self._config.app is not None:
            return (f"{', '.join(APP_VARIABLES[:2])} and {APP_VARIABLES[2]} (and that the App is "
                    "still installed)")
        return f"{TOKEN_VARIABLE}: it may be wrong, expired or revoked"

    def _response_of(self, chain: list[BaseException]) -> Response | None:
        error = next((e for e in chain if isinstance(e, GithubException)), None)
        if error is None:
            return None
        return Response(error.status, _message(error), dict(error.headers or {}))

    def _refusal(self, response: Response, *, doing: str,
                 hints: Mapping[str, Any]) -> BackendError | None:
        status, message = response.status, response.body
        headers = {k.lower(): v for k, v in response.headers.items()}
        if status in (403, 429):
            limited = self._rate_limit(status, message, headers)
            if limited is not None:
                return limited
        refused: Mapping[int, str] = hints.get("refused") or {}
        if status in refused:
            return self._error(InvalidRequest, refused[status].format(message=message))
        if status == 403:
            if not any(word in message.lower() for word in _PERMISSION_WORDS) and message:
                return self._error(InvalidRequest, f"GitHub refused to {doing} (403): "
                                   f"{message}.")
            permission = hints.get("permission")
            needs = (f"; the token (or App) needs the permission {permission}"
                     if permission else "")
            return self._error(BackendAuthError, f"GitHub does not let opsbot {doing} (403"
                               f"{': ' + message if message else ''}){needs}. Ask a GitHub "
                               "admin of the repository or organisation to grant it.")
        return None

    def _rate_limit(self, status: int, message: str,
                    headers: Mapping[str, str]) -> RateLimited | None:
        """A 403 or 429 that is a rate limit: the gate holds until it lifts."""
        lowered = message.lower()
        now = self._clock()
        if headers.get("x-ratelimit-remaining") == "0" or lowered.startswith(
                "api rate limit exceeded"):
            reset = _number(headers.get("x-ratelimit-reset"))
            until = reset if reset is not None else now + _SECONDARY_DEFAULT
            self._gate.hold(until, "primary")
            return self._limited(until, "primary")
        retry_after = _number(headers.get("retry-after"))
        if retry_after is not None or "secondary rate limit" in lowered or status == 429:
            until = now + (retry_after if retry_after is not None else _SECONDARY_DEFAULT)
            self._gate.hold(until, "secondary")
            return self._limited(until, "secondary")
        return None

    def _library_error(self, chain: list[BaseException], *, missing: str) -> BackendError | None:
        held = next((e for e in chain if isinstance(e, Held)), None)
        if held is not None:
            return self._limited(held.until, held.why)
        if any(isinstance(e, AssertionError) for e in chain):  # PyGithub's URL and type checks
            return self._error(BackendUnavailable, f"PyGithub refused a request to "
                               f"{self._where} (a link outside {URL_VARIABLE}?); the action "
                               "server's log has the details.")
        return None

    def _detail(self, body: str) -> str:
        return tidy(body)


def _pick_workflow(repository: Repository, name: str, workflows: list[Any]) -> Any:
    """The workflow ``name`` means: its file name, the file without ``.yml``, or its name,
    exactly (case aside), else the one close match; NotFound naming them all."""
    wanted = name.strip().lower()
    for workflow in workflows:
        file = workflow.path.rsplit("/", 1)[-1].lower()
        if wanted in (file, file.rsplit(".", 1)[0], workflow.name.lower(), str(workflow.id)):
            return workflow
    labels = {f"{w.name} ({w.path.rsplit('/', 1)[-1]})": w for w in workflows}
    close = process.extract(name, list(labels), scorer=fuzz.WRatio, limit=2, score_cutoff=80)
    if len(close) == 1:
        return labels[close[0][0]]
    listing = f"its workflows are {', '.join(labels)}" if labels else "it has no workflows"
    raise NotFound(f"{repository} has no workflow called '{name}'; {listing}.",
                   backend=_BACKEND)


def _message(error: GithubException) -> str:
    """GitHub's message, with the first of a 422's ``errors`` when it says more."""
    data = error.data if isinstance(error.data, dict) else {}
    message = str(data.get("message") or "")
    details: Iterable[Any] = data.get("errors") or ()
    for detail in details:
        extra = detail.get("message") or detail.get("code") if isinstance(detail, dict) \
            else str(detail)
        if extra:
            return f"{message} ({extra})" if message else str(extra)
    return message


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _refused_before_acting(exc: BaseException) -> bool:
    """Whether GitHub provably did nothing: it answered with a 4xx, the rate gate held the
    request back, or the request never left (``never_sent``)."""
    for error in exception_chain(exc):
        if isinstance(error, Held):
            return True
        if isinstance(error, GithubException):
            return error.status < 500
    return never_sent(exc)
