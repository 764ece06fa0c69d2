"""``GithubSimulator``, the GitHub simulator's public face, and ``python -m simulators.github``.

Why apart: what tests and the demo call (push a commit, script an outcome, spend a rate
limit, read the webhooks) is kept to the names they use; the rest of the package is private.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simulators._base import SimulatorBase, add_address_arguments, run_main
from simulators.github._app import _App
from simulators.github._auth import AppKey, _Auth, generate_app_key
from simulators.github._model import (
    ALICE,
    APP_ID,
    BOB,
    CHECKOUT_REPO,
    CONCLUSIONS,
    CORE_LIMIT,
    DEFAULT_TOKEN,
    INSTALLATION_ID,
    INSTALLATION_TOKEN_SECONDS,
    OPSBOT,
    OUTSIDER,
    OUTSIDER_TOKEN,
    OWNER,
    REVIEW_PR,
    SEARCH_LIMIT,
    RecordedRequest,
    _Review,
)
from simulators.github._render import _Render
from simulators.github._seed import seed
from simulators.github._state import _State
from simulators.github._webhooks import _Webhooks


class ManualClock:
    """Epoch seconds that move only when a test says so (``advance``); pass it as ``clock``.

    It starts at the real time by default, because PyGithub reads the real clock too (to
    judge a token's expiry, to wait for a rate limit's reset).
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


GHES_PREFIX = "/api/v3"
"""Where GitHub Enterprise Server serves the REST API (``https://HOST/api/v3``)."""


class GithubSimulator(SimulatorBase[RecordedRequest]):
    """GitHub's REST API in a thread, seeded with the demo organisation ``acme``.

    ``enterprise``: serve under ``/api/v3`` as GitHub Enterprise Server does. ``clock``
    (epoch seconds) drives every check run, workflow run, token expiry and rate-limit
    window; a test passes its own and moves it. ``queue_seconds`` and ``run_seconds``: how
    long a job waits for a runner and then runs. ``limit``: requests per ``window`` seconds
    for each token (``search_limit`` a minute for search); ``rate_limit_status``: 403, or
    429 as GitHub also answers. ``app_key``: the GitHub App's key pair (made on first use
    when not given); ``token_seconds``: how long an installation token lives.
    ``events_url``: opsbot's base URL, to which ``check_run``, ``workflow_run`` and
    ``pull_request`` webhooks are posted, signed with ``webhook_secret``.
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        enterprise: bool = False,
        clock: Callable[[], float] = time.time,
        queue_seconds: float = 2.0,
        run_seconds: float = 20.0,
        limit: int = CORE_LIMIT,
        search_limit: int = SEARCH_LIMIT,
        window: float = 3600.0,
        rate_limit_status: int = 403,
        app_key: AppKey | None = None,
        token_seconds: float = INSTALLATION_TOKEN_SECONDS,
        events_url: str | None = None,
        webhook_secret: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not token or token == OUTSIDER_TOKEN:
            raise ValueError("token must be non-empty and differ from OUTSIDER_TOKEN")
        if queue_seconds < 0 or run_seconds < 0 or token_seconds <= 0 or window <= 0:
            raise ValueError("queue_seconds and run_seconds must be >= 0; token_seconds and "
                             "window above 0")
        if limit < 1 or search_limit < 1:
            raise ValueError("limit and search_limit must be at least 1")
        if rate_limit_status not in (403, 429):
            raise ValueError("rate_limit_status must be 403 or 429 (what GitHub answers)")
        if events_url is not None and not webhook_secret:
            raise ValueError("events_url needs a webhook_secret: opsbot refuses unsigned "
                             "GitHub deliveries")
        self.token = token
        self.outsider_token = OUTSIDER_TOKEN
        self.prefix = GHES_PREFIX if enterprise else ""
        self._app_key = app_key
        auth = _Auth({token: OPSBOT, OUTSIDER_TOKEN: OUTSIDER}, APP_ID,
                     app_key.public_pem if app_key else None, INSTALLATION_ID, token_seconds)
        self._state = _State(clock, auth, queue_seconds=queue_seconds,
                             run_seconds=run_seconds, limit=limit, search_limit=search_limit,
                             window=window, rate_limit_status=rate_limit_status)
        seed(self._state)
        self._webhooks = _Webhooks(self._state, events_url, webhook_secret)
        self._render = _Render(self._state)
        super().__init__(_App(self._state, self.prefix, self._webhooks.poke),
                         faults=self._state.faults, requests=self._state.log, host=host,
                         port=port, name="github-simulator", server_name="GitHub.com")

    def __repr__(self) -> str:
        return f"GithubSimulator({self._location()}, token='**********')"

    # -- lifecycle (url, port, with: SimulatorBase) -------------------------------------------

    @property
    def api_url(self) -> str:
        """``http://127.0.0.1:PORT`` (``.../api/v3`` for Enterprise): PyGithub's ``base_url``,
        as ``https://api.github.com``; only valid after ``start()``."""
        return self.url.rstrip("/") + self.prefix

    def start(self, stack: object | None = None) -> None:
        super().start(stack)
        with self._state.lock:
            self._state.web_base = self.url.rstrip("/")
            self._state.api_base = self.api_url
        self._webhooks.start()

    def stop(self) -> None:
        self._webhooks.stop()
        super().stop()

    def describe(self) -> str:
        kind = "GitHub Enterprise Server" if self.prefix else "GitHub"
        return f"{kind} REST API at {self.api_url} (organisation {OWNER})"

    def env(self) -> dict[str, str]:
        """GITHUB_API_URL, GITHUB_TOKEN (opsbot's machine user) and GITHUB_OWNER."""
        return {"GITHUB_API_URL": self.api_url, "GITHUB_TOKEN": self.token,
                "GITHUB_OWNER": OWNER}

    @property
    def app_key(self) -> AppKey:
        """The GitHub App's key pair (RSA); the simulator checks JWTs with its public half."""
        if self._app_key is None:
            self._app_key = generate_app_key()
            with self._state.lock:
                self._state.auth.app_public_pem = self._app_key.public_pem
        return self._app_key

    def app_env(self, private_key_file: str | Path) -> dict[str, str]:
        """The App's variables instead of a token: GITHUB_APP_ID, GITHUB_APP_PRIVATE_KEY_FILE
        (the private key is written there, mode 0600) and GITHUB_APP_INSTALLATION_ID."""
        path = self.app_key.write(private_key_file)
        return {"GITHUB_API_URL": self.api_url, "GITHUB_OWNER": OWNER,
                "GITHUB_APP_ID": str(APP_ID), "GITHUB_APP_PRIVATE_KEY_FILE": str(path),
                "GITHUB_APP_INSTALLATION_ID": str(INSTALLATION_ID)}

    # -- steering (and fail_next, delay_next: SimulatorBase) ------------------------------

    def push(self, owner: str, repo: str, number: int) -> str:
        """A new commit on pull request ``number``'s branch: its new head SHA. CI starts on
        it, and the next read of the pull request says ``mergeable: null``."""
        with self._state.lock:
            found = self._state.repos[f"{owner}/{repo}".lower()]
            return self._state.push(found, found.pulls[number])

    def review(self, owner: str, repo: str, number: int, login: str,
               state: str = "APPROVED", body: str = "") -> None:
        """``login`` reviews pull request ``number`` at its head (APPROVED,
        CHANGES_REQUESTED or COMMENTED); a reviewer who was asked is no longer waited for."""
        if state not in ("APPROVED", "CHANGES_REQUESTED", "COMMENTED"):
            raise ValueError("state must be APPROVED, CHANGES_REQUESTED or COMMENTED")
        with self._state.lock:
            pull = self._state.repos[f"{owner}/{repo}".lower()].pulls[number]
            self._state.user(login)
            pull.reviews.append(_Review(self._state.new_id(), login, state, pull.head_sha,
                                        self._state.now(), body))
            if login in pull.requested:
                pull.requested.remove(login)

    def set_outcome(self, owner: str, repo: str, workflow: str, conclusion: str, *,
                    job: str | None = None) -> None:
        """The next run of ``workflow`` (a file name such as ``e2e.yml``) ends with
        ``conclusion``: every job, or only ``job`` (the others succeed). Calls queue up."""
        with self._state.lock:
            found = self._state.repos[f"{owner}/{repo}".lower()]
            self._state.script_outcome(found, self._state.workflow(found, workflow), conclusion,
                                       job)

    def set_rerun_outcome(self, conclusion: str) -> None:
        """The next re-run of failed jobs ends with ``conclusion`` (success by default)."""
        if conclusion not in CONCLUSIONS:
            raise ValueError(f"conclusion must be one of {', '.join(CONCLUSIONS)}")
        with self._state.lock:
            self._state.rerun_outcomes.append(conclusion)

    def exhaust_rate_limit(self, who: str = OPSBOT, resource: str = "core") -> int:
        """Spend ``who``'s primary limit (a login or ``installation:<id>``) until its window
        resets; returns the reset time (epoch seconds, as ``x-ratelimit-reset``)."""
        with self._state.lock:
            window = self._state.window(who, resource)
            window.used = self._state.limits[resource]
            return window.reset

    def secondary_limit(self, *, times: int = 1, retry_after: int = 60, status: int = 403,
                        path: str | None = None) -> None:
        """Refuse the next ``times`` requests (whose path holds ``path``) for a secondary
        rate limit: ``status`` 403 or 429 with ``retry-after``. ``fail_next(403)`` and
        ``fail_next(429)`` do the same with the last ``retry_after`` (60 at first)."""
        if status not in (403, 429):
            raise ValueError("a secondary rate limit is answered with 403 or 429")
        with self._state.lock:
            self._state.retry_after = retry_after
        self._state.faults.add(status, 0.0, times, path)

    # -- reading (and request_log: SimulatorBase) --------------------------------------------

    def pull(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        """Pull request ``number`` as ``GET .../pulls/{n}`` shows it (without starting a
        mergeability computation); after ``start()``."""
        with self._state.lock:
            found = self._state.repos[f"{owner}/{repo}".lower()]
            return self._render.pull(found, copy.deepcopy(found.pulls[number]), full=True)

    def runs(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """Every workflow run of the repository, newest first, as the API shows them now."""
        with self._state.lock:
            found = self._state.repos[f"{owner}/{repo}".lower()]
            return [self._render.run(found, run) for r, run in sorted(
                self._state.runs.values(), key=lambda item: -item[1].id) if r is found]

    def deliveries(self) -> list[dict[str, Any]]:
        """Every webhook sent, oldest first: ``event``, ``action``, ``delivery``, ``status``
        (opsbot's answer), ``error`` and ``payload``."""
        with self._webhooks.changed:
            return copy.deepcopy(self._webhooks.deliveries)

    def wait_for_delivery(self, event: str, action: str | None = None, *,
                          timeout: float = 10.0) -> dict[str, Any]:
        """The first delivery of ``event`` (with ``action``); TimeoutError after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._webhooks.changed:
            while True:
                for delivery in self._webhooks.deliveries:
                    if delivery["event"] == event and action in (None, delivery["action"]):
                        return copy.deepcopy(delivery)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(d["event"], d["action"]) for d in self._webhooks.deliveries]
                    raise TimeoutError(f"no {event} {action or ''} webhook within {timeout} s; "
                                       f"sent: {seen}")
                self._webhooks.changed.wait(remaining)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.github",
        description="A local GitHub REST API for opsbot: PyGithub talks to it like to the "
                    "real one.")
    add_address_arguments(parser, 8086)
    parser.add_argument("--enterprise", action="store_true",
                        help="serve under /api/v3, as GitHub Enterprise Server")
    parser.add_argument("--queue-seconds", type=float, default=2.0,
                        help="seconds a job waits for a runner (default 2)")
    parser.add_argument("--run-seconds", type=float, default=20.0,
                        help="seconds a job runs (default 20)")
    parser.add_argument("--app-key-file", type=Path, default=None,
                        help="write the GitHub App's private key here (for App auth)")
    parser.add_argument("--events-url", default=None,
                        help="opsbot's base URL: post webhooks to /webhooks/events/github")
    parser.add_argument("--webhook-secret", default=None, help="sign webhooks with this")
    args = parser.parse_args(argv)

    def banner(sim: GithubSimulator) -> list[str]:
        lines = [f"GitHub simulator: {sim.describe()}",
                 *(f"  {name}={value}" for name, value in sim.env().items())]
        if args.app_key_file is not None:
            lines += [f"  {name}={value}" for name, value in
                      sim.app_env(args.app_key_file).items() if name.startswith("GITHUB_APP")]
        lines.append(f"  people: {ALICE}, {BOB}; {CHECKOUT_REPO}#{REVIEW_PR} waits for "
                     f"{BOB}'s review")
        return lines

    return run_main(lambda: GithubSimulator(enterprise=args.enterprise,
                                            queue_seconds=args.queue_seconds,
                                            run_seconds=args.run_seconds,
                                            events_url=args.events_url,
                                            webhook_secret=args.webhook_secret,
                                            host=args.host, port=args.port),
                    banner, seed_error=ValueError, cannot=f"listen on {args.host}:{args.port}")
