"""A small CDN purge API for the demo's ``purge_cache`` operation (operations/purge_cache.yml).

Modelled on real purge APIs (Fastly's ``POST /service/{id}/purge/{key}`` with a
``Fastly-Key`` token, Cloudflare's ``POST /zones/{id}/purge_cache`` with
``Authorization: Bearer``): a purge is a POST with a bearer token, answered 202 (accepted,
asynchronous at the edge) with a purge id.

    POST /purge/<service>   Authorization: Bearer <token>, optional JSON {"environment": "prod"}
        202 {"status": "ok", "id": "purge-000001", "service", "environment", "purged_objects"}
        401 missing or wrong token; 400 bad service name or body; 413 body over 64 KiB
    GET /purges             (same token) the purges done, oldest first

Unknown paths are 404, other methods 405; every error is ``{"status": "error", "message"}``.
``fail_next(503)`` and ``delay_next`` steer faults as in the other simulators.
"""

from __future__ import annotations

import argparse
import hmac
import json
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulators._base import Faults, RequestLog, SimulatorBase, add_address_arguments, run_main
from simulators._http import Request, Response

__all__ = ["DEMO_TOKEN", "CdnSimulator", "main"]

MAX_BODY = 64 * 1024
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    target: str
    status: int


def _error(status: int, message: str) -> Response:
    return Response.json({"status": "error", "message": message}, status)


class _App:
    def __init__(self, token: str) -> None:
        self.token = token
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()
        self.lock = threading.Lock()
        self.purges: list[dict[str, Any]] = []

    def __call__(self, request: Request) -> Response:
        failure = self.faults.hold(request.raw_path)
        if failure is not None:
            response = _error(failure, "injected by the simulator")
        else:
            response = self._route(request)
        self.faults.hold_response(request.raw_path)
        self.log.append(RecordedRequest(request.method, request.target, response.status))
        return response

    def _authorised(self, request: Request) -> bool:
        header = request.header("Authorization") or ""
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            value.strip().encode(), self.token.encode())

    def _route(self, request: Request) -> Response:
        segments = request.segments
        if segments == ("purges",):
            if request.method != "GET":
                return _error(405, "use GET /purges")
            if not self._authorised(request):
                return _error(401, "a valid API token is required (Authorization: Bearer)")
            with self.lock:
                return Response.json({"purges": list(self.purges)})
        if len(segments) == 2 and segments[0] == "purge":
            if request.method != "POST":
                return _error(405, "use POST /purge/<service>")
            if not self._authorised(request):
                return _error(401, "a valid API token is required (Authorization: Bearer)")
            return self._purge(segments[1], request.body)
        return _error(404, f"no such resource: {request.raw_path}")

    def _purge(self, service: str, body: bytes) -> Response:
        if len(body) > MAX_BODY:
            return _error(413, f"the body is over {MAX_BODY} bytes")
        if not _SERVICE.match(service):
            return _error(400, f"{service!r} is not a service name (lowercase letters, digits, -)")
        environment = None
        if body.strip():
            try:
                data = json.loads(body)
            except ValueError:
                return _error(400, "the body is not JSON")
            if not isinstance(data, dict):
                return _error(400, "the body must be a JSON object")
            environment = data.get("environment", data.get("env"))
            if environment is not None and not isinstance(environment, str):
                return _error(400, "environment must be a string")
        with self.lock:
            purge = {"status": "ok", "id": f"purge-{len(self.purges) + 1:06d}",
                     "service": service, "environment": environment,
                     "purged_objects": len(service) * 37 % 500 + 20}
            self.purges.append(purge)
        return Response.json(purge, 202)


DEMO_TOKEN = "opsbot-demo-cdn-token"  # the demo's, like the Jenkins simulator's demo token


class CdnSimulator(SimulatorBase[RecordedRequest]):
    """The demo CDN in a thread; ``env()`` hands its URL and token to opsbot's action server."""

    def __init__(self, token: str | None = DEMO_TOKEN, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.token = token or secrets.token_urlsafe(24)
        self._app = _App(self.token)
        super().__init__(self._app, faults=self._app.faults, requests=self._app.log,
                         host=host, port=port, name="cdn-simulator", server_name="CDN")

    def __repr__(self) -> str:
        return f"CdnSimulator({self._location()})"

    @property
    def url(self) -> str:
        return self._server.url.rstrip("/")

    def describe(self) -> str:
        return f"CDN purge API at {self.url} (bearer token in CDN_TOKEN)"

    def env(self) -> dict[str, str]:
        """CDN_URL and CDN_TOKEN, which operations/purge_cache.yml refers to."""
        return {"CDN_URL": self.url, "CDN_TOKEN": self.token}

    def purges(self) -> list[dict[str, Any]]:
        with self._app.lock:
            return list(self._app.purges)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(prog="python -m simulators.cdn",
                                     description="A CDN purge API for opsbot's demo.")
    add_address_arguments(parser, 8089)
    parser.add_argument("--token", default=DEMO_TOKEN, help=f"the API token (default {DEMO_TOKEN})")
    args = parser.parse_args(argv)
    return run_main(lambda: CdnSimulator(args.token, host=args.host, port=args.port),
                    lambda sim: [sim.describe(), f"token: {sim.token}"],
                    seed_error=ValueError, cannot=f"listen on {args.host}:{args.port}")


if __name__ == "__main__":
    raise SystemExit(main())
