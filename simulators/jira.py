"""A local Jira (REST API v2, Server / Data Center) that jira 3.10.5 cannot tell from the real one.

Why: opsbot's Jira backend, its tests and ``opsbot demo`` need a Jira with realistic
projects, issues and comments, on any machine, offline. This module serves the REST
API that the ``jira`` library calls for everything opsbot does: ``serverInfo``,
``myself``, ``field``, projects, issue types (``issuetype`` and
``issue/createmeta/{project}/issuetypes``), priorities, statuses, resolutions, users
(``user?username=``, ``user/search?username=``,
``user/assignable/search``), creating, reading and
editing issues, comments, transitions through a small workflow (To Do -> In Progress
-> Done -> Reopened -> In Progress | Done), assigning, and JQL search (GET and POST)
with paging and ``ORDER BY``. Errors have Jira's shapes: ``{"errorMessages": [...],
"errors": {field: message}}`` with 400/404, and a Seraph 401 for bad credentials.

Signing in is as on Jira Data Center 8.14+:

* ``Authorization: Bearer <personal access token>`` (the token of ``user``), or Basic
  with the user name and password / token. ``basic_auth=False`` is an instance whose
  admin disabled basic authentication: every Basic request gets 403 "Basic
  Authentication has been disabled on this instance." (Atlassian, "Disabling basic
  authentication", Data Center).
* After ``captcha_after`` consecutive failed Basic logins (Jira's
  ``jira.maximum.authentication.attempts.allowed``, 3 by default) the user must solve a
  CAPTCHA in the browser; until then REST calls with Basic get 403 with
  ``X-Seraph-LoginReason: AUTHENTICATION_DENIED`` and ``X-Authentication-Denied-Reason:
  CAPTCHA_CHALLENGE; login-url=...``, even with the right password (Atlassian, "JIRA REST
  API Example - Basic Authentication", CAPTCHA). ``solve_captcha()`` is the person
  signing in through the browser. A personal access token is not affected.
* ``deployment="Cloud"`` reports ``deploymentType: Cloud`` in ``serverInfo``, as Jira
  Cloud does.

Workflow screens and permissions, as on Jira Data Center:

* The Done transition has a screen that requires a resolution. ``GET
  issue/{key}/transitions?expand=transitions.fields`` lists each transition's screen
  fields with ``required``, ``schema``, ``operations`` and ``allowedValues`` (the
  resolutions of ``GET resolution``); without the expand there is no ``fields``
  (Jira Server REST API, "Get transitions": "Fields will only be returned if
  expand=transitions.fields"). ``POST .../transitions`` without one answers 400
  ``{"errorMessages": [], "errors": {"resolution": "Resolution is required."}}``
  (Jira source, ``ResolutionSystemField.validateParams``: ``issue.field.required``
  with the field's name, "{0} is required."); a resolution is given as ``fields:
  {"resolution": {"name"|"id": ...}}`` (or ``update: {"resolution": [{"set":
  ...}]}``), its name compared case-sensitively
  (``ResolutionRestFieldOperationsHandler``); a field not on the screen is refused
  with "Field 'x' cannot be set. It is not on the appropriate screen, or unknown.".
  This instance has no default resolution, so nothing fills it in. Reopening clears
  the resolution.
* Each project names who holds "Assignable User" (seed ``assignable:``). Assigning
  anyone else (``PUT issue/{key}/assignee``, or an assignee on create or edit) answers
  400 ``{"errorMessages": [], "errors": {"assignee": "User 'carol' cannot be assigned
  issues."}}`` (Jira's REST func test ``TestIssueResourceAssign.testAssignErrors``).
  ``GET user/assignable/search?issueKey=...|project=...&username=...`` lists only
  assignable users, and needs an issue key or a project (400 otherwise; Jira Server
  REST API, "Find assignable users"). In the demo seed, carol is not assignable in PAY.

JQL is parsed and evaluated for real: ``project``, ``status``, ``statusCategory``,
``priority`` (also ``>``/``<``), ``issuetype``, ``key``, ``resolution``, ``labels``,
``assignee`` / ``reporter`` / ``creator`` (``currentUser()``, ``IS EMPTY``), ``text`` /
``summary`` / ``description`` / ``comment`` with ``~`` (every word must occur; ``*``
wildcards; an inner ``"..."`` is a phrase), ``created`` / ``updated`` / ``resolved``
against relative (``-1d``, ``"-1w 2d"``) or absolute dates and ``now()`` /
``startOfDay()``, ``AND`` / ``OR`` / ``NOT`` with parentheses, ``ORDER BY``. Whatever
the simulator does not implement is answered with 400 and a message that says so,
never by silently matching everything.

    with JiraSimulator() as sim:
        client = jira.JIRA(sim.url, basic_auth=(sim.user, sim.token), max_retries=0, timeout=5)
        client.search_issues('project = OPS AND statusCategory != Done ORDER BY updated DESC')

    python -m simulators.jira --port 8081     # prints the URL and credentials
"""

from __future__ import annotations

import argparse
import calendar
import difflib
import hmac
import html
import json
import re
import secrets
import threading
import time
from base64 import b64decode
from binascii import Error as BinasciiError
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

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
    "PRIORITIES",
    "RESOLUTIONS",
    "STATUSES",
    "CommentSnapshot",
    "IssueSnapshot",
    "JiraSimulator",
    "RecordedRequest",
    "SeedError",
    "main",
]

DEFAULT_SEED = Path(__file__).resolve().parent / "data" / "jira.yml"
# A fixed token keeps the demo reproducible; Jira Server takes it as the password.
DEFAULT_TOKEN = "jira-sim-5f0c2a9e7b41d6c3"
PRIORITIES = ("Highest", "High", "Medium", "Low", "Lowest")
"""Jira's default priorities, most urgent first (ids "1" to "5")."""


@dataclass(frozen=True)
class _Status:
    id: str
    name: str
    category: str  # a key of _CATEGORIES


_CATEGORIES = {  # key -> (id, name, colour)
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}
_STATUSES = (
    _Status("10000", "To Do", "new"),
    _Status("3", "In Progress", "indeterminate"),
    _Status("10001", "Done", "done"),
    _Status("4", "Reopened", "new"),
)
_STATUS_BY_NAME = {status.name: status for status in _STATUSES}
STATUSES = tuple(status.name for status in _STATUSES)
"""The workflow's statuses; a new issue starts in the first."""


@dataclass(frozen=True)
class _Transition:
    id: str
    name: str
    to: str
    # The transition screen's fields, as (field id, required). Jira lists them under
    # "fields" only for ?expand=transitions.fields, and refuses any other field.
    screen: tuple[tuple[str, bool], ...] = ()


_RESOLVE_SCREEN = (("resolution", True),)
_WORKFLOW: dict[str, tuple[_Transition, ...]] = {
    "To Do": (_Transition("11", "Start Progress", "In Progress"),),
    "In Progress": (_Transition("31", "Done", "Done", _RESOLVE_SCREEN),),
    "Done": (_Transition("41", "Reopen Issue", "Reopened"),),
    "Reopened": (_Transition("11", "Start Progress", "In Progress"),
                 _Transition("31", "Done", "Done", _RESOLVE_SCREEN)),
}


@dataclass(frozen=True)
class _Resolution:
    id: str
    name: str
    description: str


_RESOLUTIONS = (  # Jira's defaults (Jira Core's five, then Jira Software's two)
    _Resolution("1", "Fixed", "A fix for this issue is checked into the tree and tested."),
    _Resolution("2", "Won't Fix", "The problem described is an issue which will never be fixed."),
    _Resolution("3", "Duplicate", "The problem is a duplicate of an existing issue."),
    _Resolution("4", "Incomplete", "The problem is not completely described."),
    _Resolution("5", "Cannot Reproduce", "All attempts at reproducing this issue failed, or not "
                "enough information was available to reproduce the issue."),
    _Resolution("10000", "Done", "Work has been completed on this issue."),
    _Resolution("10001", "Won't Do", "This issue won't be actioned."),
)
RESOLUTIONS = tuple(r.name for r in _RESOLUTIONS)
"""The resolutions (``GET resolution``); a transition's screen may require one of them."""
_FIELD_NAMES = {"resolution": "Resolution", "assignee": "Assignee", "comment": "Comment"}
_TRANSITION_NAMES = {t.id: t.name for ts in _WORKFLOW.values() for t in ts}
_PRIORITY_COLORS = {"Highest": "#d04437", "High": "#f15c75", "Medium": "#f79232",
                    "Low": "#707070", "Lowest": "#999999"}
_PRIORITY_DESCRIPTIONS = {
    "Highest": "This problem will block progress.",
    "High": "Serious problem that could block progress.",
    "Medium": "Has the potential to affect progress.",
    "Low": "Minor problem or easily worked around.",
    "Lowest": "Trivial problem with little or no impact on progress.",
}
_NOT_FOUND_ISSUE = "Issue does not exist or you do not have permission to see it."
_NOT_AUTHENTICATED = ("You are not authenticated. Authentication required to perform this "
                      "operation.")
_BAD_SCREEN = "Field '{}' cannot be set. It is not on the appropriate screen, or unknown."
_MAX_RESULTS = 1000  # jira.search.views.default.max
_ISSUE_EXPAND = "operations,versionedRepresentations,editmeta,changelog,renderedFields"
_ISSUE_KEYS = frozenset({"number", "type", "summary", "description", "status", "resolution",
                         "priority", "assignee", "reporter", "labels", "ago", "updated",
                         "comments"})
_CANNOT_BE_ASSIGNED = "User '{}' cannot be assigned issues."


@dataclass(frozen=True)
class CommentSnapshot:
    """A copy of one comment, for tests and the demo."""

    id: str
    author: str  # user name
    body: str
    created: float  # epoch seconds


@dataclass(frozen=True)
class IssueSnapshot:
    """A copy of one issue's state (never shared with the server)."""

    key: str
    id: str
    project: str
    issue_type: str
    summary: str
    description: str
    status: str
    priority: str | None
    assignee: str | None  # user names
    reporter: str | None
    labels: tuple[str, ...]
    created: float  # epoch seconds
    updated: float
    resolved: float | None
    comments: tuple[CommentSnapshot, ...]
    resolution: str | None = None  # a name from RESOLUTIONS, None while unresolved


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str
    target: str  # path and query as sent
    status: int
    user: str | None  # the authenticated user; None for anonymous or refused credentials
    body: str  # the request body as text (at most 10 000 characters)


# ---------------------------------------------------------------------------------------
# The model. Mutated only under _State.lock.


@dataclass(frozen=True)
class _User:
    name: str
    display: str
    key: str

    @property
    def email(self) -> str:
        return f"{self.name}@example.com"


@dataclass(frozen=True)
class _IssueType:
    id: str
    name: str
    description: str


@dataclass(eq=False)
class _Project:
    id: str
    key: str
    name: str
    description: str
    lead: str
    issue_types: tuple[str, ...]
    assignable: frozenset[str]  # user names holding "Assignable User" in the project
    next_number: int = 1


@dataclass(eq=False)
class _Comment:
    id: int
    author: str
    body: str
    created: float
    updated: float


@dataclass(eq=False)
class _Issue:
    id: int
    project: _Project
    number: int
    issue_type: str
    summary: str
    description: str
    status: str
    priority: str | None
    assignee: str | None
    reporter: str | None
    creator: str | None
    labels: list[str]
    created: float
    updated: float
    resolved: float | None = None
    resolution: str | None = None  # a name from _RESOLUTIONS
    comments: list[_Comment] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.project.key}-{self.number}"

    @property
    def category(self) -> str:
        return _STATUS_BY_NAME[self.status].category


class _Refused(Exception):
    """Jira answers this request with ``response`` (an error)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _refuse(status: int, *messages: str, errors: dict[str, str] | None = None) -> _Refused:
    """Jira's error body: ``{"errorMessages": [...], "errors": {...}}``."""
    return _Refused(Response.json({"errorMessages": list(messages), "errors": errors or {}},
                                  status))


# ---------------------------------------------------------------------------------------
# The seed file.


def _one_of(value: object, allowed: Sequence[str], where: str) -> str:
    text = str(value)
    if text not in allowed:
        raise SeedError(f"{where}: {text!r} is not one of {', '.join(allowed)}")
    return text


@dataclass
class _Seed:
    version: str
    title: str
    users: dict[str, _User]
    issue_types: dict[str, _IssueType]
    projects: dict[str, _Project]
    issues: list[_Issue]
    next_issue_id: int
    next_comment_id: int


class _SeedLoader:
    """Turns the YAML into projects and issues, with times relative to ``now``."""

    def __init__(self, path: Path, now: float, default_user: str) -> None:
        self.path = path
        self.now = now
        self.default_user = default_user

    def load(self) -> _Seed:
        keys = ("server", "users", "issue_types", "projects")
        raw = read_seed(self.path, "Jira seed", keys)
        where = str(self.path)
        check_keys(raw, keys, where)
        server = mapping(raw.get("server"), f"{where}: server")
        check_keys(server, {"version", "title", "first_issue_id", "first_comment_id"},
                   f"{where}: server")
        names = {str(k): str(v) for k, v in mapping(raw.get("users"), f"{where}: users").items()}
        names.setdefault(self.default_user, self.default_user)
        users = {name: _User(name, display, f"JIRAUSER{10100 + i}")
                 for i, (name, display) in enumerate(names.items())}
        raw_types = mapping(raw.get("issue_types"), f"{where}: issue_types") or {
            "Bug": "A problem.", "Task": "A task that needs to be done."}
        issue_types = {str(name): _IssueType(str(10001 + i), str(name), str(text or ""))
                       for i, (name, text) in enumerate(raw_types.items())}
        projects: dict[str, _Project] = {}
        pending: list[tuple[_Project, dict[str, Any], str]] = []
        for i, item in enumerate(sequence(raw.get("projects"), f"{where}: projects")):
            place = f"{where}: projects[{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("key"), str):
                raise SeedError(f"{place}: every project needs a key, e.g. {{key: OPS}}")
            check_keys(item, {"key", "name", "lead", "description", "issue_types", "assignable",
                              "issues"}, place)
            key = item["key"]
            place = f"{place} ({key})"
            if not re.fullmatch(r"[A-Z][A-Z0-9_]{1,9}", key):
                raise SeedError(f"{place}: a project key is 2-10 capital letters, digits or _, "
                                "starting with a letter")
            if key in projects:
                raise SeedError(f"{place}: a second project with key {key}")
            lead = str(item.get("lead") or self.default_user)
            if lead not in users:
                raise SeedError(f"{place}: lead {lead!r} is not a user under users:")
            types = tuple(str(t) for t in sequence(item.get("issue_types"), f"{place}.issue_types")
                          ) or tuple(issue_types)
            for name in types:
                _one_of(name, list(issue_types), f"{place}.issue_types")
            assignable = [str(u) for u in sequence(item.get("assignable"),
                                                   f"{place}.assignable")] or list(users)
            for name in assignable:
                if name not in users:
                    raise SeedError(f"{place}.assignable: {name!r} is not a user under users:")
            project = _Project(str(10000 + i), key, str(item.get("name") or key),
                               str(item.get("description") or ""), lead, types,
                               frozenset(assignable))
            projects[key] = project
            for j, issue in enumerate(sequence(item.get("issues"), f"{place}.issues")):
                pending.append((project, issue, f"{place}.issues[{j}]"))
        issues = [self._issue(project, raw_issue, place, users)
                  for project, raw_issue, place in pending]
        # Ids grow with time across all projects, as in Jira.
        next_issue_id = int(server.get("first_issue_id", 10000))
        next_comment_id = int(server.get("first_comment_id", 10000))
        for issue in sorted(issues, key=lambda i: i.created):
            issue.id = next_issue_id
            next_issue_id += 1
        for comment in sorted((c for i in issues for c in i.comments), key=lambda c: c.created):
            comment.id = next_comment_id
            next_comment_id += 1
        return _Seed(str(server.get("version", "9.12.15")), str(server.get("title", "Jira")),
                     users, issue_types, projects, issues, next_issue_id, next_comment_id)

    def _issue(self, project: _Project, raw: object, where: str,
               users: dict[str, _User]) -> _Issue:
        if not isinstance(raw, dict) or not raw.get("summary") or "ago" not in raw:
            raise SeedError(f"{where}: an issue needs at least a summary and ago: (e.g. ago: 3h)")
        where = f"{where} ({str(raw['summary'])[:30]})"
        check_keys(raw, _ISSUE_KEYS, where)
        number = int(raw.get("number", project.next_number))
        if number < project.next_number:
            raise SeedError(f"{where}: number {number} is not after {project.key}-"
                            f"{project.next_number - 1}; numbers must grow down the list")
        project.next_number = number + 1

        def user(name: str) -> str | None:
            value = raw.get(name)
            if value is None:
                return None
            if str(value) not in users:
                raise SeedError(f"{where}: {name} {value!r} is not a user under users:")
            return str(value)

        created = self.now - parse_span(raw["ago"], f"{where}.ago")
        comments: list[_Comment] = []
        for k, item in enumerate(sequence(raw.get("comments"), f"{where}.comments")):
            place = f"{where}.comments[{k}]"
            if not isinstance(item, dict) or not item.get("body") or "ago" not in item:
                raise SeedError(f"{place}: a comment needs by:, ago: and body:")
            check_keys(item, {"by", "ago", "body"}, place)
            author = str(item.get("by") or self.default_user)
            if author not in users:
                raise SeedError(f"{place}: by {author!r} is not a user under users:")
            at = self.now - parse_span(item["ago"], f"{place}.ago")
            if at < created:
                raise SeedError(f"{place}: the comment is older than its issue")
            comments.append(_Comment(0, author, str(item["body"]).strip(), at, at))
        comments.sort(key=lambda c: c.created)
        latest = max([created] + [c.created for c in comments])
        updated = latest
        if "updated" in raw:
            updated = self.now - parse_span(raw["updated"], f"{where}.updated")
            if updated < latest:
                raise SeedError(f"{where}: updated is older than the issue or its last comment")
        status = _one_of(raw.get("status", STATUSES[0]), STATUSES, f"{where}.status")
        done = _STATUS_BY_NAME[status].category == "done"
        resolution = None
        if done:
            resolution = _one_of(raw.get("resolution", "Done"), RESOLUTIONS,
                                 f"{where}.resolution")
        elif raw.get("resolution") is not None:
            raise SeedError(f"{where}: only an issue in a done status has a resolution")
        priority = raw.get("priority", "Medium")
        labels = [str(label) for label in sequence(raw.get("labels"), f"{where}.labels")]
        issue_type = _one_of(raw.get("type", project.issue_types[0]), project.issue_types,
                             f"{where}.type")
        reporter = user("reporter") or self.default_user
        return _Issue(
            id=0, project=project, number=number, issue_type=issue_type,
            summary=str(raw["summary"]).strip(),
            description=str(raw.get("description") or "").strip(),
            status=status,
            priority=None if priority is None else _one_of(priority, PRIORITIES,
                                                           f"{where}.priority"),
            assignee=user("assignee"), reporter=reporter, creator=reporter, labels=labels,
            created=created, updated=updated,
            resolved=updated if done else None, resolution=resolution,
            comments=comments,
        )


# ---------------------------------------------------------------------------------------
# State and its rules.


class _State:
    """Projects, issues and users, with Jira's validation rules. Callers hold ``lock``."""

    def __init__(self, seed: _Seed, clock: Callable[[], float]) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.clock = clock
        self.users = seed.users
        self.issue_types = seed.issue_types
        self.projects = seed.projects
        self.issues: dict[str, _Issue] = {i.key: i for i in sorted(seed.issues, key=lambda i: i.id)}
        self.next_issue_id = seed.next_issue_id
        self.next_comment_id = seed.next_comment_id
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()

    # -- lookups -------------------------------------------------------------------

    def issue(self, id_or_key: str) -> _Issue:
        """By key (any case) or numeric id; 404 as Jira words it."""
        found = self.issues.get(id_or_key.upper())
        if found is None and id_or_key.isdigit():
            found = next((i for i in self.issues.values() if i.id == int(id_or_key)), None)
        if found is None:
            raise _refuse(404, _NOT_FOUND_ISSUE)
        return found

    def project(self, id_or_key: str) -> _Project | None:
        text = id_or_key.strip()
        found = self.projects.get(text.upper())
        if found is None:
            found = next((p for p in self.projects.values()
                          if p.id == text or p.name.lower() == text.lower()), None)
        return found

    def user(self, text: str) -> _User | None:
        """A user by name, e-mail address or display name, case-insensitively."""
        wanted = text.strip().lower()
        for test in (lambda u: u.name.lower(), lambda u: u.email.lower(),
                     lambda u: u.display.lower()):
            found = next((u for u in self.users.values() if test(u) == wanted), None)
            if found is not None:
                return found
        return None

    def issue_type(self, ref: dict[str, Any]) -> _IssueType | None:
        for item in self.issue_types.values():
            if str(ref.get("id", "")) == item.id or str(ref.get("name", "")).lower() \
                    == item.name.lower():
                return item
        return None

    @staticmethod
    def priority(ref: object) -> str | None:
        """A priority name for ``{"name": ...}`` / ``{"id": ...}``, None if unknown."""
        if not isinstance(ref, dict):
            return None
        if "id" in ref and str(ref["id"]).isdigit() and 1 <= int(ref["id"]) <= len(PRIORITIES):
            return PRIORITIES[int(ref["id"]) - 1]
        name = str(ref.get("name", "")).lower()
        return next((p for p in PRIORITIES if p.lower() == name), None)

    @staticmethod
    def resolution(ref: object, errors: dict[str, str]) -> str | None:
        """A resolution name for ``{"name": ...}`` / ``{"id": ...}``; Jira compares names
        case-sensitively (ResolutionRestFieldOperationsHandler)."""
        if not isinstance(ref, dict) or not (ref.get("id") or ref.get("name")):
            errors["resolution"] = "Could not find valid 'id' or 'name' in resolution object."
            return None
        if ref.get("id"):
            found = next((r for r in _RESOLUTIONS if r.id == str(ref["id"])), None)
            if found is None:
                errors["resolution"] = f"Invalid resolution id '{ref['id']}'."
                return None
            return found.name
        found = next((r for r in _RESOLUTIONS if r.name == str(ref["name"])), None)
        if found is None:
            errors["resolution"] = f"Invalid resolution name '{ref['name']}'."
            return None
        return found.name

    def assignable_users(self, project: _Project, query: str) -> list[_User]:
        """``user/assignable/search``: the users matching ``query`` (all, when empty) who
        may be assigned issues in ``project``."""
        found = self.search_users(query) if query.strip() else sorted(
            self.users.values(), key=lambda u: u.name)
        return [u for u in found if u.name in project.assignable]

    def search_users(self, query: str) -> list[_User]:
        """Jira Server's user search: a prefix of the name, e-mail or a display-name word."""
        wanted = query.strip().lower()
        if wanted in (".", "*", "%"):
            return sorted(self.users.values(), key=lambda u: u.name)
        found = [u for u in self.users.values()
                 if u.name.lower().startswith(wanted) or u.email.lower().startswith(wanted)
                 or u.display.lower().startswith(wanted)
                 or any(word.startswith(wanted) for word in u.display.lower().split())]
        return sorted(found, key=lambda u: u.name)

    # -- operations ----------------------------------------------------------------

    def create(self, body: object, user: str, now: float) -> _Issue:
        """``POST issue``: validates every field the way Jira does, all errors at once."""
        if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
            raise _refuse(400, "Can not create an issue without 'fields'.")
        fields: dict[str, Any] = dict(body["fields"])
        errors: dict[str, str] = {}
        project: _Project | None = None
        ref = fields.pop("project", None)
        if not isinstance(ref, dict) or not (ref.get("key") or ref.get("id")):
            errors["project"] = "project is required"
        else:
            project = self.project(str(ref.get("key") or ref.get("id")))
            if project is None:
                errors["project"] = "valid project is required"
        type_ref = fields.pop("issuetype", None)
        issue_type: _IssueType | None = None
        if not isinstance(type_ref, dict) or not (type_ref.get("id") or type_ref.get("name")):
            errors["issuetype"] = "issue type is required"
        else:
            issue_type = self.issue_type(type_ref)
            if issue_type is None:
                errors["issuetype"] = "valid issue type is required"
            elif project is not None and issue_type.name not in project.issue_types:
                errors["issuetype"] = "The issue type selected is invalid."
        summary = fields.pop("summary", None)
        if summary is not None and not isinstance(summary, str):
            errors["summary"] = "Operation value must be a string"
        elif not summary or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif "\n" in summary or "\r" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        description = fields.pop("description", None)
        if description is not None and not isinstance(description, str):
            errors["description"] = "Operation value must be a string"
        priority = "Medium"
        if "priority" in fields:
            ref = fields.pop("priority")
            if not isinstance(ref, dict) or not (ref.get("id") or ref.get("name")):
                errors["priority"] = "Could not find valid 'id' or 'name' in priority object."
            else:
                priority = self.priority(ref) or ""
                if not priority:
                    errors["priority"] = "The priority selected is invalid."
        assignee = self._user_field(fields, "assignee", errors)
        if assignee is not None and project is not None and assignee not in project.assignable:
            errors["assignee"] = _CANNOT_BE_ASSIGNED.format(assignee)
        reporter = self._user_field(fields, "reporter", errors) or user
        labels = self._labels(fields.pop("labels", []), errors)
        for name in fields:
            errors[name] = _BAD_SCREEN.format(name)
        if errors:
            raise _refuse(400, errors=errors)
        assert project is not None and issue_type is not None and isinstance(summary, str)
        issue = _Issue(self.next_issue_id, project, project.next_number, issue_type.name,
                       summary.strip(), (description or "").strip(), STATUSES[0], priority,
                       assignee, reporter, user, labels, now, now)
        self.next_issue_id += 1
        project.next_number += 1
        self.issues[issue.key] = issue
        return issue

    def edit(self, issue: _Issue, body: object, now: float) -> None:
        """``PUT issue/{key}``: summary, description, priority, assignee and labels."""
        # python-jira's Issue.update sends an empty "update" next to "fields", as Jira allows.
        extra = {k for k, v in body.items() if k not in ("fields", "notifyUsers")
                 and not (k == "update" and v in ({}, None))} if isinstance(body, dict) else set()
        if not isinstance(body, dict) or extra:
            raise _refuse(400, "The Jira simulator edits issues through 'fields' only "
                               "(not 'update' operations or 'properties').")
        fields = dict(body.get("fields") or {})
        errors: dict[str, str] = {}
        changes: dict[str, Any] = {}
        if "summary" in fields:
            summary = fields.pop("summary")
            if not isinstance(summary, str) or not summary.strip():
                errors["summary"] = "You must specify a summary of the issue."
            elif "\n" in summary:
                errors["summary"] = ("The summary is invalid because it contains newline "
                                     "characters.")
            else:
                changes["summary"] = summary.strip()
        if "description" in fields:
            changes["description"] = str(fields.pop("description") or "").strip()
        if "priority" in fields:
            priority = self.priority(fields.pop("priority"))
            if priority is None:
                errors["priority"] = "The priority selected is invalid."
            changes["priority"] = priority
        if "assignee" in fields:
            changes["assignee"] = self._user_field(fields, "assignee", errors)
            if changes["assignee"] not in issue.project.assignable | {None}:
                errors["assignee"] = _CANNOT_BE_ASSIGNED.format(changes["assignee"])
        if "labels" in fields:
            changes["labels"] = self._labels(fields.pop("labels"), errors)
        for name in fields:
            errors[name] = _BAD_SCREEN.format(name)
        if errors:
            raise _refuse(400, errors=errors)
        for name, value in changes.items():
            setattr(issue, name, value)
        issue.updated = now

    def _user_field(self, fields: dict[str, Any], name: str, errors: dict[str, str]) -> str | None:
        ref = fields.pop(name, None)
        if ref is None:
            return None
        wanted = ref.get("name") if isinstance(ref, dict) else None
        if wanted is None:
            errors[name] = f"Could not find valid 'name' in {name} object."
            return None
        found = self.users.get(str(wanted))
        if found is None:
            errors[name] = f"User '{wanted}' does not exist."
            return None
        return found.name

    @staticmethod
    def _labels(value: object, errors: dict[str, str]) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors["labels"] = "The labels must be a list of strings."
            return []
        for label in value:
            if not label or any(c.isspace() for c in label):
                errors["labels"] = f"The label '{label}' contains spaces which is invalid."
        return list(value)

    def comment(self, issue: _Issue, body: object, user: str, now: float) -> _Comment:
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise _refuse(400, errors={"comment": "Comment body can not be empty!"})
        comment = _Comment(self.next_comment_id, user, text, now, now)
        self.next_comment_id += 1
        issue.comments.append(comment)
        issue.updated = now
        return comment

    def transition(self, issue: _Issue, body: object, user: str, now: float) -> None:
        """``POST issue/{key}/transitions``: the id may be a string or a number."""
        ref = body.get("transition") if isinstance(body, dict) else None
        if not isinstance(ref, dict) or ref.get("id") in (None, ""):
            raise _refuse(400, "Missing 'transition' identifier")
        wanted = str(ref["id"]).strip()
        chosen = next((t for t in _WORKFLOW[issue.status] if t.id == wanted), None)
        if chosen is None:
            name = _TRANSITION_NAMES.get(wanted, wanted)
            raise _refuse(400, f"It seems that you have tried to perform a workflow operation "
                               f"({name}) that is not valid for the current state of this issue "
                               f"({issue.key}). The likely cause is that somebody has changed the "
                               "issue recently, please look at the issue history for details.")
        assert isinstance(body, dict)
        fields = dict(body.get("fields") or {})
        update = dict(body.get("update") or {})
        screen = dict(chosen.screen)
        errors: dict[str, str] = {}
        for name in [*fields, *(n for n in update if n != "comment")]:
            if name not in screen:
                errors[name] = _BAD_SCREEN.format(name)
        resolution: str | None = None
        if "resolution" in screen:
            ref = fields.get("resolution")
            operations = update.get("resolution")
            if ref is None and isinstance(operations, list) and operations \
                    and isinstance(operations[0], dict):
                ref = operations[0].get("set")
            if ref is not None:
                resolution = self.resolution(ref, errors)
            elif screen["resolution"] and "resolution" not in errors:
                errors["resolution"] = f"{_FIELD_NAMES['resolution']} is required."
        comments: list[str] = []
        for operation in update.get("comment") or []:
            text = (operation.get("add") or {}).get("body") if isinstance(operation, dict) else None
            if not isinstance(text, str) or not text.strip():
                errors["comment"] = "Comment body can not be empty!"
            else:
                comments.append(text)
        if errors:
            raise _refuse(400, errors=errors)
        done = _STATUS_BY_NAME[chosen.to].category == "done"
        issue.status = chosen.to
        issue.resolved = now if done else None
        # Leaving a done status clears the resolution (the default workflow's post function).
        issue.resolution = (resolution or issue.resolution) if done else None
        issue.updated = now
        for text in comments:
            self.comment(issue, {"body": text}, user, now)

    def assign(self, issue: _Issue, body: object, now: float) -> None:
        """``PUT issue/{key}/assignee`` with ``{"name": ...}``: null unassigns, "-1" = lead."""
        if not isinstance(body, dict) or "name" not in body:
            raise _refuse(400, errors={"assignee": "Jira Server needs the assignee's 'name'."})
        name = body["name"]
        if name is None:
            issue.assignee = None
        elif str(name) == "-1":
            issue.assignee = issue.project.lead
        elif str(name) not in self.users:
            raise _refuse(400, errors={"assignee": f"User '{name}' does not exist."})
        elif str(name) not in issue.project.assignable:
            raise _refuse(400, errors={"assignee": _CANNOT_BE_ASSIGNED.format(name)})
        else:
            issue.assignee = str(name)
        issue.updated = now

    def snapshot(self, issue: _Issue) -> IssueSnapshot:
        return IssueSnapshot(
            key=issue.key, id=str(issue.id), project=issue.project.key,
            issue_type=issue.issue_type, summary=issue.summary, description=issue.description,
            status=issue.status, priority=issue.priority, assignee=issue.assignee,
            reporter=issue.reporter, labels=tuple(issue.labels), created=issue.created,
            updated=issue.updated, resolved=issue.resolved,
            comments=tuple(CommentSnapshot(str(c.id), c.author, c.body, c.created)
                           for c in issue.comments),
            resolution=issue.resolution,
        )


# ---------------------------------------------------------------------------------------
# JQL: tokens, a recursive-descent parser, and predicates over issues.


class _JqlError(Exception):
    """A JQL query Jira would refuse (400); the message is Jira's errorMessage."""


@dataclass(frozen=True)
class _Token:
    kind: str  # word | string | op | ( | ) | , | end
    text: str  # unescaped for strings and words
    pos: int  # 0-based offset in the query


@dataclass(frozen=True)
class _Operand:
    kind: str  # value | function | empty | list
    text: str = ""
    pos: int = 0
    args: tuple[str, ...] = ()
    items: tuple[_Operand, ...] = ()

    def shown(self) -> str:
        return f"{self.text}()" if self.kind == "function" else self.text


_Predicate = Callable[[_Issue], bool]
_RESERVED_CHARS = frozenset("{}*/%+^$#@[];?")
_WORD_STOP = frozenset(" \t\r\n()=,!<>~\"'&|")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", " ": " "}
_OPERATORS_HELP = ("Valid operators include: '=', '!=', '<', '>', '<=', '>=', '~', '!~', "
                   "'IN', 'NOT IN', 'IS' and 'IS NOT'.")


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"(line {line}, character {column})"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "(),":
            tokens.append(_Token(c, c, i))
            i += 1
        elif text[i:i + 2] in ("!=", "!~", ">=", "<=", "&&", "||"):
            tokens.append(_Token("op", text[i:i + 2], i))
            i += 2
        elif c in "=~<>&|!":
            tokens.append(_Token("op", c, i))
            i += 1
        elif c in "\"'":
            start, i = i, i + 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise _JqlError(f"Error in the JQL Query: The quoted string "
                                    f"'{''.join(chars)}' has not been completed. "
                                    f"{_where(text, start)}")
                if text[i] == c:
                    i += 1
                    break
                value, i = _char(text, i)
                chars.append(value)
            tokens.append(_Token("string", "".join(chars), start))
        else:
            start, chars = i, []
            while i < n and text[i] not in _WORD_STOP:
                if text[i] in _RESERVED_CHARS:
                    raise _JqlError(f"Error in the JQL Query: The character '{text[i]}' is a "
                                    "reserved JQL character. You must enclose it in a string or "
                                    f"use the escape '\\u{ord(text[i]):04x}' instead. "
                                    f"{_where(text, i)}")
                value, i = _char(text, i)
                chars.append(value)
            tokens.append(_Token("word", "".join(chars), start))
    tokens.append(_Token("end", "", n))
    return tokens


def _char(text: str, i: int) -> tuple[str, int]:
    """The character at ``i`` (decoded, if a backslash escape starts there) and the index
    after it."""
    if text[i] != "\\":
        return text[i], i + 1
    nxt = text[i + 1:i + 2]
    if nxt in _ESCAPES:
        return _ESCAPES[nxt], i + 2
    if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
        return chr(int(text[i + 2:i + 6], 16)), i + 6
    raise _JqlError(f"Error in the JQL Query: Illegal escape sequence '\\{nxt}'. "
                    f"{_where(text, i)}")


_FIELDS = {  # lower-case JQL name -> canonical field
    "project": "project", "status": "status", "statuscategory": "statusCategory",
    "priority": "priority", "issuetype": "issuetype", "type": "issuetype",
    "key": "key", "issuekey": "key", "issue": "key", "id": "key",
    "resolution": "resolution", "labels": "labels",
    "assignee": "assignee", "reporter": "reporter", "creator": "creator",
    "text": "text", "summary": "summary", "description": "description", "comment": "comment",
    "created": "created", "createddate": "created", "updated": "updated",
    "updateddate": "updated", "resolved": "resolved", "resolutiondate": "resolved",
}
_KIND = {
    "project": "choice", "status": "choice", "statusCategory": "choice", "priority": "choice",
    "issuetype": "choice", "key": "choice", "resolution": "choice", "labels": "labels",
    "assignee": "user", "reporter": "user", "creator": "user",
    "text": "text", "summary": "text", "description": "text", "comment": "text",
    "created": "date", "updated": "date", "resolved": "date",
}
_CAN_BE_EMPTY = frozenset({"priority", "resolution", "labels", "assignee", "reporter",
                           "description", "resolved"})
_JIRA_FIELDS_NOT_SIMULATED = frozenset({
    "affectedversion", "attachments", "category", "cf", "component", "due", "duedate",
    "environment", "epic link", "filter", "fixversion", "issuelinktype", "lastviewed", "level",
    "originalestimate", "parent", "remainingestimate", "request", "savedfilter", "sprint",
    "subtasks", "timeestimate", "timeoriginalestimate", "timespent", "voter", "votes",
    "watcher", "watchers", "workratio", "project category", "projecttype", "team",
})
_JIRA_FUNCTIONS_NOT_SIMULATED = frozenset({
    "membersof", "startofweek", "endofweek", "startofmonth", "endofmonth", "startofyear",
    "endofyear", "issuehistory", "linkedissues", "opensprints", "closedsprints",
    "futuresprints", "releasedversions", "unreleasedversions", "latestreleasedversion",
    "earliestunreleasedversion", "watchedissues", "votedissues", "updatedby", "lastlogin",
    "currentlogin", "componentsleadbyuser", "projectsleadbyuser", "standardissuetypes",
    "subtaskissuetypes", "cascadeoption", "issuesWithRemoteLinksByGlobalId".lower(),
    "projectswhereuserhaspermission", "projectswhereuserhasrole",
})
_SORTABLE = ("created", "updated", "resolved", "priority", "key", "status", "summary",
             "assignee", "reporter", "issuetype", "project")
_STOPWORDS = frozenset("a an and are as at be but by for if in into is it no not of on or such "
                       "that the their then there these they this to was will with".split())
_DOC_WORD = re.compile(r"\w+(?:[.']\w+)*")
_QUERY_WORD = re.compile(r"[\w*?]+(?:[.'][\w*?]+)*")
_RELATIVE_DATE = re.compile(r"([-+]?)\s*((?:\d+\s*[wdhm]\s*)+)")
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")


def _stem(word: str) -> str:
    """A very light English stemmer, enough that "timeouts" finds "timeout"."""
    word = word.lower().removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _doc_words(text: str) -> list[str]:
    return [_stem(w) for w in _DOC_WORD.findall(text.lower()) if w not in _STOPWORDS]


def _text_groups(query: str) -> list[list[str]]:
    """Query terms; words inside ``"..."`` form one phrase group."""
    groups: list[list[str]] = []
    for index, part in enumerate(query.split('"')):
        words = [w for w in _QUERY_WORD.findall(part.lower()) if w not in _STOPWORDS]
        words = [w if ("*" in w or "?" in w) else _stem(w) for w in words]
        if not words:
            continue
        if index % 2:
            groups.append(words)
        else:
            groups.extend([w] for w in words)
    return groups


def _text_matches(groups: list[list[str]], words: list[str]) -> bool:
    if not groups:
        return False

    def same(term: str, word: str) -> bool:
        return fnmatchcase(word, term) if ("*" in term or "?" in term) else term == word

    for group in groups:
        size = len(group)
        if not any(all(same(group[k], words[start + k]) for k in range(size))
                   for start in range(len(words) - size + 1)):
            return False
    return True


def _field_text(issue: _Issue, name: str) -> str:
    comments = "\n".join(c.body for c in issue.comments)
    return {"summary": issue.summary, "description": issue.description, "comment": comments,
            "text": "\n".join((issue.summary, issue.description, comments))}[name]


def _date_of(issue: _Issue, name: str) -> float | None:
    return {"created": issue.created, "updated": issue.updated,
            "resolved": issue.resolved}[name]


@dataclass(frozen=True)
class _Query:
    where: _Predicate | None
    order: tuple[tuple[str, bool], ...]  # (field, descending)


class _Jql:
    """Parses one JQL query into a predicate and a sort order, validating as Jira does.

    ``strict`` is Jira's ``validateQuery``: when False, values that do not exist
    become warnings and their clause matches nothing, instead of a 400.
    """

    def __init__(self, text: str, state: _State, user: str, now: float, strict: bool) -> None:
        self.text = text
        self.state = state
        self.user = user
        self.now = now
        self.strict = strict
        self.warnings: list[str] = []
        self.tokens = _tokenize(text)
        self.index = 0

    # -- token helpers ---------------------------------------------------------------

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    @staticmethod
    def word(token: _Token, *words: str) -> bool:
        return token.kind == "word" and token.text.lower() in words

    @staticmethod
    def symbol(token: _Token, *symbols: str) -> bool:
        return token.kind == "op" and token.text in symbols

    def fail(self, message: str, token: _Token) -> _JqlError:
        if token.kind == "end":
            return _JqlError(f"Error in the JQL Query: {message} before the end of the query.")
        return _JqlError(f"Error in the JQL Query: {message} but got '{token.text}'. "
                         f"{_where(self.text, token.pos)}")

    # -- grammar ---------------------------------------------------------------------

    def parse(self) -> _Query:
        where = None
        if not (self.peek().kind == "end" or self.word(self.peek(), "order")):
            where = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.word(self.peek(), "order"):
            self.take()
            if not self.word(self.peek(), "by"):
                raise self.fail("Expecting 'by'", self.peek())
            self.take()
            order = self.sort_list()
        token = self.peek()
        if token.kind != "end":
            if order:
                raise self.fail("Expecting ',' or the end of the query", token)
            raise self.fail("Expecting either 'OR' or 'AND'", token)
        return _Query(where, tuple(order))

    def or_expr(self) -> _Predicate:
        parts = self.operands(self.and_expr, "or", "||", "|")
        return parts[0] if len(parts) == 1 else (lambda i: any(p(i) for p in parts))

    def and_expr(self) -> _Predicate:
        parts = self.operands(self.not_expr, "and", "&&", "&")
        return parts[0] if len(parts) == 1 else (lambda i: all(p(i) for p in parts))

    def operands(self, operand: Callable[[], _Predicate], word: str,
                 *symbols: str) -> list[_Predicate]:
        """``operand (word | symbol) operand ...``: the operands of one AND or OR chain."""
        parts = [operand()]
        while self.word(self.peek(), word) or self.symbol(self.peek(), *symbols):
            self.take()
            parts.append(operand())
        return parts

    def not_expr(self) -> _Predicate:
        token = self.peek()
        if self.word(token, "not") or self.symbol(token, "!"):
            self.take()
            inner = self.not_expr()
            return lambda i: not inner(i)
        if token.kind == "(":
            self.take()
            inner = self.or_expr()
            if self.peek().kind != ")":
                raise self.fail("Expecting ')'", self.peek())
            self.take()
            return inner
        return self.clause()

    def clause(self) -> _Predicate:
        token = self.take()
        if token.kind not in ("word", "string") or not token.text:
            raise self.fail("Expecting a field name", token)
        name = token.text.strip().lower()
        canonical = _FIELDS.get(name)
        if canonical is None:
            if name in _JIRA_FIELDS_NOT_SIMULATED:
                supported = ", ".join(sorted(set(_FIELDS.values())))
                raise _JqlError(f"The Jira simulator does not support the field '{token.text}' "
                                f"in JQL; it supports {supported}.")
            raise _JqlError(f"Field '{token.text}' does not exist or you do not have "
                            "permission to view it.")
        operator = self.operator()
        operand = self.operand(operator)
        return self.compile(canonical, token.text, operator, operand)

    def operator(self) -> str:
        token = self.take()
        if token.kind == "op" and token.text in ("=", "!=", "~", "!~", ">", ">=", "<", "<="):
            return token.text
        if self.word(token, "in"):
            return "in"
        if self.word(token, "not") and self.word(self.peek(), "in"):
            self.take()
            return "not in"
        if self.word(token, "is"):
            if self.word(self.peek(), "not"):
                self.take()
                return "is not"
            return "is"
        if self.word(token, "was", "changed"):
            raise _JqlError(f"The Jira simulator does not support the history operator "
                            f"'{token.text.upper()}' (WAS / CHANGED).")
        if token.kind == "end":
            raise self.fail("Expecting operator", token)
        raise _JqlError(f"Error in the JQL Query: Expecting operator but got '{token.text}'. "
                        f"{_OPERATORS_HELP} {_where(self.text, token.pos)}")

    def operand(self, operator: str) -> _Operand:
        if operator in ("in", "not in"):
            if self.peek().kind == "word" and self.peek(1).kind == "(":
                return self.single()  # a function returning a list, like membersOf(devs)
            if self.peek().kind != "(":
                raise self.fail("Expecting '(' to start a list of values", self.peek())
            self.take()
            items = [self.single()]
            while self.peek().kind == ",":
                self.take()
                items.append(self.single())
            if self.peek().kind != ")":
                raise self.fail("Expecting ')'", self.peek())
            self.take()
            return _Operand("list", items=tuple(items))
        if operator in ("is", "is not"):
            token = self.take()
            if not self.word(token, "empty", "null"):
                raise self.fail("Expecting 'EMPTY' or 'NULL'", token)
            return _Operand("empty", token.text, token.pos)
        return self.single()

    def single(self) -> _Operand:
        token = self.take()
        if token.kind == "word" and self.peek().kind == "(":
            self.take()
            args: list[str] = []
            while self.peek().kind != ")":
                arg = self.take()
                if arg.kind not in ("word", "string"):
                    raise self.fail("Expecting a function argument", arg)
                args.append(arg.text)
                if self.peek().kind == ",":
                    self.take()
            self.take()
            return _Operand("function", token.text, token.pos, tuple(args))
        if self.word(token, "empty", "null"):
            return _Operand("empty", token.text, token.pos)
        if token.kind not in ("word", "string"):
            raise self.fail("Expecting either a value, list or function", token)
        return _Operand("value", token.text, token.pos)

    def sort_list(self) -> list[tuple[str, bool]]:
        order: list[tuple[str, bool]] = []
        while True:
            token = self.take()
            if token.kind not in ("word", "string"):
                raise self.fail("Expecting a field name", token)
            canonical = _FIELDS.get(token.text.strip().lower())
            if canonical not in _SORTABLE:
                raise _JqlError(f"Not able to sort using field '{token.text}'.")
            descending = False
            if self.word(self.peek(), "asc", "desc"):
                descending = self.take().text.lower() == "desc"
            order.append((canonical, descending))
            if self.peek().kind != ",":
                return order
            self.take()

    # -- semantics -------------------------------------------------------------------

    def compile(self, field: str, shown: str, operator: str, operand: _Operand) -> _Predicate:
        kind = _KIND[field]
        if operand.kind == "empty" or operator in ("is", "is not"):
            if operator not in ("=", "!=", "is", "is not"):
                raise _JqlError(f"The operator '{operator}' does not support the EMPTY value.")
            if field not in _CAN_BE_EMPTY:
                raise _JqlError(f"The field '{shown}' does not support searching for EMPTY "
                                "values.")
            empty = self.emptiness(field)
            return empty if operator in ("=", "is") else (lambda i: not empty(i))
        if kind == "text":
            return self.text_clause(field, shown, operator, operand)
        if kind == "date":
            return self.date_clause(field, shown, operator, operand)
        if operator in ("~", "!~"):
            raise _JqlError(f"The operator '{operator}' is not supported by the '{shown}' field.")
        if operator in (">", ">=", "<", "<="):
            if field != "priority":
                raise _JqlError(f"The operator '{operator}' is not supported by the '{shown}' "
                                "field.")
            return self.priority_range(operator, operand, shown)
        operands = operand.items if operand.kind == "list" else (operand,)
        if operand.kind == "list" and operator in ("=", "!="):
            raise _JqlError(f"The operator '{operator}' does not support the list value.")
        getter, resolve = self.accessor(field, shown)
        wanted: set[str] = set()
        unknown = False
        for item in operands:
            value = resolve(item)
            if value is None:
                unknown = True
            else:
                wanted.add(value)
        if unknown and not wanted:
            return lambda i: False
        negate = operator in ("!=", "not in")

        def test(issue: _Issue) -> bool:
            values = getter(issue)
            if not values:
                return False  # Jira: != and NOT IN never match an empty field
            hit = any(v in wanted for v in values)
            return not hit if negate else hit

        return test

    def emptiness(self, field: str) -> _Predicate:
        tests: dict[str, _Predicate] = {
            "priority": lambda i: i.priority is None,
            "resolution": lambda i: i.resolved is None,
            "resolved": lambda i: i.resolved is None,
            "labels": lambda i: not i.labels,
            "assignee": lambda i: i.assignee is None,
            "reporter": lambda i: i.reporter is None,
            "description": lambda i: not i.description.strip(),
        }
        return tests[field]

    def accessor(self, field: str, shown: str) -> tuple[Callable[[_Issue], list[str]],
                                                        Callable[[_Operand], str | None]]:
        """How to read ``field`` off an issue, and how to resolve a query value for it."""
        state = self.state

        def value_only(resolve: Callable[[str], str | None]) -> Callable[[_Operand], str | None]:
            def run(operand: _Operand) -> str | None:
                if operand.kind == "function":
                    self.check_function(operand, shown, allowed=())
                found = resolve(operand.text)
                if found is None:
                    self.missing(operand.text, shown)
                return found
            return run

        if field == "project":
            def project(text: str) -> str | None:
                found = state.project(text)
                return found.key if found else None
            return (lambda i: [i.project.key]), value_only(project)
        if field == "status":
            def status(text: str) -> str | None:
                return next((s.name for s in _STATUSES if text.strip().lower()
                             in (s.name.lower(), s.id)), None)
            return (lambda i: [i.status]), value_only(status)
        if field == "statusCategory":
            def category(text: str) -> str | None:
                wanted = text.strip().lower()
                return next((key for key, (cid, name, _) in _CATEGORIES.items()
                             if wanted in (key, name.lower(), str(cid))), None)
            return (lambda i: [i.category]), value_only(category)
        if field == "priority":
            def priority(text: str) -> str | None:
                return _State.priority({"name": text}) or _State.priority({"id": text})
            return (lambda i: [i.priority] if i.priority else []), value_only(priority)
        if field == "issuetype":
            def issue_type(text: str) -> str | None:
                found = state.issue_type({"name": text, "id": text})
                return found.name if found else None
            return (lambda i: [i.issue_type]), value_only(issue_type)
        if field == "resolution":
            def resolution(text: str) -> str | None:
                wanted = text.strip().lower()
                if wanted == "unresolved":
                    return "Unresolved"
                return next((r.name for r in _RESOLUTIONS
                             if wanted in (r.name.lower(), r.id)), None)
            return (lambda i: [i.resolution or "Unresolved"]), value_only(resolution)
        if field == "labels":
            def label(operand: _Operand) -> str | None:
                if operand.kind == "function":
                    self.check_function(operand, shown, allowed=())
                return operand.text.lower()
            return (lambda i: [x.lower() for x in i.labels]), label
        if field == "key":
            def key(operand: _Operand) -> str | None:
                if operand.kind == "function":
                    self.check_function(operand, shown, allowed=())
                text = operand.text.strip().upper()
                if text.isdigit():
                    found = next((i for i in state.issues.values() if i.id == int(text)), None)
                    return found.key if found else None
                if not re.fullmatch(r"[A-Z][A-Z0-9_]+-\d+", text):
                    raise _JqlError(f"The issue key '{operand.text}' for field '{shown}' is "
                                    "invalid.")
                if text not in state.issues:
                    message = f"An issue with key '{text}' does not exist for field '{shown}'."
                    if self.strict:
                        raise _JqlError(message)
                    self.warnings.append(message)
                    return None
                return text
            return (lambda i: [i.key]), key

        def user(operand: _Operand) -> str | None:  # assignee, reporter, creator
            if operand.kind == "function":
                self.check_function(operand, shown, allowed=("currentuser",))
                return self.user
            found = state.user(operand.text)
            if found is None:
                self.missing(operand.text, shown)
                return None
            return found.name

        def getter(issue: _Issue) -> list[str]:
            value = getattr(issue, field)
            return [value] if value else []

        return getter, user

    def missing(self, text: str, shown: str) -> None:
        message = f"The value '{text}' does not exist for the field '{shown}'."
        if self.strict:
            raise _JqlError(message)
        self.warnings.append(message)

    @staticmethod
    def check_function(operand: _Operand, shown: str, allowed: tuple[str, ...]) -> None:
        name = operand.text.lower()
        if name in allowed:
            if operand.args:
                raise _JqlError(f"The Jira simulator does not support arguments to the JQL "
                                f"function '{operand.text}()'.")
            return
        if name in _JIRA_FUNCTIONS_NOT_SIMULATED:
            raise _JqlError(f"The Jira simulator does not support the JQL function "
                            f"'{operand.text}()'.")
        if name in ("currentuser", "now", "startofday", "endofday"):
            raise _JqlError(f"The JQL function '{operand.text}()' is not supported by the "
                            f"field '{shown}'.")
        raise _JqlError(f"Unable to find JQL function '{operand.text}()'.")

    def priority_range(self, operator: str, operand: _Operand, shown: str) -> _Predicate:
        if operand.kind != "value":
            raise _JqlError(f"The operator '{operator}' needs a single priority for the field "
                            f"'{shown}'.")
        name = _State.priority({"name": operand.text}) or _State.priority({"id": operand.text})
        if name is None:
            self.missing(operand.text, shown)
            return lambda i: False
        limit = PRIORITIES.index(name)  # 0 is the most urgent, and the "greatest"
        compare: dict[str, Callable[[int], bool]] = {
            ">": lambda r: r < limit, ">=": lambda r: r <= limit,
            "<": lambda r: r > limit, "<=": lambda r: r >= limit}
        check = compare[operator]
        return lambda i: i.priority is not None and check(PRIORITIES.index(i.priority))

    def text_clause(self, field: str, shown: str, operator: str,
                    operand: _Operand) -> _Predicate:
        if operator not in ("~", "!~") or (field == "text" and operator == "!~"):
            raise _JqlError(f"The operator '{operator}' is not supported by the '{shown}' field.")
        if operand.kind != "value":
            raise _JqlError(f"The operator '{operator}' needs a single text value for the field "
                            f"'{shown}'.")
        if not operand.text.strip():
            raise _JqlError(f"The field '{shown}' does not support searching for an empty "
                            "string.")
        groups = _text_groups(operand.text)
        for group in groups:
            for term in group:
                if term[0] in "*?":
                    raise _JqlError(f"The text query '{operand.text}' for field '{shown}' is "
                                    "not allowed to start with a wildcard.")

        def contains(issue: _Issue) -> bool:
            return _text_matches(groups, _doc_words(_field_text(issue, field)))

        return contains if operator == "~" else (lambda i: not contains(i))

    def date_clause(self, field: str, shown: str, operator: str,
                    operand: _Operand) -> _Predicate:
        if operator in ("=", "!="):
            raise _JqlError(f"The Jira simulator does not support the operator '{operator}' for "
                            f"the date field '{shown}'; use >, >=, < or <=.")
        if operator not in (">", ">=", "<", "<="):
            raise _JqlError(f"The operator '{operator}' is not supported by the '{shown}' field.")
        if operand.kind == "function":
            self.check_function(operand, shown, allowed=("now", "startofday", "endofday"))
            day = self.now - self.now % 86400  # the simulator's time zone is UTC
            at = {"now": self.now, "startofday": day,
                  "endofday": day + 86400 - 0.001}[operand.text.lower()]
        elif operand.kind == "value":
            at = self.date_value(operand.text, shown)
        else:
            raise _JqlError(f"The operator '{operator}' needs a single date for the field "
                            f"'{shown}'.")
        compare: dict[str, Callable[[float], bool]] = {
            ">": lambda t: t > at, ">=": lambda t: t >= at,
            "<": lambda t: t < at, "<=": lambda t: t <= at}
        check = compare[operator]

        def test(issue: _Issue) -> bool:
            value = _date_of(issue, field)
            return value is not None and check(value)

        return test

    def date_value(self, text: str, shown: str) -> float:
        value = text.strip()
        match = _RELATIVE_DATE.fullmatch(value)
        if match:
            units = {"w": 604800, "d": 86400, "h": 3600, "m": 60}
            seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)\s*([wdhm])", match[2]))
            return self.now - seconds if match[1] == "-" else self.now + seconds
        for fmt in _DATE_FORMATS:
            try:
                return float(calendar.timegm(time.strptime(value, fmt)))
            except ValueError:
                continue
        raise _JqlError(f"Date value '{text}' for field '{shown}' is invalid. Valid formats "
                        "include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', "
                        "'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")


def _sort(issues: list[_Issue], order: Sequence[tuple[str, bool]]) -> list[_Issue]:
    """Jira's ORDER BY; empty values sort last either way. Without one: key, newest first."""
    status_rank = {s.name: n for n, s in enumerate(_STATUSES)}
    keys: dict[str, Callable[[_Issue], Any]] = {
        "created": lambda i: i.created, "updated": lambda i: i.updated,
        "resolved": lambda i: i.resolved,
        # ORDER BY priority DESC puts Highest first
        "priority": lambda i: None if i.priority is None else -PRIORITIES.index(i.priority),
        "key": lambda i: (i.project.key, i.number), "status": lambda i: status_rank[i.status],
        "summary": lambda i: i.summary.lower(), "assignee": lambda i: i.assignee,
        "reporter": lambda i: i.reporter, "issuetype": lambda i: i.issue_type,
        "project": lambda i: i.project.key,
    }
    result = sorted(issues, key=lambda i: i.id, reverse=True)
    if not order:
        return sorted(result, key=keys["key"], reverse=True)
    for name, descending in reversed(order):
        get = keys[name]
        present = [i for i in result if get(i) is not None]
        absent = [i for i in result if get(i) is None]
        present.sort(key=get, reverse=descending)
        result = present + absent
    return result


# ---------------------------------------------------------------------------------------
# JSON, as Jira renders it.


def _jira_time(epoch: float) -> str:
    """``2024-01-01T10:00:00.000+0000``: Jira's timestamp format (UTC here)."""
    whole = int(epoch)
    millis = int(round((epoch - whole) * 1000))
    if millis == 1000:
        whole, millis = whole + 1, 0
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}+0000"


_FIELD_INFO = (  # id, name, clause names, schema type, navigable
    ("issuekey", "Key", ("id", "issue", "issuekey", "key"), None, True),
    ("summary", "Summary", ("summary",), "string", True),
    ("description", "Description", ("description",), "string", True),
    ("issuetype", "Issue Type", ("issuetype", "type"), "issuetype", True),
    ("project", "Project", ("project",), "project", True),
    ("status", "Status", ("status",), "status", True),
    ("priority", "Priority", ("priority",), "priority", True),
    ("assignee", "Assignee", ("assignee",), "user", True),
    ("reporter", "Reporter", ("reporter",), "user", True),
    ("creator", "Creator", ("creator",), "user", True),
    ("created", "Created", ("created", "createdDate"), "datetime", True),
    ("updated", "Updated", ("updated", "updatedDate"), "datetime", True),
    ("resolution", "Resolution", ("resolution",), "resolution", True),
    ("resolutiondate", "Resolved", ("resolutiondate", "resolved"), "datetime", True),
    ("labels", "Labels", ("labels",), "array", True),
    ("comment", "Comment", ("comment",), "comments-page", False),
)
_ISSUE_FIELDS = tuple(info[0] for info in _FIELD_INFO if info[0] != "issuekey")
_NAVIGABLE = tuple(info[0] for info in _FIELD_INFO if info[4] and info[0] != "issuekey")


def _wanted_fields(requested: Sequence[str], default: str) -> set[str]:
    """Jira's ``fields`` parameter: ``*all``, ``*navigable``, names, ``-name`` to drop one."""
    names = [part.strip() for item in requested for part in str(item).split(",") if part.strip()]
    if not names:
        names = [default]
    wanted: set[str] = set()
    for name in names:
        if name == "*all":
            wanted.update(_ISSUE_FIELDS)
        elif name == "*navigable":
            wanted.update(_NAVIGABLE)
    for name in names:
        if name.startswith("-"):
            wanted.discard(name[1:])
        elif not name.startswith("*"):
            wanted.add(name)
    return wanted


class _Renderer:
    """Builds the JSON bodies; ``base`` is the server URL as the client reached it."""

    def __init__(self, state: _State, base: str) -> None:
        self.state = state
        self.base = base
        self.api = f"{base}rest/api/2/"

    def avatars(self, kind: str, number: int) -> dict[str, str]:
        return {f"{size}x{size}": f"{self.base}secure/{kind}avatar?size={label}&avatarId={number}"
                for size, label in ((48, "large"), (24, "small"), (16, "xsmall"),
                                    (32, "medium"))}

    def user(self, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        user = self.state.users.get(name)
        display = user.display if user else name
        return {"self": f"{self.api}user?username={quote(name)}", "name": name,
                "key": user.key if user else name,
                "emailAddress": user.email if user else f"{name}@example.com",
                "avatarUrls": self.avatars("user", 10122), "displayName": display,
                "active": True, "timeZone": "Etc/UTC"}

    def myself(self, name: str) -> dict[str, Any]:
        data = self.user(name) or {}
        data.update(locale="en_UK", groups={"size": 1, "items": []},
                    applicationRoles={"size": 1, "items": []}, expand="groups,applicationRoles")
        return data

    def project_ref(self, project: _Project) -> dict[str, Any]:
        return {"self": f"{self.api}project/{project.id}", "id": project.id, "key": project.key,
                "name": project.name, "projectTypeKey": "software",
                "avatarUrls": self.avatars("project", 10324)}

    def project(self, project: _Project) -> dict[str, Any]:
        data = {"expand": "description,lead,url,projectKeys,permissions,insight",
                **self.project_ref(project), "description": project.description,
                "lead": self.user(project.lead), "components": [],
                "issueTypes": [self.issue_type(self.state.issue_types[name])
                               for name in project.issue_types],
                "assigneeType": "UNASSIGNED", "versions": [], "archived": False,
                "roles": {}}
        return data

    def issue_type(self, item: _IssueType) -> dict[str, Any]:
        return {"self": f"{self.api}issuetype/{item.id}", "id": item.id,
                "description": item.description,
                "iconUrl": f"{self.base}secure/viewavatar?size=xsmall&avatarId={item.id}"
                           "&avatarType=issuetype",
                "name": item.name, "subtask": False, "avatarId": int(item.id)}

    def priority(self, name: str | None) -> dict[str, Any] | None:
        if name is None:
            return None
        number = PRIORITIES.index(name) + 1
        return {"self": f"{self.api}priority/{number}",
                "iconUrl": f"{self.base}images/icons/priorities/{name.lower()}.svg",
                "name": name, "id": str(number)}

    def priority_full(self, name: str) -> dict[str, Any]:
        data = self.priority(name) or {}
        data.update(statusColor=_PRIORITY_COLORS[name], description=_PRIORITY_DESCRIPTIONS[name])
        return data

    def category(self, key: str) -> dict[str, Any]:
        number, name, colour = _CATEGORIES[key]
        return {"self": f"{self.api}statuscategory/{number}", "id": number, "key": key,
                "colorName": colour, "name": name}

    def status(self, name: str) -> dict[str, Any]:
        status = _STATUS_BY_NAME[name]
        return {"self": f"{self.api}status/{status.id}", "description": "",
                "iconUrl": f"{self.base}images/icons/statuses/generic.png", "name": name,
                "id": status.id, "statusCategory": self.category(status.category)}

    def comment(self, issue: _Issue, comment: _Comment) -> dict[str, Any]:
        return {"self": f"{self.api}issue/{issue.id}/comment/{comment.id}",
                "id": str(comment.id), "author": self.user(comment.author), "body": comment.body,
                "updateAuthor": self.user(comment.author),
                "created": _jira_time(comment.created), "updated": _jira_time(comment.updated)}

    def comments_page(self, issue: _Issue, start: int = 0, limit: int | None = None,
                      newest_first: bool = False) -> dict[str, Any]:
        items = sorted(issue.comments, key=lambda c: (c.created, c.id), reverse=newest_first)
        page = items[start:] if limit is None else items[start:start + limit]
        return {"comments": [self.comment(issue, c) for c in page],
                "maxResults": len(page) if limit is None else limit, "total": len(items),
                "startAt": start}

    def issue(self, issue: _Issue, wanted: set[str]) -> dict[str, Any]:
        every: dict[str, Callable[[], Any]] = {
            "summary": lambda: issue.summary,
            "description": lambda: issue.description or None,
            "issuetype": lambda: self.issue_type(self.state.issue_types[issue.issue_type]),
            "project": lambda: self.project_ref(issue.project),
            "status": lambda: self.status(issue.status),
            "priority": lambda: self.priority(issue.priority),
            "assignee": lambda: self.user(issue.assignee),
            "reporter": lambda: self.user(issue.reporter),
            "creator": lambda: self.user(issue.creator),
            "created": lambda: _jira_time(issue.created),
            "updated": lambda: _jira_time(issue.updated),
            "resolution": lambda: self.resolution(issue.resolution),
            "resolutiondate": lambda: None if issue.resolved is None
            else _jira_time(issue.resolved),
            "labels": lambda: list(issue.labels),
            "comment": lambda: self.comments_page(issue),
        }
        return {"expand": _ISSUE_EXPAND, "id": str(issue.id),
                "self": f"{self.api}issue/{issue.id}", "key": issue.key,
                "fields": {name: make() for name, make in every.items() if name in wanted}}

    def resolution(self, name: str | None) -> dict[str, Any] | None:
        found = next((r for r in _RESOLUTIONS if r.name == name), None)
        if found is None:
            return None
        return {"self": f"{self.api}resolution/{found.id}", "id": found.id,
                "description": found.description, "name": found.name}

    def transition(self, transition: _Transition, with_fields: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": transition.id, "name": transition.name, "to": self.status(transition.to),
            "hasScreen": bool(transition.screen), "isGlobal": False, "isInitial": False,
            "isAvailable": True, "isConditional": False, "isLooped": False}
        if with_fields:
            data["fields"] = {fid: self.field_meta(fid, required)
                              for fid, required in transition.screen}
        return data

    def field_meta(self, fid: str, required: bool) -> dict[str, Any]:
        """One entry of a transition's ``fields`` (FieldMetaBean)."""
        data: dict[str, Any] = {"required": required,
                                "schema": {"type": fid, "system": fid},
                                "name": _FIELD_NAMES.get(fid, fid), "fieldId": fid,
                                "hasDefaultValue": False, "operations": ["set"]}
        if fid == "resolution":
            data["allowedValues"] = [self.resolution(r.name) for r in _RESOLUTIONS]
        return data

    def fields(self) -> list[dict[str, Any]]:
        out = []
        for fid, name, clauses, kind, navigable in _FIELD_INFO:
            data: dict[str, Any] = {"id": fid, "name": name, "custom": False, "orderable": True,
                                    "navigable": navigable, "searchable": True,
                                    "clauseNames": list(clauses)}
            if kind is not None:
                data["schema"] = {"type": kind, "system": fid}
            out.append(data)
        return out


# ---------------------------------------------------------------------------------------
# HTTP: auth, routing and Jira's error shapes.


def _text_param(values: object) -> list[str]:
    """A JSON or query value that may be a string, a list of strings, or null."""
    if values is None:
        return []
    if isinstance(values, list):
        return [str(v) for v in values if v is not None]
    return [str(values)]


def _int_value(value: object, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
        raise _refuse(400, f"The value '{value}' of {name} is not a whole number.")
    return int(str(value).strip())


def _page_html(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
            f"<body>{body}</body></html>\n")


class _App:
    """The HTTP face of the simulator: Request in, Response out."""

    def __init__(self, state: _State, user: str, token: str, default_base: Callable[[], str]):
        self.state = state
        self.user = user
        self.token = token
        self.default_base = default_base
        self.basic_auth = True
        self.captcha_after: int | None = 3
        self.failed_logins = 0
        self.deployment = "Server"
        self.request_counter = 0
        self.session = secrets.token_hex(8)

    def __call__(self, request: Request) -> Response:
        with self.state.lock:
            self.request_counter += 1
            request_id = f"{self.request_counter}x{int(time.time()) % 100000}x1"
        failure = self.state.faults.hold(unquote(request.raw_path))
        user: str | None = None
        if failure is not None:
            response = self._fault_response(failure)
        else:
            try:
                user = self._authenticate(request)
                with self.state.lock:
                    response = self._route(request, user)
            except _Refused as refused:
                response = refused.response
        response.with_header("X-AREQUESTID", request_id)
        response.with_header("X-ASESSIONID", self.session)
        response.with_header("X-AUSERNAME", user or "anonymous")
        response.with_header("X-Content-Type-Options", "nosniff")
        self.state.log.append(RecordedRequest(
            request.method, request.target, response.status, user,
            request.body[:10000].decode("utf-8", errors="replace")))
        self.state.faults.hold_response(unquote(request.raw_path))  # respond_delay()
        return response

    def _authenticate(self, request: Request) -> str | None:
        """The user of a valid Bearer or Basic header, None for anonymous; Seraph's 401 if
        wrong, 403 when basic auth is disabled or the user owes a CAPTCHA."""
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        base = self._base(request)
        if scheme.lower() == "bearer":
            if hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return self.user
            raise _Refused(Response.html("Basic Authentication Failure - Reason : "
                                         "AUTHENTICATED_FAILED", 401)
                           .with_header("X-Seraph-LoginReason", "AUTHENTICATED_FAILED"))
        if scheme.lower() != "basic":
            return None
        if not self.basic_auth:
            raise _Refused(Response.json({"errorMessages": [
                "Basic Authentication has been disabled on this instance."], "errors": {}}, 403))
        try:
            user, _, password = b64decode(value.strip(), validate=True).decode().partition(":")
        except (BinasciiError, UnicodeDecodeError):
            user, password = "", ""
        with self.state.lock:
            if user == self.user and self.captcha_after is not None and \
                    self.failed_logins >= self.captcha_after:
                raise _Refused(
                    Response.html("CAPTCHA_CHALLENGE", 403)
                    .with_header("X-Seraph-LoginReason", "AUTHENTICATION_DENIED")
                    .with_header("X-Authentication-Denied-Reason",
                                 f"CAPTCHA_CHALLENGE; login-url={base}login.jsp"))
            if user == self.user and hmac.compare_digest(password.encode(),
                                                         self.token.encode()):
                self.failed_logins = 0
                return user
            if user == self.user:
                self.failed_logins += 1
        raise _Refused(
            Response.html("Basic Authentication Failure - Reason : AUTHENTICATED_FAILED", 401)
            .with_header("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")
            .with_header("WWW-Authenticate",
                         f'OAuth realm="{quote(base.rstrip("/"), safe="")}"'))

    def _base(self, request: Request) -> str:
        host = request.header("Host")
        if host and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
            return f"http://{host}/"
        return self.default_base()

    @staticmethod
    def _fault_response(status: int) -> Response:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        message = ("Internal server error (injected by JiraSimulator.fail_next())"
                   if status == 500 else f"{phrase} (injected by JiraSimulator.fail_next())")
        return Response.json({"errorMessages": [message], "errors": {}}, status)

    @staticmethod
    def _json_body(request: Request) -> Any:
        if not request.body:
            return None
        if "json" not in (request.header("Content-Type") or "").lower():
            raise _Refused(Response.html("Unsupported Media Type", 415))
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _refuse(400, f"Unexpected character in the request body: {exc}") from None

    # -- routing ---------------------------------------------------------------------

    def _route(self, request: Request, user: str | None) -> Response:
        segments = request.segments
        render = _Renderer(self.state, self._base(request))
        if not segments:
            return Response.html(_page_html(self.state.seed.title, "<h1>Jira simulator</h1>"))
        if segments[0] == "browse" and len(segments) == 2:
            issue = self.state.issue(segments[1])
            title = f"[{issue.key}] {issue.summary}"
            return Response.html(_page_html(title, f"<h1>{html.escape(title)}</h1>"
                                                   f"<p>{html.escape(issue.status)}</p>"))
        if segments[:4] == ("rest", "auth", "1", "session") and len(segments) == 4:
            name = self._require_user(user)
            return Response.json({"self": f"{render.api}user?username={quote(name)}",
                                  "name": name, "loginInfo": {"failedLoginCount": 0,
                                                              "loginCount": 1}})
        if len(segments) < 4 or segments[:2] != ("rest", "api") \
                or segments[2] not in ("2", "latest"):
            return self._no_resource(request, render)
        rest = segments[3:]
        if rest == ("serverInfo",):
            return self._only(request, "GET", lambda: Response.json(self._server_info(render)))
        name = self._require_user(user)
        now = self.state.clock()
        method = request.method
        match rest:
            case ("myself",):
                return self._only(request, "GET", lambda: Response.json(render.myself(name)))
            case ("field",):
                return self._only(request, "GET", lambda: Response.json(render.fields()))
            case ("priority",):
                return self._only(request, "GET", lambda: Response.json(
                    [render.priority_full(p) for p in PRIORITIES]))
            case ("priority", number):
                if not number.isdigit() or not 1 <= int(number) <= len(PRIORITIES):
                    raise _refuse(404, f"Could not find priority with id '{number}'.")
                return Response.json(render.priority_full(PRIORITIES[int(number) - 1]))
            case ("issuetype",):
                return Response.json([render.issue_type(t) for t in
                                      self.state.issue_types.values()])
            case ("issuetype", number):
                found = self.state.issue_type({"id": number})
                if found is None:
                    raise _refuse(404, f"Could not find issue type with id '{number}'.")
                return Response.json(render.issue_type(found))
            case ("status",):
                return Response.json([render.status(s.name) for s in _STATUSES])
            case ("statuscategory",):
                return Response.json([render.category(key) for key in _CATEGORIES])
            case ("project",):
                return self._only(request, "GET", lambda: Response.json(
                    [{"expand": "description,lead,url,projectKeys", **render.project_ref(p)}
                     for p in self.state.projects.values()]))
            case ("project", ref):
                return Response.json(render.project(self._project(ref)))
            case ("issue", "createmeta", ref, "issuetypes"):
                project = self._project(ref)
                types = [render.issue_type(self.state.issue_types[t])
                         for t in project.issue_types]
                start = max(0, _int_value(request.param("startAt"), "startAt", 0))
                limit = max(1, _int_value(request.param("maxResults"), "maxResults", 50))
                page = types[start:start + limit]
                return Response.json({"maxResults": limit, "startAt": start,
                                      "total": len(types),
                                      "isLast": start + limit >= len(types), "values": page})
            case ("user",):
                username = request.param("username") or request.param("key") or ""
                person = self.state.users.get(username) or next(
                    (u for u in self.state.users.values() if u.key == username), None)
                if person is None:
                    raise _refuse(404, f"The user named '{username}' does not exist")
                return Response.json(render.user(person.name))
            case ("resolution",):
                return self._only(request, "GET", lambda: Response.json(
                    [render.resolution(r.name) for r in _RESOLUTIONS]))
            case ("resolution", number):
                known = next((r for r in _RESOLUTIONS if r.id == number), None)
                if known is None:
                    raise _refuse(404, f"Could not find resolution with id '{number}'.")
                return Response.json(render.resolution(known.name))
            case ("user", "assignable", "search"):
                for_issue, for_project = request.param("issueKey"), request.param("project")
                if for_issue:
                    project = self.state.issue(for_issue).project
                elif for_project:
                    project = self._project(for_project)
                else:
                    raise _refuse(400, "The 'project' or the 'issueKey' parameter must be "
                                       "given.")
                start = max(0, _int_value(request.param("startAt"), "startAt", 0))
                limit = _int_value(request.param("maxResults"), "maxResults", 50)
                people = self.state.assignable_users(project, request.param("username") or "")
                return Response.json([render.user(u.name) for u in
                                      people[start:start + max(0, min(limit, 1000))]])
            case ("user", "search"):
                query = request.param("username")
                if not query:
                    raise _refuse(400, "The username query parameter was not provided")
                start = max(0, _int_value(request.param("startAt"), "startAt", 0))
                limit = _int_value(request.param("maxResults"), "maxResults", 50)
                people = self.state.search_users(query)[start:start + max(0, min(limit, 1000))]
                return Response.json([render.user(u.name) for u in people])
            case ("search",):
                if method not in ("GET", "POST"):
                    return Response(405)
                return self._search(request, render, name, now)
            case ("issue",):
                if method != "POST":
                    return Response(405)
                issue = self.state.create(self._json_body(request), name, now)
                return Response.json({"id": str(issue.id), "key": issue.key,
                                      "self": f"{render.api}issue/{issue.id}"}, 201)
            case ("issue", ref):
                issue = self.state.issue(ref)
                if method == "PUT":
                    self.state.edit(issue, self._json_body(request), now)
                    return Response(204)
                wanted = _wanted_fields(_text_param(request.query.get("fields")), "*all")
                return self._only(request, "GET",
                                  lambda: Response.json(render.issue(issue, wanted)))
            case ("issue", ref, "comment"):
                issue = self.state.issue(ref)
                if method == "POST":
                    created = self.state.comment(issue, self._json_body(request), name, now)
                    return Response.json(render.comment(issue, created), 201)
                start = max(0, _int_value(request.param("startAt"), "startAt", 0))
                max_results = request.param("maxResults")
                order = request.param("orderBy") or "created"
                return self._only(request, "GET", lambda: Response.json(render.comments_page(
                    issue, start,
                    None if max_results is None else _int_value(max_results, "maxResults", 50),
                    newest_first=order.startswith("-"))))
            case ("issue", ref, "comment", number):
                issue = self.state.issue(ref)
                comment = next((c for c in issue.comments if str(c.id) == number), None)
                if comment is None:
                    raise _refuse(404, f"Can not find a comment for the id: {number}.")
                return Response.json(render.comment(issue, comment))
            case ("issue", ref, "transitions"):
                issue = self.state.issue(ref)
                if method == "POST":
                    self.state.transition(issue, self._json_body(request), name, now)
                    return Response(204)
                wanted_id = request.param("transitionId")
                available = [t for t in _WORKFLOW[issue.status]
                             if wanted_id is None or t.id == wanted_id]
                expand = [e.strip() for e in (request.param("expand") or "").split(",")]
                with_fields = "transitions.fields" in expand
                return Response.json({"expand": "transitions",
                                      "transitions": [render.transition(t, with_fields)
                                                      for t in available]})
            case ("issue", ref, "assignee"):
                issue = self.state.issue(ref)
                if method != "PUT":
                    return Response(405)
                self.state.assign(issue, self._json_body(request), now)
                return Response(204)
        return self._no_resource(request, render)

    @staticmethod
    def _only(request: Request, method: str, answer: Callable[[], Response]) -> Response:
        if request.method != method:
            return Response(405)
        return answer()

    @staticmethod
    def _require_user(user: str | None) -> str:
        if user is None:
            raise _refuse(401, _NOT_AUTHENTICATED)
        return user

    def _project(self, ref: str) -> _Project:
        project = self.state.project(ref)
        if project is None:
            raise _refuse(404, f"No project could be found with key '{ref}'.")
        return project

    @staticmethod
    def _no_resource(request: Request, render: _Renderer) -> Response:
        """What Jira's REST layer (Jersey) answers for a path it has no resource for."""
        return Response.json({"message": f"null for uri: {render.base.rstrip('/')}"
                                         f"{request.target}", "status-code": 404}, 404)

    def _server_info(self, render: _Renderer) -> dict[str, Any]:
        version = self.state.seed.version
        numbers = [int(part) for part in re.findall(r"\d+", version)[:3]]
        return {"baseUrl": render.base.rstrip("/"), "version": version,
                "versionNumbers": numbers, "deploymentType": self.deployment,
                "buildNumber": int("".join(f"{n:03d}" for n in numbers) or 0),
                "buildDate": "2024-10-01T00:00:00.000+0000",
                "serverTime": _jira_time(self.state.clock()),
                "scmInfo": "simulated", "serverTitle": self.state.seed.title}

    def _search(self, request: Request, render: _Renderer, user: str, now: float) -> Response:
        params: dict[str, Any]
        if request.method == "POST":
            body = self._json_body(request)
            if not isinstance(body, dict):
                raise _refuse(400, "The search request body must be a JSON object.")
            params = body
        else:
            params = {name: (values if name == "fields" else values[0])
                      for name, values in request.query.items()}
        jql = str(params.get("jql") or "")
        start = max(0, _int_value(params.get("startAt"), "startAt", 0))
        limit = _int_value(params.get("maxResults"), "maxResults", 50)
        limit = _MAX_RESULTS if limit < 0 or limit > _MAX_RESULTS else limit
        validate = str(params.get("validateQuery", "true")).strip().lower()
        strict = validate not in ("false", "none", "warn")
        try:
            parser = _Jql(jql, self.state, user, now, strict)
            query = parser.parse()
        except _JqlError as exc:
            raise _refuse(400, str(exc)) from None
        matched = [i for i in self.state.issues.values() if query.where is None or query.where(i)]
        ordered = _sort(matched, query.order)
        wanted = _wanted_fields(_text_param(params.get("fields")), "*navigable")
        data: dict[str, Any] = {
            "expand": "schema,names", "startAt": start, "maxResults": limit,
            "total": len(ordered),
            "issues": [render.issue(i, wanted) for i in ordered[start:start + limit]],
        }
        if parser.warnings:
            data["warningMessages"] = parser.warnings
        return Response.json(data)


# ---------------------------------------------------------------------------------------
# The public face.


class JiraSimulator(SimulatorBase[RecordedRequest]):
    """A Jira Server HTTP server in a thread, seeded from YAML, with helpers for tests and demos.

    ``user`` / ``token`` are the one account that may sign in: ``token`` as a personal
    access token (Bearer) or as the password of ``user`` (Basic). ``basic_auth``,
    ``captcha_after`` and ``deployment`` as in the module's docstring. ``port=0`` picks a
    free port; read ``url`` after ``start()``. ``clock`` (epoch seconds) lets a test drive
    time itself.
    """

    def __init__(
        self,
        seed_path: str | Path | None = None,
        user: str = "opsbot",
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        basic_auth: bool = True,
        captcha_after: int | None = 3,
        deployment: str = "Server",
    ) -> None:
        check_account(user, token, user_kind="Jira user name", client="the jira library")
        if deployment not in ("Server", "Cloud"):
            raise ValueError(f"deployment is Server or Cloud, not {deployment!r}")
        self.seed_path = Path(seed_path) if seed_path is not None else DEFAULT_SEED
        self.user = user
        self.token = token
        seed = _SeedLoader(self.seed_path, clock(), user).load()
        self._state = _State(seed, clock)
        self._app = _App(self._state, user, token, lambda: self.url)
        self._app.basic_auth = basic_auth
        self._app.captcha_after = captcha_after
        self._app.deployment = deployment
        super().__init__(
            self._app, faults=self._state.faults, requests=self._state.log,
            host=host, port=port, name="jira-simulator", server_name="Apache-Coyote/1.1",
        )

    def solve_captcha(self) -> None:
        """The user signs in through the browser and solves the CAPTCHA."""
        with self._state.lock:
            self._app.failed_logins = 0

    def __repr__(self) -> str:
        return f"JiraSimulator({self._location()}, user={self.user!r}, token='**********')"

    # -- lifecycle (url, port, start, stop, with: SimulatorBase) -------------------

    @property
    def version(self) -> str:
        """The Jira version ``serverInfo`` reports."""
        return self._state.seed.version

    def describe(self) -> str:
        """One line for the demo banner (the token is the simulator's own, not a secret)."""
        return f"Jira {self.version} at {self.url} (user {self.user}, token {self.token})"

    def env(self) -> dict[str, str]:
        """JIRA_URL, JIRA_USER, JIRA_TOKEN (a personal access token) and JIRA_AUTH for
        opsbot's action server."""
        return {"JIRA_URL": self.url, "JIRA_USER": self.user, "JIRA_TOKEN": self.token,
                "JIRA_AUTH": "bearer"}

    # -- inspection (and request_log: SimulatorBase) -------------------------------

    def projects(self) -> list[str]:
        """The project keys, in seed order."""
        with self._state.lock:
            return list(self._state.projects)

    def issues(self, project: str | None = None) -> list[IssueSnapshot]:
        """Every issue (of ``project``, a key), oldest first."""
        with self._state.lock:
            if project is not None and project.upper() not in self._state.projects:
                raise KeyError(f"no project {project!r}; known: "
                               f"{', '.join(self._state.projects)}")
            return [self._state.snapshot(i) for i in self._state.issues.values()
                    if project is None or i.project.key == project.upper()]

    def issue(self, key: str) -> IssueSnapshot:
        """One issue by key; KeyError (with suggestions) if there is none."""
        with self._state.lock:
            found = self._state.issues.get(key.upper())
            if found is None:
                close = difflib.get_close_matches(key.upper(), self._state.issues, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise KeyError(f"no issue {key!r}{hint}")
            return self._state.snapshot(found)

    # -- steering (and fail_next: SimulatorBase) -----------------------------------

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Hold the next ``times`` matching requests for ``seconds`` (to test client timeouts)."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        super().delay_next(seconds, times=times, path=path)


# ---------------------------------------------------------------------------------------
# python -m simulators.jira


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.jira",
        description="A local Jira Server for opsbot: the jira library talks to it like to the "
                    "real one.",
    )
    add_address_arguments(parser, 8081)
    parser.add_argument("--seed", type=Path, default=DEFAULT_SEED,
                        help="projects, issues and users (YAML)")
    parser.add_argument("--user", default="opsbot", help="the one user that may sign in")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="that user's API token / password")
    args = parser.parse_args(argv)

    def banner(simulator: JiraSimulator) -> list[str]:
        counts = ", ".join(f"{key} ({len(simulator.issues(key))} issues)"
                           for key in simulator.projects())
        return [f"Jira simulator (Jira {simulator.version}) at {simulator.url}",
                f"  user:  {simulator.user}",
                f"  token: {simulator.token}",
                f"  projects: {counts} from {simulator.seed_path}"]

    return run_main(lambda: JiraSimulator(args.seed, args.user, args.token, args.host, args.port),
                    banner, seed_error=SeedError, cannot=f"listen on {args.host}:{args.port}")


if __name__ == "__main__":
    raise SystemExit(main())
