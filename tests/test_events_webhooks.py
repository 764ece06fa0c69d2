"""Who may post events: the token and signature checks of ``/webhooks/events/<source>``.

The end-to-end tests post through a running server (tests/test_events_e2e.py); these
check every way in and out of :func:`connectors.events.authorised` on its own, the
endpoint being off without its variable among them.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest

from actions.events.sources import github_signature
from connectors.events import authorised

BODY = b'{"version": "4"}'


def request(headers: dict[str, str] | None = None, args: dict[str, str] | None = None) -> Any:
    class Args(dict):  # type: ignore[type-arg]
        def get(self, key: str, default: Any = None) -> Any:
            return super().get(key, default)

    return SimpleNamespace(headers=headers or {}, args=Args(args or {}))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_EVENTS_TOKEN", "the-events-token")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "the-github-secret")


@pytest.mark.parametrize("source", ["alertmanager", "grafana", "jenkins"])
def test_the_token_as_bearer_or_basic_password(source: str) -> None:
    assert authorised(source, request({"Authorization": "Bearer the-events-token"}), BODY) is None
    assert authorised(source, request({"Authorization": basic("am", "the-events-token")}),
                      BODY) is None


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer the-events-tokeN", "Bearer the-events-token2",
    basic("the-events-token", "wrong"), "Basic !!!notbase64", "Token the-events-token",
])
def test_a_wrong_or_missing_token_is_401(authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    status, why = authorised("alertmanager", request(headers), BODY) or (0, "")
    assert status == 401 and "token" in why


def test_jenkins_may_put_the_token_in_the_url_and_only_jenkins() -> None:
    assert authorised("jenkins", request(args={"token": "the-events-token"}), BODY) is None
    assert authorised("jenkins", request(args={"token": "nope"}), BODY)[0] == 401  # type: ignore[index]
    assert authorised("grafana", request(args={"token": "the-events-token"}), BODY)[0] == 401  # type: ignore[index]


def test_github_checks_the_signature_of_the_exact_body() -> None:
    good = github_signature("the-github-secret", BODY)
    assert authorised("github", request({"X-Hub-Signature-256": good}), BODY) is None
    for header in ({}, {"X-Hub-Signature-256": good.upper()},
                   {"X-Hub-Signature-256": good.replace("sha256=", "sha1=")},
                   {"X-Hub-Signature-256": github_signature("another", BODY)},
                   {"Authorization": "Bearer the-events-token"}):
        assert authorised("github", request(header), BODY)[0] == 401  # type: ignore[index]
    # One byte changed after signing: refused.
    assert authorised("github", request({"X-Hub-Signature-256": good}), BODY + b" ")[0] == 401  # type: ignore[index]


def test_a_source_without_its_variable_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSBOT_EVENTS_TOKEN")
    status, why = authorised("alertmanager", request({"Authorization": "Bearer x"}), BODY) \
        or (0, "")
    assert status == 404 and "OPSBOT_EVENTS_TOKEN is not set" in why
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "")
    assert authorised("github", request(), BODY)[0] == 404  # type: ignore[index]


def test_a_short_events_token_leaves_the_endpoint_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for weak in ("short", "   ", "fifteen-chars.."):
        monkeypatch.setenv("OPSBOT_EVENTS_TOKEN", weak)
        status, why = authorised("alertmanager", request(
            {"Authorization": f"Bearer {weak}"}), BODY) or (0, "")
        assert status == 404, weak
    assert "shorter than 16" in why or "not set" in why


def test_the_token_is_checked_before_the_body_is_read() -> None:
    assert authorised("alertmanager", request({"Authorization": "Bearer nope"}), None)[0] == 401  # type: ignore[index]
    assert authorised("grafana", request({"Authorization": "Bearer the-events-token"}),
                      None) is None
    # GitHub's signature covers the body: with none read yet it is not decided.
    assert authorised("github", request({}), None) is None
    assert authorised("github", request({}), BODY)[0] == 401  # type: ignore[index]


def test_jenkins_url_token_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_EVENTS_JENKINS_TOKEN", "the-jenkins-url-token")
    assert authorised("jenkins", request(args={"token": "the-jenkins-url-token"}), BODY) is None
    # The events token no longer works in a URL, still in a header; the URL one posts no alert.
    assert authorised("jenkins", request(args={"token": "the-events-token"}), BODY)[0] == 401  # type: ignore[index]
    assert authorised("jenkins", request({"Authorization": "Bearer the-events-token"}),
                      BODY) is None
    assert authorised("alertmanager", request({"Authorization": "Bearer the-jenkins-url-token"}),
                      BODY)[0] == 401  # type: ignore[index]
