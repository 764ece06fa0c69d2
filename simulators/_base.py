"""The public face every simulator shares: lifecycle, fault steering, the request log, ``main``.

A simulator subclasses :class:`SimulatorBase`, hands it the handler it serves and the
:class:`Faults` and :class:`RequestLog` that handler consults, and adds what is its
own (``describe``, ``env``, inspection helpers). Its ``main`` parses its own flags and
hands the rest to :func:`run_main`, so every ``python -m simulators.X`` starts, reports
errors and stops the same way.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any, Generic, Self, TypeVar

from simulators._http import BackgroundServer, Handler

__all__ = [
    "Faults",
    "RequestLog",
    "SimulatorBase",
    "add_address_arguments",
    "check_account",
    "run_main",
]

_R = TypeVar("_R")
_S = TypeVar("_S", bound="SimulatorBase[Any]")


@dataclass
class _Fault:
    """An injected failure or delay for the next matching requests."""

    status: int | None
    delay: float
    remaining: int
    path: str | None
    after: bool = False  # True: handle the request first, then hold the response


class Faults:
    """The injected faults waiting for requests, oldest first; safe to use from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Fault] = []

    def add(self, status: int | None, delay: float, times: int, path: str | None, *,
            after: bool = False) -> None:
        """Fail (with ``status``) or delay the next ``times`` requests whose path holds ``path``.

        ``after``: the request is handled as usual and only its response is held for
        ``delay`` (the server acted; the client times out waiting for the answer).
        """
        with self._lock:
            self._waiting.append(_Fault(status, delay, times, path, after))

    def hold(self, path: str) -> int | None:
        """Apply the oldest fault for a request to ``path`` (one without a path matches any).

        Sleeps out its delay, then returns the status to fail the request with, or None to
        answer it normally. Call it outside any lock: other clients carry on meanwhile.
        """
        fault = self._take(path, after=False)
        if fault is None:
            return None
        if fault.delay:
            time.sleep(fault.delay)
        return fault.status

    def hold_response(self, path: str) -> None:
        """Sleep out the oldest ``after`` fault for ``path``, once the request was handled."""
        fault = self._take(path, after=True)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)

    def _take(self, path: str, *, after: bool) -> _Fault | None:
        with self._lock:
            fault = next((f for f in self._waiting if f.after == after
                          and (f.path is None or f.path in path)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._waiting.remove(fault)
        return fault


class RequestLog(Generic[_R]):
    """The most recent requests a simulator answered, oldest first; safe from any thread."""

    def __init__(self, size: int = 2000) -> None:
        self._lock = threading.Lock()
        self._entries: deque[_R] = deque(maxlen=size)

    def append(self, entry: _R) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[_R]:
        with self._lock:
            return list(self._entries)


def check_account(user: str, token: str, *, user_kind: str, client: str) -> None:
    """ValueError unless ``user`` and ``token`` can travel in a Basic auth header.

    ``user_kind`` names what the user is (``"Jira user name"``) and ``client`` the
    library that sends the token as the password.
    """
    if not user or ":" in user:
        raise ValueError(f"user must be a non-empty {user_kind} without ':', got {user!r}")
    if not token:
        raise ValueError(f"token must not be empty ({client} sends it as the password)")


class SimulatorBase(ABC, Generic[_R]):
    """One simulated backend served from a daemon thread, usable as a context manager.

    Meets ``simulators.DemoBackend`` once a subclass says what it is (``describe``) and
    how the action server finds it (``env``).
    """

    def __init__(self, handler: Handler, *, faults: Faults, requests: RequestLog[_R],
                 host: str, port: int, name: str, server_name: str) -> None:
        self._faults = faults
        self._requests = requests
        self._server = BackgroundServer(handler, host=host, port=port, name=name,
                                        server_name=server_name)

    def _location(self) -> str:
        """The URL for a repr, which must work before ``start()`` too."""
        return self.url if self._server.running else "not started"

    # -- lifecycle -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/``; only valid after ``start()``."""
        return self._server.url

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        return self._server.port

    def start(self, stack: object | None = None) -> None:
        """Serve from a daemon thread. ``stack`` exists for the ``DemoBackend`` protocol."""
        self._server.start()

    def stop(self) -> None:
        """Stop serving and close open connections; safe to call twice."""
        self._server.stop()

    @abstractmethod
    def describe(self) -> str:
        """One line for the demo banner: what it is and its URL."""

    @abstractmethod
    def env(self) -> dict[str, str]:
        """Environment variables that point opsbot's action server at it."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    # -- inspection and steering -----------------------------------------------------

    def request_log(self) -> list[_R]:
        """The most recent requests (up to 2000), oldest first."""
        return self._requests.entries()

    def fail_next(self, status: int = 500, *, times: int = 1, path: str | None = None) -> None:
        """Answer the next ``times`` requests (whose path contains ``path``) with ``status``."""
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error (400-599), got {status}")
        self._faults.add(status, 0.0, times, path)

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Hold the next ``times`` matching requests for ``seconds`` (to test client timeouts)."""
        self._faults.add(None, seconds, times, path)

    def respond_delay(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Handle the next ``times`` matching requests, then hold each answer for ``seconds``.

        The server has acted (a build is queued, an issue exists) but a client with a
        shorter timeout never hears so: the case where opsbot cannot tell what happened.
        Only simulators that call ``Faults.hold_response`` honour it (Jenkins, Jira).
        """
        if seconds <= 0:
            raise ValueError(f"seconds must be above 0, got {seconds}")
        self._faults.add(None, seconds, times, path, after=True)


# ---------------------------------------------------------------------------------------
# python -m simulators.X


def add_address_arguments(parser: argparse.ArgumentParser, default_port: int) -> None:
    """``--host`` and ``--port``, as every simulator's command line takes them."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=default_port,
                        help=f"port (default {default_port}; 0 = any free)")


def run_main(make: Callable[[], _S], banner: Callable[[_S], Iterable[str]], *,
             seed_error: type[Exception], cannot: str) -> int:
    """Start a simulator, print its banner and serve until SIGINT or SIGTERM; the exit status.

    ``make`` builds the simulator. A ``seed_error`` from it, or an OSError from it or from
    binding (``cannot`` says what failed, e.g. ``listen on 127.0.0.1:8080``), is one
    line on stderr and status 2.
    """
    try:
        simulator = make()
        simulator.start()
    except seed_error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot {cannot} ({exc.strerror or exc}); pick another --port, or "
              "--port 0 for any free one", file=sys.stderr)
        return 2
    stopped = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    for line in banner(simulator):
        print(line, flush=True)
    print("Stop with Ctrl+C.", flush=True)
    try:
        while not stopped.wait(1.0):
            pass
    finally:
        simulator.stop()
    return 0
