"""simulators.loki through plain requests: the shapes, semantics and errors of Loki's API.

A small hand-made data set (so every expected answer is obvious) plus the generated
demo records for the aggregate checks. No test asserts a timing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from simulators.logs import LogRecord, generate, written_level
from simulators.loki import LOKI_VERSION, LogQLError, LokiSimulator, parse_logql

NOW = datetime(2026, 11, 22, 14, 37, 12, tzinfo=UTC)
NS = 1_000_000_000


def ns(at: datetime) -> int:
    return int(at.timestamp()) * NS + at.microsecond * 1000


def record(minutes_ago: float, service: str, env: str, level: str, message: str) -> LogRecord:
    return LogRecord(NOW - timedelta(minutes=minutes_ago), service, env, level, message,
                     f"{service}.api", "0" * 32, f"{service}-0")


LINES = [
    record(50, "payments", "prod", "info", "charge ok in 42ms"),
    record(40, "payments", "prod", "error", "ReadTimeout calling cardstream"),
    record(30, "payments", "staging", "warning", 'deprecated key "retry.max"'),
    record(20, "checkout", "prod", "error", "POST /confirm 502 Bad Gateway"),
    record(10, "checkout", "dev", "debug", "cart recalculated"),
    record(5, "payments", "prod", "error", "ReadTimeout calling cardstream again"),
    record(1, "search", "prod", "info", 'q="red \\"shoes" parsed'),
]


@pytest.fixture(scope="module")
def loki() -> Iterator[LokiSimulator]:
    with LokiSimulator(LINES, clock=NOW.timestamp, max_entries=100) as simulator:
        yield simulator


def get(loki: LokiSimulator, path: str, **params: Any) -> requests.Response:
    return requests.get(f"{loki.url}{path}", params=params, timeout=5)


def query_range(loki: LokiSimulator, query: str, **params: Any) -> requests.Response:
    params.setdefault("start", ns(NOW - timedelta(hours=1)))
    params.setdefault("end", ns(NOW))
    return get(loki, "/loki/api/v1/query_range", query=query, **params)


def messages(response: requests.Response) -> list[str]:
    """Every line of a streams answer, merged newest first."""
    assert response.status_code == 200, response.text
    entries = [(int(ts), line) for stream in response.json()["data"]["result"]
               for ts, line in stream["values"]]
    return [line for _, line in sorted(entries, reverse=True)]


# -- basics ------------------------------------------------------------------------------


def test_ready_buildinfo_and_the_demo_face(loki: LokiSimulator) -> None:
    ready = get(loki, "/ready")
    assert (ready.status_code, ready.text) == (200, "ready\n")
    assert get(loki, "/loki/api/v1/status/buildinfo").json()["version"] == LOKI_VERSION
    assert not loki.url.endswith("/")
    assert loki.env() == {"LOKI_URL": loki.url}
    assert loki.url in loki.describe() and "7 log lines" in loki.describe()
    missing = get(loki, "/loki/api/v1/nope")
    assert (missing.status_code, missing.text) == (404, "404 page not found\n")


def test_labels_and_label_values(loki: LokiSimulator) -> None:
    window = {"start": ns(NOW - timedelta(hours=1)), "end": ns(NOW)}
    labels = get(loki, "/loki/api/v1/labels", **window).json()
    assert labels == {"status": "success", "data": ["env", "level", "service"]}
    assert get(loki, "/loki/api/v1/label", **window).json() == labels
    services = get(loki, "/loki/api/v1/label/service/values", **window).json()
    assert services["data"] == ["checkout", "payments", "search"]
    levels = get(loki, "/loki/api/v1/label/level/values", **window).json()["data"]
    assert levels == ["debug", "error", "info", "warn"]  # as the services write them
    prod_only = get(loki, "/loki/api/v1/label/service/values", query='{env="dev"}', **window)
    assert prod_only.json()["data"] == ["checkout"]
    # Loki's LabelResponse is json:"data,omitempty": an empty answer has no data at all.
    assert get(loki, "/loki/api/v1/label/nope/values", **window).json() == {"status": "success"}
    recent = get(loki, "/loki/api/v1/label/service/values", start=ns(NOW - timedelta(minutes=3)),
                 end=ns(NOW)).json()["data"]
    assert recent == ["search"]


def test_query_range_answers_streams(loki: LokiSimulator) -> None:
    response = query_range(loki, '{service="payments", env="prod"}')
    body = response.json()
    assert response.headers["Content-Type"].startswith("application/json")
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "streams" and "stats" in body["data"]
    streams = {tuple(sorted(s["stream"].items())): s["values"] for s in body["data"]["result"]}
    assert set(streams) == {
        (("env", "prod"), ("level", "error"), ("service", "payments")),
        (("env", "prod"), ("level", "info"), ("service", "payments"))}
    errors = streams[(("env", "prod"), ("level", "error"), ("service", "payments"))]
    assert errors == [[str(ns(NOW - timedelta(minutes=5))), "ReadTimeout calling cardstream again"],
                      [str(ns(NOW - timedelta(minutes=40))), "ReadTimeout calling cardstream"]]


def test_direction_and_limit(loki: LokiSimulator) -> None:
    everything = '{service=~".+"}'
    newest = messages(query_range(loki, everything, limit=2))
    assert newest == ['q="red \\"shoes" parsed', "ReadTimeout calling cardstream again"]
    oldest = query_range(loki, everything, limit=2, direction="forward").json()
    values = [v for s in oldest["data"]["result"] for v in s["values"]]
    assert sorted(line for _, line in values) == ["ReadTimeout calling cardstream",
                                                  "charge ok in 42ms"]
    assert len(messages(query_range(loki, everything))) == 7  # default limit 100
    for stream in query_range(loki, everything, direction="FORWARD").json()["data"]["result"]:
        stamps = [int(ts) for ts, _ in stream["values"]]
        assert stamps == sorted(stamps)


def test_start_is_inclusive_and_end_exclusive(loki: LokiSimulator) -> None:
    at = ns(NOW - timedelta(minutes=20))  # the checkout 502
    assert messages(query_range(loki, '{service="checkout"}', start=at, end=at + 1)) == \
        ["POST /confirm 502 Bad Gateway"]
    assert messages(query_range(loki, '{service="checkout"}', start=at - 5, end=at)) == []


def test_time_parameters_in_every_format(loki: LokiSimulator) -> None:
    query = '{service="payments"} |= "again"'
    start, end = NOW - timedelta(minutes=6), NOW - timedelta(minutes=4)
    for first, last in [(ns(start), ns(end)),
                        (int(start.timestamp()), int(end.timestamp())),
                        (f"{start.timestamp():.3f}", f"{end.timestamp():.3f}"),
                        (start.isoformat().replace("+00:00", "Z"), end.isoformat())]:
        assert messages(query_range(loki, query, start=first, end=last)) == \
            ["ReadTimeout calling cardstream again"], (first, last)
    bad = query_range(loki, query, start="yesterday-ish")
    assert (bad.status_code, bad.text) == (
        400, 'cannot parse "yesterday-ish" to a valid timestamp\n')


@pytest.mark.parametrize(("query", "expected"), [
    ('{service="payments", level="error"}', ["ReadTimeout calling cardstream again",
                                             "ReadTimeout calling cardstream"]),
    ('{service="payments", env!="prod"}', ['deprecated key "retry.max"']),
    ('{level=~"err.*|warn"}', ["ReadTimeout calling cardstream again",
                               "POST /confirm 502 Bad Gateway",
                               'deprecated key "retry.max"',
                               "ReadTimeout calling cardstream"]),
    ('{level=~"err"}', []),  # label regexes are anchored
    ('{service="payments", level!~"error|info"}', ['deprecated key "retry.max"']),
    ('{service=~".+"} |= "cardstream" != "again"', ["ReadTimeout calling cardstream"]),
    ('{service=~".+"} |~ "(?i)readtimeout" !~ "again$"', ["ReadTimeout calling cardstream"]),
    ('{service=~".+"} |~ "\\\\d+ms"', ["charge ok in 42ms"]),  # line regexes are not
    ('{service=~".+"} |= `"red \\"shoes"`', ['q="red \\"shoes" parsed']),
    ('{service=~".+"} |= "\\"red \\\\\\"shoes"', ['q="red \\"shoes" parsed']),
    ('{service=~".+"} |= "\\u0022retry"', ['deprecated key "retry.max"']),
    ('{service="search",}', ['q="red \\"shoes" parsed']),
    ('{service=~".+"} |= "} |= \\""', []),
    ('  {service="checkout"}\n  |= "502"  ', ["POST /confirm 502 Bad Gateway"]),
])
def test_selectors_and_line_filters(loki: LokiSimulator, query: str,
                                    expected: list[str]) -> None:
    assert messages(query_range(loki, query)) == expected


@pytest.mark.parametrize(("query", "error"), [
    ('{service=payments}',
     "parse error at line 1, col 10: syntax error: unexpected IDENTIFIER, expecting STRING"),
    ('{service="payments"',
     "parse error at line 1, col 20: syntax error: unexpected $end, expecting } or ,"),
    ('{service=="payments"}', "parse error at line 1, col 10: syntax error: unexpected ="),
    ('service="payments"', "parse error at line 1, col 1: syntax error: unexpected IDENTIFIER"),
    ('{}', "parse error at line 1, col 2: syntax error: unexpected }, expecting IDENTIFIER"),
    ('{service="a"} |= payments',
     "parse error at line 1, col 18: syntax error: unexpected IDENTIFIER, expecting STRING"),
    ('{service="a"} |= "open', "parse error at line 1, col 18: literal not terminated"),
    ('{service="\\q"}', "parse error at line 1, col 10: invalid char escape"),
    ('{service="a"} @', "parse error at line 1, col 15: syntax error: unexpected @"),
    ('{service="a"}\n|= "x" }', "parse error at line 2, col 8: syntax error: unexpected }"),
    ('{service=~"(a"}', "parse error at line 1, col 11: error parsing regexp: "),
    ('{service="a"} |~ "(?=x)"', "parse error at line 1, col 18: error parsing regexp: "
                                 "invalid or unsupported Perl syntax: `(?=`"),
    ('', "parse error at line 1, col 1: syntax error: unexpected $end"),
    ('{env=~".*"}', "queries require at least one regexp or equality matcher that does not "
                    "have an empty-compatible value"),
    ('{env!="prod"}', "queries require at least one regexp or equality matcher"),
    ('{service="a"} | json', "unsupported LogQL at line 1, col 15: the pipeline stage '| json'"),
    ('{service="a"} | level="error"', "unsupported LogQL at line 1, col 15"),
    ('rate({service="a"}[5m])', "unsupported LogQL at line 1, col 1: rate(...)"),
])
def test_errors_are_loki_like_400s(loki: LokiSimulator, query: str, error: str) -> None:
    response = query_range(loki, query)
    assert response.status_code == 400
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.text.startswith(error), response.text
    with pytest.raises(LogQLError):
        parse_logql(query)


@pytest.mark.parametrize(("params", "error"), [
    ({"limit": 101},
     "max entries limit per query exceeded, limit > max_entries_limit (101 > 100)"),
    ({"limit": 0}, "limit must be a positive value"),
    ({"limit": "ten"}, 'invalid limit: strconv.Atoi: parsing "ten": invalid syntax'),
    ({"direction": "sideways"}, 'invalid direction "sideways"'),
    ({"start": ns(NOW), "end": ns(NOW)}, "end timestamp must not be before or equal to start"),
])
def test_bad_parameters_are_400s(loki: LokiSimulator, params: dict[str, Any],
                                 error: str) -> None:
    response = query_range(loki, '{service="payments"}', **params)
    assert response.status_code == 400 and response.text.startswith(error), response.text


def test_post_with_a_form_body(loki: LokiSimulator) -> None:
    response = requests.post(f"{loki.url}/loki/api/v1/query_range", timeout=5,
                             data={"query": '{service="checkout", level="error"}',
                                   "start": ns(NOW - timedelta(hours=1)), "end": ns(NOW)})
    assert messages(response) == ["POST /confirm 502 Bad Gateway"]


# -- instant metric queries -----------------------------------------------------------------


def vector(loki: LokiSimulator, query: str, at: datetime = NOW) -> dict[str, int]:
    response = get(loki, "/loki/api/v1/query", query=query, time=ns(at))
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["resultType"] == "vector"
    assert all(item["value"][0] == ns(at) / NS for item in data["result"])
    return {",".join(f"{k}={v}" for k, v in sorted(item["metric"].items())): int(item["value"][1])
            for item in data["result"]}


def test_count_over_time(loki: LokiSimulator) -> None:
    assert vector(loki, 'sum by (level) (count_over_time({service="payments"} [1h]))') == \
        {"level=error": 2, "level=info": 1, "level=warn": 1}
    assert vector(loki, 'sum(count_over_time({service="payments"} |= "cardstream" [1h]))') == \
        {"": 2}
    assert vector(loki, 'sum(count_over_time({service="payments"}[1h] |= "cardstream")) '
                        "by (env)") == {"env=prod": 2}
    assert vector(loki, 'count_over_time({service="checkout"} [3600000ms])') == {
        "env=dev,level=debug,service=checkout": 1, "env=prod,level=error,service=checkout": 1}
    assert vector(loki, 'sum(count_over_time({service="payments"} |= "nothing" [1h]))') == {}


def test_count_over_time_window_is_open_at_the_start(loki: LokiSimulator) -> None:
    """(time - range, time]: a line exactly at time counts, one exactly range earlier not."""
    at = NOW - timedelta(minutes=20)
    query = 'sum(count_over_time({service="checkout", env="prod"} [1m]))'
    assert vector(loki, query, at) == {"": 1}
    assert vector(loki, query, at + timedelta(minutes=1)) == {}
    assert vector(loki, query, at + timedelta(seconds=59)) == {"": 1}


def test_wrong_query_kind_per_endpoint(loki: LokiSimulator) -> None:
    log = get(loki, "/loki/api/v1/query", query='{service="payments"}')
    assert log.status_code == 400 and "log queries are not supported as an instant query" \
        in log.text
    metric = query_range(loki, 'sum(count_over_time({service="payments"} [1h]))')
    assert metric.status_code == 400 and "/loki/api/v1/query" in metric.text
    for bad in ['sum without (level) (count_over_time({service="a"} [1h]))',
                'count_over_time({service="a"} [1h] | json)',
                'count_over_time({service="a"} [soon])', 'count_over_time({service="a"})']:
        assert get(loki, "/loki/api/v1/query", query=bad).status_code == 400, bad


def test_generated_records_are_served_as_streams() -> None:
    records = generate(NOW)
    with LokiSimulator(records, clock=NOW.timestamp) as sim:
        counts = vector(sim, 'sum by (service, level) (count_over_time({env=~".+"} [26h]))')
    expected = Counter(f"level={written_level(r.level)},service={r.service}" for r in records
                       if r.at > NOW - timedelta(hours=26))
    assert counts == dict(expected)


# -- tenants, faults and the request log ----------------------------------------------------


def test_multi_tenant_needs_an_org_id() -> None:
    with LokiSimulator(LINES, tenant="team-a", clock=NOW.timestamp) as sim:
        refused = query_range(sim, '{service="payments"}')
        assert (refused.status_code, refused.text) == (401, "no org id\n")
        url = f"{sim.url}/loki/api/v1/query_range"
        params = {"query": '{service="payments"}', "start": ns(NOW - timedelta(hours=1)),
                  "end": ns(NOW)}
        mine = requests.get(url, params=params, headers={"X-Scope-OrgID": "team-a"}, timeout=5)
        other = requests.get(url, params=params, headers={"X-Scope-OrgID": "team-b"}, timeout=5)
        assert len(messages(mine)) == 4 and messages(other) == []
        assert [r.org_id for r in sim.request_log()] == [None, "team-a", "team-b"]


def test_fail_next_and_delay_next(loki: LokiSimulator) -> None:
    loki.fail_next(503, times=2, path="/query_range")
    assert get(loki, "/ready").status_code == 200  # another path: unaffected
    assert query_range(loki, '{service="payments"}').status_code == 503
    assert query_range(loki, '{service="payments"}').status_code == 503
    assert query_range(loki, '{service="payments"}').status_code == 200
    loki.fail_next(500)
    failed = get(loki, "/loki/api/v1/labels")
    assert failed.status_code == 500 and "fail_next" in failed.text
    loki.delay_next(2.0)
    with pytest.raises(requests.Timeout):
        requests.get(f"{loki.url}/ready", timeout=0.2)
    assert get(loki, "/ready").status_code == 200
    log = loki.request_log()
    assert [r.status for r in log if "/query_range" in r.target][-3:] == [503, 503, 200]
    with pytest.raises(ValueError):
        loki.fail_next(200)


def test_a_stopped_simulator_refuses_connections() -> None:
    sim = LokiSimulator(LINES, clock=NOW.timestamp)
    sim.start()
    url = sim.url
    sim.stop()
    sim.stop()  # twice is fine
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/ready", timeout=2)
