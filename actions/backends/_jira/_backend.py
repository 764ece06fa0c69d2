"""JiraBackend: every question opsbot asks Jira and every change it makes, through
the ``jira`` library in a worker thread, with errors translated by ``_client``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from json import JSONDecodeError
from typing import Any

import jira

from actions.backends._client import ClientBackend, Response
from actions.backends._common import (
    exception_chain,
    never_sent,
    tidy,
)
from actions.backends._jira._config import JiraConfig
from actions.backends._jira._jql import _project_key, build_jql
from actions.backends._jira._json import (
    _comment_from,
    _field_errors,
    _issue_from,
    _issue_key,
    _or_list,
    _transition_from,
)
from actions.backends._jira._model import (
    _BACKEND,
    _MAX_LIMIT,
    _PRIORITY_NAME,
    _SEARCH_FIELDS,
    _T,
    _VALUE_MISSING,
    Comment,
    Issue,
    SearchResult,
    Transition,
    User,
)
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
)


class JiraBackend(ClientBackend):
    """Jira for opsbot's actions: read, search, create, comment, transition and assign issues.

    Every method is a coroutine that never blocks the event loop and raises only
    :mod:`actions.errors` exceptions, chained to the jira/requests cause
    (``actions.backends._client``). The constructor does no network I/O.
    """

    name = "jira"
    product = _BACKEND
    api = "Jira's REST API"
    url_variable, timeout_variable = "JIRA_URL", "JIRA_TIMEOUT"
    not_api = (JSONDecodeError, ValueError, KeyError, NotImplementedError)
    _config: JiraConfig

    def __init__(self, config: JiraConfig) -> None:
        self._config = config
        self._client: jira.JIRA | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JiraBackend({self._config.url!r}, user={self._config.user!r})"

    @property
    def url(self) -> str:
        """Jira's base URL, without a trailing slash."""
        return self._config.url

    def _credentials(self) -> str:
        if self._config.auth == "bearer":
            return ("JIRA_TOKEN (a personal access token; JIRA_AUTH=basic to sign in with "
                    "JIRA_USER and a password instead)")
        return "JIRA_USER and JIRA_TOKEN"

    @property
    def default_project(self) -> str | None:
        """The project new issues go to when a request names none (OPSBOT_JIRA_PROJECT)."""
        return self._config.default_project

    # -- reading -------------------------------------------------------------------

    async def ping(self) -> str:
        """Jira's version, after checking that opsbot's credentials work."""

        def call() -> str:
            client = self._jira()
            client.myself()
            info = client.server_info()
            return str(info.get("version") or ".".join(map(str, info["versionNumbers"])))

        return await self._run(call, doing="sign in", missing=f"{self.url} is not Jira's "
                               "address (404); is JIRA_URL right?", calls=2)

    async def projects(self) -> list[tuple[str, str]]:
        """Every project opsbot can see, as (key, name)."""
        raw = await self._run(lambda: [p.raw for p in self._jira().projects()],
                              doing="list the projects", missing="Jira has no project list.")
        return self._parse(lambda: [(str(p["key"]), str(p.get("name") or p["key"]))
                                    for p in raw])

    async def resolutions(self) -> list[str]:
        """The resolution names Jira has (``GET resolution``)."""
        raw = await self._run(lambda: [r.raw for r in self._jira().resolutions()],
                              doing="list the resolutions", missing="Jira has no resolution "
                              "list.")
        return self._parse(lambda: [str(r["name"]) for r in raw])

    async def priorities(self) -> list[str]:
        """The priority names, most urgent first (as Jira orders them)."""
        raw = await self._run(lambda: [p.raw for p in self._jira().priorities()],
                              doing="list the priorities", missing="Jira has no priority list.")
        return self._parse(lambda: [str(p["name"]) for p in raw])

    async def issue_types(self, project: str) -> list[str]:
        """The issue types one can create in ``project`` (a key like OPS)."""
        key = _project_key(project)
        raw = await self._run(lambda: [t.raw for t in self._jira().project_issue_types(key)],
                              doing=f"list the issue types of {key}",
                              missing=self._no_project(key))
        return self._parse(lambda: [str(t["name"]) for t in raw])

    async def issue(self, key: str) -> Issue:
        """One issue; NotFound if it does not exist (or opsbot may not see it)."""
        wanted = _issue_key(key)
        raw = await self._run(lambda: self._jira().issue(wanted).raw, doing=f"read {wanted}",
                              missing=self._no_issue(wanted))
        return self._parse(lambda: _issue_from(raw, self.url))

    async def search(self, *, project: str | None = None, priority: str | None = None,
                     status: str | None = None, open_only: bool = False,
                     assignee: str | None = None, text: str | None = None,
                     limit: int = 10) -> SearchResult:
        """Issues matching every filter given, newest updated first (see :func:`build_jql`).

        ``limit`` is clamped to 1..100; ``total`` counts every match.
        """
        jql = build_jql(project=project, priority=priority, status=status, open_only=open_only,
                        assignee=assignee, text=text)
        size = max(1, min(int(limit), _MAX_LIMIT))

        def call() -> tuple[list[dict[str, Any]], int]:
            found = self._jira().search_issues(jql, startAt=0, maxResults=size,
                                               fields=list(_SEARCH_FIELDS), validate_query=True)
            assert isinstance(found, jira.client.ResultList)
            return [issue.raw for issue in found], int(found.total)

        try:
            raw, total = await self._run(call, doing="search for issues",
                                         missing="Jira's search is not where it should be "
                                                 "(404); is JIRA_URL right?", calls=3)
        except InvalidRequest as exc:
            raise await self._explain_search(exc, project, priority, status) from exc
        issues = self._parse(lambda: tuple(_issue_from(item, self.url) for item in raw))
        return SearchResult(issues=issues, total=total)

    async def transitions(self, key: str) -> list[str]:
        """The statuses ``key`` can move to now (the targets of its transitions)."""
        names: list[str] = []
        for transition in await self.transition_options(key):
            if transition.to and transition.to not in names:
                names.append(transition.to)
        return names

    async def transition_options(self, key: str) -> list[Transition]:
        """The transitions ``key`` offers now, each with the fields its screen has."""
        wanted = _issue_key(key)
        raw = await self._transition_list(wanted)
        return self._parse(lambda: [_transition_from(t) for t in raw])

    async def assignable_users(self, key: str, query: str = ".", limit: int = 50) -> list[User]:
        """The users matching ``query`` who may be assigned ``key`` (Jira's assignable user
        search; ``"."`` matches everyone)."""
        wanted = _issue_key(key)
        text = query.strip() or "."
        size = max(1, min(int(limit), _MAX_LIMIT))
        raw = await self._run(
            lambda: [u.raw for u in self._jira().search_assignable_users_for_issues(
                username=text, issueKey=wanted, maxResults=size)],
            doing=f"list who can be assigned {wanted}", missing=self._no_issue(wanted))
        return self._parse(lambda: [User(str(u["name"]), str(u.get("displayName") or u["name"]))
                                    for u in raw if isinstance(u, dict)])

    async def find_users(self, query: str, limit: int = 20) -> list[User]:
        """Users whose name, e-mail or display name starts with ``query`` (Jira's search)."""
        text = query.strip()
        if not text:
            raise InvalidRequest("Which Jira user? The name is empty.", backend=_BACKEND)
        size = max(1, min(int(limit), _MAX_LIMIT))
        raw = await self._run(
            lambda: [u.raw for u in self._jira().search_users(user=text, maxResults=size)],
            doing="search for users", missing="Jira's user search is not where it should be "
                                              "(404); is JIRA_URL right?")
        return self._parse(lambda: [User(str(u["name"]), str(u.get("displayName") or u["name"]))
                                    for u in raw if isinstance(u, dict)])

    # -- changing things -----------------------------------------------------------

    async def create_issue(self, project: str, summary: str, issue_type: str = "Bug",
                           priority: str | None = None,
                           description: str | None = None) -> Issue:
        """Create an issue (reported by opsbot's user) and return it as Jira stored it."""
        key = _project_key(project)
        title = " ".join(summary.split())  # Jira refuses newlines in a summary
        if not title:
            raise InvalidRequest("A new issue needs a summary: one line that says what is "
                                 "wrong or what to do.", backend=_BACKEND)
        if len(title) > 255:
            raise InvalidRequest(f"The summary is {len(title)} characters long; Jira allows "
                                 "255. Put the details in the description.", backend=_BACKEND)
        fields: dict[str, Any] = {"project": {"key": key}, "summary": title,
                                  "issuetype": {"name": issue_type.strip() or "Bug"}}
        if priority and priority.strip():
            fields["priority"] = {"name": priority.strip()}
        if description and description.strip():
            fields["description"] = description.strip()
        doing = f"create an issue in {key}"
        try:
            with self._may_have_changed(doing):
                raw = await self._run(lambda: self._jira().create_issue(fields=fields).raw,
                                      doing=doing, missing=self._no_project(key), calls=2)
        except InvalidRequest as exc:
            raise await self._explain_create(exc, key, fields) from exc
        with self._may_have_changed(doing, sent=True):
            return self._parse(lambda: _issue_from(raw, self.url))

    async def comment(self, key: str, body: str) -> Comment:
        """Add a comment (as opsbot's user) to ``key``."""
        wanted = _issue_key(key)
        text = body.strip()
        if not text:
            raise InvalidRequest(f"What should the comment on {wanted} say? It is empty.",
                                 backend=_BACKEND)
        doing = f"comment on {wanted}"
        with self._may_have_changed(doing):
            raw = await self._run(lambda: self._jira().add_comment(wanted, text).raw,
                                  doing=doing, missing=self._no_issue(wanted))
        with self._may_have_changed(doing, sent=True):
            return self._parse(lambda: _comment_from(raw))

    async def transition(self, key: str, status: str, resolution: str | None = None) -> Issue:
        """Move ``key`` to ``status`` (case-insensitive; a transition's name works too).

        The transition's screen is read first: a resolution it requires is ``resolution``
        (any spelling of an allowed one) or else the first of
        :data:`STANDARD_RESOLUTIONS` Jira allows. InvalidRequest, and nothing sent, when
        Jira's workflow offers no way from the current status to ``status``, when the
        resolution is not one Jira allows (or the transition takes none), or when the
        screen requires a field opsbot cannot fill in; a refusal from Jira is explained
        from its ``errors``.
        """
        wanted = _issue_key(key)
        target = " ".join(status.split())
        if not target:
            raise InvalidRequest(f"Which status should {wanted} move to?", backend=_BACKEND)
        available = await self.transition_options(wanted)
        chosen = self.pick_transition(available, target)
        if chosen is None:
            raise await self._no_transition(wanted, target, available)
        fields = self._screen_values(wanted, chosen, resolution)
        doing = f"move {wanted} to {chosen.to}"
        try:
            with self._may_have_changed(doing):
                await self._run(lambda: self._jira().transition_issue(wanted, chosen.id,
                                                                      fields=fields),
                                doing=doing, missing=self._no_issue(wanted))
        except InvalidRequest as exc:
            raise await self._explain_transition(exc, wanted, chosen) from exc
        with self._may_have_changed(doing, sent=True):
            return await self.issue(wanted)

    @staticmethod
    def pick_transition(available: Sequence[Transition], target: str) -> Transition | None:
        """The transition to ``target``: by the status it leads to, else by its own name."""
        wanted = target.strip().lower()
        return next((t for t in available if t.to.lower() == wanted), None) or next(
            (t for t in available if t.name.lower() == wanted), None)

    def _screen_values(self, key: str, chosen: Transition,
                       resolution: str | None) -> dict[str, Any]:
        """The ``fields`` to send with ``chosen``, or InvalidRequest saying what is missing."""
        others = chosen.unfillable()
        if others:
            names = ", ".join(f"{f.name} ({f.id})" for f in others)
            raise InvalidRequest(
                f"Jira requires {names} to move {key} to {chosen.to}, and opsbot cannot fill "
                f"{'that' if len(others) == 1 else 'those'} in from chat; move it in Jira: "
                f"{self.url}/browse/{key}", backend=_BACKEND)
        field = chosen.field("resolution")
        wanted = " ".join((resolution or "").split())
        if field is None:
            if wanted:
                raise InvalidRequest(f"Jira's '{chosen.name}' transition of {key} takes no "
                                     f"resolution, so '{wanted}' cannot be recorded; ask "
                                     "without one.", backend=_BACKEND)
            return {}
        allowed = f"; Jira allows {_or_list(field.allowed)}" if field.allowed else ""
        if wanted:
            name = field.match(wanted) if field.allowed else wanted
            if name is None:
                raise InvalidRequest(f"'{wanted}' is not a resolution Jira allows for moving "
                                     f"{key} to {chosen.to}{allowed}.", backend=_BACKEND)
        elif field.required:
            name = chosen.standard_resolution()
            if name is None:
                raise InvalidRequest(f"Jira requires a resolution to move {key} to "
                                     f"{chosen.to}{allowed}. Which one?", backend=_BACKEND)
        else:
            return {}
        return {"resolution": {"name": name}}

    async def assign(self, key: str, user: str) -> Issue:
        """Assign ``key`` to a user given by user name or a piece of the display name.

        NotFound when nobody matches; InvalidRequest, naming the candidates, when several
        people do, and naming who can be assigned when Jira would refuse that person.
        """
        wanted = _issue_key(key)
        chosen = await self.assignee_for(wanted, user)
        doing = f"assign {wanted} to {chosen.display_name}"
        try:
            with self._may_have_changed(doing):
                await self._run(lambda: self._jira().assign_issue(wanted, chosen.name),
                                doing=doing, missing=self._no_issue(wanted), calls=2)
        except InvalidRequest as exc:
            cause = next((e for e in exception_chain(exc) if isinstance(e, jira.JIRAError)), None)
            if cause is not None and "assignee" in _field_errors(cause):
                raise await self._not_assignable(wanted, chosen) from exc
            raise
        with self._may_have_changed(doing, sent=True):
            return await self.issue(wanted)

    async def assignee_for(self, key: str, user: str) -> User:
        """The user ``user`` means (user name or a piece of the display name), checked to be
        assignable on ``key``; the same errors as :meth:`assign`, and nothing changes."""
        wanted = _issue_key(key)
        query = " ".join(user.split())
        if not query:
            raise InvalidRequest(f"Who should {wanted} be assigned to?", backend=_BACKEND)
        candidates = await self.find_users(query)
        lowered = query.lower()
        exact = [u for u in candidates
                 if lowered in (u.name.lower(), u.display_name.lower())]
        if len(exact) == 1:
            chosen = exact[0]
        elif len(candidates) == 1:
            chosen = candidates[0]
        elif not candidates:
            raise NotFound(f"Jira has no user matching '{query}'.", backend=_BACKEND)
        else:
            shown = ", ".join(f"{u.display_name} ({u.name})" for u in candidates[:8])
            raise InvalidRequest(f"'{query}' matches several Jira users: {shown}. Which one?",
                                 backend=_BACKEND)
        found = await self.assignable_users(wanted, chosen.name, limit=_MAX_LIMIT)
        if chosen.name not in {u.name for u in found}:
            raise await self._not_assignable(wanted, chosen)
        return chosen

    async def set_priority(self, key: str, priority: str) -> Issue:
        """Set the priority of ``key``; InvalidRequest, listing Jira's priorities, for a
        name Jira does not know."""
        wanted = _issue_key(key)
        name = " ".join(priority.split())
        if not _PRIORITY_NAME.fullmatch(name):
            raise await self._unknown_priority(name or "(empty)")

        def call() -> None:
            # python-jira reads the issue, PUTs {"fields": {"priority": ...}} and reads it again.
            issue = self._jira().issue(wanted, fields="priority")
            issue.update(fields={"priority": {"name": name}})

        doing = f"change the priority of {wanted}"
        try:
            with self._may_have_changed(doing):
                await self._run(call, doing=doing, missing=self._no_issue(wanted), calls=3)
        except InvalidRequest as exc:
            cause = next((e for e in exception_chain(exc) if isinstance(e, jira.JIRAError)), None)
            if cause is not None and "priority" in _field_errors(cause):
                # Jira also names the field when the priority exists but cannot be set
                # here (not on the edit screen, not in the project's scheme): keep its words.
                try:
                    known = [p.lower() for p in await self.priorities()]
                except BackendError:
                    known = []
                if name.lower() not in known:
                    raise await self._unknown_priority(name) from exc
            raise
        with self._may_have_changed(doing, sent=True):
            return await self.issue(wanted)

    # -- explaining refusals ---------------------------------------------------------

    async def _transition_list(self, key: str) -> list[dict[str, Any]]:
        raw = await self._run(lambda: self._jira().transitions(key, expand="transitions.fields"),
                              doing=f"read the transitions of {key}", missing=self._no_issue(key))
        if not isinstance(raw, list):
            raise self._error(BackendUnavailable, f"Jira at {self.url} sent transitions opsbot "
                              "could not read.")
        return [t for t in raw if isinstance(t, dict)]

    async def _no_transition(self, key: str, target: str,
                             available: list[Transition]) -> InvalidRequest:
        current = await self.issue(key)
        targets: list[str] = []
        for transition in available:
            if transition.to and transition.to not in targets:
                targets.append(transition.to)
        if current.status.lower() == target.lower():
            return InvalidRequest(f"{key} is already {current.status}.", backend=_BACKEND)
        if not targets:
            return InvalidRequest(f"{key} is {current.status}, and Jira's workflow offers no "
                                  "way on from there for opsbot's user.", backend=_BACKEND)
        return InvalidRequest(f"{key} is {current.status}; from there it can move to "
                              f"{_or_list(targets)}, not '{target}'.", backend=_BACKEND)

    async def _explain_transition(self, exc: InvalidRequest, key: str,
                                  chosen: Transition) -> BackendError:
        """A refused transition, in Jira's words per field, with the resolutions it allows."""
        cause = next((e for e in exception_chain(exc) if isinstance(e, jira.JIRAError)), None)
        errors = _field_errors(cause) if cause is not None else {}
        if not errors:
            return exc
        names = {f.id: f.name for f in chosen.fields}
        said = "; ".join(f"{names.get(fid, fid)}: {tidy(message).rstrip('.')}"
                         for fid, message in errors.items())
        hint = ""
        if "resolution" in errors:
            field = chosen.field("resolution")
            allowed = list(field.allowed) if field is not None and field.allowed else []
            if not allowed:
                try:
                    allowed = await self.resolutions()
                except BackendError:
                    allowed = []
            hint = f" Resolutions Jira has: {', '.join(allowed)}." if allowed else ""
        return InvalidRequest(f"Jira refused to move {key} to {chosen.to} ({said}).{hint}",
                              backend=_BACKEND)

    async def _not_assignable(self, key: str, user: User) -> InvalidRequest:
        project = key.rsplit("-", 1)[0]
        who = f"{user.display_name} ({user.name})"
        try:
            people = await self.assignable_users(key, ".", limit=20)
        except BackendError:
            return InvalidRequest(f"{who} can't be assigned issues in {project}.",
                                  backend=_BACKEND)
        if not people:
            return InvalidRequest(f"{who} can't be assigned issues in {project}, and Jira lists "
                                  "nobody who can; a Jira admin grants the Assignable User "
                                  "permission.", backend=_BACKEND)
        shown = ", ".join(f"{u.display_name} ({u.name})" for u in people)
        return InvalidRequest(f"{who} can't be assigned issues in {project}; people who can: "
                              f"{shown}.", backend=_BACKEND)

    async def _explain_search(self, exc: InvalidRequest, project: str | None,
                              priority: str | None, status: str | None) -> BackendError:
        """A clearer error for a refused search: which filter value Jira does not know."""
        cause = next((e for e in exception_chain(exc) if isinstance(e, jira.JIRAError)), None)
        match = _VALUE_MISSING.search(str(cause.text or "")) if cause is not None else None
        if match is None:
            return exc
        field = match.group(2)
        if field == "project" and project:
            return NotFound(self._no_project(_project_key(project)), backend=_BACKEND)
        if field == "priority" and priority:
            return await self._unknown_priority(priority.strip())
        if field == "status" and status:
            return InvalidRequest(f"Jira has no status '{status.strip()}'.", backend=_BACKEND)
        return exc

    async def _explain_create(self, exc: InvalidRequest, project: str,
                              fields: Mapping[str, Any]) -> BackendError:
        """A clearer error for a refused create: unknown project, priority or issue type."""
        cause = next((e for e in exception_chain(exc) if isinstance(e, jira.JIRAError)), None)
        errors = _field_errors(cause) if cause is not None else {}
        if "project" in errors:
            return NotFound(self._no_project(project), backend=_BACKEND)
        if "issuetype" in errors:
            kind = str(fields["issuetype"]["name"])
            try:
                types = await self.issue_types(project)
            except BackendError:
                types = []
            known = f"; use {_or_list(types)}" if types else ""
            return InvalidRequest(f"{project} has no issue type '{kind}'{known}.",
                                  backend=_BACKEND)
        if "priority" in errors and "priority" in fields:
            return await self._unknown_priority(str(fields["priority"]["name"]))
        return exc

    async def _unknown_priority(self, priority: str) -> InvalidRequest:
        try:
            names = await self.priorities()
        except BackendError:
            names = []
        known = f"; use {_or_list(names)}" if names else ""
        return InvalidRequest(f"Jira has no priority '{priority}'{known}.", backend=_BACKEND)

    @staticmethod
    def _no_issue(key: str) -> str:
        return f"There is no issue {key} (or opsbot may not see it)."

    @staticmethod
    def _no_project(key: str) -> str:
        return f"There is no Jira project {key} (or opsbot may not see it)."

    # -- plumbing ------------------------------------------------------------------

    def _jira(self) -> jira.JIRA:
        """The client, built on first use (in a worker thread: it fetches serverInfo)."""
        with self._client_lock:
            if self._client is None:
                secret = self._config.token.reveal()
                credentials: dict[str, Any] = (
                    {"token_auth": secret} if self._config.auth == "bearer"
                    else {"basic_auth": (self._config.user, secret)})
                client = jira.JIRA(
                    server=self._config.url,
                    max_retries=0,  # no 10-60 s sleeps on 503s or refused connections
                    timeout=self._config.timeout,
                    get_server_info=True,
                    options={"check_update": False},
                    **credentials,
                )
                if client.deploymentType == "Cloud":
                    raise self._error(
                        BackendUnavailable, f"Jira at {self.url} is Jira Cloud, which opsbot "
                        "does not support (it speaks Jira Server / Data Center's REST API v2 "
                        "and user names); point JIRA_URL at a Data Center instance.")
                self._client = client
            return self._client

    async def _run(self, call: Callable[[], _T], *, doing: str, missing: str,
                   calls: int = 1) -> _T:
        """One jira call (``ClientBackend._call``) making ``calls`` HTTP requests, each
        under the timeout."""
        if self._client is None:
            calls += 1  # building the client asks for serverInfo
        return await self._call(call, doing=doing, missing=missing,
                                seconds=self._config.timeout * calls)

    def _response_of(self, chain: list[BaseException]) -> Response | None:
        error = next((e for e in chain if isinstance(e, jira.JIRAError)), None)
        if error is None or error.status_code is None:
            return None
        response = getattr(error, "response", None)
        headers = dict(response.headers) if response is not None else {}
        return Response(int(error.status_code), str(error.text or ""), headers)

    def _refusal(self, response: Response, *, doing: str,
                 hints: Mapping[str, Any]) -> BackendError | None:
        if response.status != 403:
            return None
        denied = {k.lower(): v for k, v in response.headers.items()}
        if "CAPTCHA_CHALLENGE" in denied.get("x-authentication-denied-reason", ""):
            return self._error(BackendAuthError, f"{self._where} wants a CAPTCHA for the user "
                               f"'{self._config.user}' after failed logins, so it refuses "
                               "opsbot's password until someone signs in as that user in a "
                               "browser and solves it. (A personal access token with "
                               "JIRA_AUTH=bearer is not affected.)")
        if "basic authentication has been disabled" in response.body.lower():
            return self._error(BackendAuthError, f"{self._where} has basic authentication "
                               "disabled: set JIRA_AUTH=bearer and JIRA_TOKEN to a personal "
                               "access token of the user opsbot acts as.")
        return None

    @contextmanager
    def _may_have_changed(self, doing: str, *, sent: bool = False) -> Iterator[None]:
        """Turn a failure after a change request may have reached Jira into OutcomeUnknown.

        A refusal (4xx) or a request that never left stays what it is: nothing changed.
        ``sent``: the change request itself succeeded; what failed came after it.
        """
        try:
            yield
        except OutcomeUnknown:
            raise
        except BackendUnavailable as exc:
            chain = exception_chain(exc)
            error = next((e for e in chain if isinstance(e, jira.JIRAError)), None)
            refused = error is not None and error.status_code is not None \
                and int(error.status_code) < 500
            if not sent and (refused or never_sent(exc)):
                raise
            if sent:
                raise self._error(OutcomeUnknown, f"Jira accepted opsbot's request to {doing}, "
                                  "but opsbot could not read the result back.") from exc
            raise self._error(OutcomeUnknown, f"{self._lost_answer(exc)} after opsbot asked it "
                              f"to {doing}, so opsbot cannot tell for sure whether it "
                              "did.") from exc
