"""opsbot's GitHub backend: a typed, async wrapper over PyGithub (GitHub's REST API, on
github.com or GitHub Enterprise Server).

PyGithub is synchronous (requests underneath), so every call runs in a worker thread under
a timeout, and whatever it raises is translated into :mod:`actions.errors` with a message
fit for the chat; nothing of PyGithub's escapes. GitHub's rate limits are kept: a limit
that lifts within seconds is waited out once, a longer one is refused with the time it
lifts, and nothing is sent to GitHub before then.

What the intents call, each given a ``Repository`` from the service catalog:
``pull_request`` (pr_status), ``open_pull_requests`` and ``waiting_for_review`` (list_prs),
``rerun_failed_checks`` then ``workflow_run``/``wait_for_run`` (rerun_checks),
``workflow`` and ``dispatch_workflow`` (run_workflow), ``merge_preview`` and ``merge``
(merge_pr).

The parts live in ``actions/backends/_github/``: configuration, who opsbot is on each
request (token, App, rate gate), what the backend returns, reading PyGithub's objects,
workflow files, and the backend itself; this module is what the rest of opsbot imports.
"""

from __future__ import annotations

from actions.backends._github._backend import GithubBackend
from actions.backends._github._config import DEFAULT_API_URL, GithubApp, GithubConfig
from actions.backends._github._kind import GITHUB
from actions.backends._github._model import (
    FAILED,
    MERGE_METHODS,
    PASSED,
    PENDING,
    SKIPPED,
    Check,
    DispatchResult,
    MergePreview,
    MergeResult,
    PullRequestList,
    PullRequestStatus,
    PullRequestSummary,
    Rerun,
    Review,
    Workflow,
    WorkflowInput,
    WorkflowRun,
)
from actions.backends._github._names import OWNER_VARIABLE, Repository, owner_from_env

__all__ = [
    "DEFAULT_API_URL",
    "OWNER_VARIABLE",
    "FAILED",
    "GITHUB",
    "MERGE_METHODS",
    "PASSED",
    "PENDING",
    "SKIPPED",
    "Check",
    "DispatchResult",
    "GithubApp",
    "GithubBackend",
    "GithubConfig",
    "MergePreview",
    "MergeResult",
    "PullRequestList",
    "PullRequestStatus",
    "PullRequestSummary",
    "Repository",
    "Rerun",
    "Review",
    "Workflow",
    "WorkflowInput",
    "WorkflowRun",
    "owner_from_env",
]
