"""The Slack connector's inbound side: one event, press or command, at most once, from whom.

``connectors.slack`` (HTTP mode) and ``_slack_socket`` (Socket Mode) hand over what they
proved came from Slack, by its Socket Mode envelope type: ``events_api`` (an
``event_callback``), ``interactive`` (a ``block_actions`` payload) or ``slash_commands``
(the command's form). Here it is checked to be from the bot token's workspace, taken once
by its id in the store (``event_id``; ``trigger_id`` for presses and commands), and read:

* a message addressed to opsbot becomes a turn: in a direct message, every message; in a
  channel, a mention of the bot and any message in a thread opsbot is part of. Slack
  sends a mention twice, as ``app_mention`` and as ``message``: the message is taken once
  by its channel and ``ts``. Messages of bots (opsbot's own included), edits, deletions,
  joins and other subtypes are not requests. The answer goes into the request's thread
  (a mention in a channel starts one).
* a pressed button is checked (the channel allowed, the payload's signature for this
  channel, whose choice it is) before it becomes a turn of the presser's own
  conversation. A press that changes nothing (bob's press on alice's Confirm, a second
  press) is answered with an ephemeral note only the presser sees; one that decides
  updates the message in place.
* ``/opsbot <request>`` is a request wherever it is typed. It counts as a direct message
  only in the person's own conversation with opsbot: a direct message between two people
  is a conversation opsbot is not part of, so ``SLACK_ALLOWED_CHANNELS`` decides there.

The person is the Slack user id of the verified request, signed into the turn's metadata
(``actions.guard.identity``); their conversation is ``slack:<channel>:<user>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from rasa.core.channels.channel import UserMessage
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook.async_client import AsyncWebhookClient

from actions.errors import OpsbotError
from actions.guard.identity import (
    EXPIRED,
    IDENTITY_KEY,
    conversation_scope,
    open_payload,
    sign_identity,
)
from connectors._common import (
    NOT_YOURS,
    OPEN_STATES,
    Lanes,
    channel_store,
    decision_note,
    known_person,
    operation_of,
    pressed_by_other,
    refuse_forged_payload,
)
from connectors._slack_blocks import (
    MAX_BLOCKS,
    escape,
    message_blocks,
    plain_text,
    split_reply,
    title_of,
)
from connectors._slack_send import (
    _REF_KIND,
    CHANNEL,
    DEFAULT_API_URL,
    SlackOutput,
    SlackSending,
    is_direct,
    sender_id_for,
)

# The connector's one logger, whichever part logs: operators filter on its name.
logger = logging.getLogger("connectors.slack")

EVENTS, INTERACTIVE, COMMANDS = "events_api", "interactive", "slash_commands"
SEEN_KIND = "slack-request"  # events, presses and commands taken: their id
MESSAGE_KIND = "slack-message"  # messages taken: "<channel>:<ts>" (app_mention + message)
_REFUSED_KIND = "slack-refused-channel"
# Message subtypes that are still a person writing (everything else is not a request).
_PERSON_SUBTYPES = frozenset({None, "thread_broadcast", "file_share"})
_FAILED = ("Something went wrong on my side while answering that (reference {reference}). "
           "It may not have finished: check before you ask again. The team can find the "
           "details in opsbot's log under that reference.")

Handler = Callable[[UserMessage], Awaitable[Any]]
_SLACK_HOOKS = "https://hooks.slack.com/"  # where Slack's response_urls are


class _ToRasa:
    """Rasa's message handler, noting whether a request got to it: a request that failed
    before may be handled again when Slack sends it again; one that got there may not."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.reached = False

    async def __call__(self, message: UserMessage) -> Any:
        self.reached = True
        return await self._handler(message)


class SlackInbound(SlackSending):
    """How the connector takes a request; ``connectors.slack.SlackInput`` builds it."""

    allowed_channels: frozenset[str]
    api_url: str
    team_id: str | None  # the bot token's workspace (auth.test), once known
    enterprise_id: str | None
    bot_user_id: str | None
    bot_id: str | None
    _tasks: set[asyncio.Task[None]]
    _turns: Lanes  # one turn at a time per person's conversation, in the order they came

    # -- whose, and which -----------------------------------------------------------------

    def foreign(self, kind: str, body: Mapping[str, Any]) -> str | None:
        """Why a request from Slack is not from the bot token's workspace (None: it is)."""
        user_team = None
        if kind == EVENTS:  # a Slack Connect member's message: taken, then ignored
            team, enterprise = body.get("team_id"), body.get("enterprise_id")
        elif kind == INTERACTIVE:
            team = (body.get("team") or {}).get("id")
            enterprise = (body.get("enterprise") or {}).get("id")
            user_team = (body.get("user") or {}).get("team_id")
        else:
            team, enterprise = body.get("team_id"), body.get("enterprise_id")
        if not team or team != self.team_id:
            return f"team_id {team!r} is not the bot token's workspace ({self.team_id})"
        if self.enterprise_id and enterprise and enterprise != self.enterprise_id:
            return f"enterprise_id {enterprise!r} is not the bot token's ({self.enterprise_id})"
        if user_team and user_team != self.team_id:
            return f"the user belongs to another workspace ({user_team})"
        return None

    @staticmethod
    def request_key(kind: str, body: Mapping[str, Any]) -> str | None:
        """What makes a request the same one again (a retry, a redelivered envelope)."""
        if kind == EVENTS:
            key = body.get("event_id")
        else:
            key = body.get("trigger_id") or (
                (body.get("actions") or [{}])[0].get("action_ts") if kind == INTERACTIVE else None)
        return f"{kind}:{key}" if key else None

    async def first_time(self, kind: str, body: Mapping[str, Any]) -> bool:
        """Whether the request is new (and now taken); raises when the store fails, so the
        request is not taken and Slack may send it again."""
        key = self.request_key(kind, body)
        if key is None:
            return True
        first = await asyncio.to_thread(channel_store().first_time, SEEN_KIND, key)
        if not first:
            logger.info("Slack request %s was already handled; ignored", key)
        return bool(first)

    def reserve(self, kind: str, body: Mapping[str, Any],
                on_new_message: Handler) -> asyncio.Future[bool]:
        """Give a request its place in its person's conversation now, before anything is
        awaited, and handle it there once it is known to be taken.

        Each request is checked and acknowledged on its own (store calls in threads, which
        end in any order), so without a place kept from the start, "deploy 2.4.1" then
        "cancel" could reach Rasa as "cancel" then "deploy". The caller resolves the
        future with whether the request was taken (True: it runs in its turn) and must
        resolve it whatever happens; its task runs in the background, kept until it ends
        (Slack does not wait for the answer)."""
        taken: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._in_turn(_conversation_of(kind, body), taken, kind,
                                                 body, on_new_message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return taken

    async def _in_turn(self, conversation: str | None, taken: asyncio.Future[bool], kind: str,
                       body: Mapping[str, Any], on_new_message: Handler) -> None:
        # A request that names no person (a bot's message, an edit) waits for nobody.
        async with (self._turns.hold(conversation) if conversation is not None
                    else contextlib.nullcontext()):
            if await taken:
                await self._handle(kind, body, on_new_message)

    async def _handle(self, kind: str, body: Mapping[str, Any],
                      on_new_message: Handler) -> None:
        """One request; never raises (a bad one must not stop the connector).

        A request that fails before it reached Rasa is forgotten (its ``event_id`` or
        ``trigger_id``), so that Slack's retry or redelivery of it runs, and its author is
        told that it failed: in the message's thread, or through the ``response_url`` of a
        press or a command, which Slack does not send again."""
        to_rasa = _ToRasa(on_new_message)
        event = body.get("event") if kind == EVENTS else None
        try:
            if isinstance(event, Mapping):
                if event.get("type") in ("message", "app_mention"):
                    await self._on_message(event, to_rasa)
            elif kind == INTERACTIVE:
                if body.get("type") == "block_actions":
                    await self._on_press(body, to_rasa)
            elif kind == COMMANDS:
                await self._on_command(body, to_rasa)
        except Exception as exc:  # noqa: BLE001 - logged with a reference; the next one goes on
            reference = uuid.uuid4().hex[:8]
            if isinstance(exc, OpsbotError):  # an outage (the store, a backend): no traceback
                logger.warning("Slack %s not handled (reference %s): %s", kind, reference,
                               getattr(exc, "detail", None) or exc)
            else:
                logger.exception("failed to handle a Slack %s (reference %s)", kind, reference)
            if not to_rasa.reached:
                await self._forget(SEEN_KIND, self.request_key(kind, body))
                if isinstance(event, Mapping):
                    await self._tell_failed(event, reference)
                elif body.get("response_url"):  # a press or a command: Slack sends it once
                    await self._respond(str(body["response_url"]),
                                        _FAILED.format(reference=reference))

    async def _forget(self, kind: str, key: str | None) -> None:
        """Forget that a request was taken (it was not handled): Slack's next copy runs."""
        if key is None:
            return
        try:
            await asyncio.to_thread(channel_store().forget, kind, key)
        except Exception as exc:  # noqa: BLE001 - then that copy is ignored, as before
            logger.warning("could not forget Slack request %s: %s", key,
                           getattr(exc, "detail", None) or exc)

    async def _tell_failed(self, event: Mapping[str, Any], reference: str) -> None:
        """Say "something went wrong" in the thread of a message that failed, where opsbot
        may answer (an allowed channel, a direct message)."""
        channel = str(event.get("channel") or "")
        direct = is_direct(channel, event.get("channel_type"))
        if not channel or not (direct or channel in self.allowed_channels):
            return
        if not direct and event.get("type") != "app_mention" and \
                f"<@{self.bot_user_id}" not in str(event.get("text") or ""):
            return  # perhaps not for opsbot (a thread's message): not a word
        thread_ts = str(event.get("thread_ts") or "") or (None if direct else
                                                          str(event.get("ts") or "") or None)
        try:
            await self.send(channel, _FAILED.format(reference=reference), [], {},
                            thread_ts=thread_ts)
        except Exception:  # noqa: BLE001 - Slack failing too; the log has the reference
            logger.warning("could not tell %s that a request failed (reference %s)", channel,
                           reference)

    # -- messages --------------------------------------------------------------------------

    def _by_a_person(self, event: Mapping[str, Any]) -> bool:
        if event.get("subtype") not in _PERSON_SUBTYPES or event.get("bot_id"):
            return False
        other = next((str(event[field]) for field in ("user_team", "source_team", "team")
                      if event.get(field) and event.get(field) != self.team_id), None)
        if other is not None:
            # Someone of another workspace, in a channel shared with it (Slack Connect):
            # policy.yml names this workspace's people, and only they may speak here.
            logger.info("Slack: ignored a message by %s of workspace %s in %s",
                        event.get("user"), other, event.get("channel"))
            return False
        user = event.get("user")
        return bool(user) and user != self.bot_user_id and bool(event.get("text"))

    async def _addressed(self, event: Mapping[str, Any], channel: str) -> bool:
        if is_direct(channel, event.get("channel_type")):
            return True
        if event.get("type") == "app_mention" or f"<@{self.bot_user_id}" in str(event["text"]):
            return True
        thread_ts = event.get("thread_ts")
        return bool(thread_ts) and await self._in_thread(channel, str(thread_ts))

    async def _on_message(self, event: Mapping[str, Any], on_new_message: _ToRasa) -> None:
        channel = str(event.get("channel") or "")
        if not channel or not self._by_a_person(event) or not await self._addressed(event, channel):
            return
        ts = str(event.get("ts") or "")
        key = f"{channel}:{ts}"
        if not await asyncio.to_thread(channel_store().first_time, MESSAGE_KIND, key):
            return  # the same message as an app_mention and as a message event
        try:
            await self._take_message(event, channel, ts, on_new_message)
        except Exception:
            if not on_new_message.reached:  # its twin (or a retry) may still run it
                await self._forget(MESSAGE_KIND, key)
            raise

    async def _take_message(self, event: Mapping[str, Any], channel: str, ts: str,
                            on_new_message: Handler) -> None:
        user = str(event["user"])
        direct = is_direct(channel, event.get("channel_type"))
        thread_ts = str(event.get("thread_ts") or "") or (None if direct else ts)
        if not await self._channel_allowed(channel, user, direct, thread_ts):
            return
        text = plain_text(str(event["text"]), self.bot_user_id or "") or "hi"
        if text.startswith("/"):
            text = text.lstrip("/") or "hi"  # Rasa would read it as an intent payload
        if thread_ts:
            await self._join_thread(channel, thread_ts)
        await self._turn(text, channel, user, thread_ts, f"slack-{channel}-{ts}", on_new_message,
                         event.get("user_name"))

    async def _turn(self, text: str, channel: str, user: str, thread_ts: str | None,
                    message_id: str, on_new_message: Handler, user_name: Any = None, *,
                    output: SlackOutput | None = None, pressed: str | None = None) -> SlackOutput:
        """Run one turn of ``user`` in ``channel``; its replies go to ``thread_ts``."""
        sender = sender_id_for(channel, user)
        await asyncio.to_thread(channel_store().remember, _REF_KIND, sender,
                                {"channel": channel, "thread_ts": thread_ts})
        output = output or SlackOutput(self, channel, thread_ts)
        metadata: dict[str, Any] = {
            IDENTITY_KEY: sign_identity(CHANNEL, user, sender, message_id,
                                        conversation=conversation_scope(CHANNEL, channel)),
            "channel": CHANNEL, "user_id": user, "slack_channel": channel,
        }
        if user_name:
            metadata["user_name"] = str(user_name)
        if thread_ts:
            metadata["thread_ts"] = thread_ts
        if pressed:
            metadata["pressed_ts"] = pressed
        try:
            await on_new_message(UserMessage(text, output, sender, input_channel=CHANNEL,
                                             message_id=message_id, metadata=metadata))
        except Exception:
            reference = uuid.uuid4().hex[:8]
            logger.exception("failed to answer Slack message %s (reference %s)", message_id,
                             reference)
            await self.send(channel, _FAILED.format(reference=reference), [], {},
                            thread_ts=thread_ts)
            return output
        output.retired += await self._retire(output.states)
        return output

    async def _channel_allowed(self, channel: str, user: str, direct: bool,
                               thread_ts: str | None, response_url: str | None = None) -> bool:
        """SLACK_ALLOWED_CHANNELS and known people's direct messages; anywhere else one
        refusal (naming the id an admin needs), then silence.

        A command's refusal goes through its ``response_url`` (opsbot need not be in the
        channel); the channel counts as told only once a refusal got there."""
        if channel in self.allowed_channels:
            return True
        if direct and await asyncio.to_thread(known_person, CHANNEL, user):
            return True
        first = await asyncio.to_thread(channel_store().first_time, _REFUSED_KIND, channel)
        logger.info("Slack: ignored a message in %s (not allowed)%s", channel,
                    "; sent the refusal" if first else "")
        if first:
            if direct:
                text = (f"Hello! I only work for my team, and you are not in its list yet. "
                        f"To be added, give an admin your Slack id: {user} "
                        f"(policy.yml, people.<name>.identities.slack).")
            else:
                text = (f"I only work in the channels my team allows, and this is not one yet. "
                        f"To allow it, an admin adds {channel} to SLACK_ALLOWED_CHANNELS.")
            delivered = False
            try:
                if response_url:
                    delivered = await self._respond(response_url, text)
                else:
                    delivered = await self.send(channel, text, [], {}, thread_ts=thread_ts)
            finally:
                if not delivered:
                    await self._forget(_REFUSED_KIND, channel)
        return False

    # -- button presses --------------------------------------------------------------------

    async def _on_press(self, body: Mapping[str, Any], on_new_message: Handler) -> None:
        user = str((body.get("user") or {}).get("id") or "")
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        ts = str(container.get("message_ts") or message.get("ts") or "")
        action = (body.get("actions") or [{}])[0]
        if not user or not channel or not ts or action.get("type") not in (None, "button"):
            return
        thread_ts = str(container.get("thread_ts") or message.get("thread_ts") or "") or None
        where = (channel, ts)
        if not await self._channel_allowed(channel, user, is_direct(channel), thread_ts or ts):
            return
        value = str(action.get("value") or "")
        payload = await self._payload_of(value)
        if payload is None:
            await self.send_ephemeral(channel, user, "That button has expired; ask again for "
                                      "fresh ones.", thread_ts=thread_ts)
            await self._remove_buttons(where, decision_note("expired"), _text_of(message))
            return
        checked = open_payload(payload, scope=conversation_scope(CHANNEL, channel))
        if checked.text is None:
            await refuse_forged_payload(CHANNEL, user, payload, checked.refused or "")
            await self.send_ephemeral(channel, user, checked.reply, thread_ts=thread_ts)
            if checked.reply == EXPIRED:  # a preview nobody decided in time: no live buttons
                await self._remove_buttons(where, decision_note("expired"), _text_of(message))
            return
        payload = checked.text
        sender = sender_id_for(channel, user)
        if await asyncio.to_thread(pressed_by_other, f"{channel}:{ts}", sender, payload):
            await self.send_ephemeral(channel, user, NOT_YOURS, thread_ts=thread_ts)
            return
        operation_id = operation_of(payload)
        output = SlackOutput(self, channel, thread_ts or ts, hold=operation_id is not None)
        await self._turn(payload, channel, user, thread_ts or ts,
                         f"slack-{body.get('trigger_id') or action.get('action_ts')}",
                         on_new_message, (body.get("user") or {}).get("username"),
                         output=output, pressed=ts)
        after = output.states.get(operation_id or "")
        if operation_id is not None:
            # The guard decided; a press that changed nothing (someone else's, a second
            # one, a late one) is answered to the presser alone.
            changed = operation_id in output.changed
            await output.release(only_for=None if changed else user)
        if operation_id is None and await self._is_event_message(where):
            pass  # an alert's next steps stay for whoever else wants them
        elif operation_id is None:
            name = (body.get("user") or {}).get("username") or user
            await self._remove_buttons(where, f"{name} chose "
                                       f"{title_of(message.get('blocks'), value)}",
                                       _text_of(message))
        elif after is not None and after not in OPEN_STATES and where not in output.retired:
            await self._remove_buttons(where, decision_note(after), _text_of(message))

    # -- /opsbot ---------------------------------------------------------------------------

    async def _on_command(self, form: Mapping[str, Any], on_new_message: Handler) -> None:
        user, channel = str(form.get("user_id") or ""), str(form.get("channel_id") or "")
        if not user or not channel:
            return
        direct = ((is_direct(channel) or form.get("channel_name") == "directmessage")
                  and await self._own_direct_messages(channel, user))
        if not await self._channel_allowed(channel, user, direct, None,
                                           str(form.get("response_url") or "") or None):
            return
        text = " ".join(str(form.get("text") or "").split()) or "help"
        if text.startswith("/"):
            text = text.lstrip("/") or "help"
        output = await self._turn(text, channel, user, None, f"slack-{form.get('trigger_id')}",
                                  on_new_message, form.get("user_name"))
        if output.refused and form.get("response_url"):
            # opsbot is not in that channel (or it is someone else's direct message): the
            # command's response_url still reaches the person who typed it.
            said = "\n".join(t for t in output.sent if t)
            await self._respond(str(form["response_url"]),
                                "I can't post in this channel: invite me (/invite @opsbot) or "
                                f"ask me in a direct message.\n{said}".strip())

    async def _own_direct_messages(self, channel: str, user: str) -> bool:
        """Whether ``channel`` is ``user``'s direct messages with opsbot. A command's fields
        say "directmessage" for any DM, two people's too; ``conversations.info`` answers
        ``channel_not_found`` for a conversation opsbot is not in
        (api.slack.com/methods/conversations.info)."""
        try:
            answer = await self.client.conversations_info(channel=channel)
        except SlackApiError as exc:
            logger.info("Slack command from %s in %s, which is not a DM with opsbot (%s)",
                        user, channel, exc.response.get("error"))
            return False
        except (SlackClientError, OSError, TimeoutError) as exc:
            logger.warning("could not ask Slack whether %s is a DM with opsbot: %s", channel, exc)
            return False
        conversation = answer.get("channel") or {}
        return conversation.get("is_im") is True and conversation.get("user") == user

    async def _respond(self, response_url: str, text: str) -> bool:
        """An ephemeral answer to a command through its ``response_url``: whether Slack took
        it. Only Slack's own URLs are posted to (``hooks.slack.com``, or the host of
        SLACK_API_URL when that is set, as for a simulator). Escaped and in sections as
        every message opsbot posts: what it relays (a log line, a ticket's summary, the
        person's own words) never becomes a mention or a link."""
        if not _slack_hook(response_url, self.api_url):
            logger.warning("did not answer a Slack command: its response_url is not on %s",
                           _hook_hosts(self.api_url))
            return False
        pieces = split_reply(text)[:MAX_BLOCKS]
        try:
            answer = await AsyncWebhookClient(response_url).send(
                text=escape(pieces[0]), response_type="ephemeral",
                blocks=[block for piece in pieces for block in message_blocks(piece)],
                unfurl_links=False, unfurl_media=False)
        except Exception as exc:  # noqa: BLE001 - the person sees nothing; the log says why
            logger.warning("could not answer a Slack command through its response_url: %s", exc)
            return False
        if answer.status_code != 200:
            logger.warning("Slack refused an answer through a response_url: HTTP %s %s",
                           answer.status_code, answer.body[:200])
            return False
        return True


def _conversation_of(kind: str, body: Mapping[str, Any]) -> str | None:
    """Whose conversation a request belongs to (``slack:<channel>:<user>``), read from the
    request as it came, or None when it names no person and channel."""
    if kind == EVENTS:
        event = body.get("event")
        if not isinstance(event, Mapping):
            return None
        channel, user = event.get("channel"), event.get("user")
    elif kind == INTERACTIVE:
        channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
            "channel_id")
        user = (body.get("user") or {}).get("id")
    else:
        channel, user = body.get("channel_id"), body.get("user_id")
    if not channel or not user:
        return None
    return sender_id_for(str(channel), str(user))


def _text_of(message: Mapping[str, Any]) -> str | None:
    """The text of a pressed message as Slack sent it back (its first section)."""
    for block in message.get("blocks") or ():
        text = block.get("text") if isinstance(block, Mapping) else None
        if isinstance(text, Mapping) and text.get("text"):
            raw = str(text["text"])
            return raw.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return None


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/".lower()


def _hook_hosts(api_url: str) -> str:
    hosts = [_SLACK_HOOKS]
    if _origin(api_url) != _origin(DEFAULT_API_URL):
        hosts.append(_origin(api_url))
    return " or ".join(hosts)


def _slack_hook(url: str, api_url: str) -> bool:
    """Whether ``url`` is on Slack's response_url host (or SLACK_API_URL's, when set)."""
    try:
        origin = _origin(url)
    except ValueError:
        return False
    return origin == _SLACK_HOOKS or (
        _origin(api_url) != _origin(DEFAULT_API_URL) and origin == _origin(api_url))
