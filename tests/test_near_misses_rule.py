"""The rule-made near misses (nlu/near_misses.py) and the unseen words (nlu/vocabulary.py)."""

from __future__ import annotations

from typing import Any

from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.near_misses import FOREIGN_VERBS, NearMissGenerator, near_misses, ops_verbs
from nlu.vocabulary import words_of


def example(text: str, intent: str, **entities: str) -> Message:
    marks: list[dict[str, Any]] = []
    for entity, value in entities.items():
        start = text.index(value)
        marks.append({"start": start, "end": start + len(value), "value": value,
                      "entity": entity})
    return Message(data={"text": text, "intent": intent, "entities": marks})


IN_SCOPE = [
    example("deploy payments 2.4.1 to prod", "deploy", service="payments"),
    example("please deploy checkout to staging", "deploy", service="checkout"),
    example("can you deploy search", "deploy", service="search"),
    example("roll back payments on prod", "rollback", service="payments"),
    example("roll back checkout", "rollback", service="checkout"),
    example("roll back search on staging", "rollback", service="search"),
    example("what is running on prod", "deploy_history"),
    example("what's deployed on staging", "deploy_history"),
    example("what was deployed last", "deploy_history"),
]


def test_the_verbs_are_what_requests_open_with_past_politeness_and_questions() -> None:
    assert ops_verbs(e.get("text") for e in IN_SCOPE) == ["deploy", "roll back"]


def test_near_misses_pair_own_verbs_with_foreign_things_and_foreign_verbs_with_names() -> None:
    made = dict(near_misses(IN_SCOPE))
    texts = list(made)
    assert any(t.split(" ")[-1] != "" and "deploy" in t and not made[t] for t in texts)
    assert any("roll back" in t for t in texts)
    annotated = [(t, e) for t, e in made.items() if e]
    assert annotated, "foreign verbs on opsbot's names"
    for text, entities in annotated:
        for entity in entities:
            assert text[entity["start"]:entity["end"]] == entity["value"]
            assert entity["entity"] == "service"
    lowered = {e.get("text").lower() for e in IN_SCOPE}
    assert not lowered & {t.lower() for t in texts}


def test_a_word_the_in_scope_examples_use_is_never_foreign() -> None:
    """A team operation that rotates certificates takes "rotate" and "certificate" out
    of the near misses: its own requests are not taught as out of scope."""
    team = [example("rotate the secrets of checkout", "rotate_secrets", service="checkout"),
            example("renew the certificate of payments now", "renew_cert", service="payments"),
            example("please renew the tls certificate", "renew_cert")]
    made = [t for t, _ in near_misses(IN_SCOPE + team)]
    assert any("rotate the secrets of" in v for v in FOREIGN_VERBS)
    assert not [t for t in made if "rotate" in t or "certificate" in t]
    before = [t for t, _ in near_misses(IN_SCOPE)]
    assert [t for t in before if "certificate" in t]


def test_the_generator_adds_them_to_the_out_of_scope_intent_only_when_there_is_one() -> None:
    generator = NearMissGenerator({})
    without = TrainingData(training_examples=list(IN_SCOPE))
    assert generator.process_training_data(without) is without
    small_talk = Message(data={"text": "tell me a joke", "intent": "out_of_scope"})
    data = TrainingData(training_examples=[*IN_SCOPE, small_talk])
    merged = generator.process_training_data(data)
    added = [m for m in merged.training_examples if m.get("intent") == "out_of_scope"]
    assert len(added) > 20
    assert {m.get("intent") for m in merged.training_examples} == {
        "deploy", "rollback", "deploy_history", "out_of_scope"}


def test_words_are_names_not_values() -> None:
    assert words_of("Upgrade postgres to 16 on staging, PAY-12 v2.4.1 #415!") == [
        "upgrade", "postgres", "to", "on", "staging"]
    assert words_of("don't roll-back auth-service") == ["don't", "roll-back", "auth-service"]
