"""The GitHub simulator's model: the seeded names, GitHub's limits and messages, and the
records of repositories, pull requests, check runs, workflows and their runs.

Why apart: the seed, the state, the renderer and the HTTP face all speak of these; they are
mutated only under ``_State.lock``. Every name a test or the demo uses is here, once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from simulators._http import Response

# -- the demo world: every name in one place ---------------------------------------------

OWNER = "acme"
"""The simulated organisation that owns every demo repository."""
ALICE = "alice-gh"
BOB = "bob-gh"
CAROL = "carol-gh"
OPSBOT = "opsbot-gh"
"""The machine user behind ``DEFAULT_TOKEN``: opsbot's own account."""
OUTSIDER = "mallory-gh"
"""Not a member of acme: ``OUTSIDER_TOKEN`` sees public repositories only."""

SERVICE_REPOS: dict[str, str] = {
    "payments": "payments",
    "checkout": "checkout-web",
    "search": "search",
    "billing": "billing",
    "auth": "auth",
    "inventory": "inventory",
    "notifications": "notifications",
}
"""Demo service (as Jenkins and the logs name it) -> repository name under ``OWNER``.
``checkout`` lives in ``checkout-web``: a catalog has to map it, a naming rule cannot."""

CHECKOUT_REPO = f"{OWNER}/checkout-web"
REVIEW_PR = 42
"""In ``CHECKOUT_REPO``: waits for bob's review, ``e2e`` fails, no approval yet."""
E2E_WORKFLOW = "e2e.yml"
"""Has ``workflow_dispatch`` with a required choice input ``suite`` (smoke or full)."""
CI_WORKFLOW = "ci.yml"
"""Runs on push and pull_request only: dispatching it is refused (422)."""

DEFAULT_TOKEN = "ghp_opsbotSimulatorToken000000000000000000"
OUTSIDER_TOKEN = "ghp_outsiderSimulatorToken0000000000000000"
APP_ID = 424242
APP_SLUG = "opsbot"
INSTALLATION_ID = 31337

# -- GitHub's limits and words -------------------------------------------------------------

DOCS = "https://docs.github.com/rest"
PER_PAGE_DEFAULT = 30
PER_PAGE_MAX = 100
"""``per_page`` defaults to 30 and is capped at 100 (docs.github.com/en/rest/using-the-rest-api/
using-pagination-in-the-rest-api)."""
CORE_LIMIT = 5000
SEARCH_LIMIT = 30
"""5,000 requests an hour for a user or an installation; search: 30 a minute
(docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api)."""
JWT_MAX_SECONDS = 600
"""An App's JWT may expire at most 10 minutes after it was issued
(docs.github.com/en/apps/creating-github-apps/authenticating-with-a-github-app/
generating-a-json-web-token-jwt-for-a-github-app)."""
INSTALLATION_TOKEN_SECONDS = 3600.0
"""An installation access token expires after one hour
(docs.github.com/en/rest/apps/apps#create-an-installation-access-token-for-an-app)."""

CONCLUSIONS = ("success", "failure", "neutral", "cancelled", "skipped", "timed_out",
               "action_required")
MERGE_METHODS = ("merge", "squash", "rebase")
_EPOCH_SEED = "opsbot-github-simulator"


def iso(moment: float | None) -> str | None:
    """GitHub's timestamp: ISO 8601 in UTC, seconds, ``Z``."""
    if moment is None:
        return None
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha_of(*parts: Any) -> str:
    """A stable 40-hex-digit commit SHA for what made it."""
    return hashlib.sha1(repr((_EPOCH_SEED, *parts)).encode()).hexdigest()


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, with when (the simulator's clock) and who.

    ``rate_remaining`` and ``rate_reset`` are the ``x-ratelimit-*`` values it was answered
    with (None for ``/rate_limit`` and the App's JWT endpoints), so a test can prove that a
    client sent nothing between a limit and its reset.
    """

    method: str
    target: str
    status: int
    at: float
    who: str | None  # a login, "installation:<id>", "app:<id>", or None (anonymous)
    resource: str | None
    rate_remaining: int | None
    rate_reset: int | None


class _ApiError(Exception):
    """A refusal as GitHub words it: ``{"message", "documentation_url"}`` and a status."""

    def __init__(self, status: int, message: str, docs: str = DOCS, *,
                 headers: tuple[tuple[str, str], ...] = (),
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.docs = docs
        self.headers = headers
        self.extra = extra or {}

    def response(self) -> Response:
        body = {"message": self.message, **self.extra, "documentation_url": self.docs}
        response = Response.json(body, self.status)
        response.headers.extend(self.headers)
        return response


def not_found(docs: str = DOCS) -> _ApiError:
    """GitHub's 404, the same for what does not exist and what the caller may not see."""
    return _ApiError(404, "Not Found", docs)


# -- the world ----------------------------------------------------------------------------


@dataclass
class _User:
    login: str
    id: int
    name: str
    kind: str = "User"  # or "Organization", "Bot"


@dataclass
class _Input:
    """One ``on.workflow_dispatch.inputs`` entry of a workflow file."""

    name: str
    required: bool
    default: str | None
    kind: str  # string, choice, boolean, number, environment
    options: tuple[str, ...]


@dataclass
class _Workflow:
    id: int
    name: str
    path: str  # .github/workflows/<file>
    text: str  # the YAML, as the contents endpoint serves it
    triggers: frozenset[str]
    inputs: dict[str, _Input]
    jobs: tuple[str, ...]  # the job names, in file order
    created: float

    @property
    def file(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass
class _CheckRun:
    """A check run; an Actions job is one too (``run_id`` set), as on GitHub."""

    id: int
    name: str
    head_sha: str
    created: float
    queued_for: float
    runs_for: float
    conclusion: str  # what it will end with
    run_id: int | None = None
    attempt: int = 1
    app: str = "github-actions"
    summary: str = ""

    def status(self, now: float) -> str:
        if now < self.created + self.queued_for:
            return "queued"
        if now < self.created + self.queued_for + self.runs_for:
            return "in_progress"
        return "completed"

    def started_at(self, now: float) -> float | None:
        start = self.created + self.queued_for
        return start if now >= start else None

    def completed_at(self, now: float) -> float | None:
        end = self.created + self.queued_for + self.runs_for
        return end if now >= end else None


@dataclass
class _WorkflowRun:
    id: int
    number: int
    workflow: _Workflow
    event: str
    head_branch: str
    head_sha: str
    actor: str
    created: float
    jobs: list[_CheckRun]  # the latest attempt's
    attempt: int = 1
    attempt_started: float = 0.0
    pr_numbers: tuple[int, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)

    def status(self, now: float) -> str:
        """From the jobs of the latest attempt (a re-run is queued, though the jobs it kept
        are done)."""
        states = {job.status(now) for job in self.jobs if job.attempt == self.attempt}
        if states == {"completed"}:
            return "completed"
        return "queued" if states == {"queued"} else "in_progress"

    def conclusion(self, now: float) -> str | None:
        if self.status(now) != "completed":
            return None
        endings = {job.conclusion for job in self.jobs}
        for worst in ("failure", "timed_out", "cancelled", "action_required"):
            if worst in endings:
                return worst
        return "success"


@dataclass
class _Status:
    """A commit status (the older Statuses API, e.g. Jenkins reporting ``ci/jenkins``)."""

    id: int
    context: str
    state: str  # error, failure, pending, success
    description: str
    created: float
    target_url: str | None = None


@dataclass
class _Review:
    id: int
    user: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    commit_id: str
    submitted: float
    body: str = ""


@dataclass
class _Pull:
    number: int
    title: str
    author: str
    head_ref: str
    head_sha: str
    base_ref: str
    created: float
    updated: float
    body: str = ""
    state: str = "open"
    draft: bool = False
    merged: bool = False
    merged_by: str | None = None
    merged_at: float | None = None
    merge_commit_sha: str | None = None
    conflicts: bool = False
    mergeability_known: bool = True  # False after a push: the next read says null
    requested: list[str] = field(default_factory=list)  # requested reviewers (logins)
    reviews: list[_Review] = field(default_factory=list)
    pushes: int = 0


@dataclass
class _Repo:
    owner: str
    name: str
    id: int
    description: str
    private: bool
    created: float
    default_branch: str = "main"
    branches: dict[str, str] = field(default_factory=dict)  # name -> head sha
    files: dict[str, str] = field(default_factory=dict)  # path -> text
    pulls: dict[int, _Pull] = field(default_factory=dict)
    workflows: list[_Workflow] = field(default_factory=list)
    check_runs: list[_CheckRun] = field(default_factory=list)  # outside Actions
    statuses: dict[str, list[_Status]] = field(default_factory=dict)  # sha -> statuses
    required_checks: tuple[str, ...] = ()
    required_approvals: int = 0
    next_number: int = 1  # issues and pull requests share numbers

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"
