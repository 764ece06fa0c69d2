"""Operations: their states and the moves between them, the record, the tables.

What ``OperationStore`` keeps for each requested operation (``opsbot_operations``), its
exactly-once execution key (``opsbot_executions``), and the moves an operation may make,
which ``transition`` enforces and ``opsbot audit --verify`` checks every audit row against.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from actions.guard._audit_chain import Lifecycle
from actions.storage._columns import JSONText, UTCDateTime, aware

__all__ = [
    "CANCELLED",
    "ERROR",
    "EXECUTED_STATES",
    "EXECUTING",
    "EXPIRED",
    "FAILED",
    "FINAL_STATES",
    "LIFECYCLE",
    "MOVES",
    "OPEN_STATES",
    "PENDING_APPROVAL",
    "PENDING_CONFIRMATION",
    "REFUSED",
    "SUCCEEDED",
    "SUPERSEDED",
    "TRANSITION_FIELDS",
    "UNKNOWN",
    "Operation",
    "executions",
    "iso",
    "operations",
    "params_digest",
    "to_operation",
]

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
EXECUTED_STATES = (SUCCEEDED, FAILED, ERROR)
# Where each state may move: transition() refuses any other move, and ``audit --verify``
# any audit row that makes one. Confirming (by the requester) leaves pending_confirmation
# for approval or execution; approving (by a second person) leaves pending_approval.
MOVES: dict[str, frozenset[str]] = {
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
TRANSITION_FIELDS = frozenset({
    "confirmed_by", "confirmed_at", "approved_by", "approved_at",
    "backend_ref", "result", "result_detail", "finished_at",
})


def params_digest(intent: str, parameters: Mapping[str, str]) -> str:
    """A short fingerprint of an intent and its exact parameters (canonical JSON, sha256)."""
    canonical = json.dumps(
        {"intent": intent, "parameters": {str(k): str(v) for k, v in parameters.items()}},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


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
        return aware(now) >= self.expires_at

    @property
    def is_open(self) -> bool:
        """Waiting for a confirmation or an approval."""
        return self.state in OPEN_STATES

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


_metadata = sa.MetaData()

operations = sa.Table(
    "opsbot_operations", _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("intent", sa.String(64), nullable=False),
    sa.Column("risk", sa.String(16), nullable=False),
    sa.Column("requester", sa.String(255), nullable=False),
    sa.Column("sender_id", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("parameters", JSONText, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("approval_roles", JSONText, nullable=False),
    sa.Column("confirmed_by", sa.String(255)),
    sa.Column("confirmed_at", UTCDateTime),
    sa.Column("approved_by", sa.String(255)),
    sa.Column("approved_at", UTCDateTime),
    sa.Column("backend_ref", JSONText, nullable=False),
    sa.Column("result", sa.Text),
    sa.Column("result_detail", sa.Text),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("notified_at", UTCDateTime),
    sa.Column("reply_to", JSONText, nullable=False),
    sa.Index("ix_opsbot_operations_sender_state", "sender_id", "state"),
    sa.Index("ix_opsbot_operations_state", "state"),
    sa.Index("ix_opsbot_operations_created_at", "created_at"),
)

# The changes opsbot makes to an operation, which --verify checks each audit row against.
LIFECYCLE = Lifecycle(
    initial=PENDING_CONFIRMATION, moves=MOVES, confirms=_CONFIRMS, approves=_APPROVES,
    changeable=TRANSITION_FIELDS | {"state", "notified_at"},
    fixed=frozenset(operations.c.keys()) - TRANSITION_FIELDS - {"state", "notified_at"},
)

# The exactly-once key: whoever inserts an operation's row here runs it.
executions = sa.Table(
    "opsbot_executions", _metadata,
    sa.Column("operation_id", sa.String(32), primary_key=True),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
)


def to_operation(row: Any) -> Operation:
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

