"""A local Microsoft Teams channel: Bot Framework JWTs, the Bot Connector service and AAD tokens.

Why: opsbot's Teams connector, its tests and the demo need the Teams side of a
conversation on any machine, offline, over the real wire formats. The simulator plays
three Microsoft services at once:

**The channel** posts activities to the bot's messaging endpoint (``set_bot_endpoint``):
``POST <endpoint>`` with ``Content-Type: application/json`` and ``Authorization: Bearer
<JWT>``, an RS256 token with header ``kid``, claims ``iss`` (default
``https://api.botframework.com``), ``aud`` (the app id), ``serviceurl`` (the activity's
``serviceUrl``), ``nbf``/``iat``/``exp``. The keys it signs with are published like the
real Bot Framework's:

* ``GET /openid/.well-known/openidconfiguration`` -> ``{"issuer", "jwks_uri", ...}``
* ``GET /openid/keys`` -> JWKS whose keys carry ``"endorsements": ["msteams", "emulator"]``

**The Bot Connector service** at ``serviceUrl = <url>/teams-sim/`` (the path prefix is
kept, as real clients keep it): ``POST /v3/conversations/{cid}/activities[/{replyToId}]``
-> 201 ``{"id"}``; ``PUT .../activities/{id}`` (update, e.g. replace a card) -> 200
``{"id"}``; ``DELETE .../activities/{id}`` -> 200; ``GET .../members``,
``.../members/{id}`` (29: id, AAD object id or UPN), ``.../pagedmembers``,
``.../activities/{id}/members``; ``GET|POST /v3/conversations``; ``GET /v3/teams/{id}``
and ``/v3/teams/{id}/conversations``. Path segments are percent-decoded one by one.
Errors look like the connector's: 404 ``{"error": {"code": "ConversationNotFound", ...}}``,
400 ``BadArgument`` for a body that is not a JSON activity, and, with
``require_outbound_auth`` (the default), 401 ``Unauthorized`` unless the request carries
``Authorization: Bearer <a token this simulator issued and that has not expired>``.

**Time limits, as Azure Bot Service keeps them.**

* *Delivery timeout.* The channel waits ``bot_timeout`` seconds (default 15) for the bot
  to answer the POST of an activity. A bot that is later (no answer, or an answer that
  arrives after the deadline) gets its request abandoned, and the delivery is recorded as
  ``504`` ``{"error": {"code": "GatewayTimeout"}}`` (``user_activities()`` entries carry
  ``status`` 504, ``timed_out`` True and ``bot_status``, what the bot said, if anything).
  The bot can still answer later through the Connector API with its token: that is how a
  long operation is answered. Source: "Manage a long-running operation",
  https://learn.microsoft.com/en-us/azure/bot-service/bot-builder-howto-long-operations-guidance
  ("If the bot doesn't complete the operation within 10 to 15 seconds, depending on the
  channel, the Azure AI Bot Service will time out and report back to the client a
  504:GatewayTimeout"), and "Send proactive messages",
  https://learn.microsoft.com/en-us/azure/bot-service/bot-builder-howto-proactive-message
  (a bot messages a conversation outside the turn through the conversation reference).
* *Throttling.* The Connector API refuses a bot that goes over the per bot per thread
  limits with ``429`` and a ``Retry-After`` header in delta-seconds (RFC 9110 section
  10.2.3), the seconds until the window has room again; a refused request changes
  nothing and does not count. ``thread_limits`` maps a scenario to ``(seconds, maximum
  operations)`` windows; by default the documented table of
  https://learn.microsoft.com/en-us/microsoftteams/platform/bots/how-to/rate-limit
  (MicrosoftDocs/msteams-docs ``msteams-platform/bots/how-to/rate-limit.md``, "Per bot per
  thread limit"): ``send`` (posting, replying to, updating or deleting activities, per
  conversation; a channel's threads are one conversation, "a channel in a team") 7 per 1 s,
  8 per 2 s, 60 per 30 s, 1800 per hour; ``create`` (``POST /v3/conversations``) the same;
  ``members`` (member and roster reads, per conversation) 14, 16, 120 and 3600. The
  same page says 429, 412, 502 and 504 must be retried with backoff.
  ``throttle_next(times, retry_after=...)`` makes the next Connector API requests 429 with
  that ``Retry-After`` whatever the counts (``fail_next(429)`` sends ``Retry-After: 1``).

**The AAD (Entra ID) token service** that the bot gets that token from, for an authority
``<url>/<tenant>`` where tenant is the simulator's tenant id (single-tenant bot) or
``botframework.com`` (multi-tenant bot):

* ``POST /<tenant>/oauth2/v2.0/token`` (form ``grant_type=client_credentials``,
  ``client_id``, ``client_secret``, ``scope=https://api.botframework.com/.default``) ->
  ``{"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
  "access_token"}``; AAD's error bodies otherwise (401 ``invalid_client`` AADSTS7000215
  for a wrong secret, 400 ``unauthorized_client`` AADSTS700016 for an unknown client id,
  400 ``invalid_scope``, ``unsupported_grant_type``, ``invalid_request``)
* ``GET /<tenant>/v2.0/.well-known/openid-configuration`` (what MSAL reads),
  ``GET /common/discovery/instance`` (MSAL's instance discovery, when pointed here with
  ``instance_discovery=<url>``), ``GET /<tenant>/discovery/v2.0/keys``

MSAL only accepts ``https://`` authorities (and an ``https`` ``token_endpoint`` in the
metadata), and for a host it does not know it first asks
``https://login.microsoftonline.com/common/discovery/instance`` unless
``instance_discovery=False``. So for MSAL run the simulator with ``tls=True``: it then
serves HTTPS with a fresh self-signed CA whose PEM is ``ca_file``, and MSAL works with
``ConfidentialClientApplication(app_id, authority=f"{url}/{tenant}",
client_credential=password, verify=sim.ca_file, instance_discovery=False)``. A plain
client-credentials POST works over either scheme.

Conversations: a personal chat per seeded user (alice, bob, carol; see ``USERS``) with id
``a:1<user>PersonalChat``, and the team channel ``CHANNEL_ID``
(``19:opsbot-demo@thread.tacv2``). As in Teams, every channel message lives in a thread
whose conversation id is ``19:opsbot-demo@thread.tacv2;messageid=<root activity id>``; the
bot replies to that id, or posts to the bare channel id to start a new thread.

Test control, from Python (thread-safe): ``send_text``, ``submit`` (an Action.Submit /
messageBack / imBack click), ``execute`` (Action.Execute), ``resend``; reading
``bot_activities``, ``wait_for_bot_activity``, ``bot_events``, ``card_actions``,
``text_of``, ``issued_tokens``; ``token(...)`` makes good and bad inbound JWTs.

The same over HTTP, for other processes (JSON in, JSON out):

* ``POST /_sim/bot-endpoint`` ``{"url"}``: where the bot listens
* ``POST /_sim/users/<name>/send`` ``{"text", "conversation"?: "personal"|"channel",
  "mention"?: true, "thread"?: root id}`` -> ``{"status", "body", "activity"}``
* ``POST /_sim/users/<name>/submit`` ``{"activity_id", "title"?, "data"?, "inputs"?}``
* ``POST /_sim/users/<name>/execute`` ``{"activity_id", "title"?, "verb"?, "inputs"?}``
* ``GET /_sim/activities?conversation=...`` -> ``{"activities": [...]}`` (current state)

    with TeamsSimulator() as teams:
        teams.set_bot_endpoint("http://127.0.0.1:5005/webhooks/teams/api/messages")
        status, _ = teams.send_text("alice", "deploy payments to prod")
        card = teams.wait_for_bot_activity(contains="Deploy")
        teams.submit("alice", card["id"], title="Yes")

    python -m simulators.teams --port 3979     # prints the URL, app id and control API
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hmac
import ipaddress
import json
import logging
import math
import secrets
import shutil
import ssl
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from base64 import b64decode
from binascii import Error as BinasciiError
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import RSAAlgorithm

from simulators._base import Faults, RequestLog, SimulatorBase, add_address_arguments, run_main
from simulators._http import BackgroundServer, Handler, Request, Response, _Server

__all__ = [
    "ADAPTIVE_CARD",
    "BOTFRAMEWORK_ISSUER",
    "BOTFRAMEWORK_SCOPE",
    "BOTFRAMEWORK_TENANT",
    "CHANNEL_ID",
    "DEFAULT_APP_ID",
    "DEFAULT_APP_PASSWORD",
    "DEFAULT_TENANT_ID",
    "DELIVERY_TIMEOUT",
    "HERO_CARD",
    "KEY_ID",
    "SERVICE_PATH",
    "TEAM_ID",
    "THREAD_LIMITS",
    "USERS",
    "RecordedRequest",
    "TeamsSimulator",
    "TeamsUser",
    "card_actions",
    "main",
    "text_of",
]

DEFAULT_APP_ID = "11111111-2222-3333-4444-555555555555"
DEFAULT_APP_PASSWORD = "opsbot-demo-secret"
DEFAULT_TENANT_ID = "5c0ffee5-0000-4000-8000-00000000d3e0"
BOTFRAMEWORK_ISSUER = "https://api.botframework.com"
"""The ``iss`` of the tokens the real Bot Framework channel signs."""
BOTFRAMEWORK_SCOPE = "https://api.botframework.com/.default"
"""The scope a bot asks AAD for to call the Bot Connector service."""
BOTFRAMEWORK_TENANT = "botframework.com"
"""The authority tenant of multi-tenant bots (``login.microsoftonline.com/botframework.com``)."""
_BOTFRAMEWORK_TENANT_GUID = "d6d49420-f39b-4df7-a1dc-d59a935871db"  # its tid in real tokens
KEY_ID = "sim-key-1"
SERVICE_PATH = "/teams-sim/"
"""The path of ``serviceUrl`` under the simulator's URL."""
TEAM_ID = "19:opsbot-team-general@thread.tacv2"
"""The team's id (in Teams, that of its General channel)."""
TEAM_NAME = "OpsBot Demo"
CHANNEL_ID = "19:opsbot-demo@thread.tacv2"
"""The channel the bot is installed in; threads are ``CHANNEL_ID + ";messageid=<root>"``."""
CHANNEL_NAME = "ops"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
HERO_CARD = "application/vnd.microsoft.card.hero"
_TOKEN_LIFETIME = 3599
DELIVERY_TIMEOUT = 15.0
"""Seconds Azure Bot Service waits for the bot to answer an activity's POST."""
THREAD_LIMITS: dict[str, tuple[tuple[float, int], ...]] = {
    "send": ((1, 7), (2, 8), (30, 60), (3600, 1800)),
    "create": ((1, 7), (2, 8), (30, 60), (3600, 1800)),
    "members": ((1, 14), (2, 16), (30, 120), (3600, 3600)),
}
"""The documented per bot per thread limits: scenario -> ((seconds, maximum operations), ...)."""
_FORM = "application/x-www-form-urlencoded"
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeamsUser:
    """A Teams user as the channel and the connector describe them."""

    key: str  # how tests name the user: "alice"
    id: str  # the pairwise 29: id in from.id
    name: str
    aad_object_id: str
    given_name: str
    surname: str

    @property
    def email(self) -> str:
        return f"{self.key}@contoso.com"

    @property
    def personal_conversation(self) -> str:
        return f"a:1{self.key}PersonalChat"

    def account(self) -> dict[str, Any]:
        """The ``from`` of an activity this user sends."""
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id}

    def member(self, tenant_id: str) -> dict[str, Any]:
        """The TeamsChannelAccount that ``GET .../members/{id}`` answers."""
        return {"id": self.id, "name": self.name, "aadObjectId": self.aad_object_id,
                "email": self.email, "userPrincipalName": self.email, "tenantId": tenant_id,
                "userRole": "user", "givenName": self.given_name, "surname": self.surname}


def _user(key: str, name: str, surname: str, suffix: str) -> TeamsUser:
    return TeamsUser(key, f"29:1{key}PairwiseId", name,
                     f"00000000-0000-0000-0000-0000000000{suffix}", name, surname)


USERS: dict[str, TeamsUser] = {
    user.key: user for user in (_user("alice", "Alice", "Adams", "a1"),
                                _user("bob", "Bob", "Brown", "b2"),
                                _user("carol", "Carol", "Clark", "c3"))
}
"""The seeded users by key; all are in the team channel, each has a personal chat."""


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str
    target: str  # path and query as sent
    status: int
    authorization: str | None  # the Authorization header, if sent


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _connector_error(status: int, code: str, message: str) -> _Refused:
    return _Refused(Response.json({"error": {"code": code, "message": message}}, status))


def _aad_error(status: int, error: str, code: int, message: str) -> _Refused:
    now = dt.datetime.now(dt.UTC)
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%SZ")
    return _Refused(Response.json({
        "error": error,
        "error_description": f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\n"
                             f"Correlation ID: {correlation}\r\nTimestamp: {stamp}",
        "error_codes": [code], "timestamp": stamp, "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }, status))


# ---------------------------------------------------------------------------------------
# Cards


def _card_contents(activity: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for attachment in activity.get("attachments") or ():
        if isinstance(attachment, dict) and isinstance(attachment.get("content"), dict):
            yield str(attachment.get("contentType") or ""), attachment["content"]


def _elements(container: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every element of an Adaptive Card body, depth first (not inside ShowCard cards)."""
    for key in ("body", "items"):
        for element in container.get(key) or ():
            if isinstance(element, dict):
                yield element
                yield from _elements(element)
    for column in container.get("columns") or ():
        if isinstance(column, dict):
            yield from _elements(column)


def _adaptive_actions(card: Mapping[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """(action, the card whose inputs it submits) for every action of an Adaptive Card."""
    found: list[Any] = []  # in the order they are shown: body first, then the card's
    for element in _elements(card):
        if element.get("type") == "ActionSet":
            found.extend(element.get("actions") or ())
        select = element.get("selectAction")
        if isinstance(select, dict):
            found.append(select)
    found.extend(card.get("actions") or ())
    for action in found:
        if not isinstance(action, dict):
            continue
        yield action, dict(card)
        if action.get("type") == "Action.ShowCard" and isinstance(action.get("card"), dict):
            yield from _adaptive_actions(action["card"])


def _all_actions(activity: Mapping[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(contentType, action or button, card) for every clickable thing in the activity."""
    result: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    for content_type, content in _card_contents(activity):
        if content_type == ADAPTIVE_CARD:
            result.extend((content_type, action, card) for action, card in
                          _adaptive_actions(content))
        else:
            result.extend((content_type, button, content)
                          for button in content.get("buttons") or () if isinstance(button, dict))
    return result


def card_actions(activity: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The actions of the activity's Adaptive Cards (also in ActionSets and ShowCards) and
    the buttons of its hero/thumbnail cards, in order."""
    return [copy.deepcopy(action) for _, action, _ in _all_actions(activity)]


def _texts(container: Mapping[str, Any]) -> Iterator[str]:
    for element in _elements(container):
        kind = element.get("type")
        if kind == "TextBlock" and element.get("text"):
            yield str(element["text"])
        elif kind == "RichTextBlock":
            inlines = [inline if isinstance(inline, str) else str(inline.get("text") or "")
                       for inline in element.get("inlines") or ()]
            if any(inlines):
                yield "".join(inlines)
        elif kind == "FactSet":
            for fact in element.get("facts") or ():
                yield f"{fact.get('title', '')}: {fact.get('value', '')}"


def text_of(activity: Mapping[str, Any]) -> str:
    """The activity's text and the text of its cards (TextBlocks, RichTextBlocks, FactSets;
    hero card title, subtitle and text), one per line."""
    parts = [str(activity["text"])] if activity.get("text") else []
    for content_type, content in _card_contents(activity):
        if content_type == ADAPTIVE_CARD:
            parts.extend(_texts(content))
        else:
            parts.extend(str(content[key]) for key in ("title", "subtitle", "text")
                         if content.get(key))
    return "\n".join(parts)


def _input_values(card: Mapping[str, Any]) -> dict[str, Any]:
    """The values a client submits for a card's inputs that nobody touched."""
    values: dict[str, Any] = {}
    for element in _elements(card):
        kind = str(element.get("type") or "")
        if not kind.startswith("Input.") or not element.get("id"):
            continue
        if element.get("value") is not None:
            values[element["id"]] = element["value"]
        elif kind == "Input.Toggle":
            values[element["id"]] = element.get("valueOff", "false")
    return values


# ---------------------------------------------------------------------------------------
# Keys and TLS


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class _Tls:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost signed by it."""

    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        ca_key, server_key = _new_key(), _new_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsbot Teams simulator CA")])
        ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
        ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
              .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5))
              .not_valid_after(now + dt.timedelta(days=7))
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                           False), critical=True)
              .add_extension(ca_ski, critical=False)
              .sign(ca_key, hashes.SHA256()))
        server = (x509.CertificateBuilder()
                  .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
                  .issuer_name(ca_name).public_key(server_key.public_key())
                  .serial_number(x509.random_serial_number())
                  .not_valid_before(now - dt.timedelta(minutes=5))
                  .not_valid_after(now + dt.timedelta(days=7))
                  .add_extension(x509.SubjectAlternativeName([
                      x509.DNSName("localhost"),
                      x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
                  .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                  .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                                 critical=False)
                  .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                      ca_ski), critical=False)
                  .sign(ca_key, hashes.SHA256()))
        self.directory = Path(tempfile.mkdtemp(prefix="teams-sim-tls-"))
        self.ca_file = self.directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        chain = self.directory / "server.pem"
        key_pem = server_key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
        chain.write_bytes(server.public_bytes(serialization.Encoding.PEM) + key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class _TlsServer(_Server):
    """The shared HTTP server, with TLS on every accepted connection.

    The handshake happens at the first read, in the connection's own thread, so a
    slow or broken client cannot stall the accept loop.
    """

    def __init__(self, address: tuple[str, int], handler: Handler, server_name: str,
                 context: ssl.SSLContext) -> None:
        self.tls_context = context
        super().__init__(address, handler, server_name)

    def get_request(self) -> tuple[Any, Any]:
        sock, address = super().get_request()
        return self.tls_context.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False), address

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that does not trust the CA is its problem (it says so), not a traceback."""
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            logger.debug("TLS failed with %s: %r", client_address, sys.exc_info()[1])
        else:
            super().handle_error(request, client_address)


class _TlsBackgroundServer(BackgroundServer):
    """BackgroundServer serving HTTPS."""

    def __init__(self, handler: Handler, *, host: str, port: int, name: str, server_name: str,
                 context: ssl.SSLContext) -> None:
        super().__init__(handler, host=host, port=port, name=name, server_name=server_name)
        self._context = context

    @property
    def url(self) -> str:
        return "https://" + super().url.removeprefix("http://")

    def start(self) -> None:
        if self._server is not None:
            return
        server = _TlsServer((self._host, self._requested_port), self._handler,
                            self._server_name, self._context)
        thread = threading.Thread(target=server.serve_until_stopped,
                                  name=f"{self._name}:{server.server_address[1]}", daemon=True)
        self._server, self._thread = server, thread
        thread.start()


# ---------------------------------------------------------------------------------------
# State


@dataclass
class _Sent:
    """An activity the bot sent, in its current state."""

    id: str
    conversation: str
    activity: dict[str, Any]
    deleted: bool = False


@dataclass
class _Conversation:
    id: str
    kind: str  # personal | channel | groupChat
    members: list[str]  # user keys


class _State:
    """Everything the simulator remembers; guarded by ``lock`` (``changed`` wakes waiters)."""

    def __init__(self, tenant_id: str) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()
        self.users: dict[str, TeamsUser] = dict(USERS)
        self.conversations: dict[str, _Conversation] = {}
        for user in self.users.values():
            self.add_personal(user)
        self.conversations[CHANNEL_ID] = _Conversation(CHANNEL_ID, "channel", list(self.users))
        self.sent: dict[str, _Sent] = {}  # by activity id, in sending order
        self.events: list[dict[str, Any]] = []
        self.inbound: list[dict[str, Any]] = []
        self.tokens: dict[str, float] = {}  # outbound access token -> expiry (epoch seconds)
        self.tenant_id = tenant_id
        self.thread_limits: dict[str, tuple[tuple[float, int], ...]] = dict(THREAD_LIMITS)
        self.recent: dict[tuple[str, str], deque[float]] = {}  # (scenario, thread) -> times
        self.throttles: list[list[Any]] = []  # [remaining, retry_after, path]
        self._last_id = 0

    def admit(self, scenario: str, thread: str, path: str) -> int | None:
        """None if the Connector API takes one more ``scenario`` operation on ``thread``
        now (and counts it), else the seconds the bot must wait (its Retry-After)."""
        with self.lock:
            for throttle in self.throttles:
                remaining, retry_after, wanted = throttle
                if wanted is None or wanted in path:
                    throttle[0] = remaining - 1
                    if throttle[0] <= 0:
                        self.throttles.remove(throttle)
                    return int(retry_after)
            limits = self.thread_limits.get(scenario)
            if not limits:
                return None
            now = time.monotonic()
            times = self.recent.setdefault((scenario, thread), deque())
            longest = max(period for period, _ in limits)
            while times and now - times[0] >= longest:
                times.popleft()
            wait = 0.0
            for period, allowed in limits:
                inside = [t for t in times if now - t < period]
                if len(inside) >= allowed:
                    # room again once the oldest operation that fills the window leaves it
                    wait = max(wait, inside[-allowed] + period - now)
            if wait > 0:
                return max(1, math.ceil(wait))
            times.append(now)
            return None

    def add_personal(self, user: TeamsUser) -> None:
        cid = user.personal_conversation
        self.conversations[cid] = _Conversation(cid, "personal", [user.key])

    def next_id(self) -> str:
        """A Teams-like activity id (epoch milliseconds), unique and increasing."""
        with self.lock:
            self._last_id = max(self._last_id + 1, int(time.time() * 1000))
            return str(self._last_id)

    def conversation(self, cid: str) -> _Conversation | None:
        """The conversation for an id; a channel thread id resolves to its channel."""
        found = self.conversations.get(cid)
        if found is None and ";messageid=" in cid:
            base = self.conversations.get(cid.split(";", 1)[0])
            if base is not None and base.kind == "channel":
                return base
        return found

    def user(self, ident: str) -> TeamsUser | None:
        """A user by key, 29: id, AAD object id or UPN."""
        lowered = ident.lower()
        return next((u for u in self.users.values()
                     if lowered in (u.key, u.id.lower(), u.aad_object_id, u.email)), None)


def _matches(conversation: str | None, cid: str, state: _State) -> bool:
    if conversation is None:
        return True
    if conversation == "channel":
        return cid.split(";", 1)[0] == CHANNEL_ID
    if conversation == "personal":
        found = state.conversations.get(cid)
        return found is not None and found.kind == "personal"
    if conversation in state.users:
        return cid == state.users[conversation].personal_conversation
    if ";" not in conversation and ";messageid=" in cid:
        return cid.split(";", 1)[0] == conversation
    return cid == conversation


# ---------------------------------------------------------------------------------------
# The HTTP face


class _App:
    def __init__(self, sim: TeamsSimulator) -> None:
        self.sim = sim
        self.state = sim._state

    def __call__(self, request: Request) -> Response:
        control = request.segments[:1] == ("_sim",)
        failure = None if control else self.state.faults.hold(request.raw_path)
        if failure is not None:
            response = self._fault_response(request, failure)
        else:
            try:
                response = self._route(request)
            except _Refused as refused:
                response = refused.response
        self.state.log.append(RecordedRequest(request.method, request.target, response.status,
                                              request.header("Authorization")))
        return response

    def _fault_response(self, request: Request, status: int) -> Response:
        message = "injected by TeamsSimulator.fail_next()"
        if request.segments[:1] != (SERVICE_PATH.strip("/"),):
            return _aad_error(status, "temporarily_unavailable", 50196, message).response
        code = {429: "TooManyRequests", 401: "Unauthorized", 403: "Forbidden",
                404: "NotFound"}.get(status)
        if code is None:
            try:
                code = HTTPStatus(status).phrase.replace(" ", "")
            except ValueError:
                code = "ServiceError"
        response = _connector_error(status, code, message).response
        return response.with_header("Retry-After", "1") if status == 429 else response

    def _route(self, request: Request) -> Response:
        segments = request.segments
        method = request.method
        match segments:
            case ("openid", ".well-known", "openidconfiguration") if method == "GET":
                return Response.json(self.sim._channel_metadata())
            case ("openid", "keys") if method == "GET":
                return Response.json(self.sim._jwks(endorse=True))
            case ("_sim", *rest):
                return self._control(request, tuple(rest))
            case (prefix, "v3", *rest) if prefix == SERVICE_PATH.strip("/"):
                self._check_outbound_auth(request)
                self._check_rate(request, tuple(rest))
                return self._connector(request, tuple(rest))
            case (tenant, "v2.0", ".well-known", "openid-configuration") if method == "GET":
                return Response.json(self.sim._tenant_metadata(self._tenant(tenant)))
            case (tenant, "oauth2", "v2.0", "token"):
                if method != "POST":
                    raise _aad_error(405, "invalid_request", 900561,
                                     "The endpoint only accepts POST requests.")
                return self._token(request, self._tenant(tenant))
            case (_, "discovery", "instance") if method == "GET":
                return self._instance_discovery(request)
            case (tenant, "discovery", "v2.0", "keys") if method == "GET":
                self._tenant(tenant)
                return Response.json(self.sim._jwks(endorse=False))
        raise _connector_error(404, "NotFound",
                               f"The Teams simulator has no {method} {request.raw_path}")

    # -- AAD -------------------------------------------------------------------------

    def _tenant(self, tenant: str) -> str:
        """The tenant GUID behind an authority's tenant segment."""
        if tenant.lower() == self.sim.tenant_id.lower():
            return self.sim.tenant_id
        if tenant.lower() in (BOTFRAMEWORK_TENANT, _BOTFRAMEWORK_TENANT_GUID):
            return _BOTFRAMEWORK_TENANT_GUID
        raise _aad_error(400, "invalid_request", 90002,
                         f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                         f"tenant ID (the simulator knows {self.sim.tenant_id} and "
                         f"{BOTFRAMEWORK_TENANT}).")

    def _instance_discovery(self, request: Request) -> Response:
        endpoint = request.param("authorization_endpoint") or ""
        parts = [part for part in urlsplit(endpoint).path.split("/") if part]
        tenant = parts[0] if parts else self.sim.tenant_id
        self._tenant(tenant)
        host = urlsplit(self.sim.url).netloc
        return Response.json({
            "tenant_discovery_endpoint":
                f"{self.sim.url}/{tenant}/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host,
                          "aliases": [host]}],
        })

    def _token(self, request: Request, tid: str) -> Response:
        if _FORM not in (request.header("Content-Type") or "").lower():
            raise _aad_error(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: "
                             "'grant_type'.")
        form = {name: values[0] for name, values in
                parse_qs(request.body.decode(errors="replace"), keep_blank_values=True).items()}
        client_id, secret = form.get("client_id"), form.get("client_secret")
        basic = request.header("Authorization") or ""
        if basic.lower().startswith("basic "):  # client_secret_basic
            try:
                user, _, password = b64decode(basic[6:]).decode().partition(":")
            except (BinasciiError, UnicodeDecodeError):
                user = password = ""
            client_id, secret = client_id or unquote(user), unquote(password)
        grant = form.get("grant_type")
        if not grant:
            raise _aad_error(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: "
                             "'grant_type'.")
        if grant != "client_credentials":
            raise _aad_error(400, "unsupported_grant_type", 70003,
                             f"The app requested an unsupported grant type '{grant}'; the "
                             "simulator only does client_credentials.")
        if not client_id:
            raise _aad_error(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: "
                             "'client_id'.")
        if client_id.lower() != self.sim.app_id.lower():
            raise _aad_error(400, "unauthorized_client", 700016,
                             f"Application with identifier '{client_id}' was not found in the "
                             f"directory '{tid}'. This can happen if the application has not "
                             "been installed by the administrator of the tenant.")
        if not secret:
            raise _aad_error(401, "invalid_client", 7000218,
                             "The request body must contain the following parameter: "
                             "'client_assertion' or 'client_secret'.")
        if not hmac.compare_digest(secret.encode(), self.sim.app_password.encode()):
            raise _aad_error(401, "invalid_client", 7000215,
                             "Invalid client secret provided. Ensure the secret being sent in "
                             "the request is the client secret value, not the client secret ID, "
                             f"for a secret added to app '{client_id}'.")
        scope = form.get("scope")
        if not scope:
            raise _aad_error(400, "invalid_request", 900144,
                             "The request body must contain the following parameter: 'scope'.")
        if scope.split() != [BOTFRAMEWORK_SCOPE]:
            raise _aad_error(400, "invalid_scope", 70011,
                             f"The provided value for the input parameter 'scope' is not valid. "
                             f"The scope {scope} is not valid; the Bot Connector service needs "
                             f"{BOTFRAMEWORK_SCOPE}.")
        token = self.sim._issue_access_token(tid)
        return Response.json({"token_type": "Bearer", "expires_in": _TOKEN_LIFETIME,
                              "ext_expires_in": _TOKEN_LIFETIME, "access_token": token})

    # -- connector ---------------------------------------------------------------------

    def _check_outbound_auth(self, request: Request) -> None:
        if not self.sim.require_outbound_auth:
            return
        header = request.header("Authorization") or ""
        scheme, _, token = header.partition(" ")
        with self.state.lock:
            expiry = self.state.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if expiry is None or expiry <= time.time():
            reason = ("no bearer token" if expiry is None and not token else
                      "the token has expired" if expiry is not None else
                      "the token was not issued by this simulator's token endpoint")
            raise _connector_error(401, "Unauthorized",
                                   f"Authorization has been denied for this request ({reason}).")

    def _check_rate(self, request: Request, rest: tuple[str, ...]) -> None:
        """429 with Retry-After when the bot goes over the per bot per thread limits."""
        method = request.method
        scenario, thread = "", ""
        match rest:
            case ("conversations",) if method == "POST":
                scenario = "create"
            case ("conversations", cid, "activities", *_) if method in ("POST", "PUT",
                                                                        "DELETE"):
                scenario, thread = "send", cid.split(";", 1)[0]
            case ("conversations", cid, *_) if method == "GET":
                scenario, thread = "members", cid.split(";", 1)[0]
        wait = self.state.admit(scenario, thread, request.raw_path)
        if wait is not None:
            logger.info("Teams simulator: throttled %s %s (Retry-After: %d)", method,
                        request.raw_path, wait)
            raise _Refused(_connector_error(
                429, "TooManyRequests",
                f"The bot sent too many requests to this conversation; retry after {wait} "
                "seconds (per bot per thread limit).").response
                .with_header("Retry-After", str(wait)))

    @staticmethod
    def _json(request: Request) -> Any:
        try:
            return json.loads(request.body or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _connector_error(400, "BadArgument",
                                   f"The request body is not valid JSON: {exc}") from None

    def _activity_body(self, request: Request) -> dict[str, Any]:
        body = self._json(request)
        if not isinstance(body, dict):
            raise _connector_error(400, "BadArgument", "The request body must be an Activity "
                                   "object.")
        if not isinstance(body.get("type"), str) or not body["type"]:
            raise _connector_error(400, "BadArgument", "Activity type is required.")
        return body

    def _known(self, cid: str) -> _Conversation:
        found = self.state.conversation(cid)
        if found is None:
            raise _connector_error(404, "ConversationNotFound",
                                   f"Conversation not found: {cid!r}. The simulator knows the "
                                   "personal chats of its users and the channel "
                                   f"{CHANNEL_ID} (threads: ';messageid=<root id>').")
        return found

    def _connector(self, request: Request, rest: tuple[str, ...]) -> Response:
        method = request.method
        match rest:
            case ("conversations",):
                if method == "POST":
                    return self._create_conversation(request)
                if method == "GET":
                    with self.state.lock:
                        listed = [{"id": c.id, "members": [self.state.users[k].account()
                                                           for k in c.members]}
                                  for c in self.state.conversations.values()]
                    return Response.json({"conversations": listed})
            case ("conversations", cid, "activities") if method == "POST":
                self._known(cid)
                return self._store(cid, self._activity_body(request), None, "send")
            case ("conversations", cid, "activities", aid):
                self._known(cid)
                if method == "POST":
                    return self._store(cid, self._activity_body(request), aid, "reply")
                if method == "PUT":
                    return self._update(cid, aid, self._activity_body(request))
                if method == "DELETE":
                    return self._delete(cid, aid)
            case ("conversations", cid, "activities", _aid, "members") if method == "GET":
                return Response.json(self._members(self._known(cid)))
            case ("conversations", cid, "members") if method == "GET":
                return Response.json(self._members(self._known(cid)))
            case ("conversations", cid, "members", uid) if method == "GET":
                conversation = self._known(cid)
                user = self.state.user(uid)
                if user is None or user.key not in conversation.members:
                    raise _connector_error(404, "MemberNotFoundInConversation",
                                           f"The user {uid!r} is not a member of {cid!r}.")
                return Response.json(user.member(self.sim.tenant_id))
            case ("conversations", cid, paged) if paged.lower() == "pagedmembers" \
                    and method == "GET":
                return self._paged_members(request, self._known(cid))
            case ("teams", team) if method == "GET":
                self._team(team)
                return Response.json({"id": TEAM_ID, "name": TEAM_NAME,
                                      "aadGroupId": "00000000-0000-0000-0000-00000000fea1",
                                      "channelCount": 2, "memberCount": len(self.state.users),
                                      "type": "standard"})
            case ("teams", team, "conversations") if method == "GET":
                self._team(team)
                return Response.json({"conversations": [{"id": TEAM_ID, "name": None},
                                                        {"id": CHANNEL_ID,
                                                         "name": CHANNEL_NAME}]})
            case _:
                raise _connector_error(404, "NotFound", "The Teams simulator's connector has "
                                       f"no {method} /v3/{'/'.join(rest)}")
        raise _connector_error(405, "MethodNotAllowed",
                               f"{method} is not allowed on /v3/{'/'.join(rest)}")

    @staticmethod
    def _team(team: str) -> None:
        if team not in (TEAM_ID, CHANNEL_ID):
            raise _connector_error(404, "TeamNotFound", f"Team not found: {team!r}")

    def _members(self, conversation: _Conversation) -> list[dict[str, Any]]:
        with self.state.lock:
            return [self.state.users[key].member(self.sim.tenant_id)
                    for key in conversation.members]

    def _paged_members(self, request: Request, conversation: _Conversation) -> Response:
        members = self._members(conversation)
        try:
            size = int(request.param("pageSize") or 200)
            start = int(request.param("continuationToken") or 0)
        except ValueError:
            raise _connector_error(400, "BadArgument", "pageSize and continuationToken must "
                                   "be what the previous page returned") from None
        size = max(1, min(size, 500))
        page = members[start:start + size]
        more = start + size < len(members)
        # The last page has no continuationToken at all: the Agents SDK's
        # PagedMembersResult refuses a null one.
        return Response.json({"members": page, **({"continuationToken": str(start + size)}
                                                  if more else {})})

    def _store(self, cid: str, body: dict[str, Any], reply_to: str | None,
               kind: str) -> Response:
        aid = self.state.next_id()
        if cid == CHANNEL_ID and reply_to is None:
            cid = f"{CHANNEL_ID};messageid={aid}"  # a new post starts its own thread
        activity = copy.deepcopy(body)
        activity["id"] = aid
        conversation = activity.get("conversation")
        activity["conversation"] = {**(conversation if isinstance(conversation, dict) else {}),
                                    "id": cid}
        if reply_to is not None:
            activity.setdefault("replyToId", reply_to)
        activity.setdefault("timestamp", _now_iso())
        with self.state.changed:
            self.state.sent[aid] = _Sent(aid, cid, activity)
            self.state.events.append({"kind": kind, "id": aid, "conversation": cid,
                                      "activity": copy.deepcopy(activity)})
            self.state.changed.notify_all()
        return Response.json({"id": aid}, 201)

    def _update(self, cid: str, aid: str, body: dict[str, Any]) -> Response:
        with self.state.changed:
            sent = self.state.sent.get(aid)
            if sent is None or sent.deleted or sent.conversation.split(";")[0] != cid.split(";")[0]:
                raise _connector_error(404, "ActivityNotFound",
                                       f"Activity {aid!r} not found in conversation {cid!r} "
                                       "(the bot can only update activities it sent).")
            activity = copy.deepcopy(body)
            activity["id"] = aid
            activity["conversation"] = {**(activity.get("conversation") or {}),
                                        "id": sent.conversation}
            for key in ("replyToId", "timestamp"):
                if key in sent.activity:
                    activity.setdefault(key, sent.activity[key])
            sent.activity = activity
            self.state.events.append({"kind": "update", "id": aid, "conversation": cid,
                                      "activity": copy.deepcopy(activity)})
            self.state.changed.notify_all()
        return Response.json({"id": aid})

    def _delete(self, cid: str, aid: str) -> Response:
        with self.state.changed:
            sent = self.state.sent.get(aid)
            if sent is None or sent.deleted:
                raise _connector_error(404, "ActivityNotFound",
                                       f"Activity {aid!r} not found in conversation {cid!r}.")
            sent.deleted = True
            self.state.events.append({"kind": "delete", "id": aid, "conversation": cid,
                                      "activity": None})
            self.state.changed.notify_all()
        return Response(200)

    def _create_conversation(self, request: Request) -> Response:
        body = self._json(request)
        if not isinstance(body, dict):
            raise _connector_error(400, "BadArgument", "ConversationParameters expected.")
        channel = ((body.get("channelData") or {}).get("channel") or {}).get("id")
        activity = body.get("activity")
        if channel:
            if channel != CHANNEL_ID:
                raise _connector_error(404, "ConversationNotFound",
                                       f"Channel not found: {channel!r}")
            if not isinstance(activity, dict):
                raise _connector_error(400, "BadArgument", "A new channel thread needs an "
                                       "activity to start it.")
            root = json.loads(self._store(CHANNEL_ID, activity, None, "send").body)["id"]
            return Response.json({"id": f"{CHANNEL_ID};messageid={root}", "activityId": root,
                                  "serviceUrl": self.sim.service_url}, 201)
        members = body.get("members") or []
        users = [self.state.user(str(m.get("id") or "")) for m in members if isinstance(m, dict)]
        if len(users) != 1 or users[0] is None or body.get("isGroup"):
            raise _connector_error(400, "BadArgument", "The simulator creates 1:1 chats with "
                                   "one known member (by 29: id or AAD object id), or channel "
                                   "threads (channelData.channel.id).")
        cid = users[0].personal_conversation
        with self.state.lock:
            if cid not in self.state.conversations:
                self.state.add_personal(users[0])
        answer: dict[str, Any] = {"id": cid, "serviceUrl": self.sim.service_url}
        if isinstance(activity, dict):
            answer["activityId"] = json.loads(self._store(cid, activity, None, "send").body)["id"]
        return Response.json(answer, 201)

    # -- control ---------------------------------------------------------------------

    def _control(self, request: Request, rest: tuple[str, ...]) -> Response:
        def body() -> dict[str, Any]:
            data = self._json(request)
            if not isinstance(data, dict):
                raise _connector_error(400, "BadArgument", "a JSON object is expected")
            return data

        try:
            match rest:
                case ("bot-endpoint",) if request.method == "POST":
                    self.sim.set_bot_endpoint(str(body().get("url") or ""))
                    return Response.json({"url": self.sim.bot_endpoint})
                case ("activities",) if request.method == "GET":
                    conversation = request.param("conversation") or None
                    return Response.json({"activities": self.sim.bot_activities(conversation)})
                case ("users", user, "send") if request.method == "POST":
                    data = body()
                    status, answer = self.sim.send_text(
                        user, str(data.get("text") or ""),
                        conversation=data.get("conversation") or "personal",
                        mention=bool(data.get("mention", True)), thread=data.get("thread"))
                case ("users", user, "submit") if request.method == "POST":
                    data = body()
                    status, answer = self.sim.submit(
                        user, str(data.get("activity_id") or ""), title=data.get("title"),
                        data=data.get("data"), inputs=data.get("inputs"))
                case ("users", user, "execute") if request.method == "POST":
                    data = body()
                    status, answer = self.sim.execute(
                        user, str(data.get("activity_id") or ""), title=data.get("title"),
                        verb=data.get("verb"), inputs=data.get("inputs"))
                case _:
                    raise _connector_error(404, "NotFound",
                                           f"no {request.method} /_sim/{'/'.join(rest)}")
        except LookupError as exc:
            raise _connector_error(404, "NotFound", str(exc)) from None
        except (ValueError, RuntimeError) as exc:
            raise _connector_error(400, "BadArgument", str(exc)) from None
        except OSError as exc:
            raise _connector_error(502, "BotUnreachable", str(exc)) from None
        return Response.json({"status": status, "body": answer,
                              "activity": self.sim._posted.activity})


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ---------------------------------------------------------------------------------------
# The public face

TokenArg = str | None  # "auto" (sign one), None (no Authorization header) or a raw token


class TeamsSimulator(SimulatorBase[RecordedRequest]):
    """The Teams channel, the Bot Connector service and AAD's token endpoint, in a thread.

    ``require_outbound_auth`` makes the connector demand a token from the token endpoint.
    ``bot_timeout``: seconds the channel waits for the bot to answer an activity (Azure Bot
    Service's 15 by default; later is a 504). ``thread_limits``: the Connector API's rate
    limits (``THREAD_LIMITS`` by default; ``{}`` for none; see ``set_thread_limits``).
    ``tls`` serves HTTPS (with ``ca_file``), which MSAL needs. ``port=0`` picks a free
    port; read ``url`` after ``start()``. An empty ``app_id`` is anonymous mode: inbound
    activities then carry no Authorization header unless a token is passed explicitly.
    """

    def __init__(
        self,
        *,
        app_id: str = DEFAULT_APP_ID,
        app_password: str = DEFAULT_APP_PASSWORD,
        tenant_id: str = DEFAULT_TENANT_ID,
        bot_name: str = "opsbot",
        issuer: str = BOTFRAMEWORK_ISSUER,
        require_outbound_auth: bool = True,
        bot_endpoint: str | None = None,
        bot_timeout: float = DELIVERY_TIMEOUT,
        thread_limits: Mapping[str, Sequence[tuple[float, int]]] | None = None,
        tls: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if app_id and not app_password:
            raise ValueError("app_password must not be empty when app_id is set")
        if bot_timeout <= 0:
            raise ValueError(f"bot_timeout must be positive, got {bot_timeout}")
        self.app_id = app_id
        self.app_password = app_password
        self.tenant_id = tenant_id
        self.bot_name = bot_name
        self.issuer = issuer
        self.require_outbound_auth = require_outbound_auth
        self.bot_timeout = bot_timeout
        self.bot_endpoint: str | None = None
        if bot_endpoint:
            self.set_bot_endpoint(bot_endpoint)
        self._posted = threading.local()  # .activity: the last one this thread posted
        self._key = _new_key()
        self._forged_key: rsa.RSAPrivateKey | None = None
        self._state = _State(tenant_id)
        if thread_limits is not None:
            self.set_thread_limits(thread_limits)
        self._tls = _Tls() if tls else None
        app = _App(self)
        super().__init__(app, faults=self._state.faults, requests=self._state.log,
                         host=host, port=port, name="teams-simulator",
                         server_name="Microsoft-HTTPAPI/2.0")
        if self._tls is not None:  # same handler, served over HTTPS
            self._server = _TlsBackgroundServer(app, host=host, port=port,
                                                name="teams-simulator",
                                                server_name="Microsoft-HTTPAPI/2.0",
                                                context=self._tls.context)

    def __repr__(self) -> str:
        return f"TeamsSimulator({self._location()}, app {self.app_id or 'anonymous'})"

    # -- lifecycle (port, start, stop, with: SimulatorBase) ------------------------

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT`` without a trailing slash."""
        return self._server.url.rstrip("/")

    @property
    def service_url(self) -> str:
        """The ``serviceUrl`` of every activity: ``<url>/teams-sim/``."""
        return self.url + SERVICE_PATH

    @property
    def openid_metadata_url(self) -> str:
        return f"{self.url}/openid/.well-known/openidconfiguration"

    @property
    def bot_id(self) -> str:
        """The bot's account id in activities (``28:<app id>``)."""
        return f"28:{self.app_id or 'opsbot'}"

    @property
    def ca_file(self) -> str | None:
        """With ``tls``, the PEM of the CA that signed the server's certificate."""
        return str(self._tls.ca_file) if self._tls is not None else None

    def stop(self) -> None:
        super().stop()
        if self._tls is not None:
            self._tls.remove()

    def describe(self) -> str:
        """One line for the demo banner."""
        endpoint = self.bot_endpoint or "no bot endpoint yet"
        return (f"Teams channel (Bot Framework) at {self.url}, app {self.app_id or 'anonymous'}, "
                f"service URL {self.service_url}, posting to {endpoint}")

    def env(self) -> dict[str, str]:
        """What opsbot's Teams connector reads to talk to this channel.

        * ``TEAMS_APP_ID`` / ``TEAMS_APP_PASSWORD``: the bot's AAD app registration (client
          id and secret); inbound tokens have ``aud`` = the app id.
        * ``TEAMS_TENANT_ID``: the tenant of a single-tenant bot; outbound tokens come from
          ``{TEAMS_AUTHORITY_URL}/{TEAMS_TENANT_ID}/oauth2/v2.0/token`` (a multi-tenant
          bot would use ``botframework.com`` as the tenant, which the simulator also serves).
        * ``TEAMS_OPENID_METADATA_URL``: where the inbound JWT's signing keys are found
          (real: https://login.botframework.com/v1/.well-known/openidconfiguration).
        * ``TEAMS_TOKEN_ISSUER``: the ``iss`` inbound JWTs must carry
          (real: https://api.botframework.com).
        * ``TEAMS_AUTHORITY_URL``: the AAD login host for outbound tokens
          (real: https://login.microsoftonline.com).
        """
        return {"TEAMS_APP_ID": self.app_id, "TEAMS_APP_PASSWORD": self.app_password,
                "TEAMS_TENANT_ID": self.tenant_id,
                "TEAMS_OPENID_METADATA_URL": self.openid_metadata_url,
                "TEAMS_TOKEN_ISSUER": self.issuer, "TEAMS_AUTHORITY_URL": self.url}

    # -- identity ----------------------------------------------------------------------

    def _channel_metadata(self) -> dict[str, Any]:
        return {"issuer": self.issuer,
                "authorization_endpoint": "https://invalid.botframework.com",
                "jwks_uri": f"{self.url}/openid/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["private_key_jwt"]}

    def _tenant_metadata(self, tid: str) -> dict[str, Any]:
        base = f"{self.url}/{tid}"
        return {"token_endpoint": f"{base}/oauth2/v2.0/token",
                "token_endpoint_auth_methods_supported": ["client_secret_post",
                                                          "private_key_jwt",
                                                          "client_secret_basic"],
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "response_modes_supported": ["query", "fragment", "form_post"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token",
                                             "id_token token"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "issuer": f"https://login.microsoftonline.com/{tid}/v2.0",
                "request_uri_parameter_supported": False,
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
                "tenant_region_scope": "EU", "cloud_instance_name": "microsoftonline.com",
                "cloud_graph_host_name": "graph.windows.net",
                "msgraph_host": "graph.microsoft.com"}

    def _jwks(self, *, endorse: bool) -> dict[str, Any]:
        jwk = dict(RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True))
        jwk.update({"kid": KEY_ID, "use": "sig"})
        if endorse:
            jwk["endorsements"] = ["msteams", "emulator"]
        return {"keys": [jwk]}

    def token(
        self,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        expires_in: float = 3600,
        not_before: float | None = None,
        key: Literal["sim", "forged"] = "sim",
        service_url: str | None = None,
        kid: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        """A channel JWT as the simulator signs inbound activities, or a bad one for tests.

        ``audience`` (default the app id), ``issuer`` (default ``issuer``), ``expires_in``
        seconds from now (negative: already expired), ``not_before`` (epoch seconds;
        default five minutes ago, as Bot Framework does), ``key="forged"`` signs with
        another RSA key under the same ``kid``; ``claims`` adds or overrides claims.
        """
        if key not in ("sim", "forged"):
            raise ValueError(f'key must be "sim" or "forged", got {key!r}')
        now = int(time.time())
        payload: dict[str, Any] = {
            "serviceurl": service_url or self.service_url,
            "nbf": int(not_before) if not_before is not None else now - 300,
            "exp": int(now + expires_in),
            "iss": issuer or self.issuer,
            "aud": audience or self.app_id,
            "iat": now,
        }
        payload.update(claims or {})
        if key == "forged":
            if self._forged_key is None:
                self._forged_key = _new_key()
            signing = self._forged_key
        else:
            signing = self._key
        return jwt.encode(payload, signing, algorithm="RS256",
                          headers={"kid": kid or KEY_ID, "typ": "JWT"})

    def _issue_access_token(self, tid: str) -> str:
        now = int(time.time())
        token = jwt.encode({"aud": "https://api.botframework.com",
                            "iss": f"https://sts.windows.net/{tid}/", "iat": now, "nbf": now,
                            "exp": now + _TOKEN_LIFETIME, "appid": self.app_id,
                            "appidacr": "1", "idp": f"https://sts.windows.net/{tid}/",
                            "tid": tid, "ver": "1.0", "jti": secrets.token_hex(8)},
                           self._key, algorithm="RS256", headers={"kid": KEY_ID, "typ": "JWT"})
        with self._state.lock:
            self._state.tokens[token] = now + _TOKEN_LIFETIME
        return token

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token the token endpoint issued, oldest first."""
        with self._state.lock:
            return list(self._state.tokens)

    def expire_tokens(self) -> None:
        """Make every issued access token expired (the connector then answers 401)."""
        with self._state.lock:
            for token in self._state.tokens:
                self._state.tokens[token] = 0.0

    # -- throttling --------------------------------------------------------------------

    def set_thread_limits(self, limits: Mapping[str, Sequence[tuple[float, int]]]) -> None:
        """Replace the Connector API's limits: scenario ("send", "create", "members") ->
        ``(seconds, maximum operations)`` windows; a scenario left out is not limited."""
        checked: dict[str, tuple[tuple[float, int], ...]] = {}
        for scenario, windows in limits.items():
            if scenario not in THREAD_LIMITS:
                raise ValueError(f"unknown scenario {scenario!r}; the simulator limits "
                                 f"{', '.join(THREAD_LIMITS)}")
            pairs = tuple((float(period), int(allowed)) for period, allowed in windows)
            if any(period <= 0 or allowed < 1 for period, allowed in pairs):
                raise ValueError(f"{scenario}: each window needs seconds > 0 and at least "
                                 f"one operation, got {windows!r}")
            checked[scenario] = pairs
        with self._state.lock:
            self._state.thread_limits = checked
            self._state.recent.clear()

    def throttle_next(self, times: int = 1, *, retry_after: int = 1,
                      path: str | None = None) -> None:
        """Answer the next ``times`` Connector API requests (whose path holds ``path``) with
        429 and ``Retry-After: retry_after``, whatever the limits say."""
        if times < 1 or retry_after < 0:
            raise ValueError(f"times must be >= 1 and retry_after >= 0, got {times}, "
                             f"{retry_after}")
        with self._state.lock:
            self._state.throttles.append([times, retry_after, path])

    # -- users and conversations -------------------------------------------------------

    @property
    def users(self) -> dict[str, TeamsUser]:
        with self._state.lock:
            return dict(self._state.users)

    def add_user(self, key: str, name: str | None = None) -> TeamsUser:
        """Add a user (e.g. one opsbot does not know) with a personal chat and channel access."""
        if not key or not key.isalnum() or key != key.lower():
            raise ValueError(f"user key must be lower-case letters and digits, got {key!r}")
        with self._state.lock:
            if key in self._state.users:
                raise ValueError(f"user {key!r} already exists")
            number = len(self._state.users) + 1
            user = TeamsUser(key, f"29:1{key}PairwiseId", name or key.capitalize(),
                             f"00000000-0000-0000-0001-{number:012d}", name or key.capitalize(),
                             "Test")
            self._state.users[key] = user
            self._state.add_personal(user)
            self._state.conversations[CHANNEL_ID].members.append(key)
        return user

    def _user(self, user: str) -> TeamsUser:
        with self._state.lock:
            found = self._state.users.get(user)
        if found is None:
            raise LookupError(f"no user {user!r}; the simulator knows "
                              f"{', '.join(sorted(self.users))} (add_user adds one)")
        return found

    def _conversation_account(self, cid: str) -> dict[str, Any]:
        base = cid.split(";", 1)[0]
        if base == CHANNEL_ID:
            return {"id": cid, "conversationType": "channel", "isGroup": True,
                    "tenantId": self.tenant_id}
        return {"id": cid, "conversationType": "personal", "tenantId": self.tenant_id}

    def _channel_data(self, cid: str) -> dict[str, Any]:
        data: dict[str, Any] = {"tenant": {"id": self.tenant_id}}
        if cid.split(";", 1)[0] == CHANNEL_ID:
            data.update({"teamsTeamId": TEAM_ID, "teamsChannelId": CHANNEL_ID,
                         "team": {"id": TEAM_ID, "name": TEAM_NAME,
                                  "aadGroupId": "00000000-0000-0000-0000-00000000fea1"},
                         "channel": {"id": CHANNEL_ID, "name": CHANNEL_NAME}})
        return data

    def _activity(self, user: TeamsUser, cid: str, aid: str | None = None,
                  **fields: Any) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        activity: dict[str, Any] = {
            "type": "message", "id": aid or self._state.next_id(),
            "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "localTimestamp": now.astimezone(dt.timezone(dt.timedelta(hours=1)))
                                 .isoformat(timespec="milliseconds"),
            "localTimezone": "Europe/Berlin", "serviceUrl": self.service_url,
            "channelId": "msteams", "from": user.account(),
            "conversation": self._conversation_account(cid),
            "recipient": {"id": self.bot_id, "name": self.bot_name}, "locale": "en-US",
            "entities": [{"type": "clientInfo", "locale": "en-US", "country": "US",
                          "platform": "Web", "timezone": "Europe/Berlin"}],
            "channelData": self._channel_data(cid),
        }
        activity.update(fields)
        return activity

    # -- talking to the bot ------------------------------------------------------------

    def set_bot_endpoint(self, url: str) -> None:
        """Where activities go: the bot's messaging endpoint (e.g. .../api/messages)."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"bot endpoint must be an http(s) URL, got {url!r}")
        self.bot_endpoint = url

    def _post(self, activity: dict[str, Any], token: TokenArg) -> tuple[int, Any]:
        endpoint = self.bot_endpoint
        if not endpoint:
            raise RuntimeError("no bot endpoint: call set_bot_endpoint(url) first (POST "
                               "/_sim/bot-endpoint from another process)")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "User-Agent": "Microsoft-SkypeBotApi (Microsoft-BotFramework/3.0)"}
        if token == "auto":
            if self.app_id:
                headers["Authorization"] = "Bearer " + self.token(
                    service_url=activity.get("serviceUrl") or self.service_url)
        elif token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(endpoint, data=json.dumps(activity).encode(),
                                         headers=headers, method="POST")
        timeout = self.bot_timeout
        started = time.monotonic()
        bot_status: int | None = None
        body: Any = None
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                bot_status, raw, kind = response.status, response.read(), response.headers
        except urllib.error.HTTPError as error:
            bot_status, raw, kind = error.code, error.read(), error.headers
        except TimeoutError:
            pass  # the bot is late: Azure Bot Service gives up on it (below)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if not isinstance(reason, TimeoutError):
                raise ConnectionError(f"cannot reach the bot at {endpoint}: {reason}") from exc
        late = bot_status is None or time.monotonic() - started > timeout
        if late:
            status = 504
            body = {"error": {"code": "GatewayTimeout",
                              "message": f"The bot did not answer activity {activity.get('id')} "
                                         f"within {timeout:g} seconds."}}
            logger.warning("Teams simulator: the bot at %s did not answer activity %s within "
                           "%gs: 504 GatewayTimeout", endpoint, activity.get("id"), timeout)
        else:
            status = int(bot_status or 0)
            text = raw.decode(errors="replace")
            body = text
            if "json" in (kind.get("Content-Type") or "") and text.strip():
                try:
                    body = json.loads(text)
                except ValueError:
                    pass
        self._posted.activity = copy.deepcopy(activity)
        with self._state.changed:
            self._state.inbound.append({"activity": copy.deepcopy(activity), "status": status,
                                        "body": body, "timed_out": late,
                                        "bot_status": bot_status})
            self._state.changed.notify_all()
        return status, body

    def _resolve(self, user: TeamsUser, conversation: str, thread: str | None) -> tuple[str, str]:
        """(conversation id, activity id) for a new message from ``user``."""
        aid = self._state.next_id()
        if conversation == "personal":
            return user.personal_conversation, aid
        if conversation == "channel":
            return f"{CHANNEL_ID};messageid={thread or aid}", aid
        with self._state.lock:
            found = self._state.conversation(conversation)
        if found is None or user.key not in found.members:
            raise LookupError(f"{user.key} is not in a conversation {conversation!r}; use "
                              "'personal', 'channel' or a known conversation id")
        return conversation, aid

    def send_text(self, user: str, text: str, *, conversation: str = "personal",
                  mention: bool = True, thread: str | None = None,
                  token: TokenArg = "auto") -> tuple[int, Any]:
        """``user`` writes ``text``; the HTTP status and body the bot answered with.

        ``conversation`` is "personal" (the user's chat with the bot), "channel" (a new
        thread in the team channel, or a reply in ``thread``, a root activity id) or a
        conversation id. In the channel, ``mention`` prefixes ``<at>bot</at>`` and adds the
        mention entity, as Teams does when the bot is @mentioned. ``token`` is "auto" (a
        valid JWT), None (no Authorization header) or a raw token to send.
        """
        account = self._user(user)
        cid, aid = self._resolve(account, conversation, thread)
        activity = self._activity(account, cid, aid, text=text, textFormat="plain")
        if mention and cid.split(";", 1)[0] == CHANNEL_ID:
            at = f"<at>{self.bot_name}</at>"
            activity["text"] = f"{at} {text}"
            activity["entities"].insert(0, {"type": "mention", "text": at, "mentioned": {
                "id": self.bot_id, "name": self.bot_name}})
        return self._post(activity, token)

    def resend(self, activity: Mapping[str, Any], *, token: TokenArg = "auto") -> tuple[int, Any]:
        """Post an activity again unchanged (a redelivery), with a fresh token."""
        return self._post(copy.deepcopy(dict(activity)), token)

    def _sent(self, activity_id: str) -> _Sent:
        with self._state.lock:
            sent = self._state.sent.get(activity_id)
            sent = copy.deepcopy(sent) if sent is not None and not sent.deleted else None
        if sent is None:
            raise LookupError(f"the bot sent no activity {activity_id!r} (or deleted it)")
        return sent

    def _find(self, activity_id: str, title: str | None, types: tuple[str, ...],
              verb: str | None = None) -> tuple[_Sent, str, dict[str, Any], dict[str, Any]]:
        """The activity and its one action of ``types`` with ``title`` (and ``verb``)."""
        sent = self._sent(activity_id)
        actions = [(kind, action, card) for kind, action, card in _all_actions(sent.activity)
                   if action.get("type") in types
                   and (title is None or action.get("title") == title)
                   and (verb is None or action.get("verb") == verb)]
        if len(actions) != 1:
            available = [a.get("title") for _, a, _ in _all_actions(sent.activity)]
            wanted = " ".join(f"{name} {value!r}" for name, value in
                              (("titled", title), ("with verb", verb)) if value is not None)
            raise LookupError(f"activity {activity_id} has {len(actions)} {'/'.join(types)} "
                              f"actions {wanted or '(give a title)'}; its actions: {available}")
        kind, action, card = actions[0]
        return sent, kind, action, card

    def submit(self, user: str, activity_id: str, *, title: str | None = None,
               data: Any = None, inputs: Mapping[str, Any] | None = None,
               token: TokenArg = "auto") -> tuple[int, Any]:
        """``user`` clicks a button of the card in the bot's activity ``activity_id``.

        Finds the Adaptive Card Action.Submit (or hero card messageBack / imBack / invoke
        button) titled ``title``, or the only one, and posts what Teams posts: for an
        Action.Submit with object data a message without text whose ``value`` is the data
        merged with the card's input values (``inputs`` overrides them), for string data a
        message with that text; ``msteams`` messageBack / imBack / invoke / task/fetch data
        as Teams maps them. ``data`` instead of ``title`` skips the
        lookup and submits that data. ``replyToId`` is the card's activity id. Returns
        the bot's HTTP status and body; LookupError if there is no such activity or action.
        """
        account = self._user(user)
        if title is None and data is not None:
            sent = self._sent(activity_id)
            action: dict[str, Any] = {"type": "Action.Submit", "data": data}
            card: dict[str, Any] = {}
            kind = ADAPTIVE_CARD
        else:
            sent, kind, action, card = self._find(
                activity_id, title, ("Action.Submit", "messageBack", "imBack", "invoke"))
        values = {} if action.get("associatedInputs") == "none" else _input_values(card)
        values.update(inputs or {})
        fields: dict[str, Any] = {"replyToId": activity_id}
        invoke = False
        if kind == ADAPTIVE_CARD:
            payload = action.get("data")
            teams = payload.get("msteams") if isinstance(payload, dict) else None
            if isinstance(payload, dict) and isinstance(teams, dict):
                kind_of = teams.get("type")
                if kind_of == "messageBack":
                    fields.update(text=teams.get("text"), value=teams.get("value"))
                elif kind_of == "imBack":
                    fields["text"] = teams.get("value")
                elif kind_of == "invoke":
                    value = teams.get("value")
                    fields.update(type="invoke", value={**value, **values}
                                  if isinstance(value, dict) else value)
                    invoke = True
                elif kind_of == "task/fetch":
                    fields.update(type="invoke", name="task/fetch",
                                  value={"data": {**payload, **values},
                                         "context": {"theme": "default"}})
                    invoke = True
                else:
                    raise ValueError(f"the simulator cannot click msteams type {kind_of!r}")
            elif isinstance(payload, str):
                fields["text"] = payload
            else:
                fields["value"] = {**(payload or {}), **values}
        else:  # hero / thumbnail card button
            button_type = action.get("type")
            if button_type == "messageBack":
                fields.update(text=action.get("text"), value=action.get("value"))
            elif button_type == "imBack":
                fields["text"] = action.get("value")
            else:
                fields.update(type="invoke", value=action.get("value"))
                invoke = True
        fields = {key: value for key, value in fields.items() if value is not None}
        if not invoke:
            fields.setdefault("textFormat", "plain")
        activity = self._activity(account, sent.conversation, **fields)
        return self._post(activity, token)

    def execute(self, user: str, activity_id: str, *, title: str | None = None,
                verb: str | None = None, inputs: Mapping[str, Any] | None = None,
                token: TokenArg = "auto") -> tuple[int, Any]:
        """``user`` clicks an Action.Execute (by ``title`` or ``verb``): an ``invoke``
        ``adaptiveCard/action``. Returns the bot's status and invoke response body; a
        200 answer carrying a card replaces the card, as Teams does."""
        account = self._user(user)
        sent, _, action, card = self._find(activity_id, title, ("Action.Execute",), verb)
        values = {} if action.get("associatedInputs") == "none" else _input_values(card)
        values.update(inputs or {})
        data = action.get("data")
        merged = {**data, **values} if isinstance(data, dict) else (data if data is not None
                                                                   else values)
        invoked: dict[str, Any] = {"type": "Action.Execute", "verb": action.get("verb"),
                                   "data": merged}
        if action.get("id"):
            invoked["id"] = action["id"]
        activity = self._activity(account, sent.conversation, type="invoke",
                                  name="adaptiveCard/action", replyToId=activity_id,
                                  value={"action": invoked, "trigger": "manual"})
        status, body = self._post(activity, token)
        if status == 200 and isinstance(body, dict) and body.get("type") == ADAPTIVE_CARD \
                and isinstance(body.get("value"), dict):
            with self._state.changed:
                stored = self._state.sent.get(activity_id)
                if stored is not None:
                    stored.activity["attachments"] = [{"contentType": ADAPTIVE_CARD,
                                                       "content": body["value"]}]
                    self._state.events.append({"kind": "refresh", "id": activity_id,
                                               "conversation": stored.conversation,
                                               "activity": copy.deepcopy(stored.activity)})
                    self._state.changed.notify_all()
        return status, body

    # -- reading what the bot did ------------------------------------------------------

    card_actions = staticmethod(card_actions)
    text_of = staticmethod(text_of)

    def bot_activities(self, conversation: str | None = None, *,
                       include_typing: bool = False) -> list[dict[str, Any]]:
        """What the bot posted and did not delete, in its current state (updates applied),
        oldest first. ``conversation``: None (all), "personal" (every personal chat), a user
        key (that user's chat), "channel" (every channel thread) or a conversation id (a bare
        channel id includes its threads). Typing indicators only with ``include_typing``."""
        with self._state.lock:
            return [copy.deepcopy(sent.activity) for sent in self._state.sent.values()
                    if not sent.deleted and _matches(conversation, sent.conversation, self._state)
                    and (include_typing or sent.activity.get("type") != "typing")]

    def bot_events(self) -> list[dict[str, Any]]:
        """Every send, reply, update, delete (and card refresh by an invoke response), in
        order: ``{"kind", "id", "conversation", "activity"}``."""
        with self._state.lock:
            return copy.deepcopy(self._state.events)

    def user_activities(self) -> list[dict[str, Any]]:
        """What the simulator posted to the bot, oldest first: ``{"activity", "status",
        "body", "timed_out", "bot_status"}``. ``status`` is what the channel got: the bot's
        answer, or 504 when the bot did not answer within ``bot_timeout`` (``timed_out``;
        ``bot_status`` is then what the bot said too late, or None)."""
        with self._state.lock:
            return copy.deepcopy(self._state.inbound)

    def wait_for_bot_activity(self, *, conversation: str | None = None,
                              contains: str | None = None, after_count: int = 0,
                              timeout: float = 10.0) -> dict[str, Any]:
        """The first of ``bot_activities(conversation)[after_count:]`` whose ``text_of``
        contains ``contains``, waiting up to ``timeout`` seconds; TimeoutError says what
        the bot did send."""
        deadline = time.monotonic() + timeout
        with self._state.changed:
            while True:
                seen = [sent.activity for sent in self._state.sent.values()
                        if not sent.deleted and sent.activity.get("type") != "typing"
                        and _matches(conversation, sent.conversation, self._state)]
                for activity in seen[after_count:]:
                    if contains is None or contains in text_of(activity):
                        return copy.deepcopy(activity)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    texts = [text_of(a)[:80] for a in seen[after_count:]]
                    what = f" containing {contains!r}" if contains is not None else ""
                    where = conversation or "any conversation"
                    raise TimeoutError(f"no bot activity{what} in {where} within {timeout}s "
                                       f"(after {after_count} activities); it sent: {texts}")
                self._state.changed.wait(remaining)


# ---------------------------------------------------------------------------------------
# python -m simulators.teams


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.teams",
        description="A local Microsoft Teams channel for opsbot: signed activities to the "
                    "bot, the Bot Connector service and AAD's token endpoint.",
    )
    add_address_arguments(parser, 3979)
    parser.add_argument("--app-id", default=DEFAULT_APP_ID,
                        help="the bot's app id ('' = anonymous, no JWTs)")
    parser.add_argument("--app-password", default=DEFAULT_APP_PASSWORD, help="its client secret")
    parser.add_argument("--tenant-id", default=DEFAULT_TENANT_ID, help="the tenant GUID")
    parser.add_argument("--bot-name", default="opsbot", help="the bot's display name")
    parser.add_argument("--bot-endpoint", default=None, metavar="URL",
                        help="the bot's messaging endpoint, e.g. "
                             "http://127.0.0.1:5005/webhooks/teams/api/messages")
    parser.add_argument("--bot-timeout", type=float, default=DELIVERY_TIMEOUT, metavar="SECONDS",
                        help="how long the channel waits for the bot to answer an activity "
                             "(later is a 504, as Azure Bot Service does; default 15)")
    parser.add_argument("--no-thread-limits", action="store_true",
                        help="do not throttle the bot with the documented per thread limits")
    parser.add_argument("--no-outbound-auth", action="store_true",
                        help="let the connector accept requests without an issued token")
    parser.add_argument("--tls", action="store_true",
                        help="serve HTTPS with a throwaway CA (needed by MSAL)")
    args = parser.parse_args(argv)

    def make() -> TeamsSimulator:
        return TeamsSimulator(app_id=args.app_id, app_password=args.app_password,
                              tenant_id=args.tenant_id, bot_name=args.bot_name,
                              require_outbound_auth=not args.no_outbound_auth,
                              bot_endpoint=args.bot_endpoint, bot_timeout=args.bot_timeout,
                              thread_limits={} if args.no_thread_limits else None, tls=args.tls,
                              host=args.host, port=args.port)

    def banner(simulator: TeamsSimulator) -> list[str]:
        url = simulator.url
        lines = [f"Teams simulator at {url} (app id {simulator.app_id or 'anonymous'})",
                 f"  serviceUrl: {simulator.service_url}",
                 f"  bot endpoint: {simulator.bot_endpoint or 'not set'}"]
        lines += [f"  {name}={value}" for name, value in simulator.env().items()]
        if simulator.ca_file:
            lines.append(f"  CA certificate: {simulator.ca_file}")
        lines += ["  control API (JSON):",
                  f"    POST {url}/_sim/bot-endpoint {{\"url\": ...}}",
                  f"    POST {url}/_sim/users/<alice|bob|carol>/send "
                  "{\"text\": ..., \"conversation\": \"personal\"|\"channel\"}",
                  f"    POST {url}/_sim/users/<name>/submit "
                  "{\"activity_id\": ..., \"title\": ...}",
                  f"    POST {url}/_sim/users/<name>/execute "
                  "{\"activity_id\": ..., \"verb\": ...}",
                  f"    GET  {url}/_sim/activities?conversation=<personal|channel|name|id>"]
        return lines

    return run_main(make, banner, seed_error=ValueError,
                    cannot=f"listen on {args.host}:{args.port}")


if __name__ == "__main__":
    raise SystemExit(main())
