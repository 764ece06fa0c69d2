"""Reading the bot's cards: Adaptive and hero card actions, their texts and input values.

Why apart: ``card_actions`` and ``text_of`` are used on their own, by tests and by the
demo's terminal chat, without a simulator.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

from simulators.teams._model import ADAPTIVE_CARD


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
