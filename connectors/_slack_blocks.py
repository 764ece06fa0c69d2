"""The Slack connector's Block Kit: opsbot's replies as blocks, and Slack's text as words.

Every reply is a ``section`` of mrkdwn, escaped as Slack's formatting guide asks (``&``,
``<`` and ``>`` as ``&amp;``, ``&lt;``, ``&gt;``) and marked ``verbatim``, so nothing a
person typed becomes a mention, a channel link or a link when opsbot repeats it; buttons
are an ``actions`` block (``value`` at most 2000 characters, ``action_id`` unique in the
message); a decided message keeps its text and loses its buttons for a ``context`` line
saying what became of it. A section holds at most 3000 characters, so a long reply is
split into pieces of at most that much *escaped* text. The top-level ``text`` of a message
is its plain fallback for notifications, escaped the same way.

Inbound, :func:`plain_text` turns a message's Slack markup back into what the person
typed: mentions of the bot removed, ``<url|label>`` as the label, entities unescaped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from connectors._common import first_piece, split_text

__all__ = [
    "BUTTON_TEXT_LIMIT",
    "BUTTON_VALUE_LIMIT",
    "MAX_BLOCKS",
    "SECTION_LIMIT",
    "buttons_block",
    "escape",
    "message_blocks",
    "one_section",
    "plain_text",
    "retired_blocks",
    "split_reply",
    "title_of",
]

SECTION_LIMIT = 3000  # characters of a section's text (Block Kit reference, section)
MAX_BLOCKS = 50  # blocks of one message (Block Kit reference, "blocks")
BUTTON_VALUE_LIMIT = 2000  # a button element's value
BUTTON_TEXT_LIMIT = 75  # a button element's text
_BUTTONS_PER_BLOCK = 25  # elements of one actions block
_ACTION_PREFIX = "opsbot-"


def escape(text: str) -> str:
    """``text`` as mrkdwn that shows it as it is: the three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escaped_length(text: str) -> int:
    return len(escape(text))


def split_reply(text: str) -> list[str]:
    """``text`` in pieces whose escaped form fits a section, in order; one "…" for nothing."""
    return split_text(text, SECTION_LIMIT, _escaped_length) or ["…"]


def one_section(text: str) -> str:
    """What of ``text`` fits one section, ending in "…" where it was cut (an event's message)."""
    return first_piece(text, SECTION_LIMIT, _escaped_length)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section",
            "text": {"type": "mrkdwn", "text": escape(text) or " ", "verbatim": True}}


def _style(payload: str) -> str | None:
    if payload.startswith("/affirm"):
        return "primary"
    if payload.startswith("/deny"):
        return "danger"
    return None


def buttons_block(buttons: Sequence[tuple[str, str, str]]) -> list[dict[str, Any]]:
    """``actions`` blocks for ``(title, value, payload)`` triples (``value``: what the
    button carries, the payload or its key in the store); 25 buttons a block."""
    elements: list[dict[str, Any]] = []
    for index, (title, value, payload) in enumerate(buttons):
        element: dict[str, Any] = {
            "type": "button", "action_id": f"{_ACTION_PREFIX}{index}", "value": value,
            "text": {"type": "plain_text", "text": title[:BUTTON_TEXT_LIMIT] or "?",
                     "emoji": True},
        }
        style = _style(payload)
        if style:
            element["style"] = style
        elements.append(element)
    return [{"type": "actions", "elements": elements[i:i + _BUTTONS_PER_BLOCK]}
            for i in range(0, len(elements), _BUTTONS_PER_BLOCK)]


def message_blocks(text: str, actions: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """One piece of a reply (at most ``SECTION_LIMIT`` escaped) and its buttons' blocks."""
    return [_section(text), *(dict(block) for block in actions)]


def retired_blocks(text: str, note: str | None) -> list[dict[str, Any]]:
    """A decided message: its text, no buttons, and a line saying what became of it."""
    blocks = [_section(text)]
    if note:
        blocks.append({"type": "context",
                       "elements": [{"type": "mrkdwn", "text": f"_{escape(note)}_",
                                     "verbatim": True}]})
    return blocks


def title_of(blocks: Any, value: str) -> str:
    """The text of the button carrying ``value`` in a message's blocks ("an option")."""
    for block in blocks if isinstance(blocks, list) else ():
        for element in block.get("elements") or () if isinstance(block, dict) else ():
            if isinstance(element, dict) and element.get("value") == value:
                text = element.get("text")
                if isinstance(text, dict) and text.get("text"):
                    return str(text["text"])
    return "an option"


_MENTION = re.compile(r"<@([A-Z0-9]+)(?:\|[^>]*)?>")
_LINK = re.compile(r"<([^<>|]*)(?:\|([^<>]*))?>")


def plain_text(text: str, bot_user_id: str) -> str:
    """What the person typed: the bot's mentions removed, Slack's ``<...>`` markup as the
    words it shows, ``&amp;`` ``&lt;`` ``&gt;`` unescaped, whitespace collapsed."""
    without = _MENTION.sub(lambda m: "" if m.group(1) == bot_user_id else f"@{m.group(1)}",
                           text)

    def shown(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if label:
            return label if not target.startswith("#") else f"#{label}"
        if target.startswith("!"):
            return "@" + target[1:].split("^")[0]
        return target

    words = _LINK.sub(shown, without)
    words = words.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    return " ".join(words.split()).lstrip(",:;- ")
