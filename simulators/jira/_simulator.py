"""``JiraSimulator``, the Jira simulator's public face, and ``python -m simulators.jira``.

Why apart: tests and the demo read Jira from here (projects, issues as snapshots) and
play the person who solves a CAPTCHA; the rest of the package is private.
"""

from __future__ import annotations

import argparse
import difflib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from simulators._base import SimulatorBase, add_address_arguments, check_account, run_main
from simulators._seed import SeedError
from simulators.jira._app import _App
from simulators.jira._model import DEFAULT_SEED, DEFAULT_TOKEN, IssueSnapshot, RecordedRequest
from simulators.jira._seed import _SeedLoader
from simulators.jira._state import _State


class JiraSimulator(SimulatorBase[RecordedRequest]):
    """A Jira Server HTTP server in a thread, seeded from YAML, with helpers for tests and demos.

    ``user`` / ``token`` are the one account that may sign in: ``token`` as a personal
    access token (Bearer) or as the password of ``user`` (Basic). ``basic_auth``,
    ``captcha_after`` and ``deployment`` as in the module's docstring. ``port=0`` picks a
    free port; read ``url`` after ``start()``. ``clock`` (epoch seconds) lets a test drive
    time itself.
    """

    def __init__(
        self,
        seed_path: str | Path | None = None,
        user: str = "opsbot",
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        basic_auth: bool = True,
        captcha_after: int | None = 3,
        deployment: str = "Server",
    ) -> None:
        check_account(user, token, user_kind="Jira user name", client="the jira library")
        if deployment not in ("Server", "Cloud"):
            raise ValueError(f"deployment is Server or Cloud, not {deployment!r}")
        self.seed_path = Path(seed_path) if seed_path is not None else DEFAULT_SEED
        self.user = user
        self.token = token
        seed = _SeedLoader(self.seed_path, clock(), user).load()
        self._state = _State(seed, clock)
        self._app = _App(self._state, user, token, lambda: self.url)
        self._app.basic_auth = basic_auth
        self._app.captcha_after = captcha_after
        self._app.deployment = deployment
        super().__init__(
            self._app, faults=self._state.faults, requests=self._state.log,
            host=host, port=port, name="jira-simulator", server_name="Apache-Coyote/1.1",
        )

    def solve_captcha(self) -> None:
        """The user signs in through the browser and solves the CAPTCHA."""
        with self._state.lock:
            self._app.failed_logins = 0

    def __repr__(self) -> str:
        return f"JiraSimulator({self._location()}, user={self.user!r}, token='**********')"

    # -- lifecycle (url, port, start, stop, with: SimulatorBase) -------------------

    @property
    def version(self) -> str:
        """The Jira version ``serverInfo`` reports."""
        return self._state.seed.version

    def describe(self) -> str:
        """One line for the demo banner (the token is the simulator's own, not a secret)."""
        return f"Jira {self.version} at {self.url} (user {self.user}, token {self.token})"

    def env(self) -> dict[str, str]:
        """JIRA_URL, JIRA_USER, JIRA_TOKEN (a personal access token) and JIRA_AUTH for
        opsbot's action server."""
        return {"JIRA_URL": self.url, "JIRA_USER": self.user, "JIRA_TOKEN": self.token,
                "JIRA_AUTH": "bearer"}

    # -- inspection (and request_log: SimulatorBase) -------------------------------

    def projects(self) -> list[str]:
        """The project keys, in seed order."""
        with self._state.lock:
            return list(self._state.projects)

    def issues(self, project: str | None = None) -> list[IssueSnapshot]:
        """Every issue (of ``project``, a key), oldest first."""
        with self._state.lock:
            if project is not None and project.upper() not in self._state.projects:
                raise KeyError(f"no project {project!r}; known: "
                               f"{', '.join(self._state.projects)}")
            return [self._state.snapshot(i) for i in self._state.issues.values()
                    if project is None or i.project.key == project.upper()]

    def issue(self, key: str) -> IssueSnapshot:
        """One issue by key; KeyError (with suggestions) if there is none."""
        with self._state.lock:
            found = self._state.issues.get(key.upper())
            if found is None:
                close = difflib.get_close_matches(key.upper(), self._state.issues, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise KeyError(f"no issue {key!r}{hint}")
            return self._state.snapshot(found)

    # -- steering (and fail_next: SimulatorBase) -----------------------------------

    def delay_next(self, seconds: float, *, times: int = 1, path: str | None = None) -> None:
        """Hold the next ``times`` matching requests for ``seconds`` (to test client timeouts)."""
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        super().delay_next(seconds, times=times, path=path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.jira",
        description="A local Jira Server for opsbot: the jira library talks to it like to the "
                    "real one.",
    )
    add_address_arguments(parser, 8081)
    parser.add_argument("--seed", type=Path, default=DEFAULT_SEED,
                        help="projects, issues and users (YAML)")
    parser.add_argument("--user", default="opsbot", help="the one user that may sign in")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="that user's API token / password")
    args = parser.parse_args(argv)

    def banner(simulator: JiraSimulator) -> list[str]:
        counts = ", ".join(f"{key} ({len(simulator.issues(key))} issues)"
                           for key in simulator.projects())
        return [f"Jira simulator (Jira {simulator.version}) at {simulator.url}",
                f"  user:  {simulator.user}",
                f"  token: {simulator.token}",
                f"  projects: {counts} from {simulator.seed_path}"]

    return run_main(lambda: JiraSimulator(args.seed, args.user, args.token, args.host, args.port),
                    banner, seed_error=SeedError, cannot=f"listen on {args.host}:{args.port}")
