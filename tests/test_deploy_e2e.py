"""The deploy dialogue end to end: REST channel -> Rasa -> action server -> python-jenkins ->
simulator.

One Rasa server, action server and Jenkins simulator serve the whole module (starting
them costs ~30 s); each test uses its own senders and services so tests stay independent.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jenkins
import pytest
import requests

from actions.guard.identity import sign_payload
from opsbot._processes import Stack
from opsbot.settings import Settings
from simulators.jenkins import JenkinsSimulator
from tests.conftest import REST_AUTH, ROOT, api, button_payload, free_port

POLICY = """\
confirmation_ttl: 5m
people:
  alice: {roles: [release-manager, developer], identities: {rest: alice}}
  bob: {roles: [developer], identities: {rest: bob}}
  carol: {roles: [release-manager, developer], identities: {rest: carol, teams: aad-carol}}
  dave: {roles: [release-manager], identities: {rest: dave}}
everyone_roles: []
rules:
  - intents: [deploy, rollback]
    when: {environment: prod, service: search}
    risk: critical
    roles: [release-manager]
    approval: [release-manager]
  - intents: [deploy, rollback]
    when: {environment: prod}
    risk: critical
    roles: [release-manager]
  - intents: [run_build, stop_build, deploy, rollback, create_issue, comment_issue, update_issue]
    risk: change
    unknown: true   # the tests' other senders (erin, ivan, ...) are not named above
  - intents: [deploy_history, build_status, list_jobs, build_failure, query_logs, issue_status,
              list_issues]
    risk: read
    unknown: true
"""


@dataclasses.dataclass
class Bot:
    stack: Stack
    settings: Settings
    sim: JenkinsSimulator
    db_path: Path
    action_env: dict[str, str]

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        response = requests.post(self.settings.rest_url, json={"sender": sender, "message": text},
                                 headers=REST_AUTH, timeout=60)
        response.raise_for_status()
        return list(response.json())

    def tracker(self, sender: str) -> dict[str, Any]:
        base = f"http://{self.settings.host}:{self.settings.port}"
        response = requests.get(api(f"{base}/conversations/{sender}/tracker"), timeout=30)
        response.raise_for_status()
        return dict(response.json())

    def bot_texts(self, sender: str) -> list[str]:
        return [e.get("text") or "" for e in self.tracker(sender)["events"] if e["event"] == "bot"]

    def client(self) -> jenkins.Jenkins:
        return jenkins.Jenkins(self.sim.url, username=self.sim.user, password=self.sim.token,
                               timeout=10)

    def restart_actions(self) -> None:
        child = next(c for c in self.stack.children if c.name == "actions")
        child.process.terminate()
        child.process.wait(timeout=20)
        self.stack.children.remove(child)
        child.log.close()
        self.stack.start_action_server(self.action_env)
        self.stack.wait_ready()

    def operation_state(self, operation_id: str) -> str:
        with sqlite3.connect(self.db_path) as db:
            row = db.execute("SELECT state FROM opsbot_operations WHERE id = ?",
                             (operation_id,)).fetchone()
        return str(row[0])


@pytest.fixture(scope="module")
def bot(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bot]:
    state = tmp_path_factory.mktemp("state")
    policy = state / "policy.yml"
    policy.write_text(POLICY, encoding="utf-8")
    db_path = state / "opsbot.db"
    settings = dataclasses.replace(
        Settings.from_env(ROOT), port=free_port(), actions_port=free_port(), state_dir=state,
    )
    sim = JenkinsSimulator(queue_delay=0.1, build_seconds=1.5)
    sim.start()
    action_env = {**sim.env(), "OPSBOT_DB_URL": f"sqlite:///{db_path}",
                  "OPSBOT_POLICY": str(policy), "OPSBOT_WATCH_POLL": "0.2",
                  # Short enough for the unknown-outcome tests' lost answers and searches.
                  "JENKINS_TIMEOUT": "3", "OPSBOT_RECONCILE_WINDOW": "5"}
    stack = Stack(settings)
    try:
        stack.start_action_server(action_env)
        stack.start_rasa_server(trained_model)
        stack.wait_ready(timeout=180)
        yield Bot(stack, settings, sim, db_path, action_env)
    finally:
        stack.stop()
        sim.stop()


_button = button_payload


def _text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text") or "" for r in replies)


def _operation_id(payload: str) -> str:
    return str(json.loads(payload[payload.index("{"):])["operation_id"])


def _deploy_builds(bot: Bot, service: str) -> list[Any]:
    return bot.sim.builds(f"deploy-{service}")


def _wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met in time")


def test_confirmed_deploy_runs_exactly_once_and_reports_back(bot: Bot) -> None:
    before = len(_deploy_builds(bot, "payments"))
    replies = bot.say("alice", "deploy payments 2.4.1 to staging")
    text = _text(replies)
    assert "Deploy payments 2.4.1 to staging with job deploy-payments" in text
    assert "staging runs 2.4.1" in text or "staging runs" in text
    confirm = _button(replies, "Confirm")
    assert len(_deploy_builds(bot, "payments")) == before  # a preview runs nothing

    done = _text(bot.say("alice", confirm))
    assert "started" in done
    builds = _wait_for(lambda: len(_deploy_builds(bot, "payments")) > before and
                       _deploy_builds(bot, "payments"))
    new = builds[before:]
    assert len(new) == 1
    assert new[0].parameters == {"SERVICE": "payments", "VERSION": "2.4.1",
                                 "ENVIRONMENT": "staging",
                                 "OPSBOT_OPERATION": _operation_id(confirm)}

    again = _text(bot.say("alice", confirm))
    assert "already" in again and "Nothing new ran" in again
    # alice's button in bob's REST conversation: made for another chat, refused there.
    as_bob = _text(bot.say("bob", confirm))
    assert "made for another chat" in as_bob and "nothing was done" in as_bob

    # The real python-jenkins sees the same single build.
    info = bot.client().get_job_info("deploy-payments")
    assert info["lastBuild"]["number"] == new[0].number
    completion = _wait_for(lambda: [t for t in bot.bot_texts("alice")
                                    if "is live on staging: SUCCESS" in t])
    assert "payments 2.4.1" in completion[0]
    time.sleep(1.0)
    assert len(_deploy_builds(bot, "payments")) == before + 1


def test_another_user_cannot_confirm(bot: Bot) -> None:
    # Through the REST channel every sender is a conversation of its own, so alice's button
    # sent as bob is refused before the guard (which refuses another person pressing it in
    # a group: tests/test_trust_e2e.py).
    before = len(_deploy_builds(bot, "billing"))
    confirm = _button(bot.say("alice", "deploy billing 3.1.5 to dev"), "Confirm")
    refused = _text(bot.say("bob", confirm))
    assert "made for another chat" in refused and "nothing was done" in refused
    time.sleep(0.5)
    assert len(_deploy_builds(bot, "billing")) == before
    # alice can still confirm her own operation afterwards.
    assert "started" in _text(bot.say("alice", confirm))
    _wait_for(lambda: len(_deploy_builds(bot, "billing")) == before + 1)


def test_cancel_and_a_changed_digest_run_nothing(bot: Bot) -> None:
    before = len(_deploy_builds(bot, "auth"))
    replies = bot.say("erin", "deploy auth 4.0.3 to dev")
    confirm = _button(replies, "Confirm")
    forged = confirm.replace(json.loads(confirm[confirm.index("{"):])["digest"], "0" * 16)
    # The payload's signature no longer matches: refused before the guard's digest check.
    assert "I did not make it" in _text(bot.say("erin", forged))
    assert "Cancelled" in _text(bot.say("erin", _button(replies, "Cancel")))
    assert "cancelled" in _text(bot.say("erin", confirm))
    time.sleep(0.5)
    assert len(_deploy_builds(bot, "auth")) == before


def test_expired_confirmation_is_refused(bot: Bot) -> None:
    before = len(_deploy_builds(bot, "inventory"))
    confirm = _button(bot.say("frank", "deploy inventory 0.18.2 to dev"), "Confirm")
    operation_id = _operation_id(confirm)
    with sqlite3.connect(bot.db_path) as db:
        db.execute("UPDATE opsbot_operations SET expires_at = ? WHERE id = ?",
                   ("2000-01-01 00:00:00.000000", operation_id))
    text = _text(bot.say("frank", confirm))
    assert "expired" in text and "nothing ran" in text
    assert bot.operation_state(operation_id) == "expired"
    assert len(_deploy_builds(bot, "inventory")) == before


def test_policy_refuses_prod_for_bob(bot: Bot) -> None:
    before = len(_deploy_builds(bot, "payments"))
    text = _text(bot.say("bob", "deploy payments 2.4.1 to prod"))
    assert "release-manager" in text and "alice" in text and "Nothing ran" in text
    assert len(_deploy_builds(bot, "payments")) == before


def test_a_second_approval_is_asked_for_in_a_chat_not_through_rest(bot: Bot) -> None:
    # One REST token speaks for everyone it names: an approval through it proves no second
    # person, and its Approve button would show in this conversation only. So a request
    # that needs one is refused at once, saying where to ask (the approval itself, pressed
    # in a Telegram group, is tested in test_trust_e2e.py).
    before = len(_deploy_builds(bot, "search"))
    replies = bot.say("alice", "deploy search 1.10.0 to prod")
    text = _text(replies)
    assert "second person with the release-manager role" in text, text
    assert "Telegram, Teams or Slack" in text and "Nothing ran" in text
    assert not [b for r in replies for b in r.get("buttons") or []]
    time.sleep(0.5)
    assert len(_deploy_builds(bot, "search")) == before


def test_jenkins_errors_are_reported_and_not_recorded_as_success(bot: Bot) -> None:
    before = len(_deploy_builds(bot, "notifications"))
    confirm = _button(bot.say("gina", "deploy notifications 1.7.1 to dev"), "Confirm")
    bot.sim.fail_next(500, times=1, path="buildWithParameters")
    text = _text(bot.say("gina", confirm))
    # A 500 after the request was sent proves nothing: said as unknown, never "did not start".
    assert "could not confirm that Jenkins started" in text and "did not start" not in text
    # Clicking again does not retry behind anyone's back.
    assert "nothing new ran" in _text(bot.say("gina", confirm)).lower()
    # The watcher finds no build within its window and says so, clearly.
    said = _wait_for(lambda: [t for t in bot.bot_texts("gina")
                              if "Jenkins did not start the deploy of notifications" in t])
    assert "Nothing ran" in said[0]
    assert bot.operation_state(_operation_id(confirm)) == "failed"
    assert len(_deploy_builds(bot, "notifications")) == before


def test_a_lost_answer_is_unknown_then_the_real_result(bot: Bot) -> None:
    """The simulated Jenkins takes the build but answers after the client's timeout."""
    before = len(_deploy_builds(bot, "search"))
    confirm = _button(bot.say("lena", "deploy search 1.10.1 to dev"), "Confirm")
    bot.sim.respond_delay(6.0, path="deploy-search/buildWithParameters")
    text = _text(bot.say("lena", confirm))
    assert "I could not confirm that Jenkins started the deploy of search 1.10.1 to dev" in text
    assert "do not ask again yet" in text and "did not start" not in text
    done = _wait_for(lambda: [t for t in bot.bot_texts("lena")
                              if "search 1.10.1 is live on dev: SUCCESS" in t])
    assert "found by its OPSBOT_OPERATION parameter" in done[0]
    assert bot.operation_state(_operation_id(confirm)) == "succeeded"
    new = _deploy_builds(bot, "search")[before:]
    assert len(new) == 1 and new[0].parameters["OPSBOT_OPERATION"] == _operation_id(confirm)
    assert "Nothing new ran" in _text(bot.say("lena", confirm))
    assert len(_deploy_builds(bot, "search")) == before + 1


def test_confirmation_survives_an_action_server_restart(bot: Bot) -> None:
    before = len(_deploy_builds(bot, "checkout"))
    confirm = _button(bot.say("alice", "deploy checkout 5.13.1 to dev"), "Confirm")
    bot.restart_actions()
    assert "started" in _text(bot.say("alice", confirm))
    _wait_for(lambda: len(_deploy_builds(bot, "checkout")) == before + 1)


def test_missing_values_are_asked_for_with_buttons(bot: Bot) -> None:
    replies = bot.say("henry", "deploy payments")
    assert "Which environment" in _text(replies)
    staging = _button(replies, "staging")
    replies = bot.say("henry", staging)
    assert "Which version" in _text(replies)
    replies = bot.say("henry", "2.4.1")
    assert "Deploy payments 2.4.1 to staging" in _text(replies)
    assert _button(replies, "Confirm")


def test_fuzzy_service_names_and_unknown_ones(bot: Bot) -> None:
    text = _text(bot.say("ivan", "deploy paymnts 2.4.1 to dev"))
    assert "Deploy payments 2.4.1 to dev" in text and "paymnts" in text
    # A name the NLU never learnt is said to be unknown, not asked for (issue 27).
    replies = bot.say("ivan", "deploy warpdrive 1.0.0 to dev")
    assert _text(replies).startswith("I don't know a service called \"warpdrive\"")
    assert "Which service?" not in _text(replies)
    unknown = sign_payload("deploy", {"service": "warpdrive", "version": "1.0.0",
                                      "environment": "dev"}, scope="rest:ivan",
                           expires=time.time() + 600)
    text = _text(bot.say("ivan", unknown))
    assert "can't find a service called \"warpdrive\"" in text and "payments" in text


def test_reads_answer_from_jenkins(bot: Bot) -> None:
    red = _text(bot.say("judy", "what's red in CI?"))
    assert "billing-ci" in red and "search-ci" in red and "payments-ci" not in red
    why = _text(bot.say("judy", "why did the last billing build fail?"))
    assert "billing-ci" in why and "FAILURE" in why
    live = _text(bot.say("judy", "what version of payments is live on prod?"))
    assert "prod: 2.4.0" in live and "alice" in live
    everything = _text(bot.say("judy", "what versions are deployed on prod?"))
    assert "payments: prod 2.4.0" in everything and "billing: prod 3.1.4" in everything


def test_audit_lists_the_operation(bot: Bot) -> None:
    import subprocess
    import sys

    env = {**os.environ, "OPSBOT_DB_URL": f"sqlite:///{bot.db_path}"}
    out = subprocess.run([sys.executable, "-m", "opsbot", "audit", "--json", "--intent", "deploy",
                          "--user", "alice"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    records = json.loads(out.stdout)
    done = [r for r in records if r["parameters"].get("service") == "payments"
            and r["parameters"].get("environment") == "staging" and r["confirmed_by"] == "alice"]
    assert done, out.stdout
    assert done[0]["requester"] == "alice" and done[0]["result"] == "SUCCESS"


def test_jenkins_down_gives_a_clear_message_and_records_no_success(bot: Bot) -> None:
    """Last in the module: it stops the simulator."""
    confirm = _button(bot.say("kim", "deploy auth 4.0.3 to dev"), "Confirm")
    bot.sim.stop()
    text = _text(bot.say("kim", confirm))
    assert "Jenkins" in text and "did not start" in text
    assert bot.operation_state(_operation_id(confirm)) == "error"
    read = _text(bot.say("kim", "what's red in CI?"))
    assert "Jenkins" in read and "Traceback" not in read
