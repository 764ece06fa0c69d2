"""Actions with a hand-built Tracker and a CollectingDispatcher (no Rasa server)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.ops import ActionOpsRequest
from actions.requests import BACKEND_OF_INTENT, OpsRequest

DOMAIN = yaml.safe_load((Path(__file__).parent.parent / "domain.yml").read_text())


def tracker(text: str, intent: str, entities: list[dict[str, Any]] | None = None) -> Tracker:
    message = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.97},
        "entities": entities or [],
    }
    return Tracker("alice", {}, message, [], False, None, {}, "action_listen")


def run(action: Any, t: Tracker) -> CollectingDispatcher:
    dispatcher = CollectingDispatcher()
    asyncio.run(action.run(dispatcher, t, DOMAIN))
    return dispatcher


def render(message: dict[str, Any]) -> str:
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


@pytest.mark.parametrize("intent", sorted(BACKEND_OF_INTENT))
def test_every_ops_intent_names_its_backend(intent: str) -> None:
    dispatcher = run(ActionOpsRequest(), tracker("something", intent))
    text = render(dispatcher.messages[0])
    assert BACKEND_OF_INTENT[intent] in text


def test_every_ops_intent_in_the_domain_has_a_backend() -> None:
    chat_intents = {"greet", "goodbye", "thank", "help", "affirm", "deny", "out_of_scope"}
    assert set(DOMAIN["intents"]) - chat_intents == set(BACKEND_OF_INTENT)


def test_descriptions_use_the_entities() -> None:
    def describe(intent: str, **entities: str) -> str:
        return OpsRequest(intent, "", 1.0, entities).describe()

    assert describe("rollback", service="checkout", environment="prod") == "roll back checkout on prod"
    assert describe("stop_build", job="checkout-ci", build_number="87") == "stop build checkout-ci #87"
    assert describe("issue_status", issue_key="OPS-123") == "show the status of OPS-123"
    assert describe("query_logs", service="payments", log_level="error", time_range="last hour") == (
        "search the logs of payments for error lines from last hour"
    )


def test_an_unexpected_failure_gives_a_reference_not_a_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: OpsRequest) -> str:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(OpsRequest, "describe", broken)
    dispatcher = run(ActionOpsRequest(), tracker("deploy", "deploy"))
    message = dispatcher.messages[0]
    assert message["response"] == "utter_internal_error"
    assert len(message["reference"]) == 8
    assert "secret" not in render(message)
