"""opsbot's Telegram connector in webhook mode, end to end.

The connector calls setWebhook with a secret; the Telegram simulator then POSTs each
update to /webhooks/telegram/webhook with X-Telegram-Bot-Api-Secret-Token. A request
without the right secret is refused with 403 and changes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from simulators.jenkins import JenkinsSimulator
from simulators.telegram import ALICE, BOB, TelegramSimulator
from tests.conftest import chat_stack, free_port, wait_until

SECRET = "opsbot-webhook_Secret-42"


@dataclasses.dataclass
class Stage:
    telegram: TelegramSimulator
    jenkins: JenkinsSimulator
    hook: str  # where opsbot itself listens (behind the proxy), for requests not from Telegram


@pytest.fixture(scope="module")
def stage(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    port = free_port()
    # The public https URL Telegram accepts; the simulator routes it to the local port,
    # as the reverse proxy in front of a real bot does.
    hook = "https://opsbot.example.com:8443/webhooks/telegram/webhook"
    telegram = TelegramSimulator(routes={"https://opsbot.example.com:8443":
                                         f"http://127.0.0.1:{port}"})
    telegram.start()
    webhook = {"TELEGRAM_MODE": "webhook", "TELEGRAM_WEBHOOK_URL": hook,
               "TELEGRAM_WEBHOOK_SECRET": SECRET}
    with chat_stack(trained_model, tmp_path_factory.mktemp("state"), telegram, port=port,
                    rasa_env=webhook) as jenkins:
        wait_until(lambda: telegram.webhook_info().get("url") == hook, "setWebhook was not called")
        yield Stage(telegram, jenkins, f"http://127.0.0.1:{port}/webhooks/telegram/webhook")


def _update(update_id: int, user: int, text: str) -> dict[str, Any]:
    person = {"id": user, "is_bot": False, "first_name": "Alice" if user == ALICE else "Bob"}
    return {"update_id": update_id, "message": {
        "message_id": 9000 + update_id, "date": int(time.time()), "from": person,
        "chat": {"id": user, "type": "private", "first_name": person["first_name"]},
        "text": text}}


def test_a_confirmed_deploy_through_the_webhook(stage: Stage) -> None:
    builds = len(stage.jenkins.builds("deploy-payments"))
    stage.telegram.send_text(ALICE, "deploy payments 2.4.1 to staging")
    preview = stage.telegram.wait_for_bot_message(
        ALICE, contains="Deploy payments 2.4.1 to staging", timeout=60)
    stage.telegram.press(ALICE, ALICE, int(preview["message_id"]), title="Confirm")
    stage.telegram.wait_for_bot_message(ALICE, contains="started", after=int(preview["message_id"]),
                                        timeout=60)
    wait_until(lambda: len(stage.jenkins.builds("deploy-payments")) == builds + 1, "no build")
    stage.telegram.wait_for_bot_message(ALICE, contains="is live on staging: SUCCESS",
                                        after=int(preview["message_id"]), timeout=60)
    deliveries = stage.telegram.webhook_deliveries()
    assert deliveries and all(d["status"] == 200 for d in deliveries)
    # In webhook mode getUpdates is refused by Telegram, and the connector never polls.
    assert not [r for r in stage.telegram.request_log() if r.api_method == "getUpdates"]


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x"])
def test_a_request_without_the_right_secret_is_refused(stage: Stage, secret: str | None) -> None:
    before = len(stage.telegram.bot_messages(BOB))
    builds = len(stage.jenkins.builds("deploy-billing"))
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    update = _update(700_000 + len(secret or "") * 7 + (secret is None), BOB,
                     "deploy billing 3.1.5 to dev")
    answer = requests.post(stage.hook, data=json.dumps(update), headers=headers, timeout=30)
    assert answer.status_code == 403
    time.sleep(1.0)
    assert len(stage.telegram.bot_messages(BOB)) == before
    assert len(stage.jenkins.builds("deploy-billing")) == builds
    # The same update with the secret is not taken for a duplicate: the refusal stored nothing.
    headers["X-Telegram-Bot-Api-Secret-Token"] = SECRET
    answer = requests.post(stage.hook, data=json.dumps(update), headers=headers, timeout=60)
    assert answer.status_code == 200
    stage.telegram.wait_for_bot_message(BOB, contains="Deploy billing 3.1.5 to dev", timeout=30)


def test_a_body_that_is_not_an_update_is_a_400(stage: Stage) -> None:
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET}
    for body in ("not json", json.dumps({"hello": 1}), json.dumps([1, 2])):
        answer = requests.post(stage.hook, data=body, headers=headers, timeout=30)
        assert answer.status_code == 400
