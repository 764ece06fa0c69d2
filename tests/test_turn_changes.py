"""A turn reports which operations it moved: a press that moved none changed nothing, and
the connectors that can answer one person alone (Slack) answer the presser alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from actions import _runtime, confirmations
from actions.guard import OperationStore, Policy
from actions.requests import OpsRequest
from actions.turn import Turn, Who

ROOT = Path(__file__).resolve().parent.parent
ALICE = Who("rest", "alice", "alice", "alice")
BOB = Who("rest", "bob", "bob", "bob")


@pytest.fixture
def rt(tmp_path: Path) -> Iterator[_runtime.Runtime]:
    runtime = _runtime.Runtime(
        store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
        policy=Policy.parse(yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))),
        rasa_url="http://127.0.0.1:9")
    yield runtime
    runtime.store.close()


def _turn(rt: _runtime.Runtime, who: Who, text: str = "build payments-ci") -> Turn:
    return Turn(OpsRequest("run_build", text, 0.99, {}), who, rt)


def test_only_the_turn_that_decides_reports_a_change(rt: _runtime.Runtime) -> None:
    asking = _turn(rt, ALICE)
    operation = asyncio.run(confirmations.propose(asking, "run_build", {"job": "payments-ci"},
                                                  "Run payments-ci."))
    assert operation is not None and asking.changed == {operation.id}

    bobs = _turn(rt, BOB, "no")
    asyncio.run(confirmations.cancel(bobs, operation.id))
    assert bobs.operations == {operation.id: "pending_confirmation"} and bobs.changed == set()

    cancelling = _turn(rt, ALICE, "no")
    asyncio.run(confirmations.cancel(cancelling, operation.id))
    assert cancelling.changed == {operation.id}

    again = _turn(rt, ALICE, "no")  # the second click of a double click
    asyncio.run(confirmations.cancel(again, operation.id))
    assert again.operations == {operation.id: "cancelled"} and again.changed == set()
    late = _turn(rt, ALICE, "yes")
    asyncio.run(confirmations.confirm(late, operation.id, operation.digest))
    assert "cancelled" in late.replies[0]["text"] and late.changed == set()


def test_a_newer_request_reports_the_preview_it_replaced(rt: _runtime.Runtime) -> None:
    first = asyncio.run(confirmations.propose(_turn(rt, ALICE), "run_build",
                                              {"job": "payments-ci"}, "Run payments-ci."))
    newer = _turn(rt, ALICE)
    second = asyncio.run(confirmations.propose(newer, "run_build", {"job": "checkout-ci"},
                                               "Run checkout-ci."))
    assert first is not None and second is not None
    assert newer.operations[first.id] == "superseded"
    assert newer.changed == {first.id, second.id}
