"""PyGithub's objects read into the backend's values, and what blocks a merge, in words.

Why apart: what GitHub's fields mean to a person (a ``timed_out`` check failed, a comment is
not a verdict, ``mergeable_state: blocked`` with a red required check) is one job; these
functions run in the worker thread, on objects already fetched, and never ask GitHub
(a lazy attribute would be a hidden request, so only fields a list or get returns are read).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from github.CheckRun import CheckRun
from github.CommitStatus import CommitStatus
from github.Issue import Issue
from github.PullRequest import PullRequest
from github.PullRequestReview import PullRequestReview
from github.WorkflowRun import WorkflowRun as GhRun

from actions.backends._github._model import (
    FAILED,
    FAILED_CONCLUSIONS,
    PASSED,
    PENDING,
    SKIPPED,
    Check,
    PullRequestSummary,
    Review,
    WorkflowRun,
)
from actions.backends._github._names import Repository


def check_of_run(run: CheckRun) -> Check:
    """A check run: pending until completed, then by its conclusion."""
    conclusion = run.conclusion if run.status == "completed" else None
    if run.status != "completed":
        state = PENDING
    elif conclusion in FAILED_CONCLUSIONS:
        state = FAILED
    elif conclusion in ("neutral", "skipped"):
        state = SKIPPED
    else:
        state = PASSED
    return Check(run.name, state, conclusion, run.details_url or run.html_url, "check")


def check_of_status(status: CommitStatus) -> Check:
    """A commit status (the Statuses API: error, failure, pending, success)."""
    state = {"success": PASSED, "pending": PENDING}.get(status.state, FAILED)
    return Check(status.context, state, None if state == PENDING else status.state,
                 status.target_url, "status")


def latest_reviews(reviews: Iterable[PullRequestReview]) -> tuple[Review, ...]:
    """Each reviewer's standing verdict: their latest review that is not a comment (a
    comment after an approval does not withdraw it); a reviewer who only commented is
    listed as ``commented``."""
    verdicts: dict[str, str] = {}
    for review in reviews:
        login = review.user.login if review.user else "ghost"
        state = (review.state or "").lower()
        if state == "commented" and login in verdicts:
            continue
        verdicts[login] = state
    return tuple(Review(login, state) for login, state in verdicts.items())


def requested(pull: PullRequest) -> tuple[str, ...]:
    """Who is still asked to review: logins, and teams as ``@org/slug``."""
    users = [u.login for u in pull.requested_reviewers or ()]
    owner = pull.base.repo.owner.login if pull.base and pull.base.repo else ""
    teams = [f"@{owner}/{t.slug}" for t in pull.requested_teams or ()]
    return tuple(users + teams)


def blockers(*, state: str, draft: bool, mergeable: bool | None, mergeable_state: str,
             base_ref: str, checks: tuple[Check, ...], reviews: tuple[Review, ...],
             review_requested: tuple[str, ...]) -> tuple[str, ...]:
    """Why GitHub would refuse to merge now, in words; empty when nothing is known to.

    Failing and pending checks block only when GitHub says the merge is ``blocked``: with
    ``unstable`` they are not required, and the merge may go ahead. REST does not say
    which checks branch protection requires (that needs admin rights), so all of them are
    named then.
    """
    if state != "open":
        return (f"it is already {state}",)
    found: list[str] = []
    if draft:
        found.append("it is a draft")
    if mergeable is False or mergeable_state == "dirty":
        found.append(f"it has merge conflicts with {base_ref}")
    if mergeable is None or mergeable_state == "unknown":
        found.append("GitHub is still working out whether it can be merged; ask again in a "
                     "moment")
    if mergeable_state == "behind":
        found.append(f"its branch is behind {base_ref}")
    if mergeable_state != "blocked":
        return tuple(found)
    failing = [c.name for c in checks if c.state == FAILED]
    pending = [c.name for c in checks if c.state == PENDING]
    if failing:
        found.append(f"{_checks(failing)} failed")
    if pending:
        found.append(f"{_checks(pending)} {'is' if len(pending) == 1 else 'are'} still running")
    changes = [r.login for r in reviews if r.state == "changes_requested"]
    if changes:
        found.append(f"{_and(changes)} requested changes")
    if not any(r.state == "approved" for r in reviews):
        waiting = f" (waiting for {_and(list(review_requested))})" if review_requested else ""
        found.append(f"no approving review yet{waiting}")
    if not (failing or pending or changes) and any(r.state == "approved" for r in reviews):
        found.append("branch protection blocks it (a rule GitHub does not show opsbot: "
                     "more approvals, a code owner, or a required check not yet reported)")
    return tuple(found)


def _checks(names: list[str]) -> str:
    return f"check {names[0]}" if len(names) == 1 else f"checks {_and(names)}"


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def run_of(repository: Repository, run: GhRun) -> WorkflowRun:
    """A workflow run as a flow shows and follows it."""
    return WorkflowRun(repository=repository, id=run.id, workflow=run.name or "",
                       status=run.status or "", conclusion=run.conclusion,
                       html_url=run.html_url, head_sha=run.head_sha or "",
                       head_branch=run.head_branch, event=run.event or "",
                       attempt=run.run_attempt or 1)


def summary_of_pull(repository: Repository, pull: PullRequest) -> PullRequestSummary:
    return PullRequestSummary(repository, pull.number, pull.title, pull.user.login,
                              pull.html_url, bool(pull.draft), pull.created_at,
                              pull.head.ref, pull.base.ref)


def summary_of_issue(issue: Issue) -> PullRequestSummary:
    """A pull request found by search (an issue with a ``pull_request`` key); its repository
    comes from ``repository_url``, since ``issue.repository`` would ask GitHub again."""
    return PullRequestSummary(repository_of_url(issue.repository_url), issue.number,
                              issue.title, issue.user.login, issue.html_url,
                              bool(issue.draft), issue.created_at)


def repository_of_url(url: str) -> Repository:
    """``.../repos/acme/checkout-web`` -> acme/checkout-web."""
    parts = urlsplit(url).path.rstrip("/").split("/")
    return Repository(parts[-2], parts[-1])
