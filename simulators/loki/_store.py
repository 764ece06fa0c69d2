"""The Loki simulator's store: streams by label set, times in nanoseconds, and how Loki
reads a time parameter.

Why apart: the data the HTTP face queries, under one lock, with the injected faults
and the request log.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from simulators._base import Faults, RequestLog
from simulators.loki._logql import _NS, LogQLError

LOKI_VERSION = "3.1.1"
_DEFAULT_LABELS = {"service": "service", "env": "env", "level": "level"}
DEFAULT_MAX_ENTRIES = 5000  # Loki's max_entries_limit_per_query default


_LABEL_LOOKBACK_NS = 6 * 3600 * _NS  # /labels without start looks back six hours, as Loki


@dataclass
class _Stream:
    labels: dict[str, str]
    times: list[int] = field(default_factory=list)  # ns, ascending
    lines: list[str] = field(default_factory=list)

    def add(self, ns: int, line: str) -> None:
        index = bisect.bisect_right(self.times, ns)
        self.times.insert(index, ns)
        self.lines.insert(index, line)

    def between(self, start: int, end: int, *, closed_end: bool = False) -> Iterator[int]:
        """Indexes of entries with start <= ts < end (or start < ts <= end if closed_end)."""
        if closed_end:
            low, high = bisect.bisect_right(self.times, start), bisect.bisect_right(self.times,
                                                                                     end)
        else:
            low, high = bisect.bisect_left(self.times, start), bisect.bisect_left(self.times,
                                                                                   end)
        return iter(range(low, high))


def _ns(at: datetime) -> int:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?"
                      r"([Zz]|[+-]\d{2}:\d{2})")


def _parse_time(value: str | None, default: int) -> int:
    """Loki's timestamp parameter: ns epoch, s epoch (<= 10 digits), float s, or RFC 3339."""
    if value is None or value == "":
        return default
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        number = int(text)
        return number * _NS if len(text.lstrip("-")) <= 10 else number
    if re.fullmatch(r"-?\d+\.\d*", text):
        whole, _, fraction = text.partition(".")
        sign = -1 if whole.startswith("-") else 1
        return int(whole) * _NS + sign * int((fraction + "0" * 9)[:9])
    match = _RFC3339.fullmatch(text)
    if match:
        base, fraction, zone = match.groups()
        try:
            moment = datetime.fromisoformat(base.replace("t", "T").replace(" ", "T")
                                            + ("+00:00" if zone in "Zz" else zone))
        except ValueError:
            pass
        else:
            return _ns(moment) + int(((fraction or "") + "0" * 9)[:9])
    raise LogQLError(f'cannot parse "{value}" to a valid timestamp')


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str
    target: str  # path and query as sent
    status: int
    org_id: str | None  # the X-Scope-OrgID header, if sent


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Store:
    """Streams by label set (guarded by ``lock``), the injected faults and the request log."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[tuple[tuple[str, str], ...], _Stream] = {}
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()

    def add(self, labels: Mapping[str, str], ns: int, line: str) -> None:
        key = tuple(sorted((str(k), str(v)) for k, v in labels.items() if v != ""))
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = _Stream(dict(key))
        stream.add(ns, line)
