"""Where Jenkins is and how opsbot signs in, read from the environment and checked."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from actions.backends._common import (
    account_from_env,
    check_config,
    server_url_problem,
)
from actions.errors import (
    Secret,
)


def _url_problem(url: str) -> str | None:
    """What is wrong with a Jenkins URL, or None."""
    return server_url_problem(url, product="Jenkins'", example="https://jenkins.example.com/",
                              credentials=("JENKINS_USER", "JENKINS_TOKEN"))


def _with_slash(url: str) -> str:
    return url if url.endswith("/") else url + "/"


@dataclass(frozen=True)
class JenkinsConfig:
    """Where Jenkins is and how opsbot signs in; the token is a :class:`Secret`."""

    url: str
    user: str
    token: Secret
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.token, str):  # a plain string must never reach a repr
            object.__setattr__(self, "token", Secret(self.token))
        check_config("JenkinsConfig", self.url, self.timeout, _url_problem)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JenkinsConfig | None:
        """JENKINS_URL, JENKINS_USER, JENKINS_TOKEN, JENKINS_TIMEOUT (seconds) from ``env``.

        None when JENKINS_URL is unset or empty (Jenkins is not configured); ConfigError
        naming the variable when the URL is set but USER or TOKEN is missing, or the URL
        or timeout is malformed.
        """
        account = account_from_env(
            os.environ if env is None else env, "JENKINS", url_problem=_url_problem,
            fix="set JENKINS_USER to the Jenkins user opsbot acts as, and JENKINS_TOKEN to an "
                "API token of that user (Jenkins: your name > Security > API Token), not its "
                "password.")
        if account is None:
            return None
        return cls(url=_with_slash(account.url), user=account.user, token=Secret(account.token),
                   timeout=account.timeout)
