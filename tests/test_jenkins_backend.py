"""actions.backends.jenkins through the real python-jenkins against the Jenkins simulator,
and actions.backends._console on inline log snippets and the simulator's seeded red builds.

No test asserts a timing; the waits poll with generous deadlines.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from http.cookiejar import DefaultCookiePolicy
from typing import Any, TypeVar

import jenkins
import pytest

from actions.backends import _console
from actions.backends._console import NO_ERROR_SUMMARY, analyse_console
from actions.backends._jenkins import _backend as jenkins_backend
from actions.backends.jenkins import (
    Build,
    FailureReport,
    JenkinsBackend,
    JenkinsConfig,
    Job,
    QueueState,
)
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    ConfigError,
    InvalidRequest,
    NotFound,
    Secret,
)
from simulators.jenkins import JenkinsSimulator
from tests.conftest import wait_until

T = TypeVar("T")
DEPLOY = {"SERVICE": "payments", "VERSION": "2.4.1", "ENVIRONMENT": "prod"}


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one backend coroutine to completion (no pytest-asyncio here)."""
    return asyncio.run(coroutine)


@pytest.fixture
def sim() -> Iterator[JenkinsSimulator]:
    with JenkinsSimulator(queue_delay=0.05, build_seconds=0.3) as simulator:
        yield simulator


def backend_for(sim: JenkinsSimulator, *, token: str | None = None,
                timeout: float = 5.0) -> JenkinsBackend:
    return JenkinsBackend(JenkinsConfig(sim.url, sim.user, Secret(token or sim.token),
                                        timeout=timeout))


@pytest.fixture
def backend(sim: JenkinsSimulator) -> JenkinsBackend:
    return backend_for(sim)


def api_requests(sim: JenkinsSimulator) -> list[str]:
    """The JSON API requests the simulator answered, crumb requests left out."""
    return [r.target for r in sim.request_log()
            if "/api/json" in r.target and not r.target.startswith("/crumbIssuer")]


def finished(backend: JenkinsBackend, job: str, number: int) -> Build:
    """Poll until the build has finished (the simulator's builds take 0.3 s)."""
    deadline = time.monotonic() + 15
    while True:
        build = run(backend.build(job, number))
        if not build.building:
            return build
        assert time.monotonic() < deadline, f"{job} #{number} never finished"
        time.sleep(0.05)


def assert_translated(error: BaseException, token: str) -> None:
    """Ours, chained to the library's exception, and without the token."""
    assert isinstance(error, BackendError) and error.backend == "Jenkins"
    assert type(error).__module__ == "actions.errors"
    assert error.__cause__ is not None
    assert token not in str(error) and token not in repr(error)


# -- jobs ------------------------------------------------------------------------------------


def test_jobs_lists_every_job_through_folders_in_one_request(sim: JenkinsSimulator,
                                                             backend: JenkinsBackend) -> None:
    jobs = run(backend.jobs())
    by_name = {job.full_name: job for job in jobs}
    assert {"payments-ci", "deploy-payments", "platform/nightly-integration",
            "platform/db-migrations", "platform/infra/terraform-plan"} <= set(by_name)
    assert "platform" not in by_name and "platform/infra" not in by_name  # folders are not jobs
    assert api_requests(sim) == [api_requests(sim)[0]]  # one tree query for everything
    statuses = {name: by_name[name].status for name in
                ("payments-ci", "billing-ci", "search-ci", "checkout-ci", "notifications-ci",
                 "legacy-monolith-ci")}
    assert statuses == {"payments-ci": "success", "billing-ci": "failure",
                        "search-ci": "failure", "checkout-ci": "aborted",
                        "notifications-ci": "unstable", "legacy-monolith-ci": "disabled"}
    nightly = by_name["platform/nightly-integration"]
    assert (nightly.name, nightly.building, nightly.color) == ("nightly-integration", True,
                                                              "blue_anime")
    assert nightly.url.endswith("/job/platform/job/nightly-integration/")
    assert by_name["deploy-payments"].parameters == ("SERVICE", "VERSION", "ENVIRONMENT",
                                                     "OPSBOT_OPERATION")
    assert by_name["platform/infra/terraform-plan"].parameters == ()
    assert by_name["payments-ci"].last_build == sim.builds("payments-ci")[-1].number
    assert not any(job.building for name, job in by_name.items() if name != nightly.full_name)


def test_jobs_in_folders_deeper_than_one_request_reaches(sim: JenkinsSimulator,
                                                          backend: JenkinsBackend,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    everything = {job.full_name for job in run(backend.jobs())}
    monkeypatch.setattr(jenkins_backend, "_FOLDER_LEVELS", 1)
    before = len(api_requests(sim))
    assert {job.full_name for job in run(backend.jobs())} == everything
    assert len(api_requests(sim)) - before == 3  # top level, then platform/, then platform/infra/


def test_job_by_full_name_and_folders_are_refused(backend: JenkinsBackend) -> None:
    job = run(backend.job("platform/db-migrations"))
    assert isinstance(job, Job)
    assert (job.full_name, job.name, job.status) == ("platform/db-migrations", "db-migrations",
                                                     "success")
    assert job.parameters == ("SERVICE", "ENVIRONMENT", "DRY_RUN")
    assert run(backend.job("platform » db-migrations")) == job  # Jenkins' display form
    with pytest.raises(InvalidRequest, match=r"'platform' is a folder, not a job.*nightly"):
        run(backend.job("platform"))


@pytest.mark.parametrize(("color", "status", "building"), [
    ("blue", "success", False), ("red_anime", "failure", True), ("yellow", "unstable", False),
    ("aborted", "aborted", False), ("notbuilt", "not_built", False),
    ("disabled", "disabled", False), ("grey", "not_built", False),
])
def test_job_status_follows_the_jenkins_color(color: str, status: str, building: bool) -> None:
    job = Job("a", "a", "http://jenkins/job/a/", color, (), None)
    assert (job.status, job.building) == (status, building)


# -- builds ----------------------------------------------------------------------------------


def test_builds_have_parameters_and_who_started_them(sim: JenkinsSimulator,
                                                    backend: JenkinsBackend) -> None:
    builds = run(backend.builds("deploy-payments", limit=10))
    assert api_requests(sim) == [api_requests(sim)[0]]  # one request, parameters and causes in it
    numbers = [build.number for build in builds]
    assert numbers == sorted(numbers, reverse=True) and len(builds) == 6
    prod = next(build for build in builds if build.parameters["ENVIRONMENT"] == "prod")
    assert prod.parameters == {"SERVICE": "payments", "VERSION": "2.4.0", "ENVIRONMENT": "prod"}
    assert (prod.started_by, prod.result, prod.building) == ("alice", "SUCCESS", False)
    assert prod.started_at.tzinfo is not None and prod.started_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - prod.started_at - timedelta(hours=3)) < timedelta(minutes=5)
    assert prod.duration_s == 133.0  # 2m13s in the seed
    assert prod.url.endswith(f"/job/deploy-payments/{prod.number}/")
    assert [b.number for b in run(backend.builds("deploy-payments", limit=2))] == numbers[:2]
    by_scm = run(backend.builds("billing-ci", limit=3))[-1]
    assert by_scm.started_by == "Started by an SCM change"
    assert run(backend.builds("payments-ci", limit=0)) == []
    one = run(backend.build("deploy-payments", prod.number))
    assert one == prod


def test_last_build_permalinks(backend: JenkinsBackend) -> None:
    last = run(backend.last_build("search-ci"))
    assert last is not None and last.result == "FAILURE"
    good = run(backend.last_build("search-ci", "lastSuccessfulBuild"))
    assert good is not None and good.result == "SUCCESS" and good.number < last.number
    failed = run(backend.last_build("billing-ci", "lastFailedBuild"))
    assert failed is not None and failed.started_by == "dave"
    assert run(backend.last_build("checkout-ci", "lastFailedBuild")) is None  # aborted, not failed
    completed = run(backend.last_build("platform/nightly-integration", "lastCompletedBuild"))
    running = run(backend.last_build("platform/nightly-integration"))
    assert running is not None and completed is not None
    assert (running.building, running.result, running.started_by) == (True, None, "alice")
    assert running.duration_s > 0 and completed.number == running.number - 1
    with pytest.raises(ValueError, match="lastBuild"):
        run(backend.last_build("search-ci", "newest"))
    with pytest.raises(NotFound, match="There is no Jenkins job called 'serch-ci'"):
        run(backend.last_build("serch-ci"))


def test_start_with_parameters_queue_wait_and_outcome(sim: JenkinsSimulator,
                                                      backend: JenkinsBackend) -> None:
    sim.set_outcome("deploy-payments", "FAILURE")
    queue_id = run(backend.start("deploy-payments", DEPLOY))
    state = run(backend.queue_state(queue_id))
    assert isinstance(state, QueueState) and state.queue_id == queue_id and not state.cancelled
    build = run(backend.wait_for_build(queue_id, poll=0.02, timeout=15))
    assert (build.job, build.parameters, build.started_by) == ("deploy-payments", DEPLOY, "opsbot")
    assert run(backend.queue_state(queue_id)).build_number == build.number
    done = finished(backend, "deploy-payments", build.number)
    assert done.result == sim.build("deploy-payments", build.number).result == "FAILURE"
    report = run(backend.failure_report("deploy-payments", build.number))
    assert report.summary == "Error: UPGRADE FAILED: context deadline exceeded"
    assert report.number == build.number and report.stage is None


def test_start_without_parameters_uses_the_defaults(sim: JenkinsSimulator,
                                                    backend: JenkinsBackend) -> None:
    queue_id = run(backend.start("payments-ci"))
    build = run(backend.wait_for_build(queue_id, poll=0.02, timeout=15))
    assert build.parameters == {"BRANCH": "main"}
    assert finished(backend, "payments-ci", build.number).result == "SUCCESS"
    terraform = run(backend.wait_for_build(run(backend.start("platform/infra/terraform-plan")),
                                           poll=0.02, timeout=15))
    assert terraform.job == "platform/infra/terraform-plan" and terraform.parameters == {}
    with pytest.raises(InvalidRequest, match="needs a value for SERVICE and VERSION"):
        run(backend.start("deploy-payments"))  # a deploy never runs on guessed values


def test_start_refusals_say_what_to_fix(sim: JenkinsSimulator, backend: JenkinsBackend) -> None:
    # Checked against the job's definitions first: a real Jenkins's Oops! page says nothing.
    with pytest.raises(InvalidRequest, match="deploy-payments takes ENVIRONMENT = 'dev', "
                                             "'staging' or 'prod', not 'production'; nothing "
                                             "was started"):
        run(backend.start("deploy-payments", {**DEPLOY, "ENVIRONMENT": "production"}))
    with pytest.raises(InvalidRequest, match="not parameterized"):
        run(backend.start("platform/nightly-integration", {"BRANCH": "main"}))
    with pytest.raises(InvalidRequest, match="legacy-monolith-ci is disabled in Jenkins"):
        run(backend.start("legacy-monolith-ci"))
    with pytest.raises(NotFound, match=r"no Jenkins job called 'deploy-paymnts'.*deploy-payments"):
        run(backend.start("deploy-paymnts", DEPLOY))
    assert [b.number for b in sim.builds("deploy-payments")][-1] == 136  # nothing was started


def test_stop_a_running_build_aborts_it(sim: JenkinsSimulator, backend: JenkinsBackend) -> None:
    running = run(backend.last_build("platform/nightly-integration"))
    assert running is not None and running.building
    run(backend.stop("platform/nightly-integration", running.number))
    stopped = run(backend.build("platform/nightly-integration", running.number))
    assert (stopped.result, stopped.building) == ("ABORTED", False)
    report = run(backend.failure_report("platform/nightly-integration"))
    assert (report.number, report.result) == (running.number, "ABORTED")
    assert report.summary == "aborted by OpsBot"
    with pytest.raises(NotFound, match=r"platform/nightly-integration has no build #9999 "
                                       r"\(its last build is #90\)"):
        run(backend.stop("platform/nightly-integration", 9999))


PASSWORD = "correct horse battery staple"


@pytest.fixture
def password_sim() -> Iterator[JenkinsSimulator]:
    """A Jenkins where opsbot signs in with its user's password, not an API token."""
    with JenkinsSimulator(queue_delay=0.05, build_seconds=0.3, password=PASSWORD) as simulator:
        yield simulator


def posts(sim: JenkinsSimulator, part: str) -> list[int]:
    """The statuses of the POSTs whose target holds ``part``, oldest first."""
    return [r.status for r in sim.request_log() if r.method == "POST" and part in r.target]


def test_a_restart_between_two_starts_with_a_password_gets_a_fresh_crumb(
        password_sim: JenkinsSimulator) -> None:
    sim = password_sim
    backend = backend_for(sim, token=PASSWORD)
    first = run(backend.wait_for_build(run(backend.start("payments-ci", {"BRANCH": "one"})),
                                       poll=0.02, timeout=15))
    sim.restart()  # its web session, and the crumb python-jenkins holds, are gone
    second = run(backend.wait_for_build(run(backend.start("payments-ci", {"BRANCH": "two"})),
                                        poll=0.02, timeout=15))
    mine = [b.parameters["BRANCH"] for b in sim.builds("payments-ci") if b.user_id == sim.user]
    assert mine == ["one", "two"] and second.number == first.number + 1
    # The refused POST ran nothing; it was sent again once, with a new crumb.
    assert posts(sim, "payments-ci/buildWithParameters") == [201, 403, 201]
    assert {r.auth for r in sim.request_log() if r.method == "POST"} == {"password"}
    # A stop after another restart works the same way.
    running = run(backend.last_build("platform/nightly-integration"))
    assert running is not None and running.building
    sim.restart()
    run(backend.stop("platform/nightly-integration", running.number))
    assert posts(sim, f"/{running.number}/stop") == [403, 302]
    assert sim.build("platform/nightly-integration", running.number).result == "ABORTED"


def test_a_crumb_refused_again_is_said_clearly_and_starts_nothing(
        password_sim: JenkinsSimulator) -> None:
    sim = password_sim
    backend = backend_for(sim, token=PASSWORD)
    first = len(sim.builds("payments-ci"))
    run(backend.start("payments-ci", {"BRANCH": "one"}))
    # Its build leaves the queue in its own time: counted once it is there.
    wait_until(lambda: len(sim.builds("payments-ci")) > first, "the first build never started")
    # Something between opsbot and Jenkins drops the session cookie: no crumb can match.
    backend._server._session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    backend._server._session.cookies.clear()
    before = len(sim.builds("payments-ci"))
    with pytest.raises(BackendAuthError) as refused:
        run(backend.start("payments-ci", {"BRANCH": "two"}))
    message = str(refused.value)
    assert "refused opsbot's CSRF crumb twice" in message and "nothing was done" in message
    assert "No valid crumb was included in the request" in message
    assert "set JENKINS_TOKEN to an API token of opsbot" in message
    assert_translated(refused.value, PASSWORD)
    assert posts(sim, "payments-ci/buildWithParameters") == [201, 403, 403]  # one retry only
    assert len(sim.builds("payments-ci")) == before and sim.request_log()[-1].status != 201


def test_other_refusals_of_a_post_are_not_retried(sim: JenkinsSimulator,
                                                 backend: JenkinsBackend) -> None:
    sim.fail_next(403, path="payments-ci/buildWithParameters")
    with pytest.raises(BackendAuthError, match="may not start payments-ci"):
        run(backend.start("payments-ci", {"BRANCH": "main"}))
    assert posts(sim, "payments-ci/buildWithParameters") == [403]


def test_an_api_token_needs_no_fresh_crumb_after_a_restart(sim: JenkinsSimulator,
                                                           backend: JenkinsBackend) -> None:
    run(backend.start("payments-ci", {"BRANCH": "one"}))
    sim.restart()
    run(backend.start("payments-ci", {"BRANCH": "two"}))
    assert posts(sim, "payments-ci/buildWithParameters") == [201, 201]


def test_wait_for_a_cancelled_queue_item_fails() -> None:
    with JenkinsSimulator(queue_delay=30, build_seconds=1) as slow:
        backend = backend_for(slow)
        queue_id = run(backend.start("auth-ci", {"BRANCH": "main"}))
        state = run(backend.queue_state(queue_id))
        assert state.build_number is None and state.why and "quiet period" in state.why
        with pytest.raises(BackendUnavailable, match="had not started after 0.1s.*quiet period"):
            run(backend.wait_for_build(queue_id, poll=0.02, timeout=0.1))
        # cancelling is not part of the backend: someone does it in Jenkins
        jenkins.Jenkins(slow.url, username=slow.user, password=slow.token,
                        timeout=5).cancel_queue(queue_id)
        with pytest.raises(BackendError, match="was cancelled in Jenkins"):
            run(backend.wait_for_build(queue_id, poll=0.02, timeout=5))
        assert run(backend.queue_state(queue_id)).cancelled


# -- failure reports -------------------------------------------------------------------------


@pytest.mark.parametrize(("job", "result", "stage", "summary", "line"), [
    ("billing-ci", "FAILURE", "Build",
     "2 compile errors, first in InvoiceService.java:142: cannot find symbol",
     "src/main/java/com/acme/billing/invoice/InvoiceService.java:[142,27] cannot find symbol"),
    ("search-ci", "FAILURE", "Test", "tests failed: 1 failed, 211 passed",
     "FAILED tests/test_ranking.py::test_exact_sku_match_ranks_first - AssertionError: "
     "assert 'SKU-1042-B' == 'SKU-1042'"),
    ("inventory-ci", "FAILURE", "Build",
     "3 compile errors, first in reserve.go:88: undefined: ReservationTTL",
     "internal/reservations/reserve.go:88:15: undefined: ReservationTTL"),
    ("checkout-ci", "ABORTED", None, "timed out after 30 minutes",
     "Build timed out (after 30 minutes). Marking the build as aborted."),
    ("notifications-ci", "UNSTABLE", "Test", "tests failed: 1 failed, 59 passed",
     "FAILED tests/test_sms.py::test_sms_retry_backs_off_exponentially - "
     "assert [1, 2, 4, 9] == [1, 2, 4, 8]"),
])
def test_failure_report_of_the_last_failed_build(backend: JenkinsBackend, job: str, result: str,
                                                 stage: str | None, summary: str,
                                                 line: str) -> None:
    report = run(backend.failure_report(job))
    assert isinstance(report, FailureReport)
    assert (report.job, report.result, report.stage, report.summary) == (job, result, stage,
                                                                         summary)
    assert line in report.error_lines and 0 < len(report.error_lines) <= 8
    assert not any(text.startswith(("[Pipeline]", " > git", "[INFO]"))
                   for text in report.error_lines)
    assert report.url.endswith(f"/job/{job}/{report.number}/")


def test_failure_report_when_nothing_failed(backend: JenkinsBackend) -> None:
    with pytest.raises(NotFound, match=r"deploy-payments has no failed build.*#136, ended SUCCESS"):
        run(backend.failure_report("deploy-payments"))
    report = run(backend.failure_report("deploy-payments", 136))
    assert (report.result, report.summary, report.error_lines) == ("SUCCESS", "nothing failed", ())
    with pytest.raises(InvalidRequest, match="still running"):
        run(backend.failure_report("platform/nightly-integration", 90))
    with pytest.raises(NotFound, match="search-ci has no build #5"):
        run(backend.failure_report("search-ci", 5))


def test_console_is_the_whole_log(backend: JenkinsBackend) -> None:
    text = run(backend.console("inventory-ci", 320))
    assert "undefined: ReservationTTL" in text and text.endswith("Finished: FAILURE\n")
    with pytest.raises(NotFound, match="There is no Jenkins job called 'inventry-ci'"):
        run(backend.console("inventry-ci", 320))


# -- errors ----------------------------------------------------------------------------------


def test_unknown_job_is_not_found_with_suggestions(sim: JenkinsSimulator,
                                                   backend: JenkinsBackend) -> None:
    with pytest.raises(NotFound) as caught:
        run(backend.job("paymnts"))
    assert str(caught.value).startswith("There is no Jenkins job called 'paymnts'.")
    assert "Did you mean 'payments-ci' or 'deploy-payments'?" in str(caught.value)
    assert_translated(caught.value, sim.token)
    with pytest.raises(NotFound, match=r"There is no Jenkins job called 'zzz'\.$"):
        run(backend.builds("zzz"))


def test_wrong_token_is_an_auth_error(sim: JenkinsSimulator) -> None:
    wrong = "0123456789abcdef0123456789abcdef99"
    backend = backend_for(sim, token=wrong)
    for call in (backend.ping(), backend.jobs(), backend.start("deploy-payments", DEPLOY)):
        with pytest.raises(BackendAuthError, match=r"refused opsbot's credentials \(401\): "
                                                   "check JENKINS_USER and JENKINS_TOKEN"):
            run(call)
    with pytest.raises(BackendAuthError) as caught:
        run(backend.build("payments-ci", 409))
    assert_translated(caught.value, wrong)
    assert_translated(caught.value, sim.token)


def test_server_errors_are_unavailable(sim: JenkinsSimulator, backend: JenkinsBackend) -> None:
    assert run(backend.ping()) == "2.452.3"
    sim.fail_next(500)
    with pytest.raises(BackendUnavailable,
                       match=r"internal error \(500, Jenkins log ID [0-9a-f-]{36}\)") as caught:
        run(backend.jobs())
    assert_translated(caught.value, sim.token)
    # python-jenkins reports a 503 on a build as "does not exist"; it is not a missing build
    sim.fail_next(503, path="/job/search-ci/")
    with pytest.raises(BackendUnavailable, match="answered 503") as unavailable:
        run(backend.build("search-ci", 1293))
    assert_translated(unavailable.value, sim.token)
    assert run(backend.build("search-ci", 1293)).result == "FAILURE"  # and then it recovers


def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again before anyone listens on it
    backend = JenkinsBackend(JenkinsConfig(f"http://127.0.0.1:{port}", "opsbot",
                                           Secret("s3cr3t-token-value"), timeout=2))
    with pytest.raises(BackendUnavailable, match=r"Could not reach Jenkins at "
                                                 rf"http://127\.0\.0\.1:{port}/: the connection "
                                                 "was refused") as caught:
        run(backend.ping())
    assert_translated(caught.value, "s3cr3t-token-value")


def test_slow_answers_time_out(sim: JenkinsSimulator) -> None:
    run(backend_for(sim).ping())
    backend = backend_for(sim, timeout=2)
    sim.delay_next(8)  # well past the client's timeout: only the timeout can end the call
    with pytest.raises(BackendUnavailable, match=r"did not answer within 2s; is it up\?") \
            as caught:
        run(backend.job("payments-ci"))
    assert_translated(caught.value, sim.token)


def test_the_token_never_shows(sim: JenkinsSimulator) -> None:
    config = JenkinsConfig(sim.url, sim.user, Secret(sim.token))
    backend = JenkinsBackend(config)
    for text in (repr(config), str(config), repr(backend)):
        assert sim.token not in text
    assert "**********" in repr(config)
    plain = JenkinsConfig(sim.url, sim.user, sim.token)  # type: ignore[arg-type]
    assert isinstance(plain.token, Secret) and sim.token not in repr(plain)


# -- configuration ---------------------------------------------------------------------------


def test_config_from_env() -> None:
    assert JenkinsConfig.from_env({}) is None
    assert JenkinsConfig.from_env({"JENKINS_URL": "  ", "JENKINS_USER": "opsbot"}) is None
    config = JenkinsConfig.from_env({"JENKINS_URL": "https://ci.example.com/jenkins",
                                     "JENKINS_USER": "opsbot", "JENKINS_TOKEN": "tok-123456",
                                     "JENKINS_TIMEOUT": "2.5"})
    assert config == JenkinsConfig("https://ci.example.com/jenkins/", "opsbot",
                                   Secret("tok-123456"), 2.5)
    assert "tok-123456" not in repr(config)
    default = JenkinsConfig.from_env({"JENKINS_URL": "http://jenkins:8080", "JENKINS_USER": "u",
                                      "JENKINS_TOKEN": "t"})
    assert default is not None and default.timeout == 10.0


@pytest.mark.parametrize(("env", "message"), [
    ({"JENKINS_URL": "http://j/", "JENKINS_USER": "opsbot"}, r"JENKINS_TOKEN is not"),
    ({"JENKINS_URL": "http://j/", "JENKINS_TOKEN": "t"}, r"JENKINS_USER is not"),
    ({"JENKINS_URL": "http://j/"}, r"JENKINS_USER and JENKINS_TOKEN are not"),
    ({"JENKINS_URL": "jenkins.example.com", "JENKINS_USER": "u", "JENKINS_TOKEN": "t"},
     r"JENKINS_URL must be Jenkins' http\(s\) address"),
    ({"JENKINS_URL": "ftp://jenkins/", "JENKINS_USER": "u", "JENKINS_TOKEN": "t"},
     r"JENKINS_URL must be"),
    ({"JENKINS_URL": "http://jenkins:80x/", "JENKINS_USER": "u", "JENKINS_TOKEN": "t"},
     r"JENKINS_URL is not a valid URL"),
    ({"JENKINS_URL": "http://j/", "JENKINS_USER": "u", "JENKINS_TOKEN": "t",
      "JENKINS_TIMEOUT": "soon"}, r"JENKINS_TIMEOUT must be a number of seconds"),
    ({"JENKINS_URL": "http://j/", "JENKINS_USER": "u", "JENKINS_TOKEN": "t",
      "JENKINS_TIMEOUT": "0"}, r"JENKINS_TIMEOUT"),
    ({"JENKINS_URL": "http://j/", "JENKINS_USER": "u", "JENKINS_TOKEN": "t",
      "JENKINS_TIMEOUT": "nan"}, r"JENKINS_TIMEOUT"),
])
def test_config_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        JenkinsConfig.from_env(env)


def test_config_never_echoes_a_password_in_the_url() -> None:
    with pytest.raises(ConfigError) as caught:
        JenkinsConfig.from_env({"JENKINS_URL": "https://opsbot:hunter2@ci.example.com/",
                                "JENKINS_USER": "opsbot", "JENKINS_TOKEN": "t"})
    assert "hunter2" not in str(caught.value) and "JENKINS_TOKEN" in str(caught.value)


# -- console analysis: real-world snippets ---------------------------------------------------
# A backslash at the end of a line inside these logs continues that log line on the next one
# (Python drops the backslash and the newline), so the lines Jenkins printed stay whole.

PIPELINE_PYTEST = """\
Started by user Alice Chen
\x1b[8mha:////4AAAAKR+LCAAAAAAAAP9b\x1b[0m[Pipeline] Start of Pipeline
[Pipeline] node
Running on agent-3 in /home/jenkins/workspace/search-ci
[Pipeline] {
[Pipeline] stage
[Pipeline] { (Declarative: Checkout SCM)
[Pipeline] checkout
[2024-05-02T10:11:12.345Z] The recommended git tool is: NONE
[2024-05-02T10:11:12.350Z]  > git rev-parse --resolve-git-dir \
/home/jenkins/workspace/search-ci/.git # timeout=10
[2024-05-02T10:11:13.001Z] Checking out Revision 4f1c0e9a7d2b (refs/remotes/origin/main)
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Test)
[Pipeline] sh
[2024-05-02T10:11:14.000Z] + python -m pytest
[2024-05-02T10:11:55.000Z] \x1b[31mFAILED\x1b[0m tests/test_api.py::test_create_order - \
assert 500 == 201
[2024-05-02T10:11:55.001Z] FAILED tests/test_api.py::test_refund[partial] - KeyError: 'amount'
[2024-05-02T10:11:55.002Z] \x1b[31m======================== 2 failed, 318 passed in 41.2s \
=========================\x1b[0m
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Deploy)
Stage "Deploy" skipped due to earlier failure(s)
[Pipeline] }
[Pipeline] // stage
[Pipeline] stage
[Pipeline] { (Declarative: Post Actions)
[Pipeline] junit
[2024-05-02T10:11:56.000Z] Recording test results
[Pipeline] }
[Pipeline] // stage
[Pipeline] }
[Pipeline] // node
[Pipeline] End of Pipeline
ERROR: script returned exit code 1
Finished: FAILURE
"""


def test_pytest_in_a_pipeline_with_timestamps_and_colours() -> None:
    stage, lines, summary = analyse_console(PIPELINE_PYTEST)
    assert (stage, summary) == ("Test", "tests failed: 2 failed, 318 passed")
    assert lines == ("FAILED tests/test_api.py::test_create_order - assert 500 == 201",
                     "FAILED tests/test_api.py::test_refund[partial] - KeyError: 'amount'",
                     "======================== 2 failed, 318 passed in 41.2s "
                     "=========================")


def test_only_an_exit_code_points_at_the_last_stage_that_ran() -> None:
    log = PIPELINE_PYTEST.replace("FAILED", "PASSED").replace("2 failed, ", "")
    log = log.replace("+ python -m pytest", "+ ./integration.sh\nwaiting for db... gave up")
    stage, lines, summary = analyse_console(log)
    assert summary == "a shell step failed with exit code 1"
    assert stage == "Test"  # not the skipped Deploy, not the post actions
    assert lines[-1] == "ERROR: script returned exit code 1"
    assert "waiting for db... gave up" in lines


def test_maven_javac_error_shortens_the_workspace_path() -> None:
    log = """\
[INFO] --- compiler:3.13.0:compile (default-compile) @ payments-service ---
[INFO] -------------------------------------------------------------
[ERROR] COMPILATION ERROR :
[INFO] -------------------------------------------------------------
[ERROR] /var/jenkins_home/workspace/payments-ci@2/src/main/java/com/acme/PaymentService.java:\
[42,17] cannot find symbol
  symbol:   variable ledger
  location: class com.acme.PaymentService
[INFO] 1 error
[INFO] BUILD FAILURE
[ERROR] Failed to execute goal org.apache.maven.plugins:maven-compiler-plugin:3.13.0:compile \
(default-compile) on project payments-service: Compilation failure
[ERROR] /var/jenkins_home/workspace/payments-ci@2/src/main/java/com/acme/PaymentService.java:\
[42,17] cannot find symbol
[ERROR] -> [Help 1]
[ERROR]
[ERROR] Re-run Maven using the -X switch to enable full debug logging.
Build step 'Invoke top-level Maven targets' marked build as failure
Finished: FAILURE
"""
    stage, lines, summary = analyse_console(log)
    assert stage is None
    assert summary == "compile error in PaymentService.java:42: cannot find symbol"
    assert lines == ("src/main/java/com/acme/PaymentService.java:[42,17] cannot find symbol",
                     "symbol: variable ledger")


def test_go_build_and_go_test_failures() -> None:
    build = "+ go build ./...\n# example.com/shop/cart\n./cart.go:12:3: undefined: Foo\n"
    assert analyse_console(build)[2] == "compile error in cart.go:12: undefined: Foo"
    test = """\
+ go test ./...
=== RUN   TestReserve
--- FAIL: TestReserve (0.00s)
    reserve_test.go:42: got 2 reservations, want 1
FAIL
FAIL\texample.com/shop/reservations\t0.012s
ok  \texample.com/shop/api\t0.101s
"""
    _, lines, summary = analyse_console(test)
    assert summary == "tests failed: TestReserve"
    assert "reserve_test.go:42: got 2 reservations, want 1" in lines


def test_npm_and_jest() -> None:
    log = """\
> checkout@5.13.0 test
> jest --ci
PASS src/promo/promo.test.ts
FAIL src/cart/cart.test.ts
  ● Cart › adds an item twice

    expect(received).toBe(expected) // Object.is equality

Test Suites: 1 failed, 37 passed, 38 total
Tests:       1 failed, 211 passed, 212 total
npm ERR! code ELIFECYCLE
npm ERR! checkout@5.13.0 test: `jest --ci`
npm ERR! Exit status 1
Build step 'Execute shell' marked build as failure
"""
    _, lines, summary = analyse_console(log)
    assert summary == "tests failed: 1 failed, 211 passed"
    assert lines == ("FAIL src/cart/cart.test.ts", "● Cart › adds an item twice",
                     "Tests: 1 failed, 211 passed, 212 total")


def test_pipeline_timeout_step() -> None:
    log = """\
[Pipeline] timeout
Timeout set to expire in 30 min
[Pipeline] {
[Pipeline] stage
[Pipeline] { (Deploy)
[Pipeline] sh
+ kubectl rollout status deployment/checkout
Waiting for deployment "checkout" rollout to finish: 1 of 3 updated replicas are available...
Cancelling nested steps due to timeout
Sending interrupt signal to process
[Pipeline] }
[Pipeline] // stage
[Pipeline] }
[Pipeline] // timeout
Timeout has been exceeded
Finished: ABORTED
"""
    stage, lines, summary = analyse_console(log)
    assert (stage, summary) == ("Deploy", "timed out after 30 min")
    assert lines == ('Waiting for deployment "checkout" rollout to finish: 1 of 3 updated '
                     'replicas are available...', "Cancelling nested steps due to timeout")


def test_generic_errors_and_exceptions() -> None:
    log = """\
+ ./deploy.sh
Deploying...
java.lang.NullPointerException: Cannot invoke "String.length()" because "name" is null
\tat com.acme.Deploy.main(Deploy.java:12)
error: deployment "checkout" exceeded its progress deadline
"""
    stage, lines, summary = analyse_console(log)
    assert stage is None
    assert summary.startswith("java.lang.NullPointerException: Cannot invoke")
    assert lines == ('java.lang.NullPointerException: Cannot invoke "String.length()" because '
                     '"name" is null',
                     'error: deployment "checkout" exceeded its progress deadline')


def test_a_log_without_a_recognisable_error() -> None:
    assert analyse_console("") == (None, (), NO_ERROR_SUMMARY)
    stage, lines, summary = analyse_console("Started by timer\nhello\nstill here\nFinished: "
                                            "FAILURE\n")
    assert (stage, summary) == (None, NO_ERROR_SUMMARY)
    assert lines == ("hello", "still here")


def test_error_lines_are_capped() -> None:
    failures = "\n".join(f"FAILED tests/test_x.py::test_{n} - assert False" for n in range(30))
    _, lines, summary = analyse_console(failures + "\n30 failed, 2 passed in 1.0s\n")
    assert summary == "tests failed: 30 failed, 2 passed"
    assert len(lines) == 8 and lines[-1] == "30 failed, 2 passed in 1.0s"


def test_a_long_log_is_read_from_its_end_but_keeps_its_stage(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_console, "_MAX_LINES", 4)
    log = ("[Pipeline] { (Build)\nerror: an old, irrelevant error\n[Pipeline] { (Test)\n"
           + "ok\n" * 10 + "FAILED tests/test_a.py::test_b - assert 1 == 2\n"
           "1 failed, 9 passed in 0.5s\n")
    stage, lines, summary = analyse_console(log)
    assert (stage, summary) == ("Test", "tests failed: 1 failed, 9 passed")
    assert "error: an old, irrelevant error" not in lines


@pytest.mark.parametrize(("job", "stage", "summary"), [
    ("billing-ci", "Build", "2 compile errors, first in InvoiceService.java:142"),
    ("search-ci", "Test", "tests failed: 1 failed, 211 passed"),
    ("inventory-ci", "Build", "3 compile errors, first in reserve.go:88"),
    ("checkout-ci", None, "timed out after 30 minutes"),
    ("payments-ci", "Build", "tests failed: 1 failed, 209 passed"),
    ("deploy-checkout", None, "Error: UPGRADE FAILED: context deadline exceeded"),
    ("platform/nightly-integration", "Integration suite", "tests failed: 1 failed, 1 passed"),
    ("legacy-monolith-ci", None, "the build step 'Execute shell' failed"),
])
def test_seeded_red_builds(job: str, stage: str | None, summary: str) -> None:
    simulator = JenkinsSimulator()  # not started: only its seeded history is read
    red = [b for b in simulator.builds(job) if b.result not in (None, "SUCCESS")]
    found_stage, lines, found_summary = analyse_console(red[-1].console)
    assert found_stage == stage and found_summary.startswith(summary)
    assert 0 < len(lines) <= 8
