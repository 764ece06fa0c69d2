"""Every path to a backend passes the same guard.

The policy is spied on (``Policy.decide``), so is the last look before a change runs
(``confirmations.clearance``), and so is every door to a backend: Jenkins' start and
stop, Jira's changes, a team operation's command and HTTP request. Each path is driven
as the action server drives it, against the real client libraries and the simulators:
every built-in intent (the test fails when one is added without a case here), each
runner of team operations, read and change, an event's button, and the CLI's dry run.
The test asserts that the policy decided on the request before any door opened and,
for a change, that ``clearance`` passed that very operation right before its door.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

import actions.ops  # noqa: F401 - registers every built-in intent
from actions import _runtime, confirmations
from actions.backends import JENKINS, JIRA, LOGS, Backends
from actions.backends.jenkins import JenkinsBackend
from actions.backends.jira import JiraBackend
from actions.backends.logs import FileLogSource
from actions.events._model import FAILURE, Event
from actions.events.render import buttons_for
from actions.guard import OperationStore, Policy
from actions.guard.identity import open_payload
from actions.guard.policy import JOB_ENVIRONMENT, JOB_KIND
from actions.operations import flow
from actions.registry import kind_of, kinds
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from opsbot import _operations_cli
from opsbot.settings import Settings
from simulators.jenkins import JenkinsSimulator
from simulators.jira import JiraSimulator
from simulators.logs import generate, write_files
from tests.conftest import start_build

ROOT = Path(__file__).resolve().parent.parent

# Team operations, one per runner and risk.
def _operation(name: str, example: str, parameters: str, risk: str, run: str) -> str:
    examples = "\n".join(f"  - {example} {n}" for n in range(5))
    return (f"name: {name}\ndescription: Do {name}\nexamples:\n{examples}\n"
            f"parameters: {parameters}\nrisk: {risk}\nrun: {run}\n")


SERVICE = "{service: {type: service}}"
OPERATIONS = {
    "cmd_change": _operation("cmd_change", "touch [payments](service)", SERVICE, "change",
                             '{command: [echo, "{service}"], timeout: 30s}'),
    "cmd_read": _operation("cmd_read", "look at [payments](service)", SERVICE, "read",
                           '{command: [echo, "{service}"], timeout: 30s}'),
    "http_change": _operation("http_change", "purge [payments](service)", SERVICE, "change",
                              '{http: {method: POST, url: "${GUARD_HTTP_URL}/p/{service}"}}'),
    "http_read": _operation("http_read", "cache of [payments](service)", SERVICE, "read",
                            '{http: {method: GET, url: "${GUARD_HTTP_URL}/c/{service}"}}'),
    # The shape an adversarial review used to reach a prod deploy: the person picks the
    # job and the environment.
    "run_job": _operation(
        "run_job", "run job [nightly](job) on [dev](environment)",
        "{job: {type: job}, environment: {type: environment}}", "change",
        '{jenkins: {job: "{job}", parameters: {SERVICE: payments, VERSION: 2.4.1, '
        'ENVIRONMENT: "{environment}"}, follow: false}}'),
}


@dataclasses.dataclass
class Spy:
    """What the guard and the doors saw, in order."""

    log: list[tuple[str, ...]] = dataclasses.field(default_factory=list)

    def decided(self) -> list[tuple[str, ...]]:
        return [e for e in self.log if e[0] == "decide"]

    def doors(self) -> list[int]:
        return [i for i, e in enumerate(self.log) if e[0] == "door"]


class _Cache(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._answer()

    def do_POST(self) -> None:  # noqa: N802
        self._answer()

    def _answer(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture(scope="module")
def jenkins_sim() -> Iterator[JenkinsSimulator]:
    with JenkinsSimulator(queue_delay=0.0, build_seconds=600) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def jira_sim() -> Iterator[JiraSimulator]:
    with JiraSimulator() as simulator:
        yield simulator


@pytest.fixture(scope="module")
def cache_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Cache)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def rt(jenkins_sim: JenkinsSimulator, jira_sim: JiraSimulator, cache_url: str,
       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_runtime.Runtime]:
    ops = tmp_path / "ops"
    ops.mkdir()
    for name, text in OPERATIONS.items():
        (ops / f"{name}.yml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("OPSBOT_OPERATIONS_PATH", str(ops))
    monkeypatch.setenv("GUARD_HTTP_URL", cache_url)
    logs = tmp_path / "logs"
    logs.mkdir()
    write_files(generate(datetime.now(UTC)), logs)
    policy = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    policy["rules"][0]["approval"] = ["release-manager"]  # four-eyes on prod
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    runtime = _runtime.Runtime(
        backends=Backends.of((JENKINS, JENKINS.from_env(jenkins_sim.env())),
                             (JIRA, JIRA.from_env(jira_sim.env())), (LOGS, FileLogSource(logs))),
        store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
        policy=Policy.load(path), rasa_url="http://127.0.0.1:9")
    _runtime.reset(runtime)
    yield runtime
    _runtime.reset(None)
    runtime.store.close()


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Spy:
    seen = Spy()
    decide = Policy.decide

    def spied_decide(self: Policy, intent: str, parameters: Any, person: str,
                     default_risk: str | None = None) -> Any:
        seen.log.append(("decide", intent, json.dumps(dict(parameters), sort_keys=True),
                         person))
        return decide(self, intent, parameters, person, default_risk)

    monkeypatch.setattr(Policy, "decide", spied_decide)
    clearance = confirmations.clearance

    def spied_clearance(rt: _runtime.Runtime, operation: Any) -> str | None:
        refused = clearance(rt, operation)
        seen.log.append(("clear", operation.id, operation.intent, str(refused)))
        return refused

    monkeypatch.setattr(confirmations, "clearance", spied_clearance)

    def door(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        if asyncio.iscoroutinefunction(call):
            async def opened(*args: Any, **kwargs: Any) -> Any:
                seen.log.append(("door", name))
                return await call(*args, **kwargs)
            return opened

        def opened_sync(*args: Any, **kwargs: Any) -> Any:
            seen.log.append(("door", name))
            return call(*args, **kwargs)
        return opened_sync

    for cls, names in ((JenkinsBackend, ("start", "stop")),
                       (JiraBackend, ("create_issue", "comment", "transition", "assign",
                                      "set_priority"))):
        for name in names:
            monkeypatch.setattr(cls, name, door(f"{cls.__name__}.{name}", getattr(cls, name)))
    monkeypatch.setattr(flow, "run_command", door("command", flow.run_command))
    monkeypatch.setattr(flow, "send_http", door("http", flow.send_http))
    return seen


def _turn(rt: _runtime.Runtime, intent: str, text: str, person: str = "alice",
          slots: dict[str, str] | None = None, **entities: str) -> Turn:
    # A Telegram group, where an approval can be given (through REST it could not).
    who = Who("telegram", person, f"telegram:-100:{person}", person, "telegram:-100")
    return Turn(OpsRequest(intent, text, 0.99, entities), who, rt, slots=dict(slots or {}))


def _ask(rt: _runtime.Runtime, intent: str, text: str = "", person: str = "alice",
         slots: dict[str, str] | None = None, **entities: str) -> Turn:
    kind = kind_of(intent)
    assert kind is not None, f"{intent} is not registered"
    turn = _turn(rt, intent, text or intent, person, slots, **entities)
    asyncio.run(kind.handler(turn))
    return turn


def _yes(rt: _runtime.Runtime, asked: Turn, person: str | None = None) -> Turn:
    """The requester (or ``person``) says yes to the operation ``asked`` proposed."""
    [operation_id] = asked.operations
    operation = rt.store.get(operation_id)
    assert operation is not None and operation.state.startswith("pending"), operation
    turn = _turn(rt, "affirm", "yes", person or asked.who.person)
    asyncio.run(confirmations.confirm(turn, operation_id, operation.digest))
    return turn


def _said(turn: Turn) -> str:
    return "\n".join(r.get("text") or "" for r in turn.replies)


def _assert_guarded(spy: Spy, intent: str, *, change: bool) -> None:
    """The policy decided on ``intent`` before any door; a change's door follows a
    clearance of its operation with nothing in between."""
    decided = [i for i, e in enumerate(spy.log) if e[0] == "decide" and e[1] == intent]
    assert decided, f"the policy never decided on {intent}: {spy.log}"
    doors = spy.doors()
    assert doors, f"no backend door opened for {intent}: {spy.log}"
    assert decided[0] < doors[0], f"{intent}: a door opened before the policy decided: {spy.log}"
    if change:
        for door in doors:
            before = spy.log[door - 1]
            assert before[0] == "clear" and before[2] == intent and before[3] == "None", \
                f"{intent}: {spy.log[door]} without the operation's clearance: {spy.log}"


# Each built-in intent: how to ask for it, and whether it is a change (confirmed first).
Case = Callable[[_runtime.Runtime, JenkinsSimulator], Turn]
CHANGES: dict[str, Case] = {
    "deploy": lambda rt, sim: _ask(rt, "deploy", service="payments", version="2.4.1",
                                   environment="staging"),
    "rollback": lambda rt, sim: _ask(rt, "rollback", service="payments", version="2.3.2",
                                     environment="dev"),
    "run_build": lambda rt, sim: _ask(rt, "run_build", job="payments-ci"),
    "stop_build": lambda rt, sim: _ask(
        rt, "stop_build", job="auth-ci",
        build_number=str(start_build(sim, "auth-ci", {"BRANCH": "main"}))),
    "create_issue": lambda rt, sim: _ask(rt, "create_issue", "open a bug: checkout is slow",
                                         slots={"issue_summary": "checkout is slow"}),
    "comment_issue": lambda rt, sim: _ask(rt, "comment_issue", "comment on OPS-102: seen it",
                                          issue_key="OPS-102"),
    "update_issue": lambda rt, sim: _ask(rt, "update_issue", "set OPS-102 to lowest priority",
                                         issue_key="OPS-102", priority="lowest"),
}
READS: dict[str, Case] = {
    "deploy_history": lambda rt, sim: _ask(rt, "deploy_history", service="payments"),
    "build_status": lambda rt, sim: _ask(rt, "build_status", job="payments-ci"),
    "list_jobs": lambda rt, sim: _ask(rt, "list_jobs", "what's red in CI?"),
    "build_failure": lambda rt, sim: _ask(rt, "build_failure", job="search-ci"),
    "issue_status": lambda rt, sim: _ask(rt, "issue_status", issue_key="OPS-123"),
    "list_issues": lambda rt, sim: _ask(rt, "list_issues", project="PAY"),
    "query_logs": lambda rt, sim: _ask(rt, "query_logs", "errors from payments",
                                       service="payments", log_level="error"),
    "subscribe": lambda rt, sim: _ask(rt, "subscribe", "post failed builds of payments here",
                                      event_source="builds", service="payments"),
    "list_subscriptions": lambda rt, sim: _ask(rt, "list_subscriptions"),
    "unsubscribe": lambda rt, sim: _ask(rt, "unsubscribe", "unsubscribe from everything"),
    "list_wishes": lambda rt, sim: _ask(rt, "list_wishes", "show the automation backlog"),
}
# Reads with no backend door: the policy must still have decided before the answer.
NO_DOOR = frozenset({"deploy_history", "build_status", "list_jobs", "build_failure",
                     "issue_status", "list_issues", "query_logs", "subscribe",
                     "list_subscriptions", "unsubscribe", "list_wishes"})


def test_every_built_in_intent_has_a_case_here() -> None:
    built_in = {name for name, kind in kinds().items()
                if kind.source == "built-in" and kind.handler is not None}
    assert built_in == set(CHANGES) | set(READS), \
        f"add a case for {sorted(built_in - set(CHANGES) - set(READS))}"


@pytest.mark.parametrize("intent", sorted(CHANGES))
def test_a_built_in_change_is_decided_then_cleared_right_before_its_backend(
        intent: str, rt: _runtime.Runtime, spy: Spy, jenkins_sim: JenkinsSimulator) -> None:
    asked = CHANGES[intent](rt, jenkins_sim)
    assert asked.operations, _said(asked)
    assert not spy.doors(), f"{intent} opened a door before it was confirmed: {spy.log}"
    done = _yes(rt, asked)
    assert "did not start" not in _said(done), _said(done)
    _assert_guarded(spy, intent, change=True)


@pytest.mark.parametrize("intent", sorted(READS))
def test_a_built_in_read_is_decided_before_it_is_shown(
        intent: str, rt: _runtime.Runtime, spy: Spy, jenkins_sim: JenkinsSimulator) -> None:
    turn = READS[intent](rt, jenkins_sim)
    assert turn.replies and "can't" not in _said(turn), _said(turn)
    assert [e for e in spy.decided() if e[1] == intent], spy.log
    assert intent in NO_DOOR and not spy.doors()


@pytest.mark.parametrize(("name", "values", "change"), [
    ("cmd_change", {"service": "payments"}, True),
    ("cmd_read", {"service": "payments"}, False),
    ("http_change", {"service": "payments"}, True),
    ("http_read", {"service": "payments"}, False),
    ("run_job", {"job": "integration-tests", "environment": "dev"}, True),
])
def test_every_runner_of_team_operations_passes_the_guard(
        name: str, values: dict[str, str], change: bool, rt: _runtime.Runtime,
        spy: Spy) -> None:
    asked = _ask(rt, name, **values)
    if change:
        assert not spy.doors(), spy.log
        done = _yes(rt, asked)
        assert "did not start" not in _said(done), _said(done)
    _assert_guarded(spy, name, change=change)


def test_a_team_operation_reaching_a_deploy_job_tells_the_policy_where_it_deploys(
        rt: _runtime.Runtime, spy: Spy, jenkins_sim: JenkinsSimulator) -> None:
    before = len(jenkins_sim.builds("deploy-payments"))
    bob = _ask(rt, "run_job", person="bob", job="deploy-payments", environment="prod")
    assert "needs the release-manager role (as deploying to prod does)" in _said(bob), _said(bob)
    assert not bob.operations or rt.store.get(next(iter(bob.operations))).state == "refused"
    [(_, _, parameters, _)] = [e for e in spy.decided() if e[3] == "bob"]
    assert json.loads(parameters)[JOB_KIND] == "deploy"
    assert json.loads(parameters)[JOB_ENVIRONMENT] == "prod"
    alice = _ask(rt, "run_job", job="deploy-payments", environment="prod")
    assert "deploy-payments is a deploy job: this deploys to prod" in _said(alice)
    assert "a second person with the release-manager role must approve" in _said(alice)
    waiting = _yes(rt, alice)
    assert "must approve" in _said(waiting) and not spy.doors()
    assert len(jenkins_sim.builds("deploy-payments")) == before


def test_an_event_button_is_a_request_like_any_other(rt: _runtime.Runtime, spy: Spy,
                                                     jenkins_sim: JenkinsSimulator) -> None:
    event = Event(source="alertmanager", key="k", group="g", kind=FAILURE, status="firing",
                  title="Errors", service="payments", environment="dev")
    chat = "telegram:-100"
    for button in buttons_for(event, FAILURE, ["cmd_change"], lambda _: ["service"], chat=chat,
                              expires=datetime.now(UTC).timestamp() + 60):
        if button["title"] not in ("Roll back payments on dev", "Cmd change"):
            continue
        text = open_payload(button["payload"], scope=chat).text
        assert text is not None
        intent, _, entities = text[1:].partition("{")
        asked = _ask(rt, intent, text, **json.loads("{" + entities))
        assert asked.operations, _said(asked)
        _yes(rt, asked)
        _assert_guarded(spy, intent, change=True)
        spy.log.clear()


def test_the_cli_dry_run_gives_the_policys_verdict(rt: _runtime.Runtime, spy: Spy,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    settings = dataclasses.replace(Settings.from_env(ROOT))
    args = argparse.Namespace(name="cmd_change", values=["service=payments"],
                              requester_given="bob")
    assert _operations_cli.cmd_run(args, settings) == 0
    assert "policy.yml: bob may run it (change; bob confirms)." in capsys.readouterr().out
    assert [e for e in spy.decided() if e[1] == "cmd_change" and e[3] == "bob"]
    assert not spy.doors()  # a dry run sends nothing
