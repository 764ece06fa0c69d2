"""The operation store on SQLite and PostgreSQL, and the audit views for `opsbot audit`."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from actions.guard import (
    CANCELLED,
    EXECUTING,
    EXPIRED,
    FAILED,
    OPEN_STATES,
    PENDING_APPROVAL,
    PENDING_CONFIRMATION,
    SUCCEEDED,
    Operation,
    OperationStore,
    StoreError,
    format_json,
    format_table,
    params_digest,
    parse_since,
)
from actions.storage import Leases
from tests._servers import pg_schema
from tests.conftest import free_port

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)
PROD_DEPLOY = {"service": "payments", "version": "2.4.1", "environment": "prod"}


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'opsbot.db'}"
        return
    with pg_schema(request.getfixturevalue("postgres_url"), "opsbot_test") as url:
        yield url


@pytest.fixture
def open_store(db_url: str) -> Iterator[Callable[[], OperationStore]]:
    """Opens stores on the test database (like separate processes) and closes them after."""
    stores: list[OperationStore] = []

    def open_() -> OperationStore:
        stores.append(OperationStore(db_url))
        return stores[-1]

    yield open_
    for store in stores:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], OperationStore]) -> OperationStore:
    return open_store()


def new_op(store: OperationStore, **overrides: Any) -> Operation:
    values: dict[str, Any] = {
        "intent": "deploy", "risk": "critical", "requester": "alice", "sender_id": "tg:-100:42",
        "channel": "telegram", "text": "deploy payments 2.4.1 to prod", "confidence": 0.93,
        "parameters": PROD_DEPLOY, "ttl_seconds": 300, "now": T0,
    }
    values.update(overrides)
    return store.create(**values)


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Runs ``work(i)`` in ``count`` threads released at the same moment."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return results


def kinds(store: OperationStore, operation_id: str) -> list[str]:
    records = [r for r in store.audit_records(limit=1000) if r.operation.id == operation_id]
    return [e.kind for e in records[0].events]


# --- creating and reading ------------------------------------------------------------


def test_create_and_get_round_trip(store: OperationStore) -> None:
    reply_to = {"channel": "telegram", "chat_id": -100, "sender_id": "tg:-100:42"}
    op = new_op(store, approval_roles=("release-manager",), reply_to=reply_to)

    assert op.id.startswith("op-") and len(op.id) == 15
    assert op.state == PENDING_CONFIRMATION
    assert op.parameters == PROD_DEPLOY
    assert op.digest == params_digest("deploy", PROD_DEPLOY)
    assert op.created_at == T0 and op.created_at.tzinfo is not None
    assert op.expires_at == T0 + timedelta(minutes=5)
    assert op.approval_roles == ("release-manager",)
    assert op.reply_to == reply_to
    assert op.backend_ref == {} and op.result is None and op.notified_at is None
    assert store.get(op.id) == op
    assert store.get("op-000000000000") is None
    assert kinds(store, op.id) == ["requested"]


def test_operation_ids_are_unique(store: OperationStore) -> None:
    assert len({new_op(store).id for _ in range(20)}) == 20


def test_params_digest_is_canonical() -> None:
    digest = params_digest("deploy", PROD_DEPLOY)
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert params_digest("deploy", dict(reversed(list(PROD_DEPLOY.items())))) == digest
    assert params_digest("deploy", {**PROD_DEPLOY, "version": "2.4.2"}) != digest
    assert params_digest("rollback", PROD_DEPLOY) != digest


def test_requested_event_holds_the_request(store: OperationStore) -> None:
    op = new_op(store)
    [record] = store.audit_records()
    event = record.events[0]
    assert (event.kind, event.actor, event.channel, event.at) == (
        "requested", "alice", "telegram", T0)
    assert event.detail["parameters"] == PROD_DEPLOY
    assert event.detail["text"] == op.text and event.detail["confidence"] == pytest.approx(0.93)


def test_naive_datetimes_are_refused(store: OperationStore) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        new_op(store, now=datetime(2025, 3, 14, 9, 30))


# --- state changes -----------------------------------------------------------------------


def test_transition_is_compare_and_set(store: OperationStore) -> None:
    op = new_op(store)
    later = T0 + timedelta(seconds=20)
    confirmed = store.transition(op.id, {PENDING_CONFIRMATION}, PENDING_APPROVAL, actor="alice",
                                 channel="telegram", event="confirmed", now=later,
                                 confirmed_by="alice", confirmed_at=later)
    assert confirmed is not None
    assert (confirmed.state, confirmed.confirmed_by, confirmed.confirmed_at) == (
        PENDING_APPROVAL, "alice", later)
    assert store.transition(op.id, {PENDING_CONFIRMATION}, EXECUTING, actor="alice") is None
    assert store.transition("op-missing", OPEN_STATES, CANCELLED, actor="alice") is None
    assert store.get(op.id) == confirmed
    assert kinds(store, op.id) == ["requested", "confirmed"]


def test_final_transition_sets_finished_at_and_audits_fields(store: OperationStore) -> None:
    op = new_op(store)
    done = T0 + timedelta(minutes=2)
    store.transition(op.id, OPEN_STATES, EXECUTING, actor="alice", now=T0)
    finished = store.transition(op.id, {EXECUTING}, FAILED, actor=None, now=done,
                                result="FAILURE", result_detail="stage 'migrate' failed")
    assert finished is not None and finished.finished_at == done
    assert (finished.result, finished.result_detail) == ("FAILURE", "stage 'migrate' failed")
    [record] = store.audit_records()
    last = record.events[-1]
    assert last.kind == FAILED and last.detail["result"] == "FAILURE"


def test_transition_refuses_unknown_fields(store: OperationStore) -> None:
    op = new_op(store)
    with pytest.raises(TypeError, match="state|requester"):
        store.transition(op.id, OPEN_STATES, CANCELLED, actor="alice", requester="mallory")


def test_transition_refuses_a_move_opsbot_never_makes(store: OperationStore) -> None:
    """What the store refuses to write, ``audit --verify`` would call forged."""
    op = new_op(store)
    finish(store, op, SUCCEEDED)
    with pytest.raises(ValueError, match="never moves from succeeded to executing"):
        store.transition(op.id, {SUCCEEDED}, EXECUTING, actor="alice")
    with pytest.raises(ValueError, match="confirmed_by='bob' must be the actor"):
        store.transition(new_op(store).id, {PENDING_CONFIRMATION}, EXECUTING, actor="alice",
                         confirmed_by="bob")
    assert store.get(op.id).state == SUCCEEDED  # type: ignore[union-attr]


def test_only_one_of_many_concurrent_confirmers_wins(
    open_store: Callable[[], OperationStore],
) -> None:
    stores = [open_store(), open_store()]
    op = new_op(stores[0])

    def confirm(i: int) -> Operation | None:
        return stores[i % 2].transition(op.id, {PENDING_CONFIRMATION}, EXECUTING,
                                        actor=f"clicker-{i}", event="confirmed",
                                        confirmed_by=f"clicker-{i}")

    results = run_together(8, confirm)
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert stores[0].get(op.id).confirmed_by == winners[0].confirmed_by  # type: ignore[union-attr]
    assert kinds(stores[0], op.id).count("confirmed") == 1


def test_claim_execution_exactly_once_across_store_instances(
    open_store: Callable[[], OperationStore],
) -> None:
    replica_a, replica_b = open_store(), open_store()
    ops = [new_op(replica_a) for _ in range(3)]
    for op in ops:
        claims = run_together(6, lambda i, op=op: (replica_a, replica_b)[i % 2].claim_execution(
            op.id, actor=f"replica-{i % 2}"))
        assert claims.count(True) == 1
    assert replica_a.claim_execution(ops[0].id, actor="again") is False
    assert replica_b.claim_execution(ops[0].id, actor="again") is False


# --- leases ----------------------------------------------------------------------------


def test_a_lease_is_one_owners_until_it_runs_out(open_store: Callable[[], OperationStore]) -> None:
    replica_a, replica_b = Leases(open_store().database), Leases(open_store().database)
    first = replica_a.take("operation:x", "a", 20, now=T0)
    assert first is not None and first.previous is None and first.until == T0 + timedelta(
        seconds=20)
    assert replica_b.take("operation:x", "b", 20, now=T0 + timedelta(seconds=19)) is None
    renewed = replica_a.take("operation:x", "a", 20, now=T0 + timedelta(seconds=10))
    assert renewed is not None and renewed.previous is None and renewed.since == T0
    assert replica_b.take("operation:x", "b", 20, now=T0 + timedelta(seconds=29)) is None
    assert replica_b.holder("operation:x", now=T0 + timedelta(seconds=29)) == "a"
    taken = replica_b.take("operation:x", "b", 20, now=T0 + timedelta(seconds=31))
    assert taken is not None and taken.previous == "a" and taken.since == T0 + timedelta(
        seconds=31)
    assert replica_a.take("operation:x", "a", 20, now=T0 + timedelta(seconds=32)) is None
    assert replica_a.release("operation:x", "a") is False  # not a's to give up
    assert replica_b.release("operation:x", "b") is True
    assert replica_a.holder("operation:x", now=T0 + timedelta(seconds=33)) is None
    assert replica_a.take("operation:x", "a", 20, now=T0 + timedelta(seconds=33))


def test_one_of_many_takes_a_lease_that_ran_out(open_store: Callable[[], OperationStore]) -> None:
    stores = [Leases(open_store().database), Leases(open_store().database)]
    assert stores[0].take("poller", "dead", 5, now=T0)
    later = T0 + timedelta(seconds=60)
    for name in ("poller", "fresh"):  # one that ran out, one nobody ever held
        results = run_together(6, lambda i, name=name: stores[i % 2].take(
            name, f"replica-{i}", 20, now=later))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1, results
        assert stores[1].holder(name, now=later) == winners[0].owner


def test_an_owner_renewing_from_several_threads_keeps_its_lease(
        open_store: Callable[[], OperationStore]) -> None:
    """The watcher renews from its scan while a turn holds the same lease: both are the
    one owner, and neither may be told another replica has it."""
    leases = Leases(open_store().database)
    assert leases.take("operation:op-1", "replica-a", 20)
    for _ in range(5):
        results = run_together(6, lambda i: leases.take("operation:op-1", "replica-a", 20))
        assert all(r is not None and r.owner == "replica-a" for r in results), results


def test_leases_run_out_by_the_database_clock(open_store: Callable[[], OperationStore],
                                              db_url: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    replica_a, replica_b = Leases(open_store().database), Leases(open_store().database)
    assert replica_a.take("operation:y", "a", 20) is not None
    assert replica_b.holder("operation:y") == "a"
    if not db_url.startswith("postgresql"):
        return  # SQLite: one host, one clock
    import actions.storage._database as database_module

    class Ahead(datetime):  # replica B's clock runs a minute ahead
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
            return datetime.now(tz) + timedelta(seconds=60)

    monkeypatch.setattr(database_module, "datetime", Ahead)
    assert replica_b.take("operation:y", "b", 20) is None  # not run out for the server
    assert replica_b.holder("operation:y") == "a"


def test_update_backend_ref_merges(store: OperationStore) -> None:
    op = new_op(store)
    store.update_backend_ref(op.id, job="deploy-payments", queue_id=5811)
    updated = store.update_backend_ref(op.id, build_number=88, url="http://jenkins/job/88/")
    assert updated.backend_ref == {"job": "deploy-payments", "queue_id": 5811,
                                   "build_number": 88, "url": "http://jenkins/job/88/"}
    assert updated.state == PENDING_CONFIRMATION
    assert kinds(store, op.id).count("backend") == 2
    with pytest.raises(StoreError, match="no operation op-missing"):
        store.update_backend_ref("op-missing", job="x")


# --- open operations and expiry ---------------------------------------------------------


def test_open_for_lists_open_operations_newest_first(store: OperationStore) -> None:
    first = new_op(store, now=T0)
    second = new_op(store, now=T0 + timedelta(seconds=10), intent="run_build", risk="change",
                    parameters={"job": "checkout"})
    awaiting = new_op(store, now=T0 + timedelta(seconds=20))
    store.transition(awaiting.id, {PENDING_CONFIRMATION}, PENDING_APPROVAL, actor="alice")
    cancelled = new_op(store, now=T0 + timedelta(seconds=30))
    store.transition(cancelled.id, OPEN_STATES, CANCELLED, actor="alice")
    new_op(store, sender_id="someone-else")

    now = T0 + timedelta(seconds=60)
    assert [o.id for o in store.open_for("tg:-100:42", now=now)] == [
        awaiting.id, second.id, first.id]
    # Past the first one's expiry it is no longer open, even before expire_due runs.
    late = T0 + timedelta(seconds=305)
    assert [o.id for o in store.open_for("tg:-100:42", now=late)] == [awaiting.id, second.id]


def test_expire_due_expires_each_operation_once(open_store: Callable[[], OperationStore]) -> None:
    store, other = open_store(), open_store()
    short = new_op(store, ttl_seconds=60)
    long = new_op(store, ttl_seconds=600)
    assert not short.expired(T0 + timedelta(seconds=59))
    assert short.expired(T0 + timedelta(seconds=60))

    assert store.expire_due(now=T0 + timedelta(seconds=30)) == []
    at = T0 + timedelta(seconds=61)
    results = run_together(2, lambda i: (store, other)[i].expire_due(now=at))
    expired = [op for ops in results for op in ops]
    assert [op.id for op in expired] == [short.id]
    assert expired[0].state == EXPIRED and expired[0].finished_at == at
    assert store.get(long.id).state == PENDING_CONFIRMATION  # type: ignore[union-attr]
    assert store.expire_due(now=at) == []
    assert kinds(store, short.id) == ["requested", "expired"]


def test_executing_lists_running_operations(store: OperationStore) -> None:
    running = new_op(store)
    new_op(store)
    store.transition(running.id, OPEN_STATES, EXECUTING, actor="alice")
    assert [o.id for o in store.executing()] == [running.id]


# --- notifications ------------------------------------------------------------------------


def finish(store: OperationStore, op: Operation, state: str, *, claim: bool = True) -> None:
    store.transition(op.id, OPEN_STATES, EXECUTING, actor="alice")
    if claim:
        assert store.claim_execution(op.id, actor="action-server")
    store.transition(op.id, {EXECUTING}, state, actor=None, result=state.upper())


def test_finished_unnotified_and_mark_notified_exactly_once(
    open_store: Callable[[], OperationStore],
) -> None:
    store, other = open_store(), open_store()
    done = new_op(store)
    finish(store, done, SUCCEEDED)
    failed = new_op(store)
    finish(store, failed, FAILED)
    never_ran = new_op(store)
    finish(store, never_ran, SUCCEEDED, claim=False)
    cancelled = new_op(store)
    store.transition(cancelled.id, OPEN_STATES, CANCELLED, actor="alice")
    elsewhere = new_op(store, sender_id="teams:conv-1")
    finish(store, elsewhere, SUCCEEDED)

    assert {o.id for o in store.finished_unnotified("tg:-100:42")} == {done.id, failed.id}
    wins = run_together(6, lambda i: (store, other)[i % 2].mark_notified(done.id))
    assert wins.count(True) == 1
    assert store.get(done.id).notified_at is not None  # type: ignore[union-attr]
    assert [o.id for o in other.finished_unnotified("tg:-100:42")] == [failed.id]
    assert kinds(store, done.id).count("notified") == 1


# --- the audit log -----------------------------------------------------------------------


def test_audit_records_filters(store: OperationStore) -> None:
    by_alice = new_op(store, now=T0)
    confirmed_by_carol = new_op(store, now=T0 + timedelta(hours=1), requester="bob",
                                intent="run_build", risk="change", parameters={"job": "checkout"})
    store.transition(confirmed_by_carol.id, OPEN_STATES, EXECUTING, actor="carol",
                     confirmed_by="carol")
    approved_by_carol = new_op(store, now=T0 + timedelta(hours=2), requester="dave")
    store.transition(approved_by_carol.id, OPEN_STATES, EXECUTING, actor="carol",
                     approved_by="carol")
    new_op(store, now=T0 + timedelta(hours=3), requester="bob", intent="query_logs", risk="read",
           parameters={})
    store.audit(by_alice.id, "note", actor="alice", detail={"why": "hotfix"},
                now=T0 + timedelta(hours=4))
    store.audit(None, "policy_reloaded", actor=None)

    def ids(records: list[Any]) -> list[str]:
        return [r.operation.id for r in records]

    everything = store.audit_records()
    assert len(everything) == 4
    assert [r.operation.created_at for r in everything] == sorted(
        (r.operation.created_at for r in everything), reverse=True)
    assert ids(store.audit_records(user="carol")) == [approved_by_carol.id, confirmed_by_carol.id]
    assert ids(store.audit_records(user="alice")) == [by_alice.id]
    assert ids(store.audit_records(intent="run_build")) == [confirmed_by_carol.id]
    assert ids(store.audit_records(user="bob", intent="run_build")) == [confirmed_by_carol.id]
    assert len(store.audit_records(since=T0 + timedelta(hours=1))) == 3
    assert ids(store.audit_records(limit=2)) == ids(everything)[:2]
    assert store.audit_records(user="nobody") == []

    [alice_record] = store.audit_records(user="alice")
    assert [e.kind for e in alice_record.events] == ["requested", "note"]
    assert alice_record.events[-1].detail == {"why": "hotfix"}


def test_audit_log_is_append_only_in_the_database(store: OperationStore, db_url: str) -> None:
    new_op(store)
    engine = sa.create_engine(db_url, future=True, poolclass=NullPool)
    statements = ["UPDATE opsbot_audit SET kind = 'tampered'", "DELETE FROM opsbot_audit"]
    if engine.dialect.name == "postgresql":
        statements.append("TRUNCATE opsbot_audit")
    try:
        for statement in statements:
            with pytest.raises(sa.exc.DatabaseError, match="append-only"), \
                    engine.begin() as conn:
                conn.execute(sa.text(statement))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT kind FROM opsbot_audit")).scalars().all() == [
                "requested"]
    finally:
        engine.dispose()
    assert not any(hasattr(store, name) for name in ("delete_audit", "update_audit", "purge"))


def test_append_only_triggers_come_back_when_dropped(
    open_store: Callable[[], OperationStore], db_url: str,
) -> None:
    new_op(open_store())
    engine = sa.create_engine(db_url, future=True, poolclass=NullPool)
    postgres = engine.dialect.name == "postgresql"
    try:
        with engine.begin() as conn:
            if postgres:
                conn.execute(sa.text("DROP TRIGGER opsbot_audit_no_change ON opsbot_audit"))
            else:
                conn.execute(sa.text("DROP TRIGGER opsbot_audit_no_update"))
        assert open_store().get("op-1") is None  # a store starting up restores it
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text("UPDATE opsbot_audit SET kind = 'tampered'"))
    finally:
        engine.dispose()


def test_stores_starting_together_on_a_fresh_database(
    open_store: Callable[[], OperationStore],
) -> None:
    stores = [open_store() for _ in range(4)]
    assert run_together(4, lambda i: stores[i].get("op-1")) == [None] * 4
    assert new_op(stores[3]).state == PENDING_CONFIRMATION


def test_operations_survive_a_restart(open_store: Callable[[], OperationStore]) -> None:
    before = open_store()
    op = new_op(before)
    before.transition(op.id, OPEN_STATES, EXECUTING, actor="alice", confirmed_by="alice")
    assert before.claim_execution(op.id, actor="replica-a")
    before.update_backend_ref(op.id, job="deploy-payments", queue_id=5811)
    before.close()

    after = open_store()
    again = after.get(op.id)
    assert again is not None and again.state == EXECUTING and again.confirmed_by == "alice"
    assert again.backend_ref == {"job": "deploy-payments", "queue_id": 5811}
    assert [o.id for o in after.executing()] == [op.id]
    assert after.claim_execution(op.id, actor="replica-b") is False


# --- URLs and errors ---------------------------------------------------------------------


def test_password_is_masked_in_repr_and_errors() -> None:
    url = f"postgresql://opsbot:s3cr3t-pw@127.0.0.1:{free_port()}/opsbot"
    store = OperationStore(url)
    assert "s3cr3t-pw" not in repr(store) and "s3cr3t-pw" not in store.url_for_display
    assert store.url_for_display == f"postgresql://opsbot:***@127.0.0.1:{url.rsplit(':', 1)[1]}"
    with pytest.raises(StoreError) as caught:
        store.get("op-1")
    detail = str(caught.value.detail)
    assert "s3cr3t-pw" not in detail
    assert "opsbot:***@127.0.0.1" in detail and "OPSBOT_DB_URL" in detail
    store.close()


def test_what_a_chat_is_told_never_names_the_database(caplog: pytest.LogCaptureFixture) -> None:
    """A group's every member reads the message: the details go to the log, once."""
    port = free_port()
    store = OperationStore(f"postgresql://opsbot_user:s3cr3t-pw@127.0.0.1:{port}/payments_db")
    caplog.set_level(logging.DEBUG, logger="actions.storage._database")
    errors = []
    for _ in range(5):
        with pytest.raises(StoreError) as caught:
            store.get("op-1")
        errors.append(caught.value)
    message = str(errors[0])
    assert message.startswith("opsbot's operation store is unreachable right now")
    for secret in ("127.0.0.1", str(port), "opsbot_user", "payments_db", "s3cr3t-pw",
                   "postgresql"):
        assert secret not in message
    reference = errors[0].reference
    assert reference and f"(reference {reference})" in message
    assert {e.reference for e in errors} == {reference}  # one outage, one reference
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(logged) == 1  # the details once, not per attempt
    assert reference in logged[0].getMessage()
    assert f"opsbot_user:***@127.0.0.1:{port}/payments_db" in logged[0].getMessage()
    assert "s3cr3t-pw" not in caplog.text
    store.close()


def test_a_password_given_twice_in_the_query_still_gives_a_masked_store_error() -> None:
    port = free_port()
    store = OperationStore(f"postgresql://opsbot@127.0.0.1:{port}/opsbot"
                           "?password=first-pw&password=second-pw")
    with pytest.raises(StoreError) as caught:
        store.get("op-1")
    assert "OPSBOT_DB_URL" in str(caught.value.detail)
    for said in (str(caught.value), str(caught.value.detail)):
        assert "first-pw" not in said and "second-pw" not in said
    assert store.database._reason(RuntimeError("auth failed for first-pw and second-pw")) == (
        "auth failed for *** and ***")
    store.close()


def test_bad_url_gives_a_readable_store_error() -> None:
    with pytest.raises(StoreError, match="operation store is not set up correctly") as caught:
        OperationStore("nonsense://user:hunter2@host/db")
    assert "hunter2" not in str(caught.value) and "host" not in str(caught.value)
    assert "nonsense://user:***@host/db" in str(caught.value.detail)
    assert "OPSBOT_DB_URL" in str(caught.value.detail)


def test_unopenable_sqlite_file_gives_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    store = OperationStore(f"sqlite:///{blocker / 'opsbot.db'}")
    with pytest.raises(StoreError) as caught:
        store.get("op-1")
    assert "unable to open database file" in str(caught.value.detail)


def test_from_env(tmp_path: Path) -> None:
    state = tmp_path / "state"
    default = OperationStore.from_env({"OPSBOT_STATE_DIR": str(state)})
    assert default.url_for_display == f"sqlite:///{state.resolve() / 'opsbot.db'}"
    assert state.is_dir()
    new_op(default)
    assert (state / "opsbot.db").exists()
    default.close()
    chosen = OperationStore.from_env({"OPSBOT_DB_URL": f"sqlite:///{tmp_path / 'other.db'}",
                                      "OPSBOT_STATE_DIR": str(state)})
    assert chosen.url_for_display.endswith("other.db")


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = OperationStore(f"sqlite:///{tmp_path / 'opsbot.db'}")
    new_op(store)
    with store.database.engine.connect() as conn:  # the pragma itself
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10000
    store.close()


# --- the audit views --------------------------------------------------------------------


@pytest.fixture
def records(tmp_path: Path) -> Iterator[list[Any]]:
    store = OperationStore(f"sqlite:///{tmp_path / 'opsbot.db'}")
    op = new_op(store)
    store.transition(op.id, {PENDING_CONFIRMATION}, PENDING_APPROVAL, actor="alice",
                     confirmed_by="alice", now=T0 + timedelta(seconds=20))
    store.transition(op.id, {PENDING_APPROVAL}, EXECUTING, actor="carol", approved_by="carol",
                     now=T0 + timedelta(seconds=30))
    store.claim_execution(op.id, actor="action-server")
    store.update_backend_ref(op.id, job="deploy-payments", build_number=88)
    store.transition(op.id, {EXECUTING}, SUCCEEDED, actor=None, result="SUCCESS",
                     now=T0 + timedelta(minutes=3))
    new_op(store, intent="query_logs", risk="read", requester="bob", parameters={},
           now=T0 + timedelta(minutes=5))
    yield store.audit_records()
    store.close()


def test_format_table(records: list[Any]) -> None:
    table = format_table(records)
    lines = table.splitlines()
    for header in ("when", "operation", "intent", "requester", "parameters", "confirmed by",
                   "approved by", "state/result"):
        assert header in lines[0]
    deploy_line = next(line for line in lines if "deploy" in line)
    assert records[1].operation.id in deploy_line
    assert "service=payments version=2.4.1 environment=prod" in deploy_line
    assert "alice" in deploy_line and "carol" in deploy_line
    assert "succeeded (SUCCESS)" in deploy_line
    local = T0.astimezone().strftime("%Y-%m-%d %H:%M")
    assert deploy_line.startswith(local)
    assert len(lines) == 4  # header, rule, two operations
    assert format_table([]) == "No operations in the audit log match."


def test_format_json(records: list[Any]) -> None:
    data = json.loads(format_json(records))
    assert [d["intent"] for d in data] == ["query_logs", "deploy"]
    deploy = data[1]
    assert deploy["operation_id"] == records[1].operation.id
    assert deploy["parameters"] == PROD_DEPLOY
    assert deploy["backend"] == {"job": "deploy-payments", "build_number": 88}
    assert (deploy["confirmed_by"], deploy["approved_by"], deploy["result"]) == (
        "alice", "carol", "SUCCESS")
    assert deploy["created_at"] == "2025-03-14T09:30:00+00:00"
    assert deploy["finished_at"] == "2025-03-14T09:33:00+00:00"
    assert [e["kind"] for e in deploy["events"]] == [
        "requested", "pending_approval", "executing", "claimed", "backend", "succeeded"]
    assert set(deploy) >= {"risk", "state", "requester", "channel", "text", "confidence",
                           "confirmed_at", "approved_at", "result_detail"}
    assert format_json([]) == "[]"


@pytest.mark.parametrize(("text", "ago"), [
    ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)), ("7d", timedelta(days=7)),
    (" 45s ", timedelta(seconds=45)), ("1w", timedelta(weeks=1)),
])
def test_parse_since_durations(text: str, ago: timedelta) -> None:
    assert parse_since(text, now=T0) == T0 - ago


def test_parse_since_iso() -> None:
    assert parse_since("2025-03-01") == datetime(2025, 3, 1).astimezone().astimezone(UTC)
    assert parse_since("2025-03-01T14:30:00+02:00") == datetime(2025, 3, 1, 12, 30,
                                                                tzinfo=UTC)
    assert parse_since("2025-03-01T14:30Z") == datetime(2025, 3, 1, 14, 30, tzinfo=UTC)
    assert parse_since("2025-03-01T14:30").tzinfo is not None


@pytest.mark.parametrize("text", ["yesterday", "30", "2 hours ago", "", "2025-13-01"])
def test_parse_since_rejects_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="30m, 2h or 7d"):
        parse_since(text)
