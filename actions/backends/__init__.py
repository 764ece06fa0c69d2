"""The systems opsbot acts on, each behind a typed async wrapper over its client library.

Every backend is declared by a :class:`~actions.backends._protocol.BackendKind`: its name,
what people call it, the environment variables that configure it, how it is built from
them and what opsbot says when it is not. :data:`KINDS` lists them; the runtime builds
every configured one from the environment and holds them by name. Errors are always
those of :mod:`actions.errors`, translated from the client library's in one place
(``_client`` for HTTP client libraries).
"""

from __future__ import annotations

from actions.backends._protocol import Backend, BackendKind, Backends
from actions.backends.github import GITHUB
from actions.backends.jenkins import JENKINS
from actions.backends.jira import JIRA
from actions.backends.logs import LOGS

__all__ = ["GITHUB", "JENKINS", "JIRA", "KINDS", "LOGS", "Backend", "BackendKind", "Backends"]

KINDS: tuple[BackendKind[Backend], ...] = (JENKINS, JIRA, LOGS, GITHUB)
"""Every backend opsbot knows, in the order start-up checks report them."""
