"""Formatted text: MarkdownV2, Markdown and HTML as Telegram's parser (tdlib) reads them,
with its errors and its entities in UTF-16 units.

Why apart: a parser of its own, the longest single concern of the Telegram
simulator; the Bot API methods only call it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


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
