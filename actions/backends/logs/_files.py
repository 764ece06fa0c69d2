"""FileLogSource: a directory of log files, one service per file, searched without
reading big files whole."""

from __future__ import annotations

import heapq
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import IO, TypeVar

from actions.backends._common import run_in_thread
from actions.backends.logs._lines import _Entry, _parse_line
from actions.backends.logs._model import (
    _FILES,
    LogLine,
    LogQuery,
    LogResult,
    _check_service,
    _covering,
    _order_key,
    _ordered_counts,
    _positive_timeout,
    _text_pattern,
    levels_for,
)
from actions.errors import (
    BackendError,
    BackendUnavailable,
    ConfigError,
)

_T = TypeVar("_T")
logger = logging.getLogger(__name__)

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

    async def ping(self) -> str:
        return _covering(self.source, await self.services())

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
