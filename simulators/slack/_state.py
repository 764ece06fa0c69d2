"""The Slack simulator's state: people, conversations, messages, ephemerals, response URLs,
rate limits and the record of every delivery to the app.

Why apart: everything that changes, under one lock with one condition; the Web API, both
transports and the public face change it only through here. It also builds the JSON
Slack sends (messages, events, envelopes), so that every path builds it the same way.
"""

from __future__ import annotations

import copy
import math
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from simulators._base import Faults, RequestLog
from simulators.slack._blocks import with_ids
from simulators.slack._model import (
    APP_ID,
    BOT_ID,
    BOT_USER,
    RESPONSE_URL_TTL,
    RESPONSE_URL_USES,
    TEAM,
    TEAM_NAME,
    VERIFICATION_TOKEN,
    Forgery,
    Outgoing,
    RecordedRequest,
    _ApiError,
    _Channel,
    _Ephemeral,
    _Message,
    _random_id,
    _ResponseUrl,
    _User,
)

_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")
_CREATED = 1_700_000_000  # when the seeded conversations were "created"

Sink = Callable[[Outgoing], None]


class _State:
    """Everything the simulator knows, behind one lock; ``changed`` wakes every waiter."""

    def __init__(self, clock: Callable[[], float], channel_interval: float,
                 echo_bot_messages: bool) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()
        self.clock = clock
        self.channel_interval = channel_interval
        self.echo_bot_messages = echo_bot_messages
        self.base_url = ""  # the simulator's own URL, for response_url; set at start
        self.sink: Sink | None = None  # the transport that delivers to the app
        self.users: dict[str, _User] = {}
        self.channels: dict[str, _Channel] = {}
        self.ephemerals: list[_Ephemeral] = []
        self.response_urls: dict[str, _ResponseUrl] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.last_sent: dict[str, float] = {}
        self.last_micros = 0
        self.connections_opened = 0  # Socket Mode: websocket connections so far
        self.connections_live = 0  # ... and those open and not told to reconnect

    def now(self) -> float:
        return self.clock()

    # -- people and conversations ----------------------------------------------------

    def user(self, user_id: str) -> _User:
        found = self.users.get(user_id)
        if found is None:
            known = ", ".join(f"{u.name} ({u.id})" for u in self.users.values() if not u.is_bot)
            raise LookupError(f"no user {user_id!r}; known users: {known}")
        return found

    def channel(self, channel_id: str) -> _Channel:
        found = self.conversation(channel_id)
        if found is None:
            known = ", ".join(f"#{c.name} ({c.id})" for c in self.channels.values() if c.name)
            raise LookupError(f"no conversation {channel_id!r}; channels: {known}; a DM's id "
                              "comes from dm_of(user)")
        return found

    def dm(self, user_id: str) -> _Channel:
        """The DM between a person and the bot, made the first time it is asked for."""
        user = self.user(user_id)
        if user.is_bot:
            raise ValueError("the bot has no DM with itself")
        dm_id = "D" + user_id[1:]
        if dm_id not in self.channels:
            self.channels[dm_id] = _Channel(dm_id, None, "im", {user_id, BOT_USER},
                                            dm_user=user_id)
        return self.channels[dm_id]

    def dm_between(self, user_id: str, other_id: str) -> _Channel:
        """The DM between two people, which the bot is not part of."""
        people = sorted({self.user(user_id).id, self.user(other_id).id})
        if len(people) != 2 or any(self.users[p].is_bot for p in people):
            raise ValueError("a DM between two people needs two different people")
        dm_id = "D" + "".join(p[1:] for p in people)
        if dm_id not in self.channels:
            self.channels[dm_id] = _Channel(dm_id, None, "im", set(people))
        return self.channels[dm_id]

    def conversation(self, channel_id: str | None) -> _Channel | None:
        """The conversation with this id; a person's DM exists before anyone opens it."""
        person = self.users.get("U" + channel_id[1:]) if channel_id else None
        if channel_id and channel_id.startswith("D") and person is not None \
                and not person.is_bot:
            return self.dm(person.id)
        return self.channels.get(channel_id or "")

    def resolve(self, reference: str | None) -> _Channel | None:
        """What chat.postMessage's ``channel`` names: an id, ``#name`` or a user id (the DM)."""
        if not reference:
            return None
        if reference.startswith("#"):
            return next((c for c in self.channels.values() if c.name == reference[1:]), None)
        if reference in self.users and not self.users[reference].is_bot:
            return self.dm(reference)
        return self.seen_by_bot(self.conversation(reference))

    @staticmethod
    def seen_by_bot(channel: _Channel | None) -> _Channel | None:
        """``channel`` as the bot token sees it: other people's DMs do not exist for it,
        every method answers ``channel_not_found``
        (api.slack.com/methods/conversations.info#errors)."""
        if channel is not None and channel.kind == "im" and BOT_USER not in channel.members:
            return None
        return channel

    def member(self, user_id: str, channel_id: str) -> tuple[_User, _Channel]:
        """A person and a conversation they are in; ValueError otherwise."""
        user = self.user(user_id)
        if user.is_bot:
            raise ValueError("the bot speaks through the Web API, not as a person")
        channel = self.channel(channel_id)
        if user_id not in channel.members:
            raise ValueError(f"{user.name} ({user_id}) is not a member of "
                             f"{self.describe(channel)}; add_member() first")
        return user, channel

    def describe(self, channel: _Channel) -> str:
        return f"#{channel.name} ({channel.id})" if channel.name else f"the DM {channel.id}"

    # -- messages ----------------------------------------------------------------------

    def next_ts(self) -> str:
        """A message timestamp: seconds and a microsecond part, unique and increasing."""
        micros = max(int(self.clock() * 1_000_000), self.last_micros + 1)
        self.last_micros = micros
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def add_message(self, channel: _Channel, user: str, text: str,
                    blocks: list[dict[str, Any]] | None, *, bot_id: str | None = None,
                    thread_ts: str | None = None) -> _Message:
        message = _Message(channel.id, self.next_ts(), text, with_ids(blocks), user,
                           bot_id=bot_id, thread_ts=thread_ts)
        parent = channel.messages.get(thread_ts) if thread_ts else None
        if parent is not None:
            parent.replies.append(message.ts)
        channel.messages[message.ts] = message
        self.changed.notify_all()
        return message

    def message_json(self, message: _Message) -> dict[str, Any]:
        """The message object as the Web API and events show it."""
        author = self.users[message.user]
        data: dict[str, Any] = {"type": "message", "text": message.text, "user": message.user,
                                "ts": message.ts, "team": author.team}
        if message.bot_id:
            data.update(bot_id=message.bot_id, app_id=APP_ID, bot_profile={
                "id": BOT_ID, "app_id": APP_ID, "name": author.name, "deleted": False,
                "team_id": TEAM})
        if message.blocks is not None:
            data["blocks"] = copy.deepcopy(message.blocks)
        if message.thread_ts and message.thread_ts != message.ts:
            data["thread_ts"] = message.thread_ts
            parent = self.channels[message.channel].messages.get(message.thread_ts)
            if parent is not None:
                data["parent_user_id"] = parent.user
        if message.replies:
            channel = self.channels[message.channel]
            data.update(thread_ts=message.ts, reply_count=len(message.replies),
                        reply_users=sorted({channel.messages[ts].user for ts in message.replies}),
                        latest_reply=message.replies[-1])
        if message.edited_ts:
            data["edited"] = {"user": message.user, "ts": message.edited_ts}
        return data

    def snapshot(self, message: _Message) -> dict[str, Any]:
        """What ``messages()`` shows of one message: its current state."""
        return {"channel": message.channel, "ts": message.ts, "text": message.text,
                "blocks": copy.deepcopy(message.blocks), "thread_ts": message.thread_ts,
                "user": message.user, "bot_id": message.bot_id, "edits": message.edits,
                "deleted": message.deleted, "reply_count": len(message.replies),
                "message": self.message_json(message)}

    def add_ephemeral(self, user: str, channel: _Channel, text: str,
                      blocks: list[dict[str, Any]] | None, thread_ts: str | None,
                      source: str) -> _Ephemeral:
        ephemeral = _Ephemeral(user, channel.id, self.next_ts(), text, with_ids(blocks),
                               thread_ts, source)
        self.ephemerals.append(ephemeral)
        self.changed.notify_all()
        return ephemeral

    def bot_post(self, channel: _Channel, text: str, blocks: list[dict[str, Any]] | None,
                 thread_ts: str | None) -> _Message:
        """A message from the bot, with the ``message`` event Slack sends its own app too."""
        message = self.add_message(channel, BOT_USER, text, blocks, bot_id=BOT_ID,
                                   thread_ts=thread_ts)
        if self.echo_bot_messages:
            self.dispatch_event(channel, self.message_event(channel, message))
        return message

    def bot_update(self, message: _Message, text: str | None,
                   blocks: list[dict[str, Any]] | None, *, keep_blocks: bool) -> None:
        """Replace a message's content; a ``message_changed`` event follows, as on Slack."""
        channel = self.channels[message.channel]
        previous = self.message_json(message)
        if text is not None:
            message.text = text
        if not keep_blocks:
            message.blocks = with_ids(blocks) if blocks else None
        message.edits += 1
        message.edited_ts = self.next_ts()
        self.changed.notify_all()
        if self.echo_bot_messages:
            self.dispatch_event(channel, {
                "type": "message", "subtype": "message_changed", "hidden": True,
                "channel": channel.id, "ts": message.edited_ts, "event_ts": message.edited_ts,
                "channel_type": channel.kind, "message": self.message_json(message),
                "previous_message": previous})

    # -- rate limits ---------------------------------------------------------------------

    def check_rate(self, channel_id: str) -> None:
        """``ratelimited`` (HTTP 429, ``Retry-After``) for a post faster than the channel allows.

        "chat.postMessage generally allows posting one message per second per channel"
        (api.slack.com/docs/rate-limits, "Special rate limits"); a refused call changes
        nothing and does not count.
        """
        interval = self.channel_interval
        last = self.last_sent.get(channel_id)
        if interval <= 0 or last is None:
            return
        elapsed = self.now() - last
        if elapsed < interval:
            wait = max(1, math.ceil(interval - elapsed))
            raise _ApiError("ratelimited", 429, headers=(("Retry-After", str(wait)),))

    def count_post(self, channel_id: str) -> None:
        self.last_sent[channel_id] = self.now()

    # -- what Slack sends the app -----------------------------------------------------------

    def user_fields(self, user: _User) -> dict[str, Any]:
        """What an event says about a person from another workspace (Slack Connect)."""
        if user.team == TEAM:
            return {}
        return {"user_team": user.team, "source_team": user.team}

    def message_event(self, channel: _Channel, message: _Message) -> dict[str, Any]:
        event = {**self.message_json(message), "channel": channel.id, "event_ts": message.ts,
                 "channel_type": channel.kind}
        if message.bot_id is None:
            event["client_msg_id"] = str(uuid.uuid4())
            event.update(self.user_fields(self.users[message.user]))
        return event

    def mention_event(self, channel: _Channel, message: _Message) -> dict[str, Any]:
        event: dict[str, Any] = {"type": "app_mention", "user": message.user,
                                 "text": message.text, "ts": message.ts,
                                 "team": self.users[message.user].team,
                                 "channel": channel.id, "event_ts": message.ts,
                                 "blocks": copy.deepcopy(message.blocks)}
        if message.thread_ts:
            event["thread_ts"] = message.thread_ts
        event.update(self.user_fields(self.users[message.user]))
        return event

    def envelope(self, channel: _Channel, event: dict[str, Any]) -> dict[str, Any]:
        """The Events API's ``event_callback`` wrapper (api.slack.com/apis/events-api,
        "Callback field overview")."""
        return {"token": VERIFICATION_TOKEN, "team_id": TEAM, "context_team_id": TEAM,
                "context_enterprise_id": None, "api_app_id": APP_ID, "event": event,
                "type": "event_callback", "event_id": _random_id("Ev"),
                "event_time": int(self.now()),
                "authorizations": [{"enterprise_id": None, "team_id": TEAM,
                                    "user_id": BOT_USER, "is_bot": True,
                                    "is_enterprise_install": False}],
                "is_ext_shared_channel": channel.is_ext_shared,
                "event_context": "4-" + _random_id("", 40)}

    def dispatch_event(self, channel: _Channel, event: dict[str, Any],
                       forgery: Forgery | None = None) -> Outgoing:
        envelope = self.envelope(channel, event)
        return self.dispatch(Outgoing("events_api", envelope["event_id"], envelope, forgery))

    def dispatch(self, item: Outgoing) -> Outgoing:
        """Hand ``item`` to the transport (which never blocks), or record that none is set."""
        if self.sink is None:
            self.record(item, transport="none", attempt=0, retry_reason=None, status=None,
                        error="nowhere to deliver: no events_url and not in Socket Mode")
        else:
            self.sink(item)
        return item

    def trigger_id(self) -> str:
        return f"{int(self.now())}.{_random_id('', 10)}.{uuid.uuid4().hex}"

    def response_url(self, kind: str, channel: _Channel, user: str, message_ts: str | None,
                     thread_ts: str | None) -> str:
        hook = _ResponseUrl(uuid.uuid4().hex[:24], kind, channel.id, user, message_ts, thread_ts,
                            self.now())
        self.response_urls[hook.id] = hook
        return f"{self.base_url}actions/{TEAM}/{hook.id}"

    def respond(self, hook: _ResponseUrl, body: dict[str, Any], text: str,
                blocks: list[dict[str, Any]] | None) -> None:
        """A message through a response_url
        (api.slack.com/interactivity/handling#message_responses): ``replace_original``
        edits the message the button was on, ``delete_original`` deletes it,
        ``response_type: ephemeral`` shows it to the user only, else a new message;
        commands default to ephemeral, as Slack's do."""
        channel = self.channels[hook.channel]
        original = channel.messages.get(hook.message_ts) if hook.message_ts else None
        if _true(body.get("delete_original")) and original is not None:
            original.deleted = True
            self.changed.notify_all()
            return
        if _true(body.get("replace_original")) and original is not None:
            self.bot_update(original, text, blocks, keep_blocks=False)
            return
        default = "ephemeral" if hook.kind == "slash_commands" else "in_channel"
        thread_ts = body.get("thread_ts") or hook.thread_ts
        if (body.get("response_type") or default) == "ephemeral":
            self.add_ephemeral(hook.user, channel, text, blocks, thread_ts, "response_url")
        else:
            self.bot_post(channel, text, blocks, thread_ts)

    def use_response_url(self, hook_id: str) -> _ResponseUrl:
        hook = self.response_urls.get(hook_id)
        if hook is None or hook.uses >= RESPONSE_URL_USES \
                or self.now() - hook.created > RESPONSE_URL_TTL:
            raise _ApiError("expired_url", 404)
        hook.uses += 1
        return hook

    # -- deliveries ------------------------------------------------------------------------

    def record(self, item: Outgoing, *, transport: str, attempt: int, retry_reason: str | None,
               status: int | None, error: str | None, envelope_id: str | None = None,
               acknowledged: bool = False) -> dict[str, Any]:
        """One attempt to deliver ``item``; returned so the transport can complete it."""
        entry = {"id": item.id, "kind": item.kind, "transport": transport, "attempt": attempt,
                 "retry_reason": retry_reason, "status": status, "error": error,
                 "envelope_id": envelope_id, "acknowledged": acknowledged, "at": time.time()}
        with self.changed:
            self.deliveries.append(entry)
            self.changed.notify_all()
        return entry

    def complete(self, entry: dict[str, Any], **fields: Any) -> None:
        with self.changed:
            entry.update(fields)
            self.changed.notify_all()

    def answered_command(self, item: Outgoing, answer: Any) -> None:
        """A slash command's immediate answer (the HTTP body, or the Socket Mode ack's
        payload): an ephemeral unless ``response_type`` is ``in_channel``
        (api.slack.com/interactivity/slash-commands#responding_immediate_response)."""
        if isinstance(answer, str):
            answer = {"text": answer} if answer.strip() else {}
        if not isinstance(answer, dict) or not (answer.get("text") or answer.get("blocks")):
            return
        fields = item.payload
        with self.changed:
            channel = self.channels.get(fields["channel_id"])
            if channel is None:
                return
            text = str(answer.get("text") or "")
            blocks = answer.get("blocks") if isinstance(answer.get("blocks"), list) else None
            if answer.get("response_type") == "in_channel":
                self.bot_post(channel, text, blocks, None)
            else:
                self.add_ephemeral(fields["user_id"], channel, text, blocks, None,
                                   "slash_command")

    def command_timed_out(self, item: Outgoing) -> None:
        """What the person sees when the app did not answer a command in time."""
        fields = item.payload
        with self.changed:
            channel = self.channels.get(fields["channel_id"])
            if channel is not None:
                self.add_ephemeral(fields["user_id"], channel,
                                   f'{fields["command"]} failed with the error '
                                   '"operation_timeout"', None, None, "slackbot")

    # -- JSON of the world -------------------------------------------------------------------

    def user_json(self, user: _User) -> dict[str, Any]:
        profile: dict[str, Any] = {"real_name": user.real_name, "display_name": user.name,
                                   "team": user.team}
        if user.is_bot:
            profile.update(bot_id=BOT_ID, api_app_id=APP_ID)
        return {"id": user.id, "team_id": user.team, "name": user.name, "deleted": False,
                "real_name": user.real_name, "is_bot": user.is_bot, "is_app_user": False,
                "is_admin": False, "is_restricted": False, "is_stranger": user.team != TEAM,
                "tz": "Europe/Berlin", "tz_offset": 3600, "updated": _CREATED,
                "profile": profile}

    def channel_json(self, channel: _Channel) -> dict[str, Any]:
        if channel.kind == "im":
            return {"id": channel.id, "created": _CREATED, "is_im": True, "is_org_shared": False,
                    "context_team_id": TEAM, "user": channel.dm_user, "is_user_deleted": False,
                    "priority": 0}
        return {"id": channel.id, "name": channel.name, "name_normalized": channel.name,
                "is_channel": channel.kind == "channel", "is_group": channel.kind == "group",
                "is_im": False, "is_mpim": False, "is_private": channel.kind != "channel",
                "is_archived": False, "is_general": False, "created": _CREATED,
                "creator": "U0ALICE", "is_shared": channel.is_ext_shared,
                "is_ext_shared": channel.is_ext_shared, "is_org_shared": False,
                "is_member": BOT_USER in channel.members, "context_team_id": TEAM,
                "shared_team_ids": [TEAM] + sorted({self.users[m].team for m in channel.members
                                                    if self.users[m].team != TEAM}),
                "topic": {"value": "", "creator": "", "last_set": 0},
                "purpose": {"value": "", "creator": "", "last_set": 0}}

    def team_json(self, team: str) -> dict[str, Any]:
        return {"id": team, "domain": TEAM_NAME if team == TEAM else team.lower()}


def _true(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


def mention_blocks(text: str) -> list[dict[str, Any]]:
    """The ``rich_text`` block Slack's clients attach to what a person types, with
    ``<@U...>`` mentions as ``user`` elements."""
    elements: list[dict[str, Any]] = []
    position = 0
    for match in _MENTION.finditer(text):
        if match.start() > position:
            elements.append({"type": "text", "text": text[position:match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        position = match.end()
    if position < len(text):
        elements.append({"type": "text", "text": text[position:]})
    return [{"type": "rich_text", "block_id": _random_id("", 5),
             "elements": [{"type": "rich_text_section", "elements": elements}]}]
