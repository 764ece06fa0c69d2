"""Reading Jira's JSON into the backend's types."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import jira

from actions.backends._jira._model import (
    _BACKEND,
    _ISSUE_KEY,
    Comment,
    Issue,
    Transition,
    TransitionField,
)
from actions.errors import (
    InvalidRequest,
)


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
