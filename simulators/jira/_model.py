"""The Jira simulator's model: statuses and their workflow, resolutions, priorities, users,
projects, issues and comments; the snapshots tests read; Jira's error body.

Why apart: the seed, the state, JQL, the renderer and the HTTP face all speak of these;
they are mutated only under ``_State.lock``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from simulators._http import Response

DEFAULT_SEED = Path(__file__).resolve().parent.parent / "data" / "jira.yml"
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
