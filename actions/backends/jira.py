"""opsbot's Jira backend: a typed, async wrapper over the ``jira`` library (REST API v2).

``jira`` is synchronous (requests underneath), so every call runs in a worker thread
(``asyncio.to_thread``) under ``asyncio.wait_for``, and every request also carries the
client-side ``timeout``. The client itself is built lazily, on the first call and in
that worker thread, because its constructor already asks Jira for ``serverInfo``:
starting the action server never waits for Jira. Whatever ``jira`` or requests raises
is translated into :mod:`actions.errors` here, with a message fit for the chat;
nothing of theirs escapes this module.

Searches are built by :func:`build_jql`, which quotes every value as a JQL string
literal, so text typed in a chat can never change a query's structure.

The parts live in ``actions/backends/_jira/``: configuration, what the backend returns,
reading Jira's JSON, and the backend itself; this module is what the rest of
opsbot imports.
"""

from __future__ import annotations

from actions.backends._jira._backend import JiraBackend
from actions.backends._jira._config import JiraConfig
from actions.backends._jira._jql import build_jql
from actions.backends._jira._kind import JIRA
from actions.backends._jira._model import (
    CURRENT_USER,
    STANDARD_RESOLUTIONS,
    UNASSIGNED,
    Comment,
    Issue,
    SearchResult,
    Transition,
    TransitionField,
    User,
)

__all__ = [
    "JIRA",
    "CURRENT_USER",
    "STANDARD_RESOLUTIONS",
    "UNASSIGNED",
    "Comment",
    "Issue",
    "JiraBackend",
    "JiraConfig",
    "SearchResult",
    "Transition",
    "TransitionField",
    "User",
    "build_jql",
]
