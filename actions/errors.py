"""opsbot's one error hierarchy: what backends and the guard raise, and actions catch.

``str(error)`` is always a message fit for the chat: it says what happened and what
to do next, and never holds a secret or a stack trace. The original exception, when
there is one, is chained (``raise ... from exc``) for the log.
"""

from __future__ import annotations

__all__ = [
    "BackendAuthError",
    "BackendError",
    "BackendUnavailable",
    "ConfigError",
    "InvalidRequest",
    "NotFound",
    "OpsbotError",
    "Refused",
    "OutcomeUnknown",
    "RateLimited",
    "Secret",
]


class OpsbotError(Exception):
    """Base of every error opsbot raises on purpose."""


class ConfigError(OpsbotError):
    """Configuration is missing or wrong; the message names the setting and the fix."""


class Refused(OpsbotError):
    """policy.yml does not allow what was asked; the message is the reason, for the chat."""


class BackendError(OpsbotError):
    """A backend (Jenkins, Jira, a log source) could not do what was asked."""

    def __init__(self, message: str, *, backend: str) -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailable(BackendError):
    """The backend is down, timed out or answered with a server error (5xx)."""


class OutcomeUnknown(BackendUnavailable):
    """A change was sent, but whether the backend made it is unknown.

    The answer was lost after the request left (a timeout, a 5xx, a reset connection):
    the build may be queued, the issue may exist. Never report this as "did not happen";
    the caller finds out (``actions._watcher``) or says it does not know.
    """


class RateLimited(BackendUnavailable):
    """The backend refuses opsbot for now (a rate limit) and said until when.

    ``retry_at`` (epoch seconds) is when it will accept requests again; until then opsbot
    sends it nothing, and the message names the time.
    """

    def __init__(self, message: str, *, backend: str, retry_at: float) -> None:
        super().__init__(message, backend=backend)
        self.retry_at = retry_at


class BackendAuthError(BackendError):
    """The backend refused opsbot's credentials (401) or permissions (403)."""


class NotFound(BackendError):
    """The job, build, issue or other object does not exist in the backend."""


class InvalidRequest(BackendError):
    """The backend rejected the request as malformed (400, a bad parameter)."""


class Secret:
    """A secret value whose repr and str are masked, so it never reaches a log or a chat."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one call that needs it."""
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"
