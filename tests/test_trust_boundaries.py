"""The outsider's view: attacks on a running ``opsbot run`` (issue 12).

One ``opsbot run`` serves the module: real Rasa and action servers on free loopback
ports, the Telegram connector polling the Telegram simulator, the Teams connector
behind the Teams simulator's JWTs, and python-jenkins and jira against their simulators.
Each test plays someone who can reach every port but holds none of opsbot's secrets,
and checks that nothing ran (the simulators' build and issue counts) and what the person
was told.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from simulators.jenkins import JenkinsSimulator
from simulators.jira import JiraSimulator
from simulators.teams import TeamsSimulator
from simulators.telegram import ALICE, OPS_GROUP, TelegramSimulator
from tests.conftest import (
    REST_AUTH,
    ROOT,
    TEST_API_TOKEN,
    api,
    button_payload,
    free_port,
    serve_opsbot,
    wait_until,
)

MENTION = "@opsbot_demo_bot"
STRANGER = 999999
ELSEWHERE = -1009999999999  # a group opsbot was added to but that is not allowed


@dataclasses.dataclass
class Run:
    process: subprocess.Popen[str]
    output: list[str]
    port: int
    actions_port: int
    state: Path
    jenkins: JenkinsSimulator
    jira: JiraSimulator
    telegram: TelegramSimulator
    teams: TeamsSimulator

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest(self) -> str:
        return f"{self.base}/webhooks/rest/webhook"

    def builds(self) -> int:
        return sum(len(self.jenkins.builds(job)) for job in self.jenkins.job_names())

    def issues(self) -> int:
        return len(self.jira.issues())

    def say(self, sender: str, text: str, **extra: Any) -> list[dict[str, Any]]:
        answer = requests.post(self.rest, json={"sender": sender, "message": text, **extra},
                               headers=REST_AUTH, timeout=60)
        assert answer.status_code == 200, answer.text
        return list(answer.json())

    def audit_kinds(self) -> list[str]:
        import sqlite3

        with sqlite3.connect(self.state / "opsbot.db") as db:
            return [row[0] for row in db.execute("SELECT kind FROM opsbot_audit ORDER BY id")]


def _text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text") or "") for r in replies)


_button = button_payload


@pytest.fixture(scope="module")
def run(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    state = tmp_path_factory.mktemp("state")
    port, actions_port = free_port(), free_port()
    jenkins = JenkinsSimulator(queue_delay=0.1, build_seconds=1.0)
    jira_sim = JiraSimulator()
    telegram = TelegramSimulator()
    telegram.add_user(STRANGER, "Mallory", "mallory")
    telegram.add_group(ELSEWHERE, "elsewhere", members=(STRANGER, ALICE))
    telegram.member_joined(STRANGER, OPS_GROUP)
    teams = TeamsSimulator(bot_endpoint=f"http://127.0.0.1:{port}/webhooks/teams/api/messages")
    for sim in (jenkins, jira_sim, telegram, teams):
        sim.start()
    env = {**os.environ, "OPSBOT_STATE_DIR": str(state), "OPSBOT_MODELS": str(trained_model.parent),
           **jenkins.env(), **jira_sim.env(), **telegram.env(), **teams.env(),
           "TELEGRAM_POLL_TIMEOUT": "5", "OPSBOT_WATCH_POLL": "0.2",
           "JENKINS_TIMEOUT": "3", "OPSBOT_RECONCILE_WINDOW": "60"}
    process, output, _ = serve_opsbot(ROOT, env, "run", "--port", str(port),
                                      "--actions-port", str(actions_port))
    try:
        wait_until(lambda: telegram.waiting_polls() > 0, "the connector never polled getUpdates")
        yield Run(process, output, port, actions_port, state, jenkins, jira_sim, telegram, teams)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for sim in (jenkins, jira_sim, telegram, teams):
            sim.stop()


# -- the REST channel ---------------------------------------------------------------------


def test_rest_without_or_with_a_wrong_token_is_refused(run: Run) -> None:
    builds, issues = run.builds(), run.issues()
    body = {"sender": "alice", "message": "deploy payments 2.4.1 to staging"}
    for headers in ({}, {"Authorization": "Bearer wrong-token-wrong-token"},
                    {"Authorization": "Basic YWxpY2U6eWVz"},
                    {"Authorization": REST_AUTH["Authorization"].replace("Bearer ", "")}):
        answer = requests.post(run.rest, json=body, headers=headers, timeout=30)
        assert answer.status_code == 401, (headers, answer.text)
        assert "OPSBOT_REST_TOKEN" in answer.json()["error"]
    # Nothing reached the dialogue: alice has no conversation at all.
    tracker = requests.get(api(f"{run.base}/conversations/alice/tracker"), timeout=30).json()
    assert not [e for e in tracker["events"] if e.get("event") == "user"]
    assert run.builds() == builds and run.issues() == issues


def test_client_metadata_and_input_channel_decide_nothing(run: Run) -> None:
    """The integration speaks for rest:<sender>; claiming to be Telegram's alice changes nothing."""
    builds, comments = run.builds(), len(run.jira.issue("OPS-101").comments)
    forged = {"metadata": {"channel": "telegram", "user_id": str(ALICE),
                           "opsbot_identity": {"channel": "telegram", "user_id": str(ALICE),
                                               "sender_id": "mallory", "sig": "x" * 24}},
              "input_channel": "telegram"}
    replies = run.say("mallory", "deploy payments 2.4.1 to staging", **forged)
    text = _text(replies)
    assert "I don't know you yet" in text and "rest id, mallory" in text
    assert not any(r.get("buttons") for r in replies)
    assert "I don't know you yet" in _text(run.say("mallory", "yes", **forged))
    issues = run.issues()
    opened = _text(run.say("mallory", "open a high priority bug: checkout returns 502", **forged))
    assert "I don't know you yet" in opened and "Confirm" not in opened
    commented = _text(run.say("mallory", "comment on OPS-101: fixed", **forged))
    assert "I don't know you yet" in commented
    time.sleep(1.0)
    assert run.builds() == builds and run.issues() == issues
    assert len(run.jira.issue("OPS-101").comments) == comments
    # A sender that names another connector's conversation is refused outright.
    answer = requests.post(run.rest, json={"sender": f"telegram:{OPS_GROUP}:{ALICE}",
                                           "message": "yes"}, headers=REST_AUTH, timeout=30)
    assert answer.status_code == 400 and "sender" in answer.json()["error"]


# -- Rasa's HTTP API and the action server ------------------------------------------------

API_ROUTES = [
    ("GET", "/"), ("GET", "/version"), ("GET", "/status"), ("GET", "/domain"),
    ("GET", "/conversations/alice/tracker"), ("GET", "/conversations/alice/story"),
    ("POST", "/conversations/alice/tracker/events"), ("PUT", "/conversations/alice/tracker/events"),
    ("POST", "/conversations/alice/messages"), ("POST", "/conversations/alice/execute"),
    ("POST", "/conversations/alice/trigger_intent"), ("POST", "/conversations/alice/predict"),
    ("POST", "/model/train"), ("POST", "/model/test/stories"), ("POST", "/model/test/intents"),
    ("POST", "/model/predict"), ("POST", "/model/parse"), ("PUT", "/model"),
    ("DELETE", "/model"), ("POST", "/webhooks/opsbot/reload"),
]


def test_every_rasa_api_route_needs_the_token(run: Run) -> None:
    before = requests.get(api(f"{run.base}/status"), timeout=30).json()["model_file"]
    bodies = {"/conversations/alice/tracker/events": {"event": "slot", "name": "x", "value": 1},
              "/conversations/alice/execute": {"name": "action_confirm"},
              "/conversations/alice/trigger_intent": {"name": "affirm"},
              "/model": {"model_file": "/tmp/evil.tar.gz"}, "/model/parse": {"text": "hi"}}
    for method, path in API_ROUTES:
        for auth in ({}, {"params": {"token": "wrong"}},
                     {"headers": {"Authorization": "Bearer wrong"}}):
            answer = requests.request(method, f"{run.base}{path}", json=bodies.get(path, {}),
                                      timeout=30, **auth)  # type: ignore[arg-type]
            assert answer.status_code in (401, 403), (method, path, auth, answer.status_code)
    assert requests.get(api(f"{run.base}/status"), timeout=30).json()["model_file"] == before
    tracker = requests.get(api(f"{run.base}/conversations/alice/tracker"), timeout=30).json()
    assert not [e for e in tracker["events"] if e.get("event") in ("slot", "user")]
    assert requests.get(f"{run.base}/webhooks/opsbot/health", timeout=30).status_code == 200


def test_the_action_server_refuses_a_forged_tracker(run: Run) -> None:
    builds = run.builds()
    url = f"http://127.0.0.1:{run.actions_port}"
    tracker = {"sender_id": "alice", "slots": {}, "latest_message": {
        "text": "yes", "intent": {"name": "affirm", "confidence": 1.0}, "entities": [],
        "metadata": {"channel": "rest", "user_id": "alice"}}, "events": [],
        "paused": False, "followup_action": None, "active_loop": {},
        "latest_action_name": "action_listen"}
    body = {"next_action": "action_confirm", "sender_id": "alice", "tracker": tracker,
            "domain": {}, "version": "3.6.21"}
    for headers in ({}, {"X-Opsbot-Secret": "guess-guess-guess-guess"}):
        answer = requests.post(f"{url}/webhook", json=body, headers=headers, timeout=30)
        assert answer.status_code == 401, answer.text
        assert "tracker" not in answer.text  # nothing of the request is echoed
        assert requests.get(f"{url}/actions", headers=headers, timeout=30).status_code == 401
    assert requests.get(f"{url}/health", timeout=30).status_code == 200
    preflight = requests.options(f"{url}/webhook", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}, timeout=30)
    assert preflight.headers.get("Access-Control-Allow-Origin") in (None, "")
    assert run.builds() == builds


def _listening(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if int(hex_port, 16) == port and state == "0A":
                found.add(address)
    return found


def test_servers_listen_on_loopback_only(run: Run) -> None:
    assert _listening(run.actions_port) == {"0100007F"}  # 127.0.0.1
    assert _listening(run.port) == {"0100007F"}


# -- strangers in the chats ---------------------------------------------------------------


def test_a_stranger_in_an_allowed_telegram_group_gets_help_only(run: Run) -> None:
    builds = run.builds()
    after = _last(run.telegram, OPS_GROUP)
    run.telegram.send_text(STRANGER, f"{MENTION} deploy payments 2.4.1 to staging",
                           chat_id=OPS_GROUP)
    reply = run.telegram.wait_for_bot_message(OPS_GROUP, contains="know you", after=after,
                                              timeout=60)
    assert f"{STRANGER}" in reply["plain_text"] and not reply.get("reply_markup")
    after = _last(run.telegram, OPS_GROUP)
    run.telegram.send_text(STRANGER, f"{MENTION} what can you do?", chat_id=OPS_GROUP)
    run.telegram.wait_for_bot_message(OPS_GROUP, contains="I can help", after=after, timeout=60)
    assert run.builds() == builds


def test_a_stranger_in_a_private_chat_is_told_the_id_to_give(run: Run) -> None:
    run.telegram.send_text(STRANGER, "run the nightly-integration build")
    reply = run.telegram.wait_for_bot_message(STRANGER, contains="Telegram id", timeout=60)
    assert str(STRANGER) in reply["plain_text"]


def test_a_chat_that_is_not_allowed_gets_one_refusal_then_silence(run: Run) -> None:
    builds = run.builds()
    run.telegram.send_text(ALICE, f"{MENTION} deploy payments 2.4.1 to staging", chat_id=ELSEWHERE)
    refusal = run.telegram.wait_for_bot_message(ELSEWHERE, contains="TELEGRAM_ALLOWED_CHATS",
                                                timeout=60)
    assert str(ELSEWHERE) in refusal["plain_text"]
    run.telegram.send_text(ALICE, f"{MENTION} deploy payments 2.4.1 to staging", chat_id=ELSEWHERE)
    wait_until(lambda: run.telegram.pending_updates() == 0, "the update was not fetched")
    time.sleep(2.0)
    assert len(run.telegram.bot_messages(ELSEWHERE)) == 1
    assert run.builds() == builds


def _last(telegram: TelegramSimulator, chat: int) -> int:
    messages = telegram.bot_messages(chat)
    return int(messages[-1]["message_id"]) if messages else 0


@pytest.mark.parametrize("change", ["channel", "tenant", "aad"])
def test_teams_activities_from_elsewhere_are_refused(run: Run, change: str) -> None:
    builds = run.builds()
    teams = run.teams
    sent_before = len(teams.bot_activities())
    account = teams._user("alice")
    cid, aid = teams._resolve(account, "personal", None)
    activity = teams._activity(account, cid, aid, text="deploy payments 2.4.1 to staging",
                               textFormat="plain")
    if change == "channel":
        activity["channelId"] = "webchat"
    elif change == "tenant":
        activity["conversation"]["tenantId"] = "11111111-2222-3333-4444-555555555555"
        tenant = {"id": activity["conversation"]["tenantId"]}
        activity.setdefault("channelData", {})["tenant"] = tenant
    else:
        activity["from"].pop("aadObjectId", None)
    status, body = teams.resend(activity)
    assert status in (401, 403), (status, body)
    time.sleep(1.0)
    assert len(teams.bot_activities()) == sent_before
    assert run.builds() == builds


# -- buttons ------------------------------------------------------------------------------


def test_a_forged_or_edited_button_payload_is_refused_and_audited(run: Run) -> None:
    builds = len(run.jenkins.builds("deploy-search"))
    replies = run.say("alice", "deploy search 1.9.0 to staging")
    confirm = _button(replies, "Confirm")
    head, _, _ = confirm.rpartition(',"_sig"')
    unsigned = head + "}"
    edited = confirm.replace('"operation_id":"op-', '"operation_id":"op-0')
    for forged in (unsigned, edited, '/affirm{"operation_id":"op-000000000000"}'):
        text = _text(run.say("alice", forged))
        assert "I did not make it" in text, forged
    time.sleep(1.0)
    assert len(run.jenkins.builds("deploy-search")) == builds
    assert run.audit_kinds().count("forged_payload") >= 3
    # The real button still works, once.
    run.say("alice", confirm)
    wait_until(lambda: len(run.jenkins.builds("deploy-search")) == builds + 1,
               "the genuine confirmation did not run the deploy")
    run.say("alice", confirm)
    time.sleep(1.0)
    assert len(run.jenkins.builds("deploy-search")) == builds + 1


def test_the_token_is_not_printed_or_passed_on_the_command_line(run: Run) -> None:
    assert TEST_API_TOKEN not in "".join(run.output)
    for pid in _descendants(run.process.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert TEST_API_TOKEN not in cmdline
        assert "opsbot-test-actions-secret" not in cmdline


def _descendants(pid: int) -> list[int]:
    children: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.name))
    return children + [d for child in children for d in _descendants(child)]


# -- unknown outcomes ------------------------------------------------------------------------


def test_a_lost_answer_is_said_as_unknown_then_reconciled(run: Run) -> None:
    """Jenkins takes the build but answers after the client's timeout: never 'did not start'."""
    before = len(run.jenkins.builds("deploy-checkout"))
    confirm = _button(run.say("alice", "deploy checkout 5.14.0 to staging"), "Confirm")
    run.jenkins.respond_delay(8.0, path="deploy-checkout/buildWithParameters")
    text = _text(run.say("alice", confirm))
    assert "I could not confirm that Jenkins started" in text and "do not ask again yet" in text
    assert "did not start" not in text
    # A second yes runs nothing, whether the watcher has found the build yet or not.
    assert "nothing new ran" in _text(run.say("alice", confirm)).lower()

    def reported() -> list[str]:
        tracker = requests.get(api(f"{run.base}/conversations/alice/tracker"), timeout=30).json()
        return [e["text"] for e in tracker["events"] if e.get("event") == "bot"
                and "checkout 5.14.0 is live on staging" in (e.get("text") or "")]

    done = wait_until(reported, "the real result was never reported", timeout=120)
    assert "SUCCESS" in done[0]
    assert len(run.jenkins.builds("deploy-checkout")) == before + 1


# -- taught text and the audit log ----------------------------------------------------------


def test_a_taught_phrase_with_a_newline_is_refused(run: Run) -> None:
    import hashlib
    import sqlite3

    taught = ROOT / "data" / "nlu" / "taught.yml"
    before = hashlib.sha256(taught.read_bytes()).hexdigest() if taught.exists() else None
    with sqlite3.connect(run.state / "opsbot.db") as db:
        candidates = db.execute("SELECT count(*) FROM opsbot_taught").fetchone()[0]
    injected = "when I say 'ship it\n    - deploy payments to prod\n- intent: deploy' I mean deploy"
    text = _text(run.say("alice", injected))
    assert "one line" in text and "Noted" not in text
    with sqlite3.connect(run.state / "opsbot.db") as db:
        assert db.execute("SELECT count(*) FROM opsbot_taught").fetchone()[0] == candidates
    after = hashlib.sha256(taught.read_bytes()).hexdigest() if taught.exists() else None
    assert after == before


def _verify(db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSBOT_DB_URL": f"sqlite:///{db}"}
    env.pop("OPSBOT_AUDIT_FILE", None)
    return subprocess.run([sys.executable, "-m", "opsbot", "audit", "--verify"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


def _tamper(db: Path, statement: str) -> None:
    """What someone with write access to the store does: drop the triggers, then edit."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                    "AND tbl_name = 'opsbot_audit'").fetchall():
            conn.execute(f'DROP TRIGGER "{name}"')
        conn.execute(statement)


def test_an_edited_or_deleted_audit_row_is_caught(run: Run, tmp_path: Path) -> None:
    import shutil
    import sqlite3

    copy = tmp_path / "copy.db"
    with sqlite3.connect(run.state / "opsbot.db") as source, sqlite3.connect(copy) as target:
        source.backup(target)  # a consistent copy while the server writes
    clean = _verify(copy)
    assert clean.returncode == 0 and "OK" in clean.stdout, clean.stdout + clean.stderr
    with sqlite3.connect(copy) as conn:
        rows = [r[0] for r in conn.execute("SELECT id FROM opsbot_audit ORDER BY id")]
    assert len(rows) >= 5
    edited, deleted = tmp_path / "edited.db", tmp_path / "deleted.db"
    shutil.copy(copy, edited)
    shutil.copy(copy, deleted)
    middle = rows[len(rows) // 2]
    _tamper(edited, f"UPDATE opsbot_audit SET actor = 'carol' WHERE id = {middle}")
    _tamper(deleted, f"DELETE FROM opsbot_audit WHERE id = {middle}")
    following = rows[rows.index(middle) + 1]
    for db, named in ((edited, (middle,)), (deleted, (middle, following))):
        found = _verify(db)
        said = found.stdout + found.stderr
        assert found.returncode != 0, said
        assert any(f"row {row}" in said or f"id {row}" in said or f"#{row}" in said
                   for row in named), said
