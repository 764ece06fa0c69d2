"""The audit log: append-only, hash-chained, optionally copied to ``OPSBOT_AUDIT_FILE``.

Append-only by the database itself (a trigger refuses UPDATE and DELETE), not only by
this module having no method for it, and tamper-evident: each row carries the hash of
the one before it, and what its transaction wrote to the operations table
(``_audit_chain``, ``opsbot audit --verify``). With ``OPSBOT_AUDIT_FILE`` set, each row
is also copied to that file before its transaction commits, or the transaction fails:
nothing audited happens uncopied. Rows are appended in the transactions of
``OperationStore``, which change the operations they are about.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from actions.guard._audit_chain import (
    CHAIN_STARTED,
    GENESIS,
    AuditVerification,
    append_line,
    chain_hash,
    create_copy,
    file_line,
    legacy_digest,
    open_copies,
    read_copies,
    verify_chain,
    void_line,
)
from actions.guard._operations import LIFECYCLE, Operation, iso, operations
from actions.storage._columns import JSONText, UTCDateTime, utcnow
from actions.storage._database import (
    Database,
    in_sqlite_transaction,
    on_rollback,
    setup_error,
    write_lock,
)

__all__ = ["AuditEvent", "AuditLog", "AuditRecord", "audit_log", "open_copy", "to_event"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEvent:
    """One line of the audit log."""

    at: datetime
    kind: str
    actor: str | None
    channel: str | None
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, "actor": self.actor,
                "channel": self.channel, "detail": self.detail}


@dataclass(frozen=True)
class AuditRecord:
    """An operation with its audit events, oldest first."""

    operation: Operation
    events: tuple[AuditEvent, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: the operation's facts, times in ISO 8601, and its events."""
        op = self.operation
        return {
            "operation_id": op.id,
            "intent": op.intent,
            "risk": op.risk,
            "state": op.state,
            "requester": op.requester,
            "channel": op.channel,
            "text": op.text,
            "confidence": op.confidence,
            "parameters": dict(op.parameters),
            "confirmed_by": op.confirmed_by,
            "confirmed_at": iso(op.confirmed_at),
            "approved_by": op.approved_by,
            "approved_at": iso(op.approved_at),
            "backend": dict(op.backend_ref),
            "result": op.result,
            "result_detail": op.result_detail,
            "created_at": iso(op.created_at),
            "finished_at": iso(op.finished_at),
            "events": [e.as_dict() for e in self.events],
        }


_metadata = sa.MetaData()

audit_log = sa.Table(
    "opsbot_audit", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation_id", sa.String(32), index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(255)),
    sa.Column("channel", sa.String(64)),
    sa.Column("detail", JSONText, nullable=False),
    # The hash chain (actions/guard/_audit_chain.py): what the row's transaction wrote to
    # opsbot_operations, the previous row's hash and this row's. NULL in rows from before it.
    sa.Column("changes", JSONText),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("hash", sa.String(64)),
    # One successor per row: two writers appending after the same row cannot both commit.
    sa.Index("ux_opsbot_audit_prev_hash", "prev_hash", unique=True),
)

# The database itself refuses to change the audit log. The triggers are checked (and
# made if missing) every time a store starts, not only when the table is created.
_APPEND_ONLY = "audit log is append-only"
_SQLITE_TRIGGERS = tuple(
    f"CREATE TRIGGER IF NOT EXISTS opsbot_audit_no_{verb.lower()} BEFORE {verb} ON opsbot_audit "
    f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY}'); END"
    for verb in ("UPDATE", "DELETE")
)
_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION opsbot_audit_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $fn$ BEGIN "
    f"RAISE EXCEPTION '{_APPEND_ONLY}' USING ERRCODE = 'restrict_violation'; "
    "END $fn$"
)
_PG_TRIGGERS = {
    "opsbot_audit_no_change": (
        "CREATE TRIGGER opsbot_audit_no_change BEFORE UPDATE OR DELETE ON opsbot_audit "
        "FOR EACH ROW EXECUTE FUNCTION opsbot_audit_append_only()"),
    "opsbot_audit_no_truncate": (
        "CREATE TRIGGER opsbot_audit_no_truncate BEFORE TRUNCATE ON opsbot_audit "
        "FOR EACH STATEMENT EXECUTE FUNCTION opsbot_audit_append_only()"),
}

# Any constant: serialises appends to the audit chain (held until the appending transaction ends).
_PG_CHAIN_LOCK = 0x0B5B0A
# The chain's columns, added to an audit log made before them.
_CHAIN_COLUMNS = {"changes": "TEXT", "prev_hash": "VARCHAR(64)", "hash": "VARCHAR(64)"}
# The undo under which a transaction keeps the (id, hash) of the rows it copied to
# OPSBOT_AUDIT_FILE, to void them there if it does not commit.
_COPIED = "opsbot_audit_copied"


def to_event(row: Any) -> AuditEvent:
    m = row._mapping
    return AuditEvent(at=m["at"], kind=m["kind"], actor=m["actor"], channel=m["channel"],
                      detail=dict(m["detail"] or {}))



def open_copy(audit_file: str | Path | None) -> tuple[Path | None, bool]:
    """``OPSBOT_AUDIT_FILE``'s path, made (empty) if it did not exist, and whether it was.

    Made when the store opens, so that a copy missing later was removed.
    """
    path = Path(audit_file).expanduser() if audit_file else None
    if path is None:
        return None, False
    if not path.parent.is_dir():
        raise setup_error(
            "audit log copy (OPSBOT_AUDIT_FILE) is not set up correctly",
            f"OPSBOT_AUDIT_FILE {path}: its directory does not exist. "
            "Create it, or unset OPSBOT_AUDIT_FILE.")
    try:
        return path, create_copy(path)
    except OSError as exc:
        raise setup_error(
            "audit log copy (OPSBOT_AUDIT_FILE) is not set up correctly",
            f"OPSBOT_AUDIT_FILE {path}: opsbot cannot create it: "
            f"{exc.strerror or exc}. Make its directory writable by opsbot's user, "
            "or unset OPSBOT_AUDIT_FILE.") from None


@dataclass
class _Copied:
    """The rows a transaction copied to OPSBOT_AUDIT_FILE, voided there if it does not
    commit."""

    log: AuditLog
    rows: list[tuple[int, str]] = field(default_factory=list)

    def __call__(self, exc: BaseException) -> None:
        self.log.void(self.rows, exc)


class AuditLog:
    """The audit log in ``database``, and its copy at ``copy`` (``OPSBOT_AUDIT_FILE``).

    ``created``: the copy was made empty when the store opened (see :func:`open_copy`).
    """

    def __init__(self, database: Database, copy: Path | None = None, *,
                 created: bool = False) -> None:
        self.database = database
        self.copy = copy
        self._created_copy = created

    def append(self, conn: Connection, operation_id: str | None, kind: str,
               actor: str | None, channel: str | None, detail: Mapping[str, Any],
               now: datetime, *, changes: Mapping[str, Any] | None = None) -> None:
        """Appends one row to the audit chain, in the caller's transaction.

        ``changes`` is what the transaction wrote to the operation's row. Lock order (no
        deadlocks on PostgreSQL): a transaction locks the operation rows it changes first
        and the chain last, here, so nothing that holds the chain waits for a row.
        """
        _lock_chain(conn)
        prev = conn.execute(
            sa.select(audit_log.c.hash).where(audit_log.c.hash.is_not(None))
            .order_by(audit_log.c.id.desc()).limit(1)
        ).scalar()
        row: dict[str, Any] = {
            "operation_id": operation_id, "at": now, "kind": kind, "actor": actor,
            "channel": channel, "detail": dict(detail),
            "changes": dict(changes) if changes is not None else None,
            "prev_hash": prev or GENESIS,
        }
        row["hash"] = chain_hash(row["prev_hash"], row)
        inserted = conn.execute(audit_log.insert().values(**row))
        if self.copy is not None:
            self._copy_row(conn, {"id": int(inserted.inserted_primary_key[0]), **row})

    def verify(self, copies: Iterable[str | Path] = ()) -> AuditVerification:
        """Walks the audit chain and checks the operations table against it (``audit --verify``).

        With ``OPSBOT_AUDIT_FILE`` set, every row from the file's first on must be in both
        the file and the database. ``copies``: more files to take as the copy with it, such
        as the files of replicas on other hosts (each copies the rows it writes).

        One snapshot of the database, taken while the chain is locked, and the files as
        they were then: no row is between its copy and its commit, so writers carrying on
        meanwhile are not mistaken for tampering.
        """
        paths = [p for p in (self.copy, *(Path(c).expanduser() for c in copies)) if p]
        names = ["OPSBOT_AUDIT_FILE" if p == self.copy else str(p) for p in paths]
        name = names[0] if len(names) == 1 else f"the copies ({', '.join(names)})"
        missing: str | None = None
        with self.database.connection() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            elif conn.dialect.name == "sqlite" and not in_sqlite_transaction(conn):
                conn.exec_driver_sql("BEGIN")  # one read snapshot for both tables
            opened: list[Any] = []
            if paths:
                with self._chain_held():
                    # The snapshot begins with this first read; the files' lengths are noted.
                    conn.execute(sa.select(sa.func.max(audit_log.c.id))).scalar()
                    try:
                        opened = open_copies(paths)
                    except FileNotFoundError as exc:
                        missing = next((n for p, n in zip(paths, names, strict=True)
                                        if str(p) == exc.filename), str(exc.filename))
            copy = read_copies(opened, name) if opened else None
            ops = [dict(r._mapping) for r in conn.execute(sa.select(operations))]
            rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.id))
            found = verify_chain((dict(r._mapping) for r in rows), ops, copy, LIFECYCLE)
        if not found.ok:
            return found
        created_empty = self._created_copy and copy is not None and copy.first is None
        if missing is None and not (created_empty and found.rows):
            return found
        what = (f"{missing} does not exist" if missing is not None else
                f"{name} did not exist when this check opened the store (it is there now, "
                "empty)")
        problem = (f"{what}, but opsbot creates it when it starts and copies every audit row to "
                   f"it: it was deleted or moved. Restore it (or, if OPSBOT_AUDIT_FILE was only "
                   "just set, run the check again: it starts from the file's first row).")
        return replace(found, problem=problem, head=None)

    # -- plumbing -----------------------------------------------------------------------

    def _copy_row(self, conn: Connection, row: Mapping[str, Any]) -> None:
        """Copies the row to OPSBOT_AUDIT_FILE, fsync'd, before its transaction commits.

        Fails closed: a row that cannot be copied fails its transaction, so nothing audited
        happens uncopied. Called with the chain locked, so the file is in id order.
        """
        assert self.copy is not None
        try:
            append_line(self.copy, file_line(row))
        except OSError as exc:
            raise self.database.failure(
                "audit log copy cannot be written right now",
                f"OPSBOT_AUDIT_FILE {self.copy}: cannot append audit row {row['id']} "
                f"({exc.strerror or exc}), so its transaction was rolled back: opsbot does "
                "nothing it cannot copy there. Make the file writable by opsbot's user, free "
                "space on its disk, or unset OPSBOT_AUDIT_FILE.", later=True) from exc
        on_rollback(conn, _COPIED, lambda: _Copied(self)).rows.append((row["id"], row["hash"]))

    def void(self, copied: list[tuple[int, str]], exc: BaseException) -> None:
        """Takes back, in OPSBOT_AUDIT_FILE, the rows of a transaction that did not commit."""
        if not copied or self.copy is None:
            return
        rows, copied[:] = list(copied), []
        try:
            append_line(self.copy, void_line(
                rows, f"their transaction did not commit ({type(exc).__name__})"))
        except OSError as error:
            logger.error(
                "OPSBOT_AUDIT_FILE %s: audit row(s) %s were copied there but their transaction "
                "did not commit (%s), and the line that voids them could not be written (%s): "
                "opsbot audit --verify will report them as missing from the database.",
                self.copy, ", ".join(str(i) for i, _ in rows), type(exc).__name__,
                error.strerror or error)

    @contextmanager
    def _chain_held(self) -> Iterator[None]:
        """Holds the chain's lock, on a connection of its own, until the block ends: no
        writer is then between copying a row to OPSBOT_AUDIT_FILE and committing it."""
        with self.database.engine.begin() as side:
            _lock_chain(side)
            yield


    # -- schema -------------------------------------------------------------------------

    def upgrade(self, conn: Connection) -> None:
        """The audit table's upgrade (see ``Schema``): the chain's columns for a log from
        before it, then the append-only triggers, checked every time a process starts."""
        self._add_chain(conn)
        if conn.dialect.name == "sqlite":
            for statement in _SQLITE_TRIGGERS:
                conn.exec_driver_sql(statement)
        elif conn.dialect.name == "postgresql":
            present = set(conn.execute(sa.text(
                "SELECT tgname FROM pg_trigger WHERE tgrelid = 'opsbot_audit'::regclass"
            )).scalars())
            missing = [ddl for name, ddl in _PG_TRIGGERS.items() if name not in present]
            if missing:
                conn.exec_driver_sql(_PG_FUNCTION)
                for statement in missing:
                    conn.exec_driver_sql(statement)
        else:
            logger.warning("the audit log is append-only by convention only on %s",
                           conn.dialect.name)

    def _add_chain(self, conn: Connection) -> None:
        """Gives an audit log from before the chain its columns, and seals the rows in it.

        Those rows keep no hash of their own (the triggers forbid changing them); the first
        chained row, ``chain_started``, records their count, last id and digest instead.
        """
        def missing() -> list[str]:
            present = {c["name"] for c in sa.inspect(conn).get_columns(audit_log.name)}
            return [name for name in _CHAIN_COLUMNS if name not in present]

        if not missing():
            return
        write_lock(conn)  # SQLite: DDL inside this transaction, one migrating process
        todo = missing()
        for name in todo:
            conn.exec_driver_sql(
                f"ALTER TABLE {audit_log.name} ADD COLUMN {name} {_CHAIN_COLUMNS[name]}")
        conn.exec_driver_sql(f"CREATE UNIQUE INDEX IF NOT EXISTS ux_opsbot_audit_prev_hash "
                             f"ON {audit_log.name} (prev_hash)")
        if "hash" not in todo:
            return
        rows = [dict(r._mapping)
                for r in conn.execute(sa.select(audit_log).order_by(audit_log.c.id))]
        if any(row.get("kind") == CHAIN_STARTED for row in rows):
            # This log had a chain, and its hash columns are gone: sealing the rows now
            # would bless whatever was edited while they were missing.
            raise self.database.failure(
                "audit log failed its integrity check",
                "The audit log's hash columns were removed after its hash chain had started "
                f"(a {CHAIN_STARTED} row is there): it was tampered with, and opsbot will not "
                "re-seal it. Restore the database from a backup, or compare it with "
                "OPSBOT_AUDIT_FILE, before opsbot runs on it again.", later=False)
        if rows:
            count, last, digest = legacy_digest(rows)
            self.append(conn, None, CHAIN_STARTED, None, None,
                        {"rows_before": count, "last_id_before": last, "digest": digest},
                        utcnow())
            logger.info("audit log: %d rows from before the hash chain, sealed", count)


def _lock_chain(conn: Connection) -> None:
    """Serialises appends to the audit chain until this transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CHAIN_LOCK})
    else:
        write_lock(conn)  # other databases: the unique prev_hash refuses a fork

