"""Stopping a build end to end: REST channel -> Rasa -> action server -> python-jenkins ->
simulator.

Stopping is asynchronous in Jenkins: ``POST stop`` answers at once, the build ends when
it reaches an abort point. A freestyle build here stops at once; the payments pipeline
takes seconds to (``set_stop``), so opsbot first says the stop was requested and posts
the real end in the conversation later, exactly once.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jenkins
import pytest

from opsbot._processes import Stack
from opsbot.settings import Settings
from simulators.jenkins import JenkinsSimulator
from tests.conftest import (
    ROOT,
    bot_texts,
    button_payload,
    free_port,
    rest_say,
    wait_until,
)

POLICY = """\
confirmation_ttl: 5m
people:
  alice: {roles: [developer], identities: {rest: alice}}
  bob: {roles: [developer], identities: {rest: bob}}
everyone_roles: []
rules:
  - intents: [run_build, stop_build]
    risk: change
    roles: [developer]
  - intents: [build_status, list_jobs, build_failure]
    risk: read
    roles: [developer]
"""
PIPELINE_STOP_SECONDS = 6.0  # well past OPSBOT_STOP_WAIT below


@dataclasses.dataclass
class Bot:
    settings: Settings
    sim: JenkinsSimulator
    db_path: Path

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        return rest_say(self.settings, sender, text)

    def bot_texts(self, sender: str) -> list[str]:
        return bot_texts(self.settings, sender)

    def running(self, job: str) -> int:
        """Start a build of ``job`` as opsbot's Jenkins user; its number once it runs."""
        client = jenkins.Jenkins(self.sim.url, username=self.sim.user, password=self.sim.token,
                                 timeout=10)
        queue_id = client.build_job(job, {"BRANCH": "main"})
        item = wait_until(lambda: client.get_queue_item(queue_id).get("executable"),
                          f"{job} did not start", 30)
        return int(item["number"])

    def state(self, operation_id: str) -> tuple[str, str | None]:
        with sqlite3.connect(self.db_path) as db:
            row = db.execute("SELECT state, result FROM opsbot_operations WHERE id = ?",
                             (operation_id,)).fetchone()
        return str(row[0]), row[1]

    def stop_posts(self, job: str, number: int) -> int:
        return sum(1 for r in self.sim.request_log()
                   if r.method == "POST" and r.target.endswith(f"/job/{job}/{number}/stop"))


@pytest.fixture(scope="module")
def bot(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    state = tmp_path_factory.mktemp("state")
    policy = state / "policy.yml"
    policy.write_text(POLICY, encoding="utf-8")
    db_path = state / "opsbot.db"
    settings = dataclasses.replace(
        Settings.from_env(ROOT), port=free_port(), actions_port=free_port(), state_dir=state,
    )
    sim = JenkinsSimulator(queue_delay=0.1, build_seconds=300)  # nothing ends by itself here
    sim.set_stop("payments-ci", seconds=PIPELINE_STOP_SECONDS)
    sim.start()
    stack = Stack(settings)
    try:
        stack.start_action_server({**sim.env(), "OPSBOT_DB_URL": f"sqlite:///{db_path}",
                                   "OPSBOT_POLICY": str(policy), "OPSBOT_WATCH_POLL": "0.2",
                                   "OPSBOT_STOP_WAIT": "1"})
        stack.start_rasa_server(trained_model)
        stack.wait_ready(timeout=180)
        yield Bot(settings, sim, db_path)
    finally:
        stack.stop()
        sim.stop()


def _text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def _operation_id(payload: str) -> str:
    import json

    return str(json.loads(payload[payload.index("{"):])["operation_id"])


def _preview(bot: Bot, sender: str, job: str, number: int, service: str) -> str:
    replies = bot.say(sender, f"abort {service} build #{number}")
    text = _text(replies)
    assert f"Stop {job} #{number}" in text, text
    assert bot.stop_posts(job, number) == 0  # a preview stops nothing
    return button_payload(replies, "Confirm")


def test_a_build_that_stops_at_once_is_said_stopped_once(bot: Bot) -> None:
    number = bot.running("checkout-ci")
    confirm = _preview(bot, "alice", "checkout-ci", number, "checkout")
    done = _text(bot.say("alice", confirm))
    assert f"Stopped checkout-ci #{number}: ABORTED" in done, done
    assert "still running" not in done
    assert bot.sim.build("checkout-ci", number).result == "ABORTED"
    assert bot.state(_operation_id(confirm)) == ("succeeded", "SUCCESS")
    again = _text(bot.say("alice", confirm))
    assert "already" in again and "Nothing new ran" in again
    time.sleep(2.0)  # the watcher would have posted by now, had it followed it
    assert sum(f"checkout-ci #{number}" in t for t in bot.bot_texts("alice")
               if "ABORTED" in t) == 1
    assert bot.stop_posts("checkout-ci", number) == 1


def test_a_build_that_takes_a_while_to_stop_gets_its_end_posted_once(bot: Bot) -> None:
    number = bot.running("payments-ci")
    confirm = _preview(bot, "bob", "payments-ci", number, "payments")
    said = _text(bot.say("bob", confirm))
    assert f"payments-ci #{number} is still running" in said, said
    assert "Stop requested" in said and "Stopped" not in said
    assert bot.sim.build("payments-ci", number).building  # Jenkins agrees
    assert bot.state(_operation_id(confirm))[0] == "executing"
    ended = f"Stopped payments-ci #{number}: ABORTED"
    wait_until(lambda: any(ended in t for t in bot.bot_texts("bob")),
               "the real end of the stop was never posted", 120)
    assert bot.sim.build("payments-ci", number).result == "ABORTED"
    assert bot.state(_operation_id(confirm)) == ("succeeded", "SUCCESS")
    time.sleep(2.0)  # several watcher polls later: still said once
    assert sum(ended in t for t in bot.bot_texts("bob")) == 1
    # A new message in the conversation does not repeat it either.
    assert ended not in _text(bot.say("bob", "hi"))
    assert sum(ended in t for t in bot.bot_texts("bob")) == 1
    assert bot.stop_posts("payments-ci", number) == 1
