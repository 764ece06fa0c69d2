"""The Jira simulator's state and its rules: lookups, creating, editing, assigning and
transitioning issues, comments, as Jira validates them.

Why apart: everything that changes, under one lock; the HTTP face only calls it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from simulators._base import Faults, RequestLog
from simulators.jira._model import (
    _BAD_SCREEN,
    _CANNOT_BE_ASSIGNED,
    _FIELD_NAMES,
    _NOT_FOUND_ISSUE,
    _RESOLUTIONS,
    _STATUS_BY_NAME,
    _TRANSITION_NAMES,
    _WORKFLOW,
    PRIORITIES,
    STATUSES,
    CommentSnapshot,
    IssueSnapshot,
    RecordedRequest,
    _Comment,
    _Issue,
    _IssueType,
    _Project,
    _refuse,
    _User,
)
from simulators.jira._seed import _Seed


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
