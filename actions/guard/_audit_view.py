"""Audit records as a table or JSON for ``opsbot audit``, and its ``--since`` argument."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tabulate import tabulate

from actions.guard.store import AuditRecord

__all__ = ["format_json", "format_table", "parse_since"]

_HEADERS = ("when", "operation", "intent", "requester", "parameters", "confirmed by",
            "approved by", "state/result")
_MAX_CELL = 48
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "min": "minutes", "h": "hours", "d": "days",
          "w": "weeks"}


def format_table(records: Sequence[AuditRecord]) -> str:
    """One row per operation, newest first as given; times in the local time zone."""
    if not records:
        return "No operations in the audit log match."
    rows = []
    for record in records:
        op = record.operation
        state = op.state if not op.result else f"{op.state} ({op.result})"
        rows.append((
            op.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
            op.id,
            op.intent,
            op.requester,
            _clip(" ".join(f"{k}={v}" for k, v in op.parameters.items()) or "-"),
            op.confirmed_by or "-",
            op.approved_by or "-",
            _clip(state),
        ))
    return tabulate(rows, headers=_HEADERS, tablefmt="simple", disable_numparse=True)


def format_json(records: Sequence[AuditRecord]) -> str:
    """A JSON list of the records' ``as_dict()``, indented."""
    return json.dumps([r.as_dict() for r in records], indent=2, ensure_ascii=False)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An aware UTC time from "30m", "2h", "7d" (ago) or an ISO date or date-time.

    A date or time without a zone is local time, as a person at the terminal means it.
    """
    value = text.strip()
    match = _DURATION.match(value)
    if match:
        now = now or datetime.now(UTC)
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        unit = _UNITS[match.group(2).lower()]
        return (now - timedelta(**{unit: int(match.group(1))})).astimezone(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: write a duration such as 30m, 2h or 7d, or an ISO "
            "date or date-time such as 2024-05-01 or 2024-05-01T14:30."
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time
    return moment.astimezone(UTC)


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"
