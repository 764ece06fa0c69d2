"""The Teams connector's turns: an accepted activity, run in the background, in order.

After ``connectors.teams`` has authenticated an activity and acknowledged it, its turn
runs here: one person's turns in a conversation one at a time, in the order they
arrived; a card press checked (the payload's signature and scope, whose card it is)
before it becomes a turn, the sender signed into the turn's metadata; a failure told to
the conversation with a reference that is also in the log.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from microsoft_agents.activity import Activity
from rasa.core.channels.channel import UserMessage

from actions.guard.identity import (
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
    operation_of,
    pressed_by_other,
    refuse_forged_payload,
)
from connectors._teams_send import (
    _REF_KIND,
    CHANNEL,
    TeamsOutput,
    TeamsSending,
    _reference_of,
)

# The connector's one logger, whichever part logs: operators filter on its name.
logger = logging.getLogger("connectors.teams")

_FAILED = ("Something went wrong on my side while answering that (reference {reference}). "
           "It may not have finished: check before you ask again. The team can find the "
           "details in opsbot's log under that reference.")


_PATH_SAFE = re.compile(r"^[A-Za-z0-9!$&'()*+,;=:@._~-]+$")


def sender_id_for(conversation_id: str, person: str) -> str:
    """The Rasa conversation of one person in one Teams conversation.

    Rasa's HTTP API takes it in a URL path without decoding it, so an id with other
    characters than a path segment may hold is replaced by its hash.
    """
    def safe(value: str) -> str:
        if _PATH_SAFE.match(value):
            return value
        return "h" + hashlib.sha256(value.encode()).hexdigest()[:24]

    return f"{CHANNEL}:{safe(conversation_id)}~{safe(person)}"


class TeamsTurns(TeamsSending):
    """How the connector runs a turn; ``connectors.teams.TeamsInput`` builds it."""

    _tasks: set[asyncio.Task[Any]]  # turns running; kept so none is collected
    _lanes: Lanes

    def start_turn(
        self, activity: Activity, on_new_message: Callable[[UserMessage], Awaitable[Any]]
    ) -> asyncio.Task[str | None]:
        """Run the turn of an accepted activity in the background; the task is kept until it
        ends, and turns of one person in one conversation run in the order started."""
        user = activity.from_property
        lane = sender_id_for(activity.conversation.id if activity.conversation else "",
                             str(user.aad_object_id if user else ""))
        task = asyncio.create_task(self._turn(lane, activity, on_new_message),
                                   name=f"teams-turn-{activity.id}")
        self._tasks.add(task)
        task.add_done_callback(self._turn_done)
        return task

    def _turn_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:  # _turn catches; belt and braces
            logger.error("Teams turn %s ended with an error", task.get_name(),
                         exc_info=task.exception())

    async def drain(self, seconds: float) -> None:
        """Wait up to ``seconds`` for the turns still running (at shutdown)."""
        if self._tasks:
            logger.info("waiting for %d Teams turn(s) to finish", len(self._tasks))
            await asyncio.wait(set(self._tasks), timeout=seconds)

    async def _turn(self, lane: str, activity: Activity,
                    on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> str | None:
        """One turn; never raises: a failure is logged and told to the conversation."""
        async with self._lanes.hold(lane):
            try:
                return await self._on_activity(activity, on_new_message)
            except Exception:  # the log gets the trace, the person a reference
                reference = uuid.uuid4().hex[:8]
                logger.exception("failed to handle Teams activity %s (reference %s)",
                                 activity.id, reference)
                message = _FAILED.format(reference=reference)
                await self._tell_failure(activity, message)
                return message

    async def _tell_failure(self, activity: Activity, message: str) -> None:
        if activity.conversation is None or not activity.service_url:
            return
        try:
            await self.send(_reference_of(activity), message, [], {}, reply_to=activity.id)
        except Exception:  # noqa: BLE001 - send has logged what failed; nothing more to try
            logger.error("could not tell Teams conversation %s that activity %s failed",
                         activity.conversation.id, activity.id)

    async def _on_activity(self, activity: Activity,
                           on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> str | None:
        user = activity.from_property
        conversation = activity.conversation
        if user is None or conversation is None or not activity.service_url:
            return None
        pressed: str | None = None
        text: str | None = None
        from_card = True  # the text is a card's payload (checked below), not typed words
        value = activity.value if isinstance(activity.value, dict) else None
        if activity.type == "invoke":
            action = (value or {}).get("action") if activity.name == "adaptiveCard/action" else None
            data = action.get("data") if isinstance(action, dict) else None
            text = (str(data.get("payload"))
                    if isinstance(data, dict) and data.get("payload") else None)
            pressed = activity.reply_to_id
        elif value and value.get("payload"):
            text = str(value["payload"])
            pressed = activity.reply_to_id
        else:
            group = ((conversation.conversation_type or "personal") != "personal"
                     or bool(conversation.is_group))
            if group and not activity.is_recipient_mentioned():
                return None  # in a channel, opsbot answers when mentioned
            from_card = False
            text = activity.remove_recipient_mention() if group else (activity.text or "")
            text = " ".join(text.split())
            if text.startswith("/"):
                text = text.lstrip("/")  # Rasa would read it as an intent payload
        if not text:
            return None
        person = str(user.aad_object_id)
        sender = sender_id_for(conversation.id, person)
        reference = _reference_of(activity)
        await asyncio.to_thread(channel_store().remember, _REF_KIND, sender, reference)
        # Events for the whole conversation (a channel's subscription) go here too.
        await asyncio.to_thread(channel_store().remember, _REF_KIND,
                                f"conversation:{conversation.id}", reference)
        if from_card:
            checked = open_payload(text, scope=conversation_scope(CHANNEL, conversation.id))
            if checked.text is None:
                await refuse_forged_payload(CHANNEL, person, text, checked.refused or "")
                if activity.type != "invoke":
                    await self.send(reference, checked.reply, [], {}, reply_to=activity.id)
                return checked.reply
            text = checked.text
        if pressed:
            # A card still being posted has no owner noted yet: wait for it, or a fast
            # click by someone else would count as the asker's.
            for posting in list(self._posting.get(conversation.id, ())):
                await posting.wait()
        by_other = bool(pressed) and await asyncio.to_thread(
            pressed_by_other, f"{conversation.id}:{pressed}", sender, text)
        if by_other:
            if activity.type == "invoke":
                return NOT_YOURS  # shown on the card, to the one who clicked
            await self.send(reference, f"{user.name}: {NOT_YOURS}" if user.name else NOT_YOURS,
                            [], {}, reply_to=activity.id)
            return None
        output = TeamsOutput(self, reference, reply_to=activity.id)
        await on_new_message(UserMessage(
            text, output, sender, input_channel=CHANNEL, message_id=f"teams-{activity.id}",
            metadata={IDENTITY_KEY: sign_identity(
                          CHANNEL, person, sender, f"teams-{activity.id}",
                          conversation=conversation_scope(CHANNEL, conversation.id)),
                      "channel": CHANNEL, "user_id": person, "user_name": user.name,
                      "conversation_id": conversation.id, "teams_user_id": user.id}))
        await self._retire(reference, output.states)
        if pressed:
            operation_id = operation_of(text)
            state = output.states.get(operation_id or "")
            location = (activity.service_url, conversation.id, pressed)
            if operation_id is None:
                await self._retire_card(location, f"{user.name or person} chose an option.")
            elif state is not None and state not in OPEN_STATES:
                await self._retire_card(location, decision_note(state))
        return next((t for t in output.sent if t), None)
