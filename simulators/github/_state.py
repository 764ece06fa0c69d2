"""The GitHub simulator's state: repositories, pull requests, checks, workflow runs, rate
limits and the webhook outbox, under one lock, moving on the injected clock.

Why apart: everything that changes lives here; the HTTP face asks and the public face
steers only through it. Check runs and workflow runs are not stepped by a timer: their
status is computed from the clock when read (queued -> in_progress -> completed), so a test
that moves its clock sees them move, with no sleeping.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from simulators._base import Faults, RequestLog
from simulators.github._auth import Caller, _Auth
from simulators.github._model import (
    CONCLUSIONS,
    MERGE_METHODS,
    RecordedRequest,
    _ApiError,
    _CheckRun,
    _Pull,
    _Repo,
    _Review,
    _User,
    _Workflow,
    _WorkflowRun,
    not_found,
    sha_of,
)

_PULLS_DOCS = "https://docs.github.com/rest/pulls/pulls#merge-a-pull-request"
_PROTECTION_DOCS = ("https://docs.github.com/articles/about-protected-branches")
_DISPATCH_DOCS = ("https://docs.github.com/rest/actions/workflows"
                  "#create-a-workflow-dispatch-event")
_RERUN_DOCS = ("https://docs.github.com/rest/actions/workflow-runs"
               "#re-run-failed-jobs-from-a-workflow-run")
_RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"

Event = tuple[str, dict[str, Any]]  # (X-GitHub-Event, payload)


class _Window:
    """One caller's primary rate limit for one resource: used so far, and when it resets."""

    def __init__(self, reset: int) -> None:
        self.reset = reset
        self.used = 0


class _State:
    """Everything the simulator knows, behind one lock."""

    def __init__(self, clock: Callable[[], float], auth: _Auth, *, queue_seconds: float,
                 run_seconds: float, limit: int, search_limit: int, window: float,
                 rate_limit_status: int) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.auth = auth
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()
        self.queue_seconds = queue_seconds
        self.run_seconds = run_seconds
        self.limits = {"core": limit, "search": search_limit}
        self.windows_seconds = {"core": window, "search": 60.0}
        self.rate_limit_status = rate_limit_status
        self.retry_after = 60
        self.windows: dict[tuple[str, str], _Window] = {}
        self.users: dict[str, _User] = {}
        self.members: set[str] = set()  # logins in the organisation: they see private repos
        self.repos: dict[str, _Repo] = {}
        self.runs: dict[int, tuple[_Repo, _WorkflowRun]] = {}
        self.outcomes: dict[tuple[str, str], deque[dict[str, str]]] = {}
        self.rerun_outcomes: deque[str] = deque()
        self.next_id = 1000
        self.api_base = ""  # http://127.0.0.1:PORT[/api/v3], set at start
        self.web_base = ""  # http://127.0.0.1:PORT
        self.outbox: list[Event] = []
        self.seen: dict[tuple[str, int, int], str] = {}  # what the webhooks have told

    def now(self) -> float:
        return self.clock()

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    # -- who sees what -----------------------------------------------------------------

    def user(self, login: str) -> _User:
        found = self.users.get(login)
        if found is None:
            raise not_found()
        return found

    def sees(self, caller: Caller, repo: _Repo) -> bool:
        """Private repositories are seen by the organisation's members and the installation."""
        return (not repo.private or caller.kind == "installation"
                or (caller.kind == "user" and caller.name in self.members))

    def repo(self, owner: str, name: str, caller: Caller) -> _Repo:
        """The repository, or GitHub's 404: the same when it is there but hidden."""
        found = self.repos.get(f"{owner}/{name}".lower())
        if found is None or not self.sees(caller, found):
            raise not_found("https://docs.github.com/rest/repos/repos#get-a-repository")
        return found

    def add_repo(self, repo: _Repo) -> _Repo:
        self.repos[repo.full_name.lower()] = repo
        return repo

    # -- rate limits ------------------------------------------------------------------------

    def take(self, who: str, resource: str, anonymous: bool) -> tuple[int, int, int, int]:
        """Count one request against ``who``'s window: (limit, remaining, used, reset); the
        primary limit's refusal once it is spent (403, or 429 with ``rate_limit_status``).

        GitHub: "If you exceed your primary rate limit, you will receive a 403 or 429
        response, and the x-ratelimit-remaining header will be 0"; ``x-ratelimit-reset`` is
        in UTC epoch seconds (docs.github.com/en/rest/using-the-rest-api/
        troubleshooting-the-rest-api#rate-limit-errors). Unauthenticated: 60 an hour, per
        address.
        """
        limit = 60 if anonymous and resource == "core" else self.limits[resource]
        window = self.window(who, resource)
        if window.used >= limit:
            subject = ("user ID" if not who.startswith(("installation:", "ip:"))
                       else who.split(":")[0] + " ID")
            identity = self.users[who].id if who in self.users else who.split(":")[-1]
            headers = (("x-ratelimit-limit", str(limit)), ("x-ratelimit-remaining", "0"),
                       ("x-ratelimit-used", str(window.used)),
                       ("x-ratelimit-reset", str(window.reset)),
                       ("x-ratelimit-resource", resource))
            raise _ApiError(self.rate_limit_status,
                            f"API rate limit exceeded for {subject} {identity}. If you reach out "
                            "to GitHub Support for help, please include the request ID "
                            f"{self.new_id():X}:{self.new_id():X}.", _RATE_DOCS,
                            headers=headers)
        window.used += 1
        return limit, limit - window.used, window.used, window.reset

    def window(self, who: str, resource: str) -> _Window:
        now = self.now()
        key = (who, resource)
        window = self.windows.get(key)
        if window is None or now >= window.reset:
            window = self.windows[key] = _Window(int(now + self.windows_seconds[resource]) + 1)
        return window

    def rate_json(self, who: str, anonymous: bool) -> dict[str, Any]:
        """``GET /rate_limit``'s body (docs.github.com/en/rest/rate-limit/rate-limit)."""
        resources = {}
        for resource in ("core", "search"):
            limit = 60 if anonymous and resource == "core" else self.limits[resource]
            window = self.window(who, resource)
            resources[resource] = {"limit": limit, "used": window.used,
                                   "remaining": max(0, limit - window.used),
                                   "reset": window.reset, "resource": resource}
        return {"resources": resources, "rate": resources["core"]}

    # -- commits and checks ------------------------------------------------------------------

    def resolve(self, repo: _Repo, ref: str) -> str | None:
        """The commit SHA a ref names: a branch, ``refs/heads/...``, or a (short) SHA."""
        branch = ref.removeprefix("refs/heads/")
        if branch in repo.branches:
            return repo.branches[branch]
        if len(ref) >= 7 and all(c in "0123456789abcdef" for c in ref.lower()):
            for sha in self.known_shas(repo):
                if sha.startswith(ref.lower()):
                    return sha
        return None

    def known_shas(self, repo: _Repo) -> set[str]:
        shas = set(repo.branches.values()) | set(repo.statuses)
        shas |= {p.head_sha for p in repo.pulls.values()}
        shas |= {c.head_sha for c in self.check_runs(repo)}
        return shas

    def check_runs(self, repo: _Repo) -> list[_CheckRun]:
        """Every check run in the repository, Actions jobs of every attempt included."""
        found = list(repo.check_runs)
        for owner_repo, run in self.runs.values():
            if owner_repo is repo:
                found.extend(run.jobs)
        return found

    def latest_checks(self, repo: _Repo, sha: str) -> list[_CheckRun]:
        """The newest check run of each name on ``sha`` (``filter=latest``, the default)."""
        newest: dict[str, _CheckRun] = {}
        for check in self.check_runs(repo):
            if check.head_sha == sha and (check.name not in newest
                                          or check.id > newest[check.name].id):
                newest[check.name] = check
        return sorted(newest.values(), key=lambda c: c.id)

    def workflow(self, repo: _Repo, ident: str) -> _Workflow:
        """A workflow by id or file name (``e2e.yml``), as the API takes either."""
        for flow in repo.workflows:
            if ident == str(flow.id) or ident == flow.file:
                return flow
        raise not_found("https://docs.github.com/rest/actions/workflows#get-a-workflow")

    def run(self, repo: _Repo, run_id: str) -> _WorkflowRun:
        found = self.runs.get(int(run_id)) if run_id.isdigit() else None
        if found is None or found[0] is not repo:
            raise not_found("https://docs.github.com/rest/actions/workflow-runs"
                            "#get-a-workflow-run")
        return found[1]

    # -- starting and re-running ---------------------------------------------------------------

    def start_run(self, repo: _Repo, flow: _Workflow, event: str, branch: str, sha: str,
                  actor: str, *, conclusions: dict[str, str] | None = None,
                  created: float | None = None, inputs: dict[str, str] | None = None
                  ) -> _WorkflowRun:
        """A new run of ``flow``: each job a check run on ``sha``; ``conclusions`` by job name
        (what is not named succeeds), else the next scripted outcome (``set_outcome``)."""
        if conclusions is None:
            scripted = self.outcomes.get((repo.full_name, flow.file))
            conclusions = scripted.popleft() if scripted else {}
        start = self.now() if created is None else created
        run_id = self.new_id()
        number = 1 + sum(1 for r, run in self.runs.values()
                         if r is repo and run.workflow is flow)
        jobs = [_CheckRun(self.new_id(), name, sha, start, self.queue_seconds, self.run_seconds,
                          conclusions.get(name, "success"), run_id=run_id)
                for name in flow.jobs]
        prs = tuple(p.number for p in repo.pulls.values()
                    if p.head_sha == sha and p.state == "open")
        run = _WorkflowRun(run_id, number, flow, event, branch, sha, actor, start, jobs,
                           attempt_started=start, pr_numbers=prs, inputs=dict(inputs or {}))
        self.runs[run_id] = (repo, run)
        return run

    def dispatch(self, repo: _Repo, flow: _Workflow, body: dict[str, Any],
                 actor: str) -> _WorkflowRun:
        """``POST .../dispatches``: the run it starts, or GitHub's 422 with its words.

        GitHub refuses with 422 a workflow without the ``workflow_dispatch`` trigger ("Workflow
        does not have 'workflow_dispatch' trigger"), a ref it cannot find ("No ref found for:
        X"), inputs the file does not declare ('Unexpected inputs provided: ["x"]'), a
        required input left out ("Required input 'x' not provided") and a choice outside its
        options ("Provided value 'v' for input 'x' not in the list of allowed values")
        (docs.github.com/en/rest/actions/workflows#create-a-workflow-dispatch-event; the
        words as GitHub answers them, quoted in the issues of benc-uk/workflow-dispatch and
        convictional/trigger-workflow-and-wait).
        """
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref:
            raise _ApiError(422, "Invalid request.\n\n\"ref\" wasn't supplied.", _DISPATCH_DOCS)
        raw_inputs = body.get("inputs") or {}
        if not isinstance(raw_inputs, dict):
            raise _ApiError(422, "Invalid request.\n\nFor 'properties/inputs', "
                                 f"{raw_inputs!r} is not an object.", _DISPATCH_DOCS)
        if "workflow_dispatch" not in flow.triggers:
            raise _ApiError(422, "Workflow does not have 'workflow_dispatch' trigger",
                            _DISPATCH_DOCS)
        branch = ref.removeprefix("refs/heads/")
        sha = repo.branches.get(branch)
        if sha is None:
            raise _ApiError(422, f"No ref found for: {ref}", _DISPATCH_DOCS)
        unexpected = [name for name in raw_inputs if name not in flow.inputs]
        if unexpected:
            listed = ", ".join(f'"{name}"' for name in unexpected)
            raise _ApiError(422, f"Unexpected inputs provided: [{listed}]", _DISPATCH_DOCS)
        values: dict[str, str] = {}
        for spec in flow.inputs.values():
            given = raw_inputs.get(spec.name)
            value = (str(given).lower() if isinstance(given, bool) else str(given)
                     if given is not None else spec.default)
            if spec.required and (value is None or value == ""):
                raise _ApiError(422, f"Required input '{spec.name}' not provided",
                                _DISPATCH_DOCS)
            if value is not None and spec.kind == "choice" and value not in spec.options:
                raise _ApiError(422, f"Provided value '{value}' for input '{spec.name}' not "
                                     "in the list of allowed values", _DISPATCH_DOCS)
            if value is not None:
                values[spec.name] = value
        return self.start_run(repo, flow, "workflow_dispatch", branch, sha, actor,
                              inputs=values)

    def rerun_failed(self, run: _WorkflowRun) -> None:
        """Re-run the failed jobs of a finished run as its next attempt.

        GitHub refuses while the run is not finished: 403 "This workflow is already running"
        (observed; reported in cli/cli issue 9221). The new attempt keeps the jobs that
        passed; the failed ones are queued again as new check runs and end with the next
        ``set_rerun_outcome`` (success by default)
        (docs.github.com/en/rest/actions/workflow-runs#re-run-failed-jobs-from-a-workflow-run).
        """
        now = self.now()
        if run.status(now) != "completed":
            raise _ApiError(403, "This workflow is already running", _RERUN_DOCS)
        failed = [job for job in run.jobs if job.conclusion not in ("success", "skipped",
                                                                    "neutral")]
        if not failed:
            raise _ApiError(403, "This workflow run cannot be rerun: it has no failed jobs",
                            _RERUN_DOCS)
        run.attempt += 1
        run.attempt_started = now
        outcome = self.rerun_outcomes.popleft() if self.rerun_outcomes else "success"
        run.jobs = [job if job not in failed else
                    _CheckRun(self.new_id(), job.name, job.head_sha, now, self.queue_seconds,
                              self.run_seconds, outcome, run_id=run.id, attempt=run.attempt)
                    for job in run.jobs]

    def push(self, repo: _Repo, pull: _Pull) -> str:
        """A new commit on the pull request's head: a new SHA, CI started on it, and the
        mergeability unknown until GitHub's background job has run."""
        pull.pushes += 1
        pull.head_sha = sha_of(repo.full_name, pull.head_ref, pull.pushes)
        pull.updated = self.now()
        pull.mergeability_known = False
        repo.branches[pull.head_ref] = pull.head_sha
        for flow in repo.workflows:
            if "pull_request" in flow.triggers:
                self.start_run(repo, flow, "pull_request", pull.head_ref, pull.head_sha,
                               pull.author)
        self.outbox_pull(repo, pull, "synchronize")
        return pull.head_sha

    # -- pull requests and merging -------------------------------------------------------

    def pull(self, repo: _Repo, number: str) -> _Pull:
        found = repo.pulls.get(int(number)) if number.isdigit() else None
        if found is None:
            raise not_found("https://docs.github.com/rest/pulls/pulls#get-a-pull-request")
        return found

    def blockers(self, repo: _Repo, pull: _Pull) -> list[str]:
        """Why branch protection refuses the merge now, in GitHub's words (405)."""
        checks = {c.name: c for c in self.latest_checks(repo, pull.head_sha)}
        statuses = {s.context: s for s in repo.statuses.get(pull.head_sha, [])}
        now = self.now()
        found = []
        for name in repo.required_checks:
            check, status = checks.get(name), statuses.get(name)
            if check is None and status is None:
                found.append(f'Required status check "{name}" is expected.')
            elif check is not None and check.status(now) != "completed":
                found.append(f'Required status check "{name}" is in progress.')
            elif (check is not None and check.conclusion not in ("success", "neutral",
                                                                  "skipped")) \
                    or (status is not None and check is None and status.state != "success"):
                found.append(f'Required status check "{name}" is failing.')
        approvals = len({r.user for r in self.current_reviews(pull) if r.state == "APPROVED"})
        if approvals < repo.required_approvals:
            count = repo.required_approvals
            found.append(f"At least {count} approving review{'s are' if count > 1 else ' is'} "
                         "required by reviewers with write access.")
        return found

    @staticmethod
    def current_reviews(pull: _Pull) -> list[_Review]:
        """Each reviewer's latest review that counts (comments do not change a verdict)."""
        latest: dict[str, _Review] = {}
        for review in pull.reviews:
            if review.state != "COMMENTED":
                latest[review.user] = review
        return list(latest.values())

    def mergeability(self, pull: _Pull, repo: _Repo) -> tuple[bool | None, str]:
        """(``mergeable``, ``mergeable_state``) as ``GET .../pulls/{n}`` shows them; the first
        read after a push is (None, "unknown") and starts the computation.

        "The value of the mergeable attribute can be true, false, or null. If the value is
        null, then GitHub has started a background job to compute the mergeability"
        (docs.github.com/en/rest/pulls/pulls#get-a-pull-request).
        """
        if pull.state != "open":
            return None, "unknown"
        if not pull.mergeability_known:
            pull.mergeability_known = True
            return None, "unknown"
        if pull.conflicts:
            return False, "dirty"
        if pull.draft:
            return True, "draft"
        if self.blockers(repo, pull):
            return True, "blocked"
        now = self.now()
        checks = self.latest_checks(repo, pull.head_sha)
        if any(c.status(now) != "completed" or c.conclusion not in ("success", "neutral",
                                                                     "skipped")
               for c in checks):
            return True, "unstable"
        return True, "clean"

    def merge(self, repo: _Repo, pull: _Pull, body: dict[str, Any], actor: str
              ) -> dict[str, Any]:
        """``PUT .../pulls/{n}/merge``: 200 with the merge commit, 409 when ``sha`` is not the
        head any more ("Head branch was modified. Review and try the merge again."), 405 when
        it cannot be merged ("Pull Request is not mergeable"; branch protection's own words
        for a required check or a missing approval) and 422 for a bad ``merge_method``
        (docs.github.com/en/rest/pulls/pulls#merge-a-pull-request; about-protected-branches).
        """
        method = body.get("merge_method", "merge")
        if method not in MERGE_METHODS:
            raise _ApiError(422, "Invalid request.\n\n"
                                 f'"{method}" is not a member of ["merge", "squash", "rebase"].',
                            _PULLS_DOCS)
        sha = body.get("sha")
        if pull.state != "open" or pull.merged:
            raise _ApiError(405, "Pull Request is not mergeable", _PULLS_DOCS)
        if sha is not None and sha != pull.head_sha:
            raise _ApiError(409, "Head branch was modified. Review and try the merge again.",
                            _PULLS_DOCS)
        if pull.conflicts or pull.draft:
            raise _ApiError(405, "Pull Request is not mergeable", _PULLS_DOCS)
        blockers = self.blockers(repo, pull)
        if blockers:
            raise _ApiError(405, blockers[0], _PROTECTION_DOCS)
        now = self.now()
        pull.state, pull.merged, pull.merged_by, pull.merged_at = "closed", True, actor, now
        pull.merge_commit_sha = sha_of(repo.full_name, pull.number, "merge", method)
        pull.updated = now
        repo.branches[pull.base_ref] = pull.merge_commit_sha
        self.outbox_pull(repo, pull, "closed")
        return {"sha": pull.merge_commit_sha, "merged": True,
                "message": "Pull Request successfully merged"}

    # -- webhooks ----------------------------------------------------------------------------

    def outbox_pull(self, repo: _Repo, pull: _Pull, action: str) -> None:
        from simulators.events import github_pull_request

        payload = github_pull_request(repo.full_name, pull.number, action, pull.title,
                                      pull.head_ref, pull.base_ref, pull.merged, pull.author)
        payload["pull_request"]["head"]["sha"] = pull.head_sha
        self.outbox.append(("pull_request", payload))

    def tick(self, emit: bool) -> None:
        """Note what changed since the last look; with ``emit``, queue its webhooks
        (``check_run`` created and completed, ``workflow_run`` requested, in_progress and
        completed: docs.github.com/en/webhooks/webhook-events-and-payloads)."""
        from simulators.events import github_check_run, github_workflow_run

        now = self.now()
        for repo, run in list(self.runs.values()):
            status = run.status(now)
            key = ("workflow_run", run.id, run.attempt)
            before = self.seen.get(key)
            if before != status:
                self.seen[key] = status
                actions = ["requested"] if before is None else []
                if status == "in_progress":
                    actions.append("in_progress")
                if status == "completed":
                    actions.append("completed")
                for action in actions if emit else ():
                    payload = github_workflow_run(
                        repo.full_name, run.workflow.name, run.conclusion(now), run.head_branch,
                        run.number, run.head_sha, run.pr_numbers[0] if run.pr_numbers else None,
                        action)
                    payload["workflow_run"].update(id=run.id, run_attempt=run.attempt,
                                                   event=run.event, path=run.workflow.path,
                                                   workflow_id=run.workflow.id)
                    self.outbox.append(("workflow_run", payload))
            for job in run.jobs:
                self._tick_check(repo, job, run.head_branch, now, emit, github_check_run)
        for repo in self.repos.values():
            for check in repo.check_runs:
                self._tick_check(repo, check, repo.default_branch, now, emit, github_check_run)

    def _tick_check(self, repo: _Repo, check: _CheckRun, branch: str, now: float, emit: bool,
                    build: Callable[..., dict[str, Any]]) -> None:
        key = ("check_run", check.id, 0)
        before = self.seen.get(key)
        status = check.status(now)
        done = status == "completed"
        if before == status or (before is not None and not done):
            self.seen[key] = status
            return
        self.seen[key] = status
        if not emit:
            return
        pr = next((p.number for p in repo.pulls.values() if p.head_sha == check.head_sha), None)
        if before is None:
            self.outbox.append(("check_run", self._check_payload(
                build, repo, check, pr, branch, "created", None)))
        if done:
            self.outbox.append(("check_run", self._check_payload(
                build, repo, check, pr, branch, "completed", check.conclusion)))

    @staticmethod
    def _check_payload(build: Callable[..., dict[str, Any]], repo: _Repo, check: _CheckRun,
                       pr: int | None, branch: str, action: str, conclusion: str | None
                       ) -> dict[str, Any]:
        payload = build(repo.full_name, check.name, conclusion, pr, branch, check.head_sha,
                        action)
        payload["check_run"]["id"] = check.id
        return payload

    def script_outcome(self, repo: _Repo, flow: _Workflow, conclusion: str,
                       job: str | None) -> None:
        if conclusion not in CONCLUSIONS:
            raise ValueError(f"conclusion must be one of {', '.join(CONCLUSIONS)}")
        if job is not None and job not in flow.jobs:
            raise ValueError(f"{flow.file} has no job {job!r}; its jobs: {', '.join(flow.jobs)}")
        names = [job] if job is not None else list(flow.jobs)
        self.outcomes.setdefault((repo.full_name, flow.file), deque()).append(
            {name: conclusion for name in names})
