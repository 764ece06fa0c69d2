"""opsbot's Jenkins backend: a typed, async wrapper over python-jenkins.

python-jenkins is synchronous (requests underneath), so every call runs in a worker
thread (``asyncio.to_thread``) under ``asyncio.wait_for``, and every request also carries
the client-side ``timeout``. Whatever python-jenkins or requests raises is translated
into :mod:`actions.errors` here, with a message fit for the chat; nothing of theirs
escapes this module.

Reads use Jenkins' ``tree`` query, so a job's history with parameters and causes, or
every job in every folder, is one request.

The parts live in ``actions/backends/_jenkins/``: configuration, what the backend returns,
reading Jenkins's JSON, and the backend itself; this module is what the rest of
opsbot imports.
"""

from __future__ import annotations

from actions.backends._jenkins._backend import JenkinsBackend
from actions.backends._jenkins._config import JenkinsConfig
from actions.backends._jenkins._kind import JENKINS
from actions.backends._jenkins._model import (
    OPERATION_PARAMETER,
    PERMALINKS,
    Build,
    FailureReport,
    Job,
    QueueState,
    Sightings,
)

__all__ = [
    "JENKINS",
    "OPERATION_PARAMETER",
    "PERMALINKS",
    "Build",
    "FailureReport",
    "JenkinsBackend",
    "JenkinsConfig",
    "Job",
    "QueueState",
    "Sightings",
]
