"""Jira and logs end to end: REST channel -> Rasa -> action server -> jira / HTTP -> simulators.

One Rasa server and action server for the module; the action server is restarted once
to switch the log source from the Loki simulator to the file source.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jira
import pytest
import requests

from opsbot._processes import Stack
from opsbot.settings import Settings
from simulators.jira import JiraSimulator
from simulators.logs import generate, write_files
from simulators.loki import LokiSimulator
from tests.conftest import REST_AUTH, ROOT, button_payload, free_port, team_policy

NOW = datetime.now(UTC)


@dataclasses.dataclass
class Bot:
    stack: Stack
    settings: Settings
    jira_sim: JiraSimulator
    loki: LokiSimulator
    log_dir: Path
    env: dict[str, str]

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        response = requests.post(self.settings.rest_url, json={"sender": sender, "message": text},
                                 headers=REST_AUTH, timeout=60)
        response.raise_for_status()
        return list(response.json())

    def client(self) -> jira.JIRA:
        return jira.JIRA(server=self.jira_sim.url,
                         basic_auth=(self.jira_sim.user, self.jira_sim.token), max_retries=0)

    def restart_actions(self, **env: str) -> None:
        child = next(c for c in self.stack.children if c.name == "actions")
        child.process.terminate()
        child.process.wait(timeout=20)
        self.stack.children.remove(child)
        child.log.close()
        self.env = {**{k: v for k, v in self.env.items() if k not in ("LOKI_URL",)}, **env}
        self.stack.start_action_server(self.env)
        self.stack.wait_ready()


@pytest.fixture(scope="module")
def bot(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    state = tmp_path_factory.mktemp("state")
    records = generate(NOW)
    log_dir = state / "logs-files"
    write_files(records, log_dir)
    settings = dataclasses.replace(Settings.from_env(ROOT), port=free_port(),
                                   actions_port=free_port(), state_dir=state)
    jira_sim, loki = JiraSimulator(), LokiSimulator(records)
    jira_sim.start()
    loki.start()
    policy = team_policy(state, "dave", "erin", "frank", "gina", "hank", "henry", "ivan", "judy",
                         "kim")
    env = {**jira_sim.env(), **loki.env(), "OPSBOT_DB_URL": f"sqlite:///{state / 'opsbot.db'}",
           "OPSBOT_POLICY": str(policy)}
    stack = Stack(settings)
    try:
        stack.start_action_server(env)
        stack.start_rasa_server(trained_model)
        stack.wait_ready(timeout=180)
        yield Bot(stack, settings, jira_sim, loki, log_dir, env)
    finally:
        stack.stop()
        jira_sim.stop()
        loki.stop()


def _text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


_button = button_payload


def test_create_issue_with_the_summary_in_the_request(bot: Bot) -> None:
    before = len(bot.jira_sim.issues("OPS"))
    replies = bot.say("alice", "open a high priority bug: checkout returns 502 on prod")
    text = _text(replies)
    assert "checkout returns 502 on prod" in text and "High" in text
    assert len(bot.jira_sim.issues("OPS")) == before
    done = _text(bot.say("alice", _button(replies, "Confirm")))
    assert "Opened OPS-" in done
    found = bot.client().search_issues('summary ~ "checkout returns 502 on prod"')
    assert len(found) == 1 and found[0].fields.priority.name == "High"
    assert "Nothing new ran" in _text(bot.say("alice", _button(replies, "Confirm")))
    assert len(bot.jira_sim.issues("OPS")) == before + 1


def test_create_issue_asks_for_the_summary_and_can_be_cancelled(bot: Bot) -> None:
    asked = _text(bot.say("bob", "open a ticket"))
    assert "What should the ticket say" in asked
    replies = bot.say("bob", "the nightly report email is empty")
    assert "the nightly report email is empty" in _text(replies)
    assert "Cancelled" in _text(bot.say("bob", _button(replies, "Cancel")))
    assert "What should the ticket say" in _text(bot.say("bob", "create a ticket"))
    assert "no ticket" in _text(bot.say("bob", "cancel"))


def test_issue_status_existing_missing_and_malformed(bot: Bot) -> None:
    text = _text(bot.say("carol", "what's the status of OPS-123?"))
    assert "OPS-123" in text and "stale prices" in text and "To Do" in text
    assert "There is no issue OPS-9999" in _text(bot.say("carol", "status of OPS-9999"))


def test_list_issues_with_filters(bot: Bot) -> None:
    text = _text(bot.say("dave", "open bugs in PAY"))
    assert "PAY-" in text and "OPS-" not in text


def test_comment_transition_and_assign(bot: Bot) -> None:
    replies = bot.say("erin", "comment on OPS-123: reproduced on staging too")
    assert "reproduced on staging too" in _text(replies)
    assert "Commented on OPS-123" in _text(bot.say("erin", _button(replies, "Confirm")))
    replies = bot.say("erin", "move OPS-123 to in progress")
    assert "In Progress" in _text(replies)
    assert "now In Progress" in _text(bot.say("erin", _button(replies, "Confirm")))
    invalid = _text(bot.say("erin", "move OPS-123 to reopened"))
    assert "can move to" in invalid and "Nothing changed" in invalid
    replies = bot.say("erin", "assign OPS-123 to bob")
    assert "now assigned to" in _text(bot.say("erin", _button(replies, "Confirm")))
    assert bot.client().issue("OPS-123").fields.assignee.name == "bob"


def test_jql_injection_is_not_executed(bot: Bot) -> None:
    text = _text(bot.say("frank", 'open bugs in OPS about x" OR project = PAY OR summary ~ "y'))
    assert "PAY-" not in text


def _errors_last_hour(bot: Bot) -> list[str]:
    text = _text(bot.say("gina", "errors from payments in the last hour"))
    assert "error lines from payments" in text, text
    return [line for line in text.splitlines() if re.match(r"\d\d:\d\d:\d\d ", line)]


@pytest.mark.parametrize("source", ["loki", "files"])
def test_errors_from_payments_in_the_last_hour(bot: Bot, source: str) -> None:
    if source == "files":
        bot.restart_actions(OPSBOT_LOG_DIR=str(bot.log_dir))
    lines = _errors_last_hour(bot)
    assert lines
    assert all(("ERROR" in line or "FATAL" in line) and "payments" in line for line in lines)
    stamps = [line.split()[0] for line in lines]
    assert stamps == sorted(stamps, reverse=True)
    earliest = (NOW - timedelta(hours=1, minutes=1)).astimezone().strftime("%H:%M:%S")
    assert all(stamp >= earliest for stamp in stamps) or NOW.astimezone().hour == 0


def test_logs_no_match_and_a_huge_message(bot: Bot) -> None:
    text = _text(bot.say("hank", "errors from payments in the last hour containing zzqqxxnotthere"))
    assert "No error lines" in text
    replies = bot.say("hank", "errors from payments " + "x" * 20000)
    assert replies  # answered, not crashed
