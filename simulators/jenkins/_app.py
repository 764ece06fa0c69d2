"""The Jenkins simulator's HTTP face: auth, crumbs, routing and Jenkins' error pages.

Why apart: the wire (Basic auth, sessions, crumbs, Jetty's and Jenkins' error pages)
is one job; the state and the renderer know nothing of HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import secrets
import uuid
from base64 import b64decode
from binascii import Error as BinasciiError
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from simulators._http import Request, Response
from simulators.jenkins._model import _CRUMB_FIELD, RecordedRequest, _Refused
from simulators.jenkins._render import _Renderer
from simulators.jenkins._state import _console, _State
from simulators.jenkins._tree import _apply_tree, _parse_tree


def _jetty_error(status: int, message: str, target: str) -> str:
    """The HTML error page Jetty (Jenkins' servlet container) answers with."""
    message = html.escape(message)
    return (
        "<html>\n<head>\n<meta http-equiv=\"Content-Type\" content=\"text/html;charset=utf-8\"/>\n"
        f"<title>Error {status} {message}</title>\n</head>\n<body><h2>HTTP ERROR {status} "
        f"{message}</h2>\n<table>\n<tr><th>URI:</th><td>{html.escape(target)}</td></tr>\n"
        f"<tr><th>STATUS:</th><td>{status}</td></tr>\n<tr><th>MESSAGE:</th><td>{message}</td>"
        "</tr>\n<tr><th>SERVLET:</th><td>Stapler</td></tr>\n</table>\n\n</body>\n</html>\n"
    )


def _oops_page(java: str, message: str, show_stack_trace: bool = False) -> str:
    """Jenkins' own page for an exception inside a request (status 500): the exception
    only with SHOW_STACK_TRACE (oops.jelly), a logging id always."""
    trace = (f"<h2>Stack trace</h2><pre style=\"margin:2em; clear:both\">{html.escape(java)}: "
             f"{html.escape(message)}\n\tat hudson.model.ParametersDefinitionProperty"
             "</pre>") if show_stack_trace else ""
    return (
        "<!DOCTYPE html><html><head><title>Jenkins</title></head><body>"
        "<h1 style=\"text-align: center\"><span style=\"font-size:50px\">&nbsp;Oops!</span>"
        "</h1><div id=\"error-description\"><h2 style=\"text-align: center\">A problem "
        "occurred while processing the request</h2><p style=\"text-align: center\">Logging "
        f"ID={uuid.uuid4()}</p></div>{trace}</body></html>\n"
    )


def _html_page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html><head><title>{html.escape(title)} [Jenkins]</title></head>"
            f"<body>{body}</body></html>\n")


class _App:
    """The HTTP face of the simulator: Request in, Response out."""

    def __init__(self, state: _State, user: str, token: str, default_base: Callable[[], str],
                 password: str | None = None):
        self.state = state
        self.user = user
        self.token = token
        self.password = password
        self.default_base = default_base
        self.secret = secrets.token_bytes(16)  # the crumb salt: kept across restarts
        self.node = hashlib.sha256(self.secret).hexdigest()[:8]  # the cookie's name
        self.instance = secrets.token_hex(4)  # X-Jenkins-Session: new at every start
        self.show_stack_trace = False
        self.session_counter = 0
        self.sessions: set[str] = set()  # the live web sessions (Jetty keeps them in memory)

    def __call__(self, request: Request) -> Response:
        failure = self.state.faults.hold(unquote(request.raw_path))
        user: str | None = None
        how: str | None = None
        if failure is not None:
            response = self._fault_response(failure, request)
        else:
            try:
                user, how = self._authenticate(request)
                with self.state.lock:
                    response = self._route(request, user, how)
            except _Refused as refused:
                response = self._refusal(refused, request, user)
        response.with_header("X-Content-Type-Options", "nosniff")
        response.with_header("X-Hudson", "1.395")
        response.with_header("X-Jenkins", self.state.seed.version)
        response.with_header("X-Jenkins-Session", self.instance)
        self.state.log.append(RecordedRequest(request.method, request.target, response.status,
                                              user, request.header(_CRUMB_FIELD), how))
        self.state.faults.hold_response(unquote(request.raw_path))  # respond_delay()
        return response

    # -- auth ----------------------------------------------------------------------

    def _authenticate(self, request: Request) -> tuple[str | None, str | None]:
        """(user, "token" or "password") of a valid ``Authorization: Basic`` header, (None,
        None) for anonymous; 401 if wrong. The API token is tried first, then the password,
        as Jenkins' BasicHeaderApiTokenAuthenticator and BasicHeaderRealPasswordAuthenticator."""
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, None
        try:
            user, _, password = b64decode(value.strip(), validate=True).decode().partition(":")
        except (BinasciiError, UnicodeDecodeError):
            raise _Refused(401, "Invalid Basic authentication header") from None
        if user == self.user and hmac.compare_digest(password.encode(), self.token.encode()):
            return user, "token"
        if user == self.user and self.password is not None and \
                hmac.compare_digest(password.encode(), self.password.encode()):
            return user, "password"
        raise _Refused(401, f"Invalid password/token for user: {user}")

    def _session(self, request: Request) -> str | None:
        """The request's web session, if the cookie names a live one (a stale id is no session)."""
        session = request.cookies().get(f"JSESSIONID.{self.node}")
        return session if session in self.sessions else None

    @staticmethod
    def _client_ip(request: Request) -> str:
        """DefaultCrumbIssuer.getClientIP: the first X-Forwarded-For hop, else the peer."""
        forwarded = request.header("X-Forwarded-For")
        return forwarded.split(",")[0] if forwarded else request.client

    def _crumb(self, request: Request, user: str | None, session: str | None) -> str:
        """DefaultCrumbIssuer.issueCrumb: a digest of user;client IP;session id and the salt."""
        message = f"{user or 'anonymous'};{self._client_ip(request)};{session or ''}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def _check_crumb(self, request: Request, user: str | None, how: str | None) -> None:
        """CrumbFilter on a POST: API-token requests pass whatever crumb they carry
        (ApiCrumbExclusion, JENKINS-22474); any other needs the crumb issued to its user,
        address and live web session, else 403 "No valid crumb was included in the request"."""
        if how == "token":
            return
        sent = request.header(_CRUMB_FIELD) or request.param(_CRUMB_FIELD)
        expected = self._crumb(request, user, self._session(request))
        if sent is None or not hmac.compare_digest(sent.encode(), expected.encode()):
            raise _Refused(403, "No valid crumb was included in the request")

    def restart(self) -> None:
        """Jenkins restarted: its web sessions, and so every crumb issued in one, are gone."""
        self.sessions.clear()
        self.instance = secrets.token_hex(4)

    # -- routing -------------------------------------------------------------------

    def _base(self, request: Request) -> str:
        host = request.header("Host")
        return f"http://{host}/" if host else self.default_base()

    def _route(self, request: Request, user: str | None, how: str | None) -> Response:
        segments, method = request.segments, request.method
        if not segments and method == "GET":  # "/" answers anyone, so get_version() works first
            return Response.html(_html_page("Dashboard", "<h1>Welcome to Jenkins!</h1>"))
        if method == "POST":
            self._check_crumb(request, user, how)
        if user is None:
            raise _Refused(403, "Authentication required")
        now = self.state.now()
        render = _Renderer(self.state, self._base(request), now)
        match segments:
            case ("api", "json"):
                return self._api(request, lambda depth, full: render.root(depth, full))
            case ("crumbIssuer", "api", "json"):
                return self._crumb_issuer(request, user)
            case ("me", "api", "json"):
                return self._api(request, lambda depth, full: render.user(user))
            case ("user", user_id, "api", "json") if user_id in self.state.users or user_id == user:
                return self._api(request, lambda depth, full: render.user(user_id))
            case ("whoAmI", "api", "json"):
                return self._api(request, lambda depth, full: {
                    "_class": "hudson.security.WhoAmI", "anonymous": False, "authenticated": True,
                    "authorities": ["authenticated"], "details": None, "name": user,
                    "toString": f"UsernamePasswordAuthenticationToken [Principal={user}, "
                                "Authenticated=true, Granted Authorities=[authenticated]]"})
            case ("queue", "api", "json"):
                items = [render.queue_item(item) for item in self.state.pending]
                return self._api(request, lambda depth, full: {
                    "_class": "hudson.model.Queue", "discoverableItems": [], "items": items})
            case ("queue", "item", number, "api", "json") if number.isdigit():
                item = self.state.queue_item(int(number), now)
                return self._api(request, lambda depth, full: render.queue_item(item))
            case ("queue", "cancelItem"):
                self._require_post(request)
                number = request.param("id") or ""
                self.state.cancel(int(number) if number.isdigit() else -1, now)
                return Response(204)
            case ("computer", "api", "json"):
                computer = render.computer()
                return self._api(request, lambda depth, full: {
                    "_class": "hudson.model.ComputerSet",
                    "busyExecutors": len(self.state.running), "computer": [computer],
                    "displayName": "Nodes", "totalExecutors": computer["numExecutors"]})
            case ("computer", "(master)" | "(built-in)", "api", "json"):
                return self._api(request, lambda depth, full: render.computer())
            case ("job", *_):
                return self._job_route(request, user, render, now)
        raise _Refused(404, "Not Found")

    def _job_route(self, request: Request, user: str, render: _Renderer, now: float) -> Response:
        segments = request.segments
        names: list[str] = []
        index = 0
        while index + 1 < len(segments) and segments[index] == "job":
            names.append(segments[index + 1])
            index += 2
        rest = segments[index:]
        job = self.state.job("/".join(names))
        match rest:
            case ():
                heading = f"<h1>{html.escape(job.display)}</h1>"
                return Response.html(_html_page(job.display, heading))
            case ("api", "json"):
                return self._api(request, lambda depth, full: render.job(job, depth, full))
            case ("build" | "buildWithParameters" as verb,):
                self._require_post(request)
                values = dict(request.query)
                if "x-www-form-urlencoded" in (request.header("Content-Type") or ""):
                    for key, items in parse_qs(request.body.decode(errors="replace"),
                                               keep_blank_values=True).items():
                        values.setdefault(key, items)
                item = self.state.trigger(job, values, verb == "buildWithParameters", user, now)
                return Response(201).with_header(
                    "Location", f"{render.base}queue/item/{item.id}/")
        if job.is_folder or not rest:
            raise _Refused(404, "Not Found")
        build = self.state.build(job, rest[0])
        title = f"{job.display} #{build.number}"
        match rest[1:]:
            case ():
                return Response.html(_html_page(title, f"<h1>{html.escape(title)}</h1>"
                                                f"<p>{build.result or 'In progress'}</p>"))
            case ("api", "json"):
                return self._api(request, lambda depth, full: render.build(build))
            case ("consoleText",):
                return Response.text(_console(build, now))
            case ("console",):
                return Response.html(_html_page(title, "<pre class=\"console-output\">"
                                                f"{html.escape(_console(build, now))}</pre>"))
            case ("logText", "progressiveText"):
                text = _console(build, now).encode()
                start = request.param("start") or "0"
                offset = int(start) if start.isdigit() else 0
                response = Response(200, text[offset:], "text/plain;charset=utf-8")
                response.with_header("X-Text-Size", str(len(text)))
                if build.building:
                    response.with_header("X-More-Data", "true")
                return response
            case ("stop",):
                self._require_post(request)
                self.state.stop(build, user, now)
                return Response(302).with_header(
                    "Location", f"{render.base}{job.path}{build.number}/")
        raise _Refused(404, "Not Found")

    @staticmethod
    def _require_post(request: Request) -> None:
        if request.method != "POST":
            raise _Refused(405, "This URL requires POST")

    @staticmethod
    def _api(request: Request, render: Callable[[int, bool], dict[str, Any]]) -> Response:
        """Render at ``depth``; with ``tree``, render everything then keep what it names."""
        depth_text = request.param("depth") or "0"
        depth = int(depth_text) if depth_text.isdigit() else 0
        tree = request.param("tree")
        if not tree:
            return Response.json(render(depth, False))
        try:
            spec = _parse_tree(tree)
        except ValueError as exc:
            raise _Refused(400, f"Malformed tree expression: {exc}") from None
        return Response.json(_apply_tree(render(depth, True), spec))

    def _crumb_issuer(self, request: Request, user: str) -> Response:
        session = self._session(request)
        cookie = None
        if session is None:  # req.getSession() makes one: no cookie, or a stale one
            self.session_counter += 1
            digest = hmac.new(self.secret, str(self.session_counter).encode(), hashlib.sha256)
            session = f"node0{digest.hexdigest()[:26]}{self.session_counter}.node0"
            self.sessions.add(session)
            cookie = f"JSESSIONID.{self.node}={session}; Path=/; HttpOnly"
        response = Response.json({"_class": "hudson.security.csrf.DefaultCrumbIssuer",
                                  "crumb": self._crumb(request, user, session),
                                  "crumbRequestField": _CRUMB_FIELD})
        return response.with_header("Set-Cookie", cookie) if cookie else response

    def _refusal(self, refused: _Refused, request: Request, user: str | None) -> Response:
        if refused.status == 401:
            return Response.html(_jetty_error(401, refused.message, request.raw_path), 401) \
                .with_header("WWW-Authenticate", 'Basic realm="Jenkins"')
        if refused.status == 403 and refused.message == "Authentication required":
            login = f"/login?from={quote(request.target, safe='')}"
            page = (f"<html><head><meta http-equiv='refresh' content='1;url={login}'/><script>"
                    f"window.location.replace('{login}');</script></head><body style='"
                    "background-color:white; color:white;'>\n\nAuthentication required\n"
                    "<!--\n-->\n\n</body></html>\n")
            return (Response.html(page, 403)
                    .with_header("X-You-Are-Authenticated-As", "anonymous")
                    .with_header("X-Required-Permission", "hudson.model.Hudson.Read")
                    .with_header("X-Permission-Implied-By",
                                 "hudson.security.Permission.GenericRead")
                    .with_header("X-Permission-Implied-By", "hudson.model.Hudson.Administer"))
        if refused.status == 500:
            return Response.html(_oops_page(refused.java or "java.lang.RuntimeException",
                                            refused.message, self.show_stack_trace), 500)
        return Response.html(_jetty_error(refused.status, refused.message, request.raw_path),
                             refused.status)

    @staticmethod
    def _fault_response(status: int, request: Request) -> Response:
        if status == 500:
            return Response.html(_oops_page("java.lang.RuntimeException",
                                            "injected by JenkinsSimulator.fail_next()"), 500)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return Response.html(_jetty_error(status, phrase, request.raw_path), status)
