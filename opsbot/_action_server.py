"""The action server, locked to the Rasa server: ``python -m opsbot._action_server``.

rasa_sdk's own server runs any action for any tracker that anyone posts to
``/webhook``, binds to 0.0.0.0 and allows every CORS origin; a hand-made tracker with
``next_action=action_confirm`` would deploy with no Rasa server involved. This one runs
the same actions (``actions/``) with:

* a bind address of ``OPSBOT_ACTIONS_HOST`` (default 127.0.0.1, loopback only);
* ``/metrics``: Prometheus text of this process (backend calls, refused confirmations);
* every route but ``/health`` refused (401) without the ``X-Opsbot-Secret`` header
  holding ``OPSBOT_ACTIONS_SECRET``, compared in constant time; the Rasa server sends it
  from endpoints.yml (``action_endpoint.headers``);
* no CORS (browsers have no business here), and errors that do not echo the request.

Running it on another host: docs/trust.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence
from typing import Any

from sanic import Sanic, response
from sanic.exceptions import SanicException
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.guard.identity import SECRET_HEADER, SECRET_VARIABLE, secret_matches

logger = logging.getLogger("opsbot.actions")

OPEN_PATHS = frozenset({"/health"})


def create_app(package: str = "actions") -> Sanic:
    """rasa_sdk's app for ``package``, behind the shared secret."""
    from rasa_sdk.endpoint import create_app as sdk_app

    app = sdk_app(package, cors_origins=None)

    @app.middleware("request")
    async def require_secret(request: Request) -> HTTPResponse | None:
        if request.path in OPEN_PATHS:
            return None
        if secret_matches(request.headers.get(SECRET_HEADER)):
            return None
        logger.warning("refused %s %s from %s: no valid %s header", request.method,
                       request.path, request.ip, SECRET_HEADER)
        return response.json({"error": f"unauthorized: this action server answers only the "
                                       f"Rasa server, which sends {SECRET_HEADER}"}, status=401)

    @app.route("/metrics", methods=["GET"])
    async def metrics(_request: Request) -> HTTPResponse:
        """Prometheus text (``actions.metrics``); the Rasa server's /metrics includes it."""
        from actions.metrics import ACTIONS, CONTENT_TYPE, render

        return response.text(render(ACTIONS).decode("utf-8"), content_type=CONTENT_TYPE)

    @app.exception(Exception)
    async def failed(request: Request, exception: Exception) -> HTTPResponse:
        if isinstance(exception, SanicException):  # 404, 405, a bad body: the caller's doing
            status = int(getattr(exception, "status_code", 400) or 400)
            return response.json({"error": str(exception) or "bad request"}, status=status)
        logger.error("the action server failed on %s %s", request.method, request.path,
                     exc_info=exception)
        return response.json({"error": "the action server failed; see its log"}, status=500)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opsbot._action_server",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int,
                        default=int(os.environ.get("OPSBOT_ACTIONS_PORT") or 5055))
    parser.add_argument("--host", default=os.environ.get("OPSBOT_ACTIONS_HOST") or "127.0.0.1")
    parser.add_argument("--actions", default="actions")
    parser.add_argument("--ssl-certificate", default=os.environ.get("OPSBOT_ACTIONS_SSL_CERT"))
    parser.add_argument("--ssl-keyfile", default=os.environ.get("OPSBOT_ACTIONS_SSL_KEY"))
    args = parser.parse_args(argv)
    if len(os.environ.get(SECRET_VARIABLE, "")) < 16:
        print(f"The action server needs {SECRET_VARIABLE} (at least 16 characters), the "
              f"secret the Rasa server sends in {SECRET_HEADER}. `opsbot run` sets it; to run "
              f"the action server on its own, set the same value for both servers.",
              file=sys.stderr)
        return 2
    from rasa_sdk import utils
    from rasa_sdk.endpoint import create_ssl_context

    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    utils.update_sanic_log_level()
    # Its name in the store's leases (actions._watcher): a restart on the same host and
    # port takes its operations back at once; another replica waits for them to run out.
    os.environ.setdefault("OPSBOT_REPLICA_ID", f"{socket.gethostname()}:{args.port}")
    from actions import metrics

    metrics.in_action_server()
    app = create_app(args.actions)

    async def watch(*_args: Any) -> None:
        """Follow what the store says is executing from the start, not from the first
        message: after a restart, or when another replica died."""
        import asyncio

        from actions._watcher import WATCHER

        await asyncio.to_thread(WATCHER.ensure_started)

    app.register_listener(watch, "after_server_start")

    ssl = create_ssl_context(args.ssl_certificate, args.ssl_keyfile)
    logger.info("action server on %s://%s:%s (requests need %s)",
                "https" if ssl else "http", args.host, args.port, SECRET_HEADER)
    app.run(args.host, args.port, ssl=ssl, workers=1, access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
