"""Hosting for the simulators: a threaded HTTP/1.1 server around one request handler.

Every simulator needs the same plumbing, and getting it wrong makes tests hang:
the real clients (python-jenkins, jira) block, so the server runs in its own
thread; it binds port 0 so tests never collide; it decodes the path per segment
(a ``%2F`` inside a name must not split it); it speaks keep-alive HTTP/1.1 like
the real servers; and ``stop()`` closes open keep-alive connections so no
thread outlives the test. A simulator supplies only ``handler(Request) -> Response``.
"""

from __future__ import annotations

import json
import logging
import selectors
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["BackgroundServer", "Handler", "Request", "Response"]

logger = logging.getLogger(__name__)

_MAX_BODY = 16 * 1024 * 1024  # a simulator never needs more; refuse instead of eating memory


@dataclass(frozen=True)
class Request:
    """One HTTP request as the handler sees it."""

    method: str
    raw_path: str  # the path as sent, still percent-encoded, without the query
    segments: tuple[str, ...]  # the path split on "/" and decoded per segment; empty ones dropped
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    client: str = ""
    raw_query: str = ""

    @property
    def target(self) -> str:
        """The path with its query string as sent, for logs and error pages."""
        return self.raw_path + (f"?{self.raw_query}" if self.raw_query else "")

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def header(self, name: str) -> str | None:
        """A request header, case-insensitively."""
        return self.headers.get(name)

    def cookies(self) -> dict[str, str]:
        """The cookies the client sent."""
        jar: SimpleCookie = SimpleCookie()
        for raw in self.headers.get_all("Cookie") or []:
            try:
                jar.load(raw)
            except CookieError:
                continue
        return {name: morsel.value for name, morsel in jar.items()}


@dataclass
class Response:
    """What the handler answers; ``_http`` adds Content-Length, Date and Server."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, body, "application/json;charset=utf-8")

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        return cls(status, text.encode(), "text/plain;charset=utf-8")

    @classmethod
    def html(cls, html: str, status: int = 200) -> Response:
        return cls(status, html.encode(), "text/html;charset=utf-8")

    def with_header(self, name: str, value: str) -> Response:
        """Add a header (several with the same name are allowed) and return self."""
        self.headers.append((name, value))
        return self


Handler = Callable[[Request], Response]


class _Server(ThreadingHTTPServer):
    """A ThreadingHTTPServer that sleeps until a client or stop() wakes it.

    The standard ``serve_forever`` polls, and ``shutdown`` waits for the next poll;
    a socketpair instead makes an idle server cost nothing and stop at once. Open
    connections are remembered so stop() can close them.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: Handler, server_name: str) -> None:
        self.app = handler
        self.server_name = server_name
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        self._stopping = False
        self._wake: tuple[socket.socket, socket.socket] | None = None
        super().__init__(address, _RequestHandler)  # binds; may raise OSError (port in use)
        self._wake = socket.socketpair()

    def serve_until_stopped(self) -> None:
        assert self._wake is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self, selectors.EVENT_READ)
            selector.register(self._wake[0], selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select():
                    if key.fileobj is self and not self._stopping:
                        # serve_forever's own step (socketserver.py); typeshed leaves it out
                        self._handle_request_noblock()  # type: ignore[attr-defined]

    def wake_to_stop(self) -> None:
        self._stopping = True
        if self._wake is not None:
            self._wake[1].send(b"x")

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (e.g. after its timeout) is routine, not a traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.debug("client %s went away: %r", client_address, error)
        else:
            logger.exception("error while serving %s", client_address)

    def server_close(self) -> None:
        super().server_close()  # also called by TCPServer.__init__ when bind() fails
        for end in self._wake or ():
            end.close()


class _RequestHandler(BaseHTTPRequestHandler):
    """Turns the standard library's handler into Request -> handler -> Response."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the real servers do
    timeout = 60  # an idle keep-alive connection is closed after a minute
    # Headers and body are separate writes; with Nagle on, the client's delayed ACK
    # would add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.open_connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def version_string(self) -> str:
        return self.server.server_name

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > _MAX_BODY:
                    raise ValueError("request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self, head: bool = False) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(Response.text("Bad request body\n", 400), head)
            return
        split = urlsplit(self.path)
        request = Request(
            method="GET" if head else self.command,
            raw_path=split.path or "/",
            segments=tuple(unquote(part) for part in split.path.split("/") if part),
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=body,
            client=self.client_address[0] if self.client_address else "",
            raw_query=split.query,
        )
        try:
            response = self.server.app(request)
        except Exception:  # a bug in a simulator must not kill the connection silently
            logger.exception("simulator handler failed on %s %s", self.command, self.path)
            response = Response.text("Internal error in the simulator (see its log)\n", 500)
        self._send(response, head)

    def _send(self, response: Response, head: bool) -> None:
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if not head and response.body:
            self.wfile.write(response.body)


class BackgroundServer:
    """Serves one handler on ``host:port`` from a daemon thread; ``port=0`` picks a free port."""

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "simulator",
        server_name: str = "opsbot-simulator",
    ) -> None:
        self._handler = handler
        self._host = host
        self._requested_port = port
        self._name = name
        self._server_name = server_name
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError(f"the {self._name} is not running: call start() first")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL with a trailing slash; a wildcard bind is reached through 127.0.0.1."""
        host = "127.0.0.1" if self._host in ("", "0.0.0.0") else self._host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/"

    def start(self) -> None:
        """Bind and serve in a daemon thread; OSError (port in use) propagates."""
        if self._server is not None:
            return
        server = _Server((self._host, self._requested_port), self._handler, self._server_name)
        thread = threading.Thread(
            target=server.serve_until_stopped,
            name=f"{self._name}:{server.server_address[1]}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()

    def stop(self) -> None:
        """Stop serving and close keep-alive connections; safe to call twice."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.wake_to_stop()
        if thread is not None:
            thread.join(timeout=5)
        with server.connections_lock:
            connections = list(server.open_connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.server_close()
