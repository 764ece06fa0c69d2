"""Local servers that speak the real wire protocols of opsbot's backends.

``opsbot demo`` starts every simulator that ``demo_backends`` lists; a new
simulator adds itself there (and only there). Each one subclasses
``simulators._base.SimulatorBase`` (lifecycle, fault steering, request log) and runs
its ``python -m`` entry point through ``simulators._base.run_main``; the seeded ones
(Jenkins, Jira, the logs) check their YAML with ``simulators._seed``. The long ones are
packages (``simulators/jira/`` ...), a module a concern, their public names in
``__init__``.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
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


class DemoLogFiles:
    """The demo logs as files (``OPSBOT_DEMO_LOGS=files``): opsbot's file log source reads them."""

    def __init__(self) -> None:
        self.directory: Path | None = None

    def start(self, stack: Stack) -> None:
        from datetime import datetime

        from simulators.logs import generate, write_files

        self.directory = stack.settings.state_dir / "demo-logs"
        write_files(generate(datetime.now(UTC)), self.directory)

    def stop(self) -> None:
        """Nothing runs; the files stay for a look (they are rewritten at the next start)."""

    def describe(self) -> str:
        return f"demo log files in {self.directory}"

    def env(self) -> dict[str, str]:
        return {"OPSBOT_LOG_DIR": str(self.directory)}


def demo_backends() -> list[DemoBackend]:
    """The simulators ``opsbot demo`` starts, with demo timings (env-tunable for tests).

    Logs come from the Loki simulator, or from files when ``OPSBOT_DEMO_LOGS=files``.
    GitHub is simulated unless ``GITHUB_API_URL`` names one: then the demo talks to that
    (with the GITHUB_TOKEN or App set beside it).
    """
    import os

    from simulators.cdn import CdnSimulator
    from simulators.github import GithubSimulator
    from simulators.jenkins import JenkinsSimulator
    from simulators.jira import JiraSimulator
    from simulators.loki import LokiSimulator

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
    logs_kind = (os.environ.get("OPSBOT_DEMO_LOGS") or "loki").strip().lower()
    if logs_kind not in ("loki", "files"):
        raise ValueError(f"OPSBOT_DEMO_LOGS={logs_kind!r}: use loki or files")
    logs: DemoBackend = DemoLogFiles() if logs_kind == "files" else LokiSimulator()
    github: list[DemoBackend] = [] if (os.environ.get("GITHUB_API_URL") or "").strip() \
        else [GithubSimulator(queue_seconds=seconds("OPSBOT_DEMO_QUEUE_SECONDS", 1.0),
                              run_seconds=seconds("OPSBOT_DEMO_BUILD_SECONDS", 8.0))]
    return [jenkins, JiraSimulator(), logs, *github, CdnSimulator()]
