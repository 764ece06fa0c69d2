"""The event loops in an outage: they back off and say so once, not once per attempt.

The courier's store and the Jenkins poller's Jenkins go down for several attempts and
come back; the log holds one "down" line, one "still down" reminder (the backoff's clock
is the test's: minutes pass in a tick) and one "back" line, and no traceback. The loops
run for real, with tiny intervals; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from actions.backends.jenkins import JenkinsBackend, JenkinsConfig
from actions.backoff import Backoff
from actions.events._model import FAILURE, Event
from actions.events.jenkins_watch import JenkinsWatch
from actions.events.store import Delivery, EventStore, Filters
from actions.guard.store import OperationStore, StoreError
from actions.storage import ChannelState
from connectors.events import Courier
from simulators.jenkins import JenkinsSimulator
from tests._events_sink import Chat
from tests.conftest import free_port
from tests.test_guard_store import db_url  # noqa: F401 - the fixture (SQLite, PostgreSQL)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
DOWN_FOR = 6  # failed attempts before the dependency is back


class Ticks:
    """A monotonic clock for the backoff that moves 100 s each time it is read: the
    reminder ("still down", every 300 s) comes round within a few attempts."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 100.0
        return self.now


class FlakyOutbox:
    """The outbox, with its database down for the first ``down`` claims (as the store says
    it: a StoreError), and counting them."""

    def __init__(self, real: EventStore, down: int) -> None:
        self.real, self.down, self.claims = real, down, 0

    def claim(self, owner: str, **kwargs: Any) -> list[Delivery]:
        self.claims += 1
        if self.claims <= self.down:
            raise StoreError("The operation store (postgresql://opsbot@db:5432/opsbot) failed: "
                             "connection refused. Check that the database is reachable.")
        return self.real.claim(owner, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
def store(db_url: str) -> Iterator[OperationStore]:  # noqa: F811 - the imported fixture
    opened = OperationStore(db_url)
    yield opened
    opened.close()


def backoff(name: str, logger_name: str) -> Backoff:
    return Backoff(name, logging.getLogger(logger_name), interval=0.001, cap=0.01,
                   clock=Ticks())


def run_until(start: Callable[[], None], stop: Callable[[], Any],
              done: Callable[[], bool]) -> None:
    """Start a loop, let it run until ``done``, stop it."""
    async def main() -> None:
        start()
        while not done():  # noqa: ASYNC110 - state the loop under test changes; nothing to await
            await asyncio.sleep(0.001)
        await stop()

    asyncio.run(asyncio.wait_for(main(), timeout=60))


def lines(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith(name + ":")]


def said(records: list[logging.LogRecord], words: str) -> list[str]:
    return [r.getMessage() for r in records if words in r.getMessage()]


def test_the_courier_backs_off_while_its_store_is_down_and_says_so_once(
        store: OperationStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    events = EventStore(store.database)
    events.subscribe(conversation="rest:alice", channel="rest", address={"sender": "alice"},
                     filters=Filters.build(sources=["alerts"]), created_by="alice", now=T0)
    events.record(Event(source="alertmanager", key="k1", group="g1", kind=FAILURE,
                        status="firing", title="payments is down", service="payments"), T0)
    outbox, chat = FlakyOutbox(events, DOWN_FOR), Chat()
    courier = Courier(outbox, chat, interval=0.001,  # type: ignore[arg-type]
                      clock=lambda: T0,
                      backoff=backoff("events: delivering", "connectors.events"))
    run_until(courier.start, courier.stop,
              lambda: bool(chat.posted) and outbox.claims > DOWN_FOR + 2)
    records = lines(caplog, "events: delivering")
    [down] = said(records, ": down:")
    assert "connection refused" in down and "Traceback" not in caplog.text
    assert len(said(records, "still down")) == 1  # 300 s of the backoff's clock
    [back] = said(records, "back after")
    assert f"({DOWN_FOR} failed attempts)" in back
    assert len(records) == 3  # not one per attempt
    assert len(chat.posted) == 1  # what waited in the outbox, delivered once it was back


def test_an_unreachable_database_is_a_line_not_a_traceback(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    gone = OperationStore(f"postgresql://opsbot:secret@127.0.0.1:{free_port()}/opsbot")
    try:
        outbox = FlakyOutbox(EventStore(gone.database), down=0)  # counting only: it is down
        courier = Courier(outbox, Chat(), interval=0.001,  # type: ignore[arg-type]
                          backoff=backoff("events: delivering", "connectors.events"))
        run_until(courier.start, courier.stop, lambda: outbox.claims >= 5)
    finally:
        gone.close()
    records = lines(caplog, "events: delivering")
    assert len(said(records, ": down:")) == 1 and not said(records, "back after")
    assert all(r.exc_info is None for r in records)
    assert "secret" not in caplog.text


def test_the_jenkins_poller_backs_off_while_jenkins_is_down_and_says_so_once(
        store: OperationStore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    events = EventStore(store.database)
    events.subscribe(conversation="rest:alice", channel="rest", address={"sender": "alice"},
                     filters=Filters.build(job="payments-ci"), created_by="alice", now=T0)
    with JenkinsSimulator(clock=lambda: T0.timestamp()) as jenkins:
        backend = JenkinsBackend(JenkinsConfig(url=jenkins.url, user=jenkins.user,
                                               token=jenkins.token, timeout=5))
        watch = JenkinsWatch(events, backend, ChannelState(store.database), interval=0.001,
                             clock=lambda: T0,
                             backoff=backoff("events: polling Jenkins",
                                             "actions.events.jenkins_watch"))
        jenkins.fail_next(503, times=DOWN_FOR)  # restarting, say
        run_until(watch.start, watch.stop,
                  lambda: bool(said(lines(caplog, "events: polling Jenkins"), "back after")))
    records = lines(caplog, "events: polling Jenkins")
    [down] = said(records, ": down:")
    assert "503" in down and "Traceback" not in caplog.text
    assert len(said(records, "still down")) == 1
    [back] = said(records, "back after")
    assert f"({DOWN_FOR} failed attempts)" in back
    assert len(records) == 3
