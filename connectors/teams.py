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
import contextlib
import hashlib
import json
import logging
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import aiohttp
import jwt
from microsoft_agents.activity import (
    Activity,
    Attachment,
    ChannelAccount,
    ChannelId,
    ConversationAccount,
)
from microsoft_agents.hosting.core.connector.client import ConnectorClient
from microsoft_agents.hosting.core.connector.conversations_base import ConversationsBase
from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.guard.identity import (
    IDENTITY_KEY,
    conversation_scope,
    open_payload,
    sign_identity,
)
from connectors._common import (
    NOT_YOURS,
    OPEN_STATES,
    ButtonBook,
    ConnectorConfigError,
    ReplyChannel,
    channel_store,
    claim_keyboard,
    decision_note,
    operation_of,
    pressed_by_other,
    refuse_forged_payload,
    setting,
)
from connectors.events import Gone, SendLater, SendRefused, register_sink

__all__ = ["DeliveryError", "TeamsInput", "TeamsOutput", "TokenValidator", "adaptive_card",
           "sender_id_for"]

logger = logging.getLogger(__name__)

CHANNEL = "teams"
BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
BOT_FRAMEWORK_METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"
ENTRA_AUTHORITY = "https://login.microsoftonline.com"
SCOPE = "https://api.botframework.com/.default"
CARD = "application/vnd.microsoft.card.adaptive"
_REF_KIND = "teams-conversation"
_SEEN_KIND = "teams-activity"
_LEEWAY = 300  # seconds of clock skew, as the Bot Framework SDKs allow
SEND_BUDGET = 120.0
"""Seconds one outbound message may spend waiting out 429s and outages before it is given up."""
# What the rate-limit page says to retry (429, 412, 502, 504), and the other 5xx that say
# "not now" rather than "never".
_RETRIED = frozenset({412, 429, 500, 502, 503, 504})
_CALL_TIMEOUT = 30.0  # seconds for one Connector API request
_INVOKE_WAIT = 5.0  # seconds an invoke waits for its turn, well inside the channel's 15
_FAILED = ("Something went wrong on my side while answering that (reference {reference}). "
           "It may not have finished: check before you ask again. The team can find the "
           "details in opsbot's log under that reference.")
_STILL_WORKING = "Working on it; the answer follows in this conversation."
_T = TypeVar("_T")

Location = tuple[str, str, str]  # (service url, conversation id, activity id)


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


class AuthError(Exception):
    """An inbound request is not from the channel; the message is for the log only."""


class DeliveryError(Exception):
    """An outbound message could not be delivered within the send budget (or was refused)."""


class _NotNow(Exception):
    """The token endpoint said "not now" (429 or 5xx); worth another try after ``retry_after``."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date; RFC 9110
    section 10.2.3), or None without a readable one."""
    value = (headers or {}).get("Retry-After")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _backoff(attempt: int) -> float:
    """Exponential backoff with +-20% jitter (the rate-limit page's advice): 1 s, 2 s, 4 s ...
    up to 30 s."""
    return min(30.0, 2.0 ** (attempt - 1)) * random.uniform(0.8, 1.2)


class _Lanes:
    """One asyncio lock per key, dropped when nobody holds or waits for it.

    asyncio locks wake their waiters first come, first served, so turns taken in the order
    they were started run in that order.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class TokenValidator:
    """Checks the Bot Framework JWT on inbound activities against the OpenID metadata."""

    def __init__(self, *, app_id: str, metadata_url: str, issuers: Sequence[str]) -> None:
        self.app_id = app_id
        self.metadata_url = metadata_url
        self.issuers = tuple(issuers)
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = asyncio.Lock()

    async def _keys(self) -> jwt.PyJWKClient:
        async with self._lock:
            if self._jwks is None:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
                    async with s.get(self.metadata_url) as answer:
                        if answer.status != 200:
                            raise AuthError(
                                f"OpenID metadata {self.metadata_url}: HTTP {answer.status}")
                        metadata = await answer.json(content_type=None)
                jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
                if not jwks_uri:
                    raise AuthError(f"OpenID metadata {self.metadata_url} has no jwks_uri")
                self._jwks = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=86400, timeout=10)
            return self._jwks

    async def validate(self, authorization: str | None, channel_id: str | None,
                       service_url: str | None) -> dict[str, Any]:
        """The verified claims, or AuthError saying what is wrong."""
        if not authorization:
            raise AuthError("no Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header is not 'Bearer <token>'")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"not a JWT ({type(exc).__name__})") from None
        if header.get("alg") != "RS256":
            raise AuthError(f"algorithm {header.get('alg')!r} is not RS256")
        jwks = await self._keys()
        try:
            key = await asyncio.to_thread(jwks.get_signing_key, str(header.get("kid") or ""))
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"no signing key {header.get('kid')!r} ({exc})") from None
        try:
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=self.app_id,
                                issuer=list(self.issuers), leeway=_LEEWAY,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            raise AuthError(f"token refused: {type(exc).__name__}: {exc}") from None
        endorsements = getattr(key, "_jwk_data", {}).get("endorsements")
        if endorsements is not None and channel_id and channel_id not in endorsements:
            raise AuthError(f"the signing key is not endorsed for channel {channel_id!r}")
        claimed = claims.get("serviceurl") or claims.get("serviceUrl")
        if claimed and service_url and claimed.rstrip("/") != service_url.rstrip("/"):
            raise AuthError("the token's serviceurl is not the activity's serviceUrl")
        return claims


class TokenProvider:
    """Outbound tokens for the Bot Connector (OAuth2 client credentials), cached until expiry."""

    def __init__(self, *, app_id: str, app_password: str, token_url: str) -> None:
        self.app_id = app_id
        self._password = app_password
        self.token_url = token_url
        self._token: str | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (f"TokenProvider(app_id={self.app_id!r}, token_url={self.token_url!r}, "
                "password=**********)")

    async def token(self) -> str:
        async with self._lock:
            if self._token and time.monotonic() < self._until:
                return self._token
            form = {"grant_type": "client_credentials", "client_id": self.app_id,
                    "client_secret": self._password, "scope": SCOPE}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s:
                async with s.post(self.token_url, data=form) as answer:
                    try:
                        body = await answer.json(content_type=None)
                    except ValueError:
                        body = None
            if answer.status == 429 or answer.status >= 500:
                raise _NotNow(f"the token endpoint {self.token_url} answered HTTP "
                              f"{answer.status}", _retry_after(answer.headers))
            if answer.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
                detail = (body.get("error_description") or body.get("error")
                          if isinstance(body, dict) else None)
                raise ConnectorConfigError(
                    f"Teams: the token endpoint {self.token_url} refused app {self.app_id} "
                    f"(HTTP {answer.status}: {str(detail or '')[:200]}). Check TEAMS_APP_ID, "
                    "TEAMS_APP_PASSWORD and TEAMS_TENANT_ID.")
            self._token = str(body["access_token"])
            self._until = time.monotonic() + max(60.0, float(body.get("expires_in") or 3600) - 300)
            return self._token


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


def _seconds_setting(value: str | None, variable: str, default: float) -> float:
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConnectorConfigError(
            f"{variable} must be a number of seconds, got {value!r}.") from None


def adaptive_card(text: str, buttons: Sequence[Mapping[str, Any]] = (),
                  note: str | None = None) -> dict[str, Any]:
    """An Adaptive Card with ``text`` and one ``Action.Submit`` per button (payload in data).

    A TextBlock renders markdown links; ``[a](b)`` in ``text`` (an alert's annotation, a
    ticket's summary) is broken up with a zero-width space so that what a link says is
    always the address it goes to (Teams still links bare URLs, which show themselves).
    """
    body: list[dict[str, Any]] = [{"type": "TextBlock", "text": _card_text(text),
                                   "wrap": True}]
    if note:
        body.append({"type": "TextBlock", "text": note, "wrap": True, "isSubtle": True,
                     "size": "Small"})
    card: dict[str, Any] = {"type": "AdaptiveCard", "version": "1.4",
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "body": body}
    if buttons:
        card["actions"] = [
            {"type": "Action.Submit", "title": str(b.get("title") or b.get("payload")),
             "data": {"payload": str(b.get("payload") or b.get("title"))}}
            for b in buttons
        ]
    return card


_MARKDOWN_LINK = re.compile(r"\]\s*\(")


def _card_text(text: str) -> str:
    return _MARKDOWN_LINK.sub("]\u200b(", text)


def _teams_text(text: str) -> str:
    """Plain text for Teams' markdown: line breaks kept, markup characters escaped."""
    escaped = "".join(f"\\{c}" if c in "\\*_`#[]<>" else c for c in text)
    return escaped.replace("\n", "  \n")


class TeamsOutput(ReplyChannel):
    """Sends a conversation's replies into its Teams conversation."""

    def __init__(self, connector: TeamsInput, reference: Mapping[str, Any] | None = None,
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


class TeamsInput(InputChannel):
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
        self._lanes = _Lanes()

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

    # -- outbound ------------------------------------------------------------------------

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
