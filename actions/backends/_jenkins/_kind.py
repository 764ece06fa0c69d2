"""The Jenkins backend's declaration (``actions.backends._protocol``)."""

from __future__ import annotations

from collections.abc import Mapping

from actions.backends._jenkins._backend import JenkinsBackend
from actions.backends._jenkins._config import JenkinsConfig
from actions.backends._protocol import BackendKind


def _from_env(env: Mapping[str, str]) -> JenkinsBackend | None:
    config = JenkinsConfig.from_env(env)
    return JenkinsBackend(config) if config else None


JENKINS: BackendKind[JenkinsBackend] = BackendKind(
    "jenkins", "Jenkins", ("JENKINS_URL", "JENKINS_USER", "JENKINS_TOKEN", "JENKINS_TIMEOUT"),
    _from_env, setup="set JENKINS_URL, JENKINS_USER and JENKINS_TOKEN")
"""The Jenkins backend's declaration (``actions.backends._protocol``)."""
