"""simulators.slack through slack_sdk's own clients (WebClient, AsyncWebClient,
SignatureVerifier, the Socket Mode clients) and through plain requests.

slack_sdk shows that the simulator's answers, deliveries and websocket speak Slack's
protocol; requests pins down the wire (status codes, headers, form bodies). Waits only
tell "arrived" from "never arrived", with generous timeouts; no test asserts a timing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import websockets
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.socket_mode.aiohttp import SocketModeClient as AiohttpSocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.socket_mode.websockets import SocketModeClient as WebsocketsSocketModeClient
from slack_sdk.web.async_client import AsyncWebClient
from websockets.exceptions import InvalidStatusCode

from simulators._http import BackgroundServer, Request, Response
from simulators.slack import (
    ALICE,
    BOB,
    BOT_ID,
    BOT_USER,
    CAROL,
    DEFAULT_BOT_TOKEN,
    DEFAULT_SIGNING_SECRET,
    EVE,
    NOBOT_CHANNEL,
    OPS_CHANNEL,
    OTHER_CHANNEL,
    OTHER_TEAM,
    SHARED_CHANNEL,
    TEAM,
    Forgery,
    Sent,
    SlackSimulator,
)

CONFIRM_BLOCKS: list[dict[str, Any]] = [
    {"type": "section", "text": {"type": "mrkdwn", "text": "Deploy *payments* 2.4.1?"}},
    {"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Confirm"},
         "action_id": "confirm", "value": "signed-confirm-token", "style": "primary"},
        {"type": "button", "text": {"type": "plain_text", "text": "Cancel"},
         "action_id": "cancel", "value": "signed-cancel-token"}]},
]


@pytest.fixture
def sim() -> Iterator[SlackSimulator]:
    with SlackSimulator() as simulator:
        yield simulator


def web(sim: SlackSimulator, token: str | None = None, **kwargs: Any) -> WebClient:
    return WebClient(token=token or sim.bot_token, base_url=sim.api_url, **kwargs)


def refusal(call: Any, **kwargs: Any) -> tuple[int, str]:
    """The HTTP status and ``error`` of a call slack_sdk raises SlackApiError for."""
    with pytest.raises(SlackApiError) as caught:
        call(**kwargs)
    response = caught.value.response
    assert response["ok"] is False
    return response.status_code, response["error"]


# -- the Web API ----------------------------------------------------------------------------


def test_auth_test_and_the_demo_face(sim: SlackSimulator) -> None:
    answer = web(sim).auth_test()
    assert (answer["team_id"], answer["user_id"], answer["bot_id"]) == (TEAM, BOT_USER, BOT_ID)
    assert answer["url"] == "https://ops.slack.com/"
    # #ops is allowed: `opsbot demo --channel slack` talks there (opsbot._sim_chat).
    assert sim.env() == {"SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN, "SLACK_API_URL": sim.api_url,
                         "SLACK_ALLOWED_CHANNELS": OPS_CHANNEL,
                         "SLACK_SIGNING_SECRET": DEFAULT_SIGNING_SECRET}
    assert sim.api_url == sim.url + "api/"
    assert sim.describe() == f"Slack Web API at {sim.api_url} (workspace ops, events to (unset))"
    assert DEFAULT_BOT_TOKEN not in repr(sim) and DEFAULT_SIGNING_SECRET not in repr(sim)
    [logged] = sim.request_log()
    assert (logged.api_method, logged.status, logged.error) == ("auth.test", 200, None)
    assert "token" not in logged.params


def test_tokens_are_checked_and_kept_to_their_kind() -> None:
    with SlackSimulator(socket_mode=True) as sim:
        assert refusal(web(sim, "xoxb-not-the-token").auth_test) == (200, "invalid_auth")
        assert refusal(web(sim, sim.app_token).chat_postMessage, channel=OPS_CHANNEL,
                       text="x") == (200, "not_allowed_token_type")
        assert refusal(web(sim).apps_connections_open, app_token=sim.bot_token) == (
            200, "not_allowed_token_type")
        url = web(sim).apps_connections_open(app_token=sim.app_token)["url"]
        assert url.startswith("ws://127.0.0.1:") and "ticket=" in url
        assert sim.env()["SLACK_APP_TOKEN"] == sim.app_token
        assert "SLACK_SIGNING_SECRET" not in sim.env()
        bare = requests.post(sim.api_url + "auth.test", timeout=5)
        assert (bare.status_code, bare.json()) == (200, {"ok": False, "error": "not_authed"})
        unknown = requests.post(sim.api_url + "chat.postMessagee",
                                headers={"Authorization": f"Bearer {sim.bot_token}"}, timeout=5)
        assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_method"
    with SlackSimulator() as http_mode:  # no app-level token exists in HTTP mode
        assert refusal(web(http_mode).apps_connections_open,
                       app_token=http_mode.app_token) == (200, "invalid_auth")


def test_post_message_with_blocks_threads_and_dms(sim: SlackSimulator) -> None:
    client = web(sim)
    posted = client.chat_postMessage(channel=OPS_CHANNEL, text="Deploy payments 2.4.1?",
                                     blocks=CONFIRM_BLOCKS)
    message = posted["message"]
    assert posted["channel"] == OPS_CHANNEL and message["ts"] == posted["ts"]
    assert (message["bot_id"], message["user"]) == (BOT_ID, BOT_USER)
    # Slack stores blocks with a block_id of its making where none was given.
    assert [b["type"] for b in message["blocks"]] == ["section", "actions"]
    assert all(block["block_id"] for block in message["blocks"])
    reply = client.chat_postMessage(channel=OPS_CHANNEL, text="Started", thread_ts=posted["ts"],
                                    reply_broadcast=True)
    assert reply["message"]["thread_ts"] == posted["ts"]
    assert [m["text"] for m in sim.thread(OPS_CHANNEL, posted["ts"])] == [
        "Deploy payments 2.4.1?", "Started"]
    assert sim.messages(OPS_CHANNEL)[0]["reply_count"] == 1
    # A form body with the blocks as a JSON string, the token in it, as curl would send.
    form = requests.post(sim.api_url + "chat.postMessage", timeout=5, data={
        "token": sim.bot_token, "channel": "#random", "text": "from a form",
        "blocks": '[{"type": "divider"}]'})
    assert form.json()["ok"] is True and form.json()["channel"] == OTHER_CHANNEL
    dm = client.chat_postMessage(channel=ALICE, text="hello alice")  # a user id: the DM
    assert dm["channel"] == sim.dm_of(ALICE) and dm["channel"].startswith("D")
    found = sim.wait_for_message(OPS_CHANNEL, contains="payments", timeout=1)
    assert found["ts"] == posted["ts"] and found["edits"] == 0
    assert sim.wait_for_message(OPS_CHANNEL, thread_ts=posted["ts"], timeout=1)["text"] == \
        "Started"
    with pytest.raises(TimeoutError, match="no message from the bot in C0OPS"):
        sim.wait_for_message(OPS_CHANNEL, contains="never said", timeout=0.2)


def test_post_message_refusals(sim: SlackSimulator) -> None:
    post = web(sim).chat_postMessage

    def blocks_error(blocks: list[dict[str, Any]]) -> list[str]:
        with pytest.raises(SlackApiError) as caught:
            post(channel=OPS_CHANNEL, text="x", blocks=blocks)
        assert caught.value.response["error"] == "invalid_blocks"
        return list(caught.value.response["errors"])

    assert refusal(post, channel="C0NOWHERE", text="x") == (200, "channel_not_found")
    assert refusal(post, channel=NOBOT_CHANNEL, text="x") == (200, "not_in_channel")
    # Two people's DM does not exist for the bot's token, whatever the method.
    theirs = sim.dm_between(ALICE, BOB)
    assert refusal(post, channel=theirs, text="x") == (200, "channel_not_found")
    assert refusal(web(sim).conversations_info, channel=theirs) == (200, "channel_not_found")
    assert web(sim).conversations_info(channel=sim.dm_of(ALICE))["channel"]["user"] == ALICE
    assert refusal(post, channel=OPS_CHANNEL, text="") == (200, "no_text")
    assert refusal(post, channel=OPS_CHANNEL, text="x" * 40_001) == (200, "msg_too_long")
    post(channel=OPS_CHANNEL, text="x" * 40_000)

    def button(**fields: Any) -> dict[str, Any]:
        element = {"type": "button", "text": {"type": "plain_text", "text": "Go"},
                   "action_id": "go", **fields}
        return {"type": "actions", "elements": [element]}

    section = {"type": "section", "text": {"type": "mrkdwn", "text": "y" * 3001}}
    assert blocks_error([section]) == [
        "must be less than 3001 characters [json-pointer:/blocks/0/text/text]"]
    assert blocks_error([{"type": "divider"}] * 51) == [
        "no more than 50 items allowed [json-pointer:/blocks]"]
    assert blocks_error([button(text={"type": "plain_text", "text": "z" * 76})]) == [
        "must be less than 76 characters [json-pointer:/blocks/0/elements/0/text/text]"]
    assert blocks_error([button(value="v" * 2001)]) == [
        "must be less than 2001 characters [json-pointer:/blocks/0/elements/0/value]"]
    assert blocks_error([button(action_id="a" * 256)]) == [
        "must be less than 256 characters [json-pointer:/blocks/0/elements/0/action_id]"]
    assert blocks_error([button(), button()]) == [
        "duplicate action_id [json-pointer:/blocks/1/elements/0/action_id]"]
    assert blocks_error([{"type": "carousel"}]) == [
        "unsupported type: carousel [json-pointer:/blocks/0/type]"]
    post(channel=OPS_CHANNEL, text="x", blocks=[button(value="v" * 2000)])
    assert refusal(post, channel=OPS_CHANNEL, text="x", blocks="not json") == (
        200, "invalid_blocks_format")
    assert [m["text"][:1] for m in sim.messages(OPS_CHANNEL)] == ["x", "x"]  # nothing else
    assert [entry.error for entry in sim.request_log()][:6] == [
        "channel_not_found", "not_in_channel", "channel_not_found", "channel_not_found", None,
        "no_text"]


def test_update_replaces_in_place_and_only_the_bots_own(sim: SlackSimulator) -> None:
    client = web(sim)
    posted = client.chat_postMessage(channel=OPS_CHANNEL, text="Deploy?", blocks=CONFIRM_BLOCKS)
    updated = client.chat_update(channel=OPS_CHANNEL, ts=posted["ts"], text="Confirmed by alice")
    assert updated["ts"] == posted["ts"] and updated["text"] == "Confirmed by alice"
    assert len(updated["message"]["blocks"]) == 2  # blocks left out are kept
    client.chat_update(channel=OPS_CHANNEL, ts=posted["ts"], text="Confirmed by alice",
                       blocks=[])  # an empty list removes them
    state = sim.wait_for_update(OPS_CHANNEL, posted["ts"], min_edits=2, timeout=1)
    assert state["blocks"] is None and state["edits"] == 2
    assert state["message"]["edited"]["user"] == BOT_USER
    assert [m["ts"] for m in sim.messages(OPS_CHANNEL)] == [posted["ts"]]
    said = sim.say(ALICE, OPS_CHANNEL, "my own words")
    assert refusal(client.chat_update, channel=OPS_CHANNEL, ts=said.ts, text="x") == (
        200, "cant_update_message")
    assert refusal(client.chat_update, channel=OPS_CHANNEL, ts="1.000001", text="x") == (
        200, "message_not_found")
    assert refusal(client.chat_update, channel=OPS_CHANNEL, ts=posted["ts"]) == (200, "no_text")


def test_ephemerals_are_seen_by_one_person_only(sim: SlackSimulator) -> None:
    client = web(sim)
    answer = client.chat_postEphemeral(channel=OPS_CHANNEL, user=BOB,
                                       text="Only alice can confirm her deploy.")
    assert answer["message_ts"]
    [seen] = sim.ephemerals(BOB)
    assert (seen["channel"], seen["text"], seen["source"]) == (
        OPS_CHANNEL, "Only alice can confirm her deploy.", "chat.postEphemeral")
    assert sim.ephemerals(ALICE) == [] and sim.messages(OPS_CHANNEL) == []
    assert sim.wait_for_ephemeral(BOB, contains="confirm her deploy", timeout=1)
    assert refusal(client.chat_postEphemeral, channel=SHARED_CHANNEL, user=CAROL,
                   text="x") == (200, "user_not_in_channel")
    assert refusal(client.chat_postEphemeral, channel=NOBOT_CHANNEL, user=CAROL,
                   text="x") == (200, "not_in_channel")
    assert refusal(client.chat_postEphemeral, channel=OPS_CHANNEL, user=CAROL) == (
        200, "no_text")


def test_conversations_and_users_through_the_async_client(sim: SlackSimulator) -> None:
    async def scenario() -> list[Any]:
        client = AsyncWebClient(token=sim.bot_token, base_url=sim.api_url)
        found = [await client.conversations_info(channel=channel)
                 for channel in (OPS_CHANNEL, NOBOT_CHANNEL, SHARED_CHANNEL, sim.dm_of(BOB))]
        found.append(await client.users_info(user=EVE))
        with pytest.raises(SlackApiError, match="channel_not_found"):
            await client.conversations_info(channel="C0NOWHERE")
        with pytest.raises(SlackApiError, match="user_not_found"):
            await client.users_info(user="U0NOBODY")
        return found

    ops, nobot, shared, dm, eve = asyncio.run(scenario())
    assert (ops["channel"]["name"], ops["channel"]["is_member"]) == ("ops", True)
    assert nobot["channel"]["is_member"] is False
    assert shared["channel"]["is_ext_shared"] is True
    assert shared["channel"]["shared_team_ids"] == [TEAM, OTHER_TEAM]
    assert (dm["channel"]["is_im"], dm["channel"]["user"]) == (True, BOB)
    assert (eve["user"]["team_id"], eve["user"]["is_stranger"]) == (OTHER_TEAM, True)


class Clock:
    """The simulator's time, moved only by the test: whether a post is too early never
    depends on how fast the machine is."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class TimePasses(RetryHandler):
    """Moves ``clock`` on by a 429's Retry-After and leaves the retry to the next handler:
    in the simulator's time, the wait slack_sdk is about to make has passed."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(max_retry_count=10)
        self.clock = clock

    def _can_retry(self, *, state: Any, request: Any, response: Any = None,
                   error: Any = None) -> bool:
        if response is not None and response.status_code == 429:
            self.clock.now += int(response.headers["retry-after"][0])
        return False


def test_posting_faster_than_the_channel_allows_is_429_with_retry_after() -> None:
    clock = Clock()
    with SlackSimulator(channel_interval=1.0, clock=clock) as sim:
        client = web(sim)
        first = client.chat_postMessage(channel=OPS_CHANNEL, text="part 1")
        clock.now += 0.25
        response = requests.post(sim.api_url + "chat.postMessage", timeout=5,
                                 headers={"Authorization": f"Bearer {sim.bot_token}"},
                                 json={"channel": OPS_CHANNEL, "text": "part 2"})
        assert response.status_code == 429 and response.headers["Retry-After"] == "1"
        assert response.json() == {"ok": False, "error": "ratelimited"}
        # Updates and ephemerals count against the same channel; another channel is free.
        assert refusal(client.chat_update, channel=OPS_CHANNEL, ts=first["ts"], text="x") == (
            429, "ratelimited")
        assert refusal(client.chat_postEphemeral, channel=OPS_CHANNEL, user=ALICE,
                       text="x") == (429, "ratelimited")
        client.chat_postMessage(channel=OTHER_CHANNEL, text="elsewhere")
        assert [m["text"] for m in sim.messages(OPS_CHANNEL)] == ["part 1"]
        # slack_sdk's RateLimitErrorRetryHandler waits out Retry-After, then gets through.
        patient = web(sim, retry_handlers=[TimePasses(clock),
                                           RateLimitErrorRetryHandler(max_retry_count=3)])
        patient.chat_postMessage(channel=OPS_CHANNEL, text="part 2")
        assert [m["text"] for m in sim.messages(OPS_CHANNEL)] == ["part 1", "part 2"]
        statuses = [entry.status for entry in sim.request_log()
                    if entry.params.get("text") == "part 2"]
        assert statuses == [429, 429, 200]  # requests' and the client's first, then the retry
        clock.now += 1.0
        client.chat_update(channel=OPS_CHANNEL, ts=first["ts"], text="part 1, edited")


def test_fail_next_answers_as_slack_would(sim: SlackSimulator) -> None:
    sim.fail_next(429, path="chat.postMessage")
    assert refusal(web(sim).chat_postMessage, channel=OPS_CHANNEL, text="x") == (
        429, "ratelimited")
    sim.fail_next(503)
    assert refusal(web(sim).auth_test) == (503, "internal_error")
    web(sim).chat_postMessage(channel=OPS_CHANNEL, text="x")


# -- HTTP mode: the Events API, interactivity and slash commands at one Request URL ------------


class App:
    """The app's Request URL: records each request and answers it as ``answer`` says."""

    def __init__(self, answer: Callable[[Request, int], Response] | None = None) -> None:
        self.requests: list[Request] = []
        self.changed = threading.Condition()
        self.answer = answer or (lambda request, number: Response.text(""))
        self.server = BackgroundServer(self._handle, name="slack-app")

    def _handle(self, request: Request) -> Response:
        with self.changed:
            self.requests.append(request)
            number = len(self.requests)
            self.changed.notify_all()
        return self.answer(request, number)

    def wait(self, count: int, where: Callable[[Request], bool] = lambda r: True,
             timeout: float = 10.0) -> list[Request]:
        """The first ``count`` requests ``where`` holds for, once they arrived."""
        with self.changed:
            self.changed.wait_for(lambda: len([r for r in self.requests if where(r)]) >= count,
                                  timeout)
            found = [r for r in self.requests if where(r)]
        assert len(found) >= count, f"{len(found)} of {count} requests arrived"
        return found[:count]


def event_of(request: Request) -> dict[str, Any]:
    return json.loads(request.body)["event"]


def interaction_of(request: Request) -> dict[str, Any]:
    return json.loads(parse_qs(request.body.decode())["payload"][0])


def form_of(request: Request) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(request.body.decode()).items()}


def is_person_event(request: Request) -> bool:
    """An event about a person, not the echo of the bot's own post."""
    return request.header("Content-Type") == "application/json" \
        and "bot_id" not in event_of(request)


def signed(sim: SlackSimulator, request: Request) -> bool:
    return SignatureVerifier(sim.signing_secret).is_valid_request(
        request.body, dict(request.headers.items()))


@pytest.fixture
def app() -> Iterator[App]:
    application = App()
    application.server.start()
    yield application
    application.server.stop()


@pytest.fixture
def http_sim(app: App) -> Iterator[SlackSimulator]:
    with SlackSimulator(events_url=app.server.url + "slack/events", ack_timeout=1.0,
                        retry_delays=(0.0, 0.1, 0.1)) as simulator:
        yield simulator


def test_events_are_signed_envelopes_with_an_event_id_each(http_sim: SlackSimulator,
                                                           app: App) -> None:
    sent = http_sim.say(ALICE, OPS_CHANNEL, "<@U0BOT> deploy payments 2.4.1 to staging")
    assert [event["type"] for event in sent.events] == ["message", "app_mention"]
    requests_ = app.wait(2)
    envelopes = [json.loads(r.body) for r in requests_]
    assert {e["event"]["type"] for e in envelopes} == {"message", "app_mention"}
    assert len({e["event_id"] for e in envelopes}) == 2
    for request, envelope in zip(requests_, envelopes, strict=True):
        assert signed(http_sim, request) and request.raw_path == "/slack/events"
        assert request.header("X-Slack-Retry-Num") is None
        assert (envelope["type"], envelope["team_id"], envelope["api_app_id"]) == (
            "event_callback", TEAM, "A0OPSBOT")
        assert envelope["authorizations"][0]["user_id"] == BOT_USER
        assert envelope["event"]["user"] == ALICE and envelope["event"]["ts"] == sent.ts
    mention = next(e["event"] for e in envelopes if e["event"]["type"] == "app_mention")
    elements = mention["blocks"][0]["elements"][0]["elements"]
    assert elements[0] == {"type": "user", "user_id": BOT_USER}
    http_sim.say(BOB, http_sim.dm_of(BOB), "status please")  # a DM: a message, no mention
    http_sim.say(EVE, SHARED_CHANNEL, "hello from the partner")  # Slack Connect
    assert http_sim.say(CAROL, NOBOT_CHANNEL, "<@U0BOT> are you here?").deliveries == ()
    with pytest.raises(ValueError, match="not a member of #ops-connect"):
        http_sim.say(CAROL, SHARED_CHANNEL, "let me in")
    with pytest.raises(ValueError, match="through the Web API"):
        http_sim.say(BOT_USER, OPS_CHANNEL, "I am a person")
    # Slack keeps no order between deliveries: each is found by its sender.
    by_user = {event_of(r)["user"]: event_of(r) for r in app.wait(4, is_person_event)}
    dm, eve = by_user[BOB], by_user[EVE]
    assert (dm["channel_type"], dm["user"]) == ("im", BOB)
    assert (eve["user"], eve["user_team"], eve["team"]) == (EVE, OTHER_TEAM, OTHER_TEAM)
    # The bot's own posts come back as events too, as on Slack.
    web(http_sim).chat_postMessage(channel=OPS_CHANNEL, text="On it", thread_ts=sent.ts)
    [echo] = app.wait(1, lambda r: r.header("Content-Type") == "application/json"
                      and event_of(r).get("bot_id") == BOT_ID)
    assert event_of(echo)["thread_ts"] == sent.ts


def test_an_event_without_a_200_in_time_is_retried_with_its_number() -> None:
    def slow_first(request: Request, number: int) -> Response:
        if number == 1:
            time.sleep(2.5)  # past the ack timeout: Slack stops waiting and retries
        return Response.text("")

    app = App(slow_first)
    app.server.start()
    try:
        with SlackSimulator(events_url=app.server.url, ack_timeout=1.0,
                            retry_delays=(0.0, 0.1, 0.1)) as sim:
            sent = sim.say(ALICE, OPS_CHANNEL, "restart the cache")
            first, retry = app.wait(2)
            assert json.loads(retry.body)["event_id"] == json.loads(first.body)["event_id"]
            assert (retry.header("X-Slack-Retry-Num"), retry.header("X-Slack-Retry-Reason")) \
                == ("1", "http_timeout")
            assert signed(sim, retry)
            attempts = sim.wait_for_delivery(sent.deliveries[0].id, attempts=2)
            assert [(a["attempt"], a["retry_reason"], a["acknowledged"]) for a in attempts] == [
                (0, None, False), (1, "http_timeout", True)]
    finally:
        app.server.stop()


def test_errors_are_retried_three_times_unless_the_app_says_no_retry() -> None:
    def failing(request: Request, number: int) -> Response:
        response = Response.text("oops", 500)
        if "no retry" in request.body.decode():
            response.with_header("X-Slack-No-Retry", "1")
        return response

    app = App(failing)
    app.server.start()
    try:
        with SlackSimulator(events_url=app.server.url, retry_delays=(0.0, 0.05, 0.05)) as sim:
            sent = sim.say(ALICE, OPS_CHANNEL, "flaky")
            attempts = sim.wait_for_delivery(sent.deliveries[0].id, attempts=4,
                                             acknowledged=False)
            assert [(a["attempt"], a["status"]) for a in attempts] == [
                (0, 500), (1, 500), (2, 500), (3, 500)]
            assert [r.header("X-Slack-Retry-Num") for r in app.wait(4)] == [None, "1", "2", "3"]
            assert {r.header("X-Slack-Retry-Reason") for r in app.wait(4)[1:]} == {"http_error"}
            refused = sim.say(ALICE, OPS_CHANNEL, "no retry please")
            [only] = sim.wait_for_delivery(refused.deliveries[0].id, acknowledged=False)
            assert only["status"] == 500
            time.sleep(0.3)  # room for a retry that must not come
            assert len([d for d in sim.event_deliveries()
                        if d["id"] == refused.deliveries[0].id]) == 1
    finally:
        app.server.stop()


def test_button_presses_arrive_as_a_payload_form_with_a_response_url(
        http_sim: SlackSimulator, app: App) -> None:
    posted = web(http_sim).chat_postMessage(channel=OPS_CHANNEL, text="Deploy?",
                                            blocks=CONFIRM_BLOCKS)
    sent = http_sim.press(BOB, OPS_CHANNEL, posted["ts"], title="Confirm")
    [request] = app.wait(1, lambda r: r.body.startswith(b"payload="))
    assert request.header("Content-Type") == "application/x-www-form-urlencoded"
    assert signed(http_sim, request)
    payload = interaction_of(request)
    assert payload == sent.deliveries[0].payload
    assert (payload["type"], payload["user"]["id"], payload["user"]["team_id"]) == (
        "block_actions", BOB, TEAM)
    [action] = payload["actions"]
    assert (action["action_id"], action["value"], action["type"]) == (
        "confirm", "signed-confirm-token", "button")
    assert payload["container"] == {"type": "message", "message_ts": posted["ts"],
                                    "channel_id": OPS_CHANNEL, "is_ephemeral": False}
    assert payload["message"]["ts"] == posted["ts"] and payload["channel"]["id"] == OPS_CHANNEL
    with pytest.raises(LookupError, match="no button 'Approve'.*'Confirm' \\('confirm'\\)"):
        http_sim.press(BOB, OPS_CHANNEL, posted["ts"], title="Approve")

    respond = payload["response_url"]
    assert requests.post(respond, json={"text": "Only alice can confirm.",
                                        "response_type": "ephemeral"}, timeout=5).ok
    assert http_sim.ephemerals(BOB)[0]["source"] == "response_url"
    requests.post(respond, json={"text": "Confirmed by alice", "replace_original": True},
                  timeout=5).raise_for_status()
    replaced = http_sim.wait_for_update(OPS_CHANNEL, posted["ts"], contains="Confirmed",
                                        timeout=1)
    assert replaced["blocks"] is None  # replaced whole: the buttons are gone
    with pytest.raises(LookupError, match="no button"):
        http_sim.press(BOB, OPS_CHANNEL, posted["ts"], title="Confirm")
    requests.post(respond, json={"text": "Build #42 started"}, timeout=5).raise_for_status()
    assert http_sim.wait_for_message(OPS_CHANNEL, contains="Build #42", timeout=1)
    requests.post(respond, json={"delete_original": True}, timeout=5).raise_for_status()
    assert http_sim.messages(OPS_CHANNEL)[0]["deleted"] is True
    assert requests.post(respond, json={"text": "x"}, timeout=5).ok  # the fifth use
    spent = requests.post(respond, json={"text": "x"}, timeout=5)
    assert (spent.status_code, spent.json()["error"]) == (404, "expired_url")


def test_slash_commands_are_form_fields_answered_in_the_response() -> None:
    def answer(request: Request, number: int) -> Response:
        fields = form_of(request)
        if fields["text"] == "slow":
            time.sleep(2.0)
            return Response.text("")
        if fields["text"] == "loud":
            return Response.json({"response_type": "in_channel", "text": "Deploying now"})
        return Response.json({"text": f"Working on {fields['text']}"})

    app = App(answer)
    app.server.start()
    try:
        with SlackSimulator(events_url=app.server.url, ack_timeout=1.0,
                            retry_delays=(0.0, 0.1, 0.1)) as sim:
            sim.slash(ALICE, NOBOT_CHANNEL, "status payments")  # commands work everywhere
            [request] = app.wait(1)
            assert signed(sim, request)
            fields = form_of(request)
            assert {name: fields[name] for name in ("command", "text", "user_id", "channel_id",
                                                    "team_id")} == {
                "command": "/opsbot", "text": "status payments", "user_id": ALICE,
                "channel_id": NOBOT_CHANNEL, "team_id": TEAM}
            assert fields["response_url"].startswith(sim.url) and fields["trigger_id"]
            assert sim.wait_for_ephemeral(ALICE, contains="Working on status payments",
                                          timeout=2)["source"] == "slash_command"
            sim.slash(BOB, OPS_CHANNEL, "loud")
            assert sim.wait_for_message(OPS_CHANNEL, contains="Deploying now", timeout=2)
            sim.slash(CAROL, OPS_CHANNEL, "slow")  # not retried: carol sees Slack's error
            failed = sim.wait_for_ephemeral(CAROL, timeout=3)
            assert failed == {**failed, "source": "slackbot",
                              "text": '/opsbot failed with the error "operation_timeout"'}
            assert len(app.wait(3)) == 3
    finally:
        app.server.stop()


def test_url_verification_wants_the_challenge_back() -> None:
    def echo(request: Request, number: int) -> Response:
        body = json.loads(request.body)
        return Response.json({"challenge": body["challenge"]})

    good, deaf = App(echo), App()
    for application in (good, deaf):
        application.server.start()
    try:
        with SlackSimulator(events_url=good.server.url) as sim:
            assert sim.verify_url() is True
            [request] = good.wait(1)
            assert json.loads(request.body)["type"] == "url_verification"
            assert signed(sim, request)
            assert sim.verify_url(deaf.server.url) is False
    finally:
        good.server.stop()
        deaf.server.stop()


def test_forged_deliveries_fail_verification_and_redeliveries_keep_the_event_id(
        http_sim: SlackSimulator, app: App) -> None:
    verifier = SignatureVerifier(http_sim.signing_secret)
    http_sim.say(ALICE, OPS_CHANNEL, "bad signature", forge=Forgery(bad_signature=True))
    http_sim.say(ALICE, OPS_CHANNEL, "replayed", forge=Forgery(timestamp_age=600))
    http_sim.say(ALICE, OPS_CHANNEL, "unsigned", forge=Forgery(unsigned=True))
    other = http_sim.say(ALICE, OPS_CHANNEL, "other team", forge=Forgery(team_id=OTHER_TEAM))
    by_text = {event_of(r)["text"]: r for r in app.wait(4, is_person_event)}
    bad, replayed = by_text["bad signature"], by_text["replayed"]
    assert bad.header("X-Slack-Signature") and not signed(http_sim, bad)
    stamp = replayed.header("X-Slack-Request-Timestamp")
    assert stamp is not None and int(stamp) < time.time() - 590
    assert verifier.generate_signature(timestamp=stamp, body=replayed.body) == \
        replayed.header("X-Slack-Signature")  # signed right, but too old
    assert not signed(http_sim, replayed)
    assert by_text["unsigned"].header("X-Slack-Signature") is None
    forged = json.loads(by_text["other team"].body)
    assert forged["team_id"] == OTHER_TEAM and signed(http_sim, by_text["other team"])
    assert forged["authorizations"][0]["team_id"] == OTHER_TEAM
    again = http_sim.redeliver(other.deliveries[0])
    assert again.id == other.deliveries[0].id
    [twice] = app.wait(1, lambda r: is_person_event(r) and event_of(r)["text"] == "other team"
                       and r is not by_text["other team"])
    assert json.loads(twice.body)["event_id"] == forged["event_id"]
    pressed = web(http_sim).chat_postMessage(channel=SHARED_CHANNEL, text="Deploy?",
                                             blocks=CONFIRM_BLOCKS)
    eve_press = http_sim.press(EVE, SHARED_CHANNEL, pressed["ts"], action_id="confirm")
    assert eve_press.deliveries[0].payload["user"]["team_id"] == OTHER_TEAM


# -- Socket Mode ------------------------------------------------------------------------------


@pytest.fixture
def socket_sim() -> Iterator[SlackSimulator]:
    with SlackSimulator(socket_mode=True, ack_timeout=1.0,
                        retry_delays=(0.0, 0.1, 0.1)) as simulator:
        yield simulator


class Listener:
    """A Socket Mode request listener that records each request and acknowledges it,
    unless ``skip`` says to leave it unanswered (``answer`` gives an ack's payload)."""

    def __init__(self, skip: Callable[[SocketModeRequest], bool] = lambda request: False,
                 answer: dict[str, Any] | None = None) -> None:
        self.requests: list[SocketModeRequest] = []
        self.skip = skip
        self.answer = answer

    async def __call__(self, client: Any, request: SocketModeRequest) -> None:
        self.requests.append(request)
        if not self.skip(request):
            await client.send_socket_mode_response(SocketModeResponse(
                envelope_id=request.envelope_id, payload=self.answer))


def socket_client(sim: SlackSimulator, listener: Listener, kind: Any = AiohttpSocketModeClient,
                  **options: Any) -> Any:
    """A slack_sdk Socket Mode client of ``kind`` for ``sim`` with ``listener`` (call it in a
    running event loop: the clients start tasks when made)."""
    client = kind(app_token=sim.app_token, **options,
                  web_client=AsyncWebClient(token=sim.bot_token, base_url=sim.api_url))
    client.socket_mode_request_listeners.append(listener)
    return client


async def in_thread(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A blocking simulator call (a wait) without blocking the client's event loop."""
    return await asyncio.to_thread(call, *args, **kwargs)


def test_socket_mode_through_slack_sdks_aiohttp_client(socket_sim: SlackSimulator) -> None:
    listener = Listener()
    first_messages: list[dict[str, Any]] = []
    early = socket_sim.say(ALICE, OPS_CHANNEL, "before anyone listens")  # waits for a socket

    async def scenario() -> None:
        async def on_message(message: Any) -> None:
            first_messages.append(json.loads(message.data))

        client = socket_client(socket_sim, listener, on_message_listeners=[on_message])
        try:
            await client.connect()
            await in_thread(socket_sim.wait_for_delivery, early.deliveries[0].id)
            sent = socket_sim.say(ALICE, OPS_CHANNEL, "<@U0BOT> deploy payments 2.4.1")
            for item in sent.deliveries:
                await in_thread(socket_sim.wait_for_delivery, item.id)
            posted = await client.web_client.chat_postMessage(
                channel=OPS_CHANNEL, text="Deploy?", blocks=CONFIRM_BLOCKS, thread_ts=sent.ts)
            pressed = socket_sim.press(ALICE, OPS_CHANNEL, posted["ts"], action_id="confirm")
            await in_thread(socket_sim.wait_for_delivery, pressed.deliveries[0].id)
        finally:
            await client.close()

    asyncio.run(scenario())
    hello = first_messages[0]
    assert (hello["type"], hello["connection_info"]["app_id"]) == ("hello", "A0OPSBOT")
    by_kind = [(r.type, r.payload.get("event", {}).get("type")) for r in listener.requests
               if r.payload.get("event", {}).get("bot_id") is None]
    assert sorted(by_kind) == sorted([("events_api", "message"), ("events_api", "message"),
                                      ("events_api", "app_mention"), ("interactive", None)])
    press = next(r for r in listener.requests if r.type == "interactive")
    assert press.accepts_response_payload is False
    assert press.payload["actions"][0]["value"] == "signed-confirm-token"
    event = next(r for r in listener.requests if r.type == "events_api")
    assert (event.retry_attempt, event.retry_reason) == (0, "")
    assert event.payload["type"] == "event_callback" and event.payload["event_id"]
    assert {d["transport"] for d in socket_sim.event_deliveries()} == {"socket"}
    assert [r.api_method for r in socket_sim.request_log()].count("apps.connections.open") == 1


def test_unacknowledged_envelopes_come_again_events_only(socket_sim: SlackSimulator) -> None:
    listener = Listener(skip=lambda request: request.retry_attempt in (0, None))

    async def scenario() -> tuple[Sent, Sent]:
        client = socket_client(socket_sim, listener)
        try:
            await client.connect()
            said = socket_sim.say(BOB, OPS_CHANNEL, "restart the cache")
            await in_thread(socket_sim.wait_for_delivery, said.deliveries[0].id, attempts=2)
            posted = await client.web_client.chat_postMessage(channel=OPS_CHANNEL, text="?",
                                                              blocks=CONFIRM_BLOCKS)
            pressed = socket_sim.press(BOB, OPS_CHANNEL, posted["ts"], title="Cancel")
            await in_thread(socket_sim.wait_for_delivery, pressed.deliveries[0].id,
                            acknowledged=False)
            return said, pressed
        finally:
            await client.close()

    said, pressed = asyncio.run(scenario())
    first, again = [r for r in listener.requests
                    if r.type == "events_api" and r.payload["event_id"] == said.deliveries[0].id]
    assert first.envelope_id != again.envelope_id
    assert (again.retry_attempt, again.retry_reason) == (1, "timeout")
    assert again.payload == first.payload
    # Slack does not send a press again: the person sees an error instead.
    tries = [d for d in socket_sim.event_deliveries() if d["id"] == pressed.deliveries[0].id]
    assert [(d["attempt"], d["acknowledged"]) for d in tries] == [(0, False)]
    assert "not acknowledged" in tries[0]["error"]


def test_disconnect_makes_the_client_reconnect_through_apps_connections_open(
        socket_sim: SlackSimulator) -> None:
    listener = Listener()
    urls: list[str] = []

    async def scenario() -> None:
        client = socket_client(socket_sim, listener)
        try:
            await client.connect()
            urls.append(str(client.wss_uri))
            opened = await in_thread(socket_sim.wait_for_connection)
            assert await in_thread(socket_sim.disconnect) == 1
            await in_thread(socket_sim.wait_for_connection, after=opened)
            urls.append(str(client.wss_uri))
            sent = socket_sim.say(CAROL, OPS_CHANNEL, "still there?")
            await in_thread(socket_sim.wait_for_delivery, sent.deliveries[0].id)
        finally:
            await client.close()
        # A connection URL is good for one connection.
        with pytest.raises(InvalidStatusCode) as refused:
            await websockets.connect(urls[0])
        assert refused.value.status_code == 401

    asyncio.run(scenario())
    assert urls[0] != urls[1]
    assert [r.api_method for r in socket_sim.request_log()].count("apps.connections.open") == 2
    assert socket_sim.connections_opened() == 2
    assert [r.payload["event"]["text"] for r in listener.requests] == ["still there?"]


def test_websockets_client_survives_a_dropped_link_and_answers_a_command(
        socket_sim: SlackSimulator) -> None:
    listener = Listener(answer={"text": "Working on it"})

    async def scenario() -> Sent:
        client = socket_client(socket_sim, listener, WebsocketsSocketModeClient,
                               ping_interval=0.2)
        try:
            await client.connect()
            opened = await in_thread(socket_sim.wait_for_connection)
            socket_sim.disconnect(reason=None)  # no word: a network failure
            await in_thread(socket_sim.wait_for_connection, after=opened)
            sent = socket_sim.slash(ALICE, OPS_CHANNEL, "status payments")
            await in_thread(socket_sim.wait_for_delivery, sent.deliveries[0].id)
            return sent
        finally:
            await client.close()

    sent = asyncio.run(scenario())
    [command] = listener.requests
    assert (command.type, command.accepts_response_payload) == ("slash_commands", True)
    assert command.payload == sent.deliveries[0].payload
    assert command.payload["command"] == "/opsbot" and command.payload["user_id"] == ALICE
    assert socket_sim.wait_for_ephemeral(ALICE, contains="Working on it", timeout=2)[
        "source"] == "slash_command"
