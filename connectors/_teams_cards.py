"""What a Teams message looks like: Adaptive Cards for buttons, escaped markdown for text.

A card carries each button's (signed) payload in ``Action.Submit`` data; its text is
kept from showing a link whose words hide its address. Plain replies are escaped so
that what opsbot says is shown as written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

CARD = "application/vnd.microsoft.card.adaptive"


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
