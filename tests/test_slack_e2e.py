"""opsbot in a Slack channel, end to end, in Socket Mode and in HTTP mode (issue 28's acceptance).

The real slack_sdk inside the Rasa server talks to the Slack simulator: over a Socket Mode
websocket, or as the Request URL the simulator posts signed events, presses and commands
to. The action server drives the Jenkins simulator; the policy is the project's
policy.yml (alice, U0ALICE, is a release manager; bob, U0BOB, is not). Each test uses its
own service or channel so the tests stay independent. carol is left out of Slack in
this policy, to be the stranger who writes to opsbot.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsbot._sim_chat import SlackChannel, sim_chat
from simulators.events import alertmanager_payload, post_event
from simulators.jenkins import JenkinsSimulator
from simulators.slack import (
    ALICE,
    BOB,
    BOT_USER,
    CAROL,
    EVE,
    OPS_CHANNEL,
    OTHER_CHANNEL,
    OTHER_TEAM,
    SHARED_CHANNEL,
    Forgery,
    SlackSimulator,
)
from tests.conftest import ROOT, chat_stack, free_port, wait_until

MENTION = f"<@{BOT_USER}>"
TOKEN = "events-token-for-slack-tests"


@dataclasses.dataclass
class Stage:
    mode: str
    slack: SlackSimulator
    jenkins: JenkinsSimulator
    base: str

    def ask(self, user: str, text: str, *, contains: str, channel: str = OPS_CHANNEL,
            thread_ts: str | None = None) -> tuple[str, dict[str, Any]]:
        """``user`` says ``text``; the ts of their message and opsbot's answer in its thread."""
        sent = self.slack.say(user, channel, text, thread_ts=thread_ts)
        answer = self.slack.wait_for_message(channel, contains=contains,
                                             thread_ts=thread_ts or sent.ts, timeout=60)
        return str(sent.ts), answer

    def builds(self, service: str) -> int:
        return len(self.jenkins.builds(f"deploy-{service}"))

    def latest(self, channel: str = OPS_CHANNEL) -> str | None:
        """The ts of the newest message in ``channel``: wait for what comes after it."""
        messages = self.slack.messages(channel)
        return str(max(messages, key=lambda m: float(m["ts"]))["ts"]) if messages else None


def _policy(directory: Path) -> Path:
    """The project's policy.yml without carol's Slack identity."""
    data = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    del data["people"]["carol"]["identities"]["slack"]
    path = directory / "policy.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module", params=["socket", "http"])
def stage(request: pytest.FixtureRequest, trained_model: Path,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    port = free_port()
    if request.param == "socket":
        slack = SlackSimulator(socket_mode=True)
    else:
        slack = SlackSimulator(events_url=f"http://127.0.0.1:{port}/webhooks/slack/webhook",
                               retry_delays=(0.5, 1.0))
    slack.start()
    state = tmp_path_factory.mktemp("state")
    env = {"OPSBOT_EVENTS_TOKEN": TOKEN, "OPSBOT_POLICY": str(_policy(state))}
    # #ops is allowed by the simulator's own settings, as in `opsbot demo --channel slack`.
    allowed = f"{slack.env().get('SLACK_ALLOWED_CHANNELS', '')},{SHARED_CHANNEL}"
    with chat_stack(trained_model, state, slack, port=port,
                    rasa_env={**env, "OPSBOT_EVENTS_INTERVAL": "0.2",
                              "SLACK_ALLOWED_CHANNELS": allowed},
                    actions_env=env) as jenkins:
        if request.param == "socket":
            slack.wait_for_connection(timeout=60)
        else:
            assert slack.verify_url()  # Slack's url_verification challenge is answered
        yield Stage(request.param, slack, jenkins, f"http://127.0.0.1:{port}")


def _buttons(message: dict[str, Any]) -> list[str]:
    return [str(e["text"]["text"]) for b in message.get("blocks") or []
            if b.get("type") == "actions" for e in b.get("elements") or []]


def _texts(messages: list[dict[str, Any]]) -> list[str]:
    return [json.dumps(m.get("blocks") or m.get("text")) for m in messages]


def test_a_deploy_confirmed_by_the_requester_only_and_never_twice(stage: Stage) -> None:
    slack, before = stage.slack, stage.builds("payments")
    sent = slack.say(ALICE, OPS_CHANNEL, f"{MENTION} deploy payments 2.4.1 to staging")
    preview = slack.wait_for_message(OPS_CHANNEL, contains="Deploy payments 2.4.1 to staging",
                                     thread_ts=sent.ts, timeout=60)
    assert _buttons(preview) == ["Confirm", "Cancel"]
    assert len(sent.deliveries) == 2  # the message and its app_mention: one request
    time.sleep(1.0)
    previews = [t for t in _texts(slack.thread(OPS_CHANNEL, str(sent.ts)))
                if "Deploy payments 2.4.1" in t]
    assert len(previews) == 1, previews

    slack.press(BOB, OPS_CHANNEL, preview["ts"], title="Confirm")
    refusal = slack.wait_for_ephemeral(BOB, contains="Only alice", timeout=60)
    assert "nothing ran" in json.dumps(refusal)
    time.sleep(1.0)
    assert stage.builds("payments") == before
    thread = slack.thread(OPS_CHANNEL, str(sent.ts))
    assert not [t for t in _texts(thread) if "Only alice" in t]  # only bob saw it
    assert _buttons(next(m for m in thread if m["ts"] == preview["ts"])) == ["Confirm", "Cancel"]

    pressed = slack.press(ALICE, OPS_CHANNEL, preview["ts"], title="Confirm")
    slack.wait_for_message(OPS_CHANNEL, contains="started", thread_ts=sent.ts, timeout=60)
    wait_until(lambda: stage.builds("payments") == before + 1, "no build started")
    updated = slack.wait_for_update(OPS_CHANNEL, preview["ts"], contains="confirmed",
                                    timeout=30)
    assert _buttons(updated) == [] and "Deploy payments 2.4.1" in json.dumps(updated["blocks"])
    with pytest.raises(LookupError):  # no stale Confirm left to press
        slack.press(ALICE, OPS_CHANNEL, preview["ts"], title="Confirm")
    slack.wait_for_message(OPS_CHANNEL, contains="is live on staging: SUCCESS",
                           thread_ts=sent.ts, timeout=60)

    # The same mention and the same press delivered again change nothing.
    count = len(slack.messages(OPS_CHANNEL))
    for item in (*sent.deliveries, *pressed.deliveries):
        slack.redeliver(item)
    time.sleep(3.0)
    assert stage.builds("payments") == before + 1
    assert len(slack.messages(OPS_CHANNEL)) == count


def test_a_thread_opsbot_is_part_of_needs_no_mention_and_other_talk_is_ignored(
        stage: Stage) -> None:
    slack = stage.slack
    count = len(slack.messages(OPS_CHANNEL))
    slack.say(BOB, OPS_CHANNEL, "deploy payments 2.4.1 to prod, says the release plan")
    time.sleep(2.0)
    assert len(slack.messages(OPS_CHANNEL)) == count + 1  # bob's own message, no answer
    asked, _ = stage.ask(BOB, f"{MENTION} hi", contains="")
    slack.say(BOB, OPS_CHANNEL, "what's red in CI?", thread_ts=asked)
    answer = slack.wait_for_message(OPS_CHANNEL, contains="billing-ci", thread_ts=asked,
                                    timeout=60)
    # Job names with "_", "-" and "." arrive as they are: escaped mrkdwn, shown verbatim.
    assert "search-ci" in json.dumps(answer["blocks"])


def test_the_slash_command_and_a_direct_message(stage: Stage) -> None:
    slack = stage.slack
    after = stage.latest()
    slack.slash(BOB, OPS_CHANNEL, "what's red in CI?")
    slack.wait_for_message(OPS_CHANNEL, contains="billing-ci", after=after, timeout=60)
    direct = slack.dm_of(ALICE)
    slack.say(ALICE, direct, "what's red in CI?")
    slack.wait_for_message(direct, contains="billing-ci", timeout=60)


def test_someone_of_another_workspace_speaks_for_nobody(stage: Stage) -> None:
    slack = stage.slack
    count = len(slack.messages(SHARED_CHANNEL))
    slack.say(EVE, SHARED_CHANNEL, f"{MENTION} deploy payments 2.4.1 to staging")
    sent = slack.slash(ALICE, OPS_CHANNEL, "hi", forge=Forgery(team_id=OTHER_TEAM))
    time.sleep(2.0)
    assert len(slack.messages(SHARED_CHANNEL)) == count + 1  # eve's message only
    if stage.mode == "http":
        attempts = slack.wait_for_delivery(sent.deliveries[0].id, acknowledged=False)
        assert attempts[0]["status"] == 403


def test_an_alert_subscribed_from_slack_arrives_once_and_its_resolution_edits_it(
        stage: Stage) -> None:
    slack = stage.slack
    channel = SHARED_CHANNEL  # allowed, and no build reports of other tests land here
    service = "payments"
    asked, said = stage.ask(ALICE, f"{MENTION} notify us about alerts for {service} in prod",
                            contains="Subscribed", channel=channel)
    firing = alertmanager_payload(service=service, environment="prod")
    status, body = post_event(stage.base, "alertmanager", firing, token=TOKEN)
    assert status == 200 and json.loads(body)["deliveries"] == 1, body
    alert = slack.wait_for_message(channel, contains="ALERT (critical)", after=said["ts"],
                                   timeout=30)
    assert f"Roll back {service} on prod" in _buttons(alert)
    status, body = post_event(stage.base, "alertmanager", firing, token=TOKEN)  # repeated
    assert json.loads(body)["duplicates"] == 1
    resolved = alertmanager_payload(service=service, environment="prod", status="resolved",
                                    started_at=_started(firing))
    count = len(slack.messages(channel))
    post_event(stage.base, "alertmanager", resolved, token=TOKEN)
    edited = slack.wait_for_update(channel, alert["ts"], contains="RESOLVED", timeout=30)
    assert f"Roll back {service} on prod" in _buttons(edited)
    time.sleep(1.0)
    assert len(slack.messages(channel)) == count  # edited, not posted again
    assert len([t for t in _texts(slack.messages(channel)) if "ALERT" in t or "RESOLVED" in t]) \
        == 1


def test_the_terminal_chat_plays_the_team_in_slack(stage: Stage,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """What ``opsbot demo --channel slack`` runs: you type as alice in #ops."""
    if stage.mode != "socket":
        pytest.skip("the demo connects in Socket Mode")
    lines = iter(["what can you do?", "/as bob", "/opsbot hi", "/quit"])
    sim_chat(SlackChannel(stage.slack), "alice", read=lambda prompt: next(lines),
             quiet_after=0.5)
    out = capsys.readouterr().out
    assert "Chatting as alice in the Slack channel #ops" in out
    assert "opsbot> I can help with builds" in out


# -- HTTP mode only ------------------------------------------------------------------------


def test_forged_replayed_and_foreign_requests_are_refused_and_change_nothing(
        stage: Stage) -> None:
    if stage.mode != "http":
        pytest.skip("signatures exist in HTTP mode only; a foreign team is tested above")
    slack = stage.slack
    count, before = len(slack.messages(OPS_CHANNEL)), stage.builds("checkout")
    for forge, status in ((Forgery(bad_signature=True), 401), (Forgery(unsigned=True), 401),
                          (Forgery(timestamp_age=600), 401),
                          (Forgery(team_id=OTHER_TEAM), 403)):
        sent = slack.say(ALICE, OPS_CHANNEL, f"{MENTION} deploy checkout 5.13.1 to staging",
                         forge=forge)
        for item in sent.deliveries:
            attempts = slack.wait_for_delivery(item.id, acknowledged=False)
            assert {a["status"] for a in attempts} == {status}, (forge, attempts)
    time.sleep(1.0)
    assert len(slack.messages(OPS_CHANNEL)) == count + 4  # alice's four messages only
    assert stage.builds("checkout") == before


def test_a_stranger_and_an_unlisted_channel_get_one_refusal(stage: Stage) -> None:
    if stage.mode != "http":
        pytest.skip("the same code serves both modes; once is enough")
    slack = stage.slack
    slack.say(ALICE, OTHER_CHANNEL, f"{MENTION} what's red in CI?")
    refusal = slack.wait_for_message(OTHER_CHANNEL, contains="SLACK_ALLOWED_CHANNELS",
                                     timeout=60)
    assert OTHER_CHANNEL in json.dumps(refusal["blocks"])
    slack.say(BOB, OTHER_CHANNEL, f"{MENTION} hello?")
    slack.slash(BOB, OTHER_CHANNEL, "hello?")
    time.sleep(2.0)
    assert len([m for m in slack.messages(OTHER_CHANNEL) if m.get("bot_id")]) == 1
    direct = slack.dm_of(CAROL)  # not in this policy's Slack identities
    slack.say(CAROL, direct, "deploy payments 2.4.1 to prod")
    told = slack.wait_for_message(direct, contains="Slack id", timeout=60)
    assert CAROL in json.dumps(told["blocks"])


def _started(payload: dict[str, Any]) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(payload["alerts"][0]["startsAt"].replace("Z", "+00:00"))
