"""Team-defined operations, end to end, as a team adds one: a file, `opsbot train`, the chat.

`opsbot demo --serve` runs on a copy of the project with a folder of the test's own in
OPSBOT_OPERATIONS_PATH. The test writes an operation there (a command that appends its
arguments to a file), retrains the running demo with `opsbot train --reload`, and asks
for it in plain language through the REST channel: the preview names the values, only
the requester's Confirm runs it, exactly once, with the values exactly as typed. The
demo's own example operations (restart, last restart, CDN purge, PR integration tests)
run against the demo's script, CDN simulator and Jenkins.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from opsbot._processes import stop_process
from opsbot.settings import Settings
from tests.conftest import (
    REST_AUTH,
    api,
    button_payload,
    copy_project,
    free_port,
    serve_demo,
    wait_until,
)

LEDGER_OPERATION = """\
name: record_note
description: Record a note in the ledger
examples:
  - record the note [hello world](note) in the ledger
  - write [deploy went fine](note) to the ledger
  - add [call the vendor](note) to the ledger
  - put [check disk space](note) in the ledger please
  - ledger note [rotate the keys](note)
  - note [the backup finished](note) in the ledger
parameters:
  note: {type: text, max_length: 200, description: note}
risk: change
run:
  command: [./append.py, "{note}", "by={requester}"]
  env: {LEDGER: "%(ledger)s"}
  timeout: 30s
success: "Noted in the ledger."
"""

APPEND = """\
#!/usr/bin/env python3
import json, os, sys
with open(os.environ["LEDGER"], "a", encoding="utf-8") as ledger:
    ledger.write(json.dumps(sys.argv[1:]) + "\\n")
print("appended", len(sys.argv) - 1, "arguments")
"""

VALUE = '; $(id) "'


@dataclasses.dataclass
class Demo:
    settings: Settings
    env: dict[str, str]
    ledger: Path

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        answer = requests.post(self.settings.rest_url, json={"sender": sender, "message": text},
                               headers=REST_AUTH, timeout=120)
        answer.raise_for_status()
        return list(answer.json())

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "opsbot", *args], cwd=self.settings.project,
                              env={**self.env, **env}, capture_output=True, text=True,
                              timeout=900)

    def bot_texts(self, sender: str) -> list[str]:
        base = f"http://{self.settings.host}:{self.settings.port}"
        tracker = requests.get(api(f"{base}/conversations/{sender}/tracker"), timeout=30).json()
        return [str(e.get("text") or "") for e in tracker["events"] if e["event"] == "bot"]

    def ledger_lines(self) -> list[list[str]]:
        if not self.ledger.exists():
            return []
        return [json.loads(line) for line in self.ledger.read_text().splitlines()]


def text_of(replies: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text") or "") for r in replies)


@pytest.fixture(scope="module")
def demo(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    root = tmp_path_factory.mktemp("project")
    models = copy_project(root, trained_model)
    team = tmp_path_factory.mktemp("team-operations")  # empty until the test writes to it
    ledger = tmp_path_factory.mktemp("ledger") / "ledger.jsonl"
    port, actions_port = free_port(), free_port()
    state = root / ".opsbot"
    settings = dataclasses.replace(Settings.from_env(root), port=port, actions_port=actions_port,
                                   state_dir=state, models=models)
    env = {**os.environ, "OPSBOT_STATE_DIR": str(state), "OPSBOT_MODELS": str(models),
           "OPSBOT_PORT": str(port), "PYTHONPATH": str(root),
           "OPSBOT_OPERATIONS_PATH": str(team), "OPSBOT_DEMO_BUILD_SECONDS": "2",
           "RESTART_SECONDS": "0"}
    env.pop("CDN_URL", None)  # the demo's CDN simulator provides both
    env.pop("CDN_TOKEN", None)
    process, _, _ = serve_demo(root, env, "--port", str(port), "--actions-port", str(actions_port))
    try:
        wait_until(lambda: (state / "trainer.port").exists(), "the demo's trainer did not start",
                   180)
        yield Demo(settings, env, ledger)
    finally:
        stop_process(process, grace=60)


@pytest.fixture(scope="module")
def trained(demo: Demo) -> Demo:
    """The running demo, retrained with the test's operation (as a team would)."""
    team = Path(demo.env["OPSBOT_OPERATIONS_PATH"])
    (team / "append.py").write_text(APPEND, encoding="utf-8")
    (team / "append.py").chmod(0o755)
    (team / "ledger.yml").write_text(LEDGER_OPERATION % {"ledger": demo.ledger}, encoding="utf-8")
    # The demo's CDN simulator gives the action server CDN_URL and CDN_TOKEN; this shell
    # has its own.
    checked = demo.cli("operations", "check", CDN_URL="http://127.0.0.1:9", CDN_TOKEN="t0ken")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    done = demo.cli("train", "--reload")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "now answers with" in done.stdout, done.stdout
    return demo


def test_a_new_operation_runs_once_with_its_values_exactly_as_typed(trained: Demo) -> None:
    replies = trained.say("alice", f"record the note {VALUE} in the ledger")
    preview = text_of(replies)
    assert "Record a note in the ledger" in preview, preview
    assert f"note: {VALUE}" in preview, preview
    assert "only alice can confirm" in preview, preview
    confirm = button_payload(replies, "Confirm")
    assert trained.ledger_lines() == []

    # alice's button in bob's REST conversation: made for another chat, refused there.
    refused = text_of(trained.say("bob", confirm))
    assert "made for another chat" in refused and "nothing was done" in refused, refused
    assert trained.ledger_lines() == []

    done = text_of(trained.say("alice", confirm))
    assert "Noted in the ledger." in done, done
    assert "appended 2 arguments" in done, done  # the output, in a code block
    assert trained.ledger_lines() == [[VALUE, "by=alice"]]

    again = text_of(trained.say("alice", confirm))
    assert "already confirmed" in again and "Nothing new ran" in again, again
    assert trained.ledger_lines() == [[VALUE, "by=alice"]]

    audit = trained.cli("audit", "--json", "--limit", "50")
    assert audit.returncode == 0, audit.stderr
    rows = [r for r in json.loads(audit.stdout) if r.get("intent") == "record_note"]
    assert any(r.get("state") == "succeeded" and r.get("requester") == "alice" for r in rows), rows


def test_an_invalid_value_is_named_and_asked_for_again_and_the_answer_taken_whole(
        trained: Demo) -> None:
    before = len(trained.ledger_lines())
    asked = text_of(trained.say("carol", f"record the note {'x' * 250} in the ledger"))
    assert "250 characters long" in asked and "at most 200" in asked, asked
    assert "What note?" in asked, asked
    replies = trained.say("carol", 'it\'s "quoted"; $(whoami) `id`')
    preview = text_of(replies)
    assert 'note: it\'s "quoted"; $(whoami) `id`' in preview, preview
    done = text_of(trained.say("carol", button_payload(replies, "Confirm")))
    assert "Noted in the ledger." in done, done
    assert trained.ledger_lines()[before:] == [['it\'s "quoted"; $(whoami) `id`', "by=carol"]]


def test_a_question_can_be_cancelled(trained: Demo) -> None:
    before = len(trained.ledger_lines())
    assert "What note?" in text_of(trained.say("bob", f"write {'y' * 300} to the ledger"))
    cancelled = text_of(trained.say("bob", "cancel"))
    assert "Nothing ran" in cancelled, cancelled
    assert len(trained.ledger_lines()) == before


def test_restart_the_payments_service_gets_the_restart_preview_and_runs(trained: Demo) -> None:
    replies = trained.say("alice", "restart the payments service on prod")
    preview = text_of(replies)
    assert "Restart a service" in preview and "service: payments" in preview, preview
    assert "environment: prod" in preview and "mode: graceful" in preview, preview
    done = text_of(trained.say("alice", button_payload(replies, "Confirm")))
    assert "Restarted payments on prod (graceful)." in done, done
    last = text_of(trained.say("alice", "when was payments last restarted?"))
    assert "payments" in last and "prod" in last and "alice" in last, last


def test_purging_the_cache_calls_the_demo_cdn(trained: Demo) -> None:
    replies = trained.say("alice", "purge the cdn cache for checkout on staging")
    preview = text_of(replies)
    assert "Purge the CDN cache" in preview and "POST" in preview, preview
    assert "Bearer" not in preview
    done = text_of(trained.say("alice", button_payload(replies, "Confirm")))
    assert "Purged the CDN cache of checkout on staging." in done, done


def test_the_pr_integration_tests_run_in_jenkins_and_report_their_end(trained: Demo) -> None:
    replies = trained.say("alice", "run the integration tests on PR 123")
    preview = text_of(replies)
    assert "integration-tests" in preview and "PR=123" in preview, preview
    started = text_of(trained.say("alice", button_payload(replies, "Confirm")))
    assert "started" in started and "integration-tests" in started, started
    # The end is posted into the conversation (the tracker records it).
    ended = wait_until(lambda: [t for t in trained.bot_texts("alice")
                                if "integration tests of PR 123 passed" in t
                                or ("integration-tests #" in t and "finished" in t)],
                       "the build's end was not reported", 120)
    assert "integration-tests #" in ended[-1], ended


def test_help_lists_the_teams_operations(trained: Demo) -> None:
    text = text_of(trained.say("alice", "help"))
    assert "Your team's operations" in text and "Restart a service" in text, text
    assert "Record a note in the ledger" in text, text
