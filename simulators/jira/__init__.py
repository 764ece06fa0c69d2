"""A local Jira (REST API v2, Server / Data Center) that jira 3.10.5 cannot tell from the real one.

Why: opsbot's Jira backend, its tests and ``opsbot demo`` need a Jira with realistic
projects, issues and comments, on any machine, offline. This package serves the REST
API that the ``jira`` library calls for everything opsbot does: ``serverInfo``,
``myself``, ``field``, projects, issue types (``issuetype`` and
``issue/createmeta/{project}/issuetypes``), priorities, statuses, resolutions, users
(``user?username=``, ``user/search?username=``, ``user/assignable/search``), creating,
reading and editing issues, comments, transitions through a small workflow (To Do -> In Progress
-> Done -> Reopened -> In Progress | Done), assigning, and JQL search (GET and POST)
with paging and ``ORDER BY``. Errors have Jira's shapes: ``{"errorMessages": [...],
"errors": {field: message}}`` with 400/404, and a Seraph 401 for bad credentials.

Signing in is as on Jira Data Center 8.14+:

* ``Authorization: Bearer <personal access token>`` (the token of ``user``), or Basic
  with the user name and password / token. ``basic_auth=False`` is an instance whose
  admin disabled basic authentication: every Basic request gets 403 "Basic
  Authentication has been disabled on this instance." (Atlassian, "Disabling basic
  authentication", Data Center).
* After ``captcha_after`` consecutive failed Basic logins (Jira's
  ``jira.maximum.authentication.attempts.allowed``, 3 by default) the user must solve a
  CAPTCHA in the browser; until then REST calls with Basic get 403 with
  ``X-Seraph-LoginReason: AUTHENTICATION_DENIED`` and ``X-Authentication-Denied-Reason:
  CAPTCHA_CHALLENGE; login-url=...``, even with the right password (Atlassian, "JIRA REST
  API Example - Basic Authentication", CAPTCHA). ``solve_captcha()`` is the person
  signing in through the browser. A personal access token is not affected.
* ``deployment="Cloud"`` reports ``deploymentType: Cloud`` in ``serverInfo``, as Jira
  Cloud does.

Workflow screens and permissions, as on Jira Data Center:

* The Done transition has a screen that requires a resolution. ``GET
  issue/{key}/transitions?expand=transitions.fields`` lists each transition's screen
  fields with ``required``, ``schema``, ``operations`` and ``allowedValues`` (the
  resolutions of ``GET resolution``); without the expand there is no ``fields``
  (Jira Server REST API, "Get transitions": "Fields will only be returned if
  expand=transitions.fields"). ``POST .../transitions`` without one answers 400
  ``{"errorMessages": [], "errors": {"resolution": "Resolution is required."}}``
  (Jira source, ``ResolutionSystemField.validateParams``: ``issue.field.required``
  with the field's name, "{0} is required."); a resolution is given as ``fields:
  {"resolution": {"name"|"id": ...}}`` (or ``update: {"resolution": [{"set":
  ...}]}``), its name compared case-sensitively
  (``ResolutionRestFieldOperationsHandler``); a field not on the screen is refused
  with "Field 'x' cannot be set. It is not on the appropriate screen, or unknown.".
  This instance has no default resolution, so nothing fills it in. Reopening clears
  the resolution.
* Each project names who holds "Assignable User" (seed ``assignable:``). Assigning
  anyone else (``PUT issue/{key}/assignee``, or an assignee on create or edit) answers
  400 ``{"errorMessages": [], "errors": {"assignee": "User 'carol' cannot be assigned
  issues."}}`` (Jira's REST func test ``TestIssueResourceAssign.testAssignErrors``).
  ``GET user/assignable/search?issueKey=...|project=...&username=...`` lists only
  assignable users, and needs an issue key or a project (400 otherwise; Jira Server
  REST API, "Find assignable users"). In the demo seed, carol is not assignable in PAY.

JQL is parsed and evaluated for real: ``project``, ``status``, ``statusCategory``,
``priority`` (also ``>``/``<``), ``issuetype``, ``key``, ``resolution``, ``labels``,
``assignee`` / ``reporter`` / ``creator`` (``currentUser()``, ``IS EMPTY``), ``text`` /
``summary`` / ``description`` / ``comment`` with ``~`` (every word must occur; ``*``
wildcards; an inner ``"..."`` is a phrase), ``created`` / ``updated`` / ``resolved``
against relative (``-1d``, ``"-1w 2d"``) or absolute dates and ``now()`` /
``startOfDay()``, ``AND`` / ``OR`` / ``NOT`` with parentheses, ``ORDER BY``. Whatever
the simulator does not implement is answered with 400 and a message that says so,
never by silently matching everything.

    with JiraSimulator() as sim:
        client = jira.JIRA(sim.url, basic_auth=(sim.user, sim.token), max_retries=0, timeout=5)
        client.search_issues('project = OPS AND statusCategory != Done ORDER BY updated DESC')

    python -m simulators.jira --port 8081     # prints the URL and credentials

The package, one module a concern: ``_model`` (workflow, users, projects, issues),
``_seed`` (the YAML), ``_state`` (Jira's rules, under one lock), ``_jql_tokens`` and
``_jql`` (the query language), ``_render`` (Jira's JSON), ``_app`` (HTTP and sign-in)
and ``_simulator`` (``JiraSimulator`` and ``main``).
"""

from __future__ import annotations

from simulators._seed import SeedError
from simulators.jira._model import (
    DEFAULT_SEED,
    DEFAULT_TOKEN,
    PRIORITIES,
    RESOLUTIONS,
    STATUSES,
    CommentSnapshot,
    IssueSnapshot,
    RecordedRequest,
)
from simulators.jira._simulator import JiraSimulator, main

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TOKEN",
    "PRIORITIES",
    "RESOLUTIONS",
    "STATUSES",
    "CommentSnapshot",
    "IssueSnapshot",
    "JiraSimulator",
    "RecordedRequest",
    "SeedError",
    "main",
]
