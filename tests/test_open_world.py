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
    from actions import _runtime

    wishes = _runtime.runtime().stores.wishes.since()
    assert [(w.text, w.requester) for w in wishes] == [("scale checkout to 4 replicas", "alice")]


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
    from actions import _runtime

    assert [w.text for w in _runtime.runtime().stores.wishes.since()] == [
        "upgrade postgres to 16 on staging"]


def test_several_unknown_words_are_a_request_opsbot_cannot_do() -> None:
    text, _ = said(tracker("run terraform apply on staging", "run_build",
                           entities={"environment": "staging"}, unseen=["terraform", "apply"]))
    assert text.startswith("I can't do that")


def test_words_that_are_never_names_do_not_count() -> None:
    text, _ = said(tracker("where's the deploy at, please", "deploy", unseen=["where's"]))
    assert "no Jenkins is connected" in text


@pytest.mark.parametrize(("intent", "text", "entities", "unseen", "expected"), [
    ("deploy", "upgrade postgres", {}, ["postgres"], ("postgres",)),
    ("deploy", "deploy payments, postgres", {"service": "payments"}, ["postgres"], None),
    ("deploy", "deploy the thing please", {}, ["thing", "please"], None),  # never names
    ("list_subscriptions", "what subs does this room have", {}, ["subs", "room"], None),
    ("query_logs", "errors mentioning deadlock", {}, ["deadlock"], None),  # a search term
    ("query_logs", "errors from the mainframe", {}, ["mainframe"], ("mainframe",)),
    ("query_logs", "errors in the loyalty service", {}, ["loyalty"], ("loyalty",)),
    ("deploy", "deploy payments to uat", {"service": "payments"}, ["uat"], ("uat",)),
    ("query_logs", "errors from payments in the refund path", {"service": "payments"},
     ["refund"], None),  # not where an environment goes
])
def test_which_words_stand_for_an_unknown_name(
    intent: str, text: str, entities: dict[str, str], unseen: list[str],
    expected: tuple[str, ...] | None,
) -> None:
    kind = kind_of(intent)
    assert kind is not None
    found = unknown_words(kind, text, entities, unseen)
    assert (found.words if found else None) == expected


def test_an_environment_opsbot_does_not_have_is_said_with_those_it_has() -> None:
    text, _ = said(tracker("deploy payments 2.4.2 to uat", "deploy",
                           entities={"service": "payments", "version": "2.4.2"}, unseen=["uat"]))
    assert text == ('I don\'t know an environment called "uat", so nothing ran. '
                    "The environments are dev, staging, prod.")
