"""The held-out NLU test set (tests/nlu/heldout.yml): well formed and independent of data/.

It is for measuring only (`python -m bench.nlu --test tests/nlu/heldout.yml`): no test
here parses it with the model, so nothing in the suite pulls the pipeline towards it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from actions.operations import load_operations
from actions.operations.flow import _ANNOTATION

ROOT = Path(__file__).parent.parent
HELDOUT = ROOT / "tests" / "nlu" / "heldout.yml"
BUTTON_ONLY = frozenset({"choose_meaning"})


@pytest.fixture(scope="module")
def examples() -> list:
    return [m for m in load_data(str(HELDOUT)).training_examples if m.get("text")]


@pytest.fixture(scope="module")
def known() -> tuple[set[str], set[str]]:
    """Intents and entities opsbot trains: the domain's plus the team operations'."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    intents, entities = set(domain["intents"]), set(domain["entities"])
    for spec in load_operations(ROOT).operations.values():
        intents.add(spec.name)
        entities |= {p.name for p in spec.parameters}
    return intents, entities


def test_every_intent_and_entity_is_one_opsbot_trains(examples: list, known: tuple) -> None:
    intents, entities = known
    assert {m.get("intent") for m in examples} - intents == set()
    marked = {e["entity"] for m in examples for e in m.get("entities") or []}
    assert marked - entities == set()


def test_every_intent_nlu_can_predict_has_5_or_more(examples: list, known: tuple) -> None:
    counts = Counter(m.get("intent") for m in examples)
    thin = {i: counts[i] for i in known[0] - BUTTON_ONLY if counts[i] < 5}
    assert thin == {}


def test_no_heldout_phrase_is_a_training_or_development_phrase(examples: list) -> None:
    seen = {m.get("text").lower() for m in load_data(str(ROOT / "data" / "nlu")).training_examples
            if m.get("text")}
    seen |= {m.get("text").lower()
             for m in load_data(str(ROOT / "tests" / "nlu" / "regression.yml")).training_examples
             if m.get("text")}
    for spec in load_operations(ROOT).operations.values():
        seen |= {_ANNOTATION.sub(r"\1", e).lower() for e in spec.examples}
    assert [m.get("text") for m in examples if m.get("text").lower() in seen] == []
