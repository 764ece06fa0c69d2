"""Jobs by kind: deploy jobs are run only as deploys, and the prod rules follow the job.

Handlers through python-jenkins against the simulator (no Rasa), plus the policy and
the catalogue on their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from actions import _runtime
from actions.backends import JENKINS, Backends
from actions.backends.jenkins import JenkinsBackend, JenkinsConfig, Job
from actions.catalog import Catalog, environment_parameter
from actions.guard import OperationStore, Policy
from actions.guard.policy import JOB_ENVIRONMENT, JOB_KIND, JOB_SERVICE
from actions.guard.reach import job_reach
from actions.requests import OpsRequest
from actions.turn import Turn, Who
from simulators.jenkins import JenkinsSimulator
from tests.conftest import handle, start_build

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sim() -> Iterator[JenkinsSimulator]:
    # Builds run long enough to be stopped.
    with JenkinsSimulator(queue_delay=0.0, build_seconds=600) as simulator:
        yield simulator


@pytest.fixture
def rt(sim: JenkinsSimulator, tmp_path: Path) -> Iterator[_runtime.Runtime]:
    runtime = _runtime.Runtime(
        backends=Backends.of((JENKINS, JenkinsBackend(JenkinsConfig(sim.url, sim.user, sim.token,
                                                                    timeout=10)))),
        store=OperationStore(f"sqlite:///{tmp_path / 'o.db'}"),
        policy=Policy.load(ROOT / "policy.yml"), rasa_url="http://127.0.0.1:9")
    yield runtime
    runtime.store.close()


def _ask(rt: _runtime.Runtime, intent: str, text: str, person: str = "alice",
         **entities: str) -> Turn:
    turn = Turn(OpsRequest(intent, text, 0.99, entities), Who("rest", person, person, person), rt)
    handle(intent, turn)
    return turn


def _text(turn: Turn) -> str:
    return "\n".join(r.get("text") or "" for r in turn.replies)


def test_run_build_refuses_a_deploy_job_and_points_to_deploy(rt: _runtime.Runtime,
                                                             sim: JenkinsSimulator) -> None:
    before = len(sim.builds("deploy-payments"))
    turn = _ask(rt, "run_build", "run deploy-payments", job="deploy-payments")
    text = _text(turn)
    assert ("deploy-payments is a deploy job; say \"deploy payments <version> to <environment>\" "
            "so the deploy rules apply.") in text
    assert "Nothing ran" in text and not any(r.get("buttons") for r in turn.replies)
    assert rt.store.open_for("alice") == []
    refused = rt.store.audit_records(intent="run_build")[0].operation
    assert refused.state == "refused" and "deploy job" in (refused.result_detail or "")
    assert len(sim.builds("deploy-payments")) == before


def test_run_build_refuses_any_job_that_takes_an_environment(rt: _runtime.Runtime) -> None:
    text = _text(_ask(rt, "run_build", "run db-migrations", job="platform/db-migrations"))
    assert "platform/db-migrations takes an environment (ENVIRONMENT)" in text
    assert "Nothing ran" in text
    # A job without one is still proposed as usual.
    assert "Run payments-ci" in _text(_ask(rt, "run_build", "build payments", job="payments-ci"))


def test_run_build_does_not_offer_deploy_jobs(rt: _runtime.Runtime) -> None:
    turn = _ask(rt, "run_build", "run a build")
    offered = [b["title"] for r in turn.replies for b in r.get("buttons") or []]
    assert offered and not [t for t in offered if t.startswith("deploy-")]


def test_stopping_a_running_prod_deploy_needs_release_manager(rt: _runtime.Runtime,
                                                              sim: JenkinsSimulator) -> None:
    number = start_build(sim, "deploy-payments", {"SERVICE": "payments", "VERSION": "2.4.2",
                                              "ENVIRONMENT": "prod"})
    bob = _text(_ask(rt, "stop_build", "stop deploy-payments", person="bob",
                     job="deploy-payments", build_number=str(number)))
    assert ("Stopping a build on a deploy job for prod needs the release-manager role (as "
            "deploying to prod does), which alice and carol have.") in bob
    assert "alice" in bob and "Nothing ran" in bob
    alice = _ask(rt, "stop_build", "stop deploy-payments", job="deploy-payments",
                 build_number=str(number))
    assert f"Stop deploy-payments #{number} (deploying payments 2.4.2 to prod" in _text(alice)
    pending = rt.store.open_for("alice")[0]
    assert pending.risk == "critical"
    assert pending.parameters[JOB_KIND] == "deploy" and pending.parameters["environment"] == "prod"
    assert sim.build("deploy-payments", number).building


def test_stopping_a_dev_deploy_is_an_ordinary_change(rt: _runtime.Runtime,
                                                     sim: JenkinsSimulator) -> None:
    number = start_build(sim, "deploy-checkout", {"SERVICE": "checkout", "VERSION": "5.13.1",
                                              "ENVIRONMENT": "dev"})
    turn = _ask(rt, "stop_build", "stop deploy-checkout", person="bob", job="deploy-checkout",
                build_number=str(number))
    assert "deploying checkout 5.13.1 to dev" in _text(turn)
    assert rt.store.open_for("bob")[0].risk == "change"


def test_the_prod_rule_applies_to_any_intent_that_reaches_a_prod_deploy_job() -> None:
    policy = Policy.parse({
        "people": {"alice": {"roles": ["release-manager"]}, "bob": {"roles": ["developer"]}},
        "rules": [
            {"intents": ["deploy", "rollback"], "when": {"environment": "prod"},
             "risk": "critical", "roles": ["release-manager"], "approval": ["release-manager"]},
            {"intents": ["stop_build", "run_build", "query_logs"], "risk": "change"},
        ],
    })
    prod = {"job": "deploy-payments", "build_number": "7", JOB_KIND: "deploy",
            "environment": "prod"}
    refused = policy.decide("stop_build", prod, "bob")
    assert not refused.allowed
    assert "Stopping a build on a deploy job for prod" in (refused.reason or "")
    allowed = policy.decide("stop_build", prod, "alice")
    assert allowed.allowed and allowed.risk == "critical"
    assert allowed.approval_roles == ("release-manager",)
    # Only a request that reaches a deploy job: logs "on prod" are not a deploy.
    assert policy.decide("query_logs", {"environment": "prod"}, "bob").risk == "change"
    staging = {**prod, "environment": "staging"}
    assert policy.decide("stop_build", staging, "bob").risk == "change"


def _job(name: str, *parameters: str) -> Job:
    return Job(full_name=name, name=name.rsplit("/", 1)[-1], url="", color="blue",
               parameters=parameters, last_build=None)


def test_the_catalog_knows_which_jobs_deploy() -> None:
    catalog = Catalog([_job("deploy-payments", "SERVICE", "VERSION", "ENVIRONMENT"),
                       _job("payments-ci", "BRANCH"), _job("tools/migrate", "TARGET_ENV"),
                       _job("deploy-search-prod")])
    assert catalog.deploys("deploy-payments") and catalog.deploys("tools/migrate")
    assert catalog.deploys("deploy-search-prod") and not catalog.deploys("payments-ci")
    assert catalog.service_deployed_by("deploy-payments") == "payments"
    assert environment_parameter(catalog.jobs["tools/migrate"]) == "TARGET_ENV"
    assert catalog.environment_of("deploy-search-prod") == "prod"
    assert catalog.environment_of("deploy-payments") is None


def test_what_a_job_acts_on_is_read_from_its_values_whatever_its_parameters_are_called(
) -> None:
    def where(job: Job, sent: dict[str, str], defaults: dict[str, str] | None = None) -> str:
        return job_reach(job, sent, defaults).get(JOB_ENVIRONMENT, "not a deploy")

    release = _job("release-payments", "TARGET", "VERSION")  # a place, by its name
    assert where(release, {"TARGET": "production", "VERSION": "2.4.1"}) == "prod"
    assert where(release, {"TARGET": "eu-west-1"}) == "prod"  # not a known environment
    assert where(release, {}) == "prod"  # Jenkins' default: not vouched for
    rollout = _job("tools/rollout", "CLUSTER", "BRANCH")  # a place, by its value only
    assert where(rollout, {"BRANCH": "main"}, {"CLUSTER": "live"}) == "prod"
    assert where(rollout, {"CLUSTER": "stage"}) == "staging"
    assert where(rollout, {"CLUSTER": "stage", "SUITE": "prod"}) == "prod"  # the strictest
    # A branch, tag or version called "staging" is not a place.
    assert where(_job("payments-ci", "BRANCH"), {"BRANCH": "staging"}) == "not a deploy"
    assert where(_job("search-ci", "GIT_TAG", "VERSION"), {"GIT_TAG": "prod",
                                                            "VERSION": "dev"}) == "not a deploy"
    reach = job_reach(_job("deploy-payments", "SERVICE", "VERSION", "ENVIRONMENT"),
                      {"SERVICE": "payments", "ENVIRONMENT": "dev"})
    assert reach == {JOB_KIND: "deploy", JOB_ENVIRONMENT: "dev", JOB_SERVICE: "payments"}
