"""The event sources: each vendor's documented payload read into an Event, every body that
is not the format refused with its reason, GitHub's signature, the Jenkins watcher's
builds, and the simulators' payloads and sender (against a local server, no network)."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from actions.backends.jenkins import Build
from actions.events._model import (
    FAILURE,
    MAX_KEY,
    RECOVERY,
    RESULT,
    Event,
    EventFormatError,
)
from actions.events.jenkins_watch import build_event
from actions.events.sources import (
    MAX_SUMMARY,
    MAX_TITLE,
    JenkinsClaim,
    github_signature,
    github_signature_ok,
    jenkins_build_event,
    jenkins_claims,
    parse,
)
from simulators import events as sim
from simulators._http import BackgroundServer, Request, Response

DATA = Path(__file__).parent / "data" / "events"


def load(name: str) -> dict[str, Any]:
    return json.loads((DATA / f"{name}.json").read_text(encoding="utf-8"))


def body(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode("utf-8")


def one(source: str, payload: dict[str, Any] | bytes,
        headers: dict[str, str] | None = None) -> Event:
    raw = payload if isinstance(payload, bytes) else body(payload)
    found = parse(source, raw, headers or {})
    assert len(found) == 1, found
    return found[0]


def github(event: str, payload: dict[str, Any], delivery: str | None = "d-1") -> list[Event]:
    headers = {"X-GitHub-Event": event}
    if delivery:
        headers["X-GitHub-Delivery"] = delivery
    return parse("github", body(payload), headers)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- Alertmanager -----------------------------------------------------------------------


def test_alertmanager_firing_documented_payload() -> None:
    event = one("alertmanager", load("alertmanager_firing"))
    assert (event.source, event.kind, event.status) == ("alertmanager", FAILURE, "firing")
    assert event.group == ('alertmanager:{}/{severity="critical"}:'
                           '{alertname="HighErrorRate", service="payments"}')
    assert (event.service, event.environment, event.severity) == ("payments", "prod",
                                                                  "critical")
    assert event.title == "payments is failing more than 5% of requests"
    assert event.summary.startswith("5xx responses are above 5%")
    # the earliest of the two alerts' starts (09:52:26+02:00 is 07:52:26Z), not ended
    assert event.started_at == at("2024-05-14T07:52:26.739266+00:00")
    assert event.ended_at is None
    assert event.count == 2
    assert dict(event.links) == {
        "Source": "http://prometheus.example.org:9090/graph?g0.expr=job%3Apayments_errors"
                  "%3Aratio5m+%3E+0.05&g0.tab=1",
        "Runbook": "https://runbooks.example.org/payments/high-error-rate",
        "Alertmanager": "http://alertmanager.example.org:9093",
    }
    assert event.labels["alertname"] == "HighErrorRate"
    assert event.key.startswith("alertmanager:")


def test_alertmanager_resolved_is_a_new_key_in_the_same_group() -> None:
    firing = one("alertmanager", load("alertmanager_firing"))
    resolved = one("alertmanager", load("alertmanager_resolved"))
    assert resolved.kind == RECOVERY and resolved.status == "resolved"
    assert resolved.group == firing.group and resolved.key != firing.key
    assert resolved.started_at == firing.started_at
    assert resolved.ended_at == at("2024-05-14T10:31:26.739266+02:00")  # the latest end


def test_redelivery_has_the_same_key_whatever_the_order_or_spacing() -> None:
    payload = load("alertmanager_firing")
    first = one("alertmanager", payload)
    again = dict(payload, alerts=list(reversed(payload["alerts"])))
    assert one("alertmanager", json.dumps(again, indent=4).encode()).key == first.key
    changed = json.loads(json.dumps(payload))
    changed["alerts"][1]["startsAt"] = "2024-05-14T08:00:00Z"  # the alert fired again
    assert one("alertmanager", changed).key != first.key


def test_alertmanager_labels_fall_back_in_order() -> None:
    payload = sim.alertmanager_payload()
    alert = payload["alerts"][0]
    for labels in (payload["commonLabels"], payload["groupLabels"], alert["labels"]):
        for name in ("service", "env", "severity", "job"):
            labels.pop(name, None)
        labels.update({"app": "search", "namespace": "staging"})
    event = one("alertmanager", payload)
    assert (event.service, event.environment, event.severity) == ("search", "staging", None)
    payload["commonLabels"] = payload["groupLabels"] = {}
    alert["labels"] = {"alertname": "Down", "namespace": "kube-system"}
    alert["annotations"] = {}
    payload["commonAnnotations"] = {}
    event = one("alertmanager", payload)
    # a namespace that is not spelt like an environment is no environment
    assert (event.service, event.environment, event.title) == ("kube-system", None, "Down")


@pytest.mark.parametrize(("raw", "expected"), [
    ("production", "prod"), ("PROD", "prod"), ("stage", "staging"), ("staging", "staging"),
    ("dev", "dev"), ("development", "dev"), ("qa", "qa"),
])
def test_environment_is_normalised(raw: str, expected: str) -> None:
    event = one("alertmanager", sim.alertmanager_payload(environment=raw))
    assert event.environment == expected


# -- Grafana ----------------------------------------------------------------------------


def test_grafana_firing_documented_payload() -> None:
    event = one("grafana", load("grafana_firing"))
    assert (event.source, event.kind, event.status) == ("grafana", FAILURE, "firing")
    assert event.group.startswith("grafana:1:{}/{__grafana_autogenerated__")
    assert (event.service, event.environment, event.severity) == ("checkout", "staging",
                                                                  "warning")
    assert event.title == "checkout p99 latency above 1s"
    assert event.started_at == at("2024-05-14T09:51:03.157076+02:00")
    links = dict(event.links)
    assert links["Dashboard"] == "https://grafana.example.org/d/checkout-overview?orgId=1"
    assert links["Panel"].endswith("viewPanel=4")
    assert links["Source"].startswith("https://grafana.example.org/alerting/grafana/")
    assert links["Runbook"] == "https://runbooks.example.org/checkout/latency"
    assert "Silence" in links and links["Grafana"] == "https://grafana.example.org/"


def test_grafana_resolved() -> None:
    firing = one("grafana", load("grafana_firing"))
    resolved = one("grafana", load("grafana_resolved"))
    assert (resolved.kind, resolved.group) == (RECOVERY, firing.group)
    assert resolved.key != firing.key
    assert resolved.ended_at == at("2024-05-14T10:06:03.157076+02:00")
    assert "Silence" not in dict(resolved.links)  # nothing left to silence


def test_grafana_documented_example_with_empty_urls() -> None:
    # Grafana's own example: two alerts, empty dashboardURL/panelURL, groupKey "{}:{}".
    payload = load("grafana_firing")
    second = json.loads(json.dumps(payload["alerts"][0]))
    second.update(fingerprint="c6eadffa33fcdf37", dashboardURL="", panelURL="")
    second["labels"] = dict(second["labels"], alertname="High CPU usage")
    second["annotations"] = {"summary": "cpu high"}
    payload.update(alerts=[second, payload["alerts"][0]], groupKey="{}:{}",
                   commonAnnotations={}, commonLabels={"team": "blue"}, groupLabels={})
    event = one("grafana", payload)
    assert event.group == "grafana:1:{}:{}" and event.count == 2
    assert event.title == "cpu high (and 1 more)"
    assert "Dashboard" not in dict(event.links)  # the empty URL is no link


def test_grafana_org_is_part_of_the_group() -> None:
    one_org = one("grafana", sim.grafana_payload(org_id=1, group_key="{}:{}"))
    other = one("grafana", sim.grafana_payload(org_id=2, group_key="{}:{}"))
    assert one_org.group != other.group


# -- malformed bodies -------------------------------------------------------------------


def _without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


def _first_alert(payload: dict[str, Any], **changes: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(payload))
    copy["alerts"][0].update(changes)
    return {**copy, "alerts": [{k: v for k, v in copy["alerts"][0].items() if v is not None},
                               *copy["alerts"][1:]]}


AM = sim.alertmanager_payload()


_NOT_THE_FORMAT = [
    ("alertmanager", b"<html>hello</html>", "not JSON: "),
    ("alertmanager", b"\xc3(", "not JSON: the body is not UTF-8"),
    ("alertmanager", b"[1, 2]", "the body must be a JSON object, not an array"),
    ("alertmanager", body(dict(AM, version="3")), "alertmanager payload version '3' is not 4"),
    ("alertmanager", body(_without(AM, "version")), "has no version"),
    ("alertmanager", body(_without(AM, "alerts")), "alerts is missing"),
    ("alertmanager", body(dict(AM, alerts={"a": 1})), "alerts must be an array, not an object"),
    ("alertmanager", body(dict(AM, alerts=[])), "alerts is empty"),
    ("alertmanager", body(dict(AM, alerts=["x"])), "alerts[0] must be an object"),
    ("alertmanager", body(_first_alert(AM, labels=None)), "alerts[0] has no labels"),
    ("alertmanager", body(_first_alert(AM, labels={"a": 1})),
     "alerts[0].labels.a must be a string, not a number"),
    ("alertmanager", body(_first_alert(AM, startsAt="yesterday")),
     "alerts[0].startsAt is not an RFC 3339 time"),
    ("alertmanager", body(_first_alert(AM, startsAt=None)), "alerts[0].startsAt is missing"),
    ("alertmanager", body(dict(AM, status="burning")), "status 'burning' is not firing"),
    ("alertmanager", body(dict(AM, groupKey=7)), "groupKey must be a string, not a number"),
    ("alertmanager", body(dict(AM, commonLabels=[])), "commonLabels must be an object"),
    ("alertmanager", body(sim.grafana_payload()), "alertmanager payload version '1' is not 4"),
    ("alertmanager", body(sim.github_check_run()), "has no version"),
    ("grafana", body(AM), "grafana payload version '4' is not 1"),
    ("grafana", body(_without(sim.grafana_payload(), "orgId")), "orgId is missing"),
    ("grafana", body(dict(sim.grafana_payload(), orgId="1")), "orgId must be a whole number"),
    ("github", body(sim.github_check_run()), "missing X-GitHub-Event header"),
    ("jenkins", body(AM), "name is missing"),
    ("jenkins", body(dict(sim.jenkins_notification(), build=[])), "build must be an object"),
    ("jenkins", body(sim.jenkins_notification(phase="DONE")), "build.phase 'DONE' is not one"),
    ("jenkins", body(sim.jenkins_notification(status=None)), "build.status is missing"),
    ("nagios", b"{}", "no event source 'nagios'"),
]


# Named by source and reason: the payloads hold the time they were made, and test ids
# must be the same in every pytest-xdist worker.
@pytest.mark.parametrize(("source", "raw", "reason"), [
    pytest.param(*case, id=f"{case[0]}: {case[2]}") for case in _NOT_THE_FORMAT])
def test_not_the_format_is_refused_with_a_reason(source: str, raw: bytes, reason: str) -> None:
    with pytest.raises(EventFormatError) as caught:
        parse(source, raw, {})
    assert reason in str(caught.value)


@pytest.mark.parametrize(("event", "payload", "reason"), [
    ("check_run", _without(sim.github_check_run(), "repository"), "repository is missing"),
    ("check_run", _without(sim.github_check_run(), "check_run"), "check_run is missing"),
    ("check_run", sim.github_check_run(conclusion=None), "check_run.conclusion is missing"),
    ("workflow_run", dict(sim.github_workflow_run(), workflow_run="x"),
     "workflow_run must be an object, not a string"),
    ("pull_request", _without(sim.github_pull_request(), "action"), "action is missing"),
    ("check_run", {**sim.github_check_run(), "repository": {"full_name": 5}},
     "repository.full_name must be a string"),
])
def test_github_payload_not_as_documented(event: str, payload: dict[str, Any],
                                          reason: str) -> None:
    with pytest.raises(EventFormatError) as caught:
        github(event, payload)
    assert reason in str(caught.value)


def test_huge_annotations_are_capped() -> None:
    payload = sim.alertmanager_payload()
    payload["commonAnnotations"].update(summary="S" * 50_000, description="D\n" * 50_000,
                                        runbook_url="javascript:alert(1)")
    event = one("alertmanager", payload)
    assert len(event.title) <= MAX_TITLE and "\n" not in event.title
    assert len(event.summary) <= MAX_SUMMARY
    assert all(url.startswith("http") for _, url in event.links)
    labels = {f"l{i}": "v" * 10_000 for i in range(500)}
    payload["alerts"][0]["labels"].update(labels)
    payload["commonLabels"].update(labels)
    event = one("alertmanager", payload)
    assert len(event.labels) <= 40 and all(len(v) <= 200 for v in event.labels.values())
    payload["groupKey"] = "g" * 100_000
    assert len(one("alertmanager", payload).group) < 400


# -- GitHub -----------------------------------------------------------------------------


def test_check_run_completed_failure() -> None:
    [event] = github("check_run", load("github_check_run_completed_failure"), "72d3162e")
    assert (event.source, event.kind, event.status) == ("github", FAILURE, "failure")
    assert event.key == "github:72d3162e"
    assert event.group == "github:acme/checkout:check:unit tests:#42"
    assert event.title == "check 'unit tests' failed on acme/checkout PR #42 (feature/login)"
    assert (event.repo, event.service) == ("acme/checkout", "checkout")
    assert event.summary.startswith("3 tests failed\ntests/test_login.py")
    assert event.links == (("Run", "https://github.com/acme/checkout/runs/128620228"),
                           ("Pull request", "https://github.com/acme/checkout/pull/42"))
    assert event.started_at == at("2024-05-14T08:11:05+00:00")
    assert event.ended_at == at("2024-05-14T08:14:35+00:00")
    assert event.labels["pr"] == "42" and event.labels["branch"] == "feature/login"


@pytest.mark.parametrize(("conclusion", "kind"), [
    ("failure", FAILURE), ("timed_out", FAILURE), ("action_required", FAILURE),
    ("startup_failure", FAILURE), ("success", RESULT), ("neutral", RESULT),
    ("skipped", RESULT), ("cancelled", RESULT),
])
def test_check_conclusions(conclusion: str, kind: str) -> None:
    [event] = github("check_run", sim.github_check_run(conclusion=conclusion))
    assert (event.kind, event.status) == (kind, conclusion)


def test_unfinished_checks_and_other_events_report_nothing() -> None:
    assert github("check_run", sim.github_check_run(action="created", conclusion=None)) == []
    assert github("check_run", sim.github_check_run(action="in_progress", conclusion=None)) == []
    assert github("workflow_run", sim.github_workflow_run(action="requested")) == []
    assert github("pull_request", sim.github_pull_request(action="synchronize")) == []
    assert github("pull_request", sim.github_pull_request(action="labeled")) == []
    assert github("ping", load("github_ping")) == []
    assert github("push", {"ref": "refs/heads/main", "repository": {}}) == []


def test_check_without_pr_is_grouped_by_branch() -> None:
    [event] = github("check_run", sim.github_check_run(pr=None, branch="main"))
    assert event.group == "github:acme/checkout:check:unit tests:main"
    assert [label for label, _ in event.links] == ["Run"]
    assert event.title == "check 'unit tests' failed on acme/checkout (main)"


def test_check_suite_completed() -> None:
    [event] = github("check_suite", load("github_check_suite_completed"))
    assert (event.kind, event.status) == (RESULT, "success")
    assert event.group == "github:acme/checkout:suite:github-actions:main"
    assert event.links == (("Checks", "https://github.com/acme/checkout/commit/"
                            "6dcb09b5b57875f334f61aebed695e2e4193db5e/checks"),)


def test_workflow_run_failure_then_success_share_a_group() -> None:
    [red] = github("workflow_run", load("github_workflow_run_completed_failure"), "d-red")
    [green] = github("workflow_run", load("github_workflow_run_completed_success"), "d-green")
    assert (red.kind, green.kind) == (FAILURE, RESULT)
    assert red.group == green.group == "github:acme/checkout:workflow:CI:main"
    assert red.key != green.key
    assert red.title == "workflow 'CI' #311 failed on acme/checkout (main)"
    assert red.links == (("Run", "https://github.com/acme/checkout/actions/runs/9081112"),)
    assert red.started_at == at("2024-05-14T08:20:00+00:00")


def test_pull_request_opened_and_closed() -> None:
    [opened] = github("pull_request", load("github_pull_request_opened"))
    assert (opened.kind, opened.status) == (RESULT, "opened")
    assert opened.group == "github:acme/checkout:pr:42"
    assert opened.title == ("PR #42 'Login: time out idle sessions' opened by maria on "
                            "acme/checkout (feature/login → main)")
    assert opened.links == (("Pull request", "https://github.com/acme/checkout/pull/42"),)
    [merged] = github("pull_request", sim.github_pull_request(action="closed", merged=True))
    assert merged.status == "merged" and "merged by maria" in merged.title
    assert merged.ended_at == at("2024-05-14T09:30:00+00:00")
    [closed] = github("pull_request", sim.github_pull_request(action="closed"))
    assert closed.status == "closed" and "closed without merging" in closed.title


def test_github_key_without_delivery_hashes_the_body() -> None:
    payload = sim.github_check_run()
    [first] = github("check_run", payload, delivery=None)
    [again] = github("check_run", payload, delivery=None)
    assert first.key == again.key and first.key.startswith("github:sha256:")
    [other] = github("check_run", sim.github_check_run(sha="f" * 40), delivery=None)
    assert other.key != first.key


def test_github_headers_are_case_insensitive() -> None:
    found = parse("github", body(sim.github_check_run()),
                  {"x-github-event": "check_run", "x-github-delivery": "abc"})
    assert found[0].key == "github:abc"


# -- GitHub signatures ------------------------------------------------------------------


def test_signature_matches_githubs_documented_example() -> None:
    # docs.github.com, "Validating webhook deliveries": the test values it publishes.
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature("It's a Secret to Everybody", b"Hello, World!") == expected
    assert github_signature_ok("It's a Secret to Everybody", b"Hello, World!", expected)


@pytest.mark.parametrize("header", [
    None, "", "sha256=", "sha256=deadbeef",
    github_signature("another secret", b"{}"),
    github_signature("s3cret", b"{} "),  # another body
    "sha1=" + github_signature("s3cret", b"{}").removeprefix("sha256="),
    github_signature("s3cret", b"{}").removeprefix("sha256="),  # the prefix missing
    "sha256=é",
])
def test_signature_refused(header: str | None) -> None:
    assert not github_signature_ok("s3cret", b"{}", header)


def test_signature_ok_and_no_secret_never_ok() -> None:
    assert github_signature_ok("s3cret", b"{}", github_signature("s3cret", b"{}"))
    assert not github_signature_ok("", b"{}", github_signature("", b"{}"))


# -- Jenkins ----------------------------------------------------------------------------


def build_info(result: str | None, *, number: int = 413, building: bool = False,
               parameters: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """python-jenkins' get_build_info, as far as the watcher reads it."""
    return {
        "_class": "org.jenkinsci.plugins.workflow.job.WorkflowRun", "number": number,
        "result": result, "building": building, "displayName": f"#{number}",
        "url": f"http://jenkins.local:8080/job/payments-deploy/{number}/",
        "timestamp": 1715676000000, "duration": 0 if building else 133000,
        "actions": [{"_class": "hudson.model.CauseAction",
                     "causes": [{"shortDescription": "Started by user maria"}]},
                    {"_class": "hudson.model.ParametersAction",
                     "parameters": parameters or []}, {}],
    }


def test_jenkins_build_still_running_is_nothing() -> None:
    assert jenkins_build_event("payments-deploy", build_info(None, building=True), None) is None
    assert jenkins_build_event("payments-deploy", build_info(None), "SUCCESS") is None


def test_jenkins_failure() -> None:
    event = jenkins_build_event("payments-deploy", build_info("FAILURE", parameters=[
        {"_class": "hudson.model.StringParameterValue", "name": "ENV", "value": "production"},
        {"_class": "hudson.model.PasswordParameterValue", "name": "DEPLOY_PW"},
        {"_class": "hudson.model.StringParameterValue", "name": "API_TOKEN", "value": "t0k"},
        {"_class": "hudson.model.BooleanParameterValue", "name": "DRY_RUN", "value": False},
    ]), "SUCCESS", summary="ERROR: health check failed")
    assert event is not None
    assert (event.kind, event.status) == (FAILURE, "failure")
    assert (event.key, event.group) == ("jenkins:payments-deploy#413", "jenkins:payments-deploy")
    assert (event.job, event.service, event.environment) == ("payments-deploy", "payments",
                                                             "prod")
    assert event.title == "payments-deploy #413 failed in 2m"
    assert event.summary == "ERROR: health check failed"
    assert event.links == (("Console",
                            "http://jenkins.local:8080/job/payments-deploy/413/console"),)
    assert event.started_at == datetime(2024, 5, 14, 8, 40, tzinfo=UTC)
    assert event.ended_at == event.started_at + timedelta(seconds=133)
    assert event.labels["build_number"] == "413" and event.labels["DRY_RUN"] == "false"
    assert "API_TOKEN" not in event.labels and "DEPLOY_PW" not in event.labels


def test_jenkins_unstable_success_aborted() -> None:
    unstable = jenkins_build_event("search-build", build_info("UNSTABLE"), None)
    assert unstable is not None and (unstable.kind, unstable.service) == (FAILURE, "search")
    success = jenkins_build_event("payments-deploy", build_info("SUCCESS", number=414),
                                  "FAILURE")
    assert success is not None and (success.kind, success.status) == (RESULT, "success")
    assert "(the build before: FAILURE)" in success.title
    assert success.group == "jenkins:payments-deploy"
    aborted = jenkins_build_event("payments-deploy", build_info("ABORTED"), None)
    assert aborted is not None and (aborted.kind, aborted.status) == (RESULT, "aborted")


def test_jenkins_parameters_name_the_service_and_url_base_the_link() -> None:
    event = jenkins_build_event("platform/nightly-integration", build_info("FAILURE", parameters=[
        {"name": "SERVICE", "value": "checkout"}, {"name": "ENVIRONMENT", "value": "stage"}]),
        None, url_base="https://ci.example.org/")
    assert event is not None
    assert (event.service, event.environment) == ("checkout", "staging")
    assert event.links == (("Console", "https://ci.example.org/job/platform/job/"
                            "nightly-integration/413/console"),)


def test_jenkins_notification_completed_failure() -> None:
    event = one("jenkins", load("jenkins_notification_completed_failure"))
    assert (event.kind, event.status, event.job) == (FAILURE, "failure", "payments-deploy")
    assert event.key == "jenkins:payments-deploy#413"
    assert (event.service, event.environment) == ("payments", "prod")
    assert event.links == (("Console",
                            "http://jenkins.example.org:8080/job/payments-deploy/413/console"),)
    assert "health check failed" in event.summary
    assert event.labels["commit"] == "c6d86dc654b12425e706bcf951adfe5a8627a517"


def test_a_notification_is_a_claim_and_never_has_the_key_of_what_opsbot_observed() -> None:
    notified = one("jenkins", load("jenkins_notification_completed_failure"))
    observed = build_event(Build(
        job="payments-deploy", number=413, url="http://jenkins.local/job/payments-deploy/413/",
        result="FAILURE", building=False, started_at=datetime(2024, 5, 14, 8, 40, tzinfo=UTC),
        duration_s=133.0, parameters={}, started_by="maria"))
    assert observed is not None and observed.key == "jenkins-observed:payments-deploy#413"
    # The same job's message, but the body's key can never drop the observation.
    assert notified.group == observed.group and notified.key != observed.key
    assert jenkins_claims(body(load("jenkins_notification_completed_failure"))) == [
        JenkinsClaim("payments-deploy", 413, "FAILURE")]
    folder = sim.jenkins_notification(job="platform/nightly-integration", status="success")
    assert jenkins_claims(body(folder)) == [
        JenkinsClaim("platform/nightly-integration", 413, "SUCCESS")]
    assert jenkins_claims(body(sim.jenkins_notification(phase="STARTED"))) == []
    with pytest.raises(EventFormatError, match="build.status is missing"):
        jenkins_claims(body(sim.jenkins_notification(status=None)))


def test_a_scoped_key_keeps_its_namespace_and_fits_the_store() -> None:
    notified = one("jenkins", load("jenkins_notification_completed_failure"))
    scoped = notified.scoped("jenkins@url:0123456789abcdef")
    assert scoped.key == "jenkins@url:0123456789abcdef/jenkins:payments-deploy#413"
    assert dataclasses.replace(scoped, key=notified.key) == notified  # nothing else changes
    [check] = github("check_run", load("github_check_run_completed_failure"))
    signed = check.scoped("github@signature:fedcba9876543210")
    assert signed.aliases == tuple(f"github@signature:fedcba9876543210/{alias}"
                                   for alias in check.aliases) and signed.aliases
    long = one("jenkins", sim.jenkins_notification(job="/".join(["deep-folder" * 2] * 9)))
    keys = {long.scoped(f"jenkins@url:{n:016x}").key for n in range(3)}
    assert len(keys) == 3 and all(len(k) <= MAX_KEY for k in keys)
    assert all(k.startswith("jenkins@url:") for k in keys)


@pytest.mark.parametrize("phase", ["QUEUED", "STARTED", "FINALIZED"])
def test_jenkins_notification_other_phases_report_nothing(phase: str) -> None:
    assert parse("jenkins", body(sim.jenkins_notification(phase=phase)), {}) == []


# -- the simulators' payloads round trip ------------------------------------------------


def test_alertmanager_builder_round_trip() -> None:
    start = datetime(2024, 5, 14, 7, 0, tzinfo=UTC)
    end = start + timedelta(minutes=42)
    firing = one("alertmanager", sim.alertmanager_payload(started_at=start))
    assert (firing.kind, firing.service, firing.environment, firing.severity) == (
        FAILURE, "payments", "prod", "critical")
    assert firing.started_at == start and firing.ended_at is None
    assert dict(firing.links)["Alertmanager"] == "http://alertmanager.local:9093"
    assert one("alertmanager", sim.alertmanager_payload(started_at=start)).key == firing.key
    resolved = one("alertmanager", sim.alertmanager_payload(status="resolved", started_at=start,
                                                            ended_at=end))
    assert (resolved.kind, resolved.group, resolved.ended_at) == (RECOVERY, firing.group, end)
    assert resolved.key != firing.key


def test_grafana_builder_round_trip() -> None:
    start = datetime(2024, 5, 14, 7, 0, tzinfo=UTC)
    event = one("grafana", sim.grafana_payload(started_at=start, environment="production"))
    assert (event.kind, event.service, event.environment, event.severity) == (
        FAILURE, "checkout", "prod", "warning")
    assert event.started_at == start
    assert {"Dashboard", "Panel", "Source", "Grafana"} <= set(dict(event.links))
    resolved = one("grafana", sim.grafana_payload(status="resolved", started_at=start))
    assert resolved.kind == RECOVERY and resolved.group == event.group


def test_github_and_jenkins_builders_round_trip() -> None:
    [check] = github("check_run", sim.github_check_run(repo="acme/payments", name="lint",
                                                       conclusion="timed_out", pr=7,
                                                       branch="fix/x"))
    assert (check.kind, check.repo, check.group) == (FAILURE, "acme/payments",
                                                     "github:acme/payments:check:lint:#7")
    assert check.title == "check 'lint' timed out on acme/payments PR #7 (fix/x)"
    [run] = github("workflow_run", sim.github_workflow_run(conclusion="success", branch="dev"))
    assert (run.kind, run.group) == (RESULT, "github:acme/checkout:workflow:CI:dev")
    [pr] = github("pull_request", sim.github_pull_request(number=9, action="reopened"))
    assert (pr.status, pr.group) == ("reopened", "github:acme/checkout:pr:9")
    build = one("jenkins", sim.jenkins_notification(job="search-build", number=5,
                                                    status="SUCCESS"))
    assert (build.kind, build.key, build.service) == (RESULT, "jenkins:search-build#5",
                                                      "search")


# -- post_event against a local server --------------------------------------------------


@pytest.fixture()
def receiver() -> Any:
    seen: list[Request] = []

    def handle(request: Request) -> Response:
        seen.append(request)
        status = 401 if "nope" in (request.header("Authorization") or "") else 200
        return Response(status, b'{"received": 1}', "application/json")

    server = BackgroundServer(handle, name="events receiver")
    server.start()
    try:
        yield server.url.rstrip("/"), seen
    finally:
        server.stop()


def test_post_event_github_signs_and_names_the_event(receiver: Any) -> None:
    url, seen = receiver
    payload = sim.github_check_run()
    status, text = sim.post_event(url, "github", payload, secret="s3cret")
    assert (status, json.loads(text)) == (200, {"received": 1})
    [request] = seen
    assert request.method == "POST" and request.raw_path == "/webhooks/events/github"
    assert github_signature_ok("s3cret", request.body, request.header("X-Hub-Signature-256"))
    assert request.header("X-GitHub-Event") == "check_run"
    assert len(request.header("X-GitHub-Delivery") or "") == 36  # a uuid4
    assert (request.header("User-Agent") or "").startswith("GitHub-Hookshot/")
    assert request.header("Content-Type") == "application/json"
    events = parse("github", request.body, dict(request.headers.items()))
    assert events[0].group == "github:acme/checkout:check:unit tests:#42"
    sim.post_event(url, "github", b"{}", secret="s3cret", event="ping", delivery="d-7")
    assert (seen[1].header("X-GitHub-Event"), seen[1].header("X-GitHub-Delivery")) == (
        "ping", "d-7")


def test_post_event_tokens(receiver: Any) -> None:
    url, seen = receiver
    sim.post_event(url, "alertmanager", sim.alertmanager_payload(), token="t0k")
    assert seen[-1].header("Authorization") == "Bearer t0k"
    sim.post_event(url, "grafana", sim.grafana_payload(), token="t0k", basic=True)
    scheme, _, encoded = (seen[-1].header("Authorization") or "").partition(" ")
    assert scheme == "Basic" and base64.b64decode(encoded).decode().endswith(":t0k")
    sim.post_event(url, "jenkins", sim.jenkins_notification(), token="t0k")
    assert seen[-1].param("token") == "t0k" and seen[-1].header("Authorization") is None
    assert sim.post_event(url, "alertmanager", b"{}", token="nope")[0] == 401
    with pytest.raises(ValueError, match="no event source"):
        sim.post_event(url, "nagios", {})


def test_json_nested_too_deeply_is_a_format_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(EventFormatError, match="nested too deeply"):
        parse("alertmanager", b'{"version": "4", "alerts": ' + deep + b"}", {})
