"""The Telegram simulator's state: users, chats, messages, the update queue and long
polls, callback queries, the webhook and flood control.

Why apart: everything that changes, under one lock with one condition; the Bot API
methods and the public face change it only through here.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from simulators._base import Faults, RequestLog
from simulators.telegram._model import (
    _DEFAULT_ALLOWED,
    RecordedRequest,
    _Chat,
    _Message,
    _origin,
    _Pending,
    _Query,
    _User,
    _Webhook,
)


class _State:
    """Everything the simulator knows, behind one lock; ``changed`` wakes every waiter."""

    def __init__(self, bot: _User, clock: Callable[[], float], privacy_mode: bool,
                 callback_query_ttl: float) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()
        self.bot = bot
        self.clock = clock
        self.privacy_mode = privacy_mode
        self.callback_query_ttl = callback_query_ttl
        self.chat_interval = 0.0
        # Public webhook origins and where they really lead (the reverse proxy in front of
        # a bot): Telegram posts to the public URL; here it reaches the local listener.
        self.routes: dict[str, str] = {}
        self.last_sent: dict[int, float] = {}
        self.users: dict[int, _User] = {}
        self.chats: dict[int, _Chat] = {}
        self.blocked: set[int] = set()
        self.pending: list[_Pending] = []
        self.next_update_id = 1000
        self.allowed: frozenset[str] = _DEFAULT_ALLOWED
        self.withheld: list[dict[str, Any]] = []
        self.poll_generation = 0
        self.waiting_polls = 0
        self.webhook: _Webhook | None = None
        self.deliveries: list[dict[str, Any]] = []
        self.attempts: dict[int, int] = {}
        self.retry_at = 0.0
        self.queries: dict[str, _Query] = {}
        self.answers: list[dict[str, Any]] = []
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.stopping = False
        self.counter = 0

    def routed(self, url: str) -> str:
        """``url`` with its public origin replaced by the local one it is routed to."""
        with self.lock:
            local = self.routes.get(_origin(url))
        if local is None:
            return url
        parts = urlsplit(url)
        return local.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def now(self) -> int:
        return int(self.clock())

    # -- people and chats ------------------------------------------------------------

    def user(self, user_id: int) -> _User:
        found = self.users.get(user_id)
        if found is None:
            known = ", ".join(f"{u.username or u.first_name} ({u.id})" for u in self.users.values())
            raise LookupError(f"no user {user_id}; known users: {known}; add one with add_user()")
        return found

    def chat(self, chat_id: int) -> _Chat | None:
        """A group, or the private chat with a known user (whose id is the user's)."""
        found = self.chats.get(chat_id)
        if found is None and chat_id in self.users:
            found = self.chats[chat_id] = _Chat(chat_id, "private", None, {chat_id})
        return found

    def known_chat(self, chat_id: int) -> _Chat:
        found = self.chat(chat_id)
        if found is None:
            groups = ", ".join(f"{c.title} ({c.id})" for c in self.chats.values()
                               if c.type != "private")
            raise LookupError(f"no chat {chat_id}: use a user's id for the private chat or a "
                              f"group ({groups}); add one with add_group()")
        return found

    def user_in_chat(self, user_id: int, chat_id: int | None) -> tuple[_User, _Chat]:
        user = self.user(user_id)
        chat = self.known_chat(user_id if chat_id is None else chat_id)
        if chat.type == "private" and chat.id != user_id:
            raise ValueError(f"chat {chat.id} is the private chat of another user; user "
                             f"{user_id} talks to the bot in chat {user_id}")
        if user_id not in chat.members:
            raise ValueError(f"user {user_id} is not a member of {chat.title!r} ({chat.id}); "
                             "call member_joined() first")
        return user, chat

    # -- JSON ------------------------------------------------------------------------

    def user_json(self, user: _User) -> dict[str, Any]:
        data: dict[str, Any] = {"id": user.id, "is_bot": user.is_bot,
                                "first_name": user.first_name}
        if user.username:
            data["username"] = user.username
        if not user.is_bot:
            data["language_code"] = "en"
        return data

    def chat_json(self, chat: _Chat) -> dict[str, Any]:
        if chat.type == "private":
            user = self.users[chat.id]
            data: dict[str, Any] = {"id": chat.id, "type": "private",
                                    "first_name": user.first_name}
            if user.username:
                data["username"] = user.username
            return data
        return {"id": chat.id, "type": chat.type, "title": chat.title}

    def message_json(self, message: _Message, *, embedded: bool = False) -> dict[str, Any]:
        """The Message object; ``embedded`` drops its own reply (Telegram nests one level)."""
        sender = self.bot if message.sender == self.bot.id else self.users[message.sender]
        data: dict[str, Any] = {"message_id": message.message_id,
                                "from": self.user_json(sender),
                                "chat": self.chat_json(self.chats[message.chat_id]),
                                "date": message.date}
        if message.thread_id is not None:
            data["message_thread_id"] = message.thread_id
        if message.reply_to is not None and not embedded:
            data["reply_to_message"] = copy.deepcopy(message.reply_to)
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.text is not None:
            data["text"] = message.text
            if message.entities:
                data["entities"] = copy.deepcopy(message.entities)
        data.update(copy.deepcopy(message.extra))
        if message.reply_markup is not None:
            data["reply_markup"] = copy.deepcopy(message.reply_markup)
        return data

    def snapshot(self, message: _Message) -> dict[str, Any]:
        """What bot_messages() shows of one of the bot's messages."""
        return {"message_id": message.message_id, "chat_id": message.chat_id,
                "date": message.date, "text": message.source, "plain_text": message.text,
                "parse_mode": message.parse_mode,
                "entities": copy.deepcopy(message.entities),
                "reply_markup": copy.deepcopy(message.reply_markup),
                "edits": message.edits, "edit_date": message.edit_date,
                "deleted": message.deleted,
                "reply_to_message_id": (message.reply_to or {}).get("message_id"),
                "message_thread_id": message.thread_id,
                "message": self.message_json(message)}

    # -- messages and updates ----------------------------------------------------------

    def add_message(self, chat: _Chat, sender: int, **fields: Any) -> _Message:
        chat.last_message_id += 1
        message = _Message(chat.id, chat.last_message_id, sender, self.now(), **fields)
        chat.messages[message.message_id] = message
        self.changed.notify_all()
        return message

    def reply_json(self, chat: _Chat, message_id: int | None) -> dict[str, Any] | None:
        """The embedded message a user's reply points at; LookupError if it is not there."""
        if message_id is None:
            return None
        found = chat.messages.get(message_id)
        if found is None or found.deleted:
            raise LookupError(f"no message {message_id} in chat {chat.id} to reply to")
        return self.message_json(found, embedded=True)

    def enqueue(self, kind: str, payload: dict[str, Any], chat: _Chat | None,
                reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make an update; queue it unless allowed_updates or privacy mode withhold it."""
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        reason = None
        if kind not in self.allowed:
            reason = f"{kind} is not in allowed_updates {sorted(self.allowed)}"
        elif self.privacy_mode and chat is not None and chat.type != "private" \
                and kind in ("message", "edited_message") \
                and not self._meant_for_bot(payload, reply_to):
            reason = "privacy mode: the bot only sees commands, mentions and replies in groups"
        if reason is not None:
            self.withheld.append({"update": copy.deepcopy(update), "reason": reason})
        else:
            self.pending.append(_Pending(copy.deepcopy(update)))
            self.changed.notify_all()
        return update

    def _meant_for_bot(self, payload: dict[str, Any], reply_to: dict[str, Any] | None) -> bool:
        text = payload.get("text") or ""
        return (text.startswith("/") or f"@{self.bot.username}".lower() in text.lower()
                or "new_chat_members" in payload
                or (reply_to is not None and reply_to["from"]["id"] == self.bot.id))

    def confirm(self, offset: int) -> None:
        """getUpdates' offset: forget what came before it (negative: keep the last -offset)."""
        if offset > 0:
            self.pending = [p for p in self.pending if p.forced or p.update["update_id"] >= offset]
        elif offset < 0:
            keep = {id(p) for p in self.pending[offset:]}
            self.pending = [p for p in self.pending if p.forced or id(p) in keep]

    def deliverable(self, offset: int, limit: int) -> list[_Pending]:
        found = [p for p in self.pending
                 if p.forced or offset <= 0 or p.update["update_id"] >= offset]
        found.sort(key=lambda p: p.update["update_id"])
        return found[:limit]

    def drop_pending(self) -> None:
        self.pending = []
        self.attempts.clear()
