"""The action server's long-lived parts, built once from the environment on first use.

Variables (README, "Configuration"):

  JENKINS_URL, JENKINS_USER, JENKINS_TOKEN   the Jenkins opsbot drives (unset: none connected)
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
from actions.guard import OperationStore, Policy

PROJECT = Path(__file__).resolve().parent.parent


@dataclass
class Runtime:
    """Backends, store and policy shared by every action in this process."""

    jenkins: JenkinsBackend | None
    store: OperationStore
    policy: Policy
    rasa_url: str

    @classmethod
    def from_env(cls) -> Runtime:
        config = JenkinsConfig.from_env()
        return cls(
            jenkins=JenkinsBackend(config) if config else None,
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
