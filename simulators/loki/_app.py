"""The Loki simulator's HTTP face: ``/ready``, build info, labels and their values,
``query_range`` and ``query``, with Loki's answers and its plain-text errors.

Why apart: the wire is one job; LogQL and the store know nothing of HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from http import HTTPStatus
from urllib.parse import parse_qs

from simulators._http import Request, Response
from simulators.loki._logql import _NS, LogQLError, MetricQuery, StreamQuery, parse_logql
from simulators.loki._store import (
    _LABEL_LOOKBACK_NS,
    LOKI_VERSION,
    RecordedRequest,
    _parse_time,
    _Refused,
    _Store,
    _Stream,
)


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


def _label_response(values: list[str]) -> dict[str, object]:
    """Loki's label answer: no ``data`` key at all when the list is empty (omitempty)."""
    return {"status": "success", "data": values} if values else {"status": "success"}
