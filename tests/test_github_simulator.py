"""simulators.github through PyGithub (and plain requests where PyGithub hides the wire).

PyGithub shows that the simulator's answers are GitHub's to the client opsbot uses; requests
pins down status codes, headers and bodies. The simulator runs on a ManualClock, so checks
and runs move when a test says so and no test depends on the date or sleeps for a state.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import yaml
from github import Auth, Github, GithubException, GithubRetry
from github.GithubException import (
    BadCredentialsException,
    RateLimitExceededExceedsMaxWait,
    RateLimitExceededException,
    UnknownObjectException,
)

from simulators._http import BackgroundServer, Request, Response
from simulators.github import (
    ALICE,
    APP_ID,
    BOB,
    CHECKOUT_REPO,
    CI_WORKFLOW,
    E2E_WORKFLOW,
    INSTALLATION_ID,
    OPSBOT,
    OWNER,
    REVIEW_PR,
    SERVICE_REPOS,
    AppKey,
    GithubSimulator,
    ManualClock,
    generate_app_key,
)

QUEUE, RUN = 5.0, 60.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[GithubSimulator]:
    with GithubSimulator(clock=clock, queue_seconds=QUEUE, run_seconds=RUN) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def app_key() -> AppKey:
    return generate_app_key()


def client(sim: GithubSimulator, token: str | None = None, **kwargs: Any) -> Github:
    """PyGithub as opsbot will hold it: no retries unless asked, no client-side pacing."""
    kwargs.setdefault("retry", None)
    return Github(auth=Auth.Token(token or sim.token), base_url=sim.api_url,
                  seconds_between_requests=None, seconds_between_writes=None, **kwargs)


def raw(sim: GithubSimulator, method: str, path: str, token: str | None = "", **kwargs: Any
        ) -> requests.Response:
    headers = {"Authorization": f"Bearer {token or sim.token}"} if token is not None else {}
    return requests.request(method, sim.api_url + path, headers=headers, timeout=10, **kwargs)


def refused(call: Any, *args: Any, **kwargs: Any) -> GithubException:
    with pytest.raises(GithubException) as caught:
        call(*args, **kwargs)
    return caught.value


# -- who sees what ---------------------------------------------------------------------------


def test_the_token_user_the_repositories_and_what_an_outsider_cannot_see(
        sim: GithubSimulator) -> None:
    gh = client(sim)
    assert gh.get_user().login == OPSBOT
    repo = gh.get_repo(CHECKOUT_REPO)
    assert (repo.full_name, repo.private, repo.default_branch) == (CHECKOUT_REPO, True, "main")
    names = {r.name for r in gh.get_organization(OWNER).get_repos()}
    assert names == set(SERVICE_REPOS.values()) and "checkout-web" in names

    outsider = client(sim, sim.outsider_token)
    assert outsider.get_repo(f"{OWNER}/search").private is False
    error = refused(outsider.get_repo, CHECKOUT_REPO)
    assert isinstance(error, UnknownObjectException) and error.status == 404
    assert error.data["message"] == "Not Found" and "documentation_url" in error.data
    assert [r.name for r in outsider.get_organization(OWNER).get_repos()] == ["search"]

    assert isinstance(refused(client(sim, "ghp_wrong").get_repo, CHECKOUT_REPO),
                      BadCredentialsException)
    answer = raw(sim, "GET", "/user", token="ghp_wrong")
    assert (answer.status_code, answer.json()["message"]) == (401, "Bad credentials")
    answer = raw(sim, "GET", "/user", token=None)
    assert (answer.status_code, answer.json()["message"]) == (401, "Requires authentication")
    assert raw(sim, "GET", f"/repos/{CHECKOUT_REPO}", token=None).status_code == 404
    answer = requests.get(sim.api_url + "/user", headers={"Authorization": f"token {sim.token}"},
                          timeout=10)
    assert answer.json()["login"] == OPSBOT
    assert sim.env() == {"GITHUB_API_URL": sim.api_url, "GITHUB_TOKEN": sim.token,
                         "GITHUB_OWNER": OWNER}


def test_lists_page_with_link_headers_thirty_by_default_and_a_hundred_at_most(
        sim: GithubSimulator) -> None:
    repo = client(sim, per_page=2).get_repo(CHECKOUT_REPO)
    pulls = repo.get_pulls(state="all")
    assert pulls.totalCount == 6
    assert [p.number for p in pulls] == [45, 44, 43, REVIEW_PR, 41, 40]
    pages = [r.target for r in sim.request_log() if "/pulls?" in r.target and "page=" in r.target]
    assert any("page=3" in target for target in pages)

    answer = raw(sim, "GET", f"/repos/{CHECKOUT_REPO}/pulls?state=all&per_page=2&page=2")
    link = answer.headers["Link"]
    assert 'page=3>; rel="next"' in link and 'page=1>; rel="first"' in link
    assert 'page=1>; rel="prev"' in link and 'rel="last"' in link and "state=all" in link
    assert link.startswith(f"<{sim.api_url}/repos/")
    assert [p["number"] for p in answer.json()] == [43, REVIEW_PR]
    assert "Link" not in raw(sim, "GET", f"/repos/{CHECKOUT_REPO}/pulls").headers
    everything = raw(sim, "GET", f"/repos/{CHECKOUT_REPO}/pulls?state=all&per_page=500")
    assert len(everything.json()) == 6 and "Link" not in everything.headers


def test_pull_request_lists_filter_and_leave_out_mergeability(sim: GithubSimulator) -> None:
    repo = client(sim).get_repo(CHECKOUT_REPO)
    assert [p.number for p in repo.get_pulls()] == [45, 44, 43, REVIEW_PR]
    assert [p.number for p in repo.get_pulls(state="closed")] == [41, 40]
    assert [p.number for p in repo.get_pulls(head=f"{OWNER}:feature/login")] == [REVIEW_PR]
    assert [p.number for p in repo.get_pulls(sort="created", direction="asc")][0] == REVIEW_PR
    listed = raw(sim, "GET", f"/repos/{CHECKOUT_REPO}/pulls").json()[0]
    assert "mergeable" not in listed and listed["head"]["ref"] == "feature/new-cart"
    merged = repo.get_pull(40)
    assert (merged.state, merged.merged, merged.merged_by.login) == ("closed", True, ALICE)


def test_pr_42_waits_for_bob_with_a_red_e2e_check(sim: GithubSimulator) -> None:
    gh = client(sim)
    pr = gh.get_repo(CHECKOUT_REPO).get_pull(REVIEW_PR)
    assert (pr.user.login, pr.mergeable, pr.mergeable_state) == (ALICE, True, "blocked")
    assert [(r.user.login, r.state) for r in pr.get_reviews()] == [("carol-gh", "COMMENTED")]
    users, teams = pr.get_review_requests()
    assert [u.login for u in users] == [BOB] and list(teams) == []

    commit = gh.get_repo(CHECKOUT_REPO).get_commit(pr.head.sha)
    checks = {c.name: (c.status, c.conclusion) for c in commit.get_check_runs()}
    assert checks["e2e"] == ("completed", "failure")
    assert checks["build"] == ("completed", "success")
    assert [c.name for c in commit.get_check_runs(check_name="e2e")] == ["e2e"]
    status = commit.get_combined_status()
    assert (status.state, [s.context for s in status.statuses]) == ("success", ["ci/jenkins"])
    billing = gh.get_repo(f"{OWNER}/billing").get_commit("main")
    assert billing.get_combined_status().state == "failure"
    assert {c.name: c.conclusion for c in billing.get_check_runs()}["build"] == "failure"
    answer = raw(sim, "GET", f"/repos/{CHECKOUT_REPO}/commits/nosuchref/check-runs")
    assert (answer.status_code, answer.json()["message"]) == (
        422, "No commit found for SHA: nosuchref")


def test_search_finds_the_pull_requests_waiting_for_a_review(sim: GithubSimulator) -> None:
    gh = client(sim)
    waiting = gh.search_issues(f"is:pr is:open review-requested:{BOB}")
    assert waiting.totalCount == 2
    assert [(i.number, i.repository.full_name) for i in waiting] == [
        (45, CHECKOUT_REPO), (REVIEW_PR, CHECKOUT_REPO)]
    assert [i.number for i in gh.search_issues("is:pr", **{"review-requested": ALICE})] \
        == [44, 7]
    assert [i.number for i in gh.search_issues(
        f"login repo:{CHECKOUT_REPO} is:pr -is:draft")] == [REVIEW_PR]
    assert [i.number for i in gh.search_issues("is:pr is:merged")] == [40]
    item = raw(sim, "GET", f"/search/issues?q=is:pr+review-requested:{BOB}").json()["items"][0]
    assert item["pull_request"]["url"].endswith(f"/repos/{CHECKOUT_REPO}/pulls/45")
    headers = raw(sim, "GET", "/search/issues?q=is:pr").headers
    assert (headers["x-ratelimit-resource"], headers["x-ratelimit-limit"]) == ("search", "30")


# -- merging ----------------------------------------------------------------------------------


def test_merge_is_refused_with_405_and_409_as_github_refuses_it(sim: GithubSimulator) -> None:
    repo = client(sim).get_repo(CHECKOUT_REPO)
    pr = repo.get_pull(REVIEW_PR)
    error = refused(pr.merge, sha=pr.head.sha, merge_method="squash")
    assert (error.status, error.data["message"]) == (405, 'Required status check "e2e" is failing.')
    conflicted = repo.get_pull(44)
    assert (conflicted.mergeable, conflicted.mergeable_state) == (False, "dirty")
    error = refused(conflicted.merge)
    assert (error.status, error.data["message"]) == (405, "Pull Request is not mergeable")

    green = repo.get_pull(43)
    old = green.head.sha
    new = sim.push(OWNER, "checkout-web", 43)
    assert new != old
    error = refused(green.merge, sha=old)
    assert (error.status, error.data["message"]) == (
        409, "Head branch was modified. Review and try the merge again.")
    error = refused(green.merge, sha=new, merge_method="fast-forward")
    assert error.status == 422

    payments = client(sim).get_repo(f"{OWNER}/{SERVICE_REPOS['payments']}").get_pull(7)
    error = refused(payments.merge, sha=payments.head.sha)
    assert (error.status, error.data["message"]) == (
        405, "At least 1 approving review is required by reviewers with write access.")
    sim.review(OWNER, SERVICE_REPOS["payments"], 7, ALICE)
    result = payments.merge(sha=payments.head.sha, merge_method="squash")
    assert (result.merged, result.message) == (True, "Pull Request successfully merged")
    assert len(result.sha) == 40
    again = client(sim).get_repo(f"{OWNER}/payments").get_pull(7)
    assert (again.merged, again.state, again.merged_by.login) == (True, "closed", OPSBOT)
    assert refused(again.merge).status == 405
    answer = raw(sim, "PUT", f"/repos/{CHECKOUT_REPO}/pulls/43/merge", token=None, json={})
    assert answer.status_code == 404  # a private repository does not exist for strangers


def test_mergeable_is_null_on_the_first_read_after_a_push(sim: GithubSimulator,
                                                          clock: ManualClock) -> None:
    repo = client(sim).get_repo(CHECKOUT_REPO)
    sha = sim.push(OWNER, "checkout-web", 43)
    first = repo.get_pull(43)
    assert (first.head.sha, first.mergeable, first.mergeable_state) == (sha, None, "unknown")
    second = repo.get_pull(43)
    assert second.mergeable is True and second.mergeable_state == "blocked"  # CI is running
    checks = {c.name: c.status for c in repo.get_commit(sha).get_check_runs()}
    assert checks == {"build": "queued", "unit tests": "queued", "lint": "queued",
                      "e2e": "queued"}
    clock.advance(QUEUE + RUN)
    assert repo.get_pull(43).mergeable_state == "clean"
    assert repo.get_pull(43).merge(sha=sha).merged


# -- Actions ----------------------------------------------------------------------------------


def test_workflows_and_the_dispatch_inputs_they_declare(sim: GithubSimulator) -> None:
    repo = client(sim).get_repo(CHECKOUT_REPO)
    assert [(w.name, w.path) for w in repo.get_workflows()] == [
        ("CI", f".github/workflows/{CI_WORKFLOW}"), ("E2E", f".github/workflows/{E2E_WORKFLOW}")]
    flow = repo.get_workflow(E2E_WORKFLOW)
    assert repo.get_workflow(flow.id).path == flow.path and flow.state == "active"
    content = repo.get_contents(flow.path)
    assert not isinstance(content, list) and content.encoding == "base64"
    parsed = yaml.safe_load(content.decoded_content)
    inputs = parsed[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads "on" as True
    assert inputs["suite"] == {"description": "Which end-to-end suite to run",
                               "required": True, "type": "choice", "options": ["smoke", "full"]}
    listing = repo.get_contents(".github/workflows")
    assert isinstance(listing, list) and [c.name for c in listing] == [CI_WORKFLOW, E2E_WORKFLOW]
    assert refused(repo.get_workflow, "nope.yml").status == 404
    assert refused(repo.get_contents, "nope.txt").status == 404


@pytest.mark.parametrize(("workflow", "body", "message"), [
    (CI_WORKFLOW, {"ref": "main"}, "Workflow does not have 'workflow_dispatch' trigger"),
    (E2E_WORKFLOW, {"ref": "main", "inputs": {"suite": "smoke", "shard": "2"}},
     'Unexpected inputs provided: ["shard"]'),
    (E2E_WORKFLOW, {"ref": "main", "inputs": {"browser": "firefox"}},
     "Required input 'suite' not provided"),
    (E2E_WORKFLOW, {"ref": "main", "inputs": {"suite": "nightly"}},
     "Provided value 'nightly' for input 'suite' not in the list of allowed values"),
    (E2E_WORKFLOW, {"ref": "no-such-branch", "inputs": {"suite": "smoke"}},
     "No ref found for: no-such-branch"),
])
def test_dispatch_refusals_are_422_with_githubs_words(sim: GithubSimulator, workflow: str,
                                                      body: dict[str, Any], message: str) -> None:
    flow = client(sim).get_repo(CHECKOUT_REPO).get_workflow(workflow)
    error = refused(flow.create_dispatch, body["ref"], body.get("inputs", {}), throw=True)
    assert (error.status, error.data["message"]) == (422, message)
    # Without throw=True PyGithub only says False: a backend must pass it.
    assert flow.create_dispatch(body["ref"], body.get("inputs", {})) is False
    assert sim.runs(OWNER, "checkout-web")[0]["event"] != "workflow_dispatch"


def test_a_dispatch_starts_a_run_that_moves_on_the_clock(sim: GithubSimulator,
                                                         clock: ManualClock) -> None:
    repo = client(sim).get_repo(CHECKOUT_REPO)
    sim.set_outcome(OWNER, "checkout-web", E2E_WORKFLOW, "failure")
    assert repo.get_workflow(E2E_WORKFLOW).create_dispatch("main", {"suite": "full"}, throw=True)
    answer = raw(sim, "POST", f"/repos/{CHECKOUT_REPO}/actions/workflows/{E2E_WORKFLOW}/"
                              "dispatches", json={"ref": "main", "inputs": {"suite": "smoke"}})
    assert (answer.status_code, answer.content) == (204, b"")
    runs = repo.get_workflow_runs(event="workflow_dispatch")
    assert runs.totalCount == 2
    first = runs[1]
    assert (first.status, first.conclusion, first.head_branch, first.event) == (
        "queued", None, "main", "workflow_dispatch")
    clock.advance(QUEUE)
    first.update()
    assert first.status == "in_progress"
    assert [(j.name, j.status) for j in first.jobs()] == [("e2e", "in_progress")]
    clock.advance(RUN)
    first.update()
    assert (first.status, first.conclusion) == ("completed", "failure")
    assert repo.get_workflow_run(first.id).conclusion == "failure"
    assert [r.id for r in repo.get_workflow_runs(status="failure", event="workflow_dispatch")] \
        == [first.id]
    assert [r.id for r in repo.get_workflow_runs(branch="main", status="success",
                                                 event="workflow_dispatch")] == [runs[0].id]
    assert repo.get_workflow_runs(head_sha=first.head_sha, event="push").totalCount == 1
    flow_runs = repo.get_workflow(E2E_WORKFLOW).get_runs(event="workflow_dispatch")
    assert flow_runs.totalCount == 2
    details = repo.get_workflow(E2E_WORKFLOW).create_dispatch(
        "main", {"suite": "smoke"}, throw=True, return_run_details=True)
    assert repo.get_workflow_run(details.id).status == "queued"


def test_rerun_failed_jobs_waits_for_the_run_to_finish_then_runs_them_again(
        sim: GithubSimulator, clock: ManualClock) -> None:
    repo = client(sim).get_repo(CHECKOUT_REPO)
    sim.set_outcome(OWNER, "checkout-web", CI_WORKFLOW, "failure", job="unit tests")
    sha = sim.push(OWNER, "checkout-web", REVIEW_PR)
    run = next(r for r in repo.get_workflow_runs(head_sha=sha) if r.name == "CI")
    path = f"/repos/{CHECKOUT_REPO}/actions/runs/{run.id}/rerun-failed-jobs"
    answer = raw(sim, "POST", path)
    assert (answer.status_code, answer.json()["message"]) == (
        403, "This workflow is already running")
    assert run.rerun_failed_jobs() is False  # PyGithub hides the 403 behind False
    clock.advance(QUEUE + RUN)
    run.update()
    assert (run.conclusion, run.run_attempt) == ("failure", 1)
    assert run.rerun_failed_jobs() is True
    run.update()
    assert (run.status, run.run_attempt) == ("queued", 2)
    jobs = {j.name: (j.status, j.run_attempt) for j in run.jobs()}
    assert jobs == {"build": ("completed", 1), "unit tests": ("queued", 2),
                    "lint": ("completed", 1)}
    checks = {c.name: c.status for c in repo.get_commit(sha).get_check_runs()}
    assert checks["unit tests"] == "queued"
    clock.advance(QUEUE + RUN)
    run.update()
    assert (run.status, run.conclusion, run.run_attempt) == ("completed", "success", 2)


# -- rate limits ------------------------------------------------------------------------------


def test_every_answer_carries_rate_limit_headers_and_rate_limit_is_free(
        clock: ManualClock) -> None:
    with GithubSimulator(clock=clock, limit=3, window=60) as sim:
        first = raw(sim, "GET", f"/repos/{CHECKOUT_REPO}")
        headers = first.headers
        assert (headers["x-ratelimit-limit"], headers["x-ratelimit-remaining"],
                headers["x-ratelimit-used"], headers["x-ratelimit-resource"]) == (
            "3", "2", "1", "core")
        reset = int(headers["x-ratelimit-reset"])
        assert clock.now < reset <= clock.now + 61
        missing = raw(sim, "GET", "/repos/acme/nothing")
        assert missing.status_code == 404 and missing.headers["x-ratelimit-remaining"] == "1"
        limits = client(sim).get_rate_limit()
        assert (limits.resources.core.limit, limits.resources.core.remaining) == (3, 1)
        assert raw(sim, "GET", "/rate_limit").headers["x-ratelimit-remaining"] == "1"

        gh = client(sim)
        gh.get_repo(CHECKOUT_REPO)
        error = refused(gh.get_repo, CHECKOUT_REPO)
        assert isinstance(error, RateLimitExceededException) and error.status == 403
        assert error.data["message"].startswith("API rate limit exceeded for user ID")
        assert error.headers["x-ratelimit-remaining"] == "0"
        assert int(error.headers["x-ratelimit-reset"]) == reset
        limited_at = clock.now
        clock.advance(reset - clock.now)
        assert gh.get_repo(CHECKOUT_REPO).name == "checkout-web"
        log = sim.request_log()
        refusals = [r for r in log if r.status == 403]
        assert [r.rate_remaining for r in refusals] == [0]
        after = [r for r in log if r.at > limited_at]
        assert after and all(r.at >= reset for r in after)
        assert after[0].rate_remaining == 2


def test_primary_limit_as_429_and_pygithubs_bounded_wait(clock: ManualClock) -> None:
    with GithubSimulator(clock=clock, rate_limit_status=429) as sim:
        reset = sim.exhaust_rate_limit()
        error = refused(client(sim).get_repo, CHECKOUT_REPO)
        # PyGithub names only a 403 a RateLimitExceededException; a 429 is a plain one.
        assert type(error) is GithubException and error.status == 429
        assert error.headers["x-ratelimit-reset"] == str(reset)
    with GithubSimulator(clock=clock) as sim:
        sim.exhaust_rate_limit()
        bounded = client(sim, retry=GithubRetry(total=3, max_rate_limit_wait=5))
        with pytest.raises(RateLimitExceededExceedsMaxWait):
            bounded.get_repo(CHECKOUT_REPO)
        assert len(sim.request_log()) == 1  # it gave up instead of asking again


def test_secondary_limits_say_retry_after(sim: GithubSimulator) -> None:
    sim.secondary_limit(retry_after=1)
    error = refused(client(sim).get_repo, CHECKOUT_REPO)
    assert isinstance(error, RateLimitExceededException) and error.status == 403
    assert error.headers["retry-after"] == "1"
    assert error.data["message"].startswith("You have exceeded a secondary rate limit")
    sim.fail_next(429)
    answer = raw(sim, "GET", f"/repos/{CHECKOUT_REPO}")
    assert (answer.status_code, answer.headers["retry-after"]) == (429, "1")
    assert "x-ratelimit-remaining" in answer.headers

    sim.secondary_limit(retry_after=1)
    retrying = client(sim, retry=GithubRetry(total=2))
    assert retrying.get_repo(CHECKOUT_REPO).name == "checkout-web"
    assert [r.status for r in sim.request_log()][-2:] == [403, 200]
    sim.fail_next(502)
    assert refused(client(sim).get_repo, CHECKOUT_REPO).status == 502


# -- GitHub App ---------------------------------------------------------------------------------


class _PyGithubClock(datetime):
    """PyGithub's ``datetime`` following the test's clock, so it judges token expiry by
    the same time as the simulator."""

    clock: ManualClock

    @classmethod
    def now(cls, tz: Any = None) -> Any:
        return datetime.fromtimestamp(cls.clock(), tz or UTC)


def test_app_jwt_installation_token_expiry_and_refresh(
        app_key: AppKey, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    import github.Auth

    _PyGithubClock.clock = clock
    monkeypatch.setattr(github.Auth, "datetime", _PyGithubClock)
    with GithubSimulator(clock=clock, app_key=app_key, token_seconds=60) as sim:
        installation = Auth.AppAuth(APP_ID, app_key.private_pem).get_installation_auth(
            INSTALLATION_ID)
        gh = Github(auth=installation, base_url=sim.api_url, retry=None,
                    seconds_between_requests=None, seconds_between_writes=None)
        assert gh.get_repo(CHECKOUT_REPO).private is True
        assert gh.get_repo(f"{OWNER}/billing").name == "billing"
        issued = [r for r in sim.request_log() if r.target.endswith("/access_tokens")]
        assert [(r.status, r.who) for r in issued] == [(201, f"app:{APP_ID}")]
        first_token = installation.token
        assert first_token.startswith("ghs_")
        assert sim.request_log()[-1].who == f"installation:{INSTALLATION_ID}"

        clock.advance(45)  # within 20 s of expiry: PyGithub asks for a new token
        assert gh.get_repo(CHECKOUT_REPO).name == "checkout-web"
        assert len([r for r in sim.request_log() if r.target.endswith("/access_tokens")]) == 2
        assert installation.token != first_token
        clock.advance(20)
        stale = raw(sim, "GET", f"/repos/{CHECKOUT_REPO}", token=first_token)
        assert (stale.status_code, stale.json()["message"]) == (401, "Bad credentials")
        assert raw(sim, "GET", "/user", token=installation.token).status_code == 403

        env = sim.app_env(tmp_path / "app.pem")
        assert env["GITHUB_APP_ID"] == str(APP_ID)
        assert env["GITHUB_APP_INSTALLATION_ID"] == str(INSTALLATION_ID)
        assert Path(env["GITHUB_APP_PRIVATE_KEY_FILE"]).read_text() == app_key.private_pem
        assert Path(env["GITHUB_APP_PRIVATE_KEY_FILE"]).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(("claims", "key", "message"), [
    ({"iat": -60, "exp": 900}, "app", "'Expiration time' claim ('exp') is too far in the future"),
    ({"iat": -700, "exp": -10}, "app", "'Expiration time' claim ('exp') must be a numeric value "
                                       "representing the future time at which the assertion "
                                       "expires"),
    ({"iat": 120, "exp": 300}, "app", "'Issued at' claim ('iat') must be an Integer "
                                      "representing a time in the past"),
    ({"iat": -60, "exp": 300}, "other", "A JSON web token could not be decoded"),
])
def test_jwts_github_refuses(app_key: AppKey, clock: ManualClock, claims: dict[str, int],
                             key: str, message: str) -> None:
    signer = app_key if key == "app" else generate_app_key(1024)
    now = int(clock())
    token = jwt.encode({"iat": now + claims["iat"], "exp": now + claims["exp"],
                        "iss": str(APP_ID)}, signer.private_pem, algorithm="RS256")
    with GithubSimulator(clock=clock, app_key=app_key) as sim:
        answer = raw(sim, "POST", f"/app/installations/{INSTALLATION_ID}/access_tokens",
                     token=token)
        assert (answer.status_code, answer.json()["message"]) == (401, message)
        assert raw(sim, "GET", f"/repos/{CHECKOUT_REPO}", token=token).status_code == 401


# -- Enterprise, webhooks, faults ------------------------------------------------------------


def test_enterprise_server_serves_under_api_v3(clock: ManualClock) -> None:
    with GithubSimulator(clock=clock, enterprise=True) as sim:
        assert sim.api_url.endswith("/api/v3")
        repo = client(sim, per_page=2).get_repo(CHECKOUT_REPO)
        assert [p.number for p in repo.get_pulls()] == [45, 44, 43, REVIEW_PR]
        assert repo.get_pull(REVIEW_PR).url.startswith(sim.api_url + "/repos/")
        answer = raw(sim, "GET", f"/repos/{CHECKOUT_REPO}")
        assert answer.headers["x-github-enterprise-version"]
        outside = requests.get(sim.url + f"repos/{CHECKOUT_REPO}",
                               headers={"Authorization": f"token {sim.token}"}, timeout=10)
        assert outside.status_code == 404


def test_webhooks_follow_the_clock_signed_with_the_secret(clock: ManualClock) -> None:
    received: list[tuple[str, str, bytes]] = []

    def handler(request: Request) -> Response:
        received.append((request.header("X-GitHub-Event") or "",
                         request.header("X-Hub-Signature-256") or "", request.body))
        return Response.text("ok")

    with _Serving(handler) as sink, \
            GithubSimulator(clock=clock, events_url=sink.url, webhook_secret="s3cret",
                            queue_seconds=QUEUE, run_seconds=RUN) as sim:
        client(sim).get_repo(CHECKOUT_REPO).get_workflow(E2E_WORKFLOW).create_dispatch(
            "main", {"suite": "smoke"}, throw=True)
        requested = sim.wait_for_delivery("workflow_run", "requested")
        assert requested["status"] == 200
        assert requested["payload"]["workflow_run"]["event"] == "workflow_dispatch"
        clock.advance(QUEUE + RUN)
        raw(sim, "GET", "/rate_limit")
        done = sim.wait_for_delivery("check_run", "completed")
        assert done["payload"]["check_run"]["name"] == "e2e"
        sim.wait_for_delivery("workflow_run", "completed")
        sim.push(OWNER, "checkout-web", 43)
        sim.wait_for_delivery("pull_request", "synchronize")
    event, signature, body = received[0]
    digest = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert (event, signature) == ("workflow_run", f"sha256={digest}")
    assert json.loads(body)["action"] == "requested"


class _Serving:
    """A BackgroundServer as a context manager, for the webhook sink."""

    def __init__(self, handler: Any) -> None:
        self.server = BackgroundServer(handler)

    def __enter__(self) -> _Serving:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    @property
    def url(self) -> str:
        return self.server.url.rstrip("/")


def test_the_demo_shape_and_constructor_checks() -> None:
    with pytest.raises(ValueError, match="webhook_secret"):
        GithubSimulator(events_url="http://127.0.0.1:1")
    with pytest.raises(ValueError, match="403 or 429"):
        GithubSimulator(rate_limit_status=500)
    simulator = GithubSimulator()
    assert "**********" in repr(simulator) and simulator.token not in repr(simulator)
    assert SERVICE_REPOS["checkout"] == "checkout-web"
