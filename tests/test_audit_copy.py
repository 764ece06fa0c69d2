"""``OPSBOT_AUDIT_FILE``: each audit row is copied there before it commits, and
``opsbot audit --verify`` checks the database against the file both ways.

The intruder here can write the database (plain SQL: the table takes INSERTs) and
compute the chain's hashes, but cannot reach the file; on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event as sa_event

from actions.guard import (
    EXECUTING,
    PENDING_APPROVAL,
    PENDING_CONFIRMATION,
    SUCCEEDED,
    OperationStore,
    StoreError,
)
from tests import test_audit_chain as chain
from tests.conftest import ROOT
from tests.test_audit_chain import busy_log, forge, verify_cli
from tests.test_guard_store import T0, new_op, run_together

# The chain tests' fixtures: a SQLite file or a PostgreSQL schema, stores, raw SQL on it.
db_url, url, engine, open_store = chain.db_url, chain.url, chain.engine, chain.open_store

LATER = T0 + timedelta(hours=1)


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return tmp_path / "audit.jsonl"


def bobs_prod_deploy(store: OperationStore) -> str:
    """Bob's prod deploy through its rows (7): confirmed by bob, approved by carol, run."""
    op = new_op(store, requester="bob", sender_id="tg:-100:7", now=LATER,
                approval_roles=("release-manager",))
    at = [LATER + timedelta(seconds=10 * n) for n in range(6)]
    store.transition(op.id, {PENDING_CONFIRMATION}, PENDING_APPROVAL, actor="bob",
                     channel="telegram", event="confirmed", confirmed_by="bob",
                     confirmed_at=at[1], now=at[1])
    store.transition(op.id, {PENDING_APPROVAL}, EXECUTING, actor="carol", channel="telegram",
                     event="approved", approved_by="carol", approved_at=at[2], now=at[2])
    assert store.claim_execution(op.id, actor="replica-a", now=at[3])
    store.update_backend_ref(op.id, job="deploy-payments", queue_id=7)
    store.transition(op.id, {EXECUTING}, SUCCEEDED, actor="jenkins", event="finished",
                     result="SUCCESS", now=at[4])
    assert store.mark_notified(op.id, now=at[5])
    return op.id


def copied(copy: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in copy.read_text(encoding="utf-8").splitlines()]


# --- the attack ------------------------------------------------------------------------


def test_a_row_inserted_to_rewrite_bobs_deploy_is_named(
    open_store: Callable[..., OperationStore], url: str, copy: Path,
    engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = open_store(audit_file=copy)
    busy_log(store)
    deploy = bobs_prod_deploy(store)
    assert len(copied(copy)) == 16
    code, out, _ = verify_cli(url, monkeypatch, capsys, OPSBOT_AUDIT_FILE=str(copy))
    assert code == 0 and "16 checked against OPSBOT_AUDIT_FILE, from row 1" in out

    # Requested and confirmed by alice, says the forged row; the table is made to match.
    forged = forge(engine, deploy, kind="requested", actor="alice",
                   changes={"requester": "alice", "confirmed_by": "alice"})
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE opsbot_operations SET requester = 'alice', "
                             "confirmed_by = 'alice' WHERE id = :id"), {"id": deploy})
    [shown] = [r for r in store.audit_records() if r.operation.id == deploy]
    assert (shown.operation.requester, shown.operation.confirmed_by) == ("alice", "alice")

    found = open_store(audit_file=copy).verify_audit()
    assert not found.ok and found.row_id == forged
    assert f"row {forged} rewrites operation {deploy}'s requester" in str(found.problem)
    assert "not in OPSBOT_AUDIT_FILE either" in str(found.problem)
    code, out, err = verify_cli(url, monkeypatch, capsys, OPSBOT_AUDIT_FILE=str(copy))
    assert code == 1 and out == "" and f"row {forged} " in err
    # Without the file, the replay alone names it.
    assert open_store().verify_audit().row_id == forged

    # More rows after it: the file has a gap at its id, and it is still named.
    new_op(store, requester="dave", text="deploy search 1.2 to staging")
    store.audit(None, "taught", actor="carol", detail={"text": "ship it"})
    ids = [line["id"] for line in copied(copy)]
    assert forged not in ids and max(ids) > forged
    found = open_store(audit_file=copy).verify_audit()
    assert found.row_id == forged and "rewrites" in str(found.problem)
    code, _, err = verify_cli(url, monkeypatch, capsys, OPSBOT_AUDIT_FILE=str(copy))
    assert code == 1 and f"row {forged} " in err


def test_an_inserted_row_that_replays_cleanly_is_caught_by_the_file(
    open_store: Callable[..., OperationStore], copy: Path, engine: sa.engine.Engine,
) -> None:
    """A note with no changes breaks no rule of the replay: only the file can tell."""
    store = open_store(audit_file=copy)
    busy_log(store)
    forged = forge(engine, None, kind="taught", actor="alice", changes=None,
                   detail={"text": "deploy everything to prod"})
    new_op(store)
    found = open_store(audit_file=copy).verify_audit()
    assert found.row_id == forged
    assert (f"row {forged} is in the database but not in OPSBOT_AUDIT_FILE"
            in str(found.problem))
    assert open_store().verify_audit().ok  # the chain alone cannot see it


# --- writing the copy --------------------------------------------------------------------


def test_the_copy_is_made_0600_when_the_store_opens(open_store: Callable[..., OperationStore],
                                                    copy: Path) -> None:
    open_store(audit_file=copy)
    assert copy.read_bytes() == b"" and stat.S_IMODE(copy.stat().st_mode) == 0o600


@pytest.mark.parametrize("where", ["commit", "after the audit row"])
def test_rows_of_a_transaction_that_fails_are_voided(
    open_store: Callable[..., OperationStore], copy: Path, where: str,
) -> None:
    store = open_store(audit_file=copy)
    op = new_op(store)
    armed = {"on": True, "audited": False}

    def fail_commit(_conn: Any) -> None:
        if armed["on"]:
            raise sa.exc.OperationalError("COMMIT", {}, Exception("server closed the connection"))

    def fail_after_audit(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if not armed["on"]:
            return
        if statement.startswith("INSERT INTO opsbot_audit"):
            armed["audited"] = True
        elif armed["audited"]:
            raise sa.exc.OperationalError(statement, {}, Exception("server closed the connection"))

    if where == "commit":
        sa_event.listen(store.database.engine, "commit", fail_commit)
    else:
        sa_event.listen(store.database.engine, "before_cursor_execute", fail_after_audit)
    with pytest.raises(StoreError):
        store.transition(op.id, {PENDING_CONFIRMATION}, EXECUTING, actor="alice",
                         event="confirmed", confirmed_by="alice")
    armed["on"] = False
    lines = copied(copy)
    assert len(lines) == 3 and lines[1]["kind"] == "confirmed"
    assert lines[2]["void"] == [[lines[1]["id"], lines[1]["hash"]]]
    got = store.get(op.id)
    assert got is not None and got.state == PENDING_CONFIRMATION  # rolled back
    assert store.verify_audit().ok, store.verify_audit().problem

    # SQLite gives the voided id to the next row; PostgreSQL skips it. Either way: OK.
    store.transition(op.id, {PENDING_CONFIRMATION}, EXECUTING, actor="alice",
                     event="confirmed", confirmed_by="alice")
    found = open_store(audit_file=copy).verify_audit()
    assert found.ok, found.problem
    assert found.copies == 2


def test_an_audited_action_that_cannot_be_copied_does_not_happen(
    open_store: Callable[..., OperationStore], tmp_path: Path, engine: sa.engine.Engine,
) -> None:
    unwritable = tmp_path / "audit.jsonl"
    unwritable.mkdir()  # as good as a full disk or a read-only file, also for root
    store = open_store(audit_file=unwritable)
    with pytest.raises(StoreError) as caught:
        new_op(store)
    message, detail = str(caught.value), str(caught.value.detail)
    assert message.startswith("opsbot's audit log copy cannot be written right now")
    assert str(tmp_path) not in message and caught.value.reference in message
    assert f"OPSBOT_AUDIT_FILE {unwritable}" in detail and "rolled back" in detail
    with engine.connect() as conn:  # fail closed: nothing recorded, so nothing ran
        assert conn.execute(sa.text("SELECT count(*) FROM opsbot_operations")).scalar() == 0
        assert conn.execute(sa.text("SELECT count(*) FROM opsbot_audit")).scalar() == 0


# --- what --verify reports ---------------------------------------------------------------

_CRASH = """
import os, sys
from sqlalchemy import event
from actions.guard import OperationStore

store = OperationStore(sys.argv[1], audit_file=sys.argv[2])
store.audit(None, "note", actor="alice", detail={"n": 1})
event.listen(store.database.engine, "commit", lambda conn: os._exit(3))  # killed before the commit
store.audit(None, "note", actor="alice", detail={"n": 2})
"""


def test_a_row_copied_by_a_process_that_died_before_its_commit_is_reported(
    open_store: Callable[..., OperationStore], url: str, copy: Path,
) -> None:
    died = subprocess.run([sys.executable, "-c", _CRASH, url, str(copy)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert died.returncode == 3, died.stderr
    orphan = copied(copy)[-1]
    assert orphan["detail"] == {"n": 2}
    found = open_store(audit_file=copy).verify_audit()
    assert found.row_id == orphan["id"]
    assert (f"row {orphan['id']} (note, at {orphan['at']}) is in OPSBOT_AUDIT_FILE but not in the "
            "database. Either it was deleted from the database, or opsbot stopped") in str(
        found.problem)
    store = open_store(audit_file=copy)  # opsbot carries on: SQLite reuses the id
    new_op(store)
    assert open_store(audit_file=copy).verify_audit().row_id == orphan["id"]


def test_a_deleted_row_that_the_next_one_chains_from_is_called_deleted(
    open_store: Callable[..., OperationStore], copy: Path, engine: sa.engine.Engine,
) -> None:
    busy_log(open_store(audit_file=copy))
    ids = chain.audit_ids(engine)
    chain.tamper(engine, "DELETE FROM opsbot_audit WHERE id = :id", id=ids[3])
    found = open_store(audit_file=copy).verify_audit()
    assert found.row_id == ids[3]
    assert (f"is in OPSBOT_AUDIT_FILE but not in the database, and row {ids[4]} chains from "
            "it: it was deleted.") in str(found.problem)


def test_a_missing_copy_is_reported(open_store: Callable[..., OperationStore], url: str,
                                    copy: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(audit_file=copy)
    busy_log(store)
    copy.unlink()
    found = store.verify_audit()  # gone while this store was open
    assert not found.ok and "OPSBOT_AUDIT_FILE does not exist" in str(found.problem)
    code, _, err = verify_cli(url, monkeypatch, capsys, OPSBOT_AUDIT_FILE=str(copy))
    assert code == 1
    assert "OPSBOT_AUDIT_FILE did not exist when this check opened the store" in err
    assert "deleted or moved" in err


def test_a_copy_that_starts_later_is_checked_from_its_first_row(
    open_store: Callable[..., OperationStore], url: str, copy: Path,
    engine: sa.engine.Engine, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    busy_log(open_store())  # 9 rows before OPSBOT_AUDIT_FILE was set
    store = open_store(audit_file=copy)
    code, out, _ = verify_cli(url, monkeypatch, capsys, OPSBOT_AUDIT_FILE=str(copy))
    assert code == 0 and "OPSBOT_AUDIT_FILE has no rows yet" in out
    bobs_prod_deploy(store)
    code, out, _ = verify_cli(url, monkeypatch, capsys, OPSBOT_AUDIT_FILE=str(copy))
    assert code == 0, out
    assert ("7 checked against OPSBOT_AUDIT_FILE, from row 10 (its first row: the 9 rows "
            "before it, written before it was set or rotated away, are vouched for by the hash "
            "chain alone)") in out

    copy.rename(copy.with_suffix(".1"))  # rotated: the next row starts a new file
    new_op(store)
    found = open_store(audit_file=copy).verify_audit()
    assert found.ok and (found.copies, found.copies_from, found.uncopied) == (1, 17, 16)
    forged = forge(engine, None, kind="note", actor="mallory", changes=None)
    assert open_store(audit_file=copy).verify_audit().row_id == forged


def test_replicas_copies_are_checked_together(
    open_store: Callable[..., OperationStore], url: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Replicas on two hosts: each copies the rows it writes; --verify takes both files."""
    mine, theirs = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    here, there = open_store(audit_file=mine), open_store(audit_file=theirs)
    new_op(here)
    other = new_op(there, requester="bob")
    here.audit(other.id, "note", actor="bob")
    found = here.verify_audit()
    assert found.row_id == 2 and "not in OPSBOT_AUDIT_FILE" in str(found.problem)
    assert here.verify_audit([theirs]).ok
    code, out, _ = verify_cli(url, monkeypatch, capsys, OPSBOT_AUDIT_FILE=str(mine))
    assert code == 1
    from opsbot.cli import main

    assert main(["audit", "--verify", "--copy", str(theirs)]) == 0
    out = capsys.readouterr().out
    assert f"3 checked against the copies (OPSBOT_AUDIT_FILE, {theirs}), from row 1" in out


def test_verify_while_replicas_write_sees_no_tampering(
    open_store: Callable[..., OperationStore], copy: Path,
) -> None:
    """A row is copied before its commit: --verify must not see one between the two."""
    writers = [open_store(audit_file=copy) for _ in range(3)]
    checker = open_store(audit_file=copy)
    problems: list[str] = []
    done = threading.Event()

    def check() -> None:
        while not done.is_set():
            found = checker.verify_audit()
            if not found.ok:
                problems.append(str(found.problem))

    watcher = threading.Thread(target=check)
    watcher.start()
    try:
        def write(i: int) -> None:
            for n in range(8):
                op = new_op(writers[i], requester=f"writer-{i}")
                writers[i].transition(op.id, {PENDING_CONFIRMATION}, EXECUTING,
                                      actor=f"writer-{i}", event="confirmed",
                                      confirmed_by=f"writer-{i}")
                if n % 3 == 0:
                    writers[i].audit(None, "note", actor=f"writer-{i}")

        run_together(3, write)
    finally:
        done.set()
        watcher.join(timeout=60)
    assert problems == []
    found = checker.verify_audit()
    assert found.ok and found.copies == found.rows == 3 * (16 + 3)


@pytest.fixture(autouse=True)
def _no_audit_file_from_outside(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OPSBOT_AUDIT_FILE", raising=False)
    yield
