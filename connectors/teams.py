"""opsbot in Microsoft Teams: a Rasa input/output channel on the Microsoft 365 Agents SDK.

Why not Rasa's botframework channel: it keys a channel as one user, trusts any
request, hard-codes the multi-tenant token endpoint and cannot push into Teams. Here:

* **Inbound** activities arrive at ``POST /webhooks/teams/api/messages``. Each carries
  a Bot Framework JWT, checked before anything else: RS256 signature with a key from
  the channel's OpenID metadata, issuer, audience (this app), expiry, the key's
  endorsement of the channel and the ``serviceurl`` claim. A missing, forged, expired or
  misaddressed token gets 401 and changes nothing. Single-tenant and multi-tenant app
  registrations are both supported (outbound tokens come from the tenant for
  single-tenant apps). Only the Bot Framework issuer is accepted, checked against the
  Bot Framework's keys: a token issued by Entra is refused rather than checked against
  keys that did not sign it.
* **Whose.** After the token: ``channelId`` must be ``msteams`` (the bot's other
  channels, Web Chat and Direct Line, let the client choose ``from.id``), the tenant
  must be ``TEAMS_TENANT_ID`` or one of ``TEAMS_ALLOWED_TENANTS``, and ``from`` must
  carry an ``aadObjectId``. Anything else gets 403 and changes nothing.
* **Who.** The person is ``from.aadObjectId`` (signed into the message metadata,
  ``actions.guard.identity``), the conversation is
  ``conversation.id``; each person has their own dialogue state in a conversation
  (``teams:<conversation id>~<user>``). In channels and group chats opsbot answers when
  mentioned, with the mention stripped from the text.
* **Buttons** are Adaptive Cards with ``Action.Submit``; a click comes back as a message
  whose ``value`` holds the payload and whose ``from`` is the person who clicked. When the
  operation behind a card is decided, the card is replaced by one without buttons.
  ``Action.Execute`` (Universal Actions) invokes are answered too.
* **Acknowledged at once, answered asynchronously.** Azure Bot Service gives a bot about
  15 seconds to answer the POST of an activity, then gives up with 504 GatewayTimeout
  (learn.microsoft.com/azure/bot-service/bot-builder-howto-long-operations-guidance), and
  a Jira or Jenkins call can take longer. So once an activity is authenticated and found
  to be ours, it is acknowledged (201) and its turn runs in a background task; every reply
  goes through the Connector API. One person's turns in a conversation run one at a
  time, in the order they arrived. A turn that fails tells the conversation so, with a
  reference that is also in the log. An ``Action.Execute`` invoke, which must be answered
  in its own response, waits a few seconds for its turn and otherwise says the answer
  follows in the chat.
* **Replies and proactive messages** go through the SDK's ``ConnectorClient`` to the
  conversation's service URL, with an outbound token from the app's tenant (or
  ``botframework.com`` for multi-tenant apps). The conversation reference is kept in
  opsbot's store, so "build finished" reaches the conversation from any replica.
* **Throttling and outages.** The Connector API answers a bot that sends too fast with 429
  and ``Retry-After`` (learn.microsoft.com/microsoftteams/platform/bots/how-to/rate-limit,
  which also says to retry 412, 502 and 504). Every send (reply, proactive message, card
  update, and the token behind it) waits as long as ``Retry-After`` says, or backs off
  exponentially with jitter on a 5xx or a failed connection, and tries again, so each
  part of a reply arrives, in order. After ``send_budget`` seconds (default 120) of trying
  it gives up and logs which message, to which conversation, could not be delivered.
* **Exactly once.** An activity id seen before (a redelivery) is answered and ignored.

This module holds the settings and the inbound request (its token checked, whose it is,
a redelivery dropped, the acknowledgement); the rest is in parts: ``_teams_auth`` (the
Bot Framework JWT check and outbound tokens), ``_teams_turns`` (running a turn),
``_teams_send`` (replies, card updates, events) and ``_teams_cards`` (Adaptive Cards).
``TeamsInput`` is all of them.

Settings (credentials.yml section ``connectors.teams.TeamsInput``; a key left out is read
from the environment variable):

    app_id               TEAMS_APP_ID               the app registration's client id (required)
    app_password         TEAMS_APP_PASSWORD         its client secret (required)
    tenant_id            TEAMS_TENANT_ID            the tenant (required for single-tenant)
    allowed_tenants      TEAMS_ALLOWED_TENANTS      a multi-tenant app: the tenant ids it serves
    app_type             TEAMS_APP_TYPE             SingleTenant (default with a tenant) or
                                                    MultiTenant
    openid_metadata_url  TEAMS_OPENID_METADATA_URL  default https://login.botframework.com/v1/.well-known/openidconfiguration
    token_issuer         TEAMS_TOKEN_ISSUER         default https://api.botframework.com
    authority_url        TEAMS_AUTHORITY_URL        default https://login.microsoftonline.com
    send_budget          TEAMS_SEND_BUDGET          seconds one reply may wait out throttling and
                                                    outages (120)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from microsoft_agents.activity import Activity
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors._common import ButtonBook, ConnectorConfigError, Lanes, channel_store, setting
from connectors._teams_auth import (
    BOT_FRAMEWORK_ISSUER,
    BOT_FRAMEWORK_METADATA,
    ENTRA_AUTHORITY,
    AuthError,
    TokenProvider,
    TokenValidator,
)
from connectors._teams_cards import adaptive_card
from connectors._teams_send import CHANNEL, DeliveryError, Location, TeamsOutput
from connectors._teams_turns import TeamsTurns, sender_id_for
from connectors.events import register_sink

__all__ = ["DeliveryError", "TeamsInput", "TeamsOutput", "TokenValidator", "adaptive_card",
           "sender_id_for"]

logger = logging.getLogger(__name__)

_SEEN_KIND = "teams-activity"
SEND_BUDGET = 120.0
"""Seconds one outbound message may spend waiting out 429s and outages before it is given up."""
_INVOKE_WAIT = 5.0  # seconds an invoke waits for its turn, well inside the channel's 15
_STILL_WORKING = "Working on it; the answer follows in this conversation."


def _tenant_of(activity: Activity, body: Mapping[str, Any]) -> str:
    """The tenant an activity comes from: ``conversation.tenantId``, else
    ``channelData.tenant.id``."""
    conversation = activity.conversation
    tenant = conversation.tenant_id if conversation is not None else None
    if not tenant:
        data = body.get("channelData")
        inner = data.get("tenant") if isinstance(data, Mapping) else None
        tenant = inner.get("id") if isinstance(inner, Mapping) else None
    return str(tenant or "")


def _seconds_setting(value: str | None, variable: str, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConnectorConfigError(
            f"{variable} must be a number of seconds, got {value!r}.") from None


class TeamsInput(TeamsTurns, InputChannel):
    """The Teams connector: ``connectors.teams.TeamsInput`` in credentials.yml."""

    @classmethod
    def name(cls) -> str:
        return CHANNEL

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> TeamsInput:
        tenant = setting(credentials, "tenant_id", "TEAMS_TENANT_ID")
        app_type = setting(credentials, "app_type", "TEAMS_APP_TYPE",
                           default="SingleTenant" if tenant else "MultiTenant")
        return cls(
            app_id=str(setting(credentials, "app_id", "TEAMS_APP_ID", required=True)),
            app_password=str(setting(credentials, "app_password", "TEAMS_APP_PASSWORD",
                                     required=True)),
            tenant_id=tenant,
            app_type=str(app_type),
            openid_metadata_url=str(setting(credentials, "openid_metadata_url",
                                            "TEAMS_OPENID_METADATA_URL",
                                            default=BOT_FRAMEWORK_METADATA)),
            token_issuer=str(setting(credentials, "token_issuer", "TEAMS_TOKEN_ISSUER",
                                     default=BOT_FRAMEWORK_ISSUER)),
            authority_url=str(setting(credentials, "authority_url", "TEAMS_AUTHORITY_URL",
                                      default=ENTRA_AUTHORITY)),
            allowed_tenants=tuple(re.split(r"[\s,]+", str(setting(
                credentials, "allowed_tenants", "TEAMS_ALLOWED_TENANTS") or "").strip())),
            send_budget=_seconds_setting(setting(credentials, "send_budget", "TEAMS_SEND_BUDGET"),
                                         "TEAMS_SEND_BUDGET", SEND_BUDGET),
        )

    def __init__(self, *, app_id: str, app_password: str, tenant_id: str | None = None,
                 app_type: str = "MultiTenant", openid_metadata_url: str = BOT_FRAMEWORK_METADATA,
                 token_issuer: str = BOT_FRAMEWORK_ISSUER,
                 authority_url: str = ENTRA_AUTHORITY,
                 allowed_tenants: Sequence[str] = (),
                 send_budget: float = SEND_BUDGET) -> None:
        kind = app_type.replace("-", "").replace("_", "").lower()
        if kind not in ("singletenant", "multitenant"):
            raise ConnectorConfigError(
                f"TEAMS_APP_TYPE={app_type!r}: use SingleTenant or MultiTenant.")
        if kind == "singletenant" and not tenant_id:
            raise ConnectorConfigError(
                "TEAMS_APP_TYPE=SingleTenant needs TEAMS_TENANT_ID: the directory (tenant) id of "
                "the app registration, from the Azure portal's overview page.")
        for name, url in (("TEAMS_OPENID_METADATA_URL", openid_metadata_url),
                          ("TEAMS_AUTHORITY_URL", authority_url)):
            if not url.startswith(("https://", "http://")):
                raise ConnectorConfigError(f"{name} must be an http(s) URL, got {url!r}.")
        self.app_id = app_id
        self.single_tenant = kind == "singletenant"
        self.tenant_id = tenant_id
        tenants = {t.strip().lower() for t in allowed_tenants if t.strip()}
        if tenant_id:
            tenants.add(tenant_id.strip().lower())
        if not tenants:
            raise ConnectorConfigError(
                "A multi-tenant Teams app needs TEAMS_ALLOWED_TENANTS: the tenant ids "
                "(comma separated) whose people opsbot serves. Without it anyone who installs "
                "the app in their own tenant could talk to it.")
        self.allowed_tenants = frozenset(tenants)
        self.validator = TokenValidator(app_id=app_id, metadata_url=openid_metadata_url,
                                        issuers=[token_issuer])
        token_tenant = tenant_id if self.single_tenant else "botframework.com"
        self.tokens = TokenProvider(app_id=app_id, app_password=app_password,
                                    token_url=f"{authority_url.rstrip('/')}/{token_tenant}/oauth2/v2.0/token")
        if send_budget <= 0:
            raise ConnectorConfigError(
                f"TEAMS_SEND_BUDGET must be above 0 seconds, got {send_budget}.")
        self.send_budget = float(send_budget)
        self._book: ButtonBook[Location] = ButtonBook()
        self._texts: dict[Location, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # turns running; kept so none is collected
        self._posting: dict[str, set[asyncio.Event]] = {}  # conversation -> cards being posted
        self._lanes = Lanes()

    def __repr__(self) -> str:
        return (f"TeamsInput(app_id={self.app_id!r}, single_tenant={self.single_tenant}, "
                "app_password=**********)")

    # -- Rasa's channel interface --------------------------------------------------------

    def get_output_channel(self) -> OutputChannel:
        """For proactive messages: the conversation reference is read from the store."""
        return TeamsOutput(self)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("opsbot_teams", __name__)
        register_sink(CHANNEL, self)  # alerts, checks and builds (connectors.events)

        @hook.listener("before_server_stop")
        async def stop(_app: Any, _loop: Any) -> None:
            await self.drain(seconds=10)

        @hook.route("/", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @hook.route("/api/messages", methods=["POST"])
        async def messages(request: Request) -> HTTPResponse:
            return await self._receive(request, on_new_message)

        return hook

    # -- inbound -------------------------------------------------------------------------

    async def _receive(self, request: Request,
                       on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> HTTPResponse:
        if "application/json" not in (request.headers.get("Content-Type") or ""):
            return response.json({"error": "Content-Type must be application/json"}, status=415)
        try:
            body = json.loads(request.body or b"")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("type"):
            return response.json({"error": "the body must be a Bot Framework activity"}, status=400)
        try:
            await self.validator.validate(request.headers.get("Authorization"),
                                          body.get("channelId"), body.get("serviceUrl"))
        except AuthError as exc:
            logger.warning("refused a Teams request: %s", exc)
            return response.json({"error": "Unauthorized"}, status=401)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            logger.error("cannot read the OpenID metadata at %s: %s",
                         self.validator.metadata_url, exc)
            return response.json({"error": "cannot verify the token now"}, status=503)
        try:
            activity = Activity.model_validate(body)
        except ValueError as exc:
            logger.warning("unreadable Teams activity: %s", exc)
            return response.json({"error": "the body is not a valid activity"}, status=400)
        refused = self._not_ours(activity, body)
        if refused:
            logger.warning("refused a Teams activity %s: %s", activity.id, refused)
            return response.json({"error": f"Forbidden: {refused}"}, status=403)
        if activity.type not in ("message", "invoke"):
            return response.empty(status=200)  # conversationUpdate, typing, reactions, ...
        seen_key = f"{activity.conversation.id}|{activity.id}"
        if activity.id and not await asyncio.to_thread(
                channel_store().first_time, _SEEN_KIND, seen_key):
            logger.info("Teams activity %s was already handled; ignored", activity.id)
            return response.empty(status=200)
        turn = self.start_turn(activity, on_new_message)
        if activity.type != "invoke":
            return response.empty(status=201)  # acknowledged; the answer follows
        try:  # an invoke is answered in its response: wait a little for the turn
            answered = await asyncio.wait_for(asyncio.shield(turn), timeout=_INVOKE_WAIT)
        except TimeoutError:
            answered = _STILL_WORKING
        return response.json({"statusCode": 200,
                              "type": "application/vnd.microsoft.activity.message",
                              "value": answered or "Done."}, status=200)

    def _not_ours(self, activity: Activity, body: Mapping[str, Any]) -> str | None:
        """Why an authenticated activity is still not one opsbot serves (None: it is)."""
        if str(activity.channel_id or "") != "msteams":
            return f"channelId {activity.channel_id!r} is not msteams"
        tenant = _tenant_of(activity, body)
        if not tenant or tenant.lower() not in self.allowed_tenants:
            return f"tenant {tenant!r} is not TEAMS_TENANT_ID or in TEAMS_ALLOWED_TENANTS"
        if activity.type in ("message", "invoke"):
            user = activity.from_property
            if user is None or not user.aad_object_id:
                return "from.aadObjectId is missing"
        return None
