"""What a log query is and what every log source returns, with the helpers both
sources share (levels, ordering, "did you mean" for an unknown service)."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

from actions.errors import (
    ConfigError,
    NotFound,
)

LEVELS = ("fatal", "error", "warning", "info", "debug")
"""The canonical levels, most severe first."""

_FILES = "logs"  # the ``backend`` of every error from FileLogSource
_LOKI = "Loki"  # ... and from LokiLogSource
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LEVEL_ALIASES = {
    "fatal": "fatal", "critical": "fatal", "crit": "fatal", "panic": "fatal",
    "emerg": "fatal", "emergency": "fatal", "alert": "fatal", "severe": "fatal",
    "error": "error", "err": "error", "errors": "error", "exception": "error",
    "exceptions": "error",
    "warning": "warning", "warn": "warning", "warnings": "warning",
    "info": "info", "information": "info", "informational": "info", "notice": "info",
    "debug": "debug", "trace": "debug", "fine": "debug", "finer": "debug",
    "finest": "debug", "verbose": "debug",
}
_AT_LEAST = {"error": ("error", "fatal"), "warning": ("warning", "error", "fatal")}
_ENVIRONMENT_ALIASES = {"production": "prod", "live": "prod", "stage": "staging",
                        "development": "dev"}


def normalise_level(raw: str | None) -> str:
    """A level as written by some logger (``WARN``, ``err``, ``CRITICAL``) -> canonical.

    Unknown names come back lower-cased; a missing level is ``"unknown"``.
    """
    if raw is None or not str(raw).strip():
        return "unknown"
    text = str(raw).strip().lower()
    return _LEVEL_ALIASES.get(text, text)


def levels_for(level: str | None) -> frozenset[str] | None:
    """The levels a request for ``level`` matches (None: every level).

    error -> error and fatal; warning -> warning, error and fatal; others exactly.
    """
    if level is None:
        return None
    canonical = normalise_level(level)
    return frozenset(_AT_LEAST.get(canonical, (canonical,)))


def _severity(level: str) -> int:
    return LEVELS.index(level) if level in LEVELS else len(LEVELS)


# -- what a query is and what it returns ----------------------------------------------------


@dataclass(frozen=True)
class LogQuery:
    """What to search for: every field but the window is optional.

    Values are normalised on construction (service and environment lower-cased, the
    level made canonical, empty strings to None, times to UTC and cut to whole
    milliseconds, the precision of log files and of Loki's range durations, so every
    source sees the same window); ValueError says what is wrong with a malformed one.
    """

    service: str | None
    environment: str | None
    level: str | None
    text: str | None
    start: datetime
    end: datetime
    limit: int = 20

    def __post_init__(self) -> None:
        def clean(value: str | None) -> str | None:
            text = value.strip() if isinstance(value, str) else value
            return text or None

        service = clean(self.service)
        environment = clean(self.environment)
        environment = environment.lower() if environment else None
        level = clean(self.level)
        if level is not None:
            level = normalise_level(level)
            if level not in LEVELS:
                raise ValueError(f"unknown log level {self.level!r}; use one of "
                                 f"{', '.join(reversed(LEVELS))}")
        for name in ("start", "end"):
            moment = getattr(self, name)
            if not isinstance(moment, datetime) or moment.tzinfo is None:
                raise ValueError(f"LogQuery.{name} must be a timezone-aware datetime, "
                                 f"got {moment!r}")
            moment = moment.astimezone(UTC)  # whole milliseconds: see the class docstring
            object.__setattr__(self, name, moment.replace(microsecond=moment.microsecond
                                                          // 1000 * 1000))
        if self.start >= self.end:
            raise ValueError(f"LogQuery.start ({self.start.isoformat()}) must be before end "
                             f"({self.end.isoformat()})")
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ValueError(f"LogQuery.limit must be a whole number >= 1, got {self.limit!r}")
        object.__setattr__(self, "service", service.lower() if service else None)
        object.__setattr__(self, "environment",
                           _ENVIRONMENT_ALIASES.get(environment, environment)
                           if environment else None)
        object.__setattr__(self, "level", level)
        object.__setattr__(self, "text", clean(self.text))


@dataclass(frozen=True)
class LogLine:
    """One matching log line."""

    at: datetime  # aware, UTC
    service: str
    environment: str | None
    level: str  # canonical (see LEVELS), or the lower-cased unknown name
    message: str


@dataclass(frozen=True)
class LogResult:
    """The answer to a LogQuery: the newest lines and the counts over every match."""

    lines: tuple[LogLine, ...]  # newest first, at most limit
    counts: dict[str, int]  # matches per level over ALL matches, most severe first
    total: int  # sum of counts
    source: str  # "files:/path" or "Loki at http://..."
    skipped: int = 0  # lines in the window's files that could not be parsed (files only)


@runtime_checkable
class LogSource(Protocol):
    """Where opsbot's log answers come from (files, Loki; a new store implements this)."""

    name: str  # the ``backend`` of its errors: "logs" or "Loki"

    async def query(self, q: LogQuery) -> LogResult:
        """The lines and counts matching ``q``; NotFound for a service it has no logs of."""

    async def services(self, until: datetime | None = None) -> list[str]:
        """The services this source has logs for, sorted (a store that forgets: those with
        logs in the weeks before ``until``, default now)."""

    async def ping(self) -> str:
        """Where the logs are and how many services they cover; BackendError if unreadable."""


def _order_key(line: LogLine) -> tuple[int, str, str, str, str]:
    """Newest first, then a fixed order so both sources agree on ties."""
    micros = (line.at - _EPOCH) // timedelta(microseconds=1)
    return (-micros, line.service, line.environment or "", line.level, line.message)


def _ordered_counts(counter: Mapping[str, int]) -> dict[str, int]:
    return {level: counter[level]
            for level in sorted(counter, key=lambda name: (_severity(name), name))
            if counter[level]}


def _text_pattern(text: str | None) -> re.Pattern[str] | None:
    return re.compile(re.escape(text), re.IGNORECASE) if text else None


def _did_you_mean(service: str, known: list[str]) -> str:
    close = difflib.get_close_matches(service, known, n=3, cutoff=0.6)
    if close:
        return f" Did you mean {' or '.join(close)}?"
    if known:
        return f" I know {', '.join(known)}."
    return ""


async def _check_service(source: LogSource, q: LogQuery, backend: str) -> None:
    """After an empty answer: NotFound if the service is unknown (with suggestions)."""
    if q.service is None:
        return
    # Seen around the time asked about, not around today: a question about last month's
    # logs (or a test's fixed clock) must not make a service unknown.
    known = await source.services(until=q.end)
    if q.service not in known:
        raise NotFound(f"I have no logs for a service called '{q.service}'."
                       f"{_did_you_mean(q.service, known)}", backend=backend)


def _positive_timeout(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{what} must be a number of seconds above 0, got {value!r}")
    return float(value)


def _covering(source: str, services: list[str]) -> str:
    return f"{source}, with logs of {len(services)} service{'' if len(services) == 1 else 's'}"
