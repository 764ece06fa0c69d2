"""A yes or a no is bound like the request: who, where, and what the policy needs.

The confirmation layer (``actions.confirmations``) with the handlers of the Jenkins
intents, the Jenkins simulator through python-jenkins and a four-eyes policy, no Rasa.
Each test replays one way around the binding: another channel, another chat, another
person, the REST channel for an approval, an operation that reached ``executing``
without the approval its decision needs, and lists of choices the policy would refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from actions import _runtime, confirmations
from actions.backends import JENKINS, Backends
from actions.backends.jenkins import JenkinsBackend, JenkinsConfig
from actions.guard import EXECUTING, PENDING_APPROVAL, OperationStore, Policy
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from simulators.jenkins import JenkinsSimulator
from tests.conftest import handle

ROOT = Path(__file__).resolve().parent.parent
GROUP = "telegram:-100"


def in_group(person: str, chat: str = GROUP) -> Who:
    user = {"alice": "42", "bob": "43", "carol": "44"}[person]
    return Who("telegram", user, f"{chat}:{user}", person, chat)


def over_rest(person: str) -> Who:
    return Who("rest", person, person, person)


@pytest.fixture(scope="module")
def sim() -> Iterator[JenkinsSimulator]:
    with JenkinsSimulator(queue_delay=0.0, build_seconds=600) as simulator:
        yield simulator


@pytest.fixture
def rt(sim: JenkinsSimulator, tmp_path: Path) -> Iterator[_runtime.Runtime]:
    policy = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    policy["rules"][0]["approval"] = ["release-manager"]
    policy["people"]["carol"]["identities"]["telegram"] = "44"
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    runtime = _runtime.Runtime(
        backends=Backends.of((JENKINS, JenkinsBackend(JenkinsConfig(sim.url, sim.user, sim.token,
                                                                    timeout=10)))),
        store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"), policy=Policy.load(path),
        rasa_url="http://127.0.0.1:9")
    _runtime.reset(runtime)
    yield runtime
    _runtime.reset(None)
    runtime.store.close()


def ask(rt: _runtime.Runtime, who: Who, intent: str, **entities: str) -> Turn:
    turn = Turn(OpsRequest(intent, intent, 0.99, entities), who, rt)
    handle(intent, turn)
    return turn


def decide_on(rt: _runtime.Runtime, who: Who, operation_id: str, yes: bool) -> str:
    turn = Turn(OpsRequest("affirm" if yes else "deny", "", 1.0, {}), who, rt)
    operation = rt.store.get(operation_id)
    assert operation is not None
    if yes:
        asyncio.run(confirmations.confirm(turn, operation_id, operation.digest))
    else:
        asyncio.run(confirmations.cancel(turn, operation_id))
    return "\n".join(r.get("text") or "" for r in turn.replies)


def only(turn: Turn) -> str:
    [operation_id] = turn.operations
    return operation_id


def state(rt: _runtime.Runtime, operation_id: str) -> str:
    operation = rt.store.get(operation_id)
    assert operation is not None
    return operation.state


def test_the_rest_channel_cannot_cancel_or_confirm_what_was_asked_in_telegram(
        rt: _runtime.Runtime) -> None:
    op = only(ask(rt, in_group("alice"), "deploy", service="checkout", version="5.13.1",
                  environment="staging"))
    said = decide_on(rt, over_rest("alice"), op, yes=False)
    assert said == f"{op} was asked for in telegram: cancel it there. It is still waiting."
    assert "confirm it there. Nothing ran." in decide_on(rt, over_rest("alice"), op, yes=True)
    assert state(rt, op) == "pending_confirmation"
    refused = [e for r in rt.store.audit_records(intent="deploy") for e in r.events
               if e.kind in ("refused_cancel", "refused_confirm")]
    assert [e.actor for e in refused] == ["alice", "alice"]


def test_another_chat_or_another_person_cannot_decide_the_requesters_confirmation(
        rt: _runtime.Runtime) -> None:
    op = only(ask(rt, in_group("alice"), "deploy", service="checkout", version="5.13.1",
                  environment="dev"))
    elsewhere = in_group("alice", "telegram:-200")
    assert "asked for in another telegram chat: cancel it there" in \
        decide_on(rt, elsewhere, op, yes=False)
    assert "Only alice, who asked for it, can cancel" in decide_on(rt, in_group("bob"), op,
                                                                    yes=False)
    assert state(rt, op) == "pending_confirmation"
    assert "Cancelled" in decide_on(rt, in_group("alice"), op, yes=False)
    assert state(rt, op) == "cancelled"


def test_an_approver_rejects_where_they_could_approve(rt: _runtime.Runtime) -> None:
    op = only(ask(rt, in_group("alice"), "deploy", service="payments", version="2.4.1",
                  environment="prod"))
    assert "must approve" in decide_on(rt, in_group("alice"), op, yes=True)
    assert state(rt, op) == PENDING_APPROVAL
    assert "cannot prove that. It is still waiting." in decide_on(rt, over_rest("carol"), op,
                                                                  yes=False)
    assert "Only alice" in decide_on(rt, in_group("bob"), op, yes=False)  # no role to reject
    assert state(rt, op) == PENDING_APPROVAL
    assert "Rejected" in decide_on(rt, in_group("carol"), op, yes=False)
    assert state(rt, op) == "cancelled"


def test_a_request_that_needs_an_approval_is_refused_through_rest(rt: _runtime.Runtime,
                                                                  sim: JenkinsSimulator) -> None:
    turn = ask(rt, over_rest("alice"), "deploy", service="payments", version="2.4.1",
               environment="prod")
    text = "\n".join(r.get("text") or "" for r in turn.replies)
    assert "Ask for it in your team's chat" in text and "Nothing ran" in text
    assert not [b for r in turn.replies for b in r.get("buttons") or []]
    assert not rt.store.open_for("alice")


def test_an_operation_executing_without_its_approval_never_reaches_jenkins(
        rt: _runtime.Runtime, sim: JenkinsSimulator) -> None:
    op = only(ask(rt, in_group("alice"), "deploy", service="payments", version="2.4.1",
                  environment="prod"))
    before = len(sim.builds("deploy-payments"))
    # As if some path had skipped the approval: confirmed, then straight to executing.
    rt.store.transition(op, {"pending_confirmation"}, EXECUTING, actor="alice",
                        event="confirmed", confirmed_by="alice", confirmed_at=datetime.now(UTC))
    operation = rt.store.get(op)
    assert operation is not None
    turn = Turn(OpsRequest("affirm", "", 1.0, {}), in_group("alice"), rt)
    asyncio.run(confirmations._execute(turn, operation))
    said = "\n".join(r.get("text") or "" for r in turn.replies)
    assert "I can't run that: it needs a second person with the release-manager role" in said
    assert state(rt, op) == "error" and len(sim.builds("deploy-payments")) == before


def test_choices_show_only_what_the_policy_lets_the_person_pick(rt: _runtime.Runtime) -> None:
    def offered(who: Who) -> list[str]:
        turn = ask(rt, who, "deploy", service="payments", version="2.4.1")
        return [b["title"] for r in turn.replies for b in r.get("buttons") or []]

    assert offered(in_group("alice")) == ["dev", "staging", "prod"]
    assert offered(in_group("bob")) == ["dev", "staging"]
