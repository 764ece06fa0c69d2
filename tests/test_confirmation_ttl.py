"""A preview and an expired confirmation name policy.yml's confirmation_ttl as it is set."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from actions import _runtime, confirmations
from actions.guard import OperationStore, Policy
from actions.requests import OpsRequest
from actions.turn import Turn, Who

ROOT = Path(__file__).resolve().parent.parent
ALICE = Who("rest", "alice", "alice", "alice")


def _runtime_with(ttl: str, tmp_path: Path) -> _runtime.Runtime:
    data = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    data["confirmation_ttl"] = ttl
    return _runtime.Runtime(store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
                            policy=Policy.parse(data), rasa_url="http://127.0.0.1:9")


Make = Callable[[str], _runtime.Runtime]


@pytest.fixture
def make(tmp_path: Path) -> Iterator[Make]:
    made: list[_runtime.Runtime] = []

    def build(ttl: str) -> _runtime.Runtime:
        (tmp_path / ttl).mkdir()
        made.append(_runtime_with(ttl, tmp_path / ttl))
        return made[-1]

    yield build
    for rt in made:
        rt.store.close()


def _preview(rt: _runtime.Runtime) -> tuple[str, str, str]:
    """Propose a build: (the preview's text, operation id, digest)."""
    turn = Turn(OpsRequest("run_build", "build payments-ci", 0.99, {}), ALICE, rt)
    operation = asyncio.run(confirmations.propose(turn, "run_build", {"job": "payments-ci"},
                                                  "Run payments-ci."))
    assert operation is not None
    return "\n".join(r.get("text") or "" for r in turn.replies), operation.id, operation.digest


@pytest.mark.parametrize(("ttl", "said"), [("30s", "30 seconds"), ("90s", "90 seconds"),
                                           ("5m", "5 minutes"), ("1m", "1 minute"),
                                           ("2h", "2 hours")])
def test_the_preview_names_the_ttl(make: Make, ttl: str, said: str) -> None:
    text, _, _ = _preview(make(ttl))
    assert f"Confirm within {said} (until " in text, text


def test_an_expired_confirmation_names_the_ttl_and_runs_nothing(make: Make,
                                                                 tmp_path: Path) -> None:
    rt = make("30s")
    _, operation_id, digest = _preview(rt)
    past = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(tmp_path / "30s" / "o.db") as db:  # the preview, aged past its expiry
        db.execute("UPDATE opsbot_operations SET expires_at = ? WHERE id = ?",
                   (past, operation_id))
    turn = Turn(OpsRequest("affirm", "yes", 1.0, {}), ALICE, rt)
    asyncio.run(confirmations.confirm(turn, operation_id, digest))
    text = "\n".join(r.get("text") or "" for r in turn.replies)
    assert "(30 seconds after the preview); nothing ran" in text, text
    assert rt.store.get(operation_id).state == "expired"  # type: ignore[union-attr]
