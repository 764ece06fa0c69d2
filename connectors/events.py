"""Events into the chat: the webhooks that take alerts, checks and builds, and the courier
that brings them to the subscribed conversations.

``POST /webhooks/events/<source>`` on the Rasa server's port, for ``alertmanager``,
``grafana``, ``github`` and ``jenkins`` (the Notification plugin; Jenkins needs no plugin:
the Jenkins watcher started with this channel polls the subscribed jobs):

* **Authentication.** Alertmanager, Grafana and Jenkins send ``Authorization: Bearer
  $OPSBOT_EVENTS_TOKEN`` (Alertmanager's ``http_config.authorization``, Grafana's
  webhook "Authorization header"), or basic auth whose password is the token
  (``http_config.basic_auth``, Grafana's username/password); Jenkins' Notification
  plugin can only put it in the URL: ``?token=``, which should be its own token,
  ``OPSBOT_EVENTS_JENKINS_TOKEN`` (a leaked job config then posts no alerts). GitHub
  signs the raw body with ``GITHUB_WEBHOOK_SECRET`` (``X-Hub-Signature-256``, compared
  in constant time). A source whose variable is unset is off: 404. A token or secret
  under 16 characters is refused too, and stops ``opsbot run`` and ``opsbot demo`` at
  start (``connectors._event_settings``), so a setting opsbot ignores is never
  announced. A wrong or missing token or signature: 401, and nothing is recorded. The
  token is checked from the headers before any of the body is read.
* **Validation.** A body over ``OPSBOT_EVENTS_MAX_BYTES`` (default 1 MiB): 413, as soon
  as the ``Content-Length`` or the bytes read pass it (the body is streamed, never held
  whole beyond the limit). A body
  that is not the source's format: 400 with the reason. A valid one: 200 with what was
  recorded; a redelivery (the same notification, the same ``X-GitHub-Delivery``) is 200
  and changes nothing.
* **Keys per credential.** What makes a notification a redelivery is its key, taken from
  the body, so it is scoped to the source and the :class:`Credential` that let it in
  (the token and whether it came in a header or the URL, GitHub's secret): whoever holds
  one secret can drop as "seen" only what comes in with that same secret, never what
  another sender or opsbot itself reports, and rotating a secret starts afresh.
* **Jenkins is asked.** Where Jenkins is configured (``JENKINS_URL``), a Jenkins
  notification is only a hint: opsbot reads the build it names from Jenkins
  (``JenkinsWatch.confirm``) and records what Jenkins says (result, parameters, failure
  summary), the same event under the same key as the poll's, so a build reported both
  ways is posted once. A build Jenkins does not have, has not finished or records with
  another result is not recorded (200, ``"rejected"``, one log line; the poll reports
  the build when it ends); a Jenkins that cannot be asked gets 503, so the plugin
  retries. Without ``JENKINS_URL`` the body's event is recorded, under its scoped key.
* **Outbox.** The event and one delivery per subscribed conversation are written in one
  transaction (``actions.events.store``) before the answer; the courier sends them. A
  store that does not answer: 503, so the sender retries.

The courier (started with the server) claims due deliveries with a lease and sends each
through its conversation's channel: Telegram and Teams through their connectors (which
register themselves as *sinks* when they start), the REST channel and the terminal chat
by appending the message to the conversation's tracker. An event of a group that already
has a message in the conversation edits it (Telegram ``editMessageText``, Teams'
activity update); a flood (more than ``OPSBOT_EVENTS_FLOOD`` new messages for one
conversation within ``OPSBOT_EVENTS_FLOOD_WINDOW`` seconds, default 10 per 60) is held
and summarised in one message at the end of the window. A send that the chat refuses for
now (429 with ``retry_after``, 5xx, no connection) is retried at the time the chat asked
for, or with backoff; one it refuses for good is given up and logged. While the store is
down the courier backs off (``actions.backoff``) and logs one line when it goes down,
every few minutes while it stays down, and one when it is back.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, NamedTuple, Protocol, overload

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.exceptions import PayloadTooLarge
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.backoff import Backoff
from actions.errors import BackendError, OpsbotError
from actions.events._model import SOURCES, Event, EventFormatError
from actions.events.jenkins_watch import JenkinsWatch
from actions.events.render import buttons_for, render, render_summary
from actions.events.routes import chat_of
from actions.events.sources import JenkinsClaim
from actions.events.store import Delivery, EventStore
from actions.guard.identity import bearer, same_secret
from actions.guard.store import StoreError
from connectors._common import channel_store, stores
from connectors._event_settings import (
    GITHUB_SECRET_VARIABLE,
    JENKINS_URL_TOKEN_VARIABLE,
    MIN_TOKEN,
    TOKEN_VARIABLE,
)

__all__ = [
    "Courier",
    "Credential",
    "EventsInput",
    "Gone",
    "Refusal",
    "SendLater",
    "SendRefused",
    "Sink",
    "authorised",
    "event_store",
    "register_sink",
    "sink_for",
]

logger = logging.getLogger(__name__)

MAX_BYTES = 1 << 20
# Settled deliveries and old events are forgotten after this many days, checked hourly.
RETENTION_DAYS = 7.0
PRUNE_EVERY = 3600.0
LEASE_SECONDS = 120.0
MAX_ATTEMPTS = 10


class SendLater(Exception):
    """The chat cannot take the message now; try again after ``retry_after`` seconds (or
    back off when it did not say)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SendRefused(Exception):
    """The chat refuses the message for good (the bot was removed, the chat is gone)."""


class Gone(Exception):
    """The message to edit is no longer editable (deleted, too old): post a new one."""


class Sink(Protocol):
    """Where a channel's event messages go (Telegram, Teams, the trackers)."""

    async def post_event(self, address: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Post a new message; a reference to it (for later edits)."""

    async def edit_event(self, address: Mapping[str, Any], ref: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Change the message ``ref`` (Gone when it cannot be edited any more)."""


_sinks: dict[str, Sink] = {}


def register_sink(channel: str, sink: Sink) -> None:
    """A connector that can deliver events (``telegram``, ``teams``) registers on start."""
    _sinks[channel] = sink


def sink_for(channel: str) -> Sink | None:
    return _sinks.get(channel)


_events: EventStore | None = None


def event_store() -> EventStore:
    """The outbox in opsbot's store, one per process."""
    global _events
    if _events is None:
        _events = stores().events
    return _events


def _number(variable: str, default: float, minimum: float) -> float:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        logger.warning("%s=%r is not a number; using %g", variable, raw, default)
        return default
    return max(value, minimum)


def _retention_days() -> float:
    """How long events are kept (``OPSBOT_EVENTS_RETENTION_DAYS``), and their buttons live."""
    return _number("OPSBOT_EVENTS_RETENTION_DAYS", RETENTION_DAYS, 1)


def _basic_password(authorization: str) -> str | None:
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return decoded.partition(":")[2]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Refusal(NamedTuple):
    """Why a webhook is not let in: the HTTP status of the answer and its reason."""

    status: int
    why: str


@dataclass(frozen=True)
class Credential:
    """What let a webhook in: its source, how the secret came (``header``, ``url``,
    ``signature``) and a fingerprint of the secret.

    Why: the keys that drop a repeated notification come from its body, so they are the
    sender's word; scoped to the credential (:attr:`scope`, ``Event.scoped``) they drop
    only a repeat of what came in the same way. A leaked Jenkins URL token cannot then
    pre-empt, as "seen", what the events token brings in a header, nor what opsbot
    observed itself; and a rotated secret gets a fresh namespace, so keys planted with
    the old one stop counting at once. The fingerprint is an HMAC keyed by the secret:
    it tells secrets apart without revealing them.
    """

    source: str
    via: str
    fingerprint: str

    @classmethod
    def of(cls, source: str, via: str, secret: str) -> Credential:
        digest = hmac.new(secret.encode("utf-8"), b"opsbot event key scope", hashlib.sha256)
        return cls(source, via, digest.hexdigest()[:16])

    @property
    def scope(self) -> str:
        """The namespace of the keys it lets in, e.g. ``jenkins@url:3fa9c2d1e0b46a7c``."""
        return f"{self.source}@{self.via}:{self.fingerprint}"


@overload
def authorised(source: str, request: Request, body: bytes) -> Credential | Refusal: ...


@overload
def authorised(source: str, request: Request, body: None) -> Credential | Refusal | None: ...


def authorised(source: str, request: Request,
               body: bytes | None) -> Credential | Refusal | None:
    """The :class:`Credential` that proves ``request`` comes from ``source``'s sender, or
    the :class:`Refusal` (status, why); None only for GitHub before its body is read.

    The token sources are decided from the headers alone (``body`` None is fine), so a
    caller without the token is refused before opsbot reads a byte of its body; GitHub's
    signature covers the body, so it needs it.
    """
    from actions.events.sources import github_signature_ok

    if source == "github":
        secret = os.environ.get(GITHUB_SECRET_VARIABLE) or ""
        if not secret:
            return Refusal(404, f"GitHub events are off: {GITHUB_SECRET_VARIABLE} is not set")
        if len(secret.strip()) < MIN_TOKEN:
            return Refusal(404, f"GitHub events are off: {GITHUB_SECRET_VARIABLE} is shorter "
                                f"than {MIN_TOKEN} characters")
        if body is None:
            return None  # checked once the body is read
        if not github_signature_ok(secret, body, request.headers.get("X-Hub-Signature-256")):
            return Refusal(401, "the X-Hub-Signature-256 signature is missing or wrong")
        return Credential.of(source, "signature", secret)
    token = (os.environ.get(TOKEN_VARIABLE) or "").strip()
    if not token:
        return Refusal(404, f"{source} events are off: {TOKEN_VARIABLE} is not set")
    if len(token) < MIN_TOKEN:
        # Refused rather than guessable; the server's log says so at start too.
        return Refusal(404, f"{source} events are off: {TOKEN_VARIABLE} is shorter than "
                            f"{MIN_TOKEN} characters")
    authorization = request.headers.get("Authorization") or ""
    given = bearer(authorization) or _basic_password(authorization) or ""
    via = "header"
    if not given and source == "jenkins":
        # A URL is written into job configs and proxy logs: with its own token set, a URL
        # that leaks lets nobody post alerts, and the events token is taken in headers only.
        given, via = request.args.get("token") or "", "url"
        own = (os.environ.get(JENKINS_URL_TOKEN_VARIABLE) or "").strip()
        if own:
            if len(own) >= MIN_TOKEN and same_secret(given, own):
                return Credential.of(source, via, own)
            return Refusal(401, f"the ?token= is not {JENKINS_URL_TOKEN_VARIABLE}")
    if not same_secret(given, token):
        return Refusal(401, "the events token is missing or wrong (Authorization: Bearer, "
                            "or basic auth)")
    return Credential.of(source, via, token)


async def read_body(request: Request, limit: int) -> bytes | None:
    """The body of a streamed request, or None as soon as it passes ``limit`` bytes (then
    the rest is not read: Sanic closes the connection instead of draining it)."""
    stream = request.stream
    if stream is None:  # not streamed (a test client that buffered it)
        body = request.body or b""
        return None if len(body) > limit else body
    stream.request_max_size = limit  # Sanic's own drain after the answer stops here too
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in stream:
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
    except PayloadTooLarge:
        return None
    return b"".join(chunks)


class EventsInput(InputChannel):
    """``connectors.events.EventsInput`` in credentials.yml (``opsbot run`` adds it).

    ``store``: the outbox (default: opsbot's, opened on first use); ``jenkins``: makes the
    Jenkins watcher for it, None without JENKINS_URL (default: from the environment);
    ``clock``: when an event is received.
    """

    @classmethod
    def name(cls) -> str:
        return "events"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> EventsInput:
        return cls()

    def __init__(self, *, store: EventStore | None = None,
                 jenkins: Callable[[EventStore], JenkinsWatch | None] | None = None,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.store = store
        self.clock = clock
        self.courier: Courier | None = None
        self.jenkins: JenkinsWatch | None = None
        self._make_jenkins = jenkins or _jenkins_watch
        self._jenkins_made = False
        self._jenkins_problem: str | None = None

    def outbox(self) -> EventStore:
        return self.store if self.store is not None else event_store()

    def watch(self) -> JenkinsWatch | None:
        """The Jenkins watcher, made once (at start, or by a Jenkins webhook that comes
        first); None without JENKINS_URL, or while Jenkins' settings are wrong."""
        if not self._jenkins_made:
            self._jenkins_made = True
            try:
                self.jenkins = self._make_jenkins(self.outbox())
            except Exception as exc:  # noqa: BLE001 - the action server reports them too
                self._jenkins_problem = str(exc)
                logger.warning("events: Jenkins builds are not watched, and Jenkins "
                               "notifications are answered 503 until this is fixed: %s", exc)
        return self.jenkins

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("opsbot_events", __name__)

        @hook.listener("after_server_start")
        async def start(app: Any, _loop: Any) -> None:
            self.courier = Courier(self.outbox(), TrackerSink(app), clock=self.clock)
            self.courier.start()
            watch = self.watch()
            if watch is not None:
                watch.start()
            try:
                from actions.events.routes import load_routes

                count = await asyncio.to_thread(load_routes, self.outbox())
                if count:
                    logger.info("events: %d route(s) from subscriptions.yml", count)
            except Exception as exc:  # noqa: BLE001 - a bad file must not stop the server
                logger.error("events: subscriptions.yml not loaded: %s", exc)

        @hook.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            if self.courier is not None:
                await self.courier.stop()
            if self.jenkins is not None:
                await self.jenkins.stop()

        @hook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "sources": list(SOURCES)})

        @hook.route("/<source>", methods=["POST"], stream=True)
        async def receive(request: Request, source: str) -> HTTPResponse:
            return await self._receive(request, source)

        return hook

    async def _receive(self, request: Request, source: str) -> HTTPResponse:
        from actions.events.sources import jenkins_claims, parse

        if source not in SOURCES:
            return response.json({"error": f"no event source {source!r}; opsbot takes "
                                           f"{', '.join(SOURCES)}"}, status=404)
        limit = int(_number("OPSBOT_EVENTS_MAX_BYTES", MAX_BYTES, 1024))
        too_big = response.json({"error": f"the body is over {limit} bytes"}, status=413)
        declared = request.headers.get("Content-Length") or ""
        early = authorised(source, request, None)
        if isinstance(early, Refusal):
            return _refuse(request, source, early)
        if declared.isdigit() and int(declared) > limit:
            return too_big
        body = await read_body(request, limit)
        if body is None:
            return too_big
        verdict = early if early is not None else authorised(source, request, body)
        if isinstance(verdict, Refusal):
            return _refuse(request, source, verdict)
        try:
            parsed = parse(source, body, dict(request.headers))
        except EventFormatError as exc:
            logger.info("events: a %s webhook that is not its format: %s", source, exc)
            return response.json({"error": f"not a {source} webhook: {exc}"}, status=400)
        watch = self.watch() if source == "jenkins" else None
        if source == "jenkins" and self._jenkins_problem is not None:
            return response.json({"error": "opsbot cannot check this build with Jenkins: its "
                                           "Jenkins settings are wrong (its log says how); "
                                           "try again once they are fixed"}, status=503)
        events: list[Event] = [event.scoped(verdict.scope) for event in parsed]
        rejected = 0
        if watch is not None:
            try:
                events, rejected = await self._confirmed(watch, jenkins_claims(body))
            except BackendError as exc:
                logger.warning("events: a Jenkins notification was not checked with Jenkins "
                               "(answered 503, for the sender to retry): %s", exc)
                return response.json({"error": "opsbot could not check this build with "
                                               "Jenkins; try again"}, status=503)
        store = self.outbox()
        recorded, duplicates, queued = 0, 0, 0
        try:
            for event in events:
                count = await asyncio.to_thread(store.record, event, self.clock())
                if count is None:
                    duplicates += 1
                else:
                    recorded += 1
                    queued += count
        except Exception as exc:  # noqa: BLE001 - the sender retries on 5xx
            logger.warning("events: could not record a %s event (answered 503, for the sender "
                           "to retry): %s", source, exc, exc_info=not isinstance(exc, StoreError))
            return response.json({"error": "opsbot could not record the event (its store "
                                           "did not answer); try again"}, status=503)
        if queued and self.courier is not None:
            self.courier.wake()
        answer = {"received": len(parsed), "recorded": recorded, "duplicates": duplicates,
                  "deliveries": queued}
        if source == "jenkins":
            answer["rejected"] = rejected
        return response.json(answer)

    @staticmethod
    async def _confirmed(watch: JenkinsWatch, claims: Sequence[JenkinsClaim],
                         ) -> tuple[list[Event], int]:
        """The events Jenkins bears out, and how many claims it did not."""
        events: list[Event] = []
        for claim in claims:
            found = await watch.confirm(claim)
            if isinstance(found, Event):
                events.append(found)
            else:
                logger.warning("events: not recorded: a Jenkins notification that %s #%d "
                               "ended %s: %s", claim.job, claim.number, claim.result, found)
        return events, len(claims) - len(events)


def _refuse(request: Request, source: str, refusal: Refusal) -> HTTPResponse:
    if refusal.status == 401:
        logger.warning("events: refused a %s webhook from %s: %s", source,
                       request.remote_addr or request.ip, refusal.why)
    return response.json({"error": refusal.why}, status=refusal.status)


class TrackerSink:
    """The REST channel and the terminal chat: the message is appended to the tracker of
    the conversation (the terminal chat shows what it finds there); an edit is a new line."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def post_event(self, address: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        from rasa.shared.core.events import BotUttered

        agent = getattr(self.app.ctx, "agent", None)
        if agent is None or agent.tracker_store is None:
            raise SendLater("the model is not loaded yet")
        sender = str(address.get("sender") or "")
        if not sender:
            raise SendRefused("the subscription names no conversation")
        async with agent.lock_store.lock(sender):
            tracker = await agent.tracker_store.get_or_create_tracker(sender)
            tracker.update(BotUttered(text, data={"buttons": list(buttons)},
                                      metadata={"opsbot_event": True}))
            await agent.tracker_store.save(tracker)
        return {"sender": sender}

    async def edit_event(self, address: Mapping[str, Any], ref: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return await self.post_event(address, text, buttons)


def _backoff(attempts: int) -> float:
    return min(600.0, 5.0 * 2 ** max(attempts - 1, 0)) * random.uniform(1.0, 1.2)


class Courier:
    """Delivers the outbox: claim, render, send or edit, record; holds and summarises floods."""

    def __init__(self, store: EventStore, trackers: Sink | None = None, *,
                 interval: float | None = None,
                 clock: Callable[[], datetime] = _utcnow,
                 backoff: Backoff | None = None) -> None:
        self.store = store
        self.trackers = trackers
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.interval = interval if interval is not None else _number(
            "OPSBOT_EVENTS_INTERVAL", 1.0, 0.05)
        self.clock = clock
        self.backoff = backoff or Backoff("events: delivering", logger, interval=self.interval)
        self.flood = int(_number("OPSBOT_EVENTS_FLOOD", 10, 1))
        self.window = _number("OPSBOT_EVENTS_FLOOD_WINDOW", 60.0, 1.0)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._pruned: datetime | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="opsbot-events-courier")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
                wait = self.backoff.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the courier keeps going; the outbox keeps them
                wait = self.backoff.failed(exc)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass
            self._wake.clear()

    def _sink(self, channel: str) -> Sink | None:
        if channel in ("rest", "terminal"):
            return self.trackers
        return sink_for(channel)

    async def prune(self, now: datetime | None = None) -> None:
        """Forget settled deliveries and old events (``OPSBOT_EVENTS_RETENTION_DAYS``)."""
        now = now or self.clock()
        days = _retention_days()
        gone, dropped = await asyncio.to_thread(self.store.prune, now - timedelta(days=days))
        if gone or dropped:
            logger.info("events: forgot %d settled deliveries and %d events older than %g "
                        "days", gone, dropped, days)

    async def run_once(self, now: datetime | None = None) -> int:
        """Deliver what is due; how many deliveries were settled."""
        now = now or self.clock()
        batch = await asyncio.to_thread(self.store.claim, self.owner, now=now,
                                        lease=LEASE_SECONDS)
        # After the claim: a store that is down fails that first, and the loop says so once.
        if self._pruned is None or (now - self._pruned).total_seconds() >= PRUNE_EVERY:
            self._pruned = now
            try:
                await self.prune(now)
            except Exception as exc:  # noqa: BLE001 - delivering matters more; tried again later
                logger.warning("events: could not prune the outbox (trying again in an hour): "
                               "%s", exc, exc_info=not isinstance(exc, OpsbotError))
        if not batch:
            return 0
        by_conversation: dict[str, list[Delivery]] = {}
        for delivery in batch:
            by_conversation.setdefault(delivery.conversation, []).append(delivery)
        done = await asyncio.gather(*(self._conversation(items, now)
                                      for items in by_conversation.values()))
        return sum(done)

    async def _conversation(self, items: list[Delivery], now: datetime) -> int:
        conversation, channel = items[0].conversation, items[0].channel
        sink = self._sink(channel)
        if sink is None:
            for delivery in items:
                await self._retry(delivery, f"the {channel} channel is not running here",
                                  None)
            return 0
        posted = await asyncio.to_thread(self.store.posts_since, conversation,
                                         now - timedelta(seconds=self.window))
        room = max(self.flood - len(posted), 0)
        held = [d for d in items if d.held]
        settled = 0
        if held:
            # The whole backlog, not only what this claim's page held.
            more = await asyncio.to_thread(partial(self.store.claim_held, conversation,
                                                   self.owner, now=now, lease=LEASE_SECONDS))
            known = {d.id for d in held}
            held += [d for d in more if d.id not in known]
            # The flood's window is over: what was held goes out as one summary.
            room -= 1
            settled += await self._summarise(sink, held, now)
        over: list[Delivery] = []
        for delivery in items:  # in the order they arrived: a group's red before its green
            if delivery.held:
                continue
            message = await asyncio.to_thread(self.store.group_message, conversation,
                                              delivery.event.group)
            if message is None and (room <= 0 or over):
                over.append(delivery)
                continue
            if message is None:
                room -= 1
            settled += await self._deliver(sink, delivery, message, now)
        if over:
            until = max((min(posted) if posted else now) + timedelta(seconds=self.window), now)
            await asyncio.to_thread(self.store.hold, over, self.owner, until)
            logger.info("events: %s is flooded; %d event(s) held for one summary at %s",
                        conversation, len(over), until.strftime("%H:%M:%S"))
        return settled

    async def _deliver(self, sink: Sink, delivery: Delivery, message: Any,
                       now: datetime) -> int:
        event, kind = delivery.event, delivery.kind
        text = render(event, kind, first=message.event if message else None,
                      first_at=message.first_at if message else None, now=now)
        # Pressable in this conversation only, for as long as the event is kept.
        buttons = buttons_for(event, kind, delivery.buttons, _operation_parameters,
                              chat=chat_of(delivery.channel, delivery.address),
                              expires=(now + timedelta(days=_retention_days())).timestamp())
        edited = message is not None
        try:
            if message is not None:
                try:
                    ref = await sink.edit_event(delivery.address, message.ref, text, buttons)
                except Gone:
                    edited = False
                    ref = await sink.post_event(delivery.address, text, buttons)
            else:
                ref = await sink.post_event(delivery.address, text, buttons)
        except SendLater as exc:
            await self._retry(delivery, str(exc), exc.retry_after)
            return 0
        except SendRefused as exc:
            logger.error("events: %s refused %s for good: %s", delivery.channel,
                         event.key, exc)
            await asyncio.to_thread(self.store.retry, delivery, self.owner, str(exc), None)
            return 1
        except Exception as exc:  # noqa: BLE001 - a connector's own error: retried
            await self._retry(delivery, f"{type(exc).__name__}: {exc}", None)
            return 0
        await asyncio.to_thread(partial(self.store.sent, delivery, self.owner, ref,
                                        edited=edited, now=now))
        return 1

    async def _summarise(self, sink: Sink, held: list[Delivery], now: datetime) -> int:
        first = min(d.created_at or now for d in held)
        text = render_summary([d.event for d in held],
                              max((now - first).total_seconds(), self.window))
        try:
            ref = await sink.post_event(held[0].address, text, [])
        except SendLater as exc:
            for delivery in held:
                await self._retry(delivery, str(exc), exc.retry_after)
            return 0
        except Exception as exc:  # noqa: BLE001
            for delivery in held:
                await self._retry(delivery, f"{type(exc).__name__}: {exc}", None)
            return 0
        return await asyncio.to_thread(self.store.summarised, held, self.owner, ref, now)

    async def _retry(self, delivery: Delivery, why: str, after: float | None) -> None:
        attempts = delivery.attempts + 1
        if attempts >= MAX_ATTEMPTS and after is None:
            logger.error("events: gave up delivering %s to %s after %d attempts: %s",
                         delivery.event.key, delivery.conversation, attempts, why)
            await asyncio.to_thread(self.store.retry, delivery, self.owner, why, None)
            return
        wait = after + 0.1 if after is not None else _backoff(attempts)
        logger.info("events: %s to %s not delivered (%s); trying again in %.1fs",
                    delivery.event.key, delivery.conversation, why, wait)
        await asyncio.to_thread(self.store.retry, delivery, self.owner, why,
                                self.clock() + timedelta(seconds=wait))


def _jenkins_watch(events: EventStore) -> JenkinsWatch | None:
    """The poller of subscribed Jenkins jobs, which also checks Jenkins notifications, when
    Jenkins is configured (JENKINS_URL); ConfigError when its settings are wrong."""
    from actions.backends.jenkins import JENKINS

    jenkins = JENKINS.from_env(os.environ)
    if jenkins is None:
        return None
    return JenkinsWatch(events, jenkins, channel_store())


_OPERATIONS: dict[str, Any] = {"stamp": None, "specs": {}}


def _operation_files_stamp(root: Any) -> tuple[tuple[str, float, int], ...]:
    from actions.operations import operation_dirs, operation_files

    stamps = []
    for path in operation_files(operation_dirs(root, os.environ)):
        info = path.stat()
        stamps.append((str(path), info.st_mtime, info.st_size))
    return tuple(sorted(stamps))


def _operation_parameters(name: str) -> Sequence[str] | None:
    """The parameters of the team-defined operation ``name`` (None: no such operation).

    The files are read again only when one of them changed (name, time or size), so a
    courier pass with many route buttons does not parse them for each.
    """
    from pathlib import Path

    from actions.operations import load_operations

    root = Path(os.environ.get("OPSBOT_PROJECT") or Path.cwd())
    try:
        stamp = _operation_files_stamp(root)
        if stamp != _OPERATIONS["stamp"]:
            loaded = load_operations(root)
            _OPERATIONS["specs"] = {n: [p.name for p in spec.parameters]
                                    for n, spec in loaded.operations.items()}
            _OPERATIONS["stamp"] = stamp
    except Exception:  # noqa: BLE001 - a broken file: no button, not a broken message
        logger.warning("events: operation files unreadable for a button", exc_info=True)
        return None
    names: Sequence[str] | None = _OPERATIONS["specs"].get(name)
    return names
