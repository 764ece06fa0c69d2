"""LokiLogSource: Grafana Loki over its HTTP API, every value from a person inside an
escaped LogQL string literal."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import requests

from actions.backends._common import connection_message, masked, run_in_thread
from actions.backends.logs._lines import _message_of
from actions.backends.logs._model import (
    _EPOCH,
    _LEVEL_ALIASES,
    _LOKI,
    LogLine,
    LogQuery,
    LogResult,
    _check_service,
    _covering,
    _order_key,
    _ordered_counts,
    _positive_timeout,
    levels_for,
    normalise_level,
)
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    Secret,
)

_T = TypeVar("_T")

# -- Loki -----------------------------------------------------------------------------------

_PAGE_SIZE = 5000  # Loki's default max_entries_limit_per_query
_SERVICES_LOOKBACK = timedelta(days=30)


def logql_string(value: str) -> str:
    """``value`` as a LogQL (Go) double-quoted string literal: nothing in it is syntax."""
    out = ['"']
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def re2_quote(text: str) -> str:
    """``text`` as an RE2 regex matching itself (Go's regexp.QuoteMeta)."""
    return "".join("\\" + char if char in _RE2_SPECIAL else char for char in text)


def _level_regex(levels: frozenset[str]) -> str:
    """An anchored-by-Loki regex for every spelling of ``levels`` (ERROR, err, crit, ...)."""
    spellings = sorted(alias for alias, level in _LEVEL_ALIASES.items() if level in levels)
    return "(?i)(?:" + "|".join(spellings) + ")"


def _ns(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _from_ns(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1000)


def loki_url_problem(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return f"is not a valid URL: {_without_credentials(url)!r}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ("must be Loki's http(s) address, like http://loki:3100; "
                f"got {_without_credentials(url)!r}")
    if parts.query or parts.fragment:
        return ("must be Loki's base address, without ?query or #fragment; "
                f"got {_without_credentials(url)!r}")
    return None


def _without_credentials(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.username is None and parts.password is None:
            return url
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc += f":{parts.port}"
    except ValueError:
        return "<malformed URL>"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class LokiLogSource:
    """Grafana Loki over its HTTP API (``/loki/api/v1/query`` and ``query_range``).

    Streams are expected to carry ``service``, ``env`` and ``level`` labels (names
    configurable); the level label may use any common spelling (``warn``, ``ERROR``).
    Credentials in the URL (``https://user:token@logs.example.com``, as Grafana Cloud
    wants) are sent as HTTP Basic auth and never shown; ``tenant`` is sent as
    ``X-Scope-OrgID`` for a multi-tenant Loki.
    """

    name = _LOKI

    def __init__(self, url: str, timeout: float = 10.0, tenant: str | None = None, *,
                 service_label: str = "service", env_label: str = "env",
                 level_label: str = "level", page_size: int = _PAGE_SIZE) -> None:
        problem = loki_url_problem(url)
        if problem:
            raise ConfigError(f"The Loki URL {problem}")
        parts = urlsplit(url)
        self._auth: tuple[str, Secret] | None = None
        if parts.username is not None or parts.password is not None:
            self._auth = (unquote(parts.username or ""), Secret(unquote(parts.password or "")))
        self.url = _without_credentials(url).rstrip("/")
        self.timeout = _positive_timeout(timeout, "LokiLogSource.timeout")
        self.tenant = tenant.strip() if tenant and tenant.strip() else None
        for label in (service_label, env_label, level_label):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", label):
                raise ConfigError(f"{label!r} is not a valid Loki label name")
        if page_size < 1:
            raise ConfigError(f"LokiLogSource.page_size must be at least 1, got {page_size}")
        self.service_label, self.env_label, self.level_label = (service_label, env_label,
                                                                level_label)
        self.page_size = page_size
        self._local = threading.local()  # one requests.Session per worker thread

    def __repr__(self) -> str:
        tenant = f", tenant={self.tenant!r}" if self.tenant else ""
        return f"LokiLogSource({self.url!r}{tenant})"

    @property
    def source(self) -> str:
        """``Loki at http://...``, as LogResult.source reports it (no credentials)."""
        return f"Loki at {self.url}"

    def logql(self, q: LogQuery) -> str:
        """The LogQL log query for ``q``: user values only ever inside string literals."""
        matchers: list[str] = []
        if q.service is not None:
            matchers.append(f"{self.service_label}={logql_string(q.service)}")
        if q.environment is not None:
            matchers.append(f"{self.env_label}={logql_string(q.environment)}")
        levels = levels_for(q.level)
        if levels is not None:
            matchers.append(f"{self.level_label}=~{logql_string(_level_regex(levels))}")
        if not matchers:  # Loki needs one matcher that cannot match the empty string
            matchers.append(f'{self.service_label}=~".+"')
        query = "{" + ", ".join(matchers) + "}"
        if q.text is not None:
            query += f" |~ {logql_string('(?i)' + re2_quote(q.text))}"
        return query

    async def query(self, q: LogQuery) -> LogResult:
        """Counts from one metric query, then the newest ``limit`` lines, paged."""
        logql = self.logql(q)
        start_ns, end_ns = _ns(q.start), _ns(q.end)
        # count_over_time counts (time - range, time]; with time = end - 1ns and a whole
        # number of milliseconds as range, that is [start, end) like query_range.
        range_ms = max(1, -(-(end_ns - start_ns) // 1_000_000))
        metric = (f"sum by ({self.level_label}) "
                  f"(count_over_time({logql} [{range_ms}ms]))")
        data = await self._get("query", {"query": metric, "time": str(end_ns - 1)},
                               doing="count the matching log lines")
        counter: Counter[str] = Counter()
        with _unreadable(self.url):
            for item in _result(data, "vector", self.url):
                labels = item.get("metric") or {}
                counter[normalise_level(labels.get(self.level_label))] += int(
                    float(item["value"][1]))
        counts = _ordered_counts(counter)
        total = sum(counts.values())
        lines: list[LogLine] = []
        if total:
            lines = await self._newest(logql, q, start_ns, end_ns, min(q.limit, total))
        else:
            await _check_service(self, q, _LOKI)
        return LogResult(tuple(lines), counts, total, self.source)

    async def services(self, until: datetime | None = None) -> list[str]:
        """The values of the service label over the 30 days before ``until`` (default
        now), sorted."""
        now = until or datetime.now(UTC)
        path = f"label/{quote(self.service_label, safe='')}/values"
        data = await self._get(path, {"start": str(_ns(now - _SERVICES_LOOKBACK)),
                                      "end": str(_ns(now))}, doing="list the services")
        # Loki leaves "data" out when the label has no values (json:"data,omitempty").
        values = data.get("data", []) if isinstance(data, dict) else None
        if not isinstance(values, list):
            raise BackendUnavailable(f"Loki at {self.url} sent label values opsbot could not "
                                     "read.", backend=_LOKI)
        return sorted(str(value) for value in values)

    async def ping(self) -> str:
        return _covering(self.source, await self.services())

    async def _newest(self, logql: str, q: LogQuery, start_ns: int, end_ns: int,
                      target: int) -> list[LogLine]:
        """Page backward from ``end`` until ``target`` lines or the window is exhausted.

        Each next page ends just after the oldest line seen (Loki's end is exclusive), so
        lines sharing that nanosecond are fetched again and dropped as duplicates.
        """
        lines: list[LogLine] = []
        cursor = end_ns
        boundary: set[tuple[int, tuple[tuple[str, str], ...], str]] = set()
        while len(lines) < target:
            want = min(self.page_size, target - len(lines) + len(boundary))
            data = await self._get("query_range", {
                "query": logql, "start": str(start_ns), "end": str(cursor),
                "limit": str(want), "direction": "backward"}, doing="search the logs")
            entries: list[tuple[int, tuple[tuple[str, str], ...], str]] = []
            with _unreadable(self.url):
                for stream in _result(data, "streams", self.url):
                    labels = tuple(sorted((str(k), str(v))
                                          for k, v in (stream.get("stream") or {}).items()))
                    for value in stream.get("values") or ():  # [ns, line(, metadata)]
                        entries.append((int(value[0]), labels, str(value[1])))
            entries.sort(key=lambda entry: entry[0], reverse=True)
            fresh = [entry for entry in entries if entry not in boundary]
            lines.extend(self._line(entry, q) for entry in fresh)
            if len(entries) < want or not fresh:
                break  # the window holds no more
            oldest = entries[-1][0]
            boundary = {entry for entry in entries if entry[0] == oldest}
            cursor = oldest + 1
        lines.sort(key=_order_key)
        return lines[:q.limit]

    def _line(self, entry: tuple[int, tuple[tuple[str, str], ...], str],
              q: LogQuery) -> LogLine:
        ns, labels, line = entry
        stream = dict(labels)
        environment = stream.get(self.env_label)
        return LogLine(_from_ns(ns), stream.get(self.service_label) or q.service or "unknown",
                       environment.lower() if environment else None,
                       normalise_level(stream.get(self.level_label)), _message_of(line))

    # -- HTTP ------------------------------------------------------------------------

    async def _get(self, path: str, params: dict[str, str], *, doing: str) -> Any:
        url = f"{self.url}/loki/api/v1/{path}"
        headers = {"Accept": "application/json"}
        if self.tenant:
            headers["X-Scope-OrgID"] = self.tenant
        auth = (self._auth[0], self._auth[1].reveal()) if self._auth else None
        call = partial(self._http_get, url, params=params, headers=headers, auth=auth)

        def timed_out() -> BackendError:
            return BackendUnavailable(
                f"Loki at {self.url} did not answer within {self.timeout:g}s while trying to "
                f"{doing}; is it up? (LOGS_TIMEOUT sets the limit.)", backend=_LOKI)

        try:
            response = await run_in_thread(call, self.timeout, timed_out=timed_out,
                                           also=(requests.Timeout,), backend="logs")
        except requests.ConnectionError as exc:
            raise BackendUnavailable(connection_message(exc, product="Loki", url=self.url,
                                                        variable="LOKI_URL"),
                                     backend=_LOKI) from exc
        except requests.RequestException as exc:
            raise BackendUnavailable(f"Talking to Loki at {self.url} failed unexpectedly "
                                     f"({type(exc).__name__}) while trying to {doing}; the "
                                     "action server's log has the details.",
                                     backend=_LOKI) from exc
        if response.status_code >= 400:
            raise self._status_error(response.status_code, response.text or "", path, doing)
        try:
            return response.json()
        except ValueError as exc:
            raise BackendUnavailable(f"Loki at {self.url} sent an answer that is not Loki's "
                                     "JSON API; is LOKI_URL Loki itself (like "
                                     "http://loki:3100), not Grafana or a login page?",
                                     backend=_LOKI) from exc

    def _http_get(self, url: str, **kwargs: Any) -> requests.Response:
        """One GET in the calling (worker) thread, on that thread's own session."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session.get(url, timeout=self.timeout, **kwargs)

    def _status_error(self, status: int, body: str, path: str, doing: str) -> BackendError:
        where = f"Loki at {self.url}"
        detail = " ".join(body.split())[:300].rstrip(" .")
        if self._auth:
            detail = masked(detail, self._auth[1].reveal())
        if status in (401, 403):
            return BackendAuthError(
                f"{where} refused opsbot ({status}) while trying to {doing}: set LOKI_TENANT "
                "to the tenant (X-Scope-OrgID) to read, and check the credentials in "
                "LOKI_URL.", backend=_LOKI)
        if status == 404:
            return BackendUnavailable(
                f"{where} has no /loki/api/v1/{path.split('/')[0]} (404); is LOKI_URL Loki's "
                "base address, like http://loki:3100?", backend=_LOKI)
        if status == 429:
            return BackendUnavailable(f"{where} is rate-limiting queries (429); try again in a "
                                      "minute.", backend=_LOKI)
        if status < 500:
            hint = (" Try a shorter time range." if re.search(
                r"limit|too long|time range|query length|exceeded", detail, re.IGNORECASE)
                else "")
            return InvalidRequest(f"Loki refused to {doing} ({status}): {detail}.{hint}",
                                  backend=_LOKI)
        why = f": {detail}" if detail else ""
        return BackendUnavailable(f"{where} failed ({status}) while trying to {doing}{why}. "
                                  "Try again in a minute; if it persists, check Loki's logs.",
                                  backend=_LOKI)

@contextmanager
def _unreadable(url: str) -> Iterator[None]:
    """Turn a surprise in the shape of Loki's JSON into BackendUnavailable."""
    try:
        yield
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise BackendUnavailable(f"Loki at {url} sent an answer opsbot could not read "
                                 f"({type(exc).__name__}).", backend=_LOKI) from exc


def _result(data: Any, kind: str, url: str) -> list[dict[str, Any]]:
    """``data.result`` of a Loki answer of ``resultType`` ``kind``; BackendUnavailable if not."""
    try:
        if data["status"] != "success" or data["data"]["resultType"] != kind:
            raise ValueError(f"status {data.get('status')!r}, "
                             f"resultType {data['data'].get('resultType')!r}")
        result = data["data"]["result"]
        if not isinstance(result, list) or not all(isinstance(item, dict) for item in result):
            raise ValueError("result is not a list of objects")
        return result
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendUnavailable(f"Loki at {url} sent an answer opsbot could not read "
                                 f"({type(exc).__name__}: {exc}).", backend=_LOKI) from exc
