"""Who is asking: personal access tokens, a GitHub App's JWT, installation access tokens.

Why apart: authentication is its own set of rules and words, each from GitHub's docs:

* ``Authorization: token X`` or ``Bearer X``; a token GitHub does not know is 401 ``Bad
  credentials`` (docs.github.com/en/rest/authentication/authenticating-to-the-rest-api).
* An App signs a JWT with its private key (RS256): ``iss`` is the App's id, ``iat`` in the
  past, ``exp`` at most 10 minutes later; GitHub's refusals are quoted below
  (docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/
  generating-a-json-web-token-jwt-for-a-github-app).
* ``POST /app/installations/{id}/access_tokens`` with that JWT gives a ``ghs_`` token that
  expires after an hour (``token_seconds`` here, so a client's refresh can be tested);
  an expired one is ``Bad credentials`` like any unknown token
  (docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.github._model import _ApiError

_APP_DOCS = "https://docs.github.com/rest"


@dataclass(frozen=True)
class AppKey:
    """A GitHub App's RSA key pair, PEM-encoded, as GitHub lets you download the private one."""

    private_pem: str
    public_pem: str

    def write(self, path: str | Path) -> Path:
        """Write the private key to ``path`` (mode 0600) for GITHUB_APP_PRIVATE_KEY_FILE."""
        target = Path(path)
        target.write_text(self.private_pem, encoding="ascii")
        target.chmod(0o600)
        return target


def generate_app_key(bits: int = 2048) -> AppKey:
    """A fresh App key pair (RSA, as GitHub issues them)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode("ascii")
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return AppKey(private, public.decode("ascii"))


@dataclass(frozen=True)
class Caller:
    """Who a request speaks for: a user's login, an installation, or the App itself."""

    kind: str  # "user", "installation", "app" or "anonymous"
    name: str | None  # the login, or the installation or App id

    @property
    def label(self) -> str | None:
        if self.kind == "user":
            return self.name
        return f"{self.kind}:{self.name}" if self.name is not None else None


ANONYMOUS = Caller("anonymous", None)


@dataclass
class _Installation:
    token: str
    expires: float


class _Auth:
    """The tokens GitHub knows; used under the state's lock."""

    def __init__(self, tokens: dict[str, str], app_id: int, app_public_pem: str | None,
                 installation_id: int, token_seconds: float) -> None:
        self.tokens = dict(tokens)  # personal access token -> login
        self.app_id = app_id
        self.app_public_pem = app_public_pem
        self.installation_id = installation_id
        self.token_seconds = token_seconds
        self.installation_tokens: list[_Installation] = []

    def caller(self, header: str | None, now: float, app_endpoint: bool) -> Caller:
        """Who ``Authorization`` names; 401 for what GitHub would refuse."""
        if not header:
            return ANONYMOUS
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        if scheme.lower() not in ("token", "bearer") or not value:
            raise _ApiError(401, "Bad credentials")
        if value.count(".") == 2 and value.startswith("eyJ"):
            if not app_endpoint:  # a JWT speaks for the App only on the /app endpoints
                raise _ApiError(401, "Bad credentials")
            return self._app(value, now)
        for token, login in self.tokens.items():
            if hmac.compare_digest(token.encode(), value.encode()):
                return Caller("user", login)
        for issued in self.installation_tokens:
            if hmac.compare_digest(issued.token.encode(), value.encode()) and now < issued.expires:
                return Caller("installation", str(self.installation_id))
        raise _ApiError(401, "Bad credentials")

    def _app(self, token: str, now: float) -> Caller:
        """The App behind a JWT, checked against the simulator's clock, with GitHub's words."""
        if self.app_public_pem is None:
            raise _ApiError(401, "A JSON web token could not be decoded", _APP_DOCS)
        try:
            claims = jwt.decode(token, self.app_public_pem, algorithms=["RS256"],
                                options={"verify_exp": False, "verify_iat": False,
                                         "verify_nbf": False, "verify_aud": False})
        except jwt.PyJWTError:
            raise _ApiError(401, "A JSON web token could not be decoded", _APP_DOCS) from None
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or iat > now + 1:
            raise _ApiError(401, "'Issued at' claim ('iat') must be an Integer representing a "
                                 "time in the past", _APP_DOCS)
        if not isinstance(exp, int) or exp <= now:
            raise _ApiError(401, "'Expiration time' claim ('exp') must be a numeric value "
                                 "representing the future time at which the assertion expires",
                            _APP_DOCS)
        if exp - iat > 600 or exp > now + 600:
            raise _ApiError(401, "'Expiration time' claim ('exp') is too far in the future",
                            _APP_DOCS)
        if str(claims.get("iss")) != str(self.app_id):
            raise _ApiError(401, "A JSON web token could not be decoded", _APP_DOCS)
        return Caller("app", str(self.app_id))

    def issue(self, now: float) -> _Installation:
        issued = _Installation("ghs_" + secrets.token_urlsafe(27)[:36], now + self.token_seconds)
        self.installation_tokens.append(issued)
        return issued
