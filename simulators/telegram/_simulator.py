"""``TelegramSimulator``, the Telegram simulator's public face (playing the users, reading
what the bot said), and ``python -m simulators.telegram``.

Why apart: what tests and the demo call is kept to the names they use; the rest of
the package is private.
"""

from __future__ import annotations

import argparse
import copy
import secrets
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from simulators._base import SimulatorBase, add_address_arguments, run_main
from simulators.telegram._app import _App
from simulators.telegram._bot_api import _BotApi
from simulators.telegram._formatting import parse_text
from simulators.telegram._model import (
    _PERSON_USERNAME,
    _TOKEN,
    _USERNAME,
    ALICE,
    BOB,
    CAROL,
    DEFAULT_BOT_USERNAME,
    DEFAULT_TOKEN,
    OPS_GROUP,
    RecordedRequest,
    _Chat,
    _Message,
    _origin,
    _Pending,
    _Query,
    _User,
)
from simulators.telegram._state import _State
from simulators.telegram._webhook import _Deliverer


class TelegramSimulator(SimulatorBase[RecordedRequest]):
    """A Telegram Bot API server in a thread, with users a test can play.

    ``token`` is the one bot token accepted (its number is the bot's user id).
    ``privacy_mode`` makes group messages reach the bot only when meant for it (commands,
    mentions, replies), as for a bot with privacy mode on. ``retry_delay``,
    ``max_delivery_attempts`` and ``webhook_timeout`` steer webhook delivery;
    ``callback_query_ttl`` is how long a button press may wait for its answer. ``port=0``
    picks a free port; read ``url`` after ``start()``.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_username: str = DEFAULT_BOT_USERNAME,
        bot_name: str = "opsbot",
        host: str = "127.0.0.1",
        port: int = 0,
        privacy_mode: bool = False,
        retry_delay: float = 0.2,
        max_delivery_attempts: int = 5,
        webhook_timeout: float = 10.0,
        callback_query_ttl: float = 15.0,
        chat_interval: float = 0.0,
        routes: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ValueError(f"token must look like a Bot API token ('123456:ABC-def_1'), got "
                             f"{token!r}")
        if not _USERNAME.fullmatch(bot_username) or not bot_username.lower().endswith("bot"):
            raise ValueError("bot_username must be 5-32 letters, digits or _ and end in 'bot', "
                             f"got {bot_username!r}")
        if retry_delay < 0 or max_delivery_attempts < 1 or webhook_timeout <= 0:
            raise ValueError("retry_delay must be >= 0, max_delivery_attempts >= 1 and "
                             "webhook_timeout > 0")
        self.token = token
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.bot_id = int(match.group(1))
        self._state = _State(_User(self.bot_id, bot_name, bot_username, is_bot=True), clock,
                             privacy_mode, callback_query_ttl)
        self._state.chat_interval = chat_interval
        for public, local in (routes or {}).items():
            self.route(public, local)
        self._deliverer = _Deliverer(self._state, retry_delay, max_delivery_attempts,
                                     webhook_timeout)
        super().__init__(_App(self, self._state, token), faults=self._state.faults,
                         requests=self._state.log, host=host, port=port,
                         name="telegram-simulator", server_name="nginx/1.18.0")
        for user_id, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
            self.add_user(user_id, name, name.lower())
        self.add_group(OPS_GROUP, "ops", members=(ALICE, BOB, CAROL))

    def __repr__(self) -> str:
        return (f"TelegramSimulator({self._location()}, bot=@{self.bot_username}, "
                "token='**********')")

    # -- lifecycle (url, port, with: SimulatorBase) --------------------------------

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT`` without a trailing slash; a client adds ``/bot<token>/``."""
        return self.url.rstrip("/")

    def start(self, stack: object | None = None) -> None:
        """Serve, and deliver to a webhook once one is set."""
        with self._state.lock:
            self._state.stopping = False
        super().start(stack)
        self._deliverer.start()

    def stop(self) -> None:
        """End waiting polls and the delivery thread, then stop serving; safe to call twice."""
        with self._state.changed:
            self._state.stopping = True
            self._state.changed.notify_all()
        self._deliverer.join()
        super().stop()

    def describe(self) -> str:
        """One line for the demo banner."""
        return f"Telegram Bot API at {self.url} (bot @{self.bot_username})"

    def env(self) -> dict[str, str]:
        """TELEGRAM_TOKEN and TELEGRAM_API_URL (the root; clients add /bot<token>/<method>),
        and TELEGRAM_ALLOWED_CHATS: the team's ops group, where the demo talks."""
        return {"TELEGRAM_TOKEN": self.token, "TELEGRAM_API_URL": self.api_url,
                "TELEGRAM_ALLOWED_CHATS": str(OPS_GROUP)}

    # -- the world -------------------------------------------------------------------

    def add_user(self, user_id: int, first_name: str, username: str | None = None) -> None:
        """A person who can talk to the bot (their private chat's id is ``user_id``)."""
        if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
            raise ValueError(f"user_id must be a positive int, got {user_id!r}")
        if not first_name:
            raise ValueError("first_name must not be empty")
        if username is not None and not _PERSON_USERNAME.fullmatch(username.lstrip("@")):
            raise ValueError(f"username must be 3-32 letters, digits or _, got {username!r}")
        with self._state.lock:
            if user_id in self._state.users or user_id == self.bot_id:
                raise ValueError(f"user {user_id} exists already")
            self._state.users[user_id] = _User(user_id, first_name,
                                               username.lstrip("@") if username else None)

    def add_group(self, chat_id: int, title: str, *, members: Iterable[int] = ()) -> None:
        """A group the bot is in: a supergroup when the id starts with -100, else a group."""
        if isinstance(chat_id, bool) or not isinstance(chat_id, int) or chat_id >= 0:
            raise ValueError(f"a group's chat_id must be a negative int, got {chat_id!r}")
        with self._state.lock:
            if chat_id in self._state.chats:
                raise ValueError(f"chat {chat_id} exists already")
            people = set(members)
            for user_id in people:
                self._state.user(user_id)
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            self._state.chats[chat_id] = _Chat(chat_id, kind, title, people)

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: sending to them is then 403 Forbidden."""
        with self._state.lock:
            self._state.user(user_id)
            if blocked:
                self._state.blocked.add(user_id)
            else:
                self._state.blocked.discard(user_id)

    # -- playing the users -------------------------------------------------------------

    def send_text(self, user_id: int, text: str, *, chat_id: int | None = None,
                  reply_to_message_id: int | None = None) -> dict[str, Any]:
        """The user types ``text`` (in their private chat unless ``chat_id``); the update.

        Commands, @mentions and URLs get their entities as on Telegram, in UTF-16 units.
        A reply embeds the replied-to message as ``reply_to_message``.
        """
        if not text or not text.strip():
            raise ValueError("text must not be empty (Telegram does not send empty messages)")
        with self._state.lock:
            state = self._state
            user, chat = state.user_in_chat(user_id, chat_id)
            reply = state.reply_json(chat, reply_to_message_id)
            plain, entities = parse_text(text)
            message = state.add_message(chat, user.id, source=text, text=plain, parse_mode=None,
                                        entities=entities, reply_to=reply)
            return state.enqueue("message", state.message_json(message), chat, reply)

    def send_sticker(self, user_id: int, chat_id: int | None = None) -> dict[str, Any]:
        """The user sends a sticker (a message without text); the update."""
        with self._state.lock:
            state = self._state
            user, chat = state.user_in_chat(user_id, chat_id)
            state.counter += 1
            sticker = {"file_id": f"CAACAgIAAxkBAAIBQ2Zsim{state.counter:06d}",
                       "file_unique_id": f"AgADsim{state.counter:06d}", "type": "regular",
                       "width": 512, "height": 512, "is_animated": False, "is_video": False,
                       "emoji": "\N{THUMBS UP SIGN}", "set_name": "opsbot_sim"}
            message = state.add_message(chat, user.id, source=None, text=None, parse_mode=None,
                                        entities=[], extra={"sticker": sticker})
            return state.enqueue("message", state.message_json(message), chat)

    def edit_text(self, user_id: int, chat_id: int, message_id: int,
                  new_text: str) -> dict[str, Any]:
        """The user edits a message of theirs; the ``edited_message`` update."""
        if not new_text or not new_text.strip():
            raise ValueError("new_text must not be empty")
        with self._state.lock:
            state = self._state
            user, chat = state.user_in_chat(user_id, chat_id)
            message = chat.messages.get(message_id)
            if message is None or message.deleted or message.text is None:
                raise LookupError(f"no text message {message_id} in chat {chat.id}")
            if message.sender != user.id:
                raise ValueError(f"message {message_id} was not sent by user {user_id}")
            message.source = new_text
            message.text, message.entities = parse_text(new_text)
            message.edits += 1
            message.edit_date = state.now()
            state.changed.notify_all()
            return state.enqueue("edited_message", state.message_json(message), chat)

    def member_joined(self, user_id: int, chat_id: int) -> dict[str, Any]:
        """The user joins a group; the service message (``new_chat_members``) update."""
        with self._state.lock:
            state = self._state
            user = state.user(user_id)
            chat = state.known_chat(chat_id)
            if chat.type == "private":
                raise ValueError(f"chat {chat_id} is a private chat, not a group")
            chat.members.add(user_id)
            message = state.add_message(chat, user.id, source=None, text=None, parse_mode=None,
                                        entities=[],
                                        extra={"new_chat_members": [state.user_json(user)]})
            return state.enqueue("message", state.message_json(message), chat)

    def route(self, public: str, local: str) -> None:
        """Deliver webhook posts for ``public`` (``https://bot.example.com:8443``) to ``local``
        (``http://127.0.0.1:PORT``), as the reverse proxy in front of a real bot would. The
        URL given to ``setWebhook`` still has to be one Telegram accepts."""
        with self._state.lock:
            self._state.routes[_origin(public)] = local

    def press(self, user_id: int, chat_id: int, message_id: int, *, data: str | None = None,
              title: str | None = None, force: bool = False) -> dict[str, Any]:
        """The user presses a button (by ``callback_data`` or by its text); the update.

        LookupError if the bot's message or the button is not there (any more); ``force``
        sends a ``callback_query`` with ``data`` anyway, as a forged or stale client would.
        """
        if force and data is None:
            raise ValueError("force=True needs the callback data to send")
        if not force and (data is None) == (title is None):
            raise ValueError("give the button's data or its title (one of them)")
        with self._state.lock:
            state = self._state
            user, chat = state.user_in_chat(user_id, chat_id) if not force else (
                state.user(user_id), state.known_chat(chat_id))
            message = chat.messages.get(message_id)
            visible = message is not None and not message.deleted
            if not force:
                if message is None or not visible or message.sender != self.bot_id:
                    raise LookupError(f"the bot has no message {message_id} in chat {chat_id}")
                buttons = [b for row in (message.reply_markup or {}).get("inline_keyboard", [])
                           for b in row]
                if not buttons:
                    raise LookupError(f"message {message_id} in chat {chat_id} has no inline "
                                      "keyboard (any more)")
                found = next((b for b in buttons if (data is not None and
                                                     b.get("callback_data") == data)
                              or (title is not None and b["text"] == title)), None)
                if found is None:
                    shown = ", ".join(f"{b['text']!r} ({b.get('callback_data')!r})"
                                      for b in buttons)
                    raise LookupError(f"no button {data or title!r} on message {message_id} in "
                                      f"chat {chat_id}; its buttons: {shown}")
                if "callback_data" not in found:
                    raise ValueError(f"button {found['text']!r} opens a URL or the like; it "
                                     "sends no callback query")
                data = found["callback_data"]
            assert data is not None
            query_id = str(secrets.randbits(62))
            if message is not None and visible:
                shown_message = state.message_json(message)
            else:  # what Telegram sends for a message the bot can no longer see
                shown_message = {"chat": state.chat_json(chat), "message_id": message_id,
                                 "date": 0}
            state.queries[query_id] = _Query(query_id, user.id, chat.id, message_id, data,
                                             state.clock())
            payload = {"id": query_id, "from": state.user_json(user),
                       "message": shown_message,
                       "chat_instance": str(-((abs(chat.id) * 2654435761 + self.bot_id)
                                              % (1 << 62))),
                       "data": data}
            return state.enqueue("callback_query", payload, chat)

    def redeliver(self, update: dict[str, Any]) -> None:
        """Queue ``update`` once more with its update_id, even if it was confirmed.

        As Telegram does after a failed webhook delivery or when a bot restarts before
        confirming; tests use it to check that a bot ignores duplicates.
        """
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            raise ValueError("update must be an update dict with an int update_id")
        with self._state.changed:
            self._state.pending.append(_Pending(copy.deepcopy(update), forced=True))
            self._state.changed.notify_all()

    # -- reading -----------------------------------------------------------------------

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The current state of each message the bot sent to ``chat_id``, oldest first.

        Each has ``text`` (as the bot sent it, with its markup), ``plain_text`` (what the
        user reads), ``parse_mode``, ``entities``, ``reply_markup``, ``edits``,
        ``edit_date``, ``deleted`` and ``message`` (the Bot API Message).
        """
        with self._state.lock:
            chat = self._state.known_chat(chat_id)
            return [self._state.snapshot(m) for m in chat.messages.values()
                    if m.sender == self.bot_id]

    def wait_for_bot_message(self, chat_id: int, *, contains: str | None = None,
                             after: int = 0, timeout: float = 10.0) -> dict[str, Any]:
        """The first bot message in ``chat_id`` newer than message ``after`` (whose
        ``plain_text`` holds ``contains``), waiting up to ``timeout`` s; TimeoutError if none.
        """

        def found(chat: _Chat) -> _Message | None:
            return next((m for m in chat.messages.values()
                         if m.sender == self.bot_id and m.message_id > after and not m.deleted
                         and (contains is None or contains in (m.text or ""))), None)

        return self._wait(chat_id, found, timeout, f"new bot message in chat {chat_id} "
                          f"after message {after}" + (f" containing {contains!r}"
                                                      if contains is not None else ""))

    def wait_for_edit(self, chat_id: int, message_id: int, *, contains: str | None = None,
                      min_edits: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """The bot's message once edited ``min_edits`` times (and holding ``contains``)."""

        def found(chat: _Chat) -> _Message | None:
            message = chat.messages.get(message_id)
            if message is None or message.sender != self.bot_id or message.edits < min_edits:
                return None
            return message if contains is None or contains in (message.text or "") else None

        return self._wait(chat_id, found, timeout, f"edit of message {message_id} in chat "
                          f"{chat_id}" + (f" containing {contains!r}" if contains else ""))

    def _wait(self, chat_id: int, found: Callable[[_Chat], _Message | None], timeout: float,
              wanted: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._state.changed:
            chat = self._state.known_chat(chat_id)
            while (message := found(chat)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.message_id, m.text) for m in chat.messages.values()
                            if m.sender == self.bot_id]
                    hint = (f"; {len(self._state.withheld)} update(s) never reached the bot "
                            "(see withheld_updates())" if self._state.withheld else "")
                    raise TimeoutError(f"no {wanted} within {timeout} s; the bot's messages "
                                       f"there: {seen}{hint}")
                self._state.changed.wait(remaining)
            return self._state.snapshot(message)

    def callback_answers(self) -> list[dict[str, Any]]:
        """Every accepted answerCallbackQuery, oldest first (text, show_alert, data...)."""
        with self._state.lock:
            return copy.deepcopy(self._state.answers)

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed (or delivered to the webhook)."""
        with self._state.lock:
            return len(self._state.pending)

    def waiting_polls(self) -> int:
        """getUpdates requests holding for updates right now."""
        with self._state.lock:
            return self._state.waiting_polls

    def withheld_updates(self) -> list[dict[str, Any]]:
        """Updates the bot never gets (allowed_updates, privacy mode), each with a reason."""
        with self._state.lock:
            return copy.deepcopy(self._state.withheld)

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook POST: update_id, url, attempt, status (None if no answer), error."""
        with self._state.lock:
            return copy.deepcopy(self._state.deliveries)

    def webhook_info(self) -> dict[str, Any]:
        """What getWebhookInfo would answer."""
        with self._state.lock:
            return self._app_api().get_webhook_info({})

    def bot_commands(self, language_code: str = "") -> list[dict[str, str]]:
        """The commands set with setMyCommands for the default scope."""
        with self._state.lock:
            return self._app_api().get_my_commands({"language_code": language_code})

    def overview(self) -> dict[str, Any]:
        """The bot, users, chats and webhook (``GET /_sim/``)."""
        with self._state.lock:
            state = self._state
            return {"bot": state.user_json(state.bot),
                    "users": [state.user_json(u) for u in state.users.values()],
                    "chats": [{**state.chat_json(c), "members": sorted(c.members)}
                              for c in state.chats.values()],
                    "webhook": self.webhook_info(), "pending_updates": len(state.pending)}

    def _app_api(self) -> _BotApi:
        return _BotApi(self._state, self.token)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.telegram",
        description="A local Telegram Bot API for opsbot, with users you can play over HTTP.",
    )
    add_address_arguments(parser, 8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token it accepts")
    parser.add_argument("--bot-username", default=DEFAULT_BOT_USERNAME,
                        help=f"the bot's username (default {DEFAULT_BOT_USERNAME})")
    parser.add_argument("--privacy-mode", action="store_true",
                        help="in groups, pass only commands, mentions and replies to the bot")
    args = parser.parse_args(argv)

    def banner(sim: TelegramSimulator) -> list[str]:
        root = sim.api_url
        send = "'{\"text\": \"/help\"}'"
        press = "'{\"chat_id\": 42, \"message_id\": 2, \"title\": \"Yes\"}'"
        return [
            f"Telegram simulator: {sim.describe()}",
            f"  token: {sim.token}",
            *(f"  {name}={value}" for name, value in sim.env().items()),
            f"  python-telegram-bot: Application.builder().token(TOKEN).base_url("
            f"\"{root}/bot\")",
            f"  users: alice ({ALICE}), bob ({BOB}), carol ({CAROL}); group ops ({OPS_GROUP})",
            "  control API (JSON):",
            f"    curl -X POST {root}/_sim/users/42/send -H 'Content-Type: application/json' "
            f"-d {send}",
            f"    curl -X POST {root}/_sim/users/42/press -H 'Content-Type: application/json' "
            f"-d {press}",
            f"    curl {root}/_sim/chats/42/messages",
        ]

    return run_main(lambda: TelegramSimulator(token=args.token, bot_username=args.bot_username,
                                              host=args.host, port=args.port,
                                              privacy_mode=args.privacy_mode),
                    banner, seed_error=ValueError, cannot=f"listen on {args.host}:{args.port}")
