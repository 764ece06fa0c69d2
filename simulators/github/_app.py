"""The GitHub simulator's HTTP face: the API prefix, authentication, rate limits, routing,
pagination, GitHub's headers and errors, and the request log.

Why apart: the wire is one job; the state and the renderer know nothing of HTTP. What every
response carries, as GitHub documents it:

* ``x-ratelimit-limit``, ``-remaining``, ``-used``, ``-reset`` (UTC epoch seconds) and
  ``-resource`` (``core``, ``search``) on every answer; ``GET /rate_limit`` is not counted
  (docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api,
  docs.github.com/en/rest/rate-limit/rate-limit).
* A secondary rate limit: 403 or 429 with ``retry-after`` and "You have exceeded a secondary
  rate limit..." (same page, "About secondary rate limits").
* Lists are paged by ``page`` and ``per_page`` (default 30, at most 100) with a ``Link``
  header of ``next``, ``last``, ``first`` and ``prev``
  (docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api).
* Errors are ``{"message", "documentation_url"}``; what the caller may not see is 404
  ``Not Found``, as if it did not exist
  (docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api).
* On GitHub Enterprise Server the API lives under ``/api/v3`` (``prefix``), and answers carry
  ``x-github-enterprise-version`` (docs.github.com/en/enterprise-server@latest/rest/quickstart).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote, urlencode

from simulators._http import Request, Response
from simulators.github._auth import ANONYMOUS, Caller
from simulators.github._model import (
    APP_ID,
    APP_SLUG,
    INSTALLATION_ID,
    OWNER,
    PER_PAGE_DEFAULT,
    PER_PAGE_MAX,
    RecordedRequest,
    _ApiError,
    _Pull,
    _Repo,
    iso,
    not_found,
    sha_of,
)
from simulators.github._render import _Render
from simulators.github._state import _State

_SECONDARY = ("You have exceeded a secondary rate limit. Please wait a few minutes before you "
              "try again. If you reach out to GitHub Support for help, please include the "
              "request ID {}.")
_SECONDARY_DOCS = ("https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
                   "#about-secondary-rate-limits")
_APP_DOCS = "https://docs.github.com/rest/apps/apps"
_GHES_VERSION = "3.17.0"

Handler = Callable[["_Call"], Response]


class _Call:
    """One request being answered: its path parameters, caller and body."""

    def __init__(self, request: Request, segments: tuple[str, ...], caller: Caller) -> None:
        self.request = request
        self.segments = segments
        self.caller = caller
        self.params: dict[str, str] = {}

    def query(self, name: str, default: str | None = None) -> str | None:
        return self.request.param(name, default)

    def body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except (ValueError, UnicodeDecodeError):
            raise _ApiError(400, "Problems parsing JSON") from None
        if not isinstance(data, dict):
            raise _ApiError(400, "Problems parsing JSON")
        return data

    @property
    def who(self) -> str:
        """The caller's name for a record: a login, ``installation:<id>`` or ``app:<id>``."""
        label = self.caller.label
        if label is None:
            raise _ApiError(401, "Requires authentication")
        return label


def _route(pattern: str) -> Callable[[tuple[str, ...]], dict[str, str] | None]:
    """A matcher for ``repos/{owner}/{repo}/contents/{path+}``-style patterns."""
    parts = pattern.split("/")

    def match(segments: tuple[str, ...]) -> dict[str, str] | None:
        found: dict[str, str] = {}
        for index, part in enumerate(parts):
            if part.endswith("+}"):
                found[part[1:-2]] = "/".join(segments[index:])
                return found
            if index >= len(segments):
                return None
            if part.startswith("{"):
                found[part[1:-1]] = segments[index]
            elif part != segments[index]:
                return None
        return found if len(segments) == len(parts) else None

    return match


class _App:
    """Request in, Response out, under the state's lock."""

    def __init__(self, state: _State, prefix: str, after: Callable[[], None]) -> None:
        self.state = state
        self.prefix = tuple(part for part in prefix.split("/") if part)
        self.after = after  # runs after each answer (the webhook sender's look)
        self.render = _Render(state)
        self.routes: list[tuple[str, Callable[[tuple[str, ...]], dict[str, str] | None],
                                Handler]] = []
        for method, pattern, handler in (
            ("GET", "rate_limit", self.rate_limit),
            ("GET", "user", self.me),
            ("GET", "users/{login}", self.user),
            ("GET", "orgs/{org}", self.org),
            ("GET", "orgs/{org}/repos", self.org_repos),
            ("GET", "repos/{owner}/{repo}", self.repo),
            ("GET", "repos/{owner}/{repo}/pulls", self.pulls),
            ("GET", "repos/{owner}/{repo}/pulls/{number}", self.pull),
            ("GET", "repos/{owner}/{repo}/pulls/{number}/reviews", self.reviews),
            ("GET", "repos/{owner}/{repo}/pulls/{number}/requested_reviewers",
             self.requested_reviewers),
            ("PUT", "repos/{owner}/{repo}/pulls/{number}/merge", self.merge),
            ("GET", "repos/{owner}/{repo}/issues/{number}", self.issue),
            ("GET", "search/issues", self.search_issues),
            ("GET", "repos/{owner}/{repo}/commits/{ref}", self.commit),
            ("GET", "repos/{owner}/{repo}/commits/{ref}/check-runs", self.check_runs),
            ("GET", "repos/{owner}/{repo}/commits/{ref}/status", self.combined_status),
            ("GET", "repos/{owner}/{repo}/actions/workflows", self.workflows),
            ("GET", "repos/{owner}/{repo}/actions/workflows/{workflow}", self.workflow),
            ("GET", "repos/{owner}/{repo}/actions/workflows/{workflow}/runs", self.runs),
            ("POST", "repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches",
             self.dispatch),
            ("GET", "repos/{owner}/{repo}/actions/runs", self.runs),
            ("GET", "repos/{owner}/{repo}/actions/runs/{run}", self.run),
            ("GET", "repos/{owner}/{repo}/actions/runs/{run}/jobs", self.jobs),
            ("POST", "repos/{owner}/{repo}/actions/runs/{run}/rerun-failed-jobs",
             self.rerun_failed),
            ("GET", "repos/{owner}/{repo}/contents", self.contents),
            ("GET", "repos/{owner}/{repo}/contents/{path+}", self.contents),
            ("GET", "app", self.app),
            ("GET", "app/installations", self.installations),
            ("GET", "app/installations/{installation}", self.installation),
            ("POST", "app/installations/{installation}/access_tokens", self.access_token),
            ("GET", "repos/{owner}/{repo}/installation", self.repo_installation),
            ("GET", "orgs/{org}/installation", self.org_installation),
            ("GET", "installation/repositories", self.installation_repos),
        ):
            self.routes.append((method, _route(pattern), handler))

    # -- the wire ------------------------------------------------------------------------

    def __call__(self, request: Request) -> Response:
        failure = self.state.faults.hold(unquote(request.raw_path))
        with self.state.lock:
            record: dict[str, Any] = {"who": None, "resource": None, "remaining": None,
                                      "reset": None}
            try:
                response = self._answer(request, failure, record)
            except _ApiError as error:
                response = error.response()
            if (self.prefix and request.segments[:len(self.prefix)] == self.prefix):
                response.with_header("x-github-enterprise-version", _GHES_VERSION)
            response.with_header("x-github-media-type", "github.v3; format=json")
            response.with_header("x-github-api-version-selected", "2022-11-28")
            response.with_header("x-github-request-id", uuid.uuid4().hex[:16].upper())
            for name, value in response.headers:
                if name == "x-ratelimit-remaining":
                    record["remaining"] = int(value)
                elif name == "x-ratelimit-reset":
                    record["reset"] = int(value)
            self.state.log.append(RecordedRequest(
                request.method, request.target, response.status, self.state.now(),
                record["who"], record["resource"], record["remaining"], record["reset"]))
        self.after()
        return response

    def _answer(self, request: Request, failure: int | None,
                record: dict[str, Any]) -> Response:
        segments = request.segments
        if segments[:len(self.prefix)] != self.prefix:
            raise not_found()
        segments = segments[len(self.prefix):]
        app_endpoint = segments[:1] == ("app",) or (
            len(segments) == 4 and segments[0] == "repos" and segments[3] == "installation") or (
            len(segments) == 3 and segments[0] == "orgs" and segments[2] == "installation")
        resource = "search" if segments[:1] == ("search",) else "core"
        try:
            caller = self.state.auth.caller(request.header("Authorization"), self.state.now(),
                                            app_endpoint)
        except _ApiError as error:
            self._rate_headers(error, f"ip:{request.client}", resource, True, record)
            raise
        record["who"] = caller.label
        who = caller.label or f"ip:{request.client}"
        counted = segments != ("rate_limit",) and caller.kind != "app"
        headers = self._take(who, resource, caller is ANONYMOUS, counted, record)
        try:
            if failure is not None:
                raise self._fault(failure)
            response = self._dispatch(_Call(request, segments, caller), request.method)
        except _ApiError as error:
            error.headers += tuple(headers)
            raise
        response.headers.extend(headers)
        return response

    def _take(self, who: str, resource: str, anonymous: bool, counted: bool,
              record: dict[str, Any]) -> list[tuple[str, str]]:
        record["resource"] = resource if counted else None
        if counted:
            limit, remaining, used, reset = self.state.take(who, resource, anonymous)
        else:
            window = self.state.window(who, resource)
            limit = 60 if anonymous and resource == "core" else self.state.limits[resource]
            used, reset = window.used, window.reset
            remaining = max(0, limit - used)
        return [("x-ratelimit-limit", str(limit)), ("x-ratelimit-remaining", str(remaining)),
                ("x-ratelimit-used", str(used)), ("x-ratelimit-reset", str(reset)),
                ("x-ratelimit-resource", resource)]

    def _rate_headers(self, error: _ApiError, who: str, resource: str, anonymous: bool,
                      record: dict[str, Any]) -> None:
        """A refused login still costs the address a request, and says so in its headers."""
        try:
            error.headers += tuple(self._take(who, resource, anonymous, True, record))
        except _ApiError as limited:
            error.headers += limited.headers

    def _fault(self, status: int) -> _ApiError:
        """An injected failure (``fail_next``): 403 and 429 as a secondary rate limit."""
        if status in (403, 429):
            return _ApiError(status, _SECONDARY.format(uuid.uuid4().hex[:8].upper()),
                             _SECONDARY_DOCS,
                             headers=(("retry-after", str(self.state.retry_after)),))
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return _ApiError(status, phrase if status < 500 else "Server Error")

    def _dispatch(self, call: _Call, method: str) -> Response:
        for verb, match, handler in self.routes:
            params = match(call.segments)
            if params is not None and verb == method:
                call.params = params
                return handler(call)
        raise not_found()

    def _page(self, call: _Call, items: list[Any], render: Callable[[Any], dict[str, Any]],
              wrap: str | None = None, extra: dict[str, Any] | None = None) -> Response:
        """One page of ``items`` and its ``Link`` header; ``wrap`` names the list's key when
        GitHub answers an object (``{"total_count", "check_runs": [...]}``)."""
        try:
            per_page = int(call.query("per_page") or PER_PAGE_DEFAULT)
            page = int(call.query("page") or 1)
        except ValueError:
            per_page, page = PER_PAGE_DEFAULT, 1
        per_page = min(max(per_page, 1), PER_PAGE_MAX)
        page = max(page, 1)
        last = max(1, -(-len(items) // per_page))
        shown = [render(item) for item in items[(page - 1) * per_page:page * per_page]]
        body: Any = shown if wrap is None else {"total_count": len(items), wrap: shown,
                                                **(extra or {})}
        response = Response.json(body)
        response.content_type = "application/json; charset=utf-8"
        links = []
        query = {name: values[0] for name, values in call.request.query.items()}

        def link(number: int, rel: str) -> str:
            target = urlencode({**query, "per_page": per_page, "page": number})
            return f'<{self.state.web_base}{call.request.raw_path}?{target}>; rel="{rel}"'

        if page > 1:
            links += [link(page - 1, "prev"), link(1, "first")]
        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if links:
            response.with_header("Link", ", ".join(links))
        return response

    def _repo(self, call: _Call) -> _Repo:
        return self.state.repo(call.params["owner"], call.params["repo"], call.caller)

    def _writable(self, call: _Call) -> _Repo:
        """A repository the caller may change: anonymous callers are 401, outsiders 404."""
        repo = self._repo(call)
        if call.caller is ANONYMOUS:
            raise _ApiError(401, "Requires authentication")
        if call.caller.kind == "user" and call.caller.name not in self.state.members:
            raise not_found()
        return repo

    # -- users, organisations, repositories ------------------------------------------------

    def rate_limit(self, call: _Call) -> Response:
        who = call.caller.label or f"ip:{call.request.client}"
        return Response.json(self.state.rate_json(who, call.caller is ANONYMOUS))

    def me(self, call: _Call) -> Response:
        """``GET /user``: the token's user; an installation has none: 403 "Resource not
        accessible by integration" (docs.github.com/en/rest/users/users)."""
        if call.caller.kind == "installation":
            raise _ApiError(403, "Resource not accessible by integration",
                            "https://docs.github.com/rest/users/users"
                            "#get-the-authenticated-user")
        if call.caller.kind != "user" or call.caller.name is None:
            raise _ApiError(401, "Requires authentication",
                            "https://docs.github.com/rest/users/users"
                            "#get-the-authenticated-user")
        return Response.json(self.render.me(call.caller.name))

    def user(self, call: _Call) -> Response:
        return Response.json(self.render.user(self.state.user(call.params["login"]).login))

    def org(self, call: _Call) -> Response:
        if call.params["org"].lower() != OWNER:
            raise not_found()
        return Response.json(self.render.org(OWNER))

    def org_repos(self, call: _Call) -> Response:
        """``GET /orgs/{org}/repos``: the ones the caller sees, by full name."""
        if call.params["org"].lower() != OWNER:
            raise not_found()
        repos = sorted((r for r in self.state.repos.values() if self.state.sees(call.caller, r)),
                       key=lambda r: r.full_name)
        return self._page(call, repos, self.render.repo)

    def repo(self, call: _Call) -> Response:
        return Response.json(self.render.repo(self._repo(call)))

    # -- pull requests ---------------------------------------------------------------------

    def pulls(self, call: _Call) -> Response:
        """``GET .../pulls``: ``state`` (open), ``head`` (``user:ref``), ``base``, ``sort``
        (created, updated) and ``direction`` (desc for created, else asc)
        (docs.github.com/en/rest/pulls/pulls#list-pull-requests)."""
        repo = self._repo(call)
        state = call.query("state") or "open"
        if state not in ("open", "closed", "all"):
            raise _ApiError(422, "Validation Failed", extra={"errors": [
                {"resource": "PullRequest", "field": "state", "code": "invalid"}]})
        head, base = call.query("head"), call.query("base")
        found = [p for p in repo.pulls.values()
                 if (state == "all" or p.state == state)
                 and (head is None or head.split(":")[-1] == p.head_ref)
                 and (base is None or base == p.base_ref)]
        sort = call.query("sort") or "created"
        descending = (call.query("direction") or ("desc" if sort == "created" else "asc")) \
            == "desc"
        key: Callable[[_Pull], Any] = (lambda p: p.updated) if sort == "updated" \
            else (lambda p: (p.created, p.number))
        found.sort(key=key, reverse=descending)
        return self._page(call, found, lambda p: self.render.pull(repo, p, full=False))

    def pull(self, call: _Call) -> Response:
        repo = self._repo(call)
        return Response.json(self.render.pull(repo, self.state.pull(repo, call.params["number"]),
                                              full=True))

    def reviews(self, call: _Call) -> Response:
        """Oldest first (docs.github.com/en/rest/pulls/reviews#list-reviews-for-a-pull-request)."""
        repo = self._repo(call)
        pull = self.state.pull(repo, call.params["number"])
        return self._page(call, list(pull.reviews),
                          lambda r: self.render.review(repo, pull, r))

    def requested_reviewers(self, call: _Call) -> Response:
        """``{"users", "teams"}`` (docs.github.com/en/rest/pulls/review-requests)."""
        repo = self._repo(call)
        pull = self.state.pull(repo, call.params["number"])
        return Response.json({"users": [self.render.user(u) for u in pull.requested],
                              "teams": []})

    def merge(self, call: _Call) -> Response:
        repo = self._writable(call)
        pull = self.state.pull(repo, call.params["number"])
        return Response.json(self.state.merge(repo, pull, call.body(), call.who))

    def issue(self, call: _Call) -> Response:
        """A pull request seen as an issue (what a search result completes itself from);
        the simulator has no plain issues (docs.github.com/en/rest/issues/issues)."""
        repo = self._repo(call)
        return Response.json(self.render.issue(repo, self.state.pull(repo, call.params["number"])))

    def search_issues(self, call: _Call) -> Response:
        """``GET /search/issues?q=...``: the qualifiers ``is:pr``/``is:issue``,
        ``is:open``/``closed``/``merged``, ``state:``, ``draft:``, ``repo:``, ``org:``,
        ``user:``, ``author:``, ``review-requested:`` (``@me`` too), ``reviewed-by:``,
        each negated by ``-``, and words in the title; newest first; its own rate limit
        (30 a minute)
        (docs.github.com/en/search-github/searching-on-github/searching-issues-and-pull-
        requests, docs.github.com/en/rest/search/search#search-issues-and-pull-requests)."""
        text = call.query("q")
        if not text:
            raise _ApiError(422, "Validation Failed", extra={"errors": [
                {"resource": "Search", "field": "q", "code": "missing"}]})
        me = call.caller.name if call.caller.kind == "user" else None
        tests: list[Callable[[_Repo, _Pull], bool]] = []
        for word in text.split():
            negated = word.startswith("-") and ":" in word
            name, _, value = word.removeprefix("-" if negated else "").partition(":")
            value = (me or "") if value == "@me" else value
            test = _qualifier(name.lower(), value, word)
            tests.append(_negated(test) if negated else test)
        found = [(repo, pull) for repo in self.state.repos.values()
                 if self.state.sees(call.caller, repo) for pull in repo.pulls.values()
                 if all(test(repo, pull) for test in tests)]
        found.sort(key=lambda item: item[1].created, reverse=True)
        return self._page(call, found, lambda item: self.render.issue(*item), "items",
                          {"incomplete_results": False})

    # -- checks and statuses -----------------------------------------------------------------

    def _sha(self, call: _Call, repo: _Repo) -> str:
        sha = self.state.resolve(repo, call.params["ref"])
        if sha is None:
            raise _ApiError(422, f"No commit found for SHA: {call.params['ref']}",
                            "https://docs.github.com/rest/checks/runs"
                            "#list-check-runs-for-a-git-reference")
        return sha

    def commit(self, call: _Call) -> Response:
        """A commit, what a client needs to reach its checks and status
        (docs.github.com/en/rest/commits/commits#get-a-commit)."""
        repo = self._repo(call)
        return Response.json(self.render.commit(repo, self._sha(call, repo)))

    def check_runs(self, call: _Call) -> Response:
        """``GET .../commits/{ref}/check-runs``: ``check_name``, ``status``, ``filter``
        (latest: the newest of each name; all) (docs.github.com/en/rest/checks/runs
        #list-check-runs-for-a-git-reference)."""
        repo = self._repo(call)
        sha = self._sha(call, repo)
        now = self.state.now()
        if (call.query("filter") or "latest") == "all":
            checks = [c for c in self.state.check_runs(repo) if c.head_sha == sha]
        else:
            checks = self.state.latest_checks(repo, sha)
        name, status = call.query("check_name"), call.query("status")
        checks = [c for c in checks if (name is None or c.name == name)
                  and (status is None or c.status(now) == status)]
        return self._page(call, checks, lambda c: self.render.check_run(repo, c), "check_runs")

    def combined_status(self, call: _Call) -> Response:
        repo = self._repo(call)
        return Response.json(self.render.combined(repo, self._sha(call, repo)))

    # -- Actions ---------------------------------------------------------------------------

    def workflows(self, call: _Call) -> Response:
        repo = self._repo(call)
        return self._page(call, list(repo.workflows), lambda w: self.render.workflow(repo, w),
                          "workflows")

    def workflow(self, call: _Call) -> Response:
        repo = self._repo(call)
        return Response.json(self.render.workflow(
            repo, self.state.workflow(repo, call.params["workflow"])))

    def runs(self, call: _Call) -> Response:
        """Newest first, filtered by ``actor``, ``branch``, ``event``, ``status`` (a status
        or a conclusion) and ``head_sha`` (docs.github.com/en/rest/actions/workflow-runs
        #list-workflow-runs-for-a-repository)."""
        repo = self._repo(call)
        flow = self.state.workflow(repo, call.params["workflow"]) \
            if "workflow" in call.params else None
        now = self.state.now()
        wanted = {name: call.query(name) for name in ("actor", "branch", "event", "status",
                                                      "head_sha")}
        found = []
        for owner, run in self.state.runs.values():
            facts = {"actor": run.actor, "branch": run.head_branch, "event": run.event,
                     "head_sha": run.head_sha}
            if owner is not repo or (flow is not None and run.workflow is not flow):
                continue
            if any(value is not None and facts[name] != value
                   for name, value in wanted.items() if name != "status"):
                continue
            status = wanted["status"]
            if status is not None and status not in (run.status(now), run.conclusion(now)):
                continue
            found.append(run)
        found.sort(key=lambda r: r.id, reverse=True)
        return self._page(call, found, lambda r: self.render.run(repo, r), "workflow_runs")

    def run(self, call: _Call) -> Response:
        repo = self._repo(call)
        return Response.json(self.render.run(repo, self.state.run(repo, call.params["run"])))

    def jobs(self, call: _Call) -> Response:
        repo = self._repo(call)
        run = self.state.run(repo, call.params["run"])
        return self._page(call, list(run.jobs), lambda j: self.render.job(repo, run, j), "jobs")

    def dispatch(self, call: _Call) -> Response:
        """204, or with ``return_run_details`` 200 and the run's id and URLs (the form
        PyGithub 2.10's ``create_dispatch(return_run_details=True)`` reads)."""
        repo = self._writable(call)
        flow = self.state.workflow(repo, call.params["workflow"])
        body = call.body()
        run = self.state.dispatch(repo, flow, body, call.who if call.caller.kind == "user"
                                  else f"{APP_SLUG}[bot]")
        if body.get("return_run_details"):
            rendered = self.render.run(repo, run)
            return Response.json({"workflow_run_id": run.id, "run_url": rendered["url"],
                                  "html_url": rendered["html_url"]})
        return Response(204)

    def rerun_failed(self, call: _Call) -> Response:
        repo = self._writable(call)
        self.state.rerun_failed(self.state.run(repo, call.params["run"]))
        return Response.json({}, 201)

    def contents(self, call: _Call) -> Response:
        """A file (base64) or a directory listing; ``ref`` a branch or a SHA
        (docs.github.com/en/rest/repos/contents#get-repository-content)."""
        repo = self._repo(call)
        path = call.params.get("path", "").strip("/")
        ref = call.query("ref") or repo.default_branch
        if self.state.resolve(repo, ref) is None:
            raise _ApiError(404, f"No commit found for the ref {ref}",
                            "https://docs.github.com/rest/repos/contents"
                            "#get-repository-content")
        if path in repo.files:
            return Response.json(self.render.content(repo, path, repo.files[path], ref))
        inside = f"{path}/" if path else ""
        children: dict[str, tuple[str, int]] = {}
        for name, text in repo.files.items():
            if name.startswith(inside):
                child, _, rest = name[len(inside):].partition("/")
                size = len(text.encode()) if not rest else 0
                children[child] = ("dir" if rest else "file", size)
        if not children:
            raise not_found("https://docs.github.com/rest/repos/contents"
                            "#get-repository-content")
        return Response.json([self.render.entry(repo, inside + name, kind, ref, size,
                                                _tree_sha(repo, inside + name))
                              for name, (kind, size) in sorted(children.items())])

    # -- the App -------------------------------------------------------------------------

    def _app_only(self, call: _Call) -> None:
        """The /app endpoints take the App's JWT only (docs.github.com/en/apps/creating-
        github-apps/authenticating-with-a-github-app/authenticating-as-a-github-app)."""
        if call.caller.kind != "app":
            raise _ApiError(401, "A JSON web token could not be decoded", _APP_DOCS)

    def _installation_json(self) -> dict[str, Any]:
        api = self.state.api_base
        return {"id": INSTALLATION_ID, "app_id": APP_ID, "app_slug": APP_SLUG,
                "account": self.render.user(OWNER), "target_type": "Organization",
                "target_id": self.state.users[OWNER].id, "repository_selection": "all",
                "access_tokens_url": f"{api}/app/installations/{INSTALLATION_ID}/access_tokens",
                "repositories_url": f"{api}/installation/repositories",
                "html_url": f"{self.state.web_base}/organizations/{OWNER}/settings/"
                            f"installations/{INSTALLATION_ID}",
                "permissions": _PERMISSIONS, "events": ["check_run", "pull_request",
                                                        "workflow_run"],
                "created_at": "2024-01-01T00:00:00Z", "updated_at": "2024-01-01T00:00:00Z",
                "single_file_name": None, "suspended_at": None}

    def app(self, call: _Call) -> Response:
        self._app_only(call)
        return Response.json({"id": APP_ID, "slug": APP_SLUG, "name": "opsbot",
                              "owner": self.render.user(OWNER), "description": "ChatOps",
                              "html_url": f"{self.state.web_base}/apps/{APP_SLUG}",
                              "permissions": _PERMISSIONS, "events": [],
                              "installations_count": 1})

    def installations(self, call: _Call) -> Response:
        self._app_only(call)
        return self._page(call, [self._installation_json()], lambda item: item)

    def installation(self, call: _Call) -> Response:
        self._app_only(call)
        if call.params["installation"] != str(INSTALLATION_ID):
            raise not_found(_APP_DOCS)
        return Response.json(self._installation_json())

    def repo_installation(self, call: _Call) -> Response:
        self._app_only(call)
        self.state.repo(call.params["owner"], call.params["repo"], Caller("installation", None))
        return Response.json(self._installation_json())

    def org_installation(self, call: _Call) -> Response:
        self._app_only(call)
        if call.params["org"].lower() != OWNER:
            raise not_found(_APP_DOCS)
        return Response.json(self._installation_json())

    def access_token(self, call: _Call) -> Response:
        """201 ``{"token", "expires_at", "permissions", "repository_selection"}``."""
        self._app_only(call)
        if call.params["installation"] != str(INSTALLATION_ID):
            raise not_found(_APP_DOCS)
        issued = self.state.auth.issue(self.state.now())
        return Response.json({"token": issued.token, "expires_at": iso(issued.expires),
                              "permissions": _PERMISSIONS, "repository_selection": "all"}, 201)

    def installation_repos(self, call: _Call) -> Response:
        if call.caller.kind != "installation":
            raise _ApiError(403, "Resource not accessible by personal access token")
        repos = sorted(self.state.repos.values(), key=lambda r: r.full_name)
        return self._page(call, repos, self.render.repo, "repositories",
                          {"repository_selection": "all"})


_PERMISSIONS = {"actions": "write", "checks": "read", "contents": "read",
                "metadata": "read", "pull_requests": "write", "statuses": "read"}


def _tree_sha(repo: _Repo, path: str) -> str:
    return sha_of(repo.full_name, "tree", path)


def _negated(test: Callable[[_Repo, _Pull], bool]) -> Callable[[_Repo, _Pull], bool]:
    return lambda repo, pull: not test(repo, pull)


def _qualifier(name: str, value: str, word: str) -> Callable[[_Repo, _Pull], bool]:
    """One search term as a test of a (repository, pull request)."""
    if name in ("is", "type"):
        return {"pr": lambda r, p: True, "pull-request": lambda r, p: True,
                "issue": lambda r, p: False, "open": lambda r, p: p.state == "open",
                "closed": lambda r, p: p.state == "closed",
                "merged": lambda r, p: p.merged,
                "unmerged": lambda r, p: p.state == "closed" and not p.merged,
                "draft": lambda r, p: p.draft,
                "public": lambda r, p: not r.private,
                "private": lambda r, p: r.private}.get(value.lower(), lambda r, p: False)
    if name == "state":
        return lambda r, p: p.state == value.lower()
    if name == "draft":
        return lambda r, p: p.draft == (value.lower() == "true")
    if name == "repo":
        return lambda r, p: r.full_name.lower() == value.lower()
    if name in ("org", "user"):
        return lambda r, p: r.owner.lower() == value.lower()
    if name == "author":
        return lambda r, p: p.author.lower() == value.lower()
    if name == "review-requested":
        return lambda r, p: value.lower() in (u.lower() for u in p.requested)
    if name == "reviewed-by":
        return lambda r, p: any(rv.user.lower() == value.lower() for rv in p.reviews)
    if name in ("sort", "archived", "in"):
        return lambda r, p: True
    term = re.escape(word.lower())
    return lambda r, p: re.search(term, p.title.lower()) is not None
