"""The Teams connector's Bot Framework authentication: inbound JWTs, outbound tokens.

``TokenValidator`` checks the JWT on every inbound activity against the channel's OpenID
metadata (RS256, issuer, audience, expiry, the key's endorsement of the channel, the
``serviceurl`` claim) before anything else reads the request; ``TokenProvider`` gets the
outbound token for the Connector API (OAuth2 client credentials) and caches it. Kept in
a module of its own because it is the connector's trust boundary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp
import jwt

from connectors._common import ConnectorConfigError, retry_after_seconds

BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
BOT_FRAMEWORK_METADATA = "https://login.botframework.com/v1/.well-known/openidconfiguration"
ENTRA_AUTHORITY = "https://login.microsoftonline.com"
SCOPE = "https://api.botframework.com/.default"
_LEEWAY = 300  # seconds of clock skew, as the Bot Framework SDKs allow


class AuthError(Exception):
    """An inbound request is not from the channel; the message is for the log only."""


class _NotNow(Exception):
    """The token endpoint said "not now" (429 or 5xx); worth another try after ``retry_after``."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds the response's ``Retry-After`` header asks for, or None without one."""
    return retry_after_seconds((headers or {}).get("Retry-After"))


class TokenValidator:
    """Checks the Bot Framework JWT on inbound activities against the OpenID metadata."""

    def __init__(self, *, app_id: str, metadata_url: str, issuers: Sequence[str]) -> None:
        self.app_id = app_id
        self.metadata_url = metadata_url
        self.issuers = tuple(issuers)
        self._jwks: jwt.PyJWKClient | None = None
        self._lock = asyncio.Lock()

    async def _keys(self) -> jwt.PyJWKClient:
        async with self._lock:
            if self._jwks is None:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as s:
                    async with s.get(self.metadata_url) as answer:
                        if answer.status != 200:
                            raise AuthError(
                                f"OpenID metadata {self.metadata_url}: HTTP {answer.status}")
                        metadata = await answer.json(content_type=None)
                jwks_uri = metadata.get("jwks_uri") if isinstance(metadata, dict) else None
                if not jwks_uri:
                    raise AuthError(f"OpenID metadata {self.metadata_url} has no jwks_uri")
                self._jwks = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=86400, timeout=10)
            return self._jwks

    async def validate(self, authorization: str | None, channel_id: str | None,
                       service_url: str | None) -> dict[str, Any]:
        """The verified claims, or AuthError saying what is wrong."""
        if not authorization:
            raise AuthError("no Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError("the Authorization header is not 'Bearer <token>'")
        token = token.strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise AuthError(f"not a JWT ({type(exc).__name__})") from None
        if header.get("alg") != "RS256":
            raise AuthError(f"algorithm {header.get('alg')!r} is not RS256")
        jwks = await self._keys()
        try:
            key = await asyncio.to_thread(jwks.get_signing_key, str(header.get("kid") or ""))
        except jwt.PyJWKClientError as exc:
            raise AuthError(f"no signing key {header.get('kid')!r} ({exc})") from None
        try:
            claims = jwt.decode(token, key.key, algorithms=["RS256"], audience=self.app_id,
                                issuer=list(self.issuers), leeway=_LEEWAY,
                                options={"require": ["exp", "iss", "aud"]})
        except jwt.PyJWTError as exc:
            raise AuthError(f"token refused: {type(exc).__name__}: {exc}") from None
        endorsements = getattr(key, "_jwk_data", {}).get("endorsements")
        if endorsements is not None and channel_id and channel_id not in endorsements:
            raise AuthError(f"the signing key is not endorsed for channel {channel_id!r}")
        claimed = claims.get("serviceurl") or claims.get("serviceUrl")
        if claimed and service_url and claimed.rstrip("/") != service_url.rstrip("/"):
            raise AuthError("the token's serviceurl is not the activity's serviceUrl")
        return claims


class TokenProvider:
    """Outbound tokens for the Bot Connector (OAuth2 client credentials), cached until expiry."""

    def __init__(self, *, app_id: str, app_password: str, token_url: str) -> None:
        self.app_id = app_id
        self._password = app_password
        self.token_url = token_url
        self._token: str | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (f"TokenProvider(app_id={self.app_id!r}, token_url={self.token_url!r}, "
                "password=**********)")

    async def token(self) -> str:
        async with self._lock:
            if self._token and time.monotonic() < self._until:
                return self._token
            form = {"grant_type": "client_credentials", "client_id": self.app_id,
                    "client_secret": self._password, "scope": SCOPE}
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s:
                async with s.post(self.token_url, data=form) as answer:
                    try:
                        body = await answer.json(content_type=None)
                    except ValueError:
                        body = None
            if answer.status == 429 or answer.status >= 500:
                raise _NotNow(f"the token endpoint {self.token_url} answered HTTP "
                              f"{answer.status}", _retry_after(answer.headers))
            if answer.status != 200 or not isinstance(body, dict) or not body.get("access_token"):
                detail = (body.get("error_description") or body.get("error")
                          if isinstance(body, dict) else None)
                raise ConnectorConfigError(
                    f"Teams: the token endpoint {self.token_url} refused app {self.app_id} "
                    f"(HTTP {answer.status}: {str(detail or '')[:200]}). Check TEAMS_APP_ID, "
                    "TEAMS_APP_PASSWORD and TEAMS_TENANT_ID.")
            self._token = str(body["access_token"])
            self._until = time.monotonic() + max(60.0, float(body.get("expires_in") or 3600) - 300)
            return self._token
