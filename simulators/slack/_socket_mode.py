"""Socket Mode: the websocket server that ``apps.connections.open`` points the app at, and
delivery over it (api.slack.com/apis/connections/socket, .../socket-implement).

Why apart: it runs an asyncio event loop in a thread of its own (``websockets``), beside
the threaded HTTP server, and touches the state only to record what happened.

* ``apps.connections.open`` (app-level token only) returns
  ``ws://127.0.0.1:PORT/link/?ticket=...&app_id=...``; each URL connects once, so a
  client that lost its connection asks for a new one. A connection first gets
  ``{"type": "hello", "num_connections", "debug_info", "connection_info"}``.
* Each delivery is an envelope ``{"envelope_id", "type": "events_api" | "interactive" |
  "slash_commands", "payload", "accepts_response_payload"}``; events add
  ``retry_attempt`` and ``retry_reason``. The app acknowledges with ``{"envelope_id":
  ...}`` (a command may add ``"payload"``: its immediate answer). An event not
  acknowledged within ``ack_timeout`` seconds is sent again in a new envelope, with
  ``retry_attempt`` + 1 and ``retry_reason: "timeout"``, up to 3 times; interactions and
  commands are not (the person sees an error instead).
* With several connections open, each envelope goes to one of them (the newest); made
  while none is open, it waits for the next.
* ``disconnect()`` sends ``{"type": "disconnect", "reason": "refresh_requested"}`` and
  closes the connection shortly after; envelopes then go to the next connection the
  client opens through ``apps.connections.open``. ``reason=None`` drops the connection
  without a word, as a network failure would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.legacy.server import WebSocketServer, WebSocketServerProtocol, serve

from simulators.slack._model import APP_ID, Outgoing
from simulators.slack._state import _State


@dataclass(eq=False)
class _Connection:
    ws: WebSocketServerProtocol
    number: int
    draining: bool = False  # told to reconnect: no new envelopes


class _SocketMode:
    """The websocket server and the envelopes waiting for their acknowledgement."""

    def __init__(self, state: _State, host: str, ack_timeout: float,
                 retry_delays: Sequence[float]) -> None:
        self.state = state
        self.host = host
        self.ack_timeout = ack_timeout
        self.retry_delays = tuple(retry_delays)
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.server: WebSocketServer | None = None
        self.tickets: set[str] = set()
        self.tickets_lock = threading.Lock()
        self.connections: list[_Connection] = []  # only touched in the loop
        self.waiting: dict[str, asyncio.Future[Any]] = {}
        self.available: asyncio.Event | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        if self.thread is not None:
            return
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)  # websockets 10 asks for the thread's loop
            self.loop = loop
            try:
                self.available = asyncio.Event()
                self.server = loop.run_until_complete(serve(
                    self._serve, self.host, 0, process_request=self._check_ticket,
                    ping_interval=None))
                self.port = next(iter(self.server.sockets)).getsockname()[1]
            except BaseException as exc:  # binding failed: start() reports it
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            self._shut_down(loop)

        self.thread = threading.Thread(target=run, name="slack-socket-mode", daemon=True)
        self.thread.start()
        ready.wait(10)
        if failure:
            self.thread = None
            raise failure[0]

    def stop(self) -> None:
        loop, thread = self.loop, self.thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self.loop = self.thread = None

    def _shut_down(self, loop: asyncio.AbstractEventLoop) -> None:
        tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in tasks:
            task.cancel()
        if self.server is not None:
            self.server.close()
            tasks.append(loop.create_task(self.server.wait_closed()))
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()
        self.connections.clear()
        self.waiting.clear()
        with self.state.changed:
            self.state.connections_live = 0
            self.state.changed.notify_all()

    # -- what the other threads call -----------------------------------------------------

    def issue_url(self) -> str:
        """A fresh connection URL for apps.connections.open."""
        ticket = uuid.uuid4().hex + secrets.token_hex(8)
        with self.tickets_lock:
            self.tickets.add(ticket)
        return f"ws://{self.host}:{self.port}/link/?ticket={ticket}&app_id={APP_ID}"

    def send(self, item: Outgoing) -> None:
        if self.loop is not None:
            asyncio.run_coroutine_threadsafe(self._deliver(item), self.loop)

    def disconnect(self, reason: str | None, close_after: float) -> int:
        """Tell every open connection to reconnect (or drop them); how many there were."""
        if self.loop is None:
            return 0
        future = asyncio.run_coroutine_threadsafe(self._disconnect(reason, close_after),
                                                  self.loop)
        return future.result(timeout=10)

    # -- in the loop -----------------------------------------------------------------------

    async def _check_ticket(self, path: str, headers: Headers) -> tuple[Any, ...] | None:
        ticket = (parse_qs(urlsplit(path).query).get("ticket") or [""])[0]
        with self.tickets_lock:
            known = ticket in self.tickets
            self.tickets.discard(ticket)
        if not known:
            return (HTTPStatus.UNAUTHORIZED, [("Content-Type", "text/plain")],
                    b"invalid or used ticket: call apps.connections.open for a new URL\n")
        return None

    async def _serve(self, ws: WebSocketServerProtocol) -> None:
        with self.state.changed:
            self.state.connections_opened += 1
            number = self.state.connections_opened
        connection = _Connection(ws, number)
        hello = {"type": "hello", "num_connections": len(self.connections) + 1,
                 "debug_info": {"host": f"applink-sim-{number}", "build_number": 1,
                                "approximate_connection_time": 18060},
                 "connection_info": {"app_id": APP_ID}}
        try:
            await ws.send(json.dumps(hello))
            self.connections.append(connection)
            self._changed()
            async for raw in ws:
                self._acknowledged(raw)
        except ConnectionClosed:
            pass
        finally:
            if connection in self.connections:
                self.connections.remove(connection)
            self._changed()

    def _acknowledged(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        waiter = self.waiting.get(str(message.get("envelope_id")))
        if waiter is not None and not waiter.done():
            waiter.set_result(message.get("payload"))

    def _changed(self) -> None:
        """Keep the count of usable connections in the state, and wake senders and waiters."""
        usable = [c for c in self.connections if not c.draining]
        assert self.available is not None
        if usable:
            self.available.set()
        else:
            self.available.clear()
        with self.state.changed:
            self.state.connections_live = len(usable)
            self.state.changed.notify_all()

    async def _connection(self) -> _Connection:
        """The newest connection not told to go, once there is one."""
        assert self.available is not None
        while True:
            usable = [c for c in self.connections if not c.draining]
            if usable:
                return usable[-1]
            self.available.clear()
            await self.available.wait()

    async def _deliver(self, item: Outgoing) -> None:
        retries = len(self.retry_delays) if item.kind == "events_api" else 0
        reason = ""
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(self.retry_delays[attempt - 1])
            connection = await self._connection()
            envelope_id = str(uuid.uuid4())
            envelope: dict[str, Any] = {"envelope_id": envelope_id, "type": item.kind,
                                        "payload": item.payload,
                                        "accepts_response_payload":
                                            item.kind == "slash_commands"}
            if item.kind == "events_api":
                envelope.update(retry_attempt=attempt, retry_reason=reason)
            entry = self.state.record(item, transport="socket", attempt=attempt,
                                      retry_reason=reason or None, status=None, error=None,
                                      envelope_id=envelope_id)
            waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self.waiting[envelope_id] = waiter
            try:
                await connection.ws.send(json.dumps(envelope))
                answer = await asyncio.wait_for(waiter, self.ack_timeout)
            except (TimeoutError, ConnectionClosed) as exc:
                late = "the connection closed" if isinstance(exc, ConnectionClosed) else \
                    f"not acknowledged within {self.ack_timeout} s"
                self.state.complete(entry, error=late)
                reason = "timeout"
                continue
            finally:
                self.waiting.pop(envelope_id, None)
            self.state.complete(entry, acknowledged=True)
            if item.kind == "slash_commands":
                self.state.answered_command(item, answer)
            return
        if item.kind == "slash_commands":
            self.state.command_timed_out(item)

    async def _disconnect(self, reason: str | None, close_after: float) -> int:
        targets = [c for c in self.connections if not c.draining]
        for connection in targets:
            connection.draining = True
        self._changed()
        for connection in targets:
            if reason is None:
                connection.ws.transport.abort()
                continue
            with contextlib.suppress(ConnectionClosed):
                await connection.ws.send(json.dumps({
                    "type": "disconnect", "reason": reason,
                    "debug_info": {"host": f"applink-sim-{connection.number}"}}))
            asyncio.get_running_loop().call_later(close_after, _close_soon, connection.ws)
        return len(targets)


def _close_soon(ws: WebSocketServerProtocol) -> None:
    asyncio.ensure_future(ws.close())
