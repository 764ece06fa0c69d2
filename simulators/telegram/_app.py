"""The Telegram simulator's HTTP face: ``/bot<token>/<method>``, the control API under
``/_sim/`` and fault steering.

Why apart: the wire is one job; the methods and the state know nothing of HTTP.
"""

from __future__ import annotations

import json
import secrets
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from simulators._http import Request, Response
from simulators.telegram._bot_api import _BotApi
from simulators.telegram._model import RecordedRequest, _ApiError
from simulators.telegram._params import _loggable, _request_params
from simulators.telegram._state import _State

if TYPE_CHECKING:  # pragma: no cover
    from simulators.telegram._simulator import TelegramSimulator


def _fault_response(status: int) -> Response:
    """An injected failure (fail_next), in the Bot API's envelope."""
    if status == 429:
        return _ApiError(429, "Too Many Requests: retry after 1", {"retry_after": 1}).response()
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    return _ApiError(status, f"{phrase} (injected by TelegramSimulator.fail_next())").response()


class _App:
    """The HTTP face: the Bot API under /bot<token>/ and the control API under /_sim/."""

    def __init__(self, simulator: TelegramSimulator, state: _State, token: str) -> None:
        self.simulator = simulator
        self.state = state
        self.token = token
        self.api = _BotApi(state, token)

    def __call__(self, request: Request) -> Response:
        api_method: str | None = None
        params: dict[str, Any] = {}
        if request.segments[:1] == ("_sim",):
            response = self._control(request)
        else:
            failure = self.state.faults.hold(unquote(request.raw_path))
            try:
                if failure is not None:
                    response = _fault_response(failure)
                else:
                    api_method = self._method(request)
                    params = _request_params(request)
                    result, description = self.api.call(api_method, params)
                    body: dict[str, Any] = {"ok": True, "result": result}
                    if description:
                        body["description"] = description
                    response = Response.json(body)
            except _ApiError as error:
                response = error.response()
        description = None
        if response.status >= 400 and response.body.startswith(b"{"):
            description = json.loads(response.body).get("description")
        self.state.log.append(RecordedRequest(request.method, request.target, api_method,
                                              _loggable(params), response.status, description))
        return response

    def _method(self, request: Request) -> str:
        """The method of ``/bot<token>/<method>``; 401 for another token, 404 otherwise."""
        segments = request.segments
        if len(segments) != 2 or not segments[0].startswith("bot"):
            raise _ApiError(404, "Not Found")
        if not secrets.compare_digest(segments[0][3:].encode(), self.token.encode()):
            raise _ApiError(401, "Unauthorized")
        if not self.api.has(segments[1]):
            raise _ApiError(404, "Not Found")
        return segments[1]

    def _control(self, request: Request) -> Response:
        """``/_sim/``: play a user or read a chat over HTTP (see the module docstring)."""
        sim = self.simulator
        parts = request.segments[1:]
        try:
            body = json.loads(request.body) if request.body else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if not parts and request.method == "GET":
                return Response.json({"ok": True, **sim.overview()})
            if len(parts) == 3 and parts[0] == "users" and request.method == "POST":
                user_id = int(parts[1])
                if parts[2] == "send":
                    update = sim.send_text(
                        user_id, str(body.get("text", "")),
                        chat_id=None if body.get("chat_id") is None else int(body["chat_id"]),
                        reply_to_message_id=(None if body.get("reply_to_message_id") is None
                                             else int(body["reply_to_message_id"])))
                    return Response.json({"ok": True, "update": update})
                if parts[2] == "press":
                    update = sim.press(user_id, int(body["chat_id"]), int(body["message_id"]),
                                       data=body.get("data"), title=body.get("title"),
                                       force=bool(body.get("force", False)))
                    return Response.json({"ok": True, "update": update})
            if len(parts) == 3 and parts[0] == "chats" and parts[2] == "messages" \
                    and request.method == "GET":
                return Response.json({"ok": True, "messages": sim.bot_messages(int(parts[1]))})
        except KeyError as exc:
            return Response.json({"ok": False, "error": f"missing field {exc}"}, 400)
        except LookupError as exc:
            return Response.json({"ok": False, "error": str(exc)}, 404)
        except (ValueError, TypeError) as exc:
            return Response.json({"ok": False, "error": str(exc)}, 400)
        routes = ["GET /_sim/", "POST /_sim/users/<id>/send", "POST /_sim/users/<id>/press",
                  "GET /_sim/chats/<chat_id>/messages"]
        return Response.json({"ok": False, "error": f"no such control route; try one of: "
                                                    f"{', '.join(routes)}"}, 404)
