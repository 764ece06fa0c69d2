"""The REST channel, with a token: ``connectors.rest.RestInput`` in credentials.yml.

Rasa's own ``rest`` channel believes whoever posts: any ``sender`` is that person, and
the request's ``metadata`` and ``input_channel`` go into the tracker as sent. This one
keeps Rasa's URL and wire format (``POST /webhooks/rest/webhook`` with
``{"sender": ..., "message": ...}``, the bot's replies as a JSON list) and adds:

* every request must carry ``Authorization: Bearer $OPSBOT_REST_TOKEN`` (compared in
  constant time); without the variable the channel refuses to start;
* the sender is an identity of the REST channel, ``rest:<sender>``: policy.yml's
  ``rest:`` identities say which person a trusted integration (the terminal chat, a
  script) may speak for. Client metadata and ``input_channel`` are dropped, and a sender
  that names another connector's conversation (``telegram:...``, ``teams:...``) is refused;
* a button payload must carry the signature opsbot gave it (``actions.guard.identity``).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.guard.identity import (
    IDENTITY_KEY,
    bearer,
    conversation_scope,
    open_payload,
    same_secret,
    sign_identity,
)
from connectors._common import ConnectorConfigError, refuse_forged_payload, setting

__all__ = ["CHANNEL", "RestInput"]

logger = logging.getLogger(__name__)

CHANNEL = "rest"
MAX_MESSAGE = 65536  # characters; a chat message is far shorter
_SENDER = re.compile(r"^[A-Za-z0-9_.@+-][A-Za-z0-9_.@+ -]{0,127}$")


class RestInput(InputChannel):
    """Rasa's REST wire format behind a bearer token; the sender is ``rest:<sender>``."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> RestInput:
        token = setting(credentials, "token", "OPSBOT_REST_TOKEN")
        if not token:
            raise ConnectorConfigError(
                "The REST channel needs OPSBOT_REST_TOKEN: every request must carry it as "
                "'Authorization: Bearer <token>'. Set it (e.g. `openssl rand -hex 24`) or "
                "remove connectors.rest.RestInput from credentials.yml.")
        return cls(token)

    def __init__(self, token: str) -> None:
        if len(token) < 16:
            raise ConnectorConfigError(
                "OPSBOT_REST_TOKEN is too short to be a secret: use at least 16 characters "
                "(e.g. `openssl rand -hex 24`).")
        self._token = token

    def __repr__(self) -> str:
        return "RestInput(token=**********)"

    def _authorized(self, request: Request) -> bool:
        return same_secret(bearer(request.headers.get("Authorization")), self._token)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("opsbot_rest", __name__)

        @hook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self._authorized(request):
                logger.warning("refused a REST request without the right bearer token")
                return response.json(
                    {"error": "unauthorized: send 'Authorization: Bearer <OPSBOT_REST_TOKEN>'"},
                    status=401, headers={"WWW-Authenticate": 'Bearer realm="opsbot"'})
            try:
                body = request.json
            except Exception:  # noqa: BLE001 - Sanic raises its own on bad JSON
                body = None
            if not isinstance(body, dict):
                return response.json({"error": 'the body must be {"sender": ..., "message": ...}'},
                                     status=400)
            sender, text = body.get("sender"), body.get("message")
            if not isinstance(sender, str) or not _SENDER.match(sender):
                return response.json(
                    {"error": "sender must be 1-128 letters, digits, spaces or _.@+- (it names "
                              "who the integration speaks for, e.g. alice)"}, status=400)
            if not isinstance(text, str) or not text.strip():
                return response.json({"error": "message must be non-empty text"}, status=400)
            if len(text) > MAX_MESSAGE:
                return response.json({"error": f"message is longer than {MAX_MESSAGE} characters"},
                                     status=413)
            # A button pressed here was made for this sender's conversation, and only for it.
            checked = open_payload(text.strip(), scope=conversation_scope(CHANNEL, sender))
            if checked.text is None:
                await refuse_forged_payload(CHANNEL, sender, text, checked.refused or "")
                return response.json([{"recipient_id": sender, "text": checked.reply}])
            collector = CollectingOutputChannel()
            message_id = f"rest-{uuid.uuid4().hex}"
            await on_new_message(UserMessage(
                checked.text, collector, sender, input_channel=CHANNEL, message_id=message_id,
                metadata={IDENTITY_KEY: sign_identity(CHANNEL, sender, sender, message_id)}))
            return response.json(collector.messages)

        return hook
