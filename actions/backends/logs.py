"""opsbot's log sources: one interface over local log files and Grafana Loki.

"errors from payments in the last hour" becomes a :class:`LogQuery` (service,
environment, level, free text, a time window) that any :class:`LogSource` answers
with the same :class:`LogResult`: the newest matching lines, and how many lines of
each level matched in all. Two sources exist:

* :class:`FileLogSource` reads a directory of log files, one per service
  (``payments.log``, ``checkout.jsonl``, rotated ``payments.log.1``), in two formats:
  text lines (``2026-11-22T01:02:03.123Z ERROR [prod] payments.api: message``) and
  JSON lines (``{"ts": ..., "level": ..., "env": ..., "msg": ...}``). Big files are
  not read whole: a binary search finds where the window starts.
* :class:`LokiLogSource` asks Loki's HTTP API: one metric query for the counts, then
  the newest lines page by page. Every value from a person (service, environment,
  text) goes into the LogQL as an escaped string literal, so it can never change the
  query's structure.

Semantics both sources share (tests hold them to it):

* the window is ``start <= at < end`` (Loki's own rule);
* ``level="error"`` means error and fatal, ``"warning"`` means warning, error and
  fatal (what someone asking for warnings wants to see); ``info``, ``debug`` and
  ``fatal`` are exact. Levels are normalised (``warn`` -> ``warning``, ``err`` ->
  ``error``, ``critical`` -> ``fatal``, ...);
* ``text`` matches case-insensitively, anywhere in the message;
* lines come newest first (ties broken by service, environment, level, message).

:func:`log_source_from_env` picks the source at start-up; :func:`parse_time_range`
turns the NLU's ``time_range`` text ("since 9am", "between 9 and 10 this morning")
into the window. Errors are :mod:`actions.errors`, with messages fit for the chat.
"""

from __future__ import annotations

import difflib
import heapq
import json
import logging
import math
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypedDict, TypeVar, runtime_checkable
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import dateparser
import requests

from actions.backends._common import connection_message, masked, run_in_thread, timeout_from_env
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    NotFound,
    Secret,
)

__all__ = [
    "LEVELS",
    "FileLogSource",
    "LogLine",
    "LogQuery",
    "LogResult",
    "LogSource",
    "LokiLogSource",
    "levels_for",
    "log_source_from_env",
    "logql_string",
    "normalise_level",
    "parse_time_range",
    "re2_quote",
]

logger = logging.getLogger(__name__)

LEVELS = ("fatal", "error", "warning", "info", "debug")
"""The canonical levels, most severe first."""

_T = TypeVar("_T")
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


# -- local files ----------------------------------------------------------------------------

_LOG_NAME = re.compile(r"^(?P<service>[^.]+)\.(?:log(?:\.\d+)?|jsonl|ndjson|json)$",
                       re.IGNORECASE)
_SEEK_THRESHOLD = 1 << 20  # files above this size are searched, not read from the top
_BISECT_STOP = 64 << 10  # stop bisecting when the span is this small
_DISORDER = timedelta(minutes=5)  # how far out of time order lines may be in a big file
_PROBE_LINES = 64  # lines to try when looking for a timestamp after a seek


class _Overtime(Exception):
    """The scan ran past its deadline."""


@dataclass
class _Scan:
    """The running totals of one search over the files."""

    counts: Counter[str] = field(default_factory=Counter)
    skipped: int = 0


class FileLogSource:
    """Log files in one directory, one service per file (the name before the first dot).

    ``payments.log``, ``payments.log.1`` and ``checkout.jsonl`` hold the logs of
    payments and checkout. Text and JSON lines may be mixed; lines that are neither are
    skipped and counted (``LogResult.skipped``). Files are expected in time order, as
    loggers append them; in files over 1 MiB a binary search skips to the window and
    reading stops after it, tolerating lines up to five minutes out of order.
    """

    name = _FILES

    def __init__(self, directory: Path, timeout: float = 10.0) -> None:
        directory = Path(directory).expanduser()
        if not directory.is_dir():
            what = "is not a directory" if directory.exists() else "does not exist"
            raise ConfigError(f"The log directory {directory} {what}; point OPSBOT_LOG_DIR at "
                              "the directory holding the services' log files.")
        self.directory = directory
        self.timeout = _positive_timeout(timeout, "FileLogSource.timeout")

    def __repr__(self) -> str:
        return f"FileLogSource({str(self.directory)!r})"

    @property
    def source(self) -> str:
        """``files:/path``, as LogResult.source reports it."""
        return f"files:{self.directory}"

    async def query(self, q: LogQuery) -> LogResult:
        """Search the files for ``q``; see the module docstring for the semantics."""
        result = await self._run(partial(self._search, q, time.monotonic() + self.timeout))
        if result.total == 0:
            await _check_service(self, q, _FILES)
        return result

    async def services(self, until: datetime | None = None) -> list[str]:
        """The services with a log file in the directory, sorted (files are not forgotten,
        so ``until`` changes nothing)."""
        files = await self._run(self._files)
        return sorted({service for service, _ in files})

    # -- the work, in a thread ----------------------------------------------------------

    async def _run(self, call: Callable[[], _T]) -> _T:
        try:
            return await run_in_thread(call, self.timeout, timed_out=self._timed_out,
                                       also=(_Overtime,), backend="logs")
        except OSError as exc:
            where = exc.filename or self.directory
            raise BackendUnavailable(
                f"I can't read the log files: {where}: {exc.strerror or exc}. Check that "
                "OPSBOT_LOG_DIR is right and that the action server may read it.",
                backend=_FILES) from exc

    def _timed_out(self) -> BackendError:
        return BackendUnavailable(
            f"Searching the log files in {self.directory} took longer than {self.timeout:g}s; "
            "ask about a shorter time range or one service. (LOGS_TIMEOUT sets the limit.)",
            backend=_FILES)

    def _files(self, service: str | None = None) -> list[tuple[str, Path]]:
        found: list[tuple[str, Path]] = []
        for path in sorted(self.directory.iterdir()):
            match = _LOG_NAME.match(path.name)
            if match is None or path.name.startswith(".") or not path.is_file():
                continue
            name = match.group("service").lower()
            if service is None or name == service:
                found.append((name, path))
        return found

    def _search(self, q: LogQuery, deadline: float) -> LogResult:
        scan = _Scan()
        matches = self._matches(q, scan, deadline)
        lines = heapq.nsmallest(q.limit, matches, key=_order_key)  # memory: O(limit)
        if scan.skipped:
            logger.warning("skipped %d unparsable line(s) in %s", scan.skipped, self.directory)
        counts = _ordered_counts(scan.counts)
        return LogResult(tuple(lines), counts, sum(counts.values()), self.source, scan.skipped)

    def _matches(self, q: LogQuery, scan: _Scan, deadline: float) -> Iterator[LogLine]:
        levels = levels_for(q.level)
        pattern = _text_pattern(q.text)
        for service, path in self._files(q.service):
            for entry in self._entries(path, q.start, q.end, scan, deadline):
                if not q.start <= entry.at < q.end:
                    continue
                if q.environment is not None and entry.environment != q.environment:
                    continue
                if levels is not None and entry.level not in levels:
                    continue
                if pattern is not None and not pattern.search(entry.message):
                    continue
                scan.counts[entry.level] += 1
                yield LogLine(entry.at, service, entry.environment, entry.level, entry.message)

    def _entries(self, path: Path, start: datetime, end: datetime, scan: _Scan,
                 deadline: float) -> Iterator[_Entry]:
        try:
            opened = path.open("rb")
        except FileNotFoundError:
            return  # rotated away between listing and opening
        with opened as handle:
            size = os.fstat(handle.fileno()).st_size
            big = size > _SEEK_THRESHOLD
            offset = _window_offset(handle, size, start - _DISORDER, deadline) if big else 0
            handle.seek(offset)
            if offset:
                handle.readline()  # the rest of a line that starts before the window
            stop = end + _DISORDER
            for number, raw in enumerate(handle):
                if number % 2048 == 0 and time.monotonic() > deadline:
                    raise _Overtime
                text = raw.decode("utf-8", "replace")
                if not text.strip():
                    continue
                entry = _parse_line(text)
                if entry is None:
                    scan.skipped += 1
                    continue
                if big and entry.at >= stop:
                    return
                yield entry


def _first_time_after(handle: IO[bytes], offset: int, limit: int) -> datetime | None:
    """The timestamp of the first parsable whole line after ``offset`` (before ``limit``)."""
    handle.seek(offset)
    handle.readline()
    for _ in range(_PROBE_LINES):
        if handle.tell() >= limit:
            return None
        raw = handle.readline()
        if not raw:
            return None
        entry = _parse_line(raw.decode("utf-8", "replace"))
        if entry is not None:
            return entry.at
    return None


def _window_offset(handle: IO[bytes], size: int, target: datetime, deadline: float) -> int:
    """A byte offset whose following lines are all older than ``target``, as late as cheap.

    Binary search over byte offsets: the line after the returned offset is older than
    ``target`` (or the offset is 0), so reading from there misses nothing in the window.
    """
    low, high = 0, size
    while high - low > _BISECT_STOP:
        if time.monotonic() > deadline:
            raise _Overtime
        middle = (low + high) // 2
        found = _first_time_after(handle, middle, high)
        if found is None or found >= target:
            high = middle
        else:
            low = middle
    return low


# -- Loki -----------------------------------------------------------------------------------

_PAGE_SIZE = 5000  # Loki's default max_entries_limit_per_query
_SERVICES_LOOKBACK = timedelta(days=30)


def logql_string(value: str) -> str:
    """``value`` as a LogQL (Go) double-quoted string literal: nothing in it is syntax."""
    out = ['"']
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def re2_quote(text: str) -> str:
    """``text`` as an RE2 regex matching itself (Go's regexp.QuoteMeta)."""
    return "".join("\\" + char if char in _RE2_SPECIAL else char for char in text)


def _level_regex(levels: frozenset[str]) -> str:
    """An anchored-by-Loki regex for every spelling of ``levels`` (ERROR, err, crit, ...)."""
    spellings = sorted(alias for alias, level in _LEVEL_ALIASES.items() if level in levels)
    return "(?i)(?:" + "|".join(spellings) + ")"


def _ns(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def _url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return f"is not a valid URL: {_without_credentials(url)!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ("must be Loki's http(s) address, like http://loki:3100; "
                f"got {_without_credentials(url)!r}")
    if parts.query or parts.fragment:
        return ("must be Loki's base address, without ?query or #fragment; "
                f"got {_without_credentials(url)!r}")
    return None


def _without_credentials(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "<malformed URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class LokiLogSource:
    """Grafana Loki over its HTTP API (``/loki/api/v1/query`` and ``query_range``).

    Streams are expected to carry ``service``, ``env`` and ``level`` labels (names
    configurable); the level label may use any common spelling (``warn``, ``ERROR``).
    Credentials in the URL (``https://user:token@logs.example.com``, as Grafana Cloud
    wants) are sent as HTTP Basic auth and never shown; ``tenant`` is sent as
    ``X-Scope-OrgID`` for a multi-tenant Loki.
    """

    name = _LOKI

    def __init__(self, url: str, timeout: float = 10.0, tenant: str | None = None, *,
                 service_label: str = "service", env_label: str = "env",
                 level_label: str = "level", page_size: int = _PAGE_SIZE) -> None:
        problem = _url_problem(url)
        if problem:
            raise ConfigError(f"The Loki URL {problem}")
        parts = urlsplit(url)
        self._auth: tuple[str, Secret] | None = None
        if parts.username is not None or parts.password is not None:
            self._auth = (unquote(parts.username or ""), Secret(unquote(parts.password or "")))
        self.url = _without_credentials(url).rstrip("/")
        self.timeout = _positive_timeout(timeout, "LokiLogSource.timeout")
        self.tenant = tenant.strip() if tenant and tenant.strip() else None
        for label in (service_label, env_label, level_label):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label):
                raise ConfigError(f"{label!r} is not a valid Loki label name")
        if page_size < 1:
            raise ConfigError(f"LokiLogSource.page_size must be at least 1, got {page_size}")
        self.service_label, self.env_label, self.level_label = (service_label, env_label,
                                                                level_label)
        self.page_size = page_size
        self._local = threading.local()  # one requests.Session per worker thread

    def __repr__(self) -> str:
        tenant = f", tenant={self.tenant!r}" if self.tenant else ""
        return f"LokiLogSource({self.url!r}{tenant})"

    @property
    def source(self) -> str:
        """``Loki at http://...``, as LogResult.source reports it (no credentials)."""
        return f"Loki at {self.url}"

    def logql(self, q: LogQuery) -> str:
        """The LogQL log query for ``q``: user values only ever inside string literals."""
        matchers: list[str] = []
        if q.service is not None:
            matchers.append(f"{self.service_label}={logql_string(q.service)}")
        if q.environment is not None:
            matchers.append(f"{self.env_label}={logql_string(q.environment)}")
        levels = levels_for(q.level)
        if levels is not None:
            matchers.append(f"{self.level_label}=~{logql_string(_level_regex(levels))}")
        if not matchers:  # Loki needs one matcher that cannot match the empty string
            matchers.append(f'{self.service_label}=~".+"')
        query = "{" + ", ".join(matchers) + "}"
        if q.text is not None:
            query += f" |~ {logql_string('(?i)' + re2_quote(q.text))}"
        return query

    async def query(self, q: LogQuery) -> LogResult:
        """Counts from one metric query, then the newest ``limit`` lines, paged."""
        logql = self.logql(q)
        start_ns, end_ns = _ns(q.start), _ns(q.end)
        # count_over_time counts (time - range, time]; with time = end - 1ns and a whole
        # number of milliseconds as range, that is [start, end) like query_range.
        range_ms = max(1, -(-(end_ns - start_ns) // 1_000_000))
        metric = (f"sum by ({self.level_label}) "
                  f"(count_over_time({logql} [{range_ms}ms]))")
        data = await self._get("query", {"query": metric, "time": str(end_ns - 1)},
                               doing="count the matching log lines")
        counter: Counter[str] = Counter()
        with _unreadable(self.url):
            for item in _result(data, "vector", self.url):
                labels = item.get("metric") or {}
                counter[normalise_level(labels.get(self.level_label))] += int(
                    float(item["value"][1]))
        counts = _ordered_counts(counter)
        total = sum(counts.values())
        lines: list[LogLine] = []
        if total:
            lines = await self._newest(logql, q, start_ns, end_ns, min(q.limit, total))
        else:
            await _check_service(self, q, _LOKI)
        return LogResult(tuple(lines), counts, total, self.source)

    async def services(self, until: datetime | None = None) -> list[str]:
        """The values of the service label over the 30 days before ``until`` (default
        now), sorted."""
        now = until or datetime.now(UTC)
        path = f"label/{quote(self.service_label, safe='')}/values"
        data = await self._get(path, {"start": str(_ns(now - _SERVICES_LOOKBACK)),
                                      "end": str(_ns(now))}, doing="list the services")
        # Loki leaves "data" out when the label has no values (json:"data,omitempty").
        values = data.get("data", []) if isinstance(data, dict) else None
        if not isinstance(values, list):
            raise BackendUnavailable(f"Loki at {self.url} sent label values opsbot could not "
                                     "read.", backend=_LOKI)
        return sorted(str(value) for value in values)

    async def _newest(self, logql: str, q: LogQuery, start_ns: int, end_ns: int,
                      target: int) -> list[LogLine]:
        """Page backward from ``end`` until ``target`` lines or the window is exhausted.

        Each next page ends just after the oldest line seen (Loki's end is exclusive), so
        lines sharing that nanosecond are fetched again and dropped as duplicates.
        """
        lines: list[LogLine] = []
        cursor = end_ns
        boundary: set[tuple[int, tuple[tuple[str, str], ...], str]] = set()
        while len(lines) < target:
            want = min(self.page_size, target - len(lines) + len(boundary))
            data = await self._get("query_range", {
                "query": logql, "start": str(start_ns), "end": str(cursor),
                "limit": str(want), "direction": "backward"}, doing="search the logs")
            entries: list[tuple[int, tuple[tuple[str, str], ...], str]] = []
            with _unreadable(self.url):
                for stream in _result(data, "streams", self.url):
                    labels = tuple(sorted((str(k), str(v))
                                          for k, v in (stream.get("stream") or {}).items()))
                    for value in stream.get("values") or ():  # [ns, line(, metadata)]
                        entries.append((int(value[0]), labels, str(value[1])))
            entries.sort(key=lambda entry: entry[0], reverse=True)
            fresh = [entry for entry in entries if entry not in boundary]
            lines.extend(self._line(entry, q) for entry in fresh)
            if len(entries) < want or not fresh:
                break  # the window holds no more
            oldest = entries[-1][0]
            boundary = {entry for entry in entries if entry[0] == oldest}
            cursor = oldest + 1
        lines.sort(key=_order_key)
        return lines[:q.limit]

    def _line(self, entry: tuple[int, tuple[tuple[str, str], ...], str],
              q: LogQuery) -> LogLine:
        ns, labels, line = entry
        stream = dict(labels)
        environment = stream.get(self.env_label)
        return LogLine(_from_ns(ns), stream.get(self.service_label) or q.service or "unknown",
                       environment.lower() if environment else None,
                       normalise_level(stream.get(self.level_label)), _message_of(line))

    # -- HTTP ------------------------------------------------------------------------

    async def _get(self, path: str, params: dict[str, str], *, doing: str) -> Any:
        url = f"{self.url}/loki/api/v1/{path}"
        headers = {"Accept": "application/json"}
        if self.tenant:
            headers["X-Scope-OrgID"] = self.tenant
        auth = (self._auth[0], self._auth[1].reveal()) if self._auth else None
        call = partial(self._http_get, url, params=params, headers=headers, auth=auth)

        def timed_out() -> BackendError:
            return BackendUnavailable(
                f"Loki at {self.url} did not answer within {self.timeout:g}s while trying to "
                f"{doing}; is it up? (LOGS_TIMEOUT sets the limit.)", backend=_LOKI)

        try:
            response = await run_in_thread(call, self.timeout, timed_out=timed_out,
                                           also=(requests.Timeout,), backend="logs")
        except requests.ConnectionError as exc:
            raise BackendUnavailable(connection_message(exc, product="Loki", url=self.url,
                                                        variable="LOKI_URL"),
                                     backend=_LOKI) from exc
        except requests.RequestException as exc:
            raise BackendUnavailable(f"Talking to Loki at {self.url} failed unexpectedly "
                                     f"({type(exc).__name__}) while trying to {doing}; the "
                                     "action server's log has the details.",
                                     backend=_LOKI) from exc
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.text or "", path, doing)
        try:
            return response.json()
        except ValueError as exc:
            raise BackendUnavailable(f"Loki at {self.url} sent an answer that is not Loki's "
                                     "JSON API; is LOKI_URL Loki itself (like "
                                     "http://loki:3100), not Grafana or a login page?",
                                     backend=_LOKI) from exc

    def _http_get(self, url: str, **kwargs: Any) -> requests.Response:
        """One GET in the calling (worker) thread, on that thread's own session."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session.get(url, timeout=self.timeout, **kwargs)

    def _status_error(self, status: int, body: str, path: str, doing: str) -> BackendError:
        where = f"Loki at {self.url}"
        detail = " ".join(body.split())[:300].rstrip(" .")
        if self._auth:
            detail = masked(detail, self._auth[1].reveal())
        if status in (401, 403):
            return BackendAuthError(
                f"{where} refused opsbot ({status}) while trying to {doing}: set LOKI_TENANT "
                "to the tenant (X-Scope-OrgID) to read, and check the credentials in "
                "LOKI_URL.", backend=_LOKI)
        if status == 404:
            return BackendUnavailable(
                f"{where} has no /loki/api/v1/{path.split('/')[0]} (404); is LOKI_URL Loki's "
                "base address, like http://loki:3100?", backend=_LOKI)
        if status == 429:
            return BackendUnavailable(f"{where} is rate-limiting queries (429); try again in a "
                                      "minute.", backend=_LOKI)
        if status < 500:
            hint = (" Try a shorter time range." if re.search(
                r"limit|too long|time range|query length|exceeded", detail, re.IGNORECASE)
                else "")
            return InvalidRequest(f"Loki refused to {doing} ({status}): {detail}.{hint}",
                                  backend=_LOKI)
        why = f": {detail}" if detail else ""
        return BackendUnavailable(f"{where} failed ({status}) while trying to {doing}{why}. "
                                  "Try again in a minute; if it persists, check Loki's logs.",
                                  backend=_LOKI)

@contextmanager
def _unreadable(url: str) -> Iterator[None]:
    """Turn a surprise in the shape of Loki's JSON into BackendUnavailable."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise BackendUnavailable(f"Loki at {url} sent an answer opsbot could not read "
                                 f"({type(exc).__name__}).", backend=_LOKI) from exc


def _result(data: Any, kind: str, url: str) -> list[dict[str, Any]]:
    """``data.result`` of a Loki answer of ``resultType`` ``kind``; BackendUnavailable if not."""
    try:
        if data["status"] != "success" or data["data"]["resultType"] != kind:
            raise ValueError(f"status {data.get('status')!r}, "
                             f"resultType {data['data'].get('resultType')!r}")
        result = data["data"]["result"]
        if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
            raise ValueError("result is not a list of objects")
        return result
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendUnavailable(f"Loki at {url} sent an answer opsbot could not read "
                                 f"({type(exc).__name__}: {exc}).", backend=_LOKI) from exc


# -- choosing the source at start-up ---------------------------------------------------------


class _LokiLabels(TypedDict, total=False):
    """The label names LokiLogSource takes; a missing one keeps its default."""

    service_label: str
    env_label: str
    level_label: str


_LokiLabel = Literal["service_label", "env_label", "level_label"]
_LOKI_LABEL_VARIABLES: tuple[tuple[_LokiLabel, str], ...] = (
    ("service_label", "LOKI_SERVICE_LABEL"),
    ("env_label", "LOKI_ENV_LABEL"),
    ("level_label", "LOKI_LEVEL_LABEL"),
)


def log_source_from_env(env: Mapping[str, str] | None = None,
                        default_directory: Path | None = None) -> LogSource | None:
    """The log source configured in ``env`` (default: ``os.environ``).

    LOKI_URL (with LOKI_TENANT and LOGS_TIMEOUT) wins; else OPSBOT_LOG_DIR; else
    ``default_directory`` if given; else None (no log source). ConfigError, naming the
    variable, for a malformed URL or timeout, or a directory that does not exist.
    """
    env = os.environ if env is None else env
    timeout = timeout_from_env(env, "LOGS_TIMEOUT")
    url = (env.get("LOKI_URL") or "").strip()
    if url:
        problem = _url_problem(url)
        if problem:
            raise ConfigError(f"LOKI_URL {problem}")
        labels: _LokiLabels = {}
        for key, variable in _LOKI_LABEL_VARIABLES:
            name = (env.get(variable) or "").strip()
            if name:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ConfigError(f"{variable}={name!r} is not a Loki label name (letters, "
                                      "digits and _, not starting with a digit).")
                labels[key] = name
        return LokiLogSource(url, timeout, (env.get("LOKI_TENANT") or "").strip() or None,
                             **labels)
    directory_text = (env.get("OPSBOT_LOG_DIR") or "").strip()
    if directory_text:
        directory = Path(directory_text).expanduser()
        if not directory.is_dir():
            what = "is not a directory" if directory.exists() else "does not exist"
            raise ConfigError(f"OPSBOT_LOG_DIR points to {directory}, which {what}; point it "
                              "at the directory holding the services' log files (or set "
                              "LOKI_URL to use Loki).")
        return FileLogSource(directory, timeout)
    if default_directory is not None:
        directory = Path(default_directory).expanduser()
        if not directory.is_dir():
            raise ConfigError(f"The default log directory {directory} does not exist; set "
                              "OPSBOT_LOG_DIR to the directory holding the services' log "
                              "files, or LOKI_URL to use Loki.")
        return FileLogSource(directory, timeout)
    return None


# -- "since 9am" -> (start, end) -------------------------------------------------------------

_NUMBER_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
                 "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
                 "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
                 "forty-five": 45, "fifty": 50, "sixty": 60, "ninety": 90, "few": 3,
                 "a few": 3, "couple": 2, "a couple": 2, "a couple of": 2, "couple of": 2}
_UNIT_SECONDS = {"s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
                 "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
                 "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
                 "d": 86400, "day": 86400, "days": 86400,
                 "w": 604800, "wk": 604800, "wks": 604800, "week": 604800, "weeks": 604800}
_NUM = (r"(?P<n>\d+(?:\.\d+)?|" + "|".join(sorted((re.escape(w) for w in _NUMBER_WORDS),
                                                  key=len, reverse=True)) + ")")
_UNIT = r"(?P<unit>" + "|".join(sorted(_UNIT_SECONDS, key=len, reverse=True)) + ")"
_LEAD = r"(?:(?:in|over|during|within|for|from)\s+)?(?:the\s+)?"
_LAST = re.compile(rf"^{_LEAD}(?:last|past|previous)\s+(?:{_NUM}\s*)?{_UNIT}$")
_LAST_HALF_HOUR = re.compile(rf"^{_LEAD}(?:(?:last|past|previous)\s+)?half\s+(?:an\s+)?hour$")
_DURATION_ONLY = re.compile(rf"^{_LEAD}{_NUM}\s*{_UNIT}$")
_AGO = re.compile(rf"^{_NUM}\s*{_UNIT}\s+ago$")
_CLOCK = re.compile(r"^(?:(?P<word>noon|midday|midnight)|(?P<h>\d{1,2})(?:[:.](?P<m>\d{2}))?"
                    r"\s*(?P<ap>am|pm)?)$")
_CLOCK_TEXT = (r"(?:noon|midday|midnight|\d{1,2}(?:[:.]\d{2})?(?:\s*(?:am|pm))?)")
_CLOCK_RANGE = re.compile(rf"^(?:(?:between|from)\s+)?(?P<a>{_CLOCK_TEXT})\s*"
                          rf"(?:-|to|and|until|till|through)\s*(?P<b>{_CLOCK_TEXT})$")
_POINT_RANGE = re.compile(r"^(?:between|from)\s+(?P<a>.+?)\s+(?:to|and|until|till)\s+(?P<b>.+)$")
_SINCE = re.compile(r"^(?:since|after|from|starting(?:\s+at)?)\s+(?P<rest>.+)$")
_AT = re.compile(r"^(?:at|around)\s+(?P<rest>.+)$")
_WEEKDAYS = {"monday": 0, "mon": 0, "tuesday": 1, "tue": 1, "tues": 1, "wednesday": 2,
             "wed": 2, "thursday": 3, "thu": 3, "thur": 3, "thurs": 3, "friday": 4, "fri": 4,
             "saturday": 5, "sat": 5, "sunday": 6, "sun": 6}
_PARTS = {"morning": (6, 12), "afternoon": (12, 18), "evening": (18, 24), "night": (18, 30)}
_WEEKDAY_TEXT = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_DAY_TEXT = (rf"(?:the\s+day\s+before\s+yesterday|today|yesterday|tonight|last\s+night|"
             rf"this\s+(?:morning|afternoon|evening)|this\s+week|"
             rf"(?:(?:on|last)\s+)?(?:{_WEEKDAY_TEXT})|(?:on\s+)?\d{{4}}-\d{{2}}-\d{{2}})"
             rf"(?:\s+(?:morning|afternoon|evening|night))?")
_DAY_AT_END = re.compile(rf"^(?:(?P<rest>.*?)[\s,]+)??(?P<day>{_DAY_TEXT})$")
_DAY_AT_START = re.compile(rf"^(?P<day>{_DAY_TEXT})(?:[\s,]+(?P<rest>.*))?$")


@dataclass(frozen=True)
class _Clock:
    hour: int
    minute: int
    meridiem: str | None  # "am", "pm" or None
    explicit: bool  # a 24-hour reading that needs no guessing (14:00, 09:30, 0:15, noon)


@dataclass(frozen=True)
class _Day:
    day: date
    part: str | None  # morning, afternoon, evening, night
    week: bool = False  # "this week": from Monday

    def span(self) -> tuple[datetime, datetime]:
        if self.week:
            return _local(self.day, 0), _local(self.day + timedelta(days=7), 0)
        if self.part is None:
            return _local(self.day, 0), _local(self.day + timedelta(days=1), 0)
        first, last = _PARTS[self.part]
        return _local(self.day, first), _local(self.day, last)

    def at(self, clock: _Clock) -> datetime:
        hour = _hour_on_day(clock, self.part)
        return _local(self.day, hour, clock.minute)


def _local(day: date, hour: int, minute: int = 0) -> datetime:
    """Wall-clock ``hour:minute`` on ``day`` in the server's zone (hour may pass 24)."""
    naive = datetime(day.year, day.month, day.day) + timedelta(hours=hour, minutes=minute)
    return naive.astimezone().astimezone(UTC)  # a naive astimezone() means local time


def _clock(text: str) -> _Clock | None:
    match = _CLOCK.match(text.strip())
    if match is None:
        return None
    word = match.group("word")
    if word:
        return _Clock(0, 0, None, True) if word == "midnight" else _Clock(12, 0, "pm", True)
    hour, minute = int(match.group("h")), int(match.group("m") or 0)
    meridiem = match.group("ap")
    if minute > 59 or hour > 23 or (meridiem and not 1 <= hour <= 12):
        return None
    explicit = meridiem is None and (hour == 0 or hour >= 13 or
                                     (len(match.group("h")) == 2 and hour < 10))
    return _Clock(hour, minute, meridiem, explicit)


def _hour_on_day(clock: _Clock, part: str | None) -> int:
    """The 24-hour reading of ``clock``, guessing am/pm from the part of the day."""
    if clock.meridiem == "am":
        return 0 if clock.hour == 12 else clock.hour
    if clock.meridiem == "pm":
        return clock.hour if clock.hour == 12 else clock.hour + 12
    if clock.explicit or clock.hour == 12:
        return clock.hour
    if part == "morning":
        return clock.hour
    if part == "night" and clock.hour < 6:
        return clock.hour + 24  # "3 last night" is early the next morning
    if part in ("afternoon", "evening", "night"):
        return clock.hour + 12
    return clock.hour if clock.hour >= 7 else clock.hour + 12  # 9 -> 09:00, 3 -> 15:00


def _latest_before(clock: _Clock, now: datetime) -> datetime:
    """The most recent moment not after ``now`` that ``clock`` can mean."""
    today = now.astimezone().date()
    if clock.meridiem or clock.explicit or clock.hour == 12:
        hours = [_hour_on_day(clock, None)]
    else:
        hours = [clock.hour, clock.hour + 12]
    candidates = [_local(day, hour, clock.minute) for day in (today, today - timedelta(days=1))
                  for hour in hours]
    past = [moment for moment in candidates if moment <= now]
    return max(past) if past else min(candidates)


def _after(clock: _Clock, start: datetime, day: _Day | None) -> datetime:
    """The end of a range that starts at ``start``: the first reading of ``clock`` after it."""
    local_day = start.astimezone().date()
    if clock.meridiem or clock.explicit or clock.hour == 12:
        hours = [_hour_on_day(clock, day.part if day else None)]
    else:
        hours = [clock.hour, clock.hour + 12]
    candidates = sorted(_local(d, hour, clock.minute)
                        for d in (local_day, local_day + timedelta(days=1)) for hour in hours)
    return next(moment for moment in candidates if moment > start)


def _day(text: str, now: datetime) -> _Day | None:
    words = text.split()
    part = words[-1] if len(words) > 1 and words[-1] in _PARTS else None
    if part and words[:-1] not in (["last"], ["this"]):
        words = words[:-1]
    phrase = " ".join(words).removeprefix("on ")
    today = now.astimezone().date()
    if phrase == "today":
        return _Day(today, part)
    if phrase == "yesterday":
        return _Day(today - timedelta(days=1), part)
    if phrase == "the day before yesterday":
        return _Day(today - timedelta(days=2), part)
    if phrase == "tonight":
        return _Day(today, "evening")
    if phrase == "last night":
        return _Day(today - timedelta(days=1), "night")
    if phrase.startswith("this ") and phrase[5:] in _PARTS:
        return _Day(today, phrase[5:])
    if phrase == "this week":
        return _Day(today - timedelta(days=today.weekday()), None, week=True)
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", phrase):
        try:
            return _Day(date.fromisoformat(phrase), part)
        except ValueError:
            return None
    strict = phrase.startswith("last ")
    weekday = _WEEKDAYS.get(phrase.removeprefix("last "))
    if weekday is None:
        return None
    back = (today.weekday() - weekday) % 7
    if strict and back == 0:
        back = 7
    return _Day(today - timedelta(days=back), part)


def _split_day(text: str, now: datetime) -> tuple[str, _Day | None]:
    """Separate a day phrase ("yesterday", "this morning") from the rest of the text."""
    for pattern in (_DAY_AT_END, _DAY_AT_START):
        match = pattern.match(text)
        if match:
            day = _day(match.group("day"), now)
            if day is not None:
                rest = (match.group("rest") or "").strip()
                return re.sub(r"^on\s+|\s+(?:on|at)$", "", rest), day
    return text, None


def _amount(match: re.Match[str]) -> timedelta:
    raw = (match.group("n") or "1").strip()
    number = _NUMBER_WORDS[raw] if raw in _NUMBER_WORDS else float(raw)
    return timedelta(seconds=number * _UNIT_SECONDS[match.group("unit")])


def _dateparser_point(text: str, now: datetime) -> datetime | None:
    """Anything dateparser reads as one moment ("nov 20 10:00", "2026-11-20T10:00Z")."""
    local_now = now.astimezone()
    settings = {
        "RELATIVE_BASE": local_now.replace(tzinfo=None),
        "PREFER_DATES_FROM": "past",
        "RETURN_AS_TIMEZONE_AWARE": True,
        # dateparser caches the local zone at first use; the offset now is always right
        "TIMEZONE": local_now.strftime("%z"),
    }
    try:
        parsed = dateparser.parse(text, languages=["en"], settings=settings)
    except Exception:  # dateparser raises assorted errors on odd input
        return None
    if parsed is None:
        return None
    # Re-read the wall-clock time in the local zone, so a date across a DST change is right.
    return parsed.replace(tzinfo=None).astimezone().astimezone(UTC)


def _point(text: str, now: datetime) -> datetime | None:
    """One moment: "9am", "yesterday 17:00", "monday", "2 hours ago", "nov 20 10:00"."""
    rest, day = _split_day(text, now)
    if day is not None and not rest:
        return day.span()[0]
    clock = _clock(re.sub(r"^at\s+", "", rest))
    if clock is not None:
        return day.at(clock) if day is not None else _latest_before(clock, now)
    if day is not None:
        return None
    match = _AGO.match(text)
    if match:
        return now - _amount(match)
    if not re.search(r"\d|jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec", text):
        return None  # dateparser reads too much into plain words
    return _dateparser_point(text, now)


def _clock_range(a: str, b: str, day: _Day | None, now: datetime) -> tuple[datetime, datetime]:
    first, second = _clock(a), _clock(b)
    assert first is not None and second is not None
    if first.meridiem is None and not first.explicit and second.meridiem is not None \
            and first.hour != 12:
        # "9-10am": the am/pm of the end also holds for the start ("11-1pm": 11am).
        same = first.hour % 12 <= second.hour % 12
        meridiem = second.meridiem if same else ("am" if second.meridiem == "pm" else "pm")
        first = _Clock(first.hour, first.minute, meridiem, False)
    start = day.at(first) if day is not None else _latest_before(first, now)
    return start, _after(second, start, day)


def _interpret(text: str, now: datetime) -> tuple[datetime, datetime] | None:
    match = _LAST.match(text) or _DURATION_ONLY.match(text)
    if match:
        return now - _amount(match), now
    if _LAST_HALF_HOUR.match(text):
        return now - timedelta(minutes=30), now
    match = _AGO.match(text)
    if match:
        return now - _amount(match), now
    rest, day = _split_day(text, now)
    match = _CLOCK_RANGE.match(rest)
    if match:
        return _clock_range(match.group("a"), match.group("b"), day, now)
    if day is not None and not rest:
        return day.span()
    match = _POINT_RANGE.match(text)
    if match:
        start, end = _point(match.group("a"), now), _point(match.group("b"), now)
        if start is not None and end is not None:
            return start, end
    match = _SINCE.match(text)
    if match:
        start = _point(match.group("rest"), now)
        return (start, now) if start is not None else None
    match = _AT.match(rest)
    if match:
        clock = _clock(match.group("rest"))
        if clock is not None:  # "at 9am": the hour from then
            start = day.at(clock) if day is not None else _latest_before(clock, now)
            return start, start + timedelta(hours=1)
    start = _point(text, now)
    return (start, now) if start is not None else None


def parse_time_range(text: str | None, now: datetime | None = None) -> tuple[datetime, datetime]:
    """The window ``text`` means, as aware UTC (start, end), with start < end <= now.

    None or "" is the last hour. Understood: "in the last hour", "last 15 minutes",
    "past 2 days", "in the last 30 mins", "since yesterday", "since 9am", "today",
    "yesterday", "this morning", "between 9 and 10 this morning", "from 14:00 to 15:30",
    "2 hours ago", "at 9am" (that hour), weekdays, and dates dateparser can read. Times
    of day are in the server's local zone (TZ); "9" means 09:00 or 21:00, whichever
    was last (with a day named, 7-11 are mornings and 1-6 afternoons). ValueError with
    a message for the chat otherwise.
    """
    now = datetime.now(UTC) if now is None else now
    now = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(UTC)
    raw = "" if text is None else str(text)
    cleaned = raw.strip().lower()
    cleaned = re.sub(r"[\u2013\u2014]", "-", cleaned)
    cleaned = re.sub(r"\b([ap])\.m\.?", r"\1m", cleaned)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" .,!?;:'\"")
    if not cleaned:
        return now - timedelta(hours=1), now
    window = _interpret(cleaned, now)
    if window is None:
        raise ValueError(f"I can't read '{raw.strip()}' as a time range; try 'last 2 hours' "
                         "or 'since 9am'.")
    start, end = window
    end = min(end, now)
    if start >= now:
        local = now.astimezone()
        raise ValueError(f"'{raw.strip()}' has not started yet (it is {local:%H:%M} here); "
                         "ask about a time that has passed, like 'last 2 hours'.")
    if start >= end:
        raise ValueError(f"'{raw.strip()}' is an empty time range; try 'last 2 hours' or "
                         "'between 9 and 10 this morning'.")
    return start, end
