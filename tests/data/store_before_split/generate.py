"""Makes the stores in this directory with opsbot as it was before the store was split.

Not run by the test suite: it uses the API of commit 2d96825 (``OperationStore`` holding
operations, audit, taught phrasings, channel state and leases). In a checkout of that
commit, after ``make install``:

    .venv/bin/python generate.py sqlite:///opsbot.db audit-sqlite.jsonl
    .venv/bin/python generate.py "$URL_OF_AN_EMPTY_POSTGRESQL_SCHEMA" audit-pg.jsonl
    pg_dump --inserts --no-owner --no-privileges -n THAT_SCHEMA ...

and in the dump, the psql commands, the SET lines and the schema's name taken out
(``opsbot-pg.sql``, which loads into any schema on the search path).

``tests/test_store_upgrade.py`` opens them with today's code.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from actions.events._model import Event
from actions.events.store import EventStore, Filters
from actions.guard import (
    ACCEPTED,
    EXECUTING,
    PENDING_APPROVAL,
    PENDING_CONFIRMATION,
    SUCCEEDED,
    OperationStore,
)

T0 = datetime(2025, 3, 14, 9, 30, tzinfo=UTC)


def main(url: str, audit_file: str | None) -> None:
    store = OperationStore(url, audit_file=audit_file)
    # A deploy confirmed, run and announced.
    done = store.create(intent="deploy", risk="high", requester="alice", sender_id="telegram:42:7",
                        channel="telegram", text="deploy payments 2.4.1 to prod",
                        confidence=0.97, ttl_seconds=300,
                        parameters={"service": "payments", "version": "2.4.1",
                                    "environment": "prod"},
                        reply_to={"chat_id": 42}, now=T0)
    store.transition(done.id, [PENDING_CONFIRMATION], EXECUTING, actor="alice",
                     confirmed_by="alice", confirmed_at=T0 + timedelta(seconds=20),
                     now=T0 + timedelta(seconds=20))
    store.claim_execution(done.id, actor="alice", now=T0 + timedelta(seconds=21))
    store.update_backend_ref(done.id, job="payments-deploy", build=118)
    store.transition(done.id, [EXECUTING], SUCCEEDED, actor=None, result="SUCCESS",
                     now=T0 + timedelta(minutes=3))
    store.mark_notified(done.id, now=T0 + timedelta(minutes=3, seconds=5))
    # One waiting for a second person's approval.
    waiting = store.create(intent="rollback", risk="high", requester="bob",
                           sender_id="teams:conv-1", channel="teams", text="roll back search",
                           confidence=0.91, ttl_seconds=3600,
                           parameters={"service": "search", "environment": "prod"},
                           approval_roles=["sre"], now=T0 + timedelta(minutes=5))
    store.transition(waiting.id, [PENDING_CONFIRMATION], PENDING_APPROVAL, actor="bob",
                     confirmed_by="bob", confirmed_at=T0 + timedelta(minutes=6),
                     now=T0 + timedelta(minutes=6))
    # One that expired unconfirmed.
    store.create(intent="run_build", risk="low", requester="carol", sender_id="rest:carol",
                 channel="rest", text="run the nightly build", confidence=0.88,
                 ttl_seconds=60, parameters={"job": "nightly"}, now=T0 + timedelta(minutes=7))
    store.expire_due(now=T0 + timedelta(minutes=9))
    # An audit row about no operation.
    store.audit(None, "forged_payload", actor="telegram:99", channel="telegram",
                detail={"payload": "/affirm{\"operation_id\": \"op-x\"}", "reason": "unsigned"},
                now=T0 + timedelta(minutes=10))

    one = store.add_taught(text="ship payments", example="ship [payments](service)",
                           intent="deploy", source="chat", taught_by="alice",
                           channel="telegram", now=T0 + timedelta(minutes=11))
    store.add_taught(text="who is red", example="who is red", intent="list_jobs",
                     source="cli", taught_by="bob", channel="cli",
                     now=T0 + timedelta(minutes=12))
    store.review_taught(one.id, ACCEPTED, "carol", now=T0 + timedelta(minutes=13))

    store.remember("teams-ref", "conv-1", {"serviceUrl": "http://teams.example", "id": "conv-1"},
                   now=T0)
    store.remember("telegram-button", "b1", {"payload": "/affirm"}, now=T0)
    store.first_time("telegram-seen", "update:1001", now=T0)
    store.take_lease("telegram-poller:1234", "host-a:11", 20, now=T0)
    store.take_lease("operation:" + done.id, "host-b:22", 20, now=T0)

    events = EventStore(store)
    sub, _ = events.subscribe(conversation="telegram:42", channel="telegram",
                              address={"chat_id": 42}, filters=Filters.build(sources=["alerts"]),
                              created_by="alice", now=T0)
    red = Event(source="alertmanager", key="am:HighErrors:payments:firing", group="am:HighErrors",
                kind="failure", status="firing", title="HighErrors on payments",
                service="payments", environment="prod", severity="critical",
                started_at=T0, aliases=("am:alias:1",))
    events.record(red, now=T0 + timedelta(minutes=14))
    [delivery] = events.claim("host-a:11", now=T0 + timedelta(minutes=14))
    events.sent(delivery, "host-a:11", {"message_id": 501}, now=T0 + timedelta(minutes=14))
    green = Event(source="alertmanager", key="am:HighErrors:payments:resolved",
                  group="am:HighErrors", kind="recovery", status="resolved",
                  title="HighErrors on payments", service="payments", environment="prod",
                  severity="critical", started_at=T0, ended_at=T0 + timedelta(minutes=20))
    events.record(green, now=T0 + timedelta(minutes=20))  # left pending
    assert store.verify_audit().ok
    print(sub.id, done.id, waiting.id, one.id)
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
