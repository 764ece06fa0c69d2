"""The Bot API methods (``getUpdates``, ``sendMessage``, ``setWebhook`` ...), with Telegram's
checks and error descriptions.

Why apart: one method a function, over the state; the HTTP face only routes to them.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from simulators.telegram._formatting import (
    EntityParseError,
    _auto_entities,
    _check_link,
    _trim,
    parse_text,
)
from simulators.telegram._model import (
    _BUTTON_ACTIONS,
    _CHAT_ACTIONS,
    _COMMAND_NAME,
    _DEFAULT_ALLOWED,
    _LONG_POLL_MAX,
    _NOT_MODIFIED,
    _QUERY_TOO_OLD,
    _SECRET_TOKEN,
    _TERMINATED,
    _TERMINATED_BY_WEBHOOK,
    _WEBHOOK_ACTIVE,
    MAX_TEXT_LENGTH,
    WEBHOOK_PORTS,
    _ApiError,
    _bad,
    _Chat,
    _Described,
    _Message,
    _Webhook,
)
from simulators.telegram._params import _allowed_updates, _bool, _int, _json, _str
from simulators.telegram._state import _State


class _BotApi:
    """One function per Bot API method: decoded parameters in, ``result`` out."""

    def __init__(self, state: _State, token: str) -> None:
        self.state = state
        self.token = token
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getme": self.get_me, "getupdates": self.get_updates,
            "setwebhook": self.set_webhook, "deletewebhook": self.delete_webhook,
            "getwebhookinfo": self.get_webhook_info, "sendmessage": self.send_message,
            "editmessagetext": self.edit_message_text,
            "editmessagereplymarkup": self.edit_message_reply_markup,
            "deletemessage": self.delete_message,
            "answercallbackquery": self.answer_callback_query,
            "sendchataction": self.send_chat_action, "setmycommands": self.set_my_commands,
            "getmycommands": self.get_my_commands, "deletemycommands": self.delete_my_commands,
        }

    def has(self, method: str) -> bool:
        return method.lower() in self.methods

    def call(self, method: str, params: dict[str, Any]) -> tuple[Any, str | None]:
        """The result and optional description; _ApiError for a refusal."""
        with self.state.lock:
            result = self.methods[method.lower()](params)
        if isinstance(result, _Described):
            return result.result, result.description
        return result, None

    # -- helpers ---------------------------------------------------------------------

    def target(self, params: dict[str, Any]) -> _Chat:
        """The chat a method acts in, or the Bot API's error."""
        raw = _str(params, "chat_id")
        if raw is None or not raw.strip():
            raise _bad("chat_id is empty")
        try:
            chat_id = int(raw.strip())
        except ValueError:
            raise _bad("chat not found") from None
        chat = self.state.chat(chat_id)
        if chat is None:
            raise _bad("chat not found")
        if chat.type == "private" and chat.id in self.state.blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def formatted(self, params: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
        """The source text, shown text and entities of a sendMessage or editMessageText."""
        source = _str(params, "text")
        if not source:
            raise _bad("message text is empty")
        parse_mode = _str(params, "parse_mode")
        explicit = _json(params, "entities", "entities")
        try:
            if explicit is not None and not parse_mode:
                if not isinstance(explicit, list):
                    raise _bad("can't parse entities JSON object")
                plain, entities = _trim(source, [dict(e) for e in explicit if isinstance(e, dict)])
                entities = _auto_entities(plain, entities)
            else:
                plain, entities = parse_text(source, parse_mode)
        except EntityParseError as exc:
            raise _bad(f"can't parse entities: {exc}") from None
        except ValueError:
            raise _bad("unsupported parse_mode") from None
        if not plain:
            raise _bad("message text is empty")
        if len(plain) > MAX_TEXT_LENGTH:
            raise _bad("message is too long")
        return source, plain, entities

    @staticmethod
    def markup(params: dict[str, Any]) -> dict[str, Any] | None:
        """The inline keyboard the message will show (None: none), validated like Telegram."""
        raw = _json(params, "reply_markup", "reply keyboard markup")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise _bad("object expected as reply markup")
        if "inline_keyboard" not in raw:
            if any(key in raw for key in ("keyboard", "remove_keyboard", "force_reply")):
                return None  # reply keyboards are not part of the Message object
            raise _bad("can't parse reply keyboard markup JSON object")
        rows = raw["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup should be an Array '
                       "of Arrays")
        keyboard = []
        for row in rows:
            buttons = []
            for button in row:
                if not isinstance(button, dict):
                    raise _bad("can't parse inline keyboard button: InlineKeyboardButton must "
                               "be an Object")
                text = button.get("text")
                if not isinstance(text, str):
                    raise _bad('can\'t parse inline keyboard button: Field "text" must be of '
                               "type String")
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                        raise _bad("BUTTON_DATA_INVALID")
                elif "url" in button:
                    if not isinstance(button["url"], str) or _check_link(button["url"]) is None:
                        raise _bad("BUTTON_URL_INVALID")
                elif not any(action in button for action in _BUTTON_ACTIONS):
                    raise _bad("can't parse inline keyboard button: Text buttons are unallowed "
                               "in the inline keyboard")
                buttons.append({"text": text, **{k: v for k, v in button.items() if k != "text"}})
            if buttons:
                keyboard.append(buttons)
        return {"inline_keyboard": keyboard} if keyboard else None

    def reply_to(self, chat: _Chat, params: dict[str, Any]) -> dict[str, Any] | None:
        """The message a sendMessage replies to (reply_parameters or reply_to_message_id)."""
        raw = _json(params, "reply_parameters", "reply parameters")
        allow = _bool(params, "allow_sending_without_reply")
        where = chat
        if isinstance(raw, dict):
            message_id = _int(raw, "message_id")
            allow = allow or _bool(raw, "allow_sending_without_reply")
            if raw.get("chat_id") not in (None, ""):
                where = self.target(raw)
        elif raw is not None:
            raise _bad("can't parse reply parameters JSON object")
        else:
            message_id = _int(params, "reply_to_message_id")
            if not message_id:
                return None
        found = where.messages.get(message_id)
        if found is None or found.deleted:
            if allow:
                return None
            raise _bad("message to be replied not found")
        return self.state.message_json(found, embedded=True)

    def editable(self, params: dict[str, Any], action: str) -> _Message:
        if params.get("inline_message_id") not in (None, ""):
            raise _bad("MESSAGE_ID_INVALID")  # no inline mode here
        chat = self.target(params)
        message_id = _int(params, "message_id")
        if not message_id:
            raise _bad("message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad(f"message to {action} not found")
        return message

    # -- methods ---------------------------------------------------------------------

    def get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        bot = self.state.user_json(self.state.bot)
        bot.update({"can_join_groups": True,
                    "can_read_all_group_messages": not self.state.privacy_mode,
                    "supports_inline_queries": False, "can_connect_to_business": False,
                    "has_main_web_app": False})
        return bot

    def get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        state = self.state
        offset = _int(params, "offset")
        limit = min(max(_int(params, "limit", 100), 1), 100)
        timeout = min(max(_int(params, "timeout"), 0), _LONG_POLL_MAX)
        allowed = _allowed_updates(_json(params, "allowed_updates", "allowed updates"))
        if state.webhook is not None:
            raise _ApiError(409, _WEBHOOK_ACTIVE)
        state.poll_generation += 1
        mine = state.poll_generation
        state.changed.notify_all()  # an older waiting poll now ends with 409
        if allowed is not None:
            state.allowed = allowed
        state.confirm(offset)
        deadline = time.monotonic() + timeout
        state.waiting_polls += 1
        try:
            while True:
                if state.poll_generation != mine:
                    raise _ApiError(409, _TERMINATED)
                if state.webhook is not None:
                    raise _ApiError(409, _TERMINATED_BY_WEBHOOK)
                batch = state.deliverable(offset, limit)
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0 or state.stopping:
                    break
                state.changed.wait(remaining)
        finally:
            state.waiting_polls -= 1
        for item in batch:
            if item.forced:
                state.pending.remove(item)
        return [copy.deepcopy(item.update) for item in batch]

    def set_webhook(self, params: dict[str, Any]) -> _Described:
        state = self.state
        url = (_str(params, "url") or "").strip()
        if not url:
            return self.delete_webhook(params)
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise _bad("invalid webhook URL specified") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise _bad("invalid webhook URL specified")
        if parts.scheme.lower() != "https":
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        if (port or 443) not in WEBHOOK_PORTS:
            raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = _str(params, "secret_token") or None
        if secret is not None:
            if len(secret) > 256:
                raise _bad("secret token is too long")
            if not _SECRET_TOKEN.fullmatch(secret):
                raise _bad("secret token contains unallowed characters")
        allowed = _allowed_updates(_json(params, "allowed_updates", "allowed updates"))
        max_connections = min(max(_int(params, "max_connections", 40), 1), 100)
        same = state.webhook is not None and (state.webhook.url, state.webhook.secret) == (
            url, secret)
        if allowed is not None:
            state.allowed = allowed
        if _bool(params, "drop_pending_updates"):
            state.drop_pending()
        state.webhook = _Webhook(url, secret, max_connections)
        state.retry_at = 0.0
        state.changed.notify_all()  # ends a waiting getUpdates, wakes the delivery thread
        return _Described(True, "Webhook is already set" if same else "Webhook was set")

    def delete_webhook(self, params: dict[str, Any]) -> _Described:
        state = self.state
        if _bool(params, "drop_pending_updates"):
            state.drop_pending()
        description = ("Webhook was deleted" if state.webhook is not None
                       else "Webhook is already deleted")
        state.webhook = None
        state.changed.notify_all()
        return _Described(True, description)

    def get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        hook = state.webhook
        info: dict[str, Any] = {"url": hook.url if hook else "", "has_custom_certificate": False,
                                "pending_update_count": len(state.pending)}
        if hook is not None:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = "127.0.0.1"
            if state.allowed != _DEFAULT_ALLOWED:
                info["allowed_updates"] = sorted(state.allowed)
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    def send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.target(params)
        self.flood_control(chat.id)
        source, plain, entities = self.formatted(params)
        markup = self.markup(params)
        reply = self.reply_to(chat, params)
        thread = _int(params, "message_thread_id") or None
        message = self.state.add_message(
            chat, self.state.bot.id, source=source, text=plain,
            parse_mode=_str(params, "parse_mode") or None, entities=entities,
            reply_markup=markup, reply_to=reply, thread_id=thread)
        return self.state.message_json(message)

    def flood_control(self, chat_id: int) -> None:
        """429 with retry_after when the bot sends to ``chat_id`` faster than allowed."""
        interval = self.state.chat_interval
        if interval <= 0:
            return
        now = self.state.clock()
        last = self.state.last_sent.get(chat_id)
        if last is not None and now - last < interval:
            wait = max(1, math.ceil(interval - (now - last)))
            raise _ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        self.state.last_sent[chat_id] = now

    def edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.editable(params, "edit")
        if message.sender != self.state.bot.id:
            raise _bad("message can't be edited")
        self.flood_control(message.chat_id)  # an edit is a message to the chat's limit too
        source, plain, entities = self.formatted(params)
        markup = self.markup(params)  # absent: the keyboard goes, as on Telegram
        if (plain, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise _ApiError(400, _NOT_MODIFIED)
        message.source, message.text, message.entities = source, plain, entities
        message.parse_mode = _str(params, "parse_mode") or None
        message.reply_markup = markup
        return self._edited(message)

    def edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.editable(params, "edit")
        if message.sender != self.state.bot.id:
            raise _bad("message can't be edited")
        self.flood_control(message.chat_id)  # an edit is a message to the chat's limit too
        markup = self.markup(params)
        if markup == message.reply_markup:
            raise _ApiError(400, _NOT_MODIFIED)
        message.reply_markup = markup
        return self._edited(message)

    def _edited(self, message: _Message) -> dict[str, Any]:
        message.edits += 1
        message.edit_date = self.state.now()
        self.state.changed.notify_all()
        return self.state.message_json(message)

    def delete_message(self, params: dict[str, Any]) -> bool:
        message = self.editable(params, "delete")
        message.deleted = True
        self.state.changed.notify_all()
        return True

    def answer_callback_query(self, params: dict[str, Any]) -> bool:
        state = self.state
        query_id = _str(params, "callback_query_id") or ""
        query = state.queries.get(query_id)
        if query is None or query.answered \
                or state.clock() - query.created > state.callback_query_ttl:
            raise _ApiError(400, _QUERY_TOO_OLD)
        query.answered = True
        state.answers.append({
            "callback_query_id": query_id, "user_id": query.user_id, "chat_id": query.chat_id,
            "message_id": query.message_id, "data": query.data,
            "text": _str(params, "text"), "show_alert": _bool(params, "show_alert"),
            "url": _str(params, "url"), "cache_time": _int(params, "cache_time"),
        })
        state.changed.notify_all()
        return True

    def send_chat_action(self, params: dict[str, Any]) -> bool:
        self.target(params)
        if (_str(params, "action") or "") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _commands_key(self, params: dict[str, Any]) -> tuple[str, str]:
        scope = _json(params, "scope", "bot command scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), _str(params, "language_code") or ""

    def set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = _json(params, "commands", "bot commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        clean = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand: object expected")
            name = str(command.get("command", "")).lower().lstrip("/")
            description = str(command.get("description", ""))
            if not _COMMAND_NAME.fullmatch(name):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": name, "description": description})
        self.state.commands[self._commands_key(params)] = clean
        return True

    def get_my_commands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        return copy.deepcopy(self.state.commands.get(self._commands_key(params), []))

    def delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.state.commands.pop(self._commands_key(params), None)
        return True
