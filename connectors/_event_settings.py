"""The event endpoints' secrets, checked where the command line can afford to: without
importing Rasa (``opsbot run`` checks them before it starts anything)."""

from __future__ import annotations

from collections.abc import Mapping

TOKEN_VARIABLE = "OPSBOT_EVENTS_TOKEN"
GITHUB_SECRET_VARIABLE = "GITHUB_WEBHOOK_SECRET"
# The token Jenkins' Notification plugin puts in the URL (?token=), when it has its own.
JENKINS_URL_TOKEN_VARIABLE = "OPSBOT_EVENTS_JENKINS_TOKEN"
# The shortest token or secret taken (the API token's minimum too).
MIN_TOKEN = 16


def unusable_settings(env: Mapping[str, str]) -> list[str]:
    """The event settings in ``env`` that the endpoint would refuse to use, each with its
    fix. Why at start: a token too short to be safe used to leave the endpoint off (404)
    while opsbot announced it, so the team learnt of it from alerts that never came."""
    problems = []
    for variable in (TOKEN_VARIABLE, JENKINS_URL_TOKEN_VARIABLE, GITHUB_SECRET_VARIABLE):
        value = (env.get(variable) or "").strip()
        if value and len(value) < MIN_TOKEN:
            problems.append(
                f"{variable} is {len(value)} characters long; opsbot takes at least "
                f"{MIN_TOKEN}, so that it cannot be guessed. Set a random one, for example "
                f"{variable}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'), "
                f"and give the same value to the sender; or unset it to turn these events off.")
    return problems
