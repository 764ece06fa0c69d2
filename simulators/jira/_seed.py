"""The Jira simulator's seed: the YAML of users, issue types, projects, issues and comments.

Why apart: checking a hand-written file, with an error that names the place and the
fix, is its own job; the result is a ``_Seed`` the state starts from.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators._seed import SeedError, check_keys, mapping, parse_span, read_seed, sequence
from simulators.jira._model import (
    _ISSUE_KEYS,
    _STATUS_BY_NAME,
    PRIORITIES,
    RESOLUTIONS,
    STATUSES,
    _Comment,
    _Issue,
    _IssueType,
    _Project,
    _User,
)


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
