"""opsbot in Telegram: a Rasa input/output channel on python-telegram-bot 22 (as a library).

Why not Rasa's own Telegram channel: it keys a group chat as one user, loses who
pressed a button, never checks a webhook's secret and has no long polling. Here:

* **Who.** Each person has their own conversation, keyed by chat and user
  (``telegram:<chat id>:<user id>``); replies go to the chat. The message metadata
  carries the person's own id, signed (``actions.guard.identity``): this connector read
  it from an update that came through the bot's own polling connection or a webhook
  request with the secret token. ``policy.yml`` maps it to a person, and a button
  press is a callback query whose ``from`` is the person who pressed it.
* **Which chats.** Private chats of people in policy.yml, and the chats listed in
  ``TELEGRAM_ALLOWED_CHATS``. Any other chat gets one polite refusal (with the ids an
  admin needs) and is otherwise ignored. Button payloads carry opsbot's signature; an
  edited or made-up one is refused and audited.
* **Groups.** The bot answers when addressed: a mention of its @username, a reply to
  one of its messages, or a command (``/deploy@opsbot_bot payments``). Everything else
  in a group is ignored.
* **Buttons** are inline keyboards; each callback query is answered (the spinner
  stops, the reply shows as a toast). When the operation behind a keyboard is decided
  (confirmed, cancelled, expired, replaced), the message is edited and its keyboard
  removed, so nobody presses a stale button. A payload longer than Telegram's 64-byte
  ``callback_data`` is kept in opsbot's store behind a short key.
* **Text** is sent as MarkdownV2, escaped; long replies are split at Telegram's limit;
  stickers, edits, joins and other non-text updates are ignored, never fatal.
* **Exactly once.** Each update id is recorded in opsbot's store before it is handled,
  so a redelivered update (a webhook retry, an unconfirmed poll) changes nothing.
* **Proactive messages** (a build finished) go to the chat of the conversation, through
  Rasa's ``output_channel=latest``.

Modes: long polling (the default; no public URL needed) runs inside the Rasa server;
webhook mode calls ``setWebhook`` with a secret and serves
``POST /webhooks/telegram/webhook``, answering 403 to any request without the right
``X-Telegram-Bot-Api-Secret-Token``.

This module holds the settings, the webhook, and the start and stop; the rest is in
parts: ``_telegram_send`` (replies, keyboards, edits, events), ``_telegram_updates`` (one
update at most once: messages and button presses) and ``_telegram_polling`` (getUpdates
under a lease). ``TelegramInput`` is all of them.

Settings (credentials.yml section ``connectors.telegram.TelegramInput``; a key left out
is read from the environment variable):

    token           TELEGRAM_TOKEN           the bot token from @BotFather (required)
    mode            TELEGRAM_MODE            polling (default) or webhook
    webhook_url     TELEGRAM_WEBHOOK_URL     public https URL of /webhooks/telegram/webhook
    webhook_secret  TELEGRAM_WEBHOOK_SECRET  1-256 characters of A-Z a-z 0-9 _ -
    api_url         TELEGRAM_API_URL         the Bot API server (default https://api.telegram.org;
                                             a self-hosted server or the simulator)
    allowed_chats   TELEGRAM_ALLOWED_CHATS   chat ids (comma or space separated) opsbot
                                             answers in besides known people's private chats
"""

from __future__ import annotations

import asyncio
import hmac
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
from telegram import Bot, Update
from telegram.error import InvalidToken, TelegramError
from telegram.request import HTTPXRequest

from connectors._common import ButtonBook, ConnectorConfigError, channel_store, setting
from connectors._telegram_polling import TelegramPolling
from connectors._telegram_send import (
    CHANNEL,
    Location,
    TelegramOutput,
    _patiently,
    sender_id_for,
    split_text,
)
from connectors._telegram_updates import _ALLOWED_UPDATES, _SEEN_KIND
from connectors.events import register_sink

__all__ = ["TelegramInput", "TelegramOutput", "sender_id_for", "split_text"]

logger = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.telegram.org"
_MODES = ("polling", "webhook")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_KEEP_SEEN = timedelta(days=7)


# setWebhook takes only https, on one of these ports (core.telegram.org/bots/api#setwebhook).
WEBHOOK_PORTS = (443, 80, 88, 8443)


def webhook_url_problem(url: str) -> str | None:
    """Why Telegram would refuse ``url`` as a webhook, with the fix; None if it is fine."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535."
    if parts.scheme.lower() not in ("https", "http") or not parts.hostname:
        return ("not a URL Telegram can post to. Give the public https URL of this server's "
                "/webhooks/telegram/webhook, e.g. https://opsbot.example.com/webhooks/telegram/"
                "webhook.")
    if parts.scheme.lower() != "https":
        return ("Telegram posts updates only to https URLs. Put a TLS-terminating reverse proxy "
                "(or a load balancer) in front of opsbot and give its https URL, or use "
                "TELEGRAM_MODE=polling, which needs no public URL.")
    if (port or 443) not in WEBHOOK_PORTS:
        return (f"Telegram posts updates only to ports 443, 80, 88 or 8443, not {port}. Let the "
                "reverse proxy listen on one of them (and forward to opsbot's port), or use "
                "TELEGRAM_MODE=polling.")
    return None


def _api_base(api_url: str) -> str:
    """PTB's ``base_url`` for a Bot API server root (``.../bot`` + token + ``/method``)."""
    url = api_url.strip().rstrip("/")
    if "{token}" in url or url.endswith("/bot"):
        return url
    return f"{url}/bot"


def parse_chat_ids(text: str) -> frozenset[int]:
    """``TELEGRAM_ALLOWED_CHATS``: chat ids separated by commas or spaces."""
    ids = set()
    for part in re.split(r"[\s,]+", text.strip()):
        if not part:
            continue
        try:
            ids.add(int(part))
        except ValueError:
            raise ConnectorConfigError(
                f"TELEGRAM_ALLOWED_CHATS: {part!r} is not a chat id. List numeric ids "
                "(groups are negative, e.g. -1001234567890), separated by commas.") from None
    return frozenset(ids)


_WEBHOOK_FIX = ("give the public https URL (port 443, 80, 88 or 8443) at which Telegram "
                "reaches this server's /webhooks/telegram/webhook, or use TELEGRAM_MODE=polling")


class TelegramInput(TelegramPolling, InputChannel):
    """The Telegram connector: ``connectors.telegram.TelegramInput`` in credentials.yml."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> TelegramInput:
        token = setting(credentials, "token", "TELEGRAM_TOKEN", required=True)
        mode = (setting(credentials, "mode", "TELEGRAM_MODE", default="polling") or "").lower()
        return cls(
            token=str(token),
            mode=mode,
            webhook_url=setting(credentials, "webhook_url", "TELEGRAM_WEBHOOK_URL"),
            webhook_secret=setting(credentials, "webhook_secret", "TELEGRAM_WEBHOOK_SECRET"),
            api_url=setting(credentials, "api_url", "TELEGRAM_API_URL", default=DEFAULT_API_URL)
            or DEFAULT_API_URL,
            poll_timeout=float(setting(credentials, "poll_timeout", "TELEGRAM_POLL_TIMEOUT",
                                       default="25") or 25),
            allowed_chats=parse_chat_ids(setting(credentials, "allowed_chats",
                                                 "TELEGRAM_ALLOWED_CHATS") or ""),
        )

    def __init__(self, token: str, *, mode: str = "polling", webhook_url: str | None = None,
                 webhook_secret: str | None = None, api_url: str = DEFAULT_API_URL,
                 poll_timeout: float = 25.0, allowed_chats: frozenset[int] = frozenset()) -> None:
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", token):
            raise ConnectorConfigError(
                "TELEGRAM_TOKEN does not look like a bot token (digits, a colon, then letters, "
                "digits, _ or -). Copy it again from @BotFather.")
        if mode not in _MODES:
            raise ConnectorConfigError(f"TELEGRAM_MODE={mode!r}: use polling or webhook.")
        if mode == "webhook":
            if not webhook_url:
                raise ConnectorConfigError(
                    "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_URL: the public https URL of "
                    "this server's /webhooks/telegram/webhook.")
            problem = webhook_url_problem(webhook_url)
            if problem:
                raise ConnectorConfigError(f"TELEGRAM_WEBHOOK_URL={webhook_url!r}: {problem}")
            if not webhook_secret or not _SECRET.match(webhook_secret):
                raise ConnectorConfigError(
                    "TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET: 1-256 characters of "
                    "A-Z, a-z, 0-9, _ and -. Telegram sends it with every update and opsbot "
                    "refuses requests without it.")
        if not api_url.startswith(("https://", "http://")):
            raise ConnectorConfigError(f"TELEGRAM_API_URL must be an http(s) URL, got {api_url!r}.")
        self.mode = mode
        self.allowed_chats = allowed_chats
        self.webhook_url = webhook_url
        self._secret = webhook_secret or ""
        self.api_url = api_url
        self.poll_timeout = max(0.0, poll_timeout)
        self.bot = Bot(
            token,
            base_url=_api_base(api_url),
            request=HTTPXRequest(connection_pool_size=32, read_timeout=15.0),
            get_updates_request=HTTPXRequest(connection_pool_size=2,
                                             read_timeout=self.poll_timeout + 15.0),
        )
        self._book: ButtonBook[Location] = ButtonBook()
        self._poller: asyncio.Task[None] | None = None
        self._polling_lease: str | None = None  # its name while this process polls
        self._tasks: set[asyncio.Task[None]] = set()
        self._texts: dict[Location, str] = {}  # the escaped text of messages with buttons

    def __repr__(self) -> str:
        return f"TelegramInput(mode={self.mode!r}, api_url={self.api_url!r}, token=**********)"

    # -- Rasa's channel interface --------------------------------------------------------

    def get_output_channel(self) -> OutputChannel:
        """For proactive messages: the chat is read from the conversation id."""
        return TelegramOutput(self)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("opsbot_telegram", __name__)

        @hook.listener("after_server_start")
        async def start(app: Any, _loop: Any) -> None:
            await self._start(app, on_new_message)

        @hook.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            await self._stop()

        @hook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "mode": self.mode})

        @hook.route("/webhook", methods=["POST"])
        async def webhook(request: Request) -> HTTPResponse:
            if self.mode != "webhook":
                return response.json({"error": "this opsbot polls Telegram; no webhook is set"},
                                     status=404)
            given = request.headers.get("X-Telegram-Bot-Api-Secret-Token") or ""
            if not hmac.compare_digest(given.encode(), self._secret.encode()):
                logger.warning("refused a Telegram webhook request without the right secret")
                return response.json({"error": "forbidden"}, status=403)
            try:
                body = request.json
            except Exception:  # noqa: BLE001 - Sanic raises its own on bad JSON
                body = None
            if not isinstance(body, dict) or "update_id" not in body:
                return response.json({"error": "the body must be a Telegram Update"}, status=400)
            try:
                update = Update.de_json(body, self.bot)
            except (KeyError, TypeError, ValueError) as exc:
                logger.warning("unreadable Telegram update %s: %r", body.get("update_id"), exc)
                return response.json({"error": "the body is not a Telegram Update"}, status=400)
            try:
                first = await self._first_time(update)
            except Exception as exc:  # noqa: BLE001 - Telegram delivers it again on a 5xx
                logger.warning("Telegram update %s not taken yet: opsbot's store failed: %s",
                               update.update_id, getattr(exc, "detail", None) or exc)
                return response.json({"error": "opsbot cannot take updates right now; send it "
                                               "again"}, status=503)
            if first:
                # Answered when the turn ends (Telegram sends the next update then),
                # but the turn goes on if Telegram stops waiting first.
                await asyncio.shield(self._handle_taken(update, on_new_message))
            return response.text("")

        return hook

    # -- lifecycle -----------------------------------------------------------------------

    async def _start(
        self, app: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> None:
        try:
            await self.bot.initialize()
        except InvalidToken:
            logger.error("Telegram refused TELEGRAM_TOKEN; check it with @BotFather. The "
                         "Telegram connector is not running.")
            return
        except TelegramError as exc:
            logger.error("cannot reach the Telegram Bot API at %s (%s); the Telegram connector "
                         "is not running. Check TELEGRAM_API_URL and the network.",
                         self.api_url, exc)
            return
        register_sink(CHANNEL, self)  # alerts, checks and builds (connectors.events)
        try:
            await asyncio.to_thread(channel_store().forget_older, _SEEN_KIND,
                                    datetime.now(UTC) - _KEEP_SEEN)
        except Exception:  # noqa: BLE001 - housekeeping only
            logger.debug("could not prune old Telegram update ids", exc_info=True)
        if self.mode == "webhook":
            try:
                await _patiently(lambda: self.bot.set_webhook(
                    self.webhook_url or "", secret_token=self._secret,
                    allowed_updates=_ALLOWED_UPDATES))
            except TelegramError as exc:
                logger.error("Telegram refused TELEGRAM_WEBHOOK_URL=%s: %s. The Telegram "
                             "connector is not receiving updates. Fix: %s", self.webhook_url,
                             exc.message, _WEBHOOK_FIX)
                return
            logger.info("Telegram: @%s receives updates at %s", self.bot.username, self.webhook_url)
        else:
            self._poller = asyncio.create_task(self._poll(app, on_new_message))
            logger.info("Telegram: @%s polls %s for updates", self.bot.username, self.api_url)

    async def _stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
            await asyncio.to_thread(self._release_polling_lease)  # the next one starts at once
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)
        try:
            await self.bot.shutdown()
        except Exception:  # noqa: BLE001 - shutting down anyway
            logger.debug("Telegram bot shutdown failed", exc_info=True)
