"""The Jira simulator, through the real jira client (3.10.5) over real HTTP.

A manual clock keeps relative-date JQL deterministic; nothing sleeps except the one
test that trips a client timeout on purpose.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jira
import pytest
import requests

from simulators.jira import JiraSimulator, SeedError

ROOT = Path(__file__).resolve().parent.parent
OPS = {"OPS-101", "OPS-102", "OPS-103", "OPS-104", "OPS-105", "OPS-106", "OPS-107", "OPS-108",
       "OPS-109", "OPS-123"}
PAY = {"PAY-71", "PAY-74", "PAY-75", "PAY-76", "PAY-77", "PAY-78", "PAY-79"}


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
def sim(clock: ManualClock) -> Iterator[JiraSimulator]:
    with JiraSimulator(clock=clock) as simulator:
        yield simulator


def connect(sim: JiraSimulator, token: str | None = None, timeout: float = 5) -> jira.JIRA:
    return jira.JIRA(sim.url, basic_auth=(sim.user, token or sim.token), max_retries=0,
                     timeout=timeout)


@pytest.fixture
def client(sim: JiraSimulator) -> jira.JIRA:
    return connect(sim)


def keys(client: jira.JIRA, jql: str, **kwargs: object) -> list[str]:
    return [issue.key for issue in client.search_issues(jql, maxResults=100, **kwargs)]


def refused(client: jira.JIRA, jql: str) -> jira.JIRAError:
    with pytest.raises(jira.JIRAError) as caught:
        client.search_issues(jql)
    assert caught.value.status_code == 400, jql
    return caught.value


# -- identity and auth -------------------------------------------------------------------------


def test_server_info_myself_and_fields(sim: JiraSimulator, client: jira.JIRA) -> None:
    info = client.server_info()
    assert (info["version"], info["versionNumbers"], info["deploymentType"]) == \
        ("9.12.15", [9, 12, 15], "Server")
    assert info["baseUrl"] == sim.url.rstrip("/")
    me = client.myself()
    assert (me["name"], me["displayName"]) == ("opsbot", "OpsBot")
    fields = {f["id"]: f for f in client.fields()}
    assert fields["issuetype"]["clauseNames"] == ["issuetype", "type"]
    assert {"summary", "status", "priority", "assignee", "created", "comment"} <= set(fields)
    assert client.user("alice").displayName == "Alice Chen"


def test_wrong_token_gets_seraph_401_and_anonymous_is_refused(sim: JiraSimulator) -> None:
    with pytest.raises(jira.JIRAError) as wrong:
        connect(sim, token="not-the-token")  # the constructor already asks for serverInfo
    assert wrong.value.status_code == 401
    assert "AUTHENTICATED_FAILED" in str(wrong.value.text)
    raw = requests.get(f"{sim.url}rest/api/2/myself", auth=("opsbot", "nope"), timeout=5)
    assert raw.status_code == 401 and raw.headers["X-Seraph-LoginReason"] == "AUTHENTICATED_FAILED"
    anonymous = requests.get(f"{sim.url}rest/api/2/issue/OPS-101", timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json()["errorMessages"] == [
        "You are not authenticated. Authentication required to perform this operation."]
    assert requests.get(f"{sim.url}rest/api/2/serverInfo", timeout=5).status_code == 200
    assert [r.user for r in sim.request_log()] == [None, None, None, None]
    assert sim.token not in repr(sim) and "**********" in repr(sim)


# -- projects, types, priorities, users --------------------------------------------------------


def test_projects_issue_types_priorities_and_users(client: jira.JIRA) -> None:
    assert [(p.key, p.name) for p in client.projects()] == [("OPS", "Operations"),
                                                            ("PAY", "Payments")]
    ops = client.project("OPS")
    assert (ops.id, ops.lead.name) == ("10000", "carol")
    assert [t.name for t in ops.issueTypes] == ["Task", "Bug", "Incident"]
    assert [t.name for t in client.project_issue_types("PAY")] == ["Story", "Bug", "Task"]
    assert {t.name for t in client.issue_types()} == {"Bug", "Task", "Story", "Incident"}
    assert [p.name for p in client.priorities()] == ["Highest", "High", "Medium", "Low",
                                                     "Lowest"]
    with pytest.raises(jira.JIRAError) as missing:
        client.project("NOPE")
    assert (missing.value.status_code, missing.value.text) == \
        (404, "No project could be found with key 'NOPE'.")
    assert [u.name for u in client.search_users(user="ali")] == ["alice"]
    assert [u.name for u in client.search_users(user="okaf")] == ["dave"]  # display-name word
    assert len(client.search_users(user=".")) == 6  # Jira Server's "everyone"


# -- issues ------------------------------------------------------------------------------------


def test_get_issue_has_every_field_opsbot_reads(sim: JiraSimulator, client: jira.JIRA) -> None:
    issue = client.issue("ops-101")  # keys are case-insensitive
    fields = issue.fields
    assert issue.key == "OPS-101" and issue.id == sim.issue("OPS-101").id
    assert fields.summary == "checkout 5.13.0 fails health checks on staging"
    assert (fields.status.name, fields.status.statusCategory.name) == ("In Progress",
                                                                       "In Progress")
    assert (fields.priority.name, fields.issuetype.name) == ("Highest", "Incident")
    assert (fields.assignee.name, fields.assignee.displayName) == ("bob", "Bob Martins")
    assert (fields.reporter.name, fields.project.key) == ("alice", "OPS")
    assert fields.comment.total == 2 and fields.comment.comments[-1].author.name == "alice"
    assert fields.created.endswith("+0000") and fields.created < fields.updated
    assert "readiness probe" in fields.description
    assert issue.permalink() == f"{sim.url.rstrip('/')}/browse/OPS-101"
    unassigned = client.issue("OPS-102")
    assert unassigned.fields.assignee is None and unassigned.fields.resolution is None
    only = client.issue("OPS-101", fields="summary,status")
    assert set(only.raw["fields"]) == {"summary", "status"}
    with pytest.raises(jira.JIRAError) as missing:
        client.issue("OPS-999")
    assert (missing.value.status_code, missing.value.text) == (
        404, "Issue does not exist or you do not have permission to see it.")


def test_create_issue_answers_201_and_numbers_keys_per_project(sim: JiraSimulator,
                                                                client: jira.JIRA) -> None:
    raw = requests.post(f"{sim.url}rest/api/2/issue", auth=(sim.user, sim.token), timeout=5,
                        json={"fields": {"project": {"key": "OPS"}, "summary": "Disk full",
                                         "issuetype": {"name": "Bug"}}})
    assert raw.status_code == 201
    assert raw.json() == {"id": raw.json()["id"], "key": "OPS-124",
                          "self": f"{sim.url}rest/api/2/issue/{raw.json()['id']}"}
    second = client.create_issue(fields={
        "project": {"key": "OPS"}, "summary": "Raise the disk alert threshold",
        "issuetype": {"name": "Task"}, "priority": {"name": "High"},
        "description": "df shows 100%", "assignee": {"name": "erin"}, "labels": ["disk"]})
    assert second.key == "OPS-125" and int(second.id) == int(raw.json()["id"]) + 1
    assert (second.fields.status.name, second.fields.priority.name) == ("To Do", "High")
    assert (second.fields.reporter.name, second.fields.assignee.name) == ("opsbot", "erin")
    bare = client.create_issue(project="PAY", summary="Check the refund queue", issuetype="Task")
    assert bare.key == "PAY-80" and bare.fields.priority.name == "Medium"  # Jira's default
    snapshot = sim.issue("OPS-125")
    assert (snapshot.summary, snapshot.description, snapshot.labels) == \
        ("Raise the disk alert threshold", "df shows 100%", ("disk",))


def test_create_issue_errors_look_like_jira(sim: JiraSimulator, client: jira.JIRA) -> None:
    def error(fields: dict[str, object]) -> dict[str, str]:
        raw = requests.post(f"{sim.url}rest/api/2/issue", auth=(sim.user, sim.token),
                            timeout=5, json={"fields": fields})
        assert raw.status_code == 400 and raw.json()["errorMessages"] == []
        return raw.json()["errors"]

    ops, bug = {"key": "OPS"}, {"name": "Bug"}
    assert error({"project": ops, "issuetype": bug}) == {
        "summary": "You must specify a summary of the issue."}
    assert error({"project": ops, "issuetype": bug, "summary": "x",
                  "priority": {"name": "Urgent"}}) == {
        "priority": "The priority selected is invalid."}
    assert error({"project": {"key": "NOPE"}, "issuetype": bug, "summary": "x"}) == {
        "project": "valid project is required"}
    assert error({"project": ops, "issuetype": {"name": "Story"}, "summary": "x"}) == {
        "issuetype": "The issue type selected is invalid."}
    assert error({"project": ops, "issuetype": bug, "summary": "two\nlines"}) == {
        "summary": "The summary is invalid because it contains newline characters."}
    assert error({"project": ops, "issuetype": bug, "summary": "x",
                  "assignee": {"name": "zed"}, "duedate": "2030-01-01"}) == {
        "assignee": "User 'zed' does not exist.",
        "duedate": "Field 'duedate' cannot be set. It is not on the appropriate screen, "
                   "or unknown."}
    with pytest.raises(jira.JIRAError) as caught:
        client.create_issue(fields={"project": ops, "issuetype": bug, "summary": ""})
    assert caught.value.text == "You must specify a summary of the issue."
    assert len(sim.issues("OPS")) == len(OPS)  # nothing was created


# -- JQL ---------------------------------------------------------------------------------------


def test_search_by_project_status_and_category(client: jira.JIRA) -> None:
    assert set(keys(client, "project = OPS")) == OPS
    assert set(keys(client, 'project in (OPS, "Payments")')) == OPS | PAY
    assert set(keys(client, 'project = PAY AND status = "In Progress"')) == {"PAY-74", "PAY-77"}
    assert set(keys(client, 'status in ("to do", Reopened) AND project = OPS')) == {
        "OPS-102", "OPS-104", "OPS-105", "OPS-107", "OPS-123"}
    assert set(keys(client, "statusCategory = Done")) == {"OPS-106", "OPS-108", "PAY-71"}
    open_ops = set(keys(client, "project = OPS AND statusCategory != Done"))
    assert open_ops == OPS - {"OPS-106", "OPS-108"}
    assert set(keys(client, "project = OPS AND NOT statusCategory = Done")) == open_ops
    assert set(keys(client, "resolution = Unresolved AND project = OPS")) == open_ops


def test_search_by_assignee_and_priority(client: jira.JIRA) -> None:
    assert keys(client, "assignee = currentUser()") == ["OPS-109"]
    assert set(keys(client, 'assignee = "bob"')) == {"OPS-101", "OPS-108", "PAY-77"}
    assert set(keys(client, "assignee = 'Bob Martins'")) == {"OPS-101", "OPS-108", "PAY-77"}
    assert set(keys(client, "assignee is EMPTY")) == {"OPS-102", "OPS-107", "OPS-123", "PAY-76",
                                                      "PAY-79"}
    assert set(keys(client, "assignee != bob AND project = PAY")) == {  # never the unassigned
        "PAY-71", "PAY-74", "PAY-75", "PAY-78"}
    assert set(keys(client, "priority = High")) == {"OPS-102", "OPS-103", "OPS-108", "PAY-75",
                                                    "PAY-77"}
    assert set(keys(client, "priority in (Highest, High) AND project = OPS")) == {
        "OPS-101", "OPS-102", "OPS-103", "OPS-108"}
    assert set(keys(client, "priority >= High AND project = PAY")) == {"PAY-74", "PAY-75",
                                                                       "PAY-77"}
    assert set(keys(client, "labels = flaky")) == {"OPS-105"}


def test_text_search_unescapes_string_literals(client: jira.JIRA) -> None:
    assert keys(client, 'text ~ "health checks"') == ["OPS-101"]
    assert keys(client, "text ~ 'connection pool'") == ["OPS-101"]  # found in a comment
    assert set(keys(client, 'summary ~ "refund*"')) == {"PAY-71", "PAY-74", "PAY-79"}
    assert keys(client, 'summary ~ "\\"duplicate refunds\\""') == ["PAY-74"]  # a phrase
    assert keys(client, 'summary ~ "\\"refunds duplicate\\""') == []
    assert keys(client, 'comment ~ "vendor"') == ["PAY-77"]
    created = client.create_issue(fields={
        "project": {"key": "OPS"}, "issuetype": {"name": "Bug"},
        "summary": 'Quote " and backslash \\ in "nginx" config'})
    assert keys(client, 'summary ~ "\\"nginx\\" config"') == [created.key]
    # A quote inside the literal is text, not the end of the string: structure cannot change.
    injected = 'project = OPS AND text ~ "x\\" OR project = PAY OR summary ~ \\"y"'
    assert keys(client, injected) == []
    assert keys(client, 'summary ~ "nginx" AND description !~ "anything"') == [created.key]


def test_relative_dates_follow_the_clock(clock: ManualClock, client: jira.JIRA) -> None:
    clock.advance(60)
    assert set(keys(client, "created >= -1d")) == {"OPS-101", "OPS-109", "OPS-123", "PAY-76",
                                                   "PAY-79"}
    assert set(keys(client, "updated >= -2h")) == {"OPS-101", "PAY-79"}
    assert set(keys(client, 'updated >= "-1w 2d" AND updated < -2d')) == {"PAY-78", "OPS-106",
                                                                         "OPS-108", "OPS-104"}
    client.add_comment("OPS-107", "Still needed?")
    assert set(keys(client, "updated >= -2h")) == {"OPS-101", "PAY-79", "OPS-107"}
    clock.advance(3 * 3600)
    assert keys(client, "updated >= -2h") == []
    assert set(keys(client, "created <= -20d")) == {"OPS-107"}
    assert "OPS-107" in keys(client, "created < startOfDay()")


def test_and_or_parentheses_order_by_and_paging(client: jira.JIRA) -> None:
    grouped = set(keys(client, "project = OPS AND (priority = Highest OR assignee = carol)"))
    assert grouped == {"OPS-101", "OPS-105"}
    ungrouped = set(keys(client, "project = OPS AND priority = Highest OR assignee = carol"))
    assert ungrouped == {"OPS-101", "OPS-105"}  # AND binds tighter than OR
    assert set(keys(client, "assignee = carol OR project = PAY AND priority = Highest")) == {
        "OPS-105", "PAY-74"}
    assert keys(client, "project = PAY ORDER BY created ASC") == [
        "PAY-71", "PAY-78", "PAY-77", "PAY-74", "PAY-75", "PAY-76", "PAY-79"]
    assert keys(client, "project = PAY ORDER BY created DESC")[:2] == ["PAY-79", "PAY-76"]
    assert keys(client, "project = PAY order by priority desc, key asc") == [
        "PAY-74", "PAY-75", "PAY-77", "PAY-71", "PAY-76", "PAY-78", "PAY-79"]
    assert keys(client, "project = OPS ORDER BY updated DESC")[0] == "OPS-101"
    everything = keys(client, "ORDER BY key ASC")
    assert len(everything) == len(OPS | PAY) and everything[0] == "OPS-101"
    page = client.search_issues("ORDER BY key ASC", startAt=5, maxResults=4)
    assert page.total == len(everything) and [i.key for i in page] == everything[5:9]
    posted = client.search_issues("ORDER BY key ASC", startAt=5, maxResults=4, use_post=True)
    assert [i.key for i in posted] == everything[5:9]
    assert [i.key for i in client.search_issues("ORDER BY key ASC", maxResults=False)] == \
        everything  # the client pages on its own
    assert client.search_issues("project = OPS", maxResults=2, json_result=True)["total"] == 10


def test_unsupported_or_invalid_jql_is_a_400_never_everything(client: jira.JIRA) -> None:
    assert refused(client, "project = NOPE").text == \
        "The value 'NOPE' does not exist for the field 'project'."
    assert refused(client, 'status = "Blocked"').text == \
        "The value 'Blocked' does not exist for the field 'status'."
    assert refused(client, "project = OPS AND").text == \
        "Error in the JQL Query: Expecting a field name before the end of the query."
    assert "Expecting either 'OR' or 'AND' but got 'status'" in \
        str(refused(client, "project = OPS status = Done").text)
    assert "Expecting ')' before the end" in str(refused(client, "(project = OPS").text)
    assert "has not been completed" in str(refused(client, 'summary ~ "open').text)
    assert "reserved JQL character" in str(refused(client, "cf[10010] = 1").text)
    assert refused(client, "summary = disk").text == \
        "The operator '=' is not supported by the 'summary' field."
    assert refused(client, "foo = bar").text == \
        "Field 'foo' does not exist or you do not have permission to view it."
    assert "does not support the field 'fixVersion'" in \
        str(refused(client, "fixVersion = 1.0").text)
    assert "history operator" in str(refused(client, "status was Done").text)
    assert "function 'membersOf()'" in str(refused(client, "assignee in membersOf(devs)").text)
    assert "Date value '-1x'" in str(refused(client, "created >= -1x").text)
    assert refused(client, "ORDER BY votes").text == "Not able to sort using field 'votes'."
    lenient = client.search_issues("project = NOPE", validate_query=False, json_result=True)
    assert lenient["total"] == 0 and lenient["warningMessages"]


# -- comments, transitions, assignment ---------------------------------------------------------


def test_comments_are_added_and_listed(sim: JiraSimulator, client: jira.JIRA) -> None:
    added = client.add_comment("PAY-77", "Vendor shipped a fix; retesting.")
    assert added.author.name == "opsbot" and added.body == "Vendor shipped a fix; retesting."
    bodies = [c.body for c in client.comments("PAY-77")]
    assert len(bodies) == 3 and bodies[-1] == added.body
    assert client.comment("PAY-77", added.id).body == added.body
    assert client.issue("PAY-77").fields.comment.total == 3
    assert sim.issue("PAY-77").comments[-1].author == "opsbot"
    empty = requests.post(f"{sim.url}rest/api/2/issue/PAY-77/comment", json={"body": " "},
                          auth=(sim.user, sim.token), timeout=5)
    assert empty.status_code == 400
    assert empty.json()["errors"] == {"comment": "Comment body can not be empty!"}
    with pytest.raises(jira.JIRAError) as missing:
        client.add_comment("PAY-999", "hello")
    assert missing.value.status_code == 404


def test_transitions_follow_the_workflow(sim: JiraSimulator, client: jira.JIRA) -> None:
    available = client.transitions("OPS-102")
    assert [(t["id"], t["name"], t["to"]["name"]) for t in available] == [
        ("11", "Start Progress", "In Progress")]
    client.transition_issue("OPS-102", "start progress")  # by name: GET, then POST the id
    assert client.issue("OPS-102").fields.status.name == "In Progress"
    client.transition_issue("OPS-102", "31", comment="Fixed in search 1.10.1",  # by id (int)
                            fields={"resolution": {"name": "Done"}})
    done = client.issue("OPS-102")
    assert (done.fields.status.name, done.fields.resolution.name) == ("Done", "Done")
    assert done.fields.comment.comments[-1].body == "Fixed in search 1.10.1"
    assert [t["to"]["name"] for t in client.transitions("OPS-102")] == ["Reopened"]
    with pytest.raises(jira.JIRAError) as invalid:
        client.transition_issue("OPS-102", "11")
    assert invalid.value.status_code == 400
    assert "workflow operation (Start Progress) that is not valid" in str(invalid.value.text)
    with pytest.raises(jira.JIRAError, match="Invalid transition name"):
        client.transition_issue("OPS-102", "Close")  # the client's own check, no POST
    client.transition_issue("OPS-102", "41")
    assert [t["to"]["name"] for t in client.transitions("OPS-102")] == ["In Progress", "Done"]
    assert sim.issue("OPS-102").status == "Reopened" and sim.issue("OPS-102").resolved is None
    posts = [r for r in sim.request_log() if r.method == "POST" and "transitions" in r.target]
    assert [r.status for r in posts] == [204, 204, 400, 204]
    # by name the client posts the id string it read; by id it posts a number
    assert '"id": "11"' in posts[0].body and '"id": 31' in posts[1].body


def test_done_needs_a_resolution_from_its_screen(sim: JiraSimulator, client: jira.JIRA) -> None:
    plain = client.transitions("OPS-101")  # In Progress
    assert [t["name"] for t in plain] == ["Done"] and "fields" not in plain[0]
    [done] = client.transitions("OPS-101", expand="transitions.fields")
    field = done["fields"]["resolution"]
    assert done["hasScreen"] is True and list(done["fields"]) == ["resolution"]
    assert (field["required"], field["name"], field["operations"]) == (True, "Resolution", ["set"])
    names = [r.name for r in client.resolutions()]
    assert [v["name"] for v in field["allowedValues"]] == names
    assert {"Fixed", "Won't Fix", "Duplicate", "Done"} <= set(names)
    with pytest.raises(jira.JIRAError) as missing:
        client.transition_issue("OPS-101", "31", comment="closing")
    assert missing.value.status_code == 400
    assert missing.value.response.json() == {"errorMessages": [],
                                             "errors": {"resolution": "Resolution is required."}}
    assert sim.issue("OPS-101").status == "In Progress"  # nothing changed, no comment either
    assert sim.issue("OPS-101").comments[-1].body != "closing"
    for wrong in ({"name": "fixed"}, {"name": "Solved"}, {"id": "999"}, "Fixed"):
        with pytest.raises(jira.JIRAError) as bad:
            client.transition_issue("OPS-101", "31", fields={"resolution": wrong})
        assert set(bad.value.response.json()["errors"]) == {"resolution"}, wrong
    with pytest.raises(jira.JIRAError) as off_screen:
        client.transition_issue("OPS-101", "31", fields={"resolution": {"name": "Fixed"},
                                                         "priority": {"name": "Low"}})
    assert off_screen.value.response.json()["errors"] == {
        "priority": "Field 'priority' cannot be set. It is not on the appropriate screen, "
                    "or unknown."}
    assert sim.issue("OPS-101").status == "In Progress"
    client.transition_issue("OPS-101", "Done", fields={"resolution": {"name": "Won't Fix"}})
    assert (sim.issue("OPS-101").status, sim.issue("OPS-101").resolution) == ("Done", "Won't Fix")
    assert client.issue("OPS-101").fields.resolution.name == "Won't Fix"
    assert "OPS-101" in keys(client, "resolution = \"Won't Fix\"")
    assert "OPS-101" not in keys(client, "resolution = Done")
    client.transition_issue("OPS-101", "41")
    assert sim.issue("OPS-101").resolution is None  # reopening clears it
    raw = requests.post(f"{sim.url}rest/api/2/issue/OPS-101/transitions",
                        auth=(sim.user, sim.token),
                        json={"transition": {"id": "11"}, "fields": {"resolution": {"id": "1"}}},
                        timeout=5)
    assert raw.status_code == 400 and set(raw.json()["errors"]) == {"resolution"}
    assert client.resolution("1").name == "Fixed"


def test_assign_by_name_and_errors(sim: JiraSimulator, client: jira.JIRA) -> None:
    assert client.assign_issue("OPS-102", "dave") is True
    assert sim.issue("OPS-102").assignee == "dave"
    puts = [r for r in sim.request_log() if r.method == "PUT"]
    assert puts[-1].target == "/rest/api/latest/issue/OPS-102/assignee"
    assert client.assign_issue("OPS-102", None) and sim.issue("OPS-102").assignee is None
    with pytest.raises(jira.JIRAError, match="No matching user found"):
        client.assign_issue("OPS-102", "zed")
    raw = requests.put(f"{sim.url}rest/api/2/issue/OPS-102/assignee", json={"name": "zed"},
                       auth=(sim.user, sim.token), timeout=5)
    assert raw.status_code == 400 and raw.json()["errors"] == {
        "assignee": "User 'zed' does not exist."}
    with pytest.raises(jira.JIRAError) as missing:
        client.assign_issue("OPS-999", "dave")
    assert missing.value.status_code == 404


def test_only_assignable_users_can_be_assigned(sim: JiraSimulator, client: jira.JIRA) -> None:
    before = sim.issue("PAY-74").assignee
    raw = requests.put(f"{sim.url}rest/api/2/issue/PAY-74/assignee", json={"name": "carol"},
                       auth=(sim.user, sim.token), timeout=5)
    assert raw.status_code == 400 and raw.json() == {
        "errorMessages": [], "errors": {"assignee": "User 'carol' cannot be assigned issues."}}
    with pytest.raises(jira.JIRAError, match="cannot be assigned issues"):
        client.assign_issue("PAY-74", "carol")
    assert sim.issue("PAY-74").assignee == before
    client.assign_issue("OPS-102", "carol")  # carol may be assigned in OPS
    assert sim.issue("OPS-102").assignee == "carol"
    pay = [u.name for u in client.search_assignable_users_for_issues(".", issueKey="PAY-74")]
    assert "carol" not in pay and {"alice", "dave"} <= set(pay)
    assert [u.name for u in client.search_assignable_users_for_issues(
        "carol", issueKey="OPS-102")] == ["carol"]
    assert client.search_assignable_users_for_issues("carol", project="PAY") == []
    everyone = requests.get(f"{sim.url}rest/api/2/user/assignable/search",
                            params={"issueKey": "PAY-74"}, auth=(sim.user, sim.token), timeout=5)
    assert [u["name"] for u in everyone.json()] == ["alice", "bob", "dave", "erin", "opsbot"]
    neither = requests.get(f"{sim.url}rest/api/2/user/assignable/search",
                           params={"username": "a"}, auth=(sim.user, sim.token), timeout=5)
    assert neither.status_code == 400
    with pytest.raises(jira.JIRAError) as created:
        client.create_issue(fields={"project": {"key": "PAY"}, "summary": "s",
                                    "issuetype": {"name": "Bug"}, "assignee": {"name": "carol"}})
    assert created.value.response.json()["errors"] == {
        "assignee": "User 'carol' cannot be assigned issues."}
    with pytest.raises(jira.JIRAError, match="cannot be assigned issues"):
        client.issue("PAY-74").update(fields={"assignee": {"name": "carol"}})


# -- failure injection, helpers, seed, command line --------------------------------------------


def test_fail_next_and_delay_next(sim: JiraSimulator, client: jira.JIRA) -> None:
    sim.fail_next(500)
    with pytest.raises(jira.JIRAError) as failed:
        client.issue("OPS-101")
    assert failed.value.status_code == 500
    assert client.issue("OPS-101").key == "OPS-101"
    sim.fail_next(503, path="/search")
    assert client.issue("OPS-101").key == "OPS-101"  # the path does not match
    with pytest.raises(jira.JIRAError) as unavailable:
        client.search_issues("project = OPS")
    assert unavailable.value.status_code == 503
    impatient = jira.JIRA(sim.url, basic_auth=(sim.user, sim.token), max_retries=0,
                          timeout=0.5, get_server_info=False)  # no request until the next line
    sim.delay_next(1.5)
    with pytest.raises(requests.Timeout):
        impatient.issue("OPS-101")


def test_helpers_reject_mistakes(sim: JiraSimulator) -> None:
    with pytest.raises(KeyError, match="did you mean OPS-101"):
        sim.issue("OPS-1011")
    with pytest.raises(KeyError, match="no project"):
        sim.issues("NOPE")
    with pytest.raises(ValueError, match="status must be an HTTP error"):
        sim.fail_next(200)
    assert [i.key for i in sim.issues("pay")][0] == "PAY-71"
    assert sim.url in sim.describe()
    assert sim.env() == {"JIRA_URL": sim.url, "JIRA_USER": "opsbot", "JIRA_TOKEN": sim.token,
                         "JIRA_AUTH": "bearer"}


def test_seed_errors_name_the_place_and_the_fix(tmp_path: Path) -> None:
    seed = tmp_path / "jira.yml"
    seed.write_text("projects:\n  - key: OPS\n    issues:\n"
                    "      - {summary: a, ago: 1h, prority: High}\n")
    with pytest.raises(SeedError, match=r"projects\[0\] \(OPS\)\.issues\[0\].*unknown key"):
        JiraSimulator(seed)
    seed.write_text("projects:\n  - key: OPS\n    issues:\n      - {summary: a, ago: soon}\n")
    with pytest.raises(SeedError, match="time span like 3h"):
        JiraSimulator(seed)
    seed.write_text("users: {}\nprojects:\n  - key: OPS\n    issues:\n"
                    "      - {summary: a, ago: 1h, assignee: zed}\n")
    with pytest.raises(SeedError, match="'zed' is not a user"):
        JiraSimulator(seed)
    seed.write_text("projects:\n  - key: OPS\n    issues:\n"
                    "      - {summary: a, ago: 1h, status: Blocked}\n")
    with pytest.raises(SeedError, match="'Blocked' is not one of To Do"):
        JiraSimulator(seed)


def test_command_line_prints_url_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.jira", "--port", "0"], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        assert url.startswith("http://127.0.0.1:")
        user, token = (process.stdout.readline().split(":", 1)[1].strip() for _ in range(2))
        client = jira.JIRA(url, basic_auth=(user, token), max_retries=0, timeout=5)
        assert client.myself()["name"] == "opsbot"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
