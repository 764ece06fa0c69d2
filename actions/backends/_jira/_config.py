"""Where Jira is and how opsbot signs in, read from the environment and checked."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from actions.backends._common import (
    account_from_env,
    check_config,
    server_url_problem,
)
from actions.backends._jira._model import AUTH_MODES
from actions.errors import (
    ConfigError,
    Secret,
)


def _url_problem(url: str) -> str | None:
    """What is wrong with a Jira URL, or None."""
    return server_url_problem(url, product="Jira's", example="https://jira.example.com",
                              credentials=("JIRA_USER", "JIRA_TOKEN"))


@dataclass(frozen=True)
class JiraConfig:
    """Where Jira is and how opsbot signs in; the token is a :class:`Secret`.

    ``url`` is Jira's base address (a context path like ``/jira`` is kept; a trailing
    slash is dropped). ``auth`` is how ``token`` is sent: ``bearer`` (a Data Center
    personal access token, ``Authorization: Bearer``; the default) or ``basic`` (the
    password or API token of ``user``). ``default_project`` is the project new issues go
    to when a request names none (OPSBOT_JIRA_PROJECT; None: the first one opsbot may see).
    """

    url: str
    user: str
    token: Secret
    timeout: float = 10.0
    auth: str = "bearer"
    default_project: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.token, str):  # a plain string must never reach a repr
            object.__setattr__(self, "token", Secret(self.token))
        if self.auth not in AUTH_MODES:
            raise ConfigError(f"JIRA_AUTH is {self.auth!r}; it is one of "
                              f"{', '.join(AUTH_MODES)} (bearer: a personal access token; "
                              "basic: user and password).")
        check_config("JiraConfig", self.url, self.timeout, _url_problem)
        object.__setattr__(self, "url", self.url.rstrip("/"))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JiraConfig | None:
        """JIRA_URL, JIRA_USER, JIRA_TOKEN, JIRA_TIMEOUT (seconds), JIRA_AUTH and
        OPSBOT_JIRA_PROJECT from ``env``.

        None when JIRA_URL is unset or empty (Jira is not configured); ConfigError naming
        the variable when the URL is set but USER or TOKEN is missing, or the URL or the
        timeout is malformed.
        """
        account = account_from_env(
            os.environ if env is None else env, "JIRA", url_problem=_url_problem,
            fix="set JIRA_USER to the Jira user name opsbot acts as, and JIRA_TOKEN to that "
                "user's API token or password.")
        if account is None:
            return None
        variables = os.environ if env is None else env
        auth = (variables.get("JIRA_AUTH") or "bearer").strip().lower()
        project = (variables.get("OPSBOT_JIRA_PROJECT") or "").strip().upper() or None
        return cls(url=account.url, user=account.user, token=Secret(account.token),
                   timeout=account.timeout, auth=auth, default_project=project)
