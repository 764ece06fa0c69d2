"""A store made before the store was split (commit 2d96825) opens, upgraded in place.

``tests/data/store_before_split`` holds one such store in SQLite and one as a PostgreSQL
dump, each with its ``OPSBOT_AUDIT_FILE`` copy (``generate.py`` there made them): three
operations with their audit chain, a row about no operation, taught phrasings, channel
state, leases, and events with a subscription and deliveries. Opened with today's code,
every row is there, new writes work, and ``opsbot audit --verify`` says OK, with and
without the copy.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from actions.events._model import Event
from actions.guard import (
    EXECUTING,
    EXPIRED,
    PENDING_APPROVAL,
    PENDING_CONFIRMATION,
    SUCCEEDED,
)
from actions.storage import ACCEPTED, CANDIDATE
from actions.stores import Stores
from opsbot.cli import main
from tests._servers import pg_schema

FIXTURES = Path(__file__).parent / "data" / "store_before_split"
T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)  # generate.py's
# The tables of 2d96825's store: the upgrade keeps every one of them and their columns.
TABLES = {
    "opsbot_operations", "opsbot_executions", "opsbot_audit", "opsbot_channel_state",
    "opsbot_leases", "opsbot_taught", "opsbot_subscriptions", "opsbot_events",
    "opsbot_event_keys", "opsbot_event_deliveries", "opsbot_event_messages",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def old_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The URL of a store as 2d96825 left it, and its audit copy (both copies of the
    fixtures: the test changes them)."""
    copy = tmp_path / "audit.jsonl"
    if request.param == "sqlite":
        shutil.copy(FIXTURES / "opsbot.db", tmp_path / "opsbot.db")
        shutil.copy(FIXTURES / "audit-sqlite.jsonl", copy)
        yield f"sqlite:///{tmp_path / 'opsbot.db'}", copy
        return
    shutil.copy(FIXTURES / "audit-pg.jsonl", copy)
    with pg_schema(request.getfixturevalue("postgres_url"), "opsbot_upgrade") as url:
        engine = sa.create_engine(url, future=True, poolclass=NullPool)
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:  # the dump as psql would run it, in one go
                cursor.execute((FIXTURES / "opsbot-pg.sql").read_text(encoding="utf-8"))
            raw.commit()
        finally:
            raw.close()
            engine.dispose()
        yield url, copy


def columns(url: str) -> dict[str, set[str]]:
    engine = sa.create_engine(url, future=True, poolclass=NullPool)
    try:
        inspector = sa.inspect(engine)
        return {t: {c["name"] for c in inspector.get_columns(t)}
                for t in inspector.get_table_names() if t.startswith("opsbot_")}
    finally:
        engine.dispose()


def verify(url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
           copy: Path | None) -> str:
    """``opsbot audit --verify``'s OK line (it fails the test otherwise)."""
    monkeypatch.setenv("OPSBOT_DB_URL", url)
    if copy is None:
        monkeypatch.delenv("OPSBOT_AUDIT_FILE", raising=False)
    else:
        monkeypatch.setenv("OPSBOT_AUDIT_FILE", str(copy))
    code = main(["audit", "--verify"])
    out, err = capsys.readouterr()
    assert code == 0 and err == "", err
    assert out.startswith("OK: "), out
    return out


def test_an_old_store_opens_with_its_data_and_its_chain(
    old_store: tuple[str, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, copy = old_store
    before = columns(url)
    assert set(before) == TABLES

    said = verify(url, monkeypatch, capsys, None)
    assert said.startswith("OK: 11 audit rows in the hash chain.")
    said = verify(url, monkeypatch, capsys, copy)
    assert said.startswith("OK: 11 audit rows in the hash chain; 11 checked against "
                           "OPSBOT_AUDIT_FILE, from row 1.")
    assert columns(url) == before  # opened and checked: nothing of it changed

    stores = Stores.from_env({"OPSBOT_DB_URL": url, "OPSBOT_AUDIT_FILE": str(copy)})
    try:
        # Operations and their audit events, as they were.
        records = {r.operation.intent: r for r in stores.operations.audit_records()}
        assert set(records) == {"deploy", "rollback", "run_build"}
        deploy = records["deploy"].operation
        assert deploy.state == SUCCEEDED and deploy.result == "SUCCESS"
        assert deploy.backend_ref == {"job": "payments-deploy", "build": 118}
        assert deploy.parameters == {"service": "payments", "version": "2.4.1",
                                     "environment": "prod"}
        assert deploy.created_at == T0 and deploy.notified_at is not None
        assert [e.kind for e in records["deploy"].events] == [
            "requested", EXECUTING, "claimed", "backend", SUCCEEDED, "notified"]
        assert records["rollback"].operation.state == PENDING_APPROVAL
        assert records["rollback"].operation.approval_roles == ("sre",)
        assert records["run_build"].operation.state == EXPIRED
        assert stores.operations.claim_execution(deploy.id, actor="again") is False
        # Taught phrasings.
        taught = {t.text: t for t in stores.taught.examples(None)}
        assert taught["ship payments"].status == ACCEPTED
        assert taught["ship payments"].example == "ship [payments](service)"
        assert taught["who is red"].status == CANDIDATE
        # Channel state.
        assert stores.channel_state.recall("teams-ref", "conv-1") == {
            "serviceUrl": "http://teams.example", "id": "conv-1"}
        assert stores.channel_state.recall("telegram-button", "b1") == {"payload": "/affirm"}
        assert stores.channel_state.first_time("telegram-seen", "update:1001") is False
        # Leases (held until T0 + 20 s).
        during = T0 + timedelta(seconds=5)
        assert stores.leases.holder("telegram-poller:1234", now=during) == "host-a:11"
        assert stores.leases.holder(f"operation:{deploy.id}", now=during) == "host-b:22"
        assert stores.leases.take("telegram-poller:1234", "host-c:33", 20, now=during) is None
        # Events: the subscription, both events (one sent, one waiting), the group's message.
        [subscription] = stores.events.subscriptions()
        assert subscription.conversation == "telegram:42" and subscription.created_by == "alice"
        assert stores.events.seen("am:HighErrors:payments:firing")
        assert stores.events.seen("am:alias:1")  # an alias
        assert stores.events.counts() == {"sent": 1, "pending": 1}
        message = stores.events.group_message("telegram:42", "am:HighErrors")
        assert message is not None and message.ref == {"message_id": 501}

        # New writes, in every concern.
        new = stores.operations.create(
            intent="deploy", risk="high", requester="dave", sender_id="rest:dave",
            channel="rest", text="deploy search 1.2.0 to staging", confidence=0.9,
            parameters={"service": "search", "version": "1.2.0", "environment": "staging"},
            ttl_seconds=300)
        assert stores.operations.transition(new.id, [PENDING_CONFIRMATION], EXECUTING,
                                            actor="dave", confirmed_by="dave") is not None
        assert stores.operations.claim_execution(new.id, actor="dave")
        stores.operations.audit(None, "forged_payload", actor="telegram:98", channel="telegram")
        added = stores.taught.add(text="ship search", example="ship [search](service)",
                                  intent="deploy", source="cli", taught_by="dave",
                                  channel="cli")
        assert stores.taught.review(added.id, ACCEPTED, "carol") is not None
        stores.channel_state.remember("teams-ref", "conv-2", {"id": "conv-2"})
        assert stores.channel_state.first_time("telegram-seen", "update:1002")
        after = T0 + timedelta(seconds=30)
        assert stores.leases.take("telegram-poller:1234", "host-c:33", 20, now=after)
        assert stores.events.record(Event(
            source="alertmanager", key="am:DiskFull:db:firing", group="am:DiskFull",
            kind="failure", status="firing", title="DiskFull on db", service="payments"),
            now=after) == 1
        assert stores.events.counts() == {"sent": 1, "pending": 2}
        assert len(stores.operations.audit_records()) == 4
        # A concern that came after the split: its table is added.
        wish = stores.wishes.record("rotate the certs", "dave", "rest", "rest:dave", at=after)
        assert stores.wishes.since() == [wish]
    finally:
        stores.close()

    said = verify(url, monkeypatch, capsys, copy)
    assert said.startswith("OK: 15 audit rows in the hash chain; 15 checked against "
                           "OPSBOT_AUDIT_FILE, from row 1.")
    said = verify(url, monkeypatch, capsys, None)
    assert said.startswith("OK: 15 audit rows in the hash chain.")
    now = columns(url)
    assert {t: now[t] for t in before} == before  # every table keeps its columns
    assert set(now) - set(before) == {"opsbot_wishes"}

    engine = sa.create_engine(url, future=True, poolclass=NullPool)
    try:  # still append-only: the database refuses to change the audit log
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("UPDATE opsbot_audit SET actor = 'mallory'"))
    finally:
        engine.dispose()
