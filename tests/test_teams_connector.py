"""connectors.teams without Rasa: settings, the JWT check against the simulator's keys, cards."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from microsoft_agents.activity import Activity
from rasa.core.channels.channel import UserMessage

from actions.guard.identity import sign_payload
from connectors import _common as common
from connectors import _teams_send
from connectors._common import NOT_YOURS, ConnectorConfigError
from connectors.teams import (
    AuthError,
    DeliveryError,
    TeamsInput,
    TokenValidator,
    adaptive_card,
    sender_id_for,
)
from simulators.teams import CHANNEL_ID, USERS, TeamsSimulator, card_actions, text_of

_VARIABLES = ("TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_TENANT_ID", "TEAMS_APP_TYPE",
              "TEAMS_ALLOWED_TENANTS",
              "TEAMS_OPENID_METADATA_URL", "TEAMS_TOKEN_ISSUER", "TEAMS_AUTHORITY_URL")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("OPSBOT_DB_URL", raising=False)
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path))
    common._stores = None
    yield
    common._stores = None


@pytest.fixture(scope="module")
def sim() -> Iterator[TeamsSimulator]:
    with TeamsSimulator() as simulator:
        yield simulator


def _validator(sim: TeamsSimulator) -> TokenValidator:
    return TokenValidator(app_id=sim.app_id, metadata_url=sim.openid_metadata_url,
                          issuers=[sim.issuer])


def _check(sim: TeamsSimulator, authorization: str | None, channel: str = "msteams",
           service_url: str | None = None) -> dict:
    validator = _validator(sim)
    return asyncio.run(validator.validate(authorization, channel, service_url or sim.service_url))


def test_a_channel_token_is_accepted(sim: TeamsSimulator) -> None:
    claims = _check(sim, f"Bearer {sim.token()}")
    assert claims["aud"] == sim.app_id and claims["serviceurl"] == sim.service_url


@pytest.mark.parametrize(("authorization", "why"), [
    (None, "no Authorization"),
    ("Basic dXNlcjpwdw==", "not 'Bearer"),
    ("Bearer not.a.jwt", "not a JWT"),
])
def test_malformed_authorization_is_refused(sim: TeamsSimulator, authorization: str | None,
                                            why: str) -> None:
    with pytest.raises(AuthError, match=why):
        _check(sim, authorization)


@pytest.mark.parametrize("bad", ["forged", "expired", "audience", "issuer", "not_yet", "kid"])
def test_bad_tokens_are_refused(sim: TeamsSimulator, bad: str) -> None:
    now = time.time()
    token = {
        "forged": lambda: sim.token(key="forged"),
        "expired": lambda: sim.token(expires_in=-900, not_before=now - 3600),
        "audience": lambda: sim.token(audience="someone-else"),
        "issuer": lambda: sim.token(issuer="https://sts.example.com/"),
        "not_yet": lambda: sim.token(not_before=now + 3600),
        "kid": lambda: sim.token(kid="unknown-key"),
    }[bad]()
    with pytest.raises(AuthError):
        _check(sim, f"Bearer {token}")


def test_the_key_must_be_endorsed_for_the_channel_and_the_service_url_must_match(
        sim: TeamsSimulator) -> None:
    with pytest.raises(AuthError, match="endorsed"):
        _check(sim, f"Bearer {sim.token()}", channel="slack")
    with pytest.raises(AuthError, match="serviceurl"):
        _check(sim, f"Bearer {sim.token()}", service_url="https://evil.example.com/")


def test_settings_need_an_app_and_a_tenant_for_single_tenant() -> None:
    with pytest.raises(ConnectorConfigError, match="TEAMS_APP_ID is not set"):
        TeamsInput.from_credentials({})
    with pytest.raises(ConnectorConfigError, match="TEAMS_APP_PASSWORD is not set"):
        TeamsInput.from_credentials({"app_id": "a"})
    with pytest.raises(ConnectorConfigError, match="needs TEAMS_TENANT_ID"):
        TeamsInput.from_credentials(
            {"app_id": "a", "app_password": "p", "app_type": "SingleTenant"})
    with pytest.raises(ConnectorConfigError, match="SingleTenant or MultiTenant"):
        TeamsInput.from_credentials({"app_id": "a", "app_password": "p", "app_type": "Both"})


def test_single_and_multi_tenant_token_endpoints() -> None:
    single = TeamsInput.from_credentials({"app_id": "a", "app_password": "p", "tenant_id": "t-1"})
    assert single.single_tenant
    assert single.tokens.token_url == "https://login.microsoftonline.com/t-1/oauth2/v2.0/token"
    # Entra-issued tokens are not accepted: they would be checked against Bot Framework keys.
    assert single.validator.issuers == ("https://api.botframework.com",)
    assert single.allowed_tenants == {"t-1"}
    with pytest.raises(ConnectorConfigError, match="needs TEAMS_ALLOWED_TENANTS"):
        TeamsInput.from_credentials({"app_id": "a", "app_password": "s3cr3t-value"})
    multi = TeamsInput.from_credentials({"app_id": "a", "app_password": "s3cr3t-value",
                                         "allowed_tenants": "T-1, t-2"})
    assert multi.allowed_tenants == {"t-1", "t-2"}
    assert not multi.single_tenant
    assert multi.tokens.token_url.endswith("/botframework.com/oauth2/v2.0/token")
    assert "s3cr3t" not in repr(multi) and "s3cr3t" not in repr(multi.tokens)


def test_the_token_provider_reports_a_wrong_secret(sim: TeamsSimulator) -> None:
    connector = TeamsInput(app_id=sim.app_id, app_password="wrong", tenant_id=sim.tenant_id,
                           app_type="SingleTenant", authority_url=sim.url)
    with pytest.raises(ConnectorConfigError, match="refused app"):
        asyncio.run(connector.tokens.token())
    right = TeamsInput(app_id=sim.app_id, app_password=sim.app_password, tenant_id=sim.tenant_id,
                       app_type="SingleTenant", authority_url=sim.url)
    token = asyncio.run(right.tokens.token())
    assert token in sim.issued_tokens


def test_cards_and_conversation_ids() -> None:
    card = adaptive_card(
        "Deploy?", [{"title": "Confirm", "payload": '/affirm{"operation_id":"op-1"}'}])
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"] == "Deploy?"
    assert card["actions"] == [{"type": "Action.Submit", "title": "Confirm",
                                "data": {"payload": '/affirm{"operation_id":"op-1"}'}}]
    assert "actions" not in adaptive_card("Done", note="confirmed")
    assert sender_id_for("19:abc@thread.tacv2;messageid=17", "aad-1") == \
        "teams:19:abc@thread.tacv2;messageid=17~aad-1"
    odd = sender_id_for("a conversation/with spaces", "aad-1")
    assert odd.startswith("teams:h") and " " not in odd and "/" not in odd


# -- answering: in the background, through the Connector API, patiently ------------------


def _connector(sim: TeamsSimulator, **options: Any) -> TeamsInput:
    return TeamsInput(app_id=sim.app_id, app_password=sim.app_password, tenant_id=sim.tenant_id,
                      app_type="SingleTenant", authority_url=sim.url, **options)


def _alice(sim: TeamsSimulator) -> dict[str, Any]:
    return {"service_url": sim.service_url, "conversation_id": USERS["alice"].personal_conversation,
            "conversation_type": "personal", "tenant_id": sim.tenant_id, "channel_id": "msteams"}


def _texts(sim: TeamsSimulator) -> list[str]:
    return [text_of(a) for a in sim.bot_activities("alice")]


def _from_alice(sim: TeamsSimulator, text: str) -> Activity:
    account = sim._user("alice")
    cid, aid = sim._resolve(account, "personal", None)
    return Activity.model_validate(sim._activity(account, cid, aid, text=text))


@pytest.mark.timeout(120)
def test_every_part_of_a_reply_arrives_in_order_through_throttling() -> None:
    with TeamsSimulator(thread_limits={"send": [(1.0, 2)]}) as limited:
        connector = _connector(limited)
        parts = [f"part {n} of the answer" for n in range(6)]

        async def body() -> None:
            for part in parts:
                await connector.send(_alice(limited), part, [], {})

        asyncio.run(body())
        assert _texts(limited) == parts
        refused = [r for r in limited.request_log() if r.status == 429]
        assert refused, "the simulator did not throttle"
        # Retry-After was waited out: a throttled part was refused once, not hammered.
        assert len(refused) <= len(parts)


@pytest.mark.timeout(120)
def test_429s_5xx_and_a_failing_token_endpoint_are_waited_out(sim: TeamsSimulator) -> None:
    connector = _connector(sim)
    before = len(_texts(sim))
    sim.fail_next(503, path="/oauth2/v2.0/token")
    sim.throttle_next(2, retry_after=1, path="/activities")
    sim.fail_next(502, path="/activities")

    async def body() -> None:
        await connector.send(_alice(sim), "still here", [], {})

    asyncio.run(body())
    assert _texts(sim)[before:] == ["still here"]


@pytest.mark.timeout(60)
def test_a_message_that_cannot_be_delivered_is_named_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    with TeamsSimulator() as refusing:
        connector = _connector(refusing, send_budget=3.0)
        refusing.throttle_next(1000, retry_after=1, path="/activities")

        async def body() -> None:
            await connector.send(_alice(refusing), "the deploy finished", [], {})

        with caplog.at_level(logging.INFO, logger="connectors.teams"), \
                pytest.raises(DeliveryError, match="HTTP 429"):
            asyncio.run(body())
        assert not _texts(refusing)
        given_up = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
        assert any("gave up delivering" in m and "the deploy finished" in m
                   and USERS["alice"].personal_conversation in m for m in given_up), given_up


def test_a_refused_message_is_not_retried(sim: TeamsSimulator) -> None:
    connector = _connector(sim)
    reference = {**_alice(sim), "conversation_id": "a:1nobodyPersonalChat"}
    with pytest.raises(DeliveryError, match="HTTP 404"):
        asyncio.run(connector.send(reference, "hello?", [], {}))
    assert [r.status for r in sim.request_log() if "nobody" in r.target] == [404]


def test_send_budget_setting() -> None:
    settings = {"app_id": "a", "app_password": "p", "tenant_id": "t-1"}
    assert TeamsInput.from_credentials(settings).send_budget == 120.0
    assert TeamsInput.from_credentials({**settings, "send_budget": "7.5"}).send_budget == 7.5
    with pytest.raises(ConnectorConfigError, match="TEAMS_SEND_BUDGET must be a number"):
        TeamsInput.from_credentials({**settings, "send_budget": "soon"})
    with pytest.raises(ConnectorConfigError, match="above 0"):
        TeamsInput.from_credentials({**settings, "send_budget": "0"})


@pytest.mark.timeout(60)
def test_turns_run_in_the_background_one_person_at_a_time_in_order(sim: TeamsSimulator) -> None:
    connector = _connector(sim)
    before = len(_texts(sim))
    started: list[str] = []

    async def turn(message: UserMessage) -> None:
        started.append(message.text)
        if message.text == "slow one":
            await asyncio.sleep(1.0)  # a slow backend: the next turn waits its turn
        await message.output_channel.send_text_message(
            message.sender_id, f"answer to {message.text}")

    async def body() -> list[Any]:
        first = connector.start_turn(_from_alice(sim, "slow one"), turn)
        second = connector.start_turn(_from_alice(sim, "quick one"), turn)
        assert not first.done() and len(connector._tasks) == 2  # kept, not collected
        return await asyncio.gather(first, second)

    results = asyncio.run(body())
    assert started == ["slow one", "quick one"]
    assert _texts(sim)[before:] == ["answer to slow one", "answer to quick one"]
    assert results == ["answer to slow one", "answer to quick one"]
    assert not connector._tasks and not connector._lanes._locks


@pytest.mark.timeout(60)
def test_a_failing_turn_is_told_with_a_reference_and_logged(
        sim: TeamsSimulator, caplog: pytest.LogCaptureFixture) -> None:
    connector = _connector(sim)
    before = len(_texts(sim))
    activity = _from_alice(sim, "what's the status of OPS-101?")

    async def broken(message: UserMessage) -> None:
        raise RuntimeError("the tracker store is gone")

    async def body() -> str | None:
        return await connector.start_turn(activity, broken)

    with caplog.at_level(logging.ERROR, logger="connectors.teams"):
        answer = asyncio.run(body())
    told = _texts(sim)[before:]
    assert len(told) == 1 and "Something went wrong on my side" in told[0]
    reference = told[0].split("reference ", 1)[1].split(")", 1)[0]
    assert answer is not None and reference in answer
    logged = [r for r in caplog.records if reference in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert sim.bot_activities("alice")[-1]["replyToId"] == activity.id


@pytest.mark.timeout(60)
def test_a_card_never_shows_a_link_whose_words_hide_its_address() -> None:
    card = adaptive_card("High error rate. [Runbook](https://evil.example/x) and "
                         "https://grafana.local/d/1 [a] (b)")
    text = card["body"][0]["text"]
    assert "](https://evil.example" not in text and "[Runbook]" in text
    assert "https://grafana.local/d/1" in text  # a bare URL shows where it goes


def test_a_fast_click_by_someone_else_waits_until_the_card_has_its_owner(
        sim: TeamsSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    # The answer is asynchronous now: bob can click alice's choice buttons before the
    # connector has noted whose they are. His click must still be refused.
    claim = _teams_send.claim_keyboard

    def slow_claim(*args: Any) -> None:
        time.sleep(1.0)
        claim(*args)

    monkeypatch.setattr(_teams_send, "claim_keyboard", slow_claim)
    connector = _connector(sim)
    thread = f"{CHANNEL_ID};messageid={sim._state.next_id()}"
    reference = {**_alice(sim), "conversation_id": thread, "conversation_type": "channel"}
    payload = sign_payload("inform", {"service": "search"}, scope=f"teams:{thread}",
                           expires=time.time() + 3600)
    answered: list[str] = []

    async def turn(message: UserMessage) -> None:
        answered.append(message.text)

    async def body() -> None:
        posting = asyncio.create_task(connector.send(
            reference, "Which service?", [{"title": "search", "payload": payload}], {},
            owner=sender_id_for(thread, USERS["alice"].aad_object_id)))
        while not [a for a in sim.bot_activities(thread) if card_actions(a)]:  # noqa: ASYNC110 - polls the simulator, which runs in another thread
            await asyncio.sleep(0.02)
        card = next(a for a in sim.bot_activities(thread) if card_actions(a))
        bob = sim._user("bob")
        click = sim._activity(bob, thread, value={"payload": payload}, replyToId=card["id"],
                              textFormat="plain")
        await asyncio.gather(posting, connector.start_turn(Activity.model_validate(click), turn))

    asyncio.run(body())
    assert answered == []
    assert NOT_YOURS in text_of(sim.bot_activities(thread)[-1])
