"""The store's database goes away under a running opsbot, and comes back.

The action server and the Rasa server keep opsbot's store in PostgreSQL, reached through
a TCP relay the test can take away (``tests/_servers.Relay``); the conversations
(Rasa's tracker store) stay in a SQLite file of their own, so the turn reaches the
actions. While the database is away, what a chat member is told names the failed part
and a reference, never the database's host, port, user or name; every background loop
(the operation watcher, the event courier) says "down" once, not a traceback per
attempt; when it is back they say so once, and the next request works.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from opsbot._processes import Stack
from opsbot.settings import Settings
from simulators.jenkins import JenkinsSimulator
from tests._servers import Relay, pg_schema
from tests.conftest import ROOT, free_port, rest_say, wait_until

OUTAGE_SECONDS = 12.0


@dataclasses.dataclass
class Running:
    settings: Settings
    relay: Relay
    db_url: str
    logs: Path

    def say(self, sender: str, text: str) -> str:
        replies: list[dict[str, Any]] = rest_say(self.settings, sender, text, timeout=120)
        return "\n".join(str(r.get("text") or "") for r in replies)

    def log_text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8", errors="replace")
                         for p in sorted(self.logs.glob("*.log")))


@pytest.fixture(scope="module")
def running(trained_model: Path, tmp_path_factory: pytest.TempPathFactory,
            postgres_url: str) -> Iterator[Running]:
    jenkins = JenkinsSimulator(queue_delay=0.1, build_seconds=1.0)
    jenkins.start()
    server = make_url(postgres_url)
    relay = Relay((server.host or "127.0.0.1", int(server.port or 5432)))
    relay.start()
    state = tmp_path_factory.mktemp("state")
    try:
        with pg_schema(postgres_url, "opsbot_outage", port=relay.port) as db_url:
            env = {"OPSBOT_DB_URL": db_url,
                   "OPSBOT_TRACKER_URL": f"sqlite:///{state / 'trackers.db'}",
                   "OPSBOT_WATCH_POLL": "0.2", "OPSBOT_LEASE_SECONDS": "8",
                   "OPSBOT_EVENTS_INTERVAL": "0.5"}
            settings = dataclasses.replace(Settings.from_env(ROOT), port=free_port(),
                                           actions_port=free_port(), state_dir=state)
            stack = Stack(settings)
            try:
                stack.start_action_server({**jenkins.env(), **env})
                stack.start_rasa_server(trained_model, env)
                stack.wait_ready(timeout=240)
                yield Running(settings, relay, db_url, state / "logs")
            finally:
                stack.stop()
    finally:
        relay.stop()
        jenkins.stop()


def test_an_outage_is_said_without_the_database_and_logged_once_per_loop(
        running: Running) -> None:
    assert "Deploy payments 2.4.1 to dev" in running.say("alice", "deploy payments 2.4.1 to dev")
    before = running.log_text()
    url = make_url(running.db_url)
    secrets_of_the_database = [str(url.host), str(url.port), str(url.username),
                               str(url.database), "postgresql"]
    running.relay.stop()
    try:
        said = running.say("alice", "deploy checkout 5.13.1 to dev")
        assert "operation store is unreachable" in said, said
        assert re.search(r"reference [0-9a-f]{8}", said), said
        for secret in secrets_of_the_database:
            assert secret not in said, f"{secret!r} was told to the chat: {said}"
        time.sleep(OUTAGE_SECONDS)  # every loop tries many times meanwhile
    finally:
        running.relay.start()
    wait_until(lambda: "Deploy checkout" in running.say("alice", "deploy checkout 5.13.1 to dev"),
               "opsbot did not come back after the database did", 60)
    during = running.log_text()[len(before):]
    assert during.count("Traceback (most recent call last)") == 0, during[-4000:]
    # "<time> WARNING <logger>: <loop>: down: ..." (action server), "... <logger>  - ..." (Rasa)
    downs = re.findall(r"(?:WARNING|ERROR)\s+(\S+?):?\s+(?:-\s+)?(.+?): down: ", during)
    assert len(downs) >= 2 and len(downs) == len(set(downs)), downs  # watcher, courier ...
    assert all("operation store is unreachable" not in loop for _, loop in downs)
    wait_until(lambda: len(re.findall(r": back after ", running.log_text()[len(before):]))
               >= len(downs), f"a loop of {downs} never said it was back", 60)
