"""One user turn as the actions see it: who is asking, what they asked, and the replies.

Who is asking: connectors put the person's own id in the message metadata
(``{"user_id": ..., "channel": ...}``), because in a group chat the conversation
(sender id) is shared by many people. The REST channel and the terminal chat have no
metadata: there the sender id is the user. ``Policy.person`` maps (channel, user id)
to a person of ``policy.yml``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Tracker

from actions._runtime import Runtime
from actions.guard import Operation
from actions.requests import OpsRequest

__all__ = ["OPERATIONS_KEY", "Turn", "Who", "button", "payload"]

# The key of the bot-message metadata that lists the operations a reply concerns, with
# their states; connectors/_common.py reads it under the same name.
OPERATIONS_KEY = "opsbot_operations"


@dataclass(frozen=True)
class Who:
    """The person behind a message, and the conversation it came from."""

    channel: str
    user_id: str
    sender_id: str
    person: str

    @classmethod
    def from_tracker(cls, tracker: Tracker, runtime: Runtime) -> Who:
        message = tracker.latest_message or {}
        metadata = message.get("metadata") or {}
        channel = str(metadata.get("channel") or tracker.get_latest_input_channel() or "rest")
        user_id = str(metadata.get("user_id") or tracker.sender_id)
        return cls(channel, user_id, tracker.sender_id, runtime.policy.person(channel, user_id))

    def reply_to(self) -> dict[str, Any]:
        """The conversation reference stored with an operation, for proactive messages."""
        return {"channel": self.channel, "sender_id": self.sender_id, "user_id": self.user_id}


def payload(intent: str, entities: dict[str, str] | None = None) -> str:
    """A button payload Rasa parses without NLU: ``/deploy{"service": "payments"}``."""
    if not entities:
        return f"/{intent}"
    return f"/{intent}{json.dumps(entities, separators=(',', ':'))}"


def button(title: str, intent: str, entities: dict[str, str] | None = None) -> dict[str, str]:
    return {"title": title, "payload": payload(intent, entities)}


@dataclass
class Turn:
    """What the handlers read (request, person, runtime) and write (replies, events)."""

    request: OpsRequest
    who: Who
    runtime: Runtime
    replies: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    slots: dict[str, Any] = field(default_factory=dict)
    # operation id -> its state; sent with the replies as ``opsbot_operations`` so a
    # connector can retire the buttons of an operation that was decided
    operations: dict[str, str] = field(default_factory=dict)

    def note(self, operation: Operation) -> None:
        """Remember that this turn concerns ``operation`` (in its current state)."""
        self.operations[operation.id] = operation.state

    def say(self, text: str, buttons: list[dict[str, str]] | None = None) -> None:
        reply: dict[str, Any] = {"text": text}
        if buttons:
            reply["buttons"] = buttons
        self.replies.append(reply)
