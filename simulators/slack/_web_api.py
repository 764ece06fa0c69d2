"""The Web API methods opsbot uses (``auth.test``, ``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, ``conversations.info``, ``users.info``,
``apps.connections.open``), with Slack's checks and error codes.

Why apart: one method a function, over the state; the HTTP face only routes to them.
Each method's arguments and errors follow its page, api.slack.com/methods/<name>.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from simulators.slack._blocks import check_blocks, parse_blocks
from simulators.slack._model import (
    BOT_ID,
    BOT_USER,
    MAX_TEXT_LENGTH,
    TEAM,
    TEAM_NAME,
    _ApiError,
    _Channel,
)
from simulators.slack._state import _State

Method = Callable[[dict[str, Any]], dict[str, Any]]


def _str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def content(params: dict[str, Any]) -> tuple[str | None, list[dict[str, Any]] | None]:
    """The ``text`` and ``blocks`` of a message, checked as chat.postMessage checks them:
    ``no_text`` without either (or attachments), ``msg_too_long`` over 40,000
    characters, ``invalid_blocks_format`` / ``invalid_blocks`` for bad blocks."""
    text = _str(params, "text")
    blocks = parse_blocks(params.get("blocks"))
    if not text and not blocks and not params.get("attachments"):
        raise _ApiError("no_text")
    if text is not None and len(text) > MAX_TEXT_LENGTH:
        raise _ApiError("msg_too_long")
    if blocks:
        check_blocks(blocks)
    return text, blocks


class _WebApi:
    """One function per method: decoded parameters in, the ``ok: true`` answer out.

    ``bot_token`` works for every method but ``apps.connections.open``, which takes only
    ``app_token`` (None: no app-level token, HTTP mode); another token is ``invalid_auth``,
    the wrong kind ``not_allowed_token_type`` (api.slack.com/authentication/token-types).
    """

    def __init__(self, state: _State, bot_token: str, app_token: str | None,
                 open_connection: Callable[[], str]) -> None:
        self.state = state
        self.bot_token = bot_token
        self.app_token = app_token
        self.open_connection = open_connection
        self.methods: dict[str, Method] = {
            "auth.test": self.auth_test, "chat.postMessage": self.post_message,
            "chat.update": self.update, "chat.postEphemeral": self.post_ephemeral,
            "conversations.info": self.conversations_info, "users.info": self.users_info,
        }

    def call(self, method: str, token: str | None, params: dict[str, Any]) -> dict[str, Any]:
        """The answer to one call; _ApiError for a refusal."""
        if method != "apps.connections.open" and method not in self.methods:
            raise _ApiError("unknown_method", 404, extra={"req_method": method})
        if not token:
            raise _ApiError("not_authed")
        is_bot = secrets.compare_digest(token.encode(), self.bot_token.encode())
        is_app = self.app_token is not None and secrets.compare_digest(
            token.encode(), self.app_token.encode())
        if not is_bot and not is_app:
            raise _ApiError("invalid_auth")
        if method == "apps.connections.open":
            if not is_app:
                raise _ApiError("not_allowed_token_type")
            return {"ok": True, "url": self.open_connection()}
        if not is_bot:
            raise _ApiError("not_allowed_token_type")
        with self.state.lock:
            return {"ok": True, **self.methods[method](params)}

    # -- helpers -----------------------------------------------------------------------

    def postable(self, params: dict[str, Any]) -> _Channel:
        """The conversation a post goes to: ``channel_not_found``, ``not_in_channel``, or
        ``ratelimited`` while its last post is too recent."""
        channel = self.state.resolve(_str(params, "channel"))
        if channel is None:
            raise _ApiError("channel_not_found")
        if BOT_USER not in channel.members:
            raise _ApiError("not_in_channel")
        self.state.check_rate(channel.id)
        return channel

    # -- methods -----------------------------------------------------------------------

    def auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"url": f"https://{TEAM_NAME}.slack.com/", "team": TEAM_NAME,
                "user": self.state.users[BOT_USER].name, "team_id": TEAM, "user_id": BOT_USER,
                "bot_id": BOT_ID, "is_enterprise_install": False}

    def post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        """``reply_broadcast`` is taken and ignored: the reply stays in its thread."""
        channel = self.postable(params)
        text, blocks = content(params)
        message = self.state.bot_post(channel, text or "", blocks,
                                      _str(params, "thread_ts") or None)
        self.state.count_post(channel.id)
        return {"channel": channel.id, "ts": message.ts,
                "message": self.state.message_json(message)}

    def update(self, params: dict[str, Any]) -> dict[str, Any]:
        """Blocks left out keep the message's blocks; ``blocks: []`` removes them
        (api.slack.com/methods/chat.update)."""
        channel = self.state.resolve(_str(params, "channel"))
        if channel is None:
            raise _ApiError("channel_not_found")
        message = channel.messages.get(_str(params, "ts") or "")
        if message is None or message.deleted:
            raise _ApiError("message_not_found")
        if message.bot_id != BOT_ID:
            raise _ApiError("cant_update_message")
        self.state.check_rate(channel.id)
        keep_blocks = params.get("blocks") is None
        if keep_blocks and not _str(params, "text") and not params.get("attachments"):
            raise _ApiError("no_text")
        text, blocks = content(params)
        self.state.bot_update(message, text, blocks, keep_blocks=keep_blocks)
        self.state.count_post(channel.id)
        return {"channel": channel.id, "ts": message.ts, "text": message.text,
                "message": self.state.message_json(message)}

    def post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.state.resolve(_str(params, "channel"))
        if channel is None:
            raise _ApiError("channel_not_found")
        if BOT_USER not in channel.members:
            raise _ApiError("not_in_channel")
        user = _str(params, "user") or ""
        if user not in channel.members:
            raise _ApiError("user_not_in_channel")
        self.state.check_rate(channel.id)
        text, blocks = content(params)
        ephemeral = self.state.add_ephemeral(user, channel, text or "", blocks,
                                             _str(params, "thread_ts") or None,
                                             "chat.postEphemeral")
        self.state.count_post(channel.id)
        return {"message_ts": ephemeral.ts}

    def conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = self.state.seen_by_bot(self.state.conversation(_str(params, "channel")))
        if channel is None:
            raise _ApiError("channel_not_found")
        return {"channel": self.state.channel_json(channel)}

    def users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.state.users.get(_str(params, "user") or "")
        if user is None:
            raise _ApiError("user_not_found")
        return {"user": self.state.user_json(user)}
