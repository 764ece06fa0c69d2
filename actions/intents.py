"""Every intent opsbot knows, installed in the registry in one explicit step.

Whoever starts opsbot's actions (``actions.ops`` for the action server, the CLI commands
that read intents, the tests) calls :func:`install`; importing a flow registers nothing.
"""

from __future__ import annotations

from actions import registry
from actions.flows import chat, events, jenkins, jira, logs, wishes
from actions.operations import flow as operations

__all__ = ["BUILT_IN", "install"]

BUILT_IN: tuple[registry.IntentKind, ...] = (
    *jenkins.INTENTS, *logs.INTENTS, *jira.INTENTS, *events.INTENTS, *wishes.INTENTS,
    *chat.INTENTS)
"""Every built-in intent, in the order "did you mean" and teaching offer them."""


def install() -> None:
    """Register the built-in intents and the team-defined operations (idempotent)."""
    registry.register(BUILT_IN)
    registry.add_provider(operations.team_kinds)
