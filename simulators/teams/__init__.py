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

The package, one module a concern: ``_model`` (ids, users, limits, error bodies),
``_cards`` (reading the bot's cards), ``_tls`` (keys and a self-signed CA), ``_state``
(under one lock), ``_app`` (HTTP: the Connector, AAD, OpenID and ``/_sim/``) and
``_simulator`` (``TeamsSimulator`` and ``main``).
"""

from __future__ import annotations

from simulators.teams._cards import card_actions, text_of
from simulators.teams._model import (
    ADAPTIVE_CARD,
    BOTFRAMEWORK_ISSUER,
    BOTFRAMEWORK_SCOPE,
    BOTFRAMEWORK_TENANT,
    CHANNEL_ID,
    DEFAULT_APP_ID,
    DEFAULT_APP_PASSWORD,
    DEFAULT_TENANT_ID,
    DELIVERY_TIMEOUT,
    HERO_CARD,
    KEY_ID,
    SERVICE_PATH,
    TEAM_ID,
    THREAD_LIMITS,
    USERS,
    RecordedRequest,
    TeamsUser,
)
from simulators.teams._simulator import TeamsSimulator, main

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
