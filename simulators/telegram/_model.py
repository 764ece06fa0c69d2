"""The Telegram simulator's model: the seeded users and group, the Bot API's limits and
error texts, users, chats, messages, pending updates, callback queries and the webhook.

Why apart: the state, the Bot API methods, webhook delivery and the public face all
speak of these; they are mutated only under ``_State.lock``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from simulators._http import Response

DEFAULT_TOKEN = "123456:TEST-opsbot-demo-token"
DEFAULT_BOT_USERNAME = "opsbot_demo_bot"
ALICE = 42
BOB = 43
CAROL = 44
OPS_GROUP = -1001000000001
MAX_TEXT_LENGTH = 4096
"""Characters a message may have after its entities are parsed."""

_LONG_POLL_MAX = 50  # seconds: the Bot API caps getUpdates' timeout there
_WEBHOOK_ACTIVE = ("Conflict: can't use getUpdates method while webhook is active; "
                   "use deleteWebhook to delete the webhook first")
_TERMINATED = ("Conflict: terminated by other getUpdates request; make sure that only one "
               "bot instance is running")
_TERMINATED_BY_WEBHOOK = "Conflict: terminated by setWebhook request"
_NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and "
                 "reply markup are exactly the same as a current content and reply markup "
                 "of the message")
_QUERY_TOO_OLD = ("Bad Request: query is too old and response timeout expired or query ID "
                  "is invalid")
_UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
)
# What a bot gets when allowed_updates was never given or given as [].
_DEFAULT_ALLOWED = frozenset(_UPDATE_TYPES) - {"chat_member", "message_reaction",
                                              "message_reaction_count"}
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
_BUTTON_ACTIONS = ("url", "callback_data", "web_app", "login_url", "switch_inline_query",
                   "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
                   "copy_text", "callback_game", "pay")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"(\d+):[A-Za-z0-9_-]+")
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_PERSON_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,31}")  # lenient: the seeds have "bob"
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str  # HTTP method
    target: str  # path and query as sent
    api_method: str | None  # the Bot API method (as sent), None for other paths
    params: dict[str, Any]  # the parameters after decoding; uploaded files as "<N bytes>"
    status: int
    description: str | None  # the error description of a refused request


@dataclass(frozen=True)
class _User:
    id: int
    first_name: str
    username: str | None
    is_bot: bool = False


@dataclass
class _Message:
    chat_id: int
    message_id: int
    sender: int  # a user id, or the bot's
    date: int
    source: str | None  # as sent, with its markup; None for a message without text
    text: str | None  # as shown
    parse_mode: str | None
    entities: list[dict[str, Any]]
    reply_markup: dict[str, Any] | None = None  # an inline keyboard
    reply_to: dict[str, Any] | None = None  # the replied-to message, as embedded
    thread_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # sticker, new_chat_members
    edit_date: int | None = None
    edits: int = 0
    deleted: bool = False


@dataclass
class _Chat:
    id: int
    type: str  # private, group, supergroup
    title: str | None
    members: set[int]
    messages: dict[int, _Message] = field(default_factory=dict)
    last_message_id: int = 0


@dataclass
class _Pending:
    update: dict[str, Any]
    forced: bool = False  # redelivered: returned once more even below the confirmed offset


@dataclass
class _Query:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created: float
    answered: bool = False


@dataclass
class _Webhook:
    url: str
    secret: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(frozen=True)
class _Described:
    """A result whose answer also carries a description ("Webhook was set")."""

    result: Any
    description: str


class _ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": status, "description": ...}``."""

    def __init__(self, status: int, description: str,
                 parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def response(self) -> Response:
        body: dict[str, Any] = {"ok": False, "error_code": self.status,
                                "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return Response.json(body, self.status)


# "Ports currently supported for webhooks: 443, 80, 88, 8443" (core.telegram.org/bots/api,
# setWebhook; core.telegram.org/bots/webhooks): any other port, or http, is refused.
WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, with the scheme's default port spelt out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{(parts.hostname or '').lower()}:{parts.port or default}"


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")
