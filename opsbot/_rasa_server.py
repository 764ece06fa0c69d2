"""``rasa run`` with its HTTP API locked: ``python -m opsbot._rasa_server run ...``.

Rasa's API (``/conversations/<id>/tracker``, ``PUT /model``, ``POST /model/train``, ...)
is open to anyone who reaches the port unless ``rasa run`` gets ``--auth-token``. This
wrapper takes the token from ``OPSBOT_API_TOKEN`` (never from the command line, which
every local user can read in ``ps``), hands it to Rasa, and puts every route of the
server behind it (``?token=`` as Rasa takes it, or ``Authorization: Bearer``), compared
in constant time, including the few that Rasa leaves open (``/``, ``/version``).

Open without the token: the connectors' webhooks under ``/webhooks/`` (each proves its
caller itself: Telegram's secret token, the Bot Framework JWT, the REST channel's
bearer token, the reload's API token) and the health checks ``/health`` and ``/ready``.

Closed even with the token (403): the routes that would put words in someone's mouth or
swap what answers them. Adding events or messages to a tracker (``/tracker/events``,
``/messages``, ``/trigger_intent``) could replay a person's signed identity into a
made-up turn; ``/execute`` runs only ``action_notify_operations``, the completion
announcements; ``PUT``/``DELETE /model``, ``/model/train`` and ``/model/test/*`` load
or build models outside ``opsbot train`` and the checked reload. What stays open to
the token reads (``/status``, ``/domain``, a tracker, a story, ``/model/parse``,
predictions) or announces.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.guard.identity import api_token_of, same_secret
from opsbot._no_tensorflow import install as install_without_tensorflow
from opsbot._no_tensorflow import model_needs_tensorflow
from opsbot._tokens import API_TOKEN

__all__ = ["EXECUTABLE", "closed_because", "guard", "main"]

logger = logging.getLogger("opsbot.server")

_OPEN_PREFIXES = ("/webhooks/",)
_OPEN_PATHS = frozenset({"/health", "/ready"})
# Announcements through /execute: the only action run from outside a user's turn.
EXECUTABLE = frozenset({"action_notify_operations"})
_CLOSED: tuple[tuple[frozenset[str], re.Pattern[str], str], ...] = tuple(
    (frozenset(methods), re.compile(pattern), instead) for methods, pattern, instead in (
        # A conversation id is a Sanic <path>: it may hold slashes itself.
        ({"POST", "PUT"}, r"^/conversations/.+/tracker/events/?$", "talk through a chat"),
        ({"POST"}, r"^/conversations/.+/(messages|trigger_intent)/?$", "talk through a chat"),
        ({"POST"}, r"^/model/(train|test/[^/]+)/?$", "opsbot train (or rasa test offline)"),
        ({"PUT", "DELETE"}, r"^/model/?$", "opsbot train --reload"),
    ))
_EXECUTE = re.compile(r"^/conversations/.+/execute/?$")


def _normal(path: str) -> str:
    """The path as Sanic routes it: decoded, without doubled slashes."""
    return re.sub(r"/{2,}", "/", urllib.parse.unquote(path))


def closed_because(method: str, path: str, body: Any, output_channel: str | None = "latest"
                   ) -> str | None:
    """Why opsbot does not serve this API request even with the token (None: it does)."""
    path = _normal(path)
    for methods, pattern, instead in _CLOSED:
        if method in methods and pattern.match(path):
            return f"opsbot does not serve {method} {path}; use {instead}"
    if method == "POST" and _EXECUTE.match(path):
        name = body.get("name") if isinstance(body, dict) else None
        if name not in EXECUTABLE:
            return f"/execute runs only {', '.join(sorted(EXECUTABLE))} here"
        if not output_channel:
            # Without it the announcements would come back in this HTTP answer and count
            # as delivered, never reaching the chat.
            return "/execute needs ?output_channel=latest, so the announcements reach the chat"
    return None


def guard(app: Sanic, token: str) -> None:
    """Refuse every request to ``app`` outside the webhooks that lacks ``token``."""

    @app.middleware("request")
    async def require_token(request: Request) -> HTTPResponse | None:
        path = request.path
        if path in _OPEN_PATHS or path.startswith(_OPEN_PREFIXES):
            return None
        if same_secret(api_token_of(request), token):
            try:
                body = request.json if request.body else None
            except Exception:  # noqa: BLE001 - Sanic's own error on bad JSON
                body = None
            closed = closed_because(request.method.upper(), path, body,
                                    request.args.get("output_channel"))
            if closed is None:
                return None
            logger.warning("refused %s %s: %s", request.method, path, closed)
            return response.json({"version": None, "status": "failure", "reason": "Forbidden",
                                  "message": closed, "code": 403}, status=403)
        logger.warning("refused %s %s from %s without the API token", request.method, path,
                       request.ip)
        return response.json(
            {"version": None, "status": "failure", "reason": "NotAuthenticated",
             "message": f"This server's HTTP API needs {API_TOKEN}: add ?token=<token> to "
                        "the URL.", "code": 401}, status=401)


def _model_argument(arguments: list[str]) -> Path | None:
    """The model ``rasa run`` is told to load (``--model``/``-m``), if any."""
    for index, argument in enumerate(arguments):
        if argument in ("--model", "-m") and index + 1 < len(arguments):
            return Path(arguments[index + 1])
        if argument.startswith("--model="):
            return Path(argument.partition("=")[2])
    return None


def main(argv: list[str] | None = None) -> int:
    token = (os.environ.get(API_TOKEN) or "").strip()
    if len(token) < 16:
        print(f"{API_TOKEN} must be set (at least 16 characters): it guards Rasa's HTTP API. "
              "`opsbot run` sets it.", file=sys.stderr)
        return 2
    arguments = sys.argv[1:] if argv is None else argv
    model = _model_argument(arguments)
    if model is not None and not model_needs_tensorflow(model):
        install_without_tensorflow()  # about 360 MB less (opsbot/_no_tensorflow.py)
    import rasa.core.run

    configure = rasa.core.run.configure_app

    def configure_app(*args: Any, **kwargs: Any) -> Sanic:
        app = configure(*args, **kwargs)
        guard(app, token)
        from opsbot._health import install

        install(app)
        return app

    rasa.core.run.configure_app = configure_app  # serve_application looks it up here
    from rasa.__main__ import main as rasa_main

    # "=": a token may begin with "-" (token_urlsafe), which argparse would take for an option
    sys.argv = ["rasa", *arguments, f"--auth-token={token}"]
    rasa_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
