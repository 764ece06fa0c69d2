"""The Teams simulator's fixed facts: app and tenant ids, the team and its channel, the
seeded users, the per-thread limits, and the error bodies of the Connector and AAD.

Why apart: the cards, the state, the HTTP face and the public face all speak of these.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from simulators._http import Response

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
logger = logging.getLogger("simulators.teams")  # one logger for the whole package


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
