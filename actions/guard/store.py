"""The operation store: pending and running operations, the exactly-once key, the audit log.

One SQL database shared by every process that handles operations (the action server,
its replicas, the CLI): a SQLite file by default, PostgreSQL by URL (``OPSBOT_DB_URL``).
Every state change is a compare-and-set, so two processes or two clicks can race on an
operation and exactly one wins. The audit log is append-only, enforced by the database
itself (a trigger refuses UPDATE and DELETE), not only by this module having no method
for it, and tamper-evident: each row carries the hash of the one before it, and what
its transaction wrote to the operations table (``_audit_chain``, ``opsbot audit --verify``).
With ``OPSBOT_AUDIT_FILE`` set, each row is also copied to that file before its
transaction commits, or the transaction fails: nothing audited happens uncopied.

A failure is a ``StoreError`` whose message a chat may show (it never names the
database's address or user); the details are logged once per failure, under a reference
the message carries.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from actions.errors import OpsbotError
from actions.guard._audit_chain import (
    CHAIN_STARTED,
    GENESIS,
    AuditVerification,
    Lifecycle,
    _json_default,
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
    "Lease",
    "Operation",
    "OperationStore",
    "StoreError",
    "params_digest",
]

logger = logging.getLogger(__name__)

PENDING_CONFIRMATION = "pending_confirmation"
PENDING_APPROVAL = "pending_approval"
EXECUTING = "executing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
EXPIRED = "expired"
SUPERSEDED = "superseded"
REFUSED = "refused"
ERROR = "error"
# Confirmed and sent, but whether the backend acted is not known (its answer was lost).
# Neither open nor final: it cannot be confirmed or claimed again (the execution key is
# taken), and the watcher moves it to succeeded/failed once it finds out.
UNKNOWN = "unknown"
OPEN_STATES = frozenset({PENDING_CONFIRMATION, PENDING_APPROVAL})
FINAL_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED, EXPIRED, SUPERSEDED, REFUSED, ERROR})
# Final states reached only through execution: these are the ones worth a notification.
_EXECUTED_STATES = (SUCCEEDED, FAILED, ERROR)
# Where each state may move: transition() refuses any other move, and ``audit --verify``
# any audit row that makes one. Confirming (by the requester) leaves pending_confirmation
# for approval or execution; approving (by a second person) leaves pending_approval.
_MOVES: dict[str, frozenset[str]] = {
    PENDING_CONFIRMATION: frozenset({PENDING_APPROVAL, EXECUTING, SUCCEEDED, REFUSED,
                                     SUPERSEDED, EXPIRED, CANCELLED}),
    PENDING_APPROVAL: frozenset({EXECUTING, REFUSED, SUPERSEDED, EXPIRED, CANCELLED}),
    EXECUTING: frozenset({UNKNOWN, SUCCEEDED, FAILED, ERROR}),
    UNKNOWN: frozenset({EXECUTING, SUCCEEDED, FAILED, ERROR}),
}
_CONFIRMS = frozenset({(PENDING_CONFIRMATION, PENDING_APPROVAL),
                       (PENDING_CONFIRMATION, EXECUTING)})
_APPROVES = frozenset({(PENDING_APPROVAL, EXECUTING)})

# Columns that transition(**fields) may set alongside the state.
_TRANSITION_FIELDS = frozenset({
    "confirmed_by", "confirmed_at", "approved_by", "approved_at",
    "backend_ref", "result", "result_detail", "finished_at",
})


class StoreError(OpsbotError):
    """The operation store failed.

    ``str()`` is for a chat, where every member of a group reads it: what failed and what
    became of the request, with a short ``reference``; never the database's address, user,
    port or name. ``detail`` (the URL with its password masked, the driver's first line,
    the fix) is for operators: it was logged once, under the same reference.
    """

    def __init__(self, message: str, *, detail: str | None = None,
                 reference: str | None = None, summary: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        self.reference = reference
        self.summary = summary  # one line for a log that has ``detail`` under the reference


class _References:
    """One reference per failure while it lasts: its details are logged once, not per attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[str, str] | None = None  # (detail, reference)

    def error(self, what: str, detail: str, *, later: bool) -> StoreError:
        """A StoreError saying ``what`` failed; ``detail`` is logged if it is news.

        ``later``: the failure may pass by itself (an outage), so trying again is advice.
        """
        with self._lock:
            news = self._current is None or self._current[0] != detail
            if news:
                self._current = (detail, secrets.token_hex(4))
            assert self._current is not None
            reference = self._current[1]
        (logger.warning if news else logger.debug)("%s (reference %s)", detail, reference)
        advice = ("Try again in a few minutes; if it goes on, give an opsbot admin the "
                  "reference." if later else "An opsbot admin must fix it: give them the "
                  "reference.")
        return StoreError(f"opsbot's {what}, so your request could not be saved or checked "
                          f"(reference {reference}). {advice}", detail=detail,
                          reference=reference, summary=f"opsbot's {what} (reference {reference})")

    def clear(self) -> None:
        """The store works again: the next failure is news."""
        self._current = None


# Failures before a store exists (a bad URL, a state dir that cannot be made).
_SETUP = _References()


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None, name: str = "now") -> datetime:
    """``value`` (or now) in UTC; a naive datetime is refused rather than guessed."""
    if value is None:
        return utcnow()
    if value.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def params_digest(intent: str, parameters: Mapping[str, str]) -> str:
    """A short fingerprint of an intent and its exact parameters (canonical JSON, sha256)."""
    canonical = json.dumps(
        {"intent": intent, "parameters": {str(k): str(v) for k, v in parameters.items()}},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (also when the URL does not parse)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


# ---------------------------------------------------------------------------------------
# Records


@dataclass(frozen=True)
class Operation:
    """One requested operation, from the request to its result."""

    id: str
    intent: str
    risk: str
    requester: str
    sender_id: str
    channel: str
    text: str
    confidence: float
    parameters: dict[str, str]
    digest: str
    state: str
    created_at: datetime
    expires_at: datetime
    approval_roles: tuple[str, ...]
    confirmed_by: str | None
    confirmed_at: datetime | None
    approved_by: str | None
    approved_at: datetime | None
    backend_ref: dict[str, Any]
    result: str | None
    result_detail: str | None
    finished_at: datetime | None
    notified_at: datetime | None
    reply_to: dict[str, Any]

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the confirmation window has closed (at ``now``, default the current time)."""
        return _aware(now) >= self.expires_at

    @property
    def is_open(self) -> bool:
        """Waiting for a confirmation or an approval."""
        return self.state in OPEN_STATES

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


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
            "confirmed_at": _iso(op.confirmed_at),
            "approved_by": op.approved_by,
            "approved_at": _iso(op.approved_at),
            "backend": dict(op.backend_ref),
            "result": op.result,
            "result_detail": op.result_detail,
            "created_at": _iso(op.created_at),
            "finished_at": _iso(op.finished_at),
            "events": [e.as_dict() for e in self.events],
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# ---------------------------------------------------------------------------------------
# Schema


class _UTCDateTime(sa.types.TypeDecorator):
    """Aware UTC datetimes stored as naive UTC, so SQLite and PostgreSQL compare alike."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return _aware(value, "datetime").replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite, read through a raw text column
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


class _JSONText(sa.types.TypeDecorator):
    """JSON kept as text: portable, and keeps the order of keys (parameters as previewed)."""

    impl = sa.Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        return json.dumps(value, ensure_ascii=False, default=_json_default)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(value)


metadata = sa.MetaData()

operations = sa.Table(
    "opsbot_operations", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("intent", sa.String(64), nullable=False),
    sa.Column("risk", sa.String(16), nullable=False),
    sa.Column("requester", sa.String(255), nullable=False),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("parameters", _JSONText, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("created_at", _UTCDateTime, nullable=False),
    sa.Column("expires_at", _UTCDateTime, nullable=False),
    sa.Column("approval_roles", _JSONText, nullable=False),
    sa.Column("confirmed_by", sa.String(255)),
    sa.Column("confirmed_at", _UTCDateTime),
    sa.Column("approved_by", sa.String(255)),
    sa.Column("approved_at", _UTCDateTime),
    sa.Column("backend_ref", _JSONText, nullable=False),
    sa.Column("result", sa.Text),
    sa.Column("result_detail", sa.Text),
    sa.Column("finished_at", _UTCDateTime),
    sa.Column("notified_at", _UTCDateTime),
    sa.Column("reply_to", _JSONText, nullable=False),
    sa.Index("ix_opsbot_operations_sender_state", "sender_id", "state"),
    sa.Index("ix_opsbot_operations_state", "state"),
    sa.Index("ix_opsbot_operations_created_at", "created_at"),
)

# The changes opsbot makes to an operation, which --verify checks each audit row against.
_LIFECYCLE = Lifecycle(
    initial=PENDING_CONFIRMATION, moves=_MOVES, confirms=_CONFIRMS, approves=_APPROVES,
    changeable=_TRANSITION_FIELDS | {"state", "notified_at"},
    fixed=frozenset(operations.c.keys()) - _TRANSITION_FIELDS - {"state", "notified_at"},
)

# The exactly-once key: whoever inserts an operation's row here runs it.
executions = sa.Table(
    "opsbot_executions", metadata,
    sa.Column("operation_id", sa.String(32), primary_key=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("claimed_at", _UTCDateTime, nullable=False),
)

audit_log = sa.Table(
    "opsbot_audit", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("operation_id", sa.String(32), index=True),
    sa.Column("at", _UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(255)),
    sa.Column("channel", sa.String(64)),
    sa.Column("detail", _JSONText, nullable=False),
    # The hash chain (actions/guard/_audit_chain.py): what the row's transaction wrote to
    # opsbot_operations, the previous row's hash and this row's. NULL in rows from before it.
    sa.Column("changes", _JSONText),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("hash", sa.String(64)),
    # One successor per row: two writers appending after the same row cannot both commit.
    sa.Index("ux_opsbot_audit_prev_hash", "prev_hash", unique=True),
)

# What the chat connectors must remember across restarts and replicas: conversation
# references for proactive messages, long button payloads behind short callback data,
# and the updates already handled (a redelivered one is dropped). Keyed by kind + key.
channel_state = sa.Table(
    "opsbot_channel_state", metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", _JSONText, nullable=False),
    sa.Column("updated_at", _UTCDateTime, nullable=False),
)

# Who does a background duty now (follows an operation's build, polls Telegram, ...):
# a lease, held while its owner renews it before ``until``; a replica that dies stops
# renewing, and another takes the duty once ``until`` has passed. Compare-and-set writes.
leases = sa.Table(
    "opsbot_leases", metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("until", _UTCDateTime, nullable=False),
    sa.Column("since", _UTCDateTime, nullable=False),
)

# Phrasings people taught opsbot (a fallback choice, "when I say ... I mean ...", opsbot
# teach), waiting for review; accepted ones are written to data/nlu/taught.yml.
taught = sa.Table(
    "opsbot_taught", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("example", sa.Text, nullable=False),  # the text with [value](entity) marks
    sa.Column("intent", sa.String(64), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("taught_by", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("created_at", _UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reviewed_by", sa.String(255)),
    sa.Column("reviewed_at", _UTCDateTime),
    sa.Index("ix_opsbot_taught_status", "status"),
)

CANDIDATE, ACCEPTED, REJECTED = "candidate", "accepted", "rejected"


@dataclass(frozen=True)
class Taught:
    """A taught phrasing and what became of it."""

    id: str
    text: str
    example: str
    intent: str
    source: str
    taught_by: str
    channel: str
    created_at: datetime
    status: str
    reviewed_by: str | None
    reviewed_at: datetime | None


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

# Any constant: serialises creating the schema between processes sharing a PostgreSQL.
_PG_SCHEMA_LOCK = 0x0B5B07
# Another: serialises appends to the audit chain (held until the appending transaction ends).
_PG_CHAIN_LOCK = 0x0B5B0A
# The chain's columns, added to an audit log made before them.
_CHAIN_COLUMNS = {"changes": "TEXT", "prev_hash": "VARCHAR(64)", "hash": "VARCHAR(64)"}
# Where a transaction keeps the (id, hash) of the rows it copied to OPSBOT_AUDIT_FILE, to
# void them there if it does not commit.
_COPIED = "opsbot_audit_copied"


@dataclass(frozen=True)
class Lease:
    """A lease held: until when, since when (this owner's), and whose it was before."""

    name: str
    owner: str
    until: datetime
    since: datetime
    previous: str | None  # the owner it was taken from (None: new, or renewed)


def _to_operation(row: Any) -> Operation:
    m = row._mapping
    return Operation(
        id=m["id"], intent=m["intent"], risk=m["risk"], requester=m["requester"],
        sender_id=m["sender_id"], channel=m["channel"], text=m["text"],
        confidence=float(m["confidence"]), parameters=dict(m["parameters"] or {}),
        digest=m["digest"], state=m["state"], created_at=m["created_at"],
        expires_at=m["expires_at"], approval_roles=tuple(m["approval_roles"] or ()),
        confirmed_by=m["confirmed_by"], confirmed_at=m["confirmed_at"],
        approved_by=m["approved_by"], approved_at=m["approved_at"],
        backend_ref=dict(m["backend_ref"] or {}), result=m["result"],
        result_detail=m["result_detail"], finished_at=m["finished_at"],
        notified_at=m["notified_at"], reply_to=dict(m["reply_to"] or {}),
    )


def _to_event(row: Any) -> AuditEvent:
    m = row._mapping
    return AuditEvent(at=m["at"], kind=m["kind"], actor=m["actor"], channel=m["channel"],
                      detail=dict(m["detail"] or {}))


# ---------------------------------------------------------------------------------------
# The store


class OperationStore:
    """Operations, their exactly-once execution key and the audit log, in one database.

    Thread-safe; several instances (processes, replicas) may share one database. The
    tables are created on first use.
    """

    def __init__(self, url: str, *, audit_file: str | Path | None = None) -> None:
        self._display = mask_url(url)
        self._failures = _References()
        self._audit_file = Path(audit_file).expanduser() if audit_file else None
        # Made here (empty) when it did not exist, so that a copy missing later was removed.
        self._created_copy = False
        if self._audit_file is not None:
            if not self._audit_file.parent.is_dir():
                raise _SETUP.error(
                    "audit log copy (OPSBOT_AUDIT_FILE) is not set up correctly",
                    f"OPSBOT_AUDIT_FILE {self._audit_file}: its directory does not exist. "
                    "Create it, or unset OPSBOT_AUDIT_FILE.", later=False)
            try:
                self._created_copy = create_copy(self._audit_file)
            except OSError as exc:
                raise _SETUP.error(
                    "audit log copy (OPSBOT_AUDIT_FILE) is not set up correctly",
                    f"OPSBOT_AUDIT_FILE {self._audit_file}: opsbot cannot create it: "
                    f"{exc.strerror or exc}. Make its directory writable by opsbot's user, "
                    "or unset OPSBOT_AUDIT_FILE.", later=False) from None
        self._passwords = self._passwords_of(url)
        try:
            parsed = make_url(url)
            options: dict[str, Any] = {"future": True}
            if parsed.get_backend_name() == "sqlite":
                # Wait for a lock rather than fail at once: the action server and the CLI
                # write to the same file.
                options["connect_args"] = {"timeout": 30}
            else:
                options["pool_pre_ping"] = True
            self._engine: Engine = sa.create_engine(parsed, **options)
        except (ArgumentError, SQLAlchemyError, ImportError) as exc:
            raise _SETUP.error(
                "operation store is not set up correctly",
                f"opsbot cannot use the database URL {self._display}: {self._reason(exc)}. "
                "Set OPSBOT_DB_URL to sqlite:///path/to/opsbot.db or "
                "postgresql://user:password@host:5432/database.", later=False,
            ) from None
        if self._engine.dialect.name == "sqlite":
            sa_event.listen(self._engine, "connect", _sqlite_pragmas)
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperationStore:
        """The store at ``OPSBOT_DB_URL``, else opsbot.db in ``OPSBOT_STATE_DIR`` (./.opsbot).

        ``OPSBOT_AUDIT_FILE``, when set, also gets every audit row as a JSON line.
        """
        env = os.environ if env is None else env
        url = (env.get("OPSBOT_DB_URL") or "").strip()
        if not url:
            state_dir = Path(env.get("OPSBOT_STATE_DIR") or ".opsbot").expanduser()
            try:
                state_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _SETUP.error(
                    "operation store is not set up correctly",
                    f"opsbot cannot create its state directory {state_dir}: {exc.strerror}. "
                    "Set OPSBOT_STATE_DIR to a writable directory, or OPSBOT_DB_URL.",
                    later=False) from exc
            url = f"sqlite:///{state_dir.resolve() / 'opsbot.db'}"
        return cls(url, audit_file=(env.get("OPSBOT_AUDIT_FILE") or "").strip() or None)

    @property
    def url_for_display(self) -> str:
        """The database URL with its password masked."""
        return self._display

    def __repr__(self) -> str:
        return f"OperationStore({self._display!r})"

    def close(self) -> None:
        """Closes the pooled connections (the store reconnects if used again)."""
        self._engine.dispose()

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
        now = _aware(now)
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
        with self._begin() as conn:
            conn.execute(operations.insert().values(**values))
            self._insert_audit(conn, values["id"], "requested", requester, channel, detail, now,
                               changes=values)
            row = conn.execute(sa.select(operations).where(operations.c.id == values["id"])).one()
        return _to_operation(row)

    def get(self, operation_id: str) -> Operation | None:
        """The operation, or None if there is none with that id."""
        with self._connect() as conn:
            row = conn.execute(
                sa.select(operations).where(operations.c.id == operation_id)
            ).first()
        return _to_operation(row) if row is not None else None

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
        unknown = set(fields) - _TRANSITION_FIELDS
        if unknown:
            raise TypeError(f"transition() cannot set {', '.join(sorted(unknown))}")
        now = _aware(now)
        states = list(from_states)
        if not states:
            return None
        never = sorted(state for state in states if to_state not in _MOVES.get(state, ()))
        if never:
            raise ValueError(f"an operation never moves from {', '.join(never)} to {to_state} "
                             "(see _MOVES); audit --verify would call such a row forged")
        for column in ("confirmed_by", "approved_by"):
            if fields.get(column) is not None and fields[column] != actor:
                raise ValueError(f"{column}={fields[column]!r} must be the actor ({actor!r}): "
                                 "the audit row records who did it")
        values: dict[str, Any] = {"state": to_state, **fields}
        if to_state in FINAL_STATES and "finished_at" not in fields:
            values["finished_at"] = now
        audit_detail = {"from": sorted(states), "to": to_state,
                        **{k: v for k, v in fields.items()}, **dict(detail or {})}
        with self._begin() as conn:
            # The UPDATE comes first: on SQLite it takes the write lock before any read.
            result = conn.execute(
                operations.update()
                .where(operations.c.id == operation_id, operations.c.state.in_(states))
                .values(**values)
            )
            if result.rowcount != 1:
                return None
            self._insert_audit(conn, operation_id, event or to_state, actor, channel,
                               audit_detail, now, changes=values)
            row = conn.execute(sa.select(operations).where(operations.c.id == operation_id)).one()
        return _to_operation(row)

    def claim_execution(self, operation_id: str, *, actor: str,
                        now: datetime | None = None) -> bool:
        """Takes the operation's exactly-once key; True only for the one caller that got it.

        Safe across threads, processes and replicas: the key is a row whose primary key
        is the operation id, so the database itself refuses a second one.
        """
        now = _aware(now)
        self._ensure_schema()
        with self._translate():
            try:
                with self._write() as conn:
                    conn.execute(executions.insert().values(
                        operation_id=operation_id, actor=actor, claimed_at=now))
                    self._insert_audit(conn, operation_id, "claimed", actor, None, {}, now)
            except IntegrityError:
                return False
        return True

    def update_backend_ref(self, operation_id: str, **ref: Any) -> Operation:
        """Merges ``ref`` into the operation's backend_ref (no state change); audits "backend"."""
        now = utcnow()
        with self._begin() as conn:
            # SQLite's write lock first, so the read below cannot be overtaken by another
            # writer (PostgreSQL locks the row with FOR UPDATE); the audit row comes last.
            _write_lock(conn)
            row = conn.execute(
                sa.select(operations.c.backend_ref)
                .where(operations.c.id == operation_id)
                .with_for_update()
            ).first()
            if row is None:
                raise _Rollback(operation_id)
            merged = {**(row.backend_ref or {}), **ref}
            conn.execute(operations.update().where(operations.c.id == operation_id)
                         .values(backend_ref=merged))
            self._insert_audit(conn, operation_id, "backend", None, None, dict(ref), now,
                               changes={"backend_ref": merged})
            row = conn.execute(sa.select(operations).where(operations.c.id == operation_id)).one()
        return _to_operation(row)

    def open_for(self, sender_id: str, now: datetime | None = None) -> list[Operation]:
        """The conversation's operations still awaiting confirmation or approval, newest first."""
        now = _aware(now)
        query = (
            sa.select(operations)
            .where(operations.c.sender_id == sender_id,
                   operations.c.state.in_(sorted(OPEN_STATES)),
                   operations.c.expires_at > now)
            .order_by(operations.c.created_at.desc(), operations.c.id.desc())
        )
        with self._connect() as conn:
            return [_to_operation(r) for r in conn.execute(query)]

    def expire_due(self, now: datetime | None = None) -> list[Operation]:
        """Moves every open operation past its expiry to EXPIRED; returns those this call moved."""
        now = _aware(now)
        with self._connect() as conn:
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
        with self._connect() as conn:
            rows = conn.execute(
                sa.select(operations).where(operations.c.state.in_([EXECUTING, UNKNOWN]))
                .order_by(operations.c.created_at)
            )
            return [_to_operation(r) for r in rows]

    def finished_unnotified(self, sender_id: str) -> list[Operation]:
        """The conversation's executed operations not announced yet, oldest first."""
        claimed = sa.select(executions.c.operation_id).where(
            executions.c.operation_id == operations.c.id).exists()
        query = (
            sa.select(operations)
            .where(operations.c.sender_id == sender_id,
                   operations.c.state.in_(_EXECUTED_STATES),
                   operations.c.notified_at.is_(None),
                   claimed)
            .order_by(operations.c.finished_at, operations.c.created_at)
        )
        with self._connect() as conn:
            return [_to_operation(r) for r in conn.execute(query)]

    def mark_notified(self, operation_id: str, now: datetime | None = None) -> bool:
        """Records that the result was announced; True only for the one caller that did it."""
        now = _aware(now)
        with self._begin() as conn:
            result = conn.execute(
                operations.update()
                .where(operations.c.id == operation_id, operations.c.notified_at.is_(None))
                .values(notified_at=now)
            )
            if result.rowcount != 1:
                return False
            self._insert_audit(conn, operation_id, "notified", None, None, {}, now,
                               changes={"notified_at": now})
        return True

    # -- taught phrasings -----------------------------------------------------------------

    def add_taught(self, *, text: str, example: str, intent: str, source: str, taught_by: str,
                   channel: str, now: datetime | None = None) -> Taught:
        """Record a candidate phrasing for ``intent`` (reviewed later).

        TeachingError (a ValueError) if ``text`` or ``example`` is not one short, plain line.
        """
        from actions.teaching import check_phrase, parse_example  # lazily: it loads rasa_sdk

        check_phrase(text)
        parse_example(example)
        item = Taught(id=f"t-{secrets.token_hex(5)}", text=text, example=example,
                      intent=intent, source=source, taught_by=taught_by, channel=channel,
                      created_at=_aware(now), status=CANDIDATE, reviewed_by=None,
                      reviewed_at=None)
        with self._begin() as conn:
            conn.execute(taught.insert().values(**asdict(item)))
        return item

    def taught_examples(self, status: str | None = CANDIDATE, limit: int = 200) -> list[Taught]:
        """Taught phrasings, oldest first; ``status`` None lists all."""
        query = sa.select(taught)
        if status is not None:
            query = query.where(taught.c.status == status)
        query = query.order_by(taught.c.created_at, taught.c.id).limit(max(0, int(limit)))
        with self._connect() as conn:
            return [Taught(**dict(r._mapping)) for r in conn.execute(query)]

    def review_taught(self, taught_id: str, status: str, reviewer: str,
                      now: datetime | None = None) -> Taught | None:
        """Accept or reject a candidate; None if it is not (or no longer) a candidate."""
        if status not in (ACCEPTED, REJECTED):
            raise ValueError(f"status must be {ACCEPTED} or {REJECTED}, got {status!r}")
        if status == ACCEPTED:
            from actions.teaching import parse_example

            with self._connect() as conn:
                example = conn.execute(
                    sa.select(taught.c.example).where(taught.c.id == taught_id)).scalar()
            if example is not None:
                parse_example(example)  # one recorded before phrasings were checked
        with self._begin() as conn:
            moved = conn.execute(
                taught.update()
                .where(taught.c.id == taught_id, taught.c.status == CANDIDATE)
                .values(status=status, reviewed_by=reviewer, reviewed_at=_aware(now))
            )
            if moved.rowcount != 1:
                return None
            row = conn.execute(sa.select(taught).where(taught.c.id == taught_id)).one()
        return Taught(**dict(row._mapping))

    # -- connector state ------------------------------------------------------------------

    def remember(self, kind: str, key: str, value: Mapping[str, Any],
                 now: datetime | None = None) -> None:
        """Store (or replace) a connector's ``value`` under ``kind``/``key``."""
        now = _aware(now)
        row = {"value": dict(value), "updated_at": now}
        with self._begin() as conn:
            updated = conn.execute(
                channel_state.update()
                .where(channel_state.c.kind == kind, channel_state.c.key == key)
                .values(**row)
            )
            if updated.rowcount == 0:
                try:
                    with conn.begin_nested():
                        conn.execute(channel_state.insert().values(kind=kind, key=key, **row))
                except IntegrityError:  # another replica inserted it first: replace theirs
                    conn.execute(
                        channel_state.update()
                        .where(channel_state.c.kind == kind, channel_state.c.key == key)
                        .values(**row)
                    )

    def recall(self, kind: str, key: str) -> dict[str, Any] | None:
        """What ``remember`` stored under ``kind``/``key``, or None."""
        with self._connect() as conn:
            row = conn.execute(
                sa.select(channel_state.c.value)
                .where(channel_state.c.kind == kind, channel_state.c.key == key)
            ).first()
        return dict(row.value) if row is not None else None

    def first_time(self, kind: str, key: str, now: datetime | None = None) -> bool:
        """True for the one caller that sees ``kind``/``key`` first (e.g. an update id)."""
        now = _aware(now)
        self._ensure_schema()
        with self._translate():
            try:
                with self._engine.begin() as conn:
                    conn.execute(channel_state.insert().values(kind=kind, key=key, value={},
                                                               updated_at=now))
            except IntegrityError:
                return False
        return True

    def forget_older(self, kind: str, before: datetime) -> int:
        """Delete the ``kind`` entries last updated before ``before``; how many."""
        with self._begin() as conn:
            result = conn.execute(
                channel_state.delete()
                .where(channel_state.c.kind == kind,
                       channel_state.c.updated_at < _aware(before, "before"))
            )
        return int(result.rowcount or 0)

    # -- leases -------------------------------------------------------------------------

    def take_lease(self, name: str, owner: str, seconds: float,
                   now: datetime | None = None) -> Lease | None:
        """Hold (or keep holding) the lease ``name`` for ``seconds``; None if another
        owner holds it and it has not run out. The returned lease says whose it was.

        One winner when several try at once: an expired lease is taken with an UPDATE
        that names the old owner and its ``until``, a new one with an INSERT. Times are
        the database's clock (unless ``now`` is given), so replicas whose clocks differ
        still agree on when a lease runs out.
        """
        with self._begin() as conn:
            now = _aware(now) if now is not None else _database_now(conn)
            until = now + timedelta(seconds=seconds)
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(leases.insert().values(name=name, owner=owner,
                                                            until=until, since=now))
                except IntegrityError:  # another took it first
                    return None
                return Lease(name, owner, until, now, previous=None)
            if row.owner != owner and row.until > now:
                return None
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.owner == row.owner,
                       leases.c.until == row.until)
                .values(owner=owner, until=until,
                        since=row.since if row.owner == owner else now))
            if taken.rowcount != 1:
                return None
        return Lease(name, owner, until, row.since if row.owner == owner else now,
                     previous=None if row.owner == owner else str(row.owner))

    def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease up (only its owner can); True if it was held by ``owner``."""
        with self._begin() as conn:
            gone = conn.execute(leases.delete().where(leases.c.name == name,
                                                      leases.c.owner == owner))
        return bool(gone.rowcount)

    def lease_holder(self, name: str, now: datetime | None = None) -> str | None:
        """Who holds ``name`` now (None: nobody, or it ran out), by the database's clock."""
        with self._connect() as conn:
            now = _aware(now) if now is not None else _database_now(conn)
            row = conn.execute(sa.select(leases.c.owner, leases.c.until)
                               .where(leases.c.name == name)).first()
        return str(row.owner) if row is not None and row.until > now else None

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
        with self._begin() as conn:
            self._insert_audit(conn, operation_id, kind, actor, channel, dict(detail or {}),
                               _aware(now))

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
            query = query.where(operations.c.created_at >= _aware(since, "since"))
        query = query.order_by(operations.c.created_at.desc(), operations.c.id.desc())
        query = query.limit(max(0, int(limit)))
        with self._connect() as conn:
            ops = [_to_operation(r) for r in conn.execute(query)]
            events: dict[str, list[AuditEvent]] = {op.id: [] for op in ops}
            if ops:
                rows = conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.operation_id.in_(list(events)))
                    .order_by(audit_log.c.id)
                )
                for row in rows:
                    events[row.operation_id].append(_to_event(row))
        return [AuditRecord(operation=op, events=tuple(events[op.id])) for op in ops]

    def verify_audit(self, copies: Iterable[str | Path] = ()) -> AuditVerification:
        """Walks the audit chain and checks the operations table against it (``audit --verify``).

        With ``OPSBOT_AUDIT_FILE`` set, every row from the file's first on must be in both
        the file and the database. ``copies``: more files to take as the copy with it, such
        as the files of replicas on other hosts (each copies the rows it writes).

        One snapshot of the database, taken while the chain is locked, and the files as
        they were then: no row is between its copy and its commit, so writers carrying on
        meanwhile are not mistaken for tampering.
        """
        paths = [p for p in (self._audit_file, *(Path(c).expanduser() for c in copies)) if p]
        names = ["OPSBOT_AUDIT_FILE" if p == self._audit_file else str(p) for p in paths]
        name = names[0] if len(names) == 1 else f"the copies ({', '.join(names)})"
        missing: str | None = None
        with self._connect() as conn:
            if conn.dialect.name == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            elif conn.dialect.name == "sqlite" and not _sqlite_in_transaction(conn):
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
            found = verify_chain((dict(r._mapping) for r in rows), ops, copy, _LIFECYCLE)
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

    def _insert_audit(self, conn: Connection, operation_id: str | None, kind: str,
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
        if self._audit_file is not None:
            self._copy_row(conn, {"id": int(inserted.inserted_primary_key[0]), **row})

    def _copy_row(self, conn: Connection, row: Mapping[str, Any]) -> None:
        """Copies the row to OPSBOT_AUDIT_FILE, fsync'd, before its transaction commits.

        Fails closed: a row that cannot be copied fails its transaction, so nothing audited
        happens uncopied. Called with the chain locked, so the file is in id order.
        """
        assert self._audit_file is not None
        try:
            append_line(self._audit_file, file_line(row))
        except OSError as exc:
            raise self._failures.error(
                "audit log copy cannot be written right now",
                f"OPSBOT_AUDIT_FILE {self._audit_file}: cannot append audit row {row['id']} "
                f"({exc.strerror or exc}), so its transaction was rolled back: opsbot does "
                "nothing it cannot copy there. Make the file writable by opsbot's user, free "
                "space on its disk, or unset OPSBOT_AUDIT_FILE.", later=True) from exc
        conn.info.setdefault(_COPIED, []).append((row["id"], row["hash"]))

    def _void(self, copied: list[tuple[int, str]], exc: BaseException) -> None:
        """Takes back, in OPSBOT_AUDIT_FILE, the rows of a transaction that did not commit."""
        if not copied or self._audit_file is None:
            return
        rows, copied[:] = list(copied), []
        try:
            append_line(self._audit_file, void_line(
                rows, f"their transaction did not commit ({type(exc).__name__})"))
        except OSError as error:
            logger.error(
                "OPSBOT_AUDIT_FILE %s: audit row(s) %s were copied there but their transaction "
                "did not commit (%s), and the line that voids them could not be written (%s): "
                "opsbot audit --verify will report them as missing from the database.",
                self._audit_file, ", ".join(str(i) for i, _ in rows), type(exc).__name__,
                error.strerror or error)

    @contextmanager
    def _chain_held(self) -> Iterator[None]:
        """Holds the chain's lock, on a connection of its own, until the block ends: no
        writer is then between copying a row to OPSBOT_AUDIT_FILE and committing it."""
        with self._engine.begin() as side:
            _lock_chain(side)
            yield

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction in this database, for modules that keep their own tables in it
        (``actions.events``); committed on success, database errors become StoreError."""
        with self._begin() as conn:
            yield conn

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for reads in this database (see :meth:`transaction`)."""
        with self._connect() as conn:
            yield conn

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for creating another module's tables)."""
        return self._engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction, committed at the end of the block.

        The audit rows it appends are copied to OPSBOT_AUDIT_FILE before (``_copy_row``);
        if it does not commit, they are voided there: before the rollback when the block
        fails (the chain is still locked), after it when the commit does.
        """
        with self._engine.connect() as conn:
            copied: list[tuple[int, str]] = []
            conn.info[_COPIED] = copied
            try:
                with conn.begin():
                    try:
                        yield conn
                    except BaseException as exc:
                        self._void(copied, exc)
                        raise
            except BaseException as exc:
                self._void(copied, exc)
                raise
            finally:
                conn.info.pop(_COPIED, None)

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """A transaction, committed on success; database errors become StoreError."""
        self._ensure_schema()
        with self._translate(), self._write() as conn:
            yield conn

    @contextmanager
    def _connect(self) -> Iterator[Connection]:
        """A connection for reads; database errors become StoreError."""
        self._ensure_schema()
        with self._translate(), self._engine.connect() as conn:
            yield conn

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            with self._translate():
                for attempt in range(3):
                    try:
                        self._create_schema()
                        break
                    except OperationalError:
                        # Two processes creating a fresh SQLite file race on CREATE TABLE
                        # (PostgreSQL takes a lock instead); the loser finds the tables next time.
                        if self._engine.dialect.name != "sqlite" or attempt == 2:
                            raise
                        time.sleep(0.05 * (attempt + 1))
            self._schema_ready = True

    def _create_schema(self) -> None:
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _PG_SCHEMA_LOCK})
            metadata.create_all(conn)
            self._migrate_audit(conn)
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

    def _migrate_audit(self, conn: Connection) -> None:
        """Gives an audit log from before the chain its columns, and seals the rows in it.

        Those rows keep no hash of their own (the triggers forbid changing them); the first
        chained row, ``chain_started``, records their count, last id and digest instead.
        """
        def missing() -> list[str]:
            present = {c["name"] for c in sa.inspect(conn).get_columns(audit_log.name)}
            return [name for name in _CHAIN_COLUMNS if name not in present]

        if not missing():
            return
        _write_lock(conn)  # SQLite: DDL inside this transaction, one migrating process
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
            raise self._failures.error(
                "audit log failed its integrity check",
                "The audit log's hash columns were removed after its hash chain had started "
                f"(a {CHAIN_STARTED} row is there): it was tampered with, and opsbot will not "
                "re-seal it. Restore the database from a backup, or compare it with "
                "OPSBOT_AUDIT_FILE, before opsbot runs on it again.", later=False)
        if rows:
            count, last, digest = legacy_digest(rows)
            self._insert_audit(conn, None, CHAIN_STARTED, None, None,
                               {"rows_before": count, "last_id_before": last, "digest": digest},
                               utcnow())
            logger.info("audit log: %d rows from before the hash chain, sealed", count)

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Database errors become a StoreError fit for a chat (details logged once)."""
        try:
            yield
        except _Rollback as missing:
            raise StoreError(f"There is no operation {missing.operation_id}.") from None
        except SQLAlchemyError as exc:
            down = isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)) or \
                bool(getattr(exc, "connection_invalidated", False))
            raise self._failures.error(
                "operation store is unreachable right now" if down else "operation store failed",
                f"The operation store ({self._display}) failed: {self._reason(exc)}. Check that "
                "the database is reachable and OPSBOT_DB_URL is right.", later=True,
            ) from exc
        else:
            self._failures.clear()

    def _reason(self, exc: BaseException) -> str:
        """The first line of the driver's message, without the password or the SQL."""
        original = getattr(exc, "orig", None) or exc
        lines = str(original).strip().splitlines()
        text = lines[0] if lines else type(original).__name__
        for password in self._passwords:
            text = text.replace(password, "***")
        return text.rstrip(".")

    @staticmethod
    def _passwords_of(url: str) -> tuple[str, ...]:
        """Every password in ``url``: ``?password=`` may be given more than once."""
        try:
            parsed = make_url(url)
        except ArgumentError:
            found = re.search(r"://[^:/@]*:([^@]*)@", url)
            return (found.group(1),) if found and found.group(1) else ()
        in_query = parsed.query.get("password") or ()
        if isinstance(in_query, str):
            in_query = (in_query,)
        return tuple(p for p in (parsed.password, *in_query) if p)


def _database_now(conn: Connection) -> datetime:
    """The database server's clock, as an aware UTC datetime (SQLite: this host's)."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(sa.text("SELECT statement_timestamp()")).scalar()
        if value is not None:  # timestamptz: an aware datetime from the driver
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


class _Rollback(Exception):
    """Aborts a transaction because the operation it needed does not exist."""

    def __init__(self, operation_id: str) -> None:
        super().__init__(operation_id)
        self.operation_id = operation_id


def _sqlite_in_transaction(conn: Connection) -> bool:
    """Whether pysqlite has begun a transaction here (it does so only before a write)."""
    return bool(conn.connection.dbapi_connection.in_transaction)


def _write_lock(conn: Connection) -> None:
    """On SQLite, takes the database's write lock now, not at the transaction's first write.

    pysqlite begins a transaction only before a write, so a read before it could see a
    state another writer is replacing. A no-op elsewhere (PostgreSQL locks rows).
    """
    if conn.dialect.name == "sqlite" and not _sqlite_in_transaction(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _lock_chain(conn: Connection) -> None:
    """Serialises appends to the audit chain until this transaction ends."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_CHAIN_LOCK})
    else:
        _write_lock(conn)  # other databases: the unique prev_hash refuses a fork


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the CLI read while the action server writes; busy_timeout waits for locks."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
