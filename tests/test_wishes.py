"""Wishes: the store (SQLite and PostgreSQL), the recorder the "I can't do that" answer
calls, its counter, and the chat's list_wishes."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actions import _runtime, metrics
from actions.guard import OperationStore, Policy
from actions.requests import OpsRequest
from actions.storage import Wishes
from actions.storage.wishes import MAX_TEXT
from actions.turn import Turn, Who
from actions.wishes import record_wish
from tests._servers import pg_schema
from tests.conftest import ROOT, handle

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OperationStore]:
    """An operation store, and so every concern's, on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        opened = OperationStore(f"sqlite:///{tmp_path / 'o.db'}")
        yield opened
        opened.close()
        return
    with pg_schema(request.getfixturevalue("postgres_url"), "opsbot_wishes") as url:
        opened = OperationStore(url)
        yield opened
        opened.close()


def runtime(store: OperationStore) -> _runtime.Runtime:
    return _runtime.Runtime(store=store, policy=Policy.load(ROOT / "policy.yml"),
                            rasa_url="http://127.0.0.1:9")


def turn(rt: _runtime.Runtime, text: str, intent: str = "nlu_fallback",
         person: str = "alice") -> Turn:
    who = Who("telegram", person, f"telegram:-100:{person}", person, "telegram:-100")
    return Turn(OpsRequest(intent, text, 0.4), who, rt)


# -- the store --------------------------------------------------------------------------


def test_a_wish_is_kept_with_who_asked_where_and_when(store: OperationStore) -> None:
    wishes = Wishes(store.database)
    kept = wishes.record("  renew the TLS cert on checkout ", "alice", "telegram",
                         "telegram:-100", at=T0)
    assert kept.id.startswith("w-") and kept.text == "renew the TLS cert on checkout"
    assert wishes.get(kept.id) == kept
    assert (kept.requester, kept.channel, kept.chat, kept.asked_at) == (
        "alice", "telegram", "telegram:-100", T0)
    assert kept.covered_by is None and kept.covered_at is None
    assert wishes.get("w-nonexistent") is None


def test_a_pasted_token_is_not_kept(store: OperationStore,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JENKINS_TOKEN", "jenkins-s3cret-value")
    wishes = Wishes(store.database)
    kept = wishes.record("log in with jenkins-s3cret-value and ghp_" + "a1B2" * 9 + " then "
                         "token=hunter22 please", "bob", "rest", "rest:bob")
    assert kept.text == "log in with ********** and ********** then token=********** please"
    assert wishes.get(kept.id) == kept
    # Words, not one long run of a letter: the secrets are process-wide, and another test
    # may have registered "xxxx..." as a token.
    long = wishes.record("rotate the certs " * (MAX_TEXT // 10), "bob", "rest", "rest:bob")
    assert len(long.text) == MAX_TEXT and long.text.endswith("…")


def test_since_lists_oldest_first_from_a_moment(store: OperationStore) -> None:
    wishes = Wishes(store.database)
    old = wishes.record("book a meeting room", "alice", "rest", "rest:alice",
                        at=T0 - timedelta(days=10))
    new = [wishes.record(f"rotate certs {n}", "bob", "rest", "rest:bob",
                         at=T0 + timedelta(hours=n)) for n in (2, 1)]
    assert [w.id for w in wishes.since()] == [old.id, new[1].id, new[0].id]
    assert [w.id for w in wishes.since(T0)] == [new[1].id, new[0].id]
    assert wishes.since(T0 + timedelta(days=1)) == []


def test_a_covered_wish_keeps_what_covered_it_first(store: OperationStore) -> None:
    wishes = Wishes(store.database)
    one, two, three = (wishes.record(f"wish {n}", "alice", "rest", "rest:alice", at=T0)
                       for n in range(3))
    assert wishes.uncovered_count() == 3
    assert wishes.mark_covered([one.id, two.id, "w-unknown"], "renew_cert",
                               at=T0 + timedelta(hours=1)) == sorted([one.id, two.id])
    assert wishes.mark_covered([two.id, three.id], "deploy") == [three.id]
    covered = wishes.get(two.id)
    assert covered is not None and covered.covered_by == "renew_cert"
    assert covered.covered_at == T0 + timedelta(hours=1)
    assert wishes.uncovered_count() == 0
    assert wishes.since(uncovered=True) == []
    assert wishes.mark_covered([], "deploy") == []


# -- the recorder -------------------------------------------------------------------------


def test_record_wish_keeps_the_turns_person_channel_and_chat_and_counts_it(
        store: OperationStore) -> None:
    rt = runtime(store)
    before = metrics.ACTIONS.get_sample_value("opsbot_wishes_total", {"channel": "telegram"})
    record_wish(turn(rt, "order pizza for the team", person="bob"), "order pizza for the team")
    record_wish(turn(rt, "   "), "   ")  # counted: it was refused; nothing to keep
    [wish] = rt.stores.wishes.since()
    assert (wish.text, wish.requester, wish.channel, wish.chat) == (
        "order pizza for the team", "bob", "telegram", "telegram:-100")
    after = metrics.ACTIONS.get_sample_value("opsbot_wishes_total", {"channel": "telegram"})
    assert after == (before or 0) + 2
    assert b"opsbot_wishes_total{channel=\"telegram\"}" in metrics.render(metrics.ACTIONS)


def test_a_store_outage_costs_the_wish_not_the_turn_and_is_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    down = OperationStore("postgresql://opsbot:pw@127.0.0.1:9/opsbot")  # nothing listens
    rt = runtime(down)
    caplog.set_level(logging.DEBUG, logger="actions.wishes")
    for text in ("rotate the certs", "order pizza", "book a room"):
        asked = turn(rt, text)
        record_wish(asked, text)  # does not raise
        asked.say("I can't do that.")
        assert asked.replies == [{"text": "I can't do that."}]
    said = [r for r in caplog.records if r.name == "actions.wishes"
            and r.levelno >= logging.WARNING]
    assert len(said) == 1 and "not kept as a wish" in said[0].getMessage(), said
    assert "pw" not in said[0].getMessage()
    down.close()


# -- the chat -----------------------------------------------------------------------------


def test_list_wishes_says_so_when_nobody_asked_for_anything(store: OperationStore) -> None:
    rt = runtime(store)
    asked = turn(rt, "show the automation backlog", "list_wishes")
    handle("list_wishes", asked)
    assert asked.replies == [{"text": "Nobody has asked me for anything I couldn't do yet."}]
    [record] = store.audit_records(intent="list_wishes")
    assert record.operation.requester == "alice" and record.operation.state == "succeeded"


def test_list_wishes_answers_the_five_most_asked(store: OperationStore) -> None:
    rt = runtime(store)
    now = datetime.now(UTC)
    asked = [("renew the TLS cert on checkout", "alice"), ("renew the tls cert on checkout?",
             "bob"), ("Renew the TLS cert on checkout", "alice"),
             ("order pizza for the team", "carol"), ("order pizza for the team!", "bob")]
    asked += [(f"{thing} please", "dave") for thing in (
        "reset my vpn password", "book a meeting room", "scale search to 5 replicas",
        "add a dns record for the status page")]
    for n, (text, person) in enumerate(asked):
        rt.stores.wishes.record(text, person, "rest", f"rest:{person}",
                                at=now - timedelta(hours=len(asked) - n))
    question = turn(rt, "what have people asked you that you couldn't do?", "list_wishes")
    handle("list_wishes", question)
    [reply] = question.replies
    lines = reply["text"].splitlines()
    assert lines[0] == "What people asked me for that I can't do yet, most asked first:"
    assert lines[1] == ('1. "Renew the TLS cert on checkout": 3 times, by alice and bob '
                        '(last asked 7 hours ago)')
    assert lines[2] == ('2. "order pizza for the team": 2 times, by bob and carol '
                        '(last asked 5 hours ago)')
    assert len(lines) == 7 and lines[6] == "1 more in 'opsbot wishes'."
    assert all(" once, by dave " in line for line in lines[3:6])
