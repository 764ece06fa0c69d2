"""One user turn as the actions see it: who is asking, what they asked, and the replies.

Who is asking comes only from ``actions.guard.identity``: the connector that
authenticated a message signs the person's channel and user id into its metadata (in a
group chat the conversation, the sender id, is shared by many people). A message
without a valid signature is a stranger's. ``Policy.person`` maps (channel, user id) to
a person of ``policy.yml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rasa_sdk import Tracker

from actions._runtime import Runtime
from actions.backends._protocol import B, BackendKind
from actions.guard import Operation
from actions.guard.identity import (
    UNVERIFIED,
    conversation_scope,
    sign_payload,
    verified_identity,
)
from actions.requests import OpsRequest

__all__ = ["BUTTON_TTL", "OPERATIONS_KEY", "Turn", "Who"]

# The key of the bot-message metadata that lists the operations a reply concerns, with
# their states; connectors/_common.py reads it under the same name.
OPERATIONS_KEY = "opsbot_operations"


@dataclass(frozen=True)
class Who:
    """The person behind a message, the Rasa conversation it came from, and the chat."""

    channel: str
    user_id: str
    sender_id: str
    person: str
    # The chat (actions.guard.identity.conversation_scope); by default the sender's own
    # conversation, as in the REST channel.
    chat: str = ""

    def __post_init__(self) -> None:
        if not self.chat:
            object.__setattr__(self, "chat", conversation_scope(self.channel, self.sender_id))

    @classmethod
    def from_tracker(cls, tracker: Tracker, runtime: Runtime) -> Who:
        """The person a connector vouched for; a stranger when no connector did."""
        message = tracker.latest_message or {}
        identity = verified_identity(message.get("metadata"), tracker.sender_id,
                                     message.get("message_id"))
        if identity is None:
            return cls(UNVERIFIED, tracker.sender_id, tracker.sender_id,
                       runtime.policy.person(UNVERIFIED, tracker.sender_id))
        return cls(identity.channel, identity.user_id, tracker.sender_id,
                   runtime.policy.person(identity.channel, identity.user_id),
                   identity.conversation)

    @property
    def verified(self) -> bool:
        """Whether a connector authenticated the message (else: a stranger, whoever it says)."""
        return self.channel != UNVERIFIED

    def reply_to(self) -> dict[str, Any]:
        """The conversation reference stored with an operation, for proactive messages
        (and the chat, where its approval and its buttons belong)."""
        return {"channel": self.channel, "sender_id": self.sender_id, "user_id": self.user_id,
                "chat": self.chat}


BUTTON_TTL = timedelta(days=1)
"""How long a button that is not a confirmation's can be pressed (a choice, a meaning)."""


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
    # The operations this turn moved to another state (confirmed, cancelled, expired...):
    # a button press that moved none changed nothing, and a connector that can answer one
    # person alone (Slack's ephemeral notes) answers the presser alone.
    changed: set[str] = field(default_factory=set)
    # The message's metadata as its connector wrote it (chat, topic, conversation ids);
    # who is asking comes from ``who``, never from here.
    metadata: dict[str, Any] = field(default_factory=dict)

    def note(self, operation: Operation, *, moved: bool = False) -> None:
        """Remember that this turn concerns ``operation`` (in its current state), and
        whether this turn ``moved`` it there."""
        self.operations[operation.id] = operation.state
        if moved:
            self.changed.add(operation.id)

    def button(self, title: str, intent: str, entities: Mapping[str, str] | None = None, *,
               until: datetime | None = None) -> dict[str, str]:
        """A button for this chat: a signed payload Rasa parses without NLU, for example
        ``/deploy{"service": "payments", "_exp": ..., "_in": ..., "_sig": ...}``, pressable
        in this chat only and until ``until`` (default: ``BUTTON_TTL`` from now, which
        bounds how long a payload copied out of a chat stays good for)."""
        expires = until or datetime.now(UTC) + BUTTON_TTL
        return {"title": title, "payload": sign_payload(intent, dict(entities or {}),
                                                        scope=self.who.chat,
                                                        expires=expires.timestamp())}

    def backend(self, kind: BackendKind[B]) -> B | None:
        """The backend this request needs, or None after saying that it is not connected
        (and what to set), so that nothing runs."""
        backend = self.runtime.backends.get(kind)
        if backend is None:
            self.say(f"I understood: {self.request.describe()}. But {kind.not_connected()}, "
                     "so nothing ran.")
        return backend

    def say(self, text: str, buttons: list[dict[str, str]] | None = None) -> None:
        reply: dict[str, Any] = {"text": text}
        if buttons:
            reply["buttons"] = buttons
        self.replies.append(reply)
