"""The Slack simulator's HTTP face: the Web API under ``/api/`` and response URLs under
``/actions/``.

Why apart: the wire is one job; the methods and the state know nothing of HTTP.

Web API calls are read as slack.com reads them (api.slack.com/web, "Basics"): any HTTP
method; arguments from the query string and a form or JSON body; the token from
``Authorization: Bearer`` or a ``token`` argument; answers are JSON with ``ok``, HTTP
200 even for most refusals (404 ``unknown_method``, 429 ``ratelimited``).
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

from simulators._http import Request, Response
from simulators.slack._model import RecordedRequest, _ApiError
from simulators.slack._state import _State
from simulators.slack._web_api import _WebApi, content


def _params(request: Request) -> dict[str, Any]:
    """Arguments from the query string and a form or JSON body (``invalid_json``,
    ``json_not_object`` for a JSON body that is not an object)."""
    params: dict[str, Any] = {name: values[0] for name, values in request.query.items()}
    if not request.body:
        return params
    kind = (request.header("Content-Type") or "").split(";")[0].strip().lower()
    if kind == "application/json":
        try:
            data = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            raise _ApiError("invalid_json") from None
        if not isinstance(data, dict):
            raise _ApiError("json_not_object")
        params.update(data)
    else:
        form = parse_qs(request.body.decode("utf-8", "replace"), keep_blank_values=True)
        params.update({name: values[0] for name, values in form.items()})
    return params


def _token(request: Request, params: dict[str, Any]) -> str | None:
    header = request.header("Authorization") or ""
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    token = params.get("token")
    return token if isinstance(token, str) else None


def _fault(status: int) -> _ApiError:
    """An injected failure (fail_next), as Slack would answer it."""
    if status == 429:
        return _ApiError("ratelimited", 429, headers=(("Retry-After", "1"),))
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _ApiError("internal_error" if status >= 500 else "invalid_request", status, extra={
        "warning": f"{status} {phrase} (injected by SlackSimulator.fail_next())"})


class _App:
    """Routes a request to the Web API or a response URL, and logs it."""

    def __init__(self, state: _State, api: _WebApi) -> None:
        self.state = state
        self.api = api

    def __call__(self, request: Request) -> Response:
        head = request.segments[:1]
        api_method = request.segments[1] if head == ("api",) and len(request.segments) == 2 \
            else None
        params: dict[str, Any] = {}
        error_code = None
        failure = self.state.faults.hold(unquote(request.raw_path))
        try:
            if failure is not None:
                raise _fault(failure)
            if api_method is not None:
                params = _params(request)
                response = Response.json(self.api.call(api_method, _token(request, params),
                                                       params))
            elif request.segments[:1] == ("actions",) and len(request.segments) == 3:
                params = _params(request)
                response = self._respond(request.segments[2], params)
            else:
                response = _ApiError("unknown_method", 404).response()
        except _ApiError as error:
            response, error_code = error.response(), error.error
        logged = {name: value for name, value in params.items() if name != "token"}
        self.state.log.append(RecordedRequest(request.method, request.target, api_method,
                                              logged, response.status, error_code))
        return response

    def _respond(self, hook_id: str, params: dict[str, Any]) -> Response:
        """A post to a response_url: JSON, or a form whose ``payload`` is JSON."""
        if isinstance(params.get("payload"), str):
            try:
                params = json.loads(params["payload"])
            except ValueError:
                raise _ApiError("invalid_payload", 400) from None
        with self.state.lock:
            try:
                text, blocks = (content(params) if not params.get("delete_original")
                                else (None, None))
            except _ApiError as error:
                raise _ApiError(error.error, 400, extra=error.extra) from None
            hook = self.state.use_response_url(hook_id)
            self.state.respond(hook, params, text or "", blocks)
        return Response.json({"ok": True})
