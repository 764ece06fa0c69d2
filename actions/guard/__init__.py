"""The safety layer: policy, confirmations, audit log and the operation store.

- ``policy``: policy.yml, who is who in each connector, and what a request needs
  (``Policy.decide`` returns a ``Decision``: allowed, risk, approval roles, reason).
- ``reach``: what a request reaches in Jenkins (a deploy job, and where it deploys),
  told to the policy whatever the request is called, and checked at the Jenkins call.
- ``identity``: who sent a message (signed by the connector that proved it), and the
  signed button payloads, bound to their chat and lifetime.
- ``store``: the operations (confirmation, approval, execution, result), the
  exactly-once execution key and the append-only audit log, in opsbot's database
  (``actions.storage``); ``_operations`` holds their states and record, ``_audit_log``
  the audit log and its copy.
- ``_audit_view``: the audit log as a table or JSON, for ``opsbot audit``.
- ``_audit_chain``: the audit log's hash chain and its check, ``opsbot audit --verify``.
"""

from actions.guard._audit_view import format_json, format_table, parse_since
from actions.guard.policy import RISKS, Decision, Policy, PolicyError, parse_duration
from actions.guard.store import (
    CANCELLED,
    ERROR,
    EXECUTING,
    EXPIRED,
    FAILED,
    FINAL_STATES,
    OPEN_STATES,
    PENDING_APPROVAL,
    PENDING_CONFIRMATION,
    REFUSED,
    SUCCEEDED,
    SUPERSEDED,
    UNKNOWN,
    AuditEvent,
    AuditRecord,
    Operation,
    OperationStore,
    StoreError,
    params_digest,
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
    "RISKS",
    "SUCCEEDED",
    "SUPERSEDED",
    "UNKNOWN",
    "AuditEvent",
    "AuditRecord",
    "Decision",
    "Operation",
    "OperationStore",
    "Policy",
    "PolicyError",
    "StoreError",
    "format_json",
    "format_table",
    "params_digest",
    "parse_duration",
    "parse_since",
]
