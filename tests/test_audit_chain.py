"""The audit log's hash chain: tampering with raw SQL is caught by ``opsbot audit --verify``.

Each test plays someone with write access to the database who drops the append-only
triggers and edits, deletes or inserts rows; on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from actions.guard import (
    EXECUTING,
    OPEN_STATES,
    PENDING_APPROVAL,
    PENDING_CONFIRMATION,
    SUCCEEDED,
    OperationStore,
    StoreError,
)
from actions.guard._audit_chain import GENESIS, chain_hash
from opsbot.cli import main

# db_url is the store tests' fixture (SQLite and PostgreSQL), used through url below.
from tests.test_guard_store import T0, db_url, new_op, run_together  # noqa: F401


@pytest.fixture
def url(db_url: str) -> str:  # noqa: F811 - the fixture imported above
    """The test database: a SQLite file, or a PostgreSQL schema of its own."""
    return db_url


@pytest.fixture
def engine(url: str) -> Iterator[sa.engine.Engine]:
    """Raw SQL on the store's database, as an intruder has it."""
    raw = sa.create_engine(url, future=True, poolclass=NullPool)
    yield raw
    raw.dispose()


@pytest.fixture
def open_store(url: str) -> Iterator[Callable[..., OperationStore]]:
    stores: list[OperationStore] = []

    def open_(**options: Any) -> OperationStore:
        stores.append(OperationStore(url, **options))
        return stores[-1]

    yield open_
    for store in stores:
        store.close()


def busy_log(store: OperationStore) -> str:
    """A few operations through their life: 9 audit rows. Returns the deployed one's id."""
    op = new_op(store)
    store.transition(op.id, OPEN_STATES, EXECUTING, actor="alice", confirmed_by="alice",
                     confirmed_at=T0 + timedelta(seconds=5), now=T0 + timedelta(seconds=5))
    assert store.claim_execution(op.id, actor="replica-a", now=T0 + timedelta(seconds=6))
    store.update_backend_ref(op.id, job="deploy-payments", queue_id=5811)
    store.transition(op.id, {EXECUTING}, SUCCEEDED, actor="jenkins", event="finished",
                     result="SUCCESS", now=T0 + timedelta(minutes=2))
    store.mark_notified(op.id, now=T0 + timedelta(minutes=2, seconds=1))
    other = new_op(store, requester="bob", text="deploy search 1.0 to staging")
    store.audit(other.id, "note", actor="bob", detail={"why": "hotfix"})
    store.audit(None, "taught", actor="carol", channel="cli", detail={"text": "ship it"})
    return op.id


def tamper(engine: sa.engine.Engine, *statements: str, **params: Any) -> None:
    """Drop the append-only triggers, then run ``statements`` (a store restores the triggers)."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("DROP TRIGGER IF EXISTS opsbot_audit_no_change ON opsbot_audit"))
            conn.execute(sa.text("DROP TRIGGER IF EXISTS opsbot_audit_no_truncate ON opsbot_audit"))
        else:
            conn.execute(sa.text("DROP TRIGGER IF EXISTS opsbot_audit_no_update"))
            conn.execute(sa.text("DROP TRIGGER IF EXISTS opsbot_audit_no_delete"))
        for statement in statements:
            conn.execute(sa.text(statement), params)


def forge(engine: sa.engine.Engine, operation_id: str | None, *, kind: str, actor: str | None,
          changes: dict[str, Any] | None, detail: dict[str, Any] | None = None) -> int:
    """Append a row with a valid chain hash, with plain SQL; its id."""
    with engine.connect() as conn:
        head = conn.execute(sa.text(
            "SELECT hash FROM opsbot_audit ORDER BY id DESC LIMIT 1")).scalar_one()
    at = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    row = {"operation_id": operation_id, "at": at, "kind": kind, "actor": actor,
           "channel": "telegram", "detail": detail or {}, "changes": changes, "prev_hash": head}
    row["hash"] = chain_hash(head, row)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO opsbot_audit (operation_id, at, kind, actor, channel, detail, changes, "
            "prev_hash, hash) VALUES (:operation_id, :at, :kind, :actor, :channel, :detail, "
            ":changes, :prev_hash, :hash)"),
            {**row, "at": at.replace(tzinfo=None), "detail": json.dumps(row["detail"]),
             "changes": json.dumps(changes) if changes is not None else None})
        return int(conn.execute(sa.text("SELECT max(id) FROM opsbot_audit")).scalar_one())


def audit_ids(engine: sa.engine.Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT id FROM opsbot_audit ORDER BY id")).scalars())


def verify_cli(url: str, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str], **env: str) -> tuple[int, str, str]:
    monkeypatch.setenv("OPSBOT_DB_URL", url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["audit", "--verify"])
    out, err = capsys.readouterr()
    return code, out, err


# --- an intact log --------------------------------------------------------------------


def test_a_clean_log_verifies(open_store: Callable[..., OperationStore], url: str,
                              engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store()
    assert store.verify_audit().ok and store.verify_audit().rows == 0
    busy_log(store)
    found = store.verify_audit()
    assert found.ok and found.rows == 9 and found.before_chain == 0
    with engine.connect() as conn:
        first, last = conn.execute(sa.text(
            "SELECT prev_hash, hash FROM opsbot_audit ORDER BY id")).all()[::8]
    assert first.prev_hash == GENESIS and found.head == last.hash

    code, out, err = verify_cli(url, monkeypatch, capsys)
    assert code == 0 and err == ""
    assert out.startswith("OK: 9 audit rows in the hash chain.") and last.hash in out


def test_each_row_chains_from_the_one_before(open_store: Callable[..., OperationStore],
                                            engine: sa.engine.Engine) -> None:
    busy_log(open_store())
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text(
            "SELECT * FROM opsbot_audit ORDER BY id"))]
    previous = GENESIS
    for row in rows:
        row["detail"] = json.loads(row["detail"])
        row["changes"] = json.loads(row["changes"]) if row["changes"] else None
        assert row["prev_hash"] == previous
        assert row["hash"] == chain_hash(previous, row)
        previous = row["hash"]


def test_concurrent_writers_never_fork_the_chain(
    open_store: Callable[..., OperationStore],
) -> None:
    stores = [open_store() for _ in range(4)]
    stores[0].audit(None, "start", actor=None)

    def append(i: int) -> None:
        for n in range(10):
            if n % 2:
                stores[i].audit(None, "note", actor=f"writer-{i}", detail={"n": n})
            else:
                new_op(stores[i], requester=f"writer-{i}")

    run_together(4, append)
    found = stores[0].verify_audit()
    assert found.ok, found.problem
    assert found.rows == 41


# --- tampering -------------------------------------------------------------------------


def test_an_edited_row_is_named(open_store: Callable[..., OperationStore], url: str,
                                engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    busy_log(open_store())
    ids = audit_ids(engine)
    tamper(engine, "UPDATE opsbot_audit SET actor = 'mallory' WHERE id = :id", id=ids[1])

    found = open_store().verify_audit()
    assert not found.ok and found.row_id == ids[1]
    assert f"row {ids[1]} was changed" in str(found.problem)

    code, out, err = verify_cli(url, monkeypatch, capsys)
    assert code == 1 and out == ""
    assert f"row {ids[1]} was changed" in err and "tampered" in err


def test_an_edit_with_the_hash_recomputed_breaks_the_next_link(
    open_store: Callable[..., OperationStore], engine: sa.engine.Engine,
) -> None:
    busy_log(open_store())
    ids = audit_ids(engine)
    with engine.connect() as conn:
        row = dict(conn.execute(sa.text("SELECT * FROM opsbot_audit WHERE id = :id"),
                                {"id": ids[4]}).one()._mapping)
    row["detail"] = {"result": "FAILURE"}
    row["changes"] = json.loads(row["changes"] or "null")
    forged = chain_hash(row["prev_hash"], row)
    tamper(engine, "UPDATE opsbot_audit SET detail = :detail, hash = :hash WHERE id = :id",
           detail=json.dumps(row["detail"]), hash=forged, id=ids[4])

    found = open_store().verify_audit()
    assert not found.ok and found.row_id == ids[5]
    assert f"row {ids[5]} does not chain from row {ids[4]}" in str(found.problem)


def test_a_deleted_row_is_caught(open_store: Callable[..., OperationStore], url: str,
                                 engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    busy_log(open_store())
    ids = audit_ids(engine)
    tamper(engine, "DELETE FROM opsbot_audit WHERE id = :id", id=ids[3])

    found = open_store().verify_audit()
    assert not found.ok and found.row_id == ids[4]
    assert f"does not chain from row {ids[2]}" in str(found.problem)
    assert f"rows {ids[3]}-{ids[3]} are missing" in str(found.problem)

    code, _, err = verify_cli(url, monkeypatch, capsys)
    assert code == 1 and f"row {ids[4]} does not chain from row {ids[2]}" in err


def test_deleting_the_first_rows_is_caught(open_store: Callable[..., OperationStore],
                                           engine: sa.engine.Engine) -> None:
    busy_log(open_store())
    ids = audit_ids(engine)
    tamper(engine, "DELETE FROM opsbot_audit WHERE id <= :id", id=ids[1])
    found = open_store().verify_audit()
    assert found.row_id == ids[2] and "does not start from the genesis" in str(found.problem)


def test_a_forged_row_is_caught(open_store: Callable[..., OperationStore], url: str,
                                engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    busy_log(open_store())
    head = audit_ids(engine)[-1]
    tamper(engine,
           "INSERT INTO opsbot_audit (id, operation_id, at, kind, actor, channel, detail, "
           "prev_hash, hash) VALUES (:id, NULL, :at, 'approved', 'carol', 'cli', '{}', "
           ":prev, :hash)",
           id=head + 1, at=datetime(2025, 3, 14, 10, 0), prev="f" * 64, hash="e" * 64)
    found = open_store().verify_audit()
    assert found.row_id == head + 1 and "changed (or forged)" in str(found.problem)
    code, _, err = verify_cli(url, monkeypatch, capsys)
    assert code == 1 and f"row {head + 1}" in err


def test_a_row_inserted_between_others_is_named(open_store: Callable[..., OperationStore],
                                                engine: sa.engine.Engine) -> None:
    """The intruder knows the hash: renumbers rows to make room and forges a valid-looking one."""
    busy_log(open_store())
    ids = audit_ids(engine)
    with engine.connect() as conn:
        before = dict(conn.execute(sa.text("SELECT * FROM opsbot_audit WHERE id = :id"),
                                   {"id": ids[2]}).one()._mapping)
    forged = {"operation_id": None, "at": datetime(2025, 3, 14, 9, 31, tzinfo=UTC),
              "kind": "approved", "actor": "carol", "channel": "cli", "detail": {},
              "changes": None, "prev_hash": before["hash"]}
    forged["hash"] = chain_hash(before["hash"], forged)
    tamper(engine,
           "DROP INDEX ux_opsbot_audit_prev_hash",  # one successor per row, else
           "UPDATE opsbot_audit SET id = -id WHERE id > :id",
           "UPDATE opsbot_audit SET id = 1 - id WHERE id < 0",
           "INSERT INTO opsbot_audit (id, operation_id, at, kind, actor, channel, detail, "
           "prev_hash, hash) VALUES (:new, NULL, :at, 'approved', 'carol', 'cli', '{}', "
           ":prev, :hash)",
           id=ids[2], new=ids[2] + 1, at=datetime(2025, 3, 14, 9, 31), prev=before["hash"],
           hash=forged["hash"])
    found = open_store().verify_audit()
    assert found.row_id == ids[2] + 1
    assert f"row {ids[2] + 1} was inserted" in str(found.problem)


def test_editing_the_operations_table_is_caught(open_store: Callable[..., OperationStore],
                                                engine: sa.engine.Engine) -> None:
    """What ``opsbot audit`` shows comes from the operations table: the chain covers it."""
    deployed = busy_log(open_store())
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE opsbot_operations SET confirmed_by = 'bob' WHERE id = :id"),
                     {"id": deployed})
    found = open_store().verify_audit()
    assert not found.ok
    assert (f"operation {deployed} was changed in the operations table: its confirmed_by is "
            "'bob', the audit chain says 'alice'") in str(found.problem)


def test_deleting_or_inventing_an_operation_is_caught(
    open_store: Callable[..., OperationStore], engine: sa.engine.Engine,
) -> None:
    deployed = busy_log(open_store())
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM opsbot_executions WHERE operation_id = :id"),
                     {"id": deployed})
        conn.execute(sa.text("DELETE FROM opsbot_operations WHERE id = :id"), {"id": deployed})
    found = open_store().verify_audit()
    assert f"operation {deployed} (audit row" in str(found.problem)
    assert "missing from the operations table" in str(found.problem)

    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO opsbot_operations SELECT 'op-forged00000' AS id, intent, risk, "
            "requester, sender_id, channel, text, confidence, parameters, digest, state, "
            "created_at, expires_at, approval_roles, confirmed_by, confirmed_at, approved_by, "
            "approved_at, backend_ref, result, result_detail, finished_at, notified_at, reply_to "
            "FROM opsbot_operations"))
    found = open_store().verify_audit()
    assert "missing from the operations table" in str(found.problem)  # still the first
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE opsbot_operations SET id = :id WHERE id = 'op-forged00000'"),
                     {"id": deployed})
    store = open_store()
    found = store.verify_audit()
    assert "was changed in the operations table" in str(found.problem)


# --- a log from before the chain ------------------------------------------------------


def old_audit_log(engine: sa.engine.Engine, rows: int) -> None:
    """The audit table as opsbot made it before the chain, with ``rows`` rows in it."""
    old = sa.MetaData()
    table = sa.Table(
        "opsbot_audit", old,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("operation_id", sa.String(32), index=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255)),
        sa.Column("channel", sa.String(64)),
        sa.Column("detail", sa.Text, nullable=False),
    )
    old.create_all(engine)
    with engine.begin() as conn:
        for n in range(rows):
            conn.execute(table.insert().values(
                operation_id=None, at=datetime(2024, 1, 1, 12, n), kind="taught",
                actor="alice", channel="cli", detail=json.dumps({"n": n})))


def test_an_old_log_is_sealed_and_the_chain_starts_after_it(
    open_store: Callable[..., OperationStore], engine: sa.engine.Engine,
) -> None:
    old_audit_log(engine, 3)
    store = open_store()
    busy_log(store)
    found = store.verify_audit()
    assert found.ok, found.problem
    assert found.before_chain == 3 and found.rows == 10  # the seal, then busy_log's 9
    with engine.connect() as conn:
        seal = conn.execute(sa.text("SELECT * FROM opsbot_audit WHERE id = 4")).one()
    assert seal.kind == "chain_started" and seal.prev_hash == GENESIS
    assert json.loads(seal.detail)["rows_before"] == 3

    assert open_store().verify_audit().ok  # a second start neither seals again nor breaks it
    tamper(engine, "UPDATE opsbot_audit SET actor = 'mallory' WHERE id = 2")
    found = open_store().verify_audit()
    assert found.row_id == 4 and "rows before the chain no longer match" in str(found.problem)


def test_dropping_the_hash_columns_of_a_sealed_log_is_not_sealed_again(
    open_store: Callable[..., OperationStore], engine: sa.engine.Engine,
) -> None:
    old_audit_log(engine, 3)
    busy_log(open_store())  # sealed: a chain_started row, then the chain
    statements = ["DROP INDEX IF EXISTS ux_opsbot_audit_prev_hash",
                  "UPDATE opsbot_audit SET actor = 'mallory' WHERE id = 6"]
    statements += [f"ALTER TABLE opsbot_audit DROP COLUMN {name}"
                   for name in ("hash", "prev_hash", "changes")]
    tamper(engine, *statements)
    with pytest.raises(StoreError, match="audit log failed its integrity check") as caught:
        open_store().audit(None, "note", actor="alice")  # the schema is checked on first use
    assert "hash columns were removed after its hash chain" in str(caught.value.detail)


def test_removing_every_hash_does_not_pass_for_an_old_log(
    open_store: Callable[..., OperationStore], engine: sa.engine.Engine,
) -> None:
    busy_log(open_store())
    tamper(engine, "UPDATE opsbot_audit SET prev_hash = NULL, hash = NULL")
    found = open_store().verify_audit()
    assert not found.ok and "no hash and no 'chain_started' row seals them" in str(found.problem)


# --- the copy in OPSBOT_AUDIT_FILE -----------------------------------------------------


def test_audit_file_gets_every_row_and_catches_a_rewritten_chain(
    open_store: Callable[..., OperationStore], url: str, tmp_path: Path,
    engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    copy = tmp_path / "audit.jsonl"
    store = open_store(audit_file=copy)
    busy_log(store)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in copy.read_text(encoding="utf-8").splitlines()]
    with engine.connect() as conn:
        hashes = conn.execute(sa.text("SELECT id, hash FROM opsbot_audit ORDER BY id")).all()
    assert [(line["id"], line["hash"]) for line in lines] == [tuple(h) for h in hashes]
    assert lines[0]["kind"] == "requested" and lines[0]["prev_hash"] == GENESIS

    code, out, _ = verify_cli(url, monkeypatch, capsys, OPSBOT_AUDIT_FILE=str(copy))
    assert code == 0 and "9 checked against OPSBOT_AUDIT_FILE" in out

    # The last row deleted: the chain alone cannot tell, its copy can.
    last = hashes[-1].id
    tamper(engine, "DELETE FROM opsbot_audit WHERE id = :id", id=last)
    assert open_store().verify_audit().ok
    found = open_store(audit_file=copy).verify_audit()
    assert found.row_id == last and "in OPSBOT_AUDIT_FILE but not in the database" in str(
        found.problem)


def test_a_transaction_that_rolls_back_ships_nothing(
    open_store: Callable[..., OperationStore], tmp_path: Path,
) -> None:
    copy = tmp_path / "audit.jsonl"
    store = open_store(audit_file=copy)
    op = new_op(store)
    assert store.claim_execution(op.id, actor="a")
    assert not store.claim_execution(op.id, actor="b")  # its transaction rolls back
    assert len(copy.read_text(encoding="utf-8").splitlines()) == 2  # requested, claimed once


def test_audit_file_in_a_missing_directory_fails_at_start(tmp_path: Path) -> None:

    with pytest.raises(StoreError) as caught:
        OperationStore.from_env({"OPSBOT_STATE_DIR": str(tmp_path),
                                 "OPSBOT_AUDIT_FILE": str(tmp_path / "no" / "audit.jsonl")})
    assert "OPSBOT_AUDIT_FILE" in str(caught.value.detail)
    assert "directory does not exist" in str(caught.value.detail)


# --- rows forged with a valid hash: the replay ---------------------------------------------
# Each sets an operation up, appends a row that chains (plain SQL, the hash computed) and
# makes the operations table match it: the chain holds, the replay names the row.


def _pending(store: OperationStore, roles: tuple[str, ...] = ()) -> str:
    return new_op(store, requester="bob", approval_roles=roles).id


def _awaiting_approval(store: OperationStore) -> str:
    op_id = _pending(store, ("release-manager",))
    store.transition(op_id, {PENDING_CONFIRMATION}, PENDING_APPROVAL, actor="bob",
                     event="confirmed", confirmed_by="bob")
    return op_id


def _done(store: OperationStore) -> str:
    op_id = _pending(store)
    store.transition(op_id, {PENDING_CONFIRMATION}, EXECUTING, actor="bob", event="confirmed",
                     confirmed_by="bob")
    store.transition(op_id, {EXECUTING}, SUCCEEDED, actor="jenkins", result="SUCCESS")
    return op_id


@pytest.mark.parametrize(("setup", "actor", "changes", "named"), [
    (_pending, "alice", {"state": EXECUTING, "confirmed_by": "alice"},
     "which 'bob' asked for; only the requester confirms"),
    (_awaiting_approval, "bob", {"state": EXECUTING, "approved_by": "bob"},
     "an approver is a second person"),
    (_awaiting_approval, "carol", {"state": EXECUTING, "approved_by": "dave"},
     "in operation {op}'s approved_by, but its actor is 'carol'"),
    (lambda store: _pending(store, ("release-manager",)), "bob",
     {"state": EXECUTING, "confirmed_by": "bob"}, "on its requester's confirmation alone"),
    (_done, "alice", {"confirmed_by": "alice"}, "without moving its state"),
    (_done, "jenkins", {"state": EXECUTING}, "from succeeded to executing, which opsbot never"),
    (_done, "alice", {"requester": "alice", "text": "deploy payments 2.4.1 to staging"},
     "rewrites operation {op}'s requester, text, which only its first row"),
    (_pending, "bob", {"state": EXECUTING}, "without saying who did (confirmed_by is not set)"),
], ids=["confirmed-by-another", "approved-by-requester", "approver-not-actor",
        "approval-skipped", "confirmer-rewritten", "state-revived", "request-rewritten",
        "confirmer-missing"])
def test_a_forged_change_is_named_without_the_file(
    open_store: Callable[..., OperationStore], engine: sa.engine.Engine,
    setup: Callable[[OperationStore], str], actor: str, changes: dict[str, Any], named: str,
) -> None:
    store = open_store()
    busy_log(store)
    op_id = setup(store)
    assert store.verify_audit().ok
    forged = forge(engine, op_id, kind="confirmed", actor=actor, changes=changes)
    sets = ", ".join(f"{column} = :{column}" for column in changes)
    with engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE opsbot_operations SET {sets} WHERE id = :id"),
                     {**changes, "id": op_id})
    found = open_store().verify_audit()
    assert found.row_id == forged, found.problem
    assert named.format(op=op_id) in str(found.problem)


def test_a_forged_operation_must_be_created_by_its_requester(
    open_store: Callable[..., OperationStore], engine: sa.engine.Engine,
) -> None:
    store = open_store()
    busy_log(store)
    with engine.connect() as conn:
        created = json.loads(conn.execute(sa.text(
            "SELECT changes FROM opsbot_audit WHERE kind = 'requested' ORDER BY id LIMIT 1"
        )).scalar_one())
    values = {**created, "id": "op-forged00000", "requester": "bob"}
    forged = forge(engine, "op-forged00000", kind="requested", actor="alice", changes=values)
    found = open_store().verify_audit()
    assert found.row_id == forged
    assert "for 'bob' but its actor is 'alice'" in str(found.problem)
