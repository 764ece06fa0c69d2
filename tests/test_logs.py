"""actions.backends.logs: both log sources on the same generated records must agree.

The files come from simulators.logs.write_files, Loki is simulators.loki over real HTTP
(requests inside LokiLogSource), and both hold the same records for one fixed ``now``.
parse_time_range runs under fixed POSIX TZ strings (no tz database needed). No test
asserts a timing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

from actions.backends import logs as logs_module
from actions.backends.logs import (
    FileLogSource,
    LogLine,
    LogQuery,
    LogResult,
    LogSource,
    LokiLogSource,
    levels_for,
    log_source_from_env,
    logql_string,
    normalise_level,
    parse_time_range,
    re2_quote,
)
from actions.backends.logs import _files as files_module
from actions.errors import (
    BackendAuthError,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    NotFound,
)
from simulators import logs as demo_logs
from simulators._http import BackgroundServer, Response
from simulators.logs import LogRecord, generate, write_files
from simulators.loki import LokiSimulator, parse_logql
from tests.conftest import free_port

T = TypeVar("T")
NOW = datetime(2026, 11, 22, 14, 37, 12, 345000, tzinfo=UTC)
HOUR = timedelta(hours=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SPAN = timedelta(hours=26)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one source coroutine to completion (no pytest-asyncio here)."""
    return asyncio.run(coroutine)


def same(result: LogResult) -> LogResult:
    """A result without its source, which necessarily differs between sources."""
    return dataclasses.replace(result, source="")


@pytest.fixture(scope="module")
def records() -> list[LogRecord]:
    return generate(NOW)


@pytest.fixture(scope="module")
def log_dir(records: list[LogRecord], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("logs")
    write_files(records, directory)
    return directory


@pytest.fixture(scope="module")
def loki(records: list[LogRecord]) -> Iterator[LokiSimulator]:
    with LokiSimulator(records, clock=NOW.timestamp) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def files(log_dir: Path) -> FileLogSource:
    return FileLogSource(log_dir, timeout=10)


@pytest.fixture(scope="module")
def loki_source(loki: LokiSimulator) -> LokiLogSource:
    return LokiLogSource(loki.url, timeout=5)


def q(service: str | None = None, environment: str | None = None, level: str | None = None,
      text: str | None = None, back: timedelta = SPAN, limit: int = 20,
      end: datetime = NOW) -> LogQuery:
    return LogQuery(service, environment, level, text, end - back, end, limit)


def expected(records: list[LogRecord], query: LogQuery) -> list[LogRecord]:
    """What a query must find, computed straight from the records, newest first."""
    levels = levels_for(query.level)
    pattern = re.compile(re.escape(query.text), re.IGNORECASE) if query.text else None
    found = [r for r in records
             if (query.service is None or r.service == query.service)
             and (query.environment is None or r.environment == query.environment)
             and (levels is None or r.level in levels)
             and (pattern is None or pattern.search(r.message))
             and query.start <= r.at < query.end]
    return sorted(found, key=lambda r: r.at, reverse=True)


# -- the demo data -------------------------------------------------------------------------


def test_generate_is_deterministic_and_well_formed(records: list[LogRecord]) -> None:
    assert generate(NOW) == records
    assert generate(NOW, seed=7) != records
    assert len({r.at for r in records}) == len(records), "timestamps must be unique"
    assert all(r.at < NOW and r.at > NOW - SPAN - HOUR for r in records)
    assert all(r.at.microsecond % 1000 == 0 for r in records)
    assert [r.at for r in records] == sorted(r.at for r in records)
    assert {r.service for r in records} == {"payments", "checkout", "search", "billing", "auth",
                                            "inventory", "notifications"}
    assert {r.environment for r in records} == {"prod", "staging", "dev"}
    assert {r.level for r in records} == set(demo_logs.LEVELS)
    assert all(re.fullmatch(r"[0-9a-f]{32}", r.trace_id) for r in records)
    assert all("${" not in r.message for r in records), "every placeholder is filled"


def test_demo_story_has_payments_errors_in_the_last_hour(records: list[LogRecord]) -> None:
    recent = expected(records, q("payments", level="error", back=HOUR))
    assert len(recent) >= 30
    assert all(r.environment == "prod" for r in recent)
    assert any("cardstream" in r.message for r in recent)
    checkout = expected(records, q("checkout", "prod", "error", back=HOUR))
    assert any("502" in r.message for r in checkout)


def test_write_files_writes_text_and_json_lines(log_dir: Path,
                                                records: list[LogRecord]) -> None:
    names = sorted(path.name for path in log_dir.iterdir())
    assert "payments.log" in names and "checkout.jsonl" in names
    text_line = (log_dir / "payments.log").read_text().splitlines()[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARN|ERROR|FATAL) "
                        r"\[(prod|staging|dev)\] payments\.\w+: .+", text_line)
    data = json.loads((log_dir / "checkout.jsonl").read_text().splitlines()[0])
    assert {"ts", "level", "env", "service", "msg", "trace_id", "logger"} <= set(data)
    assert data["service"] == "checkout"
    written = sum(len(path.read_text().splitlines()) for path in log_dir.iterdir())
    assert written == len(records)


def test_simulators_logs_main_writes_the_files(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert demo_logs.main([str(tmp_path)]) == 0
    assert (tmp_path / "payments.log").is_file() and (tmp_path / "auth.jsonl").is_file()
    assert "lines in 7 files" in capsys.readouterr().out


def test_a_malformed_seed_names_the_place(tmp_path: Path) -> None:
    seed = tmp_path / "logs.yml"
    seed.write_text("environments: {prod: {scale: 1}}\nvalues: {}\nservices:\n"
                    "  payments:\n    rates: {error: 1}\n    messages: {error: ['x ${nope}']}\n")
    with pytest.raises(demo_logs.SeedError, match=r"services\.payments\.messages\.error.*nope"):
        generate(NOW, seed)


# -- both sources, same answers --------------------------------------------------------------

PARITY = {
    "payments errors, last hour": dict(service="payments", level="error", back=HOUR),
    "checkout on prod, 3 hours": dict(service="checkout", environment="prod", back=3 * HOUR,
                                      limit=50),
    "fatal anywhere on staging": dict(environment="staging", level="fatal"),
    "warnings and worse": dict(level="warning", back=6 * HOUR),
    "info is exact": dict(service="billing", level="info", limit=5),
    "quotes and backslashes": dict(service="search", text='q="red \\"shoes"'),
    "a quote and a brace": dict(service="notifications", text='unexpected "}"'),
    "case-insensitive text": dict(service="payments", text="READTIMEOUT", back=HOUR),
    "text in every service": dict(text="timed out", limit=100),
    "yesterday's window": dict(service="auth", back=4 * HOUR, end=NOW - 4 * HOUR),
    "huge limit": dict(service="payments", environment="prod", back=6 * HOUR, limit=10**6),
    "injection: close and pipe": dict(service="payments", text='"} |= "'),
    "injection: regex": dict(service="payments", text=".*"),
    "injection: backtick": dict(service="payments", text="`} or {a=~`"),
    "no match": dict(service="payments", text="no line says this"),
}


@pytest.mark.parametrize("case", PARITY)
def test_both_sources_agree(case: str, files: FileLogSource, loki_source: LokiLogSource,
                            records: list[LogRecord]) -> None:
    query = q(**PARITY[case])  # type: ignore[arg-type]
    from_files, from_loki = run(files.query(query)), run(loki_source.query(query))
    assert same(from_files) == same(from_loki)
    want = expected(records, query)
    assert from_files.total == len(want)
    assert [(line.at, line.message) for line in from_files.lines] == \
        [(r.at, r.message) for r in want[:query.limit]]
    assert sum(from_files.counts.values()) == from_files.total
    assert list(from_files.counts) == sorted(from_files.counts, key=logs_module.LEVELS.index)
    assert from_files.source == f"files:{files.directory}"
    assert from_loki.source == f"Loki at {loki_source.url}"
    assert from_files.skipped == 0


def test_the_interesting_cases_really_match_something(files: FileLogSource) -> None:
    """Guard the parity cases: escaping is only proven by text that does occur."""
    for case in ("quotes and backslashes", "a quote and a brace", "case-insensitive text",
                 "huge limit"):
        assert run(files.query(q(**PARITY[case]))).total > 0, case  # type: ignore[arg-type]
    for case in ("injection: close and pipe", "injection: regex", "injection: backtick",
                 "no match"):
        result = run(files.query(q(**PARITY[case])))  # type: ignore[arg-type]
        assert result.total == 0 and result.lines == () and result.counts == {}, case


def test_errors_from_payments_in_the_last_hour(files: FileLogSource,
                                               loki_source: LokiLogSource) -> None:
    start, end = parse_time_range("in the last hour", NOW)
    assert (start, end) == (NOW - HOUR, NOW)
    query = LogQuery("payments", None, "error", None, start, end)
    for source in (files, loki_source):
        result = run(source.query(query))
        assert result.total >= 30 and len(result.lines) == 20
        assert {line.service for line in result.lines} == {"payments"}
        assert {line.level for line in result.lines} <= {"error", "fatal"}
        assert set(result.counts) <= {"error", "fatal"}
        assert all(start <= line.at < end for line in result.lines)
        stamps = [line.at for line in result.lines]
        assert stamps == sorted(stamps, reverse=True)


def test_a_huge_limit_returns_every_match(files: FileLogSource,
                                         loki_source: LokiLogSource) -> None:
    query = q("payments", environment="prod", back=6 * HOUR, limit=10**6)
    result = run(loki_source.query(query))
    assert len(result.lines) == result.total > 500


def test_loki_pages_through_a_small_max_entries(records: list[LogRecord],
                                                files: FileLogSource) -> None:
    with LokiSimulator(records, max_entries=7, clock=NOW.timestamp) as small:
        source = LokiLogSource(small.url, timeout=5, page_size=7)
        query = q("payments", environment="prod", back=2 * HOUR, limit=60)
        assert same(run(source.query(query))) == same(run(files.query(query)))
        pages = [r for r in small.request_log() if "/query_range" in r.target]
        assert len(pages) >= 9 and all(r.status == 200 for r in pages)


def test_user_text_stays_inside_a_string_literal(loki: LokiSimulator,
                                                 loki_source: LokiLogSource) -> None:
    nasty = 'x"} |= "" or {service=~".+'
    query = q("pay\"ments", "prod", "warning", nasty)
    logql = loki_source.logql(query)
    parsed = parse_logql(logql)  # the simulator's parser: it must be one valid log query
    assert [(m.name, m.op, m.value) for m in parsed.matchers][:2] == [  # type: ignore[union-attr]
        ("service", "=", 'pay"ments'), ("env", "=", "prod")]
    assert [(f.op, f.value) for f in parsed.filters] == [  # type: ignore[union-attr]
        ("|~", "(?i)" + re2_quote(nasty))]
    with pytest.raises(NotFound):  # no such service; but every request was well-formed
        run(loki_source.query(query))
    assert all(r.status == 200 for r in loki.request_log()[-2:])


def test_logql_helpers() -> None:
    assert logql_string('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert logql_string("tab\there\x01") == '"tab\\there\\x01"'
    assert re2_quote("a.b*c(d)|[e]{f}^$\\") == "a\\.b\\*c\\(d\\)\\|\\[e\\]\\{f\\}\\^\\$\\\\"
    source = LokiLogSource("http://loki:3100")
    assert source.logql(q()) == '{service=~".+"}'
    assert source.logql(q(level="error")) == (
        '{level=~"(?i)(?:alert|crit|critical|emerg|emergency|err|error|errors|exception|'
        'exceptions|fatal|panic|severe)"}')
    assert source.logql(q("payments", "prod", "info", 'say "hi"')) == (
        '{service="payments", env="prod", level=~"(?i)(?:info|information|informational|'
        'notice)"} |~ "(?i)say \\"hi\\""')


def test_loki_lines_are_read_whatever_their_format() -> None:
    at = NOW - timedelta(minutes=5)
    with LokiSimulator([], clock=NOW.timestamp) as sim:
        sim.add_line({"service": "ledger", "level": "WARN"}, at,
                     json.dumps({"ts": "x", "level": "warn", "msg": "balance drift"}))
        sim.add_line({"service": "ledger", "level": "crit"}, at + timedelta(seconds=1),
                     "2026-11-22T14:32:13.345Z FATAL [prod] ledger.core: disk full")
        sim.add_line({"service": "ledger", "level": "error"}, at + timedelta(seconds=2),
                     "plain message")
        result = run(LokiLogSource(sim.url).query(q("ledger", level="warning", back=HOUR)))
    assert result.counts == {"fatal": 1, "error": 1, "warning": 1}
    assert [(line.level, line.environment, line.message) for line in result.lines] == [
        ("error", None, "plain message"), ("fatal", None, "disk full"),
        ("warning", None, "balance drift")]


def test_unknown_service_is_not_found_with_a_suggestion(files: FileLogSource,
                                                       loki_source: LokiLogSource) -> None:
    for source in (files, loki_source):
        with pytest.raises(NotFound, match="'paymnts'.*Did you mean payments") as caught:
            run(source.query(q("paymnts", back=HOUR)))
        assert caught.value.backend == source.name
        assert run(source.services(until=NOW)) == ["auth", "billing", "checkout", "inventory",
                                          "notifications", "payments", "search"]


def test_a_loki_without_the_service_label_says_the_service_is_unknown() -> None:
    # Loki leaves "data" out of an empty label answer; that is "no such service", not an
    # answer opsbot cannot read.
    with LokiSimulator([], clock=NOW.timestamp) as sim:
        body = requests_get(sim.url + "/loki/api/v1/label/service/values")
        assert body == {"status": "success"}
        source = LokiLogSource(sim.url)
        assert run(source.services(until=NOW)) == []
        with pytest.raises(NotFound, match="no logs for a service called 'payments'"):
            run(source.query(q("payments", back=HOUR)))


def test_the_loki_labels_are_configurable(records: list[LogRecord]) -> None:
    names = {"service": "service_name", "env": "deployment_environment", "level": "severity"}
    with LokiSimulator(records, labels=names, clock=NOW.timestamp) as sim:
        env = sim.env()
        assert env["LOKI_SERVICE_LABEL"] == "service_name"
        source = log_source_from_env(env)
        assert isinstance(source, LokiLogSource)
        result = run(source.query(q("payments", level="error", back=HOUR)))
        assert result.total > 0 and {line.level for line in result.lines} == {"error"}
        assert "payments" in run(source.services(until=NOW))
        default = LokiLogSource(sim.url)  # the default "service" label finds nothing there
        assert run(default.services(until=NOW)) == []
    with pytest.raises(ConfigError, match="LOKI_SERVICE_LABEL='service-name' is not a Loki "
                                          "label name"):
        log_source_from_env({"LOKI_URL": "http://127.0.0.1:9", "LOKI_SERVICE_LABEL":
                             "service-name"})


def requests_get(url: str) -> Any:
    import requests

    return requests.get(url, timeout=10).json()


def test_sources_meet_the_protocol(files: FileLogSource, loki_source: LokiLogSource) -> None:
    assert isinstance(files, LogSource) and isinstance(loki_source, LogSource)
    assert (files.name, loki_source.name) == ("logs", "Loki")


# -- Loki failures -------------------------------------------------------------------------


def test_loki_down_is_unavailable() -> None:
    source = LokiLogSource(f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(BackendUnavailable, match="connection was refused") as caught:
        run(source.query(q("payments")))
    assert caught.value.backend == "Loki"
    assert "LOKI_URL" in str(caught.value)


@pytest.mark.parametrize("status", [500, 502, 503])
def test_loki_server_errors_are_unavailable(status: int, loki: LokiSimulator,
                                            loki_source: LokiLogSource) -> None:
    loki.fail_next(status, path="/loki/api/v1/query")
    with pytest.raises(BackendUnavailable, match=f"failed \\({status}\\)") as caught:
        run(loki_source.query(q("payments", back=HOUR)))
    assert loki.url in str(caught.value)


def test_loki_rate_limit_and_bad_request(loki: LokiSimulator,
                                         loki_source: LokiLogSource) -> None:
    loki.fail_next(429)
    with pytest.raises(BackendUnavailable, match="rate-limiting"):
        run(loki_source.query(q("payments", back=HOUR)))
    loki.fail_next(400)
    with pytest.raises(InvalidRequest, match="Loki refused to count"):
        run(loki_source.query(q("payments", back=HOUR)))


def test_loki_timeout_is_unavailable(loki: LokiSimulator) -> None:
    loki.delay_next(1.5)
    source = LokiLogSource(loki.url, timeout=0.3)
    with pytest.raises(BackendUnavailable, match="did not answer within 0.3s"):
        run(source.query(q("payments", back=HOUR)))


def test_loki_wrong_url_is_unavailable(loki: LokiSimulator) -> None:
    loki.fail_next(404)
    with pytest.raises(BackendUnavailable, match="404.*base address"):
        run(LokiLogSource(loki.url, timeout=2).query(q("payments")))
    login_page = BackgroundServer(lambda request: Response.html("<html>Sign in</html>"))
    login_page.start()
    try:
        with pytest.raises(BackendUnavailable, match="not Loki's JSON API"):
            run(LokiLogSource(login_page.url, timeout=2).query(q("payments")))
    finally:
        login_page.stop()


def test_loki_tenant_and_credentials(records: list[LogRecord]) -> None:
    with LokiSimulator(records, tenant="team-a", clock=NOW.timestamp) as sim:
        assert sim.env() == {"LOKI_URL": sim.url, "LOKI_TENANT": "team-a"}
        with pytest.raises(BackendAuthError, match="LOKI_TENANT"):
            run(LokiLogSource(sim.url).query(q("payments", back=HOUR)))
        result = run(LokiLogSource(sim.url, tenant="team-a").query(q("payments", back=HOUR)))
        assert result.total > 0
        assert all(r.org_id == "team-a" for r in sim.request_log()[-2:])
        with pytest.raises(NotFound):  # another tenant sees nothing at all
            run(LokiLogSource(sim.url, tenant="team-b").query(q("payments", back=HOUR)))
        secret_url = sim.url.replace("http://", "http://bot:s3cr3t-token@")
        source = LokiLogSource(secret_url, tenant="team-a")
        assert "s3cr3t" not in repr(source) + source.source + source.url
        assert run(source.query(q("payments", back=HOUR))).total == result.total


# -- local files -------------------------------------------------------------------------


def test_a_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        FileLogSource(tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a directory"):
        FileLogSource(tmp_path / "file")


def test_unparsable_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    at = NOW - timedelta(minutes=10)
    (tmp_path / "ledger.log").write_text(
        f"{at:%Y-%m-%dT%H:%M:%S}.000Z ERROR [prod] ledger.core: first\n"
        "    at com.acme.Ledger.post(Ledger.java:42)\n"
        "\n"
        f"{at:%Y-%m-%dT%H:%M:%S}.500+00:00 warn ledger.core: no environment\n"
        "not a log line\n")
    (tmp_path / "ledger.log.1").write_text(
        f"{at - HOUR:%Y-%m-%d %H:%M:%S},250Z CRITICAL [prod] rotated and comma millis\n")
    (tmp_path / "ledger.jsonl").write_text(
        json.dumps({"timestamp": (at + timedelta(seconds=1)).timestamp(), "severity": "Err",
                    "environment": "Prod", "message": "epoch seconds"}) + "\n"
        + '{"msg": "no time"}\n' + "[1, 2]\n")
    (tmp_path / "notes.txt").write_text("ignored: not a log file name\n")
    result = run(FileLogSource(tmp_path).query(q("ledger", back=2 * HOUR)))
    assert result.skipped == 4
    assert [(line.level, line.environment, line.message) for line in result.lines] == [
        ("error", "prod", "epoch seconds"), ("warning", None, "no environment"),
        ("error", "prod", "first"), ("fatal", "prod", "rotated and comma millis")]
    assert result.counts == {"fatal": 1, "error": 2, "warning": 1}
    assert run(FileLogSource(tmp_path).services()) == ["ledger"]


def test_big_files_are_searched_not_read_whole(monkeypatch: pytest.MonkeyPatch,
                                               files: FileLogSource) -> None:
    queries = [q("payments", level="error", back=HOUR), q("checkout", "prod", back=3 * HOUR),
               q("search", back=4 * HOUR, end=NOW - 20 * HOUR), q(level="fatal")]
    normal = [run(files.query(query)) for query in queries]
    monkeypatch.setattr(files_module, "_SEEK_THRESHOLD", 0)
    monkeypatch.setattr(files_module, "_BISECT_STOP", 512)
    opened: list[int] = []
    original = files_module._window_offset

    def spy(*args: Any) -> int:
        opened.append(offset := original(*args))
        return offset

    monkeypatch.setattr(files_module, "_window_offset", spy)
    assert [run(files.query(query)) for query in queries] == normal
    assert any(offset > 100_000 for offset in opened), "the search skipped into the files"


def test_reading_past_the_deadline_is_unavailable(log_dir: Path) -> None:
    hasty = FileLogSource(log_dir, timeout=1e-6)
    with pytest.raises(BackendUnavailable, match="took longer than 1e-06s.*LOGS_TIMEOUT"):
        run(hasty.query(q()))


# -- configuration ------------------------------------------------------------------------


def test_log_source_from_env(tmp_path: Path) -> None:
    assert log_source_from_env({}) is None
    loki = log_source_from_env({"LOKI_URL": "http://loki:3100/", "LOKI_TENANT": "ops",
                                "OPSBOT_LOG_DIR": str(tmp_path), "LOGS_TIMEOUT": "2.5"})
    assert isinstance(loki, LokiLogSource)
    assert (loki.url, loki.tenant, loki.timeout) == ("http://loki:3100", "ops", 2.5)
    files = log_source_from_env({"OPSBOT_LOG_DIR": str(tmp_path)})
    assert isinstance(files, FileLogSource) and files.directory == tmp_path
    default = log_source_from_env({}, default_directory=tmp_path)
    assert isinstance(default, FileLogSource)
    for env, variable in [({"LOKI_URL": "loki:3100"}, "LOKI_URL"),
                          ({"LOKI_URL": "http://loki:99999"}, "LOKI_URL"),
                          ({"OPSBOT_LOG_DIR": str(tmp_path / "gone")}, "OPSBOT_LOG_DIR"),
                          ({"LOKI_URL": "http://loki", "LOGS_TIMEOUT": "soon"}, "LOGS_TIMEOUT"),
                          ({"LOGS_TIMEOUT": "-1"}, "LOGS_TIMEOUT")]:
        with pytest.raises(ConfigError, match=variable):
            log_source_from_env(env)
    with pytest.raises(ConfigError, match="OPSBOT_LOG_DIR"):
        log_source_from_env({}, default_directory=tmp_path / "gone")


def test_log_query_normalises_and_validates() -> None:
    query = LogQuery(" Payments ", "production", "WARN", "  ", NOW - HOUR, NOW)
    assert (query.service, query.environment, query.level, query.text) == \
        ("payments", "prod", "warning", None)
    assert query.end == NOW.replace(microsecond=345000)
    assert LogQuery(None, "", "critical", None, NOW - HOUR, NOW).level == "fatal"
    assert LogQuery(None, None, "exceptions", None, NOW - HOUR, NOW).level == "error"
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        LogQuery(None, None, "loud", None, NOW - HOUR, NOW)
    with pytest.raises(ValueError, match="timezone-aware"):
        LogQuery(None, None, None, None, datetime(2026, 1, 1), NOW)
    with pytest.raises(ValueError, match="must be before end"):
        LogQuery(None, None, None, None, NOW, NOW)
    with pytest.raises(ValueError, match="limit"):
        LogQuery(None, None, None, None, NOW - HOUR, NOW, 0)


def test_levels() -> None:
    assert levels_for("error") == {"error", "fatal"}
    assert levels_for("warn") == {"warning", "error", "fatal"}
    assert levels_for("info") == {"info"} and levels_for("fatal") == {"fatal"}
    assert levels_for(None) is None
    assert [normalise_level(x) for x in ("WARN", "Err", "CRITICAL", "trace", None, "odd")] == \
        ["warning", "error", "fatal", "debug", "unknown", "odd"]
    line = LogLine(NOW, "payments", None, "error", "x")
    assert line.environment is None


# -- parse_time_range ---------------------------------------------------------------------

BERLIN = "CET-1CEST,M3.5.0,M10.5.0/3"  # POSIX rules: no tz database needed
NEW_YORK = "EST5EDT,M3.2.0,M11.1.0"


@pytest.fixture
def local_zone(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def use(zone: str) -> None:
        monkeypatch.setenv("TZ", zone)
        time.tzset()

    use(BERLIN)
    yield use
    monkeypatch.undo()
    time.tzset()


def local(text: str) -> str:
    """Both ends of a phrase's window in local time, as 'Sun 22 09:00'."""
    start, end = parse_time_range(text, NOW)
    assert start.tzinfo is UTC and end.tzinfo is UTC
    assert start < end <= NOW
    return f"{start.astimezone():%a %d %H:%M} - {end.astimezone():%a %d %H:%M}"


# NOW is Sunday 22 November 2026, 14:37:12 UTC = 15:37:12 in Berlin.
PHRASES = {
    "in the last hour": "Sun 22 14:37 - Sun 22 15:37",
    "last 15 minutes": "Sun 22 15:22 - Sun 22 15:37",
    "past 2 days": "Fri 20 15:37 - Sun 22 15:37",
    "in the last 30 mins": "Sun 22 15:07 - Sun 22 15:37",
    "the last half hour": "Sun 22 15:07 - Sun 22 15:37",
    "since yesterday": "Sat 21 00:00 - Sun 22 15:37",
    "since 9am": "Sun 22 09:00 - Sun 22 15:37",
    "Since 9 A.M.": "Sun 22 09:00 - Sun 22 15:37",
    "since 9:30 this morning": "Sun 22 09:30 - Sun 22 15:37",
    "today": "Sun 22 00:00 - Sun 22 15:37",
    "yesterday": "Sat 21 00:00 - Sun 22 00:00",
    "this morning": "Sun 22 06:00 - Sun 22 12:00",
    "yesterday afternoon": "Sat 21 12:00 - Sat 21 18:00",
    "last night": "Sat 21 18:00 - Sun 22 06:00",
    "between 9 and 10 this morning": "Sun 22 09:00 - Sun 22 10:00",
    "between 9:30 and 10:15 yesterday": "Sat 21 09:30 - Sat 21 10:15",
    "yesterday between 2 and 3": "Sat 21 14:00 - Sat 21 15:00",
    "from 14:00 to 15:30": "Sun 22 14:00 - Sun 22 15:30",
    "9-10am": "Sun 22 09:00 - Sun 22 10:00",
    "between 11 and 1": "Sun 22 11:00 - Sun 22 13:00",
    "at 9am": "Sun 22 09:00 - Sun 22 10:00",
    "2 hours ago": "Sun 22 13:37 - Sun 22 15:37",
    "since monday": "Mon 16 00:00 - Sun 22 15:37",
    "last monday": "Mon 16 00:00 - Tue 17 00:00",
    "since nov 20": "Fri 20 00:00 - Sun 22 15:37",
    "since 2026-11-21 08:00": "Sat 21 08:00 - Sun 22 15:37",
}


@pytest.mark.parametrize("phrase", PHRASES)
def test_parse_time_range_phrases(phrase: str, local_zone: Any) -> None:
    assert local(phrase) == PHRASES[phrase]


def test_parse_time_range_defaults_and_zones(local_zone: Any) -> None:
    assert parse_time_range(None, NOW) == (NOW - HOUR, NOW)
    assert parse_time_range("", NOW) == (NOW - HOUR, NOW)
    assert parse_time_range("last hour", NOW) == (NOW - HOUR, NOW)
    assert local("since 3") == "Sun 22 15:00 - Sun 22 15:37"  # the latest 3 o'clock
    local_zone(NEW_YORK)  # 09:37 there
    assert local("since 9am") == "Sun 22 09:00 - Sun 22 09:37"
    assert local("since 3") == "Sun 22 03:00 - Sun 22 09:37"
    assert local("from 14:00 to 15:30") == "Sat 21 14:00 - Sat 21 15:30"  # not yet today
    start, _ = parse_time_range("since 9am", NOW)
    assert start == datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
    start, end = parse_time_range("in the last hour")  # the real clock
    assert end - start == HOUR and end <= datetime.now(UTC)


@pytest.mark.parametrize("garbage", ["after the thing", "the thing", "since the deploy",
                                     "tomorrow", "blue", "10 past 9", "since 25:00"])
def test_parse_time_range_refuses_garbage(garbage: str, local_zone: Any) -> None:
    with pytest.raises(ValueError, match=f"I can't read '{re.escape(garbage)}' as a time "
                                         "range; try 'last 2 hours' or 'since 9am'"):
        parse_time_range(garbage, NOW)


def test_parse_time_range_refuses_the_future(local_zone: Any) -> None:
    with pytest.raises(ValueError, match="'this evening' has not started yet"):
        parse_time_range("this evening", NOW)


def test_loki_request_carries_the_window(loki: LokiSimulator,
                                         loki_source: LokiLogSource) -> None:
    start, end = parse_time_range("in the last hour", NOW)
    run(loki_source.query(LogQuery("payments", None, "error", None, start, end)))
    targets = [urlsplit(r.target) for r in loki.request_log()[-2:]]
    count, lines = (parse_qs(t.query) for t in targets)
    assert targets[0].path.endswith("/query") and targets[1].path.endswith("/query_range")
    assert count["time"] == [str(int(end.timestamp()) * 10**9 + 345_000_000 - 1)]
    assert "[3600000ms]" in count["query"][0]
    assert lines["direction"] == ["backward"] and lines["limit"] == ["20"]
    assert int(lines["start"][0]) == (start - EPOCH) // timedelta(microseconds=1) * 1000
