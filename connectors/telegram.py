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
import hashlib
import hmac
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.constants import MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.helpers import escape_markdown
from telegram.request import HTTPXRequest

from actions import metrics
from actions.errors import OpsbotError
from actions.guard.identity import (
    IDENTITY_KEY,
    conversation_scope,
    open_payload,
    sign_identity,
)
from actions.leases import lease_seconds, process_owner
from connectors._common import (
    NOT_YOURS,
    OPEN_STATES,
    ButtonBook,
    ConnectorConfigError,
    ReplyChannel,
    channel_store,
    claim_keyboard,
    decision_note,
    known_person,
    operation_of,
    pressed_by_other,
    refuse_forged_payload,
    setting,
    stores,
)
from connectors.events import Gone, SendLater, SendRefused, register_sink

__all__ = ["TelegramInput", "TelegramOutput", "sender_id_for", "split_text"]

logger = logging.getLogger(__name__)

CHANNEL = "telegram"
DEFAULT_API_URL = "https://api.telegram.org"
_MODES = ("polling", "webhook")
_SECRET = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
_LONG_PAYLOAD = "~"  # callback_data that starts with this is a key into the store
_MAX_CALLBACK_BYTES = 64
_SEEN_KIND = "telegram-update"
_BUTTON_KIND = "telegram-button"
_REFUSED_KIND = "telegram-refused-chat"
_POLL_KIND = "telegram-poll"  # where the poller got to: {"offset": ...}
_EVENT_KIND = "telegram-event-message"  # messages of alerts and checks: keyboards stay
_KEEP_SEEN = timedelta(days=7)

Location = tuple[int, int]  # (chat id, message id) of a message the bot sent


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


def sender_id_for(chat_id: int, user_id: int) -> str:
    """The Rasa conversation of one person in one chat."""
    return f"{CHANNEL}:{chat_id}:{user_id}"


def _chat_of(sender_id: str) -> int:
    parts = sender_id.split(":")
    if len(parts) != 3 or parts[0] != CHANNEL:
        raise ValueError(
            f"{sender_id!r} is not a Telegram conversation id (telegram:<chat>:<user>)")
    return int(parts[1])


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """``text`` in pieces of at most ``limit`` UTF-16 units, cut at paragraphs, lines or words."""
    pieces: list[str] = []
    rest = text.strip()
    while _utf16_len(rest) > limit:
        window = rest[:limit]
        while _utf16_len(window) > limit:  # characters outside the BMP count twice
            window = window[:-1]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < len(window) // 2:
            cut = window.rfind(" ")
        if cut < len(window) // 2:
            cut = len(window)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def _api_base(api_url: str) -> str:
    """PTB's ``base_url`` for a Bot API server root (``.../bot`` + token + ``/method``)."""
    url = api_url.strip().rstrip("/")
    if "{token}" in url or url.endswith("/bot"):
        return url
    return f"{url}/bot"


class TelegramOutput(ReplyChannel):
    """Sends a conversation's replies to its Telegram chat, and notes what it sent."""

    def __init__(self, connector: TelegramInput, chat_id: int | None = None,
                 thread_id: int | None = None) -> None:
        super().__init__()
        self._connector = connector
        self._chat_id = chat_id
        self._thread_id = thread_id

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    def _chat(self, recipient_id: str) -> int:
        return self._chat_id if self._chat_id is not None else _chat_of(recipient_id)

    async def deliver(self, recipient_id: str, text: str, buttons: list[dict[str, Any]],
                      states: Mapping[str, str]) -> None:
        await self._connector.send(self._chat(recipient_id), text, buttons, states,
                                   thread_id=self._thread_id, owner=recipient_id)


_T = TypeVar("_T")
_FLOOD_BUDGET_SECONDS = 300.0  # how long one message waits out Telegram's flood control


async def _patiently(send: Callable[[], Awaitable[_T]]) -> _T:
    """``send()``, waiting out Telegram's flood control (429 with ``retry_after``) as often
    as it asks, so no part of a reply is dropped; gives up after five minutes."""
    waited = 0.0
    while True:
        try:
            return await send()
        except RetryAfter as exc:
            pause = _seconds(exc.retry_after) + 0.1
            if waited + pause > _FLOOD_BUDGET_SECONDS:
                raise
            logger.info("Telegram flood control: waiting %.1fs before sending", pause)
            await asyncio.sleep(pause)
            waited += pause


async def _event_call(send: Callable[[], Awaitable[_T]]) -> _T:
    """``send()`` for the outbox: Telegram's "not now" (429, 5xx, no connection) becomes
    SendLater (with ``retry_after`` when it said), a refusal SendRefused."""
    try:
        return await send()
    except RetryAfter as exc:
        raise SendLater(f"Telegram flood control: {exc.message}",
                        _seconds(exc.retry_after)) from None
    except (TimedOut, NetworkError) as exc:  # 5xx and lost connections are NetworkError
        raise SendLater(f"Telegram: {type(exc).__name__}: {exc.message}") from None
    except (BadRequest, Forbidden, InvalidToken) as exc:
        raise SendRefused(f"Telegram: {exc.message}") from None


_WEBHOOK_FIX = ("give the public https URL (port 443, 80, 88 or 8443) at which Telegram "
                "reaches this server's /webhooks/telegram/webhook, or use TELEGRAM_MODE=polling")


class TelegramInput(InputChannel):
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
                await self._handle(update, on_new_message, taken=True)
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

    @staticmethod
    def _pace(name: str, interval: float) -> Any:
        """The poller's loops' Backoff (``actions.backoff``): up to a minute between tries."""
        from actions.backoff import Backoff

        return Backoff(name, logger, interval=interval, cap=60.0)

    async def _poll(
        self, app: Any, on_new_message: Callable[[UserMessage], Awaitable[Any]],
        pace: Callable[[str, float], Any] | None = None,
    ) -> None:
        """getUpdates in a loop, as PTB's Updater does, on one replica at a time.

        Telegram lets one getUpdates run per bot (a second one ends the first with 409),
        so with several replicas (or workers) only the holder of the lease
        ``telegram-poller:<bot id>`` polls; the others wait and take over within
        OPSBOT_LEASE_SECONDS when it dies. The offset of the last handled update is kept
        in the store, so the next poller starts there, and an update seen twice anyway
        (fetched by a poller that died before saying so) is dropped by its id.

        While the store or Telegram fails, each loop tries less often (up to a minute) and
        logs a line when the failing starts, every few minutes while it lasts, and when it
        ends, not one per attempt. ``pace(name, interval)`` makes each loop's
        ``actions.backoff.Backoff`` (tests pass fast ones).
        """
        pace = pace or self._pace
        while not _agent_ready(app):  # noqa: ASYNC110 - the agent is loaded by Rasa, which offers no event to await
            await asyncio.sleep(0.2)
        name, owner = f"telegram-poller:{self.bot.id}", _poller_owner()
        seconds = lease_seconds()
        # Taking and renewing the lease share one: both fail when the store does.
        store = pace("Telegram: the polling lease in opsbot's store", seconds / 4)
        restarts = pace("Telegram: the poller", 1.0)
        waiting_said = False
        while True:
            try:
                lease = await asyncio.to_thread(stores().leases.take, name, owner, seconds)
            except Exception as exc:  # noqa: BLE001 - the store may come back
                await asyncio.sleep(store.failed(exc))
                continue
            store.succeeded()
            if lease is None:
                if not waiting_said:
                    logger.info("Telegram: another replica polls for updates; this one waits "
                                "to take over")
                    waiting_said = True
                await asyncio.sleep(seconds / 4)
                continue
            waiting_said = False
            if lease.previous is not None:
                metrics.lease_changed("telegram_poller")
                logger.info("Telegram: took over polling from %s", lease.previous)
            self._polling_lease = name
            poller = asyncio.create_task(self._poll_updates(on_new_message, pace))
            keeper = asyncio.create_task(self._keep_lease(name, owner, seconds, store))
            try:
                done, _ = await asyncio.wait({poller, keeper},
                                             return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (poller, keeper):
                    task.cancel()
                await asyncio.gather(poller, keeper, return_exceptions=True)
            if poller in done and not poller.cancelled():
                failure = poller.exception()
                if failure is None:
                    await asyncio.to_thread(self._release_polling_lease)
                    return  # polling stopped for good (the token was refused)
                await asyncio.sleep(restarts.failed(failure))  # its traceback: the first time
                continue
            restarts.succeeded()
            logger.warning("Telegram: lost the polling lease; another replica polls now")

    async def _keep_lease(self, name: str, owner: str, seconds: float, store: Any) -> None:
        """Renew the polling lease every quarter of its time; return when it is lost.

        The renewing runs in a thread of its own: a busy event loop (a model loading, a
        long turn) must not lose the lease and let a second poller start. ``store`` is the
        Backoff that logs the store's failures (only its log: the renewing keeps its pace,
        and gives up after three failures, when the lease is about to run out).
        """
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()
        stop = threading.Event()

        def renew() -> None:
            failures = 0
            while not stop.wait(seconds / 4):
                try:
                    kept = stores().leases.take(name, owner, seconds)
                    if stop.is_set() and kept is not None:  # released meanwhile: not again
                        stores().leases.release(name, owner)
                        return
                except Exception as exc:  # noqa: BLE001 - a short outage: keep polling a while
                    failures += 1
                    store.failed(exc)
                    if failures < 3:
                        continue
                    kept = None  # it runs out about now: stop before another one starts
                else:
                    failures = 0
                    store.succeeded()
                if kept is None:
                    break
            if not stop.is_set():
                loop.call_soon_threadsafe(_settle, lost)

        threading.Thread(target=renew, name="telegram-lease", daemon=True).start()
        try:
            await lost
        finally:
            stop.set()

    def _release_polling_lease(self) -> None:
        name, self._polling_lease = self._polling_lease, None
        if name is None:
            return
        try:
            stores().leases.release(name, _poller_owner())
        except Exception:  # noqa: BLE001 - it runs out by itself
            logger.debug("could not release the Telegram polling lease", exc_info=True)

    async def _poll_updates(
        self, on_new_message: Callable[[UserMessage], Awaitable[Any]],
        pace: Callable[[str, float], Any] | None = None,
    ) -> None:
        from actions.errors import BackendUnavailable

        pace = pace or self._pace
        telegram = pace("Telegram: getUpdates", 1.0)
        saving = pace("Telegram: saving the polling offset in opsbot's store", 1.0)
        try:
            await self.bot.delete_webhook()
        except TelegramError as exc:
            logger.warning("Telegram deleteWebhook failed: %s", exc)
        key = f"offset:{self.bot.id}"
        try:
            saved = await asyncio.to_thread(channel_store().recall, _POLL_KIND, key)
        except Exception:  # noqa: BLE001 - from 0: Telegram keeps what was not confirmed
            saved = None
        offset = int((saved or {}).get("offset") or 0)
        while True:
            try:
                updates = await self.bot.get_updates(
                    offset=offset, timeout=int(self.poll_timeout), allowed_updates=_ALLOWED_UPDATES,
                    read_timeout=self.poll_timeout + 15.0)
            except asyncio.CancelledError:
                raise
            except InvalidToken:
                logger.error("Telegram refused TELEGRAM_TOKEN while polling; polling stopped.")
                return
            except RetryAfter as exc:
                await asyncio.sleep(_seconds(exc.retry_after) + 0.5)
                continue
            except (Conflict, NetworkError, TelegramError) as exc:  # down, timed out, a 409
                # An outage to wait out, as a backend's: one line, no traceback.
                await asyncio.sleep(telegram.failed(BackendUnavailable(
                    f"{type(exc).__name__}: {exc}", backend="telegram")))
                continue
            telegram.succeeded()
            for update in updates:
                try:
                    first = await self._first_time(update)
                except Exception as exc:  # noqa: BLE001 - the store may come back
                    # Not taken, so not confirmed to Telegram: the next getUpdates from this
                    # offset fetches it again once the store answers. Nothing is lost.
                    await asyncio.sleep(saving.failed(exc))
                    break
                offset = max(offset, update.update_id + 1)
                if not first:
                    continue
                task = asyncio.create_task(self._handle(update, on_new_message, taken=True))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if updates:
                try:
                    await asyncio.to_thread(channel_store().remember, _POLL_KIND, key,
                                            {"offset": offset})
                except Exception as exc:  # noqa: BLE001 - the ids still keep updates from running twice
                    saving.failed(exc)
                else:
                    saving.succeeded()

    async def _first_time(self, update: Update) -> bool:
        """Whether ``update`` is new (and now taken); a redelivered one is logged. Raises
        when the store fails: the update is then not taken, for Telegram to send again."""
        first = await asyncio.to_thread(channel_store().first_time, _SEEN_KIND,
                                        f"{self.bot.id}:{update.update_id}")
        if not first:
            logger.info("Telegram update %s was already handled; ignored", update.update_id)
        return bool(first)

    async def _handle(self, update: Update,
                      on_new_message: Callable[[UserMessage], Awaitable[Any]], *,
                      taken: bool = False) -> None:
        """One update, at most once (``taken``: :meth:`_first_time` said it is new); never
        raises (a bad update must not stop the bot)."""
        try:
            if not taken and not await self._first_time(update):
                return
            if update.callback_query is not None:
                await self._on_press(update, on_new_message)
            elif update.message is not None:
                await self._on_message(update.message, update.update_id, on_new_message)
            # edited messages, channel posts and the like are not requests
        except OpsbotError as exc:  # an outage (the store, a backend): a line, no traceback
            logger.warning("Telegram update %s not handled: %s", update.update_id,
                           getattr(exc, "detail", None) or exc)
        except Exception:  # noqa: BLE001 - logged with the update id; the next one goes on
            logger.exception("failed to handle Telegram update %s", update.update_id)

    async def _on_message(self, message: Message, update_id: int,
                          on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        user = message.from_user
        if user is None or user.is_bot or not message.text:
            if message.chat.type == "private" and user is not None and not user.is_bot \
                    and (message.sticker or message.photo or message.document or message.voice):
                await self.send(message.chat.id, "I only read text. Tell me what you need, or "
                                "say 'help'.", [], {})
            return
        text = self._addressed_text(message)
        if text is None:
            return
        if not await self._chat_allowed(message, user):
            return
        output = TelegramOutput(self, message.chat.id, _thread(message))
        await on_new_message(UserMessage(
            text, output, sender_id_for(message.chat.id, user.id), input_channel=CHANNEL,
            message_id=f"tg-{update_id}", metadata=self._metadata(message, user, update_id)))
        await self._retire(output.states)

    def _addressed_text(self, message: Message) -> str | None:
        """The request in ``message`` without the bot's name, or None if not for the bot."""
        text = message.text or ""
        private = message.chat.type == "private"
        username = (self.bot.username or "").lower()
        addressed = private
        entities = message.parse_entities([MessageEntity.MENTION, MessageEntity.BOT_COMMAND])
        cuts: list[tuple[int, int, str]] = []  # (offset, length, replacement) in UTF-16 units
        for entity, value in entities.items():
            if entity.type == MessageEntity.MENTION and value[1:].lower() == username:
                addressed = True
                cuts.append((entity.offset, entity.length, ""))
            elif entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
                command, _, target = value[1:].partition("@")
                if target and target.lower() != username:
                    return None  # a command for another bot in this group
                addressed = True
                command = command.lower()
                cuts.append((entity.offset, entity.length,
                             _COMMANDS.get(command, command.replace("_", " "))))
        replied = message.reply_to_message
        if replied is not None and replied.from_user is not None \
                and replied.from_user.id == self.bot.id:
            addressed = True
        if not addressed:
            return None
        encoded = text.encode("utf-16-le")
        for offset, length, replacement in sorted(cuts, reverse=True):
            encoded = (encoded[:offset * 2] + replacement.encode("utf-16-le")
                       + encoded[(offset + length) * 2:])
        clean = " ".join(encoded.decode("utf-16-le").split()).lstrip(",:;- ")
        if not clean:
            return "hi" if addressed else None
        if clean.startswith("/"):  # Rasa would read it as an intent payload
            clean = clean.lstrip("/")
        return clean

    async def _on_press(self, update: Update,
                        on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> None:
        query = update.callback_query
        assert query is not None
        toast, answered = "", False
        try:
            message = query.message
            if message is None or not isinstance(message, Message):
                toast = "That message is too old for its buttons; ask again."
                return
            if not await self._chat_allowed(message, query.from_user):
                toast = "opsbot does not work in this chat."
                return
            payload = await self._payload_of(query.data or "")
            if payload is None:
                toast = "That button has expired; ask again for fresh ones."
                await self._remove_keyboard((message.chat.id, message.message_id), None)
                return
            checked = open_payload(payload, scope=conversation_scope(CHANNEL, message.chat.id))
            if checked.text is None:
                await refuse_forged_payload(CHANNEL, str(query.from_user.id), payload,
                                            checked.refused or "")
                toast = checked.reply
                return
            payload = checked.text
            sender = sender_id_for(message.chat.id, query.from_user.id)
            if await asyncio.to_thread(pressed_by_other, f"{message.chat.id}:{message.message_id}",
                                       sender, payload):
                toast = NOT_YOURS
                return
            # Answered now, before the turn: the button's spinner runs out while a slow
            # backend answers, and a query can be answered only once (Bot API,
            # answerCallbackQuery). The turn's replies arrive as messages.
            answered = await self._answer_query(query.id, None)
            output = TelegramOutput(self, message.chat.id, _thread(message))
            await on_new_message(UserMessage(
                payload, output, sender,
                input_channel=CHANNEL, message_id=f"tg-{update.update_id}",
                metadata=self._metadata(message, query.from_user, update.update_id,
                                        pressed=message.message_id)))
            await self._retire(output.states)
            pressed = (message.chat.id, message.message_id)
            operation_id = operation_of(payload)
            state = output.states.get(operation_id or "")
            if operation_id is None and await self._is_event_message(pressed):
                pass  # an alert's next steps stay for whoever else wants them
            elif operation_id is None:
                # A choice (service, project, ...) was made: its keyboard is spent.
                await self._remove_keyboard(pressed, f"{_name(query.from_user)} chose "
                                            f"{_title_of(message, query.data or '')}")
            elif state is not None and state not in OPEN_STATES:
                await self._remove_keyboard(pressed, decision_note(state))
        finally:
            if not answered:
                await self._answer_query(query.id, _toast(toast))

    async def _answer_query(self, query_id: str, text: str | None) -> bool:
        """Stop the button's spinner (with ``text`` as a toast); True once it is answered."""
        try:
            await self.bot.answer_callback_query(query_id, text=text)
        except TelegramError as exc:  # already answered (a redelivery) or too old
            logger.debug("answerCallbackQuery %s: %s", query_id, exc)
        return True

    def _metadata(self, message: Message, user: Any, update_id: int,
                  pressed: int | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {
            IDENTITY_KEY: sign_identity(CHANNEL, str(user.id),
                                        sender_id_for(message.chat.id, user.id),
                                        f"tg-{update_id}",
                                        conversation=conversation_scope(CHANNEL,
                                                                        message.chat.id)),
            "channel": CHANNEL,
            "user_id": str(user.id),
            "user_name": user.username or user.full_name,
            "chat_id": message.chat.id,
            "chat_type": message.chat.type,
            "update_id": update_id,
        }
        thread = _thread(message)
        if thread is not None:
            meta["thread_id"] = thread
        if pressed is not None:
            meta["pressed_message_id"] = pressed
        return meta

    async def _chat_allowed(self, message: Message, user: Any) -> bool:
        """Known people's private chats and TELEGRAM_ALLOWED_CHATS; others get one refusal."""
        chat = message.chat
        if chat.id in self.allowed_chats:
            return True
        if chat.type == "private" and await asyncio.to_thread(known_person, CHANNEL, str(user.id)):
            return True
        first = await asyncio.to_thread(channel_store().first_time, _REFUSED_KIND, str(chat.id))
        logger.info("Telegram: ignored a message in chat %s (not allowed)%s", chat.id,
                    "; sent the refusal" if first else "")
        if first:
            if chat.type == "private":
                text = (f"Hello! I only work for my team, and you are not in its list yet. "
                        f"To be added, give an admin your Telegram id: {user.id} "
                        f"(policy.yml, people.<name>.identities.telegram).")
            else:
                text = (f"I only work in the chats my team allows, and this is not one yet. "
                        f"To allow it, an admin adds {chat.id} to TELEGRAM_ALLOWED_CHATS.")
            await self.send(chat.id, text, [], {}, thread_id=_thread(message))
        return False

    async def _payload_of(self, data: str) -> str | None:
        if not data.startswith(_LONG_PAYLOAD):
            return data or None
        stored = await asyncio.to_thread(channel_store().recall, _BUTTON_KIND, data[1:])
        return str(stored["payload"]) if stored and stored.get("payload") else None

    # -- outbound ------------------------------------------------------------------------

    async def send(self, chat_id: int, text: str, buttons: Sequence[Mapping[str, Any]],
                   states: Mapping[str, str], *, thread_id: int | None = None,
                   owner: str | None = None) -> None:
        """Send one reply: escaped, split at the limit, buttons on the last piece.

        In a group, choice buttons belong to ``owner``, the conversation that was asked.
        """
        pieces = split_text(text) or ["…"]
        markup = await self._keyboard(buttons) if buttons else None
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            escaped = escape_markdown(piece, version=2)
            try:
                sent = await _patiently(partial(
                    self.bot.send_message, chat_id, escaped, parse_mode=ParseMode.MARKDOWN_V2,
                    reply_markup=markup if last else None, message_thread_id=thread_id))
            except BadRequest as exc:
                if "parse entities" not in str(exc):
                    raise
                sent = await _patiently(partial(
                    self.bot.send_message, chat_id, piece,
                    reply_markup=markup if last else None, message_thread_id=thread_id))
                escaped = escape_markdown(piece, version=2)
            except Forbidden as exc:
                logger.warning("Telegram chat %s does not take messages from the bot: %s",
                               chat_id, exc)
                return
            if last and markup is not None:
                location = (chat_id, sent.message_id)
                payloads = [str(b.get("payload") or "") for b in buttons]
                self._texts[location] = escaped
                self._book.track(location, payloads, states)
                if owner and chat_id < 0:  # group and channel ids are negative
                    await asyncio.to_thread(claim_keyboard, f"{chat_id}:{sent.message_id}",
                                            owner, payloads)
                while len(self._texts) > 5000:
                    self._texts.pop(next(iter(self._texts)))

    # -- events (connectors.events) ------------------------------------------------------

    async def post_event(self, address: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Post an event's message to its chat (or forum topic); where it is, for edits.

        Not retried here: the outbox retries at the time a 429 names (``retry_after``) and
        backs off on 5xx and lost connections; a chat that refuses the bot is given up.
        """
        chat_id, thread_id = int(address["chat_id"]), address.get("thread_id")
        markup = await self._keyboard(buttons) if buttons else None
        piece = split_text(text)[0] if text else "…"
        escaped = escape_markdown(piece, version=2)
        sent = await _event_call(partial(
            self.bot.send_message, chat_id, escaped, parse_mode=ParseMode.MARKDOWN_V2,
            reply_markup=markup, message_thread_id=int(thread_id) if thread_id else None))
        location = f"{chat_id}:{sent.message_id}"
        await asyncio.to_thread(channel_store().remember, _EVENT_KIND, location, {"event": True})
        return {"chat_id": chat_id, "message_id": sent.message_id}

    async def edit_event(self, address: Mapping[str, Any], ref: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Rewrite an event's message (editMessageText): the alert resolved, more of it."""
        chat_id, message_id = int(ref["chat_id"]), int(ref["message_id"])
        markup = await self._keyboard(buttons) if buttons else None
        piece = split_text(text)[0] if text else "…"
        try:
            await _event_call(partial(
                self.bot.edit_message_text, escape_markdown(piece, version=2), chat_id=chat_id,
                message_id=message_id, parse_mode=ParseMode.MARKDOWN_V2, reply_markup=markup))
        except SendRefused as exc:
            reason = str(exc).lower()
            if "not modified" in reason:
                return {"chat_id": chat_id, "message_id": message_id}
            if any(gone in reason for gone in ("not found", "can't be edited",
                                               "cannot be edited")):
                raise Gone(str(exc)) from None
            raise
        return {"chat_id": chat_id, "message_id": message_id}

    async def _is_event_message(self, location: Location) -> bool:
        chat_id, message_id = location
        try:
            return await asyncio.to_thread(channel_store().recall, _EVENT_KIND,
                                           f"{chat_id}:{message_id}") is not None
        except Exception:  # noqa: BLE001 - unknown: treat it as an ordinary message
            return False

    async def _keyboard(self, buttons: Sequence[Mapping[str, Any]]) -> InlineKeyboardMarkup:
        keys = []
        for button in buttons[:100]:
            title = str(button.get("title") or button.get("payload") or "?")[:64]
            payload = str(button.get("payload") or title)
            data = await self._callback_data(payload)
            keys.append(InlineKeyboardButton(title, callback_data=data))
        per_row = 2 if all(len(k.text) <= 18 for k in keys) else 1
        rows = [keys[i:i + per_row] for i in range(0, len(keys), per_row)]
        return InlineKeyboardMarkup(rows)

    async def _callback_data(self, payload: str) -> str:
        if len(payload.encode()) <= _MAX_CALLBACK_BYTES and not payload.startswith(_LONG_PAYLOAD):
            return payload
        key = hashlib.sha256(payload.encode()).hexdigest()[:24]
        await asyncio.to_thread(channel_store().remember, _BUTTON_KIND, key, {"payload": payload})
        return _LONG_PAYLOAD + key

    async def _retire(self, states: Mapping[str, str]) -> None:
        """Edit away the keyboards whose operation was decided in this turn."""
        if not states:
            return
        for location, state in self._book.stale(states):
            await self._remove_keyboard(location, decision_note(state))

    async def _remove_keyboard(self, location: Location, note: str | None) -> None:
        chat_id, message_id = location
        self._book.forget(location)
        text = self._texts.pop(location, None)
        try:
            if note and text is not None:
                await self.bot.edit_message_text(
                    f"{text}\n\n_{escape_markdown(note, version=2)}_", chat_id=chat_id,
                    message_id=message_id, parse_mode=ParseMode.MARKDOWN_V2)
            else:
                await self.bot.edit_message_reply_markup(chat_id=chat_id, message_id=message_id,
                                                         reply_markup=None)
        except BadRequest as exc:  # already edited, deleted, or unchanged: nothing to do
            logger.debug("could not retire the keyboard of %s/%s: %s", chat_id, message_id, exc)
        except TelegramError as exc:
            logger.warning("could not retire the keyboard of %s/%s: %s", chat_id, message_id, exc)


_COMMANDS = {"start": "hi", "help": "help"}


def _poller_owner() -> str:
    """This process in the polling lease (each Sanic worker is one), even when
    OPSBOT_REPLICA_ID names the host."""
    return f"{process_owner()}:{os.getpid()}"


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


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


def _agent_ready(app: Any) -> bool:
    agent = getattr(getattr(app, "ctx", None), "agent", None)
    return bool(agent is not None and agent.is_ready())


def _thread(message: Message) -> int | None:
    """The forum topic to answer in (only topics take a thread id)."""
    return message.message_thread_id if message.is_topic_message else None


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _buttons_of(message: Message) -> list[InlineKeyboardButton]:
    markup = message.reply_markup
    return [b for row in markup.inline_keyboard for b in row] if markup else []


def _title_of(message: Message, data: str) -> str:
    return next((b.text for b in _buttons_of(message) if b.callback_data == data), "an option")


def _name(user: Any) -> str:
    return f"@{user.username}" if getattr(user, "username", None) else str(user.full_name)


def _toast(text: str) -> str | None:
    """The first line of the reply, short enough for a callback answer (200 characters)."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return (first[:197] + "...") if len(first) > 200 else (first or None)
