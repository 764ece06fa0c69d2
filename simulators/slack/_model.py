"""The Slack simulator's model: the seeded workspace, tokens, Slack's limits, people,
conversations, messages, ephemerals, response URLs and what is delivered to the app.

Why apart: the state, the Web API methods, both transports (HTTP and Socket Mode) and
the public face all speak of these; they are mutated only under ``_State.lock``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from simulators._http import Response

TEAM = "T0OPS"
TEAM_NAME = "ops"
OTHER_TEAM = "T0OTHER"
OTHER_TEAM_NAME = "partner"
APP_ID = "A0OPSBOT"
BOT_USER = "U0BOT"
BOT_ID = "B0BOT"
ALICE = "U0ALICE"
BOB = "U0BOB"
CAROL = "U0CAROL"
EVE = "U0EVE"
"""A Slack Connect user: she belongs to another workspace (``OTHER_TEAM``)."""
OPS_CHANNEL = "C0OPS"
OTHER_CHANNEL = "C0OTHER"
NOBOT_CHANNEL = "C0NOBOT"
SHARED_CHANNEL = "C0SHARED"
"""A Slack Connect channel shared with ``OTHER_TEAM``: alice, bob, eve and the bot."""

# Fixed, so that a demo and its documentation can name them; the constructor takes others.
DEFAULT_BOT_TOKEN = "xoxb-1000000001-2000000002-opsbotSimulatorBotToken0"
DEFAULT_APP_TOKEN = ("xapp-1-A0OPSBOT-3000000003-"
                     "5f3c9d0e8b7a4c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b")
DEFAULT_SIGNING_SECRET = "8f742231b10e8888abcd99aaabbb85a5"
VERIFICATION_TOKEN = "simVerificationToken0000"
"""The deprecated verification token Slack still puts in payloads (``token``)."""

MAX_TEXT_LENGTH = 40_000
"""chat.postMessage: "messages over 40,000 characters are refused" (msg_too_long),
api.slack.com/methods/chat.postMessage#truncating."""

RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
"""A response_url "can be used up to 5 times within 30 minutes"
(api.slack.com/interactivity/handling#message_responses)."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str  # HTTP method
    target: str  # path and query as sent
    api_method: str | None  # the Web API method, None for response_url and other paths
    params: dict[str, Any]  # the parameters after decoding (the token left out)
    status: int
    error: str | None  # the ``error`` of an ``ok: false`` answer


@dataclass(frozen=True)
class Forgery:
    """How a test makes one delivery untrustworthy, to check that the app refuses it.

    ``bad_signature``: signed with another secret; ``unsigned``: without the signature
    headers; ``timestamp_age``: seconds into the past for ``X-Slack-Request-Timestamp``
    (correctly signed, a replay); ``team_id``: the workspace the payload claims to come
    from (another installation speaking for this one). Signatures exist only in HTTP
    mode; ``team_id`` is forged in both.
    """

    bad_signature: bool = False
    unsigned: bool = False
    timestamp_age: float = 0.0
    team_id: str | None = None


@dataclass(frozen=True)
class Outgoing:
    """One thing Slack sends the app: an Events API envelope, an interaction or a command.

    ``kind`` is the Socket Mode envelope type (``events_api``, ``interactive``,
    ``slash_commands``); ``id`` is the event_id, or the trigger_id of an interaction or a
    command; ``payload`` is what the app gets (over HTTP: the JSON body, the ``payload=``
    form field, or the command's form fields).
    """

    kind: str
    id: str
    payload: dict[str, Any]
    forgery: Forgery | None = None


@dataclass(frozen=True)
class Sent:
    """What one user action made: the message's ``ts`` (None for a press or a command) and
    every payload delivered to the app for it (none where the bot cannot see it)."""

    channel: str
    ts: str | None
    deliveries: tuple[Outgoing, ...]

    @property
    def events(self) -> list[dict[str, Any]]:
        """The inner Events API events (``message``, ``app_mention``), in order."""
        return [item.payload["event"] for item in self.deliveries if item.kind == "events_api"]


@dataclass(frozen=True)
class _User:
    id: str
    name: str
    real_name: str
    team: str
    is_bot: bool = False


@dataclass
class _Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    user: str  # the author's user id (the bot's own for its messages)
    bot_id: str | None = None
    thread_ts: str | None = None
    edits: int = 0
    edited_ts: str | None = None
    deleted: bool = False
    replies: list[str] = field(default_factory=list)  # the ts of replies, for a parent


@dataclass
class _Channel:
    id: str
    name: str | None  # None for a DM
    kind: str  # "channel" (public), "group" (private) or "im"
    members: set[str]
    is_ext_shared: bool = False
    dm_user: str | None = None  # the person of a DM
    messages: dict[str, _Message] = field(default_factory=dict)  # by ts, oldest first


@dataclass(frozen=True)
class _Ephemeral:
    user: str
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    thread_ts: str | None
    source: str  # chat.postEphemeral, response_url, slash_command or slackbot


@dataclass
class _ResponseUrl:
    id: str
    kind: str  # block_actions or slash_commands
    channel: str
    user: str
    message_ts: str | None  # the message a button was on
    thread_ts: str | None
    created: float
    uses: int = 0


class _ApiError(Exception):
    """A Web API refusal: ``{"ok": false, "error": ...}``, HTTP 200 unless Slack says else."""

    def __init__(self, error: str, status: int = 200, *, headers: tuple[tuple[str, str], ...] = (),
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.headers = headers
        self.extra = extra or {}

    def response(self) -> Response:
        response = Response.json({"ok": False, "error": self.error, **self.extra}, self.status)
        response.headers.extend(self.headers)
        return response


def _random_id(prefix: str, length: int = 10) -> str:
    """An id in Slack's alphabet (upper-case letters and digits) after ``prefix``."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return prefix + "".join(secrets.choice(alphabet) for _ in range(length))
