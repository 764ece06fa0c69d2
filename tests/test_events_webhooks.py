"""Who may post events: the token and signature checks of ``/webhooks/events/<source>``,
and the credential each lets in, to whose namespace an event's keys then belong.

The end-to-end tests post through a running server (tests/test_events_e2e.py,
tests/test_events_jenkins_checked.py); these check every way in and out of
:func:`connectors.events.authorised` on its own, the endpoint being off without its
variable among them.
"""

from __future__ import annotations

import base64
from types import SimpleNamespace
from typing import Any

import pytest

from actions.events.sources import github_signature
from connectors.events import Credential, authorised

BODY = b'{"version": "4"}'


def request(headers: dict[str, str] | None = None, args: dict[str, str] | None = None) -> Any:
    class Args(dict):  # type: ignore[type-arg]
        def get(self, key: str, default: Any = None) -> Any:
            return super().get(key, default)

    return SimpleNamespace(headers=headers or {}, args=Args(args or {}))


def let_in(verdict: object) -> Credential:
    assert isinstance(verdict, Credential), verdict
    return verdict


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_EVENTS_TOKEN", "the-events-token")
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "the-github-secret")


@pytest.mark.parametrize("source", ["alertmanager", "grafana", "jenkins"])
def test_the_token_as_bearer_or_basic_password(source: str) -> None:
    bearer = let_in(authorised(source, request({"Authorization": "Bearer the-events-token"}),
                               BODY))
    assert let_in(authorised(source, request({"Authorization": basic("am", "the-events-token")}),
                             BODY)) == bearer  # the same token, in a header either way
    assert bearer.scope.startswith(f"{source}@header:")


@pytest.mark.parametrize("authorization", [
    None, "", "Bearer", "Bearer the-events-tokeN", "Bearer the-events-token2",
    basic("the-events-token", "wrong"), "Basic !!!notbase64", "Token the-events-token",
])
def test_a_wrong_or_missing_token_is_401(authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    status, why = authorised("alertmanager", request(headers), BODY) or (0, "")
    assert status == 401 and "token" in why


def test_jenkins_may_put_the_token_in_the_url_and_only_jenkins() -> None:
    let_in(authorised("jenkins", request(args={"token": "the-events-token"}), BODY))
    assert authorised("jenkins", request(args={"token": "nope"}), BODY)[0] == 401  # type: ignore[index]
    assert authorised("grafana", request(args={"token": "the-events-token"}), BODY)[0] == 401  # type: ignore[index]


def test_github_checks_the_signature_of_the_exact_body() -> None:
    good = github_signature("the-github-secret", BODY)
    let_in(authorised("github", request({"X-Hub-Signature-256": good}), BODY))
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
    monkeypatch.setenv("GITHUB_WEBHOOK_SECRET", "hunter2")
    status, why = authorised("github", request(), BODY) or (0, "")
    assert status == 404 and "GITHUB_WEBHOOK_SECRET is shorter than 16" in why


def test_the_token_is_checked_before_the_body_is_read() -> None:
    assert authorised("alertmanager", request({"Authorization": "Bearer nope"}), None)[0] == 401  # type: ignore[index]
    let_in(authorised("grafana", request({"Authorization": "Bearer the-events-token"}), None))
    # GitHub's signature covers the body: with none read yet it is not decided.
    assert authorised("github", request({}), None) is None
    assert authorised("github", request({}), BODY)[0] == 401  # type: ignore[index]


def test_jenkins_url_token_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_EVENTS_JENKINS_TOKEN", "the-jenkins-url-token")
    let_in(authorised("jenkins", request(args={"token": "the-jenkins-url-token"}), BODY))
    # The events token no longer works in a URL, still in a header; the URL one posts no alert.
    assert authorised("jenkins", request(args={"token": "the-events-token"}), BODY)[0] == 401  # type: ignore[index]
    let_in(authorised("jenkins", request({"Authorization": "Bearer the-events-token"}), BODY))
    assert authorised("alertmanager", request({"Authorization": "Bearer the-jenkins-url-token"}),
                      BODY)[0] == 401  # type: ignore[index]


def test_each_credential_is_a_key_namespace_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    def scope(source: str, headers: dict[str, str] | None = None,
              args: dict[str, str] | None = None) -> str:
        return let_in(authorised(source, request(headers, args), BODY)).scope

    header = {"Authorization": "Bearer the-events-token"}
    # The events token in a header, the same token in Jenkins' URL, the URL token of
    # its own, GitHub's secret: four namespaces, none of them another source's.
    in_url = scope("jenkins", args={"token": "the-events-token"})
    assert in_url != scope("jenkins", header) and in_url.startswith("jenkins@url:")
    assert scope("alertmanager", header) != scope("grafana", header)
    monkeypatch.setenv("OPSBOT_EVENTS_JENKINS_TOKEN", "the-jenkins-url-token")
    own = scope("jenkins", args={"token": "the-jenkins-url-token"})
    assert len({own, in_url, scope("jenkins", header)}) == 3
    signed = {"X-Hub-Signature-256": github_signature("the-github-secret", BODY)}
    assert scope("github", signed).startswith("github@signature:")
    # A rotated secret starts afresh: keys planted with the leaked one stop counting.
    monkeypatch.setenv("OPSBOT_EVENTS_TOKEN", "the-rotated-events-token")
    rotated = scope("alertmanager", {"Authorization": "Bearer the-rotated-events-token"})
    monkeypatch.setenv("OPSBOT_EVENTS_TOKEN", "the-events-token")
    assert rotated != scope("alertmanager", header)
    # The fingerprint tells secrets apart without showing them.
    assert "the-events-token" not in scope("alertmanager", header)
