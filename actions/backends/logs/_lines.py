"""Reading one log line, text or JSON, as both sources meet them (Loki lines may be
either too): its time, level, environment and message."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from actions.backends.logs._model import _EPOCH, _LEVEL_ALIASES, normalise_level

# -- reading log lines (both file formats; Loki lines may be either too) ---------------------

_TEXT_LINE = re.compile(
    r"(?P<ts>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|z|[+-]\d{2}:?\d{2})?)"
    r"\s+\[?(?P<level>[A-Za-z]+)\]?\s+"
    r"(?:\[(?P<env>[^\]\s]+)\]\s+)?"
    r"(?:(?P<logger>[\w$-]+(?:\.[\w$-]+)+):\s)?"
    r"(?P<msg>.*)")
_ISO_OFFSET = re.compile(r"([+-]\d{2})(\d{2})$")
_JSON_TIME_KEYS = ("ts", "timestamp", "time", "@timestamp", "t", "datetime")
_JSON_LEVEL_KEYS = ("level", "lvl", "severity", "levelname", "log.level", "loglevel")
_JSON_MESSAGE_KEYS = ("msg", "message", "@message", "log", "text")
_JSON_ENV_KEYS = ("env", "environment", "deployment.environment", "stage")


@dataclass(frozen=True)
class _Entry:
    at: datetime
    level: str
    environment: str | None
    message: str


def _parse_timestamp(value: object) -> datetime | None:
    """ISO 8601 / RFC 3339 text or an epoch number (s, ms, us or ns) -> aware UTC."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
        for scale in (1, 1e3, 1e6, 1e9):  # pick the unit that gives a plausible year
            if abs(number / scale) < 1e11:
                try:
                    return _EPOCH + timedelta(microseconds=round(number / scale * 1e6))
                except OverflowError:
                    return None
        return None
    if not isinstance(value, str):
        return None
    text = value.strip().replace(",", ".")
    text = _ISO_OFFSET.sub(r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:  # a wall-clock time in the server's zone
        moment = moment.astimezone()
    return moment.astimezone(UTC)


def _parse_line(text: str) -> _Entry | None:
    """One log line in either format, or None if it is neither."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            data = json.loads(stripped)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        at = next((_parse_timestamp(data[k]) for k in _JSON_TIME_KEYS if k in data), None)
        raw_level = next((data[k] for k in _JSON_LEVEL_KEYS if isinstance(data.get(k), str)),
                         None)
        message = next((data[k] for k in _JSON_MESSAGE_KEYS if isinstance(data.get(k), str)),
                       None)
        if at is None or raw_level is None or message is None:
            return None
        environment = next((data[k] for k in _JSON_ENV_KEYS if isinstance(data.get(k), str)),
                           None)
        return _Entry(at, normalise_level(raw_level),
                      environment.strip().lower() or None if environment else None, message)
    match = _TEXT_LINE.fullmatch(stripped)
    if match is None or match.group("level").lower() not in _LEVEL_ALIASES:
        return None
    at = _parse_timestamp(match.group("ts"))
    if at is None:
        return None
    environment = match.group("env")
    return _Entry(at, normalise_level(match.group("level")),
                  environment.lower() if environment else None, match.group("msg"))


def _message_of(line: str) -> str:
    """The message in a line Loki stored: the line itself, or the message of a log line.

    Loki keeps whatever the shipper sent: often the message alone (as the simulator
    does), sometimes the whole JSON or text line; the time and labels come from Loki.
    """
    if line.startswith("{"):
        try:
            data = json.loads(line)
        except ValueError:
            return line
        if isinstance(data, dict):
            return next((data[k] for k in _JSON_MESSAGE_KEYS if isinstance(data.get(k), str)),
                        line)
        return line
    entry = _parse_line(line) if line[:1].isdigit() else None
    return entry.message if entry is not None else line
