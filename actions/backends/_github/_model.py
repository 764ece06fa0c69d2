"""What the GitHub backend returns: small frozen values a flow renders as they are.

Each says in words what matters to a person (a check's state, what blocks a merge), so a
flow never reads GitHub's JSON or PyGithub's objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from actions.backends._github._names import Repository

PASSED, FAILED, PENDING, SKIPPED = "passed", "failed", "pending", "skipped"
"""A check's state: what a person asks about."""

MERGE_METHODS = ("merge", "squash", "rebase")
"""GitHub's merge methods; ``merge`` is GitHub's default."""

FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "cancelled", "action_required",
                                "startup_failure", "stale"})
"""Check and workflow-run conclusions that count as failed."""


@dataclass(frozen=True)
class Check:
    """One check on a commit: a check run (GitHub Actions jobs are ones) or a commit status
    (``ci/jenkins``), with the link to its details."""

    name: str
    state: str  # PASSED, FAILED, PENDING or SKIPPED
    conclusion: str | None  # GitHub's word: failure, timed_out, success... None while pending
    url: str | None
    source: str = "check"  # "check" (Checks API) or "status" (Statuses API)


@dataclass(frozen=True)
class Review:
    """A reviewer's standing verdict: the latest review that is not a mere comment."""

    login: str
    state: str  # approved, changes_requested, dismissed, commented


@dataclass(frozen=True)
class PullRequestSummary:
    """A pull request as a list shows it."""

    repository: Repository
    number: int
    title: str
    author: str
    url: str
    draft: bool
    created_at: datetime | None
    head_ref: str | None = None  # not known from a search result
    base_ref: str | None = None


@dataclass(frozen=True)
class PullRequestList:
    """Up to ``limit`` pull requests, newest first, and how many there are in all."""

    items: tuple[PullRequestSummary, ...]
    total: int

    @property
    def truncated(self) -> bool:
        return self.total > len(self.items)


@dataclass(frozen=True)
class PullRequestStatus:
    """Everything ``pr_status`` and a merge preview show about one pull request.

    ``mergeable`` is None while GitHub is still computing it; ``blockers`` are the reasons
    GitHub would refuse a merge now, in words ("check e2e failed", "no approving review yet
    (waiting for bob-gh)"), empty when nothing is known to block it.
    """

    repository: Repository
    number: int
    title: str
    author: str
    url: str
    state: str  # open, closed or merged
    draft: bool
    head_ref: str
    head_sha: str
    base_ref: str
    mergeable: bool | None
    mergeable_state: str  # GitHub's: clean, blocked, unstable, dirty, behind, draft, unknown
    checks: tuple[Check, ...]
    reviews: tuple[Review, ...]
    review_requested: tuple[str, ...]  # logins, and teams as "@org/team"
    blockers: tuple[str, ...]

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.state == FAILED)

    @property
    def pending(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.state == PENDING)

    @property
    def approved_by(self) -> tuple[str, ...]:
        return tuple(r.login for r in self.reviews if r.state == "approved")

    @property
    def changes_requested_by(self) -> tuple[str, ...]:
        return tuple(r.login for r in self.reviews if r.state == "changes_requested")


@dataclass(frozen=True)
class WorkflowRun:
    """One run of a GitHub Actions workflow, as far as it has got."""

    repository: Repository
    id: int
    workflow: str  # the workflow's name ("E2E")
    status: str  # queued, in_progress, completed (and waiting, requested, pending)
    conclusion: str | None  # success, failure, cancelled... once completed
    html_url: str
    head_sha: str
    head_branch: str | None
    event: str
    attempt: int

    @property
    def done(self) -> bool:
        return self.status == "completed"

    @property
    def succeeded(self) -> bool:
        return self.done and self.conclusion in ("success", "neutral", "skipped")


@dataclass(frozen=True)
class Rerun:
    """What ``rerun_failed_checks`` did on a pull request's head commit.

    ``rerun``: the runs whose failed jobs were started again (each at its new attempt);
    ``skipped``: runs it left alone, with why ("still running"); ``failing_elsewhere``:
    failing checks that no workflow run of this repository owns (an external CI's), which
    only their own system can run again.
    """

    repository: Repository
    number: int
    head_sha: str
    rerun: tuple[WorkflowRun, ...]
    skipped: tuple[tuple[WorkflowRun, str], ...] = ()
    failing_elsewhere: tuple[Check, ...] = ()


@dataclass(frozen=True)
class WorkflowInput:
    """One ``on.workflow_dispatch.inputs`` entry of a workflow file."""

    name: str
    required: bool
    default: str | None
    kind: str  # string, choice, boolean, number, environment
    options: tuple[str, ...] = ()
    description: str = ""

    def describe(self) -> str:
        """``suite (required, smoke or full)``, ``browser (default chromium)``."""
        facts = []
        if self.required and self.default is None:
            facts.append("required")
        if self.options:
            facts.append(or_list(self.options))
        elif self.kind == "boolean":
            facts.append("true or false")
        if self.default is not None:
            facts.append(f"default {self.default}")
        return f"{self.name} ({', '.join(facts)})" if facts else self.name


def or_list(words: tuple[str, ...] | list[str]) -> str:
    """``a``, ``a or b``, ``a, b or c``."""
    items = list(words)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


@dataclass(frozen=True)
class Workflow:
    """A workflow of a repository, as its file at one ref declares it."""

    repository: Repository
    id: int
    name: str
    path: str  # .github/workflows/e2e.yml
    html_url: str
    ref: str  # where the file was read
    triggers: tuple[str, ...]
    inputs: tuple[WorkflowInput, ...]

    @property
    def file(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def dispatchable(self) -> bool:
        """Whether a person may run it by hand (it has the ``workflow_dispatch`` trigger)."""
        return "workflow_dispatch" in self.triggers


@dataclass(frozen=True)
class DispatchResult:
    """A dispatched workflow, with the inputs sent and, once found, the run it made."""

    workflow: Workflow
    ref: str
    inputs: dict[str, str] = field(default_factory=dict)
    run: WorkflowRun | None = None  # None: GitHub did not say and no new run showed up yet


@dataclass(frozen=True)
class MergePreview:
    """What a merge would do, for the confirmation: the pull request as the person sees it
    (its head SHA is what the merge will insist on), the method and the methods allowed."""

    status: PullRequestStatus
    method: str
    allowed_methods: tuple[str, ...]

    @property
    def head_sha(self) -> str:
        return self.status.head_sha

    @property
    def blockers(self) -> tuple[str, ...]:
        return self.status.blockers


@dataclass(frozen=True)
class MergeResult:
    """A merged pull request: the commit its merge made on the base branch."""

    repository: Repository
    number: int
    method: str
    head_sha: str
    merge_sha: str
    message: str
