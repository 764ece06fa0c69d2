"""simulators.slack through slack_sdk's own clients (WebClient, AsyncWebClient,
SignatureVerifier, the Socket Mode clients) and through plain requests.

slack_sdk shows that the simulator's answers, deliveries and websocket speak Slack's
protocol; requests pins down the wire (status codes, headers, form bodies). Waits only
tell "arrived" from "never arrived", with generous timeouts; no test asserts a timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

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
    assert sim.env() == {"SLACK_BOT_TOKEN": DEFAULT_BOT_TOKEN, "SLACK_API_URL": sim.api_url,
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
    assert [entry.error for entry in sim.request_log()][:4] == [
        "channel_not_found", "not_in_channel", "no_text", "msg_too_long"]


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


def test_posting_faster_than_the_channel_allows_is_429_with_retry_after() -> None:
    with SlackSimulator(channel_interval=1.0) as sim:
        client = web(sim)
        first = client.chat_postMessage(channel=OPS_CHANNEL, text="part 1")
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
        patient = web(sim, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=3)])
        patient.chat_postMessage(channel=OPS_CHANNEL, text="part 2")
        assert [m["text"] for m in sim.messages(OPS_CHANNEL)] == ["part 1", "part 2"]
        statuses = [entry.status for entry in sim.request_log()
                    if entry.params.get("text") == "part 2"]
        assert statuses[0] == 429 and statuses[-1] == 200


def test_fail_next_answers_as_slack_would(sim: SlackSimulator) -> None:
    sim.fail_next(429, path="chat.postMessage")
    assert refusal(web(sim).chat_postMessage, channel=OPS_CHANNEL, text="x") == (
        429, "ratelimited")
    sim.fail_next(503)
    assert refusal(web(sim).auth_test) == (503, "internal_error")
    web(sim).chat_postMessage(channel=OPS_CHANNEL, text="x")
