"""What every backend is to opsbot, whatever it talks to.

A backend declares, once, in a :class:`BackendKind`: its name (its key in the runtime,
its metrics label), what people call it ("Jenkins", "log source"), the environment
variables that configure it, how it is built from them (None: not configured) and what
opsbot says when it is not. The backend itself answers :meth:`Backend.ping` (the health
check ``/ready`` and ``opsbot run`` ask) and raises only :mod:`actions.errors`.

The runtime holds backends by name (:class:`Backends`), so a new backend is a module
in ``actions/backends`` with its kind listed in :data:`actions.backends.KINDS`; nothing
else in the runtime names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast, runtime_checkable

from actions.errors import BackendUnavailable

__all__ = ["Backend", "BackendKind", "Backends"]


@runtime_checkable
class Backend(Protocol):
    """A connected backend."""

    async def ping(self) -> str:
        """Who opsbot is there, or what answers ("Jenkins 2.440 as opsbot"); a BackendError
        if it cannot be reached or refuses opsbot's credentials."""
        ...


B = TypeVar("B", bound=Backend)
B_co = TypeVar("B_co", bound=Backend, covariant=True)


@dataclass(frozen=True)
class BackendKind(Generic[B_co]):
    """The declaration of one backend; ``BackendKind[JenkinsBackend]`` types its lookups."""

    name: str  # "jenkins": its key in the runtime and its metrics label
    product: str  # "Jenkins": what a person reads ("no Jenkins is connected")
    variables: tuple[str, ...]  # the environment variables it reads
    from_env: Callable[[Mapping[str, str]], B_co | None]  # None: not configured
    setup: str  # what to set when it is not configured: "set JENKINS_URL, ... and ..."

    def not_connected(self) -> str:
        """What opsbot says when a request needs this backend and it is not configured."""
        return f"no {self.product} is connected to opsbot ({self.setup})"


class Backends:
    """The connected backends, by name; a lookup by kind is typed by the kind."""

    def __init__(self, connected: Mapping[str, Backend] | None = None) -> None:
        self._by_name = dict(connected or {})

    @classmethod
    def of(cls, *pairs: tuple[BackendKind[B], B | None]) -> Backends:
        """``Backends.of((JENKINS, backend), (JIRA, None))``: the ones that are not None."""
        return cls({kind.name: backend for kind, backend in pairs if backend is not None})

    @classmethod
    def from_env(cls, kinds: Iterable[BackendKind[Backend]], env: Mapping[str, str]) -> Backends:
        """Every kind configured in ``env``; ConfigError (naming the variable) for a
        malformed setting."""
        return cls({kind.name: backend for kind in kinds
                    if (backend := kind.from_env(env)) is not None})

    def get(self, kind: BackendKind[B]) -> B | None:
        return cast("B | None", self._by_name.get(kind.name))

    def connected(self, kind: BackendKind[B]) -> B:
        """The backend of ``kind``; BackendUnavailable if it is not (or no longer) connected,
        as for an operation confirmed before a restart without it."""
        backend = self.get(kind)
        if backend is None:
            raise BackendUnavailable(f"No {kind.product} is connected any more.",
                                     backend=kind.product)
        return backend

    def items(self) -> Iterator[tuple[str, Backend]]:
        return iter(sorted(self._by_name.items()))

    def __repr__(self) -> str:
        return f"Backends({sorted(self._by_name)})"
