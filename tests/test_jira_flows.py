"""The Jira handlers and executors through the real jira library and the simulator (no Rasa)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions import _runtime, confirmations
from actions.backends import JIRA, Backends
from actions.backends.jira import Transition, TransitionField
from actions.guard import OperationStore, Policy
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from simulators.jira import JiraSimulator
from tests.conftest import handle

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sim() -> Iterator[JiraSimulator]:
    with JiraSimulator() as simulator:
        yield simulator


@pytest.fixture
def rt(sim: JiraSimulator, tmp_path: Path) -> Iterator[_runtime.Runtime]:
    env = sim.env()
    runtime = _runtime.Runtime(
        backends=Backends.of((JIRA, JIRA.from_env(env))),
        store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
        policy=Policy.load(ROOT / "policy.yml"), rasa_url="http://127.0.0.1:9")
    yield runtime
    runtime.store.close()


def _run(rt: _runtime.Runtime, intent: str, text: str, person: str = "alice",
         slots: dict[str, str] | None = None, **entities: str) -> Turn:
    turn = Turn(OpsRequest(intent, text, 0.99, entities), Who("rest", person, person, person), rt,
                slots=dict(slots or {}))
    handle(intent, turn)
    return turn


def _confirm(rt: _runtime.Runtime, turn: Turn) -> str:
    payload = next(b for r in turn.replies for b in r.get("buttons") or []
                   if b["title"] == "Confirm")
    operation = rt.store.open_for(turn.who.sender_id)[0]
    assert operation.id in payload["payload"]
    confirm = Turn(OpsRequest("affirm", payload["payload"], 1.0, {}), turn.who, rt)
    asyncio.run(confirmations.confirm(confirm, operation.id, operation.digest))
    return "\n".join(r["text"] for r in confirm.replies)


def test_status_of_an_issue(rt: _runtime.Runtime) -> None:
    text = _run(rt, "issue_status", "status of OPS-123", issue_key="OPS-123").replies[0]["text"]
    assert "OPS-123" in text and "stale prices" in text and "/browse/OPS-123" in text
    bad = _run(rt, "issue_status", "status of OPS123", issue_key="OPS123").replies[0]["text"]
    assert "not an issue key" in bad


def test_list_open_issues_in_a_project(rt: _runtime.Runtime) -> None:
    text = _run(rt, "list_issues", "open bugs in PAY", project="PAY").replies[0]["text"]
    assert "PAY-" in text and "OPS-" not in text


def test_create_issue_is_proposed_then_created_once(rt: _runtime.Runtime,
                                                    sim: JiraSimulator) -> None:
    before = len(sim.issues("OPS"))
    turn = _run(rt, "create_issue", "open a high priority bug: checkout returns 502 on prod",
                slots={"issue_summary": "checkout returns 502 on prod"}, priority="high")
    assert "priority High" in turn.replies[0]["text"]
    assert len(sim.issues("OPS")) == before
    assert "Opened OPS-" in _confirm(rt, turn)
    assert len(sim.issues("OPS")) == before + 1
    # The confirmation's reply was the announcement: nothing is left to announce later.
    assert rt.store.finished_unnotified("alice") == []


def test_comment_and_transition(rt: _runtime.Runtime) -> None:
    turn = _run(rt, "comment_issue", "comment on OPS-102: fixed in main", issue_key="OPS-102")
    assert "fixed in main" in turn.replies[0]["text"]
    assert "Commented on OPS-102" in _confirm(rt, turn)
    wrong = _run(rt, "update_issue", "move OPS-123 to reopened", issue_key="OPS-123")
    assert "Nothing changed" in wrong.replies[0]["text"]


def test_priority_change_is_proposed_then_made_once(rt: _runtime.Runtime,
                                                    sim: JiraSimulator) -> None:
    before = sim.issue("OPS-102").priority
    target = "Lowest" if before != "Lowest" else "Highest"
    turn = _run(rt, "update_issue", f"set OPS-102 priority to {target}", issue_key="OPS-102",
                priority=target.lower())
    assert f"from {before} to {target}" in turn.replies[0]["text"]
    assert sim.issue("OPS-102").priority == before  # nothing changes before the confirmation
    assert f"OPS-102 is now {target} priority" in _confirm(rt, turn)
    assert sim.issue("OPS-102").priority == target
    same = _run(rt, "update_issue", f"set OPS-102 priority to {target}", issue_key="OPS-102",
                priority=target.lower())
    assert "already" in same.replies[0]["text"] and not rt.store.open_for("rest:alice")


def test_closing_sends_the_resolution_jira_requires(rt: _runtime.Runtime,
                                                   sim: JiraSimulator) -> None:
    turn = _run(rt, "update_issue", "close PAY-77 as won't fix", issue_key="PAY-77")
    assert "to Done, resolution Won't Fix" in turn.replies[0]["text"]
    assert sim.issue("PAY-77").status == "In Progress"  # nothing before the confirmation
    assert "PAY-77 is now Done (Won't Fix)" in _confirm(rt, turn)
    assert (sim.issue("PAY-77").status, sim.issue("PAY-77").resolution) == ("Done", "Won't Fix")
    plain = _run(rt, "update_issue", "resolve OPS-103", issue_key="OPS-103")
    assert "to Done, resolution Done" in plain.replies[0]["text"]  # the standard one
    assert "OPS-103 is now Done (Done)" in _confirm(rt, plain)


def test_an_unknown_resolution_is_named_with_the_allowed_ones(rt: _runtime.Runtime,
                                                             sim: JiraSimulator) -> None:
    text = _run(rt, "update_issue", "close OPS-109 as solved",
                issue_key="OPS-109").replies[0]["text"]
    assert text.startswith('Jira has no resolution "solved" for moving OPS-109 to Done; it '
                           "allows Fixed, Won't Fix, Duplicate") and "Nothing changed" in text
    assert not rt.store.open_for("rest:alice") and sim.issue("OPS-109").status == "In Progress"


def test_a_required_resolution_without_a_standard_one_is_asked_for(
        rt: _runtime.Runtime, sim: JiraSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """A workflow whose Done screen offers neither Done nor Fixed (a fake at our seam)."""
    jira = rt.backends.connected(JIRA)
    only = TransitionField("resolution", "Resolution", True, ("Duplicate", "Won't Do"))

    async def options(key: str) -> list[Transition]:
        return [Transition("31", "Done", "Done", (only,))]

    monkeypatch.setattr(jira, "transition_options", options)
    text = _run(rt, "update_issue", "close OPS-109", issue_key="OPS-109").replies[0]["text"]
    assert text == ("Jira requires a resolution to move OPS-109 to Done: Duplicate, Won't Do. "
                    'Which one? Say, for example, "close OPS-109 as Duplicate". Nothing changed.')
    assert not rt.store.open_for("rest:alice")
    other = TransitionField("fixVersions", "Fix Version/s", True)
    monkeypatch.setattr(jira, "transition_options", lambda key: _async(
        [Transition("31", "Done", "Done", (only, other))]))
    text = _run(rt, "update_issue", "close OPS-109 as duplicate",
                issue_key="OPS-109").replies[0]["text"]
    assert text.startswith("Jira requires Fix Version/s (fixVersions) to move OPS-109 to Done")
    assert "/browse/OPS-109" in text and not rt.store.open_for("rest:alice")


async def _async(value: list[Transition]) -> list[Transition]:
    return value


def test_assigning_someone_jira_cannot_assign_is_explained(rt: _runtime.Runtime,
                                                          sim: JiraSimulator) -> None:
    text = _run(rt, "update_issue", "assign PAY-75 to carol", issue_key="PAY-75").replies[0]["text"]
    assert text == ("Carol Diaz (carol) can't be assigned issues in PAY; people who can: "
                    "Alice Chen (alice), Bob Martins (bob), Dave Okafor (dave), Erin Walsh "
                    "(erin), OpsBot (opsbot). Nothing changed.")
    assert not rt.store.open_for("rest:alice") and sim.issue("PAY-75").assignee != "carol"
    turn = _run(rt, "update_issue", "assign PAY-75 to dave", issue_key="PAY-75")
    assert "to Dave Okafor (dave)" in turn.replies[0]["text"]
    assert "PAY-75 is now assigned to Dave Okafor" in _confirm(rt, turn)


def test_a_change_jira_refuses_after_the_preview_says_to_change_the_ask(
        rt: _runtime.Runtime, sim: JiraSimulator) -> None:
    turn = _run(rt, "update_issue", "assign PAY-75 to bob", issue_key="PAY-75")
    assert "to Bob Martins (bob)" in turn.replies[0]["text"]
    project = sim._state.projects["PAY"]
    before = project.assignable
    project.assignable = before - {"bob"}  # an admin takes the permission away meanwhile
    try:
        text = _confirm(rt, turn)
    finally:
        project.assignable = before
    assert "can't be assigned issues in PAY" in text and sim.issue("PAY-75").assignee != "bob"
    assert "did not start" in text and "Ask again with what it needs." in text
    assert "is back" not in text
