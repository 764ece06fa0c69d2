"""One user turn as the actions see it: who is asking, what they asked, and the replies.

Who is asking comes only from ``actions.guard.identity``: the connector that
authenticated a message signs the person's channel and user id into its metadata (in a
group chat the conversation, the sender id, is shared by many people). A message
without a valid signature is a stranger's. ``Policy.person`` maps (channel, user id) to
a person of ``policy.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Tracker

from actions._runtime import Runtime
from actions.guard import Operation
from actions.guard.identity import UNVERIFIED, sign_payload, verified_identity
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
        """The person a connector vouched for; a stranger when no connector did."""
        message = tracker.latest_message or {}
        identity = verified_identity(message.get("metadata"), tracker.sender_id,
                                     message.get("message_id"))
        if identity is None:
            channel, user_id = UNVERIFIED, tracker.sender_id
        else:
            channel, user_id = identity.channel, identity.user_id
        return cls(channel, user_id, tracker.sender_id, runtime.policy.person(channel, user_id))

    @property
    def verified(self) -> bool:
        """Whether a connector authenticated the message (else: a stranger, whoever it says)."""
        return self.channel != UNVERIFIED

    def reply_to(self) -> dict[str, Any]:
        """The conversation reference stored with an operation, for proactive messages."""
        return {"channel": self.channel, "sender_id": self.sender_id, "user_id": self.user_id}


def payload(intent: str, entities: dict[str, str] | None = None) -> str:
    """A signed button payload Rasa parses without NLU.

    For example ``/deploy{"service": "payments", "_sig": ...}``.
    """
    return sign_payload(intent, entities)


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
    # The message's metadata as its connector wrote it (chat, topic, conversation ids);
    # who is asking comes from ``who``, never from here.
    metadata: dict[str, Any] = field(default_factory=dict)

    def note(self, operation: Operation) -> None:
        """Remember that this turn concerns ``operation`` (in its current state)."""
        self.operations[operation.id] = operation.state

    def say(self, text: str, buttons: list[dict[str, str]] | None = None) -> None:
        reply: dict[str, Any] = {"text": text}
        if buttons:
            reply["buttons"] = buttons
        self.replies.append(reply)
