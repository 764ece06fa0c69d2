"""Taught text is data, not code: a phrasing that could smuggle lines or annotations into
data/nlu/taught.yml is refused wherever it enters, and the file is written by a serializer.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import _runtime
from actions.guard import OperationStore, Policy
from actions.guard.identity import IDENTITY_KEY, sign_identity
from actions.ops import ActionChooseMeaning, ActionReviewTaught, ActionTeach
from actions.storage import ACCEPTED, CANDIDATE, TaughtPhrasings
from actions.stores import Stores
from actions.teaching import MAX_PHRASE, TAUGHT_FILE, TeachingError, check_phrase, write_accepted
from opsbot._teach import cmd_review, cmd_teach
from opsbot.settings import Settings

ROOT = Path(__file__).parent.parent
DOMAIN = yaml.safe_load((ROOT / "domain.yml").read_text())
# An attacker's phrasing: a new line of examples for another intent, with an entity.
INJECTION = "ship it\n- deploy [payments](service) to [prod](environment)"

BAD = {
    "newline": (INJECTION, "one line"),
    "carriage return": ("ship it\r- deploy everything", "one line"),
    "line separator": ("ship it\u2028- deploy everything", "one line"),
    "NUL": ("ship\x00it", "U\\+0000"),
    "escape": ("ship \x1b[31mit", "U\\+001B"),
    "bidi override": ("ship \u202eti", "U\\+202E"),
    "too long": ("ship " + "x" * MAX_PHRASE, f"the limit is {MAX_PHRASE}"),
    "synonym mark": ("ship [payments](service:search)", "Brackets"),
    "json mark": ('ship [payments]{"entity": "service"}', "Brackets"),
    "stray bracket": ("ship ] it", "Brackets"),
}


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    """A project directory whose taught.yml holds one example; opsbot's domain for intents."""
    (tmp_path / "domain.yml").write_text((ROOT / "domain.yml").read_text())
    write_accepted(tmp_path, [("greet", "howdy")])
    yield tmp_path


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'opsbot.db'}"


@pytest.fixture
def store(url: str) -> Iterator[OperationStore]:
    opened = OperationStore(url)
    yield opened
    opened.close()


@pytest.fixture
def chat(store: OperationStore, project: Path) -> Iterator[None]:
    """The action server's runtime: this store, the demo policy, the project above."""
    _runtime.reset(_runtime.Runtime(store=store,
                                    policy=Policy.load(ROOT / "policy.yml"),
                                    rasa_url="http://127.0.0.1:9", project=project))
    yield
    _runtime.reset(None)


def say(action: Any, text: str, intent: str, slots: dict[str, Any] | None = None,
        entities: list[dict[str, Any]] | None = None) -> str:
    """What alice is told when she says ``text`` and ``action`` runs."""
    message = {"text": text, "intent": {"name": intent, "confidence": 0.97},
               "entities": entities or [],
               "message_id": "rest-1",
               "metadata": {IDENTITY_KEY: sign_identity("rest", "alice", "alice", "rest-1")}}
    tracker = Tracker("alice", slots or {}, message, [], False, None, {}, "action_listen")
    dispatcher = CollectingDispatcher()
    asyncio.run(action.run(dispatcher, tracker, DOMAIN))
    return "\n".join(str(m.get("text") or m.get("response")) for m in dispatcher.messages)


def taught_of(store: OperationStore) -> TaughtPhrasings:
    """The taught phrasings in ``store``'s database."""
    return Stores.around(store).taught


def taught_file(project: Path) -> str:
    return (project / TAUGHT_FILE).read_text(encoding="utf-8")


# --- the rule ------------------------------------------------------------------------


@pytest.mark.parametrize(("phrase", "message"), BAD.values(), ids=BAD.keys())
def test_check_phrase_refuses_what_could_be_markup(phrase: str, message: str) -> None:
    with pytest.raises(TeachingError, match=message):
        check_phrase(phrase)


@pytest.mark.parametrize("phrase", [
    "ship it", "ship [payments](service) to [prod](environment)", "x" * MAX_PHRASE,
    "déploie l'appli 🚀", "key: value # not a comment", "- dash", "&anchor *alias !tag %",
    "'quoted' and \"double\"", "ship it\tnow".replace("\t", " "),
])
def test_check_phrase_takes_plain_lines(phrase: str) -> None:
    assert check_phrase(phrase) == phrase


# --- every entry point ---------------------------------------------------------------


@pytest.mark.parametrize(("phrase", "message"), BAD.values(), ids=BAD.keys())
def test_opsbot_teach_refuses(phrase: str, message: str, project: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("OPSBOT_DB_URL", raising=False)
    before = taught_file(project)
    args = argparse.Namespace(phrase=phrase, intent="deploy", user="alice")
    with pytest.raises(RuntimeError, match=message):
        cmd_teach(args, Settings.from_env(project), RuntimeError)
    with OperationStore.from_env() as store:
        assert taught_of(store).examples(None) == []
    assert taught_file(project) == before


@pytest.mark.parametrize(("phrase", "message"), BAD.values(), ids=BAD.keys())
def test_the_store_refuses(phrase: str, message: str, store: OperationStore) -> None:
    for text, example in ((phrase, "ship it"), ("ship it", phrase)):
        with pytest.raises(TeachingError, match=message):
            taught_of(store).add(text=text, example=example, intent="deploy", source="cli",
                                 taught_by="alice", channel="cli")
    assert taught_of(store).examples(None) == []


@pytest.mark.parametrize(("phrase", "message"), [BAD["carriage return"], BAD["NUL"],
                                                 BAD["too long"], BAD["synonym mark"]],
                         ids=["carriage return", "NUL", "too long", "synonym mark"])
def test_teaching_in_the_chat_refuses(phrase: str, message: str, chat: None,
                                      store: OperationStore, project: Path) -> None:
    before = taught_file(project)
    told = say(ActionTeach(), f"when I say '{phrase}' I mean deploy", "teach")
    assert "Nothing was recorded" in told
    assert taught_of(store).examples(None) == []
    assert taught_file(project) == before


def test_a_newline_in_a_chat_teaching_is_refused(chat: None, store: OperationStore,
                                                 project: Path) -> None:
    before = taught_file(project)
    told = say(ActionTeach(), f"when I say '{INJECTION}' I mean greet", "teach")
    assert "one line" in told and "Nothing was recorded" in told
    assert taught_of(store).examples(None) == [] and taught_file(project) == before


def test_a_chosen_meaning_of_a_multiline_message_is_not_kept(chat: None,
                                                             store: OperationStore) -> None:
    from datetime import UTC, datetime

    pending = {"text": INJECTION, "example": INJECTION, "entities": {}, "offered": ["greet"],
               "at": datetime.now(UTC).isoformat()}
    told = say(ActionChooseMeaning(), "/choose_meaning", "choose_meaning",
               slots={"pending_meaning": pending},
               entities=[{"entity": "meaning", "value": "greet"}])
    assert "I won't learn from how you said it" in told and "one line" in told
    assert taught_of(store).examples(None) == []


def smuggled(store: OperationStore, url: str) -> str:
    """A candidate recorded before phrasings were checked: written past the store's check."""
    assert taught_of(store).examples(None) == []  # the tables exist
    engine = sa.create_engine(url, future=True)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO opsbot_taught (id, text, example, intent, source, taught_by, channel, "
            "created_at, status) VALUES ('t-0000000001', :text, :text, 'greet', 'chat', 'mallory', "
            "'telegram', '2025-01-01 00:00:00.000000', 'candidate')"), {"text": INJECTION})
    engine.dispose()
    return "t-0000000001"


def test_opsbot_review_will_not_accept_an_old_bad_candidate(
    store: OperationStore, url: str, project: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPSBOT_DB_URL", url)
    taught_id = smuggled(store, url)
    before = taught_file(project)
    args = argparse.Namespace(accept=[taught_id], reject=None, accept_all=False,
                              reject_all=False, all=False, json=False, reviewer="carol",
                              no_train=True)
    with pytest.raises(RuntimeError, match=f"{taught_id} cannot be accepted: .*one line"):
        cmd_review(args, Settings.from_env(project), RuntimeError, lambda s: None)
    assert taught_file(project) == before
    [candidate] = taught_of(store).examples(CANDIDATE)
    assert candidate.id == taught_id  # still waiting: reject it

    with pytest.raises(TeachingError, match="one line"):
        taught_of(store).review(taught_id, ACCEPTED, "carol")


def test_the_chat_review_will_not_accept_it_either(chat: None, store: OperationStore,
                                                   url: str, project: Path) -> None:
    taught_id = smuggled(store, url)
    before = taught_file(project)
    told = say(ActionReviewTaught(), "/review_taught", "review_taught",
               entities=[{"entity": "taught_id", "value": taught_id},
                         {"entity": "decision", "value": "accept"}])
    assert f"I can't accept {taught_id}" in told and "one line" in told
    assert taught_file(project) == before
    assert [t.id for t in taught_of(store).examples(CANDIDATE)] == [taught_id]


@pytest.mark.parametrize(("phrase", "message"), BAD.values(), ids=BAD.keys())
def test_write_accepted_refuses_and_leaves_the_file(phrase: str, message: str,
                                                    project: Path) -> None:
    before = taught_file(project)
    with pytest.raises(TeachingError, match=message):
        write_accepted(project, [("deploy", "send it"), ("deploy", phrase)])
    assert taught_file(project) == before


def test_write_accepted_refuses_an_unknown_intent(project: Path) -> None:
    with pytest.raises(TeachingError, match="not an intent"):
        write_accepted(project, [("greet\n- intent: deploy", "hello")])


# --- the file ------------------------------------------------------------------------


def test_valid_phrases_round_trip_through_rasa_into_their_intent_only(project: Path) -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    tricky = ["key: value # not a comment", "- dash", "&anchor *alias !tag %", "|", ">",
              "'quoted' and \"double\"", "déploie l'appli 🚀", "ends with a colon:",
              "ship [payments](service) to [prod](environment)"]
    path, added = write_accepted(project, [("deploy", phrase) for phrase in tricky])
    assert added == len(tricky)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Phrasings people taught opsbot")
    document = yaml.safe_load(text)
    assert document["version"] == "3.1"

    data = load_data(str(path))
    by_intent: dict[str, list[str]] = {}
    for example in data.intent_examples:
        by_intent.setdefault(example.get("intent"), []).append(example.get("text"))
    assert by_intent == {
        "deploy": [*tricky[:-1], "ship payments to prod"],
        "greet": ["howdy"],
    }
    [marked] = [e for e in data.intent_examples if e.get("text") == "ship payments to prod"]
    assert {e["entity"] for e in marked.get("entities")} == {"service", "environment"}
    assert all(not e.get("entities") for e in data.intent_examples if e is not marked)


def test_a_hand_edited_bad_line_stops_the_next_write(project: Path) -> None:
    path = project / TAUGHT_FILE
    path.write_text(taught_file(project).replace("- howdy", "- howdy [x](service:prod)"))
    before = taught_file(project)
    with pytest.raises(TeachingError, match="fix it before accepting more"):
        write_accepted(project, [("deploy", "send it")])
    assert taught_file(project) == before
