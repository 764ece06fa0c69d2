"""``build_jql``: searches as JQL, every value a quoted string literal, so text typed in
a chat can never change a query's structure."""

from __future__ import annotations

from actions.backends._jira._model import (
    _BACKEND,
    _PRIORITY_NAME,
    _PROJECT_KEY,
    CURRENT_USER,
    UNASSIGNED,
)
from actions.errors import (
    InvalidRequest,
)


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
