"""The NLU development set (tests/nlu/regression.yml: phrases not in data/, tuned on).

The held-out measurement is tests/nlu/heldout.yml (tests/test_nlu_heldout.py, bench.nlu).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from rasa.shared.nlu.training_data.loading import load_data

from nlu.entities import normalise_value
from tests.conftest import Parser

REGRESSION = Path(__file__).parent / "nlu" / "regression.yml"
CHECKED_ENTITIES = ("environment", "issue_key", "version", "build_number",
                    "event_source", "severity", "event_kind", "subscription_id")


@pytest.fixture(scope="module")
def examples() -> list:
    return [m for m in load_data(str(REGRESSION)).training_examples if m.get("text")]


@pytest.fixture(scope="module")
def parsed(parser: Parser, examples: list) -> list[dict]:
    return [parser.parse(m.get("text")) for m in examples]


# Intents that only buttons send (their payload names them); NLU never predicts them.
BUTTON_ONLY = frozenset({"choose_meaning"})


def test_regression_set_covers_every_intent_with_8_or_more(examples: list) -> None:
    import yaml

    domain = yaml.safe_load((Path(__file__).parent.parent / "domain.yml").read_text())
    counts = Counter(m.get("intent") for m in examples)
    for intent in domain["intents"]:
        if intent in BUTTON_ONLY:
            continue
        assert counts[intent] >= 8, f"{intent}: {counts[intent]} examples"


def test_regression_phrases_are_not_training_phrases(examples: list) -> None:
    training = {
        m.get("text").lower()
        for m in load_data(str(Path(__file__).parent.parent / "data" / "nlu")).training_examples
        if m.get("text")
    }
    from actions.operations import load_operations
    from actions.operations.flow import _ANNOTATION

    root = Path(__file__).parent.parent
    for spec in load_operations(root).operations.values():
        training |= {_ANNOTATION.sub(r"\1", e).lower() for e in spec.examples}
    overlap = [m.get("text") for m in examples if m.get("text").lower() in training]
    assert overlap == []


def test_intent_accuracy_is_at_least_92_percent(examples: list, parsed: list[dict]) -> None:
    wrong = [
        (m.get("text"), m.get("intent"), p["intent"]["name"])
        for m, p in zip(examples, parsed, strict=True)
        if p["intent"]["name"] != m.get("intent")
    ]
    accuracy = 1 - len(wrong) / len(examples)
    assert accuracy >= 0.92, f"accuracy {accuracy:.3f}; wrong: {wrong}"


@pytest.mark.parametrize("entity", CHECKED_ENTITIES)
def test_entity_values_are_extracted_and_normalised(
    entity: str, examples: list, parsed: list[dict]
) -> None:
    expected_total, misses = 0, []
    for message, result in zip(examples, parsed, strict=True):
        wanted = [
            normalise_value(entity, e["value"])
            for e in message.get("entities") or []
            if e["entity"] == entity
        ]
        got = [e["value"] for e in result["entities"] if e["entity"] == entity]
        expected_total += len(wanted)
        for value in wanted:
            if value not in got:
                misses.append((message.get("text"), value, got))
    assert expected_total > 0, f"the regression set has no {entity} examples"
    assert misses == [], misses
