"""The training data is valid for Rasa and meets the project's own bar."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

from rasa.shared.nlu.training_data.loading import load_data

ROOT = Path(__file__).parent.parent
OPS_INTENTS = (
    "deploy", "rollback", "deploy_history", "run_build", "stop_build", "build_status",
    "list_jobs", "build_failure", "query_logs", "create_issue", "issue_status",
    "list_issues", "comment_issue", "update_issue",
)


def test_rasa_data_validate_passes() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "rasa", "data", "validate", "--fail-on-warnings"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_at_least_30_examples_per_ops_intent() -> None:
    data = load_data(str(ROOT / "data" / "nlu"))
    counts = Counter(m.get("intent") for m in data.training_examples if m.get("text"))
    for intent in OPS_INTENTS:
        assert counts[intent] >= 30, f"{intent}: {counts[intent]}"


def test_no_duplicate_training_examples() -> None:
    data = load_data(str(ROOT / "data" / "nlu"))
    texts = [m.get("text").lower() for m in data.training_examples if m.get("text")]
    duplicates = [t for t, n in Counter(texts).items() if n > 1]
    assert duplicates == []


def test_environment_and_log_level_synonyms() -> None:
    data = load_data(str(ROOT / "data" / "nlu"))
    assert data.entity_synonyms.get("production") == "prod"
    assert data.entity_synonyms.get("stage") == "staging"
    assert data.entity_synonyms.get("exceptions") == "error"
    regexes = {r["name"] for r in data.regex_features}
    assert {"issue_key", "version", "build_number"} <= regexes


def test_the_issue_key_pattern_takes_keys_and_not_hyphenated_names() -> None:
    import re

    data = load_data(str(ROOT / "data" / "nlu"))
    [pattern] = [r["pattern"] for r in data.regex_features if r["name"] == "issue_key"]

    def keys(text: str) -> list[str]:
        return [m.group() for m in re.finditer(pattern, text, re.IGNORECASE)]

    assert keys("comment on PAY-4: done, then close ops-12.") == ["PAY-4", "ops-12"]
    assert keys("PAY-76's status") == ["PAY-76"]
    assert keys("drain ip-10-0-3-17 in eu-west-1, and the node-2.internal host") == []


def test_subscription_words_agree_with_the_normaliser() -> None:
    """synonyms.yml's event words say what actions/values.py says (which the NLU applies)."""
    from actions.values import EVENT_KINDS, EVENT_SOURCES, SEVERITIES, normalise_value

    data = load_data(str(ROOT / "data" / "nlu"))
    tables = {"event_source": EVENT_SOURCES, "severity": SEVERITIES, "event_kind": EVENT_KINDS}
    for entity, table in tables.items():
        canonical = set(table.values())
        for word, value in data.entity_synonyms.items():
            if value in canonical:
                assert normalise_value(entity, word) == value, (entity, word, value)
    # The words that are also another entity's synonym come out as this entity's value.
    assert normalise_value("severity", "critical") == "critical"
    assert normalise_value("severity", "p1") == "critical"
    assert normalise_value("event_kind", "failures") == "failure"
    assert {r["name"] for r in data.regex_features} >= {"subscription_id"}
