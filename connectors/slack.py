"""opsbot in Slack: a Rasa input/output channel on slack_sdk (Events API, Socket Mode, Block Kit).

Why not Rasa's own Slack channel: it keys a channel as one user, answers outside the
request's thread, cannot bind a button to the person who asked, and has no Socket Mode.
Slack's older interfaces (the RTM API, classic apps) are deprecated; this connector uses
what Slack's Bolt uses, through slack_sdk: the Events API or Socket Mode in, the Web API
out. Here:

* **Who.** Each person has their own conversation in each channel,
  ``slack:<channel>:<user>`` (as Telegram keys a chat and a user); the user id of the
  verified request is signed into the message metadata (``actions.guard.identity``) and
  ``policy.yml`` maps it to a person (``identities.slack``, ``U...``/``W...``).
* **Verified.** HTTP mode: every request to ``POST /webhooks/slack/webhook`` carries Slack's
  v0 signature (``X-Slack-Signature``: HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the
  signing secret, compared in constant time by slack_sdk's ``SignatureVerifier``) and
  ``X-Slack-Request-Timestamp``; a wrong or missing signature, or a timestamp more than
  five minutes away (a replay) or not a number, gets 401 and changes nothing. Socket
  Mode: what comes over the connection the app-level token opened is Slack's. Either
  way the request's ``team_id`` (and ``enterprise_id``) must be the workspace of the
  bot token (``auth.test`` at start), or it is refused (403); in a channel shared with
  another workspace (Slack Connect), a message whose ``user_team``, ``source_team`` or
  ``team`` is another workspace, or a press by its member, speaks for nobody here.
* **Which channels.** ``SLACK_ALLOWED_CHANNELS`` and direct messages from people in
  policy.yml. Anywhere else opsbot answers once, naming the channel id an admin must
  allow (a stranger's direct message: their user id), and is quiet after that; a
  command's refusal goes through its ``response_url`` (only Slack's: hooks.slack.com, or
  the host of SLACK_API_URL when that is set), and a refusal that did not get there does
  not count.
* **When.** In a channel: a mention of the bot, or a message in a thread opsbot is part
  of; in a direct message: every message; ``/opsbot <request>`` wherever it is typed.
  Answers go into the request's thread (a mention in a channel starts one).
* **Buttons** are Block Kit buttons carrying opsbot's signed payload, bound to the
  channel; the guard decides who may confirm or approve (the requester, four-eyes). A
  press that changes nothing gets an ephemeral note only the presser sees; a decided
  (or expired) preview is updated in place (``chat.update``) without its buttons.
* **Acknowledged at once.** Slack waits 3 seconds for an answer (then retries an event
  and shows an error for a press or a command): a verified request is taken, answered
  200 (or acknowledged on the socket) and its turn runs in a task of its own.
* **Exactly once.** Each event is taken by its ``event_id`` (presses and commands by
  their ``trigger_id``) in opsbot's store before it is handled, so Slack's retries
  (``X-Slack-Retry-Num``) and Socket Mode redeliveries change nothing; a mention that
  arrives both as ``app_mention`` and as ``message`` is one request. A request whose
  handling fails before it reaches Rasa (the store, Slack) is forgotten again, so that a
  copy Slack sends later runs, and its author is told it failed. Known limit: a process
  that dies after acknowledging a request and before its turn runs loses it (it is
  taken, so Slack's copies are ignored, and Slack does not resend what was acknowledged).
* **Delivery.** Block Kit with escaped mrkdwn and a plain ``text`` fallback, split within
  Slack's limits; every post, update and ephemeral note waits out 429 ``Retry-After``,
  in order per channel. Completion messages go to the thread the conversation last asked
  in; events (alerts, builds, checks) come through the outbox (``connectors.events``),
  one message each, ending in "…" where it was cut.

This module holds the settings, the HTTP request and the start and stop; the rest is in
parts: ``_slack_blocks`` (Block Kit), ``_slack_send`` (posts, updates, events),
``_slack_inbound`` (one request at most once) and ``_slack_socket`` (Socket Mode).
``SlackInput`` is all of them.

Settings (credentials.yml section ``connectors.slack.SlackInput``; a key left out is read
from the environment variable):

    bot_token         SLACK_BOT_TOKEN         the bot user OAuth token, xoxb-... (required)
    app_token         SLACK_APP_TOKEN         an app-level token, xapp-...: Socket Mode
    signing_secret    SLACK_SIGNING_SECRET    the app's signing secret: HTTP mode
    mode              SLACK_MODE              socket (the default with an app token) or http
    api_url           SLACK_API_URL           the Web API (default https://slack.com/api/)
    allowed_channels  SLACK_ALLOWED_CHANNELS  channel ids (comma or space separated) opsbot
                                              answers in besides known people's direct messages
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from connectors._common import (
    ButtonBook,
    ConnectorConfigError,
    Lanes,
    agent_ready,
    channel_store,
    setting,
)
from connectors._slack_inbound import COMMANDS, EVENTS, INTERACTIVE, MESSAGE_KIND, SEEN_KIND
from connectors._slack_send import (
    BUTTON_KIND,
    CHANNEL,
    DEFAULT_API_URL,
    EVENT_KIND,
    THREAD_KIND,
    Location,
    RateLimitWait,
    SlackOutput,
    sender_id_for,
)
from connectors._slack_socket import SlackSocket
from connectors.events import register_sink

__all__ = ["SlackInput", "SlackOutput", "parse_channel_ids", "sender_id_for"]

logger = logging.getLogger(__name__)

_MODES = ("socket", "http")
# How long what the connector notes in the store is kept, by kind; pruned at start and
# hourly. Request ids: Slack retries within minutes, not days. Long button payloads:
# their buttons expire after a day (actions.turn.BUTTON_TTL). Threads and event messages:
# a month, after which a late reply in an old thread needs a mention again. Where a
# conversation's proactive messages go, and the channels told "not allowed", are one row
# per conversation and are kept.
_KEPT = {SEEN_KIND: timedelta(days=7), MESSAGE_KIND: timedelta(days=7),
         BUTTON_KIND: timedelta(days=7), THREAD_KIND: timedelta(days=30),
         EVENT_KIND: timedelta(days=30)}
_HOUSEKEEPING_EVERY = 3600.0  # seconds
REPLAY_WINDOW = 300  # seconds: slack_sdk's SignatureVerifier and Slack's docs
# How often one post, update or ephemeral note is tried again after a 429 (each time after
# the Retry-After Slack named): a reply part is not dropped while Slack says "later".
RATE_LIMIT_RETRIES = 30
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")


def parse_channel_ids(text: str) -> frozenset[str]:
    """``SLACK_ALLOWED_CHANNELS``: channel ids separated by commas or spaces."""
    ids = set()
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        if not _CHANNEL_ID.match(part):
            raise ConnectorConfigError(
                f"SLACK_ALLOWED_CHANNELS: {part!r} is not a Slack channel id. List ids such as "
                "C0123456789 (a channel's details, at the bottom of its About tab), separated "
                "by commas; names like #ops do not work.")
        ids.add(part)
    return frozenset(ids)


class SlackInput(SlackSocket, InputChannel):
    """The Slack connector: ``connectors.slack.SlackInput`` in credentials.yml."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> SlackInput:
        app_token = setting(credentials, "app_token", "SLACK_APP_TOKEN")
        return cls(
            bot_token=str(setting(credentials, "bot_token", "SLACK_BOT_TOKEN", required=True)),
            app_token=app_token,
            signing_secret=setting(credentials, "signing_secret", "SLACK_SIGNING_SECRET"),
            mode=(setting(credentials, "mode", "SLACK_MODE") or "").lower() or None,
            api_url=setting(credentials, "api_url", "SLACK_API_URL", default=DEFAULT_API_URL)
            or DEFAULT_API_URL,
            allowed_channels=parse_channel_ids(setting(credentials, "allowed_channels",
                                                       "SLACK_ALLOWED_CHANNELS") or ""),
        )

    def __init__(self, bot_token: str, *, app_token: str | None = None,
                 signing_secret: str | None = None, mode: str | None = None,
                 api_url: str = DEFAULT_API_URL,
                 allowed_channels: frozenset[str] = frozenset(),
                 clock: Clock | None = None) -> None:
        if not bot_token.startswith("xoxb-") or len(bot_token) < 10 or " " in bot_token:
            raise ConnectorConfigError(
                "SLACK_BOT_TOKEN does not look like a bot token (xoxb-...). Copy the Bot User "
                "OAuth Token from the app's OAuth & Permissions page.")
        mode = mode or ("socket" if app_token else "http")
        if mode not in _MODES:
            raise ConnectorConfigError(f"SLACK_MODE={mode!r}: use socket or http.")
        if mode == "socket":
            if not app_token:
                raise ConnectorConfigError(
                    "Slack's Socket Mode needs SLACK_APP_TOKEN: an app-level token (xapp-...) "
                    "with the connections:write scope, from the app's Basic Information page. "
                    "Or set SLACK_SIGNING_SECRET (and not SLACK_MODE=socket) for HTTP mode.")
            if not app_token.startswith("xapp-") or " " in app_token:
                raise ConnectorConfigError(
                    "SLACK_APP_TOKEN does not look like an app-level token (xapp-...). Create "
                    "one under Basic Information -> App-Level Tokens, with connections:write.")
        if mode == "http" and not (signing_secret or "").strip():
            raise ConnectorConfigError(
                "Slack needs SLACK_APP_TOKEN (Socket Mode, no public URL needed) or "
                "SLACK_SIGNING_SECRET (HTTP mode: Slack posts to /webhooks/slack/webhook). "
                "Both are on the app's Basic Information page.")
        if not api_url.startswith(("https://", "http://")):
            raise ConnectorConfigError(f"SLACK_API_URL must be an http(s) URL, got {api_url!r}.")
        self.mode = mode
        self.app_token = app_token
        self.api_url = api_url if api_url.endswith("/") else api_url + "/"
        self.allowed_channels = allowed_channels
        self.verifier = (SignatureVerifier(signing_secret.strip(), clock or Clock())
                         if signing_secret and signing_secret.strip() else None)
        self.client = AsyncWebClient(token=bot_token, base_url=self.api_url, retry_handlers=[
            AsyncConnectionErrorRetryHandler(),
            RateLimitWait(max_retry_count=RATE_LIMIT_RETRIES)])
        self.events_client = AsyncWebClient(token=bot_token, base_url=self.api_url)
        self.team_id: str | None = None
        self.enterprise_id: str | None = None
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None
        self._book: ButtonBook[Location] = ButtonBook()
        self._texts: dict[Location, str] = {}
        self._lanes = Lanes()  # one Slack call at a time per channel
        self._turns = Lanes()  # one turn at a time per person's conversation
        self._tasks: set[asyncio.Task[None]] = set()
        self._socket = None
        self._starting: asyncio.Task[None] | None = None
        self._housekeeping: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (f"SlackInput(mode={self.mode!r}, api_url={self.api_url!r}, "
                "bot_token=**********)")

    # -- Rasa's channel interface --------------------------------------------------------

    def get_output_channel(self) -> OutputChannel:
        """For proactive messages: the channel and thread are read from the store."""
        return SlackOutput(self)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("opsbot_slack", __name__)

        @hook.listener("after_server_start")
        async def start(app: Any, _loop: Any) -> None:
            self._starting = asyncio.create_task(self._start(app, on_new_message))

        @hook.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            await self._stop()

        @hook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "mode": self.mode,
                                  "connected": self.team_id is not None})

        @hook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            return await self._receive(request, on_new_message)

        return hook

    # -- HTTP mode -----------------------------------------------------------------------

    async def _receive(self, request: Request,
                       on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        """One request from Slack: verified, taken once, acknowledged; the turn runs after."""
        if self.mode != "http" or self.verifier is None:
            return response.json({"error": "this opsbot talks to Slack over Socket Mode; "
                                           "no Request URL is served"}, status=404)
        body = request.body or b""
        timestamp = request.headers.get("X-Slack-Request-Timestamp")
        if not _signed(self.verifier, body, timestamp, request.headers.get("X-Slack-Signature")):
            logger.warning("refused a Slack request from %s: %s", request.remote_addr or request.ip,
                           self._why_unsigned(timestamp))
            return response.json({"error": "invalid signature"}, status=401)
        found = _read(request.headers.get("Content-Type") or "", body)
        if found is None:
            return response.json({"error": "not an event, an interaction or a command"},
                                 status=400)
        kind, payload = found
        if kind == "url_verification":
            return response.json({"challenge": payload.get("challenge")})
        if kind not in (EVENTS, INTERACTIVE, COMMANDS):
            return response.text("")
        if self.team_id is None:
            return response.json({"error": "opsbot is still starting (auth.test)"}, status=503)
        refused = self.foreign(kind, payload)
        if refused:
            logger.warning("refused a Slack %s request: %s", kind, refused)
            return response.json({"error": f"Forbidden: {refused}"}, status=403)
        retry = request.headers.get("X-Slack-Retry-Num")
        if retry:
            logger.info("Slack retried a request (attempt %s, %s)", retry,
                        request.headers.get("X-Slack-Retry-Reason"))
        taken = self.reserve(kind, payload, on_new_message)  # its place, before any await
        try:
            taken.set_result(await self.first_time(kind, payload))
        except Exception as exc:  # noqa: BLE001 - Slack retries an event on a 5xx
            logger.warning("Slack %s not taken yet: opsbot's store failed: %s", kind,
                           getattr(exc, "detail", None) or exc)
            return response.json({"error": "opsbot cannot take requests right now"}, status=503)
        finally:
            if not taken.done():
                taken.set_result(False)
        return response.text("")

    def _why_unsigned(self, timestamp: str | None) -> str:
        try:
            age = abs(self.verifier.clock.now() - int(timestamp or "")) if self.verifier else 0
        except ValueError:
            return "X-Slack-Request-Timestamp is missing or not a number"
        if age > REPLAY_WINDOW:
            return f"its timestamp is {age:.0f}s away (a replay?)"
        return "X-Slack-Signature is missing or wrong"

    # -- lifecycle -----------------------------------------------------------------------

    async def _start(self, app: Any,
                     on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        try:
            who = await self.client.auth_test()
        except SlackApiError as exc:
            logger.error("Slack refused SLACK_BOT_TOKEN (auth.test: %s); the Slack connector "
                         "is not running. Copy the Bot User OAuth Token again.",
                         exc.response.get("error"))
            return
        except Exception as exc:  # noqa: BLE001 - the network, a wrong URL
            logger.error("cannot reach Slack at %s (%s); the Slack connector is not running. "
                         "Check SLACK_API_URL and the network.", self.api_url, exc)
            return
        self.bot_user_id, self.bot_id = who.get("user_id"), who.get("bot_id")
        self.enterprise_id = who.get("enterprise_id") or None
        self.team_id = who.get("team_id")
        register_sink(CHANNEL, self)  # alerts, checks and builds (connectors.events)
        self._housekeeping = asyncio.create_task(self._keep_house())
        if self.mode == "socket":
            while not agent_ready(app):  # noqa: ASYNC110 - Rasa loads the agent without an event
                await asyncio.sleep(0.2)
            await self._open_socket(on_new_message)
        else:
            logger.info("Slack: bot %s of workspace %s takes requests at "
                        "/webhooks/slack/webhook", self.bot_user_id, self.team_id)

    async def _keep_house(self) -> None:
        """Drop what the connector noted longer ago than it can matter (:data:`_KEPT`), at
        start and every hour, so a long-running opsbot's store does not grow without end."""
        while True:
            try:
                for kind, kept in _KEPT.items():
                    await asyncio.to_thread(channel_store().forget_older, kind,
                                            datetime.now(UTC) - kept)
            except Exception as exc:  # noqa: BLE001 - housekeeping only: next hour again
                logger.info("could not prune the Slack connector's old notes: %s",
                            getattr(exc, "detail", None) or exc)
            await asyncio.sleep(_HOUSEKEEPING_EVERY)

    async def _stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)
        if self._starting is not None:
            self._starting.cancel()
            await asyncio.gather(self._starting, return_exceptions=True)
        await self._close_socket()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)


def _signed(verifier: SignatureVerifier, body: bytes, timestamp: str | None,
            signature: str | None) -> bool:
    """Whether Slack signed ``body``: a timestamp that is not a number is no signature
    (slack_sdk's verifier raises ValueError on it)."""
    try:
        return verifier.is_valid(body, timestamp, signature)
    except ValueError:
        return False


def _read(content_type: str, body: bytes) -> tuple[str, dict[str, Any]] | None:
    """(kind, payload) of a verified request body: an Events API callback (or its
    ``url_verification``), an interaction (``payload=``) or a slash command's form."""
    try:
        if "application/json" in content_type:
            data = json.loads(body)
            if not isinstance(data, dict):
                return None
            kind = data.get("type")
            if kind == "url_verification":
                return "url_verification", data
            return (EVENTS if kind == "event_callback" else str(kind)), data
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8"),
                                                          keep_blank_values=True).items()}
    except (ValueError, UnicodeDecodeError):
        return None
    if "payload" in form:
        try:
            payload = json.loads(form["payload"])
        except ValueError:
            return None
        return (INTERACTIVE, payload) if isinstance(payload, dict) else None
    if "command" in form:
        return COMMANDS, form
    return None
