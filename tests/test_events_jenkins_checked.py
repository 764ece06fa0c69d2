"""A Jenkins notification is a hint, checked with Jenkins; event keys are per credential.

The attack this answers: whoever holds the Jenkins URL token (it sits in job configs and
proxy logs) posts SUCCESS for the next builds of a subscribed job; if that were recorded
under the build's key, the real FAILURE of those builds would be dropped as a duplicate,
from the webhook and from the poller alike, for the whole retention.

The webhook endpoint is the real one (``EventsInput``'s blueprint in a Sanic server on
loopback), posted to with ``simulators.events.post_event`` as the Notification plugin
would; Jenkins is the simulator, read through python-jenkins inside ``JenkinsBackend``,
on a clock the test moves; the outbox runs on SQLite and on PostgreSQL. Every clock is
fixed, so the tests pass on any day.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sanic import Sanic

from actions.backends.jenkins import Build, JenkinsBackend, JenkinsConfig
from actions.errors import ConfigError
from actions.events.jenkins_watch import JenkinsWatch, build_event
from actions.events.store import EventStore, Filters
from actions.events.store import events as events_table
from actions.guard.store import OperationStore
from actions.storage import ChannelState
from connectors.events import Courier, EventsInput
from simulators.events import alertmanager_payload, jenkins_notification, post_event
from simulators.jenkins import JenkinsSimulator
from tests._events_sink import Chat
from tests.conftest import free_port
from tests.test_guard_store import db_url  # noqa: F401 - the fixture (SQLite, PostgreSQL)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
EVENTS_TOKEN = "the-events-token-for-tests"
URL_TOKEN = "the-jenkins-url-token-for-tests"
JOB = "payments-ci"  # its last build in the simulator's seed is #409, green


class ManualClock:
    """Epoch seconds for the Jenkins simulator, moved only by the test."""

    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def serving(channel: EventsInput) -> Iterator[str]:
    """The channel's blueprint in a Sanic server on loopback, as Rasa mounts it; its URL.

    The server's start listeners are not run: the test drives the poller and the courier
    itself, on its own clock.
    """
    # Sanic rewrites its own HTTP methods when an app starts ("touchup"); the second app
    # in one process can only do that in test mode, which keeps the originals.
    Sanic.test_mode = True
    app = Sanic(f"opsbot-events-{secrets.token_hex(4)}")
    app.blueprint(channel.blueprint(lambda _message: asyncio.sleep(0)),
                  url_prefix="/webhooks/events")
    port = free_port()
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(app.create_server(
        host="127.0.0.1", port=port, return_asyncio_server=True, access_log=False))
    assert server is not None
    loop.run_until_complete(server.startup())
    thread = threading.Thread(target=loop.run_forever, name="events-webhooks", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


@dataclasses.dataclass
class Stage:
    jenkins: JenkinsSimulator
    clock: ManualClock
    backend: JenkinsBackend
    events: EventStore
    watch: JenkinsWatch
    base: str
    chat: Chat

    def notify(self, number: int, result: str, *, job: str = JOB,
               header: bool = False) -> tuple[int, dict[str, Any]]:
        """What the Notification plugin (or someone with its URL) posts about a build; with
        ``header``, what a sender with the events token (basic auth) posts."""
        payload = jenkins_notification(job=job, number=number, status=result,
                                       base_url=self.jenkins.url)
        token = EVENTS_TOKEN if header else URL_TOKEN
        status, text = post_event(self.base, "jenkins", payload, token=token, basic=header)
        return status, json.loads(text)

    def start_build(self, result: str) -> int:
        """Jenkins starts the job's next build, which is to end ``result``; its number."""
        self.jenkins.set_outcome(JOB, result)
        asyncio.run(self.backend.start(JOB, {"BRANCH": "main"}))
        self.clock.advance(5)  # the quiet period: the build starts
        return self.jenkins.builds(JOB)[-1].number

    def finish_builds(self) -> None:
        self.clock.advance(60)

    def poll(self) -> int:
        return asyncio.run(self.watch.poll_once())

    def deliver(self) -> int:
        courier = Courier(self.events, self.chat, interval=0.1, clock=lambda: T0)
        return asyncio.run(courier.run_once(T0 + timedelta(minutes=1)))

    def keys(self) -> list[str]:
        return recorded_keys(self.events)


def recorded_keys(events: EventStore) -> list[str]:
    """The key of every event recorded, in the order they came."""
    with events.database.connection() as conn:
        return list(conn.execute(sa.select(events_table.c.key)
                                 .order_by(events_table.c.id)).scalars())


def subscribe(events: EventStore) -> None:
    events.subscribe(conversation="rest:alice", channel="rest", address={"sender": "alice"},
                     filters=Filters.build(job=JOB), created_by="alice", now=T0)


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_EVENTS_TOKEN", EVENTS_TOKEN)
    monkeypatch.setenv("OPSBOT_EVENTS_JENKINS_TOKEN", URL_TOKEN)





@pytest.fixture
def store(db_url: str) -> Iterator[OperationStore]:  # noqa: F811 - the imported fixture
    opened = OperationStore(db_url)
    yield opened
    opened.close()


@pytest.fixture
def jenkins() -> Iterator[tuple[JenkinsSimulator, ManualClock]]:
    clock = ManualClock(T0)
    with JenkinsSimulator(queue_delay=5, build_seconds=60, clock=clock) as simulator:
        yield simulator, clock


def backend_for(url: str, token: str) -> JenkinsBackend:
    return JenkinsBackend(JenkinsConfig(url=url, user="opsbot", token=token, timeout=5))


@pytest.fixture
def stage(secrets_set: None, store: OperationStore,
          jenkins: tuple[JenkinsSimulator, ManualClock]) -> Iterator[Stage]:
    """Jenkins configured: alice subscribed to payments-ci, whose history the poller has
    already looked at (so #410 on is news)."""
    simulator, clock = jenkins
    events = EventStore(store.database)
    backend = backend_for(simulator.url, simulator.token)
    watch = JenkinsWatch(events, backend, ChannelState(store.database), interval=1,
                         clock=lambda: T0)
    subscribe(events)
    assert asyncio.run(watch.poll_once()) == 0  # the first look: history is not news
    channel = EventsInput(store=events, jenkins=lambda _events: watch, clock=lambda: T0)
    with serving(channel) as base:
        yield Stage(simulator, clock, backend, events, watch, base, Chat())


def test_forged_successes_with_the_url_token_cannot_hide_the_real_failure(
        stage: Stage) -> None:
    # Someone with the URL token says the next builds of the job all passed.
    for number in (410, 411, 412):
        status, answer = stage.notify(number, "SUCCESS")
        assert status == 200, answer
        assert (answer["recorded"], answer["rejected"]) == (0, 1), answer
    assert stage.keys() == []
    # Jenkins runs #410, and it fails; while it runs, a forged "it passed" is no better.
    assert stage.start_build("FAILURE") == 410
    assert stage.notify(410, "SUCCESS")[1]["rejected"] == 1
    assert stage.poll() == 0  # still running: the poller waits for it
    stage.finish_builds()
    assert stage.notify(410, "SUCCESS")[1]["rejected"] == 1  # contradicts Jenkins
    # The Notification plugin reports the failure, and the poller sees it too.
    status, answer = stage.notify(410, "FAILURE")
    assert (status, answer) == (200, {"received": 1, "recorded": 1, "duplicates": 0,
                                      "deliveries": 1, "rejected": 0})
    assert stage.poll() == 0  # the same build, the same event: nothing new
    assert stage.notify(410, "FAILURE")[1]["duplicates"] == 1  # the plugin's retry
    # #411 fails too, and only the poller reports it: the forged "passed" counts for nothing.
    assert stage.start_build("FAILURE") == 411
    stage.finish_builds()
    assert stage.poll() == 1
    assert stage.keys() == [f"jenkins-observed:{JOB}#410", f"jenkins-observed:{JOB}#411"]
    assert stage.deliver() == 2
    [posted] = stage.chat.posted  # the failure reaches the chat once
    assert posted.startswith(f"FAILED: {JOB} #410 failed"), posted
    assert "could not be read" not in posted  # the summary is Jenkins' console, not a body's
    [edited] = stage.chat.edited  # #411: the same problem, so the same message
    assert "#411" in edited


def test_a_forged_failure_of_a_green_build_or_an_unknown_one_is_not_recorded(
        stage: Stage, caplog: pytest.LogCaptureFixture) -> None:
    status, answer = stage.notify(409, "FAILURE")  # #409 passed
    assert (status, answer["recorded"], answer["rejected"]) == (200, 0, 1)
    assert stage.notify(1, "FAILURE", job="no-such-job")[1]["rejected"] == 1
    assert stage.notify(409, "FAILURE", header=True)[1]["rejected"] == 1  # any credential
    assert stage.keys() == []
    said = [r.getMessage() for r in caplog.records if "not recorded" in r.getMessage()]
    assert len(said) == 3 and "Jenkins records it as SUCCESS, not FAILURE" in said[0]
    assert stage.deliver() == 0 and stage.chat.posted == []


def test_a_truthful_notification_is_recorded_once_whoever_sees_the_build_first(
        stage: Stage) -> None:
    assert stage.start_build("FAILURE") == 410
    stage.finish_builds()
    assert stage.poll() == 1  # the poller first, this time
    status, answer = stage.notify(410, "FAILURE")
    assert (status, answer["recorded"], answer["duplicates"]) == (200, 0, 1)
    # A green build, reported truthfully: recorded (the recovery), once.
    assert stage.start_build("SUCCESS") == 411
    stage.finish_builds()
    assert stage.notify(411, "SUCCESS")[1]["recorded"] == 1
    assert stage.poll() == 0
    assert stage.keys() == [f"jenkins-observed:{JOB}#410", f"jenkins-observed:{JOB}#411"]
    assert stage.deliver() == 2
    assert len(stage.chat.posted) == 1 and stage.chat.edited[0].startswith("Back to green")


def test_a_jenkins_that_cannot_be_asked_gets_503_and_nothing_is_recorded(
        secrets_set: None, store: OperationStore) -> None:
    events = EventStore(store.database)
    subscribe(events)
    gone = backend_for(f"http://127.0.0.1:{free_port()}/", "11e5c1f0d5a4b3c2d1e0f9a8b7c6d5e4")
    watch = JenkinsWatch(events, gone, ChannelState(store.database), interval=1, clock=lambda: T0)
    channel = EventsInput(store=events, jenkins=lambda _events: watch, clock=lambda: T0)
    with serving(channel) as base:
        status, text = post_event(base, "jenkins", jenkins_notification(job=JOB, number=410),
                                  token=URL_TOKEN)
    assert status == 503 and "try again" in json.loads(text)["error"]
    assert recorded_keys(events) == []


def test_wrong_jenkins_settings_get_503_rather_than_an_unchecked_event(
        secrets_set: None, store: OperationStore) -> None:
    def broken(_events: EventStore) -> JenkinsWatch | None:
        raise ConfigError("JENKINS_TOKEN is not set; set it to an API token")

    events = EventStore(store.database)
    channel = EventsInput(store=events, jenkins=broken, clock=lambda: T0)
    with serving(channel) as base:
        status, text = post_event(base, "jenkins", jenkins_notification(job=JOB, number=410),
                                  token=URL_TOKEN)
        assert status == 503 and "settings" in json.loads(text)["error"]
        # The other sources do not depend on Jenkins.
        assert post_event(base, "alertmanager", alertmanager_payload(),
                          token=EVENTS_TOKEN)[0] == 200


def test_without_jenkins_the_bodys_event_is_kept_under_its_credentials_key(
        secrets_set: None, store: OperationStore) -> None:
    events = EventStore(store.database)
    subscribe(events)
    channel = EventsInput(store=events, jenkins=lambda _events: None, clock=lambda: T0)
    forged = jenkins_notification(job=JOB, number=410, status="SUCCESS")
    with serving(channel) as base:
        assert json.loads(post_event(base, "jenkins", forged, token=URL_TOKEN)[1])[
            "recorded"] == 1
        assert json.loads(post_event(base, "jenkins", forged, token=URL_TOKEN)[1])[
            "duplicates"] == 1  # a redelivery, under the same credential
        # The same body with the events token in a header: a namespace of its own.
        assert json.loads(post_event(base, "jenkins", forged, token=EVENTS_TOKEN,
                                     basic=True)[1])["recorded"] == 1
        assert post_event(base, "alertmanager", alertmanager_payload(),
                          token=EVENTS_TOKEN)[0] == 200
    url, header, alert = recorded_keys(events)
    assert url.startswith("jenkins@url:") and url.endswith(f"/jenkins:{JOB}#410")
    assert header.startswith("jenkins@header:") and header.endswith(f"/jenkins:{JOB}#410")
    assert alert.startswith("alertmanager@header:")
    assert URL_TOKEN not in url and EVENTS_TOKEN not in header
    # What opsbot observes itself is never a duplicate of what a body said.
    observed = build_event(Build(
        job=JOB, number=410, url="http://jenkins.local/job/payments-ci/410/",
        result="FAILURE", building=False, started_at=T0, duration_s=60.0, parameters={},
        started_by="scm"))
    assert observed is not None and events.record(observed, T0) == 1


def test_an_old_green_build_is_history_not_the_recovery_of_a_new_failure(
        stage: Stage) -> None:
    # #409 passed long ago and is real; replayed with the URL token after #410 failed, it
    # must not edit the failure into "back to green".
    assert stage.start_build("FAILURE") == 410
    stage.finish_builds()
    assert stage.poll() == 1
    status, answer = stage.notify(409, "SUCCESS")
    assert (status, answer["recorded"], answer["rejected"]) == (200, 0, 1), answer
    assert stage.notify(410, "FAILURE", job=JOB.upper())[1]["rejected"] == 1  # not its name
    assert stage.deliver() == 1
    [posted] = stage.chat.posted
    assert posted.startswith(f"FAILED: {JOB} #410 failed") and stage.chat.edited == []
