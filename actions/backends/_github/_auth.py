"""Who opsbot is on each request, and whether it may send one at all.

Why apart: PyGithub asks its ``Auth`` for the ``Authorization`` header right before it
sends every request (pages of a list and lazy reads included), which makes that the one
place to (1) refuse locally while GitHub's rate limit is spent, so no request leaves before
``x-ratelimit-reset`` (or a secondary limit's ``retry-after``), and (2) hand out a GitHub
App's installation token, made afresh before the old one expires by opsbot's own clock
(PyGithub's ``AppInstallationAuth`` judges expiry by the wall clock, which a test cannot
move).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import jwt
from github import Auth, GithubIntegration

from actions._redact import add_secret
from actions.backends._github._config import GithubApp

Clock = Callable[[], float]

_JWT_SECONDS = 540  # GitHub allows 10 minutes; 60 s back-dated for clock drift
_REFRESH_MARGIN = 120.0  # a new installation token this long before the old one expires


class Held(Exception):  # noqa: N818 - not an error of ours: a signal to the backend
    """No request was sent: GitHub's limit is spent until ``until`` (epoch seconds)."""

    def __init__(self, until: float, why: str) -> None:
        super().__init__(f"held until {until:.0f} ({why})")
        self.until = until
        self.why = why


@dataclass
class _Hold:
    until: float
    why: str  # "primary" or "secondary"


class RateGate:
    """Remembers until when GitHub will refuse opsbot, from the last answer's
    ``x-ratelimit-remaining``/``-reset`` (``seen``) and from secondary limits (``hold``).

    ``seen`` reads the client's last rate-limit headers; they are not told apart by
    resource, so a spent search limit (30 a minute) also holds other requests for at most
    that minute: careful rather than refused by GitHub.
    """

    def __init__(self, clock: Clock, seen: Callable[[], tuple[int, float]]) -> None:
        self._clock = clock
        self._seen = seen
        self._lock = threading.Lock()
        self._hold: _Hold | None = None

    def hold(self, until: float, why: str) -> None:
        with self._lock:
            if self._hold is None or until > self._hold.until:
                self._hold = _Hold(until, why)

    def held(self) -> _Hold | None:
        """The hold in force now, if any."""
        now = self._clock()
        remaining, reset = self._seen()
        if remaining == 0 and reset > now:
            self.hold(reset, "primary")
        with self._lock:
            if self._hold is not None and self._hold.until <= now:
                self._hold = None
            return self._hold

    def check(self) -> None:
        """Raise Held while a hold is in force."""
        hold = self.held()
        if hold is not None:
            raise Held(hold.until, hold.why)


class GatedAuth(Auth.Auth):
    """PyGithub's ``Auth`` that consults the gate before each request, then asks ``inner``."""

    def __init__(self, inner: Auth.Auth, gate: RateGate) -> None:
        self._inner = inner
        self._gate = gate

    @property
    def token_type(self) -> str:
        return self._inner.token_type

    @property
    def token(self) -> str:
        return self._inner.token

    def authentication(self, headers: dict[str, str]) -> None:
        self._gate.check()
        self._inner.authentication(headers)

    @property
    def _masked_token(self) -> str:
        return "token (removed)"


class ClockedAppAuth(Auth.AppAuth):
    """The App's JWT (RS256: ``iss`` the App id), dated by opsbot's clock."""

    def __init__(self, app: GithubApp, clock: Clock) -> None:
        super().__init__(app.app_id, app.private_key.reveal())
        self._pem = app.private_key
        self._clock = clock

    def create_jwt(self, expiration: int | None = None) -> str:
        now = int(self._clock())
        payload = {"iat": now - 60, "exp": now + (expiration or _JWT_SECONDS),
                   "iss": str(self.app_id)}
        return jwt.encode(payload, self._pem.reveal(), algorithm="RS256")


class InstallationToken(Auth.Auth):
    """The App installation's access token, made with the App's JWT on first use and again
    ``_REFRESH_MARGIN`` seconds before it expires (they live an hour)."""

    def __init__(self, app: GithubApp, integration: GithubIntegration, clock: Clock) -> None:
        self._app = app
        self._integration = integration
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0
        self.issued = 0  # how many tokens were made (the tests' and ping's view)

    @property
    def token_type(self) -> str:
        return "token"

    @property
    def token(self) -> str:
        with self._lock:
            if self._token is None or self._clock() >= self._expires - _REFRESH_MARGIN:
                made = self._integration.get_access_token(self._app.installation_id)
                expires: datetime | None = made.expires_at
                self._token = made.token
                add_secret(made.token)  # masked in every log line from now on
                self._expires = expires.timestamp() if expires else self._clock() + 3600
                self.issued += 1
            return self._token

    @property
    def expires(self) -> float:
        """When the current token expires (epoch seconds; 0 before the first)."""
        return self._expires

    @property
    def _masked_token(self) -> str:
        return "token (installation token removed)"
