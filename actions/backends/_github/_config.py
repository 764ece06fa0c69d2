"""Where GitHub is and who opsbot is there (a token or a GitHub App), read from the
environment and checked at start-up.

Decided here: GITHUB_TOKEN and the App's settings together are refused rather than one
silently winning, because they are different identities with different permissions and
audit trails on GitHub; the message says which to unset.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from actions.backends._common import check_config, server_url_problem, timeout_from_env
from actions.backends._github._names import OWNER_VARIABLE, owner_from_env
from actions.errors import ConfigError, Secret

DEFAULT_API_URL = "https://api.github.com"
URL_VARIABLE = "GITHUB_API_URL"
TOKEN_VARIABLE = "GITHUB_TOKEN"
TIMEOUT_VARIABLE = "GITHUB_TIMEOUT"
APP_ID_VARIABLE = "GITHUB_APP_ID"
APP_KEY_VARIABLE = "GITHUB_APP_PRIVATE_KEY_FILE"
APP_INSTALLATION_VARIABLE = "GITHUB_APP_INSTALLATION_ID"
APP_VARIABLES = (APP_ID_VARIABLE, APP_KEY_VARIABLE, APP_INSTALLATION_VARIABLE)
VARIABLES = (URL_VARIABLE, TOKEN_VARIABLE, *APP_VARIABLES, OWNER_VARIABLE, TIMEOUT_VARIABLE)
_OWNER = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$")


def _url_problem(url: str) -> str | None:
    """What is wrong with a GitHub API URL, or None."""
    problem = server_url_problem(url, product="GitHub's API", example=DEFAULT_API_URL
                                 + " (or https://HOST/api/v3 for GitHub Enterprise Server)",
                                 credentials=(TOKEN_VARIABLE, APP_KEY_VARIABLE))
    if problem:
        return problem
    parts = urlsplit(url)
    if parts.hostname in ("github.com", "www.github.com"):
        return f"is GitHub's web address; the API is at {DEFAULT_API_URL}"
    return None


@dataclass(frozen=True)
class GithubApp:
    """A GitHub App's identity: its id, private key (PEM, a :class:`Secret`) and the
    installation opsbot acts through."""

    app_id: int
    private_key: Secret
    installation_id: int
    key_file: str = ""  # where the key was read, for messages


@dataclass(frozen=True)
class GithubConfig:
    """Where GitHub's REST API is and who opsbot is there: ``token`` or ``app``, never both.

    ``api_url``: ``https://api.github.com``, or ``https://HOST/api/v3`` for GitHub Enterprise
    Server (no trailing slash). ``owner``: GITHUB_OWNER, the organisation searched for pull
    requests when no repository is named.
    """

    api_url: str = DEFAULT_API_URL
    token: Secret = Secret("")
    app: GithubApp | None = None
    owner: str | None = None
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if isinstance(self.token, str):  # a plain string must never reach a repr
            object.__setattr__(self, "token", Secret(self.token))
        if bool(self.token) == (self.app is not None):
            raise ConfigError("GithubConfig needs a token or an app, not both and not neither")
        check_config("GithubConfig", self.api_url, self.timeout, _url_problem)
        object.__setattr__(self, "api_url", self.api_url.rstrip("/"))

    @property
    def user(self) -> str:
        """Who opsbot is, as far as the configuration says (ping learns the login)."""
        return f"the App {self.app.app_id}" if self.app else "opsbot's token"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> GithubConfig | None:
        """GITHUB_API_URL, GITHUB_TOKEN or GITHUB_APP_ID + GITHUB_APP_PRIVATE_KEY_FILE +
        GITHUB_APP_INSTALLATION_ID, GITHUB_OWNER and GITHUB_TIMEOUT from ``env``.

        None when neither a token nor an App setting is given (GitHub is not configured;
        GITHUB_OWNER alone only names repositories for the service catalog); ConfigError
        naming the variable and the fix for everything else that is not usable.
        """
        env = os.environ if env is None else env
        url, token = _get(env, URL_VARIABLE), _get(env, TOKEN_VARIABLE)
        app_values = {APP_ID_VARIABLE: _get(env, APP_ID_VARIABLE),
                      APP_KEY_VARIABLE: _get(env, APP_KEY_VARIABLE),
                      APP_INSTALLATION_VARIABLE: _get(env, APP_INSTALLATION_VARIABLE)}
        if not token and not any(app_values.values()):
            if url:
                raise ConfigError(f"{URL_VARIABLE} is set but opsbot has no GitHub identity: "
                                  f"set {TOKEN_VARIABLE} (a fine-grained or classic token) or "
                                  f"the GitHub App's {', '.join(APP_VARIABLES)}.")
            return None
        if token and any(app_values.values()):
            given = [name for name, value in app_values.items() if value]
            raise ConfigError(f"{TOKEN_VARIABLE} and {', '.join(given)} are both set: opsbot "
                              "acts on GitHub as one identity. Unset GITHUB_TOKEN to act as "
                              f"the App, or unset {', '.join(given)} to act with the token.")
        if url:
            problem = _url_problem(url)
            if problem:
                raise ConfigError(f"{URL_VARIABLE} {problem}")
        owner = owner_from_env(env)
        if token and any(c.isspace() for c in token):
            raise ConfigError(f"{TOKEN_VARIABLE} contains white space; paste the token alone "
                              "(ghp_..., github_pat_...).")
        return cls(api_url=url or DEFAULT_API_URL, token=Secret(token),
                   app=None if token else _app_from(app_values), owner=owner,
                   timeout=timeout_from_env(env, TIMEOUT_VARIABLE))


def _get(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def _app_from(values: Mapping[str, str]) -> GithubApp:
    """The App's settings, all three, checked: ids are numbers, the key file a PEM RSA key."""
    missing = [name for name, value in values.items() if not value]
    if missing:
        given = [name for name, value in values.items() if value]
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} set but "
                          f"{' and '.join(missing)} {verb} not: a GitHub App needs all three "
                          f"({APP_ID_VARIABLE}: the App's id on its settings page; "
                          f"{APP_KEY_VARIABLE}: the .pem file GitHub let you download; "
                          f"{APP_INSTALLATION_VARIABLE}: the number at the end of the "
                          "installation's settings URL).")
    numbers = {}
    for name in (APP_ID_VARIABLE, APP_INSTALLATION_VARIABLE):
        raw = values[name]
        if not raw.isdigit() or int(raw) <= 0:
            raise ConfigError(f"{name} must be a number, like 424242; got {raw!r}")
        numbers[name] = int(raw)
    path = Path(values[APP_KEY_VARIABLE]).expanduser()
    try:
        pem = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not text"
        raise ConfigError(f"{APP_KEY_VARIABLE}={str(path)!r} cannot be read ({reason}); point "
                          "it at the App's private key (.pem), readable by opsbot.") from None
    try:
        key = load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{APP_KEY_VARIABLE}={str(path)!r} is not an unencrypted PEM private "
                          "key; use the .pem file GitHub generated for the App (it begins "
                          "with -----BEGIN RSA PRIVATE KEY-----).") from None
    if not isinstance(key, RSAPrivateKey):
        raise ConfigError(f"{APP_KEY_VARIABLE}={str(path)!r} holds a key that is not RSA; "
                          "GitHub Apps sign with RSA keys: generate one on the App's page.")
    return GithubApp(numbers[APP_ID_VARIABLE], Secret(pem), numbers[APP_INSTALLATION_VARIABLE],
                     str(path))
