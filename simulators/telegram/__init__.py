r"""A local Telegram Bot API server that python-telegram-bot 22.8 cannot tell from the real one.

Why: opsbot's Telegram connector, its tests and the demo need Telegram offline and
without a bot account. This package serves the Bot API as api.telegram.org does and
lets a test play the users: type, press a button, edit a message, join a group; then
read what the bot answered.

The Bot API, ``/bot<token>/<method>`` (POST or GET; parameters from the query string, a
form, a JSON body or multipart/form-data, non-strings JSON-encoded; method names in any
case; 401 ``Unauthorized`` for another token, 404 ``Not Found`` for another method):

* ``getMe``; ``getUpdates`` (``offset`` confirms and deletes older updates, ``limit``,
  long polling with ``timeout``, ``allowed_updates``; 409 while a webhook is set, and a
  waiting poll ends with 409 when a newer one starts or a webhook is set);
* ``setWebhook`` / ``deleteWebhook`` / ``getWebhookInfo``: with a webhook set, updates are
  POSTed to it one at a time, in order, with ``Content-Type: application/json`` and
  ``X-Telegram-Bot-Api-Secret-Token``; a failed delivery is retried with a growing delay.
  Like the real API it accepts only https URLs on ports 443, 80, 88 or 8443 (400 "Bad
  Request: bad webhook: An HTTPS URL must be provided for webhook" / "... Webhook can be
  set up only on ports 80, 88, 443 or 8443"; core.telegram.org/bots/api#setwebhook and
  core.telegram.org/bots/webhooks). ``routes`` / ``route()`` play the reverse proxy in
  front of a real bot: posts to the public https origin reach a local listener;
* ``sendMessage``, ``editMessageText``, ``editMessageReplyMarkup``, ``deleteMessage``,
  ``answerCallbackQuery``, ``sendChatAction``, ``setMyCommands`` / ``getMyCommands`` /
  ``deleteMyCommands``;
* ``parse_mode`` MarkdownV2, Markdown and HTML are parsed like Telegram's own parser
  (tdlib), with its errors ("Bad Request: can't parse entities: Character '.' is reserved
  and must be escaped with the preceding '\'") and entities in UTF-16 units; the classic
  400s: chat not found, message text is empty, message is too long, BUTTON_DATA_INVALID,
  message to edit not found, message is not modified, query is too old ...
* flood control: with ``chat_interval`` set (seconds between two messages the bot
  sends to one chat; Telegram's own is about 1 s per chat and 20 a minute per group,
  core.telegram.org/bots/faq "My bot is hitting limits"), a faster ``sendMessage``,
  ``editMessageText`` or ``editMessageReplyMarkup`` is refused with 429 ``Too Many
  Requests: retry after N`` and ``parameters.retry_after`` (core.telegram.org/bots/api,
  ResponseParameters), and nothing is sent or changed;

Playing the users, from Python and thread-safe: ``send_text``, ``press``, ``send_sticker``,
``edit_text``, ``member_joined``, ``redeliver``. Reading: ``bot_messages``,
``wait_for_bot_message``, ``wait_for_edit``, ``callback_answers``, ``webhook_deliveries``,
``pending_updates``, ``request_log``. Seeded: alice (42), bob (43), carol (44) and the
supergroup "ops" (-1001000000001) with all three in it.

The same for a human with curl or another process, under ``/_sim/`` (JSON in and out):

* ``GET  /_sim/``                          the bot, users, chats and webhook
* ``POST /_sim/users/<id>/send``           ``{"text": "/deploy prod", "chat_id": -1001000000001}``
  (``chat_id`` defaults to the private chat; optional ``reply_to_message_id``)
* ``POST /_sim/users/<id>/press``          ``{"chat_id": 42, "message_id": 2, "data": "yes"}``
  (or ``"title": "Yes"``; ``"force": true`` presses a button that is not there)
* ``GET  /_sim/chats/<chat_id>/messages``  the bot's messages in that chat, oldest first

Deliberate differences: a webhook may be plain http on any port (it is local); a
delivery that still fails after ``max_delivery_attempts`` is dropped (Telegram keeps
trying for a day); inline mode, files and payments are not served.

    with TelegramSimulator() as sim:
        bot = telegram.Bot(sim.token, base_url=sim.api_url + "/bot")
        sim.send_text(ALICE, "/deploy prod")
        reply = sim.wait_for_bot_message(ALICE, contains="Deploy")

    python -m simulators.telegram --port 8081     # prints the URL, token and control API

The package, one module a concern: ``_model`` (users, chats, messages, updates),
``_formatting`` (MarkdownV2, Markdown, HTML), ``_state`` (under one lock), ``_params``
(how the Bot API reads parameters), ``_bot_api`` (the methods), ``_webhook`` (delivery),
``_app`` (HTTP and ``/_sim/``) and ``_simulator`` (``TelegramSimulator`` and ``main``).
"""

from __future__ import annotations

from simulators.telegram._formatting import EntityParseError, parse_text
from simulators.telegram._model import (
    ALICE,
    BOB,
    CAROL,
    DEFAULT_BOT_USERNAME,
    DEFAULT_TOKEN,
    MAX_TEXT_LENGTH,
    OPS_GROUP,
    RecordedRequest,
)
from simulators.telegram._simulator import TelegramSimulator, main

__all__ = [
    "ALICE",
    "BOB",
    "CAROL",
    "DEFAULT_BOT_USERNAME",
    "DEFAULT_TOKEN",
    "MAX_TEXT_LENGTH",
    "OPS_GROUP",
    "EntityParseError",
    "RecordedRequest",
    "TelegramSimulator",
    "main",
    "parse_text",
]
