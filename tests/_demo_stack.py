"""The demo stack for end-to-end tests that steer its backends: REST channel -> Rasa ->
action server -> the real client libraries -> the demo's simulators.

``opsbot demo --serve`` runs its simulators inside its own process, where a test cannot
reach their fault injection (``fail_next``, ``delay_next``, ``set_outcome``). So this
starts the same pieces ``cmd_demo`` does (the demo's Jenkins, Jira and Loki simulators
with their demo data, the action server, the Rasa server with the session's model)
with the simulators in the test process, and talks to it over the REST channel.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from opsbot._processes import Stack
from opsbot.settings import Settings
from simulators.jenkins import BuildSnapshot, JenkinsSimulator
from simulators.jira import JiraSimulator
from simulators.loki import LokiSimulator
from tests.conftest import (
    ROOT,
    bot_texts,
    free_port,
    rest_say,
    team_policy,
    wait_until,
)

# Short enough that a test waits seconds for a backend that never answers, long enough
# that a loaded machine does not trip it on a healthy request.
CLIENT_TIMEOUT = "4"
LATE = 10.0  # a delayed request is held well past CLIENT_TIMEOUT


@dataclasses.dataclass
class DemoBot:
    """One running stack: say things as someone, read what they were told, steer the sims."""

    stack: Stack
    settings: Settings
    jenkins: JenkinsSimulator
    jira: JiraSimulator
    loki: LokiSimulator
    db_path: Path
    state: Path
    action_env: dict[str, str]

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        return rest_say(self.settings, sender, text, timeout=120)

    def bot_texts(self, sender: str) -> list[str]:
        return bot_texts(self.settings, sender)

    def wait_said(self, sender: str, fragment: str, timeout: float = 90.0) -> str:
        """The first bot message to ``sender`` that holds ``fragment``, once it was said."""
        found = wait_until(lambda: [t for t in self.bot_texts(sender) if fragment in t],
                           f"the bot never said {fragment!r} to {sender}: "
                           f"{self.bot_texts(sender)}", timeout)
        return str(found[0])

    def builds(self, job: str) -> list[BuildSnapshot]:
        return self.jenkins.builds(job)

    def operation(self, operation_id: str) -> dict[str, Any]:
        with sqlite3.connect(self.db_path) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM opsbot_operations WHERE id = ?",
                             (operation_id,)).fetchone()
        assert row is not None, f"no operation {operation_id} in {self.db_path}"
        return dict(row)

    def operations(self, sender: str) -> list[dict[str, Any]]:
        with sqlite3.connect(self.db_path) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM opsbot_operations WHERE sender_id = ?",
                              (sender,)).fetchall()
        return [dict(row) for row in rows]

    def restart_actions(self, **env: str) -> None:
        """Restart the action server with ``env`` on top of its environment (a new policy ...)."""
        child = next(c for c in self.stack.children if c.name == "actions")
        child.process.terminate()
        child.process.wait(timeout=30)
        self.stack.children.remove(child)
        child.log.close()
        self.action_env = {**self.action_env, **env}
        self.stack.start_action_server(self.action_env)
        self.stack.wait_ready(timeout=180)


def text_of(replies: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text") or "") for r in replies)


def operation_id(payload: str) -> str:
    """The operation id a Confirm / Cancel button's payload carries."""
    return str(json.loads(payload[payload.index("{"):])["operation_id"])


def policy_with_ttl(directory: Path, ttl: str, *names: str) -> Path:
    """The tests' team policy (``team_policy``) with ``confirmation_ttl: ttl``."""
    path = team_policy(directory, *names)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["confirmation_ttl"] = ttl
    short = directory / f"policy-ttl-{ttl}.yml"
    short.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return short


def demo_stack(model: Path, state: Path, *people: str) -> Iterator[DemoBot]:
    """Start the stack (a generator for a module fixture); ``people`` join policy.yml as
    developers."""
    settings = dataclasses.replace(Settings.from_env(ROOT), port=free_port(),
                                   actions_port=free_port(), state_dir=state)
    jenkins = JenkinsSimulator(queue_delay=0.1, build_seconds=1.5)
    jira, loki = JiraSimulator(), LokiSimulator()
    started: list[Any] = []
    stack = Stack(settings)
    db_path = state / "opsbot.db"
    try:
        for simulator in (jenkins, jira, loki):
            simulator.start()
            started.append(simulator)
        env = {**jenkins.env(), **jira.env(), **loki.env(),
               "OPSBOT_DB_URL": f"sqlite:///{db_path}",
               "OPSBOT_POLICY": str(team_policy(state, *people)),
               "OPSBOT_WATCH_POLL": "0.2", "JENKINS_TIMEOUT": CLIENT_TIMEOUT,
               "JIRA_TIMEOUT": CLIENT_TIMEOUT, "LOGS_TIMEOUT": CLIENT_TIMEOUT}
        stack.start_action_server(env)
        stack.start_rasa_server(model)
        stack.wait_ready(timeout=180)
        yield DemoBot(stack, settings, jenkins, jira, loki, db_path, state, env)
    finally:
        stack.stop()
        for simulator in started:
            simulator.stop()
