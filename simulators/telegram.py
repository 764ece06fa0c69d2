r"""A local Telegram Bot API server that python-telegram-bot 22.8 cannot tell from the real one.

Why: opsbot's Telegram connector, its tests and the demo need Telegram offline and
without a bot account. This module serves the Bot API as api.telegram.org does and
lets a test play the users: type, press a button,
edit a message, join a group; then read what the bot answered.

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
  core.telegram.org/bots/faq "My bot is hitting limits"), a faster ``sendMessage`` is
  refused with 429 ``Too Many Requests: retry after N`` and ``parameters.retry_after``
  (core.telegram.org/bots/api, ResponseParameters), and nothing is sent;

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
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import math
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from email import policy
from email.parser import BytesParser
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from simulators._base import Faults, RequestLog, SimulatorBase, add_address_arguments, run_main
from simulators._http import Request, Response

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

DEFAULT_TOKEN = "123456:TEST-opsbot-demo-token"
DEFAULT_BOT_USERNAME = "opsbot_demo_bot"
ALICE = 42
BOB = 43
CAROL = 44
OPS_GROUP = -1001000000001
MAX_TEXT_LENGTH = 4096
"""Characters a message may have after its entities are parsed."""

_LONG_POLL_MAX = 50  # seconds: the Bot API caps getUpdates' timeout there
_WEBHOOK_ACTIVE = ("Conflict: can't use getUpdates method while webhook is active; "
                   "use deleteWebhook to delete the webhook first")
_TERMINATED = ("Conflict: terminated by other getUpdates request; make sure that only one "
               "bot instance is running")
_TERMINATED_BY_WEBHOOK = "Conflict: terminated by setWebhook request"
_NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and "
                 "reply markup are exactly the same as a current content and reply markup "
                 "of the message")
_QUERY_TOO_OLD = ("Bad Request: query is too old and response timeout expired or query ID "
                  "is invalid")
_UPDATE_TYPES = (
    "message", "edited_message", "channel_post", "edited_channel_post", "business_connection",
    "business_message", "edited_business_message", "deleted_business_messages",
    "message_reaction", "message_reaction_count", "inline_query", "chosen_inline_result",
    "callback_query", "shipping_query", "pre_checkout_query", "purchased_paid_media", "poll",
    "poll_answer", "my_chat_member", "chat_member", "chat_join_request", "chat_boost",
    "removed_chat_boost",
)
# What a bot gets when allowed_updates was never given or given as [].
_DEFAULT_ALLOWED = frozenset(_UPDATE_TYPES) - {"chat_member", "message_reaction",
                                              "message_reaction_count"}
_CHAT_ACTIONS = frozenset({
    "typing", "upload_photo", "record_video", "upload_video", "record_voice", "upload_voice",
    "upload_document", "choose_sticker", "find_location", "record_video_note",
    "upload_video_note",
})
_BUTTON_ACTIONS = ("url", "callback_data", "web_app", "login_url", "switch_inline_query",
                   "switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
                   "copy_text", "callback_game", "pay")
_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"(\d+):[A-Za-z0-9_-]+")
_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_PERSON_USERNAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{2,31}")  # lenient: the seeds have "bob"
_COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")


# ---------------------------------------------------------------------------------------
# Formatted text: MarkdownV2, Markdown and HTML as tdlib parses them


class EntityParseError(ValueError):
    """Formatted text Telegram refuses; ``str()`` follows "Bad Request: can't parse entities: "."""


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _byte_offset(text: str, index: int) -> int:
    """tdlib reports positions as byte offsets into the UTF-8 source."""
    return len(text[:index].encode("utf-8", "surrogatepass"))


def _entity(kind: str, offset: int, length: int, argument: str = "") -> dict[str, Any]:
    """A MessageEntity in Bot API JSON."""
    entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
    if kind == "text_link":
        entity["url"] = argument
    elif kind == "pre" and argument:
        entity["language"] = argument
    elif kind == "custom_emoji":
        entity["custom_emoji_id"] = argument
    return entity


def _check_link(url: str) -> str | None:
    """The URL Telegram would store for a text link, or None if it would drop the link."""
    url = url.strip()
    match = re.fullmatch(r"(?i)(https?|tg|ton)://(\S+)", url)
    if match is None:
        if not re.fullmatch(r"(?i)[a-z0-9.-]+\.[a-z]{2,}(?:[/?#]\S*)?", url):
            return None
        url, match = "http://" + url, re.fullmatch(r"(?i)(https?)://(\S+)", "http://" + url)
        assert match is not None
    if match.group(1).lower() in ("http", "https") and not re.search(r"[/?#]", match.group(2)):
        url += "/"  # Telegram normalises https://example.com to https://example.com/
    return url


class _Output:
    """The parsed text as it grows, and its length in UTF-16 units."""

    def __init__(self) -> None:
        self.chars: list[str] = []
        self.utf16 = 0

    def add(self, char: str) -> None:
        self.chars.append(char)
        self.utf16 += _utf16_len(char)

    def text(self) -> str:
        return "".join(self.chars)


@dataclass
class _Open:
    """An entity whose start was seen and whose end was not (yet)."""

    kind: str  # tdlib's type name (Bold, PreCode...) or the HTML tag
    start: int  # UTF-16 offset in the parsed text
    byte: int  # byte offset of its opening mark in the source
    chars: int  # characters of parsed text before it
    argument: str = ""


_V2_RESERVED = "_*[]()~`>#+-=|{}.!"
_V2_TYPES = {"Bold": "bold", "Italic": "italic", "Underline": "underline",
             "Strikethrough": "strikethrough", "Spoiler": "spoiler", "Code": "code",
             "Pre": "pre", "PreCode": "pre", "TextUrl": "text_link",
             "CustomEmoji": "custom_emoji", "BlockQuote": "blockquote",
             "ExpandableBlockQuote": "expandable_blockquote"}
_CODE_KINDS = ("Code", "Pre", "PreCode")


def _reserved(char: str) -> EntityParseError:
    return EntityParseError(f"Character '{char}' is reserved and must be escaped with the "
                            "preceding '\\'")


def _skip_pre_start(text: str, i: int) -> tuple[int, str]:
    """After an opening ```: the language (if any) and the index past one newline."""
    end = i
    while end < len(text) and not text[end].isspace() and text[end] != "`":
        end += 1
    language = ""
    if end != i and end < len(text) and text[end] != "`":
        language, i = text[i:end], end
    if i < len(text) and text[i] in "\r\n":
        pair = text[i:i + 2]
        i += 2 if len(pair) == 2 and pair[1] in "\r\n" and pair[0] != pair[1] else 1
    return i, language


def _read_url(text: str, i: int) -> tuple[str, int]:
    """The URL of ``](url)`` starting after the "(" at ``i``; returns it and the index of ")"."""
    begin = i
    url: list[str] = []
    while i < len(text) and text[i] != ")":
        if text[i] == "\\" and i + 1 < len(text) and 0 < ord(text[i + 1]) <= 126:
            url.append(text[i + 1])
            i += 2
            continue
        url.append(text[i])
        i += 1
    if i >= len(text):
        raise EntityParseError(f"Can't find end of a URL at byte offset "
                               f"{_byte_offset(text, begin)}")
    return "".join(url), i


def _parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    """MarkdownV2 as tdlib's parse_markdown_v2 reads it."""
    out = _Output()
    entities: list[dict[str, Any]] = []
    stack: list[_Open] = []
    quote: _Open | None = None
    n = len(text)

    def at(k: int) -> str:
        return text[k] if k < n else ""

    def close_quote(end: int) -> None:
        nonlocal quote
        assert quote is not None
        if end > quote.start:
            entities.append(_entity(_V2_TYPES[quote.kind], quote.start, end - quote.start))
        quote = None

    i = 0
    while i < n:
        c = text[i]
        in_code = bool(stack) and stack[-1].kind in _CODE_KINDS
        if (i == 0 or text[i - 1] == "\n") and not in_code:
            expandable = text.startswith("**>", i)
            if c == ">" or expandable:
                if quote is None:
                    kind = "ExpandableBlockQuote" if expandable else "BlockQuote"
                    quote = _Open(kind, out.utf16, _byte_offset(text, i), len(out.chars))
                i += 3 if expandable else 1
                continue
            if quote is not None:
                close_quote(out.utf16 - (1 if out.chars and out.chars[-1] == "\n" else 0))
        if c == "\\" and 0 < ord(at(i + 1) or "\0") <= 126:
            out.add(text[i + 1])
            i += 2
            continue
        if (quote is not None and quote.kind == "ExpandableBlockQuote" and not in_code
                and text.startswith("||", i) and at(i + 2) in ("", "\n")
                and not (stack and stack[-1].kind == "Spoiler")):
            close_quote(out.utf16)
            i += 2
            continue
        if c not in ("`" if in_code else _V2_RESERVED):
            out.add(c)
            i += 1
            continue
        top = stack[-1].kind if stack else ""
        closes = {
            "Bold": c == "*",
            "Italic": c == "_" and at(i + 1) != "_",
            "Code": c == "`",
            "Pre": text.startswith("```", i),
            "PreCode": text.startswith("```", i),
            "TextUrl": c == "]",
            "Underline": text.startswith("__", i),
            "Strikethrough": c == "~",
            "Spoiler": text.startswith("||", i),
            "CustomEmoji": c == "]",
        }.get(top, False)
        if not closes:
            start = i
            argument = ""
            if c == "_":
                kind = "Underline" if at(i + 1) == "_" else "Italic"
                i += 2 if kind == "Underline" else 1
            elif c in "*~[":
                kind = {"*": "Bold", "~": "Strikethrough", "[": "TextUrl"}[c]
                i += 1
            elif c == "|" and at(i + 1) == "|":
                kind = "Spoiler"
                i += 2
            elif c == "`" and text.startswith("```", i):
                i, argument = _skip_pre_start(text, i + 3)
                kind = "PreCode" if argument else "Pre"
            elif c == "`":
                kind = "Code"
                i += 1
            elif c == "!" and at(i + 1) == "[":
                kind = "CustomEmoji"
                i += 2
            else:
                raise _reserved(c)
            stack.append(_Open(kind, out.utf16, _byte_offset(text, start), len(out.chars),
                               argument))
            continue
        opened = stack.pop()
        argument = opened.argument
        keep = out.utf16 != opened.start
        if opened.kind in ("Underline", "Spoiler"):
            i += 1
        elif opened.kind in ("Pre", "PreCode"):
            i += 2
        elif opened.kind == "TextUrl":
            if at(i + 1) != "(":
                url = "".join(out.chars[opened.chars:])
            else:
                url, i = _read_url(text, i + 2)
            checked = _check_link(url)
            keep = keep and checked is not None
            argument = checked or ""
        elif opened.kind == "CustomEmoji":
            if at(i + 1) != "(":
                raise EntityParseError("Custom emoji entity must contain a tg://emoji URL")
            url, i = _read_url(text, i + 2)
            match = re.fullmatch(r"tg://emoji\?id=(\d+)", url)
            if match is None:
                raise EntityParseError("Invalid custom emoji URL specified")
            argument = match.group(1)
        if keep:
            entities.append(_entity(_V2_TYPES[opened.kind], opened.start,
                                    out.utf16 - opened.start, argument))
        i += 1
    if stack:
        raise EntityParseError(f"Can't find end of {stack[-1].kind} entity at byte offset "
                               f"{stack[-1].byte}")
    if quote is not None:
        close_quote(out.utf16 - (1 if out.chars and out.chars[-1] == "\n" else 0))
    return out.text(), entities


def _parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Legacy Markdown as tdlib's parse_markdown reads it: * _ ` ``` and [text](url)."""
    out = _Output()
    entities: list[dict[str, Any]] = []
    n = len(text)
    i = 0
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if c not in "_*`[":
            out.add(c)
            i += 1
            continue
        begin = i
        end_char = "]" if c == "[" else c
        i += 1
        is_pre = False
        language = ""
        if c == "`" and text.startswith("``", i):
            is_pre = True
            i, language = _skip_pre_start(text, i + 2)
        start = out.utf16
        chars = len(out.chars)
        while i < n and (text[i] != end_char or (is_pre and not text.startswith("``", i + 1))):
            out.add(text[i])
            i += 1
        if i >= n:
            raise EntityParseError(f"Can't find end of the entity starting at byte offset "
                                   f"{_byte_offset(text, begin)}")
        length = out.utf16 - start
        if c == "[":
            if text[i + 1:i + 2] == "(":
                close = text.find(")", i + 2)
                url, i = (text[i + 2:], n) if close < 0 else (text[i + 2:close], close)
            else:
                url = "".join(out.chars[chars:])
            checked = _check_link(url)
            if length and checked is not None:
                entities.append(_entity("text_link", start, length, checked))
        elif length:
            kind = {"_": "italic", "*": "bold"}.get(c, "pre" if is_pre else "code")
            entities.append(_entity(kind, start, length, language))
        i += 3 if is_pre else 1
    return out.text(), entities


_HTML_TAGS = {"a": "text_link", "b": "bold", "strong": "bold", "i": "italic", "em": "italic",
              "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough",
              "u": "underline", "ins": "underline", "tg-spoiler": "spoiler", "span": "spoiler",
              "tg-emoji": "custom_emoji", "pre": "pre", "code": "code",
              "blockquote": "blockquote"}
_HTML_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")


def _html_entity(text: str, i: int) -> tuple[str, int] | None:
    """The character of the HTML entity at ``i`` and the index after it; None if none."""
    match = _HTML_ENTITY.match(text, i)
    if match is None:
        return None
    if match.group(1):
        return {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}[match.group(1)], match.end()
    code = int(match.group(2)) if match.group(2) else int(match.group(3), 16)
    if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    return chr(code), match.end()


def _parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's HTML subset as tdlib's parse_html reads it."""
    out = _Output()
    entities: list[dict[str, Any]] = []
    stack: list[_Open] = []
    n = len(text)

    def at(k: int) -> str:
        return text[k] if k < n else ""

    i = 0
    while i < n:
        c = text[i]
        if c == "&":
            decoded = _html_entity(text, i)
            if decoded is not None:
                out.add(decoded[0])
                i = decoded[1]
                continue
        if c != "<":
            out.add(c)
            i += 1
            continue
        begin = i
        where = _byte_offset(text, begin)
        i += 1
        if at(i) != "/":
            while i < n and not text[i].isspace() and text[i] != ">":
                i += 1
            if i >= n:
                raise EntityParseError(f"Unclosed start tag at byte offset {where}")
            tag = text[begin + 1:i].lower()
            if tag not in _HTML_TAGS:
                raise EntityParseError(f'Unsupported start tag "{tag}" at byte offset {where}')
            argument = ""
            while at(i) != ">":
                while i < n and text[i].isspace():
                    i += 1
                if at(i) == ">":
                    break
                name_start = i
                while i < n and not text[i].isspace() and text[i] not in "=>":
                    i += 1
                name = text[name_start:i]
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {where}")
                if not name:
                    raise EntityParseError(f'Empty attribute name in the tag "{tag}" at byte '
                                           f"offset {where}")
                while i < n and text[i].isspace():
                    i += 1
                if at(i) != "=":
                    raise EntityParseError("Expected equal sign in declaration of an attribute "
                                           f'of the tag "{tag}" at byte offset {where}')
                i += 1
                while i < n and text[i].isspace():
                    i += 1
                if i >= n:
                    raise EntityParseError(f'Unclosed start tag "{tag}" at byte offset {where}')
                if text[i] not in "'\"":
                    token_start = i
                    while i < n and (text[i].isalnum() or text[i] in ".-"):
                        i += 1
                    value = text[token_start:i].lower()
                    if at(i) != ">" and not at(i).isspace():
                        raise EntityParseError("Unexpected end of name token at byte offset "
                                               f"{_byte_offset(text, token_start)}")
                else:
                    quote_char = text[i]
                    i += 1
                    chars: list[str] = []
                    while i < n and text[i] != quote_char:
                        decoded = _html_entity(text, i) if text[i] == "&" else None
                        if decoded is not None:
                            chars.append(decoded[0])
                            i = decoded[1]
                        else:
                            chars.append(text[i])
                            i += 1
                    i += 1 if i < n else 0
                    value = "".join(chars)
                if i >= n:
                    raise EntityParseError(f"Unclosed start tag at byte offset {where}")
                if tag == "a" and name == "href":
                    argument = value
                elif tag == "code" and name == "class" and value.startswith("language-"):
                    argument = value[len("language-"):]
                elif tag == "span" and name == "class" and value.startswith("tg-"):
                    argument = value[3:]
                elif tag == "tg-emoji" and name == "emoji-id":
                    argument = value
                elif tag == "blockquote" and name == "expandable":
                    argument = "1"
            if tag == "span" and argument != "spoiler":
                raise EntityParseError(f'Tag "span" must have class "tg-spoiler" at byte offset '
                                       f"{where}")
            stack.append(_Open(tag, out.utf16, where, len(out.chars), argument))
            i += 1
            continue
        if not stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {where}")
        while i < n and not text[i].isspace() and text[i] != ">":
            i += 1
        end_tag = text[begin + 2:i]
        while i < n and text[i].isspace():
            i += 1
        if at(i) != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {where}")
        opened = stack.pop()
        if end_tag and end_tag.lower() != opened.kind:
            raise EntityParseError(f'Unmatched end tag at byte offset {where}, expected '
                                   f'"</{opened.kind}>", found "</{end_tag}>"')
        i += 1
        length = out.utf16 - opened.start
        if not length:
            continue
        kind = _HTML_TAGS[opened.kind]
        argument = opened.argument
        if kind == "text_link":
            checked = _check_link(argument) if argument else None
            if checked is None:
                continue
            argument = checked
        elif kind == "blockquote" and argument:
            kind, argument = "expandable_blockquote", ""
        elif kind == "pre" and entities and entities[-1]["type"] == "code" \
                and (entities[-1]["offset"], entities[-1]["length"]) == (opened.start, length):
            argument = entities.pop().get("_language", "")  # <pre><code class="language-x">
        entity = _entity(kind, opened.start, length, argument)
        if kind == "code" and argument:
            entity["_language"] = argument
        entities.append(entity)
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].kind}"')
    for entity in entities:
        entity.pop("_language", None)
    return out.text(), entities


def _trim(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Strip surrounding whitespace as Telegram does, moving and cutting the entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    shift = _utf16_len(text[:len(text) - len(text.lstrip())])
    total = _utf16_len(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


_AUTO_ENTITIES = (
    ("bot_command", re.compile(r"(?<![\w/\\])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?"
                               r"(?![\w/@])")),
    ("mention", re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{3,32}(?![\w@])")),
    ("url", re.compile(r"(?<![\w@/])https?://[^\s<>\"]+[^\s<>\".,;:!?)\]'}]")),
)
_NOT_AUTO = ("code", "pre", "text_link", "custom_emoji")


def _auto_entities(text: str, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Add what Telegram finds by itself (commands, @mentions, URLs) outside code and links."""
    taken = [(e["offset"], e["offset"] + e["length"]) for e in entities
             if e["type"] in _NOT_AUTO]
    found = list(entities)
    for kind, pattern in _AUTO_ENTITIES:
        for match in pattern.finditer(text):
            start = _utf16_len(text[:match.start()])
            end = start + _utf16_len(match.group())
            if any(start < stop and begin < end for begin, stop in taken):
                continue
            found.append(_entity(kind, start, end - start))
            taken.append((start, end))
    return sorted(found, key=lambda e: (e["offset"], -e["length"]))


def parse_text(text: str, parse_mode: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The text and entities Telegram stores for a message sent with ``parse_mode``.

    ``parse_mode`` is ``MarkdownV2``, ``Markdown`` or ``HTML`` (any case) or None for
    plain text. Offsets are in UTF-16 units, as in the Bot API. EntityParseError carries
    tdlib's message; ValueError names an unknown ``parse_mode``. Surrounding whitespace is
    stripped and commands, mentions and URLs are found, as Telegram does.
    """
    mode = (parse_mode or "").strip().lower()
    parsers: dict[str, Callable[[str], tuple[str, list[dict[str, Any]]]]] = {
        "markdownv2": _parse_markdown_v2, "markdown": _parse_markdown, "html": _parse_html}
    if mode and mode not in parsers:
        raise ValueError(f"unsupported parse_mode {parse_mode!r}; use MarkdownV2, Markdown "
                         "or HTML")
    plain, entities = parsers[mode](text) if mode else (text, [])
    plain, entities = _trim(plain, entities)
    return plain, _auto_entities(plain, entities)


# ---------------------------------------------------------------------------------------
# The model. Mutated only under _State.lock.


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str  # HTTP method
    target: str  # path and query as sent
    api_method: str | None  # the Bot API method (as sent), None for other paths
    params: dict[str, Any]  # the parameters after decoding; uploaded files as "<N bytes>"
    status: int
    description: str | None  # the error description of a refused request


@dataclass(frozen=True)
class _User:
    id: int
    first_name: str
    username: str | None
    is_bot: bool = False


@dataclass
class _Message:
    chat_id: int
    message_id: int
    sender: int  # a user id, or the bot's
    date: int
    source: str | None  # as sent, with its markup; None for a message without text
    text: str | None  # as shown
    parse_mode: str | None
    entities: list[dict[str, Any]]
    reply_markup: dict[str, Any] | None = None  # an inline keyboard
    reply_to: dict[str, Any] | None = None  # the replied-to message, as embedded
    thread_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # sticker, new_chat_members
    edit_date: int | None = None
    edits: int = 0
    deleted: bool = False


@dataclass
class _Chat:
    id: int
    type: str  # private, group, supergroup
    title: str | None
    members: set[int]
    messages: dict[int, _Message] = field(default_factory=dict)
    last_message_id: int = 0


@dataclass
class _Pending:
    update: dict[str, Any]
    forced: bool = False  # redelivered: returned once more even below the confirmed offset


@dataclass
class _Query:
    id: str
    user_id: int
    chat_id: int
    message_id: int
    data: str
    created: float
    answered: bool = False


@dataclass
class _Webhook:
    url: str
    secret: str | None
    max_connections: int
    last_error_date: int | None = None
    last_error_message: str | None = None


@dataclass(frozen=True)
class _Described:
    """A result whose answer also carries a description ("Webhook was set")."""

    result: Any
    description: str


class _ApiError(Exception):
    """A Bot API error answer: ``{"ok": false, "error_code": status, "description": ...}``."""

    def __init__(self, status: int, description: str,
                 parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def response(self) -> Response:
        body: dict[str, Any] = {"ok": False, "error_code": self.status,
                                "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return Response.json(body, self.status)


# "Ports currently supported for webhooks: 443, 80, 88, 8443" (core.telegram.org/bots/api,
# setWebhook; core.telegram.org/bots/webhooks): any other port, or http, is refused.
WEBHOOK_PORTS = frozenset({443, 80, 88, 8443})


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, with the scheme's default port spelt out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{(parts.hostname or '').lower()}:{parts.port or default}"


def _bad(description: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {description}")


class _State:
    """Everything the simulator knows, behind one lock; ``changed`` wakes every waiter."""

    def __init__(self, bot: _User, clock: Callable[[], float], privacy_mode: bool,
                 callback_query_ttl: float) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()
        self.bot = bot
        self.clock = clock
        self.privacy_mode = privacy_mode
        self.callback_query_ttl = callback_query_ttl
        self.chat_interval = 0.0
        # Public webhook origins and where they really lead (the reverse proxy in front of
        # a bot): Telegram posts to the public URL; here it reaches the local listener.
        self.routes: dict[str, str] = {}
        self.last_sent: dict[int, float] = {}
        self.users: dict[int, _User] = {}
        self.chats: dict[int, _Chat] = {}
        self.blocked: set[int] = set()
        self.pending: list[_Pending] = []
        self.next_update_id = 1000
        self.allowed: frozenset[str] = _DEFAULT_ALLOWED
        self.withheld: list[dict[str, Any]] = []
        self.poll_generation = 0
        self.waiting_polls = 0
        self.webhook: _Webhook | None = None
        self.deliveries: list[dict[str, Any]] = []
        self.attempts: dict[int, int] = {}
        self.retry_at = 0.0
        self.queries: dict[str, _Query] = {}
        self.answers: list[dict[str, Any]] = []
        self.commands: dict[tuple[str, str], list[dict[str, str]]] = {}
        self.stopping = False
        self.counter = 0

    def routed(self, url: str) -> str:
        """``url`` with its public origin replaced by the local one it is routed to."""
        with self.lock:
            local = self.routes.get(_origin(url))
        if local is None:
            return url
        parts = urlsplit(url)
        return local.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def now(self) -> int:
        return int(self.clock())

    # -- people and chats ------------------------------------------------------------

    def user(self, user_id: int) -> _User:
        found = self.users.get(user_id)
        if found is None:
            known = ", ".join(f"{u.username or u.first_name} ({u.id})" for u in self.users.values())
            raise LookupError(f"no user {user_id}; known users: {known}; add one with add_user()")
        return found

    def chat(self, chat_id: int) -> _Chat | None:
        """A group, or the private chat with a known user (whose id is the user's)."""
        found = self.chats.get(chat_id)
        if found is None and chat_id in self.users:
            found = self.chats[chat_id] = _Chat(chat_id, "private", None, {chat_id})
        return found

    def known_chat(self, chat_id: int) -> _Chat:
        found = self.chat(chat_id)
        if found is None:
            groups = ", ".join(f"{c.title} ({c.id})" for c in self.chats.values()
                               if c.type != "private")
            raise LookupError(f"no chat {chat_id}: use a user's id for the private chat or a "
                              f"group ({groups}); add one with add_group()")
        return found

    def user_in_chat(self, user_id: int, chat_id: int | None) -> tuple[_User, _Chat]:
        user = self.user(user_id)
        chat = self.known_chat(user_id if chat_id is None else chat_id)
        if chat.type == "private" and chat.id != user_id:
            raise ValueError(f"chat {chat.id} is the private chat of another user; user "
                             f"{user_id} talks to the bot in chat {user_id}")
        if user_id not in chat.members:
            raise ValueError(f"user {user_id} is not a member of {chat.title!r} ({chat.id}); "
                             "call member_joined() first")
        return user, chat

    # -- JSON ------------------------------------------------------------------------

    def user_json(self, user: _User) -> dict[str, Any]:
        data: dict[str, Any] = {"id": user.id, "is_bot": user.is_bot,
                                "first_name": user.first_name}
        if user.username:
            data["username"] = user.username
        if not user.is_bot:
            data["language_code"] = "en"
        return data

    def chat_json(self, chat: _Chat) -> dict[str, Any]:
        if chat.type == "private":
            user = self.users[chat.id]
            data: dict[str, Any] = {"id": chat.id, "type": "private",
                                    "first_name": user.first_name}
            if user.username:
                data["username"] = user.username
            return data
        return {"id": chat.id, "type": chat.type, "title": chat.title}

    def message_json(self, message: _Message, *, embedded: bool = False) -> dict[str, Any]:
        """The Message object; ``embedded`` drops its own reply (Telegram nests one level)."""
        sender = self.bot if message.sender == self.bot.id else self.users[message.sender]
        data: dict[str, Any] = {"message_id": message.message_id,
                                "from": self.user_json(sender),
                                "chat": self.chat_json(self.chats[message.chat_id]),
                                "date": message.date}
        if message.thread_id is not None:
            data["message_thread_id"] = message.thread_id
        if message.reply_to is not None and not embedded:
            data["reply_to_message"] = copy.deepcopy(message.reply_to)
        if message.edit_date is not None:
            data["edit_date"] = message.edit_date
        if message.text is not None:
            data["text"] = message.text
            if message.entities:
                data["entities"] = copy.deepcopy(message.entities)
        data.update(copy.deepcopy(message.extra))
        if message.reply_markup is not None:
            data["reply_markup"] = copy.deepcopy(message.reply_markup)
        return data

    def snapshot(self, message: _Message) -> dict[str, Any]:
        """What bot_messages() shows of one of the bot's messages."""
        return {"message_id": message.message_id, "chat_id": message.chat_id,
                "date": message.date, "text": message.source, "plain_text": message.text,
                "parse_mode": message.parse_mode,
                "entities": copy.deepcopy(message.entities),
                "reply_markup": copy.deepcopy(message.reply_markup),
                "edits": message.edits, "edit_date": message.edit_date,
                "deleted": message.deleted,
                "reply_to_message_id": (message.reply_to or {}).get("message_id"),
                "message_thread_id": message.thread_id,
                "message": self.message_json(message)}

    # -- messages and updates ----------------------------------------------------------

    def add_message(self, chat: _Chat, sender: int, **fields: Any) -> _Message:
        chat.last_message_id += 1
        message = _Message(chat.id, chat.last_message_id, sender, self.now(), **fields)
        chat.messages[message.message_id] = message
        self.changed.notify_all()
        return message

    def reply_json(self, chat: _Chat, message_id: int | None) -> dict[str, Any] | None:
        """The embedded message a user's reply points at; LookupError if it is not there."""
        if message_id is None:
            return None
        found = chat.messages.get(message_id)
        if found is None or found.deleted:
            raise LookupError(f"no message {message_id} in chat {chat.id} to reply to")
        return self.message_json(found, embedded=True)

    def enqueue(self, kind: str, payload: dict[str, Any], chat: _Chat | None,
                reply_to: dict[str, Any] | None = None) -> dict[str, Any]:
        """Make an update; queue it unless allowed_updates or privacy mode withhold it."""
        update = {"update_id": self.next_update_id, kind: payload}
        self.next_update_id += 1
        reason = None
        if kind not in self.allowed:
            reason = f"{kind} is not in allowed_updates {sorted(self.allowed)}"
        elif self.privacy_mode and chat is not None and chat.type != "private" \
                and kind in ("message", "edited_message") \
                and not self._meant_for_bot(payload, reply_to):
            reason = "privacy mode: the bot only sees commands, mentions and replies in groups"
        if reason is not None:
            self.withheld.append({"update": copy.deepcopy(update), "reason": reason})
        else:
            self.pending.append(_Pending(copy.deepcopy(update)))
            self.changed.notify_all()
        return update

    def _meant_for_bot(self, payload: dict[str, Any], reply_to: dict[str, Any] | None) -> bool:
        text = payload.get("text") or ""
        return (text.startswith("/") or f"@{self.bot.username}".lower() in text.lower()
                or "new_chat_members" in payload
                or (reply_to is not None and reply_to["from"]["id"] == self.bot.id))

    def confirm(self, offset: int) -> None:
        """getUpdates' offset: forget what came before it (negative: keep the last -offset)."""
        if offset > 0:
            self.pending = [p for p in self.pending if p.forced or p.update["update_id"] >= offset]
        elif offset < 0:
            keep = {id(p) for p in self.pending[offset:]}
            self.pending = [p for p in self.pending if p.forced or id(p) in keep]

    def deliverable(self, offset: int, limit: int) -> list[_Pending]:
        found = [p for p in self.pending
                 if p.forced or offset <= 0 or p.update["update_id"] >= offset]
        found.sort(key=lambda p: p.update["update_id"])
        return found[:limit]

    def drop_pending(self) -> None:
        self.pending = []
        self.attempts.clear()


# ---------------------------------------------------------------------------------------
# Parameters as the Bot API reads them


def _str(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def _int(params: dict[str, Any], name: str, default: int = 0) -> int:
    """An integer; like the Bot API, garbage reads as 0."""
    value = params.get(name)
    if value is None or value == "":
        return default
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return int(value)
    text = _str(params, name) or ""
    try:
        return int(text.strip())
    except ValueError:
        try:
            return int(float(text))
        except ValueError:
            return 0


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    if isinstance(value, bool):
        return value
    return (_str(params, name) or "").strip().lower() in ("true", "1", "yes")


def _json(params: dict[str, Any], name: str, what: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {what} JSON object") from None
    return value


def _allowed_updates(value: Any) -> frozenset[str] | None:
    """The update types a bot asked for; None when it did not ask."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise _bad("can't parse allowed updates JSON array")
    names = {str(name).lower() for name in value} & set(_UPDATE_TYPES)
    return frozenset(names) if value else _DEFAULT_ALLOWED


def _request_params(request: Request) -> dict[str, Any]:
    """Parameters from the query string and a form, JSON or multipart body."""
    params: dict[str, Any] = {name: values[0] for name, values in request.query.items()}
    body = request.body
    if not body:
        return params
    content_type = request.header("Content-Type") or ""
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise _bad("can't parse JSON encoded request body") from None
        if not isinstance(data, dict):
            raise _bad("JSON object expected as request body")
        params.update(data)
    elif kind == "multipart/form-data":
        parsed = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        if not parsed.is_multipart():
            raise _bad("can't parse multipart/form-data request body")
        for part in parsed.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str):
                continue
            payload = part.get_payload(decode=True)
            raw = payload if isinstance(payload, bytes) else b""
            params[name] = raw if part.get_filename() else raw.decode("utf-8", "replace")
    else:  # application/x-www-form-urlencoded, or no type at all
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({name: values[0] for name, values in form.items()})
    return params


def _loggable(params: dict[str, Any]) -> dict[str, Any]:
    return {name: f"<{len(value)} bytes>" if isinstance(value, bytes) else value
            for name, value in params.items()}


# ---------------------------------------------------------------------------------------
# The Bot API methods


class _BotApi:
    """One function per Bot API method: decoded parameters in, ``result`` out."""

    def __init__(self, state: _State, token: str) -> None:
        self.state = state
        self.token = token
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getme": self.get_me, "getupdates": self.get_updates,
            "setwebhook": self.set_webhook, "deletewebhook": self.delete_webhook,
            "getwebhookinfo": self.get_webhook_info, "sendmessage": self.send_message,
            "editmessagetext": self.edit_message_text,
            "editmessagereplymarkup": self.edit_message_reply_markup,
            "deletemessage": self.delete_message,
            "answercallbackquery": self.answer_callback_query,
            "sendchataction": self.send_chat_action, "setmycommands": self.set_my_commands,
            "getmycommands": self.get_my_commands, "deletemycommands": self.delete_my_commands,
        }

    def has(self, method: str) -> bool:
        return method.lower() in self.methods

    def call(self, method: str, params: dict[str, Any]) -> tuple[Any, str | None]:
        """The result and optional description; _ApiError for a refusal."""
        with self.state.lock:
            result = self.methods[method.lower()](params)
        if isinstance(result, _Described):
            return result.result, result.description
        return result, None

    # -- helpers ---------------------------------------------------------------------

    def target(self, params: dict[str, Any]) -> _Chat:
        """The chat a method acts in, or the Bot API's error."""
        raw = _str(params, "chat_id")
        if raw is None or not raw.strip():
            raise _bad("chat_id is empty")
        try:
            chat_id = int(raw.strip())
        except ValueError:
            raise _bad("chat not found") from None
        chat = self.state.chat(chat_id)
        if chat is None:
            raise _bad("chat not found")
        if chat.type == "private" and chat.id in self.state.blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def formatted(self, params: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
        """The source text, shown text and entities of a sendMessage or editMessageText."""
        source = _str(params, "text")
        if not source:
            raise _bad("message text is empty")
        parse_mode = _str(params, "parse_mode")
        explicit = _json(params, "entities", "entities")
        try:
            if explicit is not None and not parse_mode:
                if not isinstance(explicit, list):
                    raise _bad("can't parse entities JSON object")
                plain, entities = _trim(source, [dict(e) for e in explicit if isinstance(e, dict)])
                entities = _auto_entities(plain, entities)
            else:
                plain, entities = parse_text(source, parse_mode)
        except EntityParseError as exc:
            raise _bad(f"can't parse entities: {exc}") from None
        except ValueError:
            raise _bad("unsupported parse_mode") from None
        if not plain:
            raise _bad("message text is empty")
        if len(plain) > MAX_TEXT_LENGTH:
            raise _bad("message is too long")
        return source, plain, entities

    @staticmethod
    def markup(params: dict[str, Any]) -> dict[str, Any] | None:
        """The inline keyboard the message will show (None: none), validated like Telegram."""
        raw = _json(params, "reply_markup", "reply keyboard markup")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            raise _bad("object expected as reply markup")
        if "inline_keyboard" not in raw:
            if any(key in raw for key in ("keyboard", "remove_keyboard", "force_reply")):
                return None  # reply keyboards are not part of the Message object
            raise _bad("can't parse reply keyboard markup JSON object")
        rows = raw["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup should be an Array '
                       "of Arrays")
        keyboard = []
        for row in rows:
            buttons = []
            for button in row:
                if not isinstance(button, dict):
                    raise _bad("can't parse inline keyboard button: InlineKeyboardButton must "
                               "be an Object")
                text = button.get("text")
                if not isinstance(text, str):
                    raise _bad('can\'t parse inline keyboard button: Field "text" must be of '
                               "type String")
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode()) <= 64:
                        raise _bad("BUTTON_DATA_INVALID")
                elif "url" in button:
                    if not isinstance(button["url"], str) or _check_link(button["url"]) is None:
                        raise _bad("BUTTON_URL_INVALID")
                elif not any(action in button for action in _BUTTON_ACTIONS):
                    raise _bad("can't parse inline keyboard button: Text buttons are unallowed "
                               "in the inline keyboard")
                buttons.append({"text": text, **{k: v for k, v in button.items() if k != "text"}})
            if buttons:
                keyboard.append(buttons)
        return {"inline_keyboard": keyboard} if keyboard else None

    def reply_to(self, chat: _Chat, params: dict[str, Any]) -> dict[str, Any] | None:
        """The message a sendMessage replies to (reply_parameters or reply_to_message_id)."""
        raw = _json(params, "reply_parameters", "reply parameters")
        allow = _bool(params, "allow_sending_without_reply")
        where = chat
        if isinstance(raw, dict):
            message_id = _int(raw, "message_id")
            allow = allow or _bool(raw, "allow_sending_without_reply")
            if raw.get("chat_id") not in (None, ""):
                where = self.target(raw)
        elif raw is not None:
            raise _bad("can't parse reply parameters JSON object")
        else:
            message_id = _int(params, "reply_to_message_id")
            if not message_id:
                return None
        found = where.messages.get(message_id)
        if found is None or found.deleted:
            if allow:
                return None
            raise _bad("message to be replied not found")
        return self.state.message_json(found, embedded=True)

    def editable(self, params: dict[str, Any], action: str) -> _Message:
        if params.get("inline_message_id") not in (None, ""):
            raise _bad("MESSAGE_ID_INVALID")  # no inline mode here
        chat = self.target(params)
        message_id = _int(params, "message_id")
        if not message_id:
            raise _bad("message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad(f"message to {action} not found")
        return message

    # -- methods ---------------------------------------------------------------------

    def get_me(self, params: dict[str, Any]) -> dict[str, Any]:
        bot = self.state.user_json(self.state.bot)
        bot.update({"can_join_groups": True,
                    "can_read_all_group_messages": not self.state.privacy_mode,
                    "supports_inline_queries": False, "can_connect_to_business": False,
                    "has_main_web_app": False})
        return bot

    def get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        state = self.state
        offset = _int(params, "offset")
        limit = min(max(_int(params, "limit", 100), 1), 100)
        timeout = min(max(_int(params, "timeout"), 0), _LONG_POLL_MAX)
        allowed = _allowed_updates(_json(params, "allowed_updates", "allowed updates"))
        if state.webhook is not None:
            raise _ApiError(409, _WEBHOOK_ACTIVE)
        state.poll_generation += 1
        mine = state.poll_generation
        state.changed.notify_all()  # an older waiting poll now ends with 409
        if allowed is not None:
            state.allowed = allowed
        state.confirm(offset)
        deadline = time.monotonic() + timeout
        state.waiting_polls += 1
        try:
            while True:
                if state.poll_generation != mine:
                    raise _ApiError(409, _TERMINATED)
                if state.webhook is not None:
                    raise _ApiError(409, _TERMINATED_BY_WEBHOOK)
                batch = state.deliverable(offset, limit)
                remaining = deadline - time.monotonic()
                if batch or remaining <= 0 or state.stopping:
                    break
                state.changed.wait(remaining)
        finally:
            state.waiting_polls -= 1
        for item in batch:
            if item.forced:
                state.pending.remove(item)
        return [copy.deepcopy(item.update) for item in batch]

    def set_webhook(self, params: dict[str, Any]) -> _Described:
        state = self.state
        url = (_str(params, "url") or "").strip()
        if not url:
            return self.delete_webhook(params)
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise _bad("invalid webhook URL specified") from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise _bad("invalid webhook URL specified")
        if parts.scheme.lower() != "https":
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        if (port or 443) not in WEBHOOK_PORTS:
            raise _bad("bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443")
        secret = _str(params, "secret_token") or None
        if secret is not None:
            if len(secret) > 256:
                raise _bad("secret token is too long")
            if not _SECRET_TOKEN.fullmatch(secret):
                raise _bad("secret token contains unallowed characters")
        allowed = _allowed_updates(_json(params, "allowed_updates", "allowed updates"))
        max_connections = min(max(_int(params, "max_connections", 40), 1), 100)
        same = state.webhook is not None and (state.webhook.url, state.webhook.secret) == (
            url, secret)
        if allowed is not None:
            state.allowed = allowed
        if _bool(params, "drop_pending_updates"):
            state.drop_pending()
        state.webhook = _Webhook(url, secret, max_connections)
        state.retry_at = 0.0
        state.changed.notify_all()  # ends a waiting getUpdates, wakes the delivery thread
        return _Described(True, "Webhook is already set" if same else "Webhook was set")

    def delete_webhook(self, params: dict[str, Any]) -> _Described:
        state = self.state
        if _bool(params, "drop_pending_updates"):
            state.drop_pending()
        description = ("Webhook was deleted" if state.webhook is not None
                       else "Webhook is already deleted")
        state.webhook = None
        state.changed.notify_all()
        return _Described(True, description)

    def get_webhook_info(self, params: dict[str, Any]) -> dict[str, Any]:
        state = self.state
        hook = state.webhook
        info: dict[str, Any] = {"url": hook.url if hook else "", "has_custom_certificate": False,
                                "pending_update_count": len(state.pending)}
        if hook is not None:
            info["max_connections"] = hook.max_connections
            info["ip_address"] = "127.0.0.1"
            if state.allowed != _DEFAULT_ALLOWED:
                info["allowed_updates"] = sorted(state.allowed)
            if hook.last_error_date is not None:
                info["last_error_date"] = hook.last_error_date
                info["last_error_message"] = hook.last_error_message
        return info

    def send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self.target(params)
        self.flood_control(chat.id)
        source, plain, entities = self.formatted(params)
        markup = self.markup(params)
        reply = self.reply_to(chat, params)
        thread = _int(params, "message_thread_id") or None
        message = self.state.add_message(
            chat, self.state.bot.id, source=source, text=plain,
            parse_mode=_str(params, "parse_mode") or None, entities=entities,
            reply_markup=markup, reply_to=reply, thread_id=thread)
        return self.state.message_json(message)

    def flood_control(self, chat_id: int) -> None:
        """429 with retry_after when the bot sends to ``chat_id`` faster than allowed."""
        interval = self.state.chat_interval
        if interval <= 0:
            return
        now = self.state.clock()
        last = self.state.last_sent.get(chat_id)
        if last is not None and now - last < interval:
            wait = max(1, math.ceil(interval - (now - last)))
            raise _ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        self.state.last_sent[chat_id] = now

    def edit_message_text(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.editable(params, "edit")
        if message.sender != self.state.bot.id:
            raise _bad("message can't be edited")
        source, plain, entities = self.formatted(params)
        markup = self.markup(params)  # absent: the keyboard goes, as on Telegram
        if (plain, entities, markup) == (message.text, message.entities, message.reply_markup):
            raise _ApiError(400, _NOT_MODIFIED)
        message.source, message.text, message.entities = source, plain, entities
        message.parse_mode = _str(params, "parse_mode") or None
        message.reply_markup = markup
        return self._edited(message)

    def edit_message_reply_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self.editable(params, "edit")
        if message.sender != self.state.bot.id:
            raise _bad("message can't be edited")
        markup = self.markup(params)
        if markup == message.reply_markup:
            raise _ApiError(400, _NOT_MODIFIED)
        message.reply_markup = markup
        return self._edited(message)

    def _edited(self, message: _Message) -> dict[str, Any]:
        message.edits += 1
        message.edit_date = self.state.now()
        self.state.changed.notify_all()
        return self.state.message_json(message)

    def delete_message(self, params: dict[str, Any]) -> bool:
        message = self.editable(params, "delete")
        message.deleted = True
        self.state.changed.notify_all()
        return True

    def answer_callback_query(self, params: dict[str, Any]) -> bool:
        state = self.state
        query_id = _str(params, "callback_query_id") or ""
        query = state.queries.get(query_id)
        if query is None or query.answered \
                or state.clock() - query.created > state.callback_query_ttl:
            raise _ApiError(400, _QUERY_TOO_OLD)
        query.answered = True
        state.answers.append({
            "callback_query_id": query_id, "user_id": query.user_id, "chat_id": query.chat_id,
            "message_id": query.message_id, "data": query.data,
            "text": _str(params, "text"), "show_alert": _bool(params, "show_alert"),
            "url": _str(params, "url"), "cache_time": _int(params, "cache_time"),
        })
        state.changed.notify_all()
        return True

    def send_chat_action(self, params: dict[str, Any]) -> bool:
        self.target(params)
        if (_str(params, "action") or "") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _commands_key(self, params: dict[str, Any]) -> tuple[str, str]:
        scope = _json(params, "scope", "bot command scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), _str(params, "language_code") or ""

    def set_my_commands(self, params: dict[str, Any]) -> bool:
        commands = _json(params, "commands", "bot commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        clean = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand: object expected")
            name = str(command.get("command", "")).lower().lstrip("/")
            description = str(command.get("description", ""))
            if not _COMMAND_NAME.fullmatch(name):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
            clean.append({"command": name, "description": description})
        self.state.commands[self._commands_key(params)] = clean
        return True

    def get_my_commands(self, params: dict[str, Any]) -> list[dict[str, str]]:
        return copy.deepcopy(self.state.commands.get(self._commands_key(params), []))

    def delete_my_commands(self, params: dict[str, Any]) -> bool:
        self.state.commands.pop(self._commands_key(params), None)
        return True


# ---------------------------------------------------------------------------------------
# Webhook delivery


class _Deliverer:
    """Posts queued updates to the webhook from one thread, oldest first, retrying failures."""

    def __init__(self, state: _State, retry_delay: float, max_attempts: int,
                 timeout: float) -> None:
        self.state = state
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.thread = threading.Thread(target=self._run, name="telegram-webhook", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=2)
            self.thread = None

    def _next(self) -> tuple[_Pending, _Webhook] | None:
        """Wait for something to deliver; None when stopping."""
        state = self.state
        with state.changed:
            while not state.stopping:
                hook = state.webhook
                wait = state.retry_at - time.monotonic()
                if hook is not None and state.pending and wait <= 0:
                    item = min(state.pending, key=lambda p: p.update["update_id"])
                    return item, hook
                state.changed.wait(wait if hook is not None and state.pending else None)
            return None

    def _run(self) -> None:
        state = self.state
        while (job := self._next()) is not None:
            item, hook = job
            status, error = self._post(hook, item.update)
            with state.changed:
                update_id = item.update["update_id"]
                attempt = state.attempts.get(update_id, 0) + 1
                state.deliveries.append({"update_id": update_id, "url": hook.url,
                                         "attempt": attempt, "status": status, "error": error,
                                         "at": time.time()})
                done = error is None or attempt >= self.max_attempts
                if error is not None:
                    hook.last_error_date = state.now()
                    hook.last_error_message = error
                    state.retry_at = time.monotonic() + min(
                        self.retry_delay * 2 ** (attempt - 1), 30.0) if not done else 0.0
                if done:
                    state.attempts.pop(update_id, None)
                    state.pending = [p for p in state.pending if p is not item]
                else:
                    state.attempts[update_id] = attempt
                state.changed.notify_all()

    def _post(self, hook: _Webhook, update: dict[str, Any]) -> tuple[int | None, str | None]:
        """One delivery: the status (None without an answer) and an error for the info."""
        parts = urlsplit(self.state.routed(hook.url))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json"}  # exactly this: PTB refuses anything else
        if hook.secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret
        body = json.dumps(update, ensure_ascii=False).encode()
        connection: http.client.HTTPConnection
        if parts.scheme.lower() == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout,
                context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                    timeout=self.timeout)
        try:
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
        except TimeoutError:
            return None, "Read timeout expired"
        except ConnectionRefusedError:
            return None, "Connection refused"
        except (OSError, http.client.HTTPException) as exc:
            return None, f"Connection error: {exc}"
        finally:
            connection.close()
        if 200 <= answer.status < 300:
            return answer.status, None
        return answer.status, f"Wrong response from the webhook: {answer.status} {answer.reason}"


# ---------------------------------------------------------------------------------------
# HTTP


def _fault_response(status: int) -> Response:
    """An injected failure (fail_next), in the Bot API's envelope."""
    if status == 429:
        return _ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1}).response()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _ApiError(status, f"{phrase} (injected by TelegramSimulator.fail_next())").response()


class _App:
    """The HTTP face: the Bot API under /bot<token>/ and the control API under /_sim/."""

    def __init__(self, simulator: TelegramSimulator, state: _State, token: str) -> None:
        self.simulator = simulator
        self.state = state
        self.token = token
        self.api = _BotApi(state, token)

    def __call__(self, request: Request) -> Response:
        api_method: str | None = None
        params: dict[str, Any] = {}
        if request.segments[:1] == ("_sim",):
            response = self._control(request)
        else:
            failure = self.state.faults.hold(unquote(request.raw_path))
            try:
                if failure is not None:
                    response = _fault_response(failure)
                else:
                    api_method = self._method(request)
                    params = _request_params(request)
                    result, description = self.api.call(api_method, params)
                    body: dict[str, Any] = {"ok": True, "result": result}
                    if description:
                        body["description"] = description
                    response = Response.json(body)
            except _ApiError as error:
                response = error.response()
        description = None
        if response.status >= 400 and response.body.startswith(b"{"):
            description = json.loads(response.body).get("description")
        self.state.log.append(RecordedRequest(request.method, request.target, api_method,
                                              _loggable(params), response.status, description))
        return response

    def _method(self, request: Request) -> str:
        """The method of ``/bot<token>/<method>``; 401 for another token, 404 otherwise."""
        segments = request.segments
        if len(segments) != 2 or not segments[0].startswith("bot"):
            raise _ApiError(404, "Not Found")
        if not secrets.compare_digest(segments[0][3:].encode(), self.token.encode()):
            raise _ApiError(401, "Unauthorized")
        if not self.api.has(segments[1]):
            raise _ApiError(404, "Not Found")
        return segments[1]

    def _control(self, request: Request) -> Response:
        """``/_sim/``: play a user or read a chat over HTTP (see the module docstring)."""
        sim = self.simulator
        parts = request.segments[1:]
        try:
            body = json.loads(request.body) if request.body else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if not parts and request.method == "GET":
                return Response.json({"ok": True, **sim.overview()})
            if len(parts) == 3 and parts[0] == "users" and request.method == "POST":
                user_id = int(parts[1])
                if parts[2] == "send":
                    update = sim.send_text(
                        user_id, str(body.get("text", "")),
                        chat_id=None if body.get("chat_id") is None else int(body["chat_id"]),
                        reply_to_message_id=(None if body.get("reply_to_message_id") is None
                                             else int(body["reply_to_message_id"])))
                    return Response.json({"ok": True, "update": update})
                if parts[2] == "press":
                    update = sim.press(user_id, int(body["chat_id"]), int(body["message_id"]),
                                       data=body.get("data"), title=body.get("title"),
                                       force=bool(body.get("force", False)))
                    return Response.json({"ok": True, "update": update})
            if len(parts) == 3 and parts[0] == "chats" and parts[2] == "messages" \
                    and request.method == "GET":
                return Response.json({"ok": True, "messages": sim.bot_messages(int(parts[1]))})
        except KeyError as exc:
            return Response.json({"ok": False, "error": f"missing field {exc}"}, 400)
        except LookupError as exc:
            return Response.json({"ok": False, "error": str(exc)}, 404)
        except (ValueError, TypeError) as exc:
            return Response.json({"ok": False, "error": str(exc)}, 400)
        routes = ["GET /_sim/", "POST /_sim/users/<id>/send", "POST /_sim/users/<id>/press",
                  "GET /_sim/chats/<chat_id>/messages"]
        return Response.json({"ok": False, "error": f"no such control route; try one of: "
                                                    f"{', '.join(routes)}"}, 404)


# ---------------------------------------------------------------------------------------
# The public face


class TelegramSimulator(SimulatorBase[RecordedRequest]):
    """A Telegram Bot API server in a thread, with users a test can play.

    ``token`` is the one bot token accepted (its number is the bot's user id).
    ``privacy_mode`` makes group messages reach the bot only when meant for it (commands,
    mentions, replies), as for a bot with privacy mode on. ``retry_delay``,
    ``max_delivery_attempts`` and ``webhook_timeout`` steer webhook delivery;
    ``callback_query_ttl`` is how long a button press may wait for its answer. ``port=0``
    picks a free port; read ``url`` after ``start()``.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        bot_username: str = DEFAULT_BOT_USERNAME,
        bot_name: str = "opsbot",
        host: str = "127.0.0.1",
        port: int = 0,
        privacy_mode: bool = False,
        retry_delay: float = 0.2,
        max_delivery_attempts: int = 5,
        webhook_timeout: float = 10.0,
        callback_query_ttl: float = 15.0,
        chat_interval: float = 0.0,
        routes: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ValueError(f"token must look like a Bot API token ('123456:ABC-def_1'), got "
                             f"{token!r}")
        if not _USERNAME.fullmatch(bot_username) or not bot_username.lower().endswith("bot"):
            raise ValueError("bot_username must be 5-32 letters, digits or _ and end in 'bot', "
                             f"got {bot_username!r}")
        if retry_delay < 0 or max_delivery_attempts < 1 or webhook_timeout <= 0:
            raise ValueError("retry_delay must be >= 0, max_delivery_attempts >= 1 and "
                             "webhook_timeout > 0")
        self.token = token
        self.bot_username = bot_username
        self.bot_name = bot_name
        self.bot_id = int(match.group(1))
        self._state = _State(_User(self.bot_id, bot_name, bot_username, is_bot=True), clock,
                             privacy_mode, callback_query_ttl)
        self._state.chat_interval = chat_interval
        for public, local in (routes or {}).items():
            self.route(public, local)
        self._deliverer = _Deliverer(self._state, retry_delay, max_delivery_attempts,
                                     webhook_timeout)
        super().__init__(_App(self, self._state, token), faults=self._state.faults,
                         requests=self._state.log, host=host, port=port,
                         name="telegram-simulator", server_name="nginx/1.18.0")
        for user_id, name in ((ALICE, "Alice"), (BOB, "Bob"), (CAROL, "Carol")):
            self.add_user(user_id, name, name.lower())
        self.add_group(OPS_GROUP, "ops", members=(ALICE, BOB, CAROL))

    def __repr__(self) -> str:
        return (f"TelegramSimulator({self._location()}, bot=@{self.bot_username}, "
                "token='**********')")

    # -- lifecycle (url, port, with: SimulatorBase) --------------------------------

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT`` without a trailing slash; a client adds ``/bot<token>/``."""
        return self.url.rstrip("/")

    def start(self, stack: object | None = None) -> None:
        """Serve, and deliver to a webhook once one is set."""
        with self._state.lock:
            self._state.stopping = False
        super().start(stack)
        self._deliverer.start()

    def stop(self) -> None:
        """End waiting polls and the delivery thread, then stop serving; safe to call twice."""
        with self._state.changed:
            self._state.stopping = True
            self._state.changed.notify_all()
        self._deliverer.join()
        super().stop()

    def describe(self) -> str:
        """One line for the demo banner."""
        return f"Telegram Bot API at {self.url} (bot @{self.bot_username})"

    def env(self) -> dict[str, str]:
        """TELEGRAM_TOKEN and TELEGRAM_API_URL (the root; clients add /bot<token>/<method>),
        and TELEGRAM_ALLOWED_CHATS: the team's ops group, where the demo talks."""
        return {"TELEGRAM_TOKEN": self.token, "TELEGRAM_API_URL": self.api_url,
                "TELEGRAM_ALLOWED_CHATS": str(OPS_GROUP)}

    # -- the world -------------------------------------------------------------------

    def add_user(self, user_id: int, first_name: str, username: str | None = None) -> None:
        """A person who can talk to the bot (their private chat's id is ``user_id``)."""
        if isinstance(user_id, bool) or not isinstance(user_id, int) or user_id <= 0:
            raise ValueError(f"user_id must be a positive int, got {user_id!r}")
        if not first_name:
            raise ValueError("first_name must not be empty")
        if username is not None and not _PERSON_USERNAME.fullmatch(username.lstrip("@")):
            raise ValueError(f"username must be 3-32 letters, digits or _, got {username!r}")
        with self._state.lock:
            if user_id in self._state.users or user_id == self.bot_id:
                raise ValueError(f"user {user_id} exists already")
            self._state.users[user_id] = _User(user_id, first_name,
                                               username.lstrip("@") if username else None)

    def add_group(self, chat_id: int, title: str, *, members: Iterable[int] = ()) -> None:
        """A group the bot is in: a supergroup when the id starts with -100, else a group."""
        if isinstance(chat_id, bool) or not isinstance(chat_id, int) or chat_id >= 0:
            raise ValueError(f"a group's chat_id must be a negative int, got {chat_id!r}")
        with self._state.lock:
            if chat_id in self._state.chats:
                raise ValueError(f"chat {chat_id} exists already")
            people = set(members)
            for user_id in people:
                self._state.user(user_id)
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            self._state.chats[chat_id] = _Chat(chat_id, kind, title, people)

    def block_bot(self, user_id: int, blocked: bool = True) -> None:
        """The user blocks (or unblocks) the bot: sending to them is then 403 Forbidden."""
        with self._state.lock:
            self._state.user(user_id)
            if blocked:
                self._state.blocked.add(user_id)
            else:
                self._state.blocked.discard(user_id)

    # -- playing the users -------------------------------------------------------------

    def send_text(self, user_id: int, text: str, *, chat_id: int | None = None,
                  reply_to_message_id: int | None = None) -> dict[str, Any]:
        """The user types ``text`` (in their private chat unless ``chat_id``); the update.

        Commands, @mentions and URLs get their entities as on Telegram, in UTF-16 units.
        A reply embeds the replied-to message as ``reply_to_message``.
        """
        if not text or not text.strip():
            raise ValueError("text must not be empty (Telegram does not send empty messages)")
        with self._state.lock:
            state = self._state
            user, chat = state.user_in_chat(user_id, chat_id)
            reply = state.reply_json(chat, reply_to_message_id)
            plain, entities = parse_text(text)
            message = state.add_message(chat, user.id, source=text, text=plain, parse_mode=None,
                                        entities=entities, reply_to=reply)
            return state.enqueue("message", state.message_json(message), chat, reply)

    def send_sticker(self, user_id: int, chat_id: int | None = None) -> dict[str, Any]:
        """The user sends a sticker (a message without text); the update."""
        with self._state.lock:
            state = self._state
            user, chat = state.user_in_chat(user_id, chat_id)
            state.counter += 1
            sticker = {"file_id": f"CAACAgIAAxkBAAIBQ2Zsim{state.counter:06d}",
                       "file_unique_id": f"AgADsim{state.counter:06d}", "type": "regular",
                       "width": 512, "height": 512, "is_animated": False, "is_video": False,
                       "emoji": "\N{THUMBS UP SIGN}", "set_name": "opsbot_sim"}
            message = state.add_message(chat, user.id, source=None, text=None, parse_mode=None,
                                        entities=[], extra={"sticker": sticker})
            return state.enqueue("message", state.message_json(message), chat)

    def edit_text(self, user_id: int, chat_id: int, message_id: int,
                  new_text: str) -> dict[str, Any]:
        """The user edits a message of theirs; the ``edited_message`` update."""
        if not new_text or not new_text.strip():
            raise ValueError("new_text must not be empty")
        with self._state.lock:
            state = self._state
            user, chat = state.user_in_chat(user_id, chat_id)
            message = chat.messages.get(message_id)
            if message is None or message.deleted or message.text is None:
                raise LookupError(f"no text message {message_id} in chat {chat.id}")
            if message.sender != user.id:
                raise ValueError(f"message {message_id} was not sent by user {user_id}")
            message.source = new_text
            message.text, message.entities = parse_text(new_text)
            message.edits += 1
            message.edit_date = state.now()
            state.changed.notify_all()
            return state.enqueue("edited_message", state.message_json(message), chat)

    def member_joined(self, user_id: int, chat_id: int) -> dict[str, Any]:
        """The user joins a group; the service message (``new_chat_members``) update."""
        with self._state.lock:
            state = self._state
            user = state.user(user_id)
            chat = state.known_chat(chat_id)
            if chat.type == "private":
                raise ValueError(f"chat {chat_id} is a private chat, not a group")
            chat.members.add(user_id)
            message = state.add_message(chat, user.id, source=None, text=None, parse_mode=None,
                                        entities=[],
                                        extra={"new_chat_members": [state.user_json(user)]})
            return state.enqueue("message", state.message_json(message), chat)

    def route(self, public: str, local: str) -> None:
        """Deliver webhook posts for ``public`` (``https://bot.example.com:8443``) to ``local``
        (``http://127.0.0.1:PORT``), as the reverse proxy in front of a real bot would. The
        URL given to ``setWebhook`` still has to be one Telegram accepts."""
        with self._state.lock:
            self._state.routes[_origin(public)] = local

    def press(self, user_id: int, chat_id: int, message_id: int, *, data: str | None = None,
              title: str | None = None, force: bool = False) -> dict[str, Any]:
        """The user presses a button (by ``callback_data`` or by its text); the update.

        LookupError if the bot's message or the button is not there (any more); ``force``
        sends a ``callback_query`` with ``data`` anyway, as a forged or stale client would.
        """
        if force and data is None:
            raise ValueError("force=True needs the callback data to send")
        if not force and (data is None) == (title is None):
            raise ValueError("give the button's data or its title (one of them)")
        with self._state.lock:
            state = self._state
            user, chat = state.user_in_chat(user_id, chat_id) if not force else (
                state.user(user_id), state.known_chat(chat_id))
            message = chat.messages.get(message_id)
            visible = message is not None and not message.deleted
            if not force:
                if message is None or not visible or message.sender != self.bot_id:
                    raise LookupError(f"the bot has no message {message_id} in chat {chat_id}")
                buttons = [b for row in (message.reply_markup or {}).get("inline_keyboard", [])
                           for b in row]
                if not buttons:
                    raise LookupError(f"message {message_id} in chat {chat_id} has no inline "
                                      "keyboard (any more)")
                found = next((b for b in buttons if (data is not None and
                                                     b.get("callback_data") == data)
                              or (title is not None and b["text"] == title)), None)
                if found is None:
                    shown = ", ".join(f"{b['text']!r} ({b.get('callback_data')!r})"
                                      for b in buttons)
                    raise LookupError(f"no button {data or title!r} on message {message_id} in "
                                      f"chat {chat_id}; its buttons: {shown}")
                if "callback_data" not in found:
                    raise ValueError(f"button {found['text']!r} opens a URL or the like; it "
                                     "sends no callback query")
                data = found["callback_data"]
            assert data is not None
            query_id = str(secrets.randbits(62))
            if message is not None and visible:
                shown_message = state.message_json(message)
            else:  # what Telegram sends for a message the bot can no longer see
                shown_message = {"chat": state.chat_json(chat), "message_id": message_id,
                                 "date": 0}
            state.queries[query_id] = _Query(query_id, user.id, chat.id, message_id, data,
                                             state.clock())
            payload = {"id": query_id, "from": state.user_json(user),
                       "message": shown_message,
                       "chat_instance": str(-((abs(chat.id) * 2654435761 + self.bot_id)
                                              % (1 << 62))),
                       "data": data}
            return state.enqueue("callback_query", payload, chat)

    def redeliver(self, update: dict[str, Any]) -> None:
        """Queue ``update`` once more with its update_id, even if it was confirmed.

        As Telegram does after a failed webhook delivery or when a bot restarts before
        confirming; tests use it to check that a bot ignores duplicates.
        """
        if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
            raise ValueError("update must be an update dict with an int update_id")
        with self._state.changed:
            self._state.pending.append(_Pending(copy.deepcopy(update), forced=True))
            self._state.changed.notify_all()

    # -- reading -----------------------------------------------------------------------

    def bot_messages(self, chat_id: int) -> list[dict[str, Any]]:
        """The current state of each message the bot sent to ``chat_id``, oldest first.

        Each has ``text`` (as the bot sent it, with its markup), ``plain_text`` (what the
        user reads), ``parse_mode``, ``entities``, ``reply_markup``, ``edits``,
        ``edit_date``, ``deleted`` and ``message`` (the Bot API Message).
        """
        with self._state.lock:
            chat = self._state.known_chat(chat_id)
            return [self._state.snapshot(m) for m in chat.messages.values()
                    if m.sender == self.bot_id]

    def wait_for_bot_message(self, chat_id: int, *, contains: str | None = None,
                             after: int = 0, timeout: float = 10.0) -> dict[str, Any]:
        """The first bot message in ``chat_id`` newer than message ``after`` (whose
        ``plain_text`` holds ``contains``), waiting up to ``timeout`` s; TimeoutError if none.
        """

        def found(chat: _Chat) -> _Message | None:
            return next((m for m in chat.messages.values()
                         if m.sender == self.bot_id and m.message_id > after and not m.deleted
                         and (contains is None or contains in (m.text or ""))), None)

        return self._wait(chat_id, found, timeout, f"new bot message in chat {chat_id} "
                          f"after message {after}" + (f" containing {contains!r}"
                                                      if contains is not None else ""))

    def wait_for_edit(self, chat_id: int, message_id: int, *, contains: str | None = None,
                      min_edits: int = 1, timeout: float = 10.0) -> dict[str, Any]:
        """The bot's message once edited ``min_edits`` times (and holding ``contains``)."""

        def found(chat: _Chat) -> _Message | None:
            message = chat.messages.get(message_id)
            if message is None or message.sender != self.bot_id or message.edits < min_edits:
                return None
            return message if contains is None or contains in (message.text or "") else None

        return self._wait(chat_id, found, timeout, f"edit of message {message_id} in chat "
                          f"{chat_id}" + (f" containing {contains!r}" if contains else ""))

    def _wait(self, chat_id: int, found: Callable[[_Chat], _Message | None], timeout: float,
              wanted: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._state.changed:
            chat = self._state.known_chat(chat_id)
            while (message := found(chat)) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.message_id, m.text) for m in chat.messages.values()
                            if m.sender == self.bot_id]
                    hint = (f"; {len(self._state.withheld)} update(s) never reached the bot "
                            "(see withheld_updates())" if self._state.withheld else "")
                    raise TimeoutError(f"no {wanted} within {timeout} s; the bot's messages "
                                       f"there: {seen}{hint}")
                self._state.changed.wait(remaining)
            return self._state.snapshot(message)

    def callback_answers(self) -> list[dict[str, Any]]:
        """Every accepted answerCallbackQuery, oldest first (text, show_alert, data...)."""
        with self._state.lock:
            return copy.deepcopy(self._state.answers)

    def pending_updates(self) -> int:
        """Updates queued and not yet confirmed (or delivered to the webhook)."""
        with self._state.lock:
            return len(self._state.pending)

    def waiting_polls(self) -> int:
        """getUpdates requests holding for updates right now."""
        with self._state.lock:
            return self._state.waiting_polls

    def withheld_updates(self) -> list[dict[str, Any]]:
        """Updates the bot never gets (allowed_updates, privacy mode), each with a reason."""
        with self._state.lock:
            return copy.deepcopy(self._state.withheld)

    def webhook_deliveries(self) -> list[dict[str, Any]]:
        """Every webhook POST: update_id, url, attempt, status (None if no answer), error."""
        with self._state.lock:
            return copy.deepcopy(self._state.deliveries)

    def webhook_info(self) -> dict[str, Any]:
        """What getWebhookInfo would answer."""
        with self._state.lock:
            return self._app_api().get_webhook_info({})

    def bot_commands(self, language_code: str = "") -> list[dict[str, str]]:
        """The commands set with setMyCommands for the default scope."""
        with self._state.lock:
            return self._app_api().get_my_commands({"language_code": language_code})

    def overview(self) -> dict[str, Any]:
        """The bot, users, chats and webhook (``GET /_sim/``)."""
        with self._state.lock:
            state = self._state
            return {"bot": state.user_json(state.bot),
                    "users": [state.user_json(u) for u in state.users.values()],
                    "chats": [{**state.chat_json(c), "members": sorted(c.members)}
                              for c in state.chats.values()],
                    "webhook": self.webhook_info(), "pending_updates": len(state.pending)}

    def _app_api(self) -> _BotApi:
        return _BotApi(self._state, self.token)


# ---------------------------------------------------------------------------------------
# python -m simulators.telegram


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.telegram",
        description="A local Telegram Bot API for opsbot, with users you can play over HTTP.",
    )
    add_address_arguments(parser, 8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token it accepts")
    parser.add_argument("--bot-username", default=DEFAULT_BOT_USERNAME,
                        help=f"the bot's username (default {DEFAULT_BOT_USERNAME})")
    parser.add_argument("--privacy-mode", action="store_true",
                        help="in groups, pass only commands, mentions and replies to the bot")
    args = parser.parse_args(argv)

    def banner(sim: TelegramSimulator) -> list[str]:
        root = sim.api_url
        send = "'{\"text\": \"/help\"}'"
        press = "'{\"chat_id\": 42, \"message_id\": 2, \"title\": \"Yes\"}'"
        return [
            f"Telegram simulator: {sim.describe()}",
            f"  token: {sim.token}",
            *(f"  {name}={value}" for name, value in sim.env().items()),
            f"  python-telegram-bot: Application.builder().token(TOKEN).base_url("
            f"\"{root}/bot\")",
            f"  users: alice ({ALICE}), bob ({BOB}), carol ({CAROL}); group ops ({OPS_GROUP})",
            "  control API (JSON):",
            f"    curl -X POST {root}/_sim/users/42/send -H 'Content-Type: application/json' "
            f"-d {send}",
            f"    curl -X POST {root}/_sim/users/42/press -H 'Content-Type: application/json' "
            f"-d {press}",
            f"    curl {root}/_sim/chats/42/messages",
        ]

    return run_main(lambda: TelegramSimulator(token=args.token, bot_username=args.bot_username,
                                              host=args.host, port=args.port,
                                              privacy_mode=args.privacy_mode),
                    banner, seed_error=ValueError, cannot=f"listen on {args.host}:{args.port}")


if __name__ == "__main__":
    raise SystemExit(main())
