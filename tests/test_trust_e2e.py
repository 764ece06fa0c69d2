"""The trust second pass, end to end: each finding replayed as it was found, from outside.

1. A team operation whose ``job`` parameter names a deploy job reached ``deploy-payments``
   with ``ENVIRONMENT=prod`` around the prod rule. Here through the REST channel of
   ``opsbot demo --serve``, retrained with such operations as a team would add them
   (``opsbot train --reload``), with a four-eyes policy: bob is refused as his direct
   request is, alice is told it needs the approval the prod rule requires, and no build
   starts (checked in the demo's Jenkins through python-jenkins).
4. A cancel sent through the REST channel for an operation asked for in Telegram. Here in
   a Telegram group (the real python-telegram-bot against the Telegram simulator), with
   the same policy: the four-eyes approval is given in the group by a second release
   manager, the REST channel cannot cancel or confirm what was asked in Telegram, a
   second person cannot cancel the requester's confirmation, and an approver may reject.

Findings 2 (forged Jenkins notifications) and 3 (an inserted audit row) are replayed in
``test_events_jenkins_checked.py`` and ``test_audit_copy.py``; outages in
``test_outage_e2e.py``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jenkins
import pytest
import requests
import yaml

from actions.guard import OperationStore
from actions.storage import ChannelState
from opsbot._processes import stop_process
from opsbot.settings import Settings
from simulators.jenkins import JenkinsSimulator
from simulators.telegram import ALICE, BOB, CAROL, OPS_GROUP, TelegramSimulator
from tests.conftest import (
    REST_AUTH,
    ROOT,
    chat_stack,
    copy_project,
    free_port,
    rest_say,
    serve_demo,
    wait_until,
)

MENTION = "@opsbot_demo_bot"

# The shape of the operation that reached a prod deploy (docs/operations.md:
# a job parameter resolved against Jenkins), and one that calls its environment another name.
LAUNCH = """\
name: launch_job
description: Launch a Jenkins job with an environment
examples:
  - launch jenkins job [platform/nightly-integration](job) with environment [dev](environment)
  - launch jenkins job [integration-tests](job) with environment [staging](environment)
  - please launch jenkins job [search-ci](job) with environment [prod](environment)
  - launch the jenkins job [billing-ci](job) with environment [production](environment)
  - launch jenkins job [checkout-ci](job) with the environment [stage](environment)
  - launch jenkins job [auth-ci](job) with environment [development](environment)
parameters:
  job: {type: job}
  environment: {type: environment}
risk: change
run:
  jenkins:
    job: "{job}"
    parameters: {SERVICE: payments, VERSION: 2.4.1, ENVIRONMENT: "{environment}"}
    follow: false
"""
PROMOTE = """\
name: promote_payments
description: Promote payments to a target
examples:
  - promote payments to the target [dev](target)
  - promote payments onto the target [staging](target)
  - please promote payments to the target [prod](target)
  - promote payments to target [production](target)
  - promote payments to the target called [stage](target)
  - promote payments to the target [development](target)
parameters:
  target: {type: environment}
risk: change
run:
  jenkins:
    job: deploy-payments
    parameters: {SERVICE: payments, VERSION: 2.4.1, ENVIRONMENT: "{target}"}
    follow: false
"""


def _four_eyes_policy(directory: Path, **telegram: int) -> Path:
    """The project's policy, with a second release manager's approval for prod."""
    data = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    data["rules"][0]["approval"] = ["release-manager"]
    for name, user_id in telegram.items():
        data["people"][name]["identities"]["telegram"] = str(user_id)
    path = directory / "policy.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text") or "") for r in replies)


# -- 1. a team operation reaching a prod deploy, through the REST channel -----------------


@dataclasses.dataclass
class Demo:
    settings: Settings
    env: dict[str, str]
    jenkins: jenkins.Jenkins

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        return rest_say(self.settings, sender, text, timeout=120)

    def builds(self, job: str) -> list[dict[str, Any]]:
        return list(self.jenkins.get_job_info(job, fetch_all_builds=True)["builds"])


@pytest.fixture(scope="module")
def demo(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("project")
    models = copy_project(root, trained_model)
    team = tmp_path_factory.mktemp("team-operations")
    (team / "launch_job.yml").write_text(LAUNCH, encoding="utf-8")
    (team / "promote_payments.yml").write_text(PROMOTE, encoding="utf-8")
    policy = _four_eyes_policy(tmp_path_factory.mktemp("policy"))
    port, actions_port = free_port(), free_port()
    state = root / ".opsbot"
    settings = dataclasses.replace(Settings.from_env(root), port=port, actions_port=actions_port,
                                   state_dir=state, models=models)
    env = {**os.environ, "OPSBOT_STATE_DIR": str(state), "OPSBOT_MODELS": str(models),
           "OPSBOT_PORT": str(port), "PYTHONPATH": str(root), "OPSBOT_POLICY": str(policy),
           "OPSBOT_OPERATIONS_PATH": str(team), "OPSBOT_DEMO_BUILD_SECONDS": "2"}
    process, output, _ = serve_demo(root, env, "--port", str(port),
                                    "--actions-port", str(actions_port))
    try:
        found = re.search(r"Jenkins \S+ at (\S+) \(user (\S+), token (\S+)\)", "".join(output))
        assert found, "".join(output)
        client = jenkins.Jenkins(found.group(1), username=found.group(2),
                                 password=found.group(3), timeout=30)
        wait_until(lambda: (state / "trainer.port").exists(), "the demo's trainer did not start",
                   180)
        done = subprocess.run([sys.executable, "-m", "opsbot", "train", "--reload"], cwd=root,
                              env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0 and "now answers with" in done.stdout, \
            done.stdout + done.stderr
        yield Demo(settings, env, client)
    finally:
        stop_process(process, grace=60)


def test_bob_cannot_reach_a_prod_deploy_through_a_team_operation(demo: Demo) -> None:
    before = len(demo.builds("deploy-payments"))
    direct = _text(demo.say("bob", "deploy payments 2.4.1 to prod"))
    assert "needs the release-manager role" in direct and "Nothing ran" in direct, direct
    launched = demo.say("bob", "launch jenkins job deploy-payments with environment prod")
    text = _text(launched)
    assert ("on a deploy job for prod needs the release-manager role (as deploying to prod "
            "does), which alice and carol have") in text, text
    assert "Nothing ran" in text and not [b for r in launched for b in r.get("buttons") or []]
    # The environment is read from what is sent to Jenkins, whatever the file calls it.
    promoted = _text(demo.say("bob", "promote payments to the target prod"))
    assert "deploy job for prod needs the release-manager role" in promoted, promoted
    time.sleep(1.0)
    assert len(demo.builds("deploy-payments")) == before


def test_alice_needs_the_approval_the_prod_rule_requires(demo: Demo) -> None:
    before = len(demo.builds("deploy-payments"))
    text = _text(demo.say("alice", "launch jenkins job deploy-payments with environment prod"))
    assert "second person with the release-manager role" in text, text
    assert "Nothing ran" in text
    time.sleep(1.0)
    assert len(demo.builds("deploy-payments")) == before


def test_off_prod_the_same_operation_is_an_ordinary_confirmed_change(demo: Demo) -> None:
    before = len(demo.builds("deploy-payments"))
    replies = demo.say("bob", "launch jenkins job deploy-payments with environment staging")
    text = _text(replies)
    assert "deploy-payments is a deploy job: this deploys to staging" in text, text
    confirm = next(b["payload"] for r in replies for b in r.get("buttons") or []
                   if b["title"] == "Confirm")
    assert "started" in _text(demo.say("bob", confirm)).lower()
    wait_until(lambda: len(demo.builds("deploy-payments")) == before + 1, "no build started")
    newest = demo.jenkins.get_build_info("deploy-payments", demo.builds("deploy-payments")[0]
                                         ["number"])
    sent = {p["name"]: p.get("value") for a in newest["actions"] if a
            for p in a.get("parameters") or []}
    assert sent["ENVIRONMENT"] == "staging"


# -- 4. approvals and cancels where they belong, in a Telegram group ----------------------


@dataclasses.dataclass
class Group:
    telegram: TelegramSimulator
    jenkins: JenkinsSimulator
    rest_url: str
    store: OperationStore

    def last_id(self) -> int:
        messages = self.telegram.bot_messages(OPS_GROUP)
        return int(messages[-1]["message_id"]) if messages else 0

    def ask(self, user: int, text: str, *, contains: str) -> dict[str, Any]:
        after = self.last_id()
        self.telegram.send_text(user, text, chat_id=OPS_GROUP)
        return self.telegram.wait_for_bot_message(OPS_GROUP, contains=contains, after=after,
                                                  timeout=60)

    def press(self, user: int, message: dict[str, Any], title: str, *,
              contains: str) -> dict[str, Any]:
        after = self.last_id()
        self.telegram.press(user, OPS_GROUP, int(message["message_id"]), title=title)
        return self.telegram.wait_for_bot_message(OPS_GROUP, contains=contains, after=after,
                                                  timeout=60)

    def payload(self, message: dict[str, Any], title: str) -> str:
        """What a button of ``message`` carries (a long one is kept in opsbot's store)."""
        data = next(b["callback_data"] for row in message["reply_markup"]["inline_keyboard"]
                    for b in row if b["text"] == title)
        if not data.startswith("~"):
            return str(data)
        stored = ChannelState(self.store.database).recall("telegram-button", data[1:])
        assert stored is not None
        return str(stored["payload"])

    def rest(self, sender: str, text: str) -> str:
        answer = requests.post(self.rest_url, json={"sender": sender, "message": text},
                               headers=REST_AUTH, timeout=60)
        answer.raise_for_status()
        return _text(answer.json())

    def deploys(self, service: str) -> int:
        return len(self.jenkins.builds(f"deploy-{service}"))


@pytest.fixture(scope="module")
def group(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Group]:
    state = tmp_path_factory.mktemp("state")
    policy = _four_eyes_policy(tmp_path_factory.mktemp("policy"), carol=CAROL)
    telegram = TelegramSimulator()
    telegram.start()
    port = free_port()
    env = {"OPSBOT_POLICY": str(policy)}
    with chat_stack(trained_model, state, telegram, port=port,
                    rasa_env={**env, "TELEGRAM_POLL_TIMEOUT": "5",
                              "TELEGRAM_ALLOWED_CHATS": str(OPS_GROUP)},
                    actions_env=env) as jenkins_sim:
        wait_until(lambda: telegram.waiting_polls() > 0, "the connector never polled")
        store = OperationStore(f"sqlite:///{state / 'opsbot.db'}")
        try:
            yield Group(telegram, jenkins_sim, f"http://127.0.0.1:{port}/webhooks/rest/webhook",
                        store)
        finally:
            store.close()


def _waiting(group: Group, user: int = ALICE) -> str:
    """The operation ``user`` has waiting in the group (its buttons keep the id in the store)."""
    [operation] = group.store.open_for(f"telegram:{OPS_GROUP}:{user}")
    return operation.id


def test_a_prod_deploy_is_approved_by_a_second_release_manager_in_the_group(
        group: Group) -> None:
    before = group.deploys("payments")
    preview = group.ask(ALICE, f"{MENTION} deploy payments 2.4.1 to prod",
                        contains="Deploy payments 2.4.1 to prod")
    assert "must approve (carol)" in preview["plain_text"], preview["plain_text"]
    waiting = group.press(ALICE, preview, "Confirm", contains="Confirmed by alice")
    assert "carol" in waiting["plain_text"]
    refused = group.press(BOB, waiting, "Approve", contains="role")
    assert "Nothing ran" in refused["plain_text"]
    same = group.press(ALICE, waiting, "Approve", contains="second, different person")
    assert "alice asked for it" in same["plain_text"]
    time.sleep(0.5)
    assert group.deploys("payments") == before
    started = group.press(CAROL, waiting, "Approve", contains="started")
    assert "approved by carol" in started["plain_text"]
    wait_until(lambda: group.deploys("payments") == before + 1, "no build started")


def test_rest_cannot_cancel_or_confirm_what_was_asked_in_telegram(group: Group) -> None:
    preview = group.ask(ALICE, f"{MENTION} deploy checkout 5.13.1 to staging",
                        contains="Deploy checkout 5.13.1 to staging")
    operation_id = _waiting(group)
    # The requester's own Cancel and Confirm, sent through the REST channel as alice.
    for title in ("Cancel", "Confirm"):
        said = group.rest("alice", group.payload(preview, title))
        assert "made for another chat" in said and "nothing was done" in said, said
    # In words, the REST conversation has nothing waiting: the operation is not its own.
    assert "nothing waiting" in group.rest("alice", "cancel").lower()
    assert group.store.get(operation_id).state == "pending_confirmation"  # type: ignore[union-attr]
    # Someone else in the group cannot cancel alice's confirmation either.
    other = group.press(CAROL, preview, "Cancel", contains="Only alice")
    assert "it is still waiting" in other["plain_text"]
    assert group.store.get(operation_id).state == "pending_confirmation"  # type: ignore[union-attr]
    cancelled = group.press(ALICE, preview, "Cancel", contains="Cancelled")
    assert operation_id in cancelled["plain_text"]
    assert group.store.get(operation_id).state == "cancelled"  # type: ignore[union-attr]


def test_an_approver_may_reject_where_they_could_approve(group: Group) -> None:
    before = group.deploys("search")
    preview = group.ask(ALICE, f"{MENTION} deploy search 1.10.0 to prod",
                        contains="Deploy search 1.10.0 to prod")
    waiting = group.press(ALICE, preview, "Confirm", contains="Confirmed by alice")
    operation_id = _waiting(group)
    refused = group.press(BOB, waiting, "Cancel", contains="Only alice")
    assert "still waiting" in refused["plain_text"]
    rejected = group.press(CAROL, waiting, "Cancel", contains="Rejected")
    assert operation_id in rejected["plain_text"]
    assert group.store.get(operation_id).state == "cancelled"  # type: ignore[union-attr]
    assert group.deploys("search") == before
