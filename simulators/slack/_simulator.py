"""``SlackSimulator``, the Slack simulator's public face (playing the people, reading what
the bot said), and ``python -m simulators.slack``.

Why apart: what tests and the demo call is kept to the names they use; the rest of the
package is private.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable, Sequence
from typing import Any

from simulators._base import SimulatorBase, add_address_arguments, run_main
from simulators.slack._app import _App
from simulators.slack._blocks import buttons, visible_text
from simulators.slack._http_events import _HttpSender
from simulators.slack._model import (
    ALICE,
    APP_ID,
    BOB,
    BOT_USER,
    CAROL,
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_SIGNING_SECRET,
    EVE,
    NOBOT_CHANNEL,
    OPS_CHANNEL,
    OTHER_CHANNEL,
    OTHER_TEAM,
    SHARED_CHANNEL,
    TEAM,
    TEAM_NAME,
    VERIFICATION_TOKEN,
    Forgery,
    Outgoing,
    RecordedRequest,
    Sent,
    _Channel,
    _Ephemeral,
    _Message,
    _User,
)
from simulators.slack._socket_mode import _SocketMode
from simulators.slack._state import _State, mention_blocks
from simulators.slack._web_api import _WebApi

SLACK_RETRY_DELAYS = (0.0, 60.0, 300.0)
"""Events are retried "nearly immediately, then after 1 minute, then after 5 minutes"."""


def _ts_key(ts: str) -> tuple[int, int]:
    seconds, _, micros = ts.partition(".")
    return int(seconds), int(micros or 0)


class SlackSimulator(SimulatorBase[RecordedRequest]):
    """A Slack workspace in threads: the Web API, the Events API or Socket Mode, and people
    a test can play.

    ``socket_mode``: deliver over Socket Mode (``apps.connections.open`` takes
    ``app_token``); otherwise POST to ``events_url`` (HTTP mode, signed with
    ``signing_secret``; settable later). ``channel_interval``: seconds the bot must leave
    between two posts to one channel (0 = no limit; Slack's is about 1). ``ack_timeout``:
    how long Slack waits for a 200 or an acknowledgement (3 s on Slack);
    ``retry_delays``: the waits before each retry of an event. ``echo_bot_messages``:
    the app also gets ``message`` events for its own posts and edits, as on Slack.
    ``port=0`` picks a free port; read ``api_url`` after ``start()``.
    """

    def __init__(
        self,
        *,
        socket_mode: bool = False,
        events_url: str | None = None,
        bot_token: str = DEFAULT_BOT_TOKEN,
        app_token: str = DEFAULT_APP_TOKEN,
        signing_secret: str = DEFAULT_SIGNING_SECRET,
        channel_interval: float = 0.0,
        ack_timeout: float = 3.0,
        retry_delays: Sequence[float] = SLACK_RETRY_DELAYS,
        echo_bot_messages: bool = True,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not bot_token.startswith("xoxb-"):
            raise ValueError("bot_token must be a bot token (xoxb-...)")
        if not app_token.startswith("xapp-"):
            raise ValueError("app_token must be an app-level token (xapp-...)")
        if not signing_secret:
            raise ValueError("signing_secret must not be empty")
        if socket_mode and events_url:
            raise ValueError("an app in Socket Mode gets no HTTP deliveries: give socket_mode "
                             "or events_url, not both")
        if channel_interval < 0 or ack_timeout <= 0 or any(d < 0 for d in retry_delays):
            raise ValueError("channel_interval and retry_delays must be >= 0, ack_timeout > 0")
        self.bot_token = bot_token
        self.app_token = app_token
        self.signing_secret = signing_secret
        self.socket_mode = socket_mode
        self._state = _State(clock, channel_interval, echo_bot_messages)
        self._http = _HttpSender(self._state, signing_secret, events_url, ack_timeout,
                                 retry_delays)
        self._socket = _SocketMode(self._state, host, ack_timeout, retry_delays)
        api = _WebApi(self._state, bot_token, app_token if socket_mode else None,
                      self._socket.issue_url)
        super().__init__(_App(self._state, api), faults=self._state.faults,
                         requests=self._state.log, host=host, port=port,
                         name="slack-simulator", server_name="Apache")
        self._seed()

    def _seed(self) -> None:
        state = self._state
        for user in (_User(BOT_USER, "opsbot", "opsbot", TEAM, is_bot=True),
                     _User(ALICE, "alice", "Alice Adams", TEAM),
                     _User(BOB, "bob", "Bob Brown", TEAM),
                     _User(CAROL, "carol", "Carol Chen", TEAM),
                     _User(EVE, "eve", "Eve Evans", OTHER_TEAM)):
            state.users[user.id] = user
        team = {ALICE, BOB, CAROL}
        for channel in (_Channel(OPS_CHANNEL, "ops", "channel", team | {BOT_USER}),
                        _Channel(OTHER_CHANNEL, "random", "channel", team | {BOT_USER}),
                        _Channel(NOBOT_CHANNEL, "general", "channel", set(team)),
                        _Channel(SHARED_CHANNEL, "ops-connect", "channel",
                                 {ALICE, BOB, EVE, BOT_USER}, is_ext_shared=True)):
            state.channels[channel.id] = channel

    def __repr__(self) -> str:
        mode = "Socket Mode" if self.socket_mode else f"events to {self.events_url}"
        return f"SlackSimulator({self._location()}, {mode}, tokens='**********')"

    # -- lifecycle (url, port, with: SimulatorBase) --------------------------------------

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT/api/``, as ``https://slack.com/api/`` (WebClient's base_url)."""
        return self.url + "api/"

    @property
    def events_url(self) -> str | None:
        """Where HTTP mode posts events, interactions and commands (the app's Request URL)."""
        return self._http.events_url

    @events_url.setter
    def events_url(self, url: str | None) -> None:
        if self.socket_mode and url:
            raise ValueError("an app in Socket Mode gets no HTTP deliveries")
        self._http.events_url = url

    def start(self, stack: object | None = None) -> None:
        """Serve the Web API, and Socket Mode or HTTP delivery."""
        super().start(stack)
        with self._state.lock:
            self._state.base_url = self.url
        if self.socket_mode:
            self._socket.start()
            self._state.sink = self._socket.send
        else:
            self._http.start()
            self._state.sink = self._http.send

    def stop(self) -> None:
        """Stop delivering, close websockets, stop serving; safe to call twice."""
        with self._state.lock:
            self._state.sink = None
        self._socket.stop()
        self._http.stop()
        super().stop()

    def describe(self) -> str:
        """One line for the demo banner."""
        mode = "Socket Mode" if self.socket_mode else f"events to {self.events_url or '(unset)'}"
        return f"Slack Web API at {self.api_url} (workspace {TEAM_NAME}, {mode})"

    def env(self) -> dict[str, str]:
        """SLACK_BOT_TOKEN and SLACK_API_URL, with SLACK_APP_TOKEN in Socket Mode or
        SLACK_SIGNING_SECRET in HTTP mode, and SLACK_ALLOWED_CHANNELS: the team's #ops,
        where the demo talks."""
        found = {"SLACK_BOT_TOKEN": self.bot_token, "SLACK_API_URL": self.api_url,
                 "SLACK_ALLOWED_CHANNELS": OPS_CHANNEL}
        if self.socket_mode:
            found["SLACK_APP_TOKEN"] = self.app_token
        else:
            found["SLACK_SIGNING_SECRET"] = self.signing_secret
        return found

    # -- the world ---------------------------------------------------------------------

    def dm_of(self, user: str) -> str:
        """The id (``D...``) of the direct messages between ``user`` and the bot."""
        with self._state.lock:
            return self._state.dm(user).id

    def dm_between(self, user: str, other: str) -> str:
        """The id (``D...``) of the direct messages between two people, without the bot:
        a ``/opsbot`` typed there reaches opsbot, nothing else does."""
        with self._state.lock:
            return self._state.dm_between(user, other).id

    def add_member(self, channel: str, user: str) -> None:
        """``user`` joins ``channel``; someone from another workspace makes it shared."""
        with self._state.changed:
            state = self._state
            person, conversation = state.user(user), state.channel(channel)
            if conversation.kind == "im":
                raise ValueError("nobody joins a DM")
            conversation.members.add(user)
            if person.team != TEAM:
                conversation.is_ext_shared = True

    # -- playing the people ------------------------------------------------------------

    def say(self, user: str, channel: str, text: str, *, thread_ts: str | None = None,
            forge: Forgery | None = None) -> Sent:
        """``user`` posts ``text`` (in the thread of ``thread_ts``).

        Where the bot is a member the app gets a ``message`` event, and, when the text
        mentions ``<@U0BOT>`` in a channel, an ``app_mention`` event as well, each with
        its own event_id (api.slack.com/events/message, .../app_mention).
        """
        if not text or not text.strip():
            raise ValueError("text must not be empty (Slack sends no empty messages)")
        with self._state.changed:
            state = self._state
            _, conversation = state.member(user, channel)
            if thread_ts is not None and thread_ts not in conversation.messages:
                raise LookupError(f"no message {thread_ts} in {state.describe(conversation)} "
                                  "to reply to")
            message = state.add_message(conversation, user, text, mention_blocks(text),
                                        thread_ts=thread_ts)
            sent: list[Outgoing] = []
            if BOT_USER in conversation.members:
                events = [state.message_event(conversation, message)]
                if f"<@{BOT_USER}>" in text and conversation.kind != "im":
                    events.append(state.mention_event(conversation, message))
                for event in events:
                    envelope = state.envelope(conversation, event)
                    sent.append(state.dispatch(Outgoing(
                        "events_api", envelope["event_id"], _forged(envelope, forge), forge)))
            return Sent(conversation.id, message.ts, tuple(sent))

    def slash(self, user: str, channel: str, text: str = "", command: str = "/opsbot", *,
              forge: Forgery | None = None) -> Sent:
        """``user`` types ``/opsbot text`` in ``channel``: the command's fields, delivered in
        any conversation, the bot a member or not
        (api.slack.com/interactivity/slash-commands#app_command_handling)."""
        if not command.startswith("/"):
            raise ValueError(f"a command starts with '/', got {command!r}")
        with self._state.changed:
            state = self._state
            person, conversation = state.member(user, channel)
            trigger_id = state.trigger_id()
            fields = {"token": VERIFICATION_TOKEN, "team_id": person.team,
                      "team_domain": state.team_json(person.team)["domain"],
                      "channel_id": conversation.id,
                      "channel_name": conversation.name or "directmessage",
                      "user_id": person.id, "user_name": person.name, "command": command,
                      "text": text, "api_app_id": APP_ID, "is_enterprise_install": "false",
                      "response_url": state.response_url("slash_commands", conversation,
                                                         person.id, None, None),
                      "trigger_id": trigger_id}
            if forge is not None and forge.team_id:
                fields["team_id"] = forge.team_id
            item = state.dispatch(Outgoing("slash_commands", trigger_id, fields, forge))
            return Sent(conversation.id, None, (item,))

    def press(self, user: str, channel: str, ts: str, *, action_id: str | None = None,
              title: str | None = None, forge: Forgery | None = None) -> Sent:
        """``user`` presses a button (by ``action_id`` or by its text) on message ``ts``: a
        ``block_actions`` payload with the button's ``value``, a ``response_url``, the
        ``container`` and the ``message``
        (api.slack.com/reference/interaction-payloads/block-actions).

        LookupError if the message or the button is not there (any more).
        """
        if (action_id is None) == (title is None):
            raise ValueError("give the button's action_id or its title (one of them)")
        with self._state.changed:
            state = self._state
            person, conversation = state.member(user, channel)
            message = conversation.messages.get(ts)
            if message is None or message.deleted:
                raise LookupError(f"no message {ts} in {state.describe(conversation)}")
            found = [(block, button) for block, button in buttons(message.blocks)]
            match = next(((block, button) for block, button in found
                          if (action_id is not None and button.get("action_id") == action_id)
                          or (title is not None and button["text"].get("text") == title)),
                         None)
            if match is None:
                shown = ", ".join(f"{b['text'].get('text')!r} ({b.get('action_id')!r})"
                                  for _, b in found) or "none"
                raise LookupError(f"no button {action_id or title!r} on message {ts}; its "
                                  f"buttons: {shown}")
            block, button = match
            now = state.now()
            trigger_id = state.trigger_id()
            team = forge.team_id if forge is not None and forge.team_id else person.team
            action = {"type": "button", "action_id": button.get("action_id", ""),
                      "block_id": block.get("block_id", ""), "text": button["text"],
                      "action_ts": f"{now:.6f}"}
            for name in ("value", "style", "url"):
                if name in button:
                    action[name] = button[name]
            container: dict[str, Any] = {"type": "message", "message_ts": message.ts,
                                         "channel_id": conversation.id, "is_ephemeral": False}
            if message.thread_ts:
                container["thread_ts"] = message.thread_ts
            payload: dict[str, Any] = {
                "type": "block_actions",
                "user": {"id": person.id, "username": person.name, "name": person.name,
                         "team_id": team},
                "api_app_id": APP_ID, "token": VERIFICATION_TOKEN, "container": container,
                "trigger_id": trigger_id, "team": state.team_json(team), "enterprise": None,
                "is_enterprise_install": False,
                "channel": {"id": conversation.id,
                            "name": conversation.name or "directmessage"},
                "message": state.message_json(message), "state": {"values": {}},
                "response_url": state.response_url("block_actions", conversation, person.id,
                                                   message.ts, message.thread_ts),
                "actions": [action]}
            item = state.dispatch(Outgoing("interactive", trigger_id, payload, forge))
            return Sent(conversation.id, None, (item,))

    def redeliver(self, item: Outgoing, *, forge: Forgery | None = None) -> Outgoing:
        """Deliver ``item`` once more, same event_id (or trigger_id) and payload, as Slack does
        after a lost acknowledgement; tests use it to check that the app does not act twice."""
        if not isinstance(item, Outgoing):
            raise ValueError("redeliver() takes a delivery from Sent.deliveries")
        payload = _forged(copy.deepcopy(item.payload), forge) if item.kind == "events_api" \
            else copy.deepcopy(item.payload)
        return self._state.dispatch(Outgoing(item.kind, item.id, payload,
                                             forge or item.forgery))

    def verify_url(self, url: str | None = None) -> bool:
        """Send the ``url_verification`` challenge to ``url`` (default: ``events_url``): True
        when the app echoes it, as Slack checks a Request URL before saving it."""
        target = url or self.events_url
        if not target:
            raise ValueError("no URL to verify: give one or set events_url")
        return self._http.verify_url(target)

    # -- Socket Mode ------------------------------------------------------------------------

    def disconnect(self, reason: str | None = "refresh_requested", *,
                   close_after: float = 0.5) -> int:
        """Tell each open Socket Mode connection ``{"type": "disconnect", "reason": reason}``
        and close it ``close_after`` s later (``reason=None``: drop it silently); how many.
        The client must reconnect through apps.connections.open."""
        if not self.socket_mode:
            raise ValueError("disconnect() is for Socket Mode")
        return self._socket.disconnect(reason, close_after)

    def connections(self) -> int:
        """Socket Mode connections open now (and not told to reconnect)."""
        with self._state.lock:
            return self._state.connections_live

    def connections_opened(self) -> int:
        """Socket Mode connections opened since start, the closed ones too."""
        with self._state.lock:
            return self._state.connections_opened

    def wait_for_connection(self, *, after: int = 0, timeout: float = 10.0) -> int:
        """Wait until more than ``after`` connections were opened and one is usable; the
        number opened. ``after=connections_opened()`` waits for a reconnection."""

        def found() -> int | None:
            state = self._state
            return state.connections_opened if (state.connections_opened > after
                                                and state.connections_live) else None

        return self._wait(found, timeout, f"a Socket Mode connection (number {after + 1} or "
                                          "later)")

    # -- reading -------------------------------------------------------------------------

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Every message in ``channel``, replies included, oldest first, as they are now:
        ``ts``, ``text``, ``blocks``, ``thread_ts``, ``user``, ``bot_id`` (the bot's
        messages), ``edits``, ``deleted``, ``reply_count`` and ``message`` (Slack's object)."""
        with self._state.lock:
            conversation = self._state.channel(channel)
            return [self._state.snapshot(m) for m in conversation.messages.values()]

    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """The message ``ts`` and its replies, oldest first."""
        with self._state.lock:
            conversation = self._state.channel(channel)
            if ts not in conversation.messages:
                raise LookupError(f"no message {ts} in {self._state.describe(conversation)}")
            return [self._state.snapshot(m) for m in conversation.messages.values()
                    if m.ts == ts or m.thread_ts == ts]

    def ephemerals(self, user: str) -> list[dict[str, Any]]:
        """What only ``user`` saw, oldest first: ``channel``, ``ts``, ``text``, ``blocks``,
        ``thread_ts`` and ``source`` (chat.postEphemeral, response_url, slash_command,
        slackbot)."""
        with self._state.lock:
            self._state.user(user)
            return [_ephemeral_json(e) for e in self._state.ephemerals if e.user == user]

    def wait_for_message(self, channel: str, *, contains: str | None = None,
                         thread_ts: str | None = None, after: str | None = None,
                         timeout: float = 10.0) -> dict[str, Any]:
        """The first message from the bot in ``channel`` (in the thread of ``thread_ts``;
        newer than ``after``) whose text or blocks hold ``contains``; TimeoutError after
        ``timeout`` s."""

        def found() -> dict[str, Any] | None:
            conversation = self._state.channel(channel)
            for message in conversation.messages.values():
                if message.bot_id and not message.deleted \
                        and (thread_ts is None or message.thread_ts == thread_ts) \
                        and (after is None or _ts_key(message.ts) > _ts_key(after)) \
                        and _holds(message, contains):
                    return self._state.snapshot(message)
            return None

        return self._wait(found, timeout, f"message from the bot in {channel}"
                          + (f" in thread {thread_ts}" if thread_ts else "")
                          + (f" containing {contains!r}" if contains else ""),
                          lambda: self._bot_texts(channel))

    def wait_for_update(self, channel: str, ts: str, *, contains: str | None = None,
                        min_edits: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """Message ``ts`` once updated ``min_edits`` times (and holding ``contains``)."""

        def found() -> dict[str, Any] | None:
            message = self._state.channel(channel).messages.get(ts)
            if message is None or message.edits < min_edits or not _holds(message, contains):
                return None
            return self._state.snapshot(message)

        return self._wait(found, timeout, f"update of message {ts} in {channel}"
                          + (f" containing {contains!r}" if contains else ""),
                          lambda: self._bot_texts(channel))

    def wait_for_ephemeral(self, user: str, *, contains: str | None = None,
                           timeout: float = 10.0) -> dict[str, Any]:
        """The first ephemeral shown to ``user`` that holds ``contains``."""

        def found() -> dict[str, Any] | None:
            for ephemeral in self._state.ephemerals:
                if ephemeral.user == user and (contains is None or contains in visible_text(
                        ephemeral.text, ephemeral.blocks)):
                    return _ephemeral_json(ephemeral)
            return None

        return self._wait(found, timeout, f"ephemeral for {user}"
                          + (f" containing {contains!r}" if contains else ""),
                          lambda: [e.text for e in self._state.ephemerals if e.user == user])

    def event_deliveries(self) -> list[dict[str, Any]]:
        """Every attempt to deliver, oldest first: ``id`` (event_id or trigger_id),
        ``kind``, ``transport`` (http, socket), ``attempt`` (0, then the retry number),
        ``retry_reason``, ``status`` (HTTP), ``error``, ``envelope_id`` (Socket Mode),
        ``acknowledged`` and ``at``."""
        with self._state.lock:
            return copy.deepcopy(self._state.deliveries)

    def wait_for_delivery(self, delivery_id: str, *, attempts: int = 1,
                          acknowledged: bool = True, timeout: float = 10.0
                          ) -> list[dict[str, Any]]:
        """The attempts for ``delivery_id`` once there are ``attempts`` finished ones (and,
        with ``acknowledged``, the last of them acknowledged)."""

        def found() -> list[dict[str, Any]] | None:
            tried = [d for d in self._state.deliveries if d["id"] == delivery_id
                     and (d["acknowledged"] or d["error"] is not None)]
            if len(tried) < attempts or (acknowledged and not tried[-1]["acknowledged"]):
                return None
            return copy.deepcopy(tried)

        return self._wait(found, timeout, f"{attempts} attempt(s) to deliver {delivery_id}"
                          + (", acknowledged" if acknowledged else ""),
                          lambda: [d for d in self._state.deliveries if d["id"] == delivery_id])

    def _bot_texts(self, channel: str) -> list[tuple[str, str]]:
        conversation = self._state.channels.get(channel)
        return [(m.ts, m.text) for m in (conversation.messages.values() if conversation else ())
                if m.bot_id]

    def _wait(self, found: Callable[[], Any], timeout: float, wanted: str,
              seen: Callable[[], Any] | None = None) -> Any:
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while (result := found()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    there = f"; there: {seen()}" if seen is not None else ""
                    raise TimeoutError(f"no {wanted} within {timeout} s{there}")
                self._state.changed.wait(remaining)
            return result


def _holds(message: _Message, contains: str | None) -> bool:
    return contains is None or contains in visible_text(message.text, message.blocks)


def _ephemeral_json(ephemeral: _Ephemeral) -> dict[str, Any]:
    return {"channel": ephemeral.channel, "ts": ephemeral.ts, "text": ephemeral.text,
            "blocks": copy.deepcopy(ephemeral.blocks), "thread_ts": ephemeral.thread_ts,
            "source": ephemeral.source}


def _forged(envelope: dict[str, Any], forge: Forgery | None) -> dict[str, Any]:
    """An event envelope that claims ``forge.team_id`` as its workspace."""
    if forge is None or not forge.team_id:
        return envelope
    envelope.update(team_id=forge.team_id, context_team_id=forge.team_id)
    for authorization in envelope.get("authorizations", []):
        authorization["team_id"] = forge.team_id
    return envelope


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.slack",
        description="A local Slack workspace for opsbot: the Web API, and events over HTTP "
                    "or Socket Mode.")
    add_address_arguments(parser, 8083)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--socket-mode", action="store_true",
                      help="deliver over Socket Mode (apps.connections.open)")
    mode.add_argument("--events-url", help="the app's Request URL (HTTP mode)")
    parser.add_argument("--channel-interval", type=float, default=1.0,
                        help="seconds between two bot posts to one channel (default 1, as "
                             "Slack; 0 = no limit)")
    args = parser.parse_args(argv)

    def banner(sim: SlackSimulator) -> list[str]:
        return [
            f"Slack simulator: {sim.describe()}",
            *(f"  {name}={value}" for name, value in sim.env().items()),
            f"  slack_sdk: WebClient(token=SLACK_BOT_TOKEN, base_url=\"{sim.api_url}\")",
            f"  people: alice ({ALICE}), bob ({BOB}), carol ({CAROL}); eve ({EVE}) from "
            f"{OTHER_TEAM}; channels #ops ({OPS_CHANNEL}), #random ({OTHER_CHANNEL}), "
            f"#general ({NOBOT_CHANNEL}, without the bot), #ops-connect ({SHARED_CHANNEL})",
        ]

    return run_main(lambda: SlackSimulator(socket_mode=args.socket_mode,
                                           events_url=args.events_url,
                                           channel_interval=args.channel_interval,
                                           host=args.host, port=args.port),
                    banner, seed_error=ValueError, cannot=f"listen on {args.host}:{args.port}")
