"""actions.backends.jira through the real jira client against the Jira simulator,
and build_jql on its own. No test asserts a timing.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from actions.backends.jira import (
    CURRENT_USER,
    UNASSIGNED,
    Comment,
    Issue,
    JiraBackend,
    JiraConfig,
    SearchResult,
    Transition,
    TransitionField,
    User,
    build_jql,
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
from simulators.jira import JiraSimulator

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one backend coroutine to completion (no pytest-asyncio here)."""
    return asyncio.run(coroutine)


@pytest.fixture
def sim() -> Iterator[JiraSimulator]:
    with JiraSimulator() as simulator:
        yield simulator


def backend_for(sim: JiraSimulator, *, token: str | None = None, timeout: float = 5.0,
                auth: str = "bearer") -> JiraBackend:
    return JiraBackend(JiraConfig(sim.url, sim.user, Secret(token or sim.token), timeout=timeout,
                                  auth=auth))


@pytest.fixture
def backend(sim: JiraSimulator) -> JiraBackend:
    return backend_for(sim)


def failure(coroutine: Coroutine[Any, Any, Any]) -> BackendError:
    """The error a backend call raises; it must be ours, chained, and say 'Jira'."""
    with pytest.raises(BackendError) as caught:
        run(coroutine)
    error = caught.value
    assert error.backend == "Jira" and type(error).__module__ == "actions.errors"
    return error


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- configuration -----------------------------------------------------------------------------


def test_config_from_env() -> None:
    assert JiraConfig.from_env({}) is None
    assert JiraConfig.from_env({"JIRA_URL": "  "}) is None
    config = JiraConfig.from_env({"JIRA_URL": "https://jira.example.com/jira/",
                                  "JIRA_USER": "opsbot", "JIRA_TOKEN": "s3cret-token",
                                  "JIRA_TIMEOUT": "2.5"})
    assert config is not None
    assert (config.url, config.user, config.timeout) == ("https://jira.example.com/jira",
                                                         "opsbot", 2.5)
    assert config.token.reveal() == "s3cret-token"
    assert "s3cret-token" not in repr(config) and "s3cret-token" not in str(config)
    with pytest.raises(ConfigError, match="JIRA_USER and JIRA_TOKEN are not"):
        JiraConfig.from_env({"JIRA_URL": "https://jira.example.com"})
    with pytest.raises(ConfigError, match="JIRA_TOKEN is not"):
        JiraConfig.from_env({"JIRA_URL": "https://jira.example.com", "JIRA_USER": "opsbot"})
    with pytest.raises(ConfigError, match="JIRA_TIMEOUT must be a number"):
        JiraConfig.from_env({"JIRA_URL": "https://jira.example.com", "JIRA_USER": "u",
                             "JIRA_TOKEN": "t", "JIRA_TIMEOUT": "soon"})
    with pytest.raises(ConfigError, match="JIRA_URL must not contain a user name") as leaked:
        JiraConfig.from_env({"JIRA_URL": "https://bob:hunter2@jira.example.com"})
    assert "hunter2" not in str(leaked.value)
    with pytest.raises(ConfigError, match="JIRA_URL must be Jira's http"):
        JiraConfig.from_env({"JIRA_URL": "jira.example.com"})
    plain: Any = "plain-token"
    wrapped = JiraConfig("https://jira.example.com", "opsbot", plain)
    assert isinstance(wrapped.token, Secret) and "plain-token" not in repr(wrapped)


def test_constructor_does_no_network_io(sim: JiraSimulator) -> None:
    backend = backend_for(sim)
    assert sim.request_log() == []
    JiraBackend(JiraConfig(f"http://127.0.0.1:{closed_port()}", "opsbot", Secret("x" * 8)))
    assert sim.token not in repr(backend)
    assert run(backend.ping()) == "9.12.15"
    targets = [r.target for r in sim.request_log()]
    assert targets == ["/rest/api/2/serverInfo", "/rest/api/2/myself",
                       "/rest/api/2/serverInfo"]


# -- reading -----------------------------------------------------------------------------------


def test_projects_priorities_and_issue_types(backend: JiraBackend) -> None:
    assert run(backend.projects()) == [("OPS", "Operations"), ("PAY", "Payments")]
    assert run(backend.priorities()) == ["Highest", "High", "Medium", "Low", "Lowest"]
    assert run(backend.issue_types("ops")) == ["Task", "Bug", "Incident"]
    assert str(failure(backend.issue_types("NOPE"))) == \
        "There is no Jira project NOPE (or opsbot may not see it)."
    assert isinstance(failure(backend.issue_types("no pe")), InvalidRequest)


def test_issue_reads_every_field(sim: JiraSimulator, backend: JiraBackend) -> None:
    issue = run(backend.issue(" ops-101 "))
    assert isinstance(issue, Issue)
    assert (issue.key, issue.summary) == ("OPS-101",
                                          "checkout 5.13.0 fails health checks on staging")
    assert (issue.status, issue.status_category, issue.priority, issue.issue_type) == \
        ("In Progress", "In Progress", "Highest", "Incident")
    assert (issue.assignee, issue.assignee_name, issue.reporter, issue.project) == \
        ("Bob Martins", "bob", "Alice Chen", "OPS")
    assert issue.url == f"{sim.url}browse/OPS-101"
    snapshot = sim.issue("OPS-101")
    assert issue.created == datetime.fromtimestamp(round(snapshot.created, 3), UTC)
    assert issue.updated > issue.created and issue.updated.tzinfo is not None
    assert issue.last_comment == Comment(
        "Alice Chen", "Keeping prod on 5.12.0 until this is fixed; no release today.",
        issue.updated)
    plain = run(backend.issue("OPS-102"))
    assert (plain.assignee, plain.assignee_name, plain.status_category) == (None, None, "To Do")


def test_missing_and_malformed_issue_keys(sim: JiraSimulator, backend: JiraBackend) -> None:
    missing = failure(backend.issue("OPS-999"))
    assert isinstance(missing, NotFound) and missing.__cause__ is not None
    assert str(missing) == "There is no issue OPS-999 (or opsbot may not see it)."
    before = len(sim.request_log())
    for call in (backend.issue("OPS123"), backend.comment("OPS123", "x"),
                 backend.transition("OPS123", "Done"), backend.assign("OPS123", "bob"),
                 backend.transitions("OPS123")):
        bad = failure(call)
        assert isinstance(bad, InvalidRequest)
        assert str(bad) == "'OPS123' is not an issue key (like OPS-123)."
    assert len(sim.request_log()) == before  # validated before any call


def test_search_filters_newest_updated_first(sim: JiraSimulator, backend: JiraBackend) -> None:
    everything = run(backend.search(limit=100))
    assert everything.total == 17 and len(everything.issues) == 17
    updated = [issue.updated for issue in everything.issues]
    assert updated == sorted(updated, reverse=True)
    open_ops = run(backend.search(project="ops", open_only=True, limit=3))
    assert isinstance(open_ops, SearchResult)
    assert open_ops.total == 8 and [i.key for i in open_ops.issues] == ["OPS-101", "OPS-123",
                                                                       "OPS-103"]
    assert {i.key for i in run(backend.search(priority="Highest")).issues} == {"OPS-101",
                                                                              "PAY-74"}
    in_progress = run(backend.search(project="PAY", status="in progress"))
    assert {i.key for i in in_progress.issues} == {"PAY-74", "PAY-77"}
    assert [i.key for i in run(backend.search(assignee=CURRENT_USER)).issues] == ["OPS-109"]
    assert {i.key for i in run(backend.search(assignee=UNASSIGNED, project="PAY")).issues} == \
        {"PAY-76", "PAY-79"}
    assert {i.key for i in run(backend.search(assignee="bob", open_only=True)).issues} == \
        {"OPS-101", "PAY-77"}
    found = run(backend.search(text="idempotency key reused"))  # words from a comment
    assert [i.key for i in found.issues] == ["PAY-74"] and found.issues[0].last_comment
    assert {i.key for i in run(backend.search(text="duplicate refunds")).issues} == {
        "PAY-74", "PAY-76"}  # every word, anywhere: PAY-76 mentions the "duplicate refund fix"
    assert run(backend.search(limit=0)).issues[0].key == everything.issues[0].key  # clamped
    jql = [r.target for r in sim.request_log() if r.target.startswith("/rest/api/2/search")]
    assert all("ORDER+BY+updated+DESC" in target for target in jql)


def test_search_text_cannot_inject_jql(sim: JiraSimulator, backend: JiraBackend) -> None:
    attack = 'x" OR project = PAY OR summary ~ "y'
    assert run(backend.search(project="OPS", text=attack)) == SearchResult((), 0)
    # The literal text, once it exists in OPS, is found, and still nothing from PAY.
    created = run(backend.create_issue("OPS", f"Odd summary {attack}"))
    result = run(backend.search(project="OPS", text=attack))
    assert [i.key for i in result.issues] == [created.key]
    # A status is a literal too: Jira looks for a status with that odd name and has none.
    odd = failure(backend.search(project="OPS", status='To Do" OR project = "PAY'))
    assert str(odd) == 'Jira has no status \'To Do" OR project = "PAY\'.'
    with pytest.raises(InvalidRequest, match="not a Jira project key"):
        run(backend.search(project='OPS" OR project = "PAY'))


def test_search_explains_unknown_values(backend: JiraBackend) -> None:
    assert str(failure(backend.search(project="NOPE"))) == \
        "There is no Jira project NOPE (or opsbot may not see it)."
    assert str(failure(backend.search(priority="Urgent"))) == \
        "Jira has no priority 'Urgent'; use Highest, High, Medium, Low or Lowest."
    assert str(failure(backend.search(status="Blocked"))) == "Jira has no status 'Blocked'."


# -- changing things ---------------------------------------------------------------------------


def test_create_issue(sim: JiraSimulator, backend: JiraBackend) -> None:
    issue = run(backend.create_issue("ops", "Login times out\n on Safari", priority="High",
                                     description="Since auth 4.0.2"))
    assert (issue.key, issue.summary, issue.status, issue.priority, issue.issue_type) == \
        ("OPS-124", "Login times out on Safari", "To Do", "High", "Bug")
    assert (issue.reporter, issue.assignee, issue.url) == ("OpsBot", None,
                                                           f"{sim.url}browse/OPS-124")
    assert sim.issue("OPS-124").description == "Since auth 4.0.2"
    story = run(backend.create_issue("PAY", "Refund status page", issue_type="Story"))
    assert (story.key, story.priority) == ("PAY-80", "Medium")
    assert str(failure(backend.create_issue("OPS", "x", priority="Urgent"))) == \
        "Jira has no priority 'Urgent'; use Highest, High, Medium, Low or Lowest."
    assert str(failure(backend.create_issue("OPS", "x", issue_type="Story"))) == \
        "OPS has no issue type 'Story'; use Task, Bug or Incident."
    assert str(failure(backend.create_issue("NOPE", "x"))) == \
        "There is no Jira project NOPE (or opsbot may not see it)."
    assert isinstance(failure(backend.create_issue("OPS", "  \n ")), InvalidRequest)
    assert "255" in str(failure(backend.create_issue("OPS", "x" * 300)))
    assert len(sim.issues("OPS")) == 11


def test_comment_and_last_comment(sim: JiraSimulator, backend: JiraBackend) -> None:
    comment = run(backend.comment("pay-77", "  Waiting on vendor. "))
    assert (comment.author, comment.body) == ("OpsBot", "Waiting on vendor.")
    assert run(backend.issue("PAY-77")).last_comment == comment
    assert sim.issue("PAY-77").comments[-1].author == "opsbot"
    assert isinstance(failure(backend.comment("PAY-77", " ")), InvalidRequest)
    assert str(failure(backend.comment("PAY-999", "hi"))) == \
        "There is no issue PAY-999 (or opsbot may not see it)."


def test_transitions_and_transition(sim: JiraSimulator, backend: JiraBackend) -> None:
    assert run(backend.transitions("OPS-102")) == ["In Progress"]
    assert run(backend.transitions("OPS-105")) == ["In Progress", "Done"]  # Reopened
    wrong = failure(backend.transition("OPS-102", "done"))
    assert isinstance(wrong, InvalidRequest)
    assert str(wrong) == "OPS-102 is To Do; from there it can move to In Progress, not 'done'."
    moved = run(backend.transition("OPS-102", "in progress"))
    assert (moved.status, moved.status_category) == ("In Progress", "In Progress")
    done = run(backend.transition("OPS-102", "DONE"))
    assert (done.status, done.status_category) == ("Done", "Done")
    assert str(failure(backend.transition("OPS-102", "Done"))) == "OPS-102 is already Done."
    reopened = run(backend.transition("OPS-102", "Reopen Issue"))  # a transition's name works
    assert reopened.status == "Reopened" and sim.issue("OPS-102").status == "Reopened"
    assert str(failure(backend.transitions("OPS-999"))) == \
        "There is no issue OPS-999 (or opsbot may not see it)."


def test_transition_sends_the_resolution_its_screen_requires(sim: JiraSimulator,
                                                             backend: JiraBackend) -> None:
    [done] = run(backend.transition_options("OPS-101"))
    assert (done.id, done.name, done.to) == ("31", "Done", "Done")
    assert done.field("resolution") == TransitionField(
        "resolution", "Resolution", True, ("Fixed", "Won't Fix", "Duplicate", "Incomplete",
                                           "Cannot Reproduce", "Done", "Won't Do"))
    assert done.standard_resolution() == "Done" and done.unfillable() == ()
    posts = len([r for r in sim.request_log() if r.method == "POST"])
    wrong = failure(backend.transition("OPS-101", "Done", "solved"))
    assert isinstance(wrong, InvalidRequest)
    assert str(wrong) == ("'solved' is not a resolution Jira allows for moving OPS-101 to Done; "
                          "Jira allows Fixed, Won't Fix, Duplicate, Incomplete, Cannot Reproduce, "
                          "Done or Won't Do.")
    assert str(failure(backend.transition("OPS-102", "In Progress", "Fixed"))) == (
        "Jira's 'Start Progress' transition of OPS-102 takes no resolution, so 'Fixed' cannot "
        "be recorded; ask without one.")
    assert len([r for r in sim.request_log() if r.method == "POST"]) == posts  # nothing sent
    assert sim.issue("OPS-101").status == "In Progress"
    closed = run(backend.transition("OPS-101", "done", "wont fix"))  # any spelling
    assert (closed.status, closed.resolution) == ("Done", "Won't Fix")
    assert sim.issue("OPS-101").resolution == "Won't Fix"
    plain = run(backend.transition("OPS-103", "Done"))  # the standard resolution
    assert (plain.status, plain.resolution) == ("Done", "Done")


def test_a_refused_transition_is_explained_from_jiras_errors(
        sim: JiraSimulator, backend: JiraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Jira that leaves the screen's fields out of the expand still refuses the POST."""
    real = JiraBackend.transition_options

    async def without_fields(self: JiraBackend, key: str) -> list[Transition]:
        return [Transition(t.id, t.name, t.to) for t in await real(self, key)]

    monkeypatch.setattr(JiraBackend, "transition_options", without_fields)
    refused = failure(backend.transition("OPS-101", "Done"))
    assert isinstance(refused, InvalidRequest)
    assert str(refused) == ("Jira refused to move OPS-101 to Done (resolution: Resolution is "
                            "required). Resolutions Jira has: Fixed, Won't Fix, Duplicate, "
                            "Incomplete, Cannot Reproduce, Done, Won't Do.")
    assert sim.issue("OPS-101").status == "In Progress"


def test_assign_refuses_people_jira_cannot_assign(sim: JiraSimulator,
                                                  backend: JiraBackend) -> None:
    before = sim.issue("PAY-74").assignee
    refused = failure(backend.assign("PAY-74", "carol"))
    assert isinstance(refused, InvalidRequest)
    assert str(refused) == ("Carol Diaz (carol) can't be assigned issues in PAY; people who can: "
                            "Alice Chen (alice), Bob Martins (bob), Dave Okafor (dave), Erin Walsh "
                            "(erin), OpsBot (opsbot).")
    assert not [r for r in sim.request_log() if r.method == "PUT"]  # asked first, sent nothing
    assert sim.issue("PAY-74").assignee == before
    assert [u.name for u in run(backend.assignable_users("PAY-74", "carol"))] == []
    assert run(backend.assignee_for("OPS-102", "carol")) == User("carol", "Carol Diaz")


def test_assign_explains_jiras_refusal_when_the_permission_changed(
        sim: JiraSimulator, backend: JiraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check passed on a stale answer; Jira's 400 on the PUT is still explained."""
    real = JiraBackend.assignable_users

    async def stale(self: JiraBackend, key: str, query: str = ".",
                    limit: int = 50) -> list[User]:
        if query == "carol":
            return [User("carol", "Carol Diaz")]
        return await real(self, key, query, limit)

    monkeypatch.setattr(JiraBackend, "assignable_users", stale)
    refused = failure(backend.assign("PAY-74", "carol"))
    assert str(refused).startswith("Carol Diaz (carol) can't be assigned issues in PAY; people "
                                   "who can: Alice Chen (alice)")
    puts = [r for r in sim.request_log() if r.method == "PUT"]
    assert [r.status for r in puts] == [400] and sim.issue("PAY-74").assignee != "carol"


def test_assign_resolves_people(sim: JiraSimulator, backend: JiraBackend) -> None:
    assert run(backend.assign("OPS-102", "dave")).assignee == "Dave Okafor"
    assert run(backend.assign("OPS-102", "walsh")).assignee_name == "erin"
    assert run(backend.assign("OPS-102", "Carol Diaz")).assignee_name == "carol"
    assert sim.issue("OPS-102").assignee == "carol"
    assert str(failure(backend.assign("OPS-102", "zed"))) == "Jira has no user matching 'zed'."
    assert isinstance(failure(backend.assign("OPS-102", "zed")), NotFound)
    assert str(failure(backend.assign("OPS-999", "dave"))) == \
        "There is no issue OPS-999 (or opsbot may not see it)."
    assert run(backend.find_users("ali")) == [User("alice", "Alice Chen")]


def test_assign_asks_when_several_people_match(tmp_path: Path) -> None:
    seed = tmp_path / "jira.yml"
    seed.write_text("users: {dave: Dave Okafor, davidk: David Kim}\n"
                    "projects:\n  - key: OPS\n    issues:\n      - {summary: a, ago: 1h}\n")
    with JiraSimulator(seed) as sim:
        backend = backend_for(sim)
        ambiguous = failure(backend.assign("OPS-1", "da"))
        assert isinstance(ambiguous, InvalidRequest)
        assert str(ambiguous) == ("'da' matches several Jira users: Dave Okafor (dave), "
                                  "David Kim (davidk). Which one?")
        assert sim.issue("OPS-1").assignee is None
        assert run(backend.assign("OPS-1", "dave")).assignee_name == "dave"  # exact wins


# -- failures ----------------------------------------------------------------------------------


def test_wrong_token_is_an_auth_error_without_the_token(sim: JiraSimulator) -> None:
    token = "wrong-token-123456"
    backend = backend_for(sim, token=token)
    error = failure(backend.ping())
    assert isinstance(error, BackendAuthError)
    assert "check JIRA_TOKEN (a personal access token; JIRA_AUTH=basic" in str(error)
    assert token not in str(error) and token not in repr(error) and token not in repr(backend)
    assert sim.token not in str(error)
    basic = failure(backend_for(sim, token=token, auth="basic").ping())
    assert isinstance(basic, BackendAuthError) and "check JIRA_USER and JIRA_TOKEN" in str(basic)


def test_a_personal_access_token_is_sent_as_bearer(sim: JiraSimulator) -> None:
    assert run(backend_for(sim).issue("OPS-101")).key == "OPS-101"
    assert run(backend_for(sim, auth="basic").issue("OPS-101")).key == "OPS-101"
    config = JiraConfig.from_env({"JIRA_URL": sim.url, "JIRA_USER": sim.user,
                                  "JIRA_TOKEN": sim.token})
    assert config is not None and config.auth == "bearer"
    with pytest.raises(ConfigError, match="JIRA_AUTH is 'token'; it is one of bearer, basic"):
        JiraConfig.from_env({"JIRA_URL": sim.url, "JIRA_USER": sim.user,
                             "JIRA_TOKEN": sim.token, "JIRA_AUTH": "token"})


def test_basic_auth_disabled_says_to_use_a_token() -> None:
    with JiraSimulator(basic_auth=False) as strict:
        error = failure(backend_for(strict, auth="basic").ping())
        assert isinstance(error, BackendAuthError)
        assert "has basic authentication disabled: set JIRA_AUTH=bearer" in str(error)
        assert run(backend_for(strict).issue("OPS-101")).key == "OPS-101"


def test_a_captcha_after_failed_logins_is_named_not_taken_for_a_permission() -> None:
    with JiraSimulator() as locked:
        for _ in range(3):
            assert isinstance(failure(backend_for(locked, token="wrong-pw-000000",
                                                  auth="basic").ping()), BackendAuthError)
        error = failure(backend_for(locked, auth="basic").issue("OPS-101"))  # right password
        assert isinstance(error, BackendAuthError)
        assert "wants a CAPTCHA for the user 'opsbot'" in str(error)
        assert "may not" not in str(error)
        assert run(backend_for(locked).issue("OPS-101")).key == "OPS-101"  # a token still works
        locked.solve_captcha()
        assert run(backend_for(locked, auth="basic").issue("OPS-101")).key == "OPS-101"


def test_jira_cloud_is_said_to_be_unsupported() -> None:
    with JiraSimulator(deployment="Cloud") as cloud:
        error = failure(backend_for(cloud).ping())
        assert isinstance(error, BackendUnavailable)
        assert "is Jira Cloud, which opsbot does not support" in str(error)


def test_connection_refused(sim: JiraSimulator) -> None:
    backend = JiraBackend(JiraConfig(f"http://127.0.0.1:{closed_port()}", "opsbot",
                                     Secret(sim.token), timeout=2))
    error = failure(backend.issue("OPS-101"))
    assert isinstance(error, BackendUnavailable)
    assert "the connection was refused" in str(error) and "JIRA_URL" in str(error)
    assert sim.token not in str(error)


def test_timeout_and_server_errors(sim: JiraSimulator, backend: JiraBackend) -> None:
    impatient = backend_for(sim, timeout=1.0)
    sim.delay_next(2.5, path="/issue/OPS-101")  # only this request is held back
    slow = failure(impatient.issue("OPS-101"))
    assert isinstance(slow, BackendUnavailable) and "did not answer within 1s" in str(slow)
    assert "JIRA_TIMEOUT" in str(slow)
    sim.fail_next(500)
    broken = failure(backend.search(project="OPS"))
    assert isinstance(broken, BackendUnavailable) and "internal error (500)" in str(broken)
    sim.fail_next(503)
    assert "answered 503" in str(failure(backend.projects()))
    assert run(backend.issue("OPS-101")).key == "OPS-101"  # and then it recovers


def test_a_failed_first_call_does_not_keep_a_broken_client(sim: JiraSimulator) -> None:
    backend = backend_for(sim)
    sim.fail_next(500, path="/serverInfo")
    assert isinstance(failure(backend.projects()), BackendUnavailable)
    assert run(backend.projects())[0] == ("OPS", "Operations")


# -- build_jql ---------------------------------------------------------------------------------


def test_build_jql_quotes_every_value() -> None:
    assert build_jql() == "ORDER BY updated DESC"
    assert build_jql(project="ops", priority="High", status="In Progress", open_only=True,
                     assignee="bob", text="login timeout") == (
        'project = "OPS" AND priority = "High" AND status = "In Progress" AND '
        'statusCategory != Done AND assignee = "bob" AND text ~ "login timeout" '
        "ORDER BY updated DESC")
    assert build_jql(assignee=CURRENT_USER) == "assignee = currentUser() ORDER BY updated DESC"
    assert build_jql(assignee=UNASSIGNED) == "assignee is EMPTY ORDER BY updated DESC"
    assert build_jql(assignee="currentUser ()") == \
        'assignee = "currentUser ()" ORDER BY updated DESC'
    assert build_jql(project=" ", text="  ", status="") == "ORDER BY updated DESC"


def test_build_jql_escapes_quotes_and_backslashes() -> None:
    attack = 'x" OR project = PAY OR summary ~ "y'
    assert build_jql(project="OPS", text=attack) == (
        'project = "OPS" AND text ~ "x\\" OR project = PAY OR summary ~ \\"y" '
        "ORDER BY updated DESC")
    assert build_jql(text="C:\\temp\\") == 'text ~ "C:\\\\temp\\\\" ORDER BY updated DESC'
    assert build_jql(text='ends with \\"') == 'text ~ "ends with \\\\\\"" ORDER BY updated DESC'
    assert build_jql(status='Done" OR status != "x') == \
        'status = "Done\\" OR status != \\"x" ORDER BY updated DESC'
    assert build_jql(assignee='bob" OR assignee is EMPTY OR assignee = "x') == \
        'assignee = "bob\\" OR assignee is EMPTY OR assignee = \\"x" ORDER BY updated DESC'
    assert build_jql(text="two\nlines\tand tab") == \
        'text ~ "two\\nlines\\tand tab" ORDER BY updated DESC'


def test_build_jql_validates_project_and_priority() -> None:
    for project in ('OPS" OR project = "PAY', "OPS PAY", "1OPS", "O", "OPS;", ""):
        if project:
            with pytest.raises(InvalidRequest, match="is not a Jira project key"):
                build_jql(project=project)
    for priority in ('High" OR priority = "Low', "High)", "(High", "Hi~gh"):
        with pytest.raises(InvalidRequest, match="is not a Jira priority name"):
            build_jql(priority=priority)
    assert build_jql(project="pay_2", priority="Very High") == \
        'project = "PAY_2" AND priority = "Very High" ORDER BY updated DESC'


def test_build_jql_output_parses_back_to_the_literal(sim: JiraSimulator,
                                                     backend: JiraBackend) -> None:
    """Whatever the text, the simulator's JQL parser reads back one text clause."""
    for text in ('a "quoted" word', "back\\slash", 'x" OR project = PAY OR summary ~ "y',
                 "tab\there", "'single'", "(paren) AND OR NOT"):
        result = run(backend.search(project="OPS", text=text, limit=1))
        assert all(issue.project == "OPS" for issue in result.issues)
    searches = [r for r in sim.request_log() if r.target.startswith("/rest/api/2/search")]
    assert searches and all(r.status == 200 for r in searches)


def test_dates_are_aware_and_recent(backend: JiraBackend) -> None:
    issue = run(backend.issue("PAY-79"))
    assert issue.created.tzinfo is not None
    assert datetime.now(UTC) - issue.created < timedelta(hours=1)


def test_set_priority_and_unknown_priorities(sim: JiraSimulator, backend: JiraBackend) -> None:
    assert run(backend.set_priority("OPS-102", "high")).priority == "High"
    assert sim.issue("OPS-102").priority == "High"
    unknown = failure(backend.set_priority("OPS-102", "urgent"))
    assert isinstance(unknown, InvalidRequest)
    assert str(unknown).startswith("Jira has no priority 'urgent'; use ")
    assert "Lowest" in str(unknown)
    assert sim.issue("OPS-102").priority == "High"
    assert str(failure(backend.set_priority("OPS-999", "Low"))) == \
        "There is no issue OPS-999 (or opsbot may not see it)."
