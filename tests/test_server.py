"""End to end: `opsbot demo --serve` answers on the REST channel and stops cleanly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jenkins
import pytest
import requests

from opsbot._chat import chat
from opsbot._sim_chat import TelegramChannel, sim_chat
from simulators.telegram import ALICE, BOB, TelegramSimulator
from tests.conftest import REST_AUTH, TEST_REST_TOKEN, api, free_port, serve_demo

ROOT = Path(__file__).parent.parent


def descendants(pid: int) -> set[int]:
    """All processes below ``pid`` (from /proc: no extra dependency)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def post(url: str, sender: str, message: str) -> list[dict]:
    request = urllib.request.Request(
        url, data=json.dumps({"sender": sender, "message": message}).encode(),
        headers={"Content-Type": "application/json", **REST_AUTH},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def served(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    port, actions_port = free_port(), free_port()
    state = tmp_path_factory.mktemp("state")
    # An outside Telegram client on loopback, given to opsbot as TELEGRAM_API_URL (issue 5).
    telegram = TelegramSimulator()
    telegram.start()
    process, output, ready_after = serve_demo(
        ROOT, {**os.environ, "OPSBOT_MODELS": str(trained_model.parent),
               "OPSBOT_STATE_DIR": str(state), "OPSBOT_DEMO_BUILD_SECONDS": "2",
               "OPSBOT_WATCH_POLL": "0.3", **telegram.env(), "TELEGRAM_POLL_TIMEOUT": "5"},
        "--port", str(port), "--actions-port", str(actions_port))
    url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"
    info = {"process": process, "url": url, "ready_after": ready_after,
            "output": output, "port": port, "state": state, "telegram": telegram}
    yield info
    if process.poll() is None:
        process.kill()
        process.wait()
    telegram.stop()


def test_ready_and_prints_the_urls(served: dict) -> None:
    text = "".join(served["output"])
    assert served["url"] in text
    assert f"http://127.0.0.1:{served['port']}/conversations/<sender>/tracker" in text


def test_the_demo_prints_opsbot_lines_only(served: dict) -> None:
    """A newcomer's first screen: the libraries' warnings are in the logs, not here."""
    noise = [line for line in served["output"] if "Warning" in line or "warn(" in line]
    assert not noise, "".join(served["output"])


def test_answers_what_can_you_do(served: dict) -> None:
    replies = post(served["url"], "alice", "what can you do?")
    text = " ".join(r.get("text", "") for r in replies)
    assert "deploy payments 2.4.1 to staging" in text


def _jenkins(served: dict) -> jenkins.Jenkins:
    """python-jenkins against the simulator whose URL and credentials the demo printed."""
    text = "".join(served["output"])
    found = re.search(r"Jenkins \S+ at (http://\S+) \(user (\S+), token (\w+)\)", text)
    assert found, text
    return jenkins.Jenkins(found.group(1), username=found.group(2), password=found.group(3),
                           timeout=10)


def test_a_confirmed_deploy_in_the_demo(served: dict) -> None:
    """Issue 3's acceptance: one build per confirmation, only alice's, reported and audited."""
    server = _jenkins(served)
    before = server.get_job_info("deploy-payments")["lastBuild"]["number"]
    replies = post(served["url"], "alice", "deploy payments 2.4.1 to staging")
    text = " ".join(r.get("text", "") for r in replies)
    assert "Deploy payments 2.4.1 to staging with job deploy-payments" in text
    confirm = next(b["payload"] for r in replies for b in r.get("buttons") or []
                   if b["title"] == "Confirm")
    post(served["url"], "alice", confirm)
    post(served["url"], "alice", confirm)
    post(served["url"], "bob", confirm)
    deadline = time.monotonic() + 60
    completion: list[str] = []
    while time.monotonic() < deadline and not completion:
        time.sleep(0.5)
        tracker = requests.get(api(f"http://127.0.0.1:{served['port']}/conversations/alice/tracker"),
                               timeout=10).json()
        completion = [e["text"] for e in tracker["events"]
                      if e["event"] == "bot" and "is live on staging" in (e.get("text") or "")]
    assert completion and "SUCCESS" in completion[0]
    info = server.get_job_info("deploy-payments")
    assert info["lastBuild"]["number"] == before + 1
    build = server.get_build_info("deploy-payments", before + 1)
    parameters = {p["name"]: p["value"] for a in build["actions"] if a.get("parameters")
                  for p in a["parameters"]}
    assert parameters.pop("OPSBOT_OPERATION").startswith("op-")  # how opsbot finds its build
    assert parameters == {"SERVICE": "payments", "VERSION": "2.4.1", "ENVIRONMENT": "staging"}

    out = subprocess.run([sys.executable, "-m", "opsbot", "audit", "--json", "--intent", "deploy"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OPSBOT_STATE_DIR": str(served["state"])})
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)[0]
    assert record["requester"] == "alice" and record["confirmed_by"] == "alice"
    assert record["parameters"]["version"] == "2.4.1" and record["result"] == "SUCCESS"


def test_an_issue_opened_in_the_demo(served: dict) -> None:
    """Issue 4's acceptance: one High issue with that summary, audited."""
    import jira as jira_library

    text = "".join(served["output"])
    found = re.search(r"Jira \S+ at (http://\S+) \(user (\S+), token ([^)\s]+)\)", text)
    assert found, text
    client = jira_library.JIRA(server=found.group(1),
                               basic_auth=(found.group(2), found.group(3)), max_retries=0)
    summary = "checkout returns 502 on prod"
    replies = post(served["url"], "alice", f"open a high priority bug: {summary}")
    confirm = next(b["payload"] for r in replies for b in r.get("buttons") or []
                   if b["title"] == "Confirm")
    post(served["url"], "alice", confirm)
    post(served["url"], "alice", confirm)
    issues = client.search_issues(f'summary ~ "{summary}"')
    assert len(issues) == 1
    assert issues[0].fields.summary == summary and issues[0].fields.priority.name == "High"
    out = subprocess.run([sys.executable, "-m", "opsbot", "audit", "--json", "--intent",
                          "create_issue"], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "OPSBOT_STATE_DIR": str(served["state"])})
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)[0]
    assert record["parameters"]["summary"] == summary and record["result"] == "SUCCESS"
    assert record["backend"]["issue_key"] == issues[0].key


def test_errors_from_payments_in_the_demo(served: dict) -> None:
    replies = post(served["url"], "bob", "errors from payments in the last hour")
    text = " ".join(r.get("text", "") for r in replies)
    assert "error lines from payments" in text and "ERROR" in text


def test_out_of_scope_and_greeting(served: dict) -> None:
    assert "I can't do that" in post(served["url"], "bob", "order me a large pizza")[0]["text"]
    assert "opsbot" in post(served["url"], "bob", "hello there")[0]["text"]


# Issue 27's table: requests opsbot has no operation for, each once answered with an
# operation it does have. Now each is refused, or its unknown name said.
NOT_MINE = [
    "scale checkout to 4 replicas",
    "create a feature flag for the new checkout flow",
    "drain node worker-3 before the kernel upgrade",
    "merge pull request 42 into main",
    "wipe all the disks on prod",
    "upgrade postgres to 16 on staging",
    "run terraform apply on staging",
    "add bob to the release managers group",
    "roll back my dentist appointment to tuesday",
    "give me admin access to jenkins",
]
_REFUSED = re.compile(r"I can't do that|I don't know an? [\w ]+ called|no issue|does not exist|"
                      r"can't find")


@pytest.mark.parametrize("text", NOT_MINE)
def test_a_request_opsbot_cannot_serve_gets_no_other_operation(served: dict, text: str) -> None:
    """No preview, no Confirm, no question about another operation: what it cannot do,
    and what it can do with the thing named (or that the name is unknown)."""
    replies = post(served["url"], "alice", text)
    said = " ".join(r.get("text", "") for r in replies)
    assert _REFUSED.search(said), said
    assert not [r for r in replies if r.get("buttons")], replies
    assert not re.search(r"Confirm|Which (service|job|environment)|\?$", said), said


def test_what_opsbot_can_do_with_the_thing_named(served: dict) -> None:
    said = post(served["url"], "alice", "scale checkout to 4 replicas")[0]["text"]
    assert "With checkout I can: deploy a version" in said
    assert "opsbot operations new NAME" in said


def test_terminal_chat_against_the_server(served: dict, capsys: pytest.CaptureFixture[str]) -> None:
    lines = iter(["what can you do?", "/quit"])
    chat(served["url"], "carol", read=lambda prompt: next(lines), token=TEST_REST_TOKEN)
    assert "opsbot> I can help with builds" in capsys.readouterr().out


def test_a_telegram_client_drives_a_confirmed_deploy(served: dict) -> None:
    """Issue 5's acceptance: polling mode against TELEGRAM_API_URL, the confirmer checked."""
    telegram: TelegramSimulator = served["telegram"]
    server = _jenkins(served)
    before = server.get_job_info("deploy-checkout")["lastBuild"]["number"]
    telegram.send_text(ALICE, "deploy checkout 5.13.1 to staging")
    preview = telegram.wait_for_bot_message(ALICE, contains="Deploy checkout 5.13.1 to staging",
                                            timeout=60)
    buttons = [b["text"] for row in preview["reply_markup"]["inline_keyboard"] for b in row]
    assert buttons == ["Confirm", "Cancel"]
    # bob presses alice's button (a forged press: it is not in his chat) and is refused.
    data = preview["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
    telegram.press(BOB, ALICE, int(preview["message_id"]), data=data, force=True)
    telegram.wait_for_bot_message(ALICE, contains="Only alice", after=int(preview["message_id"]),
                                  timeout=60)
    time.sleep(0.5)
    assert server.get_job_info("deploy-checkout")["lastBuild"]["number"] == before
    telegram.press(ALICE, ALICE, int(preview["message_id"]), title="Confirm")
    telegram.wait_for_bot_message(ALICE, contains="started", after=int(preview["message_id"]),
                                  timeout=60)
    telegram.wait_for_bot_message(ALICE, contains="is live on staging: SUCCESS",
                                  after=int(preview["message_id"]), timeout=60)
    assert server.get_job_info("deploy-checkout")["lastBuild"]["number"] == before + 1
    # The keyboard was taken off the preview, so no stale Confirm is left to press.
    assert not telegram.wait_for_edit(ALICE, int(preview["message_id"]))["reply_markup"]


def test_terminal_chat_through_telegram(served: dict, capsys: pytest.CaptureFixture[str]) -> None:
    lines = iter(["what can you do?", "/as bob", "hi", "/quit"])
    sim_chat(TelegramChannel(served["telegram"]), "alice", read=lambda prompt: next(lines),
             quiet_after=0.5)
    out = capsys.readouterr().out
    assert "Chatting as alice in the Telegram group 'ops'" in out
    assert "opsbot> I can help with builds" in out


def test_the_rasa_server_holds_no_tensorflow_and_no_trainer_runs_until_asked(
        served: dict) -> None:
    """Memory (python -m bench.memory): the model has no TensorFlow component, so the
    Rasa server runs without TensorFlow; the trainer starts when a retrain asks for it."""
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                for pid in descendants(served["process"].pid)}
    rasa = [pid for pid, command in commands.items() if "opsbot._rasa_server" in command]
    assert len(rasa) == 1, commands
    assert "tensorflow" not in Path(f"/proc/{rasa[0]}/maps").read_text()
    assert not [command for command in commands.values() if "opsbot._trainer" in command]
    assert (served["state"] / "trainer.port").exists()


def test_sigterm_stops_everything(served: dict) -> None:
    process: subprocess.Popen = served["process"]
    family = descendants(process.pid)
    assert family, "the demo runs its servers as child processes"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [pid for pid in family if alive(pid)] == []
