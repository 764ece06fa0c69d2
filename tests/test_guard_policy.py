"""policy.yml: loading and checking it, identities, roles and decisions."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from actions.errors import ConfigError
from actions.guard import Decision, Policy, PolicyError, parse_duration

ROOT = Path(__file__).resolve().parent.parent

POLICY = """
confirmation_ttl: 2m
people:
  alice:
    roles: [release-manager, developer]
    identities: {rest: alice, telegram: 42, teams: aad-alice}
  bob:
    roles: [developer]
    identities: {rest: bob, telegram: ["43", "4343"]}
  carol:
    roles: [release-manager, sre]
    identities: {rest: carol}
  dave:
    roles: [release-manager]
  erin:
    roles: [auditor]
everyone_roles: [viewer]
rules:
  - intents: [deploy, rollback]
    when: {environment: prod}
    risk: critical
    roles: [release-manager]
    approval: [release-manager, sre]
  - intents: [deploy]
    when: {environment: [staging, qa], service: payments}
    risk: critical
    roles: [developer, sre]
  - intents: [stop_build]
    risk: change
    roles: [sre]
  - intents: [run_build, stop_build, deploy, rollback, create_issue]
    risk: change
  - intents: [build_status, query_logs]
    risk: read
    roles: [viewer]
"""


def write(tmp_path: Path, text: str, name: str = "policy.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def policy(tmp_path: Path) -> Policy:
    return Policy.load(write(tmp_path, POLICY))


# --- identities and roles ----------------------------------------------------------------


def test_identities_map_to_people(policy: Policy) -> None:
    assert policy.person("rest", "alice") == "alice"
    assert policy.person("telegram", "42") == "alice"  # YAML read the id as a number
    assert policy.person("telegram", 42) == "alice"  # type: ignore[arg-type]
    assert policy.person("teams", "aad-alice") == "alice"
    assert policy.person("telegram", "43") == policy.person("telegram", "4343") == "bob"
    assert policy.person("Telegram", "42") == "alice"


def test_unknown_identities_are_channel_and_user_id(policy: Policy) -> None:
    assert policy.person("telegram", "999") == "telegram:999"
    assert policy.person("rest", "42") == "rest:42"  # an id is only valid for its connector
    assert policy.person("teams", "alice") == "teams:alice"


def test_roles(policy: Policy) -> None:
    assert policy.roles_of("alice") == {"release-manager", "developer", "viewer"}
    assert policy.roles_of("telegram:999") == {"viewer"}
    assert policy.people_with("release-manager") == ["alice", "carol", "dave"]
    assert policy.people_with("sre") == ["carol"]
    assert policy.people_with("nonexistent") == []
    assert policy.may("bob", "developer") and not policy.may("bob", "release-manager")
    assert policy.may("telegram:999", "viewer")


def test_may_approve(policy: Policy) -> None:
    assert policy.may_approve("carol", ["release-manager"])
    assert policy.may_approve("carol", ["sre"])
    assert not policy.may_approve("bob", ["release-manager", "sre"])
    assert not policy.may_approve("telegram:999", ["release-manager"])
    assert not policy.may_approve("alice", [])
    assert not policy.may_approve("alice", ["release-manager"], requester="alice")
    assert policy.may_approve("dave", ["release-manager"], requester="alice")


def test_confirmation_ttl(policy: Policy) -> None:
    assert policy.confirmation_ttl == 120.0


# --- decisions ----------------------------------------------------------------------------


PROD = {"service": "payments", "version": "2.4.1", "environment": "prod"}


def test_prod_deploy_needs_release_manager_and_approval(policy: Policy) -> None:
    allowed = policy.decide("deploy", PROD, "alice")
    assert allowed == Decision(allowed=True, risk="critical",
                               approval_roles=("release-manager", "sre"), reason=None)
    assert allowed.needs_confirmation and allowed.needs_approval


def test_refusal_names_the_role_and_who_has_it(policy: Policy) -> None:
    refused = policy.decide("deploy", PROD, "bob")
    assert not refused.allowed and refused.risk == "critical"
    assert refused.reason == (
        "Deploying to prod needs the release-manager role, which alice, carol and dave have.")
    rollback = policy.decide("rollback", {"service": "checkout", "environment": "prod"}, "bob")
    assert rollback.reason is not None and rollback.reason.startswith("Rolling back on prod needs")


def test_refusal_with_several_roles_and_one_holder(policy: Policy) -> None:
    refused = policy.decide("stop_build", {"job": "checkout"}, "bob")
    assert refused.reason == "Stopping a build needs the sre role, which carol has."
    staging = policy.decide("deploy", {"service": "payments", "environment": "staging"}, "dave")
    assert staging.reason == ("Deploying to staging with service=payments needs one of the roles "
                              "developer or sre, which alice, bob and carol have.")


def test_strangers_get_only_what_a_rule_gives_them(policy: Policy) -> None:
    """Default deny: a rule that names no role serves the people in policy.yml only."""
    stranger = policy.person("telegram", "999")
    assert not policy.knows(stranger) and policy.knows("bob")
    assert not policy.decide("deploy", PROD, stranger).allowed
    refused = policy.decide("run_build", {"job": "checkout"}, stranger)
    assert not refused.allowed
    assert refused.reason is not None and "your telegram id, 999" in refused.reason
    assert policy.decide("run_build", {"job": "checkout"}, "bob").allowed
    assert policy.decide("build_status", {}, stranger).allowed  # via everyone_roles
    assert policy.strangers_may("build_status") and not policy.strangers_may("run_build")


def test_a_rule_for_unknown_people(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, """
        people: {alice: {roles: [dev], identities: {rest: alice}}}
        rules:
          - intents: [list_jobs]
            risk: read
            unknown: true
          - intents: [run_build]
            risk: change
        """))
    stranger = policy.person("teams", "aad-x")
    assert policy.decide("list_jobs", {}, stranger).allowed
    assert not policy.decide("run_build", {}, stranger).allowed
    unverified = policy.person("unverified", "alice")
    assert "cannot tell who you are" in (policy.decide("run_build", {}, unverified).reason or "")
    with pytest.raises(PolicyError, match="unknown must be true or false"):
        Policy.parse({"rules": [{"intents": ["x"], "risk": "read", "unknown": "yes"}]})


def test_first_matching_rule_wins(policy: Policy) -> None:
    # The sre rule comes before the general change rule, so bob cannot stop a build ...
    assert not policy.decide("stop_build", {"job": "checkout"}, "bob").allowed
    # ... while deploying off prod falls through to the general change rule.
    decision = policy.decide("deploy", {"service": "search", "environment": "staging"}, "bob")
    assert decision == Decision(allowed=True, risk="change", approval_roles=(), reason=None)


def test_when_with_list_values_needs_every_parameter(policy: Policy) -> None:
    for env in ("staging", "qa", "QA"):
        decision = policy.decide("deploy", {"service": "payments", "environment": env}, "bob")
        assert (decision.allowed, decision.risk) == (True, "critical")
    other_service = policy.decide("deploy", {"service": "search", "environment": "qa"}, "bob")
    assert other_service.risk == "change"
    missing = policy.decide("deploy", {"service": "payments"}, "bob")
    assert missing.risk == "change"  # a condition on a missing parameter does not match


def test_when_matches_case_insensitively(policy: Policy) -> None:
    assert not policy.decide("deploy", {**PROD, "environment": "PROD"}, "bob").allowed


def test_no_matching_rule_is_refused(policy: Policy) -> None:
    decision = policy.decide("update_issue", {"issue_key": "OPS-1"}, "alice")
    assert not decision.allowed
    assert decision.reason is not None
    assert decision.reason.startswith("No rule in policy.yml allows updating an issue")
    assert "issue_key=OPS-1" in decision.reason
    assert not policy.decide("order_pizza", {}, "alice").allowed


def test_read_and_change_risks(policy: Policy) -> None:
    read = policy.decide("query_logs", {"service": "payments"}, "bob")
    assert read.allowed and read.risk == "read" and not read.needs_confirmation
    change = policy.decide("create_issue", {"priority": "high"}, "bob")
    assert change.allowed and change.risk == "change" and change.needs_confirmation
    assert not change.needs_approval


def test_decide_is_pure(policy: Policy) -> None:
    params = dict(PROD)
    first = policy.decide("deploy", params, "bob")
    assert policy.decide("deploy", params, "bob") == first
    assert params == PROD


def test_nobody_has_the_role_yet(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, """
        roles: {release-manager: deploys to prod}
        people: {bob: {roles: []}}
        rules:
          - {intents: [deploy], when: {environment: prod}, risk: critical, roles: [release-manager]}
    """))
    reason = policy.decide("deploy", PROD, "bob").reason
    assert reason == ("Deploying to prod needs the release-manager role, which nobody has yet: "
                      "it is given in policy.yml.")


# --- the demo policy ----------------------------------------------------------------------


def test_demo_policy() -> None:
    policy = Policy.from_env(ROOT, env={})
    assert policy.confirmation_ttl == 300.0
    alice, bob = policy.person("rest", "alice"), policy.person("rest", "bob")
    assert (alice, bob) == ("alice", "bob")
    assert policy.decide("deploy", PROD, alice).allowed
    assert policy.decide("deploy", PROD, alice).approval_roles == ()
    refused = policy.decide("deploy", PROD, bob)
    assert not refused.allowed and "release-manager" in (refused.reason or "")
    assert "alice" in (refused.reason or "")
    assert policy.decide("rollback", {"service": "checkout", "environment": "prod"}, alice).allowed
    assert not policy.decide("rollback", {"service": "x", "environment": "prod"}, bob).allowed
    assert policy.may("alice", "reviewer") and not policy.may("bob", "reviewer")
    stranger = policy.person("telegram", "123456789")
    for intent in ("run_build", "stop_build", "create_issue", "comment_issue", "update_issue",
                   "deploy", "rollback", "deploy_history", "build_status", "list_jobs",
                   "build_failure", "query_logs", "issue_status", "list_issues", "teach"):
        assert not policy.strangers_may(intent), intent  # the shipped policy: default deny
        assert not policy.decide(intent, {"environment": "staging"}, stranger).allowed, intent
    for person in (alice, bob):
        for intent in ("run_build", "stop_build", "create_issue", "comment_issue", "update_issue"):
            assert policy.decide(intent, {}, person).risk == "change", intent
            assert policy.decide(intent, {}, person).allowed
        deploy = policy.decide("deploy", {"service": "payments", "environment": "staging"}, person)
        assert (deploy.allowed, deploy.risk) == (True, "change")
        for intent in ("deploy_history", "build_status", "list_jobs", "build_failure",
                       "query_logs", "issue_status", "list_issues"):
            assert policy.decide(intent, {}, person) == Decision(True, "read", (), None), intent
    for channel in ("rest", "telegram", "teams", "slack"):
        assert any(policy.person(channel, uid) == "alice"
                   for uid in ("alice", "42", "00000000-0000-0000-0000-0000000000a1", "U0ALICE"))
    # The Slack simulator's seeded members.
    assert [policy.person("slack", u) for u in ("U0ALICE", "U0BOB", "U0CAROL")] == \
        ["alice", "bob", "carol"]


def test_from_env_reads_opsbot_policy(tmp_path: Path) -> None:
    write(tmp_path, "confirmation_ttl: 45s\n", name="other.yml")
    absolute = {"OPSBOT_POLICY": str(tmp_path / "other.yml")}
    assert Policy.from_env(ROOT, env=absolute).confirmation_ttl == 45
    assert Policy.from_env(tmp_path, env={"OPSBOT_POLICY": "other.yml"}).confirmation_ttl == 45
    with pytest.raises(PolicyError, match="OPSBOT_POLICY"):
        Policy.from_env(tmp_path, env={})


# --- bad files ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h", 3600), (90, 90), ("90", 90), ("1.5m", 90), ("2 min", 120),
])
def test_parse_duration(value: Any, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["5 parsecs", "-1m", "0", 0, "", "m5", True])
def test_parse_duration_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(("text", "problem"), [
    ("confirmation_ttl: soon\n", "confirmation_ttl: 'soon' is not a duration"),
    ("people: {}\nrulez: []\n", "unknown key 'rulez'"),
    ("people:\n  alice: {roles: [dev], identity: {rest: alice}}\n",
     "people.alice: unknown key 'identity'"),
    ("people:\n  alice: {roles: [dev]}\n"
     "rules:\n  - {intents: [deploy], risk: change, roles: [release-manger]}\n",
     "rule 1 names the role 'release-manger', which nobody has"),
    ("people:\n  alice: {roles: [dev]}\n"
     "rules:\n  - {intents: [deploy], risk: change, approval: [sre]}\n",
     "rule 1 names the role 'sre'"),
    ("rules:\n  - {intents: [deploy], risk: dangerous}\n",
     "rule 1: risk must be one of read, change, critical"),
    ("rules:\n  - {risk: read}\n", "rule 1 needs intents"),
    ("rules:\n  - {intents: [deploy], risk: read, if: {environment: prod}}\n",
     "rule 1: unknown key 'if'"),
    ("rules:\n  - {intents: [deploy], risk: read, when: prod}\n", "when must map parameters"),
    ("people:\n  alice: {identities: {rest: x}}\n  bob: {identities: {rest: x}}\n",
     "x is already alice's identity"),
    ("people:\n  'rest:alice': {roles: []}\n", "cannot contain ':'"),
    ("people:\n  alice: {identities: {slack: alice}}\n",
     "identities.slack: 'alice' is not a Slack member id"),
    ("people:\n  alice: {identities: {slack: [U0ALICE, C0OPS]}}\n",
     "identities.slack: 'C0OPS' is not a Slack member id"),
    ("roles: [developer]\npeople:\n  alice: {roles: [developr]}\n",
     "role 'developr' is given to someone but not listed"),
    ("- just\n- a list\n", "the top level must be a mapping"),
    ("rules: {deploy: critical}\n", "rules must be a list"),
])
def test_bad_policies_name_the_file_and_the_problem(
    tmp_path: Path, text: str, problem: str,
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        Policy.load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert problem in str(caught.value)
    assert isinstance(caught.value, ConfigError)


def test_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "people:\n  alice: {roles: [dev\nrules: []\n")
    with pytest.raises(PolicyError, match=r"not valid YAML at line \d+, column \d+") as caught:
        Policy.load(path)
    assert str(caught.value).startswith(str(path))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="no such policy file"):
        Policy.load(tmp_path / "nope.yml")


def test_empty_file_refuses_everything(tmp_path: Path) -> None:
    policy = Policy.load(write(tmp_path, "# nothing yet\n"))
    assert policy.confirmation_ttl == 300.0
    decision = policy.decide("build_status", {}, "rest:alice")
    assert not decision.allowed and decision.reason is not None
