"""The watcher closes previews nobody answered: their buttons stop working at the expiry
(the payloads carry it), so without the watcher the audit would call them pending forever."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from actions import _runtime, _watcher
from actions.backends import Backends
from actions.guard import EXPIRED, PENDING_CONFIRMATION, OperationStore
from actions.stores import Stores


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[OperationStore]:
    opened = OperationStore(f"sqlite:///{tmp_path / 'opsbot.db'}")
    runtime = SimpleNamespace(store=opened, stores=Stores.around(opened), backends=Backends(),
                              rasa_url="http://127.0.0.1:9")
    monkeypatch.setattr(_runtime, "runtime", lambda: runtime)
    yield opened
    opened.close()


def preview(store: OperationStore, created: datetime, ttl: float) -> str:
    return store.create(intent="deploy", risk="change", requester="alice", sender_id="alice",
                        channel="rest", text="deploy payments 2.4.1 to dev", confidence=1.0,
                        parameters={"service": "payments", "version": "2.4.1",
                                    "environment": "dev"}, ttl_seconds=ttl, now=created).id


def test_a_scan_expires_what_is_due_once_and_leaves_the_rest(store: OperationStore) -> None:
    now = datetime.now(UTC)
    due = preview(store, now - timedelta(minutes=10), ttl=300)
    open_ = preview(store, now, ttl=300)
    watcher = _watcher.Watcher()

    watcher.scan()
    watcher.scan()  # a second replica's scan, or the next one: nothing more to do

    assert store.get(due).state == EXPIRED  # type: ignore[union-attr]
    assert store.get(open_).state == PENDING_CONFIRMATION  # type: ignore[union-attr]
    [record] = [r for r in store.audit_records() if r.operation.id == due]
    events = [e.kind for e in record.events]
    assert events.count("expired") == 1, events
