"""Stopping a build is asynchronous in Jenkins, and opsbot says "Stopped" only when it is.

Through python-jenkins against the Jenkins simulator, with the real confirmation flow and
watcher; no Rasa. The simulator's ``set_stop`` makes a job's builds take a while to reach
an abort point, catch the stop, or end before it takes effect.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from actions import _runtime, confirmations
from actions.backends import JENKINS, Backends
from actions.backends.jenkins import Build, JenkinsBackend, JenkinsConfig
from actions.flows.jenkins import completion_message
from actions.guard import EXECUTING, OperationStore, Policy
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from simulators.jenkins import JenkinsSimulator
from tests.conftest import handle, wait_until

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sim() -> Iterator[JenkinsSimulator]:
    """Builds run 60 s, so a test stops them long before they end by themselves."""
    with JenkinsSimulator(queue_delay=0.05, build_seconds=60) as simulator:
        yield simulator


@pytest.fixture
def rt(sim: JenkinsSimulator, tmp_path: Path,
       monkeypatch: pytest.MonkeyPatch) -> Iterator[_runtime.Runtime]:
    monkeypatch.setenv("OPSBOT_WATCH_POLL", "0.05")
    monkeypatch.setenv("OPSBOT_STOP_WAIT", "1")
    runtime = _runtime.Runtime(
        backends=Backends.of((JENKINS, JenkinsBackend(JenkinsConfig(sim.url, sim.user, sim.token,
                                                                    timeout=10)))),
        store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
        policy=Policy.load(ROOT / "policy.yml"), rasa_url="http://127.0.0.1:9")
    _runtime.reset(runtime)
    yield runtime
    _runtime.reset(None)
    runtime.store.close()


def _running(rt: _runtime.Runtime, job: str) -> Build:
    """A new build of ``job``, started (by opsbot's Jenkins user) and running."""
    jenkins = rt.backends.connected(JENKINS)
    assert jenkins is not None
    build = asyncio.run(jenkins.wait_for_build(asyncio.run(jenkins.start(job, {"BRANCH": "main"})),
                                               poll=0.02, timeout=30))
    assert build.building
    return build


def _stop(rt: _runtime.Runtime, job: str, number: int, person: str = "alice",
          before_yes: Callable[[], None] | None = None) -> tuple[str, str]:
    """Ask to stop ``job #number`` and confirm (``before_yes`` runs between the two): the
    reply to the confirmation and the operation id."""
    who = Who("rest", person, person, person)
    turn = Turn(OpsRequest("stop_build", f"stop {job} #{number}", 0.99,
                           {"job": job, "build_number": str(number)}), who, rt)
    handle("stop_build", turn)
    assert f"Stop {job} #{number}" in _said(turn)
    operation = rt.store.open_for(who.sender_id)[0]
    if before_yes is not None:
        before_yes()
    yes = Turn(OpsRequest("affirm", "yes", 1.0, {}), who, rt)
    asyncio.run(confirmations.confirm(yes, operation.id, operation.digest))
    return _said(yes), operation.id


def _said(turn: Turn) -> str:
    return "\n".join(r.get("text") or "" for r in turn.replies)


def _final(rt: _runtime.Runtime, operation_id: str) -> Any:
    return wait_until(lambda: (op := rt.store.get(operation_id)) is not None and op.is_final and op,
                      f"{operation_id} never reached a final state")


def _announced(rt: _runtime.Runtime, person: str = "alice") -> list[str]:
    """What opsbot posts in the person's conversation now (each finished operation once)."""
    turn = Turn(OpsRequest("greet", "hi", 1.0, {}), Who("rest", person, person, person), rt)
    confirmations.deliver_completions(turn)
    return [r.get("text") or "" for r in turn.replies]


def _stops(sim: JenkinsSimulator, job: str, number: int) -> int:
    return sum(1 for r in sim.request_log() if r.method == "POST"
               and r.target.endswith(f"{job}/{number}/stop"))


def test_a_build_that_stops_at_once_is_said_stopped(rt: _runtime.Runtime,
                                                    sim: JenkinsSimulator) -> None:
    build = _running(rt, "checkout-ci")
    reply, operation_id = _stop(rt, "checkout-ci", build.number)
    assert f"Stopped checkout-ci #{build.number}: ABORTED" in reply and "alice" in reply
    operation = rt.store.get(operation_id)
    assert operation is not None
    assert (operation.state, operation.result) == ("succeeded", "SUCCESS")
    assert operation.backend_ref["build_result"] == "ABORTED"
    assert _announced(rt) == []  # the reply was the announcement
    assert sim.build("checkout-ci", build.number).result == "ABORTED"
    assert _stops(sim, "checkout-ci", build.number) == 1


def test_a_build_still_running_after_the_stop_is_followed_to_its_real_end(
        rt: _runtime.Runtime, sim: JenkinsSimulator) -> None:
    sim.set_stop("payments-ci", seconds=4)
    build = _running(rt, "payments-ci")
    reply, operation_id = _stop(rt, "payments-ci", build.number)
    assert f"Stop requested (confirmed by alice); payments-ci #{build.number} is still " \
        "running" in reply
    assert "I'll post here when it has really ended" in reply and "Stopped" not in reply
    operation = rt.store.get(operation_id)
    assert operation is not None and operation.state == EXECUTING
    assert sim.build("payments-ci", build.number).building  # Jenkins agrees: not yet
    operation = _final(rt, operation_id)
    assert (operation.state, operation.result) == ("succeeded", "SUCCESS")
    assert operation.backend_ref["build_result"] == "ABORTED"
    said = completion_message(operation)
    assert f"Stopped payments-ci #{build.number}: ABORTED" in said
    assert _announced(rt) == [said]
    assert _announced(rt) == []  # exactly once
    assert sim.build("payments-ci", build.number).result == "ABORTED"
    assert _stops(sim, "payments-ci", build.number) == 1
    record = next(r for r in rt.store.audit_records(limit=50) if r.operation.id == operation_id)
    kinds = [e.kind for e in record.events]
    assert kinds.count("finished") == 1 and kinds.index("confirmed") < kinds.index("finished")


@pytest.mark.parametrize(("job", "result", "seconds"), [("search-ci", "SUCCESS", 0.0),
                                                        ("billing-ci", "FAILURE", 3.0)])
def test_a_build_that_finishes_despite_the_stop_is_not_called_stopped(
        rt: _runtime.Runtime, sim: JenkinsSimulator, job: str, result: str,
        seconds: float) -> None:
    """A pipeline that catches the interruption ends as it likes: at once, or later."""
    sim.set_stop(job, seconds=seconds, result=result)
    build = _running(rt, job)
    reply, operation_id = _stop(rt, job, build.number)
    operation = _final(rt, operation_id)
    assert (operation.state, operation.result) == ("failed", "NOT_STOPPED")
    assert operation.backend_ref["build_result"] == result
    said = f"{job} #{build.number} did not stop: it finished {result}"
    if seconds:
        assert "still running" in reply and said in completion_message(operation)
        assert _announced(rt) == [completion_message(operation)]
    else:
        assert said in reply and "Stopped" not in reply
    assert _announced(rt) == []


def test_a_stop_whose_effect_cannot_be_read_yet_is_followed(rt: _runtime.Runtime,
                                                            sim: JenkinsSimulator) -> None:
    build = _running(rt, "auth-ci")
    reply, operation_id = _stop(rt, "auth-ci", build.number, before_yes=lambda: sim.fail_next(
        503, times=2, path=f"auth-ci/{build.number}/api/json"))
    assert "Stop requested" in reply and "could not read its state just now" in reply
    assert "503" in reply
    operation = _final(rt, operation_id)
    assert (operation.state, operation.backend_ref["build_result"]) == ("succeeded", "ABORTED")
    assert _stops(sim, "auth-ci", build.number) == 1
