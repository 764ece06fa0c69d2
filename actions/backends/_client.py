"""The structure every backend over a synchronous HTTP client library shares, written once:
run a call in a worker thread under the timeout, and turn whatever the library raised
into :mod:`actions.errors` with a message a person can act on.

A backend subclasses :class:`ClientBackend` and says only what is its own: its product
and variables, how to find the HTTP status behind one of its library's exceptions
(:meth:`_response_of`), and its special refusals (:meth:`_refusal`: Jenkins' CSRF crumb,
Jira's CAPTCHA). The order of the checks, and the words for a timeout, an unreachable
server, a refused login, a missing permission, a 404, a 4xx, a 500 and an overloaded
server, are here.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol, TypeVar

import requests

from actions.backends._common import (
    connection_message,
    exception_chain,
    masked,
    run_in_thread,
    tidy,
)
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    InvalidRequest,
    NotFound,
    Secret,
)

__all__ = ["ClientBackend", "Response"]

_T = TypeVar("_T")


class Response(NamedTuple):
    """The HTTP answer behind a client library's exception."""

    status: int
    body: str
    headers: Mapping[str, str]


class Account(Protocol):
    """What a client backend is configured with (``JenkinsConfig``, ``JiraConfig``)."""

    @property
    def user(self) -> str: ...
    @property
    def token(self) -> Secret: ...
    @property
    def timeout(self) -> float: ...


class ClientBackend(ABC):
    """A backend whose client library is synchronous and speaks HTTP (python-jenkins, jira).

    ``_config`` is its account (the subclass narrows the type to its own config).
    """

    _config: Account

    name: ClassVar[str]  # "jenkins": the metrics label of its calls
    product: ClassVar[str]  # "Jenkins": the ``backend`` of its errors and their first word
    api: ClassVar[str]  # "Jenkins' JSON API": what answers at the right address
    url_variable: ClassVar[str]  # "JENKINS_URL"
    timeout_variable: ClassVar[str]  # "JENKINS_TIMEOUT"
    # Library exceptions that mean "no answer in time", besides requests' and the builtin.
    timeouts: ClassVar[tuple[type[BaseException], ...]] = ()
    # Library exceptions that mean "what answered is not the product's API".
    not_api: ClassVar[tuple[type[BaseException], ...]] = ()

    @property
    @abstractmethod
    def url(self) -> str:
        """The product's base address (no credentials)."""

    @property
    def timeout(self) -> float:
        """Seconds the client waits for one answer."""
        return self._config.timeout

    @property
    def user(self) -> str:
        """The account opsbot signs in as."""
        return self._config.user

    @abstractmethod
    def _credentials(self) -> str:
        """What to check when the login is refused: "JENKINS_USER and JENKINS_TOKEN"."""

    @abstractmethod
    def _response_of(self, chain: list[BaseException]) -> Response | None:
        """The HTTP answer behind a library exception, if it got one."""

    def _refusal(self, response: Response, *, doing: str,
                 hints: Mapping[str, Any]) -> BackendError | None:
        """A product-specific reading of an HTTP error, before the common ones; None: none."""
        return None

    def _library_error(self, chain: list[BaseException], *, missing: str) -> BackendError | None:
        """A product-specific reading of a library exception without an HTTP status."""
        return None

    def _detail(self, body: str) -> str:
        """The reason in an error page, in one line ("" if it has none worth showing)."""
        return tidy(body) if body and not body.lstrip().startswith("<") else ""

    def _log_reference(self, body: str) -> str:
        """", log ID 1234" from a 500 page, for the product's admin to look up."""
        return ""

    # -- the shared structure ---------------------------------------------------------------

    async def _call(self, call: Callable[[], _T], *, doing: str, missing: str,
                    seconds: float | None = None, **hints: Any) -> _T:
        """Run one synchronous client call in a thread, under the timeout.

        ``doing`` completes "Jenkins refused to ..."; ``missing`` is the NotFound message;
        ``seconds`` the deadline (default: the client's timeout); ``hints`` go to
        :meth:`_refusal`.
        """
        try:
            return await run_in_thread(call, seconds or self.timeout, timed_out=self._timed_out,
                                       backend=self.name)
        except BackendError:
            raise
        except Exception as exc:
            raise self._translate(exc, doing=doing, missing=missing, hints=hints) from exc

    def _translate(self, exc: BaseException, *, doing: str, missing: str,
                   hints: Mapping[str, Any]) -> BackendError:
        """Our error, with a message a person can act on, for a client library's one."""
        chain = exception_chain(exc)
        if any(isinstance(e, (*self.timeouts, requests.Timeout, TimeoutError)) for e in chain):
            return self._timed_out()
        connection = next((e for e in chain if isinstance(e, requests.ConnectionError)), None)
        if connection is not None:
            return self._error(BackendUnavailable, connection_message(
                connection, product=self.product, url=self.url, variable=self.url_variable))
        response = self._response_of(chain)
        if response is not None:
            return self._status_error(response, doing=doing, missing=missing, hints=hints)
        special = self._library_error(chain, missing=missing)
        if special is not None:
            return special
        if any(isinstance(e, self.not_api) for e in chain):
            return self._error(BackendUnavailable, f"{self._where} sent an answer that is not "
                               f"{self.api}; is {self.url_variable} {self.product} itself, not "
                               "a login page or proxy?")
        return self._error(BackendUnavailable, f"Talking to {self._where} failed unexpectedly "
                           f"({type(exc).__name__}) while trying to {doing}; the action "
                           "server's log has the details.")

    def _status_error(self, response: Response, *, doing: str, missing: str,
                      hints: Mapping[str, Any]) -> BackendError:
        special = self._refusal(response, doing=doing, hints=hints)
        if special is not None:
            return special
        status = response.status
        if status == 401:
            return self._error(BackendAuthError, f"{self._where} refused opsbot's credentials "
                               f"(401): check {self._credentials()}.")
        if status == 403:
            return self._error(BackendAuthError, f"{self.product} user '{self.user}' may not "
                               f"{doing} (403 Forbidden); ask a {self.product} admin for the "
                               "permission.")
        if status == 404:
            return self._error(NotFound, missing)
        if status < 500 and status != 429:
            detail = self._detail(response.body)
            why = f": {detail}" if detail else ""
            return self._error(InvalidRequest, f"{self.product} refused to {doing} "
                               f"({status}){why}.")
        if status == 500:
            return self._error(BackendUnavailable, f"{self._where} failed with an internal "
                               f"error (500{self._log_reference(response.body)}) while trying "
                               f"to {doing}; try again, and check the {self.product} log if it "
                               "persists.")
        return self._error(BackendUnavailable, f"{self._where} answered {status} while trying "
                           f"to {doing}; it may be restarting or overloaded. Try again in a "
                           "minute.")

    def _lost_answer(self, exc: BaseException) -> str:
        """Why opsbot cannot tell whether a change it asked for happened: "Jenkins answered
        502", "Jenkins did not answer within 10s", "the connection to Jenkins broke"."""
        chain = exception_chain(exc)
        response = self._response_of(chain)
        if response is not None:
            return f"{self.product} answered {response.status}"
        if any(isinstance(e, (*self.timeouts, requests.Timeout, TimeoutError)) for e in chain):
            return f"{self.product} did not answer within {self.timeout:g}s"
        return f"the connection to {self.product} broke"

    @property
    def _where(self) -> str:
        return f"{self.product} at {self.url}"

    def _timed_out(self) -> BackendError:
        return self._error(BackendUnavailable, f"{self._where} did not answer within "
                           f"{self.timeout:g}s; is it up? ({self.timeout_variable} sets the "
                           "limit.)")

    def _error(self, kind: type[BackendError], message: str) -> BackendError:
        """``kind(message)``, with the token masked should it ever appear."""
        return kind(masked(message, self._config.token.reveal()), backend=self.product)

    def _parse(self, build: Callable[[], _T]) -> _T:
        """Run a parser over the product's JSON; a shape we cannot read is BackendUnavailable."""
        try:
            return build()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise self._error(BackendUnavailable, f"{self._where} sent an answer opsbot could "
                              f"not read ({type(exc).__name__}).") from exc
