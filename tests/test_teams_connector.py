"""connectors.teams without Rasa: settings, the JWT check against the simulator's keys, cards."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from connectors._common import ConnectorConfigError
from connectors.teams import AuthError, TeamsInput, TokenValidator, adaptive_card, sender_id_for
from simulators.teams import TeamsSimulator

_VARIABLES = ("TEAMS_APP_ID", "TEAMS_APP_PASSWORD", "TEAMS_TENANT_ID", "TEAMS_APP_TYPE",
              "TEAMS_ALLOWED_TENANTS",
              "TEAMS_OPENID_METADATA_URL", "TEAMS_TOKEN_ISSUER", "TEAMS_AUTHORITY_URL")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def sim() -> Iterator[TeamsSimulator]:
    with TeamsSimulator() as simulator:
        yield simulator


def _validator(sim: TeamsSimulator) -> TokenValidator:
    return TokenValidator(app_id=sim.app_id, metadata_url=sim.openid_metadata_url,
                          issuers=[sim.issuer])


def _check(sim: TeamsSimulator, authorization: str | None, channel: str = "msteams",
           service_url: str | None = None) -> dict:
    return asyncio.run(_validator(sim).validate(authorization, channel, service_url or sim.service_url))


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
        TeamsInput.from_credentials({"app_id": "a", "app_password": "p", "app_type": "SingleTenant"})
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
    card = adaptive_card("Deploy?", [{"title": "Confirm", "payload": '/affirm{"operation_id":"op-1"}'}])
    assert card["type"] == "AdaptiveCard" and card["body"][0]["text"] == "Deploy?"
    assert card["actions"] == [{"type": "Action.Submit", "title": "Confirm",
                                "data": {"payload": '/affirm{"operation_id":"op-1"}'}}]
    assert "actions" not in adaptive_card("Done", note="confirmed")
    assert sender_id_for("19:abc@thread.tacv2;messageid=17", "aad-1") == \
        "teams:19:abc@thread.tacv2;messageid=17~aad-1"
    odd = sender_id_for("a conversation/with spaces", "aad-1")
    assert odd.startswith("teams:h") and " " not in odd and "/" not in odd
