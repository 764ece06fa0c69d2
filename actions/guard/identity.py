"""Who is speaking: the one place opsbot derives a person's identity from a message.

The trust model (docs/trust.md):

* Only a connector that authenticated a message may say who sent it: Telegram (the
  bot's own polling connection, or a webhook request carrying the secret token), Teams
  (a validated Bot Framework JWT, ``channelId`` msteams, an allowed tenant and the
  ``aadObjectId``) and the REST channel (``Authorization: Bearer $OPSBOT_REST_TOKEN``:
  the integration holding the token speaks for ``rest:<sender>``).
* Such a connector, running inside the Rasa server, puts :func:`sign_identity`'s block
  into the message metadata under ``opsbot_identity``: the channel, the user id, the
  Rasa conversation (sender id), the chat it happened in (:func:`conversation_scope`)
  and the message id, with an HMAC keyed by the server secret.
* The action server believes only that block, and only when its HMAC verifies and its
  conversation and message are the tracker's latest (:func:`verified_identity`): a block
  copied out of a tracker vouches for that one message, nothing else (and the routes of
  Rasa's API that would add events to a tracker are closed, ``opsbot._rasa_server``).
  Client-supplied metadata,
  ``input_channel`` and sender ids never decide who someone is: a message without a
  valid block comes from a stranger, ``unverified:<sender id>``.

Button payloads are data that went out to a chat and come back; :func:`sign_payload`
adds an HMAC (``_sig``) to a payload's entities and :func:`open_payload` checks it
before a connector hands the payload to Rasa, so an edited or made-up payload is
refused instead of being parsed as an intent with entities. The HMAC also covers the
chat the button was shown in and its expiry (``_exp``, the confirmation's own for
Confirm, Approve and Cancel): a payload copied into another chat, or sent through the
REST channel for a button shown in Telegram, or pressed after its lifetime, is refused.

The server secret is ``OPSBOT_ACTIONS_SECRET``: the same value authenticates the Rasa
server to the action server (the ``X-Opsbot-Secret`` header). ``opsbot run`` and
``opsbot demo`` generate it when it is unset and give it to both servers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EXPIRED",
    "FORGED",
    "IDENTITY_KEY",
    "OTHER_CHAT",
    "SECRET_HEADER",
    "SECRET_VARIABLE",
    "UNVERIFIED",
    "Identity",
    "PayloadCheck",
    "api_token_of",
    "bearer",
    "conversation_scope",
    "open_payload",
    "same_secret",
    "secret_matches",
    "sign_identity",
    "sign_payload",
    "verified_identity",
]

IDENTITY_KEY = "opsbot_identity"
SECRET_VARIABLE = "OPSBOT_ACTIONS_SECRET"
SECRET_HEADER = "X-Opsbot-Secret"
# The channel of a message whose sender nobody vouched for.
UNVERIFIED = "unverified"
_SIG = "_sig"
_EXP = "_exp"  # a signed payload's expiry, in whole seconds since the epoch
_IN = "_in"  # a public tag of the chat it was made for (the MAC binds the chat itself)
# A bare payload names an intent and nothing else: the same as saying it in words.
_BARE = re.compile(r"^/[A-Za-z_][A-Za-z0-9_]*$")
_PAYLOAD = re.compile(r"^/([A-Za-z_][A-Za-z0-9_]*)(\{.*\})$", re.DOTALL)
# A key made once per process when no secret is configured (tests, plain `rasa run`):
# then only what this process signed verifies, which is the safe direction to fail.
_PROCESS_KEY = secrets.token_bytes(32)


def _secret() -> bytes:
    configured = os.environ.get(SECRET_VARIABLE, "")
    return configured.encode() if configured else _PROCESS_KEY


def _mac(purpose: str, message: str) -> str:
    key = hmac.new(_secret(), f"opsbot {purpose}".encode(), hashlib.sha256).digest()
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def same_secret(given: str | None, expected: str | None) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time; never for an empty one."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def bearer(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; "" for anything else."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def api_token_of(request: Any) -> str:
    """The token a request to Rasa's API carries: ``?token=`` (as Rasa takes it), else
    ``Authorization: Bearer``."""
    given = request.args.get("token")
    if given:
        return str(given)
    return bearer(request.headers.get("Authorization"))


def secret_matches(given: str | None) -> bool:
    """Whether ``given`` is the server secret (constant-time); never true for an empty one."""
    return same_secret(given, os.environ.get(SECRET_VARIABLE, ""))


@dataclass(frozen=True)
class Identity:
    """Who a connector says sent a message: its channel, the user id there, and the chat."""

    channel: str
    user_id: str
    conversation: str = ""


def conversation_scope(channel: str, conversation: str | int) -> str:
    """The chat a message or a button press happened in, as a connector names it:
    ``telegram:<chat id>``, ``teams:<conversation id>``, ``rest:<sender>``.

    In a group every person has a Rasa conversation of their own, but a button is shown
    to the whole chat (an approver presses the requester's card), so buttons are bound to
    the chat, not to one person's conversation.
    """
    return f"{channel}:{conversation}"


def _canonical(channel: str, user_id: str, sender_id: str, message_id: str,
               conversation: str) -> str:
    return json.dumps([channel, user_id, sender_id, message_id, conversation],
                      separators=(",", ":"))


def sign_identity(channel: str, user_id: str, sender_id: str, message_id: str, *,
                  conversation: str | None = None) -> dict[str, str]:
    """The metadata block a connector that authenticated a message attaches to it.

    ``conversation``: the chat (:func:`conversation_scope`); by default the sender's
    own conversation, as for the REST channel.
    """
    chat = conversation or conversation_scope(channel, sender_id)
    return {"channel": channel, "user_id": user_id, "sender_id": sender_id,
            "message_id": message_id, "conversation": chat,
            "sig": _mac("identity", _canonical(channel, user_id, sender_id, message_id, chat))}


def verified_identity(metadata: Any, sender_id: str, message_id: Any) -> Identity | None:
    """The identity in a message's metadata, if a connector signed it for this message."""
    block = metadata.get(IDENTITY_KEY) if isinstance(metadata, Mapping) else None
    if not isinstance(block, Mapping):
        return None
    names = ("channel", "user_id", "sender_id", "message_id", "conversation", "sig")
    fields = [block.get(name) for name in names]
    if not all(isinstance(value, str) and value for value in fields):
        return None
    channel, user_id, signed_sender, signed_message, chat, sig = (str(v) for v in fields)
    if signed_sender != sender_id or signed_message != message_id:
        return None  # a signed block copied into another conversation or message
    expected = _mac("identity",
                    _canonical(channel, user_id, signed_sender, signed_message, chat))
    if not hmac.compare_digest(sig.encode(), expected.encode()):
        return None
    return Identity(channel, user_id, chat)


def _payload_message(intent: str, entities: Mapping[str, Any], scope: str) -> str:
    return "\n".join((intent, json.dumps(dict(entities), sort_keys=True, separators=(",", ":")),
                      scope))


def sign_payload(intent: str, entities: Mapping[str, Any] | None = None, *, scope: str,
                 expires: float) -> str:
    """A button payload Rasa parses without NLU, its entities protected by an HMAC that
    also covers the chat it is shown in (``scope``) and its expiry (epoch seconds)."""
    clean = {str(k): v for k, v in (entities or {}).items() if k not in (_SIG, _EXP, _IN)}
    clean[_EXP] = int(math.ceil(expires))
    clean[_IN] = _chat_tag(scope)
    signed = {**clean, _SIG: _mac("payload", _payload_message(intent, clean, scope))}
    return f"/{intent}{json.dumps(signed, separators=(',', ':'))}"


FORGED = ("That looks like one of my buttons, but I did not make it (or it was changed), "
          "so nothing was done. Ask me in words, or press a button I sent.")
EXPIRED = "That button has expired, so nothing was done. Ask again for fresh ones."
OTHER_CHAT = ("That button was made for another chat, so nothing was done. Use the buttons "
              "in the chat where you asked, or ask here in words.")


@dataclass(frozen=True)
class PayloadCheck:
    """What :func:`open_payload` found: the text to hand to Rasa, or why it is refused."""

    text: str | None
    refused: str | None = None
    reply: str = FORGED
    """What the person who pressed is told when it is refused."""

    @property
    def forged(self) -> bool:
        return self.refused is not None


def open_payload(text: str, *, scope: str, now: float | None = None) -> PayloadCheck:
    """Check a message that may be a button payload (``/intent{...}``), pressed in the
    chat ``scope`` (:func:`conversation_scope`) at ``now`` (epoch seconds).

    Plain text and bare ``/intent`` pass unchanged. A payload with entities passes only
    with a valid ``_sig`` for this chat and an ``_exp`` still to come; both are removed.
    Anything else is refused, with what to tell the person. The text is judged as Rasa
    will read it, stripped: " /deploy{...}" is a payload too.
    """
    stripped = text.strip()
    if not stripped.startswith("/"):
        return PayloadCheck(text)
    if _BARE.match(stripped):
        return PayloadCheck(stripped)
    match = _PAYLOAD.match(stripped)
    if match is None:
        return PayloadCheck(None, "not a payload opsbot makes")
    try:
        entities = json.loads(match.group(2))
    except ValueError:
        return PayloadCheck(None, "its entities are not JSON")
    if not isinstance(entities, dict):
        return PayloadCheck(None, "its entities are not a mapping")
    sig = entities.pop(_SIG, None)
    if not isinstance(sig, str):
        return PayloadCheck(None, "it carries no signature")
    expires = entities.get(_EXP)
    if isinstance(expires, bool) or not isinstance(expires, int):
        return PayloadCheck(None, "it carries no expiry")
    intent = match.group(1)
    if entities.get(_IN) != _chat_tag(scope):
        return PayloadCheck(None, f"it was made for another chat than {scope}", reply=OTHER_CHAT)
    if not hmac.compare_digest(sig.encode(),
                               _mac("payload", _payload_message(intent, entities, scope)).encode()):
        return PayloadCheck(None, "its signature does not match its content")
    if (time.time() if now is None else now) > expires:
        return PayloadCheck(None, "it has expired", reply=EXPIRED)
    del entities[_EXP], entities[_IN]
    return PayloadCheck(f"/{intent}{json.dumps(entities, separators=(',', ':'))}")


def _chat_tag(scope: str) -> str:
    """A short, public tag of the chat a payload was made for: only to word a refusal."""
    return hashlib.sha256(scope.encode()).hexdigest()[:8]
