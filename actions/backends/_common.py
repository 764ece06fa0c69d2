"""What the backends share: settings from the environment, blocking calls under a deadline,
and the words for failures every HTTP backend meets the same way.

Each backend keeps its own messages (they name its product and its variables); this
module holds the logic behind them, so that JENKINS_TIMEOUT, JIRA_TIMEOUT and
LOGS_TIMEOUT, say, are read and checked by the same code.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Mapping
from typing import NamedTuple, TypeVar
from urllib.parse import urlsplit

import requests

from actions.errors import BackendError, ConfigError
from actions.metrics import backend_call

__all__ = [
    "Account",
    "account_from_env",
    "check_config",
    "connection_message",
    "exception_chain",
    "masked",
    "never_sent",
    "run_in_thread",
    "server_url_problem",
    "tidy",
    "timeout_from_env",
]

_T = TypeVar("_T")
_MARGIN = 1.0  # seconds on top of the client timeout before wait_for gives up on a thread


# -- configuration ------------------------------------------------------------------------


def server_url_problem(url: str, *, product: str, example: str,
                       credentials: tuple[str, str]) -> str | None:
    """What is wrong with a server's base URL, or None; the URL must not hold credentials.

    ``product`` is possessive (``"Jira's"``), ``example`` a well-formed URL and
    ``credentials`` the variables (user, token) that take what the URL must not hold.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return f"is not a valid URL: {url!r}"
    if parts.username or parts.password:
        return ("must not contain a user name or password; "
                f"put them in {credentials[0]} and {credentials[1]} instead")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be {product} http(s) address, like {example}; got {url!r}"
    if parts.query or parts.fragment:
        return f"must be {product} base address, without ?query or #fragment; got {url!r}"
    return None


def check_config(name: str, url: str, timeout: float,
                 url_problem: Callable[[str], str | None]) -> None:
    """ConfigError for a malformed ``url`` or ``timeout`` of the config class ``name``."""
    problem = url_problem(url)
    if problem:
        raise ConfigError(f"{name}.url {problem}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"{name}.timeout must be a number of seconds above 0, "
                          f"got {timeout!r}")


def timeout_from_env(env: Mapping[str, str], name: str, default: float = 10.0) -> float:
    """Seconds from ``env[name]``, ``default`` when unset or empty; ConfigError if malformed."""
    raw_timeout = (env.get(name) or "").strip()
    if not raw_timeout:
        return default
    try:
        timeout = float(raw_timeout)
    except ValueError:
        timeout = math.nan
    if not (math.isfinite(timeout) and timeout > 0):
        raise ConfigError(f"{name} must be a number of seconds above 0, like 10 or 2.5; "
                          f"got {raw_timeout!r}")
    return timeout


class Account(NamedTuple):
    """A server and the account opsbot signs in with, as read from the environment."""

    url: str
    user: str
    token: str
    timeout: float


def account_from_env(env: Mapping[str, str], prefix: str, *,
                     url_problem: Callable[[str], str | None], fix: str) -> Account | None:
    """``PREFIX_URL``, ``PREFIX_USER``, ``PREFIX_TOKEN`` and ``PREFIX_TIMEOUT`` from ``env``.

    None when ``PREFIX_URL`` is unset or empty (the backend is not configured);
    ConfigError naming the variable when the URL is set but the user or token is
    missing (``fix`` says how to set them), or the URL or timeout is malformed.
    """
    url = (env.get(f"{prefix}_URL") or "").strip()
    if not url:
        return None
    problem = url_problem(url)
    if problem:
        raise ConfigError(f"{prefix}_URL {problem}")
    user = (env.get(f"{prefix}_USER") or "").strip()
    token = (env.get(f"{prefix}_TOKEN") or "").strip()
    missing = [name for name, value in ((f"{prefix}_USER", user), (f"{prefix}_TOKEN", token))
               if not value]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise ConfigError(f"{prefix}_URL is set but {' and '.join(missing)} {verb} not: {fix}")
    return Account(url, user, token, timeout_from_env(env, f"{prefix}_TIMEOUT"))


# -- calling a synchronous client ---------------------------------------------------------


async def run_in_thread(call: Callable[[], _T], seconds: float, *,
                        timed_out: Callable[[], BackendError],
                        also: tuple[type[BaseException], ...] = (),
                        backend: str = "other") -> _T:
    """``call()`` in a worker thread, so the event loop never blocks on it.

    ``seconds`` is the client's own timeout; the thread is given up a second later, so
    the client normally reports first. That deadline (a TimeoutError), or one of the
    exceptions in ``also``, becomes ``timed_out()``, chained to it; anything else
    propagates for the backend to translate. Each call is counted and timed under
    ``backend`` (``opsbot_backend_calls_total``, ``opsbot_backend_call_seconds``).
    """
    caught: tuple[type[BaseException], ...] = (TimeoutError, *also)
    with backend_call(backend):
        try:
            return await asyncio.wait_for(asyncio.to_thread(call), seconds + _MARGIN)
        except caught as exc:
            raise timed_out() from exc


# -- words for failures ---------------------------------------------------------------------


def exception_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it was raised from or during, outermost first."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if any(current is known for known in seen):
            continue
        seen.append(current)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return seen


def connection_message(exc: requests.ConnectionError, *, product: str, url: str,
                       variable: str) -> str:
    """Why ``product`` at ``url`` could not be reached, and to check it and ``variable``."""
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        reason = "the TLS handshake failed (a certificate problem, or http vs https?)"
    elif re.search(r"Name or service not known|nodename nor servname|getaddrinfo failed|"
                   r"Temporary failure in name resolution|No address associated", text):
        reason = f"the host name {urlsplit(url).hostname!r} does not resolve"
    elif re.search(r"Connection refused|actively refused", text):
        reason = "the connection was refused"
    elif re.search(r"RemoteDisconnected|Connection aborted|reset by peer", text):
        reason = "it closed the connection (restarting?)"
    else:
        reason = "the connection failed"
    return f"Could not reach {product} at {url}: {reason}. Is it up, and is {variable} right?"


def never_sent(exc: BaseException) -> bool:
    """Whether the request behind ``exc`` provably never reached the server.

    True only for failures before a byte of the request could be read: no connection
    (refused, a name that does not resolve, a connect timeout, a failed TLS handshake)
    or a refusal (an HTTP 4xx answer). A read timeout, a 5xx or a reset connection
    after sending is not proof: the server may have acted (see ``OutcomeUnknown``).
    """
    for error in exception_chain(exc):
        if isinstance(error, requests.HTTPError) and error.response is not None:
            return error.response.status_code < 500
        if isinstance(error, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)):
            return True
        if isinstance(error, requests.ConnectionError) and re.search(
                r"Connection refused|actively refused|Name or service not known|nodename nor "
                r"servname|getaddrinfo failed|Temporary failure in name resolution|No address "
                r"associated|NewConnectionError", str(error)):
            return True
    return False


def masked(text: str, secret: str) -> str:
    """``text`` with ``secret`` replaced by asterisks; a secret under 6 characters is left
    alone, as masking it would garble ordinary words."""
    return text.replace(secret, "**********") if len(secret) >= 6 else text


def tidy(text: str) -> str:
    """One line, at most 200 characters, without a final full stop (we add our own)."""
    return " ".join(text.split())[:200].rstrip(" .!")
