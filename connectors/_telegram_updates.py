"""The Telegram connector's inbound side: one update, at most once, from whoever sent it.

An update (from the webhook or the poller) is taken once by its id in the store, then
read: a text message addressed to the bot becomes a turn, a button press is checked
(the chat allowed, the payload's signature and scope, whose keyboard it is) before it
becomes one. The sender's id is signed into the turn's metadata here. Kept apart from
``connectors.telegram`` (settings, webhook, lifecycle), which describes the connector.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import UserMessage
from telegram import InlineKeyboardButton, Message, MessageEntity, Update
from telegram.error import TelegramError

from actions.errors import OpsbotError
from actions.guard.identity import (
    IDENTITY_KEY,
    conversation_scope,
    open_payload,
    sign_identity,
)
from connectors._common import (
    NOT_YOURS,
    OPEN_STATES,
    channel_store,
    decision_note,
    known_person,
    operation_of,
    pressed_by_other,
    refuse_forged_payload,
)
from connectors._telegram_send import CHANNEL, TelegramOutput, TelegramSending, sender_id_for

# The connector's one logger, whichever part logs: operators filter on its name.
logger = logging.getLogger("connectors.telegram")

_ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]  # for getUpdates, setWebhook
_SEEN_KIND = "telegram-update"
_REFUSED_KIND = "telegram-refused-chat"

_COMMANDS = {"start": "hi", "help": "help"}


class TelegramUpdates(TelegramSending):
    """How the connector handles an update; ``connectors.telegram.TelegramInput`` builds it."""

    allowed_chats: frozenset[int]
    _tasks: set[asyncio.Task[None]]  # updates being handled

    def _handle_taken(self, update: Update, on_new_message: Callable[[UserMessage], Awaitable[Any]],
                      ) -> asyncio.Task[None]:
        """Handle a taken update in a task of its own, kept until it ends: neither the
        poller's next round nor a webhook request that Telegram stopped waiting for
        (Sanic cancels the handler of a closed connection) may cut a turn short. The
        update is taken, so a redelivery is ignored: a cancelled turn is a lost one."""
        task = asyncio.create_task(self._handle(update, on_new_message, taken=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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


def _thread(message: Message) -> int | None:
    """The forum topic to answer in (only topics take a thread id)."""
    return message.message_thread_id if message.is_topic_message else None


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
