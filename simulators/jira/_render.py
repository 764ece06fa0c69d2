"""The Jira simulator's JSON, as Jira renders it: issues with ``fields`` and ``expand``,
projects, users, fields, transitions.

Why apart: the shapes the ``jira`` library reads are many; the state stays free of them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from simulators.jira._model import (
    _CATEGORIES,
    _FIELD_NAMES,
    _ISSUE_EXPAND,
    _PRIORITY_COLORS,
    _PRIORITY_DESCRIPTIONS,
    _RESOLUTIONS,
    _STATUS_BY_NAME,
    PRIORITIES,
    _Comment,
    _Issue,
    _IssueType,
    _Project,
    _Transition,
)
from simulators.jira._state import _State


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
