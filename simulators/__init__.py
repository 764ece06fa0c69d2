"""Local servers that speak the real wire protocols of opsbot's backends.

``opsbot demo`` starts every simulator that ``demo_backends`` lists; a new
simulator adds itself there (and only there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from opsbot._processes import Stack


class DemoBackend(Protocol):
    """A simulated backend that ``opsbot demo`` runs beside the servers."""

    def start(self, stack: Stack) -> None:
        """Start serving (in a thread or as a child of the stack)."""

    def stop(self) -> None:
        """Stop serving; safe to call twice."""

    def describe(self) -> str:
        """One line for the demo banner: what it is and its URL."""


def demo_backends() -> list[DemoBackend]:
    """The simulators ``opsbot demo`` starts. None has landed yet."""
    return []
