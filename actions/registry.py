"""Where intents meet their code: the handler and, for changes, the executor of each intent.

A new intent is added here: its handler (answers, asks, or proposes an operation) and,
if it changes something, its executor (run exactly once, after confirmation). Its risk
comes from ``policy.yml``; its training data from ``data/``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from actions._runtime import Runtime
    from actions.guard import Operation
    from actions.turn import Turn

__all__ = ["Executor", "Handler", "Outcome", "executors", "handlers"]


@dataclass(frozen=True)
class Outcome:
    """What an executor did: the reply, a backend reference, and whether a build is followed."""

    reply: str
    ref: dict[str, Any] = field(default_factory=dict)
    follow: bool = False  # True: the watcher follows the build and reports its end
    # True: the request was sent but its answer lost, so whether it happened is not known;
    # the operation goes to ``unknown`` and (with ``follow``) the watcher finds out.
    unknown: bool = False


Handler = Callable[["Turn"], Awaitable[None]]
Executor = Callable[["Runtime", "Operation"], Awaitable[Outcome]]


def handlers() -> dict[str, Handler]:
    """Every ops intent's handler."""
    from actions import jenkins_flows, jira_flows, logs_flows

    return {**jenkins_flows.HANDLERS, **jira_flows.HANDLERS, "query_logs": logs_flows.query_logs}


def executors() -> dict[str, Executor]:
    """Every change intent's executor."""
    from actions import jenkins_flows, jira_flows

    return {**jenkins_flows.EXECUTORS, **jira_flows.EXECUTORS}
