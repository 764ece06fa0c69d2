"""Team-defined operations in the dialogue, without Rasa: values, questions, policy, runs.

The handlers and the confirmation layer are called as the action server calls them,
with a Jenkins simulator for the catalogue and operation files in a folder named by
OPSBOT_OPERATIONS_PATH (read again whenever the files change, as in a running opsbot).
"""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from actions import _runtime, confirmations
from actions.backends import JENKINS, Backends
from actions.backends.jenkins import JenkinsBackend, JenkinsConfig
from actions.guard import (
    ERROR,
    EXECUTING,
    FAILED,
    PENDING_CONFIRMATION,
    SUCCEEDED,
    OperationStore,
    Policy,
)
from actions.operations import flow
from actions.registry import kind_of
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from simulators.jenkins import JenkinsSimulator

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """\
#!/usr/bin/env python3
import json, os, sys, time
time.sleep(float(os.environ.get("SLEEP") or 0))
with open(os.environ["LEDGER"], "a", encoding="utf-8") as out:
    out.write(json.dumps(sys.argv[1:]) + "\\n")
print("token is", os.environ.get("TOKEN", "-"))
sys.exit(int(os.environ.get("EXIT") or 0))
"""


def operation(name: str, *, risk: str = "change", parameters: str | None = None,
              examples: list[str] | None = None, env: str = "", run_extra: str = "") -> str:
    examples = examples or [f"{name} [payments](service) on [prod](environment) {i}"
                            for i in range(5)]
    parameters = parameters or ("  service: {type: service}\n"
                                "  environment: {type: environment}\n")
    lines = "\n".join(f"  - {e}" for e in examples)
    return (f"name: {name}\ndescription: Do {name}\nexamples:\n{lines}\nparameters:\n"
            f"{parameters}risk: {risk}\nrun:\n"
            f"  command: [./tool.py, \"{{service}}\", \"{{environment}}\"]\n"
            f"  env: {{LEDGER: \"{{ledger}}\"{env}}}\n{run_extra}"
            "success: \"Done {service} on {environment}.\"\n")


@pytest.fixture(scope="module")
def sim() -> Iterator[JenkinsSimulator]:
    with JenkinsSimulator(queue_delay=0.0, build_seconds=600) as simulator:
        yield simulator


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    ops = tmp_path / "ops"
    ops.mkdir()
    (ops / "tool.py").write_text(SCRIPT, encoding="utf-8")
    (ops / "tool.py").chmod(0o755)
    monkeypatch.setenv("OPSBOT_OPERATIONS_PATH", str(ops))
    monkeypatch.setenv("OPSBOT_TEST_TOKEN", "s3cr3t-token-value")
    return ops


def write(folder: Path, name: str, text: str) -> Path:
    ledger = folder / f"{name}.ledger"
    (folder / f"{name}.yml").write_text(text.replace("{ledger}", str(ledger)), encoding="utf-8")
    return ledger


@pytest.fixture
def rt(sim: JenkinsSimulator, tmp_path: Path) -> Iterator[_runtime.Runtime]:
    policy = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    policy["rules"].insert(0, {"intents": ["guarded_op"], "risk": "change",
                               "roles": ["release-manager"]})
    policy["rules"].insert(0, {"intents": ["secret_read"], "risk": "read",
                               "roles": ["release-manager"]})
    policy["rules"].insert(0, {"intents": ["raised_read"], "risk": "critical",
                               "roles": ["release-manager"], "approval": ["release-manager"]})
    path = tmp_path / "policy.yml"
    path.write_text(yaml.safe_dump(policy), encoding="utf-8")
    runtime = _runtime.Runtime(
        backends=Backends.of((JENKINS, JenkinsBackend(JenkinsConfig(sim.url, sim.user, sim.token,
                                                                    timeout=10)))),
        store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
        policy=Policy.load(path), rasa_url="http://127.0.0.1:9")
    _runtime.reset(runtime)
    yield runtime
    _runtime.reset(None)
    runtime.store.close()


def who(person: str) -> Who:
    return Who("rest", person, person, person)


def ask(rt: _runtime.Runtime, intent: str, text: str, person: str = "alice",
        **entities: str) -> Turn:
    kind = kind_of(intent)
    assert kind is not None, f"{intent} is not registered"
    turn = Turn(OpsRequest(intent, text, 0.99, entities), who(person), rt)
    asyncio.run(kind.handler(turn))
    return turn


def said(turn: Turn) -> str:
    return "\n".join(r.get("text") or "" for r in turn.replies)


def confirm(rt: _runtime.Runtime, person: str, operation_id: str) -> Turn:
    turn = Turn(OpsRequest("affirm", "yes", 1.0, {}), who(person), rt)
    pending = rt.store.get(operation_id)
    assert pending is not None
    asyncio.run(confirmations.confirm(turn, operation_id, pending.digest))
    return turn


def ledger_of(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def only_operation(rt: _runtime.Runtime, turn: Turn) -> str:
    assert len(turn.operations) == 1, turn.operations
    return next(iter(turn.operations))


def test_a_new_file_is_an_intent_and_runs_exactly_once_after_the_requesters_confirm(
        rt: _runtime.Runtime, folder: Path) -> None:
    ledger = write(folder, "ledger_op", operation("ledger_op"))
    turn = ask(rt, "ledger_op", "ledger_op payments on prod 0", service="payments",
               environment="production")
    text = said(turn)
    assert "Do ledger_op with service: payments; environment: prod." in text, text
    assert "It runs: tool.py payments prod" in text, text
    op_id = only_operation(rt, turn)
    assert rt.store.get(op_id).state == PENDING_CONFIRMATION  # type: ignore[union-attr]
    assert "Only alice" in said(confirm(rt, "bob", op_id))
    assert ledger_of(ledger) == []
    done = said(confirm(rt, "alice", op_id))
    assert "Done payments on prod." in done and "token is -" in done, done
    assert ledger_of(ledger) == [["payments", "prod"]]
    assert "already confirmed" in said(confirm(rt, "alice", op_id))
    assert ledger_of(ledger) == [["payments", "prod"]]
    op = rt.store.get(op_id)
    assert op is not None and op.state == SUCCEEDED
    finished = [r for r in rt.store.audit_records(intent="ledger_op")][0]
    detail = [e.detail for e in finished.events if e.kind == "finished"][0]
    assert detail["exit_code"] == 0 and "token is -" in detail["output"]
    assert detail["call"]["argv"][1:] == ["payments", "prod"]


def test_a_stranger_is_refused_and_nothing_waits_for_a_confirmation(
        rt: _runtime.Runtime, folder: Path) -> None:
    ledger = write(folder, "ledger_op", operation("ledger_op"))
    turn = ask(rt, "ledger_op", "x", person="rest:mallory", service="payments",
               environment="prod")
    assert "I don't know you yet" in said(turn), said(turn)
    assert not rt.store.open_for("rest:mallory")
    assert ledger_of(ledger) == []


def test_a_policy_rule_naming_the_operation_decides_its_roles(
        rt: _runtime.Runtime, folder: Path) -> None:
    ledger = write(folder, "guarded_op", operation("guarded_op"))
    refused = said(ask(rt, "guarded_op", "x", person="bob", service="payments",
                       environment="prod"))
    assert "needs the release-manager role" in refused and "Nothing ran" in refused, refused
    allowed = ask(rt, "guarded_op", "x", person="carol", service="payments", environment="prod")
    assert "only carol can confirm" in said(allowed)
    assert ledger_of(ledger) == []


def test_a_read_operation_refused_by_the_policy_never_runs(
        rt: _runtime.Runtime, folder: Path) -> None:
    ledger = write(folder, "secret_read", operation("secret_read", risk="read"))
    refused = said(ask(rt, "secret_read", "x", person="bob", service="payments",
                       environment="prod"))
    assert "needs the release-manager role" in refused, refused
    assert ledger_of(ledger) == []
    answered = said(ask(rt, "secret_read", "x", person="alice", service="payments",
                        environment="prod"))
    assert "Done payments on prod." in answered, answered
    assert ledger_of(ledger) == [["payments", "prod"]]
    rows = rt.store.audit_records(intent="secret_read")
    assert sorted(r.operation.state for r in rows) == ["refused", "succeeded"]


def test_a_read_that_a_policy_rule_makes_critical_waits_for_confirmation_and_approval(
        rt: _runtime.Runtime, folder: Path) -> None:
    ledger = write(folder, "raised_read", operation("raised_read", risk="read"))
    # Asked in a team chat: through the REST channel nobody could approve it.
    group = Who("telegram", "42", "telegram:-100:42", "alice", "telegram:-100")
    turn = Turn(OpsRequest("raised_read", "x", 0.99,
                           {"service": "payments", "environment": "prod"}), group, rt)
    asyncio.run(flow.handle(turn, flow.operations()["raised_read"]))
    text = said(turn)
    assert "It runs: tool.py payments prod" in text and "must approve" in text, text
    assert ledger_of(ledger) == []
    op_id = only_operation(rt, turn)
    pending = rt.store.get(op_id)
    assert pending is not None
    yes = Turn(OpsRequest("affirm", "yes", 1.0, {}), group, rt)
    asyncio.run(confirmations.confirm(yes, op_id, pending.digest))
    assert "must approve" in said(yes)
    assert ledger_of(ledger) == []  # the second person has not approved yet
    op = rt.store.get(op_id)
    assert op is not None and op.risk == "critical" and op.approval_roles == ("release-manager",)


def test_an_operation_file_changed_after_the_preview_runs_nothing(
        rt: _runtime.Runtime, folder: Path) -> None:
    ledger = write(folder, "ledger_op", operation("ledger_op"))
    op_id = only_operation(rt, ask(rt, "ledger_op", "x", service="payments", environment="dev"))
    path = folder / "ledger_op.yml"
    path.write_text(path.read_text().replace('command: [./tool.py, ',
                                             'command: [./tool.py, "--all", '))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a new stamp
    done = said(confirm(rt, "alice", op_id))
    assert "changed since the preview" in done and "did not start" in done, done
    assert ledger_of(ledger) == []
    op = rt.store.get(op_id)
    assert op is not None and op.state == ERROR
    said(confirm(rt, "alice", op_id))  # a second Confirm finds it closed
    assert ledger_of(ledger) == []


def test_an_executor_that_breaks_leaves_no_operation_executing(
        rt: _runtime.Runtime, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = write(folder, "ledger_op", operation("ledger_op"))
    op_id = only_operation(rt, ask(rt, "ledger_op", "x", service="payments", environment="dev"))

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(flow, "run_command", broken)
    done = said(confirm(rt, "alice", op_id))
    assert "may or may not have happened" in done and "RuntimeError" in done, done
    op = rt.store.get(op_id)
    assert op is not None and op.state == ERROR and op.result == "internal_error"
    assert ledger_of(ledger) == []


PURGE = """\
name: {name}
description: Purge it
examples:
  - purge [payments](service) now
  - purge the cache of [payments](service)
  - clear [payments](service) cache
  - flush [payments](service)
  - empty the [payments](service) cache
parameters:
  service: {{type: service}}
risk: change
run:
  http:
    url: "{url}/purge/{{service}}"
"""


def write_purge(folder: Path, name: str, url: str) -> None:
    """An HTTP operation ``name`` that POSTs to ``url``/purge/<service>."""
    (folder / f"{name}.yml").write_text(PURGE.format(name=name, url=url), encoding="utf-8")


def test_credentials_in_a_url_variable_stay_out_of_the_chat_and_the_audit(
        rt: _runtime.Runtime, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PURGE_URL", "http://bot:hunter2pw@127.0.0.1:9")
    write_purge(folder, "cred_op", "${PURGE_URL}")
    turn = ask(rt, "cred_op", "x", service="payments")
    op_id = only_operation(rt, turn)
    done = said(confirm(rt, "alice", op_id))
    assert "could not reach 127.0.0.1:9" in done, done
    everything = said(turn) + done + json.dumps(
        [r.as_dict() for r in rt.store.audit_records(intent="cred_op")])
    assert "hunter2pw" not in everything


def test_a_failing_command_says_its_exit_code_and_masks_secrets(
        rt: _runtime.Runtime, folder: Path) -> None:
    write(folder, "failing_op", operation(
        "failing_op", env=', EXIT: "3", TOKEN: "${OPSBOT_TEST_TOKEN}"'))
    op_id = only_operation(rt, ask(rt, "failing_op", "x", service="payments", environment="dev"))
    text = said(confirm(rt, "alice", op_id))
    assert "failed: exit code 3" in text, text
    assert "s3cr3t-token-value" not in text and "token is ********" in text, text
    op = rt.store.get(op_id)
    assert op is not None and op.state == FAILED and op.result == "EXIT_3"
    record = rt.store.audit_records(intent="failing_op")[0]
    assert "s3cr3t-token-value" not in json.dumps(record.as_dict())


JENKINS_OP = """\
name: secret_job
description: Run the integration tests
examples:
  - run the integration tests on PR [12](pr)
  - integration tests for pull request [34](pr)
  - test PR [56](pr)
  - start integration tests on [78](pr)
  - kick off the integration suite for PR [90](pr)
parameters:
  pr: {type: integer, min: 1}
risk: change
run:
  jenkins:
    job: integration-tests
    parameters: {PR: "{pr}:${OPSBOT_TEST_TOKEN}"}
    follow: false
"""


def test_a_secret_in_a_jenkins_parameter_is_sent_but_never_shown_or_kept(
        rt: _runtime.Runtime, folder: Path, sim: JenkinsSimulator) -> None:
    (folder / "secret_job.yml").write_text(JENKINS_OP, encoding="utf-8")
    turn = ask(rt, "secret_job", "test PR 123", pr="123")
    preview = said(turn)
    assert "It starts the Jenkins job integration-tests with PR=123:********." in preview, preview
    op_id = only_operation(rt, turn)
    stored = rt.store.get(op_id)
    assert stored is not None and "s3cr3t-token-value" not in repr(stored)
    done = said(confirm(rt, "alice", op_id))
    assert "s3cr3t-token-value" not in done, done
    op = rt.store.get(op_id)
    assert op is not None and op.state == SUCCEEDED, done
    assert op.backend_ref["requested"] == {"OPSBOT_OPERATION": op_id}
    records = json.dumps([r.as_dict() for r in rt.store.audit_records(intent="secret_job")])
    assert "s3cr3t-token-value" not in records and '"PR": "123:********"' in records
    sent = asyncio.run(rt.backends.connected(JENKINS).builds("integration-tests", limit=1))
    assert sent[0].parameters["PR"] == "123:s3cr3t-token-value"


def test_a_long_command_reports_its_end_later(rt: _runtime.Runtime, folder: Path) -> None:
    ledger = write(folder, "slow_op", operation(
        "slow_op", env=', SLEEP: "1.5"', run_extra="  reply_within: 0.2s\n"))
    op_id = only_operation(rt, ask(rt, "slow_op", "x", service="payments", environment="dev"))
    started = said(confirm(rt, "alice", op_id))
    assert "is running" in started and "I'll post the result here" in started, started
    from tests.conftest import wait_until

    wait_until(lambda: (rt.store.get(op_id) or None) and rt.store.get(op_id).state == SUCCEEDED,  # type: ignore[union-attr]
               "the slow operation did not finish", 30)
    assert ledger_of(ledger) == [["payments", "dev"]]
    turn = Turn(OpsRequest("notify", "", 1.0, {}), who("alice"), rt)
    confirmations.deliver_completions(turn)
    assert "Done payments on dev." in said(turn), said(turn)


def test_services_are_resolved_against_jenkins(rt: _runtime.Runtime, folder: Path) -> None:
    write(folder, "ledger_op", operation("ledger_op"))
    close = said(ask(rt, "ledger_op", "x", service="paymnts", environment="prod"))
    assert "I took \"paymnts\" to mean payments" in close, close
    unknown = said(ask(rt, "ledger_op", "x", service="coffee-machine", environment="prod"))
    assert "I can't find a service called \"coffee-machine\"" in unknown, unknown
    assert "Nothing ran" in unknown


def test_a_missing_value_is_asked_with_buttons_and_a_bad_one_is_named(
        rt: _runtime.Runtime, folder: Path) -> None:
    write(folder, "ledger_op", operation("ledger_op"))
    turn = ask(rt, "ledger_op", "x", service="payments")
    request = next(e for e in turn.events if e.get("name") == flow.REQUEST_SLOT)["value"]
    assert request["asked"] == "environment" and request["choices"] == ["dev", "staging", "prod"]
    assert any(e.get("event") == "followup" and e.get("name") == flow.FORM for e in turn.events)
    text, buttons = flow.ask_message(request)
    assert "Which environment?" in text and [b["payload"] for b in buttons] == [
        "dev", "staging", "prod"]
    updated, problem = flow.answer(request, "moon")
    assert updated is None and problem == "\"moon\" is not one of dev, staging, prod"
    updated, nxt = flow.answer(request, "production")
    assert nxt is None and updated is not None and updated["values"]["environment"] == "production"


def test_values_come_verbatim_from_the_shape_of_an_example(folder: Path) -> None:
    write(folder, "note_op", operation(
        "note_op", parameters="  note: {type: text}\n",
        examples=["jot down [hello](note) please", "jot [x y](note)", "note down [a](note)",
                  "remember [b](note) for me", "write [c](note) down"]).replace(
        '"{service}", "{environment}"', '"{note}"').replace(
        "Done {service} on {environment}.", "Noted."))
    spec = flow.operations()["note_op"]
    value = '; rm -rf / $(id) "x"'
    assert flow.values_from_text(spec, f"jot down {value} please") == {"note": value}
    assert flow.values_from_text(spec, f"Remember   {value} for me!") == {"note": value}
    assert flow.values_from_text(spec, "something else entirely") == {}


SHIP = [f"{verb} [payments](service) [2.4.1](version) [prod](environment) [fast](mode) now"
        for verb in ("ship", "please ship", "ship it", "go ship", "ship now")]


@pytest.mark.timeout(60)
def test_values_side_by_side_are_one_word_each_and_matching_is_bounded(folder: Path) -> None:
    params = ("  service: {type: text}\n  version: {type: text}\n  environment: {type: text}\n"
              "  mode: {type: text}\n")
    write(folder, "ship_op", operation("ship_op", parameters=params, examples=SHIP))
    spec = flow.operations()["ship_op"]
    assert flow.values_from_text(spec, "ship it checkout 3.0.0 staging slowly now") == {
        "service": "checkout", "version": "3.0.0", "environment": "staging", "mode": "slowly"}
    # A message made to make the shapes backtrack is given up on, not matched for minutes.
    assert flow.values_from_text(spec, ("ship it " + "a " * 300)[:499] + "z") == {}


def test_another_variable_in_the_file_after_the_preview_runs_nothing(
        rt: _runtime.Runtime, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTHER_TOKEN", "another-secret-value")
    ledger = write(folder, "token_op", operation("token_op", env=', TOKEN: "${OPSBOT_TEST_TOKEN}"'))
    op_id = only_operation(rt, ask(rt, "token_op", "x", service="payments", environment="dev"))
    path = folder / "token_op.yml"
    path.write_text(path.read_text().replace("OPSBOT_TEST_TOKEN", "OTHER_TOKEN"))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    done = said(confirm(rt, "alice", op_id))
    assert "changed since the preview" in done, done
    assert ledger_of(ledger) == []


def test_a_request_cut_off_by_a_restart_is_closed_as_interrupted(
        rt: _runtime.Runtime, folder: Path) -> None:
    from actions.registry import kind_of as kind

    write_purge(folder, "cdn_op", "http://127.0.0.1:9")
    op_id = only_operation(rt, ask(rt, "cdn_op", "x", service="payments"))
    pending = rt.store.get(op_id)
    assert pending is not None
    rt.store.transition(op_id, {PENDING_CONFIRMATION}, EXECUTING, actor="alice", event="confirmed")
    cdn = kind("cdn_op")
    assert cdn is not None and cdn.resume is not None
    cdn.resume(rt.store.get(op_id))  # type: ignore[arg-type]
    op = rt.store.get(op_id)
    assert op is not None and op.state == ERROR and op.result == "interrupted"
    assert "whether it happened" in (op.result_detail or "")


def test_a_changed_file_is_read_again_and_a_broken_one_is_left_out(folder: Path) -> None:
    write(folder, "ledger_op", operation("ledger_op"))
    assert "ledger_op" in flow.operations()
    (folder / "ledger_op.yml").write_text(textwrap.dedent("""\
        name: ledger_op
        description: broken
        """), encoding="utf-8")
    assert "ledger_op" not in flow.operations()
    assert kind_of("ledger_op") is None


def test_opsbot_run_does_not_start_with_a_bad_operation_file(
        trained_model: Path, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    ops = tmp_path / "ops"
    ops.mkdir()
    write(ops, "bad", operation("bad_op").replace('"{environment}"', '"{enviroment}"'))
    (ops / "tool.py").write_text(SCRIPT, encoding="utf-8")
    (ops / "tool.py").chmod(0o755)
    models = tmp_path / "models"
    models.mkdir()
    (models / trained_model.name).symlink_to(trained_model)
    env = {**os.environ, "OPSBOT_OPERATIONS_PATH": str(ops), "OPSBOT_MODELS": str(models),
           "OPSBOT_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run([sys.executable, "-m", "opsbot", "run"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "bad.yml:14: unknown placeholder {enviroment} in run.command[2]" in done.stderr, \
        done.stderr
    assert "did you mean {environment}?" in done.stderr
    assert "Starting the action server" not in done.stdout


def test_operations_can_be_taught_and_chosen(rt: _runtime.Runtime, folder: Path) -> None:
    from actions.flows.teach import teach
    from actions.registry import offerable
    from actions.teaching import meaning_of
    from opsbot._teach import _intents
    from opsbot.settings import Settings

    write(folder, "ledger_op", operation("ledger_op"))
    titles = offerable()
    assert titles["ledger_op"] == "do ledger_op" and "deploy" in titles
    assert meaning_of(" I mean ledger_op", tuple(titles)) == "ledger_op"
    assert "restart_service" in _intents(Settings.from_env(ROOT))
    turn = Turn(OpsRequest("teach", "when I say 'bounce [payments](service)' I mean ledger_op",
                           0.99, {}), who("alice"), rt)
    asyncio.run(teach(turn))
    assert "ledger_op" in said(turn), said(turn)
    taught = rt.stores.taught.examples()
    assert [(t.intent, t.example) for t in taught] == [("ledger_op", "bounce [payments](service)")]


def test_a_command_still_executing_after_a_restart_is_said_to_be_of_unknown_end(
        rt: _runtime.Runtime, folder: Path) -> None:
    from actions.guard import ERROR

    write(folder, "ledger_op", operation("ledger_op"))
    op_id = only_operation(rt, ask(rt, "ledger_op", "x", service="payments", environment="dev"))
    op = rt.store.transition(op_id, {PENDING_CONFIRMATION}, "executing", actor="alice",
                             confirmed_by="alice")
    assert op is not None and rt.store.claim_execution(op_id, actor="alice")
    kind = kind_of("ledger_op")
    assert kind is not None and kind.resume is not None
    kind.resume(op)  # what the watcher does when a new action server starts
    after = rt.store.get(op_id)
    assert after is not None and after.state == ERROR and after.result == "interrupted"
    turn = Turn(OpsRequest("notify", "", 1.0, {}), who("alice"), rt)
    confirmations.deliver_completions(turn)
    assert "opsbot restarted while ledger op" in said(turn), said(turn)
