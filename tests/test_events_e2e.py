"""Events into a Telegram group, end to end (issue 14's acceptance).

A real Rasa server with the Telegram connector polling the Telegram simulator and the
events channel; the action server with Jenkins; the project's policy.yml (alice,
Telegram 42, is a release manager; bob, 43, is not). The group subscribes in plain
language; Alertmanager and GitHub payloads are posted to ``/webhooks/events/<source>``
with their real authentication, by ``simulators.events``.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from simulators.events import (
    alertmanager_payload,
    github_check_run,
    post_event,
)
from simulators.jenkins import JenkinsSimulator
from simulators.telegram import ALICE, BOB, OPS_GROUP, TelegramSimulator
from tests.conftest import chat_stack, free_port, wait_until

MENTION = "@opsbot_demo_bot"
TOKEN = "events-token-for-tests"
SECRET = "github-secret-for-tests"
CHECKS_GROUP = -1001000000555  # allowed, subscribed to the checkout repo's checks
QUIET = -1001000000556  # allowed, subscribed to nothing


@dataclasses.dataclass
class Stage:
    telegram: TelegramSimulator
    jenkins: JenkinsSimulator
    base: str

    def messages(self, chat: int = OPS_GROUP) -> list[dict[str, Any]]:
        return self.telegram.bot_messages(chat)

    def last_id(self, chat: int = OPS_GROUP) -> int:
        messages = self.messages(chat)
        return int(messages[-1]["message_id"]) if messages else 0

    def ask(self, user: int, text: str, *, contains: str, chat: int = OPS_GROUP
            ) -> dict[str, Any]:
        after = self.last_id(chat)
        self.telegram.send_text(user, text, chat_id=chat)
        return self.telegram.wait_for_bot_message(chat, contains=contains, after=after,
                                                  timeout=60)

    def press(self, user: int, message: dict[str, Any], title: str, *, contains: str,
              chat: int = OPS_GROUP) -> dict[str, Any]:
        after = self.last_id(chat)
        self.telegram.press(user, chat, int(message["message_id"]), title=title)
        return self.telegram.wait_for_bot_message(chat, contains=contains, after=after,
                                                  timeout=60)

    def post(self, source: str, payload: dict[str, Any] | bytes, **auth: Any) -> tuple[int, Any]:
        status, body = post_event(self.base, source, payload, **auth)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body


@pytest.fixture(scope="module")
def stage(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    telegram = TelegramSimulator()
    telegram.start()
    telegram.add_group(CHECKS_GROUP, "checkout-dev", members=(ALICE, BOB))
    telegram.add_group(QUIET, "quiet", members=(ALICE, BOB))
    port = free_port()
    env = {"OPSBOT_EVENTS_TOKEN": TOKEN, "GITHUB_WEBHOOK_SECRET": SECRET}
    with chat_stack(trained_model, tmp_path_factory.mktemp("state"), telegram, port=port,
                    rasa_env={**env, "TELEGRAM_POLL_TIMEOUT": "5",
                              "OPSBOT_EVENTS_INTERVAL": "0.2",
                              "TELEGRAM_ALLOWED_CHATS": f"{OPS_GROUP},{CHECKS_GROUP},{QUIET}"},
                    actions_env=env) as jenkins:
        wait_until(lambda: telegram.waiting_polls() > 0, "the connector never polled getUpdates")
        yield Stage(telegram, jenkins, f"http://127.0.0.1:{port}")


def _buttons(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


def _quietly(stage: Stage, chat: int, seconds: float = 2.0) -> list[dict[str, Any]]:
    """The chat's bot messages after waiting long enough for a courier to have posted."""
    time.sleep(seconds)
    return stage.messages(chat)


def test_a_group_gets_an_alert_once_its_resolution_and_a_rollback_from_its_button(
        stage: Stage) -> None:
    said = stage.ask(ALICE, f"{MENTION} notify us about alerts for payments in prod",
                     contains="Subscribed")
    assert "alerts for payments on prod" in said["plain_text"]

    firing = alertmanager_payload(service="payments", environment="prod")
    status, answer = stage.post("alertmanager", firing, token=TOKEN)
    assert status == 200 and answer["deliveries"] == 1, answer
    alert = stage.telegram.wait_for_bot_message(OPS_GROUP, contains="ALERT (critical)",
                                                after=int(said["message_id"]), timeout=30)
    assert "payments on prod" in alert["plain_text"] and "Firing since" in alert["plain_text"]
    assert "Roll back payments on prod" in _buttons(alert)
    assert "Show errors" in _buttons(alert) and "Open a ticket" in _buttons(alert)

    count = len(stage.messages())
    status, answer = stage.post("alertmanager", firing, token=TOKEN)  # Alertmanager repeats
    assert status == 200 and answer["duplicates"] == 1 and answer["deliveries"] == 0
    assert len(_quietly(stage, OPS_GROUP)) == count

    resolved = alertmanager_payload(service="payments", environment="prod", status="resolved",
                                    started_at=_started(firing))
    status, answer = stage.post("alertmanager", resolved, token=TOKEN)
    assert status == 200 and answer["deliveries"] == 1
    wait_until(lambda: "RESOLVED" in _message(stage, alert)["plain_text"],
               "the alert was never edited to say it resolved", timeout=30)
    assert len(stage.messages()) == count  # edited, not posted again
    assert "Roll back payments on prod" in _buttons(_message(stage, alert))  # still useful

    preview = stage.press(ALICE, alert, "Roll back payments on prod",
                          contains="Roll back payments")
    assert _buttons(preview) == ["Confirm", "Cancel"]
    assert "alice" in preview["plain_text"]


def test_a_button_press_is_asking_in_words_under_the_policy(stage: Stage) -> None:
    stage.ask(ALICE, f"{MENTION} tell this chat about critical alerts for payments in prod",
              contains="Subscribed", chat=QUIET)
    status, _ = stage.post("alertmanager", alertmanager_payload(service="payments",
                                                                alertname="HighLatency"),
                           token=TOKEN)
    assert status == 200
    alert = stage.telegram.wait_for_bot_message(QUIET, contains="ALERT", timeout=30)
    builds = sum(len(stage.jenkins.builds(job)) for job in stage.jenkins.job_names())
    # bob is not a release manager: pressing is asking, and the policy refuses him.
    refused = stage.press(BOB, alert, "Roll back payments on prod", contains="release-manager",
                          chat=QUIET)
    assert "release-manager" in refused["plain_text"], refused["plain_text"]
    assert _buttons(refused) == []
    assert sum(len(stage.jenkins.builds(job)) for job in stage.jenkins.job_names()) == builds
    # alice is: the same button gives her the preview, and only she can confirm it.
    preview = stage.press(ALICE, alert, "Roll back payments on prod", contains="Roll back",
                          chat=QUIET)
    assert _buttons(preview) == ["Confirm", "Cancel"] and "only alice" in preview["plain_text"]
    # The alert's buttons stay for the next person.
    assert "Roll back payments on prod" in _buttons(_message(stage, alert, QUIET))


def test_wrong_or_missing_tokens_post_nothing(stage: Stage) -> None:
    before = {chat: len(stage.messages(chat)) for chat in (OPS_GROUP, QUIET)}
    payload = alertmanager_payload(service="payments", alertname="Forged")
    assert stage.post("alertmanager", payload, token="guessed")[0] == 401
    assert stage.post("alertmanager", payload)[0] == 401
    assert stage.post("grafana", payload, token="guessed", basic=True)[0] == 401
    assert stage.post("github", github_check_run(repo="acme/payments"), secret="guess")[0] == 401
    answer = requests.post(f"{stage.base}/webhooks/events/github", timeout=10,
                           data=json.dumps(github_check_run()),
                           headers={"X-GitHub-Event": "check_run"})
    assert answer.status_code == 401
    assert {chat: len(_quietly(stage, chat)) for chat in (OPS_GROUP, QUIET)} == before


def test_bad_bodies_get_the_reason_and_change_nothing(stage: Stage) -> None:
    status, answer = stage.post("alertmanager", b"{not json", token=TOKEN)
    assert status == 400 and "not JSON" in answer["error"]
    status, answer = stage.post("alertmanager", github_check_run(), token=TOKEN)
    assert status == 400 and answer["error"].startswith("not a alertmanager webhook")
    status, answer = stage.post("alertmanager", b"x" * ((1 << 20) + 1), token=TOKEN)
    assert status == 413
    status, answer = stage.post("alertmanager", {"version": "4"}, token=TOKEN)
    assert status == 400 and "groupKey" in answer["error"]
    assert requests.post(f"{stage.base}/webhooks/events/pagerduty", timeout=10,
                         json={}).status_code == 404


def _raw(base: str, head: str, body: bytes = b"") -> str:
    """Send a request's head (and maybe part of its body) on a socket; the status line of
    what comes back, before the rest of a promised body is sent."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        answer = sock.recv(4096).decode("latin-1")
    return answer.split("\r\n", 1)[0]


def test_a_big_body_is_refused_before_it_is_read(stage: Stage) -> None:
    promised = 50 * 1024 * 1024  # only the head is sent: an answer shows nothing waited for it
    head = ("POST /webhooks/events/alertmanager HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: {}\r\n{}")
    assert " 401 " in _raw(stage.base, head.format(promised, ""))
    assert " 413 " in _raw(stage.base, head.format(promised, f"Authorization: Bearer {TOKEN}\r\n"))
    chunked = ("POST /webhooks/events/alertmanager HTTP/1.1\r\nHost: x\r\n"
               f"Authorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n")
    chunk = b"x" * 65536
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 17  # over 1 MiB, never terminated
    assert " 413 " in _raw(stage.base, chunked, body)
    assert stage.post("alertmanager", {"version": "4"}, token=TOKEN)[0] == 400  # still serving


def test_failed_pr_checks_reach_the_subscribed_group_once(stage: Stage) -> None:
    stage.ask(ALICE, f"{MENTION} post the results of PR checks on the checkout repo here",
              contains="Subscribed", chat=CHECKS_GROUP)
    failed = github_check_run(repo="acme/checkout", name="unit tests", conclusion="failure")
    status, answer = stage.post("github", failed, secret=SECRET, delivery="d-1")
    assert status == 200 and answer["deliveries"] == 1, answer
    message = stage.telegram.wait_for_bot_message(CHECKS_GROUP, contains="unit tests",
                                                  timeout=30)
    assert "FAILED" in message["plain_text"] and "#42" in message["plain_text"]
    count = len(stage.messages(CHECKS_GROUP))
    status, answer = stage.post("github", failed, secret=SECRET, delivery="d-1")  # redelivery
    assert status == 200 and answer["duplicates"] == 1
    assert len(_quietly(stage, CHECKS_GROUP)) == count
    assert stage.messages(OPS_GROUP)[-1]["plain_text"].find("unit tests") == -1


def test_the_group_lists_and_ends_its_subscriptions(stage: Stage) -> None:
    listed = stage.ask(ALICE, f"{MENTION} what are we subscribed to?",
                       contains="This conversation gets", chat=CHECKS_GROUP)
    assert "checkout" in listed["plain_text"]
    stage.ask(BOB, f"{MENTION} stop telling us about the checkout checks", contains="Stopped",
              chat=CHECKS_GROUP)
    status, answer = stage.post("github", github_check_run(repo="acme/checkout",
                                                           name="lint"), secret=SECRET)
    assert status == 200 and answer["deliveries"] == 0


def _started(payload: dict[str, Any]) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(payload["alerts"][0]["startsAt"].replace("Z", "+00:00"))


def _message(stage: Stage, message: dict[str, Any], chat: int = OPS_GROUP) -> dict[str, Any]:
    wanted = int(message["message_id"])
    return next(m for m in stage.messages(chat) if int(m["message_id"]) == wanted)
