"""opsbot in a Teams channel, end to end.

The Teams simulator signs each activity with its own keys (published as OpenID
metadata) and hands out outbound tokens; opsbot's connector checks the JWT, answers
through the Agents SDK's ConnectorClient and pushes build results into the thread. The
policy is the project's policy.yml: alice (AAD ...a1) is a release manager, bob (...b2)
is not. One stack serves the module; each test uses its own service. The channel gives
opsbot Azure Bot Service's 15 seconds to acknowledge each activity (504 otherwise), and
a Jira that answers late must not make it late.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.jenkins import JenkinsSimulator
from simulators.jira import JiraSimulator
from simulators.teams import DELIVERY_TIMEOUT, TeamsSimulator, card_actions, text_of
from tests.conftest import chat_stack, free_port, wait_until


@dataclasses.dataclass
class Stage:
    teams: TeamsSimulator
    jenkins: JenkinsSimulator
    jira: JiraSimulator

    def ask(self, user: str, text: str, *, contains: str, conversation: str = "channel",
            thread: str | None = None) -> tuple[str, dict[str, Any]]:
        """Send; the conversation id it landed in and the bot's answer there."""
        status, body = self.teams.send_text(user, text, conversation=conversation, thread=thread)
        assert status in (200, 201), (status, body)
        sent = self.teams.user_activities()[-1]["activity"]
        cid = sent["conversation"]["id"]
        answer = self.teams.wait_for_bot_activity(conversation=cid, contains=contains, timeout=60)
        return cid, answer

    def click(
        self, user: str, card: dict[str, Any], title: str, *, contains: str
    ) -> dict[str, Any]:
        cid = card["conversation"]["id"]
        count = len(self.teams.bot_activities(cid))
        status, body = self.teams.submit(user, card["id"], title=title)
        assert status in (200, 201), (status, body)
        return self.teams.wait_for_bot_activity(conversation=cid, contains=contains,
                                                after_count=count, timeout=60)

    def builds(self, service: str) -> list[Any]:
        return self.jenkins.builds(f"deploy-{service}")


@pytest.fixture(scope="module")
def stage(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    port = free_port()
    teams = TeamsSimulator(bot_endpoint=f"http://127.0.0.1:{port}/webhooks/teams/api/messages")
    teams.start()
    jira = JiraSimulator()
    jira.start()
    try:
        with chat_stack(trained_model, tmp_path_factory.mktemp("state"), teams, port=port,
                        actions_env={**jira.env(), "JIRA_TIMEOUT": "90"}) as jenkins:
            yield Stage(teams, jenkins, jira)
    finally:
        jira.stop()


def _titles(activity: dict[str, Any]) -> list[str]:
    return [str(a.get("title")) for a in card_actions(activity)]


def test_channel_deploy_confirmed_by_the_requester_only(stage: Stage) -> None:
    before = len(stage.builds("payments"))
    thread, card = stage.ask("alice", "deploy payments 2.4.1 to prod",
                             contains="Deploy payments 2.4.1 to prod")
    assert _titles(card) == ["Confirm", "Cancel"]

    refused = stage.click("bob", card, "Confirm", contains="Only alice")
    assert "nothing ran" in text_of(refused)
    time.sleep(0.5)
    assert len(stage.builds("payments")) == before
    assert _titles(next(a for a in stage.teams.bot_activities(thread) if a["id"] == card["id"])) \
        == ["Confirm", "Cancel"]

    stage.click("alice", card, "Confirm", contains="started")
    wait_until(lambda: len(stage.builds("payments")) == before + 1, "no build started")
    # The card is replaced by one without buttons, saying what became of it.
    updated = wait_until(lambda: [a for a in stage.teams.bot_activities(thread)
                             if a["id"] == card["id"] and not card_actions(a)],
                    "the card kept its buttons")[0]
    assert "confirmed" in text_of(updated)
    with pytest.raises(LookupError):
        stage.teams.submit("alice", card["id"], title="Confirm")
    # The build result is pushed into the thread when the build ends.
    done = stage.teams.wait_for_bot_activity(
        conversation=thread, contains="is live on prod: SUCCESS", timeout=60)
    assert "payments 2.4.1" in text_of(done)
    assert len(stage.builds("payments")) == before + 1
    # Outbound calls carried a token the simulator issued.
    assert stage.teams.issued_tokens


def test_a_redelivered_click_runs_nothing_twice(stage: Stage) -> None:
    before = len(stage.builds("billing"))
    thread, card = stage.ask("alice", "deploy billing 3.1.5 to staging",
                             contains="Deploy billing 3.1.5 to staging")
    stage.click("alice", card, "Confirm", contains="started")
    wait_until(lambda: len(stage.builds("billing")) == before + 1, "no build started")
    click = stage.teams.user_activities()[-1]["activity"]
    count = len(stage.teams.bot_activities(thread))
    status, _ = stage.teams.resend(click)
    assert status in (200, 201)
    time.sleep(1.0)
    assert len(stage.builds("billing")) == before + 1
    assert not [a for a in stage.teams.bot_activities(thread)[count:] if "started" in text_of(a)]


@pytest.mark.parametrize(
    "bad", ["missing", "forged", "expired", "audience", "issuer", "serviceurl"])
def test_a_bad_token_gets_401_and_changes_nothing(stage: Stage, bad: str) -> None:
    teams = stage.teams
    token = {
        "missing": None,
        "forged": teams.token(key="forged"),
        "expired": teams.token(expires_in=-3600, not_before=time.time() - 7200),
        "audience": teams.token(audience="00000000-1111-2222-3333-444444444444"),
        "issuer": teams.token(issuer="https://evil.example.com"),
        "serviceurl": teams.token(service_url="https://evil.example.com/"),
    }[bad]
    before = len(teams.bot_activities("alice"))  # her personal chat; no build reports there
    builds = len(stage.builds("auth"))
    status, _ = teams.send_text("alice", "deploy auth 4.0.3 to dev", conversation="personal",
                                token=token)
    assert status == 401
    time.sleep(0.5)
    assert len(teams.bot_activities("alice")) == before
    assert len(stage.builds("auth")) == builds


def test_channel_messages_need_a_mention_and_personal_chats_do_not(stage: Stage) -> None:
    before = len(stage.teams.bot_activities())
    status, _ = stage.teams.send_text("bob", "deploy payments to prod, says the plan",
                                      conversation="channel", mention=False)
    assert status in (200, 201)
    time.sleep(1.0)
    assert len(stage.teams.bot_activities()) == before
    _, answer = stage.ask(
        "bob", "what's red in CI?", conversation="personal", contains="billing-ci")
    assert "search-ci" in text_of(answer)
    _, refused = stage.ask("bob", "deploy checkout 5.13.1 to prod", contains="release-manager")
    assert "Nothing ran" in text_of(refused)


def test_in_a_channel_choice_buttons_answer_only_the_person_asked(stage: Stage) -> None:
    thread, card = stage.ask("alice", "deploy to staging", contains="Which service?")
    assert "search" in _titles(card)
    refused = stage.click("bob", card, "search", contains="someone else's question")
    assert "nothing was done" in text_of(refused)
    # bob's click neither answered alice's question nor spent her buttons.
    updated = next(a for a in stage.teams.bot_activities(thread) if a["id"] == card["id"])
    assert card_actions(updated)
    stage.click("alice", card, "search", contains="Which version of search")


@pytest.mark.timeout(240)
@pytest.mark.parametrize(("channel_timeout", "jira_delay"), [(2.0, 6.0), (DELIVERY_TIMEOUT, 20.0)],
                         ids=["2s-channel-6s-jira", "15s-channel-20s-jira"])
def test_a_jira_slower_than_the_channel_still_answers_and_nothing_times_out(
        stage: Stage, channel_timeout: float, jira_delay: float) -> None:
    teams = stage.teams
    teams.bot_timeout = channel_timeout
    try:
        count = len(teams.bot_activities("alice"))
        stage.jira.delay_next(jira_delay, path="/rest/api/2/issue/OPS-101")
        status, body = teams.send_text("alice", "what's the status of OPS-101?",
                                       conversation="personal")
        delivery = teams.user_activities()[-1]
        # Acknowledged within the channel's time limit, not a 504 ...
        assert (status, delivery["timed_out"]) == (201, False), (status, body)
        # ... and the answer still reaches alice, through the Connector API.
        answer = teams.wait_for_bot_activity(conversation="alice", contains="OPS-101",
                                             after_count=count, timeout=jira_delay + 90)
        assert "checkout 5.13.0 fails health checks" in text_of(answer)
        assert answer.get("replyToId") == delivery["activity"]["id"]
    finally:
        teams.bot_timeout = DELIVERY_TIMEOUT
    assert not stage.jira._faults._waiting, "Jira was never asked for OPS-101, so never slow"
    late = [d["activity"].get("text") for d in teams.user_activities() if d["timed_out"]]
    assert not late, f"the channel gave up on opsbot for {late}"
