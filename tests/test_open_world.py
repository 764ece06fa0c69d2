"""What opsbot says for requests it cannot do, and for names it never learnt
(actions/flows/open_world.py), through action_ops_request with a hand-built tracker."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker

from actions.flows.open_world import unknown_words
from actions.guard.identity import IDENTITY_KEY, sign_identity
from actions.ops import ActionOpsRequest
from actions.registry import kind_of
from tests.test_actions import no_backends, render, run  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("no_backends")


def tracker(text: str, intent: str, confidence: float = 0.97, *,
            entities: dict[str, str] | None = None, unseen: list[str] | None = None,
            ranking: list[tuple[str, float]] | None = None) -> Tracker:
    message: dict[str, Any] = {
        "text": text,
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking or []],
        "entities": [{"entity": k, "value": v} for k, v in (entities or {}).items()],
        "unseen_words": unseen or [],
        "message_id": "rest-1",
        "metadata": {IDENTITY_KEY: sign_identity("rest", "alice", "alice", "rest-1")},
    }
    return Tracker("alice", {}, message, [], False, None, {}, "action_listen")


def said(t: Tracker) -> tuple[str, list[Any]]:
    messages = run(ActionOpsRequest(), t).messages
    return " ".join(render(m) for m in messages), [b for m in messages for b in m["buttons"]]


def test_out_of_scope_says_so_and_what_opsbot_can_do_with_the_thing_named() -> None:
    text, buttons = said(tracker("scale checkout to 4 replicas", "out_of_scope",
                                 entities={"service": "checkout"}))
    assert text.startswith("I can't do that")
    assert "With checkout I can: deploy a version, roll back" in text
    assert "opsbot operations new NAME" in text and "opsbot wishes" in text
    assert not buttons


def test_out_of_scope_naming_nothing_points_to_help() -> None:
    text, _ = said(tracker("book me a table for two", "out_of_scope"))
    assert "I can't do that" in text and "Say \"help\"" in text and "With " not in text


def test_not_sure_with_out_of_scope_likeliest_is_a_refusal_not_a_question() -> None:
    text, buttons = said(tracker("cordon the worker nodes", "nlu_fallback", 0.5,
                                 ranking=[("out_of_scope", 0.45), ("deploy", 0.3)]))
    assert "I can't do that" in text and not buttons


def test_not_sure_between_two_operations_still_asks() -> None:
    text, buttons = said(tracker("ship the search one", "nlu_fallback", 0.5,
                                 ranking=[("deploy", 0.45), ("rollback", 0.4)]))
    assert "Did you mean" in text and len(buttons) == 3


def test_a_name_opsbot_never_learnt_is_said_not_asked_for() -> None:
    text, buttons = said(tracker("upgrade postgres to 16 on staging", "deploy",
                                 entities={"environment": "staging"}, unseen=["postgres"]))
    assert text.startswith('I don\'t know a service called "postgres"') and not buttons
    assert "Which service" not in text


def test_several_unknown_words_are_a_request_opsbot_cannot_do() -> None:
    text, _ = said(tracker("run terraform apply on staging", "run_build",
                           entities={"environment": "staging"}, unseen=["terraform", "apply"]))
    assert text.startswith("I can't do that")


def test_words_that_are_never_names_do_not_count() -> None:
    text, _ = said(tracker("where's the deploy at, please", "deploy", unseen=["where's"]))
    assert "no Jenkins is connected" in text


@pytest.mark.parametrize(("intent", "entities", "unseen", "expected"), [
    ("deploy", {}, ["postgres"], ["postgres"]),
    ("deploy", {"service": "payments"}, ["postgres"], []),  # a name was given
    ("deploy", {}, ["thing", "please"], []),  # never names
    ("deploy_history", {}, ["postgres"], []),  # asks for no service
    ("list_subscriptions", {}, ["subs", "room"], []),
    ("query_logs", {}, ["mainframe"], []),  # the service is optional
])
def test_which_words_stand_for_an_unknown_name(intent: str, entities: dict[str, str],
                                               unseen: list[str], expected: list[str]) -> None:
    kind = kind_of(intent)
    assert kind is not None
    assert unknown_words(kind, entities, unseen) == expected
