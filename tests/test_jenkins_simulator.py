"""The Jenkins simulator, through the real python-jenkins client over real HTTP.

Most tests drive a manual clock, so queue and build progress is deterministic and
nothing sleeps; a few use the wall clock with tiny delays to prove it also works
unattended.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jenkins
import pytest
import requests

from simulators.jenkins import JenkinsSimulator, SeedError

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = {"SERVICE": "payments", "VERSION": "2.4.1", "ENVIRONMENT": "prod"}


class ManualClock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[JenkinsSimulator]:
    """Queue: 5 s quiet period; builds: 60 s; time moves with clock.advance()."""
    with JenkinsSimulator(queue_delay=5, build_seconds=60, clock=clock) as simulator:
        yield simulator


@pytest.fixture
def server(sim: JenkinsSimulator) -> jenkins.Jenkins:
    return jenkins.Jenkins(sim.url, username=sim.user, password=sim.token, timeout=5)


def start_build(server: jenkins.Jenkins, clock: ManualClock, job: str,
                parameters: dict[str, str] | None = None) -> int:
    """Trigger ``job``, let its quiet period pass, and return the build number."""
    queue_id = server.build_job(job, parameters)
    clock.advance(5)
    item = server.get_queue_item(queue_id)
    assert item["_class"] == "hudson.model.Queue$LeftItem"
    return int(item["executable"]["number"])


# -- identity and auth -------------------------------------------------------------------


def test_version_and_whoami(sim: JenkinsSimulator, server: jenkins.Jenkins) -> None:
    assert server.get_version() == sim.version == "2.452.3"
    me = server.get_whoami()
    assert (me["id"], me["fullName"]) == ("opsbot", "OpsBot")


def test_wrong_token_gets_401_and_anonymous_gets_403(sim: JenkinsSimulator) -> None:
    wrong = jenkins.Jenkins(sim.url, username=sim.user, password="not-the-token", timeout=5)
    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]"):
        wrong.get_whoami()
    with pytest.raises(jenkins.JenkinsException, match=r"\[401\]"):
        wrong.build_job("deploy-payments", DEPLOY)
    anonymous = jenkins.Jenkins(sim.url, timeout=5)
    with pytest.raises(jenkins.JenkinsException, match=r"\[403\]"):
        anonymous.get_job_info("payments-ci")
    assert anonymous.get_version() == sim.version  # "/" answers anyone
    assert sim.builds("deploy-payments")[-1].parameters["VERSION"] == "2.4.1"  # seeded, untouched
    raw = requests.get(f"{sim.url}me/api/json", auth=("opsbot", "nope"), timeout=5)
    assert raw.status_code == 401
    assert "Invalid password/token for user: opsbot" in raw.text
    assert raw.headers["X-Jenkins"] == sim.version


def test_crumb_is_fetched_once_sent_after_and_checked(sim: JenkinsSimulator,
                                                      server: jenkins.Jenkins) -> None:
    server.get_whoami()
    server.build_job("deploy-payments", DEPLOY)
    log = [r for r in sim.request_log() if r.target != "/"]
    assert log[0].target == "/crumbIssuer/api/json" and log[0].crumb is None
    crumbs = {r.crumb for r in log[1:]}
    assert len(crumbs) == 1 and None not in crumbs  # every later request carries it, GETs too
    assert [r.status for r in log if r.method == "POST"] == [201]
    assert {r.auth for r in log} == {"token"}
    # An API-token POST passes the crumb filter whatever crumb it carries (ApiCrumbExclusion) ...
    url = f"{sim.url}job/deploy-payments/buildWithParameters?VERSION=1"
    auth = (sim.user, sim.token)
    assert requests.post(url, auth=auth, timeout=5).status_code == 201
    assert requests.post(url, auth=auth, headers={"Jenkins-Crumb": "forged"},
                         timeout=5).status_code == 201
    # ... and an anonymous POST without one gets Jenkins' crumb error.
    refused = requests.post(url, timeout=5)
    assert refused.status_code == 403 and "No valid crumb was included in the request" in \
        refused.text


def test_a_password_login_needs_the_crumb_of_its_live_web_session(clock: ManualClock) -> None:
    with JenkinsSimulator(queue_delay=5, build_seconds=60, clock=clock,
                          password="correct horse") as sim:
        def url(branch: str) -> str:
            return f"{sim.url}job/payments-ci/buildWithParameters?BRANCH={branch}"

        login = requests.Session()
        login.auth = (sim.user, "correct horse")
        assert login.post(url("none"), timeout=5).status_code == 403  # no crumb at all
        issued = login.get(f"{sim.url}crumbIssuer/api/json", timeout=5)
        crumb = {"Jenkins-Crumb": issued.json()["crumb"]}
        assert issued.cookies  # the crumb issuer opened a web session (JSESSIONID)
        assert login.post(url("a"), headers=crumb, timeout=5).status_code == 201
        assert sim.request_log()[-1].auth == "password"
        # The same crumb without its session is refused ...
        elsewhere = requests.post(url("b"), auth=login.auth, headers=crumb, timeout=5)
        assert elsewhere.status_code == 403
        assert "No valid crumb was included in the request" in elsewhere.text
        # ... and so is it in its own session once Jenkins has restarted.
        sim.restart()
        stale = login.post(url("c"), headers=crumb, timeout=5)
        assert stale.status_code == 403 and "No valid crumb" in stale.text
        assert stale.headers["X-Jenkins-Session"] != issued.headers["X-Jenkins-Session"]
        # A new crumb, in a new session (the stale cookie names none), works again.
        fresh = login.get(f"{sim.url}crumbIssuer/api/json", timeout=5)
        assert fresh.cookies and fresh.json()["crumb"] != crumb["Jenkins-Crumb"]
        assert login.post(url("d"), headers={"Jenkins-Crumb": fresh.json()["crumb"]},
                          timeout=5).status_code == 201
        # The API token needs none of this, stale crumb or not.
        token = requests.post(url("e"), auth=(sim.user, sim.token), headers=crumb, timeout=5)
        assert token.status_code == 201 and sim.request_log()[-1].auth == "token"
        clock.advance(200)  # payments-ci runs one build at a time: 60 s each
        branches = [b.parameters["BRANCH"] for b in sim.builds("payments-ci")
                    if b.user_id == sim.user]
        assert branches == ["a", "d", "e"]  # a refused POST started nothing


def test_python_jenkins_with_a_password_never_recovers_from_a_restart(
        clock: ManualClock) -> None:
    """Why opsbot refreshes the crumb itself: python-jenkins fetches it once per client."""
    with JenkinsSimulator(queue_delay=5, build_seconds=60, clock=clock,
                          password="correct horse") as sim:
        client = jenkins.Jenkins(sim.url, username=sim.user, password="correct horse",
                                 timeout=5)
        client.build_job("payments-ci", {"BRANCH": "before"})
        sim.restart()
        with pytest.raises(jenkins.JenkinsException, match=r"\[403\][\s\S]*No valid crumb"):
            client.build_job("payments-ci", {"BRANCH": "after"})
        client.crumb = None  # what opsbot's backend does on that 403: a new crumb, a new session
        client.build_job("payments-ci", {"BRANCH": "after"})
        clock.advance(200)
        assert [b.parameters["BRANCH"] for b in sim.builds("payments-ci")
                if b.user_id == sim.user] == ["before", "after"]


# -- jobs and folders ----------------------------------------------------------------------


def test_lists_jobs_with_colors_and_folders(server: jenkins.Jenkins) -> None:
    everything = {job["fullname"]: job for job in server.get_all_jobs()}
    assert {"payments-ci", "deploy-payments", "platform/nightly-integration",
            "platform/infra/terraform-plan"} <= set(everything)
    assert len([name for name in everything if name.startswith("deploy-")]) >= 5
    assert everything["payments-ci"]["color"] == "blue"
    assert {everything[name]["color"] for name in ("billing-ci", "search-ci", "inventory-ci")} \
        == {"red"}
    assert everything["checkout-ci"]["color"] == "aborted"
    assert everything["platform/nightly-integration"]["color"] == "blue_anime"
    assert "color" not in everything["platform"]  # Jenkins gives folders no color
    top_level = {job["fullname"] for job in server.get_jobs()}
    assert "platform" in top_level and "platform/nightly-integration" not in top_level
    plain = server.get_info()["jobs"]  # no tree: summaries only, nothing nested
    assert all("jobs" not in job for job in plain)
    assert server.get_info(query="?tree=jobs[name]")["jobs"][0].keys() == {"_class", "name"}


def test_job_info_parameters_and_history(clock: ManualClock, server: jenkins.Jenkins) -> None:
    info = server.get_job_info("deploy-payments")
    assert info["_class"] == "hudson.model.FreeStyleProject"
    assert info["color"] == "blue" and info["nextBuildNumber"] == info["lastBuild"]["number"] + 1
    definitions = {d["name"]: d for d in info["property"][0]["parameterDefinitions"]}
    assert definitions["ENVIRONMENT"]["choices"] == ["dev", "staging", "prod"]
    assert set(definitions) == {"SERVICE", "VERSION", "ENVIRONMENT", "OPSBOT_OPERATION"}
    # payments prod runs 2.4.0, deployed by alice about three hours ago
    prod = [server.get_build_info("deploy-payments", b["number"]) for b in info["builds"]]
    prod = [b for b in prod if {"name": "ENVIRONMENT", "value": "prod"} in
            [{"name": p["name"], "value": p["value"]} for p in b["actions"][0]["parameters"]]]
    latest = prod[0]
    values = {p["name"]: p["value"] for p in latest["actions"][0]["parameters"]}
    cause = latest["actions"][1]["causes"][0]
    assert values["VERSION"] == "2.4.0" and latest["result"] == "SUCCESS"
    assert (cause["userId"], cause["userName"]) == ("alice", "Alice Chen")
    assert abs(clock.now - latest["timestamp"] / 1000 - 3 * 3600) < 5
    assert latest["actions"][0]["_class"] == "hudson.model.ParametersAction"
    folder_job = server.get_job_info("platform/nightly-integration")
    assert folder_job["fullName"] == "platform/nightly-integration"
    assert folder_job["lastBuild"]["url"].endswith("/job/platform/job/nightly-integration/90/")
    assert server.get_job_name("platform/db-migrations") == "db-migrations"
    assert server.job_exists("platform/infra/terraform-plan")
    assert not server.job_exists("platform/no-such-job")


def test_seeded_red_builds_fail_like_real_ones(server: jenkins.Jenkins) -> None:
    javac = server.get_build_console_output("billing-ci", "lastFailedBuild")
    assert "COMPILATION ERROR" in javac and "cannot find symbol" in javac
    go = server.get_build_console_output("inventory-ci", "lastBuild")
    assert "undefined: ReservationTTL" in go and go.endswith("Finished: FAILURE\n")
    pytest_log = server.get_build_console_output("search-ci", "lastBuild")
    assert "AssertionError: assert 'SKU-1042-B' == 'SKU-1042'" in pytest_log
    junit = server.get_build_console_output("payments-ci", "lastFailedBuild")
    assert "\tat com.acme.payments.refund.RefundServiceTest.refundIsIdempotent" in junit
    timeout = server.get_build_console_output("checkout-ci", "lastBuild")
    assert "Build timed out (after 30 minutes). Marking the build as aborted." in timeout
    assert server.get_build_info("checkout-ci", "lastBuild")["result"] == "ABORTED"


def test_unknown_jobs_builds_and_queue_items(server: jenkins.Jenkins) -> None:
    with pytest.raises(jenkins.NotFoundException):
        server.build_job("no-such-job", {"A": "1"})
    with pytest.raises(jenkins.JenkinsException, match=r"job\[nope\] does not exist"):
        server.get_job_info("nope")
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        server.get_build_info("payments-ci", 99999)
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        server.get_build_console_output("platform/nope", 1)
    with pytest.raises(jenkins.JenkinsException, match=r"queue number\[1\] does not exist"):
        server.get_queue_item(1)
    with pytest.raises(jenkins.NotFoundException):
        server.stop_build("payments-ci", 99999)


# -- builds --------------------------------------------------------------------------------


def test_build_with_parameters_goes_queue_to_success(sim: JenkinsSimulator, clock: ManualClock,
                                                     server: jenkins.Jenkins) -> None:
    expected = server.get_job_info("deploy-payments")["nextBuildNumber"]
    # OPSBOT_OPERATION is declared by the deploy jobs, so Jenkins keeps it in the build.
    sent = {**DEPLOY, "OPSBOT_OPERATION": "op-0123456789ab"}
    queue_id = server.build_job("deploy-payments", sent)
    waiting = server.get_queue_item(queue_id)
    assert waiting["_class"] == "hudson.model.Queue$WaitingItem"
    assert waiting["why"].startswith("In the quiet period")
    assert server.get_job_info("deploy-payments")["inQueue"] is True
    clock.advance(5)
    left = server.get_queue_item(queue_id)
    assert left["executable"]["number"] == expected
    assert left["executable"]["url"].endswith(f"/job/deploy-payments/{expected}/")
    running = server.get_build_info("deploy-payments", expected)
    assert running["building"] is True and running["result"] is None
    assert server.get_job_info("deploy-payments")["color"] == "blue_anime"
    clock.advance(60)
    done = server.get_build_info("deploy-payments", expected)
    assert (done["building"], done["result"], done["duration"]) == (False, "SUCCESS", 60000)
    assert done["queueId"] == queue_id
    parameters = {p["name"]: p["value"] for p in done["actions"][0]["parameters"]}
    assert parameters == sent
    assert done["actions"][1]["causes"][0]["userId"] == "opsbot"
    snapshot = sim.builds("deploy-payments")[-1]
    assert (snapshot.number, snapshot.result, snapshot.parameters) == (expected, "SUCCESS", sent)
    info = server.get_job_info("deploy-payments")
    assert info["lastSuccessfulBuild"]["number"] == info["lastCompletedBuild"]["number"] == expected


def test_forced_failure_has_a_failing_console(sim: JenkinsSimulator, clock: ManualClock,
                                              server: jenkins.Jenkins) -> None:
    sim.set_outcome("payments-ci", "FAILURE")
    number = start_build(server, clock, "payments-ci", {"BRANCH": "main"})
    clock.advance(60)
    assert server.get_build_info("payments-ci", number)["result"] == "FAILURE"
    console = server.get_build_console_output("payments-ci", number)
    assert console.startswith("Started by user OpsBot\n")
    assert "There are test failures" in console and console.endswith("Finished: FAILURE\n")
    info = server.get_job_info("payments-ci")
    assert info["color"] == "red" and info["lastFailedBuild"]["number"] == number
    # the forced outcome was used up: the next build succeeds again
    again = start_build(server, clock, "payments-ci", {"BRANCH": "main"})
    clock.advance(60)
    assert server.get_build_info("payments-ci", again)["result"] == "SUCCESS"


def test_console_grows_while_running(clock: ManualClock, server: jenkins.Jenkins) -> None:
    number = start_build(server, clock, "deploy-search",
                         {"SERVICE": "search", "VERSION": "1.10.0", "ENVIRONMENT": "prod"})
    early = server.get_build_console_output("deploy-search", number)
    clock.advance(30)
    middle = server.get_build_console_output("deploy-search", number)
    clock.advance(30)
    final = server.get_build_console_output("deploy-search", number)
    assert early.startswith("Started by user OpsBot") and "Finished:" not in middle
    assert len(early) < len(middle) < len(final) and final.startswith(middle)
    assert "==> search 1.10.0 is live in prod" in final and final.endswith("Finished: SUCCESS\n")


def test_stop_build_aborts_it(sim: JenkinsSimulator, clock: ManualClock,
                              server: jenkins.Jenkins) -> None:
    number = start_build(server, clock, "checkout-ci", {"BRANCH": "main"})
    clock.advance(10)
    server.stop_build("checkout-ci", number)
    clock.advance(120)
    build = server.get_build_info("checkout-ci", number)
    assert (build["result"], build["building"], build["duration"]) == ("ABORTED", False, 10000)
    console = server.get_build_console_output("checkout-ci", number)
    assert console.endswith("Build was aborted\nAborted by OpsBot\nFinished: ABORTED\n")
    assert server.get_job_info("checkout-ci")["color"] == "aborted"
    assert sim.build("checkout-ci", number).result == "ABORTED"


def test_a_stop_takes_effect_when_the_build_reaches_an_abort_point(
        sim: JenkinsSimulator, clock: ManualClock, server: jenkins.Jenkins) -> None:
    sim.set_stop("payments-ci", seconds=20)
    number = start_build(server, clock, "payments-ci", {"BRANCH": "main"})
    waiting = server.build_job("payments-ci", {"BRANCH": "next"})  # blocked behind it
    clock.advance(10)
    server.stop_build("payments-ci", number)  # answered (302, followed) at once ...
    clock.advance(10)
    build = server.get_build_info("payments-ci", number)
    assert (build["building"], build["result"]) == (True, None)  # ... but it still runs
    console = server.get_build_console_output("payments-ci", number)
    assert console.endswith("Aborted by OpsBot\n") and "Finished" not in console
    assert sim.build("payments-ci", number).stop_requested_at is not None
    server.stop_build("payments-ci", number)  # a second stop changes nothing
    clock.advance(6)
    later = server.get_build_console_output("payments-ci", number)
    assert later == console + "Click here to forcibly terminate running steps\n"
    clock.advance(5)
    build = server.get_build_info("payments-ci", number)
    assert (build["building"], build["result"], build["duration"]) == (False, "ABORTED", 30000)
    assert server.get_build_console_output("payments-ci", number) == \
        later + "[Pipeline] End of Pipeline\nFinished: ABORTED\n"
    # What waited for it started when it really ended, not when stop was pressed.
    nxt = server.get_queue_item(waiting)["executable"]["number"]
    assert server.get_build_info("payments-ci", nxt)["timestamp"] == build["timestamp"] + 30000


@pytest.mark.parametrize(("result", "ends"), [("SUCCESS", 25.0), ("FAILURE", 25.0),
                                              (None, 60.0)])
def test_a_build_can_finish_otherwise_despite_a_stop(
        sim: JenkinsSimulator, clock: ManualClock, server: jenkins.Jenkins, result: str | None,
        ends: float) -> None:
    """A pipeline that catches the interruption ends as it likes; one whose step ignores it
    (result None) runs its course and ends with its own result."""
    sim.set_stop("search-ci", seconds=15, result=result)
    sim.set_outcome("search-ci", "UNSTABLE")
    number = start_build(server, clock, "search-ci", {"BRANCH": "main"})
    clock.advance(10)
    server.stop_build("search-ci", number)
    clock.advance(ends - 10 - 1)
    assert server.get_build_info("search-ci", number)["building"] is True
    clock.advance(1)
    build = server.get_build_info("search-ci", number)
    assert (build["building"], build["result"]) == (False, result or "UNSTABLE")
    console = server.get_build_console_output("search-ci", number)
    assert "Aborted by OpsBot" in console and console.endswith(f"Finished: {build['result']}\n")


def test_the_stack_trace_shows_only_with_show_stack_trace() -> None:
    with JenkinsSimulator(show_stack_trace=True) as verbose:
        server = jenkins.Jenkins(verbose.url, username=verbose.user, password=verbose.token,
                                 timeout=10)
        with pytest.raises(jenkins.JenkinsException) as oops:
            server.build_job("deploy-payments", {**DEPLOY, "ENVIRONMENT": "production"})
    assert "java.lang.IllegalArgumentException: Illegal choice for parameter ENVIRONMENT: " \
        "production" in str(oops.value)


def test_parameter_rules_match_jenkins(clock: ManualClock, server: jenkins.Jenkins) -> None:
    with pytest.raises(requests.HTTPError) as nothing:  # /build on a parameterized job
        server.build_job("deploy-payments")
    assert nothing.value.response.status_code == 400
    for job, values in (("deploy-payments", {**DEPLOY, "ENVIRONMENT": "production"}),
                        ("platform/nightly-integration", {"X": "1"})):
        with pytest.raises(jenkins.JenkinsException) as oops:  # an Oops! page, no reason
            server.build_job(job, values)
        page = str(oops.value)
        assert "[500]" in page and "Oops!" in page and "Logging ID=" in page
        assert "A problem occurred while processing the request" in page
        assert "Illegal choice" not in page and "parameterized" not in page
        assert "Exception" not in page.split("Internal Server Error", 1)[1]
    with pytest.raises(requests.HTTPError) as disabled:
        server.build_job("legacy-monolith-ci")
    assert disabled.value.response.status_code == 409
    # missing parameters take their defaults; unknown ones are dropped; booleans are booleans
    number = start_build(server, clock, "platform/db-migrations",
                         {"ENVIRONMENT": "staging", "UNDECLARED": "x"})
    values = {p["name"]: p["value"] for p in
              server.get_build_info("platform/db-migrations", number)["actions"][0]["parameters"]}
    assert values == {"SERVICE": "payments", "ENVIRONMENT": "staging", "DRY_RUN": True}


def test_queue_merges_duplicates_and_serialises_a_job(clock: ManualClock,
                                                      server: jenkins.Jenkins) -> None:
    first = server.build_job("auth-ci", {"BRANCH": "main"})
    assert server.build_job("auth-ci", {"BRANCH": "main"}) == first  # same request, same item
    second = server.build_job("auth-ci", {"BRANCH": "release/4.1"})
    assert second != first
    clock.advance(5)
    blocked = server.get_queue_item(second)
    assert blocked["_class"] == "hudson.model.Queue$BlockedItem"
    assert "is already in progress" in blocked["why"]
    assert [item["id"] for item in server.get_queue_info()] == [second]
    clock.advance(60)
    started = server.get_queue_item(second)["executable"]["number"]
    assert started == server.get_queue_item(first)["executable"]["number"] + 1
    build = server.get_build_info("auth-ci", started)
    assert build["timestamp"] == server.get_build_info("auth-ci", started - 1)["timestamp"] + 60000


def test_running_builds_are_listed(clock: ManualClock, server: jenkins.Jenkins) -> None:
    number = start_build(server, clock, "deploy-auth",
                         {"SERVICE": "auth", "VERSION": "4.0.3", "ENVIRONMENT": "staging"})
    running = {(b["url"].split("/job/", 1)[1], b["number"]) for b in server.get_running_builds()}
    assert (f"deploy-auth/{number}/", number) in running
    assert ("platform/job/nightly-integration/90/", 90) in running  # seeded, still running


def test_real_clock_progress() -> None:
    with JenkinsSimulator(queue_delay=0.05, build_seconds=0.2) as simulator:
        server = jenkins.Jenkins(simulator.url, username=simulator.user,
                                 password=simulator.token, timeout=5)
        queue_id = server.build_job("platform/infra/terraform-plan")
        deadline = time.monotonic() + 5
        while not server.get_queue_item(queue_id).get("executable"):
            assert time.monotonic() < deadline, "the queue item never started"
            time.sleep(0.02)
        number = server.get_queue_item(queue_id)["executable"]["number"]
        while server.get_build_info("platform/infra/terraform-plan", number)["building"]:
            assert time.monotonic() < deadline, "the build never finished"
            time.sleep(0.02)
        log = server.get_build_console_output("platform/infra/terraform-plan", number)
        assert "Plan: 2 to add, 1 to change, 0 to destroy." in log


# -- failure injection -----------------------------------------------------------------------


def test_fail_next_answers_500_once(sim: JenkinsSimulator, server: jenkins.Jenkins) -> None:
    server.get_whoami()
    sim.fail_next(500)
    with pytest.raises(jenkins.JenkinsException, match=r"\[500\]"):
        server.get_job_info("payments-ci")
    assert server.get_job_info("payments-ci")["name"] == "payments-ci"
    sim.fail_next(503, path="/job/search-ci/")
    assert server.get_job_info("payments-ci")["name"] == "payments-ci"  # path does not match
    with pytest.raises(jenkins.JenkinsException, match="does not exist"):
        server.get_job_info("search-ci")


def test_delay_next_trips_client_timeouts(sim: JenkinsSimulator) -> None:
    impatient = jenkins.Jenkins(sim.url, username=sim.user, password=sim.token, timeout=0.2)
    impatient.get_whoami()
    sim.delay_next(0.6)
    with pytest.raises(jenkins.TimeoutException):
        impatient.get_job_info("payments-ci")


# -- helpers, seed and command line --------------------------------------------------------------


def test_helpers_reject_mistakes(sim: JenkinsSimulator) -> None:
    with pytest.raises(KeyError, match="did you mean payments-ci"):
        sim.builds("payment-ci")
    with pytest.raises(ValueError, match="result must be one of"):
        sim.set_outcome("payments-ci", "GREEN")
    with pytest.raises(ValueError, match="folder"):
        sim.set_outcome("platform", "FAILURE")
    assert "**********" in repr(sim) and sim.token not in repr(sim)
    assert sim.url in sim.describe()


def test_seed_errors_name_the_place_and_the_fix(tmp_path: Path) -> None:
    seed = tmp_path / "jenkins.yml"
    seed.write_text("jobs:\n  - name: app\n    builds:\n      - {ago: 1h, resutl: SUCCESS}\n")
    with pytest.raises(SeedError, match=r"jobs\[0\] \(app\)\.builds\[0\]: unknown key\(s\) resutl"):
        JenkinsSimulator(seed)
    seed.write_text("jobs:\n  - name: app\n    builds:\n      - {ago: yesterday}\n")
    with pytest.raises(SeedError, match="time span like 3h"):
        JenkinsSimulator(seed)
    seed.write_text("users: {}\njobs:\n  - name: app\n    builds:\n      - {ago: 1h, by: zed}\n")
    with pytest.raises(SeedError, match="'zed' is not a user"):
        JenkinsSimulator(seed)


def test_command_line_prints_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.jenkins", "--port", "0"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = banner.rsplit(" ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        user, token = (process.stdout.readline().split(":", 1)[1].strip() for _ in range(2))
        server = jenkins.Jenkins(url, username=user, password=token, timeout=5)
        assert server.get_whoami()["id"] == "opsbot"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
