"""actions.teaching and the store's taught phrasings: syntax, the taught file, review states."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from actions.guard import OperationStore
from actions.registry import offerable
from actions.storage import ACCEPTED, CANDIDATE, REJECTED
from actions.stores import Stores
from actions.teaching import (
    TeachingError,
    annotate,
    meaning_of,
    parse_example,
    quoted_phrase,
    write_accepted,
)


def test_parse_example_reads_rasa_marks() -> None:
    text, entities = parse_example(
        "ship [payments](service) [2.4.1](version) to [prod](environment)")
    assert text == "ship payments 2.4.1 to prod"
    assert [(e["entity"], e["value"], text[e["start"]:e["end"]]) for e in entities] == [
        ("service", "payments", "payments"), ("version", "2.4.1", "2.4.1"),
        ("environment", "prod", "prod")]


@pytest.mark.parametrize(("example", "message"), [
    ("ship [payments](planet)", "not an entity"),
    ("   ", "empty"),
    ("/deploy", "cannot start with '/'"),
])
def test_parse_example_refuses_what_rasa_would_not_take(example: str, message: str) -> None:
    with pytest.raises(TeachingError, match=message):
        parse_example(example)


def test_annotate_marks_the_entities_nlu_found() -> None:
    text = "ship payments to prod"
    found = [{"entity": "service", "value": "payments", "start": 5, "end": 13},
             {"entity": "service", "value": "payments", "start": 5, "end": 13},  # a 2nd extractor
             {"entity": "environment", "value": "prod", "start": 17, "end": 21},
             {"entity": "operation_id", "value": "x", "start": 0, "end": 4}]
    assert annotate(text, found) == "ship [payments](service) to [prod](environment)"
    assert parse_example(annotate(text, found))[0] == text


def test_chat_teaching_phrases() -> None:
    assert quoted_phrase("when I say 'ship it' I mean deploy") == "ship it"
    assert quoted_phrase("when I say “bounce the api” I mean run a build") == "bounce the api"
    assert quoted_phrase("when I say ship it I mean deploy") is None
    assert meaning_of(" I mean deploy", tuple(offerable())) == "deploy"
    assert meaning_of(" means roll back", tuple(offerable())) == "rollback"
    assert meaning_of(" I mean build status", tuple(offerable())) == "build_status"
    assert meaning_of(" I mean errors in the logs", tuple(offerable())) == "query_logs"
    assert meaning_of(" I mean lunch", tuple(offerable())) is None
    assert meaning_of(" I mean notify us when the build fails", tuple(offerable())) == "subscribe"
    assert meaning_of(" I mean unsubscribe", tuple(offerable())) == "unsubscribe"
    assert meaning_of(" I mean stop posting alerts", tuple(offerable())) == "unsubscribe"
    assert meaning_of(" I mean list subscriptions", tuple(offerable())) == "list_subscriptions"


def test_subscription_entities_can_be_taught() -> None:
    text, entities = parse_example(
        "ping us when [billing](service) [alarms](event_source) go off, id [3f2a](subscription_id)")
    assert text == "ping us when billing alarms go off, id 3f2a"
    assert [e["entity"] for e in entities] == ["service", "event_source", "subscription_id"]


def test_write_accepted_appends_to_its_own_file_only(tmp_path: Path) -> None:
    path, added = write_accepted(tmp_path, [("deploy", "ship [payments](service)"),
                                            ("list_jobs", "who's red")])
    assert added == 2 and path == tmp_path / "data/nlu/taught.yml"
    path, added = write_accepted(tmp_path, [("deploy", "ship [payments](service)"),
                                            ("deploy", "send it")])
    assert added == 1
    data = yaml.safe_load(path.read_text())
    assert data["version"] == "3.1"
    blocks = {b["intent"]: b["examples"].splitlines() for b in data["nlu"]}
    assert blocks == {"deploy": ["- ship [payments](service)", "- send it"],
                      "list_jobs": ["- who's red"]}
    assert sorted(p.name for p in (tmp_path / "data/nlu").iterdir()) == ["taught.yml"]


def test_rasa_reads_the_taught_file(tmp_path: Path) -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    path, _ = write_accepted(tmp_path,
                             [("deploy", "ship [payments](service) to [prod](environment)")])
    data = load_data(str(path))
    example = data.intent_examples[0]
    assert example.get("intent") == "deploy" and example.get("text") == "ship payments to prod"
    assert {e["entity"] for e in example.get("entities")} == {"service", "environment"}


def test_store_reviews_each_candidate_once(tmp_path: Path) -> None:
    store = Stores.around(OperationStore(f"sqlite:///{tmp_path / 'opsbot.db'}")).taught
    one = store.add(text="ship it", example="ship it", intent="deploy", source="chat",
                    taught_by="bob", channel="telegram")
    two = store.add(text="who's red", example="who's red", intent="list_jobs",
                    source="cli", taught_by="alice", channel="cli")
    assert [t.id for t in store.examples()] == [one.id, two.id]
    accepted = store.review(one.id, ACCEPTED, "carol")
    assert accepted is not None and accepted.status == ACCEPTED and accepted.reviewed_by == "carol"
    assert store.review(one.id, REJECTED, "carol") is None  # decided already
    assert store.review(two.id, REJECTED, "carol").status == REJECTED
    assert store.examples(CANDIDATE) == []
    assert {t.status for t in store.examples(None)} == {ACCEPTED, REJECTED}  # kept, marked
    with pytest.raises(ValueError):
        store.review(two.id, "maybe", "carol")
