"""Who is speaking (actions/guard/identity.py), the run's tokens and what a run exposes."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from pathlib import Path

import pytest
import yaml

from actions.guard.identity import (
    EXPIRED,
    FORGED,
    IDENTITY_KEY,
    OTHER_CHAT,
    Identity,
    open_payload,
    secret_matches,
    sign_identity,
    sign_payload,
    verified_identity,
)
from opsbot._processes import REST_CHANNEL, Stack, StartupError
from opsbot._tokens import TokenError, forget_tokens, read_token, run_tokens
from opsbot.settings import Settings
from tests.conftest import ROOT


def test_a_signed_identity_verifies_only_for_its_own_message() -> None:
    sender = "telegram:-100:42"
    block = sign_identity("telegram", "42", sender, "tg-7", conversation="telegram:-100")
    assert verified_identity({IDENTITY_KEY: block}, sender, "tg-7") == \
        Identity("telegram", "42", "telegram:-100")
    assert verified_identity({IDENTITY_KEY: block}, "telegram:-100:43", "tg-7") is None
    assert verified_identity({IDENTITY_KEY: block}, sender, "tg-8") is None  # another message
    assert verified_identity({IDENTITY_KEY: block}, sender, None) is None
    for field, value in (("user_id", "43"), ("channel", "teams"), ("message_id", "tg-8"),
                         ("conversation", "telegram:-200"), ("sig", "A" * 24)):
        assert verified_identity({IDENTITY_KEY: {**block, field: value}}, sender, "tg-7") is None
    for metadata in (None, {}, {"channel": "telegram", "user_id": "42"}, {IDENTITY_KEY: "x"},
                     {IDENTITY_KEY: {**block, "sig": None}}):
        assert verified_identity(metadata, sender, "tg-7") is None


def test_another_secret_signs_differently(monkeypatch: pytest.MonkeyPatch) -> None:
    block = sign_identity("rest", "alice", "alice", "rest-1")
    monkeypatch.setenv("OPSBOT_ACTIONS_SECRET", "another-secret-another-secret")
    assert verified_identity({IDENTITY_KEY: block}, "alice", "rest-1") is None
    assert secret_matches("another-secret-another-secret")
    assert not secret_matches("another-secret-another-secreT") and not secret_matches("")
    monkeypatch.delenv("OPSBOT_ACTIONS_SECRET")
    assert not secret_matches("")  # no secret configured: nothing matches


NOW = 1_800_000_000.0  # epoch seconds: payloads are checked against a given time


def test_payloads_are_checked_and_their_signature_removed() -> None:
    chat = "telegram:-100"
    signed = sign_payload("affirm", {"operation_id": "op-1", "digest": "ab"}, scope=chat,
                          expires=NOW + 300)
    assert '"_sig":' in signed and '"_exp":' in signed
    assert open_payload(signed, scope=chat, now=NOW).text == \
        '/affirm{"operation_id":"op-1","digest":"ab"}'
    for plain in ("/greet", "deploy payments to prod", "hi"):
        assert open_payload(plain, scope=chat).text == plain  # words, or a bare intent
    forged = [
        '/affirm{"operation_id":"op-1","digest":"ab"}',                 # unsigned
        signed.replace("op-1", "op-2"),                                 # edited entity
        signed.replace("/affirm", "/deny"),                             # another intent
        signed.replace(f'"_exp":{int(NOW) + 300}', f'"_exp":{int(NOW) + 3000}'),  # longer life
        '/affirm{"operation_id":"op-1"',                                # not JSON
        '/affirm["op-1"]', "/affirm{}x", '/affirm{"_sig":7}',
    ]
    forged += [" " + forged[0], "\n\t" + forged[1]]  # Rasa strips before it parses
    for text in forged:
        checked = open_payload(text, scope=chat, now=NOW)
        assert checked.text is None and checked.forged and checked.refused, text
        assert checked.reply == FORGED, text


def test_a_payload_is_bound_to_its_chat_and_its_lifetime() -> None:
    signed = sign_payload("affirm", {"operation_id": "op-1"}, scope="telegram:-100",
                          expires=NOW + 300)
    elsewhere = open_payload(signed, scope="rest:alice", now=NOW)  # copied into REST
    assert elsewhere.text is None and elsewhere.reply == OTHER_CHAT
    assert open_payload(signed, scope="telegram:-200", now=NOW).reply == OTHER_CHAT
    late = open_payload(signed, scope="telegram:-100", now=NOW + 301)
    assert late.text is None and late.reply == EXPIRED
    # The chat tag only words the refusal: a payload re-tagged for this chat is forged.
    retagged = signed.replace(signed.split('"_in":"')[1][:8],
                              hashlib.sha256(b"rest:alice").hexdigest()[:8])
    assert open_payload(retagged, scope="rest:alice", now=NOW).reply == FORGED


def _settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(Settings.from_env(ROOT), state_dir=tmp_path / "state")


def test_generated_tokens_are_written_private_and_read_back(tmp_path: Path) -> None:
    state = tmp_path / "state"
    tokens = run_tokens(state, rest=True, env={})
    assert set(tokens) == {"OPSBOT_API_TOKEN", "OPSBOT_ACTIONS_SECRET", "OPSBOT_REST_TOKEN"}
    for variable, name in (("OPSBOT_API_TOKEN", "api-token"), ("OPSBOT_REST_TOKEN", "rest-token")):
        path = state / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_token(state, variable, env={}) == tokens[variable]
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert not (state / "actions-secret").exists()  # the secret only lives in the processes
    # A run without a REST channel removes the old token file; the environment wins,
    # and a token from the environment is not written down.
    again = run_tokens(state, rest=False, env={"OPSBOT_API_TOKEN": "x" * 20})
    assert "OPSBOT_REST_TOKEN" not in again and not (state / "rest-token").exists()
    assert again["OPSBOT_API_TOKEN"] == "x" * 20 != tokens["OPSBOT_API_TOKEN"]
    assert not (state / "api-token").exists()
    third = run_tokens(state, rest=True, env={})
    forget_tokens(state, third)  # a stopping run removes what it wrote
    assert not (state / "api-token").exists() and not (state / "rest-token").exists()
    with pytest.raises(TokenError, match="OPSBOT_REST_TOKEN is too short"):
        run_tokens(state, rest=True, env={"OPSBOT_REST_TOKEN": "short"})


def test_rest_is_off_in_opsbot_run_without_its_token(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSBOT_REST_TOKEN")
    stack = Stack(_settings(tmp_path))
    written = yaml.safe_load(stack.runtime_credentials(dict(os.environ)).read_text())
    assert REST_CHANNEL not in written and "rest" not in written
    monkeypatch.setenv("OPSBOT_REST_TOKEN", "r" * 24)
    stack = Stack(_settings(tmp_path))
    text = stack.runtime_credentials(dict(os.environ)).read_text()
    assert yaml.safe_load(text)[REST_CHANNEL] == {"token": "${OPSBOT_REST_TOKEN}"}
    assert "r" * 24 not in text  # placeholders only
    demo = Stack(_settings(tmp_path), rest=True)
    monkeypatch.delenv("OPSBOT_REST_TOKEN")
    assert REST_CHANNEL in yaml.safe_load(demo.runtime_credentials(dict(os.environ)).read_text())


def test_rasa_s_own_rest_channel_is_refused(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "credentials.yml").write_text("rest:\n")
    settings = dataclasses.replace(_settings(tmp_path), project=project)
    with pytest.raises(StartupError, match="believes any sender"):
        Stack(settings).runtime_credentials({})


def test_the_action_endpoint_sends_the_secret_by_reference(tmp_path: Path) -> None:
    stack = Stack(_settings(tmp_path))
    text = stack.runtime_endpoints().read_text()
    assert "X-Opsbot-Secret: ${OPSBOT_ACTIONS_SECRET}" in text
    assert stack.tokens["OPSBOT_ACTIONS_SECRET"] not in text
    from rasa.utils.endpoints import read_endpoint_config

    endpoint = read_endpoint_config(str(stack.runtime_endpoints()), "action_endpoint")
    assert endpoint is not None
    assert endpoint.headers == {"X-Opsbot-Secret": os.environ["OPSBOT_ACTIONS_SECRET"]}


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/conversations/alice/tracker/events", {"event": "user"}),
    ("PUT", "/conversations/alice/tracker/events", []),
    ("POST", "/conversations/alice//tracker/events", {}),
    ("POST", "/conversations/alice/tracker%2Fevents", {}),
    ("POST", "/conversations/alice/messages", {"text": "yes", "sender": "user"}),
    ("POST", "/conversations/alice/trigger_intent", {"name": "affirm"}),
    ("POST", "/conversations/alice/execute", {"name": "action_confirm"}),
    ("POST", "/conversations/alice/execute", None),
    ("POST", "/conversations/a/b/execute", {"name": "action_confirm"}),  # ids may hold '/'
    ("POST", "/conversations/a%2Fb/tracker/events", {}),
    ("POST", "/conversations/a/b/messages", {}),
    ("POST", "/model/train", {}), ("POST", "/model/test/intents", {}),
    ("PUT", "/model", {"model_file": "x.tar.gz"}), ("DELETE", "/model", None),
])
def test_api_routes_that_would_put_words_in_a_mouth_are_closed(method: str, path: str,
                                                                body: object) -> None:
    from opsbot._rasa_server import closed_because

    assert closed_because(method, path, body)


def test_announcements_must_go_to_the_chat() -> None:
    from opsbot._rasa_server import closed_because

    notify = {"name": "action_notify_operations"}
    assert closed_because("POST", "/conversations/alice/execute", notify, None)
    assert closed_because("POST", "/conversations/alice/execute", notify, "latest") is None


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/status", None), ("GET", "/conversations/alice/tracker", None),
    ("POST", "/conversations/alice/execute", {"name": "action_notify_operations"}),
    ("POST", "/model/parse", {"text": "hi"}), ("GET", "/domain", None),
])
def test_what_the_token_still_opens(method: str, path: str, body: object) -> None:
    from opsbot._rasa_server import closed_because

    assert closed_because(method, path, body) is None
