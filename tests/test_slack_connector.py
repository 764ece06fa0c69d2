"""connectors.slack without Rasa and without a Slack: settings, Block Kit, the HTTP checks,
which messages are requests, and that each is taken once.

Rasa's message handler is replaced by a recorder that answers nothing, so these tests
never call Slack's Web API; the end-to-end tests go through slack_sdk to the simulator.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from rasa.core.channels.channel import UserMessage
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.web.async_slack_response import AsyncSlackResponse

import connectors._common as common
from actions.guard.identity import Identity, verified_identity
from connectors._common import ConnectorConfigError, split_text
from connectors._slack_blocks import (
    SECTION_LIMIT,
    buttons_block,
    escape,
    message_blocks,
    plain_text,
    retired_blocks,
    split_reply,
)
from connectors.slack import SlackInput, parse_channel_ids, sender_id_for

_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_MODE",
              "SLACK_API_URL", "SLACK_ALLOWED_CHANNELS")
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM, BOT, ALICE, BOB = "T0OPS", "U0OPSBOT", "U0ALICE", "U0BOB"
OPS = "C0OPS"


@pytest.fixture(autouse=True)
def _own_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPSBOT_DB_URL", raising=False)
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path))
    common._stores = None
    yield
    common._stores = None


class Recorder:
    """Stands in for Rasa: records each UserMessage, answers nothing."""

    def __init__(self) -> None:
        self.messages: list[UserMessage] = []

    async def __call__(self, message: UserMessage) -> None:
        self.messages.append(message)


def _connector(**settings: Any) -> SlackInput:
    connector = SlackInput("xoxb-1-2-abc", signing_secret=SECRET, api_url="http://127.0.0.1:9/",
                           allowed_channels=frozenset({OPS}), **settings)
    connector.team_id, connector.bot_user_id = TEAM, BOT  # what auth.test says at start
    return connector


def _request(body: bytes, content_type: str, *, age: float = 0.0, secret: str = SECRET,
             headers: dict[str, str] | None = None, stamp: str | None = None) -> Any:
    stamp = str(int(time.time() - age)) if stamp is None else stamp
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return SimpleNamespace(body=body, remote_addr="127.0.0.1", ip="127.0.0.1", headers={
        "Content-Type": content_type, "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": f"v0={digest.hexdigest()}", **(headers or {})})


def _event(text: str, *, user: str = ALICE, channel: str = OPS, event_id: str = "Ev1",
           team: str = TEAM, kind: str = "message", ts: str = "1700000000.000100",
           **fields: Any) -> bytes:
    event = {"type": kind, "user": user, "text": text, "channel": channel, "ts": ts, **fields}
    return json.dumps({"type": "event_callback", "team_id": team, "event_id": event_id,
                       "event": event}).encode()


def _receive(connector: SlackInput, request: Any, recorder: Recorder) -> Any:
    async def main() -> Any:
        answer = await connector._receive(request, recorder)
        if connector._tasks:
            await asyncio.wait(set(connector._tasks))
        return answer
    return asyncio.run(main())


# -- settings ----------------------------------------------------------------------------


def test_a_missing_bot_token_names_the_variable() -> None:
    with pytest.raises(ConnectorConfigError, match="SLACK_BOT_TOKEN is not set"):
        SlackInput.from_credentials({})


def test_settings_come_from_credentials_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-111-222-secretpart")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-1-A1-333-other")
    monkeypatch.setenv("SLACK_ALLOWED_CHANNELS", "C0OPS, G0PRIV")
    connector = SlackInput.from_credentials({"api_url": "http://127.0.0.1:9/api"})
    assert connector.mode == "socket"  # the default when an app token is set
    assert connector.api_url == "http://127.0.0.1:9/api/"
    assert connector.allowed_channels == {"C0OPS", "G0PRIV"}
    assert "secretpart" not in repr(connector)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    assert SlackInput.from_credentials({"mode": "http"}).mode == "http"


@pytest.mark.parametrize(("settings", "message"), [
    ({"bot_token": "xoxp-1-2-3"}, "does not look like a bot token"),
    ({"bot_token": "xoxb-1-2-3"}, "SLACK_APP_TOKEN .Socket Mode"),
    ({"bot_token": "xoxb-1-2-3", "app_token": "xoxb-1-2-3"}, "not look like an app-level"),
    ({"bot_token": "xoxb-1-2-3", "mode": "socket", "signing_secret": SECRET},
     "Socket Mode needs SLACK_APP_TOKEN"),
    ({"bot_token": "xoxb-1-2-3", "mode": "webhook", "signing_secret": SECRET},
     "use socket or http"),
    ({"bot_token": "xoxb-1-2-3", "app_token": "xapp-1", "api_url": "ftp://x"},
     "SLACK_API_URL must be an http"),
    ({"bot_token": "xoxb-1-2-3", "app_token": "xapp-1", "allowed_channels": "#ops"},
     "'#ops' is not a Slack channel id"),
])
def test_ill_formed_settings_say_what_to_fix(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ConnectorConfigError, match=message):
        SlackInput.from_credentials(settings)


def test_channel_ids_are_listed_with_commas_or_spaces() -> None:
    assert parse_channel_ids(" C01, D02 G03 ") == {"C01", "D02", "G03"}
    assert parse_channel_ids("") == frozenset()


# -- Block Kit ---------------------------------------------------------------------------


def test_user_text_never_becomes_a_mention_or_a_link() -> None:
    text = "open a bug: <!channel> <@U0BOB> <https://evil.example|click> & more"
    block = message_blocks(text)[0]
    shown = block["text"]["text"]
    assert "<" not in shown and ">" not in shown and "&amp; more" in shown
    assert block["text"]["verbatim"] is True  # no automatic @here, #channel or URL parsing
    assert escape("a&b<c>d") == "a&amp;b&lt;c&gt;d"


def test_long_answers_split_within_a_section_counting_the_escapes() -> None:
    text = "\n".join(f"line {i} <&> " + "x" * 80 for i in range(200))
    pieces = split_reply(text)
    assert len(pieces) > 1
    assert all(len(escape(p)) <= SECTION_LIMIT for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())  # nothing lost
    assert split_reply("") == ["…"]
    assert split_text("é" * 10, 4, lambda s: len(s.encode())) == ["éé"] * 5


def test_buttons_carry_their_value_and_unique_action_ids() -> None:
    blocks = buttons_block([(f"Option {i}", f"/choose{{\"n\":{i}}}", "/choose") for i in range(30)]
                           + [("Confirm", "v-a", "/affirm{}"), ("Cancel", "v-d", "/deny{}")])
    elements = [e for block in blocks for e in block["elements"]]
    assert all(len(block["elements"]) <= 25 for block in blocks)
    assert len({e["action_id"] for e in elements}) == len(elements) == 32
    assert elements[-2]["style"] == "primary" and elements[-1]["style"] == "danger"
    assert elements[0]["value"] == '/choose{"n":0}'
    retired = retired_blocks("Deploy payments 2.4.1 to staging", "confirmed; running")
    assert [b["type"] for b in retired] == ["section", "context"]
    assert "confirmed; running" in retired[1]["elements"][0]["text"]


def test_slack_markup_comes_back_as_the_words_typed() -> None:
    assert plain_text(f"<@{BOT}> deploy payments 2.4.1 to staging", BOT) == \
        "deploy payments 2.4.1 to staging"
    assert plain_text(f"<@{BOT}|opsbot>, errors in <#C0X|ops> &lt;now&gt; &amp; "
                      "<https://x.example|this>", BOT) == "errors in #ops <now> & this"
    assert plain_text("ask <@U0BOB> about <https://x.example>", BOT) == \
        "ask @U0BOB about https://x.example"


# -- HTTP mode ---------------------------------------------------------------------------


def test_a_mention_is_acknowledged_and_becomes_alices_turn() -> None:
    connector, recorder = _connector(), Recorder()
    answer = _receive(connector, _request(_event(f"<@{BOT}> deploy payments"),
                                          "application/json"), recorder)
    assert answer.status == 200
    [message] = recorder.messages
    assert message.text == "deploy payments"
    assert message.sender_id == sender_id_for(OPS, ALICE) == f"slack:{OPS}:{ALICE}"
    identity = verified_identity(message.metadata, message.sender_id, message.message_id)
    assert identity == Identity("slack", ALICE, f"slack:{OPS}")
    assert message.metadata["thread_ts"] == "1700000000.000100"  # answered in her thread


@pytest.mark.parametrize(("change", "status"), [
    ({"secret": "another-secret-of-32-characters!"}, 401),
    ({"age": 600.0}, 401),  # ten minutes old: a replay
    ({"stamp": "abc"}, 401),  # signed, but with a timestamp that is not a number
    ({"stamp": "1.7e9"}, 401),
])
def test_unsigned_or_old_requests_are_refused(change: dict[str, Any], status: int) -> None:
    connector, recorder = _connector(), Recorder()
    answer = _receive(connector, _request(_event(f"<@{BOT}> hi"), "application/json", **change),
                      recorder)
    assert answer.status == status and recorder.messages == []


def test_another_workspace_is_forbidden() -> None:
    connector, recorder = _connector(), Recorder()
    answer = _receive(connector, _request(_event(f"<@{BOT}> hi", team="T0OTHER"),
                                          "application/json"), recorder)
    assert answer.status == 403 and recorder.messages == []
    # Someone of another workspace in a channel shared with it: taken, and nothing done.
    shared = _event(f"<@{BOT}> deploy payments", user="U0EVE", user_team="T0OTHER",
                    event_id="Ev7")
    assert _receive(connector, _request(shared, "application/json"), recorder).status == 200
    assert recorder.messages == []


@pytest.mark.parametrize("teams", [{"source_team": "T0OTHER"}, {"team": "T0OTHER"},
                                   {"team": TEAM, "source_team": "T0OTHER"}])
def test_a_message_from_another_workspace_without_user_team_is_nobodys(
        teams: dict[str, str]) -> None:
    def shared(user: str, event_id: str, **fields: str) -> bytes:
        body = json.loads(_event(f"<@{BOT}> deploy payments", user=user, event_id=event_id,
                                 ts=f"1700000000.{event_id}"))
        body["event"].update(fields)  # the event's own team fields, not the request's
        return json.dumps(body).encode()
    connector, recorder = _connector(), Recorder()
    answer = _receive(connector, _request(shared("U0EVE", "1", **teams), "application/json"),
                      recorder)
    assert answer.status == 200 and recorder.messages == []
    ours = shared(ALICE, "2", team=TEAM, source_team=TEAM, user_team=TEAM)
    _receive(connector, _request(ours, "application/json"), recorder)
    assert len(recorder.messages) == 1


def test_url_verification_echoes_the_challenge() -> None:
    body = json.dumps({"type": "url_verification", "challenge": "3eZbrw1aBm2rZgRNFdxV2595"})
    answer = _receive(_connector(), _request(body.encode(), "application/json"), Recorder())
    assert json.loads(answer.body) == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595"}


def test_a_retried_event_and_the_app_mention_twin_run_once() -> None:
    connector, recorder = _connector(), Recorder()
    text = f"<@{BOT}> what's red in CI?"
    _receive(connector, _request(_event(text), "application/json"), recorder)
    retry = _request(_event(text), "application/json", headers={"X-Slack-Retry-Num": "1"})
    assert _receive(connector, retry, recorder).status == 200
    twin = _event(text, kind="app_mention", event_id="Ev2")  # the same message, another event
    _receive(connector, _request(twin, "application/json"), recorder)
    assert len(recorder.messages) == 1


def test_only_messages_for_opsbot_are_requests() -> None:
    connector, recorder = _connector(), Recorder()
    for index, (text, fields) in enumerate([
        ("deploy payments 2.4.1 to prod, says the release plan", {}),  # not addressed
        (f"<@{BOT}> hi", {"subtype": "bot_message", "bot_id": "B1"}),
        (f"<@{BOT}> hi", {"subtype": "message_changed"}),
        (f"<@{BOT}> hi", {"user": BOT}),  # its own
        ("in a thread opsbot never joined", {"thread_ts": "1699999999.000001"}),
    ]):
        body = _event(text, event_id=f"Ev{index}", ts=f"1700000001.00000{index}", **fields)
        _receive(connector, _request(body, "application/json"), recorder)
    assert recorder.messages == []
    # A thread opsbot is part of needs no mention.
    _receive(connector, _request(_event(f"<@{BOT}> hi", event_id="Ev8", ts="1700000002.000001"),
                                 "application/json"), recorder)
    follow = _event("and on prod?", event_id="Ev9", ts="1700000002.000009",
                    thread_ts="1700000002.000001")
    _receive(connector, _request(follow, "application/json"), recorder)
    assert [m.text for m in recorder.messages] == ["hi", "and on prod?"]


def test_a_slash_command_is_a_request_taken_once() -> None:
    connector, recorder = _connector(), Recorder()
    form = urllib.parse.urlencode({
        "command": "/opsbot", "text": "build status of payments", "team_id": TEAM,
        "channel_id": OPS, "user_id": BOB, "trigger_id": "13345224609.738474920.8088930838d88"})
    request = _request(form.encode(), "application/x-www-form-urlencoded")
    assert _receive(connector, request, recorder).status == 200
    _receive(connector, request, recorder)  # the same trigger again
    [message] = recorder.messages
    assert message.text == "build status of payments"
    assert message.sender_id == f"slack:{OPS}:{BOB}"
    assert "thread_ts" not in message.metadata


def _failing_once(monkeypatch: pytest.MonkeyPatch, method: str, kind: str) -> None:
    """The store fails the first ``method`` call for ``kind``, as a database hiccup would."""
    store = common.channel_store()
    real, failed = getattr(store, method), list[str]()

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if args[0] == kind and not failed:
            failed.append(kind)
            raise RuntimeError("store timeout")
        return real(*args, **kwargs)
    monkeypatch.setattr(store, method, flaky)


def _sending(connector: SlackInput) -> list[tuple[str, str]]:
    """Replace the Web API with a list of (channel, text) the connector sent."""
    sent: list[tuple[str, str]] = []

    async def send(channel: str, text: str, *_args: Any, **_kwargs: Any) -> bool:
        sent.append((channel, text))
        return True
    connector.send = send  # type: ignore[method-assign]
    return sent


def test_a_message_that_failed_before_rasa_runs_when_slack_sends_it_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    connector, recorder = _connector(), Recorder()
    sent = _sending(connector)
    _failing_once(monkeypatch, "first_time", "slack-message")  # the app_mention/message check
    body = _event(f"<@{BOT}> deploy payments")
    assert _receive(connector, _request(body, "application/json"), recorder).status == 200
    assert recorder.messages == []
    [(channel, text)] = sent
    assert channel == OPS and text.startswith("Something went wrong")
    retry = _request(body, "application/json", headers={"X-Slack-Retry-Num": "1"})
    _receive(connector, retry, recorder)
    assert [m.text for m in recorder.messages] == ["deploy payments"]
    # Taken as a message, then failed before Rasa: its app_mention twin runs it.
    _failing_once(monkeypatch, "remember", "slack-conversation")
    body = _event(f"<@{BOT}> restart checkout", event_id="Ev3", ts="1700000003.000100")
    _receive(connector, _request(body, "application/json"), recorder)
    twin = _event(f"<@{BOT}> restart checkout", event_id="Ev4", ts="1700000003.000100",
                  kind="app_mention")
    _receive(connector, _request(twin, "application/json"), recorder)
    assert [m.text for m in recorder.messages] == ["deploy payments", "restart checkout"]


def test_a_command_that_failed_before_rasa_runs_when_slack_sends_it_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    connector, recorder = _connector(), Recorder()
    _failing_once(monkeypatch, "remember", "slack-conversation")
    form = urllib.parse.urlencode({
        "command": "/opsbot", "text": "build status", "team_id": TEAM, "channel_id": OPS,
        "user_id": BOB, "trigger_id": "t-1"}).encode()
    _receive(connector, _request(form, "application/x-www-form-urlencoded"), recorder)
    _receive(connector, _request(form, "application/x-www-form-urlencoded"), recorder)
    assert [m.text for m in recorder.messages] == ["build status"]


class _Hooks:
    """Stands in for slack_sdk's AsyncWebhookClient: the response_urls posted to."""

    posted: list[tuple[str, str]] = []  # (url, what the person reads: the blocks' text)
    status = 200

    def __init__(self, url: str) -> None:
        self.url = url

    async def send(self, *, text: str, response_type: str,
                   blocks: list[dict[str, Any]] | None = None, **_flags: Any) -> Any:
        assert response_type == "ephemeral"
        shown = "\n".join(b["text"]["text"] for b in blocks or () if b.get("text")) or text
        self.posted.append((self.url, shown))
        return SimpleNamespace(status_code=self.status, body="ok")


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> type[_Hooks]:
    monkeypatch.setattr("connectors._slack_inbound.AsyncWebhookClient", _Hooks)
    monkeypatch.setattr(_Hooks, "posted", [])
    return _Hooks


def _command(channel: str, trigger: str, response_url: str) -> Any:
    form = urllib.parse.urlencode({
        "command": "/opsbot", "text": "deploy payments", "team_id": TEAM, "channel_id": channel,
        "user_id": ALICE, "trigger_id": trigger, "response_url": response_url})
    return _request(form.encode(), "application/x-www-form-urlencoded")


def test_a_command_in_a_channel_not_allowed_is_refused_through_its_response_url(
        hooks: type[_Hooks]) -> None:
    connector, recorder = _connector(), Recorder()
    sent = _sending(connector)
    hook = "https://hooks.slack.com/commands/T0OPS/1/abc"
    hooks.status = 404  # the response_url was used up: not told, so told next time
    _receive(connector, _command("C0UNLISTED", "t-1", hook), recorder)
    hooks.status = 200
    _receive(connector, _command("C0UNLISTED", "t-2", hook), recorder)
    _receive(connector, _command("C0UNLISTED", "t-3", hook), recorder)  # told: quiet now
    assert recorder.messages == [] and sent == []  # never chat.postMessage there
    assert len(hooks.posted) == 2
    assert "adds C0UNLISTED to SLACK_ALLOWED_CHANNELS" in hooks.posted[1][1]


def test_a_refusal_that_did_not_arrive_is_tried_again() -> None:
    connector, recorder = _connector(), Recorder()
    tried: list[str] = []

    async def not_in_channel(channel: str, *_args: Any, **_kwargs: Any) -> bool:
        tried.append(channel)
        return len(tried) > 1  # Slack: not_in_channel, then opsbot was invited
    connector.send = not_in_channel  # type: ignore[method-assign]
    for index in range(3):
        body = _event(f"<@{BOT}> hi", channel="C0UNLISTED", event_id=f"Ev{index}",
                      ts=f"1700000005.00000{index}")
        _receive(connector, _request(body, "application/json"), recorder)
    assert tried == ["C0UNLISTED", "C0UNLISTED"] and recorder.messages == []


@pytest.mark.parametrize(("response_url", "api_url", "posted"), [
    ("https://hooks.slack.com/commands/T0OPS/1/abc", "https://slack.com/api/", True),
    ("http://127.0.0.1:9/actions/1", "http://127.0.0.1:9/", True),  # a simulator's
    ("http://127.0.0.1:9/actions/1", "https://slack.com/api/", False),
    ("https://hooks.slack.com.evil.example/commands/1", "https://slack.com/api/", False),
    ("https://hooks.slack.com@evil.example/commands/1", "https://slack.com/api/", False),
    ("http://hooks.slack.com/commands/1", "https://slack.com/api/", False),
    ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:9/", False),
])
def test_only_slacks_response_urls_are_posted_to(
        hooks: type[_Hooks], response_url: str, api_url: str, posted: bool) -> None:
    connector = SlackInput("xoxb-1-2-abc", signing_secret=SECRET, api_url=api_url,
                           allowed_channels=frozenset({OPS}))
    connector.team_id, connector.bot_user_id = TEAM, BOT
    # A handler of its own: caplog missed repeats of the same warning once other tests had
    # installed the secret filter on pytest's handlers.
    seen: list[str] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    inbound = logging.getLogger("connectors.slack")
    inbound.addHandler(handler)
    try:
        _receive(connector, _command("C0UNLISTED", "t-1", response_url), Recorder())
    finally:
        inbound.removeHandler(handler)
    assert bool(hooks.posted) is posted
    assert any("response_url is not on" in line for line in seen) is not posted


# -- opsbot run -----------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "shown"), [
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"},
     "Slack         Socket Mode https://slack.com/api/"),
    ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": SECRET},
     "Slack         POST http://127.0.0.1:5999/webhooks/slack/webhook"),
])
def test_opsbot_run_says_how_slack_is_connected(tmp_path: Path, env: dict[str, str], shown: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import dataclasses

    from opsbot._processes import Stack
    from opsbot.cli import _print_urls
    from opsbot.settings import Settings
    from tests.conftest import ROOT

    settings = dataclasses.replace(Settings.from_env(ROOT), state_dir=tmp_path,
                                   host="127.0.0.1", port=5999)
    _print_urls(settings, env, Stack(settings))
    assert shown in capsys.readouterr().out


# -- the second review's findings ------------------------------------------------------------


class _NotInChannel:
    """A Web API whose chat.postMessage answers not_in_channel (opsbot not invited)."""

    async def chat_postMessage(self, **_kwargs: Any) -> Any:  # noqa: N802 - slack_sdk's name
        raise SlackApiError("not_in_channel", AsyncSlackResponse(
            client=None, http_verb="POST", api_url="x", req_args={},
            data={"ok": False, "error": "not_in_channel"}, headers={}, status_code=200))


def test_what_a_response_url_relays_is_escaped(hooks: type[_Hooks]) -> None:
    connector = _connector()
    connector.client = _NotInChannel()  # type: ignore[assignment]

    async def rasa(message: UserMessage) -> None:  # a reply repeating a log line
        await message.output_channel.send_text_message(
            message.sender_id, "Last error: <!channel> see <https://evil.example/|the runbook>")

    _receive(connector, _command(OPS, "t-9", "https://hooks.slack.com/commands/1/a"), rasa)
    [(_url, shown)] = hooks.posted
    assert "&lt;!channel&gt;" in shown and "&lt;https://evil.example/|the runbook&gt;" in shown
    assert "<!channel>" not in shown and "<https:" not in shown


def test_one_persons_requests_reach_rasa_in_the_order_slack_sent_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    connector, recorder = _connector(), Recorder()
    store = common.channel_store()
    real = store.first_time

    def slow_for_the_first(kind: str, key: str, *args: Any) -> bool:
        if key.endswith("Ev1"):
            time.sleep(0.3)  # one slow store round trip (a busy database)
        return bool(real(kind, key, *args))
    monkeypatch.setattr(store, "first_time", slow_for_the_first)
    first = _event(f"<@{BOT}> deploy payments 2.4.1 to prod", event_id="Ev1",
                   ts="1700000001.000100")
    second = _event(f"<@{BOT}> cancel", event_id="Ev2", ts="1700000002.000100")

    async def main() -> None:
        await asyncio.gather(
            connector._receive(_request(first, "application/json"), recorder),
            connector._receive(_request(second, "application/json"), recorder))
        await asyncio.wait(set(connector._tasks))
    asyncio.run(main())
    assert [m.text for m in recorder.messages] == ["deploy payments 2.4.1 to prod", "cancel"]


class _DroppingSocket:
    """A websocket being replaced (Slack's refresh): the first acknowledgement fails."""

    def __init__(self) -> None:
        self.acks: list[str] = []
        self.failed = False

    async def send_socket_mode_response(self, response: Any) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionResetError("Cannot write to closing transport")
        self.acks.append(response.envelope_id)


def test_an_envelope_whose_acknowledgement_failed_runs_once() -> None:
    connector, recorder = _connector(mode="socket", app_token="xapp-1-abc"), Recorder()
    payload = json.loads(_event(f"<@{BOT}> deploy payments", event_id="EvSock1"))
    socket = _DroppingSocket()

    async def main() -> None:
        await connector._envelope(socket, SocketModeRequest(
            type="events_api", envelope_id="env-1", payload=payload), recorder)
        await connector._envelope(socket, SocketModeRequest(  # Slack's redelivery
            type="events_api", envelope_id="env-1", payload=payload, retry_attempt=1,
            retry_reason="timeout"), recorder)
        await asyncio.wait(set(connector._tasks))
    asyncio.run(main())
    assert socket.acks == ["env-1"]  # the redelivery is acknowledged ...
    assert [m.text for m in recorder.messages] == ["deploy payments"]  # ... and ran once


def test_a_press_that_failed_before_rasa_is_told_to_the_presser(hooks: type[_Hooks]) -> None:
    connector = _connector()

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("the store is gone")
    connector._on_press = broken  # type: ignore[method-assign]
    press = {"type": "block_actions", "team": {"id": TEAM}, "user": {"id": ALICE, "team_id": TEAM},
             "channel": {"id": OPS}, "trigger_id": "t-press", "actions": [{"type": "button"}],
             "response_url": "https://hooks.slack.com/actions/1/a"}
    form = urllib.parse.urlencode({"payload": json.dumps(press)}).encode()
    _receive(connector, _request(form, "application/x-www-form-urlencoded"), Recorder())
    [(_url, shown)] = hooks.posted
    assert "Something went wrong on my side" in shown and "reference" in shown


@pytest.mark.parametrize(("retry_after", "limited"), [("1.5", 1), ("-1", 2), ("soon", 1)])
def test_any_retry_after_is_waited_out_and_the_part_arrives(retry_after: str,
                                                           limited: int) -> None:
    """slack_sdk's own handler raised on "1.5" and did not wait on "-1"."""
    async def main() -> tuple[list[float], bool]:
        calls: list[float] = []

        async def post(_request: web.Request) -> web.Response:
            calls.append(time.monotonic())
            if len(calls) <= limited:
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": retry_after})
            return web.json_response({"ok": True, "ts": "1700000000.000100", "channel": OPS})
        app = web.Application()
        app.router.add_post("/api/{method}", post)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            sent = await SlackInput("xoxb-1-2-abc", signing_secret=SECRET,
                                    api_url=f"http://127.0.0.1:{port}/api/").send(
                OPS, "part one", [], {})
        finally:
            await runner.cleanup()
        return calls, sent
    calls, sent = asyncio.run(main())
    assert sent and len(calls) == limited + 1
    assert all(later - earlier >= 1.0 for earlier, later in zip(calls, calls[1:], strict=False))
