"""``/health``, ``/ready`` and ``/metrics`` on a running Rasa server (issue 15, item 3).

The stack's store is PostgreSQL, reached through a TCP relay that the test can stop and
start again on the same port: stopping it is, for opsbot, the database going away (its
connections drop and new ones are refused), and ``/ready`` must follow both ways without
a restart of anything.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy.engine import make_url

from opsbot._processes import Stack
from opsbot.settings import Settings
from simulators.jenkins import JenkinsSimulator
from tests._servers import Relay, pg_schema
from tests.conftest import ROOT, TEST_API_TOKEN, free_port, rest_say, wait_until


@dataclasses.dataclass
class Served:
    settings: Settings
    relay: Relay

    @property
    def base(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"


@pytest.fixture(scope="module")
def served(trained_model: Path, tmp_path_factory: pytest.TempPathFactory,
           postgres_url: str) -> Iterator[Served]:
    url = make_url(postgres_url)
    relay = Relay((url.host or "127.0.0.1", int(url.port or 5432)))
    relay.start()
    state = tmp_path_factory.mktemp("state")
    settings = dataclasses.replace(Settings.from_env(ROOT), port=free_port(),
                                   actions_port=free_port(), state_dir=state)
    jenkins = JenkinsSimulator(queue_delay=0.1, build_seconds=1.0)
    jenkins.start()
    stack = Stack(settings)
    try:
        with pg_schema(postgres_url, "opsbot_health", port=relay.port) as db_url:
            try:
                env = {**jenkins.env(), "OPSBOT_DB_URL": db_url}
                stack.start_action_server(env)
                stack.start_rasa_server(trained_model, env)
                stack.wait_ready(timeout=180)
                yield Served(settings, relay)
            finally:
                stack.stop()
    finally:
        jenkins.stop()
        relay.stop()


def _ready(served: Served) -> tuple[int, Any]:
    answer = requests.get(f"{served.base}/ready", timeout=30)
    return answer.status_code, answer.json()


def test_health_is_open_and_says_nothing_else(served: Served) -> None:
    answer = requests.get(f"{served.base}/health", timeout=30)
    assert answer.status_code == 200 and answer.json() == {"status": "ok"}


def test_metrics_need_the_token_and_show_a_conversation(served: Served) -> None:
    assert requests.get(f"{served.base}/metrics", timeout=30).status_code == 401
    assert requests.get(f"{served.base}/metrics?token=wrong-token-0123456789",
                        timeout=30).status_code == 401
    rest_say(served.settings, "alice", "hi")
    rest_say(served.settings, "alice", "what's the status of nightly-integration?")
    rest_say(served.settings, "alice", "florp zzxq blarg")  # NLU cannot place it
    for auth in ({"params": {"token": TEST_API_TOKEN}},
                 {"headers": {"Authorization": f"Bearer {TEST_API_TOKEN}"}}):
        answer = requests.get(f"{served.base}/metrics", timeout=30, **auth)  # type: ignore[arg-type]
        assert answer.status_code == 200 and answer.headers["Content-Type"].startswith(
            "text/plain")
    text = answer.text
    assert 'opsbot_messages_total{channel="rest",intent="greet"} 1.0' in text, text
    assert 'opsbot_turn_seconds_count{channel="rest"} 3.0' in text
    assert "opsbot_nlu_confidence_count 3.0" in text
    assert 'opsbot_fallbacks_total{channel="rest",intent=' in text
    # the action server's part
    assert 'opsbot_backend_calls_total{backend="jenkins",outcome="ok"}' in text
    assert "opsbot_backend_call_seconds_bucket" in text
    assert "# TYPE opsbot_operations gauge" in text
    # "florp zzxq blarg" may be answered "I can't do that", which keeps it as a wish.
    assert re.search(r"^opsbot_wishes_uncovered [01]\.?0?$", text, re.MULTILINE), text
    assert "# TYPE opsbot_wishes_total counter" in text
    assert "# TYPE opsbot_confirmations_refused_total counter" in text
    assert "# TYPE opsbot_delivery_retries_total counter" in text
    assert "# TYPE opsbot_lease_owner_changes_total counter" in text
    assert "process_cpu_seconds_total" in text
    assert "opsbot_actions_process_cpu_seconds_total" in text
    assert "password" not in text.lower() and "missing" not in text


def test_ready_follows_the_database_without_a_restart(served: Served) -> None:
    status, body = _ready(served)
    assert status == 200 and body == {"ready": True, "checks": {
        "model": "ok", "tracker_store": "ok", "store": "ok"}, "backends": {"jenkins": "ok"}}, body
    served.relay.stop()
    try:
        status, body = wait_until(lambda: (r := _ready(served))[0] == 503 and r,
                                  "/ready stayed ready with the database gone", timeout=60)
        assert body["ready"] is False and body["checks"]["store"] != "ok"
        assert body["checks"]["tracker_store"] != "ok"  # OPSBOT_DB_URL's database too
        assert body["checks"]["model"] == "ok"
        assert "opsbot_test" not in str(body)  # no URL, user or password in the answer
        assert requests.get(f"{served.base}/health", timeout=30).status_code == 200
    finally:
        served.relay.start()
    wait_until(lambda: _ready(served)[0] == 200, "/ready never came back with the database",
               timeout=60)
    assert rest_say(served.settings, "alice", "hi")  # and it answers again
