"""Teaching, end to end: unsure -> buttons -> choice runs and is recorded -> review ->
retrain -> understood.

Runs `opsbot demo --serve` on a copy of the project (data/ is written by the review):
its Rasa server, action server, simulated backends and warm trainer, with the real CLI.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from actions.registry import offerable
from bench.retrain import parse_trainer_answer
from opsbot._processes import stop_process
from opsbot.settings import Settings
from tests.conftest import REST_AUTH, ROOT, api, copy_project, free_port, serve_demo, wait_until

# Phrasings the model is likely unsure about; the test uses the first one it is.
ODD = ("ship it", "the search one", "billing?", "bounce the api", "what now", "again",
       "zorp payments onto prod", "payments, prod, now", "checkout: staging pls", "kick it")


@dataclasses.dataclass
class Project:
    settings: Settings
    env: dict[str, str]

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        answer = requests.post(self.settings.rest_url, json={"sender": sender, "message": text},
                               headers=REST_AUTH, timeout=120)
        answer.raise_for_status()
        return list(answer.json())

    def parse(self, text: str) -> dict[str, Any]:
        base = f"http://{self.settings.host}:{self.settings.port}"
        answer = requests.post(api(f"{base}/model/parse"), json={"text": text}, timeout=60)
        return dict(answer.json())

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsbot", *args], cwd=self.settings.project,
                              env=self.env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("project")
    models = copy_project(root, trained_model)
    port, actions_port = free_port(), free_port()
    state = root / ".opsbot"
    settings = dataclasses.replace(Settings.from_env(root), port=port, actions_port=actions_port,
                                   state_dir=state, models=models)
    env = {**os.environ, "OPSBOT_STATE_DIR": str(state), "OPSBOT_MODELS": str(models),
           "OPSBOT_PORT": str(port), "PYTHONPATH": str(root)}
    # The loop runs in `opsbot demo`, as a newcomer would try it: its servers, its simulated
    # backends and its warm trainer, in this copy of the project (reviews write to data/).
    demo, _, _ = serve_demo(root, env, "--port", str(port), "--actions-port", str(actions_port))
    try:
        # The review below retrains through the demo's trainer, which starts after the servers.
        wait_until(lambda: (state / "trainer.port").exists(), "the demo's trainer did not start",
                   180)
        yield Project(settings, env)
    finally:
        stop_process(demo, grace=60)


def _buttons(replies: list[dict[str, Any]]) -> dict[str, str]:
    return {b["title"]: b["payload"] for r in replies for b in r.get("buttons") or []}


def _text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def _unsure_between_operations(parse: dict) -> bool:
    """Not sure, and the likeliest is something opsbot does (not sure with out of scope
    likeliest is answered "I can't do that", with no meanings to choose from)."""
    ranked = [r["name"] for r in parse.get("intent_ranking") or [] if r["name"] != "nlu_fallback"]
    unsure = parse["intent"]["name"] == "nlu_fallback"
    return unsure and bool(ranked) and ranked[0] != "out_of_scope"


def test_an_unsure_phrasing_is_asked_chosen_reviewed_and_then_understood(project: Project) -> None:
    unsure = next((t for t in ODD if _unsure_between_operations(project.parse(t))), None)
    assert unsure is not None, "the model is sure of every odd phrasing; add a stranger one"

    replies = project.say("alice", unsure)
    assert "not sure what you mean" in _text(replies)
    buttons = _buttons(replies)
    assert "Something else" in buttons and 2 <= len(buttons) <= 4
    title, payload = next(iter(buttons.items()))  # the likeliest meaning
    meaning = next(i for i, t in offerable().items() if t.capitalize() == title)

    # The choice carries on as if alice had said it.
    carried = project.say("alice", payload)
    assert _text(carried) and "not sure" not in _text(carried)

    listed = project.cli("review", "--json")
    assert listed.returncode == 0, listed.stderr
    candidates = [c for c in yaml.safe_load(listed.stdout) if c["text"] == unsure]
    assert candidates and candidates[0]["intent"] == meaning
    assert candidates[0]["taught_by"] == "alice" and candidates[0]["source"] == "fallback"

    accepted = project.cli("review", "--accept", candidates[0]["id"], "--reviewer", "carol")
    assert accepted.returncode == 0, accepted.stderr + accepted.stdout
    assert "now answers with" in accepted.stdout
    # The warm trainer did it (this project's Rasa cache starts empty, so everything is
    # trained here; bench/retrain.py measures that later retrains restore the policies).
    retrained = parse_trainer_answer(accepted.stdout)
    assert retrained is not None, accepted.stdout
    assert "LinearIntentClassifier" in retrained["trained_components"]
    taught = yaml.safe_load((project.settings.project / "data/nlu/taught.yml").read_text())
    examples = [e for block in taught["nlu"] if block["intent"] == meaning
                for e in block["examples"].splitlines()]
    assert any(unsure.split()[0] in e for e in examples)
    # The hand-written files are untouched.
    assert (project.settings.project / "data/nlu/jenkins.yml").read_text() == \
        (ROOT / "data/nlu/jenkins.yml").read_text()

    assert project.parse(unsure)["intent"]["name"] == meaning
    direct = project.say("alice", unsure)
    assert "not sure" not in _text(direct)


def test_something_else_records_nothing(project: Project) -> None:
    unsure = next((t for t in reversed(ODD) if _unsure_between_operations(project.parse(t))),
                  None)
    if unsure is None:
        pytest.skip("no phrasing left that the model is unsure about")
    before = project.cli("review", "--json", "--all").stdout
    replies = project.say("bob", unsure)
    answer = project.say("bob", _buttons(replies)["Something else"])
    assert "other words" in _text(answer)
    assert project.cli("review", "--json", "--all").stdout == before


def test_teaching_in_the_chat_needs_a_role(project: Project) -> None:
    refused = project.say("mallory", "when I say 'spin it up' I mean deploy")
    # mallory is not in policy.yml: a stranger gets help only (default deny).
    assert "I don't know you yet" in _text(refused) and "mallory" in _text(refused)
    noted = project.say("bob", "when I say 'spin it up' I mean deploy")
    assert "Noted" in _text(noted) and "deploy" in _text(noted)
    # bob is no reviewer: he cannot accept it from the chat; alice can.
    assert "can't let you review" in _text(project.say("bob", "review taught phrases"))
    listing = project.say("alice", "review taught phrases")
    assert "spin it up" in _text(listing)
    reject = next(b["payload"] for r in listing for b in r.get("buttons") or []
                  if b["title"] == "Reject" and "spin it up" in (r.get("text") or ""))
    assert "Rejected" in _text(project.say("alice", reject))
    assert "not waiting for review" in _text(project.say("alice", reject))
