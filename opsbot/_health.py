"""``/health``, ``/ready`` and ``/metrics`` on the Rasa server, and the turn metrics.

* ``GET /health``: the process is up and serving (200). Open: it says nothing else.
* ``GET /ready``: 200 when this replica can take conversations (the model is loaded, the
  tracker store and opsbot's store answer, Redis answers when ``OPSBOT_REDIS_URL`` is
  set), else 503; the body names each check and, for a failed one, what failed (never a
  URL or a password). Open: a load balancer asks it. Each check is asked anew with a
  short timeout, so a database that comes back makes the replica ready again without a
  restart.
* ``GET /metrics``: Prometheus' text format (``actions.metrics``): this process's, the
  operations and the uncovered wishes in the store, and the action server's (asked with
  the shared secret). Behind the API token like the rest of Rasa's API (``?token=`` or
  ``Authorization: Bearer``; the guard in ``opsbot._rasa_server`` checks it).

Turn metrics come from wrapping ``Agent.handle_message`` (latency, channel) and
``MessageProcessor.parse_message`` (intent, confidence) once per process.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions import metrics

__all__ = ["CHECK_TIMEOUT", "install", "instrument"]

logger = logging.getLogger("opsbot.health")

CHECK_TIMEOUT = 3.0
_USERINFO = re.compile(r"(\w+://)[^\s/@]+@")
_parsed: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "opsbot_parsed", default=None)
_instrumented = False


def instrument() -> None:
    """Count and time every message the Rasa server handles (idempotent)."""
    global _instrumented
    if _instrumented:
        return
    from rasa.core.agent import Agent
    from rasa.core.processor import MessageProcessor

    handle = Agent.handle_message
    parse = MessageProcessor.parse_message

    async def handle_message(self: Agent, message: Any) -> Any:
        started = time.perf_counter()
        holder: dict[str, Any] = {}
        token = _parsed.set(holder)
        try:
            return await handle(self, message)
        finally:
            _parsed.reset(token)
            intent = holder.get("intent") or {}
            metrics.turn(str(getattr(message, "input_channel", None) or "unknown"),
                         intent.get("name"), intent.get("confidence"),
                         time.perf_counter() - started)

    async def parse_message(self: MessageProcessor, message: Any, *args: Any,
                            **kwargs: Any) -> Any:
        result = await parse(self, message, *args, **kwargs)
        holder = _parsed.get()
        if holder is not None and isinstance(result, dict) and "intent" not in holder:
            holder["intent"] = result.get("intent") or {}
        return result

    Agent.handle_message = handle_message
    MessageProcessor.parse_message = parse_message
    _instrumented = True


async def _within(check: Callable[[], Awaitable[None]], what: str = "check") -> str | None:
    """None if ``check`` passes in time; else what failed, in a few words that name no
    host, port or user (/ready is open); the whole error goes to the log."""
    try:
        await asyncio.wait_for(check(), CHECK_TIMEOUT)
    except TimeoutError:
        return f"no answer within {CHECK_TIMEOUT:g}s"
    except Exception as exc:  # noqa: BLE001 - every failure is "not ready", said plainly
        logger.warning("/ready: the %s check failed: %s", what, _said(exc))
        return f"unreachable ({type(exc).__name__}; details in the server log)"
    return None


def _said(exc: BaseException) -> str:
    """An exception in a few words, without the URL or password a driver may quote."""
    from actions._redact import mask

    text = _USERINFO.sub(r"\1***@", mask(" ".join(str(exc).split())))[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _select_one(engine: Any) -> Callable[[], Awaitable[None]]:
    import sqlalchemy as sa

    def query() -> None:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    async def check() -> None:
        await asyncio.to_thread(query)

    return check


def _redis_check(url: str) -> Callable[[], Awaitable[None]]:
    async def check() -> None:
        import redis

        def ping() -> None:
            client = redis.Redis.from_url(url, socket_connect_timeout=CHECK_TIMEOUT,
                                          socket_timeout=CHECK_TIMEOUT)
            try:
                client.ping()
            finally:
                client.close()

        await asyncio.to_thread(ping)

    return check


async def readiness(app: Sanic) -> tuple[bool, dict[str, str]]:
    """Each check's verdict ("ok" or what failed); ready if all are ok."""
    from connectors._common import stores

    checks: dict[str, str] = {}
    agent = getattr(app.ctx, "agent", None)
    checks["model"] = "ok" if agent is not None and agent.is_ready() else "no model loaded"
    tracker_store = getattr(agent, "tracker_store", None) if agent is not None else None
    for _ in range(4):  # Rasa wraps it: FailSafeTrackerStore(AwaitableTrackerStore(SQL...))
        inner = getattr(tracker_store, "_tracker_store", None)
        if inner is None:
            break
        tracker_store = inner
    engine = getattr(tracker_store, "engine", None)
    if engine is not None:
        checks["tracker_store"] = await _within(_select_one(engine), "tracker store") or "ok"
    elif tracker_store is None:
        checks["tracker_store"] = "no tracker store yet"
    elif type(tracker_store).__name__ == "InMemoryTrackerStore":
        # opsbot always configures an SQL one: Rasa fell back to memory when it failed
        checks["tracker_store"] = ("in memory: the SQL tracker store could not start, so "
                                   "conversations are not shared or kept (see the log)")
    try:
        store_engine = stores().database.engine
    except Exception as exc:  # noqa: BLE001 - a bad OPSBOT_DB_URL: not ready, said why
        logger.warning("/ready: the store cannot be opened: %s", _said(exc))
        checks["store"] = f"cannot be opened ({type(exc).__name__}; details in the server log)"
    else:
        checks["store"] = await _within(_select_one(store_engine), "store") or "ok"
    redis_url = (os.environ.get("OPSBOT_REDIS_URL") or "").strip()
    if redis_url:
        checks["redis"] = await _within(_redis_check(redis_url), "Redis") or "ok"
    return all(v == "ok" for v in checks.values()), checks


_BACKENDS_FRESH = 30.0  # seconds a backend's health is reused: /ready is asked every few
_backends_seen: tuple[float, dict[str, str]] | None = None


async def backend_health() -> dict[str, str]:
    """Each configured backend's health check ("ok", or what failed in words that name no
    host: /ready is open; the whole answer goes to the log), asked at most every 30 s.
    Reported, never a reason to be unready (``opsbot._backend_checks``)."""
    global _backends_seen
    from actions.backends import KINDS, Backends
    from actions.errors import ConfigError
    from opsbot._backend_checks import ping_all

    if _backends_seen is not None and time.monotonic() - _backends_seen[0] < _BACKENDS_FRESH:
        return _backends_seen[1]
    try:
        backends = Backends.from_env(KINDS, os.environ)
    except ConfigError as exc:
        logger.warning("/ready: a backend is misconfigured: %s", _said(exc))
        return {"configuration": "a backend setting is malformed (details in the server log)"}
    found: dict[str, str] = {}
    for name, (reached, said) in (await ping_all(backends, CHECK_TIMEOUT)).items():
        if not reached:
            logger.warning("/ready: the %s health check failed: %s", name, _said(Exception(said)))
        found[name] = "ok" if reached else "unreachable or refused (details in the server log)"
    _backends_seen = (time.monotonic(), found)
    return found


async def _store_text() -> str:
    """From the store, every replica's: ``opsbot_operations{intent,state}`` and
    ``opsbot_wishes_uncovered``."""
    import sqlalchemy as sa

    from actions.guard.store import operations
    from connectors._common import stores

    def query() -> tuple[list[tuple[str, str, int]], int]:
        with stores().database.connection() as conn:
            rows = conn.execute(sa.select(operations.c.intent, operations.c.state,
                                          sa.func.count()).group_by(operations.c.intent,
                                                                    operations.c.state))
            counted = [(str(i), str(s), int(n)) for i, s, n in rows]
        return counted, stores().wishes.uncovered_count()

    rows, wishes = await asyncio.wait_for(asyncio.to_thread(query), CHECK_TIMEOUT)
    lines = ["# HELP opsbot_operations Operations in opsbot's store, by intent and state",
             "# TYPE opsbot_operations gauge"]
    lines += [f'opsbot_operations{{intent="{_label(i)}",state="{_label(s)}"}} {n}'
              for i, s, n in sorted(rows)]
    lines += ["# HELP opsbot_wishes_uncovered Requests opsbot could not serve that no "
              "operation or taught phrasing covers yet",
              "# TYPE opsbot_wishes_uncovered gauge", f"opsbot_wishes_uncovered {wishes}"]
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def _action_server_text(app: Sanic) -> str:
    """The action server's metrics, asked with the secret the Rasa server sends it."""
    from actions.guard.identity import SECRET_HEADER, SECRET_VARIABLE

    agent = getattr(app.ctx, "agent", None)
    endpoint = getattr(agent, "action_endpoint", None) if agent is not None else None
    url = str(getattr(endpoint, "url", "") or "")
    if not url:
        return ""
    base = url.rsplit("/webhook", 1)[0] if url.rstrip("/").endswith("/webhook") else url
    secret = os.environ.get(SECRET_VARIABLE) or ""
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            base.rstrip("/") + "/metrics", headers={SECRET_HEADER: secret}) as answer:
        if answer.status != 200:
            raise RuntimeError(f"the action server answered {answer.status}")
        return await answer.text()


def install(app: Sanic) -> None:
    """Add the three routes to the Rasa server's app and instrument its turns."""
    from opsbot import _speedups

    instrument()
    _speedups.install()

    async def warm(*_args: Any) -> None:
        agent = getattr(app.ctx, "agent", None)
        if agent is not None and agent.is_ready():
            await _speedups.warm_up(agent)

    app.register_listener(warm, "after_server_start")

    @app.route("/health", methods=["GET"])
    async def health(_request: Request) -> HTTPResponse:
        return response.json({"status": "ok"})

    @app.route("/ready", methods=["GET"])
    async def ready(_request: Request) -> HTTPResponse:
        ok, checks = await readiness(app)
        return response.json({"ready": ok, "checks": checks, "backends": await backend_health()},
                             status=200 if ok else 503)

    @app.route("/metrics", methods=["GET"])
    async def scrape(_request: Request) -> HTTPResponse:
        parts = [metrics.render(metrics.RASA).decode("utf-8")]
        missing = []
        for name, part in (("store", _store_text()),
                           ("action server", _action_server_text(app))):
            try:
                parts.append(await part)
            except Exception as exc:  # noqa: BLE001 - the rest is still worth scraping
                logger.warning("metrics: the %s part is missing: %s", name, _said(exc))
                missing.append(f"# the {name} part is missing: {_said(exc)}\n")
        text = metrics.merge(parts).decode("utf-8") + "".join(missing)
        return response.text(text, content_type=metrics.CONTENT_TYPE)
