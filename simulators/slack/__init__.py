r"""A local Slack workspace that slack_sdk 3.47 cannot tell from slack.com, and as unkind.

Why: opsbot's Slack connector, its tests and the demo need Slack offline and without a
workspace or an app. This package serves the Web API, delivers what people do over the
Events API (HTTP mode) or Socket Mode, and lets a test play the people: post, mention the
bot, run ``/opsbot``, press a button; then read what the bot answered. Each behaviour
names its source in Slack's documentation.

**Web API** (``POST {api_url}<method>``, form or JSON, ``Authorization: Bearer``; answers
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}`` with HTTP 200):
``auth.test``, ``chat.postMessage``, ``chat.update``, ``chat.postEphemeral``,
``conversations.info``, ``users.info`` and ``apps.connections.open``, with Slack's
errors: ``not_authed``, ``invalid_auth``, ``not_allowed_token_type`` (the xapp- token
anywhere but apps.connections.open, the xoxb- token there), ``channel_not_found``,
``not_in_channel``, ``user_not_in_channel``, ``message_not_found``,
``cant_update_message``, ``no_text``, ``msg_too_long`` (over 40,000 characters),
``invalid_blocks`` (Block Kit's limits, see ``_blocks``), ``user_not_found``,
``unknown_method`` (404), and ``ratelimited`` with HTTP 429 and ``Retry-After`` when the
bot posts, updates or posts an ephemeral to one channel faster than ``channel_interval``
(api.slack.com/docs/rate-limits: about one message a second per channel).

**HTTP mode** (``events_url``): ``event_callback`` envelopes, ``block_actions`` as
``payload=<json>`` and slash commands as form fields, all to the one Request URL, signed
``v0`` with the signing secret; events retried after 3 s without a 200 with
``X-Slack-Retry-Num`` and ``X-Slack-Retry-Reason``; ``verify_url()`` sends the
``url_verification`` challenge (see ``_http_events``).

**Socket Mode** (``socket_mode=True``): ``apps.connections.open`` returns a ``ws://`` URL
to the simulator's websocket server; ``hello``, envelopes to acknowledge, events
redelivered when not acknowledged, ``disconnect()`` (see ``_socket_mode``).

**response_url**: served by the simulator; a post adds a message, an ephemeral
(``response_type: ephemeral``), or replaces (``replace_original``) or deletes
(``delete_original``) the message the button was on; 5 uses within 30 minutes.

Seeded: team ``T0OPS`` "ops"; the bot ``U0BOT`` (bot_id ``B0BOT``, app ``A0OPSBOT``);
alice ``U0ALICE``, bob ``U0BOB``, carol ``U0CAROL``; eve ``U0EVE`` of ``T0OTHER`` (Slack
Connect); ``#ops`` ``C0OPS`` and ``#random`` ``C0OTHER`` (the three and the bot),
``#general`` ``C0NOBOT`` (the bot not in it), ``#ops-connect`` ``C0SHARED`` (shared with
``T0OTHER``: alice, bob, eve and the bot); DMs from ``dm_of(user)``.

Playing the people, from Python and thread-safe: ``say``, ``slash``, ``press``,
``redeliver`` (each returns what was delivered; ``Forgery`` makes a delivery badly signed,
replayed or from another workspace). Reading: ``messages``, ``thread``, ``ephemerals``,
``wait_for_message``, ``wait_for_update``, ``wait_for_ephemeral``, ``event_deliveries``,
``wait_for_delivery``, ``request_log``.

Deliberate differences: no OAuth, scopes or Enterprise Grid; the bot's own posts come
back as events (``echo_bot_messages``) as on Slack, but no other event types; retries
wait ``retry_delays`` (Slack: 0 s, 1 min, 5 min) and Slack's switching off of a failing
Request URL is not played.

    with SlackSimulator(socket_mode=True) as sim:
        web = WebClient(token=sim.bot_token, base_url=sim.api_url)
        sim.say(ALICE, OPS_CHANNEL, "<@U0BOT> deploy payments 2.4.1 to staging")
        preview = sim.wait_for_message(OPS_CHANNEL, contains="payments")

    python -m simulators.slack --socket-mode --port 8083   # prints the URL and tokens

The package, one module a concern: ``_model`` (ids, tokens, limits, records), ``_blocks``
(Block Kit checks), ``_state`` (under one lock; the JSON Slack sends), ``_web_api`` (the
methods), ``_app`` (HTTP: the Web API and response URLs), ``_http_events`` (HTTP
mode delivery), ``_socket_mode`` (the websocket server) and ``_simulator``
(``SlackSimulator`` and ``main``).
"""

from __future__ import annotations

from simulators.slack._http_events import sign
from simulators.slack._model import (
    ALICE,
    APP_ID,
    BOB,
    BOT_ID,
    BOT_USER,
    CAROL,
    DEFAULT_APP_TOKEN,
    DEFAULT_BOT_TOKEN,
    DEFAULT_SIGNING_SECRET,
    EVE,
    MAX_TEXT_LENGTH,
    NOBOT_CHANNEL,
    OPS_CHANNEL,
    OTHER_CHANNEL,
    OTHER_TEAM,
    SHARED_CHANNEL,
    TEAM,
    Forgery,
    Outgoing,
    RecordedRequest,
    Sent,
)
from simulators.slack._simulator import SLACK_RETRY_DELAYS, SlackSimulator, main

__all__ = [
    "ALICE",
    "APP_ID",
    "BOB",
    "BOT_ID",
    "BOT_USER",
    "CAROL",
    "DEFAULT_APP_TOKEN",
    "DEFAULT_BOT_TOKEN",
    "DEFAULT_SIGNING_SECRET",
    "EVE",
    "MAX_TEXT_LENGTH",
    "NOBOT_CHANNEL",
    "OPS_CHANNEL",
    "OTHER_CHANNEL",
    "OTHER_TEAM",
    "SHARED_CHANNEL",
    "SLACK_RETRY_DELAYS",
    "TEAM",
    "Forgery",
    "Outgoing",
    "RecordedRequest",
    "SlackSimulator",
    "Sent",
    "main",
    "sign",
]
