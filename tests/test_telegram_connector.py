"""connectors.telegram without Rasa: settings, splitting, escaping, buttons, odd updates.

The connector's own python-telegram-bot Bot talks to the Telegram simulator; Rasa's
message handler is replaced by a recorder, so each test sees exactly what would have
reached the dialogue.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from rasa.core.channels.channel import UserMessage
from telegram import Update

import connectors._common as common
from actions.guard.identity import (
    Identity,
    conversation_scope,
    open_payload,
    sign_payload,
    verified_identity,
)
from connectors._common import ConnectorConfigError, stores
from connectors.telegram import TelegramInput, sender_id_for, split_text
from simulators.telegram import ALICE, BOB, OPS_GROUP, TelegramSimulator

_VARIABLES = ("TELEGRAM_TOKEN", "TELEGRAM_MODE", "TELEGRAM_WEBHOOK_URL",
              "TELEGRAM_WEBHOOK_SECRET", "TELEGRAM_API_URL", "TELEGRAM_ALLOWED_CHATS")


@pytest.fixture(autouse=True)
def _own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPSBOT_DB_URL", raising=False)
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path))
    common._stores = None
    yield
    common._stores = None


@pytest.fixture(scope="module")
def sim() -> Iterator[TelegramSimulator]:
    with TelegramSimulator() as simulator:
        yield simulator


class Recorder:
    """Stands in for Rasa: records each UserMessage and answers with ``replies``."""

    def __init__(self, replies: list[dict[str, Any]] | None = None) -> None:
        self.messages: list[UserMessage] = []
        self.replies = replies or [{"text": "ok"}]

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        for reply in self.replies:
            await message.output_channel.send_response(message.sender_id, dict(reply))


def _run(connector: TelegramInput, body: Any) -> Any:
    async def main() -> Any:
        await connector.bot.initialize()
        try:
            return await body()
        finally:
            await connector.bot.shutdown()
    return asyncio.run(main())


def signed(intent: str, entities: dict[str, str], chat: int = ALICE) -> str:
    """A payload as opsbot signs it for a button in ``chat``, pressable for an hour."""
    return sign_payload(intent, entities, scope=conversation_scope("telegram", chat),
                        expires=time.time() + 3600)


def _connector(sim: TelegramSimulator) -> TelegramInput:
    return TelegramInput(sim.token, api_url=sim.api_url, allowed_chats=frozenset({OPS_GROUP}))


# -- settings ----------------------------------------------------------------------------


def test_a_missing_token_names_the_variable() -> None:
    with pytest.raises(ConnectorConfigError, match="TELEGRAM_TOKEN is not set"):
        TelegramInput.from_credentials({})


def test_settings_come_from_credentials_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_TOKEN", "42:abc_DEF-1")
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:9/")
    connector = TelegramInput.from_credentials({"mode": "polling"})
    assert connector.mode == "polling" and connector.api_url == "http://127.0.0.1:9/"
    assert "42:abc" not in repr(connector)  # the token never shows


@pytest.mark.parametrize(("settings", "message"), [
    ({"token": "not-a-token"}, "does not look like a bot token"),
    ({"token": "1:a", "mode": "push"}, "use polling or webhook"),
    ({"token": "1:a", "mode": "webhook"}, "needs TELEGRAM_WEBHOOK_URL"),
    ({"token": "1:a", "mode": "webhook", "webhook_url": "https://x/h"},
     "needs TELEGRAM_WEBHOOK_SECRET"),
    ({"token": "1:a", "mode": "webhook", "webhook_url": "https://x/h", "webhook_secret": "sp ace"},
     "TELEGRAM_WEBHOOK_SECRET"),
    ({"token": "1:a", "api_url": "ftp://x"}, "TELEGRAM_API_URL must be an http"),
    ({"token": "1:a", "mode": "webhook", "webhook_url": "http://bot.example.com/h",
      "webhook_secret": "s"}, "only to https URLs. Put a TLS-terminating reverse proxy"),
    ({"token": "1:a", "mode": "webhook", "webhook_url": "https://bot.example.com:5005/h",
      "webhook_secret": "s"}, "only to ports 443, 80, 88 or 8443, not 5005"),
    ({"token": "1:a", "mode": "webhook", "webhook_url": "https://bot.example.com:0x1/h",
      "webhook_secret": "s"}, "port is not a number"),
    ({"token": "1:a", "mode": "webhook", "webhook_url": "bot.example.com/h",
      "webhook_secret": "s"}, "not a URL Telegram can post to"),
])
def test_bad_settings_are_refused_with_the_fix(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectorConfigError, match=message):
        TelegramInput.from_credentials(settings)


# -- text --------------------------------------------------------------------------------


def test_split_text_keeps_everything_within_the_limit() -> None:
    paragraph = "word " * 300
    text = "\n\n".join([paragraph.strip()] * 12)
    pieces = split_text(text)
    assert len(pieces) > 1 and all(len(p) <= 4096 for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())
    # Characters outside the BMP count twice, as Telegram counts UTF-16 units.
    emoji = "🚀" * 3000
    assert all(len(p.encode("utf-16-le")) // 2 <= 4096 for p in split_text(emoji))
    assert "".join(split_text(emoji)) == emoji


def test_a_long_reply_arrives_in_pieces_and_special_characters_intact(
    sim: TelegramSimulator,
) -> None:
    connector = _connector(sim)
    tricky = "job data_pipeline.v2-nightly [main] (#87) *bold?* `tick` a>b c|d {x} ~y~ +1=2 !\\"
    long = "\n".join(f"line {n}: {tricky}" for n in range(200))
    before = len(sim.bot_messages(ALICE))

    async def body() -> None:
        await connector.send(ALICE, tricky, [], {})
        await connector.send(ALICE, long, [{"title": "OK", "payload": "/affirm"}], {})

    _run(connector, body)
    sent = sim.bot_messages(ALICE)[before:]
    assert sent[0]["plain_text"] == tricky
    pieces = sent[1:]
    assert len(pieces) >= 3 and all(len(p["plain_text"]) <= 4096 for p in pieces)
    assert "\n".join(p["plain_text"] for p in pieces) == long
    # The buttons come with the last piece only.
    assert [bool(p["reply_markup"]) for p in pieces] == [False] * (len(pieces) - 1) + [True]


@pytest.mark.timeout(120)
def test_a_12_part_reply_arrives_whole_and_in_order_through_flood_control() -> None:
    # Telegram allows about one message a second per chat; faster sends get 429 with
    # retry_after, and every part must still arrive, in order.
    with TelegramSimulator(chat_interval=1.0) as slow:
        connector = _connector(slow)
        text = "\n".join(f"part {n // 100:02d} line {n % 100:02d} " + "x" * 30
                          for n in range(1200))

        async def body() -> None:
            await connector.send(ALICE, text, [], {})

        _run(connector, body)
        pieces = slow.bot_messages(ALICE)
        assert len(pieces) >= 12
        assert "\n".join(p["plain_text"] for p in pieces) == text
        refused = [r for r in slow.request_log() if r.status == 429]
        assert refused, "the simulator did not apply flood control"


@pytest.mark.timeout(120)
def test_a_decided_preview_loses_its_buttons_and_gets_its_note_through_flood_control() -> None:
    # The edit that retires a preview's Confirm button comes right after the reply that
    # decided it, so Telegram's flood control refuses it (429) as often as a send; a
    # dropped edit would leave a live-looking Confirm button on a decided operation.
    with TelegramSimulator(chat_interval=1.0) as slow:
        connector = _connector(slow)
        confirm = signed("affirm", {"operation_id": "op-1"})

        async def body() -> None:
            await connector.send(ALICE, "Deploy payments 2.4.1 to prod?",
                                 [{"title": "Confirm", "payload": confirm}],
                                 {"op-1": "pending_confirmation"})
            # A turn sends its replies, then retires what it decided (_telegram_updates).
            await connector.send(ALICE, "Started.", [], {"op-1": "executing"})
            await connector._retire({"op-1": "executing"})

        _run(connector, body)
        preview = slow.bot_messages(ALICE)[0]
        assert preview["reply_markup"] is None
        assert preview["plain_text"].startswith("Deploy payments 2.4.1 to prod?")
        assert preview["plain_text"].endswith("confirmed; running"), preview["plain_text"]
        edits = [r for r in slow.request_log() if "editMessage" in r.target]
        assert [r.status for r in edits][-1] == 200
        assert any(r.status == 429 for r in edits), "the edit was not flood-controlled"


def test_a_payload_longer_than_64_bytes_goes_through_the_store(sim: TelegramSimulator) -> None:
    connector = _connector(sim)
    plain = '/affirm{"operation_id":"op-0123456789ab","digest":"' + "f" * 40 + '"}'
    payload = signed("affirm", {"operation_id": "op-0123456789ab", "digest": "f" * 40})
    recorder = Recorder()

    async def body() -> None:
        await connector.send(ALICE, "Deploy?", [{"title": "Confirm", "payload": payload}], {})
        message = sim.bot_messages(ALICE)[-1]
        data = message["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        assert data.startswith("~") and len(data.encode()) <= 64
        update = sim.press(ALICE, ALICE, int(message["message_id"]), title="Confirm")
        await connector._handle(Update.de_json(update, connector.bot), recorder)

    _run(connector, body)
    assert [m.text for m in recorder.messages] == [plain]  # checked, then without its signature
    assert recorder.messages[0].metadata["user_id"] == str(ALICE)
    received = recorder.messages[0]
    assert verified_identity(received.metadata, received.sender_id, received.message_id) \
        == Identity("telegram", str(ALICE), f"telegram:{ALICE}")
    # Answered before the turn, so without a toast: the turn's "ok" came as a message.
    assert sim.callback_answers()[-1]["text"] is None
    assert sim.bot_messages(ALICE)[-1]["plain_text"] == "ok"


class SlowTurn(Recorder):
    """A turn that waits for a slow backend before it answers."""

    async def __call__(self, message: UserMessage) -> None:
        await asyncio.sleep(1.0)
        await super().__call__(message)


def test_a_button_press_is_answered_before_a_slow_turn_replies(sim: TelegramSimulator) -> None:
    connector = _connector(sim)
    payload = signed("affirm", {"operation_id": "op-0123456789ab", "digest": "f" * 40})

    async def body() -> None:
        await connector.send(ALICE, "Deploy?", [{"title": "Confirm", "payload": payload}], {})
        message = sim.bot_messages(ALICE)[-1]
        update = sim.press(ALICE, ALICE, int(message["message_id"]), title="Confirm")
        await connector._handle(Update.de_json(update, connector.bot), SlowTurn())

    before = len(sim.request_log())
    _run(connector, body)
    methods = [e.api_method for e in sim.request_log()[before:]
               if e.api_method in ("answerCallbackQuery", "sendMessage")]
    # The spinner stopped first; the slow turn's reply came after, and the query was
    # answered exactly once.
    assert methods[1:] == ["answerCallbackQuery", "sendMessage"], methods


@pytest.mark.parametrize("forged", [
    pytest.param('/affirm{"operation_id":"op-0123456789ab"}', id="unsigned"),
    pytest.param(signed("affirm", {"operation_id": "op-0123456789ab"}).replace("op-01", "op-99"),
                 id="edited"),  # its expiry changes with the clock: named, not shown
])
def test_a_forged_or_edited_payload_is_refused_and_audited(sim: TelegramSimulator,
                                                          forged: str) -> None:
    connector = _connector(sim)
    recorder = Recorder()

    async def body() -> None:
        await connector.send(ALICE, "Pick", [{"title": "A", "payload": "/greet"}], {})
        message = sim.bot_messages(ALICE)[-1]
        update = sim.press(ALICE, ALICE, int(message["message_id"]), data=forged, force=True)
        await connector._handle(Update.de_json(update, connector.bot), recorder)

    _run(connector, body)
    assert recorder.messages == []
    assert "did not make it" in sim.callback_answers()[-1]["text"]
    assert forged_audits() == [("forged_payload", f"telegram:{ALICE}")]


def forged_audits() -> list[tuple[str, str]]:
    """The audit rows of refused payloads in this test's store."""
    import sqlalchemy as sa

    from actions.guard._audit_log import audit_log

    with stores().database.engine.connect() as conn:
        rows = conn.execute(sa.select(audit_log.c.kind, audit_log.c.actor)
                            .where(audit_log.c.kind == "forged_payload")).all()
    return [(str(kind), str(actor)) for kind, actor in rows]


def test_an_unknown_long_payload_is_expired_not_run(sim: TelegramSimulator) -> None:
    connector = _connector(sim)
    recorder = Recorder()

    async def body() -> None:
        await connector.send(ALICE, "Pick", [{"title": "A", "payload": "/greet"}], {})
        message = sim.bot_messages(ALICE)[-1]
        update = sim.press(ALICE, ALICE, int(message["message_id"]), data="~" + "0" * 24,
                           force=True)
        await connector._handle(Update.de_json(update, connector.bot), recorder)

    _run(connector, body)
    assert recorder.messages == []
    assert "expired" in sim.callback_answers()[-1]["text"]


# -- updates -----------------------------------------------------------------------------


def test_groups_key_the_conversation_by_chat_and_person(sim: TelegramSimulator) -> None:
    connector = _connector(sim)
    recorder = Recorder()

    async def body() -> None:
        for user in (ALICE, BOB):
            update = sim.send_text(user, "@opsbot_demo_bot what's red in CI?", chat_id=OPS_GROUP)
            await connector._handle(Update.de_json(update, connector.bot), recorder)

    _run(connector, body)
    assert [m.sender_id for m in recorder.messages] == [sender_id_for(OPS_GROUP, ALICE),
                                                         sender_id_for(OPS_GROUP, BOB)]
    assert [m.text for m in recorder.messages] == ["what's red in CI?"] * 2
    assert recorder.messages[1].metadata == {**recorder.messages[1].metadata,
                                             "user_id": str(BOB), "channel": "telegram"}


def test_commands_become_plain_requests(sim: TelegramSimulator) -> None:
    connector = _connector(sim)
    recorder = Recorder()

    async def body() -> None:
        for text in ("/start", "/build_status@opsbot_demo_bot payments", "/deploy payments"):
            update = sim.send_text(ALICE, text, chat_id=OPS_GROUP)
            await connector._handle(Update.de_json(update, connector.bot), recorder)

    _run(connector, body)
    assert [m.text for m in recorder.messages] == ["hi", "build status payments", "deploy payments"]


def test_stickers_edits_joins_and_redeliveries_change_nothing(sim: TelegramSimulator) -> None:
    connector = _connector(sim)
    recorder = Recorder()

    async def body() -> None:
        text = sim.send_text(ALICE, "hello")
        updates = [sim.send_sticker(ALICE, OPS_GROUP),
                   sim.edit_text(ALICE, ALICE, int(text["message"]["message_id"]), "hello again"),
                   sim.member_joined(BOB, OPS_GROUP), text, text]
        for update in updates:
            await connector._handle(Update.de_json(update, connector.bot), recorder)

    _run(connector, body)
    assert [m.text for m in recorder.messages] == ["hello"]  # once, despite the redelivery


def test_in_a_group_choice_buttons_answer_only_the_person_asked(sim: TelegramSimulator) -> None:
    connector = _connector(sim)
    recorder = Recorder()
    alice = sender_id_for(OPS_GROUP, ALICE)
    choice = signed("inform", {"service": "payments"}, OPS_GROUP)
    confirm = signed("affirm", {"operation_id": "op-1"}, OPS_GROUP)

    async def body() -> None:
        await connector.send(OPS_GROUP, "Which service?",
                             [{"title": "payments", "payload": choice}], {}, owner=alice)
        asked = int(sim.bot_messages(OPS_GROUP)[-1]["message_id"])
        await connector.send(OPS_GROUP, "Deploy?", [{"title": "Confirm", "payload": confirm}],
                             {"op-1": "pending_confirmation"}, owner=alice)
        preview = int(sim.bot_messages(OPS_GROUP)[-1]["message_id"])
        for user, message, title in ((BOB, asked, "payments"), (BOB, preview, "Confirm"),
                                     (ALICE, asked, "payments")):
            update = sim.press(user, OPS_GROUP, message, title=title)
            await connector._handle(Update.de_json(update, connector.bot), recorder)

    _run(connector, body)
    answers = [a["text"] for a in sim.callback_answers()[-3:]]
    # bob's press on alice's question does nothing and tells him why.
    assert "someone else's question" in answers[0]
    # A confirmation button is passed on (the guard, not the connector, refuses bob).
    group = conversation_scope("telegram", OPS_GROUP)
    assert [(m.sender_id, m.text) for m in recorder.messages] == [
        (sender_id_for(OPS_GROUP, BOB), open_payload(confirm, scope=group).text),
        (alice, open_payload(choice, scope=group).text)]
    assert answers[2] is None  # passed on: answered at once, without a toast


def test_a_webhook_telegram_refuses_is_logged_with_the_fix_and_nothing_escapes(
        sim: TelegramSimulator, caplog: pytest.LogCaptureFixture) -> None:
    connector = TelegramInput(sim.token, api_url=sim.api_url, mode="webhook",
                              webhook_url="https://bot.example.com/webhooks/telegram/webhook",
                              webhook_secret="s3cret")
    sim.fail_next(429, path=f"/bot{sim.token}/setWebhook")  # flood control: waited out
    asyncio.run(connector._start(None, Recorder()))
    assert sim.webhook_info()["url"] == "https://bot.example.com/webhooks/telegram/webhook"
    requests.post(f"{sim.api_url}/bot{sim.token}/deleteWebhook", timeout=5)
    sim.fail_next(400, path=f"/bot{sim.token}/setWebhook")
    with caplog.at_level(logging.ERROR):
        asyncio.run(connector._start(None, Recorder()))  # no exception leaves start-up
    assert sim.webhook_info().get("url", "") == ""
    [record] = [r for r in caplog.records if "TELEGRAM_WEBHOOK_URL" in r.getMessage()]
    assert "Telegram refused" in record.getMessage() and "TELEGRAM_MODE=polling" in \
        record.getMessage()
    assert record.exc_info is None


class _WebhookRequest:
    """What the webhook route reads of a Sanic request: the secret header and the body."""

    def __init__(self, secret: str, body: dict[str, Any]) -> None:
        self.headers = {"X-Telegram-Bot-Api-Secret-Token": secret}
        self.json = body


def test_a_webhook_turn_goes_on_when_telegram_stops_waiting_and_a_redelivery_is_ignored(
        sim: TelegramSimulator) -> None:
    """Telegram closes a webhook request it waited too long for, and Sanic then cancels
    its handler; the update is already taken, so a turn cut short there would be lost."""
    connector = TelegramInput(sim.token, api_url=sim.api_url, mode="webhook",
                              webhook_url="https://bot.example.com/webhooks/telegram/webhook",
                              webhook_secret="s3cret")
    turn = SlowTurn()
    [route] = [r for r in connector.blueprint(turn)._future_routes if r.uri == "/webhook"]
    update = sim.send_text(ALICE, "hello")

    async def body() -> list[int]:
        first = asyncio.create_task(route.handler(_WebhookRequest("s3cret", update)))
        await asyncio.sleep(0.3)
        first.cancel()  # Telegram's timeout: the connection closes mid-turn
        await asyncio.gather(first, return_exceptions=True)
        again = await route.handler(_WebhookRequest("s3cret", update))  # the redelivery
        await asyncio.gather(*connector._tasks)  # the turn, if it still runs
        return [again.status]

    assert _run(connector, body) == [200]
    assert [m.text for m in turn.messages] == ["hello"]
    assert [m["plain_text"] for m in sim.bot_messages(ALICE)][-1:] == ["ok"]
