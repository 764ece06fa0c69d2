"""connectors._common: the marker the actions send, and which buttons become stale."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from actions.turn import OPERATIONS_KEY as ACTIONS_KEY
from connectors._common import OPERATIONS_KEY, ButtonBook, operation_of, operation_states


def test_actions_and_connectors_agree_on_the_marker() -> None:
    assert ACTIONS_KEY == OPERATIONS_KEY


def test_operation_of_reads_decision_payloads_only() -> None:
    assert operation_of('/affirm{"operation_id":"op-1","digest":"ab"}') == "op-1"
    assert operation_of('/deploy{"service":"payments"}') is None
    assert operation_of("/affirm") is None
    assert operation_of("/affirm{not json") is None
    assert operation_of(None) is None


def test_operation_states_ignore_malformed_items() -> None:
    message = {OPERATIONS_KEY: [{"id": "op-1", "state": "executing"}, {"id": "op-2"}, "junk"]}
    assert operation_states(message) == {"op-1": "executing"}
    assert operation_states({}) == {}


def test_a_message_is_stale_once_its_operation_changed_state() -> None:
    book: ButtonBook[str] = ButtonBook()
    confirm = ['/affirm{"operation_id":"op-1","digest":"d"}', '/deny{"operation_id":"op-1"}']
    book.track("preview", confirm, {"op-1": "pending_confirmation"})
    book.track("choices", ['/deploy{"environment":"prod"}'], {})
    # Someone else's refused click leaves the operation as it was: the preview stays.
    assert book.stale({"op-1": "pending_confirmation"}) == []
    # The requester confirmed and a second approver is needed: the Confirm buttons are spent,
    # while the Approve buttons sent in the same turn (same new state) stay.
    book.track("approve", confirm, {"op-1": "pending_approval"})
    assert book.stale({"op-1": "pending_approval"}) == [("preview", "pending_approval")]
    assert book.stale({"op-1": "executing"}) == [("approve", "executing")]
    assert book.stale({"op-1": "succeeded"}) == []  # each message is retired once


def test_opsbot_run_adds_the_connectors_the_environment_enables(tmp_path: Path) -> None:
    import dataclasses

    from opsbot._processes import Stack
    from opsbot.settings import Settings
    from tests.conftest import ROOT

    settings = dataclasses.replace(Settings.from_env(ROOT), state_dir=tmp_path)
    stack = Stack(settings)
    plain = stack.runtime_credentials({}).read_text(encoding="utf-8")
    assert "rest:" in plain and "\nconnectors.telegram.TelegramInput:" not in plain
    written = stack.runtime_credentials({"TELEGRAM_TOKEN": "1:secret-token",
                                         "TELEGRAM_MODE": "polling",
                                         "TEAMS_APP_ID": "app",
                                         "SLACK_BOT_TOKEN": "xoxb-secret-token",
                                         "SLACK_APP_TOKEN": "xapp-1"}).read_text(encoding="utf-8")
    assert ("\nconnectors.telegram.TelegramInput:\n"
            "  token: ${TELEGRAM_TOKEN}\n  mode: ${TELEGRAM_MODE}\n") in written
    assert "\nconnectors.teams.TeamsInput:\n  app_id: ${TEAMS_APP_ID}\n" in written
    assert ("\nconnectors.slack.SlackInput:\n  bot_token: ${SLACK_BOT_TOKEN}\n"
            "  app_token: ${SLACK_APP_TOKEN}\n") in written
    assert "secret-token" not in written  # placeholders only: Rasa expands them


def test_choice_keyboards_belong_to_who_was_asked_and_claims_expire(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import datetime, timedelta

    import connectors._common as common

    monkeypatch.delenv("OPSBOT_DB_URL", raising=False)
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(common, "_stores", None)
    monkeypatch.setattr(common, "_claims_pruned", float("-inf"))
    choice, confirm = '/deploy{"service":"search"}', '/affirm{"operation_id":"op-1"}'
    store = common.channel_store()
    old = datetime.now(UTC) - common.CLAIMS_KEPT - timedelta(hours=1)
    store.remember("keyboard-owner", "chat:1", {"owner": "alice"}, now=old)
    common.claim_keyboard("chat:2", "alice", [choice])
    common.claim_keyboard("chat:3", "alice", [confirm])  # operation buttons: no owner needed
    assert common.pressed_by_other("chat:2", "bob", choice)
    assert not common.pressed_by_other("chat:2", "alice", choice)
    assert not common.pressed_by_other("chat:2", "bob", confirm)  # the guard decides those
    assert not common.pressed_by_other("chat:3", "bob", choice)
    assert store.recall("keyboard-owner", "chat:1") is None  # a week old: pruned
    assert not common.pressed_by_other("chat:1", "bob", choice)


def test_a_request_taken_can_be_forgotten_so_its_retry_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import connectors._common as common

    monkeypatch.delenv("OPSBOT_DB_URL", raising=False)
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path))
    monkeypatch.setattr(common, "_stores", None)
    store = common.channel_store()
    assert store.first_time("seen", "Ev1") and not store.first_time("seen", "Ev1")
    assert store.forget("seen", "Ev1") and not store.forget("seen", "Ev1")
    assert store.first_time("seen", "Ev1")


def test_an_events_message_is_cut_with_an_ellipsis_within_the_limit() -> None:
    from connectors._common import first_piece
    from connectors._telegram_send import _utf16_len

    assert first_piece("short", 10) == "short"
    assert first_piece("  ", 10) == "…"
    cut = first_piece("alpha beta gamma delta", 12)
    assert cut == "alpha beta…" and len(cut) <= 12
    emoji = first_piece("🔥 " * 40, 11, _utf16_len)  # Telegram counts UTF-16 units
    assert emoji.endswith("…") and _utf16_len(emoji) <= 11
