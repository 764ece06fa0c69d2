"""LogQL, the subset the Loki simulator understands: a lexer (Go string escapes, backtick
strings), a parser into stream and metric queries, and their evaluation over streams,
with Loki's ``parse error at line 1, col N`` messages.

Why apart: a small language of its own; the store and the HTTP face only call
``parse_logql`` and the queries' ``match``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NS = 1_000_000_000


_UNSUPPORTED = ("the opsbot Loki simulator understands stream selectors ({a=\"b\"} with =, "
                "!=, =~, !~), line filters (|=, !=, |~, !~) and "
                "[sum [by (labels)]] count_over_time(...[range]) only")


class LogQLError(ValueError):
    """A query Loki would refuse; ``str()`` is the plain-text body of the 400 answer."""


@dataclass(frozen=True)
class _Token:
    kind: str  # IDENTIFIER, STRING, NUMBER, RANGE, $end, or the symbol itself ("{", "|=", ...)
    text: str  # for STRING the unquoted value; for RANGE the duration text
    line: int
    col: int


_SYMBOLS = ("|=", "|~", "!=", "!~", "=~", "{", "}", "(", ")", ",", "=", "|")
_GO_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
               "\\": "\\", '"': '"'}
_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def _error(token: _Token | tuple[int, int], message: str) -> LogQLError:
    line, col = (token.line, token.col) if isinstance(token, _Token) else token
    return LogQLError(f"parse error at line {line}, col {col}: {message}")


def _unquote_go(body: str, where: tuple[int, int]) -> str:
    """The value of a Go double-quoted string literal's body (strconv.Unquote)."""
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char != "\\":
            out.append(char)
            index += 1
            continue
        escape = body[index + 1] if index + 1 < len(body) else ""
        if escape in _GO_ESCAPES:
            out.append(_GO_ESCAPES[escape])
            index += 2
        elif escape in ("x", "u", "U"):
            width = {"x": 2, "u": 4, "U": 8}[escape]
            digits = body[index + 2:index + 2 + width]
            if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise _error(where, "invalid char escape")
            out.append(chr(int(digits, 16)))
            index += 2 + width
        elif escape in "01234567" and escape:
            digits = body[index + 1:index + 4]
            if len(digits) != 3 or not all(c in "01234567" for c in digits) \
                    or int(digits, 8) > 255:
                raise _error(where, "invalid char escape")
            out.append(chr(int(digits, 8)))
            index += 4
        else:
            raise _error(where, "invalid char escape")
    return "".join(out)


def _closing(query: str, index: int, char: str, where: tuple[int, int], message: str) -> int:
    """Where ``char`` closes what opens at ``index``; a LogQLError saying ``message`` if nowhere."""
    end = query.find(char, index + 1)
    if end < 0:
        raise _error(where, message)
    return end


def _tokens(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    index, line, line_start = 0, 1, 0
    while index < len(query):
        char = query[index]
        col = index - line_start + 1
        if char == "\n":
            index += 1
            line, line_start = line + 1, index
            continue
        if char.isspace():
            index += 1
            continue
        if char == '"':
            end = index + 1
            while end < len(query) and query[end] != '"':
                if query[end] == "\n":
                    raise _error((line, col), "literal not terminated")
                end += 2 if query[end] == "\\" else 1
            if end >= len(query):
                raise _error((line, col), "literal not terminated")
            tokens.append(_Token("STRING", _unquote_go(query[index + 1:end], (line, col)),
                                 line, col))
            index = end + 1
            continue
        if char == "`":
            end = _closing(query, index, "`", (line, col), "literal not terminated")
            text = query[index + 1:end]
            tokens.append(_Token("STRING", text, line, col))
            line += text.count("\n")
            if "\n" in text:
                line_start = index + 1 + text.rfind("\n") + 1
            index = end + 1
            continue
        if char == "[":
            end = _closing(query, index, "]", (line, col), "missing closing ']' in duration")
            tokens.append(_Token("RANGE", query[index + 1:end].strip(), line, col))
            index = end + 1
            continue
        symbol = next((s for s in _SYMBOLS if query.startswith(s, index)), None)
        if symbol is not None:
            tokens.append(_Token(symbol, symbol, line, col))
            index += len(symbol)
            continue
        if _IDENT_START.match(char):
            match = _IDENT.match(query, index)
            assert match is not None
            tokens.append(_Token("IDENTIFIER", match.group(), line, col))
            index = match.end()
            continue
        match = _NUMBER.match(query, index)
        if match:
            tokens.append(_Token("NUMBER", match.group(), line, col))
            index = match.end()
            continue
        raise _error((line, col), f"syntax error: unexpected {char}")
    tokens.append(_Token("$end", "", line, len(query) - line_start + 1))
    return tokens


@dataclass(frozen=True)
class _Matcher:
    name: str
    op: str  # = != =~ !~
    value: str
    pattern: re.Pattern[str] | None

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None
        found = self.pattern.fullmatch(actual) is not None  # Loki anchors label regexes
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class _LineFilter:
    op: str  # |= != |~ !~
    value: str
    pattern: re.Pattern[str] | None

    def keeps(self, line: str) -> bool:
        if self.op == "|=":
            return self.value in line
        if self.op == "!=":
            return self.value not in line
        assert self.pattern is not None
        found = self.pattern.search(line) is not None  # line regexes are not anchored
        return found if self.op == "|~" else not found


@dataclass(frozen=True)
class StreamQuery:
    """A parsed log query: a stream selector and its line filters."""

    matchers: tuple[_Matcher, ...]
    filters: tuple[_LineFilter, ...]

    def selects(self, labels: Mapping[str, str]) -> bool:
        """True if a stream with ``labels`` is selected."""
        return all(matcher.matches(labels) for matcher in self.matchers)

    def keeps(self, line: str) -> bool:
        """True if ``line`` passes every line filter."""
        return all(line_filter.keeps(line) for line_filter in self.filters)


@dataclass(frozen=True)
class MetricQuery:
    """``[sum [by (labels)]] count_over_time(LOG_QUERY [RANGE])``."""

    inner: StreamQuery
    range_ns: int
    aggregate: bool  # wrapped in sum(...)
    by: tuple[str, ...] | None  # grouping labels of the sum; None: sum everything


_DURATION = re.compile(r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?"
                       r"(?:(\d+)ms)?$")
_DURATION_NS = (365 * 86400 * _NS, 7 * 86400 * _NS, 86400 * _NS, 3600 * _NS, 60 * _NS, _NS,
                1_000_000)
_PERL_ONLY = re.compile(r"\(\?(?:=|!|<=|<!|P=|>)|\\[1-9]")  # lookarounds, backreferences
_KNOWN_FUNCTIONS = {"rate", "bytes_over_time", "bytes_rate", "avg_over_time", "sum_over_time",
                    "min_over_time", "max_over_time", "stddev_over_time", "quantile_over_time",
                    "first_over_time", "last_over_time", "absent_over_time", "avg", "min",
                    "max", "count", "stddev", "stdvar", "topk", "bottomk", "sort", "sort_desc",
                    "label_replace", "vector"}


def _duration_ns(token: _Token) -> int:
    """A Prometheus duration (``5m``, ``1h30m``, ``3600000ms``) in nanoseconds."""
    match = _DURATION.match(token.text)
    if not token.text or match is None:
        raise _error(token, f'not a valid duration string: "{token.text}"')
    total = sum(int(part) * unit
                for part, unit in zip(match.groups(), _DURATION_NS, strict=True) if part)
    if total <= 0:
        raise _error(token, f'not a valid duration string: "{token.text}"')
    return total


def _regex(token: _Token) -> re.Pattern[str]:
    """Compile a LogQL regex (RE2 syntax); Perl-only constructs are refused, as by Go."""
    perl = _PERL_ONLY.search(token.text)
    if perl:
        raise _error(token, "error parsing regexp: invalid or unsupported Perl syntax: "
                            f"`{perl.group()}`")
    try:
        return re.compile(token.text)
    except re.error as exc:
        raise _error(token, f"error parsing regexp: {exc.msg}: `{token.text}`") from None


class _Parser:
    """A recursive-descent parser for the LogQL subset, with Loki's error messages."""

    def __init__(self, query: str) -> None:
        self.tokens = _tokens(query)
        self.index = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def unexpected(self, expecting: str | None = None) -> LogQLError:
        token = self.token
        what = token.kind if token.kind in ("IDENTIFIER", "STRING", "NUMBER", "RANGE",
                                            "$end") else token.text
        tail = f", expecting {expecting}" if expecting else ""
        return _error(token, f"syntax error: unexpected {what}{tail}")

    def expect(self, kind: str, expecting: str | None = None) -> _Token:
        if self.token.kind != kind:
            raise self.unexpected(expecting or kind)
        return self.take()

    def unsupported(self, token: _Token, what: str) -> LogQLError:
        return LogQLError(f"unsupported LogQL at line {token.line}, col {token.col}: {what}; "
                          f"{_UNSUPPORTED}")

    # -- grammar ---------------------------------------------------------------------

    def parse(self) -> StreamQuery | MetricQuery:
        if self.token.kind == "{":
            query: StreamQuery | MetricQuery = self.log_query()
        elif self.token.kind == "IDENTIFIER":
            query = self.metric_query()
        else:
            raise self.unexpected()
        if self.token.kind != "$end":
            if self.token.kind == "|":
                raise self.unsupported(self.token, f"the pipeline stage '| {self.peek_text()}'")
            raise self.unexpected()
        return query

    def peek_text(self) -> str:
        following = self.tokens[self.index + 1] if self.index + 1 < len(self.tokens) else None
        return following.text if following is not None and following.text else "..."

    def log_query(self) -> StreamQuery:
        return StreamQuery(tuple(self.selector()), tuple(self.line_filters()))

    def line_filters(self) -> list[_LineFilter]:
        filters: list[_LineFilter] = []
        while True:
            kind = self.token.kind
            if kind in ("|=", "!=", "|~", "!~"):
                self.take()
                value = self.expect("STRING")
                pattern = _regex(value) if kind in ("|~", "!~") else None
                filters.append(_LineFilter(kind, value.text, pattern))
            elif kind == "|":
                raise self.unsupported(self.token, f"the pipeline stage '| {self.peek_text()}'")
            else:
                return filters

    def selector(self) -> list[_Matcher]:
        self.expect("{")
        matchers: list[_Matcher] = []
        while True:
            name = self.expect("IDENTIFIER")
            op = self.token
            if op.kind not in ("=", "!=", "=~", "!~"):
                raise self.unexpected("=, !=, =~ or !~")
            self.take()
            value = self.expect("STRING")
            pattern = _regex(value) if op.kind in ("=~", "!~") else None
            matchers.append(_Matcher(name.text, op.kind, value.text, pattern))
            if self.token.kind == ",":
                self.take()
                if self.token.kind == "}":
                    break
                continue
            if self.token.kind == "}":
                break
            raise self.unexpected("} or ,")
        self.take()
        if all(matcher.matches({}) for matcher in matchers):
            raise LogQLError(
                "queries require at least one regexp or equality matcher that does not have "
                'an empty-compatible value. For instance, app=~".*" does not meet this '
                'requirement, but app=~".+" will')
        return matchers

    def metric_query(self) -> MetricQuery:
        name = self.token
        if name.kind != "IDENTIFIER":
            raise self.unexpected()
        if name.text == "sum":
            self.take()
            by = self.grouping()
            self.expect("(")
            inner = self.metric_query()
            self.expect(")")
            if by is None and self.token.kind == "IDENTIFIER" and self.token.text in (
                    "by", "without"):
                by = self.grouping()
            if inner.aggregate:
                raise self.unsupported(name, "nested sum(...)")
            return MetricQuery(inner.inner, inner.range_ns, True, by)
        if name.text == "count_over_time":
            self.take()
            self.expect("(")
            if self.token.kind != "{":
                raise self.unexpected("{")
            matchers = self.selector()
            range_token: _Token | None = None
            if self.token.kind == "RANGE":  # Loki also takes {a="b"}[5m] |= "x"
                range_token = self.take()
            filters = self.line_filters()
            if range_token is None:
                if self.token.kind != "RANGE":
                    raise self.unexpected("RANGE")
                range_token = self.take()
            self.expect(")")
            return MetricQuery(StreamQuery(tuple(matchers), tuple(filters)),
                               _duration_ns(range_token), False, None)
        if name.text in _KNOWN_FUNCTIONS:
            raise self.unsupported(name, f"{name.text}(...)")
        raise self.unexpected()

    def grouping(self) -> tuple[str, ...] | None:
        if self.token.kind != "IDENTIFIER" or self.token.text not in ("by", "without"):
            return None
        keyword = self.take()
        if keyword.text == "without":
            raise self.unsupported(keyword, "without (...)")
        self.expect("(")
        labels: list[str] = []
        while self.token.kind != ")":
            labels.append(self.expect("IDENTIFIER", "IDENTIFIER or )").text)
            if self.token.kind == ",":
                self.take()
            elif self.token.kind != ")":
                raise self.unexpected(", or )")
        self.take()
        return tuple(labels)


def parse_logql(query: str) -> StreamQuery | MetricQuery:
    """Parse a query of the supported subset; LogQLError (Loki's 400 text) otherwise."""
    if not query.strip():
        raise LogQLError("parse error at line 1, col 1: syntax error: unexpected $end")
    return _Parser(query).parse()
