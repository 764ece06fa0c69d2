"""The GitHub backend's declaration (``actions.backends._protocol``)."""

from __future__ import annotations

from collections.abc import Mapping

from actions.backends._github._backend import GithubBackend
from actions.backends._github._config import VARIABLES, GithubConfig
from actions.backends._protocol import BackendKind


def _from_env(env: Mapping[str, str]) -> GithubBackend | None:
    config = GithubConfig.from_env(env)
    return GithubBackend(config) if config else None


GITHUB: BackendKind[GithubBackend] = BackendKind(
    "github", "GitHub", VARIABLES, _from_env,
    setup="set GITHUB_TOKEN, or GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY_FILE and "
          "GITHUB_APP_INSTALLATION_ID")
"""The GitHub backend's declaration (``actions.backends._protocol``)."""
