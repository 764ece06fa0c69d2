"""actions.backends.github through the real PyGithub against the GitHub simulator.

The simulator and the backend share one ManualClock (and the backend's ``sleep`` moves it),
so check runs, workflow runs, installation tokens and rate-limit windows move when a test
says so: no test sleeps for a state or depends on the date.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from actions.backends import GITHUB, KINDS
from actions.backends.github import (
    FAILED,
    PENDING,
    GithubBackend,
    GithubConfig,
    PullRequestStatus,
)
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    NotFound,
    RateLimited,
    Secret,
)
from actions.service_catalog import Repository
from simulators.github import (
    ALICE,
    APP_ID,
    BOB,
    INSTALLATION_ID,
    OPSBOT,
    OWNER,
    REVIEW_PR,
    AppKey,
    GithubSimulator,
    ManualClock,
    generate_app_key,
)
from tests import test_github_simulator

T = TypeVar("T")
CHECKOUT = Repository(OWNER, "checkout-web")
PAYMENTS = Repository(OWNER, "payments")
# The simulator's own fixtures: a ManualClock, the simulator on it, an App key pair.
clock, sim, app_key = (test_github_simulator.clock, test_github_simulator.sim,
                       test_github_simulator.app_key)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def backend_for(env: dict[str, str], clock: ManualClock, **kwargs: Any) -> GithubBackend:
    """The backend as the runtime builds it, on the test's clock; its sleeps move the clock."""
    config = GithubConfig.from_env(env)
    assert config is not None

    async def sleep(seconds: float) -> None:
        clock.advance(max(0.0, seconds))

    return GithubBackend(config, clock=clock, sleep=sleep, **kwargs)


@pytest.fixture
def backend(sim: GithubSimulator, clock: ManualClock) -> GithubBackend:
    return backend_for(sim.env(), clock)


def sent(sim: GithubSimulator) -> list[str]:
    return [f"{r.method} {r.target.split('?')[0]}" for r in sim.request_log()]


def assert_ours(error: BaseException, *secrets: str) -> None:
    """Ours, chained to PyGithub's or requests' exception, and without a secret."""
    assert isinstance(error, BackendError) and error.backend == "GitHub"
    assert type(error).__module__ == "actions.errors"
    for secret in secrets:
        assert secret not in str(error)


# -- configuration --------------------------------------------------------------------------


def test_the_kind_is_declared_and_unconfigured_without_an_identity() -> None:
    assert GITHUB in KINDS and GITHUB.name == "github" and GITHUB.product == "GitHub"
    assert GITHUB.from_env({}) is None
    assert GITHUB.from_env({"GITHUB_OWNER": "acme"}) is None  # the catalog's, alone
    config = GithubConfig.from_env({"GITHUB_TOKEN": "ghp_abcdef123456"})
    assert config is not None and config.api_url == "https://api.github.com"
    assert "ghp_abcdef123456" not in repr(config) and "ghp_abcdef" not in repr(
        GithubBackend(config))
    ghes = GithubConfig.from_env({"GITHUB_TOKEN": "t0ken-123456",
                                  "GITHUB_API_URL": "https://ghe.acme.test/api/v3/"})
    assert ghes is not None and ghes.api_url == "https://ghe.acme.test/api/v3"


@pytest.mark.parametrize(("env", "words"), [
    ({"GITHUB_API_URL": "https://api.github.com"}, "GITHUB_API_URL is set but opsbot has no "
     "GitHub identity"),
    ({"GITHUB_TOKEN": "t", "GITHUB_API_URL": "ftp://ghe"}, "GITHUB_API_URL must be"),
    ({"GITHUB_TOKEN": "t", "GITHUB_API_URL": "https://github.com"}, "the API is at "
     "https://api.github.com"),
    ({"GITHUB_TOKEN": "t", "GITHUB_API_URL": "https://u:p@ghe/api/v3"}, "must not contain"),
    ({"GITHUB_TOKEN": "t", "GITHUB_APP_ID": "1"}, "GITHUB_TOKEN and GITHUB_APP_ID are both "
     "set"),
    ({"GITHUB_APP_ID": "1"}, "GITHUB_APP_ID is set but GITHUB_APP_PRIVATE_KEY_FILE and "
     "GITHUB_APP_INSTALLATION_ID are not"),
    ({"GITHUB_APP_ID": "one", "GITHUB_APP_PRIVATE_KEY_FILE": "/k",
      "GITHUB_APP_INSTALLATION_ID": "2"}, "GITHUB_APP_ID must be a number"),
    ({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_FILE": "/nonexistent/app.pem",
      "GITHUB_APP_INSTALLATION_ID": "2"}, "cannot be read (No such file or directory)"),
    ({"GITHUB_TOKEN": "t", "GITHUB_TIMEOUT": "soon"}, "GITHUB_TIMEOUT must be a number"),
    ({"GITHUB_TOKEN": "t", "GITHUB_OWNER": "acme corp"}, "is not a GitHub user or"),
])
def test_a_setting_that_cannot_work_is_refused_naming_it(env: dict[str, str],
                                                         words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        GithubConfig.from_env(env)
    assert words in str(caught.value)


def test_an_app_key_file_that_is_not_a_pem_key_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "app.pem"
    key.write_text("not a key\n", encoding="ascii")
    with pytest.raises(ConfigError, match="is not an unencrypted PEM private key"):
        GithubConfig.from_env({"GITHUB_APP_ID": "1", "GITHUB_APP_PRIVATE_KEY_FILE": str(key),
                               "GITHUB_APP_INSTALLATION_ID": "2"})


def test_the_demo_simulates_github_unless_github_api_url_names_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from simulators import demo_backends

    monkeypatch.delenv("GITHUB_API_URL", raising=False)
    assert any(isinstance(b, GithubSimulator) for b in demo_backends())
    monkeypatch.setenv("GITHUB_API_URL", "https://github.acme.test/api/v3")
    assert not any(isinstance(b, GithubSimulator) for b in demo_backends())


# -- who opsbot is --------------------------------------------------------------------------


def test_ping_with_a_token_says_who_opsbot_is(sim: GithubSimulator,
                                              backend: GithubBackend) -> None:
    assert run(backend.ping()) == f"GitHub 127.0.0.1:{sim.port} as {OPSBOT}"
    assert sent(sim) == ["GET /user"]


def test_ping_through_github_enterprise_servers_prefix(clock: ManualClock) -> None:
    with GithubSimulator(clock=clock, enterprise=True) as sim:
        backend = backend_for(sim.env(), clock)
        assert sim.env()["GITHUB_API_URL"].endswith("/api/v3")
        assert run(backend.ping()) == f"GitHub Enterprise Server 127.0.0.1:{sim.port} as " \
                                      f"{OPSBOT}"
        assert run(backend.pull_request(CHECKOUT, REVIEW_PR)).title
        assert all(r.target.startswith("/api/v3/") for r in sim.request_log())


def test_an_app_signs_in_and_makes_a_new_token_before_the_old_one_expires(
        clock: ManualClock, app_key: AppKey, tmp_path: Path) -> None:
    with GithubSimulator(clock=clock, app_key=app_key, token_seconds=3600) as sim:
        backend = backend_for(sim.app_env(tmp_path / "app.pem"), clock)
        assert run(backend.ping()) == (f"GitHub 127.0.0.1:{sim.port} as the App opsbot "
                                       f"(installation {INSTALLATION_ID} on {OWNER})")
        assert backend.installation_tokens == 1
        run(backend.pull_request(CHECKOUT, REVIEW_PR))
        clock.advance(3000)  # the token still has 10 minutes: kept
        run(backend.open_pull_requests(CHECKOUT))
        assert backend.installation_tokens == 1
        clock.advance(500)  # 100 s left: a new one first, with a JWT dated by the same clock
        assert run(backend.open_pull_requests(CHECKOUT)).total == 4
        assert backend.installation_tokens == 2
        whos = {r.who for r in sim.request_log()}
        assert whos == {f"installation:{INSTALLATION_ID}", f"app:{APP_ID}"}
        assert all(r.status < 400 for r in sim.request_log())


def test_an_app_that_github_does_not_know_is_told_in_words(
        clock: ManualClock, app_key: AppKey, tmp_path: Path) -> None:
    with GithubSimulator(clock=clock, app_key=generate_app_key()) as sim:
        env = sim.app_env(tmp_path / "app.pem")
        app_key.write(env["GITHUB_APP_PRIVATE_KEY_FILE"])  # a key GitHub does not have
        with pytest.raises(BackendAuthError) as caught:
            run(backend_for(env, clock).ping())
        assert "refused opsbot's credentials (401)" in str(caught.value)
        assert "GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY_FILE and GITHUB_APP_INSTALLATION_ID" \
            in str(caught.value)


# -- pull requests --------------------------------------------------------------------------


def test_pr_status_has_checks_with_links_reviews_and_blockers_in_words(
        backend: GithubBackend) -> None:
    status = run(backend.pull_request(CHECKOUT, REVIEW_PR))
    assert isinstance(status, PullRequestStatus)
    assert (status.title, status.author, status.state, status.mergeable,
            status.mergeable_state) == ("Login: time out idle sessions", ALICE, "open", True,
                                        "blocked")
    [e2e] = status.failing
    assert (e2e.name, e2e.state, e2e.conclusion) == ("e2e", FAILED, "failure")
    assert e2e.url and "/actions/runs/" in e2e.url
    assert {c.name for c in status.checks} == {"build", "unit tests", "lint", "e2e",
                                               "ci/jenkins"}
    assert status.review_requested == (BOB,) and status.approved_by == ()
    assert [(r.login, r.state) for r in status.reviews] == [("carol-gh", "commented")]
    assert status.blockers == ("check e2e failed",
                               f"no approving review yet (waiting for {BOB})")


def test_pr_status_follows_a_push_and_a_review(sim: GithubSimulator,
                                               backend: GithubBackend) -> None:
    sim.review(OWNER, "checkout-web", REVIEW_PR, BOB, "CHANGES_REQUESTED")
    sim.push(OWNER, "checkout-web", REVIEW_PR)  # mergeable is null on the next read
    status = run(backend.pull_request(CHECKOUT, REVIEW_PR))
    assert status.mergeable is True  # asked again after GitHub computed it
    assert {c.name for c in status.pending} >= {"build", "e2e"}
    assert all(c.state == PENDING for c in status.pending)
    assert status.changes_requested_by == (BOB,)
    assert "bob-gh requested changes" in status.blockers
    assert any("still running" in b for b in status.blockers)


def test_a_missing_pull_request_and_a_hidden_repository_are_told_apart(
        sim: GithubSimulator, backend: GithubBackend) -> None:
    with pytest.raises(NotFound, match="acme/checkout-web has no pull request #999"):
        run(backend.pull_request(CHECKOUT, 999))
    with pytest.raises(NotFound) as caught:
        run(backend.pull_request(Repository(OWNER, "nope"), 1))
    assert "GitHub shows opsbot no repository acme/nope (404)" in str(caught.value)
    outsider = backend_for({**sim.env(), "GITHUB_TOKEN": sim.outsider_token},
                           ManualClock(sim.request_log()[-1].at))
    with pytest.raises(NotFound, match="no access to it"):
        run(outsider.open_pull_requests(CHECKOUT))


def test_open_pull_requests_follow_the_pages(sim: GithubSimulator, clock: ManualClock) -> None:
    backend = backend_for(sim.env(), clock, per_page=1)
    found = run(backend.open_pull_requests(CHECKOUT, limit=10))
    assert [p.number for p in found.items] == [45, 44, 43, REVIEW_PR] and found.total == 4
    assert not found.truncated and found.items[0].draft and found.items[0].author == ALICE
    pages = [r.target for r in sim.request_log() if "/pulls?" in r.target]
    assert any("page=4" in target for target in pages)
    first = run(backend.open_pull_requests(CHECKOUT, limit=2))
    assert [p.number for p in first.items] == [45, 44] and first.truncated


def test_pull_requests_waiting_for_a_persons_review(backend: GithubBackend) -> None:
    waiting = run(backend.waiting_for_review(BOB))
    assert [(p.repository, p.number) for p in waiting.items] == [(CHECKOUT, 45),
                                                                  (CHECKOUT, REVIEW_PR)]
    assert [p.number for p in run(backend.waiting_for_review(f"@{ALICE}")).items] == [44, 7]
    assert [p.number for p in run(backend.waiting_for_review(
        ALICE, repository=PAYMENTS)).items] == [7]
    with pytest.raises(InvalidRequest, match="is not a GitHub login"):
        run(backend.waiting_for_review("bob repo:other/repo"))


# -- re-running checks and following runs ---------------------------------------------------


def test_rerun_starts_the_failed_jobs_again_and_follows_them(
        sim: GithubSimulator, backend: GithubBackend) -> None:
    rerun = run(backend.rerun_failed_checks(CHECKOUT, REVIEW_PR))
    [again] = rerun.rerun
    assert (again.workflow, again.attempt, again.done) == ("E2E", 2, False)
    assert again.head_sha == rerun.head_sha and not rerun.skipped
    assert any(t.endswith(f"/actions/runs/{again.id}/rerun-failed-jobs")
               for t in sent(sim))
    finished = run(backend.wait_for_run(CHECKOUT, again.id, poll=10))
    assert finished.done and finished.succeeded and finished.conclusion == "success"
    # nothing has failed on a fresh push (its runs are still going): nothing to re-run
    sim.push(OWNER, "checkout-web", 43)
    assert run(backend.rerun_failed_checks(CHECKOUT, 43)).rerun == ()


def test_a_rerun_github_refuses_is_a_reason_not_a_missing_permission(
        sim: GithubSimulator, backend: GithubBackend) -> None:
    sim.set_rerun_outcome("failure")
    [again] = run(backend.rerun_failed_checks(CHECKOUT, REVIEW_PR)).rerun
    # what rerun_failed_checks records as skipped: GitHub's 403 for a run that still runs
    with pytest.raises(InvalidRequest, match=r"\(403\): This workflow is already running"):
        run(backend._change(lambda: backend._github.requester.requestJsonAndCheck(
            "POST", f"/repos/{CHECKOUT}/actions/runs/{again.id}/rerun-failed-jobs"),
            doing="re-run", missing="gone", permission="Actions: write"))
    assert run(backend.wait_for_run(CHECKOUT, again.id)).conclusion == "failure"
    assert run(backend.rerun_failed_checks(CHECKOUT, REVIEW_PR)).rerun[0].attempt == 3


# -- running a workflow ---------------------------------------------------------------------


def test_a_workflow_is_read_with_its_dispatch_inputs(backend: GithubBackend) -> None:
    e2e = run(backend.workflow(CHECKOUT, "e2e"))
    assert (e2e.name, e2e.file, e2e.dispatchable, e2e.ref) == ("E2E", "e2e.yml", True, "main")
    assert [i.describe() for i in e2e.inputs] == [
        "suite (required, smoke or full)", "browser (default chromium)",
        "debug (true or false, default false)"]
    assert run(backend.workflow(CHECKOUT, "E2E")).id == e2e.id
    assert run(backend.workflow(CHECKOUT, "ci.yml")).dispatchable is False
    with pytest.raises(NotFound, match=r"no workflow called 'deploy'; its workflows are CI "
                                       r"\(ci.yml\), E2E \(e2e.yml\)"):
        run(backend.workflow(CHECKOUT, "deploy"))
    with pytest.raises(NotFound, match="no branch, tag or commit 'nosuch'"):
        run(backend.workflow(CHECKOUT, "e2e", "nosuch"))


@pytest.mark.parametrize(("workflow", "inputs", "words"), [
    ("e2e", {"suite": "nightly"}, "suite of the E2E workflow (e2e.yml) is one of smoke or "
     "full; 'nightly' is not"),
    ("e2e", {}, "To run the E2E workflow (e2e.yml), say its suite (required, smoke or full)"),
    ("e2e", {"suite": "smoke", "region": "eu"}, "has no input 'region'; its inputs are suite "
     "(required, smoke or full), browser (default chromium), debug (true or false, default "
     "false)"),
    ("e2e", {"suite": "smoke", "debug": "maybe"}, "debug of the E2E workflow (e2e.yml) is "
     "true or false"),
    ("ci", {}, "The CI workflow (ci.yml) cannot be run by hand: it has no workflow_dispatch "
     "trigger (it runs on push or pull_request)"),
])
def test_a_dispatch_is_checked_before_anything_is_sent(
        sim: GithubSimulator, backend: GithubBackend, workflow: str,
        inputs: dict[str, str], words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        run(backend.dispatch_workflow(CHECKOUT, workflow, "main", inputs))
    assert words in str(caught.value)
    assert not any(r.method == "POST" for r in sim.request_log())


def test_a_dispatch_finds_its_run_and_follows_it(sim: GithubSimulator,
                                                 backend: GithubBackend) -> None:
    done = run(backend.dispatch_workflow(CHECKOUT, "e2e.yml", "main",
                                         {"suite": "full", "debug": "yes"}))
    assert done.inputs == {"suite": "full", "debug": "true"} and done.run is not None
    assert (done.run.event, done.run.head_branch, done.run.status) == (
        "workflow_dispatch", "main", "queued")
    assert done.run.html_url.endswith(f"/actions/runs/{done.run.id}")
    final = run(backend.wait_for_run(CHECKOUT, done.run.id, poll=10))
    assert final.done and final.succeeded


def test_without_run_details_the_run_is_found_in_the_list(sim: GithubSimulator,
                                                          backend: GithubBackend) -> None:
    run(backend.ping())  # learns opsbot's login, to tell its runs from others'
    backend.request_details = False  # a GitHub that answers 204 without the run
    done = run(backend.dispatch_workflow(CHECKOUT, "e2e", "main", {"suite": "smoke"}))
    newest = sim.runs(OWNER, "checkout-web")[0]
    assert done.run is not None and done.run.id == newest["id"]
    assert newest["event"] == "workflow_dispatch" and newest["actor"]["login"] == OPSBOT


def test_a_ref_github_does_not_have_is_refused(backend: GithubBackend) -> None:
    with pytest.raises(NotFound, match="no branch, tag or commit 'release/9'"):
        run(backend.dispatch_workflow(CHECKOUT, "e2e", "release/9", {"suite": "smoke"}))


# -- merging ----------------------------------------------------------------------------------


def test_merge_uses_the_head_the_person_saw(sim: GithubSimulator,
                                            backend: GithubBackend) -> None:
    preview = run(backend.merge_preview(CHECKOUT, 43, "squash"))
    assert (preview.method, preview.blockers, preview.status.approved_by) == (
        "squash", (), (ALICE,))
    assert preview.allowed_methods == ("merge", "squash", "rebase")
    merged = run(backend.merge(CHECKOUT, 43, sha=preview.head_sha, method="squash"))
    assert merged.head_sha == preview.head_sha and len(merged.merge_sha) == 40
    assert sim.pull(OWNER, "checkout-web", 43)["merged"] is True


def test_a_push_after_the_preview_stops_the_merge(sim: GithubSimulator,
                                                  backend: GithubBackend) -> None:
    preview = run(backend.merge_preview(CHECKOUT, 43))
    sim.push(OWNER, "checkout-web", 43)
    with pytest.raises(InvalidRequest) as caught:
        run(backend.merge(CHECKOUT, 43, sha=preview.head_sha))
    assert str(caught.value).startswith("New commits were pushed to #43 in acme/checkout-web "
                                        "after the preview, so GitHub did not merge it (409")
    assert "Nothing was merged" in str(caught.value)
    assert sim.pull(OWNER, "checkout-web", 43)["merged"] is False


def test_a_merge_github_refuses_is_told_in_its_words(backend: GithubBackend) -> None:
    preview = run(backend.merge_preview(CHECKOUT, REVIEW_PR))
    assert "check e2e failed" in preview.blockers
    with pytest.raises(InvalidRequest) as caught:
        run(backend.merge(CHECKOUT, REVIEW_PR, sha=preview.head_sha))
    assert str(caught.value) == ('GitHub would not merge #42 in acme/checkout-web: Required '
                                 'status check "e2e" is failing. (405). Nothing was merged.')
    conflicted = run(backend.merge_preview(CHECKOUT, 44))
    assert "it has merge conflicts with main" in conflicted.blockers
    with pytest.raises(InvalidRequest, match="Pull Request is not mergeable"):
        run(backend.merge(CHECKOUT, 44, sha=conflicted.head_sha))
    with pytest.raises(InvalidRequest, match="not a full commit SHA"):
        run(backend.merge(CHECKOUT, 43, sha="abc"))
    with pytest.raises(InvalidRequest, match="merge, squash or rebase, not 'octopus'"):
        run(backend.merge_preview(CHECKOUT, 43, "octopus"))


# -- refusals in words ----------------------------------------------------------------------


def test_bad_credentials_are_told_without_the_token(sim: GithubSimulator,
                                                    clock: ManualClock) -> None:
    token = "ghp_notTheRightToken0000000000000000000000"
    backend = backend_for({**sim.env(), "GITHUB_TOKEN": token}, clock)
    with pytest.raises(BackendAuthError) as caught:
        run(backend.ping())
    assert "refused opsbot's credentials (401): check GITHUB_TOKEN: it may be wrong, " \
           "expired or revoked" in str(caught.value)
    assert_ours(caught.value, token)


def test_a_missing_permission_and_a_validation_error_are_told(
        backend: GithubBackend) -> None:
    requester = backend._github.requester  # endpoints no method needs, for their refusals
    with pytest.raises(BackendAuthError) as caught:
        run(backend._gh(lambda: requester.requestJsonAndCheck(
            "GET", "/installation/repositories"), doing="list the installation's "
            "repositories", missing="gone", permission="Metadata: read"))
    assert str(caught.value) == (
        "GitHub does not let opsbot list the installation's repositories (403: Resource not "
        "accessible by personal access token); the token (or App) needs the permission "
        "Metadata: read. Ask a GitHub admin of the repository or organisation to grant it.")
    with pytest.raises(InvalidRequest) as refused:
        run(backend._gh(lambda: requester.requestJsonAndCheck(
            "GET", f"/repos/{CHECKOUT}/pulls", parameters={"state": "bogus"}),
            doing="list the pull requests", missing="gone"))
    assert str(refused.value) == ("GitHub refused to list the pull requests (422): Validation "
                                  "Failed (invalid).")


# -- rate limits ----------------------------------------------------------------------------


def test_a_spent_rate_limit_is_kept_locally_until_it_resets(
        sim: GithubSimulator, backend: GithubBackend, clock: ManualClock) -> None:
    reset = sim.exhaust_rate_limit()
    with pytest.raises(RateLimited) as caught:
        run(backend.pull_request(CHECKOUT, REVIEW_PR))
    assert "GitHub's rate limit for opsbot is used up until" in str(caught.value)
    assert "UTC (in 60 minutes)" in str(caught.value) and caught.value.retry_at == reset
    refused = len(sim.request_log())
    clock.advance(1800)
    for ask in (backend.pull_request(CHECKOUT, REVIEW_PR), backend.open_pull_requests(CHECKOUT),
                backend.merge(CHECKOUT, 43, sha="0" * 40)):
        with pytest.raises(RateLimited, match="in 30 minutes"):
            run(ask)
    assert len(sim.request_log()) == refused  # nothing sent while the limit is spent
    clock.advance(reset - clock() + 1)
    assert run(backend.pull_request(CHECKOUT, REVIEW_PR)).number == REVIEW_PR
    assert all(r.at >= reset for r in sim.request_log()[refused:])


def test_a_limit_that_lifts_within_seconds_is_waited_out_once(
        sim: GithubSimulator, backend: GithubBackend, clock: ManualClock) -> None:
    sim.secondary_limit(retry_after=3)
    before = clock()
    assert run(backend.open_pull_requests(CHECKOUT)).total == 4
    [refused, *later] = sim.request_log()
    assert refused.status == 403 and all(r.at >= refused.at + 3 for r in later)
    assert clock() - before >= 3


def test_a_secondary_limit_says_when_to_ask_again_and_holds_requests(
        sim: GithubSimulator, backend: GithubBackend, clock: ManualClock) -> None:
    sim.secondary_limit(retry_after=120, status=429)
    with pytest.raises(RateLimited) as caught:
        run(backend.open_pull_requests(CHECKOUT))
    assert "GitHub asked opsbot to slow down (a secondary rate limit) until" \
        in str(caught.value) and "UTC (in 2 minutes)" in str(caught.value)
    count = len(sim.request_log())
    clock.advance(60)
    with pytest.raises(RateLimited, match="in 60 seconds"):
        run(backend.open_pull_requests(CHECKOUT))
    assert len(sim.request_log()) == count
    clock.advance(61)
    assert run(backend.open_pull_requests(CHECKOUT)).total == 4


# -- down and slow ----------------------------------------------------------------------------


def test_a_github_that_is_down_is_told(clock: ManualClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = backend_for({"GITHUB_API_URL": f"http://127.0.0.1:{port}",
                           "GITHUB_TOKEN": "ghp_someToken123456"}, clock)
    with pytest.raises(BackendUnavailable) as caught:
        run(backend.ping())
    assert str(caught.value) == (f"Could not reach GitHub at http://127.0.0.1:{port}: the "
                                 "connection was refused. Is it up, and is GITHUB_API_URL "
                                 "right?")
    assert_ours(caught.value, "ghp_someToken123456")


def test_a_slow_github_times_out_and_a_lost_merge_answer_is_not_called_a_failure(
        sim: GithubSimulator, clock: ManualClock) -> None:
    backend = backend_for({**sim.env(), "GITHUB_TIMEOUT": "1"}, clock)
    sim.delay_next(1.5, path="/pulls/42")
    with pytest.raises(BackendUnavailable, match=r"did not answer within 1s; is it up\? "
                                                 r"\(GITHUB_TIMEOUT sets the limit.\)"):
        run(backend.pull_request(CHECKOUT, REVIEW_PR))
    sha = sim.pull(OWNER, "checkout-web", 43)["head"]["sha"]
    sim.delay_next(1.5, path="/pulls/43/merge")
    with pytest.raises(BackendError) as caught:
        run(backend.merge(CHECKOUT, 43, sha=sha))
    assert type(caught.value).__name__ == "OutcomeUnknown"
    assert "cannot tell whether it did" in str(caught.value)


def test_secrets_are_masked_in_reprs(sim: GithubSimulator, backend: GithubBackend) -> None:
    assert sim.token not in repr(backend) and "token='**********'" in repr(backend)
    assert repr(Secret(sim.token)) == "Secret('**********')"
