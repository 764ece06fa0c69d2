"""The JSON GitHub answers with: users, repositories, pull requests, reviews, check runs,
statuses, workflows, runs, jobs and file contents.

Why apart: one place builds each shape, so every endpoint that lists or shows an object
shows the same fields. Only what a client reads is here, under GitHub's field names
(docs.github.com/en/rest, each object's "Response schema"); every URL is absolute and under
the simulator's own API base, which PyGithub requires of the URLs it follows.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from simulators.github._model import (
    _CheckRun,
    _Pull,
    _Repo,
    _Review,
    _Status,
    _User,
    _Workflow,
    _WorkflowRun,
    iso,
)
from simulators.github._state import _State


class _Render:
    """Builds GitHub's JSON from the state; call under its lock."""

    def __init__(self, state: _State) -> None:
        self.state = state

    @property
    def api(self) -> str:
        return self.state.api_base

    @property
    def web(self) -> str:
        return self.state.web_base

    def user(self, login: str) -> dict[str, Any]:
        user = self.state.users.get(login) or _User(login, 0, login)
        kind = "orgs" if user.kind == "Organization" else "users"
        return {"login": user.login, "id": user.id, "node_id": f"U_{user.id}",
                "type": user.kind, "site_admin": False,
                "url": f"{self.api}/{kind}/{user.login}",
                "html_url": f"{self.web}/{user.login}",
                "avatar_url": f"{self.web}/avatars/{user.login}"}

    def me(self, login: str) -> dict[str, Any]:
        user = self.state.users[login]
        return {**self.user(login), "name": user.name, "company": "@acme",
                "email": None, "two_factor_authentication": True}

    def org(self, login: str) -> dict[str, Any]:
        org = self.state.users[login]
        return {"login": org.login, "id": org.id, "node_id": f"O_{org.id}",
                "url": f"{self.api}/orgs/{org.login}", "name": org.name,
                "repos_url": f"{self.api}/orgs/{org.login}/repos", "type": "Organization",
                "html_url": f"{self.web}/{org.login}"}

    def repo(self, repo: _Repo) -> dict[str, Any]:
        url = f"{self.api}/repos/{repo.full_name}"
        return {
            "id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name,
            "full_name": repo.full_name, "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "owner": self.user(repo.owner), "html_url": f"{self.web}/{repo.full_name}",
            "description": repo.description, "fork": False, "url": url,
            "pulls_url": f"{url}/pulls{{/number}}",
            "contents_url": f"{url}/contents/{{+path}}",
            "default_branch": repo.default_branch, "archived": False, "disabled": False,
            "topics": [], "created_at": iso(repo.created), "updated_at": iso(repo.created),
            "pushed_at": iso(repo.created),
            "permissions": {"admin": False, "maintain": False, "push": True, "triage": True,
                            "pull": True},
        }

    def _ref(self, repo: _Repo, ref: str, sha: str) -> dict[str, Any]:
        return {"label": f"{repo.owner}:{ref}", "ref": ref, "sha": sha,
                "user": self.user(repo.owner), "repo": self.repo(repo)}

    def pull(self, repo: _Repo, pull: _Pull, *, full: bool) -> dict[str, Any]:
        """A pull request; ``full`` adds what only ``GET .../pulls/{n}`` shows (``merged``,
        ``mergeable``, ``mergeable_state``...), as GitHub leaves those out of lists."""
        url = f"{self.api}/repos/{repo.full_name}/pulls/{pull.number}"
        issue = f"{self.api}/repos/{repo.full_name}/issues/{pull.number}"
        data: dict[str, Any] = {
            "url": url, "id": repo.id * 1000 + pull.number, "node_id": f"PR_{pull.number}",
            "html_url": f"{self.web}/{repo.full_name}/pull/{pull.number}",
            "issue_url": issue, "number": pull.number, "state": pull.state, "locked": False,
            "title": pull.title, "user": self.user(pull.author), "body": pull.body,
            "labels": [], "milestone": None, "draft": pull.draft,
            "created_at": iso(pull.created), "updated_at": iso(pull.updated),
            "closed_at": iso(pull.merged_at or (pull.updated if pull.state == "closed"
                                                else None)),
            "merged_at": iso(pull.merged_at), "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None, "assignees": [],
            "requested_reviewers": [self.user(login) for login in pull.requested],
            "requested_teams": [], "head": self._ref(repo, pull.head_ref, pull.head_sha),
            "base": self._ref(repo, pull.base_ref, repo.branches.get(pull.base_ref, "")),
            "author_association": "MEMBER", "auto_merge": None,
            "commits_url": f"{url}/commits", "review_comments_url": f"{url}/comments",
            "comments_url": f"{issue}/comments",
            "statuses_url": f"{self.api}/repos/{repo.full_name}/statuses/{pull.head_sha}",
        }
        if full:
            mergeable, state = self.state.mergeability(pull, repo)
            data.update({
                "merged": pull.merged, "mergeable": mergeable, "rebaseable": mergeable,
                "mergeable_state": state,
                "merged_by": self.user(pull.merged_by) if pull.merged_by else None,
                "comments": 0, "review_comments": 0, "maintainer_can_modify": False,
                "commits": 1 + pull.pushes, "additions": 42, "deletions": 7,
                "changed_files": 3})
        return data

    def issue(self, repo: _Repo, pull: _Pull) -> dict[str, Any]:
        """A pull request as the search and issues endpoints list it (an issue with a
        ``pull_request`` key)."""
        base = f"{self.api}/repos/{repo.full_name}"
        return {
            "url": f"{base}/issues/{pull.number}", "repository_url": base,
            "html_url": f"{self.web}/{repo.full_name}/pull/{pull.number}",
            "id": repo.id * 1000 + pull.number, "node_id": f"PR_{pull.number}",
            "number": pull.number, "title": pull.title, "user": self.user(pull.author),
            "labels": [], "state": pull.state, "locked": False, "assignee": None,
            "assignees": [], "comments": 0, "created_at": iso(pull.created),
            "updated_at": iso(pull.updated), "closed_at": iso(pull.merged_at),
            "draft": pull.draft, "body": pull.body, "author_association": "MEMBER",
            "score": 1.0,
            "pull_request": {"url": f"{base}/pulls/{pull.number}",
                             "html_url": f"{self.web}/{repo.full_name}/pull/{pull.number}",
                             "merged_at": iso(pull.merged_at)},
        }

    def review(self, repo: _Repo, pull: _Pull, review: _Review) -> dict[str, Any]:
        return {"id": review.id, "node_id": f"PRR_{review.id}", "user": self.user(review.user),
                "body": review.body, "state": review.state, "commit_id": review.commit_id,
                "submitted_at": iso(review.submitted), "author_association": "MEMBER",
                "html_url": f"{self.web}/{repo.full_name}/pull/{pull.number}"
                            f"#pullrequestreview-{review.id}",
                "pull_request_url": f"{self.api}/repos/{repo.full_name}/pulls/{pull.number}"}

    def check_run(self, repo: _Repo, check: _CheckRun) -> dict[str, Any]:
        now = self.state.now()
        status = check.status(now)
        done = status == "completed"
        failed = done and check.conclusion not in ("success", "neutral", "skipped")
        title = (f"{check.name} failed" if failed else f"{check.name} passed") if done else None
        details = (f"{self.web}/{repo.full_name}/actions/runs/{check.run_id}/job/{check.id}"
                   if check.run_id else f"{self.web}/{repo.full_name}/runs/{check.id}")
        return {
            "id": check.id, "node_id": f"CR_{check.id}", "name": check.name,
            "head_sha": check.head_sha, "external_id": "", "status": status,
            "conclusion": check.conclusion if done else None,
            "url": f"{self.api}/repos/{repo.full_name}/check-runs/{check.id}",
            "html_url": f"{self.web}/{repo.full_name}/runs/{check.id}",
            "details_url": details, "started_at": iso(check.started_at(now)),
            "completed_at": iso(check.completed_at(now)),
            "output": {"title": title, "summary": check.summary or title, "text": None,
                       "annotations_count": 0,
                       "annotations_url": f"{self.api}/repos/{repo.full_name}/check-runs/"
                                          f"{check.id}/annotations"},
            "check_suite": {"id": (check.run_id or check.id) + 500000},
            "app": {"id": 15368, "slug": check.app, "name": "GitHub Actions",
                    "owner": {"login": "github", "id": 9919}},
            "pull_requests": [],
        }

    def status(self, status: _Status) -> dict[str, Any]:
        return {"id": status.id, "node_id": f"SC_{status.id}", "state": status.state,
                "context": status.context, "description": status.description,
                "target_url": status.target_url, "avatar_url": None,
                "created_at": iso(status.created), "updated_at": iso(status.created)}

    def commit(self, repo: _Repo, sha: str) -> dict[str, Any]:
        url = f"{self.api}/repos/{repo.full_name}"
        pull = next((p for p in repo.pulls.values() if p.head_sha == sha), None)
        author = pull.author if pull else repo.owner
        person = {"name": author, "email": f"{author}@acme.test",
                  "date": iso(pull.updated if pull else repo.created)}
        return {"sha": sha, "node_id": f"C_{sha[:12]}", "url": f"{url}/commits/{sha}",
                "html_url": f"{self.web}/{repo.full_name}/commit/{sha}",
                "commit": {"message": pull.title if pull else "Initial commit",
                           "author": person, "committer": person,
                           "tree": {"sha": sha[::-1], "url": f"{url}/git/trees/{sha[::-1]}"},
                           "url": f"{url}/git/commits/{sha}", "comment_count": 0},
                "author": self.user(author), "committer": self.user(author), "parents": [],
                "stats": {"total": 49, "additions": 42, "deletions": 7}, "files": []}

    def combined(self, repo: _Repo, sha: str) -> dict[str, Any]:
        """``GET .../commits/{ref}/status``: ``failure`` if any context reports error or
        failure, ``pending`` if there are none or one is pending, else ``success``
        (docs.github.com/en/rest/commits/statuses#get-the-combined-status-for-a-specific-
        reference)."""
        latest: dict[str, _Status] = {}
        for status in repo.statuses.get(sha, []):
            latest[status.context] = status
        states = {s.state for s in latest.values()}
        state = ("failure" if states & {"error", "failure"} else
                 "pending" if not states or "pending" in states else "success")
        url = f"{self.api}/repos/{repo.full_name}"
        return {"state": state, "sha": sha, "total_count": len(latest),
                "statuses": [self.status(s) for s in latest.values()],
                "repository": self.repo(repo), "commit_url": f"{url}/commits/{sha}",
                "url": f"{url}/commits/{sha}/status"}

    def workflow(self, repo: _Repo, flow: _Workflow) -> dict[str, Any]:
        return {"id": flow.id, "node_id": f"W_{flow.id}", "name": flow.name, "path": flow.path,
                "state": "active", "created_at": iso(flow.created),
                "updated_at": iso(flow.created),
                "url": f"{self.api}/repos/{repo.full_name}/actions/workflows/{flow.id}",
                "html_url": f"{self.web}/{repo.full_name}/blob/main/{flow.path}",
                "badge_url": f"{self.web}/{repo.full_name}/workflows/{flow.name}/badge.svg"}

    def run(self, repo: _Repo, run: _WorkflowRun) -> dict[str, Any]:
        now = self.state.now()
        url = f"{self.api}/repos/{repo.full_name}/actions/runs/{run.id}"
        prs = [{"url": f"{self.api}/repos/{repo.full_name}/pulls/{n}", "number": n,
                "head": {"ref": run.head_branch, "sha": run.head_sha},
                "base": {"ref": repo.default_branch,
                         "sha": repo.branches.get(repo.default_branch, "")}}
               for n in run.pr_numbers]
        return {
            "id": run.id, "node_id": f"WFR_{run.id}", "name": run.workflow.name,
            "display_title": run.workflow.name if run.event != "pull_request"
            else next((p.title for p in repo.pulls.values() if p.number in run.pr_numbers),
                      run.workflow.name),
            "head_branch": run.head_branch, "head_sha": run.head_sha,
            "path": run.workflow.path, "run_number": run.number, "run_attempt": run.attempt,
            "event": run.event, "status": run.status(now), "conclusion": run.conclusion(now),
            "workflow_id": run.workflow.id, "check_suite_id": run.id + 500000,
            "url": url, "html_url": f"{self.web}/{repo.full_name}/actions/runs/{run.id}",
            "pull_requests": prs, "created_at": iso(run.created),
            "updated_at": iso(max([run.attempt_started]
                                  + [c.completed_at(now) or c.started_at(now) or c.created
                                     for c in run.jobs])),
            "run_started_at": iso(run.attempt_started), "actor": self.user(run.actor),
            "triggering_actor": self.user(run.actor), "jobs_url": f"{url}/jobs",
            "logs_url": f"{url}/logs", "check_suite_url": f"{self.api}/repos/{repo.full_name}"
                                                          f"/check-suites/{run.id + 500000}",
            "artifacts_url": f"{url}/artifacts", "cancel_url": f"{url}/cancel",
            "rerun_url": f"{url}/rerun",
            "previous_attempt_url": f"{url}/attempts/{run.attempt - 1}" if run.attempt > 1
            else None,
            "workflow_url": f"{self.api}/repos/{repo.full_name}/actions/workflows/"
                            f"{run.workflow.id}",
            "head_commit": {"id": run.head_sha, "tree_id": run.head_sha[::-1],
                            "message": run.workflow.name, "timestamp": iso(run.created),
                            "author": {"name": run.actor, "email": f"{run.actor}@acme.test"}},
            "repository": self.repo(repo), "head_repository": self.repo(repo),
        }

    def job(self, repo: _Repo, run: _WorkflowRun, job: _CheckRun) -> dict[str, Any]:
        now = self.state.now()
        status = job.status(now)
        done = status == "completed"
        conclusion = job.conclusion if done else None
        steps = [{"name": "Set up job", "status": "completed" if job.started_at(now) else
                  "queued", "conclusion": "success" if job.started_at(now) else None,
                  "number": 1, "started_at": iso(job.started_at(now)),
                  "completed_at": iso(job.started_at(now))},
                 {"name": f"Run {job.name}", "status": status, "conclusion": conclusion,
                  "number": 2, "started_at": iso(job.started_at(now)),
                  "completed_at": iso(job.completed_at(now))}]
        return {
            "id": job.id, "run_id": run.id, "run_attempt": job.attempt,
            "run_url": f"{self.api}/repos/{repo.full_name}/actions/runs/{run.id}",
            "node_id": f"CR_{job.id}", "head_sha": job.head_sha,
            "head_branch": run.head_branch, "workflow_name": run.workflow.name,
            "url": f"{self.api}/repos/{repo.full_name}/actions/jobs/{job.id}",
            "html_url": f"{self.web}/{repo.full_name}/actions/runs/{run.id}/job/{job.id}",
            "status": status, "conclusion": conclusion, "created_at": iso(job.created),
            "started_at": iso(job.started_at(now)), "completed_at": iso(job.completed_at(now)),
            "name": job.name, "steps": steps,
            "check_run_url": f"{self.api}/repos/{repo.full_name}/check-runs/{job.id}",
            "labels": ["ubuntu-latest"], "runner_id": 1 if job.started_at(now) else None,
            "runner_name": "GitHub Actions 1" if job.started_at(now) else None,
        }

    def content(self, repo: _Repo, path: str, text: str, ref: str) -> dict[str, Any]:
        """A file: base64 in lines of 60 characters, as GitHub sends it, with its blob SHA
        (docs.github.com/en/rest/repos/contents#get-repository-content)."""
        raw = text.encode("utf-8")
        encoded = base64.b64encode(raw).decode("ascii")
        lines = "\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)) + "\n"
        data = self.entry(repo, path, "file", ref, len(raw), _blob_sha(raw))
        data.update(content=lines, encoding="base64")
        return data

    def entry(self, repo: _Repo, path: str, kind: str, ref: str, size: int, sha: str
              ) -> dict[str, Any]:
        url = f"{self.api}/repos/{repo.full_name}/contents/{path}?ref={ref}"
        html = f"{self.web}/{repo.full_name}/{'blob' if kind == 'file' else 'tree'}/{ref}/{path}"
        git = f"{self.api}/repos/{repo.full_name}/git/{'blobs' if kind == 'file' else 'trees'}" \
              f"/{sha}"
        return {"type": kind, "name": path.rsplit("/", 1)[-1], "path": path, "sha": sha,
                "size": size, "url": url, "html_url": html, "git_url": git,
                "download_url": f"{self.web}/raw/{repo.full_name}/{ref}/{path}"
                if kind == "file" else None,
                "_links": {"self": url, "git": git, "html": html}}


def _blob_sha(raw: bytes) -> str:
    """Git's object id of a blob: SHA-1 of ``blob <size>\\0`` and the bytes."""
    return hashlib.sha1(b"blob %d\0" % len(raw) + raw).hexdigest()
