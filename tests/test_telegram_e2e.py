"""opsbot in a Telegram group, end to end, in polling mode.

The real python-telegram-bot inside the Rasa server polls the Telegram simulator; the
action server drives the Jenkins simulator; the policy is the project's policy.yml
(alice, Telegram user 42, is a release manager; bob, 43, is not). One stack serves
the module; each test uses its own service so tests stay independent.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.jenkins import JenkinsSimulator
from simulators.telegram import ALICE, BOB, OPS_GROUP, TelegramSimulator
from tests.conftest import chat_stack, wait_until

MENTION = "@opsbot_demo_bot"
QUIET = -1001000000777  # an allowed group (TELEGRAM_ALLOWED_CHATS) with no build reports


@dataclasses.dataclass
class Stage:
    telegram: TelegramSimulator
    jenkins: JenkinsSimulator

    def last_id(self, chat: int = OPS_GROUP) -> int:
        messages = self.telegram.bot_messages(chat)
        return int(messages[-1]["message_id"]) if messages else 0

    def ask(self, user: int, text: str, *, contains: str, chat: int = OPS_GROUP,
            timeout: float = 60.0) -> dict[str, Any]:
        after = self.last_id(chat)
        self.telegram.send_text(user, text, chat_id=chat)
        return self.telegram.wait_for_bot_message(chat, contains=contains, after=after,
                                                  timeout=timeout)

    def press(self, user: int, message: dict[str, Any], title: str, *, contains: str,
              chat: int = OPS_GROUP) -> dict[str, Any]:
        after = self.last_id(chat)
        self.telegram.press(user, chat, int(message["message_id"]), title=title)
        return self.telegram.wait_for_bot_message(chat, contains=contains, after=after, timeout=60)

    def builds(self, service: str) -> list[Any]:
        return self.jenkins.builds(f"deploy-{service}")


@pytest.fixture(scope="module")
def stage(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    telegram = TelegramSimulator()
    telegram.start()
    with chat_stack(trained_model, tmp_path_factory.mktemp("state"), telegram,
                    rasa_env={"TELEGRAM_POLL_TIMEOUT": "5",
                              "TELEGRAM_ALLOWED_CHATS": f"{OPS_GROUP},{QUIET}"}) as jenkins:
        wait_until(lambda: telegram.waiting_polls() > 0, "the connector never polled getUpdates")
        yield Stage(telegram, jenkins)


def _buttons(message: dict[str, Any]) -> list[str]:
    markup = message.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


def test_group_deploy_confirmed_by_the_requester_only(stage: Stage) -> None:
    before = len(stage.builds("payments"))
    preview = stage.ask(ALICE, f"{MENTION} deploy payments 2.4.1 to prod",
                        contains="Deploy payments 2.4.1 to prod")
    assert _buttons(preview) == ["Confirm", "Cancel"]
    assert "only alice can confirm" in preview["plain_text"]

    refused = stage.press(BOB, preview, "Confirm", contains="Only alice")
    assert "nothing ran" in refused["plain_text"]
    time.sleep(0.5)
    assert len(stage.builds("payments")) == before
    # bob's click changed nothing: alice's keyboard is still there.
    shown = stage.telegram.bot_messages(OPS_GROUP)[_index(stage, preview)]
    assert _buttons(shown) == ["Confirm", "Cancel"]

    started = stage.press(ALICE, preview, "Confirm", contains="started")
    assert "payments" in started["plain_text"]
    wait_until(lambda: len(stage.builds("payments")) == before + 1, "no build started")
    # The keyboard is gone, so nobody can press a stale Confirm.
    edited = stage.telegram.wait_for_edit(OPS_GROUP, int(preview["message_id"]))
    assert _buttons(edited) == [] and "confirmed" in edited["plain_text"]
    with pytest.raises(LookupError):
        stage.telegram.press(ALICE, OPS_GROUP, int(preview["message_id"]), title="Confirm")
    # The result is pushed into the group when the build ends.
    done = stage.telegram.wait_for_bot_message(OPS_GROUP, contains="is live on prod: SUCCESS",
                                               after=int(started["message_id"]), timeout=60)
    assert "payments 2.4.1" in done["plain_text"]
    assert len(stage.builds("payments")) == before + 1
    assert len(stage.telegram.callback_answers()) >= 2  # every press was answered


def _index(stage: Stage, message: dict[str, Any]) -> int:
    ids = [m["message_id"] for m in stage.telegram.bot_messages(OPS_GROUP)]
    return ids.index(message["message_id"])


def test_a_redelivered_confirmation_runs_nothing_twice(stage: Stage) -> None:
    before = len(stage.builds("billing"))
    preview = stage.ask(ALICE, f"{MENTION} deploy billing 3.1.5 to staging",
                        contains="Deploy billing 3.1.5 to staging")
    after = stage.last_id()
    update = stage.telegram.press(ALICE, OPS_GROUP, int(preview["message_id"]), title="Confirm")
    stage.telegram.wait_for_bot_message(OPS_GROUP, contains="started", after=after, timeout=60)
    wait_until(lambda: len(stage.builds("billing")) == before + 1, "no build started")
    count = len(stage.telegram.bot_messages(OPS_GROUP))
    stage.telegram.redeliver(update)
    wait_until(lambda: stage.telegram.pending_updates() == 0, "the redelivery was not fetched")
    time.sleep(1.5)
    assert len(stage.builds("billing")) == before + 1
    new = stage.telegram.bot_messages(OPS_GROUP)[count:]
    assert not [m for m in new if "started" in m["plain_text"] or "already" in m["plain_text"]]


def test_the_group_is_ignored_unless_the_bot_is_addressed(stage: Stage) -> None:
    quiet = QUIET  # a group of its own: no build report from another test lands here
    stage.telegram.add_group(quiet, "qa", members=(ALICE, BOB))
    stage.telegram.send_text(BOB, "deploy payments 2.4.1 to prod, says the release plan",
                             chat_id=quiet)
    stage.telegram.send_text(BOB, "/build_status@some_other_bot payments", chat_id=quiet)
    wait_until(lambda: stage.telegram.pending_updates() == 0, "updates not fetched")
    time.sleep(1.5)
    assert stage.telegram.bot_messages(quiet) == []
    # A reply to one of the bot's messages is addressed to it.
    reply = stage.ask(BOB, f"{MENTION} hi", contains="", chat=quiet)
    stage.telegram.send_text(BOB, "what can you do?", chat_id=quiet,
                             reply_to_message_id=int(reply["message_id"]))
    stage.telegram.wait_for_bot_message(quiet, after=int(reply["message_id"]), timeout=60)


def test_a_command_and_a_private_chat(stage: Stage) -> None:
    status = stage.ask(BOB, "/build_status@opsbot_demo_bot payments", contains="payments")
    assert status["plain_text"]
    private = stage.ask(BOB, "what's red in CI?", chat=BOB, contains="billing-ci")
    # Job names are full of MarkdownV2's reserved characters ("-", "_", "."): they arrive
    # intact, so the connector escaped them.
    assert "search-ci" in private["plain_text"] and "\\" not in private["plain_text"]


def test_bob_cannot_deploy_to_prod_and_a_sticker_is_harmless(stage: Stage) -> None:
    refused = stage.ask(BOB, f"{MENTION} deploy checkout 5.13.1 to prod",
                        contains="release-manager")
    assert "Nothing ran" in refused["plain_text"]
    after = stage.last_id(BOB)
    stage.telegram.send_sticker(BOB, OPS_GROUP)
    stage.telegram.send_sticker(BOB)
    stage.telegram.wait_for_bot_message(BOB, contains="only read text", after=after, timeout=60)
    # Still alive after the stickers:
    stage.ask(BOB, f"{MENTION} hello", contains="")
