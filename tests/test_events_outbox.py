"""The event outbox and its courier: matching, exactly once, grouping, floods, retries.

Runs on SQLite and on PostgreSQL (the store's ``db_url`` fixture), with a recording sink
in place of a chat.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actions.backends.jenkins import Build
from actions.events._model import FAILURE, RECOVERY, RESULT, Event
from actions.events.jenkins_watch import JenkinsWatch, build_event, watched_jobs
from actions.events.routes import RouteError, chat_of, load_routes, read_routes
from actions.events.store import EventStore, Filters
from actions.guard.identity import open_payload
from actions.guard.store import OperationStore
from actions.storage import ChannelState
from connectors.events import Courier, Gone, SendLater, SendRefused
from tests._events_sink import Chat
from tests.test_guard_store import db_url  # noqa: F401 - the fixture (SQLite, PostgreSQL)

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def alert(status: str = "firing", *, group: str = "am:payments-errors", key: str | None = None,
          service: str = "payments", environment: str = "prod",
          severity: str = "critical") -> Event:
    firing = status == "firing"
    return Event(
        source="alertmanager", key=key or f"{group}:{status}", group=group,
        kind=FAILURE if firing else RECOVERY, status=status,
        title="Error rate above 5% for payments", summary="5xx ratio is 7.2% for 10 minutes",
        service=service, environment=environment, severity=severity,
        started_at=T0, ended_at=None if firing else T0 + timedelta(minutes=23),
        links=(("Source", "http://prometheus.local/graph?g0.expr=rate"),))


def check(conclusion: str, run: int) -> Event:
    failed = conclusion == "failure"
    return Event(source="github", key=f"gh-{run}", group="github:acme/checkout:check:unit:7",
                 kind=FAILURE if failed else RESULT, status=conclusion,
                 title=f"check 'unit' {conclusion} on acme/checkout PR #7",
                 service="checkout", repo="acme/checkout")


@pytest.fixture
def store(db_url: str) -> Iterator[OperationStore]:  # noqa: F811 - the imported fixture
    opened = OperationStore(db_url)
    yield opened
    opened.close()


@pytest.fixture
def events(store: OperationStore) -> EventStore:
    return EventStore(store.database)


def subscribe(events: EventStore, conversation: str = "rest:alice", **filters: Any) -> None:
    events.subscribe(conversation=conversation, channel="rest",
                     address={"sender": conversation.split(":", 1)[1]},
                     filters=Filters.build(**filters), created_by="alice", now=T0)


def courier(events: EventStore, chat: Chat, **kwargs: Any) -> Courier:
    return Courier(events, chat, interval=0.1, **kwargs)


def run(c: Courier, at: datetime) -> int:
    return asyncio.run(c.run_once(at))


def test_an_event_reaches_each_subscribed_conversation_once(events: EventStore) -> None:
    assert events.record(alert(), T0) == 0  # nobody subscribed yet: kept, sent nowhere
    subscribe(events, sources=["alerts"], service="payments")
    subscribe(events, "rest:bob", service="payments", environment="prod")
    subscribe(events, "rest:carol", service="billing")
    assert events.record(alert(key="k2"), T0) == 2
    assert events.record(alert(key="k2"), T0) is None  # the same notification again
    chat = Chat()
    assert run(courier(events, chat), T0) == 2
    assert sorted(a["sender"] for a, _, _ in chat.posts) == ["alice", "bob"]
    assert run(courier(events, chat), T0 + timedelta(minutes=5)) == 0
    assert len(chat.posts) == 2


def test_the_same_subscription_twice_is_one(events: EventStore) -> None:
    first, created = events.subscribe(conversation="rest:alice", channel="rest",
                                      address={"sender": "alice"},
                                      filters=Filters.build(sources=["alerts"]), created_by="a")
    again, created_again = events.subscribe(conversation="rest:alice", channel="rest",
                                            address={"sender": "alice"},
                                            filters=Filters.build(sources=["alertmanager",
                                                                           "grafana"]),
                                            created_by="b")
    assert created and not created_again and again.id == first.id
    assert len(events.subscriptions("rest:alice")) == 1


def test_filters_in_words_and_their_mistakes() -> None:
    assert Filters.build(sources=["alerts"], service="Payments", environment="prod",
                         severity="critical").describe() == \
        "alerts for payments on prod (critical only): failures and recoveries"
    assert "every result" in Filters.build(sources=["checks"], kinds=["all"]).describe()
    with pytest.raises(ValueError, match="no event source called 'sms'"):
        Filters.build(sources=["sms"])
    with pytest.raises(ValueError, match="not a kind of event"):
        Filters.build(kinds=["sometimes"])


def test_an_alert_message_names_what_where_since_when_with_next_steps(events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    events.record(alert(), T0)
    chat = Chat()
    run(courier(events, chat), T0 + timedelta(minutes=1))
    _, text, buttons = chat.posts[0]
    assert text.startswith("ALERT (critical): Error rate above 5% for payments - payments on prod")
    assert "Firing since 09:00 UTC" in text and "Source: http://prometheus.local" in text
    titles = [b["title"] for b in buttons]
    assert titles == ["Show errors", "Roll back payments on prod", "Open a ticket"]
    opened = {b["title"]: open_payload(b["payload"], scope="rest:alice",
                                       now=T0.timestamp()).text for b in buttons}
    assert opened["Roll back payments on prod"] == \
        '/rollback{"service":"payments","environment":"prod"}'
    assert '"summary":"Error rate above 5% for payments - payments on prod"' in \
        str(opened["Open a ticket"])


def test_an_operation_button_acts_on_what_the_message_says_not_on_raw_labels() -> None:
    from actions.events.render import buttons_for

    event = dataclasses.replace(alert(environment="dev"), labels={
        "environment": "prod", "service": "billing", "mode": "hard"})
    [button] = [b for b in buttons_for(event, FAILURE, ["restart_service"],
                                       lambda name: ["service", "environment", "mode"],
                                       chat="rest:alice", expires=T0.timestamp() + 60)
                if b["title"] == "Restart service"]
    assert open_payload(button["payload"], scope="rest:alice", now=T0.timestamp()).text == \
        '/restart_service{"service":"payments","environment":"dev","mode":"hard"}'


def test_control_characters_from_a_payload_never_reach_the_chat() -> None:
    from actions.events.sources import parse
    from simulators.events import alertmanager_payload

    payload = alertmanager_payload(service="payments")
    payload["alerts"][0]["annotations"]["summary"] = \
        "error\x1b[2J\x1b]8;;http://evil\x07rate\r\x1b[1Aopsbot> fake \u202egnp.exe"
    payload["alerts"][0]["generatorURL"] = "http://prometheus.local/\x1b[2J"
    [event] = parse("alertmanager", json.dumps(payload).encode(), {})
    text = event.summary + event.title + "".join(url for _, url in event.links)
    assert not any(ord(c) < 32 and c not in "\t\n" or 0x7f <= ord(c) <= 0x9f
                   or c == "\u202e" for c in text), repr(text)
    assert "\x1b" not in text and "http://prometheus.local/" not in text


def test_resolution_edits_the_alert_and_says_how_long(events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    events.record(alert(), T0)
    chat = Chat()
    c = courier(events, chat)
    run(c, T0)
    events.record(alert("resolved"), T0 + timedelta(minutes=23))
    run(c, T0 + timedelta(minutes=23))
    assert len(chat.posts) == 1
    ref, text, buttons = chat.edits[0]
    assert ref == {"message_id": 1}
    assert text.startswith("RESOLVED after 23m: Error rate above 5% for payments")
    # The next steps stay: a rollback or a ticket may still be wanted afterwards.
    assert [b["title"] for b in buttons] == ["Show errors", "Roll back payments on prod",
                                             "Open a ticket"]


def test_a_resolution_reaches_whoever_got_the_failure_only(events: EventStore) -> None:
    subscribe(events, sources=["alerts"], kinds=["recovery"])  # alice: resolutions only
    subscribe(events, "rest:bob", sources=["alerts"])
    events.record(alert(), T0)
    chat = Chat()
    run(courier(events, chat), T0)
    assert [a["sender"] for a, _, _ in chat.posts] == ["bob"]
    events.record(alert("resolved"), T0 + timedelta(minutes=5))
    run(courier(events, chat), T0 + timedelta(minutes=5))
    assert [a["sender"] for a, _, _ in chat.posts] == ["bob", "alice"]  # alice: a new post
    assert len(chat.edits) == 1  # bob: his alert edited


def test_first_green_after_red_is_a_recovery_and_other_greens_are_not_news(
        events: EventStore) -> None:
    subscribe(events, sources=["checks"], service="checkout")
    chat = Chat()
    c = courier(events, chat)
    events.record(check("success", 1), T0)  # green, nothing red before: not reported
    events.record(check("failure", 2), T0)
    run(c, T0)
    events.record(check("success", 3), T0 + timedelta(minutes=9))
    run(c, T0 + timedelta(minutes=9))
    assert [text.split(":")[0] for _, text, _ in chat.posts] == ["FAILED"]
    assert chat.edits[0][1].startswith("Back to green after 9m")
    assert [h["kind"] for h in events.history()] == [FAILURE, RECOVERY]


def test_a_flood_is_summarised_in_one_message(events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    chat = Chat()
    c = courier(events, chat)
    c.flood, c.window = 3, 60.0
    for n in range(8):
        events.record(alert(group=f"g{n}", service=f"svc{n}"), T0)
    run(c, T0)
    assert len(chat.posts) == 3
    assert run(c, T0 + timedelta(seconds=30)) == 0  # held until the window ends
    run(c, T0 + timedelta(seconds=61))
    assert len(chat.posts) == 4
    summary = chat.posts[-1][1]
    assert summary.startswith("5 more events arrived within 1m (5 from alertmanager)")
    assert events.counts() == {"sent": 3, "summarised": 5}


def test_a_flood_longer_than_one_claim_is_still_one_summary(events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    chat = Chat()
    c = courier(events, chat)
    c.flood, c.window = 3, 60.0
    for n in range(130):  # a claim takes 50 at a time
        events.record(alert(group=f"g{n}", service=f"svc{n}"), T0)
    for _ in range(4):
        run(c, T0)
    assert len(chat.posts) == 3
    for _ in range(4):
        run(c, T0 + timedelta(seconds=61))
    assert len(chat.posts) == 4, [p[1][:40] for p in chat.posts]
    assert chat.posts[-1][1].startswith("127 more events arrived")
    assert events.counts() == {"sent": 3, "summarised": 127}
    # The summary counts against the next window: 2 more posts there, then held again.
    for n in range(5):
        events.record(alert(group=f"h{n}", service=f"late{n}"), T0 + timedelta(seconds=62))
    run(c, T0 + timedelta(seconds=62))
    assert len(chat.posts) == 6


def test_old_settled_deliveries_and_events_are_forgotten(events: EventStore) -> None:
    subscribe(events, sources=["alerts"], service="payments")
    chat = Chat()
    c = courier(events, chat)
    events.record(alert(group="old"), T0)
    run(c, T0)
    events.record(alert(group="pending"), T0)  # never delivered
    events.record(alert(group="nobody", service="other", environment="dev"), T0)
    later = T0 + timedelta(days=8)
    events.record(alert(group="new"), later)
    assert events.prune(later - timedelta(days=7)) == (1, 2)  # old's delivery; old, nobody
    assert [h["grp"] for h in events.history()] == ["pending", "new"]
    # A forgotten key is new again; one still kept is a duplicate.
    assert events.record(alert(group="old"), later) == 1
    assert events.record(alert(group="new"), later) is None


def test_the_kind_a_conversation_was_last_told_decides_a_recovery(events: EventStore) -> None:
    subscribe(events, sources=["checks"], kinds=["failure"])
    chat = Chat()
    c = courier(events, chat)
    for run_id in range(40):  # a long history of the same group
        events.record(check("failure" if run_id % 2 == 0 else "success", run_id), T0)
        run(c, T0)
    kinds = [h["kind"] for h in events.history()]
    assert kinds == ["failure", "recovery"] * 20


def test_a_signed_github_body_replayed_under_a_new_delivery_id_is_dropped(
        events: EventStore) -> None:
    from actions.events.sources import parse
    from simulators.events import github_check_run

    subscribe(events, sources=["checks"])
    raw = json.dumps(github_check_run()).encode()

    def post(delivery: str | None) -> int | None:
        headers = {"X-GitHub-Event": "check_run"}
        if delivery:
            headers["X-GitHub-Delivery"] = delivery
        [event] = parse("github", raw, headers)
        return events.record(event, T0)

    assert post("d-1") == 1
    assert post("d-1") is None  # GitHub's redelivery
    assert post("d-2") is None  # the same body under a new id: a replay
    assert post(None) is None
    other = json.dumps(github_check_run(sha="e" * 40)).encode()
    [event] = parse("github", other, {"X-GitHub-Event": "check_run", "X-GitHub-Delivery": "d-1"})
    assert events.record(event, T0) is None  # a delivery id seen before: a redelivery
    assert len(events.history()) == 1


def test_a_claimed_delivery_whose_courier_died_is_delivered_once_by_another(
        events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    events.record(alert(), T0)
    dead = events.claim("dead-process", now=T0, lease=60)
    assert len(dead) == 1  # claimed, then the process died before sending
    chat = Chat()
    restarted = courier(events, chat)
    assert run(restarted, T0 + timedelta(seconds=30)) == 0  # the lease still holds
    assert run(restarted, T0 + timedelta(seconds=61)) == 1
    assert len(chat.posts) == 1
    # The dead one's late word changes nothing: its lease is gone.
    assert events.sent(dead[0], "dead-process", {"message_id": 99}) is False
    assert run(restarted, T0 + timedelta(minutes=5)) == 0 and len(chat.posts) == 1


def test_two_couriers_never_send_the_same_delivery(events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    for n in range(6):
        events.record(alert(group=f"g{n}"), T0)
    a, b = events.claim("a", now=T0), events.claim("b", now=T0)
    assert len(a) == 6 and b == []


def test_flood_control_is_waited_out_as_the_chat_asks(events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    events.record(alert(), T0)
    chat = Chat()
    chat.fail = [SendLater("429 Too Many Requests", retry_after=30)]
    c = courier(events, chat)
    run(c, T0)
    assert chat.posts == [] and events.counts() == {"pending": 1}
    [row] = events.history()
    assert row["attempts"] == 1 and "429" in row["error"]


def test_a_chat_that_refuses_for_good_is_given_up_and_logged(events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    events.record(alert(), T0)
    chat = Chat()
    chat.fail = [SendRefused("Forbidden: bot was kicked from the group chat")]
    run(courier(events, chat), T0)
    assert events.counts() == {"failed": 1}
    assert "kicked" in events.history()[0]["error"]


def test_a_message_that_cannot_be_edited_any_more_is_posted_again(events: EventStore) -> None:
    subscribe(events, sources=["alerts"])
    events.record(alert(), T0)
    chat = Chat()
    c = courier(events, chat)
    run(c, T0)
    chat.fail_edit = [Gone("Bad Request: message to edit not found")]
    events.record(alert("resolved"), T0 + timedelta(hours=1))
    run(c, T0 + timedelta(hours=1))
    assert len(chat.posts) == 2 and chat.posts[1][1].startswith("RESOLVED after 23m")


def test_a_channel_not_running_here_keeps_its_deliveries(
        events: EventStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # No connector started in this process (another test's Telegram connector registered
    # its sink in the process-wide table).
    monkeypatch.setattr("connectors.events._sinks", {})
    events.subscribe(conversation="telegram:-100", channel="telegram",
                     address={"chat_id": -100}, filters=Filters.build(sources=["alerts"]),
                     created_by="alice")
    events.record(alert(), T0)
    run(courier(events, Chat()), T0)
    assert events.counts() == {"pending": 1}
    assert "not running" in events.history()[0]["error"]


def test_routes_from_subscriptions_yml(events: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.yml"
    path.write_text(
        "routes:\n"
        "  - name: payments-oncall\n"
        "    telegram: -1001234/42\n"
        "    sources: [alerts]\n"
        "    service: payments\n"
        "    environment: prod\n"
        "    buttons: [restart_service]\n"
        "  - teams: '19:abc@thread.tacv2'\n"
        "    sources: checks\n"
        "  - slack: C0OPS\n"
        "    sources: [builds]\n", encoding="utf-8")
    assert load_routes(events, path) == 3
    slack = events.subscriptions("slack:C0OPS")[0]
    assert (slack.channel, slack.address) == ("slack", {"channel": "C0OPS"})
    assert chat_of("slack", slack.address) == "slack:C0OPS"
    telegram = events.subscriptions("telegram:-1001234/42")[0]
    assert telegram.address == {"chat_id": -1001234, "thread_id": 42}
    assert telegram.buttons == ("restart_service",) and telegram.origin == "file:payments-oncall"
    assert events.subscriptions("teams:19:abc@thread.tacv2")[0].filters.sources == {"github"}
    path.write_text("routes:\n  - rest: alice\n    sources: [alerts]\n", encoding="utf-8")
    assert load_routes(events, path) == 1  # the file is the whole truth
    assert events.subscriptions("telegram:-1001234/42") == []
    # What people subscribed in the chat is not the file's to remove.
    subscribe(events, "rest:bob", sources=["checks"])
    load_routes(events, path)
    assert len(events.subscriptions("rest:bob")) == 1


@pytest.mark.parametrize(("text", "error"), [
    ("routes: {}\n", "'routes' must be a list"),
    ("routes:\n  - sources: [alerts]\n", "give exactly one of telegram"),
    ("routes:\n  - telegram: general\n", "telegram must be a chat id"),
    ("routes:\n  - slack: '#ops'\n", "slack must be a channel id"),
    ("routes:\n  - rest: a\n    sources: [sms]\n", "no event source called 'sms'"),
    ("routes:\n  - rest: a\n    colour: red\n", "unknown field(s) colour"),
    ("routes: [\n", "is not YAML"),
])
def test_a_broken_subscriptions_yml_says_where(tmp_path: Path, text: str, error: str) -> None:
    path = tmp_path / "subscriptions.yml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(RouteError, match=error.replace("(", r"\(").replace(")", r"\)")):
        read_routes(path)


# -- Jenkins without a plugin ----------------------------------------------------------------


def build(number: int, result: str | None, job: str = "nightly-integration") -> Build:
    return Build(job=job, number=number, url=f"http://jenkins.local/job/{job}/{number}/",
                 result=result, building=result is None,
                 started_at=T0 + timedelta(hours=number), duration_s=600.0,
                 parameters={"ENV": "staging"}, started_by="timer")


class FakeJenkins:
    def __init__(self) -> None:
        self.history: dict[str, list[Build]] = {"nightly-integration": [], "payments-deploy": []}
        self.reports = 0

    async def jobs(self) -> list[Any]:
        class Job:
            def __init__(self, name: str) -> None:
                self.full_name = name

        return [Job(name) for name in self.history]

    async def builds(self, job: str, limit: int = 20) -> list[Build]:
        return sorted(self.history[job], key=lambda b: -b.number)[:limit]

    async def failure_report(self, job: str, number: int) -> Any:
        self.reports += 1

        class Report:
            summary = "stage 'integration' failed: 3 tests failed (OrderFlowIT)"

        return Report()


def test_jenkins_failures_and_recoveries_from_polling_without_repeats(
        events: EventStore, store: OperationStore) -> None:
    jenkins = FakeJenkins()
    jenkins.history["nightly-integration"] = [build(1, "FAILURE"), build(2, "SUCCESS")]
    state = ChannelState(store.database)
    watch = JenkinsWatch(events, jenkins, state, interval=1,  # type: ignore[arg-type]
                         clock=lambda: T0)
    assert asyncio.run(watch.poll_once()) == 0  # nobody subscribed: Jenkins is not asked
    subscribe(events, job="nightly-integration")
    assert asyncio.run(watch.poll_once()) == 0  # the first look: history is not news
    jenkins.history["nightly-integration"] += [build(3, "FAILURE"), build(4, None)]
    assert asyncio.run(watch.poll_once()) == 1
    assert asyncio.run(watch.poll_once()) == 0  # the same builds again: nothing new
    jenkins.history["nightly-integration"][-1] = build(4, "SUCCESS")
    jenkins.history["nightly-integration"].append(build(5, "SUCCESS"))
    assert asyncio.run(watch.poll_once()) == 2
    assert jenkins.reports == 1  # the summary is read for the failure only
    chat = Chat()
    run(courier(events, chat), T0 + timedelta(days=1))
    [(_, failed, buttons)] = chat.posts
    assert failed.startswith("FAILED: nightly-integration #3 failed")
    assert "3 tests failed" in failed and [b["title"] for b in buttons][0] == "Why did it fail?"
    assert chat.edits[0][1].startswith("Back to green")
    assert [h["kind"] for h in events.history()] == [FAILURE, RECOVERY]  # #5: not news
    # A new watcher (the server restarted) starts where the last one stopped.
    again = JenkinsWatch(events, jenkins, state, interval=1,  # type: ignore[arg-type]
                         clock=lambda: T0)
    assert asyncio.run(again.poll_once()) == 0


def test_which_jobs_are_watched(events: EventStore) -> None:
    subscribe(events, service="payments")
    subscribe(events, "rest:bob", sources=["alerts"], service="nightly")
    jobs = ["payments-deploy", "payments-build", "nightly-integration", "billing-deploy"]
    assert watched_jobs(events.subscriptions(), jobs) == ["payments-build", "payments-deploy"]


def test_a_running_build_is_no_event() -> None:
    assert build_event(build(7, None)) is None
    event = build_event(build(7, "UNSTABLE"), "2 tests flaky")
    assert event is not None and event.kind == FAILURE and event.environment == "staging"
    assert event.key == "jenkins-observed:nightly-integration#7"  # no webhook body's key
    assert event.links == (("Console", "http://jenkins.local/job/nightly-integration/7/console"),)
