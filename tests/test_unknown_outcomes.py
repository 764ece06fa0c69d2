"""Unknown outcomes are said as unknown, and the watcher finds out what really happened.

Through python-jenkins (and the jira library) against the simulators, with the real
confirmation flow and watcher; no Rasa. The simulators' ``respond_delay`` accepts a
request and answers after the client's timeout: the case where opsbot cannot tell.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actions import _runtime, confirmations
from actions.backends import JENKINS, JIRA, Backends
from actions.backends.jenkins import JenkinsBackend, JenkinsConfig
from actions.errors import OutcomeUnknown
from actions.flows.jenkins import completion_message
from actions.guard import EXECUTING, UNKNOWN, OperationStore, Policy, StoreError
from actions.registry import kind_of
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from simulators.jenkins import JenkinsSimulator
from simulators.jira import JiraSimulator
from tests.conftest import wait_until

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 3.0  # the client's timeout: long enough not to fire on a loaded machine
LATE = 6.0  # respond_delay answers well after it


@pytest.fixture(scope="module")
def sim() -> Iterator[JenkinsSimulator]:
    with JenkinsSimulator(queue_delay=0.05, build_seconds=0.3) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def jira_sim() -> Iterator[JiraSimulator]:
    with JiraSimulator() as simulator:
        yield simulator


@pytest.fixture
def rt(sim: JenkinsSimulator, jira_sim: JiraSimulator, tmp_path: Path,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[_runtime.Runtime]:
    monkeypatch.setenv("OPSBOT_WATCH_POLL", "0.05")
    monkeypatch.setenv("OPSBOT_RECONCILE_WINDOW", "8")
    jira_env = {**jira_sim.env(), "JIRA_TIMEOUT": str(TIMEOUT)}
    runtime = _runtime.Runtime(
        backends=Backends.of(
            (JENKINS, JenkinsBackend(JenkinsConfig(sim.url, sim.user, sim.token, timeout=TIMEOUT))),
            (JIRA, JIRA.from_env(jira_env))),
        store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
        policy=Policy.load(ROOT / "policy.yml"), rasa_url="http://127.0.0.1:9")
    _runtime.reset(runtime)
    yield runtime
    _runtime.reset(None)
    runtime.store.close()


def _propose(rt: _runtime.Runtime, intent: str, text: str, person: str = "alice",
             slots: dict[str, str] | None = None, **entities: str) -> Turn:
    turn = Turn(OpsRequest(intent, text, 0.99, entities), Who("rest", person, person, person), rt,
                slots=dict(slots or {}))
    kind = kind_of(intent)
    assert kind is not None and kind.handler is not None
    handler = kind.handler
    asyncio.run(handler(turn))
    return turn


def _yes(rt: _runtime.Runtime, who: Who, operation_id: str, digest: str) -> str:
    turn = Turn(OpsRequest("affirm", "yes", 1.0, {}), who, rt)
    asyncio.run(confirmations.confirm(turn, operation_id, digest))
    return "\n".join(r.get("text") or "" for r in turn.replies)


def _confirm(rt: _runtime.Runtime, turn: Turn) -> tuple[str, str, str]:
    """Confirm the turn's preview: (reply, operation id, digest)."""
    operation = rt.store.open_for(turn.who.sender_id)[0]
    return _yes(rt, turn.who, operation.id, operation.digest), operation.id, operation.digest


def _events(rt: _runtime.Runtime, operation_id: str) -> list[str]:
    record = next(r for r in rt.store.audit_records(limit=500) if r.operation.id == operation_id)
    return [e.kind for e in record.events]


def _final(rt: _runtime.Runtime, operation_id: str) -> Any:
    return wait_until(lambda: (op := rt.store.get(operation_id)) is not None and op.is_final and op,
                      f"{operation_id} never reached a final state")


def test_a_lost_answer_to_a_deploy_is_unknown_then_the_real_result(
        rt: _runtime.Runtime, sim: JenkinsSimulator) -> None:
    before = len(sim.builds("deploy-payments"))
    turn = _propose(rt, "deploy", "deploy payments 2.4.1 to dev", service="payments",
                    version="2.4.1", environment="dev")
    sim.respond_delay(LATE, path="deploy-payments/buildWithParameters")
    text, operation_id, digest = _confirm(rt, turn)
    assert "I could not confirm that Jenkins started the deploy of payments 2.4.1 to dev" in text
    assert "it may be running" in text and "do not ask again yet" in text
    assert "did not start" not in text
    operation = _final(rt, operation_id)
    assert operation.state == "succeeded" and operation.result == "SUCCESS"
    assert operation.backend_ref["found_by"] == "its OPSBOT_OPERATION parameter"
    events = _events(rt, operation_id)
    assert events.index("unconfirmed") < events.index("reconciled") < events.index("finished")
    message = completion_message(operation)
    assert "payments 2.4.1 is live on dev: SUCCESS" in message and "found by" in message
    new = sim.builds("deploy-payments")[before:]
    assert len(new) == 1 and new[0].parameters["OPSBOT_OPERATION"] == operation_id
    # A later "yes" runs nothing: the execution key is taken.
    assert "Nothing new ran" in _yes(rt, turn.who, operation_id, digest)
    assert len(sim.builds("deploy-payments")) == before + 1


def test_a_5xx_to_a_start_is_unknown_and_ends_as_not_started(
        rt: _runtime.Runtime, sim: JenkinsSimulator) -> None:
    before = len(sim.builds("deploy-checkout"))
    turn = _propose(rt, "deploy", "deploy checkout 5.13.1 to dev", service="checkout",
                    version="5.13.1", environment="dev")
    sim.fail_next(502, path="deploy-checkout/buildWithParameters")
    text, operation_id, digest = _confirm(rt, turn)
    assert "could not confirm that Jenkins started" in text and "502" in text
    assert "did not start" not in text
    # While opsbot is still checking, a "yes" neither runs it nor says it did not start.
    again = _yes(rt, turn.who, operation_id, digest)
    assert "nothing new ran" in again.lower() and "did not start" not in again
    operation = _final(rt, operation_id)
    assert (operation.state, operation.result) == ("failed", "NOT_STARTED")
    message = completion_message(operation)
    assert "Jenkins did not start the deploy of checkout 5.13.1 to dev" in message
    assert operation_id in message and "Nothing ran" in message
    assert len(sim.builds("deploy-checkout")) == before


def test_a_refused_start_is_known_not_started(rt: _runtime.Runtime,
                                              sim: JenkinsSimulator) -> None:
    before = len(sim.builds("deploy-search"))
    turn = _propose(rt, "deploy", "deploy search 1.10.1 to dev", service="search",
                    version="1.10.1", environment="dev")
    sim.fail_next(403, path="deploy-search/buildWithParameters")
    text, operation_id, _ = _confirm(rt, turn)
    assert "did not start" in text and "could not confirm" not in text
    assert rt.store.get(operation_id).state == "error"  # type: ignore[union-attr]
    assert len(sim.builds("deploy-search")) == before


def test_a_lost_answer_on_a_job_without_the_operation_parameter_matches_by_time(
        rt: _runtime.Runtime, sim: JenkinsSimulator) -> None:
    before = len(sim.builds("payments-ci"))
    turn = _propose(rt, "run_build", "build payments-ci on main", job="payments-ci",
                    branch="feature/unknown-outcome")
    sim.respond_delay(LATE, path="payments-ci/buildWithParameters")
    text, operation_id, _ = _confirm(rt, turn)
    assert "could not confirm that Jenkins started a build of payments-ci" in text
    operation = _final(rt, operation_id)
    assert operation.state == "succeeded"
    assert operation.backend_ref["found_by"] == "its start time, parameters and Jenkins user"
    assert len(sim.builds("payments-ci")) == before + 1


def test_a_store_failure_after_jenkins_accepted_is_not_called_a_failure(
        rt: _runtime.Runtime, sim: JenkinsSimulator, monkeypatch: pytest.MonkeyPatch) -> None:
    before = len(sim.builds("deploy-billing"))
    turn = _propose(rt, "deploy", "deploy billing 3.1.5 to dev", service="billing",
                    version="3.1.5", environment="dev")
    real = rt.store.update_backend_ref
    calls: list[str] = []

    def once_broken(operation_id: str, **ref: Any) -> Any:
        calls.append(operation_id)
        if len(calls) == 1:
            raise StoreError("The operation store (sqlite) failed: disk I/O error.")
        return real(operation_id, **ref)

    monkeypatch.setattr(rt.store, "update_backend_ref", once_broken)
    text, operation_id, _ = _confirm(rt, turn)
    assert "Jenkins accepted the deploy, but I could not record it" in text
    assert "do not ask again yet" in text and "did not start" not in text
    operation = _final(rt, operation_id)
    assert operation.state == "succeeded"
    assert len(sim.builds("deploy-billing")) == before + 1


def test_a_lost_answer_to_a_stop_is_checked(rt: _runtime.Runtime, sim: JenkinsSimulator) -> None:
    job = "platform/nightly-integration"
    running = next(b for b in sim.builds(job) if b.building)
    turn = _propose(rt, "stop_build", "stop the nightly", job=job)
    sim.respond_delay(LATE, path=f"/{running.number}/stop")
    text, operation_id, _ = _confirm(rt, turn)
    assert f"I could not confirm that Jenkins stopped {job} #{running.number}" in text
    operation = _final(rt, operation_id)
    assert (operation.state, operation.result) == ("succeeded", "STOPPED")
    assert "it was stopped (ABORTED)" in completion_message(operation)
    assert sim.build(job, running.number).result == "ABORTED"


def test_unknown_is_neither_open_nor_final_and_is_resumed(rt: _runtime.Runtime) -> None:
    store = rt.store
    op = store.create(intent="deploy", risk="change", requester="alice", sender_id="alice",
                      channel="rest", text="deploy", confidence=1.0,
                      parameters={"service": "payments"}, ttl_seconds=60)
    store.transition(op.id, {"pending_confirmation"}, EXECUTING, actor="alice")
    assert store.claim_execution(op.id, actor="alice")
    moved = store.transition(op.id, {EXECUTING}, UNKNOWN, actor="jenkins", event="unconfirmed")
    assert moved is not None and not moved.is_open and not moved.is_final
    assert op.id in [o.id for o in store.executing()]
    assert not store.claim_execution(op.id, actor="bob")  # exactly once: the key is taken
    assert store.open_for("alice") == [] and store.finished_unnotified("alice") == []


def test_a_lost_answer_to_a_jira_create_is_unknown(rt: _runtime.Runtime,
                                                   jira_sim: JiraSimulator) -> None:
    before = len(jira_sim.issues("OPS"))
    turn = _propose(rt, "create_issue", "open a bug: search returns stale results",
                    slots={"issue_summary": "search returns stale results"}, priority="high")
    jira_sim.respond_delay(LATE, path="/rest/api/2/issue")
    text, operation_id, _ = _confirm(rt, turn)
    assert "I could not confirm that Jira opened the issue" in text
    assert "search returns stale results" in text and "did not start" not in text
    assert rt.store.get(operation_id).state == UNKNOWN  # type: ignore[union-attr]
    assert len(jira_sim.issues("OPS")) == before + 1  # it did happen: exactly once


def test_the_backends_tell_unknown_from_refused(sim: JenkinsSimulator) -> None:
    backend = JenkinsBackend(JenkinsConfig(sim.url, sim.user, sim.token, timeout=TIMEOUT))
    sim.fail_next(503, path="deploy-auth/buildWithParameters")
    with pytest.raises(OutcomeUnknown, match="503"):
        asyncio.run(backend.start("deploy-auth", {"SERVICE": "auth", "VERSION": "4.0.3",
                                                  "ENVIRONMENT": "dev"}))
    sim.fail_next(400, path="deploy-auth/buildWithParameters")
    with pytest.raises(Exception) as refused:
        asyncio.run(backend.start("deploy-auth", {"SERVICE": "auth", "VERSION": "4.0.3",
                                                  "ENVIRONMENT": "dev"}))
    assert not isinstance(refused.value, OutcomeUnknown)
