"""Jira's required transition fields and assignable users, end to end: REST channel -> Rasa ->
action server -> jira -> the Jira simulator (whose Done screen requires a resolution, and
where carol may not be assigned PAY issues)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opsbot._processes import Stack
from opsbot.settings import Settings
from simulators.jira import JiraSimulator
from tests.conftest import ROOT, button_payload, free_port, rest_say, team_policy


@dataclasses.dataclass
class Bot:
    settings: Settings
    sim: JiraSimulator

    def say(self, sender: str, text: str) -> str:
        self.last: list[dict[str, Any]] = rest_say(self.settings, sender, text)
        return "\n".join(r.get("text") or "" for r in self.last)


@pytest.fixture(scope="module")
def bot(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    state = tmp_path_factory.mktemp("state")
    settings = dataclasses.replace(Settings.from_env(ROOT), port=free_port(),
                                   actions_port=free_port(), state_dir=state)
    sim = JiraSimulator()
    sim.start()
    env = {**sim.env(), "OPSBOT_DB_URL": f"sqlite:///{state / 'opsbot.db'}",
           "OPSBOT_POLICY": str(team_policy(state, "dave", "erin"))}
    stack = Stack(settings)
    try:
        stack.start_action_server(env)
        stack.start_rasa_server(trained_model)
        stack.wait_ready(timeout=180)
        yield Bot(settings, sim)
    finally:
        stack.stop()
        sim.stop()


@pytest.mark.timeout(300)
def test_closing_sends_a_resolution_and_an_unassignable_person_is_named(bot: Bot) -> None:
    preview = bot.say("dave", "close OPS-101")
    assert "to Done, resolution Done" in preview, preview
    assert bot.sim.issue("OPS-101").status == "In Progress"
    done = bot.say("dave", button_payload(bot.last, "Confirm"))
    assert "OPS-101 is now Done (Done)" in done, done
    assert (bot.sim.issue("OPS-101").status, bot.sim.issue("OPS-101").resolution) == \
        ("Done", "Done")
    refused = bot.say("erin", "assign PAY-75 to carol")
    assert "Carol Diaz (carol) can't be assigned issues in PAY; people who can: " in refused
    assert "Alice Chen (alice)" in refused and "Nothing changed" in refused
    assert bot.sim.issue("PAY-75").assignee != "carol"
    assert not any(r.method == "PUT" for r in bot.sim.request_log())
