"""The held-out NLU test set (tests/nlu/heldout.yml) and the near-miss development set
(tests/nlu/near_misses.yml): well formed and independent of data/.

Both are for measuring only (`python -m bench.nlu`): no test here parses them with the
model, so nothing in the suite pulls the pipeline towards them.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml
from rasa.shared.nlu.training_data.loading import load_data

from actions.operations import load_operations
from actions.operations.flow import _ANNOTATION

ROOT = Path(__file__).parent.parent
HELDOUT = ROOT / "tests" / "nlu" / "heldout.yml"
REGRESSION = ROOT / "tests" / "nlu" / "regression.yml"
NEAR_MISSES = ROOT / "tests" / "nlu" / "near_misses.yml"
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


def phrases(path: Path) -> set[str]:
    """The texts of a Rasa NLU file or folder, lower-cased."""
    return {m.get("text").lower() for m in load_data(str(path)).training_examples
            if m.get("text")}


def known_phrases(*test_sets: Path) -> set[str]:
    """What opsbot trains on (data/ and the operations' examples), plus ``test_sets``."""
    seen = phrases(ROOT / "data" / "nlu")
    for path in test_sets:
        seen |= phrases(path)
    for spec in load_operations(ROOT).operations.values():
        seen |= {_ANNOTATION.sub(r"\1", e).lower() for e in spec.examples}
    return seen


def test_no_heldout_phrase_is_a_training_or_development_phrase(examples: list) -> None:
    seen = known_phrases(REGRESSION)
    assert [m.get("text") for m in examples if m.get("text").lower() in seen] == []


# -- the near-miss development set ----------------------------------------------------


def near_miss_categories() -> dict[str, list[str]]:
    """The requests under each "# (a)" ... "# (d)" comment of near_misses.yml."""
    groups: dict[str, list[str]] = {}
    category = None
    for line in NEAR_MISSES.read_text(encoding="utf-8").splitlines():
        if heading := re.match(r"# \(([a-z])\) ", line):
            category = heading.group(1)
        elif (request := re.match(r" {4}- (.+)", line)) and category:
            groups.setdefault(category, []).append(request.group(1))
    return groups


def test_the_near_miss_set_has_150_requests_and_30_in_each_category() -> None:
    texts = [m.get("text") for m in load_data(str(NEAR_MISSES)).training_examples]
    assert len(texts) >= 150
    groups = near_miss_categories()
    assert sorted(groups) == ["a", "b", "c", "d"]
    assert {c: len(g) for c, g in groups.items() if len(g) < 30} == {}
    assert sum(len(g) for g in groups.values()) == len(texts)


def test_near_misses_are_out_of_scope_or_unknown_names_without_entities() -> None:
    examples = load_data(str(NEAR_MISSES)).training_examples
    assert {m.get("intent") for m in examples} == {"out_of_scope", "unknown_name"}
    assert [m.get("text") for m in examples if m.get("entities")] == []
    unknown = {m.get("text") for m in examples if m.get("intent") == "unknown_name"}
    assert unknown == set(near_miss_categories()["d"])


def test_no_near_miss_is_a_training_development_or_heldout_phrase() -> None:
    seen = known_phrases(REGRESSION, HELDOUT)
    texts = [m.get("text") for m in load_data(str(NEAR_MISSES)).training_examples]
    assert [t for t in texts if t.lower() in seen] == []
    assert len({t.lower() for t in texts}) == len(texts)


# -- the fresh in-scope development set ----------------------------------------------

DEVELOPMENT = ROOT / "tests" / "nlu" / "development.yml"


def test_no_development_phrase_is_a_training_or_test_phrase() -> None:
    """development.yml checks that rejecting near misses keeps real requests phrased in
    new ways: it means nothing once its phrases are trained on."""
    seen = known_phrases(REGRESSION, HELDOUT, NEAR_MISSES)
    texts = [m.get("text") for m in load_data(str(DEVELOPMENT)).training_examples]
    assert len(texts) >= 140
    assert [t for t in texts if t.lower() in seen] == []
