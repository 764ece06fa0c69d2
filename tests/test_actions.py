"""Actions with a hand-built Tracker and a CollectingDispatcher (no Rasa server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import _runtime
from actions.guard import OperationStore, Policy
from actions.guard.identity import IDENTITY_KEY, sign_identity
from actions.intents import BUILT_IN
from actions.ops import ActionCancel, ActionConfirm, ActionOpsRequest
from actions.requests import OpsRequest

ROOT = Path(__file__).parent.parent
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())


@pytest.fixture(autouse=True)
def no_backends(tmp_path: Path) -> Any:
    """A runtime with no Jenkins, a fresh store and the demo policy."""
    store = OperationStore(f"sqlite:///{tmp_path / 'opsbot.db'}")
    _runtime.reset(_runtime.Runtime(store=store,
                                    policy=Policy.load(ROOT / "policy.yml"),
                                    rasa_url="http://127.0.0.1:9"))
    yield store
    _runtime.reset(None)
    store.close()


def tracker(text: str, intent: str, entities: list[dict[str, Any]] | None = None) -> Tracker:
    message = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.97},
        "entities": entities or [],
        "message_id": "rest-1",
        "metadata": {IDENTITY_KEY: sign_identity("rest", "alice", "alice", "rest-1")},
    }
    return Tracker("alice", {}, message, [], False, None, {}, "action_listen")


def run(action: Any, t: Tracker) -> CollectingDispatcher:
    dispatcher = CollectingDispatcher()
    asyncio.run(action.run(dispatcher, t, DOMAIN))
    return dispatcher


def render(message: dict[str, Any]) -> str:
    if message.get("text"):
        return str(message["text"])
    template = DOMAIN["responses"][message["response"]][0]["text"]
    return template.format(**{k: v for k, v in message.items() if k != "response"})


def test_deploy_says_what_it_understood_and_that_no_jenkins_is_connected() -> None:
    t = tracker("deploy payments 2.4.1 to production", "deploy", [
        {"entity": "service", "value": "payments"},
        {"entity": "version", "value": "2.4.1"},
        {"entity": "environment", "value": "prod"},
    ])
    dispatcher = run(ActionOpsRequest(), t)
    assert len(dispatcher.messages) == 1
    text = render(dispatcher.messages[0])
    assert "deploy payments 2.4.1 to prod" in text
    assert "no Jenkins is connected" in text
    assert "nothing ran" in text


def test_a_yes_or_no_with_nothing_pending_says_so() -> None:
    for action, intent in ((ActionConfirm(), "affirm"), (ActionCancel(), "deny")):
        text = render(run(action, tracker("yes", intent)).messages[0])
        assert "nothing waiting" in text


def test_a_confirm_payload_for_an_unknown_operation_runs_nothing() -> None:
    t = tracker('/affirm{"operation_id":"op-000000000000"}', "affirm",
                [{"entity": "operation_id", "value": "op-000000000000"}])
    text = render(run(ActionConfirm(), t).messages[0])
    assert "no operation op-000000000000" in text and "nothing ran" in text


# Intents served by a backend that may not be connected (not opsbot's own store).
BACKED = {kind.intent: kind.backend for kind in BUILT_IN
          if kind.handler is not None and not kind.backend.startswith("opsbot")}


@pytest.mark.parametrize("intent", sorted(BACKED))
def test_every_ops_intent_names_its_backend(intent: str) -> None:
    dispatcher = run(ActionOpsRequest(), tracker("something", intent))
    text = render(dispatcher.messages[0])
    assert BACKED[intent] in text



def test_descriptions_use_the_entities() -> None:
    def describe(intent: str, **entities: str) -> str:
        return OpsRequest(intent, "", 1.0, entities).describe()

    assert describe("rollback", service="checkout", environment="prod") == (
        "roll back checkout on prod")
    assert describe("stop_build", job="checkout-ci", build_number="87") == (
        "stop build checkout-ci #87")
    assert describe("issue_status", issue_key="OPS-123") == "show the status of OPS-123"
    assert describe("query_logs", service="payments", log_level="error",
                    time_range="last hour") == (
        "search the logs of payments for error lines from last hour"
    )
    assert describe("subscribe", event_source="alerts", service="payments",
                    environment="prod") == "subscribe: alerts for payments on prod"
    assert describe("subscribe", event_source="builds,checks", severity="critical",
                    job="nightly-integration", event_kind="failure") == (
        "subscribe: critical builds and checks of nightly-integration, failures")
    assert describe("subscribe", event_kind="all") == "subscribe: events, every result"
    assert describe("unsubscribe", subscription_id="3f2a,c0a1") == "unsubscribe from 3f2a and c0a1"
    assert describe("unsubscribe") == "unsubscribe from this conversation's subscriptions"
    assert describe("list_subscriptions") == "list this conversation's subscriptions"


def test_a_message_may_name_several_sources_and_kinds() -> None:
    request = OpsRequest.from_tracker(tracker("post builds and checks for payments here",
                                              "subscribe", [
        {"entity": "event_source", "value": "builds"},
        {"entity": "service", "value": "payments"},
        {"entity": "event_source", "value": "checks"},
        {"entity": "event_source", "value": "builds"},
        {"entity": "service", "value": "billing"},
    ]))
    assert request.values("event_source") == ["builds", "checks"]
    assert request.get("service") == "payments"  # single-valued: the first one
    assert request.values("event_kind") == []


def test_an_unexpected_failure_gives_a_reference_not_a_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: OpsRequest) -> str:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(OpsRequest, "describe", broken)
    dispatcher = run(ActionOpsRequest(), tracker("deploy", "deploy"))
    message = dispatcher.messages[0]
    assert message["response"] == "utter_internal_error"
    assert len(message["reference"]) == 8
    assert "secret" not in render(message)


@pytest.mark.parametrize(("intent", "opening"), [
    ("deploy", "Deploying payments 2.4.0 to prod did not succeed: FAILURE in 41s "),
    ("rollback", "Rolling back payments on prod to 2.4.0 did not succeed: FAILURE in 41s "),
])
def test_a_failed_deploy_or_rollback_is_said_as_what_it_was(intent: str, opening: str) -> None:
    from datetime import UTC, datetime

    from actions.flows.jenkins import completion_message
    from actions.guard import Operation

    now = datetime.now(UTC)
    operation = Operation(
        id="op-1", intent=intent, risk="high", requester="alice", sender_id="rest:alice",
        channel="rest", text="", confidence=1.0,
        parameters={"service": "payments", "version": "2.4.0", "environment": "prod"},
        digest="d", state="failed", created_at=now, expires_at=now, approval_roles=(),
        confirmed_by="alice", confirmed_at=now, approved_by=None, approved_at=None,
        backend_ref={"job": "deploy-payments", "build_number": 7, "duration_s": 41},
        result="FAILURE", result_detail=None, finished_at=now, notified_at=None, reply_to={})
    said = completion_message(operation)
    assert said.startswith(opening + "(deploy-payments #7).")
    assert "prod keeps its previous version" in said
