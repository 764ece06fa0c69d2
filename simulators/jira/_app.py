"""The Jira simulator's HTTP face: sign-in (Basic, Bearer, CAPTCHA), routing and Jira's
error shapes.

Why apart: the wire is one job; the state, JQL and the renderer know nothing of HTTP.
"""

from __future__ import annotations

import hmac
import html
import json
import re
import secrets
import time
from base64 import b64decode
from binascii import Error as BinasciiError
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, unquote

from simulators._http import Request, Response
from simulators.jira._jql import _Jql, _sort
from simulators.jira._jql_tokens import _JqlError
from simulators.jira._model import (
    _CATEGORIES,
    _MAX_RESULTS,
    _NOT_AUTHENTICATED,
    _RESOLUTIONS,
    _STATUSES,
    _WORKFLOW,
    PRIORITIES,
    RecordedRequest,
    _Project,
    _refuse,
    _Refused,
)
from simulators.jira._render import _jira_time, _Renderer, _wanted_fields
from simulators.jira._state import _State


def _text_param(values: object) -> list[str]:
    """A JSON or query value that may be a string, a list of strings, or null."""
    if values is None:
        return []
    if isinstance(values, list):
        return [str(v) for v in values if v is not None]
    return [str(values)]


def _int_value(value: object, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    if isinstance(value, bool) or not re.fullmatch(r"-?\d+", str(value).strip()):
        raise _refuse(400, f"The value '{value}' of {name} is not a whole number.")
    return int(str(value).strip())


def _page_html(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
            f"<body>{body}</body></html>\n")


class _App:
    """The HTTP face of the simulator: Request in, Response out."""

    def __init__(self, state: _State, user: str, token: str, default_base: Callable[[], str]):
        self.state = state
        self.user = user
        self.token = token
        self.default_base = default_base
        self.basic_auth = True
        self.captcha_after: int | None = 3
        self.failed_logins = 0
        self.deployment = "Server"
        self.request_counter = 0
        self.session = secrets.token_hex(8)

    def __call__(self, request: Request) -> Response:
        with self.state.lock:
            self.request_counter += 1
            request_id = f"{self.request_counter}x{int(time.time()) % 100000}x1"
        failure = self.state.faults.hold(unquote(request.raw_path))
        user: str | None = None
        if failure is not None:
            response = self._fault_response(failure)
        else:
            try:
                user = self._authenticate(request)
                with self.state.lock:
                    response = self._route(request, user)
            except _Refused as refused:
                response = refused.response
        response.with_header("X-AREQUESTID", request_id)
        response.with_header("X-ASESSIONID", self.session)
        response.with_header("X-AUSERNAME", user or "anonymous")
        response.with_header("X-Content-Type-Options", "nosniff")
        self.state.log.append(RecordedRequest(
            request.method, request.target, response.status, user,
            request.body[:10000].decode("utf-8", errors="replace")))
        self.state.faults.hold_response(unquote(request.raw_path))  # respond_delay()
        return response

    def _authenticate(self, request: Request) -> str | None:
        """The user of a valid Bearer or Basic header, None for anonymous; Seraph's 401 if
        wrong, 403 when basic auth is disabled or the user owes a CAPTCHA."""
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        base = self._base(request)
        if scheme.lower() == "bearer":
            if hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return self.user
            raise _Refused(Response.html("Basic Authentication Failure - Reason : "
                                         "AUTHENTICATED_FAILED", 401)
                           .with_header("X-Seraph-LoginReason", "AUTHENTICATED_FAILED"))
        if scheme.lower() != "basic":
            return None
        if not self.basic_auth:
            raise _Refused(Response.json({"errorMessages": [
                "Basic Authentication has been disabled on this instance."], "errors": {}}, 403))
        try:
            user, _, password = b64decode(value.strip(), validate=True).decode().partition(":")
        except (BinasciiError, UnicodeDecodeError):
            user, password = "", ""
        with self.state.lock:
            if user == self.user and self.captcha_after is not None and \
                    self.failed_logins >= self.captcha_after:
                raise _Refused(
                    Response.html("CAPTCHA_CHALLENGE", 403)
                    .with_header("X-Seraph-LoginReason", "AUTHENTICATION_DENIED")
                    .with_header("X-Authentication-Denied-Reason",
                                 f"CAPTCHA_CHALLENGE; login-url={base}login.jsp"))
            if user == self.user and hmac.compare_digest(password.encode(),
                                                         self.token.encode()):
                self.failed_logins = 0
                return user
            if user == self.user:
                self.failed_logins += 1
        raise _Refused(
            Response.html("Basic Authentication Failure - Reason : AUTHENTICATED_FAILED", 401)
            .with_header("X-Seraph-LoginReason", "AUTHENTICATED_FAILED")
            .with_header("WWW-Authenticate",
                         f'OAuth realm="{quote(base.rstrip("/"), safe="")}"'))

    def _base(self, request: Request) -> str:
        host = request.header("Host")
        if host and re.fullmatch(r"[A-Za-z0-9.\-\[\]:]+", host):
            return f"http://{host}/"
        return self.default_base()

    @staticmethod
    def _fault_response(status: int) -> Response:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        message = ("Internal server error (injected by JiraSimulator.fail_next())"
                   if status == 500 else f"{phrase} (injected by JiraSimulator.fail_next())")
        return Response.json({"errorMessages": [message], "errors": {}}, status)

    @staticmethod
    def _json_body(request: Request) -> Any:
        if not request.body:
            return None
        if "json" not in (request.header("Content-Type") or "").lower():
            raise _Refused(Response.html("Unsupported Media Type", 415))
        try:
            return json.loads(request.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _refuse(400, f"Unexpected character in the request body: {exc}") from None

    # -- routing ---------------------------------------------------------------------

    def _route(self, request: Request, user: str | None) -> Response:
        segments = request.segments
        render = _Renderer(self.state, self._base(request))
        if not segments:
            return Response.html(_page_html(self.state.seed.title, "<h1>Jira simulator</h1>"))
        if segments[0] == "browse" and len(segments) == 2:
            issue = self.state.issue(segments[1])
            title = f"[{issue.key}] {issue.summary}"
            return Response.html(_page_html(title, f"<h1>{html.escape(title)}</h1>"
                                                   f"<p>{html.escape(issue.status)}</p>"))
        if segments[:4] == ("rest", "auth", "1", "session") and len(segments) == 4:
            name = self._require_user(user)
            return Response.json({"self": f"{render.api}user?username={quote(name)}",
                                  "name": name, "loginInfo": {"failedLoginCount": 0,
                                                              "loginCount": 1}})
        if len(segments) < 4 or segments[:2] != ("rest", "api") \
                or segments[2] not in ("2", "latest"):
            return self._no_resource(request, render)
        rest = segments[3:]
        if rest == ("serverInfo",):
            return self._only(request, "GET", lambda: Response.json(self._server_info(render)))
        name = self._require_user(user)
        now = self.state.clock()
        method = request.method
        match rest:
            case ("myself",):
                return self._only(request, "GET", lambda: Response.json(render.myself(name)))
            case ("field",):
                return self._only(request, "GET", lambda: Response.json(render.fields()))
            case ("priority",):
                return self._only(request, "GET", lambda: Response.json(
                    [render.priority_full(p) for p in PRIORITIES]))
            case ("priority", number):
                if not number.isdigit() or not 1 <= int(number) <= len(PRIORITIES):
                    raise _refuse(404, f"Could not find priority with id '{number}'.")
                return Response.json(render.priority_full(PRIORITIES[int(number) - 1]))
            case ("issuetype",):
                return Response.json([render.issue_type(t) for t in
                                      self.state.issue_types.values()])
            case ("issuetype", number):
                found = self.state.issue_type({"id": number})
                if found is None:
                    raise _refuse(404, f"Could not find issue type with id '{number}'.")
                return Response.json(render.issue_type(found))
            case ("status",):
                return Response.json([render.status(s.name) for s in _STATUSES])
            case ("statuscategory",):
                return Response.json([render.category(key) for key in _CATEGORIES])
            case ("project",):
                return self._only(request, "GET", lambda: Response.json(
                    [{"expand": "description,lead,url,projectKeys", **render.project_ref(p)}
                     for p in self.state.projects.values()]))
            case ("project", ref):
                return Response.json(render.project(self._project(ref)))
            case ("issue", "createmeta", ref, "issuetypes"):
                project = self._project(ref)
                types = [render.issue_type(self.state.issue_types[t])
                         for t in project.issue_types]
                start = max(0, _int_value(request.param("startAt"), "startAt", 0))
                limit = max(1, _int_value(request.param("maxResults"), "maxResults", 50))
                page = types[start:start + limit]
                return Response.json({"maxResults": limit, "startAt": start,
                                      "total": len(types),
                                      "isLast": start + limit >= len(types), "values": page})
            case ("user",):
                username = request.param("username") or request.param("key") or ""
                person = self.state.users.get(username) or next(
                    (u for u in self.state.users.values() if u.key == username), None)
                if person is None:
                    raise _refuse(404, f"The user named '{username}' does not exist")
                return Response.json(render.user(person.name))
            case ("resolution",):
                return self._only(request, "GET", lambda: Response.json(
                    [render.resolution(r.name) for r in _RESOLUTIONS]))
            case ("resolution", number):
                known = next((r for r in _RESOLUTIONS if r.id == number), None)
                if known is None:
                    raise _refuse(404, f"Could not find resolution with id '{number}'.")
                return Response.json(render.resolution(known.name))
            case ("user", "assignable", "search"):
                for_issue, for_project = request.param("issueKey"), request.param("project")
                if for_issue:
                    project = self.state.issue(for_issue).project
                elif for_project:
                    project = self._project(for_project)
                else:
                    raise _refuse(400, "The 'project' or the 'issueKey' parameter must be "
                                       "given.")
                start = max(0, _int_value(request.param("startAt"), "startAt", 0))
                limit = _int_value(request.param("maxResults"), "maxResults", 50)
                people = self.state.assignable_users(project, request.param("username") or "")
                return Response.json([render.user(u.name) for u in
                                      people[start:start + max(0, min(limit, 1000))]])
            case ("user", "search"):
                query = request.param("username")
                if not query:
                    raise _refuse(400, "The username query parameter was not provided")
                start = max(0, _int_value(request.param("startAt"), "startAt", 0))
                limit = _int_value(request.param("maxResults"), "maxResults", 50)
                people = self.state.search_users(query)[start:start + max(0, min(limit, 1000))]
                return Response.json([render.user(u.name) for u in people])
            case ("search",):
                if method not in ("GET", "POST"):
                    return Response(405)
                return self._search(request, render, name, now)
            case ("issue",):
                if method != "POST":
                    return Response(405)
                issue = self.state.create(self._json_body(request), name, now)
                return Response.json({"id": str(issue.id), "key": issue.key,
                                      "self": f"{render.api}issue/{issue.id}"}, 201)
            case ("issue", ref):
                issue = self.state.issue(ref)
                if method == "PUT":
                    self.state.edit(issue, self._json_body(request), now)
                    return Response(204)
                wanted = _wanted_fields(_text_param(request.query.get("fields")), "*all")
                return self._only(request, "GET",
                                  lambda: Response.json(render.issue(issue, wanted)))
            case ("issue", ref, "comment"):
                issue = self.state.issue(ref)
                if method == "POST":
                    created = self.state.comment(issue, self._json_body(request), name, now)
                    return Response.json(render.comment(issue, created), 201)
                start = max(0, _int_value(request.param("startAt"), "startAt", 0))
                max_results = request.param("maxResults")
                order = request.param("orderBy") or "created"
                return self._only(request, "GET", lambda: Response.json(render.comments_page(
                    issue, start,
                    None if max_results is None else _int_value(max_results, "maxResults", 50),
                    newest_first=order.startswith("-"))))
            case ("issue", ref, "comment", number):
                issue = self.state.issue(ref)
                comment = next((c for c in issue.comments if str(c.id) == number), None)
                if comment is None:
                    raise _refuse(404, f"Can not find a comment for the id: {number}.")
                return Response.json(render.comment(issue, comment))
            case ("issue", ref, "transitions"):
                issue = self.state.issue(ref)
                if method == "POST":
                    self.state.transition(issue, self._json_body(request), name, now)
                    return Response(204)
                wanted_id = request.param("transitionId")
                available = [t for t in _WORKFLOW[issue.status]
                             if wanted_id is None or t.id == wanted_id]
                expand = [e.strip() for e in (request.param("expand") or "").split(",")]
                with_fields = "transitions.fields" in expand
                return Response.json({"expand": "transitions",
                                      "transitions": [render.transition(t, with_fields)
                                                      for t in available]})
            case ("issue", ref, "assignee"):
                issue = self.state.issue(ref)
                if method != "PUT":
                    return Response(405)
                self.state.assign(issue, self._json_body(request), now)
                return Response(204)
        return self._no_resource(request, render)

    @staticmethod
    def _only(request: Request, method: str, answer: Callable[[], Response]) -> Response:
        if request.method != method:
            return Response(405)
        return answer()

    @staticmethod
    def _require_user(user: str | None) -> str:
        if user is None:
            raise _refuse(401, _NOT_AUTHENTICATED)
        return user

    def _project(self, ref: str) -> _Project:
        project = self.state.project(ref)
        if project is None:
            raise _refuse(404, f"No project could be found with key '{ref}'.")
        return project

    @staticmethod
    def _no_resource(request: Request, render: _Renderer) -> Response:
        """What Jira's REST layer (Jersey) answers for a path it has no resource for."""
        return Response.json({"message": f"null for uri: {render.base.rstrip('/')}"
                                         f"{request.target}", "status-code": 404}, 404)

    def _server_info(self, render: _Renderer) -> dict[str, Any]:
        version = self.state.seed.version
        numbers = [int(part) for part in re.findall(r"\d+", version)[:3]]
        return {"baseUrl": render.base.rstrip("/"), "version": version,
                "versionNumbers": numbers, "deploymentType": self.deployment,
                "buildNumber": int("".join(f"{n:03d}" for n in numbers) or 0),
                "buildDate": "2024-10-01T00:00:00.000+0000",
                "serverTime": _jira_time(self.state.clock()),
                "scmInfo": "simulated", "serverTitle": self.state.seed.title}

    def _search(self, request: Request, render: _Renderer, user: str, now: float) -> Response:
        params: dict[str, Any]
        if request.method == "POST":
            body = self._json_body(request)
            if not isinstance(body, dict):
                raise _refuse(400, "The search request body must be a JSON object.")
            params = body
        else:
            params = {name: (values if name == "fields" else values[0])
                      for name, values in request.query.items()}
        jql = str(params.get("jql") or "")
        start = max(0, _int_value(params.get("startAt"), "startAt", 0))
        limit = _int_value(params.get("maxResults"), "maxResults", 50)
        limit = _MAX_RESULTS if limit < 0 or limit > _MAX_RESULTS else limit
        validate = str(params.get("validateQuery", "true")).strip().lower()
        strict = validate not in ("false", "none", "warn")
        try:
            parser = _Jql(jql, self.state, user, now, strict)
            query = parser.parse()
        except _JqlError as exc:
            raise _refuse(400, str(exc)) from None
        matched = [i for i in self.state.issues.values() if query.where is None or query.where(i)]
        ordered = _sort(matched, query.order)
        wanted = _wanted_fields(_text_param(params.get("fields")), "*navigable")
        data: dict[str, Any] = {
            "expand": "schema,names", "startAt": start, "maxResults": limit,
            "total": len(ordered),
            "issues": [render.issue(i, wanted) for i in ordered[start:start + limit]],
        }
        if parser.warnings:
            data["warningMessages"] = parser.warnings
        return Response.json(data)
