"""What the Jira backend returns (issues, comments, users, transitions, searches) and
the facts of Jira's API it is built on."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final, TypeVar

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
