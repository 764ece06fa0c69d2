"""query_logs through the action layer, on the file source (no Rasa server)."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from actions import _runtime
from actions.backends import LOGS, Backends
from actions.backends.logs import FileLogSource
from actions.flows.logs import free_text, query_logs
from actions.guard import OperationStore, Policy
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from simulators.logs import generate, write_files

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("logs")
    write_files(generate(datetime.now(UTC)), directory)
    return directory


def _turn(tmp_path: Path, log_dir: Path | None, text: str, **entities: str) -> Turn:
    rt = _runtime.Runtime(backends=Backends.of((LOGS, FileLogSource(log_dir) if log_dir else None)),
                          store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
                          policy=Policy.load(ROOT / "policy.yml"), rasa_url="http://127.0.0.1:9")
    return Turn(OpsRequest("query_logs", text, 0.99, entities),
                Who("rest", "alice", "alice", "alice"), rt)


def test_errors_from_payments_in_the_last_hour(tmp_path: Path, log_dir: Path) -> None:
    turn = _turn(tmp_path, log_dir, "errors from payments in the last hour", service="payments",
                 log_level="error", time_range="in the last hour")
    asyncio.run(query_logs(turn))
    text = turn.replies[0]["text"]
    assert "error lines from payments" in text
    lines = [line for line in text.splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]
    assert lines and all("payments" in line and ("ERROR" in line or "FATAL" in line)
                         for line in lines)
    assert [line.split()[0] for line in lines] == sorted((line.split()[0] for line in lines),
                                                         reverse=True)


def test_unknown_service_bad_range_and_no_source(tmp_path: Path, log_dir: Path) -> None:
    turn = _turn(tmp_path, log_dir, "errors from warpdrive", service="warpdrive")
    asyncio.run(query_logs(turn))
    assert "no logs for a service called \"warpdrive\"" in turn.replies[0]["text"]
    turn = _turn(tmp_path, log_dir, "errors after the thing", time_range="after the thing")
    asyncio.run(query_logs(turn))
    assert "after the thing" in turn.replies[0]["text"]
    turn = _turn(tmp_path, None, "errors from payments", service="payments")
    asyncio.run(query_logs(turn))
    assert "no log source is connected" in turn.replies[0]["text"]


@pytest.mark.parametrize("text, expected", [
    ("errors from payments containing timeout", "timeout"),
    ('logs from search mentioning "card declined"', "card declined"),
    ("errors from payments in the last hour", None),
    ("logs with errors", None),
])
def test_free_text(text: str, expected: str | None) -> None:
    assert free_text(text) == expected


READ_POLICY = """
people: {alice: {roles: [sre], identities: {rest: alice}}}
rules:
  - intents: [query_logs]
    when: {service: billing}
    risk: read
    unknown: true
  - intents: [query_logs]
    risk: read
    roles: [sre]
"""


def test_reads_are_decided_by_the_policy_and_a_refused_one_shows_nothing(
        tmp_path: Path, log_dir: Path) -> None:
    """A rule that opens billing's logs to strangers opens no other service's (issue 12)."""
    import yaml
    from rasa_sdk import Tracker
    from rasa_sdk.executor import CollectingDispatcher

    from actions.guard.identity import IDENTITY_KEY, sign_identity
    from actions.ops import ActionOpsRequest

    store = OperationStore(f"sqlite:///{tmp_path / 'o.db'}")
    _runtime.reset(_runtime.Runtime(backends=Backends.of((LOGS, FileLogSource(log_dir))),
                                    store=store, policy=Policy.parse(yaml.safe_load(READ_POLICY)),
                                    rasa_url="http://127.0.0.1:9"))

    def ask(sender: str, service: str) -> str:
        message = {"text": f"errors from {service} in the last hour", "message_id": "rest-1",
                   "intent": {"name": "query_logs", "confidence": 0.99},
                   "entities": [{"entity": "service", "value": service},
                                {"entity": "log_level", "value": "error"},
                                {"entity": "time_range", "value": "in the last hour"}],
                   "metadata": {IDENTITY_KEY: sign_identity("rest", sender, sender, "rest-1")}}
        dispatcher = CollectingDispatcher()
        tracker = Tracker(sender, {}, message, [], False, None, {}, "action_listen")
        asyncio.run(ActionOpsRequest().run(dispatcher, tracker, {}))
        return "\n".join(str(m.get("text") or "") for m in dispatcher.messages)

    try:
        refused = ask("mallory", "payments")
        assert "I can't show you that" in refused and "rest id, mallory" in refused
        assert "error lines" not in refused and not re.search(r"\d\d:\d\d:\d\d ", refused)
        assert "error lines from billing" in ask("mallory", "billing")
        assert "error lines from payments" in ask("alice", "payments")
        kinds = [r.operation.result for r in store.audit_records(intent="query_logs")]
        assert kinds.count("refused") == 1 and kinds.count("answered") == 2
    finally:
        _runtime.reset(None)
        store.close()
