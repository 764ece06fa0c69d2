"""connectors.slack against the Slack simulator, through slack_sdk, without Rasa: rate limits,
updates, ephemeral notes, presses that are refused, the outbox's posts and edits.

The connector runs in Socket Mode against the simulator; Rasa's message handler is a
script that answers as opsbot's actions would (a preview with signed buttons, a decision).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage

import connectors._common as common
from actions.guard.identity import conversation_scope, sign_payload
from connectors.events import Gone, SendLater
from connectors.slack import SlackInput
from simulators.slack import (
    ALICE,
    BOB,
    BOT_USER,
    NOBOT_CHANNEL,
    OPS_CHANNEL,
    OTHER_CHANNEL,
    SlackSimulator,
)

Handler = Callable[[UserMessage], Awaitable[None]]


@pytest.fixture(autouse=True)
def _own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OPSBOT_DB_URL", raising=False)
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path))
    common._stores = None
    yield
    common._stores = None


def _buttons(scope_channel: str, operation: str = "op-1") -> list[dict[str, str]]:
    scope = conversation_scope("slack", scope_channel)
    until = time.time() + 300
    return [{"title": "Confirm", "payload": sign_payload("affirm", {"operation_id": operation},
                                                         scope=scope, expires=until)},
            {"title": "Cancel", "payload": sign_payload("deny", {"operation_id": operation},
                                                        scope=scope, expires=until)}]


class Opsbot:
    """Answers like opsbot's actions: a preview of op-1 with buttons; alice's first Confirm
    runs it (the turn moved op-1), anyone else's, and her second, change nothing."""

    def __init__(self) -> None:
        self.messages: list[UserMessage] = []
        self.confirmed = False

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)
        out, sender = message.output_channel, message.sender_id
        if message.text.startswith("/affirm"):
            if message.metadata["user_id"] == ALICE and not self.confirmed:
                self.confirmed = True
                await out.send_response(sender, {"text": "Confirmed by alice: started.",
                                                 "opsbot_operations": [
                                                     {"id": "op-1", "state": "executing",
                                                      "changed": True}]})
            elif message.metadata["user_id"] == ALICE:
                await out.send_response(sender, {"text": "That operation (op-1) was already "
                                                         "confirmed by alice; nothing new ran.",
                                                 "opsbot_operations": [
                                                     {"id": "op-1", "state": "executing"}]})
            else:
                await out.send_response(sender, {"text": "Only alice can confirm; nothing ran.",
                                                 "opsbot_operations": [
                                                     {"id": "op-1",
                                                      "state": "pending_confirmation"}]})
            return
        if message.text.startswith("parts"):
            parts = int(message.text.split()[1])
            await out.send_response(sender, {"text": "\n\n".join(
                f"part {i:02d} " + "x" * 2900 for i in range(parts))})
            return
        await out.send_response(sender, {
            "text": f"Deploy payments 2.4.1 to staging? <{message.text}>",
            "buttons": _buttons(message.metadata["slack_channel"]),
            "opsbot_operations": [{"id": "op-1", "state": "pending_confirmation"}]})


def _run(sim: SlackSimulator, body: Callable[[SlackInput, Opsbot], Awaitable[Any]],
         **settings: Any) -> Any:
    """Start the connector against ``sim`` in Socket Mode, run ``body``, stop it."""
    async def main() -> Any:
        settings.setdefault("allowed_channels", frozenset({OPS_CHANNEL, NOBOT_CHANNEL}))
        connector = SlackInput(sim.bot_token, app_token=sim.app_token, api_url=sim.api_url,
                               **settings)
        opsbot = Opsbot()
        ready = SimpleNamespace(ctx=SimpleNamespace(agent=SimpleNamespace(is_ready=lambda: True)))
        await connector._start(ready, opsbot)
        try:
            return await body(connector, opsbot)
        finally:
            await connector._stop()
    return asyncio.run(main())


async def _off(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(call, *args, **kwargs)


@pytest.fixture
def sim() -> Iterator[SlackSimulator]:
    with SlackSimulator(socket_mode=True) as simulator:
        yield simulator


def _posts(sim: SlackSimulator, method: str) -> list[int]:
    return [r.status for r in sim.request_log() if r.api_method == method]


def test_twelve_parts_arrive_in_order_through_429_on_every_second_call() -> None:
    with SlackSimulator(socket_mode=True, channel_interval=0.5) as sim:
        async def body(connector: SlackInput, _opsbot: Opsbot) -> None:
            sent = await _off(sim.say, ALICE, OPS_CHANNEL, f"<@{BOT_USER}> parts 12")
            await _off(sim.wait_for_message, OPS_CHANNEL, contains="part 11",
                       thread_ts=sent.ts, timeout=90)
        _run(sim, body)
        parts = [m for m in sim.messages(OPS_CHANNEL) if m.get("bot_id")]
        texts = [json.dumps(m["blocks"]) for m in parts]
        assert [f"part {i:02d}" in t for i, t in enumerate(texts)] == [True] * 12
        statuses = _posts(sim, "chat.postMessage")
        assert statuses.count(429) >= 11 and statuses.count(200) == 12  # every second call
        assert all(len(b["text"]["text"]) <= 3000 for m in parts for b in m["blocks"])


def test_a_decided_preview_is_updated_even_after_a_429_and_bob_sees_his_refusal_alone(
        sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, opsbot: Opsbot) -> dict[str, Any]:
        sent = await _off(sim.say, ALICE, OPS_CHANNEL, f"<@{BOT_USER}> deploy <@{BOB}> & co")
        preview = await _off(sim.wait_for_message, OPS_CHANNEL, contains="Deploy",
                             thread_ts=sent.ts, timeout=30)
        sim.fail_next(429, path="chat.postEphemeral")
        await _off(sim.press, BOB, OPS_CHANNEL, preview["ts"], title="Confirm")
        await _off(sim.wait_for_ephemeral, BOB, contains="Only alice", timeout=30)
        sim.fail_next(429, path="chat.update")
        await _off(sim.press, ALICE, OPS_CHANNEL, preview["ts"], title="Confirm")
        await _off(sim.wait_for_message, OPS_CHANNEL, contains="started", thread_ts=sent.ts,
                   timeout=30)
        return dict(await _off(sim.wait_for_update, OPS_CHANNEL, preview["ts"],
                               contains="confirmed", timeout=30))
    updated = _run(sim, body)
    assert 429 in _posts(sim, "chat.update") and 429 in _posts(sim, "chat.postEphemeral")
    assert [b["type"] for b in updated["blocks"]] == ["section", "context"]  # no buttons
    # What alice typed is shown, never made a mention: escaped, verbatim.
    section = updated["blocks"][0]["text"]
    assert "&lt;deploy @U0BOB &amp; co&gt;" in section["text"] and "<" not in section["text"]
    assert section["verbatim"] is True
    public = json.dumps([m.get("blocks") for m in sim.messages(OPS_CHANNEL)])
    assert "Only alice" not in public


def test_a_second_press_that_changed_nothing_is_answered_to_the_presser_alone(
        sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, opsbot: Opsbot) -> None:
        sent = await _off(sim.say, ALICE, OPS_CHANNEL, f"<@{BOT_USER}> deploy")
        preview = await _off(sim.wait_for_message, OPS_CHANNEL, contains="Deploy",
                             thread_ts=sent.ts, timeout=30)
        # A double click: two presses of Confirm before the preview loses its buttons.
        await _off(sim.press, ALICE, OPS_CHANNEL, preview["ts"], title="Confirm")
        await _off(sim.press, ALICE, OPS_CHANNEL, preview["ts"], title="Confirm")
        await _off(sim.wait_for_message, OPS_CHANNEL, contains="started", thread_ts=sent.ts,
                   timeout=30)
        await _off(sim.wait_for_ephemeral, ALICE, contains="already confirmed", timeout=30)
    _run(sim, body)
    public = json.dumps([m.get("blocks") for m in sim.messages(OPS_CHANNEL)])
    assert "started" in public and "already confirmed" not in public


def test_edited_and_foreign_button_payloads_are_refused_to_the_presser(
        sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, opsbot: Opsbot) -> list[str]:
        sent = await _off(sim.say, ALICE, OPS_CHANNEL, f"<@{BOT_USER}> deploy")
        await _off(sim.wait_for_message, OPS_CHANNEL, thread_ts=sent.ts, timeout=30)
        # Buttons signed for another channel, and a payload edited on the way.
        other = _buttons(OTHER_CHANNEL, "op-7")[0]["payload"]
        edited = _buttons(OPS_CHANNEL, "op-8")[0]["payload"].replace("op-8", "op-9")
        for payload in (other, edited):
            await connector.send(OPS_CHANNEL, "forged", [{"title": "Go", "payload": payload}],
                                 {}, thread_ts=str(sent.ts))
        forged = [m for m in sim.messages(OPS_CHANNEL) if "forged" in json.dumps(m["blocks"])]
        for message in forged:
            await _off(sim.press, ALICE, OPS_CHANNEL, message["ts"], title="Go")
        await _off(sim.wait_for_ephemeral, ALICE, contains="did not make it", timeout=30)
        await _off(sim.wait_for_ephemeral, ALICE, contains="another chat", timeout=30)
        return [m.text for m in opsbot.messages]
    assert _run(sim, body) == ["deploy"]  # neither press reached the dialogue


def test_a_command_where_opsbot_is_not_answers_through_its_response_url(
        sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, opsbot: Opsbot) -> dict[str, Any]:
        await _off(sim.slash, ALICE, NOBOT_CHANNEL, "deploy payments")
        return dict(await _off(sim.wait_for_ephemeral, ALICE, contains="invite me",
                               timeout=30))
    note = _run(sim, body)
    assert "Deploy payments 2.4.1" in json.dumps(note)
    assert {r.error for r in sim.request_log() if r.api_method == "chat.postMessage"} == \
        {"not_in_channel"}


def test_a_command_where_opsbot_may_not_answer_is_refused_through_its_response_url(
        sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, opsbot: Opsbot) -> dict[str, Any]:
        await _off(sim.slash, ALICE, NOBOT_CHANNEL, "deploy payments")
        return dict(await _off(sim.wait_for_ephemeral, ALICE,
                               contains="SLACK_ALLOWED_CHANNELS", timeout=30))
    note = _run(sim, body, allowed_channels=frozenset({OPS_CHANNEL}))
    assert note["source"] == "response_url" and NOBOT_CHANNEL in note["text"]
    assert _posts(sim, "chat.postMessage") == []  # opsbot is not in that channel


def test_a_command_in_a_dm_between_two_people_is_not_a_dm_with_opsbot(
        sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, opsbot: Opsbot) -> tuple[list[str], dict[str, Any]]:
        own = sim.dm_of(ALICE)
        await _off(sim.slash, ALICE, own, "deploy payments")
        await _off(sim.wait_for_message, own, contains="Deploy payments", timeout=30)
        await _off(sim.slash, ALICE, sim.dm_between(ALICE, BOB), "deploy checkout")
        note = await _off(sim.wait_for_ephemeral, ALICE, contains="SLACK_ALLOWED_CHANNELS",
                          timeout=30)
        return [m.text for m in opsbot.messages], dict(note)
    asked, note = _run(sim, body, allowed_channels=frozenset({OPS_CHANNEL}))
    assert asked == ["deploy payments"]  # the command in alice and bob's DM ran nothing
    assert sim.dm_between(ALICE, BOB) in note["text"] and note["source"] == "response_url"


def test_an_expired_preview_loses_its_buttons_when_pressed(sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, opsbot: Opsbot) -> dict[str, Any]:
        scope = conversation_scope("slack", OPS_CHANNEL)
        late = sign_payload("affirm", {"operation_id": "op-1"}, scope=scope,
                            expires=time.time() - 1)
        await connector.send(OPS_CHANNEL, "Deploy payments 2.4.1 to staging?",
                             [{"title": "Confirm", "payload": late}],
                             {"op-1": "pending_confirmation"})
        [preview] = [m for m in sim.messages(OPS_CHANNEL) if m.get("bot_id")]
        await _off(sim.press, ALICE, OPS_CHANNEL, preview["ts"], title="Confirm")
        await _off(sim.wait_for_ephemeral, ALICE, contains="expired", timeout=30)
        updated = dict(await _off(sim.wait_for_update, OPS_CHANNEL, preview["ts"],
                                  contains="expired", timeout=30))
        assert opsbot.messages == []  # nothing reached the dialogue
        return updated
    updated = _run(sim, body)
    assert [b["type"] for b in updated["blocks"]] == ["section", "context"]  # no buttons
    assert "Deploy payments 2.4.1" in updated["blocks"][0]["text"]["text"]


def test_an_event_too_long_for_one_message_is_cut_with_an_ellipsis(
        sim: SlackSimulator) -> None:
    alerts = "\n".join(f"FIRING alert {i:03d}: HighErrorRate payments-{i} " + "x" * 60
                       for i in range(60))

    async def body(connector: SlackInput, _opsbot: Opsbot) -> list[str]:
        address = {"channel": OPS_CHANNEL}
        ref = await connector.post_event(address, alerts, [])
        [posted] = [m for m in sim.messages(OPS_CHANNEL) if m["ts"] == ref["ts"]]
        shown = [posted["blocks"][0]["text"]["text"]]
        await connector.edit_event(address, ref, alerts + "\nRESOLVED: all", [])
        [edited] = [m for m in sim.messages(OPS_CHANNEL) if m["ts"] == ref["ts"]]
        return [*shown, edited["blocks"][0]["text"]["text"]]
    for shown in _run(sim, body):
        assert shown.startswith("FIRING alert 000") and shown.endswith("…")
        assert len(shown) <= 3000 and "alert 059" not in shown


def test_the_outbox_is_told_when_to_try_again_and_when_a_message_is_gone(
        sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, _opsbot: Opsbot) -> None:
        address = {"channel": OPS_CHANNEL}
        sim.fail_next(429, path="chat.postMessage")
        with pytest.raises(SendLater) as later:
            await connector.post_event(address, "ALERT payments", [])
        assert later.value.retry_after == 1.0
        ref = await connector.post_event(address, "ALERT payments", _buttons(OPS_CHANNEL))
        assert await connector.edit_event(address, ref, "RESOLVED payments", []) == ref
        with pytest.raises(Gone):
            await connector.edit_event(address, {"channel": OPS_CHANNEL, "ts": "1.000001"},
                                       "RESOLVED", [])
    _run(sim, body)
    [message] = [m for m in sim.messages(OPS_CHANNEL) if m.get("bot_id")]
    assert "RESOLVED payments" in json.dumps(message["blocks"]) and message["edits"] == 1


def test_socket_mode_reconnects_when_slack_says_disconnect(sim: SlackSimulator) -> None:
    async def body(connector: SlackInput, opsbot: Opsbot) -> list[str]:
        opened = sim.connections_opened()
        assert await _off(sim.disconnect, "refresh_requested") == 1
        await _off(sim.wait_for_connection, after=opened, timeout=30)
        sent = await _off(sim.say, ALICE, OPS_CHANNEL, f"<@{BOT_USER}> after the refresh")
        await _off(sim.wait_for_message, OPS_CHANNEL, thread_ts=sent.ts, timeout=30)
        return [m.text for m in opsbot.messages]
    assert _run(sim, body) == ["after the refresh"]
    assert sim.connections_opened() == 2
