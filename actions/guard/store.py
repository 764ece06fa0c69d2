"""The operation store: pending and running operations, the exactly-once key, the audit log.

Kept in opsbot's database (``actions.storage.Database``: a SQLite file by default,
PostgreSQL by URL, ``OPSBOT_DB_URL``), shared by every process that handles operations
(the action server, its replicas, the CLI). Every state change is a compare-and-set, so
two processes or two clicks can race on an operation and exactly one wins, and is
audited in its own transaction: the audit log (``_audit_log``) is append-only,
hash-chained and, with ``OPSBOT_AUDIT_FILE`` set, copied to that file before the
transaction commits. The states and the record are ``_operations``.

A failure is a ``StoreError`` whose message a chat may show (it never names the
database's address or user); the details are logged once per failure, under a reference
the message carries.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from actions.guard._audit_chain import AuditVerification
from actions.guard._audit_log import (
    AuditEvent,
    AuditLog,
    AuditRecord,
    audit_log,
    open_copy,
    to_event,
)
from actions.guard._operations import (
    CANCELLED,
    ERROR,
    EXECUTED_STATES,
    EXECUTING,
    EXPIRED,
    FAILED,
    FINAL_STATES,
    MOVES,
    OPEN_STATES,
    PENDING_APPROVAL,
    PENDING_CONFIRMATION,
    REFUSED,
    SUCCEEDED,
    SUPERSEDED,
    TRANSITION_FIELDS,
    UNKNOWN,
    Operation,
    executions,
    operations,
    params_digest,
    to_operation,
)
from actions.storage._columns import aware, utcnow
from actions.storage._database import Database, Schema, StoreError, write_lock

__all__ = [
    "CANCELLED",
    "ERROR",
    "EXECUTING",
    "EXPIRED",
    "FAILED",
    "FINAL_STATES",
    "OPEN_STATES",
    "PENDING_APPROVAL",
    "PENDING_CONFIRMATION",
    "REFUSED",
    "SUCCEEDED",
    "SUPERSEDED",
    "UNKNOWN",
    "AuditEvent",
    "AuditRecord",
    "AuditVerification",
    "Operation",
    "OperationStore",
    "StoreError",
    "params_digest",
]


class OperationStore:
    """Operations, their exactly-once execution key and the audit log, in one database.

    ``database``: opsbot's database, or its URL (a database of this store's own).
    Thread-safe; several instances (processes, replicas) may share one database. The
    tables are created, or upgraded, on first use.
    """

    def __init__(self, database: Database | str, *,
                 audit_file: str | Path | None = None) -> None:
        copy, created = open_copy(audit_file)
        self.database = database if isinstance(database, Database) else Database(database)
        self._audit = AuditLog(self.database, copy, created=created)
        self.database.require(Schema("operations", (operations, executions, audit_log),
                                     self._audit.upgrade))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperationStore:
        """The store at ``OPSBOT_DB_URL``, else opsbot.db in ``OPSBOT_STATE_DIR`` (./.opsbot).

        ``OPSBOT_AUDIT_FILE``, when set, also gets every audit row as a JSON line.
        """
        env = os.environ if env is None else env
        url = Database.url_from_env(env)
        return cls(url, audit_file=(env.get("OPSBOT_AUDIT_FILE") or "").strip() or None)

    @property
    def url_for_display(self) -> str:
        """The database URL with its password masked."""
        return self.database.url_for_display

    def __repr__(self) -> str:
        return f"OperationStore({self.url_for_display!r})"

    def close(self) -> None:
        """Closes the pooled connections (the store reconnects if used again)."""
        self.database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- operations ---------------------------------------------------------------------

    def create(
        self,
        *,
        intent: str,
        risk: str,
        requester: str,
        sender_id: str,
        channel: str,
        text: str,
        confidence: float,
        parameters: Mapping[str, str],
        ttl_seconds: float,
        approval_roles: Collection[str] = (),
        reply_to: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> Operation:
        """Records a new operation awaiting its requester's confirmation; audits "requested"."""
        now = aware(now)
        params = {str(k): str(v) for k, v in parameters.items()}
        values: dict[str, Any] = {
            "id": "op-" + secrets.token_hex(6),
            "intent": intent, "risk": risk, "requester": requester, "sender_id": sender_id,
            "channel": channel, "text": text, "confidence": float(confidence),
            "parameters": params, "digest": params_digest(intent, params),
            "state": PENDING_CONFIRMATION, "created_at": now,
            "expires_at": now + timedelta(seconds=float(ttl_seconds)),
            "approval_roles": list(approval_roles), "confirmed_by": None,
            "confirmed_at": None, "approved_by": None, "approved_at": None,
            "backend_ref": {}, "result": None, "result_detail": None, "finished_at": None,
            "notified_at": None, "reply_to": dict(reply_to or {}),
        }
        # The audit event holds the request's facts itself, so the log alone tells the story.
        detail = {
            "intent": intent, "risk": risk, "text": text, "confidence": float(confidence),
            "parameters": params, "digest": values["digest"], "sender_id": sender_id,
            "approval_roles": list(approval_roles), "expires_at": values["expires_at"],
        }
        with self.database.transaction() as conn:
            conn.execute(operations.insert().values(**values))
            self._audit.append(conn, values["id"], "requested", requester, channel, detail, now,
                               changes=values)
            row = conn.execute(sa.select(operations).where(operations.c.id == values["id"])).one()
        return to_operation(row)

    def get(self, operation_id: str) -> Operation | None:
        """The operation, or None if there is none with that id."""
        with self.database.connection() as conn:
            row = conn.execute(
                sa.select(operations).where(operations.c.id == operation_id)
            ).first()
        return to_operation(row) if row is not None else None

    def transition(
        self,
        operation_id: str,
        from_states: Collection[str],
        to_state: str,
        *,
        actor: str | None,
        channel: str | None = None,
        event: str | None = None,
        detail: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        **fields: Any,
    ) -> Operation | None:
        """Moves the operation to ``to_state`` if it is in one of ``from_states`` (compare-and-set).

        Returns the updated operation if this call won, None if the operation is missing
        or was in another state (someone else won). ``fields`` may also set confirmed_by,
        confirmed_at, approved_by, approved_at, backend_ref, result, result_detail and
        finished_at; finished_at defaults to ``now`` when ``to_state`` is final. The audit
        event (``event`` or ``to_state``) is written in the same transaction.
        """
        unknown = set(fields) - TRANSITION_FIELDS
        if unknown:
            raise TypeError(f"transition() cannot set {', '.join(sorted(unknown))}")
        now = aware(now)
        states = list(from_states)
        if not states:
            return None
        never = sorted(state for state in states if to_state not in MOVES.get(state, ()))
        if never:
            raise ValueError(f"an operation never moves from {', '.join(never)} to {to_state} "
                             "(see MOVES); audit --verify would call such a row forged")
        for column in ("confirmed_by", "approved_by"):
            if fields.get(column) is not None and fields[column] != actor:
                raise ValueError(f"{column}={fields[column]!r} must be the actor ({actor!r}): "
                                 "the audit row records who did it")
        values: dict[str, Any] = {"state": to_state, **fields}
        if to_state in FINAL_STATES and "finished_at" not in fields:
            values["finished_at"] = now
        audit_detail = {"from": sorted(states), "to": to_state,
                        **{k: v for k, v in fields.items()}, **dict(detail or {})}
        with self.database.transaction() as conn:
            # The UPDATE comes first: on SQLite it takes the write lock before any read.
            result = conn.execute(
                operations.update()
                .where(operations.c.id == operation_id, operations.c.state.in_(states))
                .values(**values)
            )
            if result.rowcount != 1:
                return None
            self._audit.append(conn, operation_id, event or to_state, actor, channel,
                               audit_detail, now, changes=values)
            row = conn.execute(sa.select(operations).where(operations.c.id == operation_id)).one()
        return to_operation(row)

    def claim_execution(self, operation_id: str, *, actor: str,
                        now: datetime | None = None) -> bool:
        """Takes the operation's exactly-once key; True only for the one caller that got it.

        Safe across threads, processes and replicas: the key is a row whose primary key
        is the operation id, so the database itself refuses a second one.
        """
        now = aware(now)
        with self.database.translated():
            try:
                with self.database.begin() as conn:
                    conn.execute(executions.insert().values(
                        operation_id=operation_id, actor=actor, claimed_at=now))
                    self._audit.append(conn, operation_id, "claimed", actor, None, {}, now)
            except IntegrityError:
                return False
        return True

    def update_backend_ref(self, operation_id: str, **ref: Any) -> Operation:
        """Merges ``ref`` into the operation's backend_ref (no state change); audits "backend"."""
        now = utcnow()
        with self.database.transaction() as conn:
            # SQLite's write lock first, so the read below cannot be overtaken by another
            # writer (PostgreSQL locks the row with FOR UPDATE); the audit row comes last.
            write_lock(conn)
            row = conn.execute(
                sa.select(operations.c.backend_ref)
                .where(operations.c.id == operation_id)
                .with_for_update()
            ).first()
            if row is None:
                raise StoreError(f"There is no operation {operation_id}.")
            merged = {**(row.backend_ref or {}), **ref}
            conn.execute(operations.update().where(operations.c.id == operation_id)
                         .values(backend_ref=merged))
            self._audit.append(conn, operation_id, "backend", None, None, dict(ref), now,
                               changes={"backend_ref": merged})
            row = conn.execute(sa.select(operations).where(operations.c.id == operation_id)).one()
        return to_operation(row)

    def open_for(self, sender_id: str, now: datetime | None = None) -> list[Operation]:
        """The conversation's operations still awaiting confirmation or approval, newest first."""
        now = aware(now)
        query = (
            sa.select(operations)
            .where(operations.c.sender_id == sender_id,
                   operations.c.state.in_(sorted(OPEN_STATES)),
                   operations.c.expires_at > now)
            .order_by(operations.c.created_at.desc(), operations.c.id.desc())
        )
        with self.database.connection() as conn:
            return [to_operation(r) for r in conn.execute(query)]

    def expire_due(self, now: datetime | None = None) -> list[Operation]:
        """Moves every open operation past its expiry to EXPIRED; returns those this call moved."""
        now = aware(now)
        with self.database.connection() as conn:
            due = conn.execute(
                sa.select(operations.c.id)
                .where(operations.c.state.in_(sorted(OPEN_STATES)),
                       operations.c.expires_at <= now)
                .order_by(operations.c.created_at)
            ).scalars().all()
        expired: list[Operation] = []
        for operation_id in due:
            op = self.transition(operation_id, OPEN_STATES, EXPIRED, actor=None,
                                 event="expired", now=now)
            if op is not None:
                expired.append(op)
        return expired

    def executing(self) -> list[Operation]:
        """Operations whose backend call is under way or whose outcome is unknown, oldest
        first (for the watcher, which follows or reconciles them)."""
        with self.database.connection() as conn:
            rows = conn.execute(
                sa.select(operations).where(operations.c.state.in_([EXECUTING, UNKNOWN]))
                .order_by(operations.c.created_at)
            )
            return [to_operation(r) for r in rows]

    def finished_unnotified(self, sender_id: str) -> list[Operation]:
        """The conversation's executed operations not announced yet, oldest first."""
        claimed = sa.select(executions.c.operation_id).where(
            executions.c.operation_id == operations.c.id).exists()
        query = (
            sa.select(operations)
            .where(operations.c.sender_id == sender_id,
                   operations.c.state.in_(EXECUTED_STATES),
                   operations.c.notified_at.is_(None),
                   claimed)
            .order_by(operations.c.finished_at, operations.c.created_at)
        )
        with self.database.connection() as conn:
            return [to_operation(r) for r in conn.execute(query)]

    def mark_notified(self, operation_id: str, now: datetime | None = None) -> bool:
        """Records that the result was announced; True only for the one caller that did it."""
        now = aware(now)
        with self.database.transaction() as conn:
            result = conn.execute(
                operations.update()
                .where(operations.c.id == operation_id, operations.c.notified_at.is_(None))
                .values(notified_at=now)
            )
            if result.rowcount != 1:
                return False
            self._audit.append(conn, operation_id, "notified", None, None, {}, now,
                               changes={"notified_at": now})
        return True

    # -- audit --------------------------------------------------------------------------

    def audit(
        self,
        operation_id: str | None,
        kind: str,
        *,
        actor: str | None,
        channel: str | None = None,
        detail: Mapping[str, Any] | None = None,
        now: datetime | None = None,
    ) -> None:
        """Appends one event to the audit log."""
        with self.database.transaction() as conn:
            self._audit.append(conn, operation_id, kind, actor, channel, dict(detail or {}),
                               aware(now))

    def audit_records(
        self,
        *,
        user: str | None = None,
        intent: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
    ) -> list[AuditRecord]:
        """Operations with their audit events, newest first.

        ``user`` matches the requester, the confirmer or the approver; ``since`` keeps
        operations created at or after it.
        """
        query = sa.select(operations)
        if user:
            query = query.where(sa.or_(operations.c.requester == user,
                                       operations.c.confirmed_by == user,
                                       operations.c.approved_by == user))
        if intent:
            query = query.where(operations.c.intent == intent)
        if since is not None:
            query = query.where(operations.c.created_at >= aware(since, "since"))
        query = query.order_by(operations.c.created_at.desc(), operations.c.id.desc())
        query = query.limit(max(0, int(limit)))
        with self.database.connection() as conn:
            ops = [to_operation(r) for r in conn.execute(query)]
            events: dict[str, list[AuditEvent]] = {op.id: [] for op in ops}
            if ops:
                rows = conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.operation_id.in_(list(events)))
                    .order_by(audit_log.c.id)
                )
                for row in rows:
                    events[row.operation_id].append(to_event(row))
        return [AuditRecord(operation=op, events=tuple(events[op.id])) for op in ops]

    def verify_audit(self, copies: Iterable[str | Path] = ()) -> AuditVerification:
        """Walks the audit chain and checks the operations table against it (``audit --verify``).

        With ``OPSBOT_AUDIT_FILE`` set, every row from the file's first on must be in both
        the file and the database. ``copies``: more files to take as the copy with it, such
        as the files of replicas on other hosts (each copies the rows it writes).
        """
        return self._audit.verify(copies)
