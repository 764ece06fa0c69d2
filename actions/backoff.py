"""The pace and the log of a background loop whose dependency can be down.

Why: opsbot's loops (the event courier, the operation watcher, the Jenkins event poller,
the Telegram poller) run every second or so. When the database or a backend is down, a
loop that logs a traceback on every attempt buries the log (144 lines a second per
replica were seen) and hammers what is already failing. A ``Backoff`` says how long to
wait before the next attempt (the loop's own interval while all is well; doubling up to
a cap while it fails) and logs one line per change of state: down (with the reason),
still down (every ``remind`` seconds), back (with how long it was down).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from actions.errors import OpsbotError

__all__ = ["Backoff"]


class Backoff:
    """Exponential backoff with a cap, and a log line per state change, for one loop.

    ``interval``: the wait between attempts while they succeed. ``cap``: the longest wait
    while they fail. ``remind``: how often "still down" is logged. ``clock``: seconds
    (monotonic), injected so tests need not wait.
    """

    def __init__(self, name: str, logger: logging.Logger, *, interval: float,
                 cap: float = 60.0, remind: float = 300.0,
                 clock: Callable[[], float] = time.monotonic,
                 expected: tuple[type[BaseException], ...] = (OpsbotError,)) -> None:
        if interval <= 0:
            raise ValueError(f"{name}: the interval must be positive, not {interval}")
        self.name, self.logger = name, logger
        self.interval, self.cap, self.remind = interval, max(cap, interval), remind
        self.clock = clock
        self.expected = expected  # outages to wait out: said in a line, without a traceback
        self.failures = 0
        self._down_since: float | None = None
        self._reminded: float | None = None
        self._traced: set[type[BaseException]] = set()

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self.failures > 0

    def succeeded(self) -> float:
        """Record a good attempt; the wait before the next one (``interval``)."""
        if self._down_since is not None:
            lasted = self.clock() - self._down_since
            self.logger.warning("%s: back after %s (%d failed attempt%s)", self.name,
                                _span(lasted), self.failures, "" if self.failures == 1 else "s")
        self.failures, self._down_since, self._reminded = 0, None, None
        return self.interval

    def failed(self, exc: BaseException) -> float:
        """Record a failed attempt (logged once per state change); the wait before the next.

        An ``expected`` error (an ``OpsbotError`` by default) is an outage: its message is
        the log line. Anything else is a bug or a surprise: its traceback is logged the
        first time its type is seen in an outage, never again on every attempt.
        """
        now = self.clock()
        self.failures += 1
        reason = _reason(exc)
        if self._down_since is None:
            self._down_since = self._reminded = now
            if isinstance(exc, self.expected) or type(exc) in self._traced:
                self.logger.warning("%s: down: %s; retrying with backoff", self.name, reason)
            else:
                self._traced.add(type(exc))
                self.logger.error("%s: down: %s; retrying with backoff", self.name, reason,
                                  exc_info=exc)
        elif self._reminded is not None and now - self._reminded >= self.remind:
            self._reminded = now
            self.logger.warning("%s: still down after %s (%d attempts): %s", self.name,
                                _span(now - self._down_since), self.failures, reason)
        wait = min(self.cap, self.interval * 2 ** min(self.failures, 30))
        return wait * random.uniform(0.9, 1.1)


def _reason(exc: BaseException) -> str:
    """One line for the log: an error's ``summary`` (a StoreError names the failed part and
    its reference; the store logged the details once under it), an OpsbotError's message,
    else the type and the message's first line."""
    summary = getattr(exc, "summary", None)
    if summary:
        return str(summary)
    text = str(exc).strip().splitlines()
    if isinstance(exc, OpsbotError):
        return text[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _span(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
