"""The Teams connector's outbound side: replies, cards and their updates, events.

Everything opsbot sends goes through the Connector API at the conversation's service
URL, retried while the answer is "not now" (429 with ``Retry-After``, 412, 5xx, a lost
connection) for up to the send budget; a decided card is replaced by one without
buttons; the event outbox posts and updates cards through here. Kept apart from
``connectors.teams`` (settings, the inbound request), which describes the connector.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
from microsoft_agents.activity import (
    Activity,
    Attachment,
    ChannelAccount,
    ChannelId,
    ConversationAccount,
)
from microsoft_agents.hosting.core.connector.client import ConnectorClient
from microsoft_agents.hosting.core.connector.conversations_base import ConversationsBase

from connectors._common import (
    ButtonBook,
    ReplyChannel,
    channel_store,
    claim_keyboard,
    decision_note,
)
from connectors._teams_auth import TokenProvider, _NotNow, _retry_after
from connectors._teams_cards import CARD, _teams_text, adaptive_card
from connectors.events import Gone, SendLater, SendRefused

# The connector's one logger, whichever part logs: operators filter on its name.
logger = logging.getLogger("connectors.teams")

CHANNEL = "teams"
_REF_KIND = "teams-conversation"
# What the rate-limit page says to retry (429, 412, 502, 504), and the other 5xx that say
# "not now" rather than "never".
_RETRIED = frozenset({412, 429, 500, 502, 503, 504})
_CALL_TIMEOUT = 30.0  # seconds for one Connector API request
_T = TypeVar("_T")

Location = tuple[str, str, str]  # (service url, conversation id, activity id)


class DeliveryError(Exception):
    """An outbound message could not be delivered within the send budget (or was refused)."""


def _backoff(attempt: int) -> float:
    """Exponential backoff with +-20% jitter (the rate-limit page's advice): 1 s, 2 s, 4 s ...
    up to 30 s."""
    return min(30.0, 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)


def _reference_of(activity: Activity) -> dict[str, Any]:
    """Where replies to an activity go (what the store keeps as the conversation reference)."""
    conversation = activity.conversation
    return {
        "service_url": activity.service_url,
        "conversation_id": conversation.id if conversation else None,
        "conversation_type": conversation.conversation_type if conversation else None,
        "tenant_id": conversation.tenant_id if conversation else None,
        "channel_id": str(activity.channel_id or "msteams"),
        "bot_id": activity.recipient.id if activity.recipient else None,
        "bot_name": activity.recipient.name if activity.recipient else None,
    }


class TeamsOutput(ReplyChannel):
    """Sends a conversation's replies into its Teams conversation."""

    def __init__(self, connector: TeamsSending, reference: Mapping[str, Any] | None = None,
                 reply_to: str | None = None) -> None:
        super().__init__()
        self._connector = connector
        self._reference = reference
        self._reply_to = reply_to

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    async def _where(self, recipient_id: str) -> Mapping[str, Any]:
        if self._reference is None:
            self._reference = await asyncio.to_thread(
                channel_store().recall, _REF_KIND, recipient_id)
            if self._reference is None:
                raise ValueError(f"no Teams conversation reference for {recipient_id!r}")
        return self._reference

    async def deliver(self, recipient_id: str, text: str, buttons: list[dict[str, Any]],
                      states: Mapping[str, str]) -> None:
        reference = await self._where(recipient_id)
        await self._connector.send(reference, text, buttons, states, reply_to=self._reply_to,
                                   owner=recipient_id)


class TeamsSending:
    """What the connector sends and updates; ``connectors.teams.TeamsInput`` builds it."""

    app_id: str
    tokens: TokenProvider
    send_budget: float
    _book: ButtonBook[Location]
    _texts: dict[Location, str]
    _posting: dict[str, set[asyncio.Event]]  # conversation -> cards being posted

    async def _client(self, service_url: str) -> ConnectorClient:
        base = service_url if service_url.endswith("/") else service_url + "/"
        session = aiohttp.ClientSession(base_url=base,
                                        timeout=aiohttp.ClientTimeout(total=_CALL_TIMEOUT))
        try:
            return ConnectorClient(base, await self.tokens.token(), session=session)
        except BaseException:
            await session.close()
            raise

    async def _call(self, service_url: str, what: str,
                    call: Callable[[ConversationsBase], Awaitable[_T]]) -> _T:
        """``call(conversations)`` against the Connector API at ``service_url``, again and
        again while the answer is "not now" (429, 412, 5xx, no connection), waiting what
        ``Retry-After`` says or backing off, for up to ``send_budget`` seconds.

        ``what`` names the message for the log. DeliveryError when it is given up or
        refused for good, saying why.
        """
        deadline = time.monotonic() + self.send_budget
        attempt = 0
        while True:
            attempt += 1
            pause: float | None
            try:
                client = await self._client(service_url)
                try:
                    return await call(client.conversations)
                finally:
                    await client.close()
            except aiohttp.ClientResponseError as exc:
                if exc.status not in _RETRIED:
                    logger.error("Teams refused %s: HTTP %s %s", what, exc.status,
                                 str(exc.message)[:300])
                    raise DeliveryError(f"Teams refused {what}: HTTP {exc.status}") from exc
                why, pause = f"HTTP {exc.status}", _retry_after(exc.headers)
            except _NotNow as exc:
                why, pause = str(exc), exc.retry_after
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                # A dropped connection may have delivered it: a reply twice beats none.
                why, pause = f"{type(exc).__name__}: {exc}", None
            wait = _backoff(attempt) if pause is None else pause * random.uniform(1.0, 1.1)
            if time.monotonic() + wait > deadline:
                logger.error("gave up delivering %s after %d attempt(s) in %.0fs (last: %s); "
                             "the message is not in the conversation", what, attempt,
                             self.send_budget - (deadline - time.monotonic()), why)
                raise DeliveryError(f"could not deliver {what} within {self.send_budget:g}s "
                                    f"({why})")
            logger.info("Teams: %s for %s; trying again in %.1fs", why, what, wait)
            await asyncio.sleep(wait)

    def _activity(self, reference: Mapping[str, Any], **fields: Any) -> Activity:
        return Activity(
            type="message",
            channel_id=ChannelId(reference.get("channel_id") or "msteams"),
            service_url=reference["service_url"],
            from_property=ChannelAccount(id=reference.get("bot_id") or f"28:{self.app_id}",
                                         name=reference.get("bot_name") or "opsbot"),
            conversation=ConversationAccount(id=reference["conversation_id"],
                                             conversation_type=reference.get("conversation_type"),
                                             tenant_id=reference.get("tenant_id")),
            **fields,
        )

    async def send(self, reference: Mapping[str, Any], text: str,
                   buttons: Sequence[Mapping[str, Any]], states: Mapping[str, str], *,
                   reply_to: str | None = None, owner: str | None = None) -> None:
        """One reply: plain text, or an Adaptive Card when there are buttons.

        In a channel or group chat, choice buttons belong to ``owner``, the conversation
        that was asked.
        """
        if buttons:
            activity = self._activity(reference, attachments=[
                Attachment(content_type=CARD, content=adaptive_card(text, buttons))])
        else:
            activity = self._activity(reference, text=_teams_text(text), text_format="markdown")
        conversation_id = str(reference["conversation_id"])
        what = (f"the message {text[:60]!r}{'...' if len(text) > 60 else ''} to Teams "
                f"conversation {conversation_id}")

        async def post(conversations: ConversationsBase) -> Any:
            if reply_to:
                return await conversations.reply_to_activity(conversation_id, reply_to, activity)
            return await conversations.send_to_conversation(conversation_id, activity)

        if not buttons:
            await self._call(str(reference["service_url"]), what, post)
            return
        posting = asyncio.Event()  # presses in this conversation wait until it is noted
        self._posting.setdefault(conversation_id, set()).add(posting)
        try:
            sent = await self._call(str(reference["service_url"]), what, post)
            if sent.id:
                location = (str(reference["service_url"]), conversation_id, str(sent.id))
                payloads = [str(b.get("payload") or "") for b in buttons]
                self._texts[location] = text
                self._book.track(location, payloads, states)
                if owner and reference.get("conversation_type") not in (None, "personal"):
                    await asyncio.to_thread(claim_keyboard, f"{conversation_id}:{sent.id}",
                                            owner, payloads)
                while len(self._texts) > 5000:
                    self._texts.pop(next(iter(self._texts)))
        finally:
            posting.set()
            waiting = self._posting.get(conversation_id, set())
            waiting.discard(posting)
            if not waiting:
                self._posting.pop(conversation_id, None)

    # -- events (connectors.events) ------------------------------------------------------

    async def _event_reference(self, address: Mapping[str, Any]) -> Mapping[str, Any]:
        for key in (f"conversation:{address.get('conversation_id')}", address.get("sender")):
            if key and not key.endswith(":None"):
                reference = await asyncio.to_thread(channel_store().recall, _REF_KIND, key)
                if reference:
                    return reference
        # opsbot can only write where it has been talked to (the Bot Framework needs the
        # conversation's service URL): a route to a new channel waits for its first message.
        raise SendLater(f"no Teams conversation reference for {address.get('conversation_id')}"
                        " yet: mention opsbot there once")

    async def post_event(self, address: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Post an event's card to its conversation; where it is, for updates."""
        reference = await self._event_reference(address)
        conversation_id = str(reference["conversation_id"])
        activity = self._activity(reference, attachments=[
            Attachment(content_type=CARD, content=adaptive_card(text, buttons))])
        sent = await self._event_call(reference, f"an event card to {conversation_id}",
                                      lambda c: c.send_to_conversation(conversation_id, activity))
        return {"service_url": reference["service_url"], "conversation_id": conversation_id,
                "activity_id": str(getattr(sent, "id", "") or "")}

    async def edit_event(self, address: Mapping[str, Any], ref: Mapping[str, Any], text: str,
                         buttons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Update an event's card (the alert resolved); Gone if Teams no longer has it."""
        if not ref.get("activity_id"):
            raise Gone("the card's activity id is not known")
        reference = await self._event_reference(address)
        conversation_id, activity_id = str(ref["conversation_id"]), str(ref["activity_id"])
        activity = self._activity(reference, id=activity_id, attachments=[
            Attachment(content_type=CARD, content=adaptive_card(text, buttons))])
        try:
            await self._event_call(reference, f"the update of event card {activity_id}",
                                   lambda c: c.update_activity(conversation_id, activity_id,
                                                               activity))
        except SendRefused as exc:
            if "HTTP 404" in str(exc):
                raise Gone(str(exc)) from None
            raise
        return dict(ref)

    async def _event_call(self, reference: Mapping[str, Any], what: str,
                          call: Callable[[ConversationsBase], Awaitable[_T]]) -> _T:
        try:
            return await self._call(str(reference["service_url"]), what, call)
        except DeliveryError as exc:
            if "refused" in str(exc):
                raise SendRefused(str(exc)) from None
            raise SendLater(str(exc)) from None

    # -- cards decided -------------------------------------------------------------------

    async def _retire(self, reference: Mapping[str, Any], states: Mapping[str, str]) -> None:
        for location, state in self._book.stale(states):
            await self._retire_card(location, decision_note(state))

    async def _retire_card(self, location: Location, note: str) -> None:
        """Replace a card by the same text without buttons, and what became of it."""
        service_url, conversation_id, activity_id = location
        self._book.forget(location)
        text = self._texts.pop(location, None)
        if text is None:
            return  # not a card this process sent (or already retired)
        reference = {"service_url": service_url, "conversation_id": conversation_id}
        activity = self._activity(reference, id=activity_id, attachments=[
            Attachment(content_type=CARD, content=adaptive_card(text, note=note))])
        try:
            await self._call(service_url, f"the update of card {activity_id} in Teams "
                             f"conversation {conversation_id}",
                             lambda c: c.update_activity(conversation_id, activity_id, activity))
        except Exception as exc:  # noqa: BLE001 - a stale card is cosmetic; the store decides
            logger.warning("could not update Teams card %s: %s", activity_id, exc)
