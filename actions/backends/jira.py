"""opsbot's Jira backend: a typed, async wrapper over the ``jira`` library (REST API v2).

``jira`` is synchronous (requests underneath), so every call runs in a worker thread
(``asyncio.to_thread``) under ``asyncio.wait_for``, and every request also carries the
client-side ``timeout``. The client itself is built lazily, on the first call and in
that worker thread, because its constructor already asks Jira for ``serverInfo``:
starting the action server never waits for Jira. Whatever ``jira`` or requests raises
is translated into :mod:`actions.errors` here, with a message fit for the chat;
nothing of theirs escapes this module.

Searches are built by :func:`build_jql`, which quotes every value as a JQL string
literal, so text typed in a chat can never change a query's structure.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from json import JSONDecodeError
from typing import Any, Final, TypeVar

import jira

from actions.backends._client import ClientBackend, Response
from actions.backends._common import (
    account_from_env,
    check_config,
    exception_chain,
    never_sent,
    server_url_problem,
    tidy,
)
from actions.backends._protocol import BackendKind
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
    Secret,
)

__all__ = [
    "JIRA",
    "CURRENT_USER",
    "STANDARD_RESOLUTIONS",
    "UNASSIGNED",
    "Comment",
    "Issue",
    "JiraBackend",
    "JiraConfig",
    "SearchResult",
    "Transition",
    "TransitionField",
    "User",
    "build_jql",
]

_BACKEND = "Jira"
"""The ``backend`` every error from this module carries."""

CURRENT_USER: Final = "currentUser()"
"""``search(assignee=CURRENT_USER)``: issues assigned to the account opsbot signs in as."""
UNASSIGNED: Final = "EMPTY"
"""``search(assignee=UNASSIGNED)``: issues nobody is assigned to (``assignee is EMPTY``)."""

STANDARD_RESOLUTIONS: Final = ("Done", "Fixed")
"""The resolution a plain "close" / "resolve" / "move to done" means, in this order, when
the transition requires one and Jira offers it."""

_T = TypeVar("_T")
_ISSUE_KEY = re.compile(r"[A-Z][A-Z0-9]+-\d+")
_PROJECT_KEY = re.compile(r"[A-Z][A-Z0-9_]{1,19}")
_PRIORITY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,59}")
_MAX_LIMIT = 100
_SEARCH_FIELDS = ["summary", "status", "priority", "issuetype", "assignee", "reporter",
                  "project", "created", "updated", "comment"]
AUTH_MODES = ("bearer", "basic")
_VALUE_MISSING = re.compile(r"The value '(.*)' does not exist for the field '(\w+)'")


# -- configuration ------------------------------------------------------------------------


def _url_problem(url: str) -> str | None:
    """What is wrong with a Jira URL, or None."""
    return server_url_problem(url, product="Jira's", example="https://jira.example.com",
                              credentials=("JIRA_USER", "JIRA_TOKEN"))


@dataclass(frozen=True)
class JiraConfig:
    """Where Jira is and how opsbot signs in; the token is a :class:`Secret`.

    ``url`` is Jira's base address (a context path like ``/jira`` is kept; a trailing
    slash is dropped). ``auth`` is how ``token`` is sent: ``bearer`` (a Data Center
    personal access token, ``Authorization: Bearer``; the default) or ``basic`` (the
    password or API token of ``user``). ``default_project`` is the project new issues go
    to when a request names none (OPSBOT_JIRA_PROJECT; None: the first one opsbot may see).
    """

    url: str
    user: str
    token: Secret
    timeout: float = 10.0
    auth: str = "bearer"
    default_project: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.token, str):  # a plain string must never reach a repr
            object.__setattr__(self, "token", Secret(self.token))
        if self.auth not in AUTH_MODES:
            raise ConfigError(f"JIRA_AUTH is {self.auth!r}; it is one of "
                              f"{', '.join(AUTH_MODES)} (bearer: a personal access token; "
                              "basic: user and password).")
        check_config("JiraConfig", self.url, self.timeout, _url_problem)
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JiraConfig | None:
        """JIRA_URL, JIRA_USER, JIRA_TOKEN, JIRA_TIMEOUT (seconds), JIRA_AUTH and
        OPSBOT_JIRA_PROJECT from ``env``.

        None when JIRA_URL is unset or empty (Jira is not configured); ConfigError naming
        the variable when the URL is set but USER or TOKEN is missing, or the URL or the
        timeout is malformed.
        """
        account = account_from_env(
            os.environ if env is None else env, "JIRA", url_problem=_url_problem,
            fix="set JIRA_USER to the Jira user name opsbot acts as, and JIRA_TOKEN to that "
                "user's API token or password.")
        if account is None:
            return None
        variables = os.environ if env is None else env
        auth = (variables.get("JIRA_AUTH") or "bearer").strip().lower()
        project = (variables.get("OPSBOT_JIRA_PROJECT") or "").strip().upper() or None
        return cls(url=account.url, user=account.user, token=Secret(account.token),
                   timeout=account.timeout, auth=auth, default_project=project)


def _from_env(env: Mapping[str, str]) -> JiraBackend | None:
    config = JiraConfig.from_env(env)
    return JiraBackend(config) if config else None


JIRA: BackendKind[JiraBackend] = BackendKind(
    "jira", "Jira", ("JIRA_URL", "JIRA_USER", "JIRA_TOKEN", "JIRA_TIMEOUT", "JIRA_AUTH",
                     "OPSBOT_JIRA_PROJECT"),
    _from_env, setup="set JIRA_URL, JIRA_USER and JIRA_TOKEN")
"""The Jira backend's declaration (``actions.backends._protocol``)."""


# -- what the backend returns -------------------------------------------------------------


@dataclass(frozen=True)
class Comment:
    """One comment on an issue; ``author`` is a display name."""

    author: str | None
    body: str
    created: datetime


@dataclass(frozen=True)
class Issue:
    """An issue as opsbot shows it; ``assignee`` is a display name, ``assignee_name`` the
    user name Jira knows it by, ``url`` the browse link."""

    key: str
    summary: str
    status: str
    status_category: str
    priority: str | None
    issue_type: str
    assignee: str | None
    assignee_name: str | None
    reporter: str | None
    project: str
    url: str
    created: datetime
    updated: datetime
    last_comment: Comment | None
    resolution: str | None = None


@dataclass(frozen=True)
class SearchResult:
    """A page of issues (newest updated first) and how many matched in all."""

    issues: tuple[Issue, ...]
    total: int


@dataclass(frozen=True)
class User:
    """A Jira user: the name Jira identifies it by, and the name people see."""

    name: str
    display_name: str


def _squashed(text: str) -> str:
    """``text`` lower-cased with everything but letters and digits dropped ("Won't Fix" ->
    "wontfix"), so chat spellings meet Jira's."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


@dataclass(frozen=True)
class TransitionField:
    """A field on a transition's screen (``expand=transitions.fields``).

    ``required``: Jira refuses the transition without it (and has no default for it);
    ``allowed``: the value names Jira accepts, empty when it does not list them.
    """

    id: str
    name: str
    required: bool
    allowed: tuple[str, ...] = ()

    def match(self, value: str) -> str | None:
        """The allowed value ``value`` means, in Jira's spelling, or None."""
        wanted = _squashed(value)
        return next((a for a in self.allowed if _squashed(a) == wanted), None)


@dataclass(frozen=True)
class Transition:
    """One way an issue can move now: Jira's id and name, the status it leads to, and the
    fields on its screen."""

    id: str
    name: str
    to: str
    fields: tuple[TransitionField, ...] = ()

    def field(self, field_id: str) -> TransitionField | None:
        return next((f for f in self.fields if f.id == field_id), None)

    def standard_resolution(self) -> str | None:
        """The first of :data:`STANDARD_RESOLUTIONS` this transition accepts, or None."""
        field = self.field("resolution")
        if field is None:
            return None
        return next((found for name in STANDARD_RESOLUTIONS
                     if (found := field.match(name)) is not None), None)

    def unfillable(self) -> tuple[TransitionField, ...]:
        """The required fields opsbot cannot fill in from a chat (all but the resolution)."""
        return tuple(f for f in self.fields if f.required and f.id != "resolution")


def _transition_from(raw: Mapping[str, Any]) -> Transition:
    fields: list[TransitionField] = []
    for field_id, meta in (raw.get("fields") or {}).items():
        if not isinstance(meta, dict):
            continue
        allowed = tuple(str(v.get("name") or v.get("value") or v.get("id"))
                        for v in meta.get("allowedValues") or [] if isinstance(v, dict))
        fields.append(TransitionField(
            id=str(field_id), name=str(meta.get("name") or field_id),
            required=bool(meta.get("required")) and not meta.get("hasDefaultValue"),
            allowed=allowed))
    return Transition(id=str(raw["id"]), name=str(raw.get("name") or ""),
                      to=_name(raw.get("to"), "name") or str(raw.get("name") or ""),
                      fields=tuple(fields))


# -- JQL ----------------------------------------------------------------------------------


def _jql_string(value: str) -> str:
    """``value`` as a JQL string literal: quoted, with backslash, quote and controls escaped."""
    escaped = (value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               .replace("\r", "\\r").replace("\t", "\\t"))
    return f'"{escaped}"'


def _project_key(project: str) -> str:
    key = project.strip().upper()
    if not _PROJECT_KEY.fullmatch(key):
        raise InvalidRequest(f"'{project.strip()}' is not a Jira project key (like OPS).",
                             backend=_BACKEND)
    return key


def build_jql(*, project: str | None = None, priority: str | None = None,
              status: str | None = None, open_only: bool = False, assignee: str | None = None,
              text: str | None = None) -> str:
    """The JQL for :meth:`JiraBackend.search`, newest updated first. Pure.

    Every value is a quoted JQL string literal (backslash and double quote escaped), and
    project keys and priority names must also match a safe pattern (InvalidRequest
    otherwise), so no argument can change the query's structure. ``assignee`` is a user
    name, :data:`CURRENT_USER` or :data:`UNASSIGNED`. Empty strings count as not given.
    """
    clauses: list[str] = []
    if project and project.strip():
        clauses.append(f"project = {_jql_string(_project_key(project))}")
    if priority and priority.strip():
        name = priority.strip()
        if not _PRIORITY_NAME.fullmatch(name):
            raise InvalidRequest(f"'{name}' is not a Jira priority name (like High).",
                                 backend=_BACKEND)
        clauses.append(f"priority = {_jql_string(name)}")
    if status and status.strip():
        clauses.append(f"status = {_jql_string(status.strip())}")
    if open_only:
        clauses.append("statusCategory != Done")
    if assignee == CURRENT_USER:
        clauses.append("assignee = currentUser()")
    elif assignee == UNASSIGNED:
        clauses.append("assignee is EMPTY")
    elif assignee and assignee.strip():
        clauses.append(f"assignee = {_jql_string(assignee.strip())}")
    if text and text.strip():
        clauses.append(f"text ~ {_jql_string(text.strip())}")
    where = " AND ".join(clauses)
    return f"{where} ORDER BY updated DESC" if where else "ORDER BY updated DESC"


# -- parsing Jira's JSON ------------------------------------------------------------------


def _time(value: object) -> datetime:
    """Jira's ``2024-01-01T10:00:00.000+0000`` (any ISO 8601 form is accepted too)."""
    text = str(value)
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z")
    except ValueError:
        parsed = datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _name(data: object, key: str) -> str | None:
    """``data[key]`` when data is a dict holding a non-empty value."""
    if isinstance(data, dict) and data.get(key) not in (None, ""):
        return str(data[key])
    return None


def _comment_from(raw: Mapping[str, Any]) -> Comment:
    author = raw.get("author")
    return Comment(author=_name(author, "displayName") or _name(author, "name"),
                   body=str(raw.get("body") or ""), created=_time(raw["created"]))


def _issue_from(raw: Mapping[str, Any], base: str) -> Issue:
    fields = raw["fields"]
    status = fields.get("status") or {}
    assignee = fields.get("assignee")
    reporter = fields.get("reporter")
    comments = [c for c in ((fields.get("comment") or {}).get("comments") or [])
                if isinstance(c, dict)]
    last = max(comments, key=lambda c: _time(c["created"])) if comments else None
    project = fields.get("project") or {}
    key = str(raw["key"])
    return Issue(
        key=key,
        summary=str(fields.get("summary") or ""),
        status=str(status.get("name") or ""),
        status_category=_name(status.get("statusCategory"), "name") or "",
        priority=_name(fields.get("priority"), "name"),
        issue_type=_name(fields.get("issuetype"), "name") or "",
        assignee=_name(assignee, "displayName") or _name(assignee, "name"),
        assignee_name=_name(assignee, "name"),
        reporter=_name(reporter, "displayName") or _name(reporter, "name"),
        project=_name(project, "key") or key.rsplit("-", 1)[0],
        url=f"{base}/browse/{key}",
        created=_time(fields["created"]),
        updated=_time(fields["updated"]),
        last_comment=_comment_from(last) if last is not None else None,
        resolution=_name(fields.get("resolution"), "name"),
    )


def _issue_key(key: str) -> str:
    """``key`` upper-cased, or InvalidRequest if it is not shaped like ``OPS-123``."""
    text = key.strip()
    if not _ISSUE_KEY.fullmatch(text.upper()):
        raise InvalidRequest(f"'{text}' is not an issue key (like OPS-123).", backend=_BACKEND)
    return text.upper()


def _or_list(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _field_errors(exc: jira.JIRAError) -> dict[str, str]:
    """Jira's ``errors`` object (field -> message) from an error response, if any."""
    response = exc.response
    if response is None:
        return {}
    try:
        data = response.json()
    except ValueError:
        return {}
    errors = data.get("errors") if isinstance(data, dict) else None
    return {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}


# -- the backend --------------------------------------------------------------------------


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

