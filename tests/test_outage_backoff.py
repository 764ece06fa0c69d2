"""While the store, Jenkins or Telegram is down, the background loops back off and log
one line when the outage starts and one when it ends, not a line per attempt.

Each test fails many attempts in a row, then lets one succeed. The loops get fast
``Backoff``s (short waits, a clock that is not the wall's); no test asserts a timing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import connectors._common as common
from actions import _runtime, _watcher
from actions.backends import JENKINS, Backends
from actions.backends.jenkins import Build
from actions.backoff import Backoff
from actions.errors import BackendUnavailable
from actions.guard import EXECUTING, PENDING_CONFIRMATION, SUCCEEDED, OperationStore, StoreError
from actions.stores import Stores
from connectors import _telegram_polling
from connectors import telegram as telegram_module
from connectors.telegram import TelegramInput
from simulators.telegram import TelegramSimulator

FAILURES = 8


def fast(logger: logging.Logger) -> Callable[..., Backoff]:
    """Makes Backoffs that wait a few milliseconds, with a clock a second per reading."""
    ticks = itertools.count()

    def make(name: str, interval: float, cap: float = 60.0) -> Backoff:
        return Backoff(name, logger, interval=0.001, cap=0.004, clock=lambda: float(next(ticks)))

    return make


def said(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    """The warnings and errors of the loop ``name``, and every other one logged."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
            and (r.getMessage().startswith(name) or "(reference" in r.getMessage()
                 or r.name.startswith(("actions._watcher", "connectors.telegram")))]


def assert_one_down_one_back(lines: list[str], name: str) -> None:
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"{name}: down: ")
    assert lines[1].startswith(f"{name}: back after ") and f"({FAILURES} failed attempts)" in (
        lines[1])


def run(main: Callable[[], Any], timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(main(), timeout))


async def until(predicate: Callable[[], bool]) -> None:
    while not predicate():  # noqa: ASYNC110 - polling what another task changes
        await asyncio.sleep(0.005)


# --- the watcher ---------------------------------------------------------------------------


@pytest.fixture
def rt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """The watcher's runtime: a real store (a SQLite file), Jenkins set by the test."""
    store = OperationStore(f"sqlite:///{tmp_path / 'opsbot.db'}")
    runtime = SimpleNamespace(store=store, stores=Stores.around(store), backends=Backends(),
                              rasa_url="http://127.0.0.1:9")
    monkeypatch.setattr(_runtime, "runtime", lambda: runtime)
    monkeypatch.setattr(_watcher, "notify", lambda sender_id: True)
    yield runtime
    store.close()


def test_the_scan_logs_a_store_outage_once(tmp_path: Path, rt: SimpleNamespace,
                                           caplog: pytest.LogCaptureFixture) -> None:
    """The store's file cannot be opened until its directory exists: a real outage."""
    later = tmp_path / "later"
    rt.store = OperationStore(f"sqlite:///{later / 'opsbot.db'}")
    real = rt.store.executing
    attempts: list[int] = []

    def executing() -> list[Any]:
        attempts.append(1)
        if len(attempts) == FAILURES + 1:
            later.mkdir()  # the database is back
        return real()

    rt.store.executing = executing
    caplog.set_level(logging.DEBUG)
    watcher = _watcher.Watcher(pace=fast(_watcher.logger))

    async def main() -> None:
        scanning = asyncio.create_task(watcher._scan_forever())
        await until(lambda: len(attempts) > FAILURES + 1)
        scanning.cancel()

    run(main)
    name = "the watcher's scan of the store"
    lines = said(caplog, name)
    details = [line for line in lines if "unable to open database file" in line]
    assert len(details) == 1  # the store's own details: once, with the reference
    lines.remove(details[0])
    assert_one_down_one_back(lines, name)
    reference = details[0].rsplit("(reference ", 1)[1].rstrip(")")
    assert f"(reference {reference})" in lines[0]  # what the chat is told, too
    rt.store.close()


def _running_deploy(store: OperationStore) -> str:
    op = store.create(intent="deploy", risk="change", requester="alice", sender_id="alice",
                      channel="rest", text="deploy payments 2.4.1 to dev", confidence=1.0,
                      parameters={"service": "payments", "version": "2.4.1",
                                  "environment": "dev"}, ttl_seconds=60)
    store.transition(op.id, {PENDING_CONFIRMATION}, EXECUTING, actor="alice",
                     event="confirmed", confirmed_by="alice")
    assert store.claim_execution(op.id, actor="replica-a")
    store.update_backend_ref(op.id, job="deploy-payments", build_number=41)
    return op.id


class FlakyJenkins:
    """Unreachable for ``failures`` calls, then says the build has ended."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    async def build(self, job: str, number: int) -> Build:
        self.calls += 1
        if self.calls <= self.failures:
            raise BackendUnavailable("Jenkins at http://jenkins.internal is unreachable "
                                     "(connection refused).", backend="jenkins")
        return Build(job=job, number=number, url=f"http://jenkins.internal/job/{job}/{number}/",
                     result="SUCCESS", building=False, started_at=datetime.now(UTC),
                     duration_s=42.0, parameters={}, started_by=None)


def test_following_a_build_logs_a_jenkins_outage_once(rt: SimpleNamespace,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    operation_id = _running_deploy(rt.store)
    jenkins = FlakyJenkins(FAILURES)
    rt.backends = Backends.of((JENKINS, jenkins))
    caplog.set_level(logging.DEBUG)
    run(lambda: _watcher.Watcher(pace=fast(_watcher.logger))._follow(operation_id, {}))
    assert jenkins.calls == FAILURES + 1
    name = f"following operation {operation_id}"
    assert_one_down_one_back(said(caplog, name), name)
    done = rt.store.get(operation_id)
    assert done is not None and (done.state, done.result) == (SUCCEEDED, "SUCCESS")


def test_following_a_build_outlasts_a_store_outage(rt: SimpleNamespace,
                                                   caplog: pytest.LogCaptureFixture,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The build ends while the store is down: the end is recorded once it is back
    (before, the follow gave up and the operation stayed executing until a restart)."""
    operation_id = _running_deploy(rt.store)
    rt.backends = Backends.of((JENKINS, FlakyJenkins(0)))
    real = rt.store.transition
    calls: list[int] = []

    def transition(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= FAILURES:
            raise StoreError("opsbot's operation store is unreachable right now, so your "
                             "request could not be saved or checked (reference 0badcafe).")
        return real(*args, **kwargs)

    monkeypatch.setattr(rt.store, "transition", transition)
    caplog.set_level(logging.DEBUG)
    run(lambda: _watcher.Watcher(pace=fast(_watcher.logger))._follow(operation_id, {}))
    name = f"following operation {operation_id}: opsbot's store"
    assert_one_down_one_back(said(caplog, name), name)
    done = rt.store.get(operation_id)
    assert done is not None and done.state == SUCCEEDED


# --- the Telegram poller ------------------------------------------------------------------


@pytest.fixture
def own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OPSBOT_DB_URL", "OPSBOT_AUDIT_FILE", "TELEGRAM_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path))
    common._stores = None
    yield
    if common._stores is not None:
        common._stores.close()
    common._stores = None


@pytest.fixture(scope="module")
def sim() -> Iterator[TelegramSimulator]:
    with TelegramSimulator() as simulator:
        yield simulator


async def _ignore(_message: Any) -> None:
    return None


def test_the_poller_logs_a_telegram_outage_once(sim: TelegramSimulator, own_store: None,
                                                caplog: pytest.LogCaptureFixture) -> None:
    """getUpdates answered 502 (through python-telegram-bot, from the simulator)."""
    connector = TelegramInput(sim.token, api_url=sim.api_url, poll_timeout=1)
    caplog.set_level(logging.DEBUG)
    name = "Telegram: getUpdates"

    async def main() -> None:
        await connector.bot.initialize()
        sim.fail_next(502, times=FAILURES, path="getUpdates")
        polling = asyncio.create_task(
            connector._poll_updates(_ignore, fast(telegram_module.logger)))
        await until(lambda: any(name in r.getMessage() and "back after" in r.getMessage()
                                for r in caplog.records))
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await connector.bot.shutdown()

    run(main)
    assert_one_down_one_back(said(caplog, name), name)
    assert "Bad Gateway" in said(caplog, name)[0]


class FlakyLeases:
    """A store whose lease table fails ``failures`` times, then is another replica's."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def take(self, name: str, owner: str, seconds: float) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise StoreError("opsbot's operation store is unreachable right now, so your "
                             "request could not be saved or checked (reference 0badcafe).")
        return None  # another replica polls


def test_the_poller_logs_a_store_outage_once(sim: TelegramSimulator, own_store: None,
                                             caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    leases = FlakyLeases(FAILURES)
    monkeypatch.setattr(_telegram_polling, "stores", lambda: SimpleNamespace(leases=leases))
    connector = TelegramInput(sim.token, api_url=sim.api_url, poll_timeout=1)
    app = SimpleNamespace(ctx=SimpleNamespace(agent=SimpleNamespace(is_ready=lambda: True)))
    caplog.set_level(logging.DEBUG)

    async def main() -> None:
        await connector.bot.initialize()
        polling = asyncio.create_task(
            connector._poll(app, _ignore, fast(telegram_module.logger)))
        await until(lambda: leases.calls > FAILURES)
        await asyncio.sleep(0.05)
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await connector.bot.shutdown()

    run(main)
    name = "Telegram: the polling lease in opsbot's store"
    assert_one_down_one_back(said(caplog, name), name)
    assert any("another replica polls for updates" in r.getMessage() for r in caplog.records)
