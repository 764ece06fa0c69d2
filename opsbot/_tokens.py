"""The tokens that guard a run's ports: where they come from and where clients find them.

* ``OPSBOT_API_TOKEN``: Rasa's HTTP API (``?token=`` or ``Authorization: Bearer``) and
  opsbot's own admin endpoints (the reload). Set it, or one is generated at each start.
* ``OPSBOT_REST_TOKEN``: the REST channel (``Authorization: Bearer``). In ``opsbot run``
  the channel is off without it; ``opsbot demo`` generates one per run for its chat.
* ``OPSBOT_ACTIONS_SECRET``: the Rasa server to the action server (``X-Opsbot-Secret``)
  and the key of the signatures on identities and button payloads. Set it, or one is
  generated at each start.

A generated API or REST token is written to the state dir (``api-token``,
``rest-token``, mode 0600), so ``opsbot shell``, ``opsbot train --reload`` and scripts
on the same machine can authenticate; the environment variable wins when it is set.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from actions._redact import add_secret
from opsbot._private import write_private
from opsbot.settings import SettingsError

__all__ = [
    "ACTIONS_SECRET",
    "API_TOKEN",
    "REST_TOKEN",
    "TOKEN_FILES",
    "forget_tokens",
    "read_token",
    "run_tokens",
]

API_TOKEN = "OPSBOT_API_TOKEN"
REST_TOKEN = "OPSBOT_REST_TOKEN"
ACTIONS_SECRET = "OPSBOT_ACTIONS_SECRET"
TOKEN_FILES = {API_TOKEN: "api-token", REST_TOKEN: "rest-token"}
_MINIMUM = 16


class TokenError(SettingsError):
    """A configured token cannot be used; the message says which and how to fix it."""


def _configured(env: Mapping[str, str], variable: str) -> str | None:
    value = (env.get(variable) or "").strip()
    if not value:
        return None
    if len(value) < _MINIMUM:
        raise TokenError(f"{variable} is too short to be a secret: use at least {_MINIMUM} "
                         f"characters (e.g. `openssl rand -hex 24`).")
    return value


def run_tokens(state_dir: Path, *, rest: bool,
               env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The tokens of one run (``rest``: generate a REST token when none is set).

    Generated API and REST tokens are written to ``state_dir`` (one set in the
    environment is not: whoever set it can give it to their clients); a token file left
    by an earlier run is removed, so it cannot mislead a client.
    """
    env = os.environ if env is None else env
    tokens: dict[str, str] = {}
    generated: set[str] = set()
    for variable, generate in ((API_TOKEN, True), (ACTIONS_SECRET, True), (REST_TOKEN, rest)):
        value = _configured(env, variable)
        if value is None and generate:
            value = secrets.token_urlsafe(32)
            generated.add(variable)
        if value is not None:
            tokens[variable] = value
    for variable, name in TOKEN_FILES.items():
        path = state_dir / name
        if variable in generated:
            write_private(path, tokens[variable] + "\n")
        else:
            path.unlink(missing_ok=True)
    add_secret(*tokens.values())
    return tokens


def forget_tokens(state_dir: Path, tokens: Mapping[str, str]) -> None:
    """Remove the token files a run wrote (when it stops), if they still hold its tokens."""
    for variable, name in TOKEN_FILES.items():
        path = state_dir / name
        try:
            if variable in tokens and path.read_text(encoding="utf-8").strip() == tokens[variable]:
                path.unlink()
        except OSError:
            continue


def read_token(state_dir: Path, variable: str, env: Mapping[str, str] | None = None) -> str | None:
    """A token for a client: the environment's, else the running opsbot's file, else None."""
    env = os.environ if env is None else env
    value = (env.get(variable) or "").strip()
    if value:
        return value
    name = TOKEN_FILES.get(variable)
    if name is None:
        return None
    try:
        return (state_dir / name).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
