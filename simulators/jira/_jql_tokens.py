"""JQL's tokens: words, quoted strings with their escapes, operators, as Jira's lexer reads
them, with its error messages and their ``(line, character)``.

Why apart: the lexer is one job; ``_jql`` parses and evaluates what it returns.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class _JqlError(Exception):
    """A JQL query Jira would refuse (400); the message is Jira's errorMessage."""


@dataclass(frozen=True)
class _Token:
    kind: str  # word | string | op | ( | ) | , | end
    text: str  # unescaped for strings and words
    pos: int  # 0-based offset in the query


_RESERVED_CHARS = frozenset("{}*/%+^$#@[];?")
_WORD_STOP = frozenset(" \t\r\n()=,!<>~\"'&|")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "r": "\r", "t": "\t", " ": " "}


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"(line {line}, character {column})"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c in "(),":
            tokens.append(_Token(c, c, i))
            i += 1
        elif text[i:i + 2] in ("!=", "!~", ">=", "<=", "&&", "||"):
            tokens.append(_Token("op", text[i:i + 2], i))
            i += 2
        elif c in "=~<>&|!":
            tokens.append(_Token("op", c, i))
            i += 1
        elif c in "\"'":
            start, i = i, i + 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise _JqlError(f"Error in the JQL Query: The quoted string "
                                    f"'{''.join(chars)}' has not been completed. "
                                    f"{_where(text, start)}")
                if text[i] == c:
                    i += 1
                    break
                value, i = _char(text, i)
                chars.append(value)
            tokens.append(_Token("string", "".join(chars), start))
        else:
            start, chars = i, []
            while i < n and text[i] not in _WORD_STOP:
                if text[i] in _RESERVED_CHARS:
                    raise _JqlError(f"Error in the JQL Query: The character '{text[i]}' is a "
                                    "reserved JQL character. You must enclose it in a string or "
                                    f"use the escape '\\u{ord(text[i]):04x}' instead. "
                                    f"{_where(text, i)}")
                value, i = _char(text, i)
                chars.append(value)
            tokens.append(_Token("word", "".join(chars), start))
    tokens.append(_Token("end", "", n))
    return tokens


def _char(text: str, i: int) -> tuple[str, int]:
    """The character at ``i`` (decoded, if a backslash escape starts there) and the index
    after it."""
    if text[i] != "\\":
        return text[i], i + 1
    nxt = text[i + 1:i + 2]
    if nxt in _ESCAPES:
        return _ESCAPES[nxt], i + 2
    if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
        return chr(int(text[i + 2:i + 6], 16)), i + 6
    raise _JqlError(f"Error in the JQL Query: Illegal escape sequence '\\{nxt}'. "
                    f"{_where(text, i)}")
