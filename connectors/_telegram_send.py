"""The Telegram connector's outbound side: replies, inline keyboards, their edits, events.

What opsbot sends into a chat, and the conversation ids it sends to: a reply is escaped
MarkdownV2, split at Telegram's limit, with its keyboard on the last piece; a payload
too long for ``callback_data`` is kept in the store behind a short key; a decided
keyboard is edited away; the event outbox posts and edits through here. Flood control
(429) is waited out for replies and handed to the outbox for events. Kept apart from
``connectors.telegram`` (settings, webhook, lifecycle), which describes the connector.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from typing import Any, TypeVar

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.helpers import escape_markdown

from connectors._common import (
    ButtonBook,
    ReplyChannel,
    claim_keyboard,
    decision_note,
    first_piece,
    is_event_message,
    mark_event_message,
    stow_payload,
    unstow_payload,
)
from connectors._common import split_text as _split_text
from connectors.events import Gone, SendLater, SendRefused

# The connector's one logger, whichever part logs: operators filter on its name.
logger = logging.getLogger("connectors.telegram")

CHANNEL = "telegram"
_MAX_CALLBACK_BYTES = 64
_BUTTON_KIND = "telegram-button"
_EVENT_KIND = "telegram-event-message"  # messages of alerts and checks: keyboards stay

Location = tuple[int, int]  # (chat id, message id) of a message the bot sent


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
    return _split_text(text, limit, _utf16_len)


class TelegramOutput(ReplyChannel):
    """Sends a conversation's replies to its Telegram chat, and notes what it sent."""

    def __init__(self, connector: TelegramSending, chat_id: int | None = None,
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
    """``send()`` (a send or an edit), waiting out Telegram's flood control (429 with
    ``retry_after``) as often as it asks, so no part of a reply and no retiring edit is
    dropped; gives up after five minutes."""
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


def _seconds(value: Any) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramSending:
    """What the connector sends and edits; ``connectors.telegram.TelegramInput`` builds it."""

    bot: Bot
    _book: ButtonBook[Location]
    _texts: dict[Location, str]  # the escaped text of messages with buttons

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
        piece = first_piece(text, MessageLimit.MAX_TEXT_LENGTH, _utf16_len)
        escaped = escape_markdown(piece, version=2)
        sent = await _event_call(partial(
            self.bot.send_message, chat_id, escaped, parse_mode=ParseMode.MARKDOWN_V2,
            reply_markup=markup, message_thread_id=int(thread_id) if thread_id else None))
        await mark_event_message(_EVENT_KIND, f"{chat_id}:{sent.message_id}")
        return {"chat_id": chat_id, "message_id": sent.message_id}

    async def edit_event(self, address: Mapping[str, Any], ref: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Rewrite an event's message (editMessageText): the alert resolved, more of it."""
        chat_id, message_id = int(ref["chat_id"]), int(ref["message_id"])
        markup = await self._keyboard(buttons) if buttons else None
        piece = first_piece(text, MessageLimit.MAX_TEXT_LENGTH, _utf16_len)
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
        return await is_event_message(_EVENT_KIND, f"{chat_id}:{message_id}")

    # -- keyboards -----------------------------------------------------------------------

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
        return await stow_payload(_BUTTON_KIND, payload,
                                  lambda p: len(p.encode()) <= _MAX_CALLBACK_BYTES)

    async def _payload_of(self, data: str) -> str | None:
        return await unstow_payload(_BUTTON_KIND, data)

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
        # Waited out like a send: a 429 here would leave a decided preview with a
        # live-looking Confirm button and without its "Confirmed by ..." note.
        try:
            if note and text is not None:
                await _patiently(partial(
                    self.bot.edit_message_text,
                    f"{text}\n\n_{escape_markdown(note, version=2)}_", chat_id=chat_id,
                    message_id=message_id, parse_mode=ParseMode.MARKDOWN_V2))
            else:
                await _patiently(partial(
                    self.bot.edit_message_reply_markup, chat_id=chat_id, message_id=message_id,
                    reply_markup=None))
        except BadRequest as exc:  # already edited, deleted, or unchanged: nothing to do
            logger.debug("could not retire the keyboard of %s/%s: %s", chat_id, message_id, exc)
        except TelegramError as exc:
            logger.warning("could not retire the keyboard of %s/%s: %s", chat_id, message_id, exc)
