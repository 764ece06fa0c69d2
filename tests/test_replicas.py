"""Two replicas on one PostgreSQL and one Redis, and one of them killed (issue 15, item 4).

Each replica is a Rasa server and an action server of its own (as on two machines);
they share opsbot's store and Rasa's tracker store (one PostgreSQL schema), Rasa's lock
store (Redis) and one Jenkins. A conversation's messages go to both Rasa servers in
turn. Replica A is killed with SIGKILL after a deploy's confirmation and before its build
ends; replica B must take the build over (its lease runs out in OPSBOT_LEASE_SECONDS),
post the completion exactly once, let another conversation confirm the preview that A
showed, and leave an audit log whose chain holds.

Then two Rasa servers with the Telegram connector in polling mode: one polls (the other
waits: two would end each other's getUpdates with 409), the poller is killed, the other
takes over, and every update is handled once.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from actions.guard import OperationStore
from actions.storage.leases import leases
from connectors.telegram import sender_id_for
from opsbot._processes import Stack
from opsbot.settings import Settings
from simulators.jenkins import JenkinsSimulator
from simulators.telegram import ALICE, TelegramSimulator
from tests._servers import pg_schema
from tests.conftest import REST_AUTH, ROOT, api, button_payload, free_port, wait_until

pytestmark = pytest.mark.slow

POLICY = """\
confirmation_ttl: 10m
people:
  alice: {roles: [release-manager, developer], identities: {rest: alice}}
  carol: {roles: [release-manager, developer], identities: {rest: carol}}
everyone_roles: []
rules:
  - intents: [deploy, rollback, run_build, stop_build]
    risk: change
  - intents: [deploy_history, build_status, list_jobs, build_failure]
    risk: read
"""
LEASE_SECONDS = 4  # short, so the takeover is quick; production keeps 20
BUILD_SECONDS = 20.0  # long enough to kill a replica while the build runs


@dataclasses.dataclass
class Replica:
    name: str
    stack: Stack
    settings: Settings

    def say(self, sender: str, text: str) -> list[dict[str, Any]]:
        answer = requests.post(self.settings.rest_url, json={"sender": sender, "message": text},
                               headers=REST_AUTH, timeout=90)
        answer.raise_for_status()
        return list(answer.json())

    def bot_texts(self, sender: str) -> list[str]:
        base = f"http://{self.settings.host}:{self.settings.port}"
        answer = requests.get(api(f"{base}/conversations/{sender}/tracker"), timeout=30)
        answer.raise_for_status()
        return [str(e.get("text") or "") for e in answer.json()["events"] if e["event"] == "bot"]

    def kill(self) -> None:
        """SIGKILL every process of this replica: no shutdown code runs."""
        for child in self.stack.children:
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for child in self.stack.children:
            child.process.wait(timeout=30)


@dataclasses.dataclass
class Cluster:
    a: Replica
    b: Replica
    jenkins: JenkinsSimulator
    env: dict[str, str]


@pytest.fixture(scope="module")
def cluster(trained_model: Path, tmp_path_factory: pytest.TempPathFactory, postgres_url: str,
            redis_url: str) -> Iterator[Cluster]:
    jenkins = JenkinsSimulator(queue_delay=0.1, build_seconds=BUILD_SECONDS)
    jenkins.start()
    policy = tmp_path_factory.mktemp("policy") / "policy.yml"
    policy.write_text(POLICY, encoding="utf-8")
    replicas: list[Replica] = []
    try:
        with pg_schema(postgres_url, "opsbot_replicas") as db_url:
            shared = {"OPSBOT_DB_URL": db_url, "OPSBOT_REDIS_URL": redis_url,
                      "OPSBOT_POLICY": str(policy), "OPSBOT_LEASE_SECONDS": str(LEASE_SECONDS),
                      "OPSBOT_WATCH_POLL": "0.5", "OPSBOT_MODEL_SYNC_SECONDS": "1"}
            try:
                for name in ("a", "b"):
                    state = tmp_path_factory.mktemp(f"replica-{name}")
                    settings = dataclasses.replace(
                        Settings.from_env(ROOT), port=free_port(), actions_port=free_port(),
                        state_dir=state, models=state / "models")  # a machine's own disk
                    stack = Stack(settings)
                    replicas.append(Replica(name, stack, settings))
                    stack.start_action_server({**jenkins.env(), **shared})
                    stack.start_rasa_server(trained_model, shared)
                for replica in replicas:
                    replica.stack.wait_ready(timeout=240)
                yield Cluster(replicas[0], replicas[1], jenkins, {**jenkins.env(), **shared})
            finally:
                for replica in replicas:
                    replica.stack.stop()
    finally:
        jenkins.stop()


def _text(replies: list[dict[str, Any]]) -> str:
    return "\n".join(str(r.get("text") or "") for r in replies)


def _model_file(replica: Replica) -> str:
    base = f"http://{replica.settings.host}:{replica.settings.port}"
    return str(requests.get(api(f"{base}/status"), timeout=30).json().get("model_file") or "")


def test_a_model_reloaded_on_one_replica_reaches_the_other(cluster: Cluster,
                                                           trained_model: Path) -> None:
    a, b = cluster.a, cluster.b
    a.settings.models.mkdir(parents=True, exist_ok=True)
    new = a.settings.models / "20991231-000000-taught.tar.gz"  # as `opsbot train` names them
    shutil.copyfile(trained_model, new)
    base = f"http://{a.settings.host}:{a.settings.port}"
    answer = requests.post(api(f"{base}/webhooks/opsbot/reload"), json={"model": str(new)},
                           timeout=300)
    assert answer.status_code == 200 and answer.json()["reloaded"] is True, answer.text
    assert answer.json()["shared"] is True
    assert Path(_model_file(a)).name == new.name
    wait_until(lambda: Path(_model_file(b)).name == new.name,
               "replica B never took the model A published", timeout=120)
    assert (b.settings.models / new.name).read_bytes() == new.read_bytes()  # B's own copy
    assert _text(b.say("alice", "hi"))  # and answers with it


def test_a_killed_replica_hands_its_build_and_conversations_to_the_survivor(
        cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    payments = len(cluster.jenkins.builds("deploy-payments"))
    checkout = len(cluster.jenkins.builds("deploy-checkout"))

    # One conversation across both replicas: the preview from B, the confirmation to A.
    preview = b.say("alice", "deploy payments 2.4.1 to staging")
    assert "Deploy payments 2.4.1 to staging" in _text(preview), preview
    started = a.say("alice", button_payload(preview, "Confirm"))
    assert "started" in _text(started), started
    wait_until(lambda: len(cluster.jenkins.builds("deploy-payments")) == payments + 1,
               "the confirmed deploy never reached Jenkins", timeout=60)
    # Another conversation has a preview waiting when A dies.
    pending = a.say("carol", "deploy checkout 5.13.1 to dev")
    confirm = button_payload(pending, "Confirm")
    build = cluster.jenkins.builds("deploy-payments")[-1]
    assert build.building, "the build ended before the replica could be killed"

    a.kill()

    # The survivor takes the preview A made and runs it, once.
    assert "started" in _text(b.say("carol", confirm))
    assert "Nothing new ran" in _text(b.say("carol", confirm))
    # ... and takes over A's build when A's lease runs out, and reports its end once.
    done = wait_until(lambda: [t for t in b.bot_texts("alice") if "is live on staging" in t],
                      "the survivor never reported the build A was following",
                      timeout=BUILD_SECONDS + 90)
    assert "payments 2.4.1" in done[0] and "SUCCESS" in done[0]
    wait_until(lambda: [t for t in b.bot_texts("carol") if "is live on dev" in t],
               "carol's deploy through the survivor was never reported",
               timeout=BUILD_SECONDS + 90)
    time.sleep(LEASE_SECONDS)  # a second report would come within a lease or two
    assert len([t for t in b.bot_texts("alice") if "is live on staging" in t]) == 1
    assert len([t for t in b.bot_texts("carol") if "is live on dev" in t]) == 1
    assert len(cluster.jenkins.builds("deploy-payments")) == payments + 1
    assert len(cluster.jenkins.builds("deploy-checkout")) == checkout + 1

    # The conversation goes on through the survivor, and the audit chain holds.
    assert b.say("alice", "hi")
    verify = subprocess.run([sys.executable, "-m", "opsbot", "audit", "--verify"],
                            cwd=ROOT, env={**os.environ, **cluster.env}, capture_output=True,
                            text=True, timeout=120, check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The takeover is counted on B's /metrics; B is ready (its Redis too), A is gone.
    base = f"http://{b.settings.host}:{b.settings.port}"
    ready = requests.get(f"{base}/ready", timeout=30).json()
    assert (ready["ready"], ready["checks"]) == (True, {
        "model": "ok", "tracker_store": "ok", "store": "ok", "redis": "ok"}), ready
    scraped = requests.get(api(f"{base}/metrics"), timeout=30).text
    assert 'opsbot_lease_owner_changes_total{lease="operation"} 1.0' in scraped


# -- the Telegram poller -------------------------------------------------------------------


@dataclasses.dataclass
class Pollers:
    replicas: list[Replica]
    telegram: TelegramSimulator
    store: OperationStore

    def polling(self) -> Replica | None:
        """The replica whose Rasa server holds the polling lease now."""
        with self.store.database.connection() as conn:
            owners = [str(o) for o in conn.execute(sa.select(leases.c.owner).where(
                leases.c.name.like("telegram-poller:%"), leases.c.until > datetime.now(UTC)
            )).scalars()]
        for replica in self.replicas:
            rasa = next(c for c in replica.stack.children if c.name == "rasa")
            if any(o.endswith(f":{rasa.process.pid}") for o in owners):
                return replica
        return None


@pytest.fixture(scope="module")
def pollers(trained_model: Path, tmp_path_factory: pytest.TempPathFactory, postgres_url: str,
            redis_url: str) -> Iterator[Pollers]:
    """Two replicas whose Rasa servers have the Telegram connector in polling mode, on
    one store and one Redis."""
    telegram = TelegramSimulator()
    telegram.start()
    replicas: list[Replica] = []
    try:
        with pg_schema(postgres_url, "opsbot_pollers") as db_url:
            shared = {"OPSBOT_DB_URL": db_url, "OPSBOT_REDIS_URL": redis_url,
                      "OPSBOT_LEASE_SECONDS": str(LEASE_SECONDS)}
            store = OperationStore(db_url)
            try:
                for name in ("a", "b"):
                    settings = dataclasses.replace(
                        Settings.from_env(ROOT), port=free_port(), actions_port=free_port(),
                        state_dir=tmp_path_factory.mktemp(f"poller-{name}"))
                    stack = Stack(settings)
                    replicas.append(Replica(name, stack, settings))
                    stack.start_action_server(shared)
                    stack.start_rasa_server(trained_model, {
                        **telegram.env(), **shared, "TELEGRAM_POLL_TIMEOUT": "2"})
                for replica in replicas:
                    replica.stack.wait_ready(timeout=240)
                yield Pollers(replicas, telegram, store)
            finally:
                for replica in replicas:
                    replica.stack.stop()
                store.close()
    finally:
        telegram.stop()


def _conflicts(telegram: TelegramSimulator) -> int:
    return sum(1 for r in telegram.request_log() if r.api_method == "getUpdates"
               and r.status == 409)


def _answered(telegram: TelegramSimulator, text: str) -> dict[str, Any]:
    after = max([int(m["message_id"]) for m in telegram.bot_messages(ALICE)], default=0)
    telegram.send_text(ALICE, text)
    return telegram.wait_for_bot_message(ALICE, after=after, timeout=90)


def test_one_replica_polls_telegram_and_another_takes_over_when_it_dies(
        pollers: Pollers) -> None:
    telegram = pollers.telegram
    first = wait_until(pollers.polling, "no replica took the Telegram polling lease",
                       timeout=60)
    other = next(r for r in pollers.replicas if r is not first)
    wait_until(lambda: telegram.waiting_polls() > 0, "nobody polls getUpdates", timeout=60)
    time.sleep(LEASE_SECONDS)  # both are up: the other one must wait, not poll too
    assert pollers.polling() is first
    assert _conflicts(telegram) == 0, "before the kill"  # two pollers: 409s
    sent = ["hi", "help", "what can you do?"]
    assert _answered(telegram, sent[0])

    # A turn is saved after its replies are sent: let it be, before the kill (a replica
    # killed mid-turn loses that turn, as any Rasa server would).
    sender = sender_id_for(ALICE, ALICE)
    wait_until(lambda: _user_texts(other, sender) == sent[:1], "the first turn was not saved")
    first.kill()

    wait_until(lambda: pollers.polling() is other, "the survivor never took the polling lease",
               timeout=LEASE_SECONDS * 4 + 30)
    for text in sent[1:]:
        assert _answered(telegram, text)
    time.sleep(LEASE_SECONDS)
    # Every update was handled once: the conversation (one tracker, shared) holds each
    # message once, whichever replica read it.
    assert _user_texts(other, sender) == sent
    # At most one 409: the dead poller's last long poll, still open in Telegram, ended by
    # the survivor's first one (as Telegram would). A live pair would keep ending each other's.
    assert _conflicts(telegram) <= 1, [(r.params.get("offset"), r.status, r.description)
                                       for r in telegram.request_log()
                                       if r.api_method == "getUpdates"][-12:]


def _user_texts(replica: Replica, sender: str) -> list[str]:
    base = f"http://{replica.settings.host}:{replica.settings.port}"
    answer = requests.get(api(f"{base}/conversations/{sender}/tracker?include_events=ALL"),
                          timeout=30)
    answer.raise_for_status()
    return [str(e.get("text")) for e in answer.json()["events"] if e["event"] == "user"]
