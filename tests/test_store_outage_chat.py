"""A database outage as a chat sees it: what failed and a reference, never where the
database is; the log has the details, once, under the same reference."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import _runtime
from actions.guard import OperationStore, Policy
from actions.guard.identity import IDENTITY_KEY, sign_identity
from actions.ops import ActionOpsRequest
from tests.conftest import free_port

ROOT = Path(__file__).parent.parent
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())


def ask(text: str, message_id: str) -> list[str]:
    """Alice asks through the REST channel; what the chat is told."""
    message = {
        "text": text, "message_id": message_id,
        "intent": {"name": "deploy", "confidence": 0.97},
        "entities": [{"entity": "service", "value": "payments"},
                     {"entity": "version", "value": "2.4.1"},
                     {"entity": "environment", "value": "staging"}],
        "metadata": {IDENTITY_KEY: sign_identity("rest", "alice", "alice", message_id)},
    }
    dispatcher = CollectingDispatcher()
    tracker = Tracker("alice", {}, message, [], False, None, {}, "action_listen")
    asyncio.run(ActionOpsRequest().run(dispatcher, tracker, DOMAIN))
    return [str(m.get("text") or m) for m in dispatcher.messages]


@pytest.fixture
def down(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, ...]]:
    """A runtime whose store is down; yields what no chat message may contain."""
    port = free_port()
    urls = {
        "postgresql": (f"postgresql://opsbot_user:s3cr3t-pw@127.0.0.1:{port}/payments_db",
                       ("127.0.0.1", str(port), "opsbot_user", "payments_db", "s3cr3t-pw")),
        "sqlite": (f"sqlite:///{tmp_path / 'gone' / 'opsbot.db'}", (str(tmp_path), "sqlite")),
    }
    url, secrets = urls[request.param]
    store = OperationStore(url)
    _runtime.reset(_runtime.Runtime(store=store,
                                    policy=Policy.load(ROOT / "policy.yml"),
                                    rasa_url="http://127.0.0.1:9"))
    yield secrets
    _runtime.reset(None)
    store.close()


@pytest.mark.parametrize("down", ["postgresql", "sqlite"], indirect=True)
def test_a_chat_is_told_what_failed_never_where(down: tuple[str, ...],
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="actions.storage._database")
    said = ask("deploy payments 2.4.1 to staging", "rest-1") + \
        ask("deploy payments 2.4.1 to staging", "rest-2")
    assert said and all(text.startswith("opsbot's operation store is unreachable right now")
                        for text in said), said
    for text in said:
        for secret in down:
            assert secret not in text, text
    references = {text.split("(reference ", 1)[1].split(")", 1)[0] for text in said}
    assert len(references) == 1  # one outage: one reference, one line of details
    details = [r.getMessage() for r in caplog.records
               if r.name == "actions.storage._database" and r.levelno >= logging.WARNING]
    assert len(details) == 1 and references.pop() in details[0]
    assert "OPSBOT_DB_URL" in details[0] and "s3cr3t-pw" not in caplog.text
