"""Local servers that speak the real wire protocols of opsbot's backends.

``opsbot demo`` starts every simulator that ``demo_backends`` lists; a new
simulator adds itself there (and only there). Each one subclasses
``simulators._base.SimulatorBase`` (lifecycle, fault steering, request log) and runs
its ``python -m`` entry point through ``simulators._base.run_main``.
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

    def env(self) -> dict[str, str]:
        """Environment variables that point the action server at it (after ``start``)."""


def demo_backends() -> list[DemoBackend]:
    """The simulators ``opsbot demo`` starts, with demo timings (env-tunable for tests)."""
    import os

    from simulators.jenkins import JenkinsSimulator

    def seconds(name: str, default: float) -> float:
        try:
            return max(0.0, float(os.environ.get(name) or default))
        except ValueError:
            return default

    jenkins = JenkinsSimulator(
        queue_delay=seconds("OPSBOT_DEMO_QUEUE_SECONDS", 1.0),
        build_seconds=seconds("OPSBOT_DEMO_BUILD_SECONDS", 8.0),
        port=int(seconds("OPSBOT_DEMO_JENKINS_PORT", 0)),
    )
    return [jenkins]
