"""simulators.teams through the real clients: PyJWT, requests, MSAL and the Agents SDK's
ConnectorClient; a tiny HTTP server plays the bot. No test asserts a timing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import aiohttp
import jwt
import msal
import pytest
import requests
from microsoft_agents.activity import Activity, Attachment
from microsoft_agents.hosting.core.connector.client import ConnectorClient

from simulators._http import BackgroundServer, Request, Response
from simulators.teams import (
    ADAPTIVE_CARD,
    BOTFRAMEWORK_SCOPE,
    CHANNEL_ID,
    DELIVERY_TIMEOUT,
    KEY_ID,
    USERS,
    TeamsSimulator,
    card_actions,
    text_of,
)

ALICE_CHAT = USERS["alice"].personal_conversation
CARD = {
    "type": "AdaptiveCard", "version": "1.4",
    "body": [{"type": "TextBlock", "text": "Deploy payments to prod?"},
             {"type": "Input.Text", "id": "reason", "value": "hotfix"},
             {"type": "ActionSet", "actions": [
                 {"type": "Action.Submit", "title": "Details", "data": "show details"}]}],
    "actions": [
        {"type": "Action.Submit", "title": "Yes",
         "data": {"action": "confirm", "op": "deploy", "env": "prod"}},
        {"type": "Action.Submit", "title": "No", "associatedInputs": "none",
         "data": {"action": "cancel"}},
        {"type": "Action.Submit", "title": "Back",
         "data": {"msteams": {"type": "messageBack", "text": "cancel deploy",
                              "displayText": "No", "value": {"op": "deploy"}}}},
        {"type": "Action.Execute", "title": "Yes (universal)", "verb": "confirm",
         "id": "exec-1", "data": {"op": "deploy"}},
    ],
}


class FakeBot:
    """The bot's messaging endpoint: records what it gets, answers with ``answer``."""

    def __init__(self) -> None:
        self.received: list[tuple[Request, dict[str, Any]]] = []
        self.answer: Callable[[dict[str, Any]], Response] = lambda activity: Response(201)
        self._lock = threading.Lock()
        self.server = BackgroundServer(self._handle, name="fake-bot")

    def _handle(self, request: Request) -> Response:
        activity = json.loads(request.body)
        with self._lock:
            self.received.append((request, activity))
        return self.answer(activity)

    @property
    def last(self) -> tuple[Request, dict[str, Any]]:
        with self._lock:
            return self.received[-1]


@pytest.fixture(scope="module")
def bot() -> Iterator[FakeBot]:
    fake = FakeBot()
    fake.server.start()
    yield fake
    fake.server.stop()


@pytest.fixture(scope="module")
def sim(bot: FakeBot) -> Iterator[TeamsSimulator]:
    # These tests post to one chat faster than Teams allows; the limits have their own tests.
    with TeamsSimulator(bot_endpoint=bot.server.url + "api/messages",
                        thread_limits={}) as simulator:
        yield simulator


@pytest.fixture(autouse=True)
def default_answer(bot: FakeBot) -> None:
    bot.answer = lambda activity: Response(201)


def access_token(sim: TeamsSimulator, tenant: str | None = None) -> str:
    response = requests.post(f"{sim.url}/{tenant or sim.tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": sim.app_id,
        "client_secret": sim.app_password, "scope": BOTFRAMEWORK_SCOPE}, timeout=5)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def run(coroutine_factory: Callable[[ConnectorClient], Any], sim: TeamsSimulator,
        token: str | None = None) -> Any:
    """Run ``coroutine_factory(client)`` with a ConnectorClient on the simulator's serviceUrl."""
    async def main() -> Any:
        client = ConnectorClient(sim.service_url, access_token(sim) if token is None else token)
        try:
            return await coroutine_factory(client)
        finally:
            await client.close()
    return asyncio.run(main())


def post_card(sim: TeamsSimulator, conversation: str = ALICE_CHAT,
              card: dict[str, Any] | None = None) -> str:
    activity = Activity(type="message", attachments=[
        Attachment(content_type=ADAPTIVE_CARD, content=card or CARD)])
    sent = run(lambda client: client.conversations.send_to_conversation(conversation, activity),
               sim)
    return str(sent.id)


# -- identity: inbound JWTs --------------------------------------------------------------


def test_the_channel_jwt_verifies_against_the_keys_in_the_metadata(sim: TeamsSimulator) -> None:
    metadata = requests.get(sim.env()["TEAMS_OPENID_METADATA_URL"], timeout=5).json()
    assert metadata["issuer"] == "https://api.botframework.com" == sim.env()["TEAMS_TOKEN_ISSUER"]
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    keys = requests.get(metadata["jwks_uri"], timeout=5).json()["keys"]
    assert [(key["kid"], key["endorsements"]) for key in keys] == [
        (KEY_ID, ["msteams", "emulator"])]

    token = sim.token()
    assert jwt.get_unverified_header(token)["kid"] == KEY_ID
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token)
    claims = jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=sim.app_id,
                        issuer=metadata["issuer"], options={"require": ["exp", "nbf"]})
    assert claims["serviceurl"] == sim.service_url
    assert claims["exp"] - claims["iat"] == 3600


@pytest.mark.parametrize(("make", "error"), [
    (lambda sim: sim.token(key="forged"), jwt.InvalidSignatureError),
    (lambda sim: sim.token(expires_in=-3600), jwt.ExpiredSignatureError),
    (lambda sim: sim.token(audience="someone-else"), jwt.InvalidAudienceError),
    (lambda sim: sim.token(issuer="https://evil.example"), jwt.InvalidIssuerError),
    (lambda sim: sim.token(not_before=time.time() + 3600), jwt.ImmatureSignatureError),
])
def test_bad_channel_tokens_fail_verification(sim: TeamsSimulator,
                                              make: Callable[[TeamsSimulator], str],
                                              error: type[Exception]) -> None:
    token = make(sim)
    signing_key = jwt.PyJWKClient(f"{sim.url}/openid/keys").get_signing_key_from_jwt(token)
    with pytest.raises(error):
        jwt.decode(token, signing_key.key, algorithms=["RS256"], audience=sim.app_id,
                   issuer=sim.issuer)


def test_a_token_under_an_unknown_kid_finds_no_key(sim: TeamsSimulator) -> None:
    with pytest.raises(jwt.PyJWKClientError):
        jwt.PyJWKClient(f"{sim.url}/openid/keys").get_signing_key_from_jwt(
            sim.token(kid="other"))


# -- identity: outbound tokens -------------------------------------------------------------


def test_the_token_endpoint_issues_tokens_for_both_authorities(sim: TeamsSimulator) -> None:
    for tenant in (sim.tenant_id, "botframework.com"):
        response = requests.post(f"{sim.url}/{tenant}/oauth2/v2.0/token", data={
            "grant_type": "client_credentials", "client_id": sim.app_id,
            "client_secret": sim.app_password, "scope": BOTFRAMEWORK_SCOPE}, timeout=5)
        body = response.json()
        assert response.status_code == 200
        assert (body["token_type"], body["expires_in"], body["ext_expires_in"]) == (
            "Bearer", 3599, 3599)
        assert body["access_token"] in sim.issued_tokens


@pytest.mark.parametrize(("tenant", "form", "status", "error", "code"), [
    (None, {"client_secret": "wrong"}, 401, "invalid_client", 7000215),
    (None, {"client_id": "00000000-0000-0000-0000-000000000000"}, 400,
     "unauthorized_client", 700016),
    (None, {"scope": "https://graph.microsoft.com/.default"}, 400, "invalid_scope", 70011),
    (None, {"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ("contoso.example", {}, 400, "invalid_request", 90002),
])
def test_the_token_endpoint_refuses_like_aad(sim: TeamsSimulator, tenant: str | None,
                                             form: dict[str, str], status: int, error: str,
                                             code: int) -> None:
    data = {"grant_type": "client_credentials", "client_id": sim.app_id,
            "client_secret": sim.app_password, "scope": BOTFRAMEWORK_SCOPE, **form}
    before = len(sim.issued_tokens)
    response = requests.post(f"{sim.url}/{tenant or sim.tenant_id}/oauth2/v2.0/token",
                             data=data, timeout=5)
    body = response.json()
    assert (response.status_code, body["error"], body["error_codes"]) == (status, error, [code])
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert len(sim.issued_tokens) == before


def test_the_tenant_metadata_and_instance_discovery_point_at_the_simulator(
        sim: TeamsSimulator) -> None:
    metadata = requests.get(
        f"{sim.url}/{sim.tenant_id}/v2.0/.well-known/openid-configuration", timeout=5).json()
    assert metadata["token_endpoint"] == f"{sim.url}/{sim.tenant_id}/oauth2/v2.0/token"
    assert metadata["issuer"] == f"https://login.microsoftonline.com/{sim.tenant_id}/v2.0"
    discovery = requests.get(f"{sim.url}/common/discovery/instance", params={
        "api-version": "1.0",
        "authorization_endpoint": f"https://127.0.0.1/{sim.tenant_id}/oauth2/v2.0/authorize"},
        timeout=5).json()
    assert discovery["tenant_discovery_endpoint"] == (
        f"{sim.url}/{sim.tenant_id}/v2.0/.well-known/openid-configuration")


def test_msal_gets_a_token_from_the_tls_simulator() -> None:
    with TeamsSimulator(tls=True) as sim:
        assert sim.url.startswith("https://") and sim.ca_file
        session = requests.Session()
        session.verify = sim.ca_file
        session.trust_env = False  # REQUESTS_CA_BUNDLE would override session.verify
        app = msal.ConfidentialClientApplication(
            sim.app_id, authority=f"{sim.url}/{sim.tenant_id}",
            client_credential=sim.app_password, http_client=session, instance_discovery=False)
        result = app.acquire_token_for_client(scopes=[BOTFRAMEWORK_SCOPE])
        assert result["access_token"] in sim.issued_tokens, result
        wrong = msal.ConfidentialClientApplication(
            sim.app_id, authority=f"{sim.url}/botframework.com", client_credential="nope",
            http_client=session, instance_discovery=False)
        assert wrong.acquire_token_for_client(scopes=[BOTFRAMEWORK_SCOPE])["error"] == (
            "invalid_client")
    with pytest.raises(ValueError, match="https"):  # why the simulator has a TLS mode
        msal.ConfidentialClientApplication(
            "app", authority=f"http://127.0.0.1:1/{sim.tenant_id}", client_credential="x",
            instance_discovery=False)


# -- the connector -----------------------------------------------------------------------


def test_the_sdk_connector_client_sends_replies_updates_and_reads_members(
        sim: TeamsSimulator) -> None:
    thread = f"{CHANNEL_ID};messageid=1700000000001"

    async def talk(client: ConnectorClient) -> dict[str, Any]:
        conversations = client.conversations
        sent = await conversations.send_to_conversation(
            ALICE_CHAT, Activity(type="message", text="hello Alice"))
        reply = await conversations.reply_to_activity(
            thread, "1700000000001", Activity(type="message", text="on it"))
        updated = await conversations.update_activity(
            ALICE_CHAT, sent.id, Activity(type="message", text="hello again"))
        member = await conversations.get_conversation_member(ALICE_CHAT, "29:1alicePairwiseId")
        by_aad = await conversations.get_conversation_member(
            CHANNEL_ID, USERS["carol"].aad_object_id)
        page = await conversations.get_conversation_paged_members(CHANNEL_ID, page_size=2)
        rest = await conversations.get_conversation_paged_members(
            CHANNEL_ID, page_size=2, continuation_token=page.continuation_token)
        return {"sent": sent.id, "reply": reply.id, "updated": updated.id, "member": member,
                "by_aad": by_aad, "pages": (len(page.members), len(rest.members),
                                            rest.continuation_token)}

    result = run(talk, sim)
    assert result["updated"] == result["sent"]
    assert (result["member"].name, result["member"].aad_object_id) == (
        "Alice", USERS["alice"].aad_object_id)
    assert result["by_aad"].id == USERS["carol"].id
    assert result["pages"] == (2, 1, None)
    mine = {a["id"]: a for a in sim.bot_activities()}
    assert mine[result["sent"]]["text"] == "hello again"
    assert mine[result["reply"]]["conversation"]["id"] == thread
    assert mine[result["reply"]]["replyToId"] == "1700000000001"
    kinds = [(e["kind"], e["id"]) for e in sim.bot_events()]
    assert ("send", result["sent"]) in kinds and ("update", result["sent"]) in kinds
    assert any(a["id"] == result["reply"] for a in sim.bot_activities("channel"))
    assert all(a["id"] != result["reply"] for a in sim.bot_activities("alice"))

    run(lambda client: client.conversations.delete_activity(thread, result["reply"]), sim)
    assert all(a["id"] != result["reply"] for a in sim.bot_activities())


def test_the_connector_wants_an_issued_unexpired_token() -> None:
    with TeamsSimulator() as sim:
        activity = Activity(type="message", text="hi")
        for token in ("", "bogus", sim.token()):  # "": the SDK then sends no header
            with pytest.raises(aiohttp.ClientResponseError) as refused:
                run(lambda c: c.conversations.send_to_conversation(ALICE_CHAT, activity), sim,
                    token=token)
            assert refused.value.status == 401
            assert json.loads(refused.value.message)["error"]["code"] == "Unauthorized"
        good = access_token(sim)
        run(lambda c: c.conversations.send_to_conversation(ALICE_CHAT, activity), sim, good)
        sim.expire_tokens()
        with pytest.raises(aiohttp.ClientResponseError, match="expired"):
            run(lambda c: c.conversations.send_to_conversation(ALICE_CHAT, activity), sim, good)
        assert [r.status for r in sim.request_log() if "/v3/" in r.target] == [
            401, 401, 401, 201, 401]
    with TeamsSimulator(require_outbound_auth=False) as open_sim:
        run(lambda c: c.conversations.send_to_conversation(ALICE_CHAT, activity), open_sim,
            token="")
        assert open_sim.bot_activities()[0]["text"] == "hi"


def test_connector_errors_have_the_connector_shape(sim: TeamsSimulator) -> None:
    headers = {"Authorization": f"Bearer {access_token(sim)}",
               "Content-Type": "application/json"}
    base = sim.service_url + "v3/conversations/"
    unknown = requests.post(base + "a%3A1nobody/activities", headers=headers,
                            json={"type": "message", "text": "x"}, timeout=5)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "ConversationNotFound"
    bad = requests.post(base + quote(ALICE_CHAT, safe="") + "/activities", headers=headers,
                        data=b"{not json", timeout=5)
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "BadArgument")
    untyped = requests.post(base + quote(ALICE_CHAT, safe="") + "/activities", headers=headers,
                            json={"text": "no type"}, timeout=5)
    assert untyped.status_code == 400
    missing = requests.put(base + quote(ALICE_CHAT, safe="") + "/activities/42", headers=headers,
                           json={"type": "message"}, timeout=5)
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "ActivityNotFound")
    stranger = requests.get(base + quote(ALICE_CHAT, safe="") + "/members/29%3A1bobPairwiseId",
                            headers=headers, timeout=5)
    assert stranger.status_code == 404


def test_percent_encoded_channel_thread_ids_work(sim: TeamsSimulator) -> None:
    thread = f"{CHANNEL_ID};messageid=1700000000042"
    encoded = quote(thread, safe="")
    assert encoded == "19%3Aopsbot-demo%40thread.tacv2%3Bmessageid%3D1700000000042"
    response = requests.post(
        f"{sim.service_url}v3/conversations/{encoded}/activities/1700000000042",
        headers={"Authorization": f"Bearer {access_token(sim)}"},
        json={"type": "message", "text": "encoded reply"}, timeout=5)
    assert response.status_code == 201
    stored = next(a for a in sim.bot_activities(CHANNEL_ID) if a["id"] == response.json()["id"])
    assert stored["conversation"]["id"] == thread
    assert stored["replyToId"] == "1700000000042"


def test_a_put_replaces_the_card(sim: TeamsSimulator) -> None:
    card_id = post_card(sim)
    assert "Deploy payments to prod?" in text_of(sim.bot_activities()[-1])
    done = {"type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": "Deploying payments (confirmed by Alice)"}]}
    run(lambda client: client.conversations.update_activity(ALICE_CHAT, card_id, Activity(
        type="message", id=card_id,
        attachments=[Attachment(content_type=ADAPTIVE_CARD, content=done)])), sim)
    current = next(a for a in sim.bot_activities("alice") if a["id"] == card_id)
    assert text_of(current) == "Deploying payments (confirmed by Alice)"
    assert card_actions(current) == []
    with pytest.raises(LookupError):
        sim.submit("alice", card_id, title="Yes")


def test_a_proactive_chat_and_a_new_channel_thread(sim: TeamsSimulator) -> None:
    created = requests.post(
        f"{sim.service_url}v3/conversations",
        headers={"Authorization": f"Bearer {access_token(sim)}"},
        json={"isGroup": False, "bot": {"id": sim.bot_id}, "tenantId": sim.tenant_id,
              "members": [{"id": USERS["bob"].aad_object_id}],
              "activity": {"type": "message", "text": "build failed"}}, timeout=5).json()
    assert created["id"] == USERS["bob"].personal_conversation
    assert sim.wait_for_bot_activity(conversation="bob", contains="build failed")
    thread = requests.post(
        f"{sim.service_url}v3/conversations",
        headers={"Authorization": f"Bearer {access_token(sim)}"},
        json={"isGroup": True, "channelData": {"channel": {"id": CHANNEL_ID}},
              "activity": {"type": "message", "text": "incident opened"}}, timeout=5).json()
    assert thread["id"] == f"{CHANNEL_ID};messageid={thread['activityId']}"


# -- the channel: posting to the bot ------------------------------------------------------


def test_send_text_posts_a_signed_personal_message(sim: TeamsSimulator, bot: FakeBot) -> None:
    status, body = sim.send_text("alice", "deploy payments to prod")
    assert (status, body) == (201, "")
    request, activity = bot.last
    assert request.header("Content-Type").startswith("application/json")
    token = request.header("Authorization").removeprefix("Bearer ")
    claims = jwt.decode(token, jwt.PyJWKClient(f"{sim.url}/openid/keys")
                        .get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                        audience=sim.app_id, issuer=sim.issuer)
    assert claims["serviceurl"] == activity["serviceUrl"] == sim.service_url
    assert activity["type"] == "message" and activity["channelId"] == "msteams"
    assert activity["text"] == "deploy payments to prod"
    assert activity["from"] == USERS["alice"].account()
    assert activity["conversation"] == {"id": ALICE_CHAT, "conversationType": "personal",
                                        "tenantId": sim.tenant_id}
    assert activity["recipient"] == {"id": sim.bot_id, "name": "opsbot"}
    assert activity["channelData"]["tenant"] == {"id": sim.tenant_id}
    parsed = Activity.model_validate(activity)  # the SDK reads it
    assert parsed.from_property.aad_object_id == USERS["alice"].aad_object_id


def test_a_channel_message_mentions_the_bot_in_its_own_thread(sim: TeamsSimulator,
                                                             bot: FakeBot) -> None:
    sim.send_text("bob", "restart web-1", conversation="channel")
    _, activity = bot.last
    assert activity["text"] == "<at>opsbot</at> restart web-1"
    assert activity["conversation"]["id"] == f"{CHANNEL_ID};messageid={activity['id']}"
    assert activity["conversation"]["conversationType"] == "channel"
    assert activity["conversation"]["isGroup"] is True
    assert activity["channelData"]["channel"]["id"] == CHANNEL_ID
    mention = activity["entities"][0]
    assert mention["mentioned"]["id"] == sim.bot_id
    assert Activity.model_validate(activity).remove_recipient_mention() == "restart web-1"

    sim.send_text("bob", "and web-2", conversation="channel", thread=activity["id"],
                  mention=False)
    _, follow_up = bot.last
    assert follow_up["conversation"]["id"] == activity["conversation"]["id"]
    assert follow_up["text"] == "and web-2"


def test_tokens_can_be_left_out_or_replaced(sim: TeamsSimulator, bot: FakeBot) -> None:
    bot.answer = lambda activity: Response.json({"error": "denied"}, 401)
    assert sim.send_text("alice", "hi", token=None) == (401, {"error": "denied"})
    assert bot.last[0].header("Authorization") is None
    sim.send_text("alice", "hi", token="raw.token.value")
    assert bot.last[0].header("Authorization") == "Bearer raw.token.value"


def test_resend_posts_the_same_activity_again(sim: TeamsSimulator, bot: FakeBot) -> None:
    sim.send_text("carol", "status of payments")
    first = sim.user_activities()[-1]["activity"]
    assert sim.resend(first)[0] == 201
    assert bot.last[1] == first


def test_submit_posts_what_teams_posts_for_each_kind_of_button(sim: TeamsSimulator,
                                                               bot: FakeBot) -> None:
    card_id = post_card(sim)
    sim.submit("alice", card_id, title="Yes")
    _, clicked = bot.last
    assert clicked["type"] == "message" and "text" not in clicked
    assert clicked["value"] == {"action": "confirm", "op": "deploy", "env": "prod",
                                "reason": "hotfix"}
    assert clicked["replyToId"] == card_id
    assert clicked["from"] == USERS["alice"].account()
    assert clicked["conversation"]["id"] == ALICE_CHAT

    sim.submit("alice", card_id, title="No")
    assert bot.last[1]["value"] == {"action": "cancel"}  # associatedInputs: none
    sim.submit("alice", card_id, title="Yes", inputs={"reason": "rollback"})
    assert bot.last[1]["value"]["reason"] == "rollback"
    sim.submit("alice", card_id, title="Details")
    assert (bot.last[1]["text"], "value" in bot.last[1]) == ("show details", False)
    sim.submit("alice", card_id, title="Back")
    assert (bot.last[1]["text"], bot.last[1]["value"]) == ("cancel deploy", {"op": "deploy"})
    sim.submit("alice", card_id, data={"action": "confirm", "op": "custom"})
    assert bot.last[1]["value"] == {"action": "confirm", "op": "custom"}

    with pytest.raises(LookupError, match="Maybe"):
        sim.submit("alice", card_id, title="Maybe")
    with pytest.raises(LookupError):
        sim.submit("alice", "999", title="Yes")
    with pytest.raises(LookupError):
        sim.submit("mallory", card_id, title="Yes")


def test_submit_clicks_hero_card_buttons_in_a_channel_thread(sim: TeamsSimulator,
                                                             bot: FakeBot) -> None:
    thread = f"{CHANNEL_ID};messageid=1700000000077"
    hero = Activity(type="message", attachments=[Attachment(
        content_type="application/vnd.microsoft.card.hero",
        content={"title": "Restart web-1?", "buttons": [
            {"type": "messageBack", "title": "Yes", "text": "confirm restart",
             "displayText": "Yes", "value": {"action": "confirm", "op": "restart"}},
            {"type": "imBack", "title": "No", "value": "cancel"}]})])
    sent = run(lambda c: c.conversations.reply_to_activity(thread, "1700000000077", hero), sim)
    assert text_of(sim.bot_activities("channel")[-1]) == "Restart web-1?"
    assert [a["title"] for a in sim.card_actions(sim.bot_activities("channel")[-1])] == [
        "Yes", "No"]
    sim.submit("carol", sent.id, title="Yes")
    _, clicked = bot.last
    assert (clicked["text"], clicked["value"]) == ("confirm restart",
                                                   {"action": "confirm", "op": "restart"})
    assert clicked["conversation"]["id"] == thread
    sim.submit("carol", sent.id, title="No")
    assert bot.last[1]["text"] == "cancel"


def test_execute_posts_an_invoke_and_a_card_answer_replaces_the_card(sim: TeamsSimulator,
                                                                     bot: FakeBot) -> None:
    card_id = post_card(sim)
    new_card = {"type": "AdaptiveCard", "version": "1.4",
                "body": [{"type": "TextBlock", "text": "Confirmed by Alice"}]}
    bot.answer = lambda activity: Response.json(
        {"statusCode": 200, "type": ADAPTIVE_CARD, "value": new_card})
    status, body = sim.execute("alice", card_id, verb="confirm")
    assert (status, body["value"]) == (200, new_card)
    _, invoke = bot.last
    assert (invoke["type"], invoke["name"], invoke["replyToId"]) == (
        "invoke", "adaptiveCard/action", card_id)
    assert invoke["value"] == {"action": {"type": "Action.Execute", "verb": "confirm",
                                          "id": "exec-1",
                                          "data": {"op": "deploy", "reason": "hotfix"}},
                               "trigger": "manual"}
    current = next(a for a in sim.bot_activities() if a["id"] == card_id)
    assert text_of(current) == "Confirmed by Alice"

    card_id = post_card(sim)
    bot.answer = lambda activity: Response.json(None, 500)
    assert sim.execute("alice", card_id, title="Yes (universal)")[0] == 500
    assert "Deploy payments" in text_of(next(a for a in sim.bot_activities()
                                             if a["id"] == card_id))


def test_wait_for_bot_activity(sim: TeamsSimulator) -> None:
    count = len(sim.bot_activities("alice"))
    timer = threading.Timer(0.2, post_card, args=(sim,))
    timer.start()
    found = sim.wait_for_bot_activity(conversation="alice", contains="Deploy payments",
                                      after_count=count, timeout=10)
    timer.join()
    assert found["attachments"][0]["contentType"] == ADAPTIVE_CARD
    with pytest.raises(TimeoutError, match="never said"):
        sim.wait_for_bot_activity(contains="never said", timeout=0.1)


def test_text_of_and_card_actions() -> None:
    activity = {"text": "Here:", "attachments": [{"contentType": ADAPTIVE_CARD,
                                                  "content": CARD}]}
    assert text_of(activity) == "Here:\nDeploy payments to prod?"
    assert [a["title"] for a in card_actions(activity)] == [
        "Details", "Yes", "No", "Back", "Yes (universal)"]


# -- the control API and the face -----------------------------------------------------------


def test_the_http_control_api(sim: TeamsSimulator, bot: FakeBot) -> None:
    control = f"{sim.url}/_sim"
    endpoint = requests.post(f"{control}/bot-endpoint",
                             json={"url": bot.server.url + "api/messages"}, timeout=5)
    assert endpoint.status_code == 200
    sent = requests.post(f"{control}/users/bob/send",
                         json={"text": "hello", "conversation": "channel"}, timeout=10).json()
    assert sent["status"] == 201
    assert sent["activity"]["text"] == "<at>opsbot</at> hello"
    card_id = post_card(sim, USERS["bob"].personal_conversation)
    listed = requests.get(f"{control}/activities", params={"conversation": "bob"},
                          timeout=5).json()["activities"]
    assert card_id in [a["id"] for a in listed]
    clicked = requests.post(f"{control}/users/bob/submit",
                            json={"activity_id": card_id, "title": "Yes"}, timeout=10).json()
    assert clicked["activity"]["value"]["action"] == "confirm"
    missing = requests.post(f"{control}/users/bob/submit",
                            json={"activity_id": card_id, "title": "Maybe"}, timeout=10)
    assert missing.status_code == 404


def test_faults_use_the_connector_shape(sim: TeamsSimulator) -> None:
    sim.fail_next(429, path="/teams-sim/")
    response = requests.post(sim.service_url + "v3/conversations/x/activities", json={},
                             timeout=5)
    assert (response.status_code, response.headers["Retry-After"]) == (429, "1")
    assert response.json()["error"]["code"] == "TooManyRequests"


# -- Azure Bot Service's time limits --------------------------------------------------------


def _post_text(sim: TeamsSimulator, conversation: str, text: str) -> int:
    """POST a text activity to the Connector API; the HTTP status (and Retry-After on 429)."""
    response = requests.post(f"{sim.service_url}v3/conversations/{quote(conversation)}/activities",
                             json={"type": "message", "text": text},
                             headers={"Authorization": f"Bearer {access_token(sim)}"}, timeout=5)
    return response.status_code


def test_the_defaults_are_azure_bot_services_limits() -> None:
    simulator = TeamsSimulator()
    assert simulator.bot_timeout == DELIVERY_TIMEOUT == 15.0
    assert simulator._state.thread_limits["send"] == ((1, 7), (2, 8), (30, 60), (3600, 1800))
    with pytest.raises(ValueError, match="unknown scenario"):
        simulator.set_thread_limits({"sending": [(1, 1)]})
    with pytest.raises(ValueError, match="at least one operation"):
        simulator.set_thread_limits({"send": [(1, 0)]})


@pytest.mark.timeout(60)
def test_a_late_bot_is_a_504_and_can_still_answer_through_the_connector(bot: FakeBot) -> None:
    with TeamsSimulator(bot_endpoint=bot.server.url + "api/messages", bot_timeout=1.0,
                        thread_limits={}) as late:
        def slow(activity: dict[str, Any]) -> Response:
            time.sleep(3.0)
            return Response(201)

        bot.answer = slow
        status, body = late.send_text("alice", "what's the status of OPS-101?")
        assert status == 504
        assert body["error"]["code"] == "GatewayTimeout"
        record = late.user_activities()[-1]
        assert record["timed_out"] and record["status"] == 504 and record["bot_status"] is None
        # The long operation is answered through the Connector API, with the bot's token.
        asked = record["activity"]
        reply = Activity(type="message", text="OPS-101 is In Progress")
        sent = run(lambda client: client.conversations.reply_to_activity(
            asked["conversation"]["id"], asked["id"], reply), late)
        assert late.bot_activities("alice")[-1]["id"] == sent.id

        bot.answer = lambda activity: Response(201)
        assert late.send_text("alice", "thanks") == (201, "")
        record = late.user_activities()[-1]
        assert not record["timed_out"] and record["status"] == record["bot_status"] == 201


@pytest.mark.timeout(60)
def test_the_connector_throttles_a_thread_with_retry_after() -> None:
    with TeamsSimulator(thread_limits={"send": [(5.0, 2)], "members": [(60.0, 1)]}) as limited:
        assert [_post_text(limited, ALICE_CHAT, f"part {n}") for n in range(2)] == [201, 201]
        refused = requests.post(f"{limited.service_url}v3/conversations/{ALICE_CHAT}/activities",
                                json={"type": "message", "text": "part 2"},
                                headers={"Authorization": f"Bearer {access_token(limited)}"},
                                timeout=5)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "TooManyRequests"
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 5
        # Refused means nothing was posted; another conversation has its own limit.
        assert [text_of(a) for a in limited.bot_activities("alice")] == ["part 0", "part 1"]
        assert _post_text(limited, USERS["bob"].personal_conversation, "hi bob") == 201
        # A channel's threads are one conversation.
        assert [_post_text(limited, f"{CHANNEL_ID};messageid=1{n}", "x") for n in range(3)] \
            == [201, 201, 429]
        # Member reads have their own limits.
        members = f"{limited.service_url}v3/conversations/{ALICE_CHAT}/members"
        auth = {"Authorization": f"Bearer {access_token(limited)}"}
        assert [requests.get(members, headers=auth, timeout=5).status_code
                for _ in range(2)] == [200, 429]
        time.sleep(wait)
        assert _post_text(limited, ALICE_CHAT, "part 2") == 201
        assert [text_of(a) for a in limited.bot_activities("alice")][-1] == "part 2"


def test_throttle_next_refuses_with_the_given_retry_after() -> None:
    with TeamsSimulator(thread_limits={}) as limited:
        limited.throttle_next(2, retry_after=7, path="/activities")
        auth = {"Authorization": f"Bearer {access_token(limited)}"}
        url = f"{limited.service_url}v3/conversations/{ALICE_CHAT}/activities"
        answers = [requests.post(url, json={"type": "message", "text": "hi"}, headers=auth,
                                 timeout=5) for _ in range(3)]
        assert [a.status_code for a in answers] == [429, 429, 201]
        assert [a.headers.get("Retry-After") for a in answers[:2]] == ["7", "7"]
        assert len(limited.bot_activities("alice")) == 1
        assert [r.status for r in limited.request_log() if "/activities" in r.target] \
            == [429, 429, 201]


def test_describe_and_env(sim: TeamsSimulator) -> None:
    env = sim.env()
    assert env == {"TEAMS_APP_ID": sim.app_id, "TEAMS_APP_PASSWORD": sim.app_password,
                   "TEAMS_TENANT_ID": sim.tenant_id,
                   "TEAMS_OPENID_METADATA_URL":
                       f"{sim.url}/openid/.well-known/openidconfiguration",
                   "TEAMS_TOKEN_ISSUER": "https://api.botframework.com",
                   "TEAMS_AUTHORITY_URL": sim.url}
    assert sim.url in sim.describe() and not sim.url.endswith("/")
    assert sim.service_url == sim.url + "/teams-sim/"
