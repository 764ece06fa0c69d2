"""The Jira backend's declaration (``actions.backends._protocol``)."""

from __future__ import annotations

from collections.abc import Mapping

from actions.backends._jira._backend import JiraBackend
from actions.backends._jira._config import JiraConfig
from actions.backends._protocol import BackendKind


def _from_env(env: Mapping[str, str]) -> JiraBackend | None:
    config = JiraConfig.from_env(env)
    return JiraBackend(config) if config else None


JIRA: BackendKind[JiraBackend] = BackendKind(
    "jira", "Jira", ("JIRA_URL", "JIRA_USER", "JIRA_TOKEN", "JIRA_TIMEOUT", "JIRA_AUTH",
                     "OPSBOT_JIRA_PROJECT"),
    _from_env, setup="set JIRA_URL, JIRA_USER and JIRA_TOKEN")
"""The Jira backend's declaration (``actions.backends._protocol``)."""
