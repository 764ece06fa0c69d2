"""Block Kit as Slack checks it in messages: the limits that turn a post into
``invalid_blocks``, the buttons a user can press, the text a reader sees.

Why apart: chat.postMessage, chat.update, chat.postEphemeral and response_url all take
blocks, and pressing a button reads them. The limits are Block Kit's reference
(api.slack.com/reference/block-kit/blocks, .../block-elements#button,
.../composition-objects#text): at most 50 blocks in a message; a section's text at most
3000 characters and 10 fields of 2000; a header's 150; an actions block 25 elements; a
context block 10; a button's text 75, its value 2000, its url 3000, its ``action_id``
and any ``block_id`` 255. Slack answers a message that breaks them with
``{"ok": false, "error": "invalid_blocks", "errors": [...]}``, one line per fault
with its JSON pointer; an ``action_id`` or ``block_id`` used twice in one message is
refused too. Unknown block and element types are refused; the checks are the basic ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Generator, Iterator
from typing import Any

from simulators.slack._model import _ApiError, _random_id

MAX_BLOCKS = 50
_BLOCK_TYPES = frozenset({"section", "actions", "context", "divider", "header", "image", "input",
                          "rich_text", "file", "video", "markdown", "context_actions", "table"})
_ELEMENT_TYPES = frozenset({
    "button", "checkboxes", "datepicker", "datetimepicker", "email_text_input", "image",
    "multi_static_select", "multi_external_select", "multi_users_select",
    "multi_conversations_select", "multi_channels_select", "number_input", "overflow",
    "plain_text_input", "radio_buttons", "rich_text_input", "static_select", "external_select",
    "users_select", "conversations_select", "channels_select", "timepicker", "url_text_input",
    "workflow_button", "feedback_buttons", "icon_button",
})


def parse_blocks(raw: Any) -> list[dict[str, Any]] | None:
    """The ``blocks`` argument (a JSON string in a form, a list in JSON); None if absent.

    ``invalid_blocks_format`` when it is not a JSON array ("The blocks is not a valid JSON
    object or doesn't match the Block Kit syntax", api.slack.com/methods/chat.postMessage).
    """
    if raw is None or raw == "":
        return None
    value = raw
    if isinstance(raw, str | bytes):
        try:
            value = json.loads(raw)
        except ValueError:
            raise _ApiError("invalid_blocks_format") from None
    if not isinstance(value, list):
        raise _ApiError("invalid_blocks_format")
    return value


def check_blocks(blocks: list[Any]) -> None:
    """``invalid_blocks`` with Slack's per-fault messages, or nothing when the blocks pass."""
    errors = list(_faults(blocks))
    if errors:
        raise _ApiError("invalid_blocks", extra={
            "errors": errors,
            "response_metadata": {"messages": [f"[ERROR] {error}" for error in errors]}})


def buttons(blocks: list[dict[str, Any]] | None) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """Each button with its block: in actions blocks and as a section's accessory."""
    for block in blocks or []:
        for element in _interactive(block):
            if element.get("type") == "button":
                yield block, element


def with_ids(blocks: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """A copy of ``blocks`` as Slack stores them: a generated ``block_id`` on each block
    and ``action_id`` on each element that came without one."""
    if blocks is None:
        return None
    stored = copy.deepcopy(blocks)
    for block in stored:
        block.setdefault("block_id", _random_id("", 4))
        for element in _interactive(block):
            element.setdefault("action_id", _random_id("", 4))
    return stored


def _interactive(block: dict[str, Any]) -> list[dict[str, Any]]:
    """The elements of an actions block, or a section's accessory."""
    found = block.get("elements") if block.get("type") == "actions" else [block.get("accessory")]
    return [e for e in found or [] if isinstance(e, dict) and e.get("type") in _ELEMENT_TYPES]


def visible_text(text: str, blocks: list[dict[str, Any]] | None) -> str:
    """The message's text and every text in its blocks, one a line (what ``contains`` searches)."""
    found = [text]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "text" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks or [])
    return "\n".join(found)


# -- the checks -------------------------------------------------------------------------


def _faults(blocks: list[Any]) -> Iterator[str]:
    if len(blocks) > MAX_BLOCKS:
        yield f"no more than {MAX_BLOCKS} items allowed [json-pointer:/blocks]"
    seen_blocks: set[str] = set()
    seen_actions: set[str] = set()
    for index, block in enumerate(blocks):
        where = f"/blocks/{index}"
        kind = yield from _typed(block, where, _BLOCK_TYPES, "block_id", seen_blocks)
        if kind is not None:
            yield from _block(kind, block, where, seen_actions)


def _typed(node: Any, where: str, types: frozenset[str], id_name: str,
           seen: set[str]) -> Generator[str, None, str | None]:
    """The faults of a block's or element's type and id (at most 255 characters, unique in
    the message); its type, or None when it cannot be checked further."""
    if not isinstance(node, dict):
        yield f"expected object [json-pointer:{where}]"
        return None
    kind = node.get("type")
    if kind not in types:
        yield f"unsupported type: {kind} [json-pointer:{where}/type]"
        return None
    identifier = node.get(id_name)
    if identifier is not None:
        yield from _length(identifier, 255, f"{where}/{id_name}")
        if identifier in seen:
            yield f"duplicate {id_name} [json-pointer:{where}/{id_name}]"
        seen.add(str(identifier))
    return str(kind)


def _block(kind: str, block: dict[str, Any], where: str, seen: set[str]) -> Iterator[str]:
    if kind == "section":
        if "text" not in block and "fields" not in block:
            yield f"must provide either text or fields [json-pointer:{where}]"
        if "text" in block:
            yield from _text(block["text"], 3000, f"{where}/text")
        fields = block.get("fields")
        if fields is not None:
            if not isinstance(fields, list) or len(fields) > 10:
                yield f"no more than 10 items allowed [json-pointer:{where}/fields]"
            else:
                for number, item in enumerate(fields):
                    yield from _text(item, 2000, f"{where}/fields/{number}")
        if "accessory" in block:
            yield from _element(block["accessory"], f"{where}/accessory", seen)
    elif kind == "header":
        yield from _text(block.get("text"), 150, f"{where}/text", plain_only=True)
    elif kind in ("actions", "context"):
        most = 25 if kind == "actions" else 10
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            yield f"must provide at least one element [json-pointer:{where}/elements]"
            return
        if len(elements) > most:
            yield f"no more than {most} items allowed [json-pointer:{where}/elements]"
        for number, element in enumerate(elements):
            path = f"{where}/elements/{number}"
            if kind == "context" and isinstance(element, dict) \
                    and element.get("type") in ("plain_text", "mrkdwn"):
                yield from _text(element, 3000, path)
            else:
                yield from _element(element, path, seen)


def _element(element: Any, where: str, seen: set[str]) -> Iterator[str]:
    kind = yield from _typed(element, where, _ELEMENT_TYPES, "action_id", seen)
    if kind == "button":
        yield from _text(element.get("text"), 75, f"{where}/text", plain_only=True)
        for name, most in (("value", 2000), ("url", 3000)):
            if name in element:
                yield from _length(element[name], most, f"{where}/{name}")
        if element.get("style") not in (None, "primary", "danger"):
            yield f"must be one of primary, danger [json-pointer:{where}/style]"


def _text(obj: Any, most: int, where: str, *, plain_only: bool = False) -> Iterator[str]:
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if not isinstance(obj, dict) or obj.get("type") not in allowed:
        yield f"must provide an object of type {' or '.join(allowed)} [json-pointer:{where}]"
        return
    yield from _length(obj.get("text"), most, f"{where}/text", least=1)


def _length(value: Any, most: int, where: str, *, least: int = 0) -> Iterator[str]:
    if not isinstance(value, str):
        yield f"must be a string [json-pointer:{where}]"
    elif len(value) > most:
        yield f"must be less than {most + 1} characters [json-pointer:{where}]"
    elif len(value) < least:
        yield f"must be more than {least - 1} characters [json-pointer:{where}]"
