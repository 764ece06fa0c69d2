"""Column types every concern's tables use, and the UTC times they hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

__all__ = ["JSONText", "UTCDateTime", "aware", "json_default", "utcnow"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None, name: str = "now") -> datetime:
    """``value`` (or now) in UTC; a naive datetime is refused rather than guessed."""
    if value is None:
        return utcnow()
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def json_default(value: Any) -> Any:
    """How the stored JSON writes what ``json`` cannot: times in ISO 8601, sets as lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


class UTCDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes stored as naive UTC, so SQLite and PostgreSQL compare alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return aware(value, "datetime").replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite, read through a raw text column
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


class JSONText(sa.types.TypeDecorator):
    """JSON kept as text: portable, and keeps the order of keys (parameters as previewed)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, default=json_default)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(value)
