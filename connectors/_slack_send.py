"""The Slack connector's outbound side: replies, buttons, ephemeral notes, updates, events.

A reply is posted with ``chat.postMessage`` as Block Kit (``_slack_blocks``), split within
a section's limit, its buttons on the last piece, in the thread it answers; a note only
the presser may see goes with ``chat.postEphemeral``; a decided preview is rewritten with
``chat.update``. Slack answers a method called too often with HTTP 429 and
``Retry-After`` (docs.slack.dev/apis/web-api/rate-limits): every reply, ephemeral note and
update waits that long and tries again (slack_sdk's ``AsyncRateLimitErrorRetryHandler``),
and what goes to one channel goes one call at a time, so the parts of a reply arrive in
order and none is dropped. The event outbox posts and updates through here too, with a
client that does not wait: a 429 goes back to the outbox as ``SendLater`` with its
``Retry-After``. Kept apart from ``connectors.slack`` (settings, requests, lifecycle),
which describes the connector.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from connectors._common import (
    ButtonBook,
    Lanes,
    ReplyChannel,
    channel_store,
    claim_keyboard,
    decision_note,
    is_event_message,
    mark_event_message,
    retry_after_seconds,
    stow_payload,
    unstow_payload,
)
from connectors._slack_blocks import (
    BUTTON_VALUE_LIMIT,
    buttons_block,
    escape,
    message_blocks,
    one_section,
    retired_blocks,
    split_reply,
)
from connectors.events import Gone, SendLater, SendRefused

# The connector's one logger, whichever part logs: operators filter on its name.
logger = logging.getLogger("connectors.slack")

CHANNEL = "slack"
DEFAULT_API_URL = "https://slack.com/api/"
BUTTON_KIND = "slack-button"  # payloads longer than a button's value, behind a key
THREAD_KIND = "slack-thread"  # threads opsbot is part of: "<channel>:<thread ts>"
_REF_KIND = "slack-conversation"  # where a conversation's proactive messages go
EVENT_KIND = "slack-event-message"  # messages of alerts and checks: their buttons stay

Location = tuple[str, str]  # (channel id, ts) of a message the bot sent
_T = TypeVar("_T")
# The longest one wait for a 429 may be (seconds), whatever Retry-After says: a reply's
# channel is held meanwhile, and Slack's own windows are a minute.
MAX_RATE_LIMIT_WAIT = 60.0

# Refusals that mean "never here": the outbox gives the message up, a reply is logged.
_REFUSED_FOR_GOOD = frozenset({
    "channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "account_inactive",
    "token_revoked", "not_authed", "restricted_action", "msg_too_long", "invalid_blocks",
    "no_permission", "missing_scope", "user_not_in_channel", "ekm_access_denied",
})
# chat.update's "that message cannot be changed any more": post a new one.
_GONE = frozenset({"message_not_found", "cant_update_message", "edit_window_closed",
                   "channel_not_found"})


def sender_id_for(channel: str, user: str) -> str:
    """The Rasa conversation of one person in one Slack channel (or direct message)."""
    return f"{CHANNEL}:{channel}:{user}"


def channel_of(sender_id: str) -> str:
    """The channel of a Slack conversation id (``slack:<channel>:<user>``)."""
    parts = sender_id.split(":")
    if len(parts) != 3 or parts[0] != CHANNEL or not parts[1]:
        raise ValueError(f"{sender_id!r} is not a Slack conversation id (slack:<channel>:<user>)")
    return parts[1]


def is_direct(channel: str, channel_type: str | None = None) -> bool:
    """Whether ``channel`` is a direct message with the bot (Slack's ids start with D)."""
    return channel_type == "im" or channel.startswith("D")


def _error_of(exc: SlackApiError) -> str:
    try:
        return str(exc.response.get("error") or "")
    except Exception:  # noqa: BLE001 - a body that is not JSON
        return ""


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """Seconds Slack's ``Retry-After`` asks for (slack_sdk keeps a header's values as a
    list), or None without a readable one."""
    for name, value in dict(headers or {}).items():
        if str(name).lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            return retry_after_seconds(str(raw))
    return None


class RateLimitWait(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's 429 retry, waiting as Slack says, whatever the header holds.

    slack_sdk's own handler takes ``int(Retry-After)``: a fractional value raises (and the
    rest of a reply was lost), a negative one retries at once until it gives up. Here a
    missing or unreadable value waits 1 s and every wait is kept within
    [1 s, :data:`MAX_RATE_LIMIT_WAIT`], so a reply part waits its turn for as long as Slack
    keeps saying "later" within ``max_retry_count`` attempts
    (api.slack.com/apis/rate-limits#headers)."""

    async def prepare_for_next_attempt_async(self, *, state: RetryState, request: HttpRequest,
                                             response: HttpResponse | None = None,
                                             error: Exception | None = None) -> None:
        if response is None:
            raise error or RuntimeError("a retry without a response")
        state.next_attempt_requested = True
        asked = _retry_after(response.headers)
        pause = min(MAX_RATE_LIMIT_WAIT, max(1.0, asked if asked is not None else 1.0))
        await asyncio.sleep(pause + random.random() / 4)
        state.increment_current_attempt()


async def _event_call(call: Callable[[], Awaitable[_T]]) -> _T:
    """``call()`` for the outbox: Slack's "not now" (429, 5xx, no connection) becomes
    SendLater (with ``Retry-After`` when it said), a refusal SendRefused."""
    try:
        return await call()
    except SlackApiError as exc:
        status, error = exc.response.status_code, _error_of(exc)
        if status == 429 or error == "ratelimited":
            raise SendLater("Slack rate limit (ratelimited)",
                            _retry_after(getattr(exc.response, "headers", None))) from None
        if status >= 500 or error in ("internal_error", "fatal_error", "service_unavailable",
                                      "request_timeout"):
            raise SendLater(f"Slack: HTTP {status} {error}") from None
        raise SendRefused(f"Slack: {error or f'HTTP {status}'}") from None
    except (TimeoutError, aiohttp.ClientError) as exc:
        raise SendLater(f"Slack: {type(exc).__name__}: {exc}") from None


class SlackOutput(ReplyChannel):
    """Sends a conversation's replies to its Slack channel (and thread), and notes them.

    ``hold``: keep the replies instead of sending them (:meth:`release` sends them), for
    a button press whose answer goes either to everyone or only to the presser.
    """

    def __init__(self, connector: SlackSending, channel: str | None = None,
                 thread_ts: str | None = None, *, hold: bool = False) -> None:
        super().__init__()
        self._connector = connector
        self._channel = channel
        self._thread_ts = thread_ts
        self.held: list[tuple[str, str, list[dict[str, Any]], Mapping[str, str]]] | None = \
            [] if hold else None
        self.refused = False  # the channel did not take a reply (opsbot is not in it)
        self.retired: list[Location] = []  # messages whose buttons this turn removed

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def _where(self, recipient_id: str) -> tuple[str, str | None]:
        if self._channel is None:
            # A proactive message (a build finished): where the conversation last asked.
            reference = await asyncio.to_thread(channel_store().recall, _REF_KIND, recipient_id)
            if reference and reference.get("channel"):
                self._channel = str(reference["channel"])
                self._thread_ts = reference.get("thread_ts") or None
            else:
                self._channel = channel_of(recipient_id)
        return self._channel, self._thread_ts

    async def deliver(self, recipient_id: str, text: str, buttons: list[dict[str, Any]],
                      states: Mapping[str, str]) -> None:
        if self.held is not None:
            self.held.append((recipient_id, text, buttons, states))
            return
        channel, thread_ts = await self._where(recipient_id)
        if not await self._connector.send(channel, text, buttons, states, thread_ts=thread_ts,
                                          owner=recipient_id):
            self.refused = True

    async def release(self, only_for: str | None = None) -> None:
        """Send what was held: to the channel, or as ephemeral notes to ``only_for``."""
        held, self.held = self.held or [], None
        for recipient_id, text, buttons, states in held:
            if only_for is None:
                await self.deliver(recipient_id, text, buttons, states)
            else:
                channel, thread_ts = await self._where(recipient_id)
                await self._connector.send_ephemeral(channel, only_for, text,
                                                     thread_ts=thread_ts)


class SlackSending:
    """What the connector posts and updates; ``connectors.slack.SlackInput`` builds it."""

    client: AsyncWebClient  # waits out 429s (RateLimitWait)
    events_client: AsyncWebClient  # does not: the outbox retries when Slack said
    _book: ButtonBook[Location]
    _texts: dict[Location, str]  # the text of messages with buttons, for their update
    _lanes: Lanes  # one call at a time per channel

    async def send(self, channel: str, text: str, buttons: Sequence[Mapping[str, Any]],
                   states: Mapping[str, str], *, thread_ts: str | None = None,
                   owner: str | None = None) -> bool:
        """One reply, in pieces within a section's limit, its buttons on the last one.

        In a channel, choice buttons belong to ``owner``, the conversation that was asked.
        A channel that does not take the bot's messages is logged, not raised: False.
        """
        pieces = split_reply(text)
        actions = await self._actions(buttons) if buttons else []
        async with self._lanes.hold(channel):
            for index, piece in enumerate(pieces):
                last = index == len(pieces) - 1
                try:
                    sent = await self.client.chat_postMessage(
                        channel=channel, text=escape(piece), thread_ts=thread_ts,
                        blocks=message_blocks(piece, actions if last else ()),
                        unfurl_links=False, unfurl_media=False)
                except SlackApiError as exc:
                    if _error_of(exc) in _REFUSED_FOR_GOOD:
                        logger.warning("Slack channel %s does not take the bot's messages: %s",
                                       channel, _error_of(exc))
                        return False
                    raise
                if last and actions:
                    location = (channel, str(sent["ts"]))
                    payloads = [str(b.get("payload") or "") for b in buttons]
                    self._texts[location] = piece
                    self._book.track(location, payloads, states)
                    if owner and not is_direct(channel):
                        await asyncio.to_thread(claim_keyboard, f"{channel}:{sent['ts']}",
                                                owner, payloads)
                    while len(self._texts) > 5000:
                        self._texts.pop(next(iter(self._texts)))
        if thread_ts:
            await self._join_thread(channel, thread_ts)
        return True

    async def send_ephemeral(self, channel: str, user: str, text: str, *,
                             thread_ts: str | None = None) -> None:
        """A note only ``user`` sees (``chat.postEphemeral``), in pieces, without buttons."""
        async with self._lanes.hold(channel):
            for piece in split_reply(text):
                try:
                    await self.client.chat_postEphemeral(
                        channel=channel, user=user, text=escape(piece), thread_ts=thread_ts,
                        blocks=message_blocks(piece))
                except SlackApiError as exc:
                    logger.warning("Slack refused an ephemeral note to %s in %s: %s", user,
                                   channel, _error_of(exc) or exc)
                    return

    async def _join_thread(self, channel: str, thread_ts: str) -> None:
        """Note that opsbot is part of a thread: its later messages are for opsbot too."""
        try:
            await asyncio.to_thread(channel_store().remember, THREAD_KIND,
                                    f"{channel}:{thread_ts}", {"joined": True})
        except Exception:  # noqa: BLE001 - then a later message there needs a mention
            logger.debug("could not note Slack thread %s:%s", channel, thread_ts, exc_info=True)

    async def _in_thread(self, channel: str, thread_ts: str) -> bool:
        return await asyncio.to_thread(channel_store().recall, THREAD_KIND,
                                       f"{channel}:{thread_ts}") is not None

    # -- buttons -------------------------------------------------------------------------

    async def _actions(self, buttons: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        triples = []
        for button in buttons[:100]:
            title = str(button.get("title") or button.get("payload") or "?")
            payload = str(button.get("payload") or title)
            value = await stow_payload(BUTTON_KIND, payload,
                                       lambda p: len(p) <= BUTTON_VALUE_LIMIT)
            triples.append((title, value, payload))
        return buttons_block(triples)

    async def _payload_of(self, value: str) -> str | None:
        return await unstow_payload(BUTTON_KIND, value)

    async def _retire(self, states: Mapping[str, str]) -> list[Location]:
        """Update the messages whose operation was decided in this turn: no buttons."""
        if not states:
            return []
        stale = self._book.stale(states)
        for location, state in stale:
            await self._remove_buttons(location, decision_note(state))
        return [location for location, _ in stale]

    async def _remove_buttons(self, location: Location, note: str | None,
                              text: str | None = None) -> None:
        """Rewrite a message without its buttons, with ``note`` under its text."""
        channel, ts = location
        known = self._texts.get(location)
        text = known if known is not None else text
        if text is None:
            self._book.forget(location)
            return  # not a message this process sent (or already updated)
        try:
            async with self._lanes.hold(channel):
                await self.client.chat_update(channel=channel, ts=ts, text=escape(text),
                                              blocks=retired_blocks(text, note))
        except SlackApiError as exc:
            logger.warning("could not update Slack message %s in %s: %s", ts, channel,
                           _error_of(exc) or exc)
            return  # still tracked: the next decision or press tries again
        except (TimeoutError, aiohttp.ClientError) as exc:
            logger.warning("could not update Slack message %s in %s: %s", ts, channel, exc)
            return
        self._book.forget(location)
        self._texts.pop(location, None)

    # -- events (connectors.events) ------------------------------------------------------

    async def post_event(self, address: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Post an event's message to its channel; where it is, for updates.

        Not waited out here: the outbox retries when a 429's ``Retry-After`` says, backs off
        on 5xx and lost connections, and gives up on a channel that refuses the bot."""
        channel = str(address["channel"])
        piece = one_section(text)
        actions = await self._actions(buttons) if buttons else []
        async with self._lanes.hold(channel):
            sent = await _event_call(lambda: self.events_client.chat_postMessage(
                channel=channel, text=escape(piece), blocks=message_blocks(piece, actions),
                thread_ts=address.get("thread_ts") or None,
                unfurl_links=False, unfurl_media=False))
        ts = str(sent["ts"])
        await mark_event_message(EVENT_KIND, f"{channel}:{ts}")
        return {"channel": channel, "ts": ts}

    async def edit_event(self, address: Mapping[str, Any], ref: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Rewrite an event's message (``chat.update``): the alert resolved, more of it."""
        if not ref.get("ts") or not ref.get("channel"):
            raise Gone("the message's channel and ts are not known")
        channel, ts = str(ref["channel"]), str(ref["ts"])
        piece = one_section(text)
        actions = await self._actions(buttons) if buttons else []
        try:
            async with self._lanes.hold(channel):
                await _event_call(lambda: self.events_client.chat_update(
                    channel=channel, ts=ts, text=escape(piece),
                    blocks=message_blocks(piece, actions)))
        except SendRefused as exc:
            if any(reason in str(exc) for reason in _GONE):
                raise Gone(str(exc)) from None
            raise
        return {"channel": channel, "ts": ts}

    async def _is_event_message(self, location: Location) -> bool:
        channel, ts = location
        return await is_event_message(EVENT_KIND, f"{channel}:{ts}")
