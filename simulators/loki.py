"""A local Grafana Loki: the query API opsbot's Loki log source calls, over real HTTP.

Why: opsbot's Loki backend, its tests and the demo need a Loki with realistic logs on
any machine, offline. This module serves Loki's read API from the records that
``simulators/logs.py`` generates (the same records the demo writes as files), as
streams labelled ``{service, env, level}`` (other names with ``labels=``, as real
installations use ``service_name``, ``app`` or ``job``) whose lines are the messages:

* ``GET /ready``, ``GET /loki/api/v1/status/buildinfo``
* ``GET /loki/api/v1/labels`` (and ``/label``), ``GET /loki/api/v1/label/<name>/values``
* ``GET|POST /loki/api/v1/query_range``: log queries; ``start``/``end`` as nanosecond
  or second epochs or RFC 3339, ``start`` inclusive and ``end`` exclusive as in Loki;
  ``limit`` (default 100, at most ``max_entries``), ``direction`` backward|forward
* ``GET|POST /loki/api/v1/query``: instant metric queries of the form
  ``count_over_time(LOG_QUERY [RANGE])``, optionally inside ``sum(...)`` or
  ``sum by (labels) (...)``; the window is ``(time - RANGE, time]`` as in Loki

LogQL is a subset, parsed properly: stream selectors with ``=``, ``!=``, ``=~``, ``!~``
and chained line filters ``|=``, ``!=``, ``|~``, ``!~``, strings in double quotes (Go
escapes) or backticks. Errors look like Loki's: 400 with a plain-text body such as
``parse error at line 1, col 10: syntax error: unexpected IDENTIFIER, expecting STRING``.
Anything outside the subset (``| json``, ``rate(...)``) is a 400 that says so; it never
matches everything. With ``tenant`` set, requests need ``X-Scope-OrgID`` like a
multi-tenant Loki (401 ``no org id`` without it; another tenant sees no data).

As Loki itself, ``/labels`` and ``/label/<name>/values`` leave ``data`` out when there is
nothing to list (``{"status": "success"}``): Loki's ``LabelResponse`` declares it
``json:"data,omitempty"`` (grafana/loki, ``pkg/loghttp/labels.go``).

    with LokiSimulator(now=datetime.now(UTC)) as loki:
        requests.get(loki.url + "/loki/api/v1/query_range",
                     params={"query": '{service="payments"} |= "timeout"', "limit": 20})

    python -m simulators.loki --port 3100     # prints the URL; Ctrl+C stops it
"""

from __future__ import annotations

import argparse
import bisect
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs

from simulators._base import Faults, RequestLog, SimulatorBase, add_address_arguments, run_main
from simulators._http import Request, Response
from simulators.logs import DEFAULT_SEED, LogRecord, SeedError, generate, write_files, written_level

__all__ = [
    "DEFAULT_MAX_ENTRIES",
    "LOKI_VERSION",
    "LogQLError",
    "LokiSimulator",
    "MetricQuery",
    "RecordedRequest",
    "StreamQuery",
    "main",
    "parse_logql",
]

LOKI_VERSION = "3.1.1"
_DEFAULT_LABELS = {"service": "service", "env": "env", "level": "level"}
DEFAULT_MAX_ENTRIES = 5000  # Loki's max_entries_limit_per_query default
_NS = 1_000_000_000
_LABEL_LOOKBACK_NS = 6 * 3600 * _NS  # /labels without start looks back six hours, as Loki
_UNSUPPORTED = ("the opsbot Loki simulator understands stream selectors ({a=\"b\"} with =, "
                "!=, =~, !~), line filters (|=, !=, |~, !~) and "
                "[sum [by (labels)]] count_over_time(...[range]) only")


class LogQLError(ValueError):
    """A query Loki would refuse; ``str()`` is the plain-text body of the 400 answer."""


# ---------------------------------------------------------------------------------------
# LogQL: lexer


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
            end = query.find("`", index + 1)
            if end < 0:
                raise _error((line, col), "literal not terminated")
            text = query[index + 1:end]
            tokens.append(_Token("STRING", text, line, col))
            line += text.count("\n")
            if "\n" in text:
                line_start = index + 1 + text.rfind("\n") + 1
            index = end + 1
            continue
        if char == "[":
            end = query.find("]", index + 1)
            if end < 0:
                raise _error((line, col), "missing closing ']' in duration")
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


# ---------------------------------------------------------------------------------------
# LogQL: the syntax tree and its evaluation


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


# ---------------------------------------------------------------------------------------
# The store


@dataclass
class _Stream:
    labels: dict[str, str]
    times: list[int] = field(default_factory=list)  # ns, ascending
    lines: list[str] = field(default_factory=list)

    def add(self, ns: int, line: str) -> None:
        index = bisect.bisect_right(self.times, ns)
        self.times.insert(index, ns)
        self.lines.insert(index, line)

    def between(self, start: int, end: int, *, closed_end: bool = False) -> Iterator[int]:
        """Indexes of entries with start <= ts < end (or start < ts <= end if closed_end)."""
        if closed_end:
            low, high = bisect.bisect_right(self.times, start), bisect.bisect_right(self.times,
                                                                                     end)
        else:
            low, high = bisect.bisect_left(self.times, start), bisect.bisect_left(self.times,
                                                                                   end)
        return iter(range(low, high))


def _ns(at: datetime) -> int:
    at = at if at.tzinfo else at.replace(tzinfo=UTC)
    delta = at.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * _NS + delta.microseconds * 1000


_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?"
                      r"([Zz]|[+-]\d{2}:\d{2})")


def _parse_time(value: str | None, default: int) -> int:
    """Loki's timestamp parameter: ns epoch, s epoch (<= 10 digits), float s, or RFC 3339."""
    if value is None or value == "":
        return default
    text = value.strip()
    if re.fullmatch(r"-?\d+", text):
        number = int(text)
        return number * _NS if len(text.lstrip("-")) <= 10 else number
    if re.fullmatch(r"-?\d+\.\d*", text):
        whole, _, fraction = text.partition(".")
        sign = -1 if whole.startswith("-") else 1
        return int(whole) * _NS + sign * int((fraction + "0" * 9)[:9])
    match = _RFC3339.fullmatch(text)
    if match:
        base, fraction, zone = match.groups()
        try:
            moment = datetime.fromisoformat(base.replace("t", "T").replace(" ", "T")
                                            + ("+00:00" if zone in "Zz" else zone))
        except ValueError:
            pass
        else:
            return _ns(moment) + int(((fraction or "") + "0" * 9)[:9])
    raise LogQLError(f'cannot parse "{value}" to a valid timestamp')


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str
    target: str  # path and query as sent
    status: int
    org_id: str | None  # the X-Scope-OrgID header, if sent


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Store:
    """Streams by label set (guarded by ``lock``), the injected faults and the request log."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: dict[tuple[tuple[str, str], ...], _Stream] = {}
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()

    def add(self, labels: Mapping[str, str], ns: int, line: str) -> None:
        key = tuple(sorted((str(k), str(v)) for k, v in labels.items() if v != ""))
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = _Stream(dict(key))
        stream.add(ns, line)


# ---------------------------------------------------------------------------------------
# The HTTP face


class _App:
    def __init__(self, store: _Store, tenant: str | None, max_entries: int,
                 clock: Callable[[], float]) -> None:
        self.store = store
        self.tenant = tenant
        self.max_entries = max_entries
        self.clock = clock

    def __call__(self, request: Request) -> Response:
        failure = self.store.faults.hold(request.raw_path)
        org_id = request.header("X-Scope-OrgID")
        if failure is not None:
            response = self._fault_response(failure)
        else:
            try:
                response = self._route(request, org_id)
            except LogQLError as exc:
                response = Response.text(f"{exc}\n", 400)
            except _Refused as refused:
                response = Response.text(f"{refused.message}\n", refused.status)
        self.store.log.append(RecordedRequest(request.method, request.target, response.status,
                                              org_id))
        return response

    @staticmethod
    def _fault_response(status: int) -> Response:
        if status == 500:
            return Response.text("rpc error: code = Unknown desc = injected by "
                                 "LokiSimulator.fail_next()\n", 500)
        if status == 429:
            return Response.text("too many outstanding requests\n", 429)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return Response.text(f"{phrase}\n", status)

    def _params(self, request: Request) -> dict[str, str]:
        params = {name: values[0] for name, values in request.query.items() if values}
        if request.method == "POST" and "x-www-form-urlencoded" in (
                request.header("Content-Type") or ""):
            form = parse_qs(request.body.decode(errors="replace"), keep_blank_values=True)
            for name, values in form.items():
                if values:
                    params.setdefault(name, values[0])
        return params

    def _streams(self, org_id: str | None) -> list[_Stream]:
        if self.tenant is not None:
            if not org_id:
                raise _Refused(401, "no org id")
            if org_id != self.tenant:
                return []  # another tenant: it has no data here
        return list(self.store.streams.values())

    def _route(self, request: Request, org_id: str | None) -> Response:
        segments = request.segments
        if request.method not in ("GET", "POST"):
            raise _Refused(405, "Method Not Allowed")
        if segments == ("ready",):
            return Response.text("ready\n")
        if segments[:3] != ("loki", "api", "v1"):
            raise _Refused(404, "404 page not found")
        rest = segments[3:]
        params = self._params(request)
        now = int(self.clock() * _NS)
        match rest:
            case ("status", "buildinfo"):
                return Response.json({"version": LOKI_VERSION, "revision": "opsbot-simulator",
                                      "branch": "HEAD", "buildUser": "", "buildDate": "",
                                      "goVersion": ""})
            case ("labels",) | ("label",):
                with self.store.lock:
                    streams = self._in_range(self._streams(org_id), params, now)
                    names = sorted({name for stream in streams for name in stream.labels})
                return Response.json(_label_response(names))
            case ("label", name, "values"):
                selector = params.get("query")
                parsed = parse_logql(selector) if selector else None
                if isinstance(parsed, MetricQuery):
                    raise LogQLError("only log stream selectors are allowed in query")
                with self.store.lock:
                    streams = self._in_range(self._streams(org_id), params, now)
                    values = sorted({stream.labels[name] for stream in streams
                                     if name in stream.labels
                                     and (parsed is None or parsed.selects(stream.labels))})
                return Response.json(_label_response(values))
            case ("query_range",):
                return self._query_range(params, org_id, now)
            case ("query",):
                return self._query(params, org_id, now)
        raise _Refused(404, "404 page not found")

    def _in_range(self, streams: list[_Stream], params: Mapping[str, str],
                  now: int) -> list[_Stream]:
        end = _parse_time(params.get("end"), now)
        start = _parse_time(params.get("start"), end - _LABEL_LOOKBACK_NS)
        return [stream for stream in streams if any(True for _ in stream.between(start, end))]

    def _limit(self, params: Mapping[str, str]) -> int:
        raw = params.get("limit", "100")
        try:
            limit = int(raw)
        except ValueError:
            raise _Refused(400, f'invalid limit: strconv.Atoi: parsing "{raw}": '
                                "invalid syntax") from None
        if limit <= 0:
            raise _Refused(400, "limit must be a positive value")
        if limit > self.max_entries:
            raise _Refused(400, "max entries limit per query exceeded, limit > "
                                f"max_entries_limit ({limit} > {self.max_entries})")
        return limit

    @staticmethod
    def _direction(params: Mapping[str, str]) -> str:
        direction = params.get("direction", "backward").lower()
        if direction not in ("backward", "forward"):
            raise _Refused(400, f'invalid direction "{params.get("direction")}": '
                                "use forward or backward")
        return direction

    def _query_range(self, params: Mapping[str, str], org_id: str | None,
                     now: int) -> Response:
        parsed = parse_logql(params.get("query", ""))
        if isinstance(parsed, MetricQuery):
            raise _Refused(400, "metric queries on query_range are not supported by the opsbot "
                                "Loki simulator; ask /loki/api/v1/query (instant) instead")
        limit = self._limit(params)
        direction = self._direction(params)
        end = _parse_time(params.get("end"), now)
        start = _parse_time(params.get("start"), end - 3600 * _NS)
        if end <= start:
            raise _Refused(400, "end timestamp must not be before or equal to start time")
        entries: list[tuple[int, int, str]] = []  # (ns, stream number, line)
        with self.store.lock:
            streams = [s for s in self._streams(org_id) if parsed.selects(s.labels)]
            for number, stream in enumerate(streams):
                for index in stream.between(start, end):
                    line = stream.lines[index]
                    if parsed.keeps(line):
                        entries.append((stream.times[index], number, line))
        entries.sort(key=lambda entry: (entry[0], entry[1]), reverse=direction == "backward")
        entries = entries[:limit]
        grouped: dict[int, list[list[str]]] = {}
        for ns, number, line in entries:
            grouped.setdefault(number, []).append([str(ns), line])
        result = [{"stream": dict(streams[number].labels), "values": values}
                  for number, values in grouped.items()]
        return Response.json({"status": "success",
                              "data": {"resultType": "streams", "result": result,
                                       "stats": {}}})

    def _query(self, params: Mapping[str, str], org_id: str | None, now: int) -> Response:
        parsed = parse_logql(params.get("query", ""))
        if isinstance(parsed, StreamQuery):
            raise _Refused(400, "log queries are not supported as an instant query type, "
                                "please change your query to a range query type")
        at = _parse_time(params.get("time"), now)
        series: dict[tuple[tuple[str, str], ...], int] = {}
        with self.store.lock:
            for stream in self._streams(org_id):
                if not parsed.inner.selects(stream.labels):
                    continue
                count = sum(1 for index in stream.between(at - parsed.range_ns, at,
                                                          closed_end=True)
                            if parsed.inner.keeps(stream.lines[index]))
                if not count:
                    continue
                if not parsed.aggregate:
                    key = tuple(sorted(stream.labels.items()))
                elif parsed.by is None:
                    key = ()
                else:
                    key = tuple(sorted((name, stream.labels[name]) for name in parsed.by
                                       if name in stream.labels))
                series[key] = series.get(key, 0) + count
        seconds = at / _NS
        result = [{"metric": dict(key), "value": [seconds, str(count)]}
                  for key, count in sorted(series.items())]
        return Response.json({"status": "success",
                              "data": {"resultType": "vector", "result": result, "stats": {}}})


# ---------------------------------------------------------------------------------------
# The public face


def _label_response(values: list[str]) -> dict[str, object]:
    """Loki's label answer: no ``data`` key at all when the list is empty (omitempty)."""
    return {"status": "success", "data": values} if values else {"status": "success"}


class LokiSimulator(SimulatorBase[RecordedRequest]):
    """A Loki HTTP server in a thread, holding the demo's log records as streams.

    ``records`` defaults to :func:`simulators.logs.generate` at ``now`` (default: the
    current time) from ``seed_path`` and ``seed``. ``port=0`` picks a free port; read
    ``url`` after ``start()``. ``clock`` (epoch seconds) is what "now" means for requests
    without ``end`` or ``time``.
    """

    def __init__(
        self,
        records: Iterable[LogRecord] | None = None,
        *,
        now: datetime | None = None,
        seed_path: str | Path | None = None,
        seed: int = 42,
        tenant: str | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        labels: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if records is None:
            records = generate(now or datetime.fromtimestamp(clock(), UTC), seed_path, seed)
        self.tenant = tenant
        self.max_entries = max_entries
        self.labels = {**_DEFAULT_LABELS, **(labels or {})}
        if set(self.labels) != set(_DEFAULT_LABELS):
            raise ValueError("labels= maps service, env and level to label names, got "
                             f"{sorted(self.labels)}")
        self._store = _Store()
        self._count = 0
        names = self.labels
        for record in records:
            self.add_line({names["service"]: record.service, names["env"]: record.environment,
                           names["level"]: written_level(record.level)}, record.at,
                          record.message)
        super().__init__(_App(self._store, tenant, max_entries, clock),
                         faults=self._store.faults, requests=self._store.log,
                         host=host, port=port, name="loki-simulator", server_name="Loki")

    def __repr__(self) -> str:
        return f"LokiSimulator({self._location()}, {self._count} lines)"

    # -- lifecycle (port, start, stop, with: SimulatorBase) ------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash, as Loki URLs are written)."""
        return self._server.url.rstrip("/")

    def describe(self) -> str:
        """One line for the demo banner."""
        tenant = f", tenant {self.tenant}" if self.tenant else ""
        return f"Loki {LOKI_VERSION} at {self.url} ({self._count} log lines{tenant})"

    def env(self) -> dict[str, str]:
        """LOKI_URL (and LOKI_TENANT when multi-tenant) for opsbot's action server."""
        variables = {"LOKI_URL": self.url}
        if self.tenant:
            variables["LOKI_TENANT"] = self.tenant
        for key, name in self.labels.items():
            if name != _DEFAULT_LABELS[key]:
                variables[f"LOKI_{key.upper()}_LABEL"] = name
        return variables

    # -- data and inspection (and request_log: SimulatorBase) ----------------------

    def add_line(self, labels: Mapping[str, str], at: datetime, line: str) -> None:
        """Store one more line in the stream with ``labels`` (e.g. a JSON line, for tests)."""
        with self._store.lock:
            self._store.add(labels, _ns(at), line)
            self._count += 1


# ---------------------------------------------------------------------------------------
# python -m simulators.loki


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.loki",
        description="A local Loki for opsbot, serving the demo logs over Loki's HTTP API.",
    )
    add_address_arguments(parser, 3100)
    parser.add_argument("--seed-file", type=Path, default=DEFAULT_SEED,
                        help="services, rates and incidents (YAML)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--tenant", default=None,
                        help="require this X-Scope-OrgID (default: single-tenant)")
    parser.add_argument("--write-files", type=Path, default=None, metavar="DIR",
                        help="also write the same lines as log files into DIR")
    args = parser.parse_args(argv)

    def make() -> LokiSimulator:
        records = generate(datetime.now(UTC), args.seed_file, args.seed)
        if args.write_files is not None:
            write_files(records, args.write_files, args.seed_file)
        return LokiSimulator(records, tenant=args.tenant, host=args.host, port=args.port)

    def banner(simulator: LokiSimulator) -> list[str]:
        lines = [f"Loki simulator: {simulator.describe()}"]
        lines += [f"  {name}={value}" for name, value in simulator.env().items()]
        if args.write_files is not None:
            lines.append(f"  the same lines as files: OPSBOT_LOG_DIR={args.write_files}")
        return lines

    return run_main(make, banner, seed_error=SeedError,
                    cannot=f"listen on {args.host}:{args.port} or write the files")


if __name__ == "__main__":
    raise SystemExit(main())
