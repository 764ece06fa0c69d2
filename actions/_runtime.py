"""The action server's long-lived parts, built once from the environment on first use.

Variables (README, "Configuration"):

  JENKINS_URL, JENKINS_USER, JENKINS_TOKEN   the Jenkins opsbot drives (unset: none connected)
  JIRA_URL, JIRA_USER, JIRA_TOKEN            the Jira opsbot drives (unset: none connected)
  OPSBOT_JIRA_PROJECT  the project new issues go to when none is named (default: the first)
  LOKI_URL / OPSBOT_LOG_DIR                  the log source: Grafana Loki, or a directory of files
  OPSBOT_DB_URL        the operation store and audit log (default: SQLite in the state dir)
  OPSBOT_POLICY        policy.yml to use (default: the project's)
  OPSBOT_RASA_URL      the Rasa server's HTTP API, for completion messages (http://127.0.0.1:5005)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from actions.backends.jenkins import JenkinsBackend, JenkinsConfig
from actions.backends.jira import JiraBackend, JiraConfig
from actions.backends.logs import LogSource, log_source_from_env
from actions.guard import OperationStore, Policy

PROJECT = Path(__file__).resolve().parent.parent


@dataclass
class Runtime:
    """Backends, store and policy shared by every action in this process."""

    jenkins: JenkinsBackend | None
    store: OperationStore
    policy: Policy
    rasa_url: str
    jira: JiraBackend | None = None
    logs: LogSource | None = None
    jira_project: str | None = None

    @classmethod
    def from_env(cls) -> Runtime:
        config = JenkinsConfig.from_env()
        jira = JiraConfig.from_env()
        return cls(
            jenkins=JenkinsBackend(config) if config else None,
            jira=JiraBackend(jira) if jira else None,
            logs=log_source_from_env(),
            jira_project=(os.environ.get("OPSBOT_JIRA_PROJECT") or "").strip().upper() or None,
            store=OperationStore.from_env(),
            policy=Policy.from_env(PROJECT),
            rasa_url=(os.environ.get("OPSBOT_RASA_URL") or "http://127.0.0.1:5005").rstrip("/"),
        )


_lock = threading.Lock()
_runtime: Runtime | None = None


def runtime() -> Runtime:
    """The process-wide runtime; configuration errors surface on the first action."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime.from_env()
        return _runtime


def reset(value: Runtime | None = None) -> None:
    """Replace the runtime (tests), or drop it so the next call reads the environment again."""
    global _runtime
    with _lock:
        _runtime = value
