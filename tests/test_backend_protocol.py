"""Every backend through one protocol: declared once (name, product, variables, how it is
configured and what opsbot says when it is not), held by name, and health-checked at
start-up and in /ready."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions import _runtime
from actions.backends import JENKINS, JIRA, KINDS, LOGS, Backends
from actions.errors import BackendUnavailable, ConfigError
from actions.guard import OperationStore, Policy
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from opsbot._backend_checks import ping_all, startup_lines
from simulators.jenkins import JenkinsSimulator
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def jenkins() -> Iterator[JenkinsSimulator]:
    with JenkinsSimulator(queue_delay=0.0, build_seconds=60) as simulator:
        yield simulator


def test_each_kind_is_declared_once_with_what_configures_it() -> None:
    assert [kind.name for kind in KINDS] == ["jenkins", "jira", "logs", "github"]
    for kind in KINDS:
        assert kind.from_env({}) is None, f"{kind.name} is configured by an empty environment"
        assert kind.variables and all(v.isupper() for v in kind.variables)
        assert all(v in kind.variables for v in kind.setup.replace(",", " ").split()
                   if v.isupper()), f"{kind.name}: setup names a variable it does not read"


def test_the_runtime_holds_backends_by_name(jenkins: JenkinsSimulator) -> None:
    backends = Backends.from_env(KINDS, jenkins.env())
    assert backends.get(JENKINS) is not None and backends.get(JIRA) is None
    with pytest.raises(BackendUnavailable, match="No Jira is connected any more"):
        backends.connected(JIRA)
    assert not hasattr(_runtime.Runtime, "jenkins") and "jenkins" not in \
        _runtime.Runtime.__dataclass_fields__


def test_a_request_for_a_backend_that_is_not_configured_says_what_to_set(
        tmp_path: Path) -> None:
    rt = _runtime.Runtime(store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
                          policy=Policy.load(ROOT / "policy.yml"), rasa_url="http://127.0.0.1:9")
    turn = Turn(OpsRequest("query_logs", "errors from payments", 1.0, {"service": "payments"}),
                Who("rest", "alice", "alice", "alice"), rt)
    assert turn.backend(LOGS) is None
    [reply] = turn.replies
    assert reply["text"] == ("I understood: search the logs of payments. But no log source is "
                             "connected to opsbot (set LOKI_URL or OPSBOT_LOG_DIR), so nothing "
                             "ran.")
    rt.store.close()


def test_start_up_says_how_each_backend_answers(jenkins: JenkinsSimulator) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    lines = startup_lines({**jenkins.env(), "JIRA_URL": dead, "JIRA_USER": "opsbot",
                           "JIRA_TOKEN": "a-jira-token-0123", "JIRA_TIMEOUT": "2"})
    jenkins_line, jira_line, logs_line, github_line = lines
    assert jenkins_line.split()[:2] == ["Jenkins", "ok:"], jenkins_line
    assert "NOT REACHED: Could not reach Jira at" in jira_line and "JIRA_URL" in jira_line
    assert "a-jira-token-0123" not in jira_line
    assert "not configured (set LOKI_URL or OPSBOT_LOG_DIR to use it)" in logs_line
    assert "GitHub      not configured (set GITHUB_TOKEN, or GITHUB_APP_ID" in github_line


def test_a_malformed_setting_stops_start_up_naming_it() -> None:
    with pytest.raises(ConfigError, match="JENKINS_URL"):
        startup_lines({"JENKINS_URL": "ftp://jenkins", "JENKINS_USER": "u", "JENKINS_TOKEN": "t"})


def test_health_checks_run_at_once_and_say_which_failed(jenkins: JenkinsSimulator,
                                                         tmp_path: Path) -> None:
    backends = Backends.from_env(KINDS, {**jenkins.env(), "OPSBOT_LOG_DIR": str(tmp_path)})
    answers = asyncio.run(ping_all(backends, 5))
    assert answers["jenkins"][0] and answers["logs"] == (
        True, f"files:{tmp_path}, with logs of 0 services")
